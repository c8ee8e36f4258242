// The agent's overlay endpoint: one KademliaNode on the agent's shared UDP socket, speaking the wire
// format of codec.ts, holding a RecordStore, publishing and fetching signed records.
//
//   socket ──(first byte 0xD2, daemon demux)──> handleDatagram(msg, from)
//        parse once (malformed: counted) ─> sender NodeID = H(key)? (else counted, dropped)
//        ─> node-guard.ts: a request needs our cookie for `from` (else the COOKIE_REQUIRED answer) and its
//           sender's signature; an answer needs a request of ours in flight to `from` and a signature; a
//           request routed to us must come from where its last forwarder proved its key
//        ─> a verified request's sender (puzzle holding) enters the routing table at `from`
//        ├─ PING / FIND_NODE / FETCH and their answers ──> KademliaNode's Rpc (codec adapters: node-wire.ts)
//        ├─ STORE / LEAVE and their answers ──────────────> a second Rpc (same retransmission rules)
//        │     FETCH, STORE, LEAVE answered from the RecordStore and routing table (node-serve.ts)
//        ├─ ATTACH and its answer ─────────────────────────> node-attach.ts (onAttach; attach())
//        └─ routed: destinations not [] or [us] ───────────> node-route.ts relays it (before the full parse:
//              a relay reads only the header and SENDER); routed requests to us other than ATTACH: refused
//
//   start / join            node-membership.ts: bootstraps, retries with backoff, re-join when alone
//   publish... / republish  node-publish.ts: STORE at the k closest, republish, replicate, store on join
//   fetch / resolve...      node-resolve.ts: FETCH with a quorum; NodeID, IPv4, IPv6, name -> locator
//   routing-table changes ─> membership (empty or not) and publisher (newcomers get their records)
//   rendezvous (NAT)        node-rendezvous.ts: keepalives to a few contacts; changes re-store our locator
//
// Callers use those parts directly (node.resolver.resolveIpv4(...), node.publisher.registerName(...),
// node.membership, node.rendezvous, node.attacher); the node itself wires them to the socket, its timers
// and each other, and has what needs more than one of them.
//
// Why two Rpc instances: KademliaNode's RPC only knows PING/FIND_NODE/FIND_VALUE and its handler is its own.
// Both share the socket; answers are routed to the right one by message code, never by guessing.
//
// Trust: every message is signed by its sender; node-guard.ts says what a verified one proves. Only a node
// that proved its key from an address (and whose NodeID puzzle holds) sits in the routing table at that
// address; contacts in answers are hearsay until they answer us themselves.

import {
  BUCKET_REFRESH_INTERVAL_MS, DHT_REPLICATE_INTERVAL_MS, DHT_REPUBLISH_INTERVAL_MS, KADEMLIA_ALPHA, KADEMLIA_K,
  PUZZLE_DEFAULT_DIFFICULTY, RENDEZVOUS_KEEPALIVE_MS, ROUTING_MAX_PER_IP, ROUTING_MAX_PER_SUBNET,
} from '../base/constants.js';
import type { Identity } from '../idloc/identity.js';
import type { DatagramSocket, Endpoint } from '../conn/socket.js';
import {
  idMatchesKey, isAnswer, marshalOverlayMessage, parseOverlayMessage, parseRoute, METHOD_ATTACH,
  type OverlayMessage, type OverlaySign, type Sender,
} from './codec.js';
import { ed25519Signer } from '../base/ed25519.js';
import { NodeGuard } from './node-guard.js';
import { dispatchAnswer, provenRequest, type InboundDeps } from './node-inbound.js';
import { networkOf } from './network-of.js';
import { verifyPuzzle } from './puzzle.js';
import { KademliaNode } from './kademlia.js';
import { Attacher } from './node-attach.js';
import { Membership } from './node-membership.js';
import type { OverlayNodeOptions, OverlayNodeStats } from './node-options.js';
import { Publisher } from './node-publish.js';
import { LookupRecorder, Resolver } from './node-resolve.js';
import { Rendezvous, rendezvousEndpoints } from './node-rendezvous.js';
import { Router } from './node-route.js';
import { localValue, serveExtra, storeAt, type ServeDeps } from './node-serve.js';
import {
  extraCodec, kadCodec, requestExtras, type ExtraRequest, type ExtraResponse, type FetchValue, type Wire,
  type WireContext,
} from './node-wire.js';
import { solvePuzzle } from './puzzle.js';
import type { LocatorRecord, RecordSigner } from './records.js';
import { Rpc } from './rpc.js';
import { every, realScheduler, type Scheduler, type TimerHandle } from '../base/scheduler.js';
import { RecordStore, type PutResult } from './store.js';
import { bytesEqual } from '../base/bytes.js';

