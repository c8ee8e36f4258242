// Iterative Kademlia lookup (FIND_NODE and FIND_VALUE), α-parallel:
//
//   shortlist: every contact heard of, sorted by XOR distance to the target,
//              each new | pending | straggling | answered | failed
//   keep α queries in flight to the closest `new` contacts among the k closest neither failed nor straggling;
//   each answer merges its contacts (hop = asker's hop + 1); a query unanswered for queryTimeoutMs fails;
//   done when the k closest neither failed nor straggling have all answered (FIND_NODE), or at the first
//   value (FIND_VALUE), or when stopWhen(contact) holds for a node that answered (or `sought` does: the
//   node we were looking for itself).
//
// Stragglers: a query still unanswered after stragglerMs (the RPC's first retransmission interval) frees
// its α slot and counts as failed for the end of the lookup, while its RPC keeps retrying; an answer that
// arrives before the end is still merged (so is one after queryTimeoutMs). So a dead node that others
// still list among the k closest costs one slot for 250 ms, not the lookup 1.75 s. Two exceptions keep
// the lookup waiting: nothing has answered yet (a slow path is not a dead one), and a `sought` contact
// (the node being looked for, known by id or key before it answers) is never left behind.
//
// `networkLimit` caps how many contacts one answer may add at one IP address or in one subnet: a liar's
// answer cannot fill the shortlist with nodes on its own address (S/Kademlia). The result is not capped
// again: everything in it answered us itself, and capping it would cut replication where many honest
// nodes share a subnet.
//
// `skip` drops contacts before they are queried (the node's recently unresponsive ones); if it would drop
// every seed, the seeds are queried anyway (after an outage of our own, every contact may have timed out).
//
// Unlike the paper's round-based version there are no rounds: a slot is refilled as soon as a query ends,
// so one slow node never holds up the other two. Generic over `query`, so it runs over the RPC of the agent,
// the in-memory simulation, or a test's plain function alike; it caches nothing.

import { KADEMLIA_ALPHA, KADEMLIA_K, LOOKUP_QUERY_TIMEOUT_MS, LOOKUP_STRAGGLER_MS } from '../base/constants.js';
import type { Scheduler, TimerHandle } from '../base/scheduler.js';
import { compareDistance } from './xor-metric.js';
import type { ContactInfo } from './bucket.js';
import { bytesEqual } from '../base/bytes.js';

export type QueryResult<V> = { contacts: ContactInfo[] } | { value: V; contacts?: ContactInfo[] };

/** Ask one contact about target; resolve undefined (or reject) when it did not answer. */
export type QueryFn<V> = (contact: ContactInfo, target: Uint8Array) => Promise<QueryResult<V> | undefined>;

export interface LookupOptions<V> {
  target: Uint8Array;
  /** Where to start: normally the routing table's k closest to target. */
  seeds: ContactInfo[];
  query: QueryFn<V>;
  scheduler: Scheduler;
  k?: number;
  alpha?: number;
  queryTimeoutMs?: number;
  /** A query unanswered this long is a straggler (Infinity: never). */
  stragglerMs?: number;
  /** Contacts not to query (recently unresponsive); seeds are queried anyway if it holds for all of them. */
  skip?: (c: ContactInfo) => boolean;
  /** The node(s) looked for, recognisable before they answer (by id or key): the lookup stops when one
   *  answers (as with stopWhen), never skips one, and waits for a pending one rather than leave it
   *  as a straggler. */
  sought?: (c: ContactInfo) => boolean;
  /** Our own id: never queried, never returned. */
  selfId?: Uint8Array;
  /** Stop as soon as a node for which this holds has answered. */
  stopWhen?: (c: ContactInfo) => boolean;
  networkLimit?: NetworkLimit;
}

/** At most `perIp` contacts at one address and `perSubnet` in one `networkOf` (undefined: not limited). */
export interface NetworkLimit {
  perIp: number;
  perSubnet: number;
  networkOf: (address: string) => string | undefined;
}

