// Standby paths: a host with several uplinks (conn/uplinks.ts) keeps, for every peer on a direct path, a
// tested path out of each other uplink, so that when the one in use fails the traffic moves at once, on
// the same tunnel session: no handshake, no ICE restart. Messages: standby-wire.ts.
//
//   1. Per uplink U (on every change of uplinks, and every STANDBY_REMAP_MS): our public mapping M(U) as
//      a STUN server sees it, asked out of U (Endpoint.via = U's index, native-helpers/udp.c IP_PKTINFO).
//   2. Per peer P at endpoint E, per uplink U other than the one P's traffic takes:
//        over the active path   OFFER(id, M(U))  P sends to M(U) now and then, which opens its own NAT's
//                                                filter towards it (the hole is punched from both sides);
//        out of U, to E         PROBE(id)        opens our NAT on U towards E; P answers ANSWER(id) to
//                                                where the probe came from.
//      Every STANDBY_PROBE_MS until answered, then every STANDBY_KEEPALIVE_MS, which keeps both NATs'
//      mappings; answered within STANDBY_FRESH_MS means usable.
//   3. Failover. The traffic's uplink lost its address or link: the kernel routes out of the next uplink by
//      itself, from the address and port the probes used, so through the mapping they kept open; the path
//      keeper skips the ICE restart for a peer we cover(). The path went silent (tunnels.ts pathSilent):
//      while sending, at once; while receiving, after a PROBE on the active path went unanswered for
//      STANDBY_CHECK_RTTS of its round trips (measured by a PROBE on it with every keepalive round; within
//      STANDBY_CHECK_MIN_MS..STANDBY_CHECK_MS). The tunnel's endpoint is pinned to the standby's uplink (E, via = U) and a
//      keepalive goes out there; P roams to M(U) on that authenticated packet.
//   4. Failback. A peer pinned off the preferred uplink goes back to it once that uplink's probes are
//      answered again and STANDBY_FAILBACK_MS has passed since the move.
// The peer's side: an OFFER or a PROBE is noted (status shows it) and answered, towards an offered
// address at most once per STANDBY_OFFER_ANSWER_MIN_MS. Neither moves its tunnel: it roams only on data or
// keepalives (tunnels.ts), so only once we really send along the new path (HIP's verified locator).
import { randomInt } from 'node:crypto';
import type { Logger } from 'pino';
import {
  STANDBY_CHECK_MIN_MS, STANDBY_CHECK_MS, STANDBY_CHECK_RTTS, STANDBY_FAILBACK_MS, STANDBY_FRESH_MS, STANDBY_KEEPALIVE_MS, STANDBY_OFFER_ANSWER_MIN_MS, STANDBY_PROBE_MS,
  STANDBY_REMAP_MS, STANDBY_TICK_MS, STANDBY_UPLINKS_MAX,
} from '../base/constants.js';
import { every, realScheduler, type Scheduler, type TimerHandle } from '../base/scheduler.js';
import { endpointKey, type Endpoint } from '../conn/socket.js';
import type { Uplink } from '../conn/uplinks.js';
import type { ControlReceiver, TunnelPeer } from '../tunnel/tunnels.js';
import { CTRL_STANDBY_ANSWER, CTRL_STANDBY_OFFER, CTRL_STANDBY_PROBE, marshalControl, parseControl } from './standby-wire.js';
import { CTRL_TUNNEL_PING, CTRL_TUNNEL_PONG } from '../tunnel/ping.js';

export interface StandbyTunnels {
  sendControl(peer: TunnelPeer, message: Uint8Array, to?: Endpoint): boolean;
  onControl(handler: ControlReceiver): void;
  setEndpoint(peer: TunnelPeer, endpoint: Endpoint, nudge?: boolean): void;
}

export interface StandbyOptions {
  tunnels: StandbyTunnels;
  /** Peers with an established session on a direct path (not through a relay). */
  peers: () => Iterable<TunnelPeer>;
  stun: { binding(server: Endpoint): Promise<{ mapped: Endpoint } | undefined> };
  /** STUN servers to ask our mapping on each uplink of (the first that answers counts). */
  stunServers: () => Endpoint[];
  uplinks: () => Uplink[];
  /** One of our other uplinks' public mappings is new or changed (otherMappings): republish the locator. */
  onMappingsChanged?: () => void;
  logger: Logger;
  clock?: Scheduler;
}

/** What `status` shows for one peer. */
export interface StandbyStatus {
  /** Our standby paths to it, one per other uplink. */
  ours: { uplink: string; mapped: string | null; answeredAgoMs: number | null }[];
  /** The peer's standby path towards us, as its offers and probes showed it. */
  theirs: { endpoint: string; heardAgoMs: number } | null;
  /** The uplink its traffic is pinned to after a failover, if any. */
  pinned: string | null;
}

