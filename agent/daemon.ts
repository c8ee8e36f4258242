// The Agent wires the layers for one host: TAP -> idloc/inside -> nat/tunnels -> socket, and
// socket -> nat/tunnels -> idloc/outside -> TAP; the overlay (agent-overlay.ts) shares the socket, and
// Discovery turns a packet for an unknown overlay address into a lookup and a new peer. It owns no I/O
// of its own: the TAP device and the datagram socket are handed in, so tests run several agents in one
// process on in-memory twins, and agent/host.ts hands in the real ones.
//
// The socket and the relays on it (our TURN allocation, paths through overlay peers that relay, and the
// relaying we do for others) are underlay.ts's: it sends each datagram the way its endpoint is reached and
// hands incoming ones to Tunnels, the overlay or the StunEndpoint by first byte (every agent answers STUN
// Binding requests: each is a STUN server for the others).
import type { Logger } from 'pino';
import type { TapDevice } from './tap/device.js';
import { FrameWriter } from './tap/frame-writer.js';
import { MAX_OVERLAY_PEERS, VIRTUAL_MAC } from './base/constants.js';
import { identityToJson, withIpv4Attempt, type Identity } from './idloc/identity.js';
import { formatIpv4, formatIpv6 } from './idloc/addresses.js';
import { PeerMap, describePeer, type OverlayPeer } from './idloc/peer-map.js';
import { Inside } from './idloc/inside.js';
import { IPV4_UNMAPPED, Outside } from './idloc/outside.js';
import { endpointKey, parseEndpoint, type DatagramSocket, type Endpoint } from './conn/socket.js';
import { Tunnels, type TunnelPeer } from './tunnel/tunnels.js';
import { AgentOverlay, type RegisterOutcome, type ResolveResult } from './agent-overlay.js';
import { verifyPuzzle } from './overlay/puzzle.js';
import { StunEndpoint } from './nat/stun-endpoint.js';
import { IceAgent } from './nat/ice.js';
import { Traversal } from './nat/traversal.js';
import { locatorEndpoint } from './overlay/node.js';
import { PathKeeper } from './nat/path-keeper.js';
import type { TurnRelay, TurnConfig, TurnSecret } from './nat/turn-relay.js';
import { Underlay, type RelayRoute, type UnderlayOptions } from './nat/underlay.js';
import { candidatePair, latencyMs, pathReason, type AgentStatus, type OverlayPeerStats, type PeerStatus } from './status.js';
import type { Candidate } from './overlay/records.js';
import { netcheck, type NetcheckReport } from './nat/netcheck.js';
import { Discovery, type FoundPeer } from './discovery.js';

export interface PeerSpec {
  publicKey: Uint8Array;
  endpoint?: Endpoint;
}

export interface AgentOptions {
  identity: Identity;
  tap: TapDevice;
  socket: DatagramSocket;
  peers: readonly PeerSpec[];
  logger: Logger;
  /** Take part in an overlay; absent: static peers only. */
  overlay?: {
    /** Nodes to join through; empty: this agent starts a new overlay. */
    bootstraps: Endpoint[];
    /** This host's underlay endpoints to publish (default: the socket's local address). */
    candidates?: () => Endpoint[];
    puzzleDifficulty?: number;
    /** First retry for a direct path while relayed or pathless (ICE_DIRECT_RETRY_MS; tests shorten it). */
    directRetryMs?: number;
    /** Relay for overlay members that keep us as a rendezvous node, while we are not behind a NAT (default true). */
    offerPeerRelay?: boolean;
  };
  /** STUN servers for our netcheck, besides overlay members. */
  stunServers?: Endpoint[];
  /** A TURN server to relay through when ICE finds no direct pair, or the secret for the overlay's ones. */
  turn?: TurnConfig | TurnSecret;
  /** A TURN server to advertise in the overlay's "turn" service records. */
  offerTurn?: Endpoint;
  /** Fresh UDP sockets on any port (and a fast one on a given port), for birthday probing when this host
   *  is behind a NAT that maps every destination to a random port (absent: port probing is off: no probe
   *  sockets, no spraying for peers). */
  probeSockets?: UnderlayOptions['probeSockets'];
  /** Who may open a tunnel to us: any overlay member with a valid NodeID puzzle (default), or only `peers`. */
  allow?: 'overlay' | 'static';
  /** The overlay's IPv4 claim gave this host another address: persist it, re-address the TAP. */
  onIdentityChanged?: (identity: Identity) => void | Promise<void>;
  now?: () => number;
}

