// OverlayNode's forwarding: routed messages (RELOAD section 6.3) for other nodes, one hop at a time.
//
//   request, we are its first hop (Via empty) ─> the originator proves itself as to any direct request
//        (node-guard.ts: cookie for `from`, signature, puzzle; firstHop) ─> ORIGIN(from) appended
//   request, Via not empty ─> it must come from where its last Via node proved its key to us
//   either ─> rate limit per source IP ─> next = first destination (after us) ─> its proven endpoint ─>
//        return path kept: (txid, originator) -> the previous hop and where it was ─> forwardHop (TTL - 1,
//        us appended to Via, us popped from the destinations) ─> one datagram out
//   answer ─> a return path for (txid, originator) whose previous hop is the next destination, and the
//        answer comes from the endpoint we forwarded the request to ─> ORIGIN(from) appended if it has none
//        (we are next to the answerer) ─> to the previous hop's endpoint
//
// Where a node is: `recent`, the endpoint each NodeID last proved its key from (a verified request: a
// rendezvous client's keepalives), else the routing table (whose endpoints are proven the same way). Why the
// first: a rendezvous client behind a NAT is often not in our table, and its NAT lets us in only at the exact
// endpoint it last sent from. A Via entry is routing history and never evidence of where a node is: an
// answer goes back along the return path its request took, not to wherever a Via entry's NodeID was heard.
//
// Dropped and counted: no endpoint known for the next hop (unroutable, also for resource destinations:
// idloc's lookups are iterative, only ATTACH is routed), TTL 0 or a full Via list (ttlExpired), our own
// NodeID already on the Via list, our own message come back, a next hop that is ourselves or the endpoint the
// datagram came from (loops), a message that would outgrow a datagram (tooLarge), over the source's rate
// (rateLimited), a request from an unproven hop or an answer with no return path (unproven). No error
// answers: the requester's retransmissions time out, and a forwarder never sends more than one datagram per
// datagram it gets.

import {
  NODE_ID_BYTES, OVERLAY_MAX_VIA, FORWARD_BURST_PER_SOURCE, FORWARD_RATE_PER_SOURCE, FORWARD_RATE_SOURCES_MAX,
  FORWARD_RECENT_SENDERS_MAX, FORWARD_RECENT_SENDER_MS, FORWARD_RETURN_PATHS_MAX, FORWARD_RETURN_PATH_MS,
} from '../base/constants.js';
import { endpointKey, type Endpoint } from '../conn/socket.js';
import { PerSourceRateLimit } from '../conn/rate-limit.js';
import {
  FLAG_RESPONSE, forwardHop, fromSocketEndpoint, idMatchesKey, routeSender, withOrigin, type OverlayMessage, type Route,
} from './codec.js';
import type { KademliaNode } from './kademlia.js';
import type { FetchValue, Wire } from './node-wire.js';
import type { Scheduler } from '../base/scheduler.js';
import { idKey } from './xor-metric.js';
import { bytesEqual } from '../base/bytes.js';

export interface RouteStats {
  /** Datagrams forwarded to the next hop. */
  forwarded: number;
  /** No endpoint known for the next hop (or it is a resource id). */
  unroutable: number;
  /** TTL 0, or the Via list is full. */
  ttlExpired: number;
  /** Our NodeID already on the Via list, our own message back, next hop = us or the datagram's source. */
  loops: number;
  /** Over the source's forwarding rate (FORWARD_RATE_PER_SOURCE). */
  rateLimited: number;
  /** Forwarding would make it larger than a datagram. */
  tooLarge: number;
  /** A request from a hop that never proved its key there, or an answer with no return path. */
  unproven: number;
  /** NodeIDs whose last endpoint we remember now. */
  recentSenders: number;
}

export interface RouterDeps {
  kad: KademliaNode<FetchValue, Wire>;
  scheduler: Scheduler;
  selfId: Uint8Array;
  send: (bytes: Uint8Array, to: Endpoint) => void;
  /** A datagram that is not a valid overlay message. */
  malformed: () => void;
  reject: (reason: string) => void;
  /** A request whose first hop we are: the originator's proof (node-guard.ts), the message if it holds.
   *  Sends the cookie answer itself when that is what is missing. */
  firstHop: (b: Uint8Array, from: Endpoint) => OverlayMessage | undefined;
  recentMs?: number;
  recentMax?: number;
  ratePerSecond?: number;
  burst?: number;
}

