// The Agent builds one host's layers, connects them once and owns their lifecycle; it is not on the
// packet path. A packet reads in one direction through the house:
//
//   out: TAP -> idloc/inside.ts -> tunnel/tunnels.ts (send) -> nat/underlay.ts (routed) -> socket
//   in:  socket -> nat/underlay.ts (demux) -> tunnel/tunnels.ts (handleDatagram) -> idloc/outside.ts -> TAP
//
// Beside the packet path: the overlay (agent-overlay.ts) shares the socket through the underlay; a packet
// for an unknown overlay address goes from inside.ts to discovery.ts, which looks the peer up and has
// peers.ts add it; peers.ts also decides about strangers' handshakes and relocates silent peers;
// nat/path-keeper.ts keeps each peer's path (Attach + ICE, relays) and this host's NAT view current;
// status.ts builds the report. The TAP device and the datagram socket are handed in, so tests run
// several agents in one process on in-memory twins, and agent/host.ts hands in the real ones.
import type { Logger } from 'pino';
import type { TapDevice } from './tap/device.js';
import { FrameWriter } from './tap/frame-writer.js';
import { VIRTUAL_MAC } from './base/constants.js';
import { realScheduler, type Scheduler } from './base/scheduler.js';
import { endpointKey, type DatagramSocket, type Endpoint } from './conn/socket.js';
import { identityToJson, withIpv4Attempt, type Identity } from './idloc/identity.js';
import { PeerMap } from './idloc/peer-map.js';
import { Inside } from './idloc/inside.js';
import { Outside } from './idloc/outside.js';
import { Tunnels, type TunnelPeer } from './tunnel/tunnels.js';
import { TunnelPing } from './tunnel/ping.js';
import { pingPeer, type PingReply } from './ping.js';
import { StunEndpoint } from './nat/stun-endpoint.js';
import { ChangePortServer } from './nat/change-port.js';
import { TurnVouch } from './nat/service-proof.js';
import { IceAgent } from './nat/ice.js';
import { Traversal } from './nat/traversal.js';
import { PathKeeper } from './nat/path-keeper.js';
import { StandbyPaths } from './nat/standby.js';
import type { Uplink } from './conn/uplinks.js';
import type { TurnConfig, TurnSecret } from './nat/turn-relay.js';
import { Underlay, type UnderlayOptions } from './nat/underlay.js';
import { DatagramAdmission } from './nat/admission.js';
import { Firewall } from './firewall/firewall.js';
import type { FirewallRule } from './firewall/rules.js';
import { FirewallIdentities } from './firewall-identities.js';
import type { OverlaySecrets } from './base/overlay-secret.js';
import { mappedBy, netcheck, withFirewallTests, type NetcheckOptions, type NetcheckReport } from './nat/netcheck.js';
import type { Candidate } from './overlay/records.js';
import { AgentOverlay, type RegisterOutcome, type ResolveResult } from './agent-overlay.js';
import type { KeptNames } from './names-state.js';
import { Discovery } from './discovery.js';
import { Peers, type PeerSpec } from './peers.js';
import { statusOf, type AgentStatus } from './status.js';
import type { OverlayNames } from './dns/service.js';

export type { PeerSpec } from './peers.js';

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
    /** The puzzle's solution for our key, if kept (puzzle-state.ts); else the overlay solves it. */
    puzzleNonce?: bigint;
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
  /** Bind a UDP socket on this port: while public, the agent answers STUN from its port + 1 too (RFC 5780
   *  change-port tests, nat/change-port.ts), so one public member is enough to tell NATs apart. */
  changePortSocket?: (port: number) => Promise<DatagramSocket>;
  /** Who may open a tunnel to us: any overlay member with a valid NodeID puzzle (default), or only `peers`. */
  allow?: 'overlay' | 'static';
  /** The overlay's IPv4 claim gave this host another address: persist it, re-address the TAP. */
  onIdentityChanged?: (identity: Identity) => void | Promise<void>;
  /** Names kept in the state dir (names-state.ts): registered again at start, and `register` keeps them. */
  keptNames?: KeptNames;
  /** This host's uplinks (conn/uplinks.ts readUplinks): with two or more, standby paths on the others
   *  (nat/standby.ts). Absent: none. */
  uplinks?: () => Uplink[];
  /** Time for every layer but the overlay (which keeps its own Scheduler): a twin in tests that move the clock. */
  clock?: Scheduler;
  /** A private overlay's shared secrets (base/overlay-secret.ts): only their holders get any answer. */
  secrets?: OverlaySecrets;
  /** Inbound rules by identity (firewall/); absent or empty: every member reaches every port. */
  firewall?: readonly FirewallRule[];
}