export type { AgentStatus, OverlayPeerStats, PeerStatus } from './status.js';
export type { DemuxStats } from './nat/demux.js';

export class Agent {
  private readonly peers = new PeerMap<TunnelPeer>();
  private readonly byTunnel = new Map<TunnelPeer, OverlayPeer<TunnelPeer>>();
  private readonly tunnels: Tunnels;
  private readonly inside: Inside<TunnelPeer>;
  private readonly outside: Outside;
  private readonly underlay: Underlay;
  private readonly overlay: AgentOverlay | undefined;
  private readonly stun: StunEndpoint;
  private readonly ice: IceAgent;
  private readonly traversal: Traversal | undefined;
  private readonly relay: TurnRelay | undefined;
  /** The socket as Tunnels and ICE see it: datagrams to peers reached through the relay go through it. */
  private readonly routed: DatagramSocket;
  /** Keeps this host's NAT view and each overlay peer's path current. */
  private readonly pathKeeper: PathKeeper | undefined;
  private readonly discovery: Discovery | undefined;
  private readonly fromOverlay = new Set<OverlayPeer<TunnelPeer>>();
  private readonly overlayPeers: OverlayPeerStats = { admitted: 0, badPuzzle: 0, full: 0, relocated: 0 };
  private readonly relocating = new Set<OverlayPeer<TunnelPeer>>();
  private identity: Identity;
  private closed = false;

