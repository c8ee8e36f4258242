// STUN messages as the agent's STUN endpoint (agent/nat/stun-endpoint.ts) reads and writes them: parsing
// (parseStun, verifyIntegrity) and building (encodeBindingRequest/Success/Error).
//
// Wire format (RFC 8489, formerly 5389): a 20-byte header, then type-length-value attributes, each padded to
// a multiple of 4 bytes; all numbers big-endian.
//
//    0                   1                   2                   3
//    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |0 0| type: method bits + class bits C1,C0 |  length (bytes after the header, multiple of 4)
//   |                    magic cookie 0x2112A442                    |
//   |             transaction id (96 bits, random per request)      |
//   +---------------------------------------------------------------+
//   | attribute type (16)            | value length (16, unpadded)  |  value, zero-padded to 4 bytes
//
//   class: 0 request, 1 indication, 2 success response, 3 error response; method 0x001 = Binding.
//   XOR-MAPPED-ADDRESS (0x0020): 0, family (1 = IPv4, 2 = IPv6), port ^ 0x2112, address ^ (cookie ‖ txid).
//   MESSAGE-INTEGRITY (0x0008): HMAC-SHA1 over the message up to it, with the header length counting up to
//     and including it; key = the short-term password (ICE: the password of the agent that answers).
//   FINGERPRINT (0x8028): CRC-32 of the message up to it, XOR 0x5354554E; always last.
//   ICE (RFC 8445) adds USERNAME "<answerer's ufrag>:<asker's ufrag>", PRIORITY (0x0024), USE-CANDIDATE
//   (0x0025, empty), ICE-CONTROLLED (0x8029) / ICE-CONTROLLING (0x802A) with a 64-bit tie-breaker.
//   RFC 5780 adds CHANGE-REQUEST (0x0003), OTHER-ADDRESS (0x802C), RESPONSE-ORIGIN (0x802B).
//
// Parsing (parseStun) reads the datagram in place: no copy, one small object, strings only for the attributes
// present (~1 us); it never throws: garbage, truncation, bad lengths, a wrong FINGERPRINT give undefined.
// Requests are built with the `stun` package; its decoder is not used on the receive path (it throws on
// truncation, allocates a stream and objects per attribute, returns 0 from getPriority() in 2.1.0, and checks
// MESSAGE-INTEGRITY by re-encoding the message instead of over the bytes received), nor its builder for
// answers (see encodeBindingSuccess). Tests check both directions against the package.

import { createHmac, timingSafeEqual } from 'node:crypto';
import { createRequire } from 'node:module';
import * as zlib from 'node:zlib';
import { formatIpv4, formatIpv6, parseIpv4, parseIpv6 } from '../idloc/addresses.js';
import type { Endpoint } from '../conn/socket.js';

// ---- wire constants ------------------------------------------------------------------------------------

export const STUN_HEADER_BYTES = 20;
export const STUN_MAGIC_COOKIE = 0x2112a442;
const FINGERPRINT_XOR = 0x5354554e;
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

/** CHANGE-REQUEST flags (RFC 5780 section 7.2). */
export const CHANGE_IP = 0x4, CHANGE_PORT = 0x2;

/** USERNAME longer than this is malformed (RFC 8489 section 14.3: < 509 bytes; 513 for RFC 5389 peers). */
const MAX_USERNAME_BYTES = 513;
/** Comprehension-required attributes we do not understand, listed at most this many (the 420 answer's list). */
const MAX_UNKNOWN_LISTED = 16;

/** Comprehension-required attributes (< 0x8000) this parser understands; the rest make a request get 420. */
const KNOWN_REQUIRED = new Set<number>([
  ATTR.MAPPED_ADDRESS, ATTR.CHANGE_REQUEST, ATTR.USERNAME, ATTR.MESSAGE_INTEGRITY, ATTR.ERROR_CODE,
  ATTR.UNKNOWN_ATTRIBUTES, ATTR.REALM, ATTR.NONCE, ATTR.XOR_MAPPED_ADDRESS, ATTR.PRIORITY, ATTR.USE_CANDIDATE,
]);

// ---- parsing -------------------------------------------------------------------------------------------

