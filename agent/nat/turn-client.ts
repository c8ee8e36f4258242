// TURN client (RFC 8656, UDP transport to the server) on the agent's one shared UDP socket.
//
//   agent socket --first byte 0-3 (STUN) or 0x40-0x4F (ChannelData), from the server--> handleDatagram()
//   allocate / permit / bindChannel / refresh / close --> STUN requests --> opts.send(bytes, server)
//   sendTo(peer, bytes) --> ChannelData if a channel to `peer` is bound, else a Send indication
//   relayed datagrams from peers (ChannelData or Data indications) --> onData(peer, bytes)
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
//
// Long-term credentials (RFC 8489 section 9.2): the first Allocate goes without them, the server answers
// 401 with REALM and NONCE, and from then on every request carries USERNAME, REALM, NONCE and
// MESSAGE-INTEGRITY; a success answer to such a request must carry a valid MESSAGE-INTEGRITY or it is
// ignored (counted). 438 Stale Nonce: retry with the new nonce. 401 to a request that carried
// credentials: wrong username or password. 437 Allocation Mismatch to an Allocate (the server still holds
// an allocation for our 5-tuple, e.g. from our previous run): free it with Refresh(0) and allocate again.
//
// Lifetimes: the allocation is refreshed TURN_REFRESH_MARGIN_S before it expires; permissions (5 min) and
// channels (10 min) every TURN_PERMISSION_REFRESH_MS. close() sends Refresh with LIFETIME 0.

import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createRequire } from 'node:module';
import {
  TURN_CHANNEL_LIFETIME_MS, TURN_CLOSE_TIMEOUT_MS, TURN_MAX_STUN_ATTRIBUTES, TURN_MAX_TRANSMISSIONS,
  TURN_PERMISSION_LIFETIME_MS, TURN_PERMISSION_REFRESH_MS, TURN_REFRESH_MARGIN_S, TURN_REFRESH_RETRY_MS,
  TURN_RTO_INITIAL_MS, TURN_STALE_NONCE_RETRIES,
} from '../constants.js';
import { formatIpv4, formatIpv6, parseIpv4, parseIpv6 } from '../idloc/addresses.js';
import { endpointKey, type Endpoint } from './socket.js';

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
const TRANSPORT_UDP = (17 << 24) >>> 0;
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

// ---- the client --------------------------------------------------------------------------------------

export class TurnError extends Error {
  /** STUN error code (401, 437, 438, 441, 486, 508, ...) when the server answered with one. */
  readonly code: number | undefined;
  constructor(message: string, code?: number) {
    super(message);
    this.name = 'TurnError';
    this.code = code;
  }
}

export interface TurnAllocation {
  /** Our address on the relay: peers send here. */
  relayed: Endpoint;
  /** Our address as the server sees it (server-reflexive). */
  mapped: Endpoint;
  lifetimeS: number;
}

export interface TurnClientOptions {
  server: Endpoint;
  username: string;
  password: string;
  /** Send a datagram from the agent's shared socket. */
  send: (bytes: Uint8Array, to: Endpoint) => void;
  /** Clock for expiry bookkeeping (ms); Date.now by default. */
  now?: () => number;
  /** Set when `send` copies the bytes before returning (NativeUdpSocket, MemorySocket do; node:dgram does
   *  not): ChannelData is then built in one preallocated buffer instead of one per packet. */
  sendCopies?: boolean;
  /** Allocation lifetime to ask for (s); the server's default (600 s) if absent. */
  lifetimeS?: number;
  /** Overrides of TURN_RTO_INITIAL_MS and TURN_PERMISSION_REFRESH_MS, for tests. */
  rtoMs?: number;
  permissionRefreshMs?: number;
}

export interface TurnClientStats {
  channelDataIn: number;
  dataIndicationsIn: number;
  channelDataOut: number;
  sendIndicationsOut: number;
  /** sendTo() with no allocation, a bad peer or an oversize payload. */
  sendDropped: number;
  malformed: number;
  notFromServer: number;
  unknownChannel: number;
  unknownTransaction: number;
  badIntegrity: number;
  retransmits: number;
  refreshes: number;
  refreshFailures: number;
  callbackErrors: number;
}