export type { AgentStatus, PeerStatus } from './status.js';
export type { OverlayPeerStats } from './peers.js';
export type { DemuxStats } from './nat/demux.js';

export class Agent {
  private readonly map = new PeerMap<TunnelPeer>();
  private readonly peers: Peers;
  private readonly tunnels: Tunnels;
  private readonly inside: Inside;
  private readonly outside: Outside;
  private readonly underlay: Underlay;
  private readonly admission: DatagramAdmission | undefined;
  private readonly firewall: FirewallIdentities | undefined;
  private readonly overlay: AgentOverlay | undefined;
  private readonly stun: StunEndpoint;
  private readonly changePort: ChangePortServer | undefined;
  private readonly ice: IceAgent;
  private readonly traversal: Traversal | undefined;
  /** Keeps this host's NAT view and each overlay peer's path current. */
  private readonly pathKeeper: PathKeeper | undefined;
  private readonly discovery: Discovery | undefined;
  /** Tested paths out of our other uplinks, for a failover without a handshake. */
  private readonly standby: StandbyPaths | undefined;
  /** In-tunnel pings for `idloc-agent ping`. */
  private readonly pinger: TunnelPing;
  private readonly clock: Scheduler;
  private identity: Identity;
  private closed = false;

  constructor(private readonly o: AgentOptions) {
    const { identity, tap } = o;
    this.identity = identity;
    const clock = o.clock ?? realScheduler;
    this.clock = clock;
    const log = (layer: string) => o.logger.child({ layer });

    // The ground floor: the socket and the relays on it.
    this.admission = o.secrets && new DatagramAdmission(o.secrets);
    this.underlay = new Underlay({
      socket: o.socket, logger: o.logger, clock, ...(o.turn ? { turn: o.turn } : {}), ...(this.admission ? { admission: this.admission } : {}),
      ...(o.probeSockets ? { probeSockets: o.probeSockets } : {}),
      ...(o.overlay ? {
        peerRelayServer: {
          // only where a node proved its key with its own requests (signed, cookie-verified keepalives)
          rendezvousClientEndpoint: (id: Uint8Array) => this.overlay?.node.rendezvousClientEndpoint(id),
          peerVerified: (e: Endpoint) => this.overlay?.node.isVerifiedSource(e) ?? false,
          enabled: () => o.overlay?.offerPeerRelay !== false && this.traversal?.behindNat !== true,
        },
      } : {}),
    });
    const underlay = this.underlay;
    const turn = underlay.turn;
    this.stun = new StunEndpoint({
      send: (bytes, to) => underlay.routed.send(bytes, to), software: 'idloc',
      passwordFor: (u) => this.ice.passwordFor(u), onCheck: (r) => this.ice.onCheck(r),
      verified: (e) => this.overlay?.node.isVerifiedSource(e) ?? false, membersOnly: o.secrets !== undefined,
    });
    this.ice = new IceAgent(this.stun, (e) => turn?.relays(e) === true, clock);
    this.changePort = o.changePortSocket
      ? new ChangePortServer({
        stun: this.stun, mainPort: () => o.socket.local.port, open: o.changePortSocket, logger: log('nat'),
        hostAddresses: () => (o.overlay?.candidates?.() ?? [o.socket.local]).map((e) => e.address),
      })
      : undefined;

    // The overlay shares the socket (the underlay hands it 0xD2 datagrams).
    if (o.overlay) {
      const ov = o.overlay;
      this.overlay = new AgentOverlay({
        socket: underlay.socket, identity, bootstraps: ov.bootstraps, logger: log('overlay'),
        candidates: () => this.traversal?.candidates() as Candidate[] ?? [],
        onAttach: (blob, ctx) => this.traversal?.onAttach(blob, ctx),
        ...(ov.puzzleDifficulty !== undefined ? { puzzleDifficulty: ov.puzzleDifficulty } : {}),
        ...(ov.puzzleNonce !== undefined ? { puzzleNonce: ov.puzzleNonce } : {}),
        onIpv4Changed: (attempt) => this.ipv4Changed(attempt),
        ...(o.keptNames ? { keptNames: o.keptNames } : {}),
      });
    }
    const overlay = this.overlay;

    // The packet path: TAP -> inside -> tunnels -> underlay, and back through outside.
    const writer = new FrameWriter(tap, VIRTUAL_MAC);
    const firewall = o.firewall?.length ? new Firewall(o.firewall, { clock }) : undefined;
    this.firewall = firewall && new FirewallIdentities({
      firewall, map: this.map, clock, logger: log('firewall'),
      ...(overlay ? { resolveName: async (name: string) => (await overlay.resolve(name))?.publicKey } : {}),
    });
    const addr = { selfIpv4: identity.ipv4, selfIpv6: identity.ipv6, mtu: tap.mtu, peers: this.map, writer, ...(firewall ? { firewall } : {}) };
    this.outside = new Outside(addr);
    this.tunnels = new Tunnels({
      privateKey: identity.privateKey, socket: underlay.routed, paths: underlay, receiver: this.outside,
      logger: log('tunnel'), clock, ...(overlay ? { puzzleNonce: overlay.node.puzzleNonce } : {}), ...(o.secrets ? { secrets: o.secrets } : {}),
    });
    this.inside = new Inside({ ...addr, tunnels: this.tunnels });
    this.pinger = new TunnelPing(this.tunnels);

    this.peers = new Peers({
      ownPublicKeyHex: identity.publicKeyHex, map: this.map, tunnels: this.tunnels, logger: o.logger,
      allow: o.allow ?? 'overlay', clock, ...(this.firewall ? { firewall: this.firewall } : {}),
      ...(overlay ? { overlay: { locate: (k: Uint8Array) => overlay.locate(k), puzzleDifficulty: overlay.node.puzzleDifficulty } } : {}),
    });
    if (o.uplinks) {
      const uplinks = o.uplinks;
      this.standby = new StandbyPaths({
        tunnels: this.tunnels, uplinks, logger: log('standby'), clock, stun: this.stun,
        peers: () => this.directPeers(),
        stunServers: () => [...(overlay?.node.rendezvous.current().map((c) => c.endpoint) ?? []), ...(o.stunServers ?? []), ...(overlay?.stunCandidates() ?? [])],
        onMappingsChanged: () => overlay?.addressesChanged(),
      });
    }
    const standby = this.standby;
    if (overlay) {
      const ov = o.overlay!;
      this.traversal = new Traversal({
        identity, node: overlay.node, ice: this.ice, logger: log('nat'), clock,
        hostEndpoints: ov.candidates ?? (() => [o.socket.local]),
        ...(standby ? { otherMappings: () => standby.otherMappings() } : {}),
        ...(turn ? { turn } : {}), peerRelay: underlay.peerRelay, peersTurnRelays: underlay,
        ...(underlay.probes ? { probes: underlay.probes } : {}), aimUnobserved: false,
      });
      this.pathKeeper = new PathKeeper({
        overlay, traversal: this.traversal, logger: log('nat'), stunServers: o.stunServers ?? [], offerPeerRelay: ov.offerPeerRelay !== false,
        ...(turn ? { turn } : {}), ...(o.offerTurn ? { offerTurn: o.offerTurn } : {}),
        ...(o.turn && 'secret' in o.turn ? { turnVouch: { vouch: new TurnVouch(o.turn.secret), publicKey: identity.publicKey } } : {}),
        ...(ov.directRetryMs !== undefined ? { directRetryMs: ov.directRetryMs } : {}),
        // Our own verdict also opens (public) or closes (behind a NAT) the second STUN port. No change-port
        // filtering test: behind a NAT that filters by port (most) it holds every report back by its
        // timeout, and nothing but the report reads filtering (`idloc-agent netcheck` measures it).
        // With no NAT found, the change-port test then tells a host behind a stateful firewall (most IPv6
        // hosts) from one anybody can reach: it waits out its timeout only where the firewall filters.
        netcheck: async (servers) => {
          const r = await withFirewallTests(await this.netcheck(servers, { portFiltering: false }), (of) => this.netcheck(of, { portFiltering: true }));
          this.changePort?.follow(r);
          return r;
        },
        // An ICE restart's srflx: one Binding answer, not a netcheck whose tests of a server's second port
        // or address can outlast ICE_RESTART_STUN_WAIT_MS (the restart would offer the old mapping).
        mappedBy: (server) => mappedBy(this.stun, server), peers: this.peers, routes: underlay, clock,
        ...(standby ? { standby: { covers: (p) => standby.covers((p as { link: TunnelPeer }).link) } } : {}),
      });
      this.discovery = new Discovery({ overlay, peers: this.peers, inside: this.inside, outside: this.outside, clock });
      this.inside.lookUpUnknownWith(this.discovery);
      this.outside.holdUnmappedWith(this.discovery);
    }

    // Connect, once: what arrives goes up to its layer; strangers and lost peers go to the peers.
    this.peers.keepPathsWith(this.pathKeeper, this.discovery, standby);
    this.tunnels.admitWith(this.peers);
    // A peer relay forwards only from sources the overlay verified: a PING to it before our first frame.
    if (overlay) underlay.peerRelay.verifyRelaysWith((relay) => overlay.node.kad.rpc.request(relay, { type: 'ping', sender: overlay.node.kad.self }), () => clock.now());
    underlay.deliverTo({ tunnel: this.tunnels, stun: this.stun, ...(overlay ? { overlay } : {}) });
    for (const spec of o.peers) this.peers.add(spec);
  }

