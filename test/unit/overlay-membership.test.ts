import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryNetwork, type MemorySocket } from '../../agent/conn/memory-socket.js';
import { generateIdentity, type Identity } from '../../agent/idloc/identity.js';
import { OverlayNode, type OverlayNodeOptions } from '../../agent/overlay/node.js';
import { RecordKind } from '../../agent/overlay/records.js';
import { SimScheduler } from '../../agent/base/scheduler.js';
import { ipv4ResourceId } from '../../agent/overlay/names.js';

const DIFFICULTY = 4; // cheap puzzle for tests; every node and store uses the same value
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

interface Host {
  identity: Identity;
  socket: MemorySocket;
  node: OverlayNode;
  joinedCalls: number;
}

function makeHost(net: MemoryNetwork, address: string, extra: Partial<OverlayNodeOptions> = {}, identity = generateIdentity()): Host {
  const socket = net.socket(address, 4500);
  const h = { identity, socket, joinedCalls: 0 } as Host;
  h.node = new OverlayNode({
    socket, identity, puzzleDifficulty: DIFFICULTY, replicateIntervalMs: 0, onJoined: () => { h.joinedCalls++; }, ...extra,
  });
  socket.onMessage((msg, from) => { if (msg[0] === 0xd2) h.node.handleDatagram(msg, from); });
  return h;
}

async function stop(...hosts: Host[]): Promise<void> {
  for (const h of hosts) { h.node.close(); await h.socket.close(); }
}

/** Poll `cond` every 10 ms; the time it took, or a failure after `ms`. */
async function within(ms: number, what: string, cond: () => boolean): Promise<number> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) assert.fail(`${what}: not within ${ms} ms`);
    await sleep(10);
  }
  return Date.now() - t0;
}

describe('OverlayNode membership: joining with retries (simulated clock)', () => {
  it('retries a join nobody answers at 1 s, doubling to 30 s, and joins when the bootstrap comes up', async () => {
    const sim = new SimScheduler(0);
    const net = new MemoryNetwork({ latencyMs: 0 });
    const bootEp = { address: '10.1.0.1', port: 4500 };
    const b = makeHost(net, '10.1.0.2', { scheduler: sim });
    let joined = false;
    void b.node.start([bootEp, b.socket.local]).then(() => { joined = true; }); // our own address is dropped
    assert.deepEqual(b.node.stats().bootstraps, [bootEp]);
    assert.equal(b.node.membership.joined, false);
    // each attempt is 3 PINGs over 1.75 s (250 + 500 + 1000 ms), then a wait of 1, 2, 4, 8, 16, 30, 30 s
    const startsAt = [0, 2_750, 6_500, 12_250, 22_000, 39_750, 71_500, 103_250];
    for (let i = 1; i < startsAt.length; i++) {
      await sim.run(startsAt[i]! - 1);
      assert.equal(b.node.stats().joinAttempts, i, `attempts before ${startsAt[i]} ms`);
      await sim.run(startsAt[i]!);
      assert.equal(b.node.stats().joinAttempts, i + 1, `attempts at ${startsAt[i]} ms`);
    }
    assert.equal(joined, false);
    assert.equal(b.node.stats().joined, false);
    // the bootstrap comes up while attempt 8 is retransmitting its PING (at 103,500 and 104,000 ms)
    await sim.run(103_600);
    const a = makeHost(net, bootEp.address, { scheduler: sim });
    void a.node.start([]);
    assert.equal(a.node.membership.joined, true, 'no bootstraps: the first node of a new overlay');
    assert.equal(a.joinedCalls, 1);
    await sim.run(104_100);
    assert.equal(joined, true);
    assert.equal(b.joinedCalls, 1);
    assert.equal(b.node.stats().joined, true);
    assert.equal(b.node.stats().joinAttempts, 8);
    assert.ok(a.node.kad.table.get(b.identity.nodeId) && b.node.kad.table.get(a.identity.nodeId));
    await stop(a, b);
  });

  it('re-joins when its routing table empties, and its records reach the node it re-joins through', async () => {
    const sim = new SimScheduler(0);
    const net = new MemoryNetwork({ latencyMs: 0 });
    const a = makeHost(net, '10.2.0.1', { scheduler: sim });
    const b = makeHost(net, '10.2.0.2', { scheduler: sim });
    void a.node.start([]);
    void b.node.start([a.socket.local]);
    await sim.run(100);
    assert.equal(b.joinedCalls, 1);
    const published = b.node.publisher.publishIdentity(b.identity, [b.socket.local]);
    await sim.run(200);
    assert.ok((await published).locator.ok);

    // A leaves: B's only contact goes, B is alone and not joined, and keeps trying its bootstrap
    const leaving = a.node.leave();
    await sim.run(300);
    assert.equal(await leaving, 1);
    await stop(a);
    assert.equal(b.node.stats().routingTableSize, 0);
    assert.equal(b.node.membership.joined, false);
    const attempts = b.node.stats().joinAttempts;
    await sim.run(300 + 1_000);
    assert.equal(b.node.stats().joinAttempts, attempts + 1, 'first re-join 1 s after the table emptied');

    // a new node comes up at the bootstrap's address; B's next attempt gets in, and B republishes to it
    await sim.run(5_000);
    const a2 = makeHost(net, '10.2.0.1', { scheduler: sim });
    void a2.node.start([]);
    await sim.run(20_000);
    assert.equal(b.node.membership.joined, true);
    assert.equal(b.joinedCalls, 2, 'onJoined again after the re-join');
    const held = a2.node.store.get(b.identity.nodeId, RecordKind.Locator, Date.now());
    assert.equal(held.length, 1, 'B\'s locator was stored at the new node');
    assert.equal(a2.node.store.get(ipv4ResourceId(b.identity.ipv4), RecordKind.Ipv4Claim, Date.now()).length, 1);
    await stop(a2, b);
  });

  it('join() is one attempt: no retries when nobody answers', async () => {
    const sim = new SimScheduler(0);
    const net = new MemoryNetwork({ latencyMs: 0 });
    const b = makeHost(net, '10.3.0.2', { scheduler: sim });
    const r = b.node.membership.join([{ address: '10.3.0.1', port: 4500 }]);
    await sim.run(60_000);
    assert.equal((await r).ok, false);
    assert.equal(b.node.stats().joinAttempts, 1);
    assert.equal(b.node.membership.joined, false);
    await stop(b);
  });
});