  constructor(private readonly o: AgentOptions) {
    const { identity, tap } = o;
    this.identity = identity;
    const writer = new FrameWriter(tap, VIRTUAL_MAC);
    this.underlay = new Underlay({
      socket: o.socket, logger: o.logger, ...(o.turn ? { turn: o.turn } : {}),
      ...(o.probeSockets ? { probeSockets: o.probeSockets } : {}),
      ...(o.overlay ? {
        peerRelayServer: {
          clientEndpoint: (id: Uint8Array) => this.overlay?.node.endpointOfNode(id),
          enabled: () => o.overlay?.offerPeerRelay !== false && this.traversal?.behindNat !== true,
        },
      } : {}),
      handlers: {
        tunnel: (m, f) => this.tunnels.handleDatagram(m, f),
        stun: (m, f) => this.stun.handleDatagram(m, f),
        ...(o.overlay ? { overlay: (m: Buffer, f: Endpoint) => this.overlay?.handleDatagram(m, f) } : {}),
      },
    });
    this.relay = this.underlay.turn;
    const relay = this.relay;
    this.routed = this.underlay.routed;
    this.stun = new StunEndpoint({
      send: (bytes, to) => this.routed.send(bytes, to), software: 'idloc',
      passwordFor: (u) => this.ice.passwordFor(u), onCheck: (r) => this.ice.onCheck(r),
    });
    this.ice = new IceAgent(this.stun, (e) => this.relay?.relays(e) === true);
    const addr = { selfIpv4: identity.ipv4, selfIpv6: identity.ipv6, mtu: tap.mtu, writer };
    if (o.overlay) {
      const ov = o.overlay;
      this.overlay = new AgentOverlay({
        socket: o.socket, identity, bootstraps: ov.bootstraps, logger: o.logger.child({ layer: 'overlay' }),
        candidates: () => this.traversal?.candidates() as Candidate[] ?? [],
        onAttach: (blob) => this.traversal?.onAttach(blob),
        ...(ov.puzzleDifficulty !== undefined ? { puzzleDifficulty: ov.puzzleDifficulty } : {}),
        onIpv4Changed: (attempt) => this.ipv4Changed(attempt),
      });
      const overlay = this.overlay;
      this.traversal = new Traversal({
        identity, node: overlay.node, ice: this.ice, logger: o.logger.child({ layer: 'nat' }),
        hostEndpoints: ov.candidates ?? (() => [o.socket.local]),
        ...(relay ? { relay } : {}), peerRelay: this.underlay.peerRelay,
        ...(this.underlay.probes ? { probes: this.underlay.probes } : {}),
      });
      const traversal = this.traversal;
      this.pathKeeper = new PathKeeper({
        overlay, traversal, logger: o.logger.child({ layer: 'nat' }), stunServers: o.stunServers ?? [], offerPeerRelay: ov.offerPeerRelay !== false,
        ...(relay ? { turn: relay } : {}), ...(o.offerTurn ? { offerTurn: o.offerTurn } : {}),
        ...(ov.directRetryMs !== undefined ? { directRetryMs: ov.directRetryMs } : {}),
        netcheck: (servers) => this.netcheck(servers),
        setEndpoint: (peer, e) => { this.tunnels.setEndpoint(peer.link as TunnelPeer, e); this.tunnels.connect(peer.link as TunnelPeer); },
        alive: (peer) => this.byTunnel.has(peer.link as TunnelPeer),
      });
      this.discovery = new Discovery({
        lookupIpv4: (ipv4) => overlay.lookupIpv4(ipv4),
        lookupIpv6: (ipv6) => overlay.lookupIpv6(ipv6),
        ipv4Of: (key) => overlay.ipv4Of(key),
        addPeer: (found) => this.addFoundPeer(found),
        mapIpv4: (peer, ipv4) => this.mapIpv4(peer as OverlayPeer<TunnelPeer>, ipv4),
        forward: (packet) => this.inside.forward(packet),
        unreachable: (packet) => this.inside.unreachable(packet),
        deliver: (peer, packet) => this.outside.handlePacket(peer, packet),
        ...(o.now ? { now: o.now } : {}),
      });
    }
    this.tunnels = new Tunnels({
      privateKey: identity.privateKey,
      socket: this.routed,
      isRelayed: (e) => this.underlay.relayRoute(e) !== undefined || this.traversal?.isPeersTurnRelay(endpointKey(e)) === true,
      logger: o.logger.child({ layer: 'nat' }),
      onPacket: (tp, packet) => {
        const peer = this.byTunnel.get(tp);
        if (peer) this.outside.handlePacket(peer, packet);
      },
      acceptUnknown: (publicKey, nonce, from) => this.admit(publicKey, nonce, from),
      onHandshakeUnanswered: (tp) => this.relocate(tp),
      ...(this.overlay ? { puzzleNonce: this.overlay.node.puzzleNonce } : {}),
      ...(o.now ? { now: o.now } : {}),
    });
    if (this.relay && this.pathKeeper) this.relay.onChange = (allocated) => this.turnChanged(allocated);
    const discovery = this.discovery;
    this.inside = new Inside({
      ...addr, peers: this.peers, send: (peer, packet) => this.tunnels.send(peer.link, packet),
      ...(discovery ? { onUnknownPeer: (packet: Buffer, v: 4 | 6) => discovery.onUnknownPeer(packet, v) } : {}),
    });
    this.outside = new Outside({
      ...addr, ...(discovery ? { onIpv4Unmapped: (peer: OverlayPeer<unknown>, packet: Buffer) => discovery.onIpv4Unmapped(peer, packet) } : {}),
    });
    for (const spec of o.peers) this.addPeer(spec);
  }

  /** This host's identity as it stands (the IPv4 address may have moved after an overlay claim). */
  get currentIdentity(): Identity { return this.identity; }

  start(): void {
    this.underlay.start();
    this.o.tap.start((batch) => {
      this.inside.handleBatch(batch);
      this.o.socket.flush?.(); // a batched socket sends this batch's datagrams now, not next turn
    });
    // Peers with a known endpoint get a tunnel at once: the first packet then waits for nothing.
    for (const p of this.peers.values()) this.tunnels.connect(p.link);
    this.o.logger.info({ ...identityToJson(this.identity), tap: this.o.tap.name, listen: endpointKey(this.o.socket.local), peers: this.peers.size }, 'agent up');
    void this.overlay?.start().then(() => this.pathKeeper?.checkNat())
      .catch((e: unknown) => this.o.logger.error({ err: (e as Error).message }, 'overlay start failed'));
  }