export { STORE_STATUS, putResultOfStatus, type FetchValue } from './node-wire.js';
export {
  hostCandidates, type PublishIdentityOptions, type PublishIdentityResult, type PublishResult, type RegisterResult,
} from './node-publish.js';
export { locatorEndpoint, type LookupStats } from './node-resolve.js';
export type { OverlayNodeOptions, OverlayNodeStats } from './node-options.js';
export { ATTACH_MAX_BLOB, type AttachHandler, type AttachOptions, type AttachStats } from './node-attach.js';
export type { RouteStats } from './node-route.js';

export class OverlayNode {
  readonly kad: KademliaNode<FetchValue, Wire>;
  readonly store: RecordStore;
  readonly identity: Identity;
  readonly puzzleNonce: bigint;
  readonly puzzleDifficulty: number;
  private readonly socket: DatagramSocket;
  private readonly scheduler: Scheduler;
  private readonly clock: () => number;
  private readonly k: number;
  private readonly self: Sender;
  /** Joining and staying joined (node-membership.ts). */
  readonly membership: Membership;
  /** Our records: publish, identity (locator and IPv4 claim), names (node-publish.ts). */
  readonly publisher: Publisher;
  /** FETCH and the lookups built on it: NodeID, IPv4, IPv6, name -> records (node-resolve.ts). */
  readonly resolver: Resolver;
  /** Our rendezvous nodes, when behind a NAT (node-rendezvous.ts). */
  readonly rendezvous: Rendezvous;
  /** ATTACH, sent and answered (node-attach.ts). */
  readonly attacher: Attacher;
  private readonly extra: Rpc<ExtraRequest, ExtraResponse, Wire>;
  private readonly router: Router;
  private readonly lookups = new LookupRecorder();
  /** Record kind of a FETCH key (node-wire.ts says why). */
  private readonly fetchKinds = new WeakMap<Uint8Array, number>();
  /** The request being handled right now (KademliaNode answers synchronously): its code and source. */
  private ctx: { txid: bigint; method: number; from: Endpoint } | undefined;
  private readonly rejected: Record<string, number> = {};
  private readonly guard: NodeGuard;
  private readonly inbound: InboundDeps;
  private readonly sign: OverlaySign;
  private datagrams = 0;
  private malformed = 0;
  private observed: Endpoint | undefined;
  private readonly timers: TimerHandle[] = [];
  private closed = false;

