// The overlay's wire protocol: RELOAD-style (RFC 6940) binary messages on the agent's one UDP socket,
// told apart from tunnel and STUN datagrams by the first byte 0xD2 (agent/nat/demux.ts). Network byte order.
//
//    0      1      2      3      4      5      6      7      8      9
//   +------+------+------+------+------+------+------+------+------+
//   | 0xD2 | 'I'  | 'D'  | 'L'  | ver  | TTL  | flags|  code (u16) |        ver = 2
//   +------+------+------+------+------+------+------+------+------+
//    9                                           17                    21
//   +--------------------------------------------+---------------------+
//   |          transaction id (u64)              |  total length (u32) |   length = the whole datagram
//   +--------------------------------------------+---------------------+
//    21
//   +-------+-------------------+-------------------+-- --
//   | nvia  | via[0] NodeID (20)| via[1] NodeID (20)| ...       nvia  <= OVERLAY_MAX_VIA
//   +-------+-------------------+-------------------+-- --
//   +-------+------+-----------+------+-----------+-- --
//   | ndest | type | id (20)   | type | id (20)   | ...        ndest <= OVERLAY_MAX_DESTINATIONS
//   +-------+------+-----------+------+-----------+-- --       type 1 = NodeID, 2 = resource id
//   +-------------+--------------+---------------+-- --+-----------------------+--------------------+
//   | type (u16)  | length (u16) | value         | ... | SIGNATURE TLV (4 + 64)| ORIGIN TLV (opt.)  |
//   +-------------+--------------+---------------+-- --+-----------------------+--------------------+
//   TLVs to the end, <= OVERLAY_MAX_TLVS (registry: tlvs.ts; bodies: messages.ts). SENDER first; then the
//   body's TLVs; then, in requests, COOKIE and/or PADDING; then SIGNATURE, which every message carries once
//   and which covers (signature.ts) the flags, code, transaction id and every TLV before it, but not TTL,
//   Via or destinations, which forwarders change. Only ORIGIN, which a forwarder adds, may follow it.
//
// flags: 0x01 response, 0x02 error (only with response: the body is an ERROR answering `code`); the other
// bits must be 0. code: PING 1, FIND_NODE 2, FETCH 3, STORE 4, ATTACH 5, LEAVE 6; a request and its
// answer share the code and the transaction id. The whole datagram is at most OVERLAY_MAX_DATAGRAM bytes.
//
// Routing (RELOAD section 6.3): TTL counts the forwards a message may still take; a node that forwards a
// request decrements it and appends its own NodeID to the Via list, so the answer can return along it;
// a message with TTL 0 is not forwarded. An answer to a relayed request is addressed with the Via list
// reversed plus the originator (answerDestinations); each node on the way removes itself from the front.
// An empty destination list means "the node that receives this": every direct, one-hop RPC (all of
// Kademlia's iterative lookups) uses it. Relays work on the bytes (forwardHop) without parsing the body,
// so messages a newer node sends pass through older ones unchanged.
//
// Parsing never throws and returns undefined for anything malformed: wrong token or version, reserved
// flag bits, a length field that disagrees with the datagram (so trailing garbage or truncation), lists
// over their limits, TLVs running past the end, an unknown critical TLV (type bit 0x8000; unknown types
// without it are skipped: forward compatibility). Marshalling throws RangeError on the caller's bugs
// (wrong sizes, too many entries, over OVERLAY_MAX_DATAGRAM), since our own code builds those.

import {
  NODE_ID_BYTES, OVERLAY_MAX_DATAGRAM, OVERLAY_MAX_DESTINATIONS, OVERLAY_MAX_TLVS, OVERLAY_MAX_VIA,
} from '../base/constants.js';
import { formatIpv4, formatIpv6, nodeIdFromPublicKey, parseIpv4, parseIpv6 } from '../idloc/addresses.js';
import type { Endpoint } from '../conn/socket.js';
import { Writer, getU16, getU32, setU32 } from '../base/binary.js';
import { bytesEqual } from '../base/bytes.js';
import { SPECS, allowedMask, kindOf, type Body, type BodyKind, type Spec } from './messages.js';
import { signingInput } from './signature.js';
import {
  PUBLIC_KEY_BYTES, SIGNATURE_BYTES, TLV_COOKIE, TLV_ORIGIN, TLV_PADDING, TLV_SENDER, TLV_SIGNATURE, bit, emptyFields,
  readTlv, writeCookie, writeOrigin, writePadding, writeSender, writeTlv,
  type OverlayContact, type OverlayEndpoint, type Sender,
} from './tlvs.js';