type State = 'idle' | 'allocated' | 'lost' | 'closed';

interface Transaction {
  method: number;
  bytes: Buffer;
  timer: NodeJS.Timeout;
  onAnswer: (m: ParsedStun, raw: Uint8Array) => void;
  fail: (e: Error) => void;
}

interface Permission {
  address: string;
  port: number;
  expiresAt: number;
  timer: NodeJS.Timeout | undefined;
  pending: Promise<void> | undefined;
}

interface Channel {
  number: number;
  peer: Endpoint;
  active: boolean;
  expiresAt: number;
  timer: NodeJS.Timeout | undefined;
  pending: Promise<number> | undefined;
}

const txKey = (id: Uint8Array): string => Buffer.from(id.buffer, id.byteOffset, id.length).toString('latin1');

export class TurnClient {
  /** Relayed datagrams from peers. `bytes` is a view into the received datagram: copy it to keep it. A Buffer
   *  (so it can go straight on to Tunnels.handleDatagram); a handler taking Uint8Array fits too. */
  onData: (from: Endpoint, bytes: Buffer) => void = () => {};
  /** The allocation is gone (a refresh failed until it expired, or the server no longer knows it). */
  onLost: (err: TurnError) => void = () => {};
  readonly stats: TurnClientStats = {
    channelDataIn: 0, dataIndicationsIn: 0, channelDataOut: 0, sendIndicationsOut: 0, sendDropped: 0,
    malformed: 0, notFromServer: 0, unknownChannel: 0, unknownTransaction: 0, badIntegrity: 0,
    retransmits: 0, refreshes: 0, refreshFailures: 0, callbackErrors: 0,
  };

  private readonly server: Endpoint;
  private readonly serverName: string;
  private readonly username: string;
  private readonly password: string;
  private readonly sendRaw: (bytes: Uint8Array, to: Endpoint) => void;
  private readonly now: () => number;
  private readonly rtoMs: number;
  private readonly permissionRefreshMs: number;
  private readonly requestedLifetimeS: number | undefined;
  private readonly scratch: Buffer | undefined;

  private state: State = 'idle';
  private alloc: TurnAllocation | undefined;
  private allocating: Promise<TurnAllocation> | undefined;
  private allocExpiresAt = 0;
  private allocTimer: NodeJS.Timeout | undefined;
  private realm: string | undefined;
  private nonce: string | undefined;
  private key: Buffer | undefined;
  private readonly transactions = new Map<string, Transaction>();
  private readonly permissions = new Map<string, Permission>();
  /** Channels by number - CHANNEL_MIN (the receive hot path) and by address then port (the send path). */
  private readonly channelByNumber: (Channel | undefined)[] = [];
  private readonly channelByPeer = new Map<string, Map<number, Channel>>();
  private nextChannel = CHANNEL_MIN;
  /** Send indications: a random 8-byte prefix and a counter, as they are never matched to anything. */
  private readonly indicationId = randomBytes(12);
  private indicationSeq = 0;

  constructor(opts: TurnClientOptions) {
    this.server = { address: opts.server.address, port: opts.server.port };
    this.serverName = endpointKey(this.server);
    this.username = opts.username;
    this.password = opts.password;
    this.sendRaw = opts.send;
    this.now = opts.now ?? Date.now;
    this.rtoMs = opts.rtoMs ?? TURN_RTO_INITIAL_MS;
    this.permissionRefreshMs = opts.permissionRefreshMs ?? TURN_PERMISSION_REFRESH_MS;
    this.requestedLifetimeS = opts.lifetimeS;
    this.scratch = opts.sendCopies ? Buffer.allocUnsafeSlow(CHANNEL_HEADER_LEN + TURN_MAX_PAYLOAD) : undefined;
  }

  /** The current allocation, if any. */
  get allocation(): TurnAllocation | undefined {
    return this.state === 'allocated' ? this.alloc : undefined;
  }

  /** The channel bound to `peer`, if its ChannelBind succeeded. */
  channelOf(peer: Endpoint): number | undefined {
    const c = this.channelByPeer.get(peer.address)?.get(peer.port);
    return c?.active ? c.number : undefined;
  }

