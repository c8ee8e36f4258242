// Wire formats of the tunnel layer. All integers little-endian except the TAI64N timestamp (big-endian,
// as TAI64N is defined). The first byte is the type, picked outside RFC 7983's STUN (0-3) and TURN
// channel (64-79) ranges and apart from the overlay's 0xD2, so one UDP socket demultiplexes by it
// (demux.ts). The 3 reserved bytes must be zero: they keep later fields 4-byte aligned and leave
// room for a version without changing the type byte.
//
// 0xC1 handshake initiation (188 bytes), Noise IK message 1:
//    0      1      2      3      4            8                  40                     88                            156        172        188
//   +------+------+------+------+------------+------------------+----------------------+-----------------------------+----------+----------+
//   | 0xC1 |  reserved (0)      | sender idx | ephemeral (32)   | enc static (32+16)   | enc payload (12+32+8+16)    | mac1 (16)| mac2 (16)|
//   +------+------+------+------+------------+------------------+----------------------+-----------------------------+----------+----------+
//   payload = TAI64N timestamp (12) || initiator's Ed25519 public key (32) || NodeID puzzle nonce (u64 BE).
//   Noise authenticates only the X25519 static, which maps back to two Ed25519 keys (P and -P); the key
//   in the payload says which is the initiator's identity, so a responder that has never heard of the
//   initiator (a peer that found us through the overlay) learns its NodeID and overlay addresses from the
//   handshake itself; it checks that the key converts to the authenticated static before believing it.
//   The puzzle nonce proves the work that minting this NodeID cost (overlay/puzzle.ts), so admitting a
//   stranger costs the responder one hash, and a flood of fresh keys costs the sender the puzzle each.

// 0xC2 handshake response (76 bytes), Noise IK message 2:
//    0      1  2  3  4            8              12                 44                 60         76
//   +------+--------+------------+--------------+------------------+------------------+----------+
//   | 0xC2 | 0 0 0  | sender idx | receiver idx | ephemeral (32)   | enc empty (0+16) | mac1 (16)|
//   +------+--------+------------+--------------+------------------+------------------+----------+
//
// 0xC3 cookie reply (64 bytes), the responder's answer to an initiation while under load (cookie.ts):
//    0      1  2  3  4              8                                32                               64
//   +------+--------+--------------+--------------------------------+--------------------------------+
//   | 0xC3 | 0 0 0  | receiver idx | nonce (24)                     | XChaCha20-Poly1305(cookie 16)+16 |
//   +------+--------+--------------+--------------------------------+--------------------------------+
//   receiver idx: the initiation's sender index. The cookie is sealed under BLAKE2s("cookie--" ||
//   responder's static X25519 key) with the initiation's mac1 as associated data, so only the initiator
//   that sent that very initiation can use it, and nobody can plant a cookie for an initiation they did not
//   see. 64 bytes answer 188: an unverified source never gets back more than it sent.
//
// 0xC4 transport data (32 + n bytes; n = 0 is a keepalive):
//    0      1  2  3  4              8                 16
//   +------+--------+--------------+-----------------+-------------------------------+
//   | 0xC4 | 0 0 0  | receiver idx | counter (u64)   | ChaCha20-Poly1305(n) + tag 16 |
//   +------+--------+--------------+-----------------+-------------------------------+
//   The header is NOT fed to the AEAD as associated data, as in WireGuard: the counter is the nonce
//   (changing it breaks the tag), the receiver index only selects the key (changing it finds no key or
//   the wrong one), and the reserved bytes must be zero. So every header bit is already bound, and
//   we save a setAAD() per packet on the hot path.
//
// mac1 (an addition to the fields the design brief lists, taken from WireGuard): BLAKE2s-128 keyed
// with BLAKE2s("mac1----" || receiver's static X25519 key) over all bytes before it. Anyone can
// compute it who knows our public key, so it is not authentication; it lets the responder drop random
// or misdirected 0xC1/0xC2 datagrams with one cheap hash instead of an X25519 operation each.
//
// mac2 (WireGuard's, paper section 5.4.7): BLAKE2s-128 keyed with the last cookie the responder sent us,
// over all bytes before it (mac1 included); zero without a fresh cookie. The cookie is a MAC of our
// source IP:port under a secret the responder rotates every COOKIE_SECRET_ROTATE_MS, so a valid mac2
// proves that the sender receives at the address it sends from: spoofed sources cannot show one.