  constructor(o: OverlayNodeOptions) {
    this.socket = o.socket;
    this.identity = o.identity;
    this.scheduler = o.scheduler ?? realScheduler;
    this.clock = o.now ?? Date.now;
    this.k = o.k ?? KADEMLIA_K;
    const alpha = o.alpha ?? KADEMLIA_ALPHA;
    this.puzzleDifficulty = o.puzzleDifficulty ?? PUZZLE_DEFAULT_DIFFICULTY;
    this.puzzleNonce = o.puzzleNonce ?? solvePuzzle(o.identity.publicKey, this.puzzleDifficulty);
    this.store = o.store ?? new RecordStore({ puzzleDifficulty: this.puzzleDifficulty });
    this.self = { nodeId: o.identity.nodeId, publicKey: o.identity.publicKey, puzzleNonce: this.puzzleNonce };
    this.sign = ed25519Signer(o.identity.privateKey);
    this.guard = new NodeGuard({ now: () => this.scheduler.now(), puzzleDifficulty: this.puzzleDifficulty, reject: (r) => this.reject(r) });
    const sendRaw = (b: Uint8Array, to: Endpoint) => { if (!this.closed) this.socket.send(b, to); };
    const send = (w: Wire, to: Endpoint) => sendRaw(w.bytes, to);
    const cx: WireContext = {
      self: this.self, fetchKinds: this.fetchKinds,
      current: (txid) => (this.ctx && this.ctx.txid === txid ? this.ctx : undefined),
      observed: (e) => { this.observed = e; },
      reject: (r) => this.reject(r),
      sign: this.sign,
      cookieFor: (to) => this.guard.jar.get(to),
    };
    o = { maxContactsPerIp: ROUTING_MAX_PER_IP, maxContactsPerSubnet: ROUTING_MAX_PER_SUBNET, ...o };
    this.kad = new KademliaNode<FetchValue, Wire>({
      nodeId: o.identity.nodeId, publicKey: o.identity.publicKey, scheduler: this.scheduler, k: this.k, alpha,
      send, codec: kadCodec(cx), getValue: (key) => localValue(serve, key), learnFromRequests: false,
      ...(o.reachable ? { reachable: o.reachable } : {}),
      networkLimit: {
        perIp: o.maxContactsPerIp || Infinity, perSubnet: o.maxContactsPerSubnet || Infinity, networkOf,
      },
      acceptContact: (c) => idMatchesKey(c) && !bytesEqual(c.nodeId, this.self.nodeId)
        && verifyPuzzle(c.publicKey, c.puzzleNonce ?? 0n, this.puzzleDifficulty),
      table: {
        maxPerIp: o.maxContactsPerIp, maxPerSubnet: o.maxContactsPerSubnet,
        onAdded: (c) => { this.membership.contactAdded(); this.publisher.contactAdded(c); this.rendezvous.contactAdded(c); },
        onRemoved: (c) => { this.membership.contactRemoved(c); this.rendezvous.contactRemoved(c); },
      },
    });
    const serve: ServeDeps = {
      kad: this.kad, store: this.store, clock: this.clock, k: this.k, self: this.self, fetchKinds: this.fetchKinds,
      reject: (r) => this.reject(r),
    };
    this.extra = new Rpc<ExtraRequest, ExtraResponse, Wire>({
      send, codec: extraCodec(cx), scheduler: this.scheduler, handler: (req, from) => serveExtra(serve, req, from),
    });
    this.resolver = new Resolver({
      kad: this.kad, store: this.store, scheduler: this.scheduler, clock: this.clock, k: this.k, alpha,
      fetchQuorum: o.fetchQuorum ?? 3, puzzleDifficulty: this.puzzleDifficulty, fetchKinds: this.fetchKinds,
      lookups: this.lookups, reject: (r) => this.reject(r),
    });
    this.publisher = new Publisher({
      kad: this.kad, store: this.store, scheduler: this.scheduler, clock: this.clock, k: this.k, self: this.self,
      signer: this.signer, puzzleDifficulty: this.puzzleDifficulty,
      storeAt: (to, records) => this.storeAt(to, records), fetch: (id, kind) => this.resolver.fetch(id, kind),
      noteLookup: (ms, empty) => this.lookups.note(ms, empty), handoffDelayMs: o.handoffDelayMs,
      rendezvous: () => this.rendezvous.ids(),
    });
    this.router = new Router({
      kad: this.kad, scheduler: this.scheduler, selfId: this.self.nodeId, send: sendRaw,
      malformed: () => { this.malformed++; }, reject: (r) => this.reject(r),
      firstHop: (b, from) => {
        const m = parseOverlayMessage(b);
        if (!m) { this.malformed++; return undefined; }
        return provenRequest(this.inbound, b, m, from, METHOD_ATTACH) ? m : undefined;
      },
    });
    this.attacher = new Attacher({
      scheduler: this.scheduler, self: this.self, send: sendRaw, onAttach: o.onAttach, reject: (r) => this.reject(r),
      marshal: (m, to) => marshalOverlayMessage(to ? { ...m, ...requestExtras(cx, to) } : m, this.sign),
    });
    this.inbound = {
      guard: this.guard, kad: this.kad, extra: this.extra, attacher: this.attacher, router: this.router, self: this.self,
      sign: this.sign, send: sendRaw, reject: (r) => this.reject(r),
    };
    this.rendezvous = new Rendezvous({
      kad: this.kad, scheduler: this.scheduler, bootstraps: () => this.membership.configuredBootstraps,
      count: o.rendezvousCount ?? 0, keepaliveMs: o.rendezvousKeepaliveMs ?? RENDEZVOUS_KEEPALIVE_MS,
      onChanged: (current) => {
        if (this.closed) return;
        void this.publisher.refreshLocator().catch(() => undefined);
        try { o.onRendezvousChanged?.(current); } catch { this.reject('callback-error'); }
      },
    });
    this.membership = new Membership({
      kad: this.kad, scheduler: this.scheduler, local: this.socket.local, onConnected: () => this.publisher.republish(),
      onJoined: o.onJoined, retryInitialMs: o.joinRetryInitialMs, retryMaxMs: o.joinRetryMaxMs,
    });
    this.every(o.republishIntervalMs ?? DHT_REPUBLISH_INTERVAL_MS, () => this.housekeeping());
    const replicate = o.replicateIntervalMs ?? DHT_REPLICATE_INTERVAL_MS;
    if (replicate > 0) this.every(replicate, () => this.publisher.replicate());
    this.every(o.refreshCheckIntervalMs ?? Math.floor(BUCKET_REFRESH_INTERVAL_MS / 4), () => { void this.kad.refreshIdle(); });
  }