/** What parseStun found; views into the datagram (txid) are only valid while the datagram is. */
export interface StunMessage {
  method: number;
  cls: StunClass;
  /** Total bytes (header + attributes) = the datagram's length. */
  length: number;
  /** The 12-byte transaction id, a view into the datagram. */
  txid: Uint8Array;
  xorMappedAddress?: Endpoint;
  mappedAddress?: Endpoint;
  otherAddress?: Endpoint;
  responseOrigin?: Endpoint;
  username?: string;
  priority?: number;
  useCandidate: boolean;
  iceControlling?: bigint;
  iceControlled?: bigint;
  changeRequest?: number;
  errorCode?: number;
  errorReason?: string;
  software?: string;
  /** Comprehension-required attribute types we do not understand (undefined if none). */
  unknownRequired?: number[];
  /** Byte offset of the MESSAGE-INTEGRITY attribute, -1 if absent. */
  integrityOffset: number;
  /** FINGERPRINT present (and correct: a wrong one makes the message malformed). */
  fingerprint: boolean;
}

const scratch16 = new Uint8Array(16);

function u16(b: Uint8Array, o: number): number { return (b[o]! << 8) | b[o + 1]!; }
function u32(b: Uint8Array, o: number): number { return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0; }

/** (XOR-)MAPPED-ADDRESS-style value at [o, o+len); undefined if malformed. */
function readAddress(b: Uint8Array, o: number, len: number, xor: boolean): Endpoint | undefined {
  if (len < 4) return undefined;
  const family = b[o + 1];
  let port = u16(b, o + 2);
  if (xor) port ^= STUN_MAGIC_COOKIE >>> 16;
  if (port === 0) return undefined;
  if (family === 1 && len === 8) {
    let a = u32(b, o + 4);
    if (xor) a = (a ^ STUN_MAGIC_COOKIE) >>> 0;
    return { address: formatIpv4(a), port };
  }
  if (family === 2 && len === 20) {
    // XOR key for IPv6: the magic cookie followed by the transaction id, i.e. header bytes 4..20.
    for (let i = 0; i < 16; i++) scratch16[i] = b[o + 4 + i]! ^ (xor ? b[4 + i]! : 0);
    return { address: formatIpv6(scratch16), port };
  }
  return undefined;
}

function readBigU64(b: Uint8Array, o: number): bigint {
  return (BigInt(u32(b, o)) << 32n) | BigInt(u32(b, o + 4));
}

const utf8 = new TextDecoder('utf-8', { fatal: false });

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

/**
 * Parse one STUN message filling the whole datagram; undefined if it is not a well-formed one: shorter than
 * a header, top bits not 00, wrong magic cookie, length not a multiple of 4 or not the datagram's, an
 * attribute running past the end, a malformed attribute we interpret, anything after FINGERPRINT, or a
 * FINGERPRINT that does not match. Attributes after MESSAGE-INTEGRITY other than FINGERPRINT are ignored
 * (RFC 8489 section 14.5); of repeated attributes the first counts. Never throws.
 */
