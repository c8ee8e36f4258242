import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { RoutingTable } from '../../agent/overlay/routing-table.js';
import { KADEMLIA_K } from '../../agent/base/constants.js';
import { commonPrefixLength, compareDistance, xorDistance } from '../../agent/overlay/xor-metric.js';
import type { Contact } from '../../agent/overlay/bucket.js';
import { bytesEqual as idsEqual } from '../../agent/base/bytes.js';

const idArb = fc.uint8Array({ minLength: 20, maxLength: 20 });
const big = (b: Uint8Array) => BigInt(`0x${Buffer.from(b).toString('hex')}`);
const ep = { address: '192.0.2.1', port: 4500 };
const info = (nodeId: Uint8Array) => ({ nodeId, publicKey: new Uint8Array(32), endpoint: ep });

test('XOR distance: compareDistance agrees with BigInt arithmetic; metric properties', () => {
  fc.assert(fc.property(idArb, idArb, idArb, (a, b, t) => {
    const da = big(a) ^ big(t);
    const db = big(b) ^ big(t);
    assert.equal(Math.sign(compareDistance(a, b, t)), da < db ? -1 : da > db ? 1 : 0);
    assert.equal(big(xorDistance(a, b)), big(a) ^ big(b));
    assert.deepEqual(xorDistance(a, b), xorDistance(b, a)); // symmetric
    assert.equal(big(xorDistance(a, a)), 0n);
    // triangle inequality holds for XOR: d(a,b) <= d(a,t) + d(t,b)
    assert.ok((big(a) ^ big(b)) <= (big(a) ^ big(t)) + (big(t) ^ big(b)));
  }), { numRuns: 300 });
});

test('bucket index = common prefix length; distance lies in [2^(159-i), 2^(160-i))', () => {
  fc.assert(fc.property(idArb, idArb, (self, other) => {
    const i = commonPrefixLength(self, other);
    const d = big(self) ^ big(other);
    if (idsEqual(self, other)) { assert.equal(i, 160); return; }
    assert.ok(d >= 1n << BigInt(159 - i) && d < 1n << BigInt(160 - i));
  }), { numRuns: 300 });
});

test('randomIdInBucket lands in that bucket', () => {
  fc.assert(fc.property(idArb, fc.integer({ min: 0, max: 159 }), (self, i) => {
    const t = new RoutingTable({ selfId: self, now: () => 0 });
    assert.equal(t.bucketIndex(t.randomIdInBucket(i)), i);
  }), { numRuns: 300 });
});

test('no bucket exceeds k; closest() equals a brute-force sort of the table', () => {
  fc.assert(fc.property(idArb, fc.array(idArb, { minLength: 0, maxLength: 400 }), idArb, fc.integer({ min: 1, max: 40 }),
    (self, ids, target, n) => {
      const t = new RoutingTable({ selfId: self, now: () => 0, k: 8 });
      for (const id of ids) t.observe(info(id));
      for (let i = 0; i < 160; i++) assert.ok(t.bucket(i).length <= 8);
      const all = t.all();
      assert.equal(all.length, t.size);
      const brute = all.slice().sort((a, b) => compareDistance(a.nodeId, b.nodeId, target)).slice(0, n);
      assert.deepEqual(t.closest(target, n).map((c) => c.nodeId), brute.map((c) => c.nodeId));
      // with an excluded id (the asker)
      if (all.length > 0) {
        const ex = all[0]!.nodeId;
        const bruteEx = all.filter((c) => !idsEqual(c.nodeId, ex))
          .sort((a, b) => compareDistance(a.nodeId, b.nodeId, target)).slice(0, n);
        assert.deepEqual(t.closest(target, n, ex).map((c) => c.nodeId), bruteEx.map((c) => c.nodeId));
      }
    }), { numRuns: 200 });
});

/** Ids that all fall into bucket 0 of an all-zero self id (first bit set). */
function farIds(count: number): Uint8Array[] {
  return Array.from({ length: count }, (_, i) => { const id = new Uint8Array(20); id[0] = 0x80; id[18] = i >> 8; id[19] = i & 0xff; return id; });
}

