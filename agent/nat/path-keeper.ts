// Keeps paths current: this host's view of its NAT, and each overlay peer's path.
//
//   checkNat (after joining, on address changes, every NETCHECK_INTERVAL_MS):
//     netcheck against --stun servers and overlay members on distinct addresses (more from the overlay's
//     "stun" records when fewer than two in a family we have) -> srflx candidates; behind a NAT: RENDEZVOUS_COUNT
//     rendezvous nodes with keepalives, named in the locator, preferably members advertising "relay" (the
//     providers asked again soon while fewer public members are known than wanted);
//     reachable as we are: advertise "stun", and "relay" unless relaying is switched off (withdrawn if a
//     later netcheck finds a firewall). TURN servers ("turn", --offer-turn / --turn-secret) and how
//     providers prove themselves: providers.ts.
//   traverse (a peer found behind a NAT): Attach + ICE (traversal.ts); the chosen endpoint goes to the
//     tunnel, a direct pair that answers later replaces a relay at once. Relayed, or no path: again after
//     ICE_DIRECT_RETRY_MS, backing off, and only a better path replaces the current one (direct > TURN
//     relay > peer relay > none: a working relay is never traded for nothing).
//   localChange (our addresses or default route changed, address-watch.ts; or, for one peer, its path went
//     silent while we sent data, tunnels.ts pathSilent): at once and in parallel, our new public mapping
//     from the first of ICE_RESTART_STUN_SERVERS to answer (rendezvous nodes first), then an ICE restart
//     (a new Attach with fresh candidates through the peer's rendezvous) with every peer whose path
//     needed traversal (any not taken from a public locator; peers that reached us are looked up); beside
//     it the rendezvous keepalives from the new address, a full netcheck and the locator re-published.
//     The tunnel's roaming keepalive goes out before (daemon.ts, Tunnels.refreshPaths). A restart's
//     pair is taken only if it has an endpoint (nothing never replaces something); each peer is
//     restarted at most once per ICE_RESTART_MIN_INTERVAL_MS, a change within it runs when it ends.
//   bridge (with every restart of a direct path, at once): the path may be broken and the restart takes a
//     few round trips, so the tunnel also copies its datagrams to one of the peer's rendezvous nodes (the
//     peer relay: traversal.ts bridgeVia) and asks the peer to answer there (tunnels.ts bridge), until the
//     peer is heard at the tunnel endpoint. The restart's direct pair then ends the bridge; a restart that
//     finds none leaves the tunnel on the relay, tried for direct again after BRIDGE_DIRECT_RETRY_MS.
//   turnChanged (our TURN allocation came or went): peers it could help, or that it carried, are
//     reconsidered at once rather than when their tunnel notices.
import type { Logger } from 'pino';
import {
  BRIDGE_DIRECT_RETRY_MS, ICE_DIRECT_RETRY_MAX_MS, ICE_DIRECT_RETRY_MS, ICE_RESTART_AFTER_FAILURE_MS, ICE_RESTART_MIN_INTERVAL_MS, ICE_RESTART_STUN_SERVERS, NETCHECK_INTERVAL_MS, NETCHECK_MAPPING_RETRIES, NETCHECK_MAPPING_RETRY_MS, NETCHECK_RETRY_MS,
  RENDEZVOUS_COUNT, RENDEZVOUS_PROVIDER_RETRIES, RENDEZVOUS_PROVIDER_RETRY_MS,
} from '../base/constants.js';
import type { OverlayNode } from '../overlay/node.js';
import type { OverlayPeer } from '../idloc/peer-map.js';
import { fewServers, reachableUnsolicited, type NetcheckReport } from './netcheck.js';
import { endpointKey, type Endpoint } from '../conn/socket.js';
import type { Candidate, LocatorRecord } from '../overlay/records.js';
import { DIRECT, rank, type PathChoice, type Traversal } from './traversal.js';
import type { TurnRelay } from './turn-relay.js';
import type { Underlay } from './underlay.js';
import type { OwnerLookup, ProviderCheck, TurnVouch } from './service-proof.js';
import { Providers } from './providers.js';
import { realScheduler, type Scheduler, type TimerHandle } from '../base/scheduler.js';
import { firstMapping } from './first-mapping.js';

