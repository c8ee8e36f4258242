// The ICE parameters two agents exchange in an overlay ATTACH / ATTACH-ANSWER (RELOAD's AttachReqAns,
// RFC 6940 section 6.5.1), carried as the overlay message's opaque blob. Signed by the sender's identity
// key, so the rendezvous nodes that relay it can neither forge an offer nor change its candidates, and
// bound to the target's NodeID, so a relay cannot replay it to someone else. All integers big-endian.
//
//    0      1      2                   34                  54               62               70             78
//   +------+------+-------------------+-------------------+----------------+----------------+--------------+
//   | ver  | role | sender key (32)   | target NodeID (20)| created ms u64 | tie-breaker u64| puzzle u64   |
//   +------+------+-------------------+-------------------+----------------+----------------+--------------+
//    78                       79+u                 80+u+p
//   +-------+-----------------+-------+------------+--------+---------------+--------+-----------+-----------------+
//   | u len | ufrag (u bytes) | p len | pwd (p)    | #cand  | candidate ... | nat u8 | zeros ... | signature (64)  |
//   +-------+-----------------+-------+------------+--------+---------------+--------+-----------+-----------------+
//   candidate: | family u8 (4|6) | type u8 (0 host, 1 srflx, 2 relay, 3 prflx) | port u16 | priority u32 | address (4|16) |
//   puzzle: the sender key's NodeID puzzle nonce (overlay/puzzle.ts): an offer costs a minted identity, so
//   a flood of offers from fresh keys costs 2^difficulty hashes per key.
//   nat: the sender's NAT as its netcheck saw it: 0 unknown, 1 none, 2 easy (endpoint-independent
//   mapping), 3 hard (endpoint-dependent mapping with ports nobody can predict) and the sender opens
//   probe sockets for it (conn/probe-sockets.ts): the peer, if easy, then sprays checks across its ports.
//   zeros: an offer is padded to ATTACH_OFFER_BYTES, the size of the largest answer, so the answer to an
//   Attach (sent to wherever it came from, which may be spoofed) is never larger than the request; answers
//   carry none. Any non-zero byte there is malformed.
//
//   ver = 3; role 0 = offer (the sender controls ICE: it nominates), 1 = answer (controlled).
//   ufrag 4..32 and pwd 22..64 characters of ICE's ice-char set (RFC 8445 section 5.3), at most
//   ATTACH_MAX_CANDIDATES candidates. signature = Ed25519(sender key, "idloc attach v3" || bytes before it).
//   A receiver checks, cheapest first, that the puzzle holds, that the target is itself, that `created` is
//   within ATTACH_MAX_AGE_MS of its clock, and the signature; attach-guard.ts then refuses a blob it has
//   already acted on (the same key and tie-breaker, whatever overlay transaction carries it).
import { ed25519Signer, ed25519Verify } from '../base/ed25519.js';
import { randomBytes } from 'node:crypto';
import { Reader, Writer } from '../base/binary.js';
import { bytesEqual } from '../base/bytes.js';
import { ATTACH_MAX_AGE_MS, ATTACH_MAX_CANDIDATES, PUZZLE_DEFAULT_DIFFICULTY } from '../base/constants.js';
import { verifyPuzzle } from '../overlay/puzzle.js';
import { formatIpv4, formatIpv6, nodeIdFromPublicKey, parseIpv4, parseIpv6 } from '../idloc/addresses.js';
import type { Endpoint } from '../conn/socket.js';

export const ATTACH_VERSION = 3;
export const IceCandidateType = { Host: 0, Srflx: 1, Relay: 2, Prflx: 3 } as const;
export type IceCandidateType = (typeof IceCandidateType)[keyof typeof IceCandidateType];

/** The sender's NAT, as far as hole punching cares (see the layout above). */
export type NatHint = 'unknown' | 'none' | 'easy' | 'hard';
const NAT_HINTS: readonly NatHint[] = ['unknown', 'none', 'easy', 'hard'];

export interface IceCandidate extends Endpoint {
  type: IceCandidateType;
  priority: number;
}