import { blake2s } from '@noble/hashes/blake2.js';
import { Blake2sMac } from './blake2s-mac.js';

export const MSG_HANDSHAKE_INIT = 0xc1;
export const MSG_HANDSHAKE_RESP = 0xc2;
export const MSG_COOKIE_REPLY = 0xc3;
export const MSG_TRANSPORT = 0xc4;

export const HANDSHAKE_INIT_LEN = 188;
export const HANDSHAKE_RESP_LEN = 76;
export const COOKIE_REPLY_LEN = 64;
export const COOKIE_NONCE_LEN = 24;
export const COOKIE_LEN = 16;
export const TRANSPORT_HEADER_LEN = 16;
export const AEAD_TAG_LEN = 16;
export const TRANSPORT_MIN_LEN = TRANSPORT_HEADER_LEN + AEAD_TAG_LEN;
export const MAC1_LEN = 16;
export const MAC2_LEN = 16;
export const TAI64N_LEN = 12;
/** The initiation payload: TAI64N timestamp || Ed25519 public key || puzzle nonce. */
export const INIT_PAYLOAD_LEN = TAI64N_LEN + 32 + 8;

/** mac1 covers the initiation's bytes before it; mac2 covers those and mac1. */
export const INIT_MAC2_OFF = HANDSHAKE_INIT_LEN - MAC2_LEN;
export const INIT_MAC1_OFF = INIT_MAC2_OFF - MAC1_LEN;
const RESP_MAC1_OFF = HANDSHAKE_RESP_LEN - MAC1_LEN;

/** Largest counter a transport header may carry: numbers are exact up to here (see replay-window.ts). */
export const MAX_COUNTER = Number.MAX_SAFE_INTEGER;

export interface HandshakeInit {
  senderIndex: number;
  ephemeral: Uint8Array; // 32
  encryptedStatic: Uint8Array; // 48
  encryptedPayload: Uint8Array; // 68
  mac1: Uint8Array; // 16
  /** Absent when parsed or marshalled without one: zeros. */
  mac2?: Uint8Array; // 16
}

export interface HandshakeResp {
  senderIndex: number;
  receiverIndex: number;
  ephemeral: Uint8Array; // 32
  encryptedNothing: Uint8Array; // 16
  mac1: Uint8Array; // 16
}

export interface Transport {
  receiverIndex: number;
  counter: number;
  /** Ciphertext followed by the 16-byte tag. */
  ciphertext: Uint8Array;
}

