// IP addresses as text and back: dotted-quad IPv4 as a u32, IPv6 as 16 bytes in RFC 5952 form. Every
// floor needs them (the socket edge formats what the kernel reports; the wire codecs parse endpoints),
// so they live here with nothing of ours imported. IPv4-mapped IPv6 (::ffff:a.b.c.d) is not taken by
// parseIpv6: the sockets report such peers as IPv4 (conn/), so the mapped text never reaches the codecs.

export function formatIpv4(a: number): string {
  return `${a >>> 24}.${(a >>> 16) & 0xff}.${(a >>> 8) & 0xff}.${a & 0xff}`;
}

export function parseIpv4(s: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  // Leading zeros are refused: some parsers read them as octal, so "010" would mean two things.
  if (m.slice(1).some((p) => p.length > 1 && p[0] === '0')) return undefined;
  const o = m.slice(1).map(Number);
  if (o.some((x) => x > 255)) return undefined;
  return ((o[0]! << 24) | (o[1]! << 16) | (o[2]! << 8) | o[3]!) >>> 0;
}

/** RFC 5952 text form: lowercase, leading zeros dropped, the longest run (>1) of zero groups as "::". */
export function formatIpv6(b: Uint8Array): string {
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push((b[i]! << 8) | b[i + 1]!);
  let bestStart = -1, bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

export function parseIpv6(s: string): Uint8Array | undefined {
  if (!/^[0-9a-fA-F:]+$/.test(s) || s.split('::').length > 2) return undefined;
  const [head, tail] = s.includes('::') ? s.split('::') as [string, string] : [s, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const missing = 8 - h.length - t.length;
  if (tail === undefined ? missing !== 0 : missing < 1) return undefined;
  const groups = [...h, ...Array<string>(tail === undefined ? 0 : missing).fill('0'), ...t];
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    const gs = groups[i]!;
    if (gs.length < 1 || gs.length > 4) return undefined;
    const v = parseInt(gs, 16);
    out[2 * i] = v >> 8;
    out[2 * i + 1] = v & 0xff;
  }
  return out;
}

/** An IPv4-mapped IPv6 text form (::ffff:a.b.c.d, as node:dgram reports IPv4 peers of a dual-stack
 *  socket) as the plain IPv4 text; any other address unchanged. */
export function unmapIpv4(address: string): string {
  return address.length > 7 && address.charCodeAt(0) === 58 /* : */ && /^::ffff:\d/i.test(address) ? address.slice(7) : address;
}

/** The address family of an address in text (IPv6 has a colon: unmap a v4-mapped one first, unmapIpv4). */
export function familyOf(address: string): 4 | 6 {
  return address.includes(':') ? 6 : 4;
}

/** The one spelling the sockets report an address in (IPv4-mapped as IPv4, IPv6 in RFC 5952 form), for
 *  an address given by a user or a record; text that is neither is returned as it is. */
export function canonicalAddress(address: string): string {
  const a = unmapIpv4(address);
  const v6 = a.includes(':') ? parseIpv6(a) : undefined;
  return v6 ? formatIpv6(v6) : a;
}