  hasPermission(address: string): boolean {
    const p = this.permissions.get(address);
    if (p && p.expiresAt > this.now()) return true;
    for (const c of this.channelByPeer.get(address)?.values() ?? []) if (c.active && c.expiresAt > this.now()) return true;
    return false;
  }

  // ---- receiving ----

  /** A datagram from the shared socket that demux.ts classed 'stun' or 'turn-channel'. Never throws. */
  handleDatagram(msg: Uint8Array, from: Endpoint): void {
    try {
      if (from.port !== this.server.port || from.address !== this.server.address) {
        this.stats.notFromServer++;
        return;
      }
      const b0 = msg[0];
      if (b0 !== undefined && b0 >= 0x40 && b0 <= 0x4f) {
        // ChannelData hot path: read the header in place.
        if (msg.length < CHANNEL_HEADER_LEN) { this.stats.malformed++; return; }
        const len = (msg[2]! << 8) | msg[3]!;
        const extra = msg.length - CHANNEL_HEADER_LEN - len;
        if (extra < 0 || extra > 3) { this.stats.malformed++; return; }
        const ch = this.channelByNumber[((b0 << 8) | msg[1]!) - CHANNEL_MIN];
        if (ch === undefined || !ch.active || this.state !== 'allocated') { this.stats.unknownChannel++; return; }
        this.stats.channelDataIn++;
        this.deliver(ch.peer, Buffer.from(msg.buffer, msg.byteOffset + CHANNEL_HEADER_LEN, len));
        return;
      }
      const m = parseStunMessage(msg);
      if (!m) { this.stats.malformed++; return; }
      if (m.cls === STUN_CLASS_INDICATION && m.method === TURN_METHOD_DATA) {
        const peerAttr = stunAttribute(m, ATTR_XOR_PEER_ADDRESS);
        const data = stunAttribute(m, ATTR_DATA);
        const peer = peerAttr && parseXorAddress(peerAttr, m.transactionId);
        if (!peer || !data) { this.stats.malformed++; return; }
        if (this.state !== 'allocated') { this.stats.unknownChannel++; return; }
        this.stats.dataIndicationsIn++;
        this.deliver(peer, Buffer.from(data.buffer, data.byteOffset, data.length));
        return;
      }
      if (m.cls !== STUN_CLASS_SUCCESS && m.cls !== STUN_CLASS_ERROR) { this.stats.malformed++; return; }
      const k = txKey(m.transactionId);
      const tx = this.transactions.get(k);
      if (!tx) { this.stats.unknownTransaction++; return; }
      if (tx.method !== m.method) { this.stats.malformed++; return; }
      tx.onAnswer(m, msg);
    } catch {
      this.stats.malformed++;
    }
  }

  private deliver(from: Endpoint, bytes: Buffer): void {
    try {
      this.onData(from, bytes);
    } catch {
      this.stats.callbackErrors++;
    }
  }

  // ---- sending ----

  /** Relay `bytes` to `peer`: ChannelData if a channel is bound, else a Send indication. The peer needs a
   *  permission (permit or bindChannel) or the server drops it. False if not sent (counted). */
  sendTo(peer: Endpoint, bytes: Uint8Array): boolean {
    if (this.state !== 'allocated' || bytes.length > TURN_MAX_PAYLOAD) { this.stats.sendDropped++; return false; }
    const ch = this.channelByPeer.get(peer.address)?.get(peer.port);
    if (ch !== undefined && ch.active) {
      const n = CHANNEL_HEADER_LEN + bytes.length;
      const out = this.scratch ?? Buffer.allocUnsafe(n);
      writeChannelHeader(out, 0, ch.number, bytes.length);
      out.set(bytes, CHANNEL_HEADER_LEN);
      this.sendRaw(this.scratch ? out.subarray(0, n) : out, this.server);
      this.stats.channelDataOut++;
      return true;
    }
    return this.sendIndication(peer, bytes);
  }

