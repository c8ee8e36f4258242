// Bodies of the overlay's messages: the TLVs each message carries, their types, and one encode/decode pair
// per message. The datagram around them (header, Via and destination lists, TLV framing, routing helpers)
// is codec.ts, which is the module to import; this file is split off only to keep each under ~400 lines.
//
// TLV registry (type u16, length u16, value; network byte order). The high bit 0x8000 marks a type as
// critical (RELOAD's idea): a receiver that does not know a critical type rejects the message, one that
// does not know a non-critical type skips it. Every type below is known to every version-1 parser.
//
//   type    name      value                                                   carried by
//   0x0001  SENDER    NodeID (20) | Ed25519 public key (32)                   every message, exactly once
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
//
// A known type in a message that does not carry it, a second copy of a single-valued TLV, a missing
// required TLV or a value of the wrong size makes the message invalid: there is one reading of every
// valid message. Parsed ids, keys and blobs are views into the datagram: copy what you keep.

import {
  NODE_ID_BYTES, OVERLAY_MAX_CONTACTS, OVERLAY_MAX_ENDPOINTS, OVERLAY_MAX_REASON_BYTES, OVERLAY_MAX_RECORDS,
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
/** Unknown types with this bit set invalidate the message; without it they are skipped. */
export const TLV_CRITICAL = 0x8000;

export const PUBLIC_KEY_BYTES = 32;

/** Message codes. A request and its answer share the code; the header's response flag tells them apart,
 *  and an error answer (response + error flags) keeps the code of the request it answers. */
export const METHOD_PING = 1;
export const METHOD_FIND_NODE = 2;
export const METHOD_FETCH = 3;
export const METHOD_STORE = 4;
export const METHOD_ATTACH = 5;
export const METHOD_LEAVE = 6;

/** Error codes, numbered as RELOAD's (RFC 6940 section 14.9) where one fits. */
export const ERR_FORBIDDEN = 2;
export const ERR_NOT_FOUND = 3;
export const ERR_REQUEST_TIMEOUT = 4;
export const ERR_DATA_TOO_LARGE = 8;
export const ERR_DATA_TOO_OLD = 9;
export const ERR_TTL_EXCEEDED = 10;
export const ERR_MESSAGE_TOO_LARGE = 11;
export const ERR_UNKNOWN_KIND = 12;
export const ERR_UNKNOWN_EXTENSION = 13;
export const ERR_INVALID_MESSAGE = 20;

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

/** Who sent a message (the originator, not the last hop). Check nodeId = hash(publicKey) before trusting it. */
export interface Sender {
  nodeId: Uint8Array;
  publicKey: Uint8Array;
}

export type Body =
  | { kind: 'ping' }
  | { kind: 'pong'; observed?: OverlayEndpoint }
  | { kind: 'find-node'; target: Uint8Array }
  | { kind: 'find-node-answer'; contacts: OverlayContact[] }
  | { kind: 'fetch'; resource: Uint8Array; recordKind: number }
  /** Records if the node holds some, and/or contacts closer to the resource (Kademlia's FIND_VALUE). */
  | { kind: 'fetch-answer'; records: Uint8Array[]; contacts: OverlayContact[] }
  | { kind: 'store'; resource: Uint8Array; recordKind: number; records: Uint8Array[] }
  /** One status per stored record, in order (0 = stored; the other codes are the store's). */
  | { kind: 'store-answer'; statuses: number[] }
  | { kind: 'attach'; blob: Uint8Array }
  | { kind: 'attach-answer'; blob: Uint8Array }
  | { kind: 'leave' }
  | { kind: 'leave-answer' }
  /** `method` is the code of the request this answers (any u16: it may be one we do not know). */
  | { kind: 'error'; method: number; code: number; reason: string };

export type BodyKind = Body['kind'];

// ---- byte writer ------------------------------------------------------------------------------

/** Appends into one reused scratch buffer; marshal copies the result out. Throws RangeError on caller bugs
 *  (wrong sizes, too many entries): the sending side builds these, the network never does. */
export class Writer {
  readonly buf = new Uint8Array(0x10000 + 64);
  off = 0;
  private room(n: number): void {
    if (this.off + n > this.buf.length) throw new RangeError('overlay message too large');
  }
  u8(v: number): void {
    this.room(1);
    this.buf[this.off++] = v;
  }
  u16(v: number): void {
    if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw new RangeError(`not a u16: ${v}`);
    this.room(2);
    this.buf[this.off++] = v >>> 8;
    this.buf[this.off++] = v & 0xff;
  }
  bytes(b: Uint8Array, exactLen?: number): void {
    if (exactLen !== undefined && b.length !== exactLen) throw new RangeError(`expected ${exactLen} bytes, got ${b.length}`);
    this.room(b.length);
    this.buf.set(b, this.off);
    this.off += b.length;
  }
  /** Start a TLV; returns where its length goes, for tlvEnd. */
  tlvStart(type: number): number {
    this.u16(type);
    this.u16(0);
    return this.off - 2;
  }
  tlvEnd(lenAt: number): void {
    const n = this.off - lenAt - 2;
    if (n > 0xffff) throw new RangeError('TLV value over 65535 bytes');
    this.buf[lenAt] = n >>> 8;
    this.buf[lenAt + 1] = n & 0xff;
  }
  tlv(type: number, value: Uint8Array): void {
    const at = this.tlvStart(type);
    this.bytes(value);
    this.tlvEnd(at);
  }
}

function count(n: number, max: number, what: string): number {
  if (n > max) throw new RangeError(`${n} ${what}, at most ${max}`);
  return n;
}

function writeEndpoint(w: Writer, e: OverlayEndpoint): void {
  if (e.address.length !== 4 && e.address.length !== 16) throw new RangeError('endpoint address must be 4 or 16 bytes');
  w.u8(e.address.length === 4 ? 4 : 6);
  w.bytes(e.address);
  w.u16(e.port);
}

function writeContacts(w: Writer, contacts: OverlayContact[]): void {
  const at = w.tlvStart(TLV_CONTACTS);
  w.u8(count(contacts.length, OVERLAY_MAX_CONTACTS, 'contacts'));
  for (const c of contacts) {
    w.bytes(c.nodeId, NODE_ID_BYTES);
    w.bytes(c.publicKey, PUBLIC_KEY_BYTES);
    w.u8(count(c.endpoints.length, OVERLAY_MAX_ENDPOINTS, 'endpoints'));
    for (const e of c.endpoints) writeEndpoint(w, e);
  }
  w.tlvEnd(at);
}

function writeResource(w: Writer, resource: Uint8Array, recordKind: number): void {
  const at = w.tlvStart(TLV_RESOURCE);
  w.bytes(resource, NODE_ID_BYTES);
  w.u16(recordKind);
  w.tlvEnd(at);
}

function writeRecords(w: Writer, records: Uint8Array[], min: number): void {
  if (records.length < min) throw new RangeError(`at least ${min} record(s) needed`);
  count(records.length, OVERLAY_MAX_RECORDS, 'records');
  for (const r of records) w.tlv(TLV_RECORD, r);
}

export function writeSender(w: Writer, s: Sender): void {
  const at = w.tlvStart(TLV_SENDER);
  w.bytes(s.nodeId, NODE_ID_BYTES);
  w.bytes(s.publicKey, PUBLIC_KEY_BYTES);
  w.tlvEnd(at);
}

const utf8 = new TextEncoder();
// Not fatal: bad UTF-8 becomes U+FFFD, never an exception; ignoreBOM keeps a leading U+FEFF in the text.
const utf8Decoder = new TextDecoder('utf-8', { ignoreBOM: true });

// ---- TLV fields of one message, as parsed -------------------------------------------------------

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
}

