// IPv6 Neighbor Discovery (RFC 4861) on the TAP: the kernel solicits a peer's overlay IPv6 address and
// the agent advertises the virtual MAC for it, as arp.ts does for IPv4. Also a classifier for the other
// link-local ICMPv6 chatter the host sends (RS, MLD, its own NAs) that the agent counts and drops.
//
// Neighbor Solicitation frame (78 bytes + options):
//   0  Ethernet: dst (6) | src (6) | 0x86dd
//   14 IPv6: ver/tc/flow (4) | payload len (2) | next header 58 | hop limit 255 | src (16) @22 | dst (16) @38
//   54 ICMPv6: type 135 | code 0 | checksum (2) | reserved (4)
//   62         target address (16)
//   78         options: type (1) | length in units of 8 bytes (1) | data ...   (type 1 = source link-layer addr)
//
// Neighbor Advertisement we build (86 bytes):
//   0  Ethernet: dst = SLLA of the NS, else its Ethernet source (33:33:00:00:00:01 for DAD) | src = virtual MAC | 0x86dd
//   14 IPv6: 0x60000000 | payload len 32 | 58 | 255 | src = target | dst = NS source (ff02::1 for DAD)
//   54 ICMPv6: type 136 | code 0 | checksum | flags R S O + 29 reserved bits (4) | target (16)
//   78         option 2 (target link-layer address) | length 1 | virtual MAC (6)
import { pseudoHeaderSumV6, finishChecksum, onesSum } from './checksum.js';
import { IPPROTO_HOPOPTS, IPPROTO_ICMPV6, isIpv6Unspecified } from './ip.js';
import {
  ETH_HEADER_LEN, ETH_SRC_OFF, ETHERTYPE_IPV6, MAC_IPV6_ALL_NODES, MAC_LEN, etherType, isMulticastMac, isZeroMac, writeEthernetHeader,
} from '../tap/ethernet.js';
import { equalAt } from '../base/bytes.js';

export const ICMPV6_MLD_QUERY = 130;
export const ICMPV6_MLD_REPORT = 131;
export const ICMPV6_MLD_DONE = 132;
export const ICMPV6_ROUTER_SOLICIT = 133;
export const ICMPV6_ROUTER_ADVERT = 134;
export const ICMPV6_NEIGHBOR_SOLICIT = 135;
export const ICMPV6_NEIGHBOR_ADVERT = 136;
export const ICMPV6_REDIRECT = 137;
export const ICMPV6_MLDV2_REPORT = 143;

/** NA flags, first byte of the word after the checksum. */
const NA_FLAG_SOLICITED = 0x40;
const NA_FLAG_OVERRIDE = 0x20;
/** RFC 4861 7.1.1: ND packets must arrive with hop limit 255, proof they were not forwarded by a router. */
const ND_HOP_LIMIT = 255;

const IP = ETH_HEADER_LEN; // 14
const IP_SRC = IP + 8; // 22
const IP_DST = IP + 24; // 38
const ICMP = IP + 40; // 54
const TARGET = ICMP + 8; // 62
const NS_MIN_LEN = 24; // ICMPv6 header + reserved + target
export const NA_FRAME_LEN = ICMP + 32; // 86

/** ff02::1 */
const ALL_NODES = Uint8Array.of(0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1);

/** Is the 16-byte address at a[aOff] the solicited-node multicast ff02::1:ffXX:XXXX of the one at t[tOff]? */
function isSolicitedNodeOf(a: Uint8Array, aOff: number, t: Uint8Array, tOff: number): boolean {
  if (a[aOff] !== 0xff || a[aOff + 1] !== 0x02) return false;
  for (let i = 2; i < 11; i++) if (a[aOff + i] !== 0) return false;
  return a[aOff + 11] === 0x01 && a[aOff + 12] === 0xff &&
    a[aOff + 13] === t[tOff + 13] && a[aOff + 14] === t[tOff + 14] && a[aOff + 15] === t[tOff + 15];
}

/**
 * The Neighbor Advertisement frame answering a Neighbor Solicitation, or undefined when the frame is
 * not a valid NS (RFC 4861 7.1.1: hop limit 255, code 0, ICMPv6 length >= 24, valid checksum, target
 * not multicast, every option length > 0, and for a DAD probe from :: a solicited-node destination and
 * no source link-layer option) or when shouldAnswer(target) is false. The target is passed as a
 * 16-byte view into `frame`, valid only during the call.
 *
 * Answers: unicast to the solicitor (its source link-layer address option, else the frame's Ethernet
 * source) with the Solicited flag; to a DAD probe (source ::), multicast to all-nodes without it
 * (7.2.4). Override is always set: the virtual MAC is the only link-layer address a peer's overlay
 * address ever has. Answering DAD means "this address is in use", so the predicate must be false for
 * the host's own overlay address, or the kernel would refuse to configure it.
 */
