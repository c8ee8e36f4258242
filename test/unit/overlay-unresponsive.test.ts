// A crashed node (no LEAVE) in a small overlay of KademliaNodes on the simulated clock: lookups must not
// wait out its retransmissions again and again, and nodes that found it dead stop handing it out.
import test from 'node:test';
import assert from 'node:assert/strict';
import { KademliaNode, type DhtRequest, type DhtResponse } from '../../agent/overlay/kademlia.js';
import type { Decoded, RpcCodec } from '../../agent/overlay/rpc.js';
import { SimScheduler } from '../../agent/base/scheduler.js';
import { seededRandom } from '../../agent/overlay/sim.js';
import type { Endpoint } from '../../agent/conn/socket.js';
import type { ContactInfo } from '../../agent/overlay/bucket.js';
import { bytesEqual as idsEqual } from '../../agent/base/bytes.js';

type Wire = Decoded<DhtRequest, DhtResponse<never>>;
const codec: RpcCodec<DhtRequest, DhtResponse<never>, Wire> = {
  encodeRequest: (txid, body) => ({ kind: 'request', txid, body }),
  encodeResponse: (txid, body) => ({ kind: 'response', txid, body }),
  decode: (w) => w,
};

interface Net {
  s: SimScheduler;
  nodes: KademliaNode<never, Wire>[];
  endpoints: Endpoint[];
  alive: boolean[];
  /** Datagrams that reached (or were sent to) each node. */
  received: number[];
}

async function overlay(n: number, seed: number): Promise<Net> {
  const s = new SimScheduler();
  const rand = seededRandom(seed);
  const net: Net = { s, nodes: [], endpoints: [], alive: [], received: [] };
  const at = new Map<string, number>();
  let txid = 0n;
  for (let i = 0; i < n; i++) {
    const nodeId = new Uint8Array(20);
    for (let j = 0; j < 20; j++) nodeId[j] = (rand() * 256) | 0;
    const endpoint: Endpoint = { address: `10.9.0.${i + 1}`, port: 4500 };
    at.set(endpoint.address, i);
    net.endpoints.push(endpoint);
    net.alive.push(true);
    net.received.push(0);
    net.nodes.push(new KademliaNode<never, Wire>({
      nodeId, publicKey: new Uint8Array(32), scheduler: s, codec, random: rand, newTxid: () => ++txid,
      send: (w, to) => {
        const j = at.get(to.address)!;
        net.received[j]!++;
        s.setTimer(10, () => { if (net.alive[j]) net.nodes[j]!.onMessage(w, endpoint); });
      },
    }));
  }
  for (let i = 1; i < n; i++) {
    const p = net.nodes[i]!.join([net.endpoints[0]!]);
    await s.run();
    assert.ok((await p).ok);
  }
  return net;
}

const contactOf = (net: Net, i: number): ContactInfo =>
  ({ nodeId: net.nodes[i]!.self.nodeId, publicKey: net.nodes[i]!.self.publicKey, endpoint: net.endpoints[i]! });

async function findNodeAnswer(net: Net, asker: number, of: number, target: Uint8Array): Promise<ContactInfo[]> {
  const p = net.nodes[asker]!.rpc.request(net.endpoints[of]!, { type: 'find_node', sender: net.nodes[asker]!.self, target });
  await net.s.run();
  const r = await p;
  assert.ok(r.ok && r.value.type === 'nodes');
  return r.value.contacts;
}

test('8 nodes, one crashed without LEAVE: 40 lookups do not each wait out its retransmissions', async () => {
  const net = await overlay(8, 21);
  const dead = 7;
  net.alive[dead] = false;
  let took = 0;
  for (let i = 0; i < 40; i++) {
    const from = i % 7;
    const target = net.nodes[(i * 3 + 1) % 7]!.self.nodeId; // every lookup has the dead node among the k closest
    const p = net.nodes[from]!.findNode(target);
    await net.s.run();
    const r = await p;
    took += r.latencyMs; // not the clock: run() goes on to the end of the RPC's retries in the background
    assert.equal(r.contacts.length, 6, 'the six other live nodes');
    assert.ok(!r.contacts.some((c) => idsEqual(c.nodeId, net.nodes[dead]!.self.nodeId)));
  }
  // before: lookups waited the dead node's 1.75 s until every node had given up on it (~20 s in all); now
  // each node spends at most its first straggler interval on it, and the RPC's retries run in the background
  assert.ok(took < 5_000, `40 lookups took ${took} simulated ms`);
});

