// This host's own underlay addresses, the host candidates of its locator: every IPv4 address of an
// interface that is not loopback, and every IPv6 address that another host can reach and that will last.
//
// IPv6 addresses come from /proc/net/if_inet6, the only place that shows the kernel's address flags
// (node's os.networkInterfaces() does not say which address is temporary). One line per address:
//
//   20010db8000a00000000000000000002 03 40 00 80     eth0
//   address (32 hex digits)          ifindex prefixlen scope flags name      (all hex but the name)
//
// Left out of the candidates:
//   scope != 0 (global)       link-local fe80::/10, loopback ::1: they name no host beyond the link
//   ULA fc00::/7              a site's private addresses: reachable only inside that site, as 10.x is
//   IFA_F_TEMPORARY  0x01     privacy addresses (RFC 8981) change every few hours; the kernel may still
//                             pick one as the source of outbound checks, which the peer learns as prflx
//   IFA_F_DADFAILED  0x08     another host on the link has it
//   IFA_F_DEPRECATED 0x20     the prefix is going away (preferred lifetime over)
//   IFA_F_TENTATIVE  0x40     duplicate address detection has not finished: the kernel will not use it
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import type { Endpoint } from './socket.js';
import { formatIpv6 } from '../base/ip-text.js';

const IFA_F_TEMPORARY = 0x01;
const IFA_F_DADFAILED = 0x08;
const IFA_F_DEPRECATED = 0x20;
const IFA_F_TENTATIVE = 0x40;
const UNUSABLE = IFA_F_TEMPORARY | IFA_F_DADFAILED | IFA_F_DEPRECATED | IFA_F_TENTATIVE;

export interface Ipv6Address {
  /** RFC 5952 text. */
  address: string;
  name: string;
  flags: number;
}

/** /proc/net/if_inet6's text -> the addresses fit for candidates, in file order. Malformed lines are skipped. */
export function parseIfInet6(text: string, ignoreInterface?: string): Ipv6Address[] {
  const out: Ipv6Address[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length !== 6 || !/^[0-9a-f]{32}$/i.test(f[0]!) || f[5] === ignoreInterface) continue;
    const scope = Number.parseInt(f[3]!, 16), flags = Number.parseInt(f[4]!, 16);
    if (!Number.isInteger(scope) || !Number.isInteger(flags) || scope !== 0 || (flags & UNUSABLE) !== 0) continue;
    const first = Number.parseInt(f[0]!.slice(0, 2), 16);
    if ((first & 0xfe) === 0xfc) continue; // ULA
    out.push({ address: formatIpv6(Buffer.from(f[0]!, 'hex')), name: f[5]!, flags });
  }
  return out;
}

/** The host candidates with the agent's `port`, IPv6 first (RFC 8421: where both answer, IPv6 host pairs
 *  need no NAT and so are preferred); the TAP's own overlay addresses are never among them. */
export function hostEndpoints(tap: string, port: number): Endpoint[] {
  let v6: Ipv6Address[] = [];
  try { v6 = parseIfInet6(readFileSync('/proc/net/if_inet6', 'utf8'), tap); } catch { /* no IPv6 in this host */ }
  const out: Endpoint[] = v6.map((a) => ({ address: a.address, port }));
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    if (name === tap) continue;
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) out.push({ address: a.address, port });
  }
  return out;
}
