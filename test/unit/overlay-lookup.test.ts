import test from 'node:test';
import assert from 'node:assert/strict';
import { lookup, type QueryResult } from '../../agent/overlay/lookup.js';
import { RoutingTable } from '../../agent/overlay/routing-table.js';
import { SimScheduler } from '../../agent/base/scheduler.js';
import { runSimulation, seededRandom } from '../../agent/overlay/sim.js';
import { compareDistance } from '../../agent/overlay/xor-metric.js';
import type { ContactInfo } from '../../agent/overlay/bucket.js';
import { bytesEqual as idsEqual } from '../../agent/base/bytes.js';

function ids(n: number, seed: number): ContactInfo[] {
  const r = seededRandom(seed);
  return Array.from({ length: n }, (_, i) => {
    const nodeId = new Uint8Array(20);
    for (let j = 0; j < 20; j++) nodeId[j] = (r() * 256) | 0;
    return { nodeId, publicKey: new Uint8Array(32), endpoint: { address: `10.0.${i >> 8}.${i & 255}`, port: 1 } };
  });
}

test('lookup over a static network of full routing tables: returns the true k closest, α at a time', async () => {
  const s = new SimScheduler();
  const all = ids(300, 7);
  const tables = new Map<string, RoutingTable>(); // by address: answers carry the tables' own objects
  for (const c of all) {
    const t = new RoutingTable({ selfId: c.nodeId, now: () => 0 });
    for (const o of all) t.observe(o);
    tables.set(c.endpoint.address, t);
  }
  const target = ids(1, 99)[0]!.nodeId;
  let inflight = 0;
  let maxInflight = 0;
  const query = async (c: ContactInfo, t: Uint8Array): Promise<QueryResult<never>> => {
    inflight++;
    maxInflight = Math.max(maxInflight, inflight);
    await new Promise<void>((r) => s.setTimer(20, r));
    inflight--;
    // each node answers from a full Kademlia routing table (k = 20 per bucket): little knowledge far from
    // itself, everything near itself, so reaching the true k closest takes several steps
    return { contacts: tables.get(c.endpoint.address)!.closest(t, 20) };
  };
  const p = lookup({ target, seeds: all.slice(0, 3), query, scheduler: s });
  await s.run();
  const r = await p;
  const truth = all.slice().sort((a, b) => compareDistance(a.nodeId, b.nodeId, target)).slice(0, 20);
  assert.deepEqual(r.contacts.map((c) => c.nodeId), truth.map((c) => c.nodeId));
  assert.ok(maxInflight <= 3, `alpha respected (${maxInflight})`);
  assert.ok(r.hops >= 2 && r.latencyMs > 0, `hops ${r.hops}`);
});

test('dead contacts time out and do not stop convergence; FIND_VALUE stops at the first value', async () => {
  const s = new SimScheduler();
  const all = ids(100, 3);
  const dead = new Set(all.slice(0, 30).map((c) => c));
  const holder = all[50]!;
  const target = all[50]!.nodeId;
  const query = async (c: ContactInfo, t: Uint8Array): Promise<QueryResult<string> | undefined> => {
    if (dead.has(c)) return new Promise(() => undefined); // never answers: lookup's own timeout
    await new Promise<void>((r) => s.setTimer(10, r));
    if (c === holder) return { value: 'v' };
    return { contacts: all.slice().sort((a, b) => compareDistance(a.nodeId, b.nodeId, t)).slice(0, 20) };
  };
  const p = lookup<string>({ target, seeds: all.slice(20, 40), query, scheduler: s, queryTimeoutMs: 500 });
  await s.run();
  const r = await p;
  assert.equal(r.value, 'v');
  assert.ok(r.foundAt && idsEqual(r.foundAt.nodeId, holder.nodeId));
  assert.ok(r.stoppedEarly);
});

/** A static network where every node knows everyone: each answer is the k closest to the target. */
function staticNetwork(n: number, seed: number) {
  const all = ids(n, seed);
  const closestTo = (t: Uint8Array, m = 20) => all.slice().sort((a, b) => compareDistance(a.nodeId, b.nodeId, t)).slice(0, m);
  return { all, closestTo };
}

test('a dead contact that everyone still lists among the k closest does not hold the lookup for 1.75 s', async () => {
  const s = new SimScheduler();
  const { all, closestTo } = staticNetwork(100, 11);
  const target = ids(1, 12)[0]!.nodeId;
  const dead = closestTo(target)[4]!; // among the k closest, but not the closest
  let deadQueries = 0;
  const query = async (c: ContactInfo, t: Uint8Array): Promise<QueryResult<never> | undefined> => {
    if (c === dead) {
      deadQueries++;
      await new Promise<void>((r) => s.setTimer(1750, r)); // the RPC's 250 + 500 + 1000 ms, then failure
      return undefined;
    }
    await new Promise<void>((r) => s.setTimer(20, r));
    return { contacts: closestTo(t) }; // everyone lists the dead node
  };
  const p = lookup({ target, seeds: all.slice(0, 20), query, scheduler: s });
  await s.run();
  const r = await p;
  assert.equal(deadQueries, 1);
  assert.ok(r.latencyMs < 600, `converged in ${r.latencyMs} ms, not after the dead node's retransmissions`);
  const truth = closestTo(target, 21).filter((c) => c !== dead).slice(0, 20);
  assert.deepEqual(r.contacts.map((c) => c.nodeId), truth.map((c) => c.nodeId), 'the k closest that answered');
});