export function parseStun(msg: Uint8Array): StunMessage | undefined {
  const n = msg.length;
  if (n < STUN_HEADER_BYTES || (msg[0]! & 0xc0) !== 0) return undefined;
  const len = u16(msg, 2);
  if ((len & 3) !== 0 || STUN_HEADER_BYTES + len !== n || u32(msg, 4) !== STUN_MAGIC_COOKIE) return undefined;
  const type = u16(msg, 0);
  const m: StunMessage = {
    method: (type & 0xf) | ((type >> 1) & 0x70) | ((type >> 2) & 0xf80),
    cls: (((type >> 4) & 1) | ((type >> 7) & 2)) as StunClass,
    length: n,
    txid: msg.subarray(8, 20),
    useCandidate: false,
    integrityOffset: -1,
    fingerprint: false,
  };
  let off = STUN_HEADER_BYTES;
  while (off < n) {
    if (m.fingerprint) return undefined; // FINGERPRINT must be last
    if (off + 4 > n) return undefined;
    const at = u16(msg, off), alen = u16(msg, off + 2), v = off + 4;
    const next = v + ((alen + 3) & ~3);
    if (next > n) return undefined;
    if (at === ATTR.FINGERPRINT) {
      if (alen !== 4 || ((crc32(msg, off) ^ FINGERPRINT_XOR) >>> 0) !== u32(msg, v)) return undefined;
      m.fingerprint = true;
    } else if (m.integrityOffset < 0) {
      switch (at) {
        case ATTR.XOR_MAPPED_ADDRESS:
          if (!m.xorMappedAddress && !(m.xorMappedAddress = readAddress(msg, v, alen, true))) return undefined;
          break;
        case ATTR.MAPPED_ADDRESS:
          if (!m.mappedAddress && !(m.mappedAddress = readAddress(msg, v, alen, false))) return undefined;
          break;
        case ATTR.OTHER_ADDRESS:
          if (!m.otherAddress && !(m.otherAddress = readAddress(msg, v, alen, false))) return undefined;
          break;
        case ATTR.RESPONSE_ORIGIN:
          if (!m.responseOrigin && !(m.responseOrigin = readAddress(msg, v, alen, false))) return undefined;
          break;
        case ATTR.USERNAME:
          if (alen > MAX_USERNAME_BYTES) return undefined;
          m.username ??= utf8.decode(msg.subarray(v, v + alen));
          break;
        case ATTR.SOFTWARE:
          m.software ??= utf8.decode(msg.subarray(v, v + alen));
          break;
        case ATTR.PRIORITY:
          if (alen !== 4) return undefined;
          m.priority ??= u32(msg, v);
          break;
        case ATTR.USE_CANDIDATE:
          if (alen !== 0) return undefined;
          m.useCandidate = true;
          break;
        case ATTR.ICE_CONTROLLING:
          if (alen !== 8) return undefined;
          m.iceControlling ??= readBigU64(msg, v);
          break;
        case ATTR.ICE_CONTROLLED:
          if (alen !== 8) return undefined;
          m.iceControlled ??= readBigU64(msg, v);
          break;
        case ATTR.CHANGE_REQUEST:
          if (alen !== 4) return undefined;
          m.changeRequest ??= u32(msg, v);
          break;
        case ATTR.ERROR_CODE: {
          if (alen < 4) return undefined;
          const cls = msg[v + 2]! & 7, num = msg[v + 3]!;
          if (cls < 3 || cls > 6 || num > 99) return undefined;
          if (m.errorCode === undefined) {
            m.errorCode = cls * 100 + num;
            m.errorReason = utf8.decode(msg.subarray(v + 4, v + alen));
          }
          break;
        }
        case ATTR.MESSAGE_INTEGRITY:
          if (alen !== 20) return undefined;
          m.integrityOffset = off;
          break;
        default:
          if (at < 0x8000 && !KNOWN_REQUIRED.has(at)) {
            const u = (m.unknownRequired ??= []);
            if (u.length < MAX_UNKNOWN_LISTED && !u.includes(at)) u.push(at);
          }
      }
    }
    off = next;
  }
  return m;
}

/** Check MESSAGE-INTEGRITY (HMAC-SHA1 keyed with `password`) over the bytes received. */
export function verifyIntegrity(msg: Uint8Array, m: StunMessage, password: string): boolean {
  const at = m.integrityOffset;
  if (at < 0 || at + 24 > msg.length) return false;
  const lenField = Buffer.allocUnsafe(2);
  lenField.writeUInt16BE(at + 24 - STUN_HEADER_BYTES, 0);
  const mac = createHmac('sha1', password).update(msg.subarray(0, 2)).update(lenField).update(msg.subarray(4, at)).digest();
  return timingSafeEqual(mac, msg.subarray(at + 4, at + 24));
}

export function txidHex(txid: Uint8Array): string {
  return Buffer.from(txid.buffer, txid.byteOffset, txid.length).toString('hex');
}

// ---- building (the `stun` package) ---------------------------------------------------------------------

interface StunLibMessage {
  addAttribute(type: number, ...values: unknown[]): unknown;
  addUsername(username: string): unknown;
  addSoftware(software: string): unknown;
  addUseCandidate(): unknown;
  addIceControlling(tieBreaker: Buffer): unknown;
  addIceControlled(tieBreaker: Buffer): unknown;
  addMessageIntegrity(key: string): unknown;
  addFingerprint(): unknown;
  toBuffer(): Buffer;
}
interface StunLib { createMessage(type: number, transaction?: Buffer): StunLibMessage }
const stunLib = createRequire(import.meta.url)('stun') as StunLib;