interface Seen {
  endpoint: Endpoint;
  at: number;
}

/** A forwarded request's way back. */
interface ReturnPath {
  /** The previous hop: the last Via entry, or the originator. */
  hop: Uint8Array;
  back: Endpoint;
  /** Where we sent the request: its answer must come from there. */
  sentTo: string;
  at: number;
}

export class Router {
  private readonly counts = { forwarded: 0, unroutable: 0, ttlExpired: 0, loops: 0, rateLimited: 0, tooLarge: 0, unproven: 0 };
  /** endpointKey -> when some node last proved its key from there; insertion order = recency. */
  private readonly recentEndpoints = new Map<string, number>();
  /** `${txid}/${originator}` -> its return path; insertion order = age. */
  private readonly paths = new Map<string, ReturnPath>();
  /** NodeID (idKey) -> where it last sent us a request from; insertion order = recency. */
  private readonly recent = new Map<string, Seen>();
  /** Each source IP's forwarding budget. */
  private readonly limit: PerSourceRateLimit;
  private readonly recentMs: number;
  private readonly recentMax: number;

  constructor(private readonly d: RouterDeps) {
    this.recentMs = d.recentMs ?? FORWARD_RECENT_SENDER_MS;
    this.recentMax = d.recentMax ?? FORWARD_RECENT_SENDERS_MAX;
    this.limit = new PerSourceRateLimit({
      ratePerSecond: d.ratePerSecond ?? FORWARD_RATE_PER_SOURCE, burst: d.burst ?? FORWARD_BURST_PER_SOURCE,
      maxSources: FORWARD_RATE_SOURCES_MAX, now: () => d.scheduler.now(),
    });
  }

  get stats(): RouteStats {
    this.expireRecent(this.d.scheduler.now());
    return { ...this.counts, recentSenders: this.recent.size };
  }

  /** Is a datagram with this route addressed to us: no destinations (direct), or only us? */
  isForUs(r: Route): boolean {
    const dest = r.dest;
    return dest.length === 0 || (dest.length === 1 && dest[0]!.type === 'node' && bytesEqual(dest[0]!.id, this.d.selfId));
  }

  /** A node proved its key at `from` (a verified request): remember it there. */
  heard(nodeId: Uint8Array, from: Endpoint): void {
    if (nodeId.length !== NODE_ID_BYTES || bytesEqual(nodeId, this.d.selfId)) return;
    const key = idKey(nodeId);
    const prev = this.recent.get(key);
    const now = this.d.scheduler.now();
    if (prev && prev.endpoint.port === from.port && prev.endpoint.address === from.address) {
      this.recent.delete(key);
      prev.at = now;
      this.recent.set(key, prev);
    } else {
      this.recent.delete(key);
      this.recent.set(key, { endpoint: { address: from.address, port: from.port }, at: now });
    }
    const ek = endpointKey(from);
    this.recentEndpoints.delete(ek);
    this.recentEndpoints.set(ek, now);
    this.expireRecent(now);
  }

  /** Did some node prove its key from `e` recently? */
  isVerifiedEndpoint(e: Endpoint): boolean {
    const at = this.recentEndpoints.get(endpointKey(e));
    return at !== undefined && this.d.scheduler.now() - at < this.recentMs;
  }

  /** Where to send to a NodeID: where it last proved its key from (recently), else its routing-table
   *  endpoint. */
  endpointOf(nodeId: Uint8Array): Endpoint | undefined {
    return this.recentEndpoint(nodeId) ?? this.d.kad.table.get(nodeId)?.endpoint;
  }

  /** Where a node recently proved its key from with a request of its own (a rendezvous client's keepalives). */
  recentEndpoint(nodeId: Uint8Array): Endpoint | undefined {
    const s = this.recent.get(idKey(nodeId));
    return s && this.d.scheduler.now() - s.at < this.recentMs ? s.endpoint : undefined;
  }

  /** Did `from` prove to be node `id` (recently, or as its routing-table contact)? */
  isAt(id: Uint8Array, from: Endpoint): boolean {
    const r = this.recentEndpoint(id);
    if (r && r.port === from.port && r.address === from.address) return true;
    const c = this.d.kad.table.get(id)?.endpoint;
    return c !== undefined && c.port === from.port && c.address === from.address;
  }