/** The contacts of `list` in order, leaving out those over `limit`. */
export function withinNetworkLimit<C extends ContactInfo>(list: C[], limit: NetworkLimit | undefined): C[] {
  if (!limit) return list;
  const ips = new Map<string, number>();
  const nets = new Map<string, number>();
  const out: C[] = [];
  for (const c of list) {
    const ip = c.endpoint.address;
    const net = limit.networkOf(ip);
    const a = ips.get(ip) ?? 0;
    const b = net === undefined ? 0 : nets.get(net) ?? 0;
    if (a >= limit.perIp || (net !== undefined && b >= limit.perSubnet)) continue;
    ips.set(ip, a + 1);
    if (net !== undefined) nets.set(net, b + 1);
    out.push(c);
  }
  return out;
}

export interface LookupResult<V> {
  /** The k closest contacts that answered, closest first. */
  contacts: ContactInfo[];
  value?: V;
  /** The node that gave the value or met stopWhen. */
  foundAt?: ContactInfo;
  /** Hops to the node that ended the lookup (value holder, stopWhen match, else the closest that answered):
   *  a seed is 1 hop, a contact first learned from a hop-h node is h+1. */
  hops: number;
  queries: number;
  failures: number;
  /** Queries that were stragglers at some point (answered late, failed, or still out at the end). */
  stragglers: number;
  latencyMs: number;
  /** Ended by a value or stopWhen rather than by convergence. */
  stoppedEarly: boolean;
}

const NEW = 0;
const PENDING = 1;
const ANSWERED = 2;
const FAILED = 3;
/** Pending past stragglerMs: no α slot, no say in the end of the lookup, answer still welcome. */
const STRAGGLING = 4;

interface Entry {
  info: ContactInfo;
  /** First 48 bits of the distance to the target (exact double): most comparisons need only this. */
  key: number;
  state: number;
  hop: number;
  timer: TimerHandle | undefined;
  straggleTimer: TimerHandle | undefined;
}

/** First 48 bits of the XOR distance, exact in a double. */
function distanceKey(id: Uint8Array, t: Uint8Array): number {
  return (((id[0]! ^ t[0]!) << 16) | ((id[1]! ^ t[1]!) << 8) | (id[2]! ^ t[2]!)) * 0x1000000
    + (((id[3]! ^ t[3]!) << 16) | ((id[4]! ^ t[4]!) << 8) | (id[5]! ^ t[5]!));
}

export function lookup<V>(opts: LookupOptions<V>): Promise<LookupResult<V>> {
  return new Promise((resolve) => new Lookup(opts, resolve).start());
}

class Lookup<V> {
  private readonly k: number;
  private readonly alpha: number;
  private readonly timeoutMs: number;
  private readonly stragglerMs: number;
  private readonly list: Entry[] = [];
  private readonly started: number;
  private inflight = 0;
  private queries = 0;
  private failures = 0;
  private stragglers = 0;
  private answered = 0;
  private done = false;
  private readonly selfKey: number;

  constructor(private readonly o: LookupOptions<V>, private readonly resolve: (r: LookupResult<V>) => void) {
    this.k = o.k ?? KADEMLIA_K;
    this.alpha = o.alpha ?? KADEMLIA_ALPHA;
    this.timeoutMs = o.queryTimeoutMs ?? LOOKUP_QUERY_TIMEOUT_MS;
    this.stragglerMs = o.stragglerMs ?? LOOKUP_STRAGGLER_MS;
    this.started = o.scheduler.now();
    this.selfKey = o.selfId ? distanceKey(o.selfId, o.target) : -1;
  }

  start(): void {
    const usable = this.o.seeds.filter((s) => !this.skipped(s));
    for (const s of usable.length > 0 ? usable : this.o.seeds) this.add(s, 1);
    this.pump();
  }

  private skipped(c: ContactInfo): boolean {
    return this.o.skip !== undefined && this.o.skip(c) && !this.o.sought?.(c);
  }