/** STUN message type from method and class (the class bits sit at 4 and 8). */
export function stunType(method: number, cls: StunClass): number {
  return (method & 0xf) | ((method & 0x70) << 1) | ((method & 0xf80) << 2) | ((cls & 1) << 4) | ((cls & 2) << 7);
}

/** Address as STUN carries it: IPv4-mapped IPv6 (dual-stack sockets) as IPv4, no zone index. */
export function stunAddress(address: string): string {
  const pct = address.indexOf('%');
  const a = pct >= 0 ? address.slice(0, pct) : address;
  return /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(a) ? a.slice(7) : a;
}

export interface StunRequestAttributes {
  /** ICE: "<answerer's ufrag>:<our ufrag>". */
  username?: string;
  /** Short-term credential: MESSAGE-INTEGRITY key for the request, and required on the response. */
  password?: string;
  priority?: number;
  /** Adds ICE-CONTROLLING (true) or ICE-CONTROLLED (false) with `tieBreaker`. */
  controlling?: boolean;
  tieBreaker?: bigint;
  useCandidate?: boolean;
  /** RFC 5780 CHANGE-REQUEST. */
  changeIp?: boolean;
  changePort?: boolean;
}

function tieBreakerBytes(t: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt.asUintN(64, t));
  return b;
}

export function encodeBindingRequest(txid: Buffer, a: StunRequestAttributes = {}, software?: string): Buffer {
  const m = stunLib.createMessage(stunType(STUN_METHOD_BINDING, STUN_CLASS_REQUEST), txid);
  if (a.username !== undefined) m.addUsername(a.username);
  if (software) m.addSoftware(software);
  // addAttribute, not addPriority: the latter refuses priorities >= 2^31, which RFC 8445 allows.
  if (a.priority !== undefined) m.addAttribute(ATTR.PRIORITY, a.priority >>> 0);
  if (a.controlling !== undefined) {
    const tb = tieBreakerBytes(a.tieBreaker ?? 0n);
    if (a.controlling) m.addIceControlling(tb); else m.addIceControlled(tb);
  }
  if (a.useCandidate) m.addUseCandidate();
  if (a.changeIp || a.changePort) m.addAttribute(ATTR.CHANGE_REQUEST, (a.changeIp ? CHANGE_IP : 0) | (a.changePort ? CHANGE_PORT : 0));
  if (a.password !== undefined) m.addMessageIntegrity(a.password);
  m.addFingerprint();
  return m.toBuffer();
}

// Responses are written directly (one Buffer each, no intermediate objects): they are what a remote sender
// makes us produce, so their cost is what a request flood costs. The `stun` package's builder takes ~60 us
// per answer (it serialises the message once per integrity/fingerprint attribute); this takes ~2 us.
// Tests check these bytes with the package's decoder and validators.

const REASONS: Record<number, string> = {
  400: 'Bad Request', 401: 'Unauthorized', 420: 'Unknown Attribute', 438: 'Stale Nonce', 487: 'Role Conflict', 500: 'Server Error',
};

/** Header, with the length filled in by finish(). */
function writeHeader(b: Buffer, method: number, cls: StunClass, txid: Uint8Array): void {
  b.writeUInt16BE(stunType(method, cls), 0);
  b.writeUInt32BE(STUN_MAGIC_COOKIE, 4);
  b.set(txid.subarray(0, 12), 8);
}

function writeAttrHeader(b: Buffer, off: number, type: number, len: number): number {
  b.writeUInt16BE(type, off);
  b.writeUInt16BE(len, off + 2);
  return off + 4;
}

/** Append MESSAGE-INTEGRITY (if password) and FINGERPRINT after `off`; returns the message. */
function finish(b: Buffer, off: number, password: string | undefined): Buffer {
  if (password !== undefined) {
    b.writeUInt16BE(off + 24 - STUN_HEADER_BYTES, 2);
    const mac = createHmac('sha1', password).update(b.subarray(0, off)).digest();
    off = writeAttrHeader(b, off, ATTR.MESSAGE_INTEGRITY, 20);
    b.set(mac, off);
    off += 20;
  }
  b.writeUInt16BE(off + 8 - STUN_HEADER_BYTES, 2);
  const fp = (crc32(b, off) ^ FINGERPRINT_XOR) >>> 0;
  off = writeAttrHeader(b, off, ATTR.FINGERPRINT, 4);
  b.writeUInt32BE(fp, off);
  return b.subarray(0, off + 4);
}