interface Mapping { uplink: Uplink; mapped: Endpoint | undefined; askedAt: number; asking: boolean }
interface Probe { id: number; sentAt: number; answeredAt: number }
interface PeerStandby {
  probes: Map<number, Probe>; // by uplink index
  pinnedAt: number;
  /** The probe on the active path after a receive silence, and its deadline. */
  check: { id: number; sentAt: number; answered: boolean; timer: TimerHandle } | undefined;
  /** The active path's round trip, from a PROBE on it every STANDBY_KEEPALIVE_MS (and every check). */
  rtt: { id: number; sentAt: number; ms: number | undefined };
  theirs: { endpoint: Endpoint; heardAt: number; answeredAt: number } | undefined;
}

export class StandbyPaths {
  readonly stats = { probes: 0, offers: 0, answers: 0, answered: 0, failovers: 0, failbacks: 0, malformed: 0, unknownId: 0 };
  private uplinks: Uplink[] = [];
  private readonly mappings = new Map<number, Mapping>();
  private readonly state = new Map<TunnelPeer, PeerStandby>();
  private readonly clock: Scheduler;
  private readonly timer: TimerHandle;
  private closed = false;

  constructor(private readonly o: StandbyOptions) {
    this.clock = o.clock ?? realScheduler;
    o.tunnels.onControl((peer, msg, from) => this.onControl(peer, msg, from));
    this.uplinksChanged();
    this.timer = every(this.clock, STANDBY_TICK_MS, () => this.tick());
  }

  /** Our interfaces or routes changed: take the uplinks as they are now, ask each new one's mapping, and
   *  unpin peers from an uplink that is gone (their traffic follows the routing table again). */
  uplinksChanged(): void {
    if (this.closed) return;
    this.uplinks = this.o.uplinks().slice(0, STANDBY_UPLINKS_MAX + 1);
    const present = new Map(this.uplinks.map((u) => [u.index, u]));
    for (const [index, m] of this.mappings) {
      const u = present.get(index);
      // Same interface, another address: what we knew of its mapping is stale.
      if (!u || u.address !== m.uplink.address) this.mappings.delete(index);
    }
    for (const u of this.uplinks) if (!this.mappings.has(u.index)) this.mappings.set(u.index, { uplink: u, mapped: undefined, askedAt: -Infinity, asking: false });
    for (const [peer, st] of this.state) {
      const e = peer.endpoint;
      if (e?.via !== undefined && !present.has(e.via)) {
        this.o.tunnels.setEndpoint(peer, { address: e.address, port: e.port }, true);
        st.pinnedAt = -Infinity;
      }
      for (const index of st.probes.keys()) if (!present.has(index)) st.probes.delete(index);
    }
    if (this.uplinks.length > 1) this.tick();
  }

  /** A standby path to this peer answered recently on an uplink we still have: after our own move, the
   *  traffic takes it (the routing table's next uplink) and needs no ICE restart. */
  covers(peer: TunnelPeer): boolean {
    const st = this.state.get(peer);
    return st !== undefined && this.freshStandby(peer, st, true) !== undefined;
  }

  /** The tunnel's path to `peer` went silent (tunnels.ts pathSilent). True: the traffic moved to a standby
   *  path, nothing else is needed. */
  pathSilent(peer: TunnelPeer, side: 'sending' | 'receiving'): boolean {
    const st = this.state.get(peer);
    if (!st || this.closed) return false;
    const u = this.freshStandby(peer, st, false);
    if (u === undefined) return false;
    if (side === 'sending') { this.failover(peer, st, u); return true; }
    if (st.check) return false;
    // Receiving: the flow may just have ended. Ask the active path; move only if it does not answer.
    const id = randomInt(1, 2 ** 32);
    if (!this.o.tunnels.sendControl(peer, marshalControl({ type: CTRL_STANDBY_PROBE, id }))) return false;
    const rtt = st.rtt.ms;
    const wait = rtt === undefined ? STANDBY_CHECK_MS : Math.min(STANDBY_CHECK_MS, Math.max(STANDBY_CHECK_MIN_MS, STANDBY_CHECK_RTTS * rtt));
    const timer = this.clock.setTimer(wait, () => {
      const c = st.check;
      st.check = undefined;
      if (c && !c.answered && !this.closed && this.state.get(peer) === st) {
        const still = this.freshStandby(peer, st, false);
        if (still !== undefined) this.failover(peer, st, still);
      }
    });
    st.check = { id, sentAt: this.clock.now(), answered: false, timer };
    return false;
  }

