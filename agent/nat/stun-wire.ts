// The STUN codec (RFC 8489): every STUN message the agent reads or writes goes through here. On top of it,
// stun-binding.ts reads and builds Binding messages (the STUN endpoint, ICE checks, netcheck) and
// turn-wire.ts TURN's methods, attributes and ChannelData (the TURN client).
//
// Header (section 5), all numbers big-endian:
//    0                   1                   2                   3
//    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |0 0|M M M M M|C|M M M|C|M M M M|        message length         |
//   |   |1 1 9 8 7|1|6 5 4|0|3 2 1 0|  (bytes after the header,     |
//   |   |1 0      | |     | |       |   a multiple of 4)            |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |                   magic cookie 0x2112A442                     |
//   +---------------------------------------------------------------+
//   |              transaction id (96 bits, random per request)     |
//   +---------------------------------------------------------------+
//   12 method bits M with the class bits C1 C0 between them: 0 request, 1 indication, 2 success, 3 error.
//   Binding is method 1 (a success is 0x0101). The first byte is 0-3: how demux.ts classes a datagram 'stun'.
//
// Attributes (section 14) follow the header, each one:
//   | type (16) | length (16, of the value, unpadded) | value, zero-padded to a multiple of 4 bytes |
//   Types below 0x8000 are comprehension-required. Of a repeated attribute the first counts.
//   XOR-MAPPED-ADDRESS 0x0020 (and TURN's XOR-PEER-ADDRESS 0x0012, XOR-RELAYED-ADDRESS 0x0016):
//     | reserved 0 | family 1 = IPv4, 2 = IPv6 | port XOR 0x2112 | address XOR cookie (4 bytes) or cookie ‖ txid (16) |
//   MAPPED-ADDRESS 0x0001, RFC 5780's RESPONSE-ORIGIN 0x802B and OTHER-ADDRESS 0x802C: the same, not XOR'd.
//   ERROR-CODE 0x0009: | 0 | 0 | 00000 class (3 bits, the hundreds) | number (0-99) | UTF-8 reason |
//   UNKNOWN-ATTRIBUTES 0x000A: the u16 types a 420 answer refuses.
//   USERNAME 0x0006 (at most 513 bytes), SOFTWARE 0x8022, REALM 0x0014, NONCE 0x0015: UTF-8 text.
//   MESSAGE-INTEGRITY 0x0008: HMAC-SHA1 (20 bytes) over the message up to it, with the header's length
//     counting up to and including it; the key is a short-term password (ICE: the answerer's) or TURN's
//     long-term MD5(username ":" realm ":" password). Attributes after it other than FINGERPRINT are ignored.
//   FINGERPRINT 0x8028: CRC-32 of the message up to it (the length counting it) XOR 0x5354554E; always last.
//   ICE (RFC 8445): PRIORITY 0x0024 (u32), USE-CANDIDATE 0x0025 (empty), ICE-CONTROLLED 0x8029 and
//     ICE-CONTROLLING 0x802A (u64 tie-breaker). RFC 5780: CHANGE-REQUEST 0x0003 (u32, flags 4 = IP, 2 = port).
//
// Reading: one walk over the bytes as received (walkStun) frames the attributes for two views: the Binding
// view (stun-binding.ts: one object, strict) and the attribute list (parseStunMessage, for TURN: views into
// the datagram, each attribute checked when read). Writing: encodeStun, from (type, value) pairs.
// MESSAGE-INTEGRITY is checked over the bytes received. Nothing here throws on what the network sends.
// The `stun` package is not used: its decoder throws on truncation, reads ERROR-CODE 401 as 404 and checks
// MESSAGE-INTEGRITY by re-encoding what it understood; its builder takes ~60 us a message. Tests check
// both directions against it.

import { hex } from '../base/bytes.js';
import { createHmac, timingSafeEqual } from 'node:crypto';
import * as zlib from 'node:zlib';
import { TURN_MAX_STUN_ATTRIBUTES } from '../base/constants.js';
import { formatIpv4, formatIpv6, parseIpv4, parseIpv6 } from '../idloc/addresses.js';
import type { Endpoint } from '../conn/socket.js';

// ---- wire constants ------------------------------------------------------------------------------------

