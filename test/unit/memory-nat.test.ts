// MemoryNat: mapping and filtering behaviours, port allocation, timeouts, hairpinning, nesting (CGNAT),
// overlapping inside address spaces, NAT-to-NAT hole punching and roaming between NATs.
import { test } from 'node:test';
import { SimScheduler } from '../../agent/base/scheduler.js';
import assert from 'node:assert/strict';
import { MemoryNetwork, type MemorySocket } from '../../agent/conn/memory-socket.js';
import { MemoryNat } from '../../agent/conn/memory-nat.js';
import { endpointKey, type Endpoint } from '../../agent/conn/socket.js';

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Collects what a socket receives as "text from host:port". */
function inbox(s: MemorySocket): string[] {
  const got: string[] = [];
  s.onMessage((m, f) => got.push(`${m.toString()} from ${endpointKey(f)}`));
  return got;
}
const ep = (address: string, port: number): Endpoint => ({ address, port });

test('endpoint-independent mapping, address-and-port-dependent filtering (the default home router)', async () => {
  const net = new MemoryNetwork();
  const nat = new MemoryNat(net, { publicAddress: '198.51.100.20' });
  const a = nat.socket('192.168.1.2', 4500);
  const s1 = net.socket('203.0.113.1', 3478), s2 = net.socket('203.0.113.2', 3478), s1b = net.socket('203.0.113.1', 3479);
  const [ga, g1, g2] = [inbox(a), inbox(s1), inbox(s2)];
  a.send(Buffer.from('hi1'), s1.local);
  a.send(Buffer.from('hi2'), s2.local);
  await tick();
  assert.deepEqual(g1, ['hi1 from 198.51.100.20:4500'], 'port preserved');
  assert.deepEqual(g2, ['hi2 from 198.51.100.20:4500'], 'same mapping for another destination');
  s1.send(Buffer.from('back'), ep('198.51.100.20', 4500));
  s1b.send(Buffer.from('other port'), ep('198.51.100.20', 4500));
  net.socket('203.0.113.9', 1).send(Buffer.from('stranger'), ep('198.51.100.20', 4500));
  s1.send(Buffer.from('no mapping'), ep('198.51.100.20', 4501));
  await tick();
  assert.deepEqual(ga, ['back from 203.0.113.1:3478']);
  assert.equal(nat.stats.filtered, 2);
  assert.equal(nat.stats.noMapping, 1);
  assert.equal(net.stats.natDropped, 3);
  assert.deepEqual(nat.mappings().map((m) => endpointKey(m.outside)), ['198.51.100.20:4500']);
});

test('endpoint-dependent (symmetric) and address-dependent mapping', async () => {
  for (const [mapping, expectSamePortForSameIp] of [['endpoint-dependent', false], ['address-dependent', true]] as const) {
    const net = new MemoryNetwork();
    const nat = new MemoryNat(net, { publicAddress: '198.51.100.20', mapping, filtering: 'endpoint-independent' });
    const a = nat.socket('192.168.1.2', 4500);
    const seen: string[] = [];
    for (const [ip, port] of [['203.0.113.1', 3478], ['203.0.113.1', 3479], ['203.0.113.2', 3478]] as const) {
      net.socket(ip, port).onMessage((_m, f) => seen.push(`${ip}:${port} saw ${endpointKey(f)}`));
      a.send(Buffer.of(1), ep(ip, port));
    }
    await tick();
    assert.deepEqual(seen, expectSamePortForSameIp
      ? ['203.0.113.1:3478 saw 198.51.100.20:4500', '203.0.113.1:3479 saw 198.51.100.20:4500', '203.0.113.2:3478 saw 198.51.100.20:40000']
      : ['203.0.113.1:3478 saw 198.51.100.20:4500', '203.0.113.1:3479 saw 198.51.100.20:40000', '203.0.113.2:3478 saw 198.51.100.20:40001'],
    mapping);
  }
});