export function emptyFields(): Fields {
  return {
    seen: 0, sender: undefined, target: undefined, contacts: undefined, resource: undefined, recordKind: 0,
    records: undefined, statuses: undefined, blob: undefined, errorCode: 0, reason: '', observed: undefined,
  };
}

const bit = (type: number) => 1 << type;

/** Endpoint at b[off..], into `out`; returns the offset after it, or -1. */
function readEndpoint(b: Uint8Array, off: number, end: number, out: OverlayEndpoint[]): number {
  if (off >= end) return -1;
  const family = b[off]!;
  const alen = family === 4 ? 4 : family === 6 ? 16 : 0;
  if (alen === 0 || off + 1 + alen + 2 > end) return -1;
  const p = off + 1 + alen;
  out.push({ address: b.subarray(off + 1, p), port: (b[p]! << 8) | b[p + 1]! });
  return p + 2;
}

function readContacts(b: Uint8Array, off: number, end: number): OverlayContact[] | undefined {
  if (off >= end) return undefined;
  const n = b[off++]!;
  if (n > OVERLAY_MAX_CONTACTS) return undefined;
  const contacts: OverlayContact[] = [];
  for (let i = 0; i < n; i++) {
    if (off + NODE_ID_BYTES + PUBLIC_KEY_BYTES + 1 > end) return undefined;
    const nodeId = b.subarray(off, off + NODE_ID_BYTES);
    const publicKey = b.subarray(off + NODE_ID_BYTES, off + NODE_ID_BYTES + PUBLIC_KEY_BYTES);
    off += NODE_ID_BYTES + PUBLIC_KEY_BYTES;
    const m = b[off++]!;
    if (m > OVERLAY_MAX_ENDPOINTS) return undefined;
    const endpoints: OverlayEndpoint[] = [];
    for (let j = 0; j < m; j++) {
      off = readEndpoint(b, off, end, endpoints);
      if (off < 0) return undefined;
    }
    contacts.push({ nodeId, publicKey, endpoints });
  }
  return off === end ? contacts : undefined;
}