/** What the path keeper asks of the agent's overlay use: its services and its rendezvous. */
export interface PathKeeperOverlay {
  readonly node: OwnerLookup & {
    readonly rendezvous: Pick<OverlayNode['rendezvous'], 'prefer' | 'setCount' | 'current' | 'refresh'>;
    readonly resolver: Pick<OverlayNode['resolver'], 'resolveNodeId'>;
  };
  advertise(service: string, candidates: Candidate[]): Promise<boolean>;
  providers(service: string, check?: ProviderCheck): Promise<Endpoint[]>;
  stunCandidates(): Endpoint[];
  addressesChanged(): void;
}

export interface PathKeeperOptions {
  overlay: PathKeeperOverlay;
  traversal: Traversal;
  logger: Logger;
  stunServers: Endpoint[];
  /** First retry for a direct path (default ICE_DIRECT_RETRY_MS). */
  directRetryMs?: number;
  /** We relay for our rendezvous clients while public: advertise the "relay" service. */
  offerPeerRelay: boolean;
  /** Our TURN relay; with --turn-secret its server comes from the overlay's "turn" service records. */
  turn?: Pick<TurnRelay, 'discovers' | 'setServer' | 'onChange'>;
  /** Which relay, if any, carries a tunnel endpoint (the underlay). */
  routes: Pick<Underlay, 'relayRoute'>;
  /** A TURN server to advertise (--offer-turn). */
  offerTurn?: Endpoint;
  /** From the TURN secret (--turn-secret): checks the vouches in "turn" records, and vouches for offerTurn
   *  under `publicKey` (ours). Without it no "turn" record is trusted, and offerTurn is not advertised. */
  turnVouch?: { vouch: TurnVouch; publicKey: Uint8Array };
  netcheck: (servers: Endpoint[]) => Promise<NetcheckReport>;
  /** Our mapping as one server sees it (one Binding transaction): an ICE restart's srflx. Default: a
   *  netcheck of that server, which may test its other address or port first. */
  mappedBy?: (server: Endpoint) => Promise<Endpoint | undefined>;
  peers: KeptPeers;
  /** Standby paths on our other uplinks (standby.ts): a peer one covers needs no ICE restart on our move. */
  standby?: { covers(peer: OverlayPeer<unknown>): boolean };
  clock?: Scheduler;
}

/** The agent's peers as the path keeper sees them (peers.ts). */
export interface KeptPeers {
  /** Point the peer's tunnel at this endpoint and handshake. */
  pointTo(peer: OverlayPeer<unknown>, e: Endpoint): void;
  /** The peer is still ours (not removed, agent not closed). */
  alive(peer: OverlayPeer<unknown>): boolean;
  /** Copy the peer's datagrams to `via`, a relay, until it is heard at its endpoint (tunnels.ts bridge). */
  bridge(peer: OverlayPeer<unknown>, via: Endpoint): boolean;
  /** Peers met through the overlay, with their tunnel's state. */
  overlayPaths(): Iterable<{ peer: OverlayPeer<unknown>; established: boolean; endpoint: Endpoint | undefined }>;
}

/** One peer's ICE restarts: the last one's start, whether it is still running, and what waits for it. */
interface Restart { at: number; timer: TimerHandle | undefined; busy: boolean; again: boolean; own: boolean }