test('filtering: endpoint-independent lets anyone in on a mapped port, address-dependent any port of a contacted IP', async () => {
  for (const filtering of ['endpoint-independent', 'address-dependent', 'address-and-port-dependent'] as const) {
    const net = new MemoryNetwork();
    const nat = new MemoryNat(net, { publicAddress: '198.51.100.20', filtering });
    const a = nat.socket('192.168.1.2', 4500);
    const got = inbox(a);
    const s = net.socket('203.0.113.1', 3478);
    a.send(Buffer.of(1), s.local);
    await tick();
    s.send(Buffer.from('same'), ep('198.51.100.20', 4500));
    net.socket('203.0.113.1', 9).send(Buffer.from('port'), ep('198.51.100.20', 4500));
    net.socket('203.0.113.7', 3478).send(Buffer.from('ip'), ep('198.51.100.20', 4500));
    await tick();
    const expected = { 'endpoint-independent': ['same', 'port', 'ip'], 'address-dependent': ['same', 'port'], 'address-and-port-dependent': ['same'] }[filtering];
    assert.deepEqual(got.map((g) => g.split(' ')[0]), expected, filtering);
  }
});

test('mapping timeout: an idle mapping is gone, outbound refreshes it, inbound only with inboundRefresh', async () => {
  for (const inboundRefresh of [false, true]) {
    const clock = new SimScheduler(0);
    const net = new MemoryNetwork();
    const nat = new MemoryNat(net, {
      publicAddress: '198.51.100.20', mappingTimeoutMs: 30_000, portAllocation: 'sequential', clock, inboundRefresh,
    });
    const a = nat.socket('192.168.1.2', 4500);
    const got = inbox(a);
    const s = net.socket('203.0.113.1', 3478);
    const sawFrom: string[] = [];
    s.onMessage((_m, f) => sawFrom.push(endpointKey(f)));
    a.send(Buffer.of(1), s.local);
    await tick();
    clock.step(20_000);
    s.send(Buffer.from('at20'), ep('198.51.100.20', 40000)); // passes; refreshes only with inboundRefresh
    await tick();
    clock.step(15_000);
    s.send(Buffer.from('at35'), ep('198.51.100.20', 40000));
    await tick();
    if (inboundRefresh) {
      assert.deepEqual(got.map((g) => g.split(' ')[0]), ['at20', 'at35']);
    } else {
      assert.deepEqual(got.map((g) => g.split(' ')[0]), ['at20']);
      assert.equal(nat.stats.expired, 1);
      a.send(Buffer.of(2), s.local); // a new mapping, on a new port
      await tick();
      assert.deepEqual(sawFrom, ['198.51.100.20:40000', '198.51.100.20:40001']);
    }
  }
});

test('hairpinning through the public address, and with it switched off', async () => {
  for (const hairpin of [true, false]) {
    const net = new MemoryNetwork();
    const nat = new MemoryNat(net, { publicAddress: '198.51.100.20', filtering: 'endpoint-independent', hairpin });
    const a = nat.socket('192.168.1.2', 4500), b = nat.socket('192.168.1.3', 4501);
    const gb = inbox(b);
    b.send(Buffer.of(0), ep('203.0.113.1', 1)); // b gets a mapping: 198.51.100.20:4501
    a.send(Buffer.from('hairpin'), ep('198.51.100.20', 4501));
    a.send(Buffer.from('direct'), b.local); // same inside network: straight there, no NAT
    await tick();
    assert.deepEqual(gb, hairpin
      ? ['hairpin from 198.51.100.20:4500', 'direct from 192.168.1.2:4500']
      : ['direct from 192.168.1.2:4500'], `hairpin ${hairpin}`);
  }
});

