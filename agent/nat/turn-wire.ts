// TURN's wire formats (RFC 8656 over UDP) as the TURN client (turn-client.ts) speaks them, on the STUN
// codec in stun-wire.ts (which draws the STUN header, the attribute framing, the XOR addresses,
// ERROR-CODE and MESSAGE-INTEGRITY): TURN's methods and attributes, the long-term credential key,
// Send indications and ChannelData.
//
// Methods, in the STUN header's message type (class request 0x000, indication 0x010, success 0x100,
// error 0x110): Allocate 3, Refresh 4, Send 6, Data 7, CreatePermission 8, ChannelBind 9; so an Allocate
// error is 0x0113, a Send indication 0x0016, a Data indication 0x0017.
//
//   Allocate request          REQUESTED-TRANSPORT [LIFETIME] [ADDITIONAL-ADDRESS-FAMILY | REQUESTED-ADDRESS-FAMILY]
//                               -> XOR-RELAYED-ADDRESS (one per family allocated) XOR-MAPPED-ADDRESS LIFETIME
//                                  [ADDRESS-ERROR-CODE (a family asked for and not allocated)]
//   Refresh request           [LIFETIME] (0 frees the allocation, every family of it) -> [LIFETIME]
//   CreatePermission request  XOR-PEER-ADDRESS (of a family the allocation has, else 443)
//   ChannelBind request       CHANNEL-NUMBER XOR-PEER-ADDRESS
//   Send indication (to the server), Data indication (from it): XOR-PEER-ADDRESS DATA
//   Requests once challenged (401 with REALM and NONCE) add USERNAME REALM NONCE MESSAGE-INTEGRITY.
//
// TURN's attributes:
//   CHANNEL-NUMBER 0x000C: | channel number (16) | RFFU (16) = 0 |
//   LIFETIME 0x000D: u32 seconds
//   XOR-PEER-ADDRESS 0x0012, XOR-RELAYED-ADDRESS 0x0016: as XOR-MAPPED-ADDRESS (RFC 8489 section 14.2):
//     | 0 (8) | family (8): 1 IPv4, 2 IPv6 | port XOR 0x2112 (16) |
//     | IPv4: address XOR magic cookie (32) | or IPv6: address XOR (magic cookie ‖ transaction id) (128) |
//     A dual allocation answers with XOR-RELAYED-ADDRESS twice, one per family: the one attribute of
//     which more than the first counts. coturn writes a family it failed to allocate as the unspecified
//     address, port 0 (relayedAddresses() skips it).
//   DATA 0x0013: the relayed datagram, as is
//   REQUESTED-ADDRESS-FAMILY 0x0017, ADDITIONAL-ADDRESS-FAMILY 0x8000:
//     | family (8): 0x01 IPv4, 0x02 IPv6 | RFFU (24) = 0 |
//     REQUESTED: one relayed address of that family (absent: IPv4). ADDITIONAL, whose one valid value is
//     IPv6: an IPv4 relayed address and an IPv6 one (a dual allocation), so that a client on either
//     family can be reached from both. Never both in one request (400).
//   ADDRESS-ERROR-CODE 0x8001, in a dual allocation's success: the family that was not allocated, and why
//     | family (8) | reserved (13) | class (3) | number (8) | UTF-8 reason (coturn pads it with NULs) |
//   REQUESTED-TRANSPORT 0x0019: | protocol (8) = 17, UDP | RFFU (24) = 0 |
//   coturn (4.6) reads ADDITIONAL-ADDRESS-FAMILY and writes ADDRESS-ERROR-CODE at 0x8032 and 0x8033, the
//     codepoints of the draft it implemented: we send the first at both codepoints (each is
//     comprehension-optional, so a server ignores the one it does not know) and read the second at both.
//   MESSAGE-INTEGRITY key: MD5(username ":" realm ":" password), the long-term credential (the password
//     used as UTF-8, which is SASLprep's result for ASCII).
//
// Error codes of TURN's own the client acts on: 437 Allocation Mismatch, 440 Address Family not
// Supported (the family asked for, or with none asked for, IPv4), 443 Peer Address Family Mismatch.
//
// ChannelData (RFC 8656 section 12.4), the data path once a channel is bound:
//    0                   1                   2                   3
//   +---------------------------------+-------------------------------+
//   |  channel number 0x4000-0x4FFF   |  length of data (16)          |
//   +---------------------------------+-------------------------------+
//   |  data ... (we send no padding: over UDP it is optional; up to 3 trailing pad bytes are accepted)
//   First byte 0x40-0x4F: demux.ts classes it 'turn-channel'. The hot path reads the 4 bytes in place
//   (no STUN decode, no allocation but the payload view) and looks the channel up in an array.