export class PathKeeper {
  private readonly paths = new Map<OverlayPeer<unknown>, PathChoice>();
  /** Traversals started per peer: the next one relays through another of its rendezvous nodes. */
  private readonly tries = new Map<OverlayPeer<unknown>, number>();
  private readonly retries = new Map<OverlayPeer<unknown>, { n: number; timer: TimerHandle | undefined }>();
  /** The locator each traversal went by: an ICE restart needs no lookup when the peer did not move. */
  private readonly locators = new Map<OverlayPeer<unknown>, LocatorRecord>();
  /** The last ICE restart per peer, and the one deferred to the end of ICE_RESTART_MIN_INTERVAL_MS. */
  private readonly restarts = new Map<OverlayPeer<unknown>, Restart>();
  /** Peers whose direct path broke and were bridged, until a direct path is taken again: their retries for
   *  one come BRIDGE_DIRECT_RETRY_MS apart at first. */
  private readonly bridged = new Set<OverlayPeer<unknown>>();
  private rendezvousRefreshedAt = -Infinity;
  private timer: TimerHandle | undefined;
  private mappingRetries = 0;
  private readonly clock: Scheduler;
  private closed = false;
  private readonly providers: Providers;
  private preferTimer: TimerHandle | undefined;
  /** We advertise "stun" (and "relay") as reachable unsolicited. */
  private advertising = false;
  /** Provider endpoints in service records that did not prove themselves, by service. */
  get providersRefused(): Providers['refused'] { return this.providers.refused; }
  /** ICE restarts run, those deferred by ICE_RESTART_MIN_INTERVAL_MS, and those dropped because no STUN
   *  server answered from our new address (offline, mid-move). */
  readonly restartStats = { run: 0, deferred: 0, offline: 0, standby: 0, bridged: 0 };

  constructor(private readonly o: PathKeeperOptions) {
    this.clock = o.clock ?? realScheduler;
    const ov = o.overlay;
    this.providers = new Providers({
      node: ov.node, logger: o.logger, advertise: (s, c) => ov.advertise(s, c), providers: (s, c) => ov.providers(s, c), ...(o.turnVouch ? { turnVouch: o.turnVouch } : {}), ...(o.offerTurn ? { offerTurn: o.offerTurn } : {}),
    });
    if (o.turn) o.turn.onChange = (allocated) => this.turnChanged(allocated);
  }

  /** How the peer's endpoint was chosen (status says it). */
  choice(peer: OverlayPeer<unknown>): PathChoice | undefined {
    return this.paths.get(peer);
  }

  async checkNat(): Promise<void> {
    const { overlay, traversal } = this.o;
    if (this.closed) return;
    this.timer?.cancel();
    this.timer = this.clock.setTimer(NETCHECK_INTERVAL_MS, () => void this.checkNat());
    this.providers.offerOurTurn();
    if (this.o.turn?.discovers) {
      // Our own server needs no record; anyone else's must carry a vouch made with the secret.
      const turn = this.o.offerTurn ?? (await this.providers.provided('turn'))[0];
      if (this.closed) return;
      if (turn) this.o.turn.setServer(turn);
      else this.soon(); // none advertised yet: look again soon, not in NETCHECK_INTERVAL_MS
    }
    let servers = [...this.o.stunServers, ...overlay.stunCandidates()];
    // Cone from symmetric takes two servers on two addresses in each family we have, a firewall one with a
    // second port: public members (a dual-stack one's record names both families; our table only one).
    if (fewServers(servers, traversal.hostFamilies()) || traversal.firewallUntested) servers = [...servers, ...await this.providers.provided('stun')];
    const r = servers.length > 0 ? await this.o.netcheck(servers).catch(() => undefined) : undefined;
    // Alone (the first node), or nobody answered: ask again soon rather than in NETCHECK_INTERVAL_MS, so a
    // first node learns it is public (and advertises it) once others join.
    if ((!r || !r.udp) && !this.closed) this.soon();
    // Answered, but by one server only (the overlay was still filling our table): the mapping, which
    // birthday probing and port prediction go by, is asked again shortly, a few times.
    else if (r && (r.mapping === 'unknown' || (r.behindNat === false && r.filtering === 'unknown')) && !this.closed && this.mappingRetries < NETCHECK_MAPPING_RETRIES) {
      this.mappingRetries++;
      this.soon(NETCHECK_MAPPING_RETRY_MS);
    } else if (r && r.mapping !== 'unknown') this.mappingRetries = 0;
    if (!r || this.closed) return;
    // A check nobody answered says nothing about our mapping: keep the last one that was answered (else
    // one lost STUN exchange takes our srflx candidate out of every Attach until the next netcheck).
    if (!r.udp && traversal.netcheckAnswered) return;
    const was = traversal.behindNat;
    traversal.setNetcheck(r);
    // Behind a NAT or a firewall: rendezvous preferably with members that relay (public; a peer that reaches us through one can be relayed through it).
    const open = reachableUnsolicited(r);
    this.preferTimer?.cancel();
    if (!open) await this.preferPublic(RENDEZVOUS_PROVIDER_RETRIES);
    if (this.closed) return;
    overlay.node.rendezvous.setCount(open ? 0 : RENDEZVOUS_COUNT);
    overlay.addressesChanged();
    // Reachable as we are: offer STUN (every agent answers it; this makes us findable) and relaying to the overlay.
    // Found filtered after all (the first netcheck could not test it): take back what we offered, so that
    // nobody keeps a host that drops their Attach as a rendezvous.
    if (open || this.advertising) {
      const host = open ? traversal.candidates().filter((c) => c.type === 0) as Candidate[] : [];
      void overlay.advertise('stun', host);
      if (this.o.offerPeerRelay) void overlay.advertise('relay', host);
      this.advertising = open;
    }
    if (r.behindNat !== was) this.o.logger.info({ mapping: r.mapping, public: r.publicEndpoint && endpointKey(r.publicEndpoint) }, 'netcheck');
  }

