// TURN's wire formats (RFC 8656 over UDP) as the TURN client (turn-client.ts) speaks them, on the STUN
// codec in stun-wire.ts (which draws the STUN header, the attribute framing, the XOR addresses,
// ERROR-CODE and MESSAGE-INTEGRITY): TURN's methods and attributes, the long-term credential key,
// Send indications and ChannelData.
//
// Methods, in the STUN header's message type (class request 0x000, indication 0x010, success 0x100,
// error 0x110): Allocate 3, Refresh 4, Send 6, Data 7, CreatePermission 8, ChannelBind 9; so an Allocate
// error is 0x0113, a Send indication 0x0016, a Data indication 0x0017.
//
//   Allocate request          REQUESTED-TRANSPORT [LIFETIME]           -> XOR-RELAYED-ADDRESS XOR-MAPPED-ADDRESS LIFETIME
//   Refresh request           [LIFETIME] (0 frees the allocation)      -> [LIFETIME]
//   CreatePermission request  XOR-PEER-ADDRESS
//   ChannelBind request       CHANNEL-NUMBER XOR-PEER-ADDRESS
//   Send indication (to the server), Data indication (from it): XOR-PEER-ADDRESS DATA
//   Requests once challenged (401 with REALM and NONCE) add USERNAME REALM NONCE MESSAGE-INTEGRITY.
//
// TURN's attributes:
//   CHANNEL-NUMBER 0x000C: | channel number (16) | RFFU (16) = 0 |
//   LIFETIME 0x000D: u32 seconds
//   XOR-PEER-ADDRESS 0x0012, XOR-RELAYED-ADDRESS 0x0016: as XOR-MAPPED-ADDRESS
//   DATA 0x0013: the relayed datagram, as is
//   REQUESTED-TRANSPORT 0x0019: | protocol (8) = 17, UDP | RFFU (24) = 0 |
//   MESSAGE-INTEGRITY key: MD5(username ":" realm ":" password), the long-term credential (the password
//     used as UTF-8, which is SASLprep's result for ASCII).
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
import { parseIpv4 } from '../idloc/addresses.js';
import type { Endpoint } from '../conn/socket.js';
import {
  ATTR, STUN_CLASS_INDICATION, STUN_CLASS_REQUEST, STUN_HEADER_BYTES, encodeStun, padded, writeAttrHeader, writeStunHeader,
  writeXorAddress, type StunAttr,
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
export const ATTR_REQUESTED_TRANSPORT = 0x0019;
/** The STUN attributes TURN messages carry, under the names of TURN's own. */
export const {
  USERNAME: ATTR_USERNAME, MESSAGE_INTEGRITY: ATTR_MESSAGE_INTEGRITY, ERROR_CODE: ATTR_ERROR_CODE, REALM: ATTR_REALM,
  NONCE: ATTR_NONCE, XOR_MAPPED_ADDRESS: ATTR_XOR_MAPPED_ADDRESS, FINGERPRINT: ATTR_FINGERPRINT,
} = ATTR;

/** REQUESTED-TRANSPORT value: protocol 17 (UDP) in the top byte, 3 bytes RFFU. */
export const TRANSPORT_UDP = (17 << 24) >>> 0;
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