export * from './messages.js';
export * from './tlvs.js';

/** 0xD2 'I' 'D' 'L': the first byte is the demux class, the other three make a stray datagram unlikely to pass. */
export const OVERLAY_TOKEN = Uint8Array.of(0xd2, 0x49, 0x44, 0x4c);
export const OVERLAY_VERSION = 2;
export const FLAG_RESPONSE = 0x01;
export const FLAG_ERROR = 0x02;
export const HEADER_LEN = 21;
export const DEST_NODE = 1;
export const DEST_RESOURCE = 2;
const DEST_ENTRY_LEN = 1 + NODE_ID_BYTES;
const TTL_OFF = 5;
const LENGTH_OFF = 17;

export interface Destination {
  type: 'node' | 'resource';
  id: Uint8Array;
}

export interface OverlayHeader {
  ttl: number;
  txid: bigint;
  via: Uint8Array[];
  dest: Destination[];
  /** The originator (not the last hop, unless `via` is empty). */
  sender: Sender;
  /** Requests: the cookie the receiver minted for our endpoint; the COOKIE_REQUIRED error: a new one. */
  cookie?: Uint8Array;
  /** Marshalling only: pad a request (PADDING TLV) to at least this many bytes. */
  padTo?: number;
  /** Parsed only: the SIGNATURE, and the offset of its TLV (what it covers ends there). */
  signature?: Uint8Array;
  signatureAt?: number;
  /** Parsed only: where the first forwarder of a routed request received it from (its ORIGIN TLV). */
  originObserved?: OverlayEndpoint;
}

export type OverlayMessage = OverlayHeader & Body;
export type MessageOf<K extends BodyKind> = OverlayHeader & Extract<Body, { kind: K }>;

/** The header, Via and destination lists, without the body: what a relay needs. */
export interface Route {
  ttl: number;
  flags: number;
  code: number;
  txid: bigint;
  via: Uint8Array[];
  dest: Destination[];
  /** Offset of the destination count byte, and of the first TLV. */
  destOffset: number;
  bodyOffset: number;
}

// ---- parse ---------------------------------------------------------------------------------------

/** Parse and check everything before the TLVs. Views into `b`. */
export function parseRoute(b: Uint8Array): Route | undefined {
  const len = b.length;
  if (len < HEADER_LEN + 2 || len > OVERLAY_MAX_DATAGRAM) return undefined;
  if (b[0] !== OVERLAY_TOKEN[0] || b[1] !== OVERLAY_TOKEN[1] || b[2] !== OVERLAY_TOKEN[2] || b[3] !== OVERLAY_TOKEN[3]) return undefined;
  if (b[4] !== OVERLAY_VERSION) return undefined;
  const flags = b[6]!;
  if ((flags & ~(FLAG_RESPONSE | FLAG_ERROR)) !== 0 || flags === FLAG_ERROR) return undefined;
  if (getU32(b, LENGTH_OFF) !== len) return undefined;
  let off = HEADER_LEN;
  const nvia = b[off++]!;
  if (nvia > OVERLAY_MAX_VIA || off + nvia * NODE_ID_BYTES + 1 > len) return undefined;
  const via: Uint8Array[] = [];
  for (let i = 0; i < nvia; i++, off += NODE_ID_BYTES) via.push(b.subarray(off, off + NODE_ID_BYTES));
  const destOffset = off;
  const ndest = b[off++]!;
  if (ndest > OVERLAY_MAX_DESTINATIONS || off + ndest * DEST_ENTRY_LEN > len) return undefined;
  const dest: Destination[] = [];
  for (let i = 0; i < ndest; i++, off += DEST_ENTRY_LEN) {
    const t = b[off]!;
    if (t !== DEST_NODE && t !== DEST_RESOURCE) return undefined;
    dest.push({ type: t === DEST_NODE ? 'node' : 'resource', id: b.subarray(off + 1, off + DEST_ENTRY_LEN) });
  }
  return {
    ttl: b[TTL_OFF]!,
    flags,
    code: getU16(b, 7),
    txid: (BigInt(getU32(b, 9)) << 32n) | BigInt(getU32(b, 13)),
    via,
    dest,
    destOffset,
    bodyOffset: off,
  };
}

