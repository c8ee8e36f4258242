// The TLVs of overlay messages (codec.ts frames them, messages.ts says which message carries which):
// their registry, and one writer and one reader per value format.
//
// TLV: type u16, length u16, value; network byte order. The high bit 0x8000 marks a type as critical
// (RELOAD's idea): a receiver that does not know a critical type rejects the message, one that does not
// know a non-critical type skips it. Every type below is known to every version-1 parser.
//
//   type    name      value                                                   carried by
//   0x0001  SENDER    NodeID (20) | Ed25519 public key (32) | puzzle nonce u64  every message, exactly once
//   0x0002  TARGET    NodeID (20)                                             FIND_NODE
//   0x0003  CONTACTS  n (u8) | n x contact                                    FIND_NODE answer; FETCH answer (opt.)
//                       contact  = NodeID (20) | public key (32) | m (u8) | m x endpoint
//                       endpoint = family (u8: 4 or 6) | address (4 or 16) | port (u16)
//   0x0004  RESOURCE  resource id (20) | record kind (u16)                    FETCH, STORE
//   0x0005  RECORD    one signed record, opaque here (records.ts owns it)     STORE, FETCH answer; repeated, in order
//   0x0006  STATUS    one status (u8) per RECORD of the STORE, in order       STORE answer
//   0x0007  BLOB      signed ATTACH blob (ICE ufrag/pwd, candidates), opaque  ATTACH, ATTACH answer
//   0x0008  ERROR     code (u16) | reason (UTF-8, <= OVERLAY_MAX_REASON_BYTES) error answers
//   0x0009  OBSERVED  endpoint: where the PING came from, as the responder saw it  PONG (optional)
//   0x000A  COOKIE    16 bytes the receiver minted for our endpoint (cookies.ts)  requests (optional);
//                                                                            the COOKIE_REQUIRED error
//   0x000B  PADDING   zeros: a request without a cookie is padded so the       requests (optional)
//                     answer that asks for one is not larger than it
//   0x000C  SIGNATURE Ed25519 signature (64) by SENDER's key (signature.ts)   every message, exactly once,
//                                                                            after every TLV it covers
//   0x000D  ORIGIN    endpoint: where the first forwarder received a routed    routed messages, after
//                     message from, added by it (unsigned: routing history)   SIGNATURE (optional)
//
// A second copy of a single-valued TLV or a value of the wrong size makes the message invalid: there is
// one reading of every valid message. Parsed ids, keys and blobs are views into the datagram: copy what
// you keep. Writers throw RangeError on caller bugs (wrong sizes, too many entries): the sending side
// builds these, the network never does.

import { Reader, getU16, getU32, type Writer } from '../base/binary.js';
import {
  NODE_ID_BYTES, OVERLAY_COOKIE_BYTES, OVERLAY_MAX_CONTACTS, OVERLAY_MAX_ENDPOINTS, OVERLAY_MAX_REASON_BYTES, OVERLAY_MAX_RECORDS,
} from '../base/constants.js';

export const TLV_SENDER = 0x0001;
export const TLV_TARGET = 0x0002;
export const TLV_CONTACTS = 0x0003;
export const TLV_RESOURCE = 0x0004;
export const TLV_RECORD = 0x0005;
export const TLV_STATUS = 0x0006;
export const TLV_BLOB = 0x0007;
export const TLV_ERROR = 0x0008;
export const TLV_OBSERVED = 0x0009;
export const TLV_COOKIE = 0x000a;
export const TLV_PADDING = 0x000b;
export const TLV_SIGNATURE = 0x000c;
export const TLV_ORIGIN = 0x000d;
/** Unknown types with this bit set invalidate the message; without it they are skipped. */
export const TLV_CRITICAL = 0x8000;

export const PUBLIC_KEY_BYTES = 32;
export const SIGNATURE_BYTES = 64;
const SENDER_BYTES = NODE_ID_BYTES + PUBLIC_KEY_BYTES + 8;

/** An underlay address, as bytes: `address` is 4 (IPv4) or 16 (IPv6) bytes. */
export interface OverlayEndpoint {
  address: Uint8Array;
  port: number;
}

/** A node as FIND_NODE/FETCH answers name it. Check nodeId = hash(publicKey) before using it. */
export interface OverlayContact {
  nodeId: Uint8Array;
  publicKey: Uint8Array;
  endpoints: OverlayEndpoint[];
}

/** Who sent a message (the originator, not the last hop). Check nodeId = hash(publicKey) before trusting it,
 *  and the message's signature before believing it sent anything. */
export interface Sender {
  nodeId: Uint8Array;
  publicKey: Uint8Array;
  /** Its NodeID puzzle solution (puzzle.ts); 0 when written if absent. */
  puzzleNonce?: bigint;
}

// ---- writing ----------------------------------------------------------------------------------

/** Start a TLV; returns where its length goes, for tlvEnd. */
export function tlvStart(w: Writer, type: number): number {
  w.u16(type);
  return w.reserve(2);
}

export function tlvEnd(w: Writer, lenAt: number): void {
  const n = w.length - lenAt - 2;
  if (n > 0xffff) throw new RangeError('TLV value over 65535 bytes');
  w.setU16(lenAt, n);
}