  /** The public mappings of our other uplinks (not the first, whose mapping netcheck reports): the
   *  locator carries them as server-reflexive candidates too. */
  otherMappings(): Endpoint[] {
    const out: Endpoint[] = [];
    for (const u of this.uplinks.slice(1)) {
      const m = this.mappings.get(u.index)?.mapped;
      if (m) out.push(m);
    }
    return out;
  }

  status(peer: TunnelPeer): StandbyStatus | undefined {
    const st = this.state.get(peer);
    if (!st) return undefined;
    const now = this.clock.now();
    const ours = [...st.probes].map(([index, p]) => {
      const m = this.mappings.get(index);
      return { uplink: m?.uplink.name ?? String(index), mapped: m?.mapped ? endpointKey(m.mapped) : null, answeredAgoMs: Number.isFinite(p.answeredAt) ? Math.round(now - p.answeredAt) : null };
    });
    const t = st.theirs;
    const via = peer.endpoint?.via;
    if (ours.length === 0 && !t && via === undefined) return undefined;
    return {
      ours, theirs: t ? { endpoint: endpointKey(t.endpoint), heardAgoMs: Math.round(now - t.heardAt) } : null,
      pinned: via === undefined ? null : (this.mappings.get(via)?.uplink.name ?? String(via)),
    };
  }

  close(): void {
    this.closed = true;
    this.timer.cancel();
    for (const st of this.state.values()) st.check?.timer.cancel();
  }

  /** The uplink (index) of the freshest answered standby path that is not the one in use, if any.
   *  `includeInUse`: also the one in use (after our move the routing table may already send there). */
  private freshStandby(peer: TunnelPeer, st: PeerStandby, includeInUse: boolean): number | undefined {
    const now = this.clock.now();
    const inUse = peer.endpoint?.via ?? this.uplinks[0]?.index;
    let best: number | undefined, at = -Infinity;
    for (const [index, p] of st.probes) {
      if (!this.mappings.has(index) || (!includeInUse && index === inUse)) continue;
      if (now - p.answeredAt < STANDBY_FRESH_MS && p.answeredAt > at) { best = index; at = p.answeredAt; }
    }
    return best;
  }

  private failover(peer: TunnelPeer, st: PeerStandby, index: number): void {
    const e = peer.endpoint;
    if (!e || this.closed) return;
    this.o.tunnels.setEndpoint(peer, { address: e.address, port: e.port, via: index }, true);
    st.pinnedAt = this.clock.now();
    this.stats.failovers++;
    this.o.logger.info({ peer: peer.publicKeyHex.slice(0, 16), via: this.mappings.get(index)?.uplink.name }, 'path moved to a standby uplink');
  }

  private tick(): void {
    if (this.closed) return;
    const now = this.clock.now();
    for (const m of this.mappings.values()) {
      if (!m.asking && now - m.askedAt >= (m.mapped ? STANDBY_REMAP_MS : STANDBY_PROBE_MS)) void this.ask(m);
    }
    const seen = new Set<TunnelPeer>();
    const primary = this.uplinks[0]?.index;
    for (const peer of this.o.peers()) {
      const e = peer.endpoint;
      if (!e || e.address.includes(':')) continue; // IPv4 uplinks only; virtual (relay) endpoints are IPv6-shaped
      seen.add(peer);
      let st = this.state.get(peer);
      if (!st && this.uplinks.length < 2) continue;
      st ??= this.newState(peer);
      const inUse = e.via ?? primary;
      for (const u of this.uplinks) {
        const m = this.mappings.get(u.index);
        if (u.index === inUse || !m?.mapped) continue;
        let p = st.probes.get(u.index);
        if (!p) st.probes.set(u.index, p = { id: randomInt(1, 2 ** 32), sentAt: -Infinity, answeredAt: -Infinity });
        const answered = p.answeredAt >= p.sentAt;
        if (now - p.sentAt < (answered ? STANDBY_KEEPALIVE_MS : STANDBY_PROBE_MS)) continue;
        p.sentAt = now;
        if (this.o.tunnels.sendControl(peer, marshalControl({ type: CTRL_STANDBY_OFFER, id: p.id, endpoint: m.mapped }))) this.stats.offers++;
        if (this.o.tunnels.sendControl(peer, marshalControl({ type: CTRL_STANDBY_PROBE, id: p.id }), { address: e.address, port: e.port, via: u.index })) this.stats.probes++;
      }
      // The active path's round trip, for the silence check's wait.
      if (now - st.rtt.sentAt >= STANDBY_KEEPALIVE_MS && !st.check) {
        st.rtt.id = randomInt(1, 2 ** 32);
        st.rtt.sentAt = now;
        this.o.tunnels.sendControl(peer, marshalControl({ type: CTRL_STANDBY_PROBE, id: st.rtt.id }));
      }
      // Failback: pinned off the preferred uplink, which answers again.
      if (e.via !== undefined && e.via !== primary && primary !== undefined) {
        const p = st.probes.get(primary);
        if (p && p.answeredAt > st.pinnedAt && now - st.pinnedAt >= STANDBY_FAILBACK_MS) {
          this.o.tunnels.setEndpoint(peer, { address: e.address, port: e.port }, true);
          st.pinnedAt = -Infinity;
          this.stats.failbacks++;
          this.o.logger.info({ peer: peer.publicKeyHex.slice(0, 16), via: this.uplinks[0]?.name }, 'path back on the preferred uplink');
        }
      }
    }
    for (const [peer, st] of this.state) if (!seen.has(peer)) { st.check?.timer.cancel(); this.state.delete(peer); }
  }