test('nested NATs (CGNAT) and two NATs reusing the same inside addresses', async () => {
  const net = new MemoryNetwork();
  const cgn = new MemoryNat(net, { publicAddress: '198.51.100.30', portAllocation: 'sequential', firstPort: 50000 });
  const home = new MemoryNat(net, { publicAddress: '100.64.0.7', parent: cgn });
  const other = new MemoryNat(net, { publicAddress: '198.51.100.40' });
  const h = home.socket('192.168.1.2', 4500), o = other.socket('192.168.1.2', 4500); // same inside address, no clash
  const [gh, go] = [inbox(h), inbox(o)];
  const s = net.socket('203.0.113.1', 3478);
  const sawFrom: Endpoint[] = [];
  s.onMessage((_m, f) => sawFrom.push(f));
  h.send(Buffer.of(1), s.local);
  o.send(Buffer.of(2), s.local);
  await tick();
  assert.deepEqual(sawFrom.map(endpointKey), ['198.51.100.30:50000', '198.51.100.40:4500']);
  for (const f of sawFrom) s.send(Buffer.from('reply'), f);
  await tick();
  assert.deepEqual(gh, ['reply from 203.0.113.1:3478']);
  assert.deepEqual(go, ['reply from 203.0.113.1:3478']);
  assert.deepEqual(home.mappings()[0]!.outside, { address: '100.64.0.7', port: 4500 });
  assert.throws(() => new MemoryNat(net, { publicAddress: '198.51.100.40' }), /already owns/);
});

test('NAT-to-NAT hole punching: cone/cone works after one dropped packet, symmetric/symmetric does not', async () => {
  for (const mapping of ['endpoint-independent', 'endpoint-dependent'] as const) {
    const net = new MemoryNetwork();
    const na = new MemoryNat(net, { publicAddress: '198.51.100.1', mapping, portAllocation: 'sequential' });
    const nb = new MemoryNat(net, { publicAddress: '198.51.100.2', mapping, portAllocation: 'sequential' });
    const a = na.socket('10.0.0.2', 4500), b = nb.socket('10.0.0.2', 4500);
    const [ga, gb] = [inbox(a), inbox(b)];
    const rendezvous = net.socket('203.0.113.1', 3478);
    const learned: Endpoint[] = [];
    rendezvous.onMessage((_m, f) => learned.push(f));
    a.send(Buffer.of(0), rendezvous.local);
    b.send(Buffer.of(0), rendezvous.local);
    await tick();
    const [pa, pb] = learned as [Endpoint, Endpoint]; // what the rendezvous tells each side about the other
    a.send(Buffer.from('a1'), pb); // dropped by B's NAT (no permission yet), opens A's
    await tick();
    b.send(Buffer.from('b1'), pa);
    a.send(Buffer.from('a2'), pb);
    await tick();
    if (mapping === 'endpoint-independent') {
      assert.deepEqual(ga, ['b1 from 198.51.100.2:40000']);
      assert.deepEqual(gb, ['a2 from 198.51.100.1:40000']);
    } else {
      assert.deepEqual([ga, gb], [[], []], 'new mappings per destination: the learned ports are wrong');
    }
  }
});

test('random port allocation is seeded; rebind moves a socket into another NAT', async () => {
  const ports = (seed: number): number[] => {
    const net = new MemoryNetwork();
    const nat = new MemoryNat(net, { publicAddress: '198.51.100.20', mapping: 'endpoint-dependent', portAllocation: 'random', seed });
    const a = nat.socket('10.0.0.2', 4500);
    for (let i = 1; i <= 5; i++) a.send(Buffer.of(i), ep('203.0.113.1', i));
    return nat.mappings().map((m) => m.outside.port);
  };
  assert.deepEqual(ports(3), ports(3));
  assert.notDeepEqual(ports(3), ports(4));
  assert.ok(ports(3).every((p) => p >= 1024 && p <= 65535));

  const net = new MemoryNetwork();
  const n1 = new MemoryNat(net, { publicAddress: '198.51.100.1' }), n2 = new MemoryNat(net, { publicAddress: '198.51.100.2' });
  const h = n1.socket('192.168.1.2', 4500);
  const s = net.socket('203.0.113.1', 3478);
  const from: string[] = [];
  s.onMessage((_m, f) => from.push(endpointKey(f)));
  h.send(Buffer.of(1), s.local);
  h.rebind('10.1.0.5', 4500, n2);
  h.send(Buffer.of(2), s.local);
  h.rebind('203.0.113.50', 4500, null); // now on the public network itself
  h.send(Buffer.of(3), s.local);
  await tick();
  assert.deepEqual(from, ['198.51.100.1:4500', '198.51.100.2:4500', '203.0.113.50:4500']);
  await h.close();
  assert.equal(n2.sockets.size, 0);
});
