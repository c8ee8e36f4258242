// Discovery: the first packet to an overlay address nobody is mapped to finds its peer.
//
// Outbound (Inside found no peer for the destination):
//   1. Refused at once (ICMP unreachable) if the address failed a lookup within LOOKUP_NEGATIVE_CACHE_MS,
//      or LOOKUP_MAX_PENDING destinations are already being looked up.
//   2. The packet is copied into the destination's queue (at most LOOKUP_QUEUE_PER_DEST; more are dropped
//      and counted) and, for a new destination, a lookup starts: IPv4 -> the address's claim -> the
//      claiming key -> its locator; IPv6 -> the NodeID bits the address carries -> the node -> its locator.
//      The overlay checks every record's signature; here the found key must own the address once more
//      (IPv6: the address derives from the key; IPv4: the claim names it), so a bad lookup cannot map an
//      address to the wrong key.
//   3. Found: the peer is added (its tunnel handshakes at once) and the queued packets are routed again
//      through Inside, which hands them to the tunnel (queued there until the session is up).
//      Not found or timed out: every queued packet is answered with ICMP unreachable.
//
// Inbound (a handshake from a key we never added, i.e. the peer found us):
//   The key's IPv6 address is known from the key; its IPv4 address is whatever it claimed in the overlay,
//   so the claim is looked up (ipv4Of) and the peer's IPv4 packets are held meanwhile (IPV4_PENDING_PER_PEER).
//   These lookups run on others' behalf, so they go through a LookupLimiter: PEER_LOOKUPS_IN_FLIGHT at
//   once, PEER_LOOKUPS_QUEUED waiting, the rest dropped and counted; a slot frees at LOOKUP_TIMEOUT_MS even
//   if the overlay never answers.
import {
  DISCOVERY_LATENCY_SAMPLES, IPV4_PENDING_PER_PEER, LOOKUP_MAX_PENDING, LOOKUP_NEGATIVE_CACHE_MS, LOOKUP_QUEUE_PER_DEST, LOOKUP_TIMEOUT_MS,
  PEER_LOOKUPS_IN_FLIGHT, PEER_LOOKUPS_QUEUED,
} from './base/constants.js';
import { ipv6FromNodeId, nodeIdFromPublicKey } from './idloc/addresses.js';
import { IPV4_UNMAPPED, type Outside, type UnmappedIpv4Handler } from './idloc/outside.js';
import type { Inside, UnknownPeerHandler } from './idloc/inside.js';
import type { OverlayPeer } from './idloc/peer-map.js';
import { realScheduler, type Scheduler, type TimerHandle } from './base/scheduler.js';
import type { Endpoint } from './conn/socket.js';
import type { LocatorRecord } from './overlay/records.js';

/** What a lookup found: the key that owns the address and where the overlay says it is. */
export interface FoundPeer {
  publicKey: Uint8Array;
  endpoint: Endpoint | undefined;
  /** The IPv4 overlay address its claim holds, if the lookup learned it; 0 = unknown yet. */
  ipv4: number;
  /** The locator the lookup found: candidates and rendezvous, for NAT traversal. */
  locator?: LocatorRecord;
}

/** The overlay's lookups (agent-overlay.ts). */
export interface DiscoveryLookups {
  lookupIpv4(ipv4: number): Promise<FoundPeer | undefined>;
  lookupIpv6(ipv6: Uint8Array): Promise<FoundPeer | undefined>;
  /** The IPv4 overlay address the key holds a claim for. */
  ipv4Of(publicKey: Uint8Array): Promise<number | undefined>;
}

/** The agent's peers (peers.ts). */
export interface DiscoveryPeers {
  /** Add (or find, if it is known by now) the peer and start its tunnel; undefined if refused. */
  addFound(found: FoundPeer): OverlayPeer<unknown> | undefined;
  /** Map a peer's IPv4 address; false if another peer holds it. */
  mapIpv4(peer: OverlayPeer<unknown>, ipv4: number): boolean;
}