  /** Rendezvous with members known public, preferably relays (a peer that reaches us through one can be
   *  relayed through it); while fewer are known than RENDEZVOUS_COUNT, ask again soon, `retries` times. */
  private async preferPublic(retries: number): Promise<void> {
    const { rendezvous } = this.o.overlay.node;
    const pub = [...await this.providers.provided('relay'), ...await this.providers.provided('stun')];
    if (this.closed) return;
    if (rendezvous.prefer(pub) >= RENDEZVOUS_COUNT || retries <= 0) return;
    this.preferTimer?.cancel();
    this.preferTimer = this.clock.setTimer(RENDEZVOUS_PROVIDER_RETRY_MS, () => void this.preferPublic(retries - 1));
  }

  /** checkNat again after NETCHECK_RETRY_MS (or `ms`) instead of NETCHECK_INTERVAL_MS. */
  private soon(ms = NETCHECK_RETRY_MS): void {
    this.timer?.cancel();
    this.timer = this.clock.setTimer(ms, () => void this.checkNat());
  }

  /** Attach + ICE towards a peer behind a NAT; its tunnel handshakes once a pair is selected. `replace`:
   *  'always' (a new peer, or its path went silent) or 'better' (a retry: only a better path is taken). */
  traverse(peer: OverlayPeer<unknown>, locator: LocatorRecord, replace: 'always' | 'better' | 'restart' = 'always', done?: (ok: boolean) => void): void {
    this.locators.set(peer, locator);
    const attempt = this.tries.get(peer) ?? 0;
    this.tries.set(peer, attempt + 1);
    // A direct pair that answers after ICE settled for a relay or nothing (checks go on, birthday probing
    // takes a while): take it at once rather than at the next retry.
    const onDirect = (late: PathChoice) => {
      if (this.closed || !this.o.peers.alive(peer)) return;
      const had = this.paths.get(peer);
      if (!had || rank(late) > rank(had)) this.take(peer, late, had);
    };
    void this.o.traversal.reach(locator, attempt, onDirect).then((choice) => {
      done?.(choice.endpoint !== undefined);
      if (this.closed || !this.o.peers.alive(peer)) { this.forget(peer); return; }
      const had = this.paths.get(peer);
      // A restart that found nothing keeps what there was (the old pair may still be the one that works).
      if (replace === 'restart' && !choice.endpoint) {
        this.o.logger.info({ peer: peer.nodeIdHex, how: choice.how, why: choice.reason }, 'ICE restart found no path; keeping the one there was');
        if (!had || rank(had) < DIRECT || this.bridged.has(peer)) this.retryDirect(peer);
        return;
      }
      if (replace === 'better' && had && rank(choice) <= rank(had)) {
        if (rank(had) < DIRECT) this.retryDirect(peer);
        return;
      }
      this.take(peer, choice, had);
    }).catch((e: unknown) => { done?.(false); this.o.logger.warn({ err: (e as Error).message }, 'NAT traversal failed'); });
  }

