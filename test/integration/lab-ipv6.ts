// The lab's IPv6 internet, next to the IPv4 one (lab.ts), for hosts made with `ipv6: 'dual' | 'only'`.
// 2001:db8::/32 is the simulated IPv6 internet; every address is added with `nodad` so that none waits
// out duplicate address detection (nothing else in a lab could own it).
//
//   internet segment (the same bridge or WAN switch as IPv4): 2001:db8::/64, on-link for every node on it
//     public host i            2001:db8::(10+i)      (as text: 2001:db8::10, 2001:db8::11, ...)
//     home router k's WAN      2001:db8::2:(10+k)
//   NAT host j's home LAN      2001:db8:(10+j)::/64, router lan0 ::1, host ::2, default via ::1
//     routed: every node on the internet segment gets 2001:db8:(10+j)::/64 via that router's WAN
//
// No NAT66: a home router forwards IPv6 as it is and, like every home router with IPv6, filters with a
// stateful firewall (ip6tables): FORWARD -i eth0 not ESTABLISHED,RELATED DROP and INPUT -i eth0
// NEW,INVALID DROP, the IPv6 twins of the IPv4 rules. ICMPv6 that conntrack relates (packet too big,
// unreachable) and neighbour discovery still pass, as they must. `only`: the host's IPv4 address is
// taken away again (an IPv6-only LTE or campus network).
import { execFileSync } from 'node:child_process';

export type Ipv6Mode = 'dual' | 'only';

export const INTERNET6_PREFIX = '2001:db8::';

function run(argv: string[]): void {
  execFileSync(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** The IPv6 addresses and routes of one lab; `ns` names a node's namespace. */
export class LabIpv6 {
  /** Nodes with an address on the internet segment, which need a route to every home LAN. */
  private readonly onInternet: string[] = [];
  private readonly lans: { prefix: string; via: string }[] = [];
  private readonly addresses = new Map<string, string>();

  constructor(private readonly ns: (node: string) => string, private readonly uplink: string) {}

  /** A node's IPv6 address (a host's own, a router's WAN), or undefined if it has none. */
  address(node: string): string | undefined {
    return this.addresses.get(node);
  }

  /** Public host number i on the internet segment. */
  addPublicHost(node: string, i: number, mode: Ipv6Mode, ipv4: string): string {
    const address = `${INTERNET6_PREFIX}${10 + i}`;
    this.addOnInternet(node, address);
    if (mode === 'only') run(['ip', '-n', this.ns(node), 'addr', 'del', `${ipv4}/24`, 'dev', this.uplink]);
    return address;
  }

  /** A home router (k-th on the internet, j-th NAT host) and its host: WAN address, LAN, routes and the
   *  stateful firewall when `drop`. */
  addHomeNetwork(host: string, router: string, k: number, j: number, mode: Ipv6Mode, drop: boolean, ipv4: string): string {
    const wan = `${INTERNET6_PREFIX}2:${10 + k}`;
    this.addOnInternet(router, wan);
    const prefix = `2001:db8:${10 + j}::`;
    const r = this.ns(router), h = this.ns(host);
    run(['ip', 'netns', 'exec', r, 'sysctl', '-q', '-w', 'net.ipv6.conf.all.forwarding=1']);
    run(['ip', '-n', r, '-6', 'addr', 'add', `${prefix}1/64`, 'dev', 'lan0', 'nodad']);
    run(['ip', '-n', h, '-6', 'addr', 'add', `${prefix}2/64`, 'dev', this.uplink, 'nodad']);
    run(['ip', '-n', h, '-6', 'route', 'add', 'default', 'via', `${prefix}1`]);
    if (drop) {
      const ipt = (...a: string[]) => run(['ip', 'netns', 'exec', r, 'ip6tables', '-w', ...a]);
      ipt('-A', 'INPUT', '-i', this.uplink, '-m', 'conntrack', '--ctstate', 'NEW,INVALID', '-p', 'udp', '-j', 'DROP');
      ipt('-A', 'FORWARD', '-i', this.uplink, '-m', 'conntrack', '!', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'DROP');
    }
    if (mode === 'only') {
      run(['ip', '-n', h, 'route', 'flush', 'default']);
      run(['ip', '-n', h, 'addr', 'del', `${ipv4}/24`, 'dev', this.uplink]);
    }
    this.lans.push({ prefix: `${prefix}/64`, via: wan });
    for (const n of this.onInternet) if (n !== router) this.route(n, `${prefix}/64`, wan);
    this.addresses.set(host, `${prefix}2`);
    return `${prefix}2`;
  }

  private addOnInternet(node: string, address: string): void {
    run(['ip', '-n', this.ns(node), '-6', 'addr', 'add', `${address}/64`, 'dev', this.uplink, 'nodad']);
    for (const l of this.lans) this.route(node, l.prefix, l.via);
    this.onInternet.push(node);
    this.addresses.set(node, address);
  }

  private route(node: string, prefix: string, via: string): void {
    run(['ip', '-n', this.ns(node), '-6', 'route', 'replace', prefix, 'via', via]);
  }
}
