// Binding messages (RFC 8489 method 0x001) as the STUN endpoint (stun-endpoint.ts) reads and writes them,
// with ICE's (RFC 8445) and RFC 5780's attributes, on the codec in stun-wire.ts (which draws the format):
//
//   request   [USERNAME "<answerer's ufrag>:<asker's ufrag>"] [SOFTWARE] [PRIORITY] [ICE-CONTROLLING |
//             ICE-CONTROLLED] [USE-CANDIDATE] [CHANGE-REQUEST] [PADDING] [MESSAGE-INTEGRITY] FINGERPRINT
//   PADDING   0x0026 (RFC 5780 section 7.6): zeros that make a request as long as its answer, so a server
//             that never answers an unverified source with more than it sent (stun-endpoint.ts) answers it
//   success   XOR-MAPPED-ADDRESS [RESPONSE-ORIGIN OTHER-ADDRESS] [SOFTWARE] [MESSAGE-INTEGRITY] FINGERPRINT
//             RESPONSE-ORIGIN (0x802B) and OTHER-ADDRESS (0x802C), RFC 5780 section 7.3/7.4, plain (not XOR'd)
//             addresses, only from a server with a second port: where the answer left from, and the
//             address a change-port request is answered from (our other socket: same IP, another port)
//   error     ERROR-CODE [UNKNOWN-ATTRIBUTES] [SOFTWARE] [MESSAGE-INTEGRITY] FINGERPRINT
//
// parseStun reads any STUN message into one object with the attributes this endpoint knows, in place: no
// copy, strings only for the attributes present (~1 us). It is strict, as answering a request is what a
// remote sender can make us do: a malformed attribute it interprets, anything after FINGERPRINT, a wrong
// FINGERPRINT all refuse the message. Answers cost one buffer each (~2 us), as a request flood costs that.

import { parseIpv4, parseIpv6 } from '../idloc/addresses.js';
import type { Endpoint } from '../conn/socket.js';
import {
  ATTR, MALFORMED, STUN_CLASS_ERROR, STUN_CLASS_REQUEST, STUN_CLASS_SUCCESS, STUN_METHOD_BINDING, classOf, encodeStun,
  errorCodeValue, methodOf, readAddress, readErrorCode, stunMessageType, u32, walkStun, type StunAttr, type StunClass,
} from './stun-wire.js';

/** CHANGE-REQUEST flags (RFC 5780 section 7.2). */
export const CHANGE_IP = 0x4, CHANGE_PORT = 0x2;

/** USERNAME longer than this is malformed (RFC 8489 section 14.3: < 509 bytes; 513 for RFC 5389 peers). */
const MAX_USERNAME_BYTES = 513;
/** SOFTWARE on a request: under 128 characters (section 14.14). */
const MAX_SOFTWARE_CHARS = 128;
/** SOFTWARE on an answer, in bytes: cut to this. */
const MAX_ANSWER_SOFTWARE_BYTES = 127;
/** Comprehension-required attributes we do not understand, listed at most this many (the 420 answer's list). */
const MAX_UNKNOWN_LISTED = 16;
/** RFC 5780's PADDING attribute (comprehension-required, its value ignored). */
export const ATTR_PADDING = 0x0026;

/** Comprehension-required attributes (< 0x8000) this parser understands; the rest make a request get 420. */
const KNOWN_REQUIRED = new Set<number>([
  ATTR.MAPPED_ADDRESS, ATTR.CHANGE_REQUEST, ATTR.USERNAME, ATTR.MESSAGE_INTEGRITY, ATTR.ERROR_CODE,
  ATTR.UNKNOWN_ATTRIBUTES, ATTR.REALM, ATTR.NONCE, ATTR.XOR_MAPPED_ADDRESS, ATTR.PRIORITY, ATTR.USE_CANDIDATE,
  ATTR_PADDING,
]);

// ---- reading -------------------------------------------------------------------------------------------

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

const utf8 = new TextDecoder('utf-8', { fatal: false });
const readBigU64 = (b: Uint8Array, o: number): bigint => (BigInt(u32(b, o)) << 32n) | BigInt(u32(b, o + 4));

