// TURN's wire formats (RFC 8656 over UDP, on STUN, RFC 8489) as agent/nat/turn-client.ts speaks them: the
// typed `stun` package, protocol numbers, STUN parsing, ChannelData and Send indication encoding, XOR
// addresses and the long-term credential key.
//
// The `stun` package (v2.1.0) encodes the control requests (Allocate, Refresh, CreatePermission,
// ChannelBind) and their MESSAGE-INTEGRITY. Hand-written here, because the package lacks or gets them wrong:
//   - reading every incoming STUN message: the package's ERROR-CODE decoder computes class x (number + 100),
//     so a 401 reads as 404; its decode throws on truncated input and runs each attribute through
//     binary-data; and its validateMessageIntegrity re-encodes the message, dropping attributes it does not
//     know, so a valid answer carrying one fails. We walk attributes over the raw bytes and check the HMAC
//     over the bytes as received.
//   - Send indications (per packet; the package takes ~23 us to build one) and ChannelData (not in it).
//
// Wire formats (all integers big-endian):
//
// STUN message (RFC 8489 section 5), every control message and Send/Data indications:
//    0                   1                   2                   3
//   +-+-+-----------------------------+-------------------------------+
//   |0 0|     message type (14)       |   message length (16)         |  length: bytes after the header,
//   +-+-+-----------------------------+-------------------------------+  a multiple of 4
//   |                  magic cookie 0x2112A442                        |
//   +-----------------------------------------------------------------+
//   |                  transaction id (96 bits)                       |
//   +-----------------------------------------------------------------+
//   |  attributes: type (16) | length (16, value only) | value, zero-padded to a multiple of 4 ...
//   message type = method bits interleaved with class bits C1 (0x100) and C0 (0x010): request 0x000,
//   indication 0x010, success 0x100, error 0x110; methods Allocate 3, Refresh 4, Send 6, Data 7,
//   CreatePermission 8, ChannelBind 9 (so an Allocate error is 0x0113, a Send indication 0x0016, a Data
//   indication 0x0017). The first byte is 0x00 or 0x01, which is how demux.ts classes it as 'stun'.
//
// Attributes read or written by hand:
//   XOR-MAPPED-ADDRESS 0x0020, XOR-RELAYED-ADDRESS 0x0016, XOR-PEER-ADDRESS 0x0012:
//     | 0x00 | family 1=IPv4 2=IPv6 | port XOR 0x2112 | address XOR cookie (IPv4, 4 bytes)
//                                                     | or XOR cookie||transaction id (IPv6, 16 bytes)
//   DATA 0x0013: the relayed datagram, as is
//   ERROR-CODE 0x0009: | 0 | 0 | 00000 class (3 bits, the hundreds) | number (0-99) | UTF-8 reason |
//   LIFETIME 0x000D: u32 seconds;   REALM 0x0014, NONCE 0x0015: UTF-8 text (< 128 characters)
//   MESSAGE-INTEGRITY 0x0008: HMAC-SHA1 (20 bytes), key MD5(username ":" realm ":" password) (the
//     long-term credential; the password is used as UTF-8, which is SASLprep's result for ASCII),
//     over the message up to this attribute with the header's length set to end just after it. Only
//     FINGERPRINT may follow; anything else after it is ignored.
//
// ChannelData (RFC 8656 section 12.4), the data path once a channel is bound:
//    0                   1                   2                   3
//   +---------------------------------+-------------------------------+
//   |  channel number 0x4000-0x4FFF   |  length of data (16)          |
//   +---------------------------------+-------------------------------+
//   |  data ... (we send no padding: over UDP it is optional; up to 3 trailing pad bytes are accepted)
//   First byte 0x40-0x4F: demux.ts classes it 'turn-channel'. The hot path reads the 4 bytes in place
//   (no STUN decode, no allocation but the payload view) and looks the channel up in an array.

import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { createRequire } from 'node:module';
import { TURN_MAX_STUN_ATTRIBUTES } from '../base/constants.js';
import { formatIpv4, formatIpv6, parseIpv4, parseIpv6 } from '../idloc/addresses.js';
import type { Endpoint } from '../conn/socket.js';

// ---- the `stun` package (CommonJS, no type declarations): the part of it we use, typed here ------------

