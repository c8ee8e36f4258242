// TCP MSS clamping on SYN and SYN-ACK, so neither end ever sends a segment too big for the tunnel
// (path MTU discovery through a tunnel is the classic black hole; clamping sidesteps it for TCP).
//
// TCP header (RFC 9293), at the IP payload offset:
//    0               8              16              24              32
//   |          source port          |       destination port        |  0
//   |                        sequence number                        |  4
//   |                     acknowledgment number                     |  8
//   | data  |       |C|E|U|A|P|R|S|F|                               |
//   | offset|  rsv  |W|C|R|C|S|S|Y|I|            window             | 12   SYN = 0x02 in byte 13
//   |           checksum            |        urgent pointer         | 16
//   |                    options (data offset*4 - 20)               | 20
// Options: kind 0 = end of list, kind 1 = NOP (one byte), else kind | length (incl. these 2) | data.
//   MSS: kind 2 | length 4 | MSS (16 bits, big-endian), in SYN segments only.
//
// The clamp rewrites the option in place and patches the checksum by RFC 1624, so no byte beyond the
// option and the checksum changes and nothing is summed over the payload.
import { checksumReplaceWord, swap16 } from './checksum.js';

const TCP_FLAG_SYN = 0x02;
const TCPOPT_EOL = 0;
const TCPOPT_NOP = 1;
const TCPOPT_MSS = 2;

/**
 * Lowers the MSS option of a TCP SYN/SYN-ACK in the IP packet at packet[off, end) to maxMssV4 or
 * maxMssV6 (by IP version) if it is higher, fixing the TCP checksum incrementally. True if it changed
 * the packet. Anything else — non-TCP, non-SYN, IPv6 with extension headers, non-first IPv4 fragments,
 * truncated headers, malformed options, a limit outside 0..65535 — is left alone (false).
 * A SYN without an MSS option is left alone too: the far end then assumes 536 (v4) / 1220 (v6), which
 * already fits.
 */
export function clampMss(packet: Uint8Array, maxMssV4: number, maxMssV6: number, off = 0, end = packet.length): boolean {
  if (off < 0 || end > packet.length || end - off < 20) return false;
  const version = packet[off] >>> 4;
  let tcp: number, segEnd: number, limit: number;
  if (version === 4) {
    const ihl = (packet[off] & 0x0f) << 2;
    const total = (packet[off + 2] << 8) | packet[off + 3];
    if (ihl < 20 || total < ihl || total > end - off) return false;
    if (packet[off + 9] !== 6) return false;
    // Only the first fragment holds the TCP header; the incremental fix needs nothing past it.
    if (((packet[off + 6] & 0x1f) | packet[off + 7]) !== 0) return false;
    tcp = off + ihl;
    segEnd = off + total;
    limit = maxMssV4;
  } else if (version === 6) {
    if (end - off < 40 || packet[off + 6] !== 6) return false;
    segEnd = off + 40 + ((packet[off + 4] << 8) | packet[off + 5]);
    if (segEnd > end) return false;
    tcp = off + 40;
    limit = maxMssV6;
  } else {
    return false;
  }
  if ((limit & 0xffff) !== limit) return false;
  if (segEnd - tcp < 20 || (packet[tcp + 13] & TCP_FLAG_SYN) === 0) return false;
  const optEnd = tcp + ((packet[tcp + 12] >>> 4) << 2);
  if (optEnd < tcp + 20 || optEnd > segEnd) return false;

  let changed = false;
  for (let p = tcp + 20; p < optEnd;) {
    const kind = packet[p];
    if (kind === TCPOPT_EOL) break;
    if (kind === TCPOPT_NOP) { p++; continue; }
    if (p + 2 > optEnd) break;
    const len = packet[p + 1];
    if (len < 2 || p + len > optEnd) break; // malformed: stop rather than guess
    if (kind === TCPOPT_MSS && len === 4) {
      const mss = (packet[p + 2] << 8) | packet[p + 3];
      if (mss > limit) {
        packet[p + 2] = limit >>> 8;
        packet[p + 3] = limit & 0xff;
        // Checksum words are aligned to the TCP header; an MSS value at an odd offset straddles two
        // words and enters the sum byte-swapped.
        const odd = ((p + 2 - tcp) & 1) === 1;
        const old = (packet[tcp + 16] << 8) | packet[tcp + 17];
        const c = odd ? checksumReplaceWord(old, swap16(mss), swap16(limit)) : checksumReplaceWord(old, mss, limit);
        packet[tcp + 16] = c >>> 8;
        packet[tcp + 17] = c & 0xff;
        changed = true;
      }
      // Keep walking: a (broken) SYN with two MSS options gets both clamped, whichever the peer reads.
    }
    p += len;
  }
  return changed;
}

/** Largest TCP MSS whose segment fits `mtu` with minimal headers: mtu - 40 (IPv4 20 + TCP 20) or
 *  mtu - 60 (IPv6 40 + TCP 20). Never negative. */
export function mssForMtu(mtu: number, family: 4 | 6): number {
  return Math.max(0, mtu - (family === 4 ? 40 : 60));
}
