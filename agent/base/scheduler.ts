// Time for the agent: components read the clock and set timers only through a Scheduler, so the same
// code runs on real timers in the agent and on a simulated clock in tests and in the 10,000-node
// simulation (agent/overlay/sim.ts).
//
//   realScheduler   performance-free Date.now() + unref'd setTimeout
//   SimScheduler    discrete-event queue (binary heap on (time, seq)); time moves only when told to:
//                   the clock twin of every component that takes a `clock` (tunnels, discovery, the
//                   path keeper, probe sockets, relays, the in-memory NAT, the overlay)
//
// SimScheduler and promises: the overlay code awaits promises, whose continuations are microtasks. A
// synchronous event loop would never let them run, so run() processes every event due at one instant,
// then yields to the host event loop (setImmediate), which drains all microtasks before the next
// instant. Continuations therefore see the clock of the instant that caused them, as they would with real
// time. Keep simulated delays in whole milliseconds so that many events share an instant (fewer yields).

export interface TimerHandle {
  cancel(): void;
}

export interface Scheduler {
  /** Milliseconds, monotonic enough for timeouts and ages. */
  now(): number;
  /** Run fn once after ms; the handle cancels it. */
  setTimer(ms: number, fn: () => void): TimerHandle;
}

export const realScheduler: Scheduler = {
  now: () => Date.now(),
  setTimer(ms, fn) {
    const t = setTimeout(fn, ms);
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
};

/** Run fn every ms (never unless ms > 0) until the handle is cancelled. */
export function every(s: Scheduler, ms: number, fn: () => void): TimerHandle {
  let timer: TimerHandle | undefined;
  let stopped = false;
  const arm = () => {
    timer = s.setTimer(ms, () => {
      if (stopped) return;
      // Re-armed before fn runs, as setInterval is: a throwing fn does not end the series, and a fn that
      // cancels the handle cancels the next run.
      arm();
      fn();
    });
  };
  if (ms > 0) arm();
  return { cancel: () => { stopped = true; timer?.cancel(); } };
}

interface SimEvent {
  fn: (() => void) | undefined; // undefined once cancelled
}

const yieldToHost = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Events are grouped by instant: a min-heap of distinct times, each with its events in FIFO order.
 *  With whole-millisecond delays most events share an instant, so the heap stays small (at most one entry
 *  per future millisecond) and a cancelled timer costs nothing but its flag. */
export class SimScheduler implements Scheduler {
  private time: number;
  private readonly times: number[] = [];
  private readonly queues = new Map<number, SimEvent[]>();
  private count = 0;
  /** Events run so far (cancelled ones not counted). */
  eventsRun = 0;

  constructor(startMs = 0) {
    this.time = startMs;
  }

  now(): number {
    return this.time;
  }

  /** Events scheduled and not yet run (cancelled ones included until their instant). */
  get pending(): number {
    return this.count;
  }

  setTimer(ms: number, fn: () => void): TimerHandle {
    const ev: SimEvent = { fn };
    const t = this.time + Math.max(0, ms);
    let q = this.queues.get(t);
    if (!q) {
      q = [];
      this.queues.set(t, q);
      this.pushTime(t);
    }
    q.push(ev);
    this.count++;
    return { cancel: () => { ev.fn = undefined; } };
  }

  /** Run every event due up to `until` (inclusive), draining microtasks after each instant; the clock
   *  ends at `until` (or at the last event if until is Infinity). */
  async run(until = Infinity): Promise<void> {
    await yieldToHost();
    for (;;) {
      const t = this.times[0];
      if (t === undefined || t > until) break;
      this.time = t;
      this.runInstant(t);
      await yieldToHost();
    }
    if (until !== Infinity && until > this.time) this.time = until;
  }

  /** Advance by ms (run() up to now + ms). */
  advance(ms: number): Promise<void> {
    return this.run(this.time + ms);
  }

  /** Advance by ms at once, running the events due on the way in order but without yielding between
   *  instants: for code that only reads the clock and sets timers, with no promises to wait for. */
  step(ms: number): void {
    const until = this.time + ms;
    for (;;) {
      const t = this.times[0];
      if (t === undefined || t > until) break;
      this.time = t;
      this.runInstant(t);
    }
    this.time = until;
  }

  private runInstant(t: number): void {
    const q = this.queues.get(t)!;
    // events added for this same instant while running are appended to q and run in this loop too
    for (let i = 0; i < q.length; i++) {
      const ev = q[i]!;
      this.count--;
      const fn = ev.fn;
      if (fn) {
        ev.fn = undefined;
        this.eventsRun++;
        fn();
      }
    }
    this.queues.delete(t);
    this.popTime();
  }

  private pushTime(t: number): void {
    const h = this.times;
    h.push(t);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p]! <= t) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = t;
  }

  private popTime(): void {
    const h = this.times;
    const last = h.pop()!;
    if (h.length === 0) return;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= h.length) break;
      const r = l + 1;
      const m = r < h.length && h[r]! < h[l]! ? r : l;
      if (h[m]! >= last) break;
      h[i] = h[m]!;
      i = m;
    }
    h[i] = last;
  }
}