/** Parse one overlay datagram; undefined if anything is wrong. Ids, keys and blobs are views into `b`. */
export function parseOverlayMessage(b: Uint8Array): OverlayMessage | undefined {
  const r = parseRoute(b);
  if (!r) return undefined;
  const kind: BodyKind | undefined = r.flags & FLAG_ERROR ? 'error' : kindOf(r.code, (r.flags & FLAG_RESPONSE) !== 0);
  if (kind === undefined) return undefined;
  const f = emptyFields();
  let off = r.bodyOffset;
  for (let n = 0; off < b.length; n++) {
    if (n >= OVERLAY_MAX_TLVS || off + 4 > b.length) return undefined;
    const type = getU16(b, off);
    const end = off + 4 + getU16(b, off + 2);
    if (end > b.length || !readTlv(f, type, b, off + 4, end)) return undefined;
    off = end;
  }
  const spec = SPECS[kind] as unknown as Spec<BodyKind>;
  const required = spec.required | bit(TLV_SENDER) | bit(TLV_SIGNATURE);
  const extra = kind === 'error' ? bit(TLV_COOKIE) | bit(TLV_ORIGIN) : spec.response ? bit(TLV_ORIGIN) : REQUEST_EXTRAS;
  if ((f.seen & ~(allowedMask(spec) | bit(TLV_SIGNATURE) | extra)) !== 0 || (f.seen & required) !== required) return undefined;
  const m: OverlayMessage = {
    ttl: r.ttl, txid: r.txid, via: r.via, dest: r.dest, sender: f.sender!, ...spec.decode(f, r.code),
    signature: f.signature!, signatureAt: f.signatureAt,
  };
  if (f.cookie) m.cookie = f.cookie;
  if (f.origin) m.originObserved = f.origin;
  return m;
}

const REQUEST_EXTRAS = bit(TLV_COOKIE) | bit(TLV_PADDING) | bit(TLV_ORIGIN);

// ---- marshal -------------------------------------------------------------------------------------

/** One scratch buffer for every message; marshal copies the result out. Room for a little over the datagram
 *  limit, so encodedLength can tell by how much a message is over. */
const writer = new Writer(0x10000 + 64, true);

/** Signs what signature.ts says a signature covers; absent, the signature is zeros (it will not verify). */
export type OverlaySign = (input: Uint8Array) => Uint8Array;

function encode(m: OverlayMessage, sign?: OverlaySign): Writer {
  const w = writer.reset();
  if (!Number.isInteger(m.ttl) || m.ttl < 0 || m.ttl > 0xff) throw new RangeError(`bad TTL ${m.ttl}`);
  if (m.txid < 0n || m.txid >= 1n << 64n) throw new RangeError('transaction id must be a u64');
  const spec = SPECS[m.kind] as unknown as Spec<BodyKind>;
  w.bytes(OVERLAY_TOKEN);
  w.u8(OVERLAY_VERSION);
  w.u8(m.ttl);
  w.u8(m.kind === 'error' ? FLAG_RESPONSE | FLAG_ERROR : spec.response ? FLAG_RESPONSE : 0);
  w.u16(m.kind === 'error' ? m.method : spec.method);
  w.u64(m.txid);
  w.reserve(4); // length, filled in below
  if (m.via.length > OVERLAY_MAX_VIA) throw new RangeError(`${m.via.length} Via entries, at most ${OVERLAY_MAX_VIA}`);
  w.u8(m.via.length);
  for (const id of m.via) w.bytes(id, NODE_ID_BYTES);
  if (m.dest.length > OVERLAY_MAX_DESTINATIONS) throw new RangeError(`${m.dest.length} destinations, at most ${OVERLAY_MAX_DESTINATIONS}`);
  w.u8(m.dest.length);
  for (const d of m.dest) {
    w.u8(d.type === 'node' ? DEST_NODE : DEST_RESOURCE);
    w.bytes(d.id, NODE_ID_BYTES);
  }
  const bodyOffset = w.length;
  writeSender(w, m.sender);
  spec.encode(w, m);
  if (m.cookie) writeCookie(w, m.cookie);
  const short = (m.padTo ?? 0) - (w.length + SIGNATURE_TLV_LEN);
  if (short > 0) writePadding(w, Math.max(4, short));
  const sigAt = w.length;
  const sig = sign ? sign(signingInput(w.view(), bodyOffset, sigAt)) : ZERO_SIGNATURE;
  writeTlv(w, TLV_SIGNATURE, sig);
  if (m.originObserved) writeOrigin(w, m.originObserved);
  w.setU32(LENGTH_OFF, w.length);
  return w;
}

