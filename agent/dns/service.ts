// DNS for overlay names, as `idloc-agent up --dns` runs it: a responder on the host's own overlay IPv4
// and IPv6 addresses, UDP and TCP port 53, that answers NAME.idloc and <nodeid>.idloc from the overlay
// and forwards everything else to the resolvers the host had (its resolv.conf at start), so pointing a
// resolver at it breaks nothing. Where systemd-resolved runs, the TAP link gets split DNS for ~idloc
// (resolved.ts); elsewhere one log line says how to use it. This is the folder's public face: the host
// starts it, moves it when the IPv4 claim is re-derived, asks it for status and closes it.
//
//   client --UDP/TCP 53--> listeners.ts --> responder.ts --.idloc--> zone.ts (cache.ts) --> OverlayNames
//                                                        \--else--> forwarder.ts --> upstream-net.ts
import type { Logger } from 'pino';
import { DNS_PORT } from '../base/constants.js';
import { canonicalAddress } from '../base/ip-text.js';
import { realScheduler, type Scheduler } from '../base/scheduler.js';
import { Forwarder, upstreamsOf, type ForwarderStats, type UpstreamExchange } from './forwarder.js';
import { DnsListeners, hostPort, type ListenerStats } from './listeners.js';
import { Responder, type ResponderStats } from './responder.js';
import { howToUse, type ResolvedLink } from './resolved.js';
import { NetExchange } from './upstream-net.js';
import { Zone, type OverlayNames, type ZoneStats } from './zone.js';

export type { OverlayNames, NameAnswer, NameLookup } from './zone.js';

export interface OverlayAddresses { ipv4: string; ipv6: string }

export interface DnsServiceOptions {
  names: OverlayNames;
  /** The host's resolv.conf as it was when the agent started: its nameservers are the upstreams. */
  resolvConf: string;
  addresses: OverlayAddresses;
  logger: Logger;
  /** DNS_PORT unless a test asks for another (0: any). */
  port?: number;
  clock?: Scheduler;
  exchange?: UpstreamExchange;
  /** systemd-resolved's handle on the TAP link, where resolved manages this host's links. */
  resolved?: ResolvedLink | undefined;
  /** The host's addresses besides the overlay ones and loopback: their clients are this host's own. */
  hostAddresses?: () => readonly string[];
}

export interface DnsStatus {
  /** "100.87.12.9:53", "[fd1d:10c0::…]:53", UDP and TCP each. */
  listening: string[];
  upstreams: string[];
  /** How the host's resolver reaches us: split DNS through systemd-resolved, or what to do instead. */
  integration: string;
  cacheEntries: number;
  counters: ResponderStats & ZoneStats & ForwarderStats & ListenerStats;
}

const isLoopback = (a: string) => a === '::1' || a.startsWith('127.');

export class DnsService {
  private readonly zone: Zone;
  private readonly forwarder: Forwarder;
  private readonly responder: Responder;
  private readonly listeners: DnsListeners;
  private addresses: OverlayAddresses;
  private integration = 'starting';
  private applied = false;
  private closed = false;

  private constructor(private readonly o: DnsServiceOptions) {
    this.addresses = o.addresses;
    const clock = o.clock ?? realScheduler;
    this.zone = new Zone(o.names, clock);
    this.forwarder = new Forwarder({
      upstreams: () => upstreamsOf(o.resolvConf, (a) => this.isOurs(a)),
      exchange: o.exchange ?? new NetExchange(clock),
    });
    this.responder = new Responder({ zone: this.zone, forwarder: this.forwarder, isLocal: (a) => this.isLocal(a) });
    this.listeners = new DnsListeners({ port: o.port ?? DNS_PORT, handle: (m, c) => this.responder.handle(m, c), logger: o.logger });
  }

  /** Listen on the addresses (throws, naming the address and why, when one cannot be bound), then tell
   *  systemd-resolved, or log how to use it. */
  static async start(o: DnsServiceOptions): Promise<DnsService> {
    const s = new DnsService(o);
    try {
      await s.listeners.serve(s.addressList());
    } catch (e) {
      await s.listeners.close();
      throw e;
    }
    await s.integrate();
    return s;
  }

  /** The TAP's addresses changed (the IPv4 claim was re-derived): listen there, and tell resolved. */
  async moveTo(addresses: OverlayAddresses): Promise<void> {
    if (this.closed) return;
    this.addresses = addresses;
    try {
      await this.listeners.serve(this.addressList());
    } catch (e) {
      this.o.logger.error({ err: (e as Error).message }, 'dns: cannot follow the new overlay address');
    }
    if (this.applied) await this.o.resolved?.apply(this.addressList()).catch((e: unknown) => this.o.logger.warn({ err: (e as Error).message }, 'dns: systemd-resolved kept the old address'));
    this.o.logger.info({ listening: this.listening() }, 'dns: moved to the new overlay address');
  }

  /** The port served (DNS_PORT, or the one the kernel chose for a test's port 0). */
  get port(): number { return this.listeners.port; }

  status(): DnsStatus {
    return {
      listening: this.listening(),
      upstreams: upstreamsOf(this.o.resolvConf, (a) => this.isOurs(a)).map((u) => hostPort(u.address, u.port)),
      integration: this.integration,
      cacheEntries: this.zone.cached,
      counters: {
        ...this.responder.stats, dropped: { ...this.responder.stats.dropped }, ...this.zone.stats, ...this.forwarder.stats, ...this.listeners.stats,
      },
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.applied) {
      await this.o.resolved?.revert().catch((e: unknown) => this.o.logger.warn({ err: (e as Error).message }, 'dns: could not revert the split DNS settings'));
    }
    await this.listeners.close();
  }

  private async integrate(): Promise<void> {
    const resolved = this.o.resolved;
    if (resolved) {
      try {
        if (await resolved.available()) {
          await resolved.apply(this.addressList());
          this.applied = true;
          this.integration = `split DNS on ${resolved.link} for ~idloc through systemd-resolved`;
          this.o.logger.info({ listening: this.listening(), upstreams: this.status().upstreams }, `dns: ${this.integration}`);
          return;
        }
      } catch (e) {
        this.o.logger.warn({ err: (e as Error).message }, 'dns: systemd-resolved refused split DNS for the TAP link');
      }
    }
    this.integration = 'no systemd-resolved managing this host\'s links: point a resolver at the addresses above';
    this.o.logger.info({ upstreams: this.status().upstreams }, howToUse(this.listening()));
  }

  private addressList(): string[] {
    return [this.addresses.ipv4, this.addresses.ipv6];
  }

  private listening(): string[] {
    return this.listeners.addresses.map((a) => hostPort(a, this.listeners.port));
  }

  private isOurs(address: string): boolean {
    const a = canonicalAddress(address);
    return a === canonicalAddress(this.addresses.ipv4) || a === canonicalAddress(this.addresses.ipv6);
  }

  /** A client on this host: loopback, our overlay addresses, or another address of the host. */
  private isLocal(address: string): boolean {
    const a = canonicalAddress(address.split('%')[0]!);
    if (isLoopback(a) || this.isOurs(a)) return true;
    return (this.o.hostAddresses?.() ?? []).some((h) => canonicalAddress(h.split('%')[0]!) === a);
  }
}
