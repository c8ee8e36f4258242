// The few fields of an IP packet the firewall decides on, read straight from the buffer into a reusable
// PacketFields (no allocation per packet).
//
// IPv4 (RFC 791): version/IHL (0), total length (2-3), identification (4-5), flags MF + fragment offset
// (6-7), protocol (9); the upper-layer header at IHL*4.
// IPv6 (RFC 8200): version (0), payload length (4-5), next header (6); after the 40-byte header a chain of
// extension headers is walked: hop-by-hop (0), routing (43), destination options (60) -- 8*(1+len) bytes
// each -- AH (51, 4*(2+len)), fragment (44, 8 bytes: offset/M at 2-3, identification at 4-7). ESP (50),
// "no next header" (59) and anything unknown end the walk: that number is the protocol, without ports.
// Upper layer: TCP source/destination port (0-3) and flags (13), a whole 20-byte header required; UDP
// ports (0-3), 8 bytes; ICMPv4 (1) / ICMPv6 (58) type (0), code (1), echo identifier (4-5), 8 bytes.
// A non-first fragment has no upper-layer header: its ports are not read (fragment = FRAG_LATER).
//
// Quoted mode reads the packet an ICMP error carries back: it is cut short (RFC 792 keeps only 8 bytes past
// the IP header, RFC 4443 as much as fits in 1280), so its lengths are not checked against the buffer and
// only the first 8 bytes of the upper layer (ports, echo identifier) are needed.
import { FW_IPV6_EXT_HEADERS_MAX } from '../base/constants.js';

export const PROTO_ICMP = 1;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
export const PROTO_ICMPV6 = 58;

/** Not a fragment, or a datagram's first fragment (more follow), or one of its later fragments. */
export const FRAG_NONE = 0;
export const FRAG_FIRST = 1;
export const FRAG_LATER = 2;

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_ACK = 0x10;

export class PacketFields {
  version = 0;
  /** The upper-layer protocol (after IPv6 extension headers). */
  proto = 0;
  /** Offset of the upper-layer header in the buffer, and of the packet's end (its IP length, or the
   *  buffer's end for a quoted packet cut short). */
  l4 = 0;
  end = 0;
  fragment = FRAG_NONE;
  /** IP identification of a fragment (IPv4 16 bits, IPv6 32 bits). */
  fragId = 0;
  srcPort = 0;
  dstPort = 0;
  tcpFlags = 0;
  icmpType = 0;
  icmpCode = 0;
  /** ICMP echo identifier (the "port" of a ping). */
  echoId = 0;
}

/** Whether `proto` is ICMP of the packet's IP version. */
export const isIcmp = (f: PacketFields): boolean => f.proto === (f.version === 4 ? PROTO_ICMP : PROTO_ICMPV6);

/** Echo request/reply types of ICMPv4 (8/0) and ICMPv6 (128/129). */
export const echoRequestType = (version: number): number => (version === 4 ? 8 : 128);
export const echoReplyType = (version: number): number => (version === 4 ? 0 : 129);

/** ICMP errors that quote a packet: v4 unreachable (3), time exceeded (11), parameter problem (12);
 *  v6 unreachable (1), packet too big (2), time exceeded (3), parameter problem (4). */
export function isIcmpError(version: number, type: number): boolean {
  return version === 4 ? type === 3 || type === 11 || type === 12 : type >= 1 && type <= 4;
}

/** Fill `f` from the packet at buf[off..end); false if it is malformed or truncated. `quoted`: the packet
 *  quoted inside an ICMP error (see the header). Never throws, whatever the bytes. */
export function readPacket(buf: Uint8Array, off: number, end: number, quoted: boolean, f: PacketFields): boolean {
  if (end > buf.length) end = buf.length;
  if (end - off < 1) return false;
  const version = buf[off]! >> 4;
  f.version = version;
  f.fragment = FRAG_NONE;
  f.fragId = 0;
  f.srcPort = f.dstPort = f.tcpFlags = f.icmpType = f.icmpCode = f.echoId = 0;
  let p: number;
  let proto: number;
  if (version === 4) {
    if (end - off < 20) return false;
    const hl = (buf[off]! & 15) * 4;
    const total = (buf[off + 2]! << 8) | buf[off + 3]!;
    if (hl < 20 || total < hl) return false;
    if (!quoted) {
      if (total > end - off) return false;
      end = off + total;
    } else if (total < end - off) end = off + total;
    const frag = (buf[off + 6]! << 8) | buf[off + 7]!;
    if ((frag & 0x3fff) !== 0) {
      f.fragment = (frag & 0x1fff) !== 0 ? FRAG_LATER : FRAG_FIRST;
      f.fragId = (buf[off + 4]! << 8) | buf[off + 5]!;
    }
    proto = buf[off + 9]!;
    p = off + hl;
  } else if (version === 6) {
    if (end - off < 40) return false;
    const total = 40 + ((buf[off + 4]! << 8) | buf[off + 5]!);
    if (!quoted) {
      if (total > end - off) return false;
      end = off + total;
    } else if (total < end - off) end = off + total;
    proto = buf[off + 6]!;
    p = off + 40;
    let walked = 0;
    for (;;) {
      if (proto === 0 || proto === 43 || proto === 60 || proto === 51 || proto === 44) {
        if (++walked > FW_IPV6_EXT_HEADERS_MAX || end - p < 8) return false;
        const next = buf[p]!;
        let len: number;
        if (proto === 44) {
          len = 8;
          const fo = (buf[p + 2]! << 8) | buf[p + 3]!;
          if ((fo & 0xfff9) !== 0) {
            f.fragment = (fo & 0xfff8) !== 0 ? FRAG_LATER : FRAG_FIRST;
            f.fragId = ((buf[p + 4]! << 24) | (buf[p + 5]! << 16) | (buf[p + 6]! << 8) | buf[p + 7]!) >>> 0;
          }
        } else if (proto === 51) len = (buf[p + 1]! + 2) * 4;
        else len = (buf[p + 1]! + 1) * 8;
        proto = next;
        p += len;
        if (f.fragment === FRAG_LATER) break; // what follows is the middle of a datagram, no header
        if (p > end) return false;
      } else break;
    }
  } else return false;
  f.proto = proto;
  f.l4 = p;
  f.end = end;
  if (f.fragment === FRAG_LATER) return true;
  const room = end - p;
  if (proto === PROTO_TCP) {
    if (room < (quoted ? 8 : 20)) return false;
    f.srcPort = (buf[p]! << 8) | buf[p + 1]!;
    f.dstPort = (buf[p + 2]! << 8) | buf[p + 3]!;
    if (room >= 14) f.tcpFlags = buf[p + 13]!;
  } else if (proto === PROTO_UDP) {
    if (room < 8) return false;
    f.srcPort = (buf[p]! << 8) | buf[p + 1]!;
    f.dstPort = (buf[p + 2]! << 8) | buf[p + 3]!;
  } else if (proto === (version === 4 ? PROTO_ICMP : PROTO_ICMPV6)) {
    if (room < 8) return false;
    f.icmpType = buf[p]!;
    f.icmpCode = buf[p + 1]!;
    f.echoId = (buf[p + 4]! << 8) | buf[p + 5]!;
  }
  return true;
}
