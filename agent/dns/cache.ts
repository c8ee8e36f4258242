// Answers kept for their lifetime, on the clock (a SimScheduler in tests): a bounded map whose oldest
// entry goes first when it is full (an entry read is moved to the back, so names in use stay).
import type { Scheduler } from '../base/scheduler.js';

interface Entry<V> { value: V; expiresAt: number }

export class TtlCache<V> {
  private readonly entries = new Map<string, Entry<V>>();

  constructor(private readonly max: number, private readonly clock: Scheduler) {}

  /** The value and the whole seconds it has left (at least 1), or undefined once it expired. */
  get(key: string): { value: V; ttlS: number } | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    const left = e.expiresAt - this.clock.now();
    if (left <= 0) { this.entries.delete(key); return undefined; }
    this.entries.delete(key);
    this.entries.set(key, e);
    return { value: e.value, ttlS: Math.max(1, Math.floor(left / 1000)) };
  }

  /** Keep `value` for ttlS seconds (nothing is kept for 0 or less). */
  set(key: string, value: V, ttlS: number): void {
    this.entries.delete(key);
    if (!(ttlS > 0)) return;
    if (this.entries.size >= this.max) this.evict();
    this.entries.set(key, { value, expiresAt: this.clock.now() + ttlS * 1000 });
  }

  get size(): number { return this.entries.size; }

  /** Expired entries first; if none, the least recently used one. */
  private evict(): void {
    const now = this.clock.now();
    let removed = false;
    for (const [k, e] of this.entries) if (e.expiresAt <= now) { this.entries.delete(k); removed = true; }
    if (!removed) this.entries.delete(this.entries.keys().next().value!);
  }
}
