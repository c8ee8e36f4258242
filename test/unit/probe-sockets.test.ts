// Probe sockets (the hard side of birthday probing) and the ports the easy side sprays: routing through
// virtual endpoints, only the peer's datagrams delivered, sockets closed when they lose or go idle; and a
// hole actually punched through an in-process random-port NAT by spraying.
import { test } from 'node:test';
import { SimScheduler } from '../../agent/base/scheduler.js';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MemoryNetwork, type MemorySocket } from '../../agent/conn/memory-socket.js';
import { MemoryNat } from '../../agent/conn/memory-nat.js';
import { ProbeSockets } from '../../agent/conn/probe-sockets.js';
import { PeerRelayClient } from '../../agent/nat/peer-relay-client.js';
import { sprayPorts } from '../../agent/nat/port-prediction.js';
import { PROBE_SOCKET_IDLE_MS, PROBE_SOCKETS_LINGER_MS, PROBE_SOCKETS_MAX } from '../../agent/base/constants.js';
import type { Endpoint } from '../../agent/conn/socket.js';

const tick = () => new Promise((r) => setTimeout(r, 5));

function rig(opts: { mapping?: 'endpoint-dependent'; failEvery?: number; reopen?: boolean } = {}) {
  const net = new MemoryNetwork();
  const nat = new MemoryNat(net, { publicAddress: '198.51.100.21', mapping: opts.mapping ?? 'endpoint-dependent', filtering: 'address-and-port-dependent', portAllocation: 'random', seed: 3 });
  let port = 30_000, calls = 0;
  const clock = new SimScheduler(0);
  const opened: MemorySocket[] = [];
  const closed = new Set<MemorySocket>();
  const reopened: MemorySocket[] = [];
  const got: { msg: string; from: string }[] = [];
  const probes = new ProbeSockets({
    open: () => {
      calls++;
      if (opts.failEvery && calls % opts.failEvery === 0) return Promise.reject(new Error('EMFILE'));
      const s = nat.socket('10.2.0.2', port++);
      const close = s.close.bind(s);
      s.close = () => { closed.add(s); return close(); };
      opened.push(s);
      return Promise.resolve(s);
    },
    deliver: (msg, from) => got.push({ msg: msg.toString(), from: `${from.address}:${from.port}` }),
    clock,
    ...(opts.reopen ? { reopen: (p: number) => { const s = nat.socket('10.2.0.2', p); reopened.push(s); return s; } } : {}),
  });
  const peer = net.socket('203.0.113.7', 4500);
  return { net, nat, probes, opened, closed, reopened, got, peer, advance: (ms: number) => clock.step(ms) };
}

test('probe sockets: virtual endpoints route out their own socket to the peer; only the peer is delivered', async () => {
  const { net, probes, got, peer } = rig();
  const v = await probes.open({ address: '203.0.113.7', port: 4500 }, 4);
  assert.equal(v.length, 4);
  assert.ok(v.every((e) => ProbeSockets.isVirtual(e) && !PeerRelayClient.isVirtual(e)), 'probe endpoints are not peer relay ones');
  assert.equal(new Set(v.map((e) => `${e.address}:${e.port}`)).size, 4);
  const seen: Endpoint[] = [];
  peer.onMessage((m, from) => { seen.push(from); peer.send(Buffer.from(`re:${m.toString()}`), from); });
  v.forEach((e, i) => assert.equal(probes.send(Buffer.from(`hi${i}`), e), true));
  await tick();
  // Four NAT mappings, four random public ports, all on the NAT's address.
  assert.equal(new Set(seen.map((e) => e.port)).size, 4);
  assert.ok(seen.every((e) => e.address === '198.51.100.21'));
  assert.deepEqual(got.map((g) => g.msg).sort(), ['re:hi0', 're:hi1', 're:hi2', 're:hi3']);
  for (const g of got) assert.ok(v.some((e) => `${e.address}:${e.port}` === g.from), 'delivered as from the virtual endpoint');
  // A stranger that learnt a mapped port gets nothing through: the NAT filters it, and the socket would too.
  const stranger = net.socket('203.0.113.66', 4500);
  stranger.send(Buffer.from('x'), seen[0]!);
  await tick();
  assert.equal(got.length, 4);
  // Not ours: left to the caller; ours but closed: swallowed, never out the main socket.
  assert.equal(probes.send(Buffer.from('z'), { address: '203.0.113.7', port: 4500 }), false);
  const r = probes.route(v[0]!);
  assert.deepEqual(r?.remote, { address: '203.0.113.7', port: 4500 });
  assert.equal(r?.local.port, 30_000);
  await probes.close();
  assert.equal(probes.send(Buffer.from('z'), v[0]!), true);
  assert.equal(probes.count, 0);
  void net;
});

