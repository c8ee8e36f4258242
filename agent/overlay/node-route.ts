// OverlayNode's forwarding: routed messages (RELOAD section 6.3) for other nodes, on the bytes, one hop at a time.
//
//   datagram, route parsed (codec.ts parseRoute) ─> for us? destinations [] or [us] ─> node.ts handles it
//        └─ no: forward(): rate limit per source IP ─> SENDER = H(key), not us ─> next = first destination
//             (after us, if we are first) ─> its endpoint ─> forwardHop (TTL - 1, us appended to Via for
//             requests, us popped from the destinations) ─> one datagram out
//
//   where the next hop is: `recent`, the endpoint each NodeID last sent us a request from (the previous hop
//   of a request: the last Via entry, or the originator itself when Via is empty; a direct answer's
//   sender), else the routing table. Why the first: a rendezvous client behind a NAT is often not in our
//   table (its bucket is full, or it never answered one of our RPCs), and its NAT lets us in only at the
//   exact endpoint it last sent from. That is also how an answer finds its way back: the forwarder saw the
//   originator (or the previous forwarder) when the request went through.
//
// Dropped and counted: no endpoint known for the next hop (unroutable, also for resource destinations:
// idloc's lookups are iterative, only ATTACH is routed), TTL 0 or a full Via list (ttlExpired), our own
// NodeID already on the Via list, our own message come back, a next hop that is ourselves or the endpoint the
// datagram came from (loops), a message that would outgrow a datagram (tooLarge), over the source's rate
// (rateLimited). No error answers: the requester's retransmissions time out, and a forwarder never sends more
// than one datagram per datagram it gets.
//
// Trust: messages are unsigned, so a node can claim another's NodeID (with its public key) and be
// remembered at its own endpoint until the real node's next request (a rendezvous client's keepalive, 15 s)
// puts it right. That loses messages for the victim in the meantime, no more: ATTACH answers are accepted
// only from the target's NodeID and the blob inside is signed by the target (agent/nat/attach.ts).

import {
  NODE_ID_BYTES, OVERLAY_MAX_VIA, FORWARD_BURST_PER_SOURCE, FORWARD_RATE_PER_SOURCE, FORWARD_RATE_SOURCES_MAX,
  FORWARD_RECENT_SENDERS_MAX, FORWARD_RECENT_SENDER_MS,
} from '../base/constants.js';
import { endpointKey, type Endpoint } from '../conn/socket.js';
import { PerSourceRateLimit } from '../conn/rate-limit.js';
import { FLAG_RESPONSE, forwardHop, idMatchesKey, isAnswer, routeSender, type OverlayMessage, type Route } from './codec.js';
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
  recentMs?: number;
  recentMax?: number;
  ratePerSecond?: number;
  burst?: number;
}

interface Seen {
  endpoint: Endpoint;
  at: number;
}

export class Router {
  private readonly counts = { forwarded: 0, unroutable: 0, ttlExpired: 0, loops: 0, rateLimited: 0, tooLarge: 0 };
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

  /** A message for us, its sender checked: remember who is behind `from`. A request came from its previous
   *  hop; an answer with no destinations left was sent to us directly by its sender (a forwarded one still
   *  names us: forwarders pop only themselves). */
  heardMessage(m: OverlayMessage, from: Endpoint): void {
    if (!isAnswer(m)) this.heard(m.via.length > 0 ? m.via[m.via.length - 1]! : m.sender.nodeId, from);
    else if (m.dest.length === 0) this.heard(m.sender.nodeId, from);
  }

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
    this.expireRecent(now);
  }

  /** Where to send to a NodeID: where it last sent from (recently), else its routing-table endpoint. */
  endpointOf(nodeId: Uint8Array): Endpoint | undefined {
    const s = this.recent.get(idKey(nodeId));
    if (s && this.d.scheduler.now() - s.at < this.recentMs) return s.endpoint;
    return this.d.kad.table.get(nodeId)?.endpoint;
  }

  /** A datagram not addressed to us (isForUs false): forward it one hop, or drop and count it. Never throws
   *  on the datagram's content; does not parse its body beyond the SENDER. */
  forward(b: Uint8Array, r: Route, from: Endpoint): void {
    const c = this.counts;
    if (!this.limit.allow(from.address)) { c.rateLimited++; return; }
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
    if (request) this.heard(r.via.length > 0 ? r.via[r.via.length - 1]! : sender.nodeId, from);
    const to = this.endpointOf(next.id);
    if (!to) { c.unroutable++; return; }
    if (to.port === from.port && endpointKey(to) === endpointKey(from)) { c.loops++; return; }
    const out = forwardHop(b, self);
    if (!out) { c.tooLarge++; return; }
    c.forwarded++;
    this.d.send(out, to);
  }

  /** Drop expired entries from the front (insertion order = recency), and the oldest beyond the bound. */
  private expireRecent(now: number): void {
    for (const [k, s] of this.recent) {
      if (now - s.at < this.recentMs && this.recent.size <= this.recentMax) break;
      this.recent.delete(k);
    }
  }
}