  addPeer(spec: PeerSpec, ipv4?: number): OverlayPeer<TunnelPeer> {
    const hex = Buffer.from(spec.publicKey).toString('hex');
    if (hex === this.identity.publicKeyHex) throw new Error('a peer cannot have this host\'s own key');
    const tp = this.tunnels.addPeer(spec.publicKey, spec.endpoint);
    const peer = describePeer(spec.publicKey, tp, ipv4);
    try {
      this.peers.add(peer);
    } catch (e) {
      this.tunnels.removePeer(tp);
      throw e;
    }
    this.byTunnel.set(tp, peer);
    return peer;
  }

  /** The host's own addresses changed (host.ts watches netlink): let peers know where we are now. */
  addressesChanged(): void {
    this.o.logger.info('local addresses changed; refreshing paths to peers');
    this.tunnels.refreshPaths();
    this.overlay?.addressesChanged();
    void this.pathKeeper?.checkNat();
  }

  /** `idloc-agent register NAME`. */
  register(name: string): Promise<RegisterOutcome> {
    if (!this.overlay) throw new Error('this agent runs without an overlay');
    return this.overlay.register(name);
  }

  /** `idloc-agent resolve QUERY`. */
  resolve(query: string): Promise<ResolveResult | undefined> {
    if (!this.overlay) throw new Error('this agent runs without an overlay');
    return this.overlay.resolve(query);
  }

  /** Endpoints of overlay members that advertise `service` ("stun"). */
  providers(service: string): Promise<Endpoint[]> {
    return this.overlay ? this.overlay.providers(service) : Promise.resolve([]);
  }

  /** `idloc-agent netcheck`: what NAT (if any) is between this agent's socket and the internet, asked of
   *  `servers`, or else of the configured --stun servers and overlay contacts (every agent answers STUN). */
  async netcheck(servers?: Endpoint[]): Promise<NetcheckReport & { servers: NetcheckReport['servers'] }> {
    let list = servers ?? [];
    if (list.length === 0) list = [...(this.o.stunServers ?? []), ...(this.overlay?.stunCandidates() ?? [])];
    if (list.length === 0) throw new Error('no STUN servers: give --stun HOST:PORT, or join an overlay (every member answers STUN)');
    const local = this.o.socket.local;
    // A socket bound to a wildcard address: compare with every interface address (netcheck's default).
    return netcheck(this.stun, list, { localPort: local.port, ...(local.address !== '0.0.0.0' && local.address !== '::' ? { localAddresses: [local.address] } : {}) });
  }

  // ---- peers found through the overlay --------------------------------------------------------

  /** A handshake from a key never added. allow 'overlay' (the default): any overlay member may reach us,
   *  if its NodeID puzzle holds (a key costs work to mint) and MAX_OVERLAY_PEERS is not reached; its IPv4
   *  address is looked up before its IPv4 packets are let in. allow 'static': only configured peers. */
  private admit(publicKey: Uint8Array, puzzleNonce: bigint, from: Endpoint): boolean {
    if (!this.discovery || !this.overlay || (this.o.allow ?? 'overlay') !== 'overlay') return false;
    if (this.fromOverlay.size >= MAX_OVERLAY_PEERS) { this.overlayPeers.full++; return false; }
    if (!verifyPuzzle(publicKey, puzzleNonce, this.overlay.node.puzzleDifficulty)) { this.overlayPeers.badPuzzle++; return false; }
    let peer: OverlayPeer<TunnelPeer>;
    try {
      peer = this.addPeer({ publicKey, endpoint: from }, IPV4_UNMAPPED);
    } catch {
      return false;
    }
    this.fromOverlay.add(peer);
    this.overlayPeers.admitted++;
    this.discovery.admitted(peer);
    this.o.logger.info({ peer: peer.nodeIdHex, ipv6: formatIpv6(peer.ipv6), from: endpointKey(from) }, 'peer reached us through the overlay');
    return true;
  }

