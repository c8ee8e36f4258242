// Peers: who this agent keeps a tunnel with, and how they came to be here.
//
//   static     --peer KEY@HOST:PORT, added at start (add).
//   admitted   a stranger's handshake authenticated its key (tunnel/handshake.ts asks acceptUnknown):
//              with --allow overlay, taken if its NodeID puzzle holds and MAX_OVERLAY_PEERS is not
//              reached; its IPv4 claim is then looked up (discovery.ts) before its IPv4 packets pass.
//   found      the first packet to an overlay address made discovery.ts look the key up (addFound):
//              a public peer gets its locator's endpoint, one behind a NAT gets Attach + ICE
//              (nat/path-keeper.ts) before its tunnel has an endpoint.
//   relocated  a peer silent to HANDSHAKE_RELOCATE_AFTER_TRIES initiations is looked up again
//              (handshakeUnanswered): behind a NAT -> Attach again; public -> its locator's endpoint.
//              These lookups go through a LookupLimiter (discovery.ts), as strangers can cause them.
//   silent     data went out for PATH_SILENT_MS with nothing heard (tunnels.ts pathSilent): a NAT on the
//              way changed or forgot our mapping; the path keeper restarts ICE with that peer.
//   evicted    admitted and found peers only, never static ones: every OVERLAY_PEER_SWEEP_MS, one that
//              exchanged no inner packet within OVERLAY_PEER_NO_DATA_MS of joining, or was heard from not
//              at all for OVERLAY_PEER_QUIET_MS; and when MAX_OVERLAY_PEERS are held, the least recently
//              active one makes room for a newcomer (those that never carried data first, oldest first;
//              then by their last inner packet), so the table can never lock a newcomer out.
//
// One PeerMap (idloc/peer-map.ts) holds them for inside.ts and outside.ts; each entry's link is its
// tunnel (tunnel/tunnels.ts).
import { hex } from './base/bytes.js';
import type { Logger } from 'pino';
import { MAX_OVERLAY_PEERS, OVERLAY_PEER_NO_DATA_MS, OVERLAY_PEER_QUIET_MS, OVERLAY_PEER_SWEEP_MS } from './base/constants.js';
import { every, realScheduler, type Scheduler, type TimerHandle } from './base/scheduler.js';
import { endpointKey, type Endpoint } from './conn/socket.js';
import { formatIpv6 } from './idloc/addresses.js';
import { IPV4_UNMAPPED } from './idloc/outside.js';
import type { FirewallIdentities } from './firewall-identities.js';
import { describePeer, type OverlayPeer, type PeerMap } from './idloc/peer-map.js';
import type { TunnelAdmission, TunnelPeer, Tunnels } from './tunnel/tunnels.js';
import type { KeptPeers, PathKeeper } from './nat/path-keeper.js';
import { verifyPuzzle } from './overlay/puzzle.js';
import { locatorEndpoint } from './overlay/node.js';
import type { LocatorRecord } from './overlay/records.js';
import { LookupLimiter, type Discovery, type DiscoveryPeers, type FoundPeer } from './discovery.js';

export interface PeerSpec {
  publicKey: Uint8Array;
  endpoint?: Endpoint;
}

export interface OverlayPeerStats {
  admitted: number; badPuzzle: number; relocated: number;
  /** Refused for lack of room: only if the table holds no overlay peer to evict (MAX_OVERLAY_PEERS of 0). */
  full: number;
  /** Removed: no inner packet since joining, heard from not at all, or made room for a newcomer. */
  evictedNoData: number; evictedQuiet: number; evictedForRoom: number;
  /** Relocation lookups not started (PEER_LOOKUPS_IN_FLIGHT running and PEER_LOOKUPS_QUEUED waiting). */
  relocateDropped: number;
}

/** What the peers ask of the overlay: where a key is now, and the puzzle every key must show. */
export interface PeersOverlay {
  locate(publicKey: Uint8Array): Promise<LocatorRecord | undefined>;
  readonly puzzleDifficulty: number;
}