/** Take one TLV (value at b[off..end)) into `f`. False if it makes the message invalid. */
export function readTlv(f: Fields, type: number, b: Uint8Array, off: number, end: number): boolean {
  if (type < TLV_SENDER || type > TLV_OBSERVED) return (type & TLV_CRITICAL) === 0; // unknown: skip unless critical
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
    case TLV_SENDER:
      if (len !== NODE_ID_BYTES + PUBLIC_KEY_BYTES) return false;
      f.sender = { nodeId: b.subarray(off, off + NODE_ID_BYTES), publicKey: b.subarray(off + NODE_ID_BYTES, end) };
      return true;
    case TLV_TARGET:
      if (len !== NODE_ID_BYTES) return false;
      f.target = b.subarray(off, end);
      return true;
    case TLV_CONTACTS:
      f.contacts = readContacts(b, off, end);
      return f.contacts !== undefined;
    case TLV_RESOURCE:
      if (len !== NODE_ID_BYTES + 2) return false;
      f.resource = b.subarray(off, off + NODE_ID_BYTES);
      f.recordKind = (b[end - 2]! << 8) | b[end - 1]!;
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
      f.errorCode = (b[off]! << 8) | b[off + 1]!;
      f.reason = utf8Decoder.decode(b.subarray(off + 2, end));
      return true;
    case TLV_OBSERVED: {
      const out: OverlayEndpoint[] = [];
      if (readEndpoint(b, off, end, out) !== end) return false;
      f.observed = out[0];
      return true;
    }
    default: // TLV_RECORD, handled above
      return false;
  }
}

// ---- one encode/decode pair per message ------------------------------------------------------------

export interface Spec<K extends BodyKind> {
  method: number;
  response: boolean;
  /** TLV types that must be present / may be present (besides SENDER, which every message has). */
  required: number;
  optional: number;
  encode(w: Writer, m: Extract<Body, { kind: K }>): void;
  /** `method` is the header's code (only ERROR, which answers any code, needs it). */
  decode(f: Fields, method: number): Extract<Body, { kind: K }>;
}

type Specs = { [K in BodyKind]: Spec<K> };

const none = () => undefined;

