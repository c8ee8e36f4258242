// In-process NAT router twin for tests (nebula's test suite has the same idea): sockets created with
// nat.socket() sit behind a translating router on a MemoryNetwork, whose routing (memory-socket.ts) sends
// their datagrams out through it and datagrams for its public address in through it.
//
//   inside 192.168.1.2:4500 --> [ NAT 198.51.100.20 ] --src 198.51.100.20:P--> public network
//   public 203.0.113.1:3478 --dst 198.51.100.20:P--> [ mapping P? filter ok? ] --> 192.168.1.2:4500
//
// Behaviour, in RFC 4787 terms:
//   mapping    endpoint-independent (cone): one public port per inside endpoint, whatever the destination;
//              address-dependent: one per (inside endpoint, remote IP);
//              address-and-port-dependent (= 'endpoint-dependent', symmetric): one per (inside, remote IP:port).
//   filtering  endpoint-independent: anyone may send to a mapped port (full cone);
//              address-dependent: only IPs the mapping has sent to;
//              address-and-port-dependent: only IP:ports it has sent to (a home router with the conntrack
//              NEW,INVALID DROP rule from the design brief; the default).
//   ports      'preserve' keeps the inside port when free (Linux MASQUERADE), else the next free one from
//              firstPort; 'sequential' always takes the next; 'random' (seeded: --random-fully) a random one.
//   timeouts   mappingTimeoutMs (off by default): a mapping idle that long is gone; outbound traffic
//              refreshes it, inbound only with inboundRefresh (RFC 4787 REQ-6 leaves it open).
//   hairpin    on by default (RFC 4787 REQ-9): inside hosts reach each other through the public address,
//              seeing each other's mapped source.
//   nesting    `parent`: this NAT's outside address lives inside another NAT (carrier-grade NAT).
// State changes when a datagram passes at send time (as the router sees it before the link loses it).

import { realScheduler, type Scheduler } from '../base/scheduler.js';
import { endpointKey, type Endpoint } from './socket.js';
import { MemorySocket, type MemoryNetwork, type MemoryRealm } from './memory-socket.js';

export type NatMapping = 'endpoint-independent' | 'address-dependent' | 'address-and-port-dependent' | 'endpoint-dependent';
export type NatFiltering = 'endpoint-independent' | 'address-dependent' | 'address-and-port-dependent';

export interface MemoryNatOptions {
  /** The router's outside address (in the public network, or inside `parent`). */
  publicAddress: string;
  mapping?: NatMapping;
  filtering?: NatFiltering;
  /** Idle time after which a mapping is gone; undefined: never. */
  mappingTimeoutMs?: number;
  /** Inbound datagrams refresh the mapping too. */
  inboundRefresh?: boolean;
  portAllocation?: 'preserve' | 'sequential' | 'random';
  /** First port handed out when not preserving (default 40000, wraps to 1024 after 65535). */
  firstPort?: number;
  hairpin?: boolean;
  /** This NAT sits behind another one (CGNAT). */
  parent?: MemoryNat;
  /** Time for mapping expiry (a twin in tests). */
  clock?: Scheduler;
  /** Seed of the port RNG for 'random' allocation (mulberry32). */
  seed?: number;
}

export interface MemoryNatStats {
  outbound: number;
  inbound: number;
  /** Inbound datagrams the filter refused. */
  filtered: number;
  /** Inbound datagrams to a port with no (live) mapping. */
  noMapping: number;
  /** Mappings that timed out. */
  expired: number;
  mappingsCreated: number;
  /** Outbound datagrams dropped because no port was free. */
  portsExhausted: number;
}

interface Mapping {
  key: string;
  inside: Endpoint;
  port: number;
  lastUsed: number;
  /** Remote IPs (address-dependent filtering) or IP:ports (address-and-port-dependent) sent to. */
  permits: Set<string>;
}

export interface NatMappingInfo {
  inside: Endpoint;
  outside: Endpoint;
  permits: string[];
}

export class MemoryNat implements MemoryRealm {
  readonly publicAddress: string;
  readonly mapping: 'endpoint-independent' | 'address-dependent' | 'address-and-port-dependent';
  readonly filtering: NatFiltering;
  readonly stats: MemoryNatStats = { outbound: 0, inbound: 0, filtered: 0, noMapping: 0, expired: 0, mappingsCreated: 0, portsExhausted: 0 };
  /** @internal */ readonly parent: MemoryRealm | undefined;
  /** @internal */ readonly sockets = new Map<string, MemorySocket>();
  /** @internal */ readonly nats = new Map<string, MemoryRealm>();
  hairpin: boolean;
  private readonly byKey = new Map<string, Mapping>();
  private readonly byPort = new Map<number, Mapping>();
  private readonly clock: Scheduler;
  private nextPort: number;
  private rng: number;