test('full bucket: least-recently-seen is pinged; kept if it answers, newcomer waits as a replacement', async () => {
  let now = 0;
  const pinged: Contact[] = [];
  let answer = true;
  const t = new RoutingTable({ selfId: new Uint8Array(20), now: () => now, pingIfIdleMs: 0,
    ping: async (c) => { pinged.push(c); return answer; } });
  const ids = farIds(KADEMLIA_K + 2);
  for (let i = 0; i < KADEMLIA_K; i++) { now = i; assert.equal(t.observe(info(ids[i]!)), 'added'); }
  now = 100;
  assert.equal(t.observe(info(ids[KADEMLIA_K]!)), 'pending');
  assert.equal(pinged.length, 1);
  assert.ok(idsEqual(pinged[0]!.nodeId, ids[0]!), 'the least-recently-seen is pinged');
  await new Promise((r) => setImmediate(r));
  assert.equal(t.bucket(0).length, KADEMLIA_K);
  assert.ok(t.get(ids[0]!), 'old node that answered stays');
  assert.ok(!t.get(ids[KADEMLIA_K]!), 'newcomer not inserted');
  assert.ok(idsEqual(t.bucket(0).at(-1)!.nodeId, ids[0]!), 'moved to most-recently-seen');
  assert.equal(t.replacementsOf(0).length, 1);
  // now the least-recently-seen (ids[1]) fails its ping: evicted, freshest replacement takes its place
  answer = false;
  now = 200;
  assert.equal(t.observe(info(ids[KADEMLIA_K + 1]!)), 'pending');
  assert.ok(idsEqual(pinged[1]!.nodeId, ids[1]!));
  await new Promise((r) => setImmediate(r));
  assert.ok(!t.get(ids[1]!), 'dead node evicted');
  assert.ok(t.get(ids[KADEMLIA_K + 1]!), 'newcomer inserted');
  assert.equal(t.bucket(0).length, KADEMLIA_K);
  assert.equal(t.stats.evictedByPing, 1);
  assert.equal(t.stats.keptByPing, 1);
});

test('a recently seen oldest contact is not pinged; one ping per bucket at a time', () => {
  let now = 0;
  let pings = 0;
  const t = new RoutingTable({ selfId: new Uint8Array(20), now: () => now, pingIfIdleMs: 1000,
    ping: () => { pings++; return new Promise<boolean>(() => undefined); } });
  const ids = farIds(KADEMLIA_K + 3);
  for (let i = 0; i < KADEMLIA_K; i++) t.observe(info(ids[i]!));
  now = 500;
  t.observe(info(ids[KADEMLIA_K]!));
  assert.equal(pings, 0, 'oldest seen 500 ms ago: assumed alive');
  now = 5000;
  t.observe(info(ids[KADEMLIA_K + 1]!));
  t.observe(info(ids[KADEMLIA_K + 2]!));
  assert.equal(pings, 1, 'second newcomer waits for the ping in flight');
});

test('repeated failures remove a contact; one failure suffices when a replacement waits', () => {
  const t = new RoutingTable({ selfId: new Uint8Array(20), now: () => 0, maxFailures: 2 });
  const ids = farIds(KADEMLIA_K + 1);
  for (const id of ids.slice(0, KADEMLIA_K)) t.observe(info(id));
  assert.equal(t.markFailed(ids[3]!), false);
  assert.equal(t.markFailed(ids[3]!), true);
  assert.ok(!t.get(ids[3]!));
  t.observe(info(ids[3]!));
  t.observe(info(ids[KADEMLIA_K]!)); // bucket full (no ping callback): becomes a replacement
  assert.equal(t.replacementsOf(0).length, 1);
  assert.equal(t.markFailed(ids[5]!), true, 'replacement waiting: first failure removes');
  assert.ok(t.get(ids[KADEMLIA_K]!), 'replacement promoted');
  t.markFailed(ids[6]!);
  t.markSeen(ids[6]!);
  assert.equal(t.get(ids[6]!)!.failures, 0, 'success resets the count');
});

test('refresh bookkeeping: idle buckets reported, a lookup touches its bucket', () => {
  let now = 0;
  const self = new Uint8Array(20);
  const t = new RoutingTable({ selfId: self, now: () => now, refreshIntervalMs: 1000 });
  const deep = new Uint8Array(20); deep[0] = 0x08; // bucket 4
  t.observe(info(deep));
  assert.deepEqual(t.idleBuckets(), []);
  now = 2000;
  assert.deepEqual(t.idleBuckets(), [0, 1, 2, 3, 4, 5]);
  t.touch(t.randomIdInBucket(2));
  assert.deepEqual(t.idleBuckets(), [0, 1, 3, 4, 5]);
});