describe('OverlayNode membership: the first node\'s records outlive it (real clock)', () => {
  it('A alone publishes; B joins via A and C via B within a second; C resolves A; after A leaves, D still does', async () => {
    const net = new MemoryNetwork({ latencyMs: 2 });
    const keepAlive = setInterval(() => undefined, 1000); // network and overlay timers are unref'd
    const a = makeHost(net, '10.4.0.1');
    const b = makeHost(net, '10.4.0.2');
    const c = makeHost(net, '10.4.0.3');
    const d = makeHost(net, '10.4.0.4');
    try {
      await a.node.start([]);
      const pa = await a.node.publisher.publishIdentity(a.identity, [a.socket.local]);
      assert.ok(pa.locator.ok && pa.claim?.ok, 'stored locally: nobody else is there');
      assert.equal(pa.locator.contacted, 0);
      const ipv4 = pa.ipv4!;

      void b.node.start([a.socket.local]);
      // store on join: A hands B its records as soon as B is in A's routing table
      const tb = await within(1000, 'B holds A\'s locator and IPv4 claim', () =>
        b.node.store.get(a.identity.nodeId, RecordKind.Locator, Date.now()).length === 1
        && b.node.store.get(ipv4ResourceId(ipv4), RecordKind.Ipv4Claim, Date.now()).length === 1);
      assert.ok(tb < 1000);
      assert.equal(b.node.stats().joined, true);

      const t0 = Date.now();
      await c.node.start([b.socket.local]);
      const byId = await c.node.resolver.resolveNodeId(a.identity.nodeId);
      const byIp = await c.node.resolver.resolveIpv4(ipv4);
      assert.equal(byId && hex(byId.owner), a.identity.publicKeyHex);
      assert.equal(byIp && hex(byIp.owner), a.identity.publicKeyHex);
      assert.ok(Date.now() - t0 < 1000, `C joined and resolved A in ${Date.now() - t0} ms`);

      // A goes; D joins through C and still finds A's records, held by the nodes that joined after A
      assert.ok(await a.node.leave() >= 2);
      await stop(a);
      await d.node.start([c.socket.local]);
      const later = await d.node.resolver.resolveIpv4(ipv4);
      assert.equal(later && hex(later.owner), a.identity.publicKeyHex);
      assert.equal(later?.value?.candidates[0]?.address, '10.4.0.1');
    } finally {
      await stop(b, c, d);
      clearInterval(keepAlive);
    }
  });
});