/** Interpret one attribute into `m`; false if it is malformed. */
function readAttribute(m: StunMessage, b: Uint8Array, at: number, v: number, len: number): boolean {
  switch (at) {
    case ATTR.FINGERPRINT: m.fingerprint = true; return true;
    case ATTR.XOR_MAPPED_ADDRESS: return !!m.xorMappedAddress || !!(m.xorMappedAddress = readAddress(b, v, len, m.txid));
    case ATTR.MAPPED_ADDRESS: return !!m.mappedAddress || !!(m.mappedAddress = readAddress(b, v, len, undefined));
    case ATTR.OTHER_ADDRESS: return !!m.otherAddress || !!(m.otherAddress = readAddress(b, v, len, undefined));
    case ATTR.RESPONSE_ORIGIN: return !!m.responseOrigin || !!(m.responseOrigin = readAddress(b, v, len, undefined));
    case ATTR.USERNAME:
      if (len > MAX_USERNAME_BYTES) return false;
      m.username ??= utf8.decode(b.subarray(v, v + len));
      return true;
    case ATTR.SOFTWARE: m.software ??= utf8.decode(b.subarray(v, v + len)); return true;
    case ATTR.PRIORITY:
      if (len !== 4) return false;
      m.priority ??= u32(b, v);
      return true;
    case ATTR.USE_CANDIDATE:
      if (len !== 0) return false;
      m.useCandidate = true;
      return true;
    case ATTR.ICE_CONTROLLING:
      if (len !== 8) return false;
      m.iceControlling ??= readBigU64(b, v);
      return true;
    case ATTR.ICE_CONTROLLED:
      if (len !== 8) return false;
      m.iceControlled ??= readBigU64(b, v);
      return true;
    case ATTR.CHANGE_REQUEST:
      if (len !== 4) return false;
      m.changeRequest ??= u32(b, v);
      return true;
    case ATTR.ERROR_CODE: {
      const code = readErrorCode(b, v, len);
      if (code < 0) return false;
      if (m.errorCode === undefined) {
        m.errorCode = code;
        m.errorReason = utf8.decode(b.subarray(v + 4, v + len));
      }
      return true;
    }
    case ATTR.MESSAGE_INTEGRITY: return true;
    default:
      if (at < 0x8000 && !KNOWN_REQUIRED.has(at)) {
        const u = (m.unknownRequired ??= []);
        if (u.length < MAX_UNKNOWN_LISTED && !u.includes(at)) u.push(at);
      }
      return true;
  }
}

/**
 * Parse one STUN message filling the whole datagram; undefined if it is not a well-formed one: framing
 * (stunMessageType, walkStun), a malformed attribute we interpret, anything after FINGERPRINT, or a
 * FINGERPRINT that does not match. Attributes after MESSAGE-INTEGRITY other than FINGERPRINT are ignored
 * (RFC 8489 section 14.5); of repeated attributes the first counts. Never throws.
 */
export function parseStun(msg: Uint8Array): StunMessage | undefined {
  const type = stunMessageType(msg);
  if (type < 0) return undefined;
  const m: StunMessage = {
    method: methodOf(type), cls: classOf(type), length: msg.length, txid: msg.subarray(8, 20),
    useCandidate: false, integrityOffset: -1, fingerprint: false,
  };
  const integrity = walkStun(msg, (at, v, len) => readAttribute(m, msg, at, v, len), true, Infinity);
  if (integrity === MALFORMED) return undefined;
  m.integrityOffset = integrity;
  return m;
}

// ---- building ------------------------------------------------------------------------------------------

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
  /** Add PADDING so the request is at least this many bytes (a server answers an unverified source with
   *  no more than it sent). */
  padTo?: number;
}

/** A Binding request; throws for a USERNAME or SOFTWARE over their limits. */
export function encodeBindingRequest(txid: Buffer, a: StunRequestAttributes = {}, software?: string): Buffer {
  if (a.username !== undefined && a.username.length > MAX_USERNAME_BYTES) throw new Error(`USERNAME over ${MAX_USERNAME_BYTES} bytes`);
  if (software && software.length > MAX_SOFTWARE_CHARS) throw new Error(`SOFTWARE over ${MAX_SOFTWARE_CHARS} characters`);
  const attrs: StunAttr[] = [];
  if (a.username !== undefined) attrs.push([ATTR.USERNAME, a.username]);
  if (software) attrs.push([ATTR.SOFTWARE, software]);
  if (a.priority !== undefined) attrs.push([ATTR.PRIORITY, a.priority >>> 0]); // RFC 8445 allows >= 2^31
  if (a.controlling !== undefined) attrs.push([a.controlling ? ATTR.ICE_CONTROLLING : ATTR.ICE_CONTROLLED, a.tieBreaker ?? 0n]);
  if (a.useCandidate) attrs.push([ATTR.USE_CANDIDATE]);
  if (a.changeIp || a.changePort) attrs.push([ATTR.CHANGE_REQUEST, (a.changeIp ? CHANGE_IP : 0) | (a.changePort ? CHANGE_PORT : 0)]);
  const plain = encodeStun(STUN_METHOD_BINDING, STUN_CLASS_REQUEST, txid, attrs, a.password, true)!;
  if (a.padTo === undefined || plain.length >= a.padTo) return plain;
  // The attribute's own 4-byte header counts; its value is a whole number of 4-byte words.
  attrs.push([ATTR_PADDING, new Uint8Array(Math.max(0, Math.ceil((a.padTo - plain.length - 4) / 4) * 4))]);
  return encodeStun(STUN_METHOD_BINDING, STUN_CLASS_REQUEST, txid, attrs, a.password, true)!;
}

