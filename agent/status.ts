// What `idloc-agent status` reports, and the words it uses for a path: the shapes the control socket
// sends (the CLI prints them as JSON or through status-format.ts), and the report built from the parts
// of a running agent (statusOf).
import type { ProbeSocketsStats } from './conn/probe-sockets.js';
import { endpointKey, parseEndpoint, type DatagramSocket, type Endpoint } from './conn/socket.js';
import type { TapDevice } from './tap/device.js';
import type { TunnelStats, Tunnels } from './tunnel/tunnels.js';
import { formatIpv4, formatIpv6 } from './idloc/addresses.js';
import { identityToJson, type Identity, type IdentityJson } from './idloc/identity.js';
import type { Inside, InsideStats } from './idloc/inside.js';
import type { Outside, OutsideStats } from './idloc/outside.js';
import type { DemuxStats } from './nat/demux.js';
import type { AdmissionStats, DatagramAdmission } from './nat/admission.js';
import type { Firewall, FirewallStats } from './firewall/firewall.js';
import type { IceAgent } from './nat/ice.js';
import type { PathKeeper } from './nat/path-keeper.js';
import type { StandbyPaths, StandbyStatus } from './nat/standby.js';
import type { PeerRelayClientStats } from './nat/peer-relay-client.js';
import type { PeerRelayServerStats } from './nat/peer-relay-server.js';
import type { StunEndpoint } from './nat/stun-endpoint.js';
import type { PathChoice, Traversal } from './nat/traversal.js';
import type { TurnRelayStatus } from './nat/turn-relay.js';
import type { RelayRoute, Underlay } from './nat/underlay.js';
import type { AgentOverlay, OverlayStatus } from './agent-overlay.js';
import type { Discovery, DiscoveryStats } from './discovery.js';
import type { OverlayPeerStats, Peers } from './peers.js';
import { refusedOf, type Refused } from './status-refused.js';
import type { DnsStatus } from './dns/service.js';

export interface PeerStatus {
  nodeId: string;
  publicKey: string;
  ipv4: string;
  ipv6: string;
  endpoint: string | null;
  /** 'static': from --peer / the config; 'overlay': found by a lookup, or it found us. */
  source: 'static' | 'overlay';
  /** 'direct' once a handshake succeeded on the peer's endpoint; 'none' before. */
  path: 'direct' | 'relayed' | 'none';
  /** When relayed: through a TURN server (ours or the peer's allocation) or through an overlay peer. */
  via: 'turn' | 'peer-relay' | null;
  /** When relayed: the relay's address. */
  relay: string | null;
  /** Round trip of our last handshake with the peer, on the path it took (null if the peer initiated). */
  rttMs: number | null;
  /** The candidate pair the tunnel uses, ours first: "host 10.1.0.2:4500 -> srflx 203.0.113.11:4500",
   *  "relay 198.51.100.11:49281 -> 203.0.113.14:60956", "host ... -> peer relay 198.51.100.10:4500". */
  pair: string | null;
  /** Why the path is what it is, in words a user can act on. */
  pathReason: string;
  /** Standby paths on our other uplinks (and the peer's towards us), and the uplink the traffic was moved
   *  to by a failover; null without any. */
  standby: StandbyStatus | null;
  /** While the direct path is in doubt (a move, a silence): the relay every datagram is also copied to
   *  until the peer is heard on the direct path again (tunnels.ts bridge); null otherwise. */
  bridge: string | null;
  state: string;
  lastHandshake: string | null;
  rxBytes: number;
  txBytes: number;
}


export interface AgentStatus {
  identity: IdentityJson;
  tap: { name: string; mtu: number };
  listen: string;
  /** Our own candidates as the locator and every Attach offer them: "host [2001:db8:a::2]:4500", "srflx 203.0.113.10:4500". */
  candidates: string[];
  peers: PeerStatus[];
  overlay: (OverlayStatus & { discovery: DiscoveryStats & { p50LatencyMs: number; p90LatencyMs: number } }) | null;
  /** The last netcheck's verdict (null before the first one, or with no overlay member to ask). */
  nat: { behindNat: boolean | undefined; mapping: string; public: string | null; summary: string } | null;
  /** Our TURN relay (--turn), if configured. */
  relay: TurnRelayStatus | null;
  counters: {
    tap: TapDevice['stats'];
    inside: InsideStats;
    outside: OutsideStats;
    tunnels: TunnelStats;
    demux: DemuxStats;
    stun: StunEndpoint['stats'];
    ice: IceAgent['stats'];
    traversal: Partial<Traversal['stats']>;
    /** Peers met through the overlay: handshakes from keys never added let in, or refused for a bad NodeID
     *  puzzle or MAX_OVERLAY_PEERS; and peers looked up again after they went silent at their endpoint. */
    overlayPeers: OverlayPeerStats;
    /** Paths through overlay peers that relay (client), and our relaying for others (server; null: no overlay). */
    peerRelay: {
      client: PeerRelayClientStats & { routes: number };
      server: (PeerRelayServerStats & { handles: number }) | null;
    };
    /** Sockets for birthday probing of a hard NAT (null: this agent cannot open them). */
    probeSockets: ProbeSocketsStats | null;
    standby: StandbyPaths['stats'] | null;
  };
  /** Who may join and reach this host: the overlay's admission (open, or a shared secret). */
  access: { admission: string; counters: AdmissionStats | null; firewall: string; firewallCounters: FirewallStats | null };
  /** What was dropped or turned away as possibly hostile, by layer and kind (status-refused.ts). */
  refused: Refused;
  /** The DNS responder (`up --dns`; the host adds it): where it listens, its upstreams and counters. */
  dns?: DnsStatus | null;
}