test('probe sockets: the silent ones close after the linger time, the one in use after it idles', async () => {
  const { probes, peer, closed, advance } = rig();
  const v = await probes.open({ address: '203.0.113.7', port: 4500 }, 8);
  peer.onMessage((m, from) => peer.send(m, from));
  probes.send(Buffer.from('hit'), v[2]!); // only socket 2 hears back
  await tick();
  advance(PROBE_SOCKETS_LINGER_MS);
  probes.sweep();
  assert.equal(probes.count, 1);
  assert.ok(probes.route(v[2]!), 'the socket that heard the peer stays');
  assert.equal(closed.size, 7);
  advance(PROBE_SOCKET_IDLE_MS - PROBE_SOCKETS_LINGER_MS - 1);
  probes.sweep();
  assert.equal(probes.count, 1, 'still within its idle time');
  advance(PROBE_SOCKET_IDLE_MS);
  probes.sweep();
  assert.equal(probes.count, 0);
  assert.equal(probes.stats.open, 0);
});

test('probe sockets: the one in use is reopened as a fast socket on its port; the path through the NAT holds', async () => {
  const { probes, peer, reopened, got, advance } = rig({ reopen: true });
  const v = await probes.open({ address: '203.0.113.7', port: 4500 }, 4);
  peer.onMessage((m, from) => peer.send(Buffer.from(`re:${m.toString()}`), from));
  probes.send(Buffer.from('a'), v[1]!);
  await tick();
  const before = probes.route(v[1]!)!.local.port;
  advance(PROBE_SOCKETS_LINGER_MS);
  probes.sweep();
  probes.send(Buffer.from('lost in the swap'), v[1]!); // while the old socket closes: dropped, not thrown
  await tick();
  assert.equal(probes.stats.reopened, 1);
  assert.equal(reopened.length, 1);
  assert.equal(reopened[0]!.local.port, before, 'same port, so the same NAT mapping');
  assert.equal(probes.count, 1);
  probes.send(Buffer.from('b'), v[1]!);
  await tick();
  assert.deepEqual(got.map((g) => g.msg), ['re:a', 're:b'], 'the peer answers through the same mapping, to the new socket');
  await probes.close();
});

test('probe sockets: opening failures are counted and at most PROBE_SOCKETS_MAX are open', async () => {
  const { probes } = rig({ failEvery: 4 });
  const v = await probes.open({ address: '203.0.113.7', port: 4500 }, 16);
  assert.equal(v.length, 12);
  assert.equal(probes.stats.failed, 4);
  await probes.close();
  const { probes: p2 } = rig();
  await p2.open({ address: '203.0.113.7', port: 4500 }, PROBE_SOCKETS_MAX - 10);
  const more = await p2.open({ address: '203.0.113.8', port: 4500 }, 256);
  assert.equal(more.length, 10);
  assert.equal(p2.count, PROBE_SOCKETS_MAX);
  await p2.close();
});

test('sprayPorts: distinct, in 1024..65535, never the excluded ones, the number asked', () => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 3000 }), fc.array(fc.integer({ min: 1024, max: 65535 }), { maxLength: 20 }), (n, exclude) => {
    const ports = sprayPorts('198.51.100.21', n, exclude).map((e) => e.port);
    return ports.length === n && new Set(ports).size === n && ports.every((p) => p >= 1024 && p <= 65535 && !exclude.includes(p));
  }), { numRuns: 50 });
  assert.equal(sprayPorts('x', 70_000).length, 65536 - 1024, 'never more than there are');
});

test('birthday arithmetic holds against a random-port NAT: 256 sockets, 2048 sprayed ports, a hit', async () => {
  const { probes, peer, got } = rig();
  const v = await probes.open({ address: '203.0.113.7', port: 4500 }, 256);
  for (const e of v) probes.send(Buffer.from('open'), e); // each maps a random port; the peer ignores them
  peer.onMessage(() => undefined);
  await tick();
  for (const e of sprayPorts('198.51.100.21', 2048)) peer.send(Buffer.from('probe'), e);
  await tick();
  assert.ok(got.some((g) => g.msg === 'probe'), 'a probe landed on one of the sockets');
  await probes.close();
});
