// The ICE parameters two agents exchange in an overlay ATTACH / ATTACH-ANSWER (RELOAD's AttachReqAns,
// RFC 6940 section 6.5.1), carried as the overlay message's opaque blob. Signed by the sender's identity
// key, so the rendezvous nodes that relay it can neither forge an offer nor change its candidates, and
// bound to the target's NodeID, so a relay cannot replay it to someone else. All integers big-endian.
//
//    0      1      2                   34                  54               62               70
//   +------+------+-------------------+-------------------+----------------+----------------+
//   | ver  | role | sender key (32)   | target NodeID (20)| created ms u64 | tie-breaker u64|
//   +------+------+-------------------+-------------------+----------------+----------------+
//    70                       71+u                 72+u+p
//   +-------+-----------------+-------+------------+--------+---------------+--------+-----------------+
//   | u len | ufrag (u bytes) | p len | pwd (p)    | #cand  | candidate ... | nat u8 | signature (64)  |
//   +-------+-----------------+-------+------------+--------+---------------+--------+-----------------+
//   candidate: | family u8 (4|6) | type u8 (0 host, 1 srflx, 2 relay, 3 prflx) | port u16 | priority u32 | address (4|16) |
//   nat: the sender's NAT as its netcheck saw it: 0 unknown, 1 none, 2 easy (endpoint-independent
//   mapping), 3 hard (endpoint-dependent mapping with ports nobody can predict) and the sender opens
//   probe sockets for it (nat/probe-sockets.ts): the peer, if easy, then sprays checks across its ports.
//
//   ver = 2 (1 had no nat byte); role 0 = offer (the sender controls ICE: it nominates), 1 = answer (controlled).
//   ufrag 4..32 and pwd 22..64 characters of ICE's ice-char set (RFC 8445 section 5.3), at most
//   ATTACH_MAX_CANDIDATES candidates. signature = Ed25519(sender key, "idloc attach v1" || bytes before it).
//   A receiver checks the signature, that the target is itself, and that `created` is within
//   ATTACH_MAX_AGE_MS of its clock (a replayed offer starts nothing after that).
//   signature tag "idloc attach v2".
import { ed25519 } from '@noble/curves/ed25519.js';
import { randomBytes } from 'node:crypto';
import { ATTACH_MAX_AGE_MS, ATTACH_MAX_CANDIDATES } from '../base/constants.js';
import { formatIpv4, formatIpv6, nodeIdFromPublicKey, parseIpv4, parseIpv6 } from '../idloc/addresses.js';
import type { Endpoint } from '../conn/socket.js';

export const ATTACH_VERSION = 2;
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
  ufrag: string;
  pwd: string;
  candidates: IceCandidate[];
  /** Absent: 'unknown'. */
  nat?: NatHint;
}

const TAG = new TextEncoder().encode('idloc attach v2');
const ICE_CHARS = /^[A-Za-z0-9+/]+$/;
const HEAD = 70;

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
  const cands = p.candidates.map(encodeCandidate);
  const len = HEAD + 1 + p.ufrag.length + 1 + p.pwd.length + 1 + cands.reduce((n, c) => n + c.length, 0) + 1;
  const b = Buffer.alloc(len + 64);
  b[0] = ATTACH_VERSION;
  b[1] = p.role === 'offer' ? 0 : 1;
  b.set(p.sender, 2);
  b.set(p.target, 34);
  b.writeBigUInt64BE(BigInt(Math.floor(p.created)), 54);
  b.writeBigUInt64BE(p.tieBreaker, 62);
  let o = HEAD;
  o = writeStr(b, o, p.ufrag);
  o = writeStr(b, o, p.pwd);
  b[o++] = cands.length;
  for (const c of cands) { b.set(c, o); o += c.length; }
  b[o] = NAT_HINTS.indexOf(p.nat ?? 'unknown');
  b.set(ed25519.sign(signed(b.subarray(0, len)), privateKey), len);
  return b;
}

export type AttachVerdict =
  | { ok: true; params: AttachParams }
  | { ok: false; reason: 'malformed' | 'bad-signature' | 'wrong-target' | 'stale' };