export interface DiscoveryDeps {
  overlay: DiscoveryLookups;
  peers: DiscoveryPeers;
  /** Queued packets are routed again (forward) or refused with ICMP unreachable into the TAP. */
  inside: Pick<Inside, 'forward' | 'unreachable'>;
  /** Held inbound IPv4 packets are delivered again once the peer's claim is known. */
  outside: Pick<Outside, 'deliver'>;
  clock?: Scheduler;
}

export interface DiscoveryStats {
  lookups: number;
  found: number;
  notFound: number;
  timedOut: number;
  /** The overlay answered with a key that does not own the address. */
  wrongOwner: number;
  queued: number;
  queueDropped: number;
  /** Destinations refused because LOOKUP_MAX_PENDING lookups were running. */
  busy: number;
  negativeCached: number;
  ipv4Mapped: number;
  ipv4Unresolved: number;
  ipv4HeldDropped: number;
  /** IPv4 claim lookups not started: PEER_LOOKUPS_IN_FLIGHT running and PEER_LOOKUPS_QUEUED waiting. */
  ipv4LookupsDropped: number;
}

/** Runs lookups at most `inFlight` at once, queues up to `queued` more, and drops (counts) the rest. A
 *  slot frees when its lookup settles or after LOOKUP_TIMEOUT_MS, whichever comes first. */
export class LookupLimiter {
  dropped = 0;
  private running = 0;
  private waiting: (() => Promise<unknown>)[] = [];

  constructor(private readonly clock: Scheduler, private readonly inFlight = PEER_LOOKUPS_IN_FLIGHT, private readonly queued = PEER_LOOKUPS_QUEUED) {}

  /** Start `fn` now or when a slot frees; false if it was dropped. */
  run(fn: () => Promise<unknown>): boolean {
    if (this.running < this.inFlight) { this.start(fn); return true; }
    if (this.waiting.length >= this.queued) { this.dropped++; return false; }
    this.waiting.push(fn);
    return true;
  }

  get active(): number { return this.running; }
  get backlog(): number { return this.waiting.length; }

  clear(): void { this.waiting = []; }

  private start(fn: () => Promise<unknown>): void {
    this.running++;
    let done = false;
    const free = () => {
      if (done) return;
      done = true;
      timer.cancel();
      this.running--;
      const next = this.waiting.shift();
      if (next) this.start(next);
    };
    const timer = this.clock.setTimer(LOOKUP_TIMEOUT_MS, free);
    let p: Promise<unknown>;
    try { p = fn(); } catch { p = Promise.resolve(); }
    void p.catch(() => undefined).finally(free);
  }
}

/** Packets waiting for a lookup, and `idloc-agent ping`s waiting for its peer (find). */
interface Pending { packets: Buffer[]; waiters?: ((peer: OverlayPeer<unknown> | undefined) => void)[] }

export class Discovery implements UnknownPeerHandler, UnmappedIpv4Handler {
  readonly stats: DiscoveryStats = {
    lookups: 0, found: 0, notFound: 0, timedOut: 0, wrongOwner: 0, queued: 0, queueDropped: 0, busy: 0,
    negativeCached: 0, ipv4Mapped: 0, ipv4Unresolved: 0, ipv4HeldDropped: 0, ipv4LookupsDropped: 0,
  };
  private readonly pending = new Map<string, Pending>();
  private readonly failedUntil = new Map<string, number>();
  private readonly heldIpv4 = new Map<OverlayPeer<unknown>, Buffer[]>();
  private readonly latencies: number[] = [];
  private readonly clock: Scheduler;
  private readonly claimLookups: LookupLimiter;
  private closed = false;

  constructor(private readonly d: DiscoveryDeps) {
    this.clock = d.clock ?? realScheduler;
    this.claimLookups = new LookupLimiter(this.clock);
  }

