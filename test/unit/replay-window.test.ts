import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ReplayWindow } from '../../agent/tunnel/replay-window.js';
import { REPLAY_WINDOW_BITS } from '../../agent/base/constants.js';

/** Reference model: a set of everything seen and the highest counter. */
function model(windowSize: number) {
  const seen = new Set<number>();
  let highest = -1;
  return (c: number): boolean => {
    if (seen.has(c)) return false;
    if (c <= highest && highest - c >= windowSize) return false;
    seen.add(c);
    if (c > highest) highest = c;
    return true;
  };
}

test('in-order counters accepted once, duplicates rejected', () => {
  const w = new ReplayWindow();
  for (let i = 0; i < 10_000; i++) assert.ok(w.update(i));
  for (let i = 10_000 - REPLAY_WINDOW_BITS; i < 10_000; i++) assert.equal(w.update(i), false, `dup ${i}`);
});

test('too old rejected, edge of the window accepted', () => {
  const w = new ReplayWindow();
  assert.ok(w.update(5000));
  assert.equal(w.check(5000 - REPLAY_WINDOW_BITS), false, 'exactly window behind: too old');
  assert.ok(w.check(5000 - REPLAY_WINDOW_BITS + 1), 'window-1 behind: inside');
  assert.ok(w.update(5000 - REPLAY_WINDOW_BITS + 1));
  assert.equal(w.update(0), false);
});

test('reordering within the window accepted; big jumps clear the ring', () => {
  const w = new ReplayWindow();
  const order = [3, 1, 2, 0, 100, 50, 99, 64, 63, 32, 31];
  for (const c of order) assert.ok(w.update(c), `first ${c}`);
  for (const c of order) assert.equal(w.update(c), false, `again ${c}`);
  assert.ok(w.update(1_000_000));
  assert.ok(w.update(1_000_000 - 1));
  assert.equal(w.update(100), false);
  assert.ok(w.update(2 ** 52));
  assert.equal(w.check(2 ** 53), false, 'beyond 2^53 refused');
  assert.equal(w.check(-1), false);
  assert.equal(w.check(NaN), false);
});

test('property: matches the set-based model for random sequences (small and real window)', () => {
  for (const bits of [64, REPLAY_WINDOW_BITS]) {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.integer({ min: 0, max: 3 * bits }), // dense: lots of reordering and duplicates
            fc.integer({ min: 0, max: 2 ** 40 }), // sparse: far jumps
          ),
          { maxLength: 400 },
        ),
        (seq) => {
          const w = new ReplayWindow(bits);
          const m = model(bits);
          for (const c of seq) {
            const expected = m(c);
            if (w.check(c) !== expected) return false;
            if (w.update(c) !== expected) return false;
          }
          return true;
        },
      ),
      { numRuns: 300 },
    );
  }
});

test('property: a shuffled block within the window is all accepted, replay all rejected', () => {
  fc.assert(
    fc.property(fc.shuffledSubarray([...Array(REPLAY_WINDOW_BITS).keys()], { minLength: REPLAY_WINDOW_BITS }), fc.nat(1e9), (perm, base) => {
      const w = new ReplayWindow();
      for (const c of perm) if (!w.update(base + c)) return false;
      for (const c of perm) if (w.update(base + c)) return false;
      return true;
    }),
    { numRuns: 50 },
  );
});