function hasZeroReserved(b: Uint8Array): boolean {
  return b[1] === 0 && b[2] === 0 && b[3] === 0;
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

// ---- 0xC1 -------------------------------------------------------------------------------

/** The Noise message 1 bytes (ephemeral || enc static || enc payload) sit contiguously at 8..156. */
export const INIT_NOISE_OFF = 8;
export const INIT_NOISE_END = INIT_MAC1_OFF;

/** Parsed fields are views into `b`: copy them to keep them past the datagram callback. */
export function parseHandshakeInit(b: Uint8Array): HandshakeInit | undefined {
  if (b.length !== HANDSHAKE_INIT_LEN || b[0] !== MSG_HANDSHAKE_INIT || !hasZeroReserved(b)) return undefined;
  return {
    senderIndex: view(b).getUint32(4, true),
    ephemeral: b.subarray(8, 40),
    encryptedStatic: b.subarray(40, 88),
    encryptedPayload: b.subarray(88, 156),
    mac1: b.subarray(INIT_MAC1_OFF, INIT_MAC2_OFF),
    mac2: b.subarray(INIT_MAC2_OFF, HANDSHAKE_INIT_LEN),
  };
}

/** Marshal; if `mac1Key` is given, mac1 is computed (otherwise m.mac1 is copied as is), and if `cookie`
 *  is given, mac2 is computed with it (otherwise m.mac2, or zeros). */
export function marshalHandshakeInit(m: HandshakeInit, mac1Key?: Uint8Array, cookie?: Uint8Array): Buffer {
  const b = Buffer.alloc(HANDSHAKE_INIT_LEN);
  b[0] = MSG_HANDSHAKE_INIT;
  b.writeUInt32LE(m.senderIndex >>> 0, 4);
  b.set(m.ephemeral.subarray(0, 32), 8);
  b.set(m.encryptedStatic.subarray(0, 48), 40);
  b.set(m.encryptedPayload.subarray(0, 68), 88);
  b.set(mac1Key ? computeMac1(mac1Key, b.subarray(0, INIT_MAC1_OFF)) : m.mac1.subarray(0, MAC1_LEN), INIT_MAC1_OFF);
  if (cookie) b.set(computeMac1(cookie, b.subarray(0, INIT_MAC2_OFF)), INIT_MAC2_OFF);
  else if (m.mac2) b.set(m.mac2.subarray(0, MAC2_LEN), INIT_MAC2_OFF);
  return b;
}

// ---- 0xC3 -------------------------------------------------------------------------------

export interface CookieReply {
  receiverIndex: number;
  nonce: Uint8Array; // 24
  /** The sealed cookie: 16 bytes of ciphertext and the 16-byte tag. */
  encryptedCookie: Uint8Array; // 32
}

export function parseCookieReply(b: Uint8Array): CookieReply | undefined {
  if (b.length !== COOKIE_REPLY_LEN || b[0] !== MSG_COOKIE_REPLY || !hasZeroReserved(b)) return undefined;
  return { receiverIndex: view(b).getUint32(4, true), nonce: b.subarray(8, 32), encryptedCookie: b.subarray(32, 64) };
}

export function marshalCookieReply(m: CookieReply): Buffer {
  const b = Buffer.alloc(COOKIE_REPLY_LEN);
  b[0] = MSG_COOKIE_REPLY;
  b.writeUInt32LE(m.receiverIndex >>> 0, 4);
  b.set(m.nonce.subarray(0, COOKIE_NONCE_LEN), 8);
  b.set(m.encryptedCookie.subarray(0, COOKIE_LEN + AEAD_TAG_LEN), 32);
  return b;
}

// ---- 0xC2 -------------------------------------------------------------------------------

export const RESP_NOISE_OFF = 12;
export const RESP_NOISE_END = RESP_MAC1_OFF;

export function parseHandshakeResp(b: Uint8Array): HandshakeResp | undefined {
  if (b.length !== HANDSHAKE_RESP_LEN || b[0] !== MSG_HANDSHAKE_RESP || !hasZeroReserved(b)) return undefined;
  const v = view(b);
  return {
    senderIndex: v.getUint32(4, true),
    receiverIndex: v.getUint32(8, true),
    ephemeral: b.subarray(12, 44),
    encryptedNothing: b.subarray(44, 60),
    mac1: b.subarray(RESP_MAC1_OFF, HANDSHAKE_RESP_LEN),
  };
}

export function marshalHandshakeResp(m: HandshakeResp, mac1Key?: Uint8Array): Buffer {
  const b = Buffer.alloc(HANDSHAKE_RESP_LEN);
  b[0] = MSG_HANDSHAKE_RESP;
  b.writeUInt32LE(m.senderIndex >>> 0, 4);
  b.writeUInt32LE(m.receiverIndex >>> 0, 8);
  b.set(m.ephemeral.subarray(0, 32), 12);
  b.set(m.encryptedNothing.subarray(0, 16), 44);
  b.set(mac1Key ? computeMac1(mac1Key, b.subarray(0, RESP_MAC1_OFF)) : m.mac1.subarray(0, MAC1_LEN), RESP_MAC1_OFF);
  return b;
}

// ---- 0xC4 -------------------------------------------------------------------------------

/** Parse a transport header. Pass `out` to reuse one object on the hot path (no allocation);
 *  `ciphertext` is a view into `b`. */
export function parseTransport(b: Uint8Array, out?: Transport): Transport | undefined {
  if (b.length < TRANSPORT_MIN_LEN || b[0] !== MSG_TRANSPORT || !hasZeroReserved(b)) return undefined;
  const receiverIndex = (b[4]! | (b[5]! << 8) | (b[6]! << 16) | (b[7]! << 24)) >>> 0;
  const lo = (b[8]! | (b[9]! << 8) | (b[10]! << 16) | (b[11]! << 24)) >>> 0;
  const hi = (b[12]! | (b[13]! << 8) | (b[14]! << 16) | (b[15]! << 24)) >>> 0;
  if (hi >= 0x200000) return undefined; // counter >= 2^53: never sent by a conforming peer
  const r = out ?? ({} as Transport);
  r.receiverIndex = receiverIndex;
  r.counter = hi * 0x100000000 + lo;
  r.ciphertext = b.subarray(TRANSPORT_HEADER_LEN);
  return r;
}

/** Write the 16-byte transport header into `b` at 0 (the sender encrypts straight after it). */
export function writeTransportHeader(b: Uint8Array, receiverIndex: number, counter: number): void {
  b[0] = MSG_TRANSPORT;
  b[1] = 0;
  b[2] = 0;
  b[3] = 0;
  writeU32LE(b, 4, receiverIndex >>> 0);
  writeU32LE(b, 8, counter >>> 0);
  writeU32LE(b, 12, Math.floor(counter / 0x100000000) >>> 0);
}

export function marshalTransport(m: Transport): Buffer {
  const b = Buffer.allocUnsafe(TRANSPORT_HEADER_LEN + m.ciphertext.length);
  writeTransportHeader(b, m.receiverIndex, m.counter);
  b.set(m.ciphertext, TRANSPORT_HEADER_LEN);
  return b;
}

function writeU32LE(b: Uint8Array, off: number, v: number): void {
  b[off] = v & 0xff;
  b[off + 1] = (v >>> 8) & 0xff;
  b[off + 2] = (v >>> 16) & 0xff;
  b[off + 3] = (v >>> 24) & 0xff;
}

// ---- mac1 ----------------------------------------------------------------------------------

const MAC1_LABEL = new TextEncoder().encode('mac1----');

/** Key for mac1 on messages addressed to the holder of `staticPublic` (X25519). */
export function mac1Key(staticPublic: Uint8Array): Uint8Array {
  return blake2s.create().update(MAC1_LABEL).update(staticPublic).digest();
}

const COOKIE_LABEL = new TextEncoder().encode('cookie--');

/** Key that seals cookie replies from the holder of `staticPublic` (X25519). */
export function cookieKey(staticPublic: Uint8Array): Uint8Array {
  return blake2s.create().update(COOKIE_LABEL).update(staticPublic).digest();
}

/** Keyed BLAKE2s-128: mac1, mac2 and the cookie itself (hot callers keep a Blake2sMac per key). */
export function computeMac1(key: Uint8Array, bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(MAC1_LEN);
  new Blake2sMac(key).macInto(bytes, bytes.length, out);
  return out;
}

/** Whether msg[off..off+16] is the MAC of msg[0..off] under `key`. Constant-time enough for a public,
 *  non-secret check (mac1 is not a secret; a mac2 guess is worth one cookie reply, nothing more). */
export function verifyMacAt(key: Uint8Array | Blake2sMac, msg: Uint8Array, off: number): boolean {
  return (key instanceof Blake2sMac ? key : new Blake2sMac(key)).verifyAt(msg, off);
}

/** mac1 of a handshake message: at INIT_MAC1_OFF of an initiation, in the last 16 bytes otherwise. */
export function verifyMac1(key: Uint8Array | Blake2sMac, msg: Uint8Array): boolean {
  return verifyMacAt(key, msg, msg[0] === MSG_HANDSHAKE_INIT && msg.length === HANDSHAKE_INIT_LEN ? INIT_MAC1_OFF : msg.length - MAC1_LEN);
}

// ---- TAI64N ---------------------------------------------------------------------------------

/** TAI64N label of a Unix time in ns: 8-byte big-endian 2^62 + 10 + seconds, 4-byte big-endian ns.
 *  (+10: the TAI-UTC offset at 1972 that TAI64 labels carry, as WireGuard writes them.) Byte order
 *  equals time order, so the responder compares labels with a plain byte compare. */
export function tai64n(unixNs: bigint): Uint8Array {
  const b = Buffer.alloc(TAI64N_LEN);
  b.writeBigUInt64BE((1n << 62n) + 10n + unixNs / 1_000_000_000n, 0);
  b.writeUInt32BE(Number(unixNs % 1_000_000_000n), 8);
  return b;
}

/** >0 if a is later than b (byte order equals time order for TAI64N). */
export function compareTai64n(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}
