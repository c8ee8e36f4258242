// OverlayNode's membership: getting into the overlay and staying in it.
//
//   start(bootstraps)                          join(bootstraps): one attempt, no retries
//     └─ none (after dropping our own address): first node of a new overlay, joined at once
//     └─ attempt: PING bootstraps + former contacts, look up our own id, refresh far buckets (KademliaNode.join)
//          nobody answered ─> retry after OVERLAY_JOIN_RETRY_INITIAL_MS, doubling to OVERLAY_JOIN_RETRY_MAX_MS
//   routing table: 0 -> 1 contact (someone found us, or our attempt got an answer)
//          ─> (unless an attempt runs) our own lookup through it, then onConnected (the owner republishes
//             its records: while alone they were stored only here), then onJoined if we were not joined
//   routing table: -> 0 contacts with bootstraps configured ─> re-join, with the same backoff
//
// joined = no bootstraps (we started the overlay) or a non-empty routing table. onJoined fires on each
// change to joined (whenJoined, and so start()'s promise, resolve at the first), after the join's own
// lookup, so whatever the caller then stores goes to the k closest rather than only to us.
//
// Why former contacts join the bootstraps on a re-join: the table empties when every contact failed, which
// is most often our own network going away; when it returns, the bootstrap may be gone for good while the
// nodes we knew are still there.

import { OVERLAY_FORMER_CONTACTS, OVERLAY_JOIN_RETRY_INITIAL_MS, OVERLAY_JOIN_RETRY_MAX_MS } from '../base/constants.js';
import { endpointKey, type Endpoint } from '../conn/socket.js';
import type { JoinResult, KademliaNode } from './kademlia.js';
import type { FetchValue, Wire } from './node-wire.js';
import type { Scheduler, TimerHandle } from '../base/scheduler.js';
import type { ContactInfo } from './bucket.js';

export interface MembershipDeps {
  kad: KademliaNode<FetchValue, Wire>;
  scheduler: Scheduler;
  /** Our own socket address: a bootstrap list shared by every node of a site may include it. */
  local: Endpoint | undefined;
  retryInitialMs?: number;
  retryMaxMs?: number;
  /** The routing table grew from empty and our own lookup finished. */
  onConnected: () => void;
  onJoined?: () => void;
}

export class Membership {
  private bootstraps: Endpoint[] = [];
  /** start() or join() was called: without bootstraps, we are the first node. */
  private configured = false;
  /** start() was called: retry and re-join. */
  private maintaining = false;
  private attempts = 0;
  private readonly initialMs: number;
  private readonly maxMs: number;
  private backoffMs: number;
  private retryTimer: TimerHandle | undefined;
  /** The join attempt in progress. */
  private current: Promise<JoinResult> | undefined;
  private grewFromEmpty = false;
  private wasJoined = false;
  private readonly former: Endpoint[] = [];
  private readonly waiters: (() => void)[] = [];
  private closed = false;

  constructor(private readonly d: MembershipDeps) {
    this.initialMs = d.retryInitialMs ?? OVERLAY_JOIN_RETRY_INITIAL_MS;
    this.maxMs = d.retryMaxMs ?? OVERLAY_JOIN_RETRY_MAX_MS;
    this.backoffMs = this.initialMs;
  }

  get joined(): boolean {
    return (this.configured && this.bootstraps.length === 0) || this.d.kad.table.size > 0;
  }

  get configuredBootstraps(): Endpoint[] { return this.bootstraps.map((e) => ({ ...e })); }
  get joinAttempts(): number { return this.attempts; }

  /** Resolves once the node is joined (its own lookup done), at once if it is. */
  whenJoined(): Promise<void> {
    if (this.wasJoined) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  start(bootstraps: Endpoint[]): void {
    if (this.closed) return;
    this.configure(bootstraps);
    this.maintaining = true;
    this.retryTimer?.cancel();
    this.retryTimer = undefined;
    this.backoffMs = this.initialMs;
    this.update();
    if (this.bootstraps.length > 0) void this.attempt();
  }

  /** One join attempt through any of the bootstraps (no retries); none: this node starts a new overlay
   *  (ok: false, nothing to join). */
  async join(bootstraps: Endpoint[]): Promise<JoinResult> {
    this.configure(bootstraps);
    if (this.bootstraps.length === 0) this.update();
    return this.attempt(undefined, true);
  }

  close(): void {
    this.closed = true;
    this.retryTimer?.cancel();
    this.retryTimer = undefined;
  }

  /** From the routing table, inside its change: only bookkeeping and timers here. */
  contactAdded(): void {
    if (this.closed || this.d.kad.table.size !== 1) return;
    this.grewFromEmpty = true;
    if (this.current) return; // the attempt in progress finishes the job
    this.retryTimer?.cancel();
    this.retryTimer = this.d.scheduler.setTimer(0, () => { this.retryTimer = undefined; void this.attempt([]); });
  }

  contactRemoved(c: ContactInfo): void {
    if (this.closed) return;
    const key = endpointKey(c.endpoint);
    const at = this.former.findIndex((e) => endpointKey(e) === key);
    if (at >= 0) this.former.splice(at, 1);
    this.former.push({ ...c.endpoint });
    if (this.former.length > OVERLAY_FORMER_CONTACTS) this.former.shift();
    if (this.d.kad.table.size > 0) return;
    this.update();
    if (this.maintaining && this.bootstraps.length > 0 && !this.current && !this.retryTimer) this.scheduleRetry();
  }

  private configure(bootstraps: Endpoint[]): void {
    const self = this.d.local ? endpointKey(this.d.local) : undefined;
    this.bootstraps = bootstraps.filter((e) => endpointKey(e) !== self).map((e) => ({ ...e }));
    this.configured = true;
  }

  /** One join attempt through `through` (default: bootstraps and former contacts). An explicit join()
   *  (`wait`) runs after the attempt in progress; a retry or a passive one is dropped if one is running. */
  private async attempt(through?: Endpoint[], wait = false): Promise<JoinResult> {
    while (this.current) {
      if (!wait) return this.current;
      await this.current;
    }
    if (this.closed) return { ok: false, bootstrapsAnswered: 0, lookups: 0 };
    if (through === undefined) this.attempts++;
    this.current = this.d.kad.join(through ?? this.candidates());
    let r: JoinResult;
    try {
      r = await this.current;
    } finally {
      this.current = undefined;
    }
    if (this.closed) return r;
    if (this.d.kad.table.size > 0) {
      this.backoffMs = this.initialMs;
      if (this.grewFromEmpty) {
        this.grewFromEmpty = false;
        this.d.onConnected();
      }
      this.update();
    } else if (this.maintaining && this.bootstraps.length > 0 && !this.retryTimer) {
      this.scheduleRetry();
    }
    return r;
  }

  private candidates(): Endpoint[] {
    const seen = new Set<string>();
    return [...this.bootstraps, ...this.former].filter((e) => {
      const k = endpointKey(e);
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    });
  }

  private scheduleRetry(): void {
    const wait = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, this.maxMs);
    this.retryTimer = this.d.scheduler.setTimer(wait, () => {
      this.retryTimer = undefined;
      if (this.d.kad.table.size === 0) void this.attempt();
    });
  }

  private update(): void {
    const joined = this.joined;
    if (joined === this.wasJoined) return;
    this.wasJoined = joined;
    if (!joined) return;
    for (const w of this.waiters.splice(0)) w();
    this.d.onJoined?.();
  }
}
