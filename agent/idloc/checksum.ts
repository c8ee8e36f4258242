// The Internet checksum (RFC 1071) and its incremental update (RFC 1624), for IPv4 headers and for
// TCP/UDP/ICMPv6 with their pseudo-headers.
//
// Pseudo-header summed before a TCP/UDP segment over IPv4 (RFC 793 / 768):
//   +--------+--------+--------+--------+
//   |          source address           |   = IPv4 header bytes 12..15
//   |        destination address        |   = IPv4 header bytes 16..19
//   |  zero  | proto  |   L4 length     |
//   +--------+--------+--------+--------+
// Pseudo-header for TCP/UDP/ICMPv6 over IPv6 (RFC 8200 8.1):
//   | source address (16) | destination address (16) | L4 length (32) | zero (24) | next header (8) |
//   (the addresses are IPv6 header bytes 8..39)
//
// Sums are carried as plain numbers, unfolded, and folded only at the end: a partial sum can be passed
// from one range to the next (pseudo-header, then the segment) without allocating anything. Every
// range but the last must have an even length, because an odd range pads its last byte as if the
// next range started a fresh word.

/** Largest even byte count whose words can be added to a folded sum without leaving int32 range:
 *  16384 words x 0xffff < 2^30, so the loop stays on V8's small-integer fast path. */
const CHUNK = 32768;

/** Adds buf[start, end) as big-endian 16-bit words to `sum` (< 2^30) and returns the new partial sum,
 *  itself < 2^30. An odd trailing byte counts as the high byte of a word padded with zero. */
export function onesSum(buf: Uint8Array, start: number, end: number, sum = 0): number {
  let i = start;
  const evenEnd = end - ((end - start) & 1);
  while (i < evenEnd) {
    const stop = Math.min(evenEnd, i + CHUNK);
    for (; i < stop; i += 2) sum += (buf[i] << 8) | buf[i + 1];
    sum = (sum & 0xffff) + (sum >>> 16);
  }
  if (i < end) sum += buf[i] << 8;
  return sum;
}

/** Folds carries back in (end-around carry): a value in 0..0xffff, 0 only for a zero sum. */
export function foldSum(sum: number): number {
  sum = (sum & 0xffff) + (sum >>> 16);
  sum += sum >>> 16;
  return sum & 0xffff;
}

/** The checksum to store: the ones' complement of the folded sum. Over data that already holds its
 *  checksum, the result is 0 when the checksum is right. */
export function finishChecksum(sum: number): number {
  return ~foldSum(sum) & 0xffff;
}

/** Checksum of buf[start, end) alone (e.g. ICMPv4, which has no pseudo-header). */
export function internetChecksum(buf: Uint8Array, start: number, end: number, sum = 0): number {
  return finishChecksum(onesSum(buf, start, end, sum));
}

// ---- IPv4 header ---------------------------------------------------------------------

/** Checksum the IPv4 header at `off` should carry (its own checksum field, bytes 10-11, skipped).
 *  The caller has checked that IHL*4 bytes are there. */
export function ipv4HeaderChecksum(buf: Uint8Array, off: number): number {
  const ihl = (buf[off] & 0x0f) << 2;
  return finishChecksum(onesSum(buf, off + 12, off + ihl, onesSum(buf, off, off + 10)));
}

export function writeIpv4HeaderChecksum(buf: Uint8Array, off: number): void {
  const c = ipv4HeaderChecksum(buf, off);
  buf[off + 10] = c >>> 8;
  buf[off + 11] = c & 0xff;
}

/** True when the header at `off` fits in buf[.., end) and carries a correct checksum. */
export function ipv4HeaderChecksumOk(buf: Uint8Array, off: number, end = buf.length): boolean {
  if (off < 0 || end > buf.length || end - off < 20) return false;
  const ihl = (buf[off] & 0x0f) << 2;
  if (ihl < 20 || ihl > end - off) return false;
  return internetChecksum(buf, off, off + ihl) === 0;
}

// ---- Pseudo-headers ------------------------------------------------------------------

/** Partial sum of the IPv4 pseudo-header, taking the addresses from the IPv4 header at `ipOff`. */
export function pseudoHeaderSumV4(buf: Uint8Array, ipOff: number, proto: number, l4Len: number): number {
  return onesSum(buf, ipOff + 12, ipOff + 20) + proto + (l4Len & 0xffff);
}

/** Partial sum of the IPv6 pseudo-header, taking the addresses from the IPv6 header at `ipOff`. */
export function pseudoHeaderSumV6(buf: Uint8Array, ipOff: number, nextHeader: number, l4Len: number): number {
  return onesSum(buf, ipOff + 8, ipOff + 40) + (l4Len >>> 16) + (l4Len & 0xffff) + nextHeader;
}

/** Checksum over pseudo-header + buf[l4Off, l4End) for an upper layer over the IPv4 header at ipOff.
 *  With the segment's checksum field zeroed it is the value to store; over a segment carrying its
 *  checksum it is 0 when that checksum is right. */
export function transportChecksumV4(buf: Uint8Array, ipOff: number, l4Off: number, l4End: number, proto: number): number {
  return finishChecksum(onesSum(buf, l4Off, l4End, pseudoHeaderSumV4(buf, ipOff, proto, l4End - l4Off)));
}

/** As transportChecksumV4, for the IPv6 header at ipOff (`nextHeader` = the upper-layer protocol). */
export function transportChecksumV6(buf: Uint8Array, ipOff: number, l4Off: number, l4End: number, nextHeader: number): number {
  return finishChecksum(onesSum(buf, l4Off, l4End, pseudoHeaderSumV6(buf, ipOff, nextHeader, l4End - l4Off)));
}

// ---- Incremental update (RFC 1624) -----------------------------------------------------

/** New checksum after one 16-bit word of the covered data changes from oldWord to newWord, by
 *  RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'). Eqn. 3 rather than RFC 1141's form because it never turns
 *  a correct checksum into 0xffff (the "-0" that a from-scratch computation never yields), so the
 *  result equals a recomputation bit for bit. If the changed bytes sit at an odd offset from the start
 *  of the covered data, pass both words byte-swapped (see swap16). */
export function checksumReplaceWord(checksum: number, oldWord: number, newWord: number): number {
  return ~foldSum((~checksum & 0xffff) + (~oldWord & 0xffff) + (newWord & 0xffff)) & 0xffff;
}

/** A 16-bit value that straddles two checksum words (odd offset) adds to the sum byte-swapped. */
export function swap16(w: number): number {
  return ((w & 0xff) << 8) | ((w >>> 8) & 0xff);
}