import { createHash, randomBytes } from 'node:crypto';
import { parseIpv4, parseIpv6 } from '../idloc/addresses.js';
import type { Endpoint } from '../conn/socket.js';
import {
  ATTR, STUN_CLASS_INDICATION, STUN_CLASS_REQUEST, STUN_HEADER_BYTES, encodeStun, padded, readErrorCode, readAddress,
  writeAttrHeader, writeStunHeader, writeXorAddress, type ParsedStun, type StunAttr,
} from './stun-wire.js';

export const TURN_METHOD_ALLOCATE = 0x003;
export const TURN_METHOD_REFRESH = 0x004;
export const TURN_METHOD_SEND = 0x006;
export const TURN_METHOD_DATA = 0x007;
export const TURN_METHOD_CREATE_PERMISSION = 0x008;
export const TURN_METHOD_CHANNEL_BIND = 0x009;

export const ATTR_CHANNEL_NUMBER = 0x000c;
export const ATTR_LIFETIME = 0x000d;
export const ATTR_XOR_PEER_ADDRESS = 0x0012;
export const ATTR_DATA = 0x0013;
export const ATTR_XOR_RELAYED_ADDRESS = 0x0016;
export const ATTR_REQUESTED_ADDRESS_FAMILY = 0x0017;
export const ATTR_REQUESTED_TRANSPORT = 0x0019;
export const ATTR_ADDITIONAL_ADDRESS_FAMILY = 0x8000;
export const ATTR_ADDRESS_ERROR_CODE = 0x8001;
/** coturn's codepoints for the two attributes above (see the top). */
export const ATTR_ADDITIONAL_ADDRESS_FAMILY_COTURN = 0x8032;
export const ATTR_ADDRESS_ERROR_CODE_COTURN = 0x8033;
/** The STUN attributes TURN messages carry, under the names of TURN's own. */
export const {
  USERNAME: ATTR_USERNAME, MESSAGE_INTEGRITY: ATTR_MESSAGE_INTEGRITY, ERROR_CODE: ATTR_ERROR_CODE, REALM: ATTR_REALM,
  NONCE: ATTR_NONCE, XOR_MAPPED_ADDRESS: ATTR_XOR_MAPPED_ADDRESS, FINGERPRINT: ATTR_FINGERPRINT,
} = ATTR;

/** REQUESTED-TRANSPORT value: protocol 17 (UDP) in the top byte, 3 bytes RFFU. */
export const TRANSPORT_UDP = (17 << 24) >>> 0;
export const ADDRESS_FAMILY_IPV4 = 0x01;
export const ADDRESS_FAMILY_IPV6 = 0x02;
export type AddressFamily = typeof ADDRESS_FAMILY_IPV4 | typeof ADDRESS_FAMILY_IPV6;
export const ERROR_ALLOCATION_MISMATCH = 437;
export const ERROR_ADDRESS_FAMILY_NOT_SUPPORTED = 440;
export const ERROR_PEER_ADDRESS_FAMILY_MISMATCH = 443;
export const CHANNEL_MIN = 0x4000;
export const CHANNEL_MAX = 0x4fff;
/** Bytes in front of a ChannelData payload; callers of sendFrame() leave this much room. */
export const CHANNEL_HEADER_LEN = 4;
/** Largest payload sendTo() relays: the biggest Send indication (20-byte header, 24-byte IPv6
 *  XOR-PEER-ADDRESS, 4-byte DATA header, 3 bytes of padding) must still fit one UDP datagram (65507). */
export const TURN_MAX_PAYLOAD = 65507 - 51;

/** Long-term credential key: MD5(username ":" realm ":" password). */
export function longTermKey(username: string, realm: string, password: string): Buffer {
  return createHash('md5').update(`${username}:${realm}:${password}`, 'utf8').digest();
}

/** The credentials a challenged request carries. */
export interface TurnCredentials { username: string; realm: string; nonce: string; key: Buffer }

/** A TURN request with a fresh transaction id: `attrs`, then USERNAME, REALM, NONCE and
 *  MESSAGE-INTEGRITY if `credentials`. Undefined if a peer address is not an IP address. */
export function encodeTurnRequest(method: number, attrs: readonly StunAttr[], credentials?: TurnCredentials):
  { bytes: Buffer; transactionId: Buffer } | undefined {
  const transactionId = randomBytes(12);
  const all = credentials
    ? [...attrs, [ATTR.USERNAME, credentials.username], [ATTR.REALM, credentials.realm], [ATTR.NONCE, credentials.nonce]] as const
    : attrs;
  const bytes = encodeStun(method, STUN_CLASS_REQUEST, transactionId, all, credentials?.key);
  return bytes && { bytes, transactionId };
}

// ---- address families (dual allocation) -------------------------------------------------------------

/** The family of an address as text (IPv4 dotted quad, IPv6 plain), or undefined if it is neither. Per
 *  packet on the send path: the IPv6 test is one character search, no parse. */
