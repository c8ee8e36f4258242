// The end-host side of peer relaying (frames in peer-relay-wire.ts, the relay in peer-relay-server.ts).
// A path through a relay gets a virtual endpoint, so the tunnel layer needs no change: it sends to an
// Endpoint and roams to whatever Endpoint an authenticated packet came from.
//
//   virtual endpoint  [100::X]:1 — an address in IPv6's discard-only prefix 100::/64 (RFC 6666): should it
//                     ever reach a real socket, it goes nowhere. X indexes a route:
//     towards a client  (relay R, the client's NodeID)   we send TO_CLIENT;  FROM_CLIENT arrives from it
//     towards a peer    (relay R, the handle R gave it)  we send TO_PEER;    FROM_PEER arrives from it
//   send(bytes, virtual) ─> frame ─> the relay, on the raw socket
//   FROM_* frame from relay R ─> payload delivered as if the virtual endpoint had sent it (demux as usual)
//
// FROM_CLIENT is accepted only for a route we opened (we asked R to reach that client); FROM_PEER from any
// relay (the peer's handshake proves who it is, as on a direct path). Routes are bounded
// (PEER_RELAY_ROUTES_MAX, the oldest forgotten first; the routes we opened and those FROM_PEER made apart,
// so forged FROM_PEER frames cannot push out a path we chose). One frame is allocated per datagram sent: peer
// relaying is the last resort, and the socket may hold a buffer after send() returns.
//
// A relay forwards TO_CLIENT frames only from sources verified in the overlay (peer-relay-server.ts): with
// verifyRelaysWith(ensure), the first frame towards a relay asks `ensure` (an overlay request to the relay,
// which proves our source there) and holds up to PEER_RELAY_PENDING_MAX frames until it settles; while the
// route is used, `ensure` runs again every PEER_RELAY_REVERIFY_MS so the relay's proof never goes stale.
import { PEER_RELAY_PENDING_MAX, PEER_RELAY_REVERIFY_MS, PEER_RELAY_ROUTES_MAX } from '../base/constants.js';
import {
  PR_FROM_CLIENT, PR_FROM_PEER, PR_TO_CLIENT, PR_TO_PEER, marshalPeerRelay, newPeerRelayFrame, parsePeerRelay,
} from './peer-relay-wire.js';
import { endpointKey, endpointKeyOf, type Endpoint } from '../conn/socket.js';
import { hex } from '../base/bytes.js';

const VIRTUAL_PREFIX = '100::';
const VIRTUAL_PORT = 1;

/** Makes our source verified at a relay (an overlay request to it, answered); settles either way. */
export type EnsureVerified = (relay: Endpoint) => Promise<unknown>;

/** Our standing with one relay we send TO_CLIENT frames to. */
interface RelayProof {
  /** When `ensure` last started, -Infinity before the first time. */
  at: number;
  /** Frames held while the first `ensure` runs (undefined otherwise). */
  held: { bytes: Buffer; to: Endpoint }[] | undefined;
}

interface Route {
  virtual: Endpoint;
  relay: Endpoint;
  /** Towards a client with verifyRelaysWith set: this relay's proof (shared by its routes). */
  proof: RelayProof | undefined;
  /** Towards a client: its NodeID; towards a peer: undefined (then `handle`). */
  nodeId: Uint8Array | undefined;
  handle: number;
  /** Lookup key: relay + NodeID hex or handle. */
  key: string;
}

export interface PeerRelayClientStats {
  sent: number;
  received: number;
  malformed: number;
  /** FROM_CLIENT for a route we never opened. */
  unsolicited: number;
  /** Sends to a virtual endpoint whose route was forgotten. */
  staleRoute: number;
  /** Overlay requests made to relays so they relay our frames (verifyRelaysWith). */
  verifications: number;
  /** Frames dropped while a relay's first verification ran and PEER_RELAY_PENDING_MAX were held. */
  heldOverflow: number;
}

export class PeerRelayClient {
  readonly stats: PeerRelayClientStats = { sent: 0, received: 0, malformed: 0, unsolicited: 0, staleRoute: 0, verifications: 0, heldOverflow: 0 };
  /** endpointKey(relay) -> our proof there (bounded by the routes: forgotten with the last one's relay). */
  private readonly proofs = new Map<string, RelayProof>();
  private ensure: EnsureVerified | undefined;
  private now: () => number = () => performance.now();
  /** endpointKey(virtual) -> route; insertion order = recency. */
  private readonly byVirtual = new Map<string, Route>();
  private readonly byKey = new Map<string, Route>();
  /** Routes we opened (towards clients) and routes FROM_PEER frames made, each bounded on its own (oldest
   *  first): frames anyone can forge with a relay's source never evict a route we chose. */
  private readonly opened = new Map<string, Route>();
  private readonly learned = new Map<string, Route>();
  private readonly frame = newPeerRelayFrame();
  private nextIndex = 1;

  constructor(
    private readonly sendRaw: (bytes: Uint8Array, to: Endpoint) => void,
    private readonly deliver: (msg: Buffer, from: Endpoint) => void,
  ) {}

  /** Connect, once: how to prove our source to a relay before sending it frames for its clients. */
  verifyRelaysWith(ensure: EnsureVerified, now?: () => number): void {
    this.ensure = ensure;
    if (now) this.now = now;
  }

  /** Is this one of our virtual endpoints (a path through a peer relay)? */
  static isVirtual(e: Endpoint): boolean {
    return e.port === VIRTUAL_PORT && e.address.startsWith(VIRTUAL_PREFIX);
  }