  /** Zero-copy variant of sendTo: `frame` holds the payload from byte CHANNEL_HEADER_LEN on, and its first 4
   *  bytes are ours to overwrite with the ChannelData header. */
  sendFrame(peer: Endpoint, frame: Uint8Array): boolean {
    const len = frame.length - CHANNEL_HEADER_LEN;
    if (this.state !== 'allocated' || len < 0 || len > TURN_MAX_PAYLOAD) { this.stats.sendDropped++; return false; }
    const ch = this.channelByPeer.get(peer.address)?.get(peer.port);
    if (ch !== undefined && ch.active) {
      writeChannelHeader(frame, 0, ch.number, len);
      this.sendRaw(frame, this.server);
      this.stats.channelDataOut++;
      return true;
    }
    return this.sendIndication(peer, frame.subarray(CHANNEL_HEADER_LEN));
  }

  private sendIndication(peer: Endpoint, bytes: Uint8Array): boolean {
    const id = this.indicationId;
    id.writeUInt32BE((this.indicationSeq = (this.indicationSeq + 1) >>> 0), 8);
    const out = encodeSendIndication(peer, bytes, id);
    if (!out) { this.stats.sendDropped++; return false; }
    this.sendRaw(out, this.server);
    this.stats.sendIndicationsOut++;
    return true;
  }

  // ---- requests and the credential dance ----

  private request(method: number, what: string, fill: (m: StunOutgoing) => void): Promise<ParsedStun> {
    return new Promise<ParsedStun>((resolve, reject) => {
      let staleRetries = 0;
      const attempt = (): void => {
        const m = stunPackage.createMessage(stunType(method, STUN_CLASS_REQUEST));
        fill(m);
        const key = this.key;
        const nonce = this.nonce;
        if (key) {
          m.addAttribute(ATTR_USERNAME, this.username);
          m.addAttribute(ATTR_REALM, this.realm);
          m.addAttribute(ATTR_NONCE, nonce);
          m.addMessageIntegrity(key);
        }
        const bytes = m.toBuffer();
        const k = txKey(m.transactionId);
        let rto = this.rtoMs;
        let sent = 1;
        const done = (): void => { clearTimeout(tx.timer); this.transactions.delete(k); };
        const onTimer = (): void => {
          if (sent >= TURN_MAX_TRANSMISSIONS) {
            done();
            reject(new TurnError(`TURN ${what}: no answer from ${this.serverName} after ${sent} tries`));
            return;
          }
          sent++;
          rto *= 2;
          this.stats.retransmits++;
          this.sendRaw(bytes, this.server);
          tx.timer = setTimeout(onTimer, rto).unref();
        };
        const tx: Transaction = {
          method,
          bytes,
          timer: setTimeout(onTimer, rto).unref(),
          fail: (e) => { done(); reject(e); },
          onAnswer: (ans, raw) => {
            if (ans.cls === STUN_CLASS_SUCCESS) {
              // An answer to a request with credentials must prove the server knows them too.
              if (key && !verifyMessageIntegrity(raw, ans, key)) { this.stats.badIntegrity++; return; }
              done();
              resolve(ans);
              return;
            }
            done();
            const ec = parseErrorCode(stunAttribute(ans, ATTR_ERROR_CODE) ?? new Uint8Array(0));
            if (!ec) { reject(new TurnError(`TURN ${what}: ${this.serverName} sent an error answer without a valid ERROR-CODE`)); return; }
            const realm = textAttr(ans, ATTR_REALM);
            const newNonce = textAttr(ans, ATTR_NONCE);
            if (ec.code === 401 && !key && realm !== undefined && newNonce !== undefined) {
              this.realm = realm;
              this.nonce = newNonce;
              this.key = longTermKey(this.username, realm, this.password);
              attempt();
              return;
            }
            if (ec.code === 401 && key && nonce !== this.nonce) {
              attempt(); // another request learned a fresh nonce meanwhile
              return;
            }
            if (ec.code === 438 && newNonce !== undefined && staleRetries < TURN_STALE_NONCE_RETRIES) {
              staleRetries++;
              this.nonce = newNonce;
              if (realm !== undefined && realm !== this.realm) {
                this.realm = realm;
                this.key = longTermKey(this.username, realm, this.password);
              }
              attempt();
              return;
            }
            if (ec.code === 401) {
              reject(new TurnError(
                `TURN ${what} refused by ${this.serverName}: 401 ${ec.reason || 'Unauthorized'} ` +
                (key ? `(wrong username or password for realm "${this.realm}")` : '(no REALM/NONCE to answer with)'), 401));
              return;
            }
            reject(new TurnError(`TURN ${what} refused by ${this.serverName}: ${ec.code} ${ec.reason}`.trimEnd(), ec.code));
          },
        };
        this.transactions.set(k, tx);
        this.sendRaw(bytes, this.server);
      };
      attempt();
    });
  }