export function familyOf(address: string): AddressFamily | undefined {
  if (address.includes(':')) return parseIpv6(address) ? ADDRESS_FAMILY_IPV6 : undefined;
  return parseIpv4(address) !== undefined ? ADDRESS_FAMILY_IPV4 : undefined;
}

/** REQUESTED-ADDRESS-FAMILY / ADDITIONAL-ADDRESS-FAMILY value: the family in the top byte, RFFU 0. */
export const addressFamilyValue = (family: AddressFamily): number => (family << 24) >>> 0;

/** REQUESTED-/ADDITIONAL-ADDRESS-FAMILY value -> family; undefined unless 4 bytes naming IPv4 or IPv6. */
export function parseAddressFamily(v: Uint8Array): AddressFamily | undefined {
  const f = v[0];
  return v.length === 4 && (f === ADDRESS_FAMILY_IPV4 || f === ADDRESS_FAMILY_IPV6) ? f : undefined;
}

export interface AddressError { family: AddressFamily; code: number; reason: string }

/** ADDRESS-ERROR-CODE value for `family`, `code` (300-699) and `reason`. */
export function addressErrorCodeValue(family: AddressFamily, code: number, reason: string): Buffer {
  const r = Buffer.from(reason, 'utf8');
  const v = Buffer.alloc(4 + r.length);
  v[0] = family;
  v[2] = Math.floor(code / 100) & 7;
  v[3] = code % 100;
  v.set(r, 4);
  return v;
}

/** ADDRESS-ERROR-CODE value -> family, code and reason (trailing NUL padding dropped); undefined if
 *  malformed (short, a family that is neither, a code outside 300-699). */
export function parseAddressErrorCode(v: Uint8Array): AddressError | undefined {
  const family = v[0];
  const code = readErrorCode(v, 0, v.length);
  if (code < 0 || (family !== ADDRESS_FAMILY_IPV4 && family !== ADDRESS_FAMILY_IPV6)) return undefined;
  let end = v.length;
  while (end > 4 && v[end - 1] === 0) end--;
  return { family, code, reason: Buffer.from(v.buffer, v.byteOffset + 4, end - 4).toString('utf8') };
}

/** The relayed addresses of an Allocate success: the first well-formed XOR-RELAYED-ADDRESS of each
 *  family, IPv4 first, none unspecified (0.0.0.0, ::) or of port 0. */
export function relayedAddresses(m: ParsedStun): Endpoint[] {
  let v4: Endpoint | undefined, v6: Endpoint | undefined;
  for (const a of m.attributes) {
    if (a.type !== ATTR_XOR_RELAYED_ADDRESS) continue;
    const e = readAddress(a.value, 0, a.value.length, m.transactionId);
    if (!e || e.address === '0.0.0.0' || e.address === '::') continue;
    if (e.address.includes(':')) v6 ??= e;
    else v4 ??= e;
  }
  return v4 && v6 ? [v4, v6] : v4 ? [v4] : v6 ? [v6] : [];
}

/** The first well-formed ADDRESS-ERROR-CODE of a message, at either codepoint (see the top). */
export function addressError(m: ParsedStun): AddressError | undefined {
  for (const a of m.attributes) {
    if (a.type !== ATTR_ADDRESS_ERROR_CODE && a.type !== ATTR_ADDRESS_ERROR_CODE_COTURN) continue;
    const e = parseAddressErrorCode(a.value);
    if (e) return e;
  }
  return undefined;
}

/** CHANNEL-NUMBER value: the number in the top 16 bits, RFFU 0. */
export const channelNumberValue = (channel: number): number => (channel << 16) >>> 0;

// ---- the data path: Send indications and ChannelData --------------------------------------------------

/** A Send indication (per packet, so written in one go): header, XOR-PEER-ADDRESS, DATA. Undefined for a
 *  bad peer. */
export function encodeSendIndication(peer: Endpoint, data: Uint8Array, transactionId: Uint8Array): Buffer | undefined {
  const addrLen = parseIpv4(peer.address) !== undefined ? 8 : 20;
  const len = 4 + addrLen + 4 + padded(data.length);
  const out = Buffer.allocUnsafe(STUN_HEADER_BYTES + len);
  writeStunHeader(out, TURN_METHOD_SEND, STUN_CLASS_INDICATION, transactionId);
  out.writeUInt16BE(len, 2);
  let off = writeAttrHeader(out, STUN_HEADER_BYTES, ATTR_XOR_PEER_ADDRESS, addrLen);
  if (writeXorAddress(out, off, peer, transactionId) !== addrLen) return undefined;
  off = writeAttrHeader(out, off + addrLen, ATTR_DATA, data.length);
  out.set(data, off);
  out.fill(0, off + data.length);
  return out;
}

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