export function answerNeighborSolicitation(
  frame: Uint8Array, virtualMac: Uint8Array, shouldAnswer: (target: Uint8Array) => boolean,
): Buffer | undefined {
  if (virtualMac.length !== MAC_LEN) return undefined;
  if (etherType(frame) !== ETHERTYPE_IPV6 || frame.length < ICMP + NS_MIN_LEN) return undefined;
  if (frame[IP] >>> 4 !== 6 || frame[IP + 6] !== IPPROTO_ICMPV6 || frame[IP + 7] !== ND_HOP_LIMIT) return undefined;
  const icmpLen = (frame[IP + 4] << 8) | frame[IP + 5];
  if (icmpLen < NS_MIN_LEN || ICMP + icmpLen > frame.length) return undefined;
  if (frame[ICMP] !== ICMPV6_NEIGHBOR_SOLICIT || frame[ICMP + 1] !== 0) return undefined;
  if (finishChecksum(onesSum(frame, ICMP, ICMP + icmpLen, pseudoHeaderSumV6(frame, IP, IPPROTO_ICMPV6, icmpLen))) !== 0) return undefined;
  if (frame[TARGET] === 0xff) return undefined;

  // Options: find the source link-layer address, reject zero-length options (they would loop forever
  // in a naive parser, and RFC 4861 says to discard the packet).
  let slla = -1;
  const end = ICMP + icmpLen;
  for (let p = TARGET + 16; p < end;) {
    if (p + 2 > end) return undefined;
    const len = frame[p + 1] << 3;
    if (len === 0 || p + len > end) return undefined;
    if (frame[p] === 1 && len === 8) slla = p + 2;
    p += len;
  }

  const dad = isIpv6Unspecified(frame, IP_SRC);
  if (dad) {
    if (slla >= 0 || !isSolicitedNodeOf(frame, IP_DST, frame, TARGET)) return undefined;
  } else {
    // The solicitor is either resolving (to the solicited-node group) or checking reachability (unicast
    // to the target itself, RFC 4861 7.2.2); anything else was not sent to us.
    if (frame[IP_SRC] === 0xff) return undefined;
    if (!isSolicitedNodeOf(frame, IP_DST, frame, TARGET) && !equalAt(frame, IP_DST, frame, TARGET, 16)) return undefined;
  }
  // Where the answer goes on the link: SLLA beats the Ethernet source (they match for the kernel).
  const macOff = slla >= 0 ? slla : ETH_SRC_OFF;
  if (!dad && (isMulticastMac(frame, macOff) || isZeroMac(frame, macOff))) return undefined;

  if (!shouldAnswer(frame.subarray(TARGET, TARGET + 16))) return undefined;

  const out = Buffer.alloc(NA_FRAME_LEN);
  writeEthernetHeader(out, 0, dad ? MAC_IPV6_ALL_NODES : frame.subarray(macOff, macOff + MAC_LEN), virtualMac, ETHERTYPE_IPV6);
  out[IP] = 0x60;
  out[IP + 4] = 0; out[IP + 5] = 32;
  out[IP + 6] = IPPROTO_ICMPV6;
  out[IP + 7] = ND_HOP_LIMIT;
  for (let i = 0; i < 16; i++) {
    out[IP_SRC + i] = frame[TARGET + i];
    out[IP_DST + i] = dad ? ALL_NODES[i] : frame[IP_SRC + i];
    out[TARGET + i] = frame[TARGET + i];
  }
  out[ICMP] = ICMPV6_NEIGHBOR_ADVERT;
  out[ICMP + 4] = (dad ? 0 : NA_FLAG_SOLICITED) | NA_FLAG_OVERRIDE;
  out[TARGET + 16] = 2; // target link-layer address
  out[TARGET + 17] = 1;
  out.set(virtualMac, TARGET + 18);
  const c = finishChecksum(onesSum(out, ICMP, NA_FRAME_LEN, pseudoHeaderSumV6(out, IP, IPPROTO_ICMPV6, 32)));
  out[ICMP + 2] = c >>> 8;
  out[ICMP + 3] = c & 0xff;
  return out;
}

/**
 * For an Ethernet frame at frame[off, end): the ICMPv6 type if it is link-local control traffic that
 * the agent neither forwards nor answers, only counts — MLD queries/reports/done (130-132, 143, which
 * arrive behind a hop-by-hop Router Alert header), Router Solicitation/Advertisement (133-134), the
 * host's own Neighbor Advertisements (136, e.g. unsolicited after DAD) and Redirects (137). Otherwise
 * -1, including for Neighbor Solicitations (135), which go to answerNeighborSolicitation.
 * Cheap: a few byte reads, no checksum, no allocation.
 */
export function silentIcmpv6Type(frame: Uint8Array, off = 0, end = frame.length): number {
  if (etherType(frame, off, end) !== ETHERTYPE_IPV6) return -1;
  const ip = off + ETH_HEADER_LEN;
  if (end - ip < 40 || frame[ip] >>> 4 !== 6) return -1;
  let nh = frame[ip + 6];
  let p = ip + 40;
  if (nh === IPPROTO_HOPOPTS) {
    if (p + 2 > end) return -1;
    nh = frame[p];
    p += (frame[p + 1] + 1) << 3;
  }
  if (nh !== IPPROTO_ICMPV6 || p + 4 > end) return -1;
  const type = frame[p];
  switch (type) {
    case ICMPV6_MLD_QUERY: case ICMPV6_MLD_REPORT: case ICMPV6_MLD_DONE: case ICMPV6_MLDV2_REPORT:
    case ICMPV6_ROUTER_SOLICIT: case ICMPV6_ROUTER_ADVERT: case ICMPV6_NEIGHBOR_ADVERT: case ICMPV6_REDIRECT:
      return type;
    default:
      return -1;
  }
}