  get nodeId(): Uint8Array { return this.self.nodeId; }

  /** The signer of this node's own records. */
  get signer(): RecordSigner {
    return { privateKey: this.identity.privateKey, publicKey: this.identity.publicKey, puzzleNonce: this.puzzleNonce };
  }

  // ---- datagrams ----------------------------------------------------------------------------------

  /** Every datagram whose first byte is 0xD2. Never throws; anything wrong is counted. */
  handleDatagram(msg: Uint8Array, from: Endpoint): void {
    if (this.closed) return;
    this.datagrams++;
    try {
      const route = parseRoute(msg);
      if (!route) { this.malformed++; return; }
      if (!this.router.isForUs(route)) { this.router.forward(msg, route, from); return; }
      const m = parseOverlayMessage(msg);
      if (!m) { this.malformed++; return; }
      if (!idMatchesKey(m.sender)) { this.reject('sender-id-mismatch'); return; }
      if (bytesEqual(m.sender.nodeId, this.self.nodeId)) { this.reject('sender-is-self'); return; }
      if (isAnswer(m)) { dispatchAnswer(this.inbound, msg, m, from); return; }
      if (m.via.length > 0) {
        // routed to us (only ATTACH is): from where its last forwarder proved its key, signed by its originator
        if (m.kind !== 'attach') { this.reject('routed-unsupported'); return; }
        if (!this.router.isAt(m.via[m.via.length - 1]!, from)) { this.reject('routed-from-unproven-hop'); return; }
        if (!this.guard.answer(msg, m, from)) return;
        if (!this.guard.puzzleHolds(m)) { this.reject('sender-no-puzzle'); return; }
        this.attacher.onRequest(m, from);
        return;
      }
      const method = parseRoute(msg)!.code;
      if (!provenRequest(this.inbound, msg, m, from, method)) return;
      const wire: Wire = { bytes: msg, msg: m };
      switch (m.kind) {
        case 'ping': case 'find-node': case 'fetch':
          this.ctx = { txid: m.txid, method, from };
          try { this.kad.onMessage(wire, from); } finally { this.ctx = undefined; }
          return;
        case 'store': case 'leave':
          this.extra.onMessage(wire, from);
          return;
        case 'attach':
          this.attacher.onRequest(m, from);
          return;
      }
    } catch {
      this.reject('internal-error');
    }
  }

  // ---- membership ---------------------------------------------------------------------------------

  /** Join and stay joined: no bootstraps (after dropping our own address) makes this the first node of a
   *  new overlay, joined at once; otherwise join through them (and contacts we had), retrying with backoff
   *  while nobody answers, and again whenever the routing table empties. Calling it again replaces them.
   *  Resolves once joined (whenJoined), which may be never if no bootstrap ever answers. */
  start(bootstraps: Endpoint[]): Promise<void> {
    this.membership.start(bootstraps);
    return this.membership.whenJoined();
  }