export function writeTlv(w: Writer, type: number, value: Uint8Array): void {
  const at = tlvStart(w, type);
  w.bytes(value);
  tlvEnd(w, at);
}

export function count(n: number, max: number, what: string): number {
  if (n > max) throw new RangeError(`${n} ${what}, at most ${max}`);
  return n;
}

export function writeEndpoint(w: Writer, e: OverlayEndpoint): void {
  if (e.address.length !== 4 && e.address.length !== 16) throw new RangeError('endpoint address must be 4 or 16 bytes');
  w.u8(e.address.length === 4 ? 4 : 6);
  w.bytes(e.address);
  w.u16(e.port);
}

export function writeContacts(w: Writer, contacts: OverlayContact[]): void {
  const at = tlvStart(w, TLV_CONTACTS);
  w.u8(count(contacts.length, OVERLAY_MAX_CONTACTS, 'contacts'));
  for (const c of contacts) {
    w.bytes(c.nodeId, NODE_ID_BYTES);
    w.bytes(c.publicKey, PUBLIC_KEY_BYTES);
    w.u8(count(c.endpoints.length, OVERLAY_MAX_ENDPOINTS, 'endpoints'));
    for (const e of c.endpoints) writeEndpoint(w, e);
  }
  tlvEnd(w, at);
}

export function writeResource(w: Writer, resource: Uint8Array, recordKind: number): void {
  const at = tlvStart(w, TLV_RESOURCE);
  w.bytes(resource, NODE_ID_BYTES);
  w.u16(recordKind);
  tlvEnd(w, at);
}

export function writeRecords(w: Writer, records: Uint8Array[], min: number): void {
  if (records.length < min) throw new RangeError(`at least ${min} record(s) needed`);
  count(records.length, OVERLAY_MAX_RECORDS, 'records');
  for (const r of records) writeTlv(w, TLV_RECORD, r);
}

export function writeSender(w: Writer, s: Sender): void {
  const at = tlvStart(w, TLV_SENDER);
  w.bytes(s.nodeId, NODE_ID_BYTES);
  w.bytes(s.publicKey, PUBLIC_KEY_BYTES);
  w.u64(s.puzzleNonce ?? 0n);
  tlvEnd(w, at);
}

export function writeCookie(w: Writer, cookie: Uint8Array): void {
  if (cookie.length !== OVERLAY_COOKIE_BYTES) throw new RangeError(`a cookie is ${OVERLAY_COOKIE_BYTES} bytes`);
  writeTlv(w, TLV_COOKIE, cookie);
}

/** A PADDING TLV of exactly `total` bytes (4 or more: the TLV header counts). */
export function writePadding(w: Writer, total: number): void {
  if (total < 4) throw new RangeError('a PADDING TLV is at least 4 bytes');
  const at = tlvStart(w, TLV_PADDING);
  for (let i = 4; i < total; i++) w.u8(0);
  tlvEnd(w, at);
}

export function writeOrigin(w: Writer, e: OverlayEndpoint): void {
  const at = tlvStart(w, TLV_ORIGIN);
  writeEndpoint(w, e);
  tlvEnd(w, at);
}

export function writeStatuses(w: Writer, statuses: number[]): void {
  if (statuses.length < 1) throw new RangeError('a STORE answer has one status per record');
  count(statuses.length, OVERLAY_MAX_RECORDS, 'statuses');
  const at = tlvStart(w, TLV_STATUS);
  for (const s of statuses) {
    if (!Number.isInteger(s) || s < 0 || s > 0xff) throw new RangeError(`not a u8 status: ${s}`);
    w.u8(s);
  }
  tlvEnd(w, at);
}

export function writeError(w: Writer, code: number, reason: string): void {
  const bytes = utf8.encode(reason);
  count(bytes.length, OVERLAY_MAX_REASON_BYTES, 'reason bytes');
  const at = tlvStart(w, TLV_ERROR);
  w.u16(code);
  w.bytes(bytes);
  tlvEnd(w, at);
}

const utf8 = new TextEncoder();
// Not fatal: bad UTF-8 becomes U+FFFD, never an exception; ignoreBOM keeps a leading U+FEFF in the text.
const utf8Decoder = new TextDecoder('utf-8', { ignoreBOM: true });

// ---- reading: the TLV fields of one message -------------------------------------------------------

/** What the TLV scan found; `seen` has bit (1 << type) for every known type present. */
export interface Fields {
  seen: number;
  sender: Sender | undefined;
  target: Uint8Array | undefined;
  contacts: OverlayContact[] | undefined;
  resource: Uint8Array | undefined;
  recordKind: number;
  records: Uint8Array[] | undefined;
  statuses: number[] | undefined;
  blob: Uint8Array | undefined;
  errorCode: number;
  reason: string;
  observed: OverlayEndpoint | undefined;
  cookie: Uint8Array | undefined;
  signature: Uint8Array | undefined;
  /** Offset of the SIGNATURE TLV's type field: what the signature covers ends there. */
  signatureAt: number;
  origin: OverlayEndpoint | undefined;
}