  private newState(peer: TunnelPeer): PeerStandby {
    const st: PeerStandby = { probes: new Map(), pinnedAt: -Infinity, check: undefined, theirs: undefined, rtt: { id: 0, sentAt: -Infinity, ms: undefined } };
    this.state.set(peer, st);
    return st;
  }

  /** Our mapping on one uplink, from the first STUN server that answers out of it. */
  private async ask(m: Mapping): Promise<void> {
    m.asking = true;
    m.askedAt = this.clock.now();
    try {
      for (const s of this.o.stunServers().slice(0, 3)) {
        if (s.address.includes(':')) continue;
        const r = await this.o.stun.binding({ address: s.address, port: s.port, via: m.uplink.index }).catch(() => undefined);
        if (r) {
          const changed = !m.mapped || m.mapped.address !== r.mapped.address || m.mapped.port !== r.mapped.port;
          m.mapped = { address: r.mapped.address, port: r.mapped.port };
          if (changed && m.uplink.index !== this.uplinks[0]?.index) this.o.onMappingsChanged?.();
          return;
        }
      }
    } finally {
      m.asking = false;
    }
  }

  private onControl(peer: TunnelPeer, msg: Buffer, from: Endpoint): void {
    if (msg[0] === CTRL_TUNNEL_PING || msg[0] === CTRL_TUNNEL_PONG) return; // tunnel/ping.ts answers those
    const c = parseControl(msg);
    if (!c) { this.stats.malformed++; return; }
    const now = this.clock.now();
    const st = this.state.get(peer) ?? this.newState(peer);
    switch (c.type) {
      case CTRL_STANDBY_PROBE:
        // Answered where it came from (it proved itself with the session's keys). On the active path this
        // is the other side's silence check; elsewhere it is the peer's standby path.
        this.answer(peer, c.id, { address: from.address, port: from.port });
        if (!sameAddress(from, peer.endpoint)) st.theirs = { endpoint: { address: from.address, port: from.port }, heardAt: now, answeredAt: st.theirs?.answeredAt ?? -Infinity };
        return;
      case CTRL_STANDBY_OFFER: {
        const t = st.theirs && sameAddress(st.theirs.endpoint, c.endpoint) ? st.theirs : { endpoint: c.endpoint, heardAt: now, answeredAt: -Infinity };
        t.heardAt = now;
        st.theirs = t;
        // Towards an address the peer names: a bounded trickle, whatever it sends.
        if (now - t.answeredAt >= STANDBY_OFFER_ANSWER_MIN_MS) { t.answeredAt = now; this.answer(peer, c.id, c.endpoint); }
        return;
      }
      case CTRL_STANDBY_ANSWER: {
        if (st.check?.id === c.id) { st.check.answered = true; st.rtt.ms = now - st.check.sentAt; return; }
        if (st.rtt.id === c.id) { st.rtt.ms = now - st.rtt.sentAt; st.rtt.id = 0; return; }
        for (const p of st.probes.values()) if (p.id === c.id) { p.answeredAt = now; this.stats.answered++; return; }
        this.stats.unknownId++;
      }
    }
  }

  private answer(peer: TunnelPeer, id: number, to: Endpoint): void {
    if (this.o.tunnels.sendControl(peer, marshalControl({ type: CTRL_STANDBY_ANSWER, id }), to)) this.stats.answers++;
  }
}

function sameAddress(a: Endpoint, b: Endpoint | undefined): boolean {
  return b !== undefined && a.address === b.address && a.port === b.port;
}