  // ---- allocation ----

  /** Allocate a relayed address (once; later calls get the same allocation or the same pending attempt). */
  allocate(): Promise<TurnAllocation> {
    if (this.state === 'closed') return Promise.reject(new TurnError('TURN client closed'));
    if (this.state === 'allocated' && this.alloc) return Promise.resolve(this.alloc);
    if (!this.allocating) {
      this.allocating = this.doAllocate().finally(() => { this.allocating = undefined; });
    }
    return this.allocating;
  }

  private async doAllocate(): Promise<TurnAllocation> {
    const fill = (m: StunOutgoing): void => {
      m.addAttribute(ATTR_REQUESTED_TRANSPORT, TRANSPORT_UDP);
      if (this.requestedLifetimeS !== undefined) m.addAttribute(ATTR_LIFETIME, this.requestedLifetimeS);
    };
    let ans: ParsedStun;
    try {
      ans = await this.request(TURN_METHOD_ALLOCATE, 'Allocate', fill);
    } catch (e) {
      if (!(e instanceof TurnError) || e.code !== 437 || this.state === 'closed') throw e;
      // The server still holds an allocation for this 5-tuple (our previous run): free it, try once more.
      await this.request(TURN_METHOD_REFRESH, 'Refresh', (m) => m.addAttribute(ATTR_LIFETIME, 0)).catch(() => undefined);
      ans = await this.request(TURN_METHOD_ALLOCATE, 'Allocate', fill);
    }
    const tid = ans.transactionId;
    const relayedAttr = stunAttribute(ans, ATTR_XOR_RELAYED_ADDRESS);
    const mappedAttr = stunAttribute(ans, ATTR_XOR_MAPPED_ADDRESS);
    const relayed = relayedAttr && parseXorAddress(relayedAttr, tid);
    const mapped = mappedAttr && parseXorAddress(mappedAttr, tid);
    const lifetimeS = readU32Attr(ans, ATTR_LIFETIME);
    if (!relayed || !mapped || lifetimeS === undefined) {
      throw new TurnError(`TURN Allocate: ${this.serverName} answered without XOR-RELAYED-ADDRESS, XOR-MAPPED-ADDRESS or LIFETIME`);
    }
    if (this.state === 'closed') throw new TurnError('TURN client closed');
    this.alloc = { relayed, mapped, lifetimeS };
    this.state = 'allocated';
    this.scheduleAllocationRefresh(lifetimeS);
    return this.alloc;
  }

  private scheduleAllocationRefresh(lifetimeS: number): void {
    this.allocExpiresAt = this.now() + lifetimeS * 1000;
    const inS = lifetimeS - Math.min(TURN_REFRESH_MARGIN_S, lifetimeS / 2);
    clearTimeout(this.allocTimer);
    this.allocTimer = setTimeout(() => this.refreshAllocation(), inS * 1000).unref();
  }

  /** Is the server still there and still holding our allocation? A Refresh (which also renews it): no
   *  answer to any retransmission, or an error, and the allocation is lost (onLost). The agent calls this
   *  every TURN_KEEPALIVE_MS, which also keeps the NAT mapping towards the server open. */
  probe(): void {
    this.refreshAllocation(true);
  }

  /** Renew the allocation; a failed renewal is retried until it expires, a failed probe loses it at once. */
  private refreshAllocation(probe = false): void {
    if (this.state !== 'allocated') return;
    this.stats.refreshes++;
    this.request(TURN_METHOD_REFRESH, 'Refresh', (m) => {
      if (this.requestedLifetimeS !== undefined) m.addAttribute(ATTR_LIFETIME, this.requestedLifetimeS);
    }).then((ans) => {
      if (this.state !== 'allocated') return;
      const lifetimeS = readU32Attr(ans, ATTR_LIFETIME) ?? this.alloc!.lifetimeS;
      this.alloc!.lifetimeS = lifetimeS;
      this.scheduleAllocationRefresh(lifetimeS);
    }, (e: TurnError) => {
      if (this.state !== 'allocated') return;
      this.stats.refreshFailures++;
      const left = this.allocExpiresAt - this.now();
      if (probe || e.code === 437 || left <= 0) { this.lose(e); return; }
      clearTimeout(this.allocTimer);
      this.allocTimer = setTimeout(() => this.refreshAllocation(), Math.min(TURN_REFRESH_RETRY_MS, left)).unref();
    });
  }