export const STUN_HEADER_BYTES = 20;
export const STUN_MAGIC_COOKIE = 0x2112a442;
const FINGERPRINT_XOR = 0x5354554e;
const INTEGRITY_BYTES = 20;
export const STUN_METHOD_BINDING = 0x001;
export const STUN_CLASS_REQUEST = 0, STUN_CLASS_INDICATION = 1, STUN_CLASS_SUCCESS = 2, STUN_CLASS_ERROR = 3;
export type StunClass = 0 | 1 | 2 | 3;

export const ATTR = {
  MAPPED_ADDRESS: 0x0001,
  CHANGE_REQUEST: 0x0003,
  USERNAME: 0x0006,
  MESSAGE_INTEGRITY: 0x0008,
  ERROR_CODE: 0x0009,
  UNKNOWN_ATTRIBUTES: 0x000a,
  REALM: 0x0014,
  NONCE: 0x0015,
  XOR_MAPPED_ADDRESS: 0x0020,
  PRIORITY: 0x0024,
  USE_CANDIDATE: 0x0025,
  SOFTWARE: 0x8022,
  ALTERNATE_SERVER: 0x8023,
  FINGERPRINT: 0x8028,
  ICE_CONTROLLED: 0x8029,
  ICE_CONTROLLING: 0x802a,
  RESPONSE_ORIGIN: 0x802b,
  OTHER_ADDRESS: 0x802c,
} as const;

/** REALM and NONCE must be under 128 characters, i.e. at most 763 UTF-8 bytes (RFC 8489 14.9/14.10). */
const MAX_TEXT_BYTES = 763;

/** STUN message type from method and class (the class bits sit at 4 and 8). */
export function stunType(method: number, cls: number): number {
  return (method & 0xf) | ((method & 0x70) << 1) | ((method & 0xf80) << 2) | ((cls & 1) << 4) | ((cls & 2) << 7);
}
export const methodOf = (type: number): number => (type & 0xf) | ((type >> 1) & 0x70) | ((type >> 2) & 0xf80);
export const classOf = (type: number): StunClass => (((type >> 4) & 1) | ((type >> 7) & 2)) as StunClass;

export function u16(b: Uint8Array, o: number): number { return (b[o]! << 8) | b[o + 1]!; }
export function u32(b: Uint8Array, o: number): number { return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0; }
export const padded = (n: number): number => (n + 3) & ~3;

export function txidHex(txid: Uint8Array): string {
  return hex(txid);
}

// ---- CRC-32 (FINGERPRINT) ------------------------------------------------------------------------------