function textBytes(s: string | undefined, max: number): Buffer | undefined {
  if (!s) return undefined;
  const t = Buffer.from(s, 'utf8');
  return t.length > max ? t.subarray(0, max) : t;
}

/** Binding success: XOR-MAPPED-ADDRESS, [SOFTWARE], [MESSAGE-INTEGRITY], FINGERPRINT. Throws on a non-IP address. */
export function encodeBindingSuccess(txid: Uint8Array, mapped: Endpoint, password?: string, software?: string): Buffer {
  const addr = stunAddress(mapped.address);
  const v4 = parseIpv4(addr);
  const v6 = v4 === undefined ? parseIpv6(addr) : undefined;
  if ((v4 === undefined && !v6) || !(mapped.port > 0 && mapped.port < 65536)) throw new Error(`not an IP endpoint: ${addr}:${mapped.port}`);
  const sw = textBytes(software, 127);
  const b = Buffer.alloc(STUN_HEADER_BYTES + 24 + (sw ? 4 + ((sw.length + 3) & ~3) : 0) + 24 + 8);
  writeHeader(b, STUN_METHOD_BINDING, STUN_CLASS_SUCCESS, txid);
  let off = writeAttrHeader(b, STUN_HEADER_BYTES, ATTR.XOR_MAPPED_ADDRESS, v6 ? 20 : 8);
  b[off + 1] = v6 ? 2 : 1;
  b.writeUInt16BE(mapped.port ^ (STUN_MAGIC_COOKIE >>> 16), off + 2);
  if (v6) {
    for (let i = 0; i < 16; i++) b[off + 4 + i] = v6[i]! ^ b[4 + i]!; // cookie ‖ txid
    off += 20;
  } else {
    b.writeUInt32BE((v4! ^ STUN_MAGIC_COOKIE) >>> 0, off + 4);
    off += 8;
  }
  if (sw) { off = writeAttrHeader(b, off, ATTR.SOFTWARE, sw.length); b.set(sw, off); off += (sw.length + 3) & ~3; }
  return finish(b, off, password);
}

/** Binding error: ERROR-CODE, [UNKNOWN-ATTRIBUTES], [SOFTWARE], [MESSAGE-INTEGRITY], FINGERPRINT. */
export function encodeBindingError(txid: Uint8Array, code: number, unknown?: number[], password?: string, software?: string): Buffer {
  const reason = Buffer.from(REASONS[code] ?? 'Error', 'utf8');
  const sw = textBytes(software, 127);
  const u = unknown?.length ? [...new Set(unknown)].slice(0, MAX_UNKNOWN_LISTED) : [];
  const b = Buffer.alloc(STUN_HEADER_BYTES + 8 + ((reason.length + 3) & ~3) + (u.length ? 4 + ((u.length * 2 + 3) & ~3) : 0)
    + (sw ? 4 + ((sw.length + 3) & ~3) : 0) + 24 + 8);
  writeHeader(b, STUN_METHOD_BINDING, STUN_CLASS_ERROR, txid);
  let off = writeAttrHeader(b, STUN_HEADER_BYTES, ATTR.ERROR_CODE, 4 + reason.length);
  b[off + 2] = Math.floor(code / 100) & 7;
  b[off + 3] = code % 100;
  b.set(reason, off + 4);
  off += 4 + ((reason.length + 3) & ~3);
  if (u.length) {
    off = writeAttrHeader(b, off, ATTR.UNKNOWN_ATTRIBUTES, u.length * 2);
    u.forEach((t, i) => b.writeUInt16BE(t & 0xffff, off + 2 * i));
    off += (u.length * 2 + 3) & ~3;
  }
  if (sw) { off = writeAttrHeader(b, off, ATTR.SOFTWARE, sw.length); b.set(sw, off); off += (sw.length + 3) & ~3; }
  return finish(b, off, password);
}