test('a contact that timed out is not queried by lookups nor handed out in answers, until it speaks again', async () => {
  const net = await overlay(8, 22);
  const [a, b, d] = [0, 1, 5];
  const dId = net.nodes[d]!.self.nodeId;
  net.alive[d] = false;
  // a's one RPC to d fails: d stays in a's table (one failure of ROUTING_MAX_FAILURES), but is unresponsive
  const ping = net.nodes[a]!.ping(contactOf(net, d));
  await net.s.run();
  assert.equal(await ping, false);
  assert.ok(net.nodes[a]!.table.get(dId), 'still in the routing table');
  const listed = (cs: ContactInfo[]) => cs.some((c) => idsEqual(c.nodeId, dId));
  assert.ok(!listed(await findNodeAnswer(net, b, a, dId)), 'a no longer hands d out');
  const before = net.received[d]!;
  const p = net.nodes[a]!.findNode(net.nodes[b]!.self.nodeId);
  await net.s.run();
  await p;
  assert.equal(net.received[d], before, 'a\'s lookup did not query d');
  // d comes back and talks to a: it is a contact like any other again
  net.alive[d] = true;
  const back = net.nodes[d]!.ping(contactOf(net, a));
  await net.s.run();
  assert.equal(await back, true);
  assert.ok(listed(await findNodeAnswer(net, b, a, dId)), 'listed again once heard from');
});

test('the unresponsive mark expires after OVERLAY_UNRESPONSIVE_MS and is bounded', async () => {
  const net = await overlay(4, 23);
  const [a, b, d] = [0, 1, 3];
  const dId = net.nodes[d]!.self.nodeId;
  net.alive[d] = false;
  const ping = net.nodes[a]!.ping(contactOf(net, d));
  await net.s.run();
  assert.equal(await ping, false);
  const listed = async () => (await findNodeAnswer(net, b, a, dId)).some((c) => idsEqual(c.nodeId, dId));
  assert.equal(await listed(), false);
  await net.s.advance(60_001);
  assert.equal(await listed(), true, 'handed out again after a minute');
  const u = net.nodes[a]!.unresponsive;
  for (let i = 0; i < 2000; i++) u.add(Uint8Array.from({ length: 20 }, (_, j) => (j === 0 ? i >> 8 : j === 1 ? i : j) & 255));
  assert.ok(u.size <= 1024);
});

test('a PING that times out at another address of a known contact (a record\'s candidate, a liar\'s) leaves it responsive and in the table', async () => {
  const net = await overlay(6, 24);
  const [a, b, d] = [0, 1, 4];
  const dId = net.nodes[d]!.self.nodeId;
  assert.ok(net.nodes[a]!.table.get(dId), 'a knows d');
  const elsewhere = { ...contactOf(net, d), endpoint: { address: '2001:db8::99', port: 4500 } };
  const ping = net.nodes[a]!.ping(elsewhere); // nobody is there: the send goes nowhere
  await net.s.run();
  assert.equal(await ping, false);
  assert.equal(net.nodes[a]!.unresponsive.has(dId), false, 'not marked unresponsive');
  assert.equal(net.nodes[a]!.table.get(dId)?.failures, 0, 'no failure counted');
  assert.ok((await findNodeAnswer(net, b, a, dId)).some((c) => idsEqual(c.nodeId, dId)), 'still handed out');
  // at the address where a knows it, a timeout still counts
  net.alive[d] = false;
  const at = net.nodes[a]!.ping(contactOf(net, d));
  await net.s.run();
  assert.equal(await at, false);
  assert.equal(net.nodes[a]!.unresponsive.has(dId), true);
});

test('with `reachable`, lookups skip contacts of an address family we cannot send to, like unresponsive ones', () => {
  const v4only = new KademliaNode<never, Wire>({
    nodeId: new Uint8Array(20).fill(1), publicKey: new Uint8Array(32), scheduler: new SimScheduler(), codec, send: () => {},
    reachable: (e) => !e.address.includes(':'),
  });
  const c = (address: string): ContactInfo => ({ nodeId: new Uint8Array(20).fill(2), publicKey: new Uint8Array(32), endpoint: { address, port: 4500 } });
  assert.equal(v4only.skipContact(c('2001:db8::11')), true);
  assert.equal(v4only.skipContact(c('198.51.100.11')), false);
});
