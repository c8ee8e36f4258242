// The Agent wires the layers for one host: TAP -> idloc/inside -> nat/tunnels -> socket, and
// socket -> nat/tunnels -> idloc/outside -> TAP. It owns no I/O of its own: the TAP device and the
// datagram socket are handed in, so tests run several agents in one process on in-memory twins,
// and agent/host.ts hands in the real ones.
import type { Logger } from 'pino';
import type { TapDevice } from './tap/device.js';
import { FrameWriter } from './tap/frame-writer.js';
import { VIRTUAL_MAC } from './constants.js';
import type { Identity } from './idloc/identity.js';
import { identityToJson, type IdentityJson } from './idloc/identity.js';
import { formatIpv4, formatIpv6 } from './idloc/addresses.js';
import { PeerMap, describePeer, type OverlayPeer } from './idloc/peer-map.js';
import { Inside, type InsideStats } from './idloc/inside.js';
import { Outside, type OutsideStats } from './idloc/outside.js';
import { endpointKey, type DatagramSocket, type Endpoint } from './nat/socket.js';
import { Tunnels, type TunnelPeer, type TunnelStats } from './nat/tunnels.js';
import { classifyDatagram } from './nat/demux.js';

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
  now?: () => number;
}

export interface PeerStatus {
  nodeId: string;
  publicKey: string;
  ipv4: string;
  ipv6: string;
  endpoint: string | null;
  /** 'direct' once a handshake succeeded on the peer's endpoint; 'none' before. */
  path: 'direct' | 'none';
  /** Why the path is what it is, in words a user can act on. */
  pathReason: string;
  state: string;
  lastHandshake: string | null;
  rxBytes: number;
  txBytes: number;
}

export interface DemuxStats { datagrams: number; unknown: number; notYetHandled: number }

export interface AgentStatus {
  identity: IdentityJson;
  tap: { name: string; mtu: number };
  listen: string;
  peers: PeerStatus[];
  counters: {
    tap: TapDevice['stats'];
    inside: InsideStats;
    outside: OutsideStats;
    tunnels: TunnelStats;
    demux: DemuxStats;
  };
}

export class Agent {
  private readonly peers = new PeerMap<TunnelPeer>();
  private readonly byTunnel = new Map<TunnelPeer, OverlayPeer<TunnelPeer>>();
  private readonly tunnels: Tunnels;
  private readonly inside: Inside<TunnelPeer>;
  private readonly outside: Outside;
  private readonly demux: DemuxStats = { datagrams: 0, unknown: 0, notYetHandled: 0 };
  private closed = false;

  constructor(private readonly o: AgentOptions) {
    const { identity, tap } = o;
    const writer = new FrameWriter(tap, VIRTUAL_MAC);
    this.tunnels = new Tunnels({
      privateKey: identity.privateKey,
      socket: o.socket,
      logger: o.logger.child({ layer: 'nat' }),
      onPacket: (tp, packet) => {
        const peer = this.byTunnel.get(tp);
        if (peer) this.outside.handlePacket(peer, packet);
      },
      ...(o.now ? { now: o.now } : {}),
    });
    const addr = { selfIpv4: identity.ipv4, selfIpv6: identity.ipv6, mtu: tap.mtu, writer };
    this.inside = new Inside({ ...addr, peers: this.peers, send: (peer, packet) => this.tunnels.send(peer.link, packet) });
    this.outside = new Outside(addr);
    for (const spec of o.peers) this.addPeer(spec);
  }

  start(): void {
    this.o.socket.onMessage((msg, from) => this.onDatagram(msg, from));
    this.o.tap.start((batch) => {
      this.inside.handleBatch(batch);
      this.o.socket.flush?.(); // a batched socket sends this batch's datagrams now, not next turn
    });
    // Peers with a known endpoint get a tunnel at once: the first packet then waits for nothing.
    for (const p of this.peers.values()) this.tunnels.connect(p.link);
    this.o.logger.info({ ...identityToJson(this.o.identity), tap: this.o.tap.name, listen: endpointKey(this.o.socket.local), peers: this.peers.size }, 'agent up');
  }

  addPeer(spec: PeerSpec): OverlayPeer<TunnelPeer> {
    const hex = Buffer.from(spec.publicKey).toString('hex');
    if (hex === this.o.identity.publicKeyHex) throw new Error('a peer cannot have this host\'s own key');
    const tp = this.tunnels.addPeer(spec.publicKey, spec.endpoint);
    const peer = describePeer(spec.publicKey, tp);
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
  }

  status(): AgentStatus {
    const tunnelByKey = new Map(this.tunnels.status().map((t) => [t.publicKey, t]));
    const peers: PeerStatus[] = [];
    for (const p of this.peers.values()) {
      const t = tunnelByKey.get(p.publicKeyHex);
      const established = t?.state === 'established';
      peers.push({
        nodeId: p.nodeIdHex, publicKey: p.publicKeyHex, ipv4: formatIpv4(p.ipv4), ipv6: formatIpv6(p.ipv6),
        endpoint: t?.endpoint ?? null,
        path: established ? 'direct' : 'none',
        pathReason: pathReason(t?.state, t?.endpoint ?? null),
        state: t?.state ?? 'none',
        lastHandshake: t?.lastHandshake ? new Date(t.lastHandshake).toISOString() : null,
        rxBytes: t?.rxBytes ?? 0, txBytes: t?.txBytes ?? 0,
      });
    }
    return {
      identity: identityToJson(this.o.identity),
      tap: { name: this.o.tap.name, mtu: this.o.tap.mtu },
      listen: endpointKey(this.o.socket.local),
      peers,
      counters: {
        tap: { ...this.o.tap.stats }, inside: { ...this.inside.stats }, outside: { ...this.outside.stats },
        tunnels: { ...this.tunnels.stats }, demux: { ...this.demux },
      },
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.tunnels.close();
    this.o.tap.close();
    await this.o.socket.close();
  }

  private onDatagram(msg: Buffer, from: Endpoint): void {
    this.demux.datagrams++;
    if (msg.length === 0) { this.demux.unknown++; return; }
    switch (classifyDatagram(msg[0]!)) {
      case 'tunnel': this.tunnels.handleDatagram(msg, from); break;
      case 'unknown': this.demux.unknown++; break;
      default: this.demux.notYetHandled++; // STUN, TURN and overlay messages arrive with later layers
    }
  }
}

function pathReason(state: string | undefined, endpoint: string | null): string {
  if (state === 'established') return 'handshake completed with the peer\'s endpoint';
  if (!endpoint) return 'no endpoint known: waiting for the peer to contact us';
  if (state === 'handshaking') return 'handshake in progress';
  return 'idle: a tunnel is set up on the first packet';
}