  private take(peer: OverlayPeer<unknown>, choice: PathChoice, had: PathChoice | undefined): void {
    this.paths.set(peer, choice);
    this.o.logger.info({ peer: peer.nodeIdHex, how: choice.how, why: choice.reason, was: had?.how }, 'path to peer');
    if (choice.endpoint) this.o.peers.pointTo(peer, choice.endpoint);
    if (rank(choice) < DIRECT) this.retryDirect(peer);
    else { this.retries.get(peer)?.timer?.cancel(); this.retries.delete(peer); this.bridged.delete(peer); }
  }

  /** Our TURN allocation came: peers without a path or on a peer relay may now get a relayed pair (a better
   *  path is taken, nothing else). It was lost: peers it carried need another path now, not after their
   *  tunnel notices the silence. */
  private turnChanged(allocated: boolean): void {
    if (this.closed) return;
    for (const t of this.o.peers.overlayPaths()) {
      const route = t.endpoint && this.o.routes.relayRoute(t.endpoint);
      const how = this.paths.get(t.peer)?.how;
      if (allocated && (!t.established || route?.via === 'peer-relay' || how === 'no-direct-path')) this.reconsider(t.peer, 'better');
      if (!allocated && (route?.via === 'turn' || how === 'turn')) this.reconsider(t.peer, 'always');
    }
  }

  /** Our addresses or route changed (no argument), or `only` this peer's path went silent: see the top. */
  localChange(only?: OverlayPeer<unknown>, own = only === undefined): void {
    if (this.closed) return;
    for (const p of this.restarts.keys()) if (!this.o.peers.alive(p)) this.forget(p);
    // Our own move: every peer not reached at a public locator, those that reached us too (looked up). A
    // silent path: only a peer we traversed to; the tunnel's relocation covers the others.
    const needs = (p: OverlayPeer<unknown>) => (own || this.paths.has(p)) && this.paths.get(p)?.how !== 'locator';
    const candidates = only ? [only] : [...this.o.peers.overlayPaths()].map((t) => t.peer);
    const covered = (p: OverlayPeer<unknown>) => own && this.o.standby?.covers(p) === true && ++this.restartStats.standby > 0;
    const live = candidates.filter((p) => this.o.peers.alive(p) && !covered(p));
    const due = live.filter((p) => needs(p) && this.mayRestart(p, own));
    // No address to send from (mid-move: the old uplink gone, the new one not up yet), or no STUN server
    // answered from it: a restart now would find nothing, and the change that brings the new uplink
    // runs it (finished() counts this one as failed). A bridge waits for it too.
    const hasAddress = this.o.traversal.candidates().some((c) => c.type === 0);
    if (hasAddress) for (const p of live) void this.bridge(p, own);
    if (!only || due.length > 0) this.refreshRendezvous();
    if (!only) void this.checkNat();
    if (due.length === 0) return;
    void (hasAddress ? this.freshMapping() : Promise.resolve(false)).then((online) => {
      if (!online) this.restartStats.offline++;
      for (const p of due) {
        if (this.closed || !this.o.peers.alive(p) || !online) { this.finished(p, false); continue; }
        this.restartStats.run++;
        const loc = this.locators.get(p);
        const done = (ok: boolean) => this.finished(p, ok);
        if (loc) this.traverse(p, loc, 'restart', done);
        else this.reconsider(p, 'restart', done);
      }
    });
  }