  constructor(private readonly net: MemoryNetwork, private readonly o: MemoryNatOptions) {
    this.publicAddress = o.publicAddress;
    const m = o.mapping ?? 'endpoint-independent';
    this.mapping = m === 'endpoint-dependent' ? 'address-and-port-dependent' : m;
    this.filtering = o.filtering ?? 'address-and-port-dependent';
    this.hairpin = o.hairpin ?? true;
    this.clock = o.clock ?? realScheduler;
    this.nextPort = o.firstPort ?? 40000;
    this.rng = (o.seed ?? 1) >>> 0;
    this.parent = o.parent;
    const outside = o.parent ? o.parent.nats : net.nats;
    if (outside.has(o.publicAddress)) throw new Error(`a NAT already owns ${o.publicAddress}`);
    outside.set(o.publicAddress, this);
  }

  /** A socket on the inside network. */
  socket(address: string, port: number): MemorySocket {
    const s = new MemorySocket(this.net, { address, port }, this);
    this.net.attach(s);
    return s;
  }

  /** Live mappings (for tests and debugging). */
  mappings(): NatMappingInfo[] {
    const now = this.clock.now();
    return [...this.byPort.values()].filter((m) => !this.isExpired(m, now)).map((m) => ({
      inside: { ...m.inside }, outside: { address: this.publicAddress, port: m.port }, permits: [...m.permits],
    }));
  }

  /** Forget every mapping (a router reboot). */
  reset(): void {
    this.byKey.clear();
    this.byPort.clear();
  }

  /** @internal */
  outbound(from: Endpoint, to: Endpoint): Endpoint | undefined {
    const now = this.clock.now();
    const insideKey = endpointKey(from);
    const key = this.mapping === 'endpoint-independent' ? insideKey
      : this.mapping === 'address-dependent' ? `${insideKey}>${to.address}` : `${insideKey}>${endpointKey(to)}`;
    let m = this.byKey.get(key);
    if (m && this.isExpired(m, now)) { this.remove(m); this.stats.expired++; m = undefined; }
    if (!m) {
      const port = this.allocatePort(from.port, now);
      if (port === undefined) { this.stats.portsExhausted++; return undefined; }
      m = { key, inside: { address: from.address, port: from.port }, port, lastUsed: now, permits: new Set() };
      this.byKey.set(key, m);
      this.byPort.set(port, m);
      this.stats.mappingsCreated++;
    }
    m.lastUsed = now;
    if (this.filtering === 'address-dependent') m.permits.add(to.address);
    else if (this.filtering === 'address-and-port-dependent') m.permits.add(endpointKey(to));
    this.stats.outbound++;
    return { address: this.publicAddress, port: m.port };
  }

  /** @internal */
  inbound(from: Endpoint, to: Endpoint): Endpoint | undefined {
    const now = this.clock.now();
    const m = this.byPort.get(to.port);
    if (!m) { this.stats.noMapping++; return undefined; }
    if (this.isExpired(m, now)) { this.remove(m); this.stats.expired++; this.stats.noMapping++; return undefined; }
    if (!this.hairpin && from.address === this.publicAddress) { this.stats.filtered++; return undefined; }
    const ok = this.filtering === 'endpoint-independent'
      || (this.filtering === 'address-dependent' ? m.permits.has(from.address) : m.permits.has(endpointKey(from)));
    if (!ok) { this.stats.filtered++; return undefined; }
    if (this.o.inboundRefresh) m.lastUsed = now;
    this.stats.inbound++;
    return { address: m.inside.address, port: m.inside.port };
  }

  private isExpired(m: Mapping, now: number): boolean {
    return this.o.mappingTimeoutMs !== undefined && now - m.lastUsed >= this.o.mappingTimeoutMs;
  }

  private remove(m: Mapping): void {
    this.byKey.delete(m.key);
    if (this.byPort.get(m.port) === m) this.byPort.delete(m.port);
  }

  /** A free outside port, or undefined when all 64512 are taken by live mappings. */
  private allocatePort(insidePort: number, now: number): number | undefined {
    const free = (p: number): boolean => {
      const m = this.byPort.get(p);
      if (!m) return true;
      if (!this.isExpired(m, now)) return false;
      this.remove(m);
      this.stats.expired++;
      return true;
    };
    const alloc = this.o.portAllocation ?? 'preserve';
    if (alloc === 'preserve' && insidePort >= 1 && free(insidePort)) return insidePort;
    if (alloc === 'random') {
      for (let i = 0; i < 64; i++) {
        const p = 1024 + Math.floor(this.random() * (65536 - 1024));
        if (free(p)) return p;
      }
    }
    for (let i = 0; i < 65536 - 1024; i++) {
      const p = this.nextPort;
      this.nextPort = p >= 65535 ? 1024 : p + 1;
      if (free(p)) return p;
    }
    return undefined;
  }

  private random(): number {
    let t = (this.rng = (this.rng + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}