export function latencyMs(l: { p50Ms: number; p90Ms: number }): { p50LatencyMs: number; p90LatencyMs: number } {
  return { p50LatencyMs: l.p50Ms, p90LatencyMs: l.p90Ms };
}

const CANDIDATE_TYPES = ['host', 'srflx', 'relay', 'prflx'];

/** PeerStatus.pair: our side is the socket (host), or our TURN allocation when the path goes through it;
 *  the peer's side is the endpoint with its candidate type when ICE chose it. */
export function candidatePair(endpoint: string | null, route: RelayRoute | undefined, choice: PathChoice | undefined,
  ours: { host: Endpoint; relayed: Endpoint | undefined }): string | null {
  if (!endpoint) return null;
  const viaOurTurn = route?.via === 'turn' && route.relay !== endpoint && ours.relayed;
  const local = viaOurTurn ? `relay ${endpointKey(ours.relayed!)}` : `host ${endpointKey(ours.host)}`;
  if (route?.via === 'peer-relay') return `${local} -> peer relay ${route.relay}`;
  const chosen = choice?.endpoint && endpointKey(choice.endpoint) === endpoint ? CANDIDATE_TYPES[choice.type ?? -1] : undefined;
  const type = chosen ?? (route?.via === 'turn' && !viaOurTurn ? 'relay' : undefined);
  return `${local} -> ${type ? `${type} ` : ''}${endpoint}`;
}

/** `why`: why no direct pair could answer, where the peer's last Attach or our own addresses tell (none
 *  of the family the peer is reached at). */
export function pathReason(state: string | undefined, endpoint: string | null, choice?: PathChoice, relayVia?: string, why?: string): string {
  if (state === 'established') {
    if (choice?.how === 'ice' || choice?.how === 'turn' || choice?.how === 'peer-relay') return choice.reason;
    if (relayVia) return `via ${relayVia}: the peer reached us through it (${why ?? 'no direct pair answered first'})`;
    return 'handshake completed with the peer\'s endpoint';
  }
  if (choice && !choice.endpoint) return choice.reason;
  if (choice?.how === 'peer-relay') return `no answer yet through ${choice.reason.replace(/^via /, '')}`;
  if (!endpoint) return 'no endpoint known: waiting for the peer to contact us';
  if (state === 'handshaking') return 'handshake in progress';
  return 'idle: a tunnel is set up on the first packet';
}

/** Our TURN relayed address a path of this family goes out of (the relay sends to a peer from the
 *  relayed address of the peer's family). */
function relayedOfFamily(u: Underlay, v6: boolean): Endpoint | undefined {
  const all = u.turn?.candidates() ?? [];
  return all.find((c) => c.address.includes(':') === v6) ?? all[0];
}

/** "no address family in common (...)" when none of our host addresses is of `peer`'s family: a TURN
 *  relay we reach over the other family delivers what the peer sends from there. */
function familyGap(hosts: readonly Endpoint[], peer: string): string | undefined {
  const v6 = peer.includes(':');
  if (hosts.length === 0 || hosts.some((h) => h.address.includes(':') === v6)) return undefined;
  return `no address family in common: this host has ${v6 ? 'IPv4' : 'IPv6'} only, the peer is reached at an ${v6 ? 'IPv6' : 'IPv4'} address`;
}

/** The relay a bridge copies through ("host:port"), from the tunnel's virtual endpoint for it. */
function bridgeRelay(u: Underlay, bridge: string | null): string | null {
  const e = bridge ? parseEndpoint(bridge) : undefined;
  return e ? u.relayRoute(e)?.relay ?? bridge : bridge;
}

/** The parts of a running agent a status report reads. */
export interface StatusSources {
  identity: Identity;
  tap: TapDevice;
  socket: DatagramSocket;
  peers: Peers;
  tunnels: Tunnels;
  inside: Inside;
  outside: Outside;
  underlay: Underlay;
  stun: StunEndpoint;
  ice: IceAgent;
  traversal: Traversal | undefined;
  pathKeeper: PathKeeper | undefined;
  overlay: AgentOverlay | undefined;
  discovery: Discovery | undefined;
  standby?: StandbyPaths | undefined;
  admission?: DatagramAdmission | undefined;
  firewall?: Firewall | undefined;
}