export interface AttachParams {
  role: 'offer' | 'answer';
  /** The sender's Ed25519 identity key. */
  sender: Uint8Array;
  target: Uint8Array;
  created: number;
  tieBreaker: bigint;
  /** The sender key's NodeID puzzle nonce. */
  puzzleNonce: bigint;
  ufrag: string;
  pwd: string;
  candidates: IceCandidate[];
  /** Absent: 'unknown'. */
  nat?: NatHint;
}

const TAG = new TextEncoder().encode('idloc attach v3');
const ICE_CHARS = /^[A-Za-z0-9+/]+$/;
const HEAD = 78;
const CANDIDATE_MAX_BYTES = 8 + 16;
/** Every offer's size: the largest blob (32-character ufrag, 64-character pwd, ATTACH_MAX_CANDIDATES IPv6
 *  candidates), so no answer outgrows it. */
export const ATTACH_OFFER_BYTES = HEAD + 1 + 32 + 1 + 64 + 1 + ATTACH_MAX_CANDIDATES * CANDIDATE_MAX_BYTES + 1 + 64;

/** RFC 8445 section 5.1.2.1 priority: type preference (host 126, prflx 110, srflx 100, relay 0), then the
 *  order of our local addresses, component 1. */
export function candidatePriority(type: IceCandidateType, localIndex = 0): number {
  const pref = type === IceCandidateType.Host ? 126 : type === IceCandidateType.Prflx ? 110 : type === IceCandidateType.Srflx ? 100 : 0;
  return ((pref << 24) >>> 0) + ((0xffff - Math.min(localIndex, 0xffff)) << 8) + 255;
}

/** Fresh ICE credentials: 8 and 24 characters of base64 (ice-chars), 48 and 144 bits of randomness. */
export function newCredentials(): { ufrag: string; pwd: string; tieBreaker: bigint } {
  const r = randomBytes(6 + 18 + 8);
  return {
    ufrag: r.subarray(0, 6).toString('base64'), pwd: r.subarray(6, 24).toString('base64'),
    tieBreaker: r.readBigUInt64BE(24),
  };
}

/** Sign and encode. Throws RangeError on values out of their limits (our own code builds these). */
export function marshalAttach(p: AttachParams, privateKey: Uint8Array): Uint8Array {
  if (p.sender.length !== 32 || p.target.length !== 20) throw new RangeError('attach: key 32 bytes, target 20');
  if (!validCred(p.ufrag, 4, 32) || !validCred(p.pwd, 22, 64)) throw new RangeError('attach: bad ufrag or pwd');
  if (p.candidates.length > ATTACH_MAX_CANDIDATES) throw new RangeError(`attach: over ${ATTACH_MAX_CANDIDATES} candidates`);
  const w = new Writer(512);
  w.u8(ATTACH_VERSION);
  w.u8(p.role === 'offer' ? 0 : 1);
  w.bytes(p.sender);
  w.bytes(p.target);
  w.u64(BigInt(Math.floor(p.created)));
  w.u64(p.tieBreaker);
  w.u64(p.puzzleNonce);
  writeStr(w, p.ufrag);
  writeStr(w, p.pwd);
  w.u8(p.candidates.length);
  for (const c of p.candidates) writeCandidate(w, c);
  w.u8(NAT_HINTS.indexOf(p.nat ?? 'unknown'));
  if (p.role === 'offer') w.bytes(new Uint8Array(Math.max(0, ATTACH_OFFER_BYTES - 64 - w.view().length)));
  w.bytes(ed25519Signer(privateKey)(signed(w.view())));
  return Buffer.from(w.view());
}

export type AttachVerdict =
  | { ok: true; params: AttachParams }
  | { ok: false; reason: AttachRefusal };
export type AttachRefusal = 'malformed' | 'no-puzzle' | 'wrong-target' | 'stale' | 'bad-signature';

/** Parse and check a blob meant for `self` (our NodeID) at time `now`, the sender's puzzle at `difficulty`
 *  bits (the overlay's). The signature, the one costly check, comes last. Never throws. */