  private now(): number { return this.clock.now(); }

  /** Inside step 4: true if the packet was taken (queued for a lookup). */
  onUnknownPeer(packet: Buffer, version: 4 | 6): boolean {
    if (this.closed) return false;
    const key = version === 4 ? `4:${packet.readUInt32BE(16)}` : `6:${packet.toString('hex', 24, 40)}`;
    const now = this.now();
    const until = this.failedUntil.get(key);
    if (until !== undefined) {
      if (until > now) { this.stats.negativeCached++; return false; }
      this.failedUntil.delete(key);
    }
    let p = this.pending.get(key);
    if (!p) {
      if (this.pending.size >= LOOKUP_MAX_PENDING) { this.stats.busy++; return false; }
      p = { packets: [] };
      this.pending.set(key, p);
      const dst = version === 4 ? packet.readUInt32BE(16) : Uint8Array.from(packet.subarray(24, 40));
      void this.lookup(key, dst, p);
    }
    if (p.packets.length >= LOOKUP_QUEUE_PER_DEST) { this.stats.queueDropped++; return true; }
    p.packets.push(Buffer.from(packet));
    this.stats.queued++;
    return true;
  }

  /** The peer at this overlay address (u32 IPv4, or the 16 IPv6 bytes), looked up as its first packet
   *  would be, and sharing that lookup: for `idloc-agent ping` to a peer we have no tunnel to yet. */
  find(dst: number | Uint8Array): Promise<OverlayPeer<unknown> | undefined> {
    const key = typeof dst === 'number' ? `4:${dst}` : `6:${Buffer.from(dst).toString('hex')}`;
    let p = this.pending.get(key);
    if (!p) {
      if (this.closed || this.pending.size >= LOOKUP_MAX_PENDING) { this.stats.busy++; return Promise.resolve(undefined); }
      p = { packets: [] };
      this.pending.set(key, p);
      void this.lookup(key, dst, p);
    }
    const w = (p.waiters ??= []);
    if (w.length >= LOOKUP_QUEUE_PER_DEST) return Promise.resolve(undefined);
    return new Promise((resolve) => w.push(resolve));
  }

  /** Outside step 2: hold the packet until the peer's IPv4 claim is known. */
  onIpv4Unmapped(peer: OverlayPeer<unknown>, packet: Buffer): void {
    if (this.closed) return;
    let held = this.heldIpv4.get(peer);
    if (!held) {
      held = [];
      this.heldIpv4.set(peer, held);
      this.mapIpv4Later(peer);
    }
    if (held.length >= IPV4_PENDING_PER_PEER) { this.stats.ipv4HeldDropped++; return; }
    held.push(Buffer.from(packet));
  }

  /** A peer that found us (handshake from a new key): learn its IPv4 address now, before it sends IPv4. */
  admitted(peer: OverlayPeer<unknown>): void {
    if (this.closed || peer.ipv4 !== IPV4_UNMAPPED || this.heldIpv4.has(peer)) return;
    this.heldIpv4.set(peer, []);
    this.mapIpv4Later(peer);
  }

  /** The peer is gone (peers.ts evicted it): its held packets and any claim lookup waiting for it go. */
  forget(peer: OverlayPeer<unknown>): void {
    const held = this.heldIpv4.get(peer);
    if (held) this.stats.ipv4HeldDropped += held.length;
    this.heldIpv4.delete(peer);
  }

  /** IPv4 claim lookups running and waiting. */
  claimLookupLoad(): { active: number; backlog: number } {
    return { active: this.claimLookups.active, backlog: this.claimLookups.backlog };
  }

  /** Median and 90th percentile of successful lookups, ms. */
  latency(): { p50Ms: number; p90Ms: number } {
    const s = this.latencies.slice().sort((a, b) => a - b);
    const at = (q: number) => (s.length ? s[Math.min(s.length - 1, Math.floor(q * s.length))]! : 0);
    return { p50Ms: at(0.5), p90Ms: at(0.9) };
  }

