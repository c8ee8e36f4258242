// Which network an address is in, for the routing table's per-subnet limit (ROUTING_MAX_PER_SUBNET): the
// IPv4 /24 or IPv6 /64 of a public address. Private, loopback, link-local, CGNAT and ULA addresses give
// undefined: hosts of one LAN or one site legitimately share such a subnet, and an attacker who can reach
// us from one is already inside that network.
import { parseIpv4, parseIpv6 } from '../idloc/addresses.js';

export function networkOf(address: string): string | undefined {
  const v4 = parseIpv4(address.startsWith('::ffff:') ? address.slice(7) : address);
  if (v4 !== undefined) {
    const a = v4 >>> 24;
    const b = (v4 >>> 16) & 0xff;
    if (a === 10 || a === 127 || (a === 172 && b >= 16 && b < 32) || (a === 192 && b === 168)
      || (a === 169 && b === 254) || (a === 100 && b >= 64 && b < 128)) return undefined;
    return `4:${v4 >>> 8}`;
  }
  const v6 = parseIpv6(address);
  if (!v6) return undefined;
  if ((v6[0]! & 0xfe) === 0xfc || (v6[0] === 0xfe && (v6[1]! & 0xc0) === 0x80) || v6.every((x, i) => i === 15 || x === 0)) return undefined;
  return `6:${Buffer.from(v6.subarray(0, 8)).toString('hex')}`;
}