/** A message being built by the `stun` package. */
export interface StunOutgoing {
  addAttribute(type: number, ...args: unknown[]): unknown;
  /** HMAC-SHA1 over the message so far; `key` is the HMAC key as is (a Buffer for long-term credentials). */
  addMessageIntegrity(key: Buffer | string): boolean;
  addFingerprint(): boolean;
  toBuffer(): Buffer;
  readonly transactionId: Buffer;
}
export interface StunDecoded {
  readonly type: number;
  readonly transactionId: Buffer;
  getAttribute(type: number): { value: unknown } | undefined;
}
export interface StunPackage {
  createMessage(type: number, transaction?: Buffer): StunOutgoing;
  decode(b: Buffer): StunDecoded;
  validateMessageIntegrity(msg: StunDecoded, key: Buffer | string): boolean;
  constants: Record<string, number>;
}
/** Loaded with createRequire so no declaration file is needed for `import stun from 'stun'`. */
export const stunPackage = createRequire(import.meta.url)('stun') as StunPackage;

// ---- protocol numbers ---------------------------------------------------------------------------------

export const STUN_HEADER_LEN = 20;
export const STUN_MAGIC_COOKIE = 0x2112a442;
export const STUN_CLASS_REQUEST = 0;
export const STUN_CLASS_INDICATION = 1;
export const STUN_CLASS_SUCCESS = 2;
export const STUN_CLASS_ERROR = 3;

export const TURN_METHOD_ALLOCATE = 0x003;
export const TURN_METHOD_REFRESH = 0x004;
export const TURN_METHOD_SEND = 0x006;
export const TURN_METHOD_DATA = 0x007;
export const TURN_METHOD_CREATE_PERMISSION = 0x008;
export const TURN_METHOD_CHANNEL_BIND = 0x009;

export const ATTR_USERNAME = 0x0006;
export const ATTR_MESSAGE_INTEGRITY = 0x0008;
export const ATTR_ERROR_CODE = 0x0009;
export const ATTR_CHANNEL_NUMBER = 0x000c;
export const ATTR_LIFETIME = 0x000d;
export const ATTR_XOR_PEER_ADDRESS = 0x0012;
export const ATTR_DATA = 0x0013;
export const ATTR_REALM = 0x0014;
export const ATTR_NONCE = 0x0015;
export const ATTR_XOR_RELAYED_ADDRESS = 0x0016;
export const ATTR_REQUESTED_TRANSPORT = 0x0019;
export const ATTR_XOR_MAPPED_ADDRESS = 0x0020;
export const ATTR_FINGERPRINT = 0x8028;

/** REQUESTED-TRANSPORT value: protocol 17 (UDP) in the top byte, 3 bytes RFFU. */
export const TRANSPORT_UDP = (17 << 24) >>> 0;
export const CHANNEL_MIN = 0x4000;
export const CHANNEL_MAX = 0x4fff;
/** Bytes in front of a ChannelData payload; callers of sendFrame() leave this much room. */
export const CHANNEL_HEADER_LEN = 4;
/** Largest payload sendTo() relays: the biggest Send indication (20-byte header, 24-byte IPv6
 *  XOR-PEER-ADDRESS, 4-byte DATA header, 3 bytes of padding) must still fit one UDP datagram (65507). */
export const TURN_MAX_PAYLOAD = 65507 - 51;
const MI_LEN = 20;
/** REALM and NONCE must be under 128 characters, i.e. at most 763 UTF-8 bytes (RFC 8489 14.9/14.10). */
const MAX_TEXT_BYTES = 763;

export function stunType(method: number, cls: number): number {
  return (method & 0x000f) | ((method & 0x0070) << 1) | ((method & 0x0f80) << 2) | ((cls & 1) << 4) | ((cls & 2) << 7);
}

// ---- parsing STUN (hand-written, see the top of the file) ---------------------------------------------

export interface StunAttribute {
  type: number;
  /** View into the message. */
  value: Uint8Array;
}

export interface ParsedStun {
  method: number;
  cls: number;
  /** View into the message (12 bytes). */
  transactionId: Uint8Array;
  /** In message order; after MESSAGE-INTEGRITY only FINGERPRINT is kept. */
  attributes: StunAttribute[];
  /** Offset of the MESSAGE-INTEGRITY attribute's header, or -1. */
  integrityAt: number;
}