  /** Tell the routing-table contacts we are going (LEAVE, one try each, answers awaited briefly). Call
   *  close() afterwards. Returns how many acknowledged. */
  async leave(): Promise<number> {
    const contacts = this.kad.table.all();
    const answers = await Promise.all(contacts.map((c) =>
      this.extra.request(c.endpoint, { type: 'leave', sender: this.self }, { maxTries: 1 })));
    return answers.filter((r) => r.ok && r.value.type === 'leave-answer').length;
  }

  /** Stop timers and RPCs; later datagrams are ignored. Does not close the shared socket. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) t.cancel();
    this.timers.length = 0;
    this.membership.close();
    this.publisher.close();
    this.rendezvous.close();
    this.attacher.close();
    this.kad.close();
    this.extra.close();
  }

  // ---- NAT traversal: where to reach a node ----------------------------------------------------------

  /** Where a node last sent us from (a rendezvous client's keepalives), else its routing-table endpoint:
   *  where a peer relay reaches its clients (agent/nat/peer-relay-server.ts). */
  endpointOfNode(nodeId: Uint8Array): Endpoint | undefined {
    return this.router.endpointOf(nodeId);
  }

  /** Where a node recently proved its key from with requests of its own (a rendezvous client's keepalives):
   *  the only place a peer relay may send to on its behalf. */
  rendezvousClientEndpoint(nodeId: Uint8Array): Endpoint | undefined {
    return this.router.recentEndpoint(nodeId);
  }

  /** Did some node prove its key at `e` (recently, or as a routing-table contact)? */
  isVerifiedSource(e: Endpoint): boolean {
    return this.router.isVerifiedEndpoint(e);
  }

  /** Where to send an ATTACH for a locator's owner: the endpoints of its rendezvous nodes (routing table,
   *  recent senders, else their own locators, looked up in parallel); unknown ones skipped. */
  rendezvousEndpoints(locator: LocatorRecord): Promise<Endpoint[]> {
    return rendezvousEndpoints(locator, {
      selfId: this.self.nodeId, endpointOf: (id) => this.router.endpointOf(id), resolveNodeId: (id) => this.resolver.resolveNodeId(id),
    });
  }

  /** The bytes of request `m` as this node sends it to `to`: signed, carrying the cookie `to` gave us (and
   *  padded). For callers that build messages by hand; the node's own parts do this themselves. */
  marshalRequest(m: OverlayMessage, to: Endpoint): Uint8Array {
    return marshalOverlayMessage({ ...m, sender: this.self, ...requestExtras({ cookieFor: (e) => this.guard.jar.get(e) }, to) }, this.sign);
  }

  // ---- publishing ---------------------------------------------------------------------------------

  /** STORE records directly at one node (no lookup): replication, tests. undefined if it did not answer. */
  storeAt(to: Endpoint, records: Uint8Array[]): Promise<PutResult[] | undefined> {
    return storeAt(this.extra, this.self, to, records);
  }

  // ---- status -------------------------------------------------------------------------------------

  stats(): OverlayNodeStats {
    const store = this.store.stats();
    return {
      routingTableSize: this.kad.table.size,
      joined: this.membership.joined,
      bootstraps: this.membership.configuredBootstraps,
      joinAttempts: this.membership.joinAttempts,
      storedRecords: store.records,
      store,
      ownRecords: this.publisher.size,
      lookups: this.lookups.stats(),
      datagrams: this.datagrams,
      malformed: this.malformed + this.kad.rpc.stats.malformed + this.extra.stats.malformed,
      rejected: { ...this.rejected },
      rpc: { ...this.kad.rpc.stats },
      storeRpc: { ...this.extra.stats },
      observed: this.observed,
      route: this.router.stats,
      attach: { ...this.attacher.stats },
      rendezvous: this.rendezvous.size,
    };
  }

  // ---- internals ----------------------------------------------------------------------------------

  private every(ms: number, fn: () => void): void {
    this.timers.push(every(this.scheduler, ms, () => {
      if (this.closed) return;
      try { fn(); } catch { this.reject('internal-error'); }
    }));
  }

  /** Sweep the store and the verification cache, republish own records. */
  private housekeeping(): void {
    const now = this.clock();
    this.store.sweep(now);
    this.resolver.sweep(now);
    this.publisher.republish();
  }

  private reject(reason: string): void {
    this.rejected[reason] = (this.rejected[reason] ?? 0) + 1;
  }
}
