// PerSourceRateLimit: a token bucket per source, IPv6 sources by their /64 (allowFrom), bounded sources.
import test from 'node:test';
import assert from 'node:assert/strict';
import { PerSourceRateLimit, sourceKey } from '../../agent/conn/rate-limit.js';

test('allowFrom: one bucket per IPv4 address, one per IPv6 /64 whatever the low 64 bits; refills at the rate', () => {
  let now = 0;
  const l = new PerSourceRateLimit({ ratePerSecond: 1, burst: 2, maxSources: 100, now: () => now });
  assert.deepEqual([1, 2, 3].map(() => l.allowFrom('2001:db8:a:b::1')), [true, true, false]);
  assert.equal(l.allowFrom('2001:db8:a:b:ffff:1:2:3'), false, 'another address in the same /64 shares the bucket');
  assert.equal(l.allowFrom('2001:db8:a:c::1'), true, 'the next /64 has its own');
  assert.deepEqual([1, 2, 3].map(() => l.allowFrom('203.0.113.5')), [true, true, false]);
  assert.equal(l.allowFrom('203.0.113.6'), true, 'IPv4 by address');
  now = 1000;
  assert.equal(l.allowFrom('2001:db8:a:b::99'), true, 'one token back after a second');
  assert.equal(l.allowFrom('2001:db8:a:b::99'), false);
});

test('sourceKey: IPv4 as it is, IPv6 as its /64 in one canonical form', () => {
  assert.equal(sourceKey('203.0.113.5'), '203.0.113.5');
  assert.equal(sourceKey('2001:DB8:0A:0B:1::2'), '2001:db8:a:b::/64');
  assert.equal(sourceKey('2001:db8:a:b::'), '2001:db8:a:b::/64');
  assert.equal(sourceKey('::1'), '0:0:0:0::/64');
  assert.equal(sourceKey('100::7'), '100::7', 'a peer relay\'s virtual endpoint is its own source');
});

test('a flood of sources never holds more than maxSources buckets, and a newcomer always gets a fresh one', () => {
  const l = new PerSourceRateLimit({ ratePerSecond: 0, burst: 1, maxSources: 8, now: () => 0 });
  for (let i = 0; i < 1000; i++) l.allowFrom(`2001:db8:${i.toString(16)}::1`);
  assert.equal(l.size, 8);
  assert.equal(l.allowFrom('2001:db8:ffff::1'), true);
});