  private addFoundPeer(found: FoundPeer): OverlayPeer<TunnelPeer> | undefined {
    const known = this.peers.getByKey(Buffer.from(found.publicKey).toString('hex'));
    if (known) return known;
    if (this.fromOverlay.size >= MAX_OVERLAY_PEERS) return undefined;
    let peer: OverlayPeer<TunnelPeer>;
    try {
      // Behind a NAT (its locator names rendezvous): no endpoint until Attach + ICE picked one.
      const viaAttach = (found.locator?.value?.rendezvous.length ?? 0) > 0;
      const endpoint = viaAttach ? undefined : found.endpoint;
      peer = this.addPeer({ publicKey: found.publicKey, ...(endpoint ? { endpoint } : {}) }, found.ipv4 || IPV4_UNMAPPED);
      if (viaAttach) this.pathKeeper?.traverse(peer, found.locator!);
    } catch (e) {
      this.o.logger.warn({ err: (e as Error).message }, 'peer found in the overlay refused');
      return undefined;
    }
    this.fromOverlay.add(peer);
    this.tunnels.connect(peer.link);
    this.o.logger.info({ peer: peer.nodeIdHex, endpoint: found.endpoint ? endpointKey(found.endpoint) : null }, 'peer found through the overlay');
    return peer;
  }

  /** A peer stopped answering handshakes at its endpoint: ask the overlay where its locator says it is
   *  now (it may have moved or restarted elsewhere while we were idle). One lookup per peer at a time. */
  private relocate(tp: TunnelPeer): void {
    const peer = this.byTunnel.get(tp);
    if (!peer || !this.overlay || this.relocating.has(peer)) return;
    this.relocating.add(peer);
    void this.overlay.locate(peer.publicKey).then((loc) => {
      if (this.closed || !loc) return;
      this.overlayPeers.relocated++;
      // Behind a NAT (rendezvous in its locator): its host candidates are private addresses; only Attach +
      // ICE finds the way in again. Otherwise its best candidate is where it listens.
      if ((loc.value?.rendezvous.length ?? 0) > 0 && this.pathKeeper) {
        this.o.logger.info({ peer: peer.nodeIdHex }, 'peer silent at its endpoint; attaching through its rendezvous again');
        this.pathKeeper.traverse(peer, loc);
        return;
      }
      const endpoint = locatorEndpoint(loc);
      if (!endpoint) return;
      this.o.logger.info({ peer: peer.nodeIdHex, endpoint: endpointKey(endpoint) }, 'peer silent at its endpoint; trying where the overlay says it is');
      this.tunnels.setEndpoint(tp, endpoint);
    }).catch(() => undefined).finally(() => this.relocating.delete(peer));
  }

  /** Our TURN allocation came: peers without a path or on a peer relay may now get a relayed pair (a better
   *  path is taken, nothing else). It was lost: peers it carried need another path now, not after their
   *  tunnel notices the silence. */
  private turnChanged(allocated: boolean): void {
    const keeper = this.pathKeeper;
    if (!keeper || this.closed) return;
    const tunnelByKey = new Map(this.tunnels.status().map((t) => [t.publicKey, t]));
    for (const p of this.fromOverlay) {
      const t = tunnelByKey.get(p.publicKeyHex);
      const route = this.relayRouteOf(t?.endpoint ?? null);
      const how = keeper.choice(p)?.how;
      if (allocated && (t?.state !== 'established' || route?.via === 'peer-relay' || how === 'no-direct-path')) keeper.reconsider(p, 'better');
      if (!allocated && (route?.via === 'turn' || how === 'relay')) keeper.reconsider(p, 'always');
    }
  }

  private mapIpv4(peer: OverlayPeer<TunnelPeer>, ipv4: number): boolean {
    try {
      this.peers.setIpv4(peer, ipv4);
      return true;
    } catch (e) {
      this.o.logger.warn({ peer: peer.nodeIdHex, err: (e as Error).message }, 'peer IPv4 not mapped');
      return false;
    }
  }

  private async ipv4Changed(attempt: number): Promise<void> {
    this.identity = withIpv4Attempt(this.identity, attempt);
    this.inside.setSelfIpv4(this.identity.ipv4);
    this.outside.setSelfIpv4(this.identity.ipv4);
    await this.o.onIdentityChanged?.(this.identity);
  }

