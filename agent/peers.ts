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
//
// One PeerMap (idloc/peer-map.ts) holds them for inside.ts and outside.ts; each entry's link is its
// tunnel (tunnel/tunnels.ts).
import { hex } from './base/bytes.js';
import type { Logger } from 'pino';
import { MAX_OVERLAY_PEERS } from './base/constants.js';
import { endpointKey, type Endpoint } from './conn/socket.js';
import { formatIpv6 } from './idloc/addresses.js';
import { IPV4_UNMAPPED } from './idloc/outside.js';
import { describePeer, type OverlayPeer, type PeerMap } from './idloc/peer-map.js';
import type { TunnelAdmission, TunnelPeer, Tunnels } from './tunnel/tunnels.js';
import type { KeptPeers, PathKeeper } from './nat/path-keeper.js';
import { verifyPuzzle } from './overlay/puzzle.js';
import { locatorEndpoint } from './overlay/node.js';
import type { LocatorRecord } from './overlay/records.js';
import type { Discovery, DiscoveryPeers, FoundPeer } from './discovery.js';

export interface PeerSpec {
  publicKey: Uint8Array;
  endpoint?: Endpoint;
}

export interface OverlayPeerStats { admitted: number; badPuzzle: number; full: number; relocated: number }

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
}

export class Peers implements TunnelAdmission, DiscoveryPeers, KeptPeers {
  readonly stats: OverlayPeerStats = { admitted: 0, badPuzzle: 0, full: 0, relocated: 0 };
  private readonly fromOverlay = new Set<OverlayPeer<TunnelPeer>>();
  private readonly relocating = new Set<OverlayPeer<TunnelPeer>>();
  private keeper: PathKeeper | undefined;
  private discovery: Discovery | undefined;
  private closed = false;

  constructor(private readonly o: PeersOptions) {}

  /** Connect the path keeper and discovery (both are built with these peers). */
  keepPathsWith(keeper: PathKeeper | undefined, discovery: Discovery | undefined): void {
    this.keeper = keeper;
    this.discovery = discovery;
  }

  get map(): PeerMap<TunnelPeer> { return this.o.map; }

  isFromOverlay(peer: OverlayPeer<TunnelPeer>): boolean { return this.fromOverlay.has(peer); }

  add(spec: PeerSpec, ipv4?: number): OverlayPeer<TunnelPeer> {
    if (hex(spec.publicKey) === this.o.ownPublicKeyHex) throw new Error('a peer cannot have this host\'s own key');
    const tp = this.o.tunnels.addPeer(spec.publicKey, spec.endpoint);
    const peer = describePeer(spec.publicKey, tp, ipv4);
    try {
      this.o.map.add(peer);
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
    if (this.fromOverlay.size >= MAX_OVERLAY_PEERS) { this.stats.full++; return false; }
    if (!verifyPuzzle(publicKey, puzzleNonce, overlay.puzzleDifficulty)) { this.stats.badPuzzle++; return false; }
    let peer: OverlayPeer<TunnelPeer>;
    try {
      peer = this.add({ publicKey, endpoint: from }, IPV4_UNMAPPED);
    } catch {
      return false;
    }
    this.fromOverlay.add(peer);
    this.stats.admitted++;
    this.discovery.admitted(peer);
    this.o.logger.info({ peer: peer.nodeIdHex, ipv6: formatIpv6(peer.ipv6), from: endpointKey(from) }, 'peer reached us through the overlay');
    return true;
  }

  /** A lookup found the key that owns an address: add it (or return it, if it is known by now). */
  addFound(found: FoundPeer): OverlayPeer<TunnelPeer> | undefined {
    const known = this.o.map.getByKey(hex(found.publicKey));
    if (known) return known;
    if (this.fromOverlay.size >= MAX_OVERLAY_PEERS) return undefined;
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
    this.fromOverlay.add(peer);
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
    void overlay.locate(peer.publicKey).then((loc) => {
      if (this.closed || !loc) return;
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
    }).catch(() => undefined).finally(() => this.relocating.delete(peer));
  }

  pointTo(peer: OverlayPeer<unknown>, e: Endpoint): void {
    const tp = (peer as OverlayPeer<TunnelPeer>).link;
    this.o.tunnels.setEndpoint(tp, e);
    this.o.tunnels.connect(tp);
  }

  alive(peer: OverlayPeer<unknown>): boolean {
    return !this.closed && this.o.map.getByLink((peer as OverlayPeer<TunnelPeer>).link) === peer;
  }

  *overlayPaths(): Iterable<{ peer: OverlayPeer<unknown>; established: boolean; endpoint: Endpoint | undefined }> {
    const state = new Map(this.o.tunnels.status().map((t) => [t.publicKey, t.state]));
    for (const peer of this.fromOverlay) {
      yield { peer, established: state.get(peer.publicKeyHex) === 'established', endpoint: peer.link.endpoint };
    }
  }

  close(): void { this.closed = true; }
}