export interface PeersOptions {
  ownPublicKeyHex: string;
  map: PeerMap<TunnelPeer>;
  tunnels: Tunnels;
  logger: Logger;
  /** Who may open a tunnel to us: any overlay member with a valid NodeID puzzle, or only static peers. */
  allow: 'overlay' | 'static';
  overlay?: PeersOverlay;
  /** Drives the eviction sweep; a twin in tests. */
  clock?: Scheduler;
  /** Inbound rules by identity: each peer gets its policy when added, and loses it when removed. */
  firewall?: FirewallIdentities;
}

/** Takes a silent path over before the path keeper does (nat/standby.ts): true when it did. */
export interface SilentPathTaker { pathSilent(tp: TunnelPeer, side: 'sending' | 'receiving'): boolean }

export class Peers implements TunnelAdmission, DiscoveryPeers, KeptPeers {
  readonly stats: OverlayPeerStats = {
    admitted: 0, badPuzzle: 0, full: 0, relocated: 0, evictedNoData: 0, evictedQuiet: 0, evictedForRoom: 0, relocateDropped: 0,
  };
  /** Overlay peers (admitted and found), with when each joined. */
  private readonly fromOverlay = new Map<OverlayPeer<TunnelPeer>, number>();
  private readonly relocating = new Set<OverlayPeer<TunnelPeer>>();
  private readonly relocations: LookupLimiter;
  private readonly clock: Scheduler;
  private readonly sweeper: TimerHandle;
  private keeper: PathKeeper | undefined;
  private standby: SilentPathTaker | undefined;
  private discovery: Discovery | undefined;
  private closed = false;

  constructor(private readonly o: PeersOptions) {
    this.clock = o.clock ?? realScheduler;
    this.relocations = new LookupLimiter(this.clock);
    this.sweeper = every(this.clock, OVERLAY_PEER_SWEEP_MS, () => this.sweep());
  }

  /** Connect the path keeper and discovery (both are built with these peers). */
  keepPathsWith(keeper: PathKeeper | undefined, discovery: Discovery | undefined, standby?: SilentPathTaker): void {
    this.keeper = keeper;
    this.discovery = discovery;
    this.standby = standby;
  }

  get map(): PeerMap<TunnelPeer> { return this.o.map; }

  isFromOverlay(peer: OverlayPeer<TunnelPeer>): boolean { return this.fromOverlay.has(peer); }

  add(spec: PeerSpec, ipv4?: number): OverlayPeer<TunnelPeer> {
    if (hex(spec.publicKey) === this.o.ownPublicKeyHex) throw new Error('a peer cannot have this host\'s own key');
    const tp = this.o.tunnels.addPeer(spec.publicKey, spec.endpoint);
    const peer = describePeer(spec.publicKey, tp, ipv4);
    try {
      this.o.map.add(peer);
      this.o.firewall?.attach(peer);
    } catch (e) {
      this.o.tunnels.removePeer(tp);
      throw e;
    }
    return peer;
  }

  /** A handshake from a key never added. allow 'overlay' (the default): any overlay member may reach us,
   *  if its NodeID puzzle holds (a key costs work to mint) and MAX_OVERLAY_PEERS is not reached; its IPv4
   *  address is looked up before its IPv4 packets are let in. allow 'static': only configured peers. */
  acceptUnknown(publicKey: Uint8Array, puzzleNonce: bigint, from: Endpoint): boolean {
    const overlay = this.o.overlay;
    if (!this.discovery || !overlay || this.o.allow !== 'overlay') return false;
    if (!verifyPuzzle(publicKey, puzzleNonce, overlay.puzzleDifficulty)) { this.stats.badPuzzle++; return false; }
    if (!this.makeRoom()) { this.stats.full++; return false; }
    let peer: OverlayPeer<TunnelPeer>;
    try {
      peer = this.add({ publicKey, endpoint: from }, IPV4_UNMAPPED);
    } catch {
      return false;
    }
    this.fromOverlay.set(peer, this.clock.now());
    this.stats.admitted++;
    this.discovery.admitted(peer);
    this.o.logger.info({ peer: peer.nodeIdHex, ipv6: formatIpv6(peer.ipv6), from: endpointKey(from) }, 'peer reached us through the overlay');
    return true;
  }