/** Parse a STUN message (RFC 8489 framing, magic cookie required); undefined for anything malformed. */
export function parseStunMessage(b: Uint8Array): ParsedStun | undefined {
  if (b.length < STUN_HEADER_LEN || (b[0]! & 0xc0) !== 0) return undefined;
  const type = (b[0]! << 8) | b[1]!;
  const len = (b[2]! << 8) | b[3]!;
  if ((len & 3) !== 0 || STUN_HEADER_LEN + len !== b.length) return undefined;
  if (((b[4]! << 24) | (b[5]! << 16) | (b[6]! << 8) | b[7]!) >>> 0 !== STUN_MAGIC_COOKIE) return undefined;
  const attributes: StunAttribute[] = [];
  let integrityAt = -1;
  let off = STUN_HEADER_LEN;
  while (off < b.length) {
    if (off + 4 > b.length || attributes.length >= TURN_MAX_STUN_ATTRIBUTES) return undefined;
    const t = (b[off]! << 8) | b[off + 1]!;
    const l = (b[off + 2]! << 8) | b[off + 3]!;
    const next = off + 4 + ((l + 3) & ~3);
    if (next > b.length) return undefined;
    if (integrityAt < 0 || t === ATTR_FINGERPRINT) attributes.push({ type: t, value: b.subarray(off + 4, off + 4 + l) });
    if (t === ATTR_MESSAGE_INTEGRITY && integrityAt < 0) {
      if (l !== MI_LEN) return undefined;
      integrityAt = off;
    }
    off = next;
  }
  return {
    method: (type & 0x000f) | ((type & 0x00e0) >> 1) | ((type & 0x3e00) >> 2),
    cls: ((type & 0x0010) >> 4) | ((type & 0x0100) >> 7),
    transactionId: b.subarray(8, 20),
    attributes,
    integrityAt,
  };
}

/** First attribute of `type` (later duplicates are ignored, RFC 8489 section 14). */
export function stunAttribute(m: ParsedStun, type: number): Uint8Array | undefined {
  for (const a of m.attributes) if (a.type === type) return a.value;
  return undefined;
}

/** XOR-*-ADDRESS value -> endpoint; undefined if the family or length is wrong. */
export function parseXorAddress(v: Uint8Array, transactionId: Uint8Array): Endpoint | undefined {
  if (v.length < 4 || v[0] !== 0) return undefined;
  const port = ((v[2]! << 8) | v[3]!) ^ (STUN_MAGIC_COOKIE >>> 16);
  if (v[1] === 1 && v.length === 8) {
    const a = (((v[4]! << 24) | (v[5]! << 16) | (v[6]! << 8) | v[7]!) ^ STUN_MAGIC_COOKIE) >>> 0;
    return { address: formatIpv4(a), port };
  }
  if (v[1] === 2 && v.length === 20 && transactionId.length === 12) {
    const a = new Uint8Array(16);
    for (let i = 0; i < 16; i++) a[i] = v[4 + i]! ^ (i < 4 ? (STUN_MAGIC_COOKIE >>> (24 - 8 * i)) & 0xff : transactionId[i - 4]!);
    return { address: formatIpv6(a), port };
  }
  return undefined;
}

/** Write an XOR-*-ADDRESS value (8 or 20 bytes) at `off`; returns its length, or 0 for a bad endpoint. */
export function writeXorAddress(out: Uint8Array, off: number, e: Endpoint, transactionId: Uint8Array): number {
  if (!(Number.isInteger(e.port) && e.port >= 0 && e.port <= 0xffff)) return 0;
  const xport = e.port ^ (STUN_MAGIC_COOKIE >>> 16);
  const v4 = parseIpv4(e.address);
  if (v4 !== undefined) {
    if (out.length < off + 8) return 0;
    const x = (v4 ^ STUN_MAGIC_COOKIE) >>> 0;
    out[off] = 0; out[off + 1] = 1; out[off + 2] = xport >> 8; out[off + 3] = xport & 0xff;
    out[off + 4] = x >>> 24; out[off + 5] = (x >>> 16) & 0xff; out[off + 6] = (x >>> 8) & 0xff; out[off + 7] = x & 0xff;
    return 8;
  }
  const v6 = parseIpv6(e.address);
  if (v6 === undefined || out.length < off + 20 || transactionId.length !== 12) return 0;
  out[off] = 0; out[off + 1] = 2; out[off + 2] = xport >> 8; out[off + 3] = xport & 0xff;
  for (let i = 0; i < 16; i++) out[off + 4 + i] = v6[i]! ^ (i < 4 ? (STUN_MAGIC_COOKIE >>> (24 - 8 * i)) & 0xff : transactionId[i - 4]!);
  return 20;
}

