// One Kademlia node: the routing table, the RPC and lookups wired together, independent of the wire
// format and of time. The agent (node.ts) gives it a codec adapter for the overlay messages and the real
// scheduler; the simulation (sim.ts) gives it objects on an event queue. Same code in both.
//
//   datagram --> rpc.onMessage --> request:  table.observe(sender @ observed address), answer
//                                  response: settles rpc.request --> table.observe / markFailed
//   findNode / findValue --> lookup(seeds = table.closest(target, k), query = rpc FIND_*)
//   an RPC that times out (all tries) --> `unresponsive` for OVERLAY_UNRESPONSIVE_MS: lookups skip it, our
//                     FIND_NODE/FETCH answers leave it out; any message from it takes it out again
//   join(bootstraps): PING each (learns their ids), look up our own id, then refresh the buckets farther
//                     than our closest neighbour (the paper's join), so far buckets are not left empty.
//
// Senders do not state their own address (behind a NAT they do not know it): the address a request came
// from is the one recorded. acceptContact is where NodeID checks (hash of key, puzzle) plug in.

import { KADEMLIA_ALPHA, KADEMLIA_K } from '../base/constants.js';
import type { Endpoint } from '../conn/socket.js';
import { lookup, type LookupResult, type NetworkLimit, type QueryResult } from './lookup.js';
import { RoutingTable, type RoutingTableOptions } from './routing-table.js';
import { Rpc, type RpcCodec } from './rpc.js';
import type { Scheduler } from '../base/scheduler.js';
import { RecentlyUnresponsive } from './unresponsive.js';
import { ID_BITS } from './xor-metric.js';
import type { ContactInfo } from './bucket.js';
import { bytesEqual } from '../base/bytes.js';

/** Who sent a message (the address comes from the datagram). */
export interface NodeRef {
  nodeId: Uint8Array;
  publicKey: Uint8Array;
  puzzleNonce?: bigint;
}

export type DhtRequest =
  | { type: 'ping'; sender: NodeRef }
  | { type: 'find_node'; sender: NodeRef; target: Uint8Array }
  | { type: 'find_value'; sender: NodeRef; key: Uint8Array };

export type DhtResponse<V> =
  | { type: 'pong'; sender: NodeRef }
  | { type: 'nodes'; sender: NodeRef; contacts: ContactInfo[] }
  | { type: 'value'; sender: NodeRef; value: V; contacts?: ContactInfo[] };

export interface KademliaNodeOptions<V, W> {
  nodeId: Uint8Array;
  publicKey: Uint8Array;
  scheduler: Scheduler;
  send: (wire: W, to: Endpoint) => void;
  codec: RpcCodec<DhtRequest, DhtResponse<V>, W>;
  k?: number;
  alpha?: number;
  newTxid?: () => bigint;
  /** Local value for FIND_VALUE (the record store plugs in here). */
  getValue?: (key: Uint8Array) => V | undefined;
  /** Reject a sender before it enters the routing table (NodeID = H(key), puzzle, ...). */
  acceptContact?: (c: NodeRef) => boolean;
  /** False: a request's sender is not learned here, only answers' (the owner learns a request's sender itself,
   *  once it proved its key at that address: learnProven). The simulation keeps Kademlia's default, true. */
  learnFromRequests?: boolean;
  /** Endpoints we can send to: a contact elsewhere is skipped like an unresponsive one. */
  reachable?: (e: Endpoint) => boolean;
  /** Per-address and per-subnet caps on what one answer adds to a lookup and on its result (lookup.ts). */
  networkLimit?: NetworkLimit;
  random?: () => number;
  /** How long a contact that timed out stays skipped (OVERLAY_UNRESPONSIVE_MS), and how many are kept. */
  unresponsiveMs?: number;
  unresponsiveMax?: number;
  table?: Partial<Pick<RoutingTableOptions,
    'pingIfIdleMs' | 'maxFailures' | 'replacementCacheSize' | 'refreshIntervalMs' | 'onAdded' | 'onRemoved' | 'maxPerIp'
    | 'maxPerSubnet'>>;
}

export interface FindOptions {
  stopWhen?: (c: ContactInfo) => boolean;
  /** The node(s) looked for, recognisable before they answer (lookup.ts `sought`). */
  sought?: (c: ContactInfo) => boolean;
}

export interface JoinResult {
  ok: boolean;
  bootstrapsAnswered: number;
  lookups: number;
}