  /** A lookup found the key that owns an address: add it (or return it, if it is known by now). */
  addFound(found: FoundPeer): OverlayPeer<TunnelPeer> | undefined {
    const known = this.o.map.getByKey(hex(found.publicKey));
    if (known) return known;
    if (!this.makeRoom()) { this.stats.full++; return undefined; }
    let peer: OverlayPeer<TunnelPeer>;
    try {
      // Behind a NAT (its locator names rendezvous): no endpoint until Attach + ICE picked one.
      const viaAttach = (found.locator?.value?.rendezvous.length ?? 0) > 0;
      const endpoint = viaAttach ? undefined : found.endpoint;
      peer = this.add({ publicKey: found.publicKey, ...(endpoint ? { endpoint } : {}) }, found.ipv4 || IPV4_UNMAPPED);
      if (viaAttach) this.keeper?.traverse(peer, found.locator!);
    } catch (e) {
      this.o.logger.warn({ err: (e as Error).message }, 'peer found in the overlay refused');
      return undefined;
    }
    this.fromOverlay.set(peer, this.clock.now());
    this.o.tunnels.connect(peer.link);
    this.o.logger.info({ peer: peer.nodeIdHex, endpoint: found.endpoint ? endpointKey(found.endpoint) : null }, 'peer found through the overlay');
    return peer;
  }

  mapIpv4(peer: OverlayPeer<unknown>, ipv4: number): boolean {
    try {
      this.o.map.setIpv4(peer as OverlayPeer<TunnelPeer>, ipv4);
      return true;
    } catch (e) {
      this.o.logger.warn({ peer: peer.nodeIdHex, err: (e as Error).message }, 'peer IPv4 not mapped');
      return false;
    }
  }

  /** A peer stopped answering handshakes at its endpoint: ask the overlay where its locator says it is
   *  now (it may have moved or restarted elsewhere while we were idle). One lookup per peer at a time. */
  handshakeUnanswered(tp: TunnelPeer): void {
    const peer = this.o.map.getByLink(tp);
    const overlay = this.o.overlay;
    if (!peer || !overlay || this.relocating.has(peer)) return;
    this.relocating.add(peer);
    const started = this.relocations.run(() => (this.alive(peer) ? overlay.locate(peer.publicKey) : Promise.resolve(undefined)).then((loc) => {
      if (this.closed || !loc || !this.alive(peer)) return;
      this.stats.relocated++;
      // Behind a NAT (rendezvous in its locator): its host candidates are private addresses; only Attach +
      // ICE finds the way in again. Otherwise its best candidate is where it listens.
      if ((loc.value?.rendezvous.length ?? 0) > 0 && this.keeper) {
        this.o.logger.info({ peer: peer.nodeIdHex }, 'peer silent at its endpoint; attaching through its rendezvous again');
        this.keeper.traverse(peer, loc);
        return;
      }
      const endpoint = locatorEndpoint(loc);
      if (!endpoint) return;
      this.o.logger.info({ peer: peer.nodeIdHex, endpoint: endpointKey(endpoint) }, 'peer silent at its endpoint; trying where the overlay says it is');
      this.o.tunnels.setEndpoint(tp, endpoint);
    }).catch(() => undefined).finally(() => this.relocating.delete(peer)));
    if (!started) { this.stats.relocateDropped++; this.relocating.delete(peer); }
  }