const REASONS: Record<number, string> = {
  400: 'Bad Request', 401: 'Unauthorized', 420: 'Unknown Attribute', 438: 'Stale Nonce', 487: 'Role Conflict', 500: 'Server Error',
};

function answerSoftware(s: string | undefined): Buffer | undefined {
  if (!s) return undefined;
  const t = Buffer.from(s, 'utf8');
  return t.length > MAX_ANSWER_SOFTWARE_BYTES ? t.subarray(0, MAX_ANSWER_SOFTWARE_BYTES) : t;
}

/** A plain (not XOR'd) address value, as MAPPED-ADDRESS, RESPONSE-ORIGIN and OTHER-ADDRESS carry it:
 *  | 0 | family 1 = IPv4, 2 = IPv6 | port | address (4 or 16 bytes) |. Throws on a non-IP endpoint. */
export function plainAddressValue(e: Endpoint): Uint8Array {
  const address = stunAddress(e.address);
  const v4 = parseIpv4(address);
  const v6 = v4 === undefined ? parseIpv6(address) : undefined;
  if ((v4 === undefined && !v6) || !(e.port > 0 && e.port < 65536)) throw new Error(`not an IP endpoint: ${address}:${e.port}`);
  const b = Buffer.alloc(v6 ? 20 : 8);
  b[1] = v6 ? 2 : 1;
  b.writeUInt16BE(e.port, 2);
  if (v6) b.set(v6, 4); else b.writeUInt32BE(v4!, 4);
  return b;
}

/** RFC 5780's addresses on an answer: where it left from, and the server's other address (port). */
export interface AnswerOrigin {
  responseOrigin: Endpoint;
  otherAddress: Endpoint;
}

/** Binding success: XOR-MAPPED-ADDRESS, [RESPONSE-ORIGIN, OTHER-ADDRESS], [SOFTWARE], [MESSAGE-INTEGRITY],
 *  FINGERPRINT. Throws on a non-IP address. */
export function encodeBindingSuccess(txid: Uint8Array, mapped: Endpoint, password?: string, software?: string, origin?: AnswerOrigin): Buffer {
  const address = stunAddress(mapped.address);
  const ip = parseIpv4(address) !== undefined || parseIpv6(address) !== undefined;
  if (!ip || !(mapped.port > 0 && mapped.port < 65536)) throw new Error(`not an IP endpoint: ${address}:${mapped.port}`);
  const sw = answerSoftware(software);
  const attrs: StunAttr[] = [[ATTR.XOR_MAPPED_ADDRESS, { address, port: mapped.port }]];
  if (origin) attrs.push([ATTR.RESPONSE_ORIGIN, plainAddressValue(origin.responseOrigin)], [ATTR.OTHER_ADDRESS, plainAddressValue(origin.otherAddress)]);
  if (sw) attrs.push([ATTR.SOFTWARE, sw]);
  return encodeStun(STUN_METHOD_BINDING, STUN_CLASS_SUCCESS, txid, attrs, password, true)!;
}

/** Binding error: ERROR-CODE, [UNKNOWN-ATTRIBUTES], [SOFTWARE], [MESSAGE-INTEGRITY], FINGERPRINT. */
export function encodeBindingError(txid: Uint8Array, code: number, unknown?: number[], password?: string, software?: string): Buffer {
  const attrs: StunAttr[] = [[ATTR.ERROR_CODE, errorCodeValue(code, REASONS[code] ?? 'Error')]];
  const u = unknown?.length ? [...new Set(unknown)].slice(0, MAX_UNKNOWN_LISTED) : [];
  if (u.length) {
    const list = Buffer.alloc(u.length * 2);
    u.forEach((t, i) => list.writeUInt16BE(t & 0xffff, 2 * i));
    attrs.push([ATTR.UNKNOWN_ATTRIBUTES, list]);
  }
  const sw = answerSoftware(software);
  if (sw) attrs.push([ATTR.SOFTWARE, sw]);
  return encodeStun(STUN_METHOD_BINDING, STUN_CLASS_ERROR, txid, attrs, password, true)!;
}
