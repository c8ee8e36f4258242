// One peer's inbound policy, compiled from the rules once per peer (and again when its names or groups
// change), so that the packet path never looks at identities: a few flags and, per protocol, the allowed
// local ports as sorted, merged, disjoint ranges in a Uint16Array [lo0, hi0, lo1, hi1, ...], searched by
// bisection.
import type { FirewallRule } from './rules.js';

/** Who a peer is, as the caller knows it now (names and groups may grow later: recompile then). */
export interface PeerIdentity {
  /** 64 hex digits, lowercase. */
  publicKeyHex: string;
  /** 40 hex digits, lowercase. */
  nodeIdHex: string;
  /** Overlay names the peer holds (normalized, as overlay/names.ts normalizeName makes them). */
  names: readonly string[];
  /** Certificate groups the peer is in. */
  groups: readonly string[];
}

const NO_PORTS = new Uint16Array(0);

export class PeerPolicy {
  /** Rules that matched this peer (for status). */
  rules = 0;
  /** A rule "any" matched: every packet passes, none is parsed. */
  all = false;
  icmp = false;
  tcpAll = false;
  udpAll = false;
  tcp: Uint16Array = NO_PORTS;
  udp: Uint16Array = NO_PORTS;

  /** id: the firewall's number for the peer, the flow table's key (never 0). */
  constructor(readonly id: number) {}

  /** Whether a rule lets a TCP segment to local port `port` in. */
  tcpPort(port: number): boolean { return this.tcpAll || inRanges(this.tcp, port); }
  udpPort(port: number): boolean { return this.udpAll || inRanges(this.udp, port); }
}

/** Whether a rule's "from" names this peer. */
export function ruleMatches(r: FirewallRule, who: PeerIdentity): boolean {
  const f = r.from;
  switch (f.kind) {
    case 'all': return true;
    case 'key': return f.value === who.publicKeyHex.toLowerCase();
    case 'node': return f.value === who.nodeIdHex.toLowerCase();
    case 'name': return who.names.includes(f.value);
    case 'group': return who.groups.includes(f.value);
  }
}

/** Fill `p` (reset first) with what `rules` allow `who`. */
export function compileInto(p: PeerPolicy, rules: readonly FirewallRule[], who: PeerIdentity): void {
  p.rules = 0;
  p.all = p.icmp = p.tcpAll = p.udpAll = false;
  const tcp: number[] = [];
  const udp: number[] = [];
  for (const r of rules) {
    if (!ruleMatches(r, who)) continue;
    p.rules++;
    switch (r.proto) {
      case 'any': p.all = true; break;
      case 'icmp': p.icmp = true; break;
      case 'tcp': if (r.ports) tcp.push(r.ports.lo, r.ports.hi); else p.tcpAll = true; break;
      case 'udp': if (r.ports) udp.push(r.ports.lo, r.ports.hi); else p.udpAll = true; break;
    }
  }
  p.tcp = p.tcpAll ? NO_PORTS : mergeRanges(tcp);
  p.udp = p.udpAll ? NO_PORTS : mergeRanges(udp);
}

/** [lo, hi, lo, hi, ...] in any order, overlapping or adjacent -> sorted disjoint ranges. */
export function mergeRanges(flat: readonly number[]): Uint16Array {
  if (flat.length === 0) return NO_PORTS;
  const pairs: [number, number][] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) pairs.push([flat[i]!, flat[i + 1]!]);
  pairs.sort((a, b) => a[0] - b[0]);
  const out: number[] = [];
  for (const [lo, hi] of pairs) {
    const last = out.length - 1;
    if (last > 0 && lo <= out[last]! + 1) out[last] = Math.max(out[last]!, hi);
    else out.push(lo, hi);
  }
  return Uint16Array.from(out);
}

/** Bisection over sorted disjoint [lo, hi] pairs. */
export function inRanges(r: Uint16Array, port: number): boolean {
  let a = 0;
  let b = (r.length >> 1) - 1;
  while (a <= b) {
    const m = (a + b) >> 1;
    if (port < r[2 * m]!) b = m - 1;
    else if (port > r[2 * m + 1]!) a = m + 1;
    else return true;
  }
  return false;
}