  /** Sending: the tunnel heard nothing for PATH_SILENT_MS of sending data; restart ICE with the peer
   *  (rate-limited there), as for a change of our own address. Receiving: a flow towards us stopped (the
   *  tunnel sent a keepalive); our NAT may have forgotten every mapping, so the rendezvous nodes are
   *  PINGed again (rate-limited there) for the Attach that the peer may send. */
  pathSilent(tp: TunnelPeer, side: 'sending' | 'receiving'): void {
    const peer = this.o.map.getByLink(tp);
    if (!peer || this.closed) return;
    // A standby path on another uplink of ours takes the traffic at once (nat/standby.ts).
    if (this.standby?.pathSilent(tp, side)) return;
    if (!this.keeper) return;
    if (side === 'receiving') { this.keeper.refreshRendezvous(); return; }
    this.o.logger.info({ peer: peer.nodeIdHex }, 'path to peer went silent while sending; restarting ICE');
    this.keeper.localChange(peer);
  }

  pointTo(peer: OverlayPeer<unknown>, e: Endpoint): void {
    const tp = (peer as OverlayPeer<TunnelPeer>).link;
    // The same endpoint again (an ICE restart re-found it through our new mapping) still gets a keepalive:
    // the peer roams to our new mapping on that authenticated packet.
    this.o.tunnels.setEndpoint(tp, e, true);
    this.o.tunnels.connect(tp);
  }

  bridge(peer: OverlayPeer<unknown>, via: Endpoint): boolean {
    return this.o.tunnels.bridge((peer as OverlayPeer<TunnelPeer>).link, via);
  }

  alive(peer: OverlayPeer<unknown>): boolean {
    return !this.closed && this.o.map.getByLink((peer as OverlayPeer<TunnelPeer>).link) === peer;
  }

  *overlayPaths(): Iterable<{ peer: OverlayPeer<unknown>; established: boolean; endpoint: Endpoint | undefined }> {
    const state = new Map(this.o.tunnels.status().map((t) => [t.publicKey, t.state]));
    for (const peer of this.fromOverlay.keys()) {
      yield { peer, established: state.get(peer.publicKeyHex) === 'established', endpoint: peer.link.endpoint };
    }
  }

  /** Overlay peers held now. */
  get overlayCount(): number { return this.fromOverlay.size; }

  close(): void {
    this.closed = true;
    this.sweeper.cancel();
    this.relocations.clear();
  }

  /** Evict overlay peers past OVERLAY_PEER_NO_DATA_MS without an inner packet, or OVERLAY_PEER_QUIET_MS unheard. */
  sweep(): void {
    if (this.closed) return;
    const now = this.clock.now();
    for (const [peer, joined] of [...this.fromOverlay]) {
      const tp = peer.link;
      if (tp.lastDataAt === -Infinity && now - joined >= OVERLAY_PEER_NO_DATA_MS) {
        this.stats.evictedNoData++;
        this.evict(peer, 'no inner packet since it joined');
      } else if (now - Math.max(joined, tp.lastReceivedAt) >= OVERLAY_PEER_QUIET_MS) {
        this.stats.evictedQuiet++;
        this.evict(peer, 'not heard from');
      }
    }
  }

  /** A slot for one more overlay peer: free already, or the least recently active one's. */
  private makeRoom(): boolean {
    if (this.fromOverlay.size < MAX_OVERLAY_PEERS) return true;
    let victim: OverlayPeer<TunnelPeer> | undefined;
    let best = Infinity;
    for (const [peer, joined] of this.fromOverlay) {
      // Never carried data: ranked before any that did (by joining time, offset far into the past).
      const d = peer.link.lastDataAt;
      const rank = d === -Infinity ? joined - Number.MAX_SAFE_INTEGER / 2 : d;
      if (rank < best) { best = rank; victim = peer; }
    }
    if (!victim) return false;
    this.stats.evictedForRoom++;
    this.evict(victim, 'least recently active, to make room');
    return true;
  }

  private evict(peer: OverlayPeer<TunnelPeer>, why: string): void {
    this.fromOverlay.delete(peer);
    this.relocating.delete(peer);
    this.o.map.remove(peer);
    this.o.firewall?.detach(peer);
    this.o.tunnels.removePeer(peer.link);
    this.discovery?.forget(peer);
    this.o.logger.debug({ peer: peer.nodeIdHex, why }, 'overlay peer evicted');
  }
}