  close(): void {
    this.closed = true;
    this.pending.clear();
    this.heldIpv4.clear();
    this.claimLookups.clear();
  }

  private async lookup(key: string, dst: number | Uint8Array, p: Pending): Promise<void> {
    this.stats.lookups++;
    const started = this.now();
    let timer: TimerHandle | undefined;
    const timeout = new Promise<'timeout'>((r) => { timer = this.clock.setTimer(LOOKUP_TIMEOUT_MS, () => r('timeout')); });
    let found: FoundPeer | undefined | 'timeout';
    try {
      const search = typeof dst === 'number' ? this.d.overlay.lookupIpv4(dst) : this.d.overlay.lookupIpv6(dst);
      found = await Promise.race([search.catch(() => undefined), timeout]);
    } finally {
      timer?.cancel();
    }
    this.pending.delete(key);
    if (this.closed) { for (const w of p.waiters ?? []) w(undefined); return; }
    let peer: OverlayPeer<unknown> | undefined;
    if (found === 'timeout') this.stats.timedOut++;
    else if (!found) this.stats.notFound++;
    else if (!owns(found, dst)) this.stats.wrongOwner++;
    else peer = this.d.peers.addFound(found);
    for (const w of p.waiters ?? []) w(peer);
    if (!peer) {
      this.failedUntil.set(key, this.now() + LOOKUP_NEGATIVE_CACHE_MS);
      for (const pkt of p.packets) this.d.inside.unreachable(pkt);
      return;
    }
    this.stats.found++;
    if (this.latencies.length >= DISCOVERY_LATENCY_SAMPLES) this.latencies.shift();
    this.latencies.push(this.now() - started);
    if (found !== 'timeout' && found && found.ipv4 !== IPV4_UNMAPPED && peer.ipv4 === IPV4_UNMAPPED) this.map(peer, found.ipv4);
    else if (peer.ipv4 === IPV4_UNMAPPED) this.admitted(peer);
    for (const pkt of p.packets) this.d.inside.forward(pkt);
  }

  private mapIpv4Later(peer: OverlayPeer<unknown>): void {
    const started = this.claimLookups.run(() => {
      // Waited in the queue: the peer may be gone (forget) or mapped by now.
      if (this.closed || !this.heldIpv4.has(peer)) return Promise.resolve();
      return this.d.overlay.ipv4Of(peer.publicKey).catch(() => undefined).then((ipv4) => this.claimFound(peer, ipv4));
    });
    if (!started) {
      this.stats.ipv4LookupsDropped++;
      this.claimFound(peer, undefined);
    }
  }

  private claimFound(peer: OverlayPeer<unknown>, ipv4: number | undefined): void {
    const held = this.heldIpv4.get(peer);
    if (!held || this.closed) return; // forgotten meanwhile
    this.heldIpv4.delete(peer);
    if (peer.ipv4 === IPV4_UNMAPPED && (ipv4 === undefined || !this.map(peer, ipv4))) {
      this.stats.ipv4Unresolved++;
      this.stats.ipv4HeldDropped += held.length;
      return;
    }
    for (const pkt of held) this.d.outside.deliver(peer, pkt);
  }

  private map(peer: OverlayPeer<unknown>, ipv4: number): boolean {
    if (!this.d.peers.mapIpv4(peer, ipv4)) return false;
    this.stats.ipv4Mapped++;
    return true;
  }
}

/** Does the found key own the address it was looked up by? (IPv4: the lookup's claim must name it.) */
function owns(found: FoundPeer, dst: number | Uint8Array): boolean {
  if (typeof dst === 'number') return found.ipv4 === dst;
  const v6 = ipv6FromNodeId(nodeIdFromPublicKey(found.publicKey));
  for (let i = 0; i < 16; i++) if (v6[i] !== dst[i]) return false;
  return true;
}