export class KademliaNode<V = Uint8Array, W = Uint8Array> {
  readonly table: RoutingTable;
  readonly rpc: Rpc<DhtRequest, DhtResponse<V>, W>;
  readonly self: NodeRef;
  /** Contacts whose last RPC timed out, recently. */
  readonly unresponsive: RecentlyUnresponsive;
  private readonly k: number;
  private readonly alpha: number;
  private readonly random: () => number;

  constructor(private readonly o: KademliaNodeOptions<V, W>) {
    this.self = { nodeId: o.nodeId, publicKey: o.publicKey };
    this.k = o.k ?? KADEMLIA_K;
    this.alpha = o.alpha ?? KADEMLIA_ALPHA;
    this.random = o.random ?? Math.random;
    this.unresponsive = new RecentlyUnresponsive({
      now: () => o.scheduler.now(),
      ...(o.unresponsiveMs !== undefined ? { ttlMs: o.unresponsiveMs } : {}),
      ...(o.unresponsiveMax !== undefined ? { max: o.unresponsiveMax } : {}),
    });
    this.table = new RoutingTable({
      ...o.table,
      selfId: o.nodeId, k: this.k, now: () => o.scheduler.now(), ping: (c) => this.ping(c),
    });
    this.rpc = new Rpc({
      send: o.send, codec: o.codec, scheduler: o.scheduler, handler: (req, from) => this.handle(req, from),
      ...(o.newTxid ? { newTxid: o.newTxid } : {}),
    });
  }

  onMessage(wire: W, from: Endpoint): void {
    this.rpc.onMessage(wire, from);
  }

  close(): void {
    this.rpc.close();
  }

  /** One request to a contact; its outcome feeds the routing table. */
  async call(c: ContactInfo, req: DhtRequest): Promise<DhtResponse<V> | undefined> {
    const r = await this.rpc.request(c.endpoint, req);
    // Only a failure where we know the node lives counts against it: one of its other addresses (a record's
    // candidate of another family, say) may just be unreachable from here, or named by a liar.
    const known = this.table.get(c.nodeId);
    const atKnown = !known || (known.endpoint.port === c.endpoint.port && known.endpoint.address === c.endpoint.address);
    if (!r.ok) {
      if (r.reason === 'timeout' && atKnown) {
        this.table.markFailed(c.nodeId);
        this.unresponsive.add(c.nodeId);
      }
      return undefined;
    }
    const sender = r.value.sender;
    if (!bytesEqual(sender.nodeId, c.nodeId)) {
      // someone else lives at that address now: the contact we asked for is gone from there
      if (atKnown) this.table.markFailed(c.nodeId);
      this.learn(sender, c.endpoint);
      return undefined;
    }
    this.learn(sender, c.endpoint);
    return r.value;
  }

  async ping(c: ContactInfo): Promise<boolean> {
    return (await this.call(c, { type: 'ping', sender: this.self })) !== undefined;
  }

  /** The n closest contacts we know, recently unresponsive ones left out (what we answer FIND_NODE with). */
  closestResponsive(target: Uint8Array, n: number = this.k, exclude?: Uint8Array): ContactInfo[] {
    const skip = this.unresponsive;
    return skip.size === 0 ? this.table.closest(target, n, exclude) : this.table.closest(target, n, exclude, (c) => skip.has(c.nodeId));
  }

  /** A lookup's seeds: the k closest responsive contacts, or the k closest at all if none is responsive. */
  seeds(target: Uint8Array): ContactInfo[] {
    const seeds = this.closestResponsive(target, this.k);
    return seeds.length > 0 ? seeds : this.table.closest(target, this.k);
  }

  /** For lookup's `skip`: contacts to leave unqueried. */
  readonly skipContact = (c: ContactInfo): boolean => this.unresponsive.has(c.nodeId) || (this.o.reachable !== undefined && !this.o.reachable(c.endpoint));

  findNode(target: Uint8Array, opts: FindOptions = {}): Promise<LookupResult<never>> {
    this.table.touch(target);
    return lookup<never>({
      target, seeds: this.seeds(target), scheduler: this.o.scheduler, k: this.k, alpha: this.alpha,
      selfId: this.o.nodeId, skip: this.skipContact, ...(opts.stopWhen ? { stopWhen: opts.stopWhen } : {}),
      ...(opts.sought ? { sought: opts.sought } : {}), ...(this.o.networkLimit ? { networkLimit: this.o.networkLimit } : {}),
      query: async (c, t) => {
        const r = await this.call(c, { type: 'find_node', sender: this.self, target: t });
        return r && r.type === 'nodes' ? { contacts: r.contacts } : undefined;
      },
    });
  }