  /** Bridge a tunnel on a direct path through the peer relay while its restart runs (see the top): not
   *  one reached at a public locator (nothing of ours stands between), nor one on a relay already. The
   *  bridge is recorded as the path (status says why) unless a restart took a path meanwhile. */
  private async bridge(peer: OverlayPeer<unknown>, own: boolean): Promise<void> {
    const t = [...this.o.peers.overlayPaths()].find((x) => x.peer === peer);
    const had = this.paths.get(peer);
    if (!t?.established || !t.endpoint || this.o.routes.relayRoute(t.endpoint) || had?.how === 'locator' || !this.o.traversal.bridgeVia) return;
    const loc = this.locators.get(peer) ?? await this.o.overlay.node.resolver.resolveNodeId(Buffer.from(peer.nodeIdHex, 'hex')).catch(() => undefined);
    const b = loc && await this.o.traversal.bridgeVia(loc).catch(() => undefined);
    if (!b || this.closed || !this.o.peers.alive(peer) || this.paths.get(peer) !== had || !this.o.peers.bridge(peer, b.endpoint)) return;
    this.restartStats.bridged++;
    this.bridged.add(peer);
    const r = this.retries.get(peer);
    if (r) r.n = 0;
    const why = own ? 'this host\'s addresses changed' : 'the direct path went silent';
    this.paths.set(peer, { how: 'peer-relay', endpoint: b.endpoint, reason: `bridged through peer relay ${endpointKey(b.relay)} (the peer's rendezvous node) while ICE looks for a new direct pair: ${why}` });
    this.o.logger.info({ peer: peer.nodeIdHex, relay: endpointKey(b.relay) }, 'direct path in doubt; bridging through the peer relay');
  }

  /** PING our rendezvous nodes now (from our current address, re-creating our NAT's mappings towards
   *  them), at most once per ICE_RESTART_MIN_INTERVAL_MS. */
  refreshRendezvous(): void {
    const now = this.clock.now();
    if (this.closed || now - this.rendezvousRefreshedAt < ICE_RESTART_MIN_INTERVAL_MS) return;
    this.rendezvousRefreshedAt = now;
    this.o.overlay.node.rendezvous.refresh();
  }

  /** One ICE restart per peer at a time, and one per ICE_RESTART_MIN_INTERVAL_MS after one that found a
   *  path (ICE_RESTART_AFTER_FAILURE_MS after one that did not); one asked for sooner runs once when
   *  the running one ends or the interval does (one timer per peer). `own`: asked for by our own move. */
  private mayRestart(peer: OverlayPeer<unknown>, own: boolean): boolean {
    const now = this.clock.now();
    const r = this.restarts.get(peer);
    if (r?.busy) { r.again = true; r.own ||= own; this.restartStats.deferred++; return false; }
    if (!r || now - r.at >= ICE_RESTART_MIN_INTERVAL_MS) {
      this.restarts.set(peer, { at: now, timer: undefined, busy: true, again: false, own: false });
      return true;
    }
    this.restartStats.deferred++;
    r.own ||= own;
    r.timer ??= this.clock.setTimer(r.at + ICE_RESTART_MIN_INTERVAL_MS - now, () => {
      r.timer = undefined;
      if (!this.closed && this.o.peers.alive(peer)) this.localChange(peer, r.own);
    });
    return false;
  }

  /** A restart ended: one that found nothing lets the next come ICE_RESTART_AFTER_FAILURE_MS on (the
   *  uplink it ran on may not have been up yet); one that waited for it runs now, or when allowed. */
  private finished(peer: OverlayPeer<unknown>, ok: boolean): void {
    const r = this.restarts.get(peer);
    if (!r || this.closed) return;
    r.busy = false;
    if (!ok) r.at = Math.min(r.at, this.clock.now() - ICE_RESTART_MIN_INTERVAL_MS + ICE_RESTART_AFTER_FAILURE_MS);
    if (!r.again) return;
    r.again = false;
    const own = r.own;
    r.own = false;
    this.localChange(peer, own);
  }

