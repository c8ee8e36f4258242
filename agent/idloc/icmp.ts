// ICMP errors the agent writes back into the TAP on behalf of an overlay peer: "too big" for packets
// the tunnel cannot carry (so the host's PMTU discovery learns the TAP MTU instead of black-holing),
// and "unreachable" for destinations no peer answers for (so connect() fails fast instead of timing out).
//
// ICMPv4 error (RFC 792), inside an IPv4 header with protocol 1:
//   | type | code | checksum (2) | unused (2) | next-hop MTU (2, type 3 code 4 only) |
//   | original IP header + leading payload bytes, reply capped at 576 bytes (RFC 1812 4.3.2.3) |
// ICMPv6 error (RFC 4443), inside an IPv6 header with next header 58:
//   | type | code | checksum (2) | MTU (4, Packet Too Big) or unused (4) |
//   | as much of the original packet as keeps the reply within 1280 bytes (RFC 4443 2.4(c)) |
//
// Every builder takes the offending IP packet (no Ethernet header; bytes past its declared length,
// i.e. Ethernet padding, are ignored) and returns a fresh Buffer holding only the IP packet of the
// reply — the caller adds the Ethernet header when it copies it into a TAP write slot (FrameWriter).
// Allocation is fine here: errors are rare, and the copy into the slot happens anyway.
//
// The reply's source is the original destination: the agent speaks for the overlay peer (the host
// checks ICMP errors against the quoted packet, not against who sent them). Its destination is the
// original source. No reply (undefined) when RFC 1122 3.2.2 / RFC 4443 2.4(e) forbid one — for an
// ICMP error, for a non-first IPv4 fragment, for a source that is not one unicast host (unspecified,
// loopback, multicast, broadcast) — or when the original destination is multicast/broadcast, because
// that cannot be the reply's source. Also undefined for malformed or truncated packets.
import { finishChecksum, onesSum, pseudoHeaderSumV6, writeIpv4HeaderChecksum } from './checksum.js';
import {
  IPPROTO_ICMP, IPPROTO_ICMPV6, ipv4Dst, ipv4Src, ipv4DontFragment, ipv4FragmentOffset, isIpv4NonUnicast,
  isIpv6Loopback, isIpv6Multicast, isIpv6Unspecified,
} from './ip.js';

/** RFC 1812 4.3.2.3: an ICMPv4 error quotes as much as fits in 576 bytes (Linux does the same). */
const ICMPV4_ERROR_MAX = 576;
/** IPv6 minimum MTU (RFC 8200 5): an ICMPv6 error never exceeds it, and no link may go below it. */
const IPV6_MIN_MTU = 1280;
/** RFC 791 minimum MTU: a smaller "next-hop MTU" would be ignored by hosts anyway. */
const IPV4_MIN_MTU = 68;
/** TTL/hop limit of our errors: a default-TTL packet, the same as the host's own. */
const ERROR_TTL = 64;
/** RFC 1812 4.3.2.5: ICMP errors carry precedence 6 (internetwork control) -> TOS 0xc0. */
const ERROR_TOS = 0xc0;

export const ICMPV4_DEST_UNREACH = 3;
export const ICMPV4_CODE_HOST_UNREACH = 1;
export const ICMPV4_CODE_FRAG_NEEDED = 4;
export const ICMPV6_DEST_UNREACH = 1;
export const ICMPV6_CODE_ADDR_UNREACH = 3;
export const ICMPV6_PACKET_TOO_BIG = 2;

// ---- IPv4 --------------------------------------------------------------------------------

/** Length of the IPv4 packet that may be answered with an ICMP error, or 0 when it must not be. */
function answerableV4(p: Uint8Array): number {
  if (p.length < 20 || p[0] >>> 4 !== 4) return 0;
  const ihl = (p[0] & 0x0f) << 2;
  const total = (p[2] << 8) | p[3];
  if (ihl < 20 || total < ihl || total > p.length) return 0;
  if (ipv4FragmentOffset(p, 0) !== 0) return 0;
  if (isIpv4NonUnicast(ipv4Src(p, 0)) || isIpv4NonUnicast(ipv4Dst(p, 0))) return 0;
  if (p[9] === IPPROTO_ICMP) {
    // Answer only the query types (echo, timestamp, info, address mask); errors and unknown types
    // get nothing — RFC 1122 3.2.2 forbids errors about errors, and the safe side of unknown is silence.
    if (total < ihl + 1) return 0;
    switch (p[ihl]) {
      case 0: case 8: case 13: case 14: case 15: case 16: case 17: case 18: break;
      default: return 0;
    }
  }
  return total;
}