let crcTable: Uint32Array | undefined;
/** CRC-32 (IEEE, as zlib) of b[0, end) by table: for Node 20 releases before zlib.crc32 (20.15). */
export function crc32Portable(b: Uint8Array, end = b.length): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < end; i++) c = crcTable[(c ^ b[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const zlibCrc32 = (zlib as unknown as { crc32?: (d: Uint8Array) => number }).crc32;
/** CRC-32 of b[0, end): node:zlib's (native) when this Node has it. */
export function crc32(b: Uint8Array, end = b.length): number {
  if (zlibCrc32) return zlibCrc32(end === b.length ? b : b.subarray(0, end)) >>> 0;
  return crc32Portable(b, end);
}

// ---- attribute values ----------------------------------------------------------------------------------

const scratch16 = new Uint8Array(16);
/** Byte i of the IPv6 XOR key: the magic cookie, then the transaction id. */
const xorKeyByte = (i: number, txid: Uint8Array): number => (i < 4 ? (STUN_MAGIC_COOKIE >>> (24 - 8 * i)) & 0xff : txid[i - 4]!);

/** A (XOR-)address value at b[o, o+len), XOR'd with the cookie and `txid` if given; undefined for a wrong
 *  family or length, or port 0. The reserved first byte is ignored (section 14.1). */
export function readAddress(b: Uint8Array, o: number, len: number, txid: Uint8Array | undefined): Endpoint | undefined {
  if (len < 4) return undefined;
  const family = b[o + 1];
  let port = u16(b, o + 2);
  if (txid) port ^= STUN_MAGIC_COOKIE >>> 16;
  if (port === 0) return undefined;
  if (family === 1 && len === 8) {
    const a = u32(b, o + 4);
    return { address: formatIpv4(txid ? (a ^ STUN_MAGIC_COOKIE) >>> 0 : a), port };
  }
  if (family === 2 && len === 20 && (!txid || txid.length === 12)) {
    for (let i = 0; i < 16; i++) scratch16[i] = b[o + 4 + i]! ^ (txid ? xorKeyByte(i, txid) : 0);
    return { address: formatIpv6(scratch16), port };
  }
  return undefined;
}

/** XOR-*-ADDRESS value -> endpoint; undefined if malformed. */
export function parseXorAddress(v: Uint8Array, transactionId: Uint8Array): Endpoint | undefined {
  return readAddress(v, 0, v.length, transactionId);
}

/** Write an XOR-*-ADDRESS value (8 or 20 bytes) at `off`; returns its length, or 0 for a bad endpoint. */
export function writeXorAddress(out: Uint8Array, off: number, e: Endpoint, transactionId: Uint8Array): number {
  if (!(Number.isInteger(e.port) && e.port >= 0 && e.port <= 0xffff)) return 0;
  const xport = e.port ^ (STUN_MAGIC_COOKIE >>> 16);
  const v4 = parseIpv4(e.address);
  const v6 = v4 === undefined ? parseIpv6(e.address) : undefined;
  const len = v6 ? 20 : 8;
  if ((v4 === undefined && !v6) || out.length < off + len || (v6 && transactionId.length !== 12)) return 0;
  out[off] = 0; out[off + 1] = v6 ? 2 : 1; out[off + 2] = xport >> 8; out[off + 3] = xport & 0xff;
  if (v6) {
    for (let i = 0; i < 16; i++) out[off + 4 + i] = v6[i]! ^ xorKeyByte(i, transactionId);
  } else {
    const x = (v4! ^ STUN_MAGIC_COOKIE) >>> 0;
    out[off + 4] = x >>> 24; out[off + 5] = (x >>> 16) & 0xff; out[off + 6] = (x >>> 8) & 0xff; out[off + 7] = x & 0xff;
  }
  return len;
}

/** ERROR-CODE value at b[o, o+len) -> 300-699, or -1 if malformed. */
export function readErrorCode(b: Uint8Array, o: number, len: number): number {
  if (len < 4) return -1;
  const cls = b[o + 2]! & 7, num = b[o + 3]!;
  return cls < 3 || cls > 6 || num > 99 ? -1 : cls * 100 + num;
}

const bufferText = (v: Uint8Array): string => Buffer.from(v.buffer, v.byteOffset, v.length).toString('utf8');

/** ERROR-CODE value -> code (300-699) and reason; undefined if malformed. */
export function parseErrorCode(v: Uint8Array): { code: number; reason: string } | undefined {
  const code = readErrorCode(v, 0, v.length);
  return code < 0 ? undefined : { code, reason: bufferText(v.subarray(4)) };
}

/** ERROR-CODE value for `code` with `reason`. */
export function errorCodeValue(code: number, reason: string): Buffer {
  const r = Buffer.from(reason, 'utf8');
  const v = Buffer.alloc(4 + r.length);
  v[2] = Math.floor(code / 100) & 7;
  v[3] = code % 100;
  v.set(r, 4);
  return v;
}

// ---- reading -------------------------------------------------------------------------------------------

/** The message type if `b` is framed as one whole STUN message (at least a header, top bits 00, the length
 *  a multiple of 4 and the datagram's, the magic cookie), else -1. */
export function stunMessageType(b: Uint8Array): number {
  const n = b.length;
  if (n < STUN_HEADER_BYTES || (b[0]! & 0xc0) !== 0) return -1;
  const len = u16(b, 2);
  if ((len & 3) !== 0 || STUN_HEADER_BYTES + len !== n || u32(b, 4) !== STUN_MAGIC_COOKIE) return -1;
  return u16(b, 0);
}

/** One attribute the walk keeps, its value at b[at, at+len); false if that value is malformed. */
export type AttributeVisitor = (type: number, at: number, len: number) => boolean;
export const MALFORMED = -2;

/**
 * Walk the attributes of a message stunMessageType accepted. None may run past the end; MESSAGE-INTEGRITY
 * must be 20 bytes. Visits every attribute before MESSAGE-INTEGRITY, the first MESSAGE-INTEGRITY and every
 * FINGERPRINT, skips the rest (RFC 8489 section 14.5). With `strictFingerprint`, a FINGERPRINT must be
 * right and last. More than `maxVisits` attributes visited is malformed. Returns the offset of the
 * MESSAGE-INTEGRITY attribute, -1 if none, or MALFORMED.
 */
export function walkStun(b: Uint8Array, visit: AttributeVisitor, strictFingerprint: boolean, maxVisits: number): number {
  const n = b.length;
  let integrity = -1, visits = 0, fingerprinted = false;
  for (let off = STUN_HEADER_BYTES; off < n;) {
    if (fingerprinted || off + 4 > n || visits >= maxVisits) return MALFORMED;
    const type = u16(b, off), len = u16(b, off + 2), v = off + 4;
    const next = v + padded(len);
    if (next > n) return MALFORMED;
    if (type === ATTR.FINGERPRINT) {
      if (strictFingerprint) {
        if (len !== 4 || ((crc32(b, off) ^ FINGERPRINT_XOR) >>> 0) !== u32(b, v)) return MALFORMED;
        fingerprinted = true;
      }
      visits++;
      if (!visit(type, v, len)) return MALFORMED;
    } else if (integrity < 0) {
      if (type === ATTR.MESSAGE_INTEGRITY) {
        if (len !== INTEGRITY_BYTES) return MALFORMED;
        integrity = off;
      }
      visits++;
      if (!visit(type, v, len)) return MALFORMED;
    }
    off = next;
  }
  return integrity;
}

export interface StunAttribute {
  type: number;
  /** View into the message. */
  value: Uint8Array;
}

/** A message as its attribute list (parseStunMessage). */
export interface ParsedStun {
  method: number;
  cls: StunClass;
  /** View into the message (12 bytes). */
  transactionId: Uint8Array;
  /** In message order; after MESSAGE-INTEGRITY only FINGERPRINT is kept. */
  attributes: StunAttribute[];
  /** Offset of the MESSAGE-INTEGRITY attribute's header, or -1. */
  integrityOffset: number;
}

/** A STUN message as its attribute list, at most TURN_MAX_STUN_ATTRIBUTES (the bound on the work a datagram
 *  of empty attributes causes); undefined if malformed. FINGERPRINT is neither checked nor required last. */
export function parseStunMessage(b: Uint8Array): ParsedStun | undefined {
  const type = stunMessageType(b);
  if (type < 0) return undefined;
  const attributes: StunAttribute[] = [];
  const integrityOffset = walkStun(b, (t, v, len) => { attributes.push({ type: t, value: b.subarray(v, v + len) }); return true; },
    false, TURN_MAX_STUN_ATTRIBUTES);
  if (integrityOffset === MALFORMED) return undefined;
  return { method: methodOf(type), cls: classOf(type), transactionId: b.subarray(8, 20), attributes, integrityOffset };
}

/** First attribute of `type` (later duplicates are ignored, RFC 8489 section 14). */
export function stunAttribute(m: ParsedStun, type: number): Uint8Array | undefined {
  for (const a of m.attributes) if (a.type === type) return a.value;
  return undefined;
}

/** A text attribute (REALM, NONCE, ...) of at most 763 bytes, or undefined. */
export function textAttr(m: ParsedStun, type: number): string | undefined {
  const v = stunAttribute(m, type);
  return !v || v.length > MAX_TEXT_BYTES ? undefined : bufferText(v);
}

export function readU32Attr(m: ParsedStun, type: number): number | undefined {
  const v = stunAttribute(m, type);
  return !v || v.length !== 4 ? undefined : u32(v, 0);
}

/** Check MESSAGE-INTEGRITY (HMAC-SHA1 keyed with a short-term password or a long-term key) over the bytes
 *  received, the header's length set to end just after it. */
export function verifyIntegrity(raw: Uint8Array, m: { integrityOffset: number }, key: string | Uint8Array): boolean {
  const at = m.integrityOffset;
  if (at < 0 || at + 4 + INTEGRITY_BYTES > raw.length) return false;
  const lenField = Buffer.allocUnsafe(2);
  lenField.writeUInt16BE(at + 4 + INTEGRITY_BYTES - STUN_HEADER_BYTES, 0);
  const mac = createHmac('sha1', key).update(raw.subarray(0, 2)).update(lenField).update(raw.subarray(4, at)).digest();
  return timingSafeEqual(mac, raw.subarray(at + 4, at + 4 + INTEGRITY_BYTES));
}

// ---- writing -------------------------------------------------------------------------------------------

/** An attribute value by kind: number u32, bigint u64, string UTF-8, Endpoint an XOR address (of the
 *  message's transaction id), bytes as they are, undefined empty. */
export type StunValue = number | bigint | string | Uint8Array | Endpoint | undefined;
export type StunAttr = readonly [type: number, value?: StunValue];

const isEndpoint = (v: StunValue): v is Endpoint => typeof v === 'object' && !(v instanceof Uint8Array);

/** Bytes the value takes unpadded; -1 for an endpoint that is not an IP address. */
function valueLength(v: StunValue): number {
  if (v === undefined) return 0;
  if (typeof v === 'number') return 4;
  if (typeof v === 'bigint') return 8;
  if (typeof v === 'string') return Buffer.byteLength(v, 'utf8');
  if (!isEndpoint(v)) return v.length;
  return parseIpv4(v.address) !== undefined ? 8 : parseIpv6(v.address) ? 20 : -1;
}

/** The 20-byte header; the length is filled in by finishStun(). */
export function writeStunHeader(b: Buffer, method: number, cls: number, txid: Uint8Array): void {
  b.writeUInt16BE(stunType(method, cls), 0);
  b.writeUInt32BE(STUN_MAGIC_COOKIE, 4);
  b.set(txid.subarray(0, 12), 8);
}

export function writeAttrHeader(b: Uint8Array, off: number, type: number, len: number): number {
  b[off] = type >> 8; b[off + 1] = type & 0xff; b[off + 2] = len >> 8; b[off + 3] = len & 0xff;
  return off + 4;
}

/** One attribute at `off`, padding zeroed; returns the offset after it, or -1 for a bad endpoint. */
function writeAttribute(b: Buffer, off: number, type: number, v: StunValue, txid: Uint8Array): number {
  const len = valueLength(v);
  let at = writeAttrHeader(b, off, type, len);
  if (typeof v === 'number') b.writeUInt32BE(v >>> 0, at);
  else if (typeof v === 'bigint') b.writeBigUInt64BE(BigInt.asUintN(64, v), at);
  else if (typeof v === 'string') b.write(v, at, 'utf8');
  else if (v !== undefined && isEndpoint(v)) { if (writeXorAddress(b, at, v, txid) !== len) return -1; }
  else if (v !== undefined) b.set(v, at);
  at += len;
  const end = off + 4 + padded(len);
  b.fill(0, at, end);
  return end;
}

/** Set the length, then append MESSAGE-INTEGRITY (if `key`) and FINGERPRINT (if `fingerprint`) after
 *  `off`, each computed with the length counting it. Returns the offset after the message. */
export function finishStun(b: Buffer, off: number, key: string | Uint8Array | undefined, fingerprint: boolean): number {
  if (key !== undefined) {
    b.writeUInt16BE(off + 4 + INTEGRITY_BYTES - STUN_HEADER_BYTES, 2);
    const mac = createHmac('sha1', key).update(b.subarray(0, off)).digest();
    off = writeAttrHeader(b, off, ATTR.MESSAGE_INTEGRITY, INTEGRITY_BYTES);
    b.set(mac, off);
    off += INTEGRITY_BYTES;
  }
  b.writeUInt16BE(off + (fingerprint ? 8 : 0) - STUN_HEADER_BYTES, 2);
  if (fingerprint) {
    const fp = (crc32(b, off) ^ FINGERPRINT_XOR) >>> 0;
    off = writeAttrHeader(b, off, ATTR.FINGERPRINT, 4);
    b.writeUInt32BE(fp, off);
    off += 4;
  }
  return off;
}

/** A STUN message of these attributes in this order, then MESSAGE-INTEGRITY (with `key`) and FINGERPRINT
 *  if asked; undefined if an endpoint value is not an IP address. */
export function encodeStun(method: number, cls: number, txid: Uint8Array, attrs: readonly StunAttr[],
  key?: string | Uint8Array, fingerprint = false): Buffer | undefined {
  let size = STUN_HEADER_BYTES + (key !== undefined ? 4 + INTEGRITY_BYTES : 0) + (fingerprint ? 8 : 0);
  for (const a of attrs) {
    const len = valueLength(a[1]);
    if (len < 0) return undefined;
    size += 4 + padded(len);
  }
  const b = Buffer.allocUnsafe(size);
  writeStunHeader(b, method, cls, txid);
  let off = STUN_HEADER_BYTES;
  for (const a of attrs) if ((off = writeAttribute(b, off, a[0], a[1], txid)) < 0) return undefined;
  finishStun(b, off, key, fingerprint);
  return b;
}