  /** This host's identity as it stands (the IPv4 address may have moved after an overlay claim). */
  get currentIdentity(): Identity { return this.identity; }

  start(): void {
    this.underlay.start();
    this.changePort?.start();
    this.o.tap.start((batch) => {
      this.inside.handleBatch(batch);
      this.o.socket.flush?.(); // a batched socket sends this batch's datagrams now, not next turn
    });
    // Peers with a known endpoint get a tunnel at once: the first packet then waits for nothing.
    for (const p of this.map.values()) this.tunnels.connect(p.link);
    this.o.logger.info({ ...identityToJson(this.identity), tap: this.o.tap.name, listen: endpointKey(this.o.socket.local), peers: this.map.size }, 'agent up');
    void this.overlay?.start().then(() => {
      void this.overlay?.registerKeptNames();
      return this.pathKeeper?.checkNat();
    })
      .catch((e: unknown) => this.o.logger.error({ err: (e as Error).message }, 'overlay start failed'));
  }

  addPeer(spec: PeerSpec, ipv4?: number): void {
    this.peers.add(spec, ipv4);
  }

  /** The host's own addresses changed (host.ts watches netlink): let peers know where we are now. */
  addressesChanged(): void {
    this.o.logger.info('local addresses changed; refreshing paths to peers');
    this.tunnels.refreshPaths();
    this.overlay?.addressesChanged();
    this.standby?.uplinksChanged();
    // ICE restarts with peers behind NATs, rendezvous keepalives, netcheck (path-keeper.ts localChange).
    this.pathKeeper?.localChange();
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

  /** `idloc-agent ping PEER`: one in-tunnel ping and the path its pong came back on (ping.ts). */
  ping(query: string, timeoutMs: number): Promise<PingReply | { query: string; error: string }> {
    const overlay = this.overlay, discovery = this.discovery;
    return pingPeer({
      resolve: (q) => (overlay ? overlay.resolve(q) : Promise.resolve(undefined)), map: this.map,
      ...(discovery ? { find: (dst: number | Uint8Array) => discovery.find(dst) } : {}), pinger: this.pinger,
      relayRoute: (e) => this.underlay.relayRoute(e), probeRoute: (e) => this.underlay.probeRoute(e), clock: this.clock,
    }, query, timeoutMs);
  }

  /** The overlay's names for the DNS responder (`up --dns`, agent/dns): resolve()'s answers for NAME.idloc
   *  and <nodeid>.idloc, with their records' lifetime. */
  dnsNames(): OverlayNames {
    return { lookUp: (label) => this.overlay ? this.overlay.dnsAnswer(label) : Promise.resolve('unavailable' as const) };
  }

  /** Endpoints of overlay members that advertise `service` ("stun"). */
  providers(service: string): Promise<Endpoint[]> {
    return this.overlay ? this.overlay.providers(service) : Promise.resolve([]);
  }

  /** `idloc-agent netcheck`: what NAT (if any) is between this agent's socket and the internet, asked of
   *  `servers`, or else of the configured --stun servers and overlay contacts (every agent answers STUN). */
  async netcheck(servers?: Endpoint[], tests: Pick<NetcheckOptions, 'portFiltering'> = {}): Promise<NetcheckReport & { servers: NetcheckReport['servers'] }> {
    let list = servers ?? [];
    if (list.length === 0) list = [...(this.o.stunServers ?? []), ...(this.overlay?.stunCandidates() ?? [])];
    if (list.length === 0) throw new Error('no STUN servers: give --stun HOST:PORT, or join an overlay (every member answers STUN)');
    const local = this.o.socket.local;
    // A socket bound to a wildcard address: compare with every interface address (netcheck's default).
    return netcheck(this.stun, list, { ...tests, localPort: local.port, ...(local.address !== '0.0.0.0' && local.address !== '::' ? { localAddresses: [local.address] } : {}) });
  }

  status(): AgentStatus {
    return statusOf({
      identity: this.identity, tap: this.o.tap, socket: this.o.socket, peers: this.peers, tunnels: this.tunnels,
      inside: this.inside, outside: this.outside, underlay: this.underlay, stun: this.stun, ice: this.ice,
      traversal: this.traversal, pathKeeper: this.pathKeeper, overlay: this.overlay, discovery: this.discovery,
      standby: this.standby, admission: this.admission, firewall: this.firewall?.firewall,
    });
  }

  /** Peers with a session on a direct path (not a relay's virtual endpoint), for the standby paths. */
  private *directPeers(): Iterable<TunnelPeer> {
    for (const p of this.map.values()) {
      const e = p.link.endpoint;
      if (e && !this.underlay.relayRoute(e) && !this.underlay.probeRoute(e) && this.tunnels.established(p.link)) yield p.link;
    }
  }

  private async ipv4Changed(attempt: number): Promise<void> {
    this.identity = withIpv4Attempt(this.identity, attempt);
    this.inside.setSelfIpv4(this.identity.ipv4);
    this.outside.setSelfIpv4(this.identity.ipv4);
    await this.o.onIdentityChanged?.(this.identity);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.peers.close();
    this.firewall?.close();
    this.discovery?.close();
    this.pathKeeper?.close();
    this.standby?.close();
    this.ice.close();
    await this.underlay.close();
    await this.changePort?.close();
    this.stun.close();
    await this.overlay?.close();
    this.tunnels.close();
    this.o.tap.close();
    await this.o.socket.close();
  }
}
