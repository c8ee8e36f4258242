// Iterative Kademlia lookup (FIND_NODE and FIND_VALUE), α-parallel:
//
//   shortlist: every contact heard of, sorted by XOR distance to the target, each new | pending | answered | failed
//   keep α queries in flight to the closest `new` contacts among the k closest not failed;
//   each answer merges its contacts (hop = asker's hop + 1); a query unanswered for queryTimeoutMs fails;
//   done when the k closest not failed have all answered (FIND_NODE), or at the first value (FIND_VALUE),
//   or when stopWhen(contact) holds for a node that answered (e.g. the node we were looking for itself).
//
// Unlike the paper's round-based version there are no rounds: a slot is refilled as soon as a query ends,
// so one slow node never holds up the other two. Generic over `query`, so it runs over the RPC of the agent,
// the in-memory simulation, or a test's plain function alike; it caches nothing.

import { KADEMLIA_ALPHA, KADEMLIA_K, LOOKUP_QUERY_TIMEOUT_MS } from '../constants.js';
import { compareDistance, idsEqual, type ContactInfo } from './routing-table.js';
import type { Scheduler, TimerHandle } from './scheduler.js';

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
  /** Our own id: never queried, never returned. */
  selfId?: Uint8Array;
  /** Stop as soon as a node for which this holds has answered. */
  stopWhen?: (c: ContactInfo) => boolean;
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
  latencyMs: number;
  /** Ended by a value or stopWhen rather than by convergence. */
  stoppedEarly: boolean;
}

const NEW = 0;
const PENDING = 1;
const ANSWERED = 2;
const FAILED = 3;

interface Entry {
  info: ContactInfo;
  /** First 48 bits of the distance to the target (exact double): most comparisons need only this. */
  key: number;
  state: number;
  hop: number;
  timer: TimerHandle | undefined;
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
  private readonly list: Entry[] = [];
  private readonly started: number;
  private inflight = 0;
  private queries = 0;
  private failures = 0;
  private done = false;
  private readonly selfKey: number;

  constructor(private readonly o: LookupOptions<V>, private readonly resolve: (r: LookupResult<V>) => void) {
    this.k = o.k ?? KADEMLIA_K;
    this.alpha = o.alpha ?? KADEMLIA_ALPHA;
    this.timeoutMs = o.queryTimeoutMs ?? LOOKUP_QUERY_TIMEOUT_MS;
    this.started = o.scheduler.now();
    this.selfKey = o.selfId ? distanceKey(o.selfId, o.target) : -1;
  }

  start(): void {
    for (const s of this.o.seeds) this.add(s, 1);
    this.pump();
  }

  private add(info: ContactInfo, hop: number): void {
    // binary search by distance; distance 0 between two ids means the same id, so a duplicate sits at lo
    const target = this.o.target;
    const list = this.list;
    const id = info.nodeId;
    const key = distanceKey(id, target);
    if (key === this.selfKey && this.o.selfId && idsEqual(id, this.o.selfId)) return;
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const m = list[mid]!;
      if (m.key < key || (m.key === key && compareDistance(m.info.nodeId, id, target) < 0)) lo = mid + 1;
      else hi = mid;
    }
    const known = list[lo];
    if (known && idsEqual(known.info.nodeId, info.nodeId)) {
      if (known.state === NEW && hop < known.hop) known.hop = hop; // keep the shortest hop count
      return;
    }
    list.splice(lo, 0, { info, key, state: NEW, hop, timer: undefined });
  }

  private pump(): void {
    if (this.done) return;
    let live = 0;
    let settled = true;
    for (const e of this.list) {
      if (e.state === FAILED) continue;
      if (live >= this.k) break;
      live++;
      if (e.state === NEW) {
        settled = false;
        if (this.inflight < this.alpha) this.ask(e);
      } else if (e.state === PENDING) {
        settled = false;
      }
    }
    if (settled) this.finish(undefined, undefined);
  }

  private ask(e: Entry): void {
    e.state = PENDING;
    this.inflight++;
    this.queries++;
    e.timer = this.o.scheduler.setTimer(this.timeoutMs, () => {
      e.timer = undefined;
      if (e.state !== PENDING) return;
      this.settle(e, undefined);
    });
    let p: Promise<QueryResult<V> | undefined>;
    try {
      p = this.o.query(e.info, this.o.target);
    } catch {
      p = Promise.resolve(undefined);
    }
    p.then((r) => this.settle(e, r), () => this.settle(e, undefined));
  }

  private settle(e: Entry, r: QueryResult<V> | undefined): void {
    if (e.state === PENDING) {
      this.inflight--;
      e.timer?.cancel();
      e.timer = undefined;
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
    if ('value' in r) { this.finish(e, r.value); return; }
    if (this.o.stopWhen?.(e.info)) { this.finish(e, undefined); return; }
    for (const c of r.contacts) this.add(c, e.hop + 1);
    this.pump();
  }

  private finish(at: Entry | undefined, value: V | undefined): void {
    this.done = true;
    for (const e of this.list) { e.timer?.cancel(); e.timer = undefined; }
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
      latencyMs: this.o.scheduler.now() - this.started,
      stoppedEarly: at !== undefined,
    };
    if (at) res.foundAt = at.info;
    if (value !== undefined) res.value = value;
    this.resolve(res);
  }
}