  private lose(e: TurnError): void {
    this.state = 'lost';
    this.clearState();
    this.onLost(new TurnError(`TURN allocation on ${this.serverName} lost: ${e.message}`, e.code));
  }

  private clearState(): void {
    clearTimeout(this.allocTimer);
    this.allocTimer = undefined;
    for (const p of this.permissions.values()) clearTimeout(p.timer);
    this.permissions.clear();
    for (const c of this.channelByNumber) if (c) clearTimeout(c.timer);
    this.channelByNumber.length = 0;
    this.channelByPeer.clear();
  }

  // ---- permissions ----

  /** Install a permission for `peer`'s address (CreatePermission; ports do not matter), refreshed until close. */
  permit(peer: Endpoint): Promise<void> {
    if (this.state !== 'allocated') return Promise.reject(new TurnError('TURN permit: no allocation'));
    let p = this.permissions.get(peer.address);
    if (p?.pending) return p.pending;
    if (p && p.expiresAt > this.now()) return Promise.resolve();
    if (!p) {
      p = { address: peer.address, port: peer.port, expiresAt: 0, timer: undefined, pending: undefined };
      this.permissions.set(peer.address, p);
    }
    const perm = p;
    perm.pending = this.createPermission(peer).then(() => {
      perm.pending = undefined;
      this.permissionGranted(perm);
    }, (e: unknown) => {
      perm.pending = undefined;
      if (perm.expiresAt <= this.now() && this.permissions.get(perm.address) === perm) this.permissions.delete(perm.address);
      throw e;
    });
    return perm.pending;
  }

  private createPermission(peer: Endpoint): Promise<ParsedStun> {
    return this.request(TURN_METHOD_CREATE_PERMISSION, 'CreatePermission', (m) => m.addAttribute(ATTR_XOR_PEER_ADDRESS, peer.address, peer.port));
  }

  private permissionGranted(p: Permission): void {
    if (this.permissions.get(p.address) !== p) return; // cleared meanwhile
    p.expiresAt = this.now() + TURN_PERMISSION_LIFETIME_MS;
    clearTimeout(p.timer);
    p.timer = setTimeout(() => this.refreshPermission(p), this.permissionRefreshMs).unref();
  }

  private refreshPermission(p: Permission): void {
    if (this.state !== 'allocated' || this.permissions.get(p.address) !== p) return;
    this.stats.refreshes++;
    this.createPermission(p).then(() => this.permissionGranted(p), () => {
      this.stats.refreshFailures++;
      const left = p.expiresAt - this.now();
      if (left <= 0) { this.permissions.delete(p.address); return; }
      p.timer = setTimeout(() => this.refreshPermission(p), Math.min(TURN_REFRESH_RETRY_MS, left)).unref();
    });
  }

  // ---- channels ----

  /** Bind a channel to `peer` (ChannelBind; also installs its permission); from then on sendTo(peer)
   *  sends 4-byte-header ChannelData. Resolves with the channel number; kept refreshed until close. */
  bindChannel(peer: Endpoint): Promise<number> {
    if (this.state !== 'allocated') return Promise.reject(new TurnError('TURN bindChannel: no allocation'));
    let byPort = this.channelByPeer.get(peer.address);
    const existing = byPort?.get(peer.port);
    if (existing?.pending) return existing.pending;
    if (existing?.active) return Promise.resolve(existing.number);
    let ch = existing;
    if (!ch) {
      const number = this.freeChannel();
      if (number === undefined) return Promise.reject(new TurnError('TURN bindChannel: all 4096 channels in use'));
      ch = { number, peer: { address: peer.address, port: peer.port }, active: false, expiresAt: 0, timer: undefined, pending: undefined };
      if (!byPort) this.channelByPeer.set(peer.address, (byPort = new Map()));
      byPort.set(peer.port, ch);
      this.channelByNumber[number - CHANNEL_MIN] = ch;
    }
    const c = ch;
    c.pending = this.channelBind(c).then(() => {
      c.pending = undefined;
      this.channelBound(c);
      return c.number;
    }, (e: unknown) => {
      c.pending = undefined;
      if (!c.active) this.dropChannel(c);
      throw e;
    });
    return c.pending;
  }