/** ERROR-CODE value -> code (300-699) and reason; undefined if malformed. */
export function parseErrorCode(v: Uint8Array): { code: number; reason: string } | undefined {
  if (v.length < 4) return undefined;
  const cls = v[2]! & 0x07;
  const num = v[3]!;
  if (cls < 3 || cls > 6 || num > 99) return undefined;
  return { code: cls * 100 + num, reason: Buffer.from(v.buffer, v.byteOffset + 4, v.length - 4).toString('utf8') };
}

export function textAttr(m: ParsedStun, type: number): string | undefined {
  const v = stunAttribute(m, type);
  if (!v || v.length > MAX_TEXT_BYTES) return undefined;
  return Buffer.from(v.buffer, v.byteOffset, v.length).toString('utf8');
}

export function readU32Attr(m: ParsedStun, type: number): number | undefined {
  const v = stunAttribute(m, type);
  if (!v || v.length !== 4) return undefined;
  return ((v[0]! << 24) | (v[1]! << 16) | (v[2]! << 8) | v[3]!) >>> 0;
}

/** Long-term credential key: MD5(username ":" realm ":" password). */
export function longTermKey(username: string, realm: string, password: string): Buffer {
  return createHash('md5').update(`${username}:${realm}:${password}`, 'utf8').digest();
}

/** Check MESSAGE-INTEGRITY over the raw bytes of a parsed message. */
export function verifyMessageIntegrity(raw: Uint8Array, m: ParsedStun, key: Uint8Array): boolean {
  const at = m.integrityAt;
  if (at < 0) return false;
  const head = Buffer.from(raw.subarray(0, at)); // copy: the length field is rewritten
  const len = at + 4 + MI_LEN - STUN_HEADER_LEN;
  head[2] = len >> 8;
  head[3] = len & 0xff;
  const mac = createHmac('sha1', key).update(head).digest();
  return timingSafeEqual(mac, raw.subarray(at + 4, at + 4 + MI_LEN));
}

// ---- ChannelData (hand-written) ----------------------------------------------------------------------

/** ChannelData -> channel and a view of its data; undefined if not ChannelData or truncated/overlong. */
export function parseChannelData(b: Uint8Array): { channel: number; data: Uint8Array } | undefined {
  if (b.length < CHANNEL_HEADER_LEN) return undefined;
  const channel = (b[0]! << 8) | b[1]!;
  const len = (b[2]! << 8) | b[3]!;
  if (channel < CHANNEL_MIN || channel > CHANNEL_MAX) return undefined;
  const extra = b.length - CHANNEL_HEADER_LEN - len;
  if (extra < 0 || extra > 3) return undefined;
  return { channel, data: b.subarray(CHANNEL_HEADER_LEN, CHANNEL_HEADER_LEN + len) };
}

/** Write the 4-byte ChannelData header at `off`. */
export function writeChannelHeader(out: Uint8Array, off: number, channel: number, len: number): void {
  out[off] = channel >> 8;
  out[off + 1] = channel & 0xff;
  out[off + 2] = len >> 8;
  out[off + 3] = len & 0xff;
}

export function encodeChannelData(channel: number, data: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(CHANNEL_HEADER_LEN + data.length);
  writeChannelHeader(out, 0, channel, data.length);
  out.set(data, CHANNEL_HEADER_LEN);
  return out;
}

/** A Send indication (hand-written: per packet): header, XOR-PEER-ADDRESS, DATA. Undefined for a bad peer. */
export function encodeSendIndication(peer: Endpoint, data: Uint8Array, transactionId: Uint8Array): Buffer | undefined {
  const pad = (4 - (data.length & 3)) & 3;
  const addrLen = parseIpv4(peer.address) !== undefined ? 8 : 20;
  const len = 4 + addrLen + 4 + data.length + pad;
  const out = Buffer.allocUnsafe(STUN_HEADER_LEN + len);
  out.writeUInt16BE(stunType(TURN_METHOD_SEND, STUN_CLASS_INDICATION), 0);
  out.writeUInt16BE(len, 2);
  out.writeUInt32BE(STUN_MAGIC_COOKIE, 4);
  out.set(transactionId, 8);
  out.writeUInt16BE(ATTR_XOR_PEER_ADDRESS, 20);
  out.writeUInt16BE(addrLen, 22);
  if (writeXorAddress(out, 24, peer, transactionId) !== addrLen) return undefined;
  const d = 24 + addrLen;
  out.writeUInt16BE(ATTR_DATA, d);
  out.writeUInt16BE(data.length, d + 2);
  out.set(data, d + 4);
  out.fill(0, d + 4 + data.length);
  return out;
}
