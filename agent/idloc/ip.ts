// Zero-allocation accessors on a bare IP packet (no Ethernet header) starting at `off` in a buffer —
// usually the TAP's shared batch buffer, so nothing here makes a view or a copy.
//
// IPv4 (RFC 791):
//    0       4       8              16      19              24              32
//   +-------+-------+---------------+-------------------------------+
//   |version|  IHL  |   DSCP/ECN    |         total length          |  0
//   |         identification        |flags|    fragment offset      |  4   flags: 0x40 DF, 0x20 MF (byte 6)
//   |      TTL      |   protocol    |        header checksum        |  8
//   |                        source address                         | 12
//   |                      destination address                      | 16
//   |                   options (IHL*4 - 20 bytes)                  | 20
// IPv6 (RFC 8200):
//   |version| traffic class |              flow label               |  0
//   |        payload length         |  next header  |   hop limit   |  4
//   |                   source address (16 bytes)                   |  8
//   |                destination address (16 bytes)                 | 24
//   payload (extension headers, then the upper layer) from byte 40.
//
// IPv4 addresses are returned as uint32 numbers (`>>> 0`, so 100.64.0.1 > 0 even with the top bit
// set); IPv6 addresses stay in the buffer and are named by their offset. Malformed or truncated input
// never throws: accessors return 0 / -1 / false, and callers validate with ipPacketLength first.
import { OVERLAY_IPV4_NET, OVERLAY_IPV4_PREFIX_LEN, OVERLAY_IPV6_PREFIX, OVERLAY_IPV6_PREFIX_LEN } from '../base/constants.js';
import { getU32 } from '../base/binary.js';
import { equalAt } from '../base/bytes.js';

export const IPPROTO_HOPOPTS = 0;
export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_ICMPV6 = 58;
/** ipProtocol's answer for an IPv6 packet whose next header is an extension header: the fast path
 *  does not walk them (the host's own traffic to peers practically never carries any). */
export const PROTO_UNSUPPORTED = -1;

export const IPV4_MIN_HEADER_LEN = 20;
export const IPV4_TOTAL_LEN_OFF = 2;
export const IPV4_FRAG_OFF = 6;
export const IPV4_TTL_OFF = 8;
export const IPV4_PROTO_OFF = 9;
export const IPV4_CHECKSUM_OFF = 10;
export const IPV4_SRC_OFF = 12;
export const IPV4_DST_OFF = 16;

export const IPV6_HEADER_LEN = 40;
export const IPV6_PAYLOAD_LEN_OFF = 4;
export const IPV6_NEXT_HEADER_OFF = 6;
export const IPV6_HOP_LIMIT_OFF = 7;
export const IPV6_SRC_OFF = 8;
export const IPV6_DST_OFF = 24;

/** 4, 6, or 0 for an empty/out-of-range offset (and whatever nibble a garbage packet has). */
export function ipVersion(buf: Uint8Array, off = 0): number {
  return off >= 0 && off < buf.length ? buf[off] >>> 4 : 0;
}

/** IPv4: IHL*4; IPv6: the fixed 40; 0 otherwise. Not validated against the buffer (see ipPacketLength). */
export function ipHeaderLength(buf: Uint8Array, off = 0): number {
  const v = ipVersion(buf, off);
  if (v === 4) return (buf[off] & 0x0f) << 2;
  return v === 6 ? IPV6_HEADER_LEN : 0;
}

/** Declared length (IPv4 total length; IPv6 40 + payload length) if the packet is well-formed within
 *  buf[off, end): header complete, declared length covers the header and fits. Otherwise 0. Frames
 *  shorter than 60 bytes are padded by Ethernet, so this — not the frame length — is the packet's end. */
export function ipPacketLength(buf: Uint8Array, off = 0, end = buf.length): number {
  if (off < 0 || end > buf.length) return 0;
  const avail = end - off;
  const v = ipVersion(buf, off);
  if (v === 4) {
    if (avail < IPV4_MIN_HEADER_LEN) return 0;
    const ihl = (buf[off] & 0x0f) << 2;
    const total = (buf[off + 2] << 8) | buf[off + 3];
    return ihl >= IPV4_MIN_HEADER_LEN && total >= ihl && total <= avail ? total : 0;
  }
  if (v === 6) {
    if (avail < IPV6_HEADER_LEN) return 0;
    // A jumbogram (payload length 0 + hop-by-hop option) reads as a bare header; our MTU has none.
    const total = IPV6_HEADER_LEN + ((buf[off + 4] << 8) | buf[off + 5]);
    return total <= avail ? total : 0;
  }
  return 0;
}

/** Upper-layer protocol: IPv4's protocol field; IPv6's next header, or PROTO_UNSUPPORTED when that is
 *  an extension header; -2 when the version is neither (distinct from every real protocol number). */