  /** Our public mapping as the first of a few STUN servers sees it (rendezvous nodes first: they are
   *  public and answered us before), within ICE_RESTART_STUN_WAIT_MS; it becomes the srflx we offer.
   *  False: there were servers to ask and every one failed (no answer after all its tries, no route). */
  private async freshMapping(): Promise<boolean> {
    const seen = new Set<string>();
    const servers = [...this.o.overlay.node.rendezvous.current().map((c) => c.endpoint), ...this.o.stunServers, ...this.o.overlay.stunCandidates()]
      .filter((e) => !seen.has(endpointKey(e)) && seen.add(endpointKey(e)) !== undefined).slice(0, ICE_RESTART_STUN_SERVERS);
    if (servers.length === 0) return true;
    const mapped = await firstMapping(servers, (s) => (this.o.mappedBy ? this.o.mappedBy(s) : this.o.netcheck([s]).then((r) => r.publicEndpoint)), this.clock);
    if (mapped && mapped !== 'slow' && !this.closed) this.o.traversal.setPublicEndpoint(mapped);
    return mapped !== undefined;
  }

  /** Look the peer's locator up again and traverse (a relay came or went, or the peer went silent). */
  reconsider(peer: OverlayPeer<unknown>, replace: 'always' | 'better' | 'restart', done?: (ok: boolean) => void): void {
    void this.o.overlay.node.resolver.resolveNodeId(Buffer.from(peer.nodeIdHex, 'hex'))
      .then((loc) => {
        if (loc && !this.closed && this.o.peers.alive(peer)) { this.traverse(peer, loc, replace, done); return; }
        if (!loc) this.o.logger.info({ peer: peer.nodeIdHex }, 'the peer\'s locator was not found');
        done?.(false);
      })
      .catch(() => done?.(false));
  }

  close(): void {
    this.closed = true;
    this.timer?.cancel();
    this.preferTimer?.cancel();
    for (const r of this.retries.values()) r.timer?.cancel();
    for (const r of this.restarts.values()) r.timer?.cancel();
  }

  /** Try for a better path later: after directRetryMs, doubling per retry up to ICE_DIRECT_RETRY_MAX_MS. One
   *  timer per peer (a new one replaces it). */
  private retryDirect(peer: OverlayPeer<unknown>): void {
    const r = this.retries.get(peer) ?? { n: 0, timer: undefined };
    r.timer?.cancel();
    const base = this.bridged.has(peer) ? Math.min(BRIDGE_DIRECT_RETRY_MS, this.o.directRetryMs ?? ICE_DIRECT_RETRY_MS) : (this.o.directRetryMs ?? ICE_DIRECT_RETRY_MS);
    const delay = Math.min(ICE_DIRECT_RETRY_MAX_MS, base * 2 ** Math.min(r.n, 8));
    r.n++;
    r.timer = this.clock.setTimer(delay, () => {
      if (this.closed || !this.o.peers.alive(peer)) { this.forget(peer); return; }
      void this.o.overlay.node.resolver.resolveNodeId(Buffer.from(peer.nodeIdHex, 'hex'))
        .then((loc) => { if (loc && !this.closed) this.traverse(peer, loc, 'better'); else this.retryDirect(peer); })
        .catch(() => this.retryDirect(peer));
    });
    this.retries.set(peer, r);
  }

  private forget(peer: OverlayPeer<unknown>): void {
    this.retries.get(peer)?.timer?.cancel();
    this.retries.delete(peer);
    this.tries.delete(peer);
    this.paths.delete(peer);
    this.locators.delete(peer);
    this.bridged.delete(peer);
    this.restarts.get(peer)?.timer?.cancel();
    this.restarts.delete(peer);
  }
}