export function parseAttach(b: Uint8Array, self: Uint8Array, now: number, difficulty = PUZZLE_DEFAULT_DIFFICULTY): AttachVerdict {
  const p = decode(b);
  if (!p) return { ok: false, reason: 'malformed' };
  if (!verifyPuzzle(p.sender, p.puzzleNonce, difficulty)) return { ok: false, reason: 'no-puzzle' };
  if (!bytesEqual(p.target, self)) return { ok: false, reason: 'wrong-target' };
  if (!(Math.abs(now - p.created) <= ATTACH_MAX_AGE_MS)) return { ok: false, reason: 'stale' };
  const body = b.subarray(0, b.length - 64);
  if (!ed25519Verify(p.sender, signed(body), b.subarray(b.length - 64))) return { ok: false, reason: 'bad-signature' };
  return { ok: true, params: p };
}

/** The sender's NodeID (for matching an answer to the peer we asked). */
export function attachSenderId(p: AttachParams): Uint8Array {
  return nodeIdFromPublicKey(p.sender);
}

function decode(b: Uint8Array): AttachParams | undefined {
  if (b.length < HEAD + 4 + 64 || b[0] !== ATTACH_VERSION || (b[1] !== 0 && b[1] !== 1)) return undefined;
  const r = new Reader(b, 2, b.length - 64);
  const sender = r.copy(32);
  const target = r.copy(20);
  const created = r.u64();
  const tieBreaker = r.u64();
  const puzzleNonce = r.u64();
  const ufrag = readStr(r);
  const pwd = readStr(r);
  if (r.bad || !validCred(ufrag, 4, 32) || !validCred(pwd, 22, 64)) return undefined;
  const n = r.u8();
  if (r.bad || n > ATTACH_MAX_CANDIDATES) return undefined;
  const candidates: IceCandidate[] = [];
  for (let i = 0; i < n; i++) {
    const family = r.u8(), type = r.u8(), port = r.u16(), priority = r.u32();
    const alen = family === 4 ? 4 : family === 6 ? 16 : 0;
    if (r.bad || !alen || type > 3 || r.remaining < alen) return undefined;
    const address = alen === 4 ? formatIpv4(r.u32()) : formatIpv6(r.view(16));
    candidates.push({ address, port, type: type as IceCandidateType, priority });
  }
  const nat = NAT_HINTS[r.u8()];
  while (!r.bad && r.remaining > 0 && b[1] === 0) if (r.u8() !== 0) return undefined;
  if (!r.done() || !nat || created > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
  return {
    role: b[1] === 0 ? 'offer' : 'answer', sender, target,
    created: Number(created), tieBreaker, puzzleNonce, ufrag, pwd, candidates, nat,
  };
}

function writeCandidate(w: Writer, c: IceCandidate): void {
  const v4 = parseIpv4(c.address);
  const v6 = v4 === undefined ? parseIpv6(c.address) : undefined;
  if (v4 === undefined && !v6) throw new RangeError(`attach: bad candidate address ${c.address}`);
  w.u8(v4 !== undefined ? 4 : 6);
  w.u8(c.type);
  w.u16(c.port);
  w.u32(c.priority >>> 0);
  if (v4 !== undefined) w.u32(v4);
  else w.bytes(v6!);
}

function validCred(s: string, min: number, max: number): boolean {
  return s.length >= min && s.length <= max && ICE_CHARS.test(s);
}

function writeStr(w: Writer, s: string): void {
  w.u8(s.length);
  w.bytes(Buffer.from(s, 'latin1'));
}

/** A length-prefixed string; '' (and `r.bad`) if it runs past the end. */
function readStr(r: Reader): string {
  const b = r.view(r.u8());
  return r.bad ? '' : Buffer.from(b.buffer, b.byteOffset, b.length).toString('latin1');
}

function signed(body: Uint8Array): Uint8Array {
  const out = new Uint8Array(TAG.length + body.length);
  out.set(TAG, 0);
  out.set(body, TAG.length);
  return out;
}