export function ipProtocol(buf: Uint8Array, off = 0): number {
  const v = ipVersion(buf, off);
  if (v === 4) return buf[off + IPV4_PROTO_OFF] ?? -2;
  if (v === 6) {
    const nh = buf[off + IPV6_NEXT_HEADER_OFF];
    if (nh === undefined) return -2;
    return isIpv6ExtensionHeader(nh) ? PROTO_UNSUPPORTED : nh;
  }
  return -2;
}

/** Offset of the upper-layer header (off + IHL*4 or off + 40), assuming ipProtocol found no extension. */
export function ipPayloadOffset(buf: Uint8Array, off = 0): number {
  return off + ipHeaderLength(buf, off);
}

/** IPv6 extension headers (RFC 8200 4, IANA registry) plus ESP, whose contents we cannot see. */
export function isIpv6ExtensionHeader(nh: number): boolean {
  switch (nh) {
    case 0: case 43: case 44: case 50: case 51: case 60: case 135: case 139: case 140: case 253: case 254:
      return true;
    default:
      return false;
  }
}

// ---- IPv4 fields ----------------------------------------------------------------------

export function ipv4Src(buf: Uint8Array, off = 0): number {
  return getU32(buf, off + IPV4_SRC_OFF);
}

export function ipv4Dst(buf: Uint8Array, off = 0): number {
  return getU32(buf, off + IPV4_DST_OFF);
}

/** DF bit: the sender forbids fragmentation (PMTUD in use), so an oversize packet earns an ICMP error. */
export function ipv4DontFragment(buf: Uint8Array, off = 0): boolean {
  return (buf[off + IPV4_FRAG_OFF] & 0x40) !== 0;
}

/** Fragment offset in bytes; non-zero means the upper-layer header is not in this packet. */
export function ipv4FragmentOffset(buf: Uint8Array, off = 0): number {
  return (((buf[off + IPV4_FRAG_OFF] & 0x1f) << 8) | buf[off + IPV4_FRAG_OFF + 1]) << 3;
}

/** MF set or offset non-zero: the packet is a piece of a larger datagram. */
export function ipv4IsFragment(buf: Uint8Array, off = 0): boolean {
  return (((buf[off + IPV4_FRAG_OFF] & 0x3f) << 8) | buf[off + IPV4_FRAG_OFF + 1]) !== 0;
}

// ---- Address classes -------------------------------------------------------------------

/** -(2^(32-len)) as int32 is the netmask: len ones then zeros (and 0 for len 0, where << would wrap). */
const V4_OVERLAY_MASK = -(2 ** (32 - OVERLAY_IPV4_PREFIX_LEN)) | 0;

/** In 100.64.0.0/10 (the overlay's IPv4 space). */
export function isOverlayIpv4(addr: number): boolean {
  return ((addr ^ OVERLAY_IPV4_NET) & V4_OVERLAY_MASK) === 0;
}

const V6_FULL_BYTES = OVERLAY_IPV6_PREFIX_LEN >>> 3;
const V6_REST_MASK = (0xff00 >>> (OVERLAY_IPV6_PREFIX_LEN & 7)) & 0xff;

/** The 16 bytes at buf[off] start with the overlay prefix fd1d:10c0::/32. */
export function isOverlayIpv6(buf: Uint8Array, off = 0): boolean {
  if (off < 0 || off + 16 > buf.length) return false;
  for (let i = 0; i < V6_FULL_BYTES; i++) if (buf[off + i] !== OVERLAY_IPV6_PREFIX[i]) return false;
  return V6_REST_MASK === 0 || ((buf[off + V6_FULL_BYTES] ^ OVERLAY_IPV6_PREFIX[V6_FULL_BYTES]) & V6_REST_MASK) === 0;
}

/** 224.0.0.0/4. */
export function isIpv4Multicast(addr: number): boolean {
  return addr >>> 28 === 0xe;
}

/** Addresses no unicast host can have, so an ICMP error must never be sent to (or from) them:
 *  0.0.0.0/8 ("this network"), 127/8 loopback, 224/4 multicast, 240/4 reserved + 255.255.255.255. */
export function isIpv4NonUnicast(addr: number): boolean {
  const top = addr >>> 24;
  return top === 0 || top === 127 || top >= 224;
}

export function isIpv6Multicast(buf: Uint8Array, off: number): boolean {
  return buf[off] === 0xff;
}

/** :: (the source of a DAD probe). */
export function isIpv6Unspecified(buf: Uint8Array, off: number): boolean {
  let acc = 0;
  for (let i = 0; i < 16; i++) acc |= buf[off + i];
  return acc === 0 && off + 16 <= buf.length;
}

/** ::1. */
export function isIpv6Loopback(buf: Uint8Array, off: number): boolean {
  let acc = 0;
  for (let i = 0; i < 15; i++) acc |= buf[off + i];
  return acc === 0 && buf[off + 15] === 1;
}

/** Compares two 16-byte addresses in place; false if either runs past its array. */
export function ipv6Equals(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number): boolean {
  return equalAt(a, aOff, b, bOff, 16);
}

// Text forms (not for the hot path) live in addresses.ts: formatIpv4, parseIpv4, formatIpv6, parseIpv6.