function buildV4(p: Uint8Array, total: number, type: number, code: number, mtu: number): Buffer {
  const quote = Math.min(total, ICMPV4_ERROR_MAX - 28);
  const len = 28 + quote;
  const out = Buffer.alloc(len);
  out[0] = 0x45;
  out[1] = ERROR_TOS;
  out[2] = len >>> 8; out[3] = len & 0xff;
  out[8] = ERROR_TTL;
  out[9] = IPPROTO_ICMP;
  for (let i = 0; i < 4; i++) {
    out[12 + i] = p[16 + i]; // from the original destination
    out[16 + i] = p[12 + i]; // to the original source
  }
  writeIpv4HeaderChecksum(out, 0);
  out[20] = type;
  out[21] = code;
  out[26] = mtu >>> 8; out[27] = mtu & 0xff;
  out.set(p.subarray(0, quote), 28);
  const c = finishChecksum(onesSum(out, 20, len));
  out[22] = c >>> 8; out[23] = c & 0xff;
  return out;
}

/** ICMPv4 Destination Unreachable / Host Unreachable (type 3 code 1): no peer owns the destination. */
export function icmpv4Unreachable(packet: Uint8Array): Buffer | undefined {
  const total = answerableV4(packet);
  return total === 0 ? undefined : buildV4(packet, total, ICMPV4_DEST_UNREACH, ICMPV4_CODE_HOST_UNREACH, 0);
}

/**
 * ICMPv4 Fragmentation Needed (type 3 code 4, next-hop MTU = mtu) for a packet longer than `mtu`,
 * only when it has DF set (the sender runs PMTU discovery and will shrink). Without DF, undefined:
 * the sender allows fragmentation, so the caller fragments (or drops, counted) — an error would be
 * ignored by the host anyway. Also undefined if the packet is not longer than mtu or mtu < 68.
 */
export function icmpv4FragNeeded(packet: Uint8Array, mtu: number): Buffer | undefined {
  if (!(mtu >= IPV4_MIN_MTU && mtu <= 0xffff)) return undefined;
  const total = answerableV4(packet);
  if (total <= mtu || !ipv4DontFragment(packet, 0)) return undefined;
  return buildV4(packet, total, ICMPV4_DEST_UNREACH, ICMPV4_CODE_FRAG_NEEDED, mtu | 0);
}

// ---- IPv6 --------------------------------------------------------------------------------

/** Length of the IPv6 packet that may be answered with an ICMPv6 error, or 0 when it must not be. */
function answerableV6(p: Uint8Array): number {
  if (p.length < 40 || p[0] >>> 4 !== 6) return 0;
  const total = 40 + ((p[4] << 8) | p[5]);
  if (total > p.length) return 0;
  if (isIpv6Unspecified(p, 8) || isIpv6Multicast(p, 8) || isIpv6Loopback(p, 8)) return 0;
  if (isIpv6Unspecified(p, 24) || isIpv6Multicast(p, 24) || isIpv6Loopback(p, 24)) return 0;
  // Find the upper layer behind any extension headers: an ICMPv6 error (type < 128) must not be
  // answered even when a destination-options header sits in front of it. A chain we cannot follow
  // to the end inside the packet is malformed: no answer.
  let nh = p[6];
  let q = 40;
  for (let hops = 0; ; hops++) {
    if (nh === IPPROTO_ICMPV6) {
      if (q + 1 > total) return 0;
      return p[q] < 128 ? 0 : total;
    }
    if (nh === 44) { // fragment header: fixed 8 bytes; only the first fragment shows the upper layer
      if (q + 8 > total) return 0;
      if ((((p[q + 2] << 8) | p[q + 3]) & 0xfff8) !== 0) return total;
      nh = p[q]; q += 8;
    } else if (nh === 0 || nh === 43 || nh === 60) { // hop-by-hop, routing, destination options
      if (q + 2 > total) return 0;
      nh = p[q]; q += (p[q + 1] + 1) << 3;
    } else if (nh === 51) { // AH: length in 4-byte units, minus 2
      if (q + 2 > total) return 0;
      nh = p[q]; q += (p[q + 1] + 2) << 2;
    } else {
      return total; // an upper layer (TCP, UDP, ESP, ...) or no next header
    }
    if (q > total || hops > 16) return 0;
  }
}