test('a straggler frees its α slot; its answer is still taken if it comes before the end', async () => {
  const s = new SimScheduler();
  const { all, closestTo } = staticNetwork(300, 13);
  const target = ids(1, 14)[0]!.nodeId;
  const seeds = all.slice(0, 20);
  const slow = closestTo(target, 300).find((c) => seeds.includes(c))!; // closest seed: asked first; answers
  // after 300 ms (its first datagram was lost)
  let inflight = 0;
  let maxInflight = 0;
  const query = async (c: ContactInfo, t: Uint8Array): Promise<QueryResult<never>> => {
    inflight++;
    maxInflight = Math.max(maxInflight, inflight);
    await new Promise<void>((r) => s.setTimer(c === slow ? 300 : 60, r));
    inflight--;
    return { contacts: closestTo(t).filter((x) => x !== slow) };
  };
  const p = lookup({ target, seeds, query, scheduler: s });
  await s.run();
  const r = await p;
  assert.ok(r.latencyMs > 300, `still running when the straggler answered (${r.latencyMs} ms)`);
  assert.equal(r.stragglers, 1);
  assert.equal(r.failures, 0);
  assert.ok(maxInflight <= 4, `α + the straggler (${maxInflight})`);
});

test('stragglers: the sought node and slow paths are waited for; skipped contacts are not queried', async () => {
  const s = new SimScheduler();
  const { all, closestTo } = staticNetwork(100, 15);
  const sought = all[70]!;
  // the node looked for answers only after 600 ms (two lost datagrams): the lookup waits for it
  const q1 = async (c: ContactInfo, t: Uint8Array): Promise<QueryResult<never>> => {
    await new Promise<void>((r) => s.setTimer(c === sought ? 600 : 20, r));
    return { contacts: closestTo(t) };
  };
  const p1 = lookup({ target: sought.nodeId, seeds: all.slice(0, 20), query: q1, scheduler: s,
    sought: (c) => idsEqual(c.nodeId, sought.nodeId) });
  await s.run();
  const r1 = await p1;
  assert.ok(r1.foundAt && idsEqual(r1.foundAt.nodeId, sought.nodeId) && r1.stoppedEarly);
  // every node 400 ms away (a slow path, not dead ones): nobody answered before the stragglers' time, so
  // the lookup waits rather than end empty, and still converges on the true k closest
  const target = ids(1, 16)[0]!.nodeId;
  const q2 = async (_c: ContactInfo, t: Uint8Array): Promise<QueryResult<never>> => {
    await new Promise<void>((r) => s.setTimer(400, r));
    return { contacts: closestTo(t) };
  };
  const p2 = lookup({ target, seeds: all.slice(0, 20), query: q2, scheduler: s });
  await s.run();
  const r2 = await p2;
  assert.equal(r2.contacts.length, 20);
  // skip: never queried, unless every seed is skipped (then the seeds are tried anyway)
  const skipped = new Set(closestTo(target, 5));
  const asked = new Set<ContactInfo>();
  const q3 = async (c: ContactInfo, t: Uint8Array): Promise<QueryResult<never>> => {
    asked.add(c);
    await new Promise<void>((r) => s.setTimer(20, r));
    return { contacts: closestTo(t, 30) };
  };
  const p3 = lookup({ target, seeds: all.slice(0, 20), query: q3, scheduler: s, skip: (c) => skipped.has(c) });
  await s.run();
  const r3 = await p3;
  for (const c of skipped) assert.ok(!asked.has(c));
  assert.deepEqual(r3.contacts.map((c) => c.nodeId), closestTo(target, 25).filter((c) => !skipped.has(c)).map((c) => c.nodeId));
  const p4 = lookup({ target, seeds: [...skipped], query: q3, scheduler: s, skip: (c) => skipped.has(c) });
  await s.run();
  assert.ok((await p4).contacts.length > 0, 'all seeds skipped: tried anyway');
});

test('simulated 200-node network: every node is found (with 5% loss)', async () => {
  const r = await runSimulation({ nodes: 200, lookups: 200, loss: 0.05, seed: 5, settleMs: 2000 });
  assert.equal(r.successRate, 1, JSON.stringify(r));
  assert.ok(r.hops.p99 <= 6);
});

test('simulated 200-node network with 30% churn: >= 99% found', async () => {
  const r = await runSimulation({ nodes: 200, lookups: 200, churn: 0.3, loss: 0.05, seed: 6, settleMs: 2000 });
  assert.ok(r.successRate >= 0.99, JSON.stringify(r));
});
