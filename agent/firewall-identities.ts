// Who each peer is, for the firewall's rules (firewall/): its key and NodeID come with the tunnel; the
// overlay names a rule mentions are resolved here, and a peer holding one is compiled with it. A name's
// holder is looked up at start and every FW_NAME_REFRESH_MS (names move with their registrations), and a
// peer whose names changed is recompiled in place, keeping its flows. Rules are matched once per peer,
// never per packet: the packet path only reads the compiled policy.
import type { Logger } from 'pino';
import { FW_NAME_REFRESH_MS, FW_NAME_RETRY_MS } from './base/constants.js';
import { every, type Scheduler, type TimerHandle } from './base/scheduler.js';
import type { Firewall } from './firewall/firewall.js';
import type { OverlayPeer, PeerMap } from './idloc/peer-map.js';
import type { TunnelPeer } from './tunnel/tunnels.js';

export interface FirewallIdentitiesOptions {
  firewall: Firewall;
  map: PeerMap<TunnelPeer>;
  /** The key (hex) holding an overlay name now, or undefined. */
  resolveName?: (name: string) => Promise<string | undefined>;
  /** A certificate's groups for a key (none until certificates are configured). */
  groupsOf?: (publicKeyHex: string) => readonly string[];
  clock: Scheduler;
  logger: Logger;
}

export class FirewallIdentities {
  /** Names the rules mention, and the key each resolved to last. */
  private readonly holders = new Map<string, string | undefined>();
  private readonly timer: TimerHandle | undefined;
  private lastRefresh = -Infinity;

  constructor(private readonly o: FirewallIdentitiesOptions) {
    for (const r of o.firewall.rules) if (r.from.kind === 'name') this.holders.set(r.from.value, undefined);
    if (this.holders.size > 0 && o.resolveName) this.timer = every(o.clock, FW_NAME_REFRESH_MS, () => void this.refresh());
  }

  get firewall(): Firewall { return this.o.firewall; }

  /** A peer just added to the map: its policy. */
  attach(peer: OverlayPeer<TunnelPeer>): void {
    peer.firewall = this.o.firewall.compileFor(this.identityOf(peer));
    // A newcomer may hold a rule's name we have not found yet (at start, before the overlay answered).
    const now = this.o.clock.now();
    if (now - this.lastRefresh >= FW_NAME_RETRY_MS && [...this.holders.values()].includes(undefined)) void this.refresh();
  }

  /** A peer removed: its flows go too. */
  detach(peer: OverlayPeer<TunnelPeer>): void {
    if (peer.firewall) this.o.firewall.forget(peer.firewall);
  }

  /** Look the rules' names up again; recompile the peers that gained or lost one. */
  async refresh(): Promise<void> {
    const resolve = this.o.resolveName;
    if (!resolve) return;
    this.lastRefresh = this.o.clock.now();
    const changed = new Set<string>();
    for (const [name, before] of this.holders) {
      let now: string | undefined;
      try { now = await resolve(name); } catch { now = before; }
      if (now === before) continue;
      this.holders.set(name, now);
      if (before) changed.add(before);
      if (now) changed.add(now);
      this.o.logger.info({ name, holder: now ?? null }, 'firewall: a rule\'s name has another holder');
    }
    for (const key of changed) {
      const peer = this.o.map.getByKey(key);
      if (peer?.firewall) this.o.firewall.recompile(peer.firewall, this.identityOf(peer));
    }
  }

  close(): void { this.timer?.cancel(); }

  private identityOf(peer: OverlayPeer<TunnelPeer>) {
    const names: string[] = [];
    for (const [name, key] of this.holders) if (key === peer.publicKeyHex) names.push(name);
    return { publicKeyHex: peer.publicKeyHex, nodeIdHex: peer.nodeIdHex, names, groups: this.o.groupsOf?.(peer.publicKeyHex) ?? [] };
  }
}