function buildV6(p: Uint8Array, total: number, type: number, code: number, word: number): Buffer {
  const quote = Math.min(total, IPV6_MIN_MTU - 48);
  const icmpLen = 8 + quote;
  const out = Buffer.alloc(40 + icmpLen);
  out[0] = 0x60;
  out[4] = icmpLen >>> 8; out[5] = icmpLen & 0xff;
  out[6] = IPPROTO_ICMPV6;
  out[7] = ERROR_TTL;
  for (let i = 0; i < 16; i++) {
    out[8 + i] = p[24 + i]; // from the original destination
    out[24 + i] = p[8 + i]; // to the original source
  }
  out[40] = type;
  out[41] = code;
  out[44] = word >>> 24; out[45] = (word >>> 16) & 0xff; out[46] = (word >>> 8) & 0xff; out[47] = word & 0xff;
  out.set(p.subarray(0, quote), 48);
  const c = finishChecksum(onesSum(out, 40, 40 + icmpLen, pseudoHeaderSumV6(out, 0, IPPROTO_ICMPV6, icmpLen)));
  out[42] = c >>> 8; out[43] = c & 0xff;
  return out;
}

/** ICMPv6 Destination Unreachable / Address Unreachable (type 1 code 3): no peer owns the destination. */
export function icmpv6Unreachable(packet: Uint8Array): Buffer | undefined {
  const total = answerableV6(packet);
  return total === 0 ? undefined : buildV6(packet, total, ICMPV6_DEST_UNREACH, ICMPV6_CODE_ADDR_UNREACH, 0);
}

/**
 * ICMPv6 Packet Too Big (type 2, MTU = mtu) for a packet longer than `mtu`. IPv6 routers never
 * fragment, so unlike IPv4 this is always the answer. Undefined when the packet fits or mtu < 1280:
 * every IPv6 link carries 1280, so a smaller tunnel MTU must be handled below IP, not reported.
 * (RFC 4443 2.4(e.3) would allow PTB for a multicast destination, but we cannot source a reply from a
 * multicast address, so those get none either.)
 */
export function icmpv6PacketTooBig(packet: Uint8Array, mtu: number): Buffer | undefined {
  if (!(mtu >= IPV6_MIN_MTU && mtu <= 0xffffffff)) return undefined;
  const total = answerableV6(packet);
  if (total <= mtu) return undefined;
  return buildV6(packet, total, ICMPV6_PACKET_TOO_BIG, 0, mtu >>> 0);
}

// ---- Either family ---------------------------------------------------------------------------

/** Too-big reply for an IPv4 or IPv6 packet (by version nibble), as the two functions above. */
export function icmpTooBig(packet: Uint8Array, mtu: number): Buffer | undefined {
  const v = packet.length > 0 ? packet[0] >>> 4 : 0;
  return v === 4 ? icmpv4FragNeeded(packet, mtu) : v === 6 ? icmpv6PacketTooBig(packet, mtu) : undefined;
}

/** Unreachable reply for an IPv4 or IPv6 packet (by version nibble). */
export function icmpUnreachable(packet: Uint8Array): Buffer | undefined {
  const v = packet.length > 0 ? packet[0] >>> 4 : 0;
  return v === 4 ? icmpv4Unreachable(packet) : v === 6 ? icmpv6Unreachable(packet) : undefined;
}
