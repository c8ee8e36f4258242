// Node-wide memory of contacts that recently failed to answer (an RPC that timed out after all its tries):
//
//   add(id)     on a timeout: remembered for OVERLAY_UNRESPONSIVE_MS (re-adding restarts the clock)
//   delete(id)  on any message from it: it is back
//   has(id)     lookups skip such contacts, FIND_NODE/FETCH answers leave them out
//
// Bounded (OVERLAY_UNRESPONSIVE_MAX, oldest forgotten first). The TTL is the same for every entry, so the
// Map's insertion order is expiry order and expired entries are dropped from the front. has() runs for every
// contact of every answer we give, so it first checks a count of 24-bit id prefixes: a miss (the common
// case) costs no string key.

import { OVERLAY_UNRESPONSIVE_MAX, OVERLAY_UNRESPONSIVE_MS } from '../base/constants.js';
import { idKey } from './xor-metric.js';

export interface UnresponsiveOptions {
  now: () => number;
  ttlMs?: number;
  max?: number;
}

const prefix = (id: Uint8Array): number => (id[0]! << 16) | (id[1]! << 8) | id[2]!;

export class RecentlyUnresponsive {
  private readonly until = new Map<string, { expires: number; prefix: number }>();
  private readonly prefixes = new Map<number, number>();
  private readonly now: () => number;
  private readonly ttlMs: number;
  private readonly max: number;

  constructor(o: UnresponsiveOptions) {
    this.now = o.now;
    this.ttlMs = o.ttlMs ?? OVERLAY_UNRESPONSIVE_MS;
    this.max = o.max ?? OVERLAY_UNRESPONSIVE_MAX;
  }

  get size(): number {
    this.expire(this.now());
    return this.until.size;
  }

  add(id: Uint8Array): void {
    const now = this.now();
    const key = idKey(id);
    this.remove(key);
    const p = prefix(id);
    this.until.set(key, { expires: now + this.ttlMs, prefix: p });
    this.prefixes.set(p, (this.prefixes.get(p) ?? 0) + 1);
    this.expire(now);
  }

  delete(id: Uint8Array): void {
    if (this.prefixes.has(prefix(id))) this.remove(idKey(id));
  }

  has(id: Uint8Array): boolean {
    if (this.until.size === 0 || !this.prefixes.has(prefix(id))) return false;
    const key = idKey(id);
    const e = this.until.get(key);
    if (!e) return false;
    if (e.expires > this.now()) return true;
    this.remove(key);
    return false;
  }

  private remove(key: string): void {
    const e = this.until.get(key);
    if (!e) return;
    this.until.delete(key);
    const left = (this.prefixes.get(e.prefix) ?? 1) - 1;
    if (left > 0) this.prefixes.set(e.prefix, left);
    else this.prefixes.delete(e.prefix);
  }

  /** Drop expired entries from the front, then the oldest while over the bound. */
  private expire(now: number): void {
    for (const [key, e] of this.until) {
      if (e.expires > now && this.until.size <= this.max) break;
      this.remove(key);
    }
  }
}