/** `idloc-agent status`: every peer with its path and why, the overlay, the NAT, every counter. */
export function statusOf(s: StatusSources): AgentStatus {
  const tunnelByKey = new Map(s.tunnels.status().map((t) => [t.publicKey, t]));
  const peers: PeerStatus[] = [];
  const ours = s.traversal?.candidates() ?? [];
  const hosts = ours.filter((c) => c.type === 0);
  for (const p of s.peers.map.values()) {
    const t = tunnelByKey.get(p.publicKeyHex);
    const established = t?.state === 'established';
    const current = t?.endpoint ? parseEndpoint(t.endpoint) : undefined;
    const route = current ? s.underlay.relayRoute(current) : undefined;
    // A hole punched by birthday probing: show the peer's real address and the probe socket's port.
    const probe = current && s.underlay.probeRoute(current);
    const endpoint = probe ? endpointKey(probe.remote) : t?.endpoint ?? null;
    const chosen = s.pathKeeper?.choice(p);
    const choice = probe && chosen ? { ...chosen, endpoint: probe.remote } : chosen;
    // Our host address of the family the path runs on.
    const v6 = (current?.address ?? '').includes(':');
    const hostCandidate = hosts.find((c) => c.address.includes(':') === v6) ?? s.socket.local;
    const host = probe ? { address: hostCandidate.address, port: probe.local.port } : hostCandidate;
    peers.push({
      nodeId: p.nodeIdHex, publicKey: p.publicKeyHex, ipv4: formatIpv4(p.ipv4), ipv6: formatIpv6(p.ipv6),
      endpoint,
      source: s.peers.isFromOverlay(p) ? 'overlay' : 'static',
      path: established ? (route ? 'relayed' : 'direct') : 'none',
      via: established ? route?.via ?? null : null, relay: established ? route?.relay ?? null : null,
      rttMs: t?.rttMs ?? null,
      pair: candidatePair(endpoint, route, choice, { host, relayed: relayedOfFamily(s.underlay, v6) }),
      pathReason: pathReason(t?.state, endpoint, choice, route?.text,
        s.traversal?.answeredReason(p.nodeIdHex) ?? (route?.via === 'turn' && current ? familyGap(hosts, current.address) : undefined)),
      standby: s.standby?.status(p.link) ?? null,
      bridge: bridgeRelay(s.underlay, t?.bridge ?? null),
      state: t?.state ?? 'none',
      lastHandshake: t?.lastHandshake ? new Date(t.lastHandshake).toISOString() : null,
      rxBytes: t?.rxBytes ?? 0, txBytes: t?.txBytes ?? 0,
    });
  }
  const u = s.underlay;
  const report: Omit<AgentStatus, 'refused'> = {
    identity: identityToJson(s.identity),
    tap: { name: s.tap.name, mtu: s.tap.mtu },
    listen: endpointKey(s.socket.local),
    candidates: ours.map((c) => `${CANDIDATE_TYPES[c.type] ?? c.type} ${endpointKey(c)}`),
    peers,
    overlay: s.overlay && s.discovery
      ? { ...s.overlay.status(), discovery: { ...s.discovery.stats, ...latencyMs(s.discovery.latency()) } }
      : null,
    nat: s.traversal?.natStatus() ?? null,
    relay: u.turn?.status() ?? null,
    access: {
      admission: s.admission ? `private overlay: ${s.admission.secrets.describe()}; strangers get no answer`
        : 'open overlay: any key that solves the NodeID puzzle may join',
      counters: s.admission ? { ...s.admission.stats } : null,
      firewall: s.firewall ? s.firewall.describe() : 'no inbound rules: every member may reach every port',
      firewallCounters: s.firewall ? { ...s.firewall.stats } : null,
    },
    counters: {
      tap: { ...s.tap.stats }, inside: { ...s.inside.stats }, outside: { ...s.outside.stats },
      tunnels: { ...s.tunnels.stats }, demux: { ...u.demux }, stun: { ...s.stun.stats }, ice: { ...s.ice.stats },
      traversal: { ...(s.traversal?.stats ?? {}) }, overlayPeers: { ...s.peers.stats },
      peerRelay: {
        client: { ...u.peerRelay.stats, routes: u.peerRelay.routes },
        server: u.peerRelayServer ? { ...u.peerRelayServer.stats, handles: u.peerRelayServer.handleCount } : null,
      },
      probeSockets: u.probes ? { ...u.probes.stats } : null,
      standby: s.standby ? { ...s.standby.stats } : null,
    },
  };
  const ov = s.overlay?.node.stats();
  return {
    ...report,
    refused: refusedOf(report, {
      ...(ov ? {
        overlay: {
          rejected: ov.rejected, route: ov.route, store: { ...ov.store.rejected, ...ov.store.refused },
          wrongSource: ov.rpc.wrongSource + ov.storeRpc.wrongSource,
        },
      } : {}),
      ...(s.pathKeeper ? { providers: { ...s.pathKeeper.providersRefused } } : {}),
    }),
  };
}