  findValue(key: Uint8Array, opts: FindOptions = {}): Promise<LookupResult<V>> {
    this.table.touch(key);
    return lookup<V>({
      target: key, seeds: this.seeds(key), scheduler: this.o.scheduler, k: this.k, alpha: this.alpha,
      selfId: this.o.nodeId, skip: this.skipContact, ...(opts.stopWhen ? { stopWhen: opts.stopWhen } : {}),
      ...(opts.sought ? { sought: opts.sought } : {}), ...(this.o.networkLimit ? { networkLimit: this.o.networkLimit } : {}),
      query: async (c, t): Promise<QueryResult<V> | undefined> => {
        const r = await this.call(c, { type: 'find_value', sender: this.self, key: t });
        if (!r) return undefined;
        if (r.type === 'value') return { value: r.value };
        return r.type === 'nodes' ? { contacts: r.contacts } : undefined;
      },
    });
  }

  /** Join through any of the bootstrap endpoints. `refresh` false skips the far-bucket refresh. */
  async join(bootstraps: Endpoint[], refresh = true): Promise<JoinResult> {
    const answers = await Promise.all(bootstraps.map(async (ep) => {
      const r = await this.rpc.request(ep, { type: 'ping', sender: this.self });
      if (r.ok) this.learn(r.value.sender, ep);
      return r.ok;
    }));
    const bootstrapsAnswered = answers.filter(Boolean).length;
    if (this.table.size === 0) return { ok: false, bootstrapsAnswered, lookups: 0 };
    await this.findNode(this.o.nodeId);
    let lookups = 1;
    if (refresh) {
      const nearest = this.table.closest(this.o.nodeId, 1)[0];
      const depth = nearest ? this.table.bucketIndex(nearest.nodeId) : 0;
      const todo: number[] = [];
      for (let i = 0; i < depth && i < ID_BITS; i++) if (this.table.bucketSize(i) < this.k) todo.push(i);
      // each ends as soon as its bucket is full: the point is contacts there, not the k closest to a random id
      await Promise.all(todo.map((i) => this.findNode(this.table.randomIdInBucket(i, this.random), {
        stopWhen: () => this.table.bucketSize(i) >= this.k,
      })));
      lookups += todo.length;
    }
    return { ok: this.table.size > 0, bootstrapsAnswered, lookups };
  }

  /** Look up a random id in every bucket idle longer than the refresh interval (call periodically). */
  async refreshIdle(): Promise<number> {
    const idle = this.table.idleBuckets();
    await Promise.all(idle.map((i) => this.findNode(this.table.randomIdInBucket(i, this.random))));
    return idle.length;
  }

  /** A message from this node: it is alive (no longer unresponsive). */
  heardFrom(nodeId: Uint8Array): void {
    this.unresponsive.delete(nodeId);
  }

  private learn(sender: NodeRef, endpoint: Endpoint): void {
    this.unresponsive.delete(sender.nodeId);
    if (this.o.acceptContact && !this.o.acceptContact(sender)) return;
    this.table.observe({ nodeId: sender.nodeId, publicKey: sender.publicKey, endpoint });
  }

  /** A sender that proved its key at `endpoint` (node-guard.ts): into the table, as an answer's would. */
  learnProven(sender: NodeRef, endpoint: Endpoint): void {
    this.learn(sender, endpoint);
  }

  private handle(req: DhtRequest, from: Endpoint): DhtResponse<V> | undefined {
    if (this.o.learnFromRequests !== false) this.learn(req.sender, from);
    else this.unresponsive.delete(req.sender.nodeId);
    switch (req.type) {
      case 'ping':
        return { type: 'pong', sender: this.self };
      case 'find_node':
        return { type: 'nodes', sender: this.self, contacts: this.closestInfo(req.target, req.sender.nodeId) };
      case 'find_value': {
        const value = this.o.getValue?.(req.key);
        if (value !== undefined) return { type: 'value', sender: this.self, value };
        return { type: 'nodes', sender: this.self, contacts: this.closestInfo(req.key, req.sender.nodeId) };
      }
    }
  }

  /** The k closest we know, without the asker (it knows itself) and without recently unresponsive ones.
   *  The table's own Contact objects go out as ContactInfo: the codec serialises them at once, and
   *  receivers copy what they keep. */
  private closestInfo(target: Uint8Array, asker: Uint8Array): ContactInfo[] {
    return this.closestResponsive(target, this.k, asker);
  }
}