export const SPECS: Specs = {
  'ping': { method: METHOD_PING, response: false, required: 0, optional: 0, encode: none, decode: () => ({ kind: 'ping' }) },
  'pong': {
    method: METHOD_PING, response: true, required: 0, optional: bit(TLV_OBSERVED),
    encode: (w, m) => {
      if (!m.observed) return;
      const at = w.tlvStart(TLV_OBSERVED);
      writeEndpoint(w, m.observed);
      w.tlvEnd(at);
    },
    decode: (f) => (f.observed ? { kind: 'pong', observed: f.observed } : { kind: 'pong' }),
  },
  'find-node': {
    method: METHOD_FIND_NODE, response: false, required: bit(TLV_TARGET), optional: 0,
    encode: (w, m) => { const at = w.tlvStart(TLV_TARGET); w.bytes(m.target, NODE_ID_BYTES); w.tlvEnd(at); },
    decode: (f) => ({ kind: 'find-node', target: f.target! }),
  },
  'find-node-answer': {
    method: METHOD_FIND_NODE, response: true, required: bit(TLV_CONTACTS), optional: 0,
    encode: (w, m) => writeContacts(w, m.contacts),
    decode: (f) => ({ kind: 'find-node-answer', contacts: f.contacts! }),
  },
  'fetch': {
    method: METHOD_FETCH, response: false, required: bit(TLV_RESOURCE), optional: 0,
    encode: (w, m) => writeResource(w, m.resource, m.recordKind),
    decode: (f) => ({ kind: 'fetch', resource: f.resource!, recordKind: f.recordKind }),
  },
  'fetch-answer': {
    method: METHOD_FETCH, response: true, required: 0, optional: bit(TLV_RECORD) | bit(TLV_CONTACTS),
    encode: (w, m) => {
      writeRecords(w, m.records, 0);
      if (m.contacts.length > 0) writeContacts(w, m.contacts); // canonical: no empty CONTACTS
    },
    decode: (f) => ({ kind: 'fetch-answer', records: f.records ?? [], contacts: f.contacts ?? [] }),
  },
  'store': {
    method: METHOD_STORE, response: false, required: bit(TLV_RESOURCE) | bit(TLV_RECORD), optional: 0,
    encode: (w, m) => { writeResource(w, m.resource, m.recordKind); writeRecords(w, m.records, 1); },
    decode: (f) => ({ kind: 'store', resource: f.resource!, recordKind: f.recordKind, records: f.records! }),
  },
  'store-answer': {
    method: METHOD_STORE, response: true, required: bit(TLV_STATUS), optional: 0,
    encode: (w, m) => {
      if (m.statuses.length < 1) throw new RangeError('a STORE answer has one status per record');
      count(m.statuses.length, OVERLAY_MAX_RECORDS, 'statuses');
      const at = w.tlvStart(TLV_STATUS);
      for (const s of m.statuses) {
        if (!Number.isInteger(s) || s < 0 || s > 0xff) throw new RangeError(`not a u8 status: ${s}`);
        w.u8(s);
      }
      w.tlvEnd(at);
    },
    decode: (f) => ({ kind: 'store-answer', statuses: f.statuses! }),
  },
  'attach': {
    method: METHOD_ATTACH, response: false, required: bit(TLV_BLOB), optional: 0,
    encode: (w, m) => w.tlv(TLV_BLOB, m.blob),
    decode: (f) => ({ kind: 'attach', blob: f.blob! }),
  },
  'attach-answer': {
    method: METHOD_ATTACH, response: true, required: bit(TLV_BLOB), optional: 0,
    encode: (w, m) => w.tlv(TLV_BLOB, m.blob),
    decode: (f) => ({ kind: 'attach-answer', blob: f.blob! }),
  },
  'leave': { method: METHOD_LEAVE, response: false, required: 0, optional: 0, encode: none, decode: () => ({ kind: 'leave' }) },
  'leave-answer': { method: METHOD_LEAVE, response: true, required: 0, optional: 0, encode: none, decode: () => ({ kind: 'leave-answer' }) },
  'error': {
    method: -1 /* any: an ERROR carries the code of the request it answers */, response: true, required: bit(TLV_ERROR), optional: 0,
    encode: (w, m) => {
      const reason = utf8.encode(m.reason);
      count(reason.length, OVERLAY_MAX_REASON_BYTES, 'reason bytes');
      const at = w.tlvStart(TLV_ERROR);
      w.u16(m.code);
      w.bytes(reason);
      w.tlvEnd(at);
    },
    decode: (f, method) => ({ kind: 'error', method, code: f.errorCode, reason: f.reason }),
  },
};

/** Kind of a non-error message by (code, response flag); undefined for codes we do not know. */
export function kindOf(method: number, response: boolean): Exclude<BodyKind, 'error'> | undefined {
  switch (method) {
    case METHOD_PING: return response ? 'pong' : 'ping';
    case METHOD_FIND_NODE: return response ? 'find-node-answer' : 'find-node';
    case METHOD_FETCH: return response ? 'fetch-answer' : 'fetch';
    case METHOD_STORE: return response ? 'store-answer' : 'store';
    case METHOD_ATTACH: return response ? 'attach-answer' : 'attach';
    case METHOD_LEAVE: return response ? 'leave-answer' : 'leave';
    default: return undefined;
  }
}

/** Known-TLV mask the scan may report for `kind`: everything else known makes the message invalid. */
export function allowedMask(spec: Spec<BodyKind>): number {
  return spec.required | spec.optional | bit(TLV_SENDER);
}