/** Parse and check a blob meant for `self` (our NodeID) at time `now`. Never throws. */
export function parseAttach(b: Uint8Array, self: Uint8Array, now: number): AttachVerdict {
  const p = decode(b);
  if (!p) return { ok: false, reason: 'malformed' };
  const body = b.subarray(0, b.length - 64);
  let good = false;
  try { good = ed25519.verify(b.subarray(b.length - 64), signed(body), p.sender); } catch { good = false; }
  if (!good) return { ok: false, reason: 'bad-signature' };
  if (!equal(p.target, self)) return { ok: false, reason: 'wrong-target' };
  if (Math.abs(now - p.created) > ATTACH_MAX_AGE_MS) return { ok: false, reason: 'stale' };
  return { ok: true, params: p };
}

/** The sender's NodeID (for matching an answer to the peer we asked). */
export function attachSenderId(p: AttachParams): Uint8Array {
  return nodeIdFromPublicKey(p.sender);
}

function decode(b: Uint8Array): AttachParams | undefined {
  if (b.length < HEAD + 4 + 64 || b[0] !== ATTACH_VERSION || (b[1] !== 0 && b[1] !== 1)) return undefined;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const end = b.length - 64;
  let o = HEAD;
  const ufrag = readStr(b, o, end);
  if (!ufrag) return undefined;
  o = ufrag.next;
  const pwd = readStr(b, o, end);
  if (!pwd) return undefined;
  o = pwd.next;
  if (!validCred(ufrag.s, 4, 32) || !validCred(pwd.s, 22, 64) || o >= end) return undefined;
  const n = b[o++]!;
  if (n > ATTACH_MAX_CANDIDATES) return undefined;
  const candidates: IceCandidate[] = [];
  for (let i = 0; i < n; i++) {
    if (o + 8 >= end) return undefined;
    const family = b[o]!, type = b[o + 1]!;
    const alen = family === 4 ? 4 : family === 6 ? 16 : 0;
    if (!alen || type > 3 || o + 8 + alen >= end) return undefined;
    const port = v.getUint16(o + 2), priority = v.getUint32(o + 4);
    const a = b.subarray(o + 8, o + 8 + alen);
    const address = alen === 4 ? formatIpv4(v.getUint32(o + 8)) : formatIpv6(a);
    candidates.push({ address, port, type: type as IceCandidateType, priority });
    o += 8 + alen;
  }
  const nat = NAT_HINTS[b[o]!];
  if (o + 1 !== end || !nat) return undefined;
  const created = v.getBigUint64(54);
  if (created > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
  return {
    role: b[1] === 0 ? 'offer' : 'answer', sender: Uint8Array.from(b.subarray(2, 34)), target: Uint8Array.from(b.subarray(34, 54)),
    created: Number(created), tieBreaker: v.getBigUint64(62), ufrag: ufrag.s, pwd: pwd.s, candidates, nat,
  };
}

function encodeCandidate(c: IceCandidate): Uint8Array {
  const v4 = parseIpv4(c.address);
  const addr = v4 !== undefined ? Uint8Array.of(v4 >>> 24, (v4 >>> 16) & 255, (v4 >>> 8) & 255, v4 & 255) : parseIpv6(c.address);
  if (!addr) throw new RangeError(`attach: bad candidate address ${c.address}`);
  const out = Buffer.alloc(8 + addr.length);
  out[0] = addr.length === 4 ? 4 : 6;
  out[1] = c.type;
  out.writeUInt16BE(c.port, 2);
  out.writeUInt32BE(c.priority >>> 0, 4);
  out.set(addr, 8);
  return out;
}

function validCred(s: string, min: number, max: number): boolean {
  return s.length >= min && s.length <= max && ICE_CHARS.test(s);
}

function writeStr(b: Buffer, o: number, s: string): number {
  b[o++] = s.length;
  b.write(s, o, 'latin1');
  return o + s.length;
}

function readStr(b: Uint8Array, o: number, end: number): { s: string; next: number } | undefined {
  if (o >= end) return undefined;
  const n = b[o]!;
  if (o + 1 + n > end) return undefined;
  return { s: Buffer.from(b.buffer, b.byteOffset + o + 1, n).toString('latin1'), next: o + 1 + n };
}

function signed(body: Uint8Array): Uint8Array {
  const out = new Uint8Array(TAG.length + body.length);
  out.set(TAG, 0);
  out.set(body, TAG.length);
  return out;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