  /** A datagram not addressed to us (isForUs false): forward it one hop, or drop and count it. Never throws
   *  on the datagram's content; does not parse its body beyond the SENDER. */
  forward(b: Uint8Array, r: Route, from: Endpoint): void {
    const c = this.counts;
    if (!this.limit.allowFrom(from.address)) { c.rateLimited++; return; }
    const sender = routeSender(b, r);
    if (!sender) { this.d.malformed(); return; }
    if (!idMatchesKey(sender)) { this.d.reject('sender-id-mismatch'); return; }
    const self = this.d.selfId;
    if (bytesEqual(sender.nodeId, self)) { c.loops++; return; } // our own message came back to us
    const request = (r.flags & FLAG_RESPONSE) === 0;
    if (request && r.via.some((v) => bytesEqual(v, self))) { c.loops++; return; }
    const first = r.dest[0]!;
    const next = first.type === 'node' && bytesEqual(first.id, self) ? r.dest[1]! : first;
    if (next.type !== 'node') { c.unroutable++; return; }
    if (bytesEqual(next.id, self)) { c.loops++; return; }
    if (r.ttl === 0 || (request && r.via.length >= OVERLAY_MAX_VIA)) { c.ttlExpired++; return; }
    const now = this.d.scheduler.now();
    if (!request) { this.forwardAnswer(b, r, from, next.id, now); return; }
    let bytes = b;
    const hop = r.via.length > 0 ? r.via[r.via.length - 1]! : sender.nodeId;
    if (r.via.length > 0) {
      if (!this.isAt(hop, from)) { c.unproven++; return; }
    } else {
      const m = this.d.firstHop(b, from);
      if (!m) return; // counted (or answered with a cookie) there
      this.heard(sender.nodeId, from);
      const origin = fromSocketEndpoint(from);
      const annotated = origin && withOrigin(b, origin);
      if (!annotated) { c.tooLarge++; return; }
      bytes = annotated;
    }
    const to = this.endpointOf(next.id);
    if (!to) { c.unroutable++; return; }
    if (to.port === from.port && endpointKey(to) === endpointKey(from)) { c.loops++; return; }
    const out = forwardHop(bytes, self);
    if (!out) { c.tooLarge++; return; }
    this.keepPath(`${r.txid}/${idKey(sender.nodeId)}`, { hop: Uint8Array.from(hop), back: { ...from }, sentTo: endpointKey(to), at: now });
    c.forwarded++;
    this.d.send(out, to);
  }

  /** An answer on its way back: only along the path its request took, and only from where that went. */
  private forwardAnswer(b: Uint8Array, r: Route, from: Endpoint, next: Uint8Array, now: number): void {
    const originator = r.dest[r.dest.length - 1]!.id;
    const p = this.paths.get(`${r.txid}/${idKey(originator)}`);
    if (!p || now - p.at >= FORWARD_RETURN_PATH_MS || !bytesEqual(p.hop, next) || p.sentTo !== endpointKey(from)) {
      this.counts.unproven++;
      return;
    }
    // the first forwarder an answer meets got it from the answerer itself: it says where that was (ORIGIN)
    const origin = fromSocketEndpoint(from);
    const out = forwardHop((origin && withOrigin(b, origin)) ?? b, this.d.selfId);
    if (!out) { this.counts.tooLarge++; return; }
    this.counts.forwarded++;
    this.d.send(out, p.back);
  }

  private keepPath(key: string, p: ReturnPath): void {
    this.paths.delete(key);
    this.paths.set(key, p);
    for (const [k, v] of this.paths) {
      if (p.at - v.at < FORWARD_RETURN_PATH_MS && this.paths.size <= FORWARD_RETURN_PATHS_MAX) break;
      this.paths.delete(k);
    }
  }

  /** Drop expired entries from the front (insertion order = recency), and the oldest beyond the bound. */
  private expireRecent(now: number): void {
    for (const [k, s] of this.recent) {
      if (now - s.at < this.recentMs && this.recent.size <= this.recentMax) break;
      this.recent.delete(k);
    }
    for (const [k, at] of this.recentEndpoints) {
      if (now - at < this.recentMs && this.recentEndpoints.size <= this.recentMax) break;
      this.recentEndpoints.delete(k);
    }
  }
}