  private add(info: ContactInfo, hop: number): void {
    // binary search by distance; distance 0 between two ids means the same id, so a duplicate sits at lo
    const target = this.o.target;
    const list = this.list;
    const id = info.nodeId;
    const key = distanceKey(id, target);
    if (key === this.selfKey && this.o.selfId && bytesEqual(id, this.o.selfId)) return;
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const m = list[mid]!;
      if (m.key < key || (m.key === key && compareDistance(m.info.nodeId, id, target) < 0)) lo = mid + 1;
      else hi = mid;
    }
    const known = list[lo];
    if (known && bytesEqual(known.info.nodeId, info.nodeId)) {
      if (known.state === NEW && hop < known.hop) known.hop = hop; // keep the shortest hop count
      return;
    }
    list.splice(lo, 0, { info, key, state: NEW, hop, timer: undefined, straggleTimer: undefined });
  }

  private pump(): void {
    if (this.done) return;
    let live = 0;
    let settled = true;
    let straggling = false;
    for (const e of this.list) {
      if (e.state === FAILED) continue;
      if (e.state === STRAGGLING) { straggling = true; continue; }
      if (live >= this.k) break;
      live++;
      if (e.state === NEW) {
        settled = false;
        if (this.inflight < this.alpha) this.ask(e);
      } else if (e.state === PENDING) {
        settled = false;
      }
    }
    // stragglers count as failed, unless nobody answered at all: then they are all we have
    if (settled && (!straggling || this.answered > 0)) this.finish(undefined, undefined);
  }

  private ask(e: Entry): void {
    e.state = PENDING;
    this.inflight++;
    this.queries++;
    e.timer = this.o.scheduler.setTimer(this.timeoutMs, () => {
      e.timer = undefined;
      if (e.state !== PENDING && e.state !== STRAGGLING) return;
      this.settle(e, undefined);
    });
    if (this.stragglerMs < this.timeoutMs && !this.o.sought?.(e.info)) {
      e.straggleTimer = this.o.scheduler.setTimer(this.stragglerMs, () => {
        e.straggleTimer = undefined;
        if (e.state !== PENDING || this.done) return;
        e.state = STRAGGLING;
        this.inflight--;
        this.stragglers++;
        this.pump();
      });
    }
    let p: Promise<QueryResult<V> | undefined>;
    try {
      p = this.o.query(e.info, this.o.target);
    } catch {
      p = Promise.resolve(undefined);
    }
    p.then((r) => this.settle(e, r), () => this.settle(e, undefined));
  }

  private settle(e: Entry, r: QueryResult<V> | undefined): void {
    if (e.state === PENDING || e.state === STRAGGLING) {
      if (e.state === PENDING) this.inflight--;
      e.timer?.cancel();
      e.timer = undefined;
      e.straggleTimer?.cancel();
      e.straggleTimer = undefined;
    } else if (!(e.state === FAILED && r)) {
      return; // already settled; a late answer after a timeout is still taken below
    }
    if (this.done) return;
    if (!r) {
      e.state = FAILED;
      this.failures++;
      this.pump();
      return;
    }
    if (e.state === FAILED) this.failures--; // it answered after all
    e.state = ANSWERED;
    this.answered++;
    if ('value' in r) { this.finish(e, r.value); return; }
    if (this.o.stopWhen?.(e.info) || this.o.sought?.(e.info)) { this.finish(e, undefined); return; }
    for (const c of withinNetworkLimit(r.contacts, this.o.networkLimit)) if (!this.skipped(c)) this.add(c, e.hop + 1);
    this.pump();
  }

  private finish(at: Entry | undefined, value: V | undefined): void {
    this.done = true;
    for (const e of this.list) {
      e.timer?.cancel();
      e.timer = undefined;
      e.straggleTimer?.cancel();
      e.straggleTimer = undefined;
    }
    const contacts: ContactInfo[] = [];
    let closestHop = 0;
    for (const e of this.list) {
      if (e.state !== ANSWERED) continue;
      if (contacts.length === 0) closestHop = e.hop;
      contacts.push(e.info);
      if (contacts.length >= this.k) break;
    }
    const res: LookupResult<V> = {
      contacts,
      hops: at ? at.hop : closestHop,
      queries: this.queries,
      failures: this.failures,
      stragglers: this.stragglers,
      latencyMs: this.o.scheduler.now() - this.started,
      stoppedEarly: at !== undefined,
    };
    if (at) res.foundAt = at.info;
    if (value !== undefined) res.value = value;
    this.resolve(res);
  }
}
