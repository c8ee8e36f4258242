// The relay side of peer relaying (frames in peer-relay-wire.ts): a publicly reachable agent forwards
// datagrams between a host behind a NAT that keeps it as a rendezvous node (the "client") and anyone who
// wants to reach that host but has no direct path and no TURN relay (the "peer").
//
//   TO_CLIENT(nodeId, p) from peer address A ─> A is a verified overlay member (peerVerified)? ─> nodeId
//        is our rendezvous client, its signed keepalives coming from endpoint C (rendezvousClientEndpoint)?
//        ─> handle h for (A, client) ─> FROM_PEER(h, p) to C
//   TO_PEER(h, p) from the client ─> h names (A, that client), this datagram comes from the client's
//        keepalive endpoint C, and A is still verified ─> FROM_CLIENT(client nodeId, p) to A
//
// Where a frame may go: only to an address that proved itself to the overlay. C is where a node whose
// signed, cookie-checked keepalives we answer sends them from, never where some message merely claimed a
// NodeID (a Via entry, an unsigned sender); A proved return routability and a key. So a forged frame,
// from any source, makes the relay send nothing to a third party: a spoofed source is unverified, and an
// arbitrary NodeID is no client of ours.
//
// Dropped and counted, never thrown: malformed frames, unverified peer, unknown client, unknown or foreign
// handle (only the client a handle was made for may answer through it), over the source's byte rate,
// relaying switched off. One datagram out per datagram in, at most 16 bytes larger (a handle replaced by a
// NodeID), and only to verified addresses: never an amplifier. The payload is not looked at: tunnel
// messages are end-to-end encrypted and authenticated.
import { realScheduler, type Scheduler } from '../base/scheduler.js';
import {
  PEER_RELAY_BURST_BYTES, PEER_RELAY_HANDLE_IDLE_MS, PEER_RELAY_HANDLES_MAX, PEER_RELAY_RATE_BYTES, PEER_RELAY_SOURCES_MAX,
} from '../base/constants.js';
import { PerSourceRateLimit } from '../conn/rate-limit.js';
import {
  PR_FROM_CLIENT, PR_FROM_PEER, PR_TO_CLIENT, PR_TO_PEER, marshalPeerRelay, newPeerRelayFrame, parsePeerRelay,
} from './peer-relay-wire.js';
import { endpointKey, type Endpoint } from '../conn/socket.js';
import { hex } from '../base/bytes.js';

export interface PeerRelayServerOptions {
  send: (bytes: Uint8Array, to: Endpoint) => void;
  /** The endpoint our rendezvous client `nodeId` sends its signed, cookie-verified keepalives from,
   *  recently; undefined for a node that is not our client (the overlay: OverlayNode.rendezvousClientEndpoint). */
  rendezvousClientEndpoint: (nodeId: Uint8Array) => Endpoint | undefined;
  /** This source proved return routability and an overlay key recently (the overlay: isVerifiedSource).
   *  Only such a peer's frames reach a client, and only to such a peer do a client's answers go. */
  peerVerified: (from: Endpoint) => boolean;
  /** Relaying on (public agents, unless switched off)? Asked per frame: it follows the last netcheck. */
  enabled: () => boolean;
  clock?: Scheduler;
  rateBytesPerSecond?: number;
  burstBytes?: number;
}

export interface PeerRelayServerStats {
  toClient: number;
  toPeer: number;
  bytes: number;
  malformed: number;
  unknownClient: number;
  unknownHandle: number;
  foreignHandle: number;
  rateLimited: number;
  disabled: number;
  /** TO_CLIENT from a source that never proved itself to the overlay (or a handle's peer that lapsed). */
  unverifiedPeer: number;
}

interface Handle {
  id: number;
  peer: Endpoint;
  client: Uint8Array;
  key: string;
  at: number;
}

