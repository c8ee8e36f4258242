// The clock twin and `every`: the series every component's periodic timer runs on (the tunnels' tick,
// the probe sockets' sweep, the TURN keepalive).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SimScheduler, every } from '../../agent/base/scheduler.js';

test('every runs at each period on the twin clock, and step() runs what falls due on the way', () => {
  const clock = new SimScheduler(0);
  const at: number[] = [];
  every(clock, 250, () => at.push(clock.now()));
  clock.step(1000);
  assert.deepEqual(at, [250, 500, 750, 1000]);
  assert.equal(clock.now(), 1000);
});

test('a run that throws does not end the series (as with setInterval)', () => {
  const clock = new SimScheduler(0);
  let runs = 0;
  every(clock, 100, () => { runs++; if (runs === 1) throw new Error('first run fails'); });
  assert.throws(() => clock.step(100), /first run fails/);
  clock.step(300);
  assert.equal(runs, 4, 'runs at 100 (threw), 200, 300, 400');
});

test('cancelling from inside the run stops the series, and no timer is left behind', () => {
  const clock = new SimScheduler(0);
  let runs = 0;
  const h = every(clock, 100, () => { if (++runs === 2) h.cancel(); });
  clock.step(1000);
  assert.equal(runs, 2);
  assert.equal(clock.eventsRun, 2, 'the re-armed timer was cancelled, not run as a no-op');
});

test('every with a period of 0 never runs', () => {
  const clock = new SimScheduler(0);
  let runs = 0;
  every(clock, 0, () => runs++);
  clock.step(1000);
  assert.equal(runs, 0);
  assert.equal(clock.pending, 0);
});
