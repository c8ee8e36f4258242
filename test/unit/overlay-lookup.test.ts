import test from 'node:test';
import assert from 'node:assert/strict';
import { lookup, type QueryResult } from '../../agent/overlay/lookup.js';
import { compareDistance, idsEqual, RoutingTable, type ContactInfo } from '../../agent/overlay/routing-table.js';
import { SimScheduler } from '../../agent/overlay/scheduler.js';
import { runSimulation, seededRandom } from '../../agent/overlay/sim.js';

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

test('simulated 200-node network: every node is found (with 5% loss)', async () => {
  const r = await runSimulation({ nodes: 200, lookups: 200, loss: 0.05, seed: 5, settleMs: 2000 });
  assert.equal(r.successRate, 1, JSON.stringify(r));
  assert.ok(r.hops.p99 <= 6);
});

test('simulated 200-node network with 30% churn: >= 99% found', async () => {
  const r = await runSimulation({ nodes: 200, lookups: 200, churn: 0.3, loss: 0.05, seed: 6, settleMs: 2000 });
  assert.ok(r.successRate >= 0.99, JSON.stringify(r));
});