export class PeerRelayServer {
  readonly stats: PeerRelayServerStats = {
    toClient: 0, toPeer: 0, bytes: 0, malformed: 0, unknownClient: 0, unknownHandle: 0, foreignHandle: 0, rateLimited: 0, disabled: 0, unverifiedPeer: 0,
  };
  /** handle -> who; insertion order = recency. */
  private readonly handles = new Map<number, Handle>();
  /** "peer address|client NodeID hex" -> handle. */
  private readonly byPair = new Map<string, Handle>();
  private readonly frame = newPeerRelayFrame();
  private readonly limit: PerSourceRateLimit;
  private readonly clock: Scheduler;
  private nextHandle = (Math.random() * 0x100000000) >>> 0;

  constructor(private readonly o: PeerRelayServerOptions) {
    this.clock = o.clock ?? realScheduler;
    this.limit = new PerSourceRateLimit({
      ratePerSecond: o.rateBytesPerSecond ?? PEER_RELAY_RATE_BYTES, burst: o.burstBytes ?? PEER_RELAY_BURST_BYTES,
      maxSources: PEER_RELAY_SOURCES_MAX, now: () => this.clock.now(),
    });
  }

  get handleCount(): number { return this.handles.size; }

  /** A TO_CLIENT or TO_PEER frame from `from` (FROM_* frames are the client side's: peer-relay-client.ts). */
  handleDatagram(msg: Uint8Array, from: Endpoint): void {
    const f = this.frame;
    const s = this.stats;
    if (!parsePeerRelay(msg, f) || (f.kind !== PR_TO_CLIENT && f.kind !== PR_TO_PEER)) { s.malformed++; return; }
    if (!this.o.enabled()) { s.disabled++; return; }
    if (!this.limit.allowFrom(from.address, msg.length)) { s.rateLimited++; return; }
    const now = this.clock.now();
    if (f.kind === PR_TO_CLIENT) {
      if (!this.o.peerVerified(from)) { s.unverifiedPeer++; return; }
      const to = this.o.rendezvousClientEndpoint(f.nodeId);
      if (!to || (to.port === from.port && to.address === from.address)) { s.unknownClient++; return; }
      const h = this.handleFor(from, f.nodeId, now);
      s.toClient++;
      s.bytes += f.payload.length;
      this.o.send(marshalPeerRelay(PR_FROM_PEER, h.id, f.payload), to);
      return;
    }
    const h = this.handles.get(f.handle);
    if (!h || now - h.at > PEER_RELAY_HANDLE_IDLE_MS) { s.unknownHandle++; return; }
    const client = this.o.rendezvousClientEndpoint(h.client);
    if (!client || client.port !== from.port || client.address !== from.address) { s.foreignHandle++; return; }
    if (!this.o.peerVerified(h.peer)) { s.unverifiedPeer++; return; }
    this.touch(h, now);
    s.toPeer++;
    s.bytes += f.payload.length;
    this.o.send(marshalPeerRelay(PR_FROM_CLIENT, h.client, f.payload), h.peer);
  }

  private handleFor(peer: Endpoint, client: Uint8Array, now: number): Handle {
    const key = `${endpointKey(peer)}|${hex(client)}`;
    const known = this.byPair.get(key);
    if (known && now - known.at <= PEER_RELAY_HANDLE_IDLE_MS) { this.touch(known, now); return known; }
    if (known) this.forget(known);
    this.expire(now);
    let id = this.nextHandle;
    while (this.handles.has(id)) id = (id + 1) >>> 0;
    this.nextHandle = (id + 1) >>> 0;
    const h: Handle = { id, peer: { address: peer.address, port: peer.port }, client: Uint8Array.from(client), key, at: now };
    this.handles.set(id, h);
    this.byPair.set(key, h);
    return h;
  }

  private touch(h: Handle, now: number): void {
    h.at = now;
    this.handles.delete(h.id);
    this.handles.set(h.id, h);
  }

  private forget(h: Handle): void {
    this.handles.delete(h.id);
    if (this.byPair.get(h.key) === h) this.byPair.delete(h.key);
  }

  /** Idle handles from the front (least recently used), and the oldest beyond PEER_RELAY_HANDLES_MAX - 1. */
  private expire(now: number): void {
    for (const h of this.handles.values()) {
      if (now - h.at <= PEER_RELAY_HANDLE_IDLE_MS && this.handles.size < PEER_RELAY_HANDLES_MAX) break;
      this.forget(h);
    }
  }
}