export const SIGNATURE_TLV_LEN = 4 + SIGNATURE_BYTES;
const ZERO_SIGNATURE = new Uint8Array(SIGNATURE_BYTES);

/** Bytes `m` would take on the wire (may exceed OVERLAY_MAX_DATAGRAM; marshal would then throw). */
export function encodedLength(m: OverlayMessage): number {
  return encode(m).length;
}

/** Serialize and sign; throws RangeError if `m` breaks a limit or exceeds OVERLAY_MAX_DATAGRAM. */
export function marshalOverlayMessage(m: OverlayMessage, sign?: OverlaySign): Buffer {
  const w = encode(m, sign);
  if (w.length > OVERLAY_MAX_DATAGRAM) throw new RangeError(`overlay message of ${w.length} bytes, at most ${OVERLAY_MAX_DATAGRAM}`);
  return Buffer.from(w.view());
}

/** For answers carrying contacts (sorted closest first): drop the farthest until the message fits a
 *  datagram. Returns `m` itself if it fits, a copy with fewer contacts, or undefined if nothing helps. */
export function trimToFit<M extends OverlayMessage>(m: M): M | undefined {
  if (encodedLength(m) <= OVERLAY_MAX_DATAGRAM) return m;
  if (m.kind !== 'find-node-answer' && m.kind !== 'fetch-answer') return undefined;
  const t = { ...m, contacts: m.contacts.slice() };
  while (t.contacts.length > 0) {
    t.contacts.pop();
    if (encodedLength(t) <= OVERLAY_MAX_DATAGRAM) return t;
  }
  return undefined;
}

// ---- routing -------------------------------------------------------------------------------------

/** True for answers (PONG, ..._ANSWER, ERROR): what the header's response flag says. */
export function isAnswer(m: OverlayMessage): boolean {
  return m.kind === 'error' || SPECS[m.kind].response;
}

/** Relay a datagram one hop without parsing its body: TTL - 1, our NodeID removed from the front of the
 *  destination list if it is there, and (requests only) appended to the Via list. Undefined if the
 *  datagram is malformed, its TTL is 0 (answer ERR_TTL_EXCEEDED if you like), the Via list is full or
 *  already holds us (a routing loop), or it would outgrow OVERLAY_MAX_DATAGRAM. */
export function forwardHop(b: Uint8Array, selfId: Uint8Array): Buffer | undefined {
  const r = parseRoute(b);
  if (!r || r.ttl === 0 || selfId.length !== NODE_ID_BYTES) return undefined;
  const addVia = (r.flags & FLAG_RESPONSE) === 0;
  const first = r.dest[0];
  const pop = first !== undefined && first.type === 'node' && bytesEqual(first.id, selfId);
  if (addVia && (r.via.length >= OVERLAY_MAX_VIA || r.via.some((v) => bytesEqual(v, selfId)))) return undefined;
  const len = b.length + (addVia ? NODE_ID_BYTES : 0) - (pop ? DEST_ENTRY_LEN : 0);
  if (len > OVERLAY_MAX_DATAGRAM) return undefined;
  const out = Buffer.allocUnsafe(len);
  out.set(b.subarray(0, r.destOffset), 0);
  out[TTL_OFF] = r.ttl - 1;
  setU32(out, LENGTH_OFF, len);
  let o = r.destOffset;
  if (addVia) {
    out[HEADER_LEN] = r.via.length + 1;
    out.set(selfId, o);
    o += NODE_ID_BYTES;
  }
  out[o++] = r.dest.length - (pop ? 1 : 0);
  out.set(b.subarray(r.destOffset + 1 + (pop ? DEST_ENTRY_LEN : 0)), o);
  return out;
}

/** The SENDER of a datagram parseRoute accepted, read from its TLVs without parsing the body (a relay's
 *  view: the body may be a message kind this version does not know). Views into `b`; undefined if absent
 *  or malformed. Check idMatchesKey before trusting it. */
export function routeSender(b: Uint8Array, r: Route): Sender | undefined {
  let off = r.bodyOffset;
  for (let n = 0; n < OVERLAY_MAX_TLVS && off + 4 <= b.length; n++) {
    const type = getU16(b, off);
    const end = off + 4 + getU16(b, off + 2);
    if (end > b.length) return undefined;
    if (type === TLV_SENDER) {
      if (end - off - 4 !== NODE_ID_BYTES + PUBLIC_KEY_BYTES + 8) return undefined;
      const k = off + 4 + NODE_ID_BYTES;
      return { nodeId: b.subarray(off + 4, k), publicKey: b.subarray(k, k + PUBLIC_KEY_BYTES) };
    }
    off = end;
  }
  return undefined;
}