  private freeChannel(): number | undefined {
    for (let i = 0; i <= CHANNEL_MAX - CHANNEL_MIN; i++) {
      const n = this.nextChannel;
      this.nextChannel = n === CHANNEL_MAX ? CHANNEL_MIN : n + 1;
      if (this.channelByNumber[n - CHANNEL_MIN] === undefined) return n;
    }
    return undefined;
  }

  private channelBind(c: Channel): Promise<ParsedStun> {
    return this.request(TURN_METHOD_CHANNEL_BIND, 'ChannelBind', (m) => {
      m.addAttribute(ATTR_CHANNEL_NUMBER, (c.number << 16) >>> 0);
      m.addAttribute(ATTR_XOR_PEER_ADDRESS, c.peer.address, c.peer.port);
    });
  }

  private channelBound(c: Channel): void {
    if (this.channelByNumber[c.number - CHANNEL_MIN] !== c) return; // cleared meanwhile
    c.active = true;
    // The binding lives 10 min, the permission it installs 5: the permission bounds it.
    c.expiresAt = this.now() + Math.min(TURN_CHANNEL_LIFETIME_MS, TURN_PERMISSION_LIFETIME_MS);
    clearTimeout(c.timer);
    c.timer = setTimeout(() => this.refreshChannel(c), this.permissionRefreshMs).unref();
  }

  private refreshChannel(c: Channel): void {
    if (this.state !== 'allocated' || this.channelByNumber[c.number - CHANNEL_MIN] !== c) return;
    this.stats.refreshes++;
    this.channelBind(c).then(() => this.channelBound(c), () => {
      this.stats.refreshFailures++;
      const left = c.expiresAt - this.now();
      if (left <= 0) { this.dropChannel(c); return; }
      c.timer = setTimeout(() => this.refreshChannel(c), Math.min(TURN_REFRESH_RETRY_MS, left)).unref();
    });
  }

  private dropChannel(c: Channel): void {
    clearTimeout(c.timer);
    if (this.channelByNumber[c.number - CHANNEL_MIN] === c) this.channelByNumber[c.number - CHANNEL_MIN] = undefined;
    const byPort = this.channelByPeer.get(c.peer.address);
    if (byPort?.get(c.peer.port) === c) {
      byPort.delete(c.peer.port);
      if (byPort.size === 0) this.channelByPeer.delete(c.peer.address);
    }
  }

  // ---- closing ----

  /** Stop refreshing, fail pending requests, and free the allocation (Refresh with LIFETIME 0, waited for
   *  at most TURN_CLOSE_TIMEOUT_MS). Never rejects. */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    const had = this.state === 'allocated';
    this.state = 'closed';
    this.clearState();
    for (const tx of [...this.transactions.values()]) tx.fail(new TurnError('TURN client closed'));
    if (!had || !this.key) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.request(TURN_METHOD_REFRESH, 'Refresh', (m) => m.addAttribute(ATTR_LIFETIME, 0)).catch(() => undefined),
      new Promise<void>((r) => { timer = setTimeout(r, TURN_CLOSE_TIMEOUT_MS).unref(); }),
    ]);
    clearTimeout(timer);
    for (const tx of [...this.transactions.values()]) tx.fail(new TurnError('TURN client closed'));
  }
}

function textAttr(m: ParsedStun, type: number): string | undefined {
  const v = stunAttribute(m, type);
  if (!v || v.length > MAX_TEXT_BYTES) return undefined;
  return Buffer.from(v.buffer, v.byteOffset, v.length).toString('utf8');
}

function readU32Attr(m: ParsedStun, type: number): number | undefined {
  const v = stunAttribute(m, type);
  if (!v || v.length !== 4) return undefined;
  return ((v[0]! << 24) | (v[1]! << 16) | (v[2]! << 8) | v[3]!) >>> 0;
}