  /** The virtual endpoint for "the client `nodeId`, through its rendezvous node `relay`". */
  towardsClient(relay: Endpoint, nodeId: Uint8Array): Endpoint {
    const key = `${endpointKey(relay)}/${hex(nodeId)}`;
    return this.route(key, relay, Uint8Array.from(nodeId), 0).virtual;
  }

  /** Our source may have changed (we moved, our NAT rebound): the next frame towards this relay proves
   *  it again first, and frames wait for that (a relay drops frames from an unproven source). */
  reverify(relay: Endpoint): void {
    const p = this.proofs.get(endpointKey(relay));
    if (p && !p.held) p.at = -Infinity;
  }

  /** The relay a virtual endpoint goes through ("host:port"), for status; undefined if `e` is not ours. */
  relayOf(e: Endpoint | string): string | undefined {
    const r = this.byVirtual.get(typeof e === 'string' ? e : endpointKey(e));
    return r ? endpointKey(r.relay) : undefined;
  }

  get routes(): number { return this.byVirtual.size; }

  /** Send through the relay if `to` is virtual (true), else leave it to the caller (false). */
  send(bytes: Uint8Array, to: Endpoint): boolean {
    if (!PeerRelayClient.isVirtual(to)) return false;
    const r = this.byVirtual.get(endpointKeyOf(to));
    if (!r) { this.stats.staleRoute++; return true; }
    if (bytes.length === 0) return true;
    const frame = r.nodeId ? marshalPeerRelay(PR_TO_CLIENT, r.nodeId, bytes) : marshalPeerRelay(PR_TO_PEER, r.handle, bytes);
    const p = r.proof;
    if (p && this.ensure) {
      if (this.now() - p.at >= PEER_RELAY_REVERIFY_MS) this.verify(r.relay, p);
      if (p.held) {
        if (p.held.length < PEER_RELAY_PENDING_MAX) p.held.push({ bytes: frame, to: r.relay });
        else this.stats.heldOverflow++;
        return true;
      }
    }
    this.stats.sent++;
    this.sendRaw(frame, r.relay);
    return true;
  }

  /** Ask `ensure` for this relay; the first time, hold frames until it settles. */
  private verify(relay: Endpoint, p: RelayProof): void {
    const first = p.at === -Infinity;
    p.at = this.now();
    this.stats.verifications++;
    if (first) p.held = [];
    const release = (): void => {
      const held = p.held;
      p.held = undefined;
      for (const h of held ?? []) { this.stats.sent++; this.sendRaw(h.bytes, h.to); }
    };
    let settled: Promise<unknown>;
    try { settled = this.ensure!(relay); } catch { settled = Promise.resolve(); }
    // Sent either way once it settles: an unverified frame is the relay's to drop and count.
    void Promise.resolve(settled).then(release, release);
  }

  /** A FROM_PEER or FROM_CLIENT frame from relay `from`. */
  handleDatagram(msg: Uint8Array, from: Endpoint): void {
    const f = this.frame;
    if (!parsePeerRelay(msg, f) || (f.kind !== PR_FROM_PEER && f.kind !== PR_FROM_CLIENT)) { this.stats.malformed++; return; }
    let r: Route | undefined;
    if (f.kind === PR_FROM_CLIENT) {
      r = this.byKey.get(`${endpointKey(from)}/${hex(f.nodeId)}`);
      if (!r) { this.stats.unsolicited++; return; }
    } else {
      r = this.route(`${endpointKey(from)}#${f.handle}`, from, undefined, f.handle);
    }
    this.stats.received++;
    // The payload is a view into the frame: the tunnel layer reads it during the call, as a socket's datagram.
    this.deliver(Buffer.from(f.payload.buffer, f.payload.byteOffset, f.payload.length), r.virtual);
  }

  private route(key: string, relay: Endpoint, nodeId: Uint8Array | undefined, handle: number): Route {
    const known = this.byKey.get(key);
    if (known) return known;
    const order = nodeId ? this.opened : this.learned;
    while (order.size >= PEER_RELAY_ROUTES_MAX) {
      const oldest = order.values().next().value!;
      order.delete(oldest.key);
      this.byVirtual.delete(endpointKey(oldest.virtual));
      this.byKey.delete(oldest.key);
    }
    const i = this.nextIndex;
    this.nextIndex = this.nextIndex >= 0xffffffff ? 1 : this.nextIndex + 1;
    // In RFC 5952 form (100::5, not 100::0:5), as parseEndpoint gives it back from `status` and the CLI.
    const hi = i >>> 16, lo = (i & 0xffff).toString(16);
    const virtual = { address: hi === 0 ? `${VIRTUAL_PREFIX}${lo}` : `${VIRTUAL_PREFIX}${hi.toString(16)}:${lo}`, port: VIRTUAL_PORT };
    let proof: RelayProof | undefined;
    if (nodeId) {
      const rk = endpointKey(relay);
      proof = this.proofs.get(rk);
      if (!proof) {
        if (this.proofs.size >= PEER_RELAY_ROUTES_MAX) this.proofs.delete(this.proofs.keys().next().value!);
        proof = { at: -Infinity, held: undefined };
        this.proofs.set(rk, proof);
      }
    }
    const r: Route = { virtual, relay: { address: relay.address, port: relay.port }, proof, nodeId, handle, key };
    this.byVirtual.set(endpointKey(virtual), r);
    this.byKey.set(key, r);
    order.set(key, r);
    return r;
  }
}