/** forwardHop for a parsed message: the same rules, a new message (ids shared), or undefined. */
export function forwardMessage<M extends OverlayMessage>(m: M, selfId: Uint8Array): M | undefined {
  if (m.ttl === 0) return undefined;
  const addVia = !isAnswer(m);
  if (addVia && (m.via.length >= OVERLAY_MAX_VIA || m.via.some((v) => bytesEqual(v, selfId)))) return undefined;
  const first = m.dest[0];
  const pop = first !== undefined && first.type === 'node' && bytesEqual(first.id, selfId);
  const next = { ...m, ttl: m.ttl - 1, via: addVia ? [...m.via, selfId] : m.via, dest: pop ? m.dest.slice(1) : m.dest };
  return encodedLength(next) <= OVERLAY_MAX_DATAGRAM ? next : undefined;
}

/** Destination list for the answer to `req`: empty for a direct request, else back along the Via list
 *  (last relay first) to the originator. */
export function answerDestinations(req: OverlayHeader): Destination[] {
  if (req.via.length === 0) return [];
  const dest: Destination[] = [];
  for (let i = req.via.length - 1; i >= 0; i--) dest.push({ type: 'node', id: req.via[i]! });
  dest.push({ type: 'node', id: req.sender.nodeId });
  return dest;
}

/** A routed message as the first forwarder passes it on: ORIGIN (where it came from) appended. Undefined if
 *  it already has one, or would outgrow a datagram. */
export function withOrigin(b: Uint8Array, from: OverlayEndpoint): Buffer | undefined {
  const m = parseOverlayMessage(b);
  if (!m || m.originObserved) return undefined;
  const extra = 4 + 1 + from.address.length + 2;
  if (b.length + extra > OVERLAY_MAX_DATAGRAM) return undefined;
  const w = writer.reset();
  w.bytes(b);
  writeOrigin(w, from);
  w.setU32(LENGTH_OFF, w.length);
  return Buffer.from(w.view());
}

// ---- signatures ----------------------------------------------------------------------------------

/** True if a parsed message's SIGNATURE is its sender's over what signature.ts says. `b` is the datagram
 *  it was parsed from. Costs one Ed25519 verification: check everything cheaper first. */
export function verifyOverlayMessage(b: Uint8Array, m: OverlayMessage,
  verify: (publicKey: Uint8Array, input: Uint8Array, signature: Uint8Array) => boolean): boolean {
  if (!m.signature || m.signatureAt === undefined) return false;
  const bodyOffset = HEADER_LEN + 2 + m.via.length * NODE_ID_BYTES + m.dest.length * DEST_ENTRY_LEN;
  return verify(m.sender.publicKey, signingInput(b, bodyOffset, m.signatureAt), m.signature);
}

// ---- identity and endpoints ------------------------------------------------------------------------

/** True if the claimed NodeID is the hash of the claimed key (agent/idloc/addresses.ts). This is what makes
 *  a sender or contact safe to put in the routing table; it does not prove the key holder sent it. */
export function idMatchesKey(s: Sender | OverlayContact): boolean {
  return s.publicKey.length === PUBLIC_KEY_BYTES && bytesEqual(nodeIdFromPublicKey(s.publicKey), s.nodeId);
}

/** As the sockets take it ("1.2.3.4" / RFC 5952 IPv6 text). */
export function toSocketEndpoint(e: OverlayEndpoint): Endpoint {
  const a = e.address;
  return { address: a.length === 4 ? formatIpv4(getU32(a, 0)) : formatIpv6(a), port: e.port };
}

/** From a socket's view; IPv4-mapped IPv6 (dual-stack sockets) becomes IPv4. Undefined if unparseable. */
export function fromSocketEndpoint(e: Endpoint): OverlayEndpoint | undefined {
  if (!Number.isInteger(e.port) || e.port < 0 || e.port > 0xffff) return undefined;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(e.address);
  const v4 = parseIpv4(mapped ? mapped[1]! : e.address);
  if (v4 !== undefined) {
    const address = new Uint8Array(4);
    setU32(address, 0, v4);
    return { address, port: e.port };
  }
  const v6 = parseIpv6(e.address);
  return v6 ? { address: v6, port: e.port } : undefined;
}