export function emptyFields(): Fields {
  return {
    seen: 0, sender: undefined, target: undefined, contacts: undefined, resource: undefined, recordKind: 0,
    records: undefined, statuses: undefined, blob: undefined, errorCode: 0, reason: '', observed: undefined,
    cookie: undefined, signature: undefined, signatureAt: 0, origin: undefined,
  };
}

/** The `seen` bit of a known TLV type. */
export const bit = (type: number) => 1 << type;

/** One Reader for every TLV value (parsing is synchronous). */
const reader = new Reader(new Uint8Array(0));

/** An endpoint, or undefined if its family is unknown or it runs past the end (then `r.bad`). */
function readEndpoint(r: Reader): OverlayEndpoint | undefined {
  const family = r.u8();
  const alen = family === 4 ? 4 : family === 6 ? 16 : 0;
  if (alen === 0 || r.remaining < alen + 2) return undefined;
  return { address: r.view(alen), port: r.u16() };
}

function readContacts(r: Reader): OverlayContact[] | undefined {
  const n = r.u8();
  if (r.bad || n > OVERLAY_MAX_CONTACTS) return undefined;
  const contacts: OverlayContact[] = [];
  for (let i = 0; i < n; i++) {
    if (r.remaining < NODE_ID_BYTES + PUBLIC_KEY_BYTES + 1) return undefined;
    const nodeId = r.view(NODE_ID_BYTES);
    const publicKey = r.view(PUBLIC_KEY_BYTES);
    const m = r.u8();
    if (m > OVERLAY_MAX_ENDPOINTS) return undefined;
    const endpoints: OverlayEndpoint[] = [];
    for (let j = 0; j < m; j++) {
      const e = readEndpoint(r);
      if (!e) return undefined;
      endpoints.push(e);
    }
    contacts.push({ nodeId, publicKey, endpoints });
  }
  return r.done() ? contacts : undefined;
}

/** Take one TLV (value at b[off..end)) into `f`. False if it makes the message invalid. */
export function readTlv(f: Fields, type: number, b: Uint8Array, off: number, end: number): boolean {
  // after SIGNATURE only the forwarders' ORIGIN may come (nothing unknown either); ORIGIN only after it
  if ((f.signature !== undefined) !== (type === TLV_ORIGIN)) return false;
  if (type < TLV_SENDER || type > TLV_ORIGIN) return (type & TLV_CRITICAL) === 0; // unknown: skip unless critical
  const len = end - off;
  if (type === TLV_RECORD) {
    if (f.records === undefined) f.records = [];
    if (f.records.length >= OVERLAY_MAX_RECORDS) return false;
    f.records.push(b.subarray(off, end));
    f.seen |= bit(type);
    return true;
  }
  if (f.seen & bit(type)) return false; // a second copy of a single-valued TLV
  f.seen |= bit(type);
  switch (type) {
    case TLV_SENDER: {
      if (len !== SENDER_BYTES) return false;
      const k = off + NODE_ID_BYTES;
      const n = k + PUBLIC_KEY_BYTES;
      const puzzleNonce = (BigInt(getU32(b, n)) << 32n) | BigInt(getU32(b, n + 4));
      f.sender = { nodeId: b.subarray(off, k), publicKey: b.subarray(k, n), puzzleNonce };
      return true;
    }
    case TLV_TARGET:
      if (len !== NODE_ID_BYTES) return false;
      f.target = b.subarray(off, end);
      return true;
    case TLV_CONTACTS:
      f.contacts = readContacts(reader.reset(b, off, end));
      return f.contacts !== undefined;
    case TLV_RESOURCE:
      if (len !== NODE_ID_BYTES + 2) return false;
      f.resource = b.subarray(off, off + NODE_ID_BYTES);
      f.recordKind = getU16(b, end - 2);
      return true;
    case TLV_STATUS:
      if (len < 1 || len > OVERLAY_MAX_RECORDS) return false;
      f.statuses = Array.from(b.subarray(off, end));
      return true;
    case TLV_BLOB:
      f.blob = b.subarray(off, end);
      return true;
    case TLV_ERROR:
      if (len < 2 || len - 2 > OVERLAY_MAX_REASON_BYTES) return false;
      f.errorCode = getU16(b, off);
      f.reason = utf8Decoder.decode(b.subarray(off + 2, end));
      return true;
    case TLV_OBSERVED:
      f.observed = readEndpoint(reader.reset(b, off, end));
      return f.observed !== undefined && reader.done();
    case TLV_COOKIE:
      if (len !== OVERLAY_COOKIE_BYTES) return false;
      f.cookie = b.subarray(off, end);
      return true;
    case TLV_PADDING:
      for (let i = off; i < end; i++) if (b[i] !== 0) return false;
      return true;
    case TLV_SIGNATURE:
      if (len !== SIGNATURE_BYTES) return false;
      f.signature = b.subarray(off, end);
      f.signatureAt = off - 4;
      return true;
    case TLV_ORIGIN:
      f.origin = readEndpoint(reader.reset(b, off, end));
      return f.origin !== undefined && reader.done();
    default: // TLV_RECORD, handled above
      return false;
  }
}