  status(): AgentStatus {
    const tunnelByKey = new Map(this.tunnels.status().map((t) => [t.publicKey, t]));
    const peers: PeerStatus[] = [];
    const hostCandidate = this.traversal?.candidates()[0] ?? this.o.socket.local;
    for (const p of this.peers.values()) {
      const t = tunnelByKey.get(p.publicKeyHex);
      const established = t?.state === 'established';
      const route = this.relayRouteOf(t?.endpoint ?? null);
      // A hole punched by birthday probing: show the peer's real address and the probe socket's port.
      const current = t?.endpoint ? parseEndpoint(t.endpoint) : undefined;
      const probe = current && this.underlay.probeRoute(current);
      const endpoint = probe ? endpointKey(probe.remote) : t?.endpoint ?? null;
      const chosen = this.pathKeeper?.choice(p);
      const choice = probe && chosen ? { ...chosen, endpoint: probe.remote } : chosen;
      const host = probe ? { address: hostCandidate.address, port: probe.local.port } : hostCandidate;
      peers.push({
        nodeId: p.nodeIdHex, publicKey: p.publicKeyHex, ipv4: formatIpv4(p.ipv4), ipv6: formatIpv6(p.ipv6),
        endpoint,
        source: this.fromOverlay.has(p) ? 'overlay' : 'static',
        path: established ? (route ? 'relayed' : 'direct') : 'none',
        via: established ? route?.via ?? null : null, relay: established ? route?.relay ?? null : null,
        rttMs: t?.rttMs ?? null,
        pair: candidatePair(endpoint, route, choice, { host, relayed: this.relay?.candidate() }),
        pathReason: pathReason(t?.state, endpoint, choice, route?.text),
        state: t?.state ?? 'none',
        lastHandshake: t?.lastHandshake ? new Date(t.lastHandshake).toISOString() : null,
        rxBytes: t?.rxBytes ?? 0, txBytes: t?.txBytes ?? 0,
      });
    }
    return {
      identity: identityToJson(this.identity),
      tap: { name: this.o.tap.name, mtu: this.o.tap.mtu },
      listen: endpointKey(this.o.socket.local),
      peers,
      overlay: this.overlay && this.discovery
        ? { ...this.overlay.status(), discovery: { ...this.discovery.stats, ...latencyMs(this.discovery.latency()) } }
        : null,
      nat: this.traversal?.natStatus() ?? null,
      relay: this.relay?.status() ?? null,
      counters: {
        tap: { ...this.o.tap.stats }, inside: { ...this.inside.stats }, outside: { ...this.outside.stats },
        tunnels: { ...this.tunnels.stats }, demux: { ...this.underlay.demux }, stun: { ...this.stun.stats }, ice: { ...this.ice.stats },
        traversal: { ...(this.traversal?.stats ?? {}) }, overlayPeers: { ...this.overlayPeers },
        peerRelay: {
          client: { ...this.underlay.peerRelay.stats, routes: this.underlay.peerRelay.routes },
          server: this.underlay.peerRelayServer ? { ...this.underlay.peerRelayServer.stats, handles: this.underlay.peerRelayServer.handleCount } : null,
        },
        probeSockets: this.underlay.probes ? { ...this.underlay.probes.stats } : null,
      },
    };
  }

  /** Is a tunnel endpoint ("host:port") reached through a relay: ours, the peer's TURN allocation, a peer? */
  private relayRouteOf(endpoint: string | null): (RelayRoute & { text: string }) | undefined {
    const e = endpoint ? parseEndpoint(endpoint) : undefined;
    if (!e) return undefined;
    const r = this.underlay.relayRoute(e);
    if (r) return { ...r, text: r.via === 'turn' ? `our TURN relay ${r.relay}` : `peer relay ${r.relay}` };
    if (this.traversal?.isPeersTurnRelay(endpoint!)) return { via: 'turn', relay: endpoint!, text: `the peer's TURN relay (${endpoint})` };
    return undefined;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.discovery?.close();
    this.pathKeeper?.close();
    this.ice.close();
    await this.underlay.close();
    this.stun.close();
    await this.overlay?.close();
    this.tunnels.close();
    this.o.tap.close();
    await this.o.socket.close();
  }
}
