// UdpSocket over loopback and the MemoryNetwork twin's delivery, copy, translate, loss and rebind.
import test from 'node:test';
import assert from 'node:assert/strict';
import { UdpSocket } from '../../agent/conn/udp-socket.js';
import { MemoryNetwork } from '../../agent/conn/memory-socket.js';
import { endpointKey, endpointKeyOf, parseEndpoint, type Endpoint } from '../../agent/conn/socket.js';

test('UdpSocket: bind, send, receive; bad destinations are counted, not thrown', async () => {
  const a = await UdpSocket.bind(0, '127.0.0.1');
  const b = await UdpSocket.bind(0, '127.0.0.1');
  assert.ok(a.local.port > 0);
  const got = new Promise<[Buffer, Endpoint]>((r) => b.onMessage((m, f) => r([Buffer.from(m), f])));
  a.send(Buffer.from('ping'), b.local);
  const [msg, from] = await got;
  assert.equal(msg.toString(), 'ping');
  assert.deepEqual(from, a.local);
  a.send(Buffer.from('x'), { address: '::1', port: 9 }); // v6 destination on a v4 socket
  a.send(Buffer.from('x'), { address: '127.0.0.1', port: 0 }); // invalid port
  await new Promise((r) => setTimeout(r, 50));
  assert.ok(a.stats.sendErrors >= 2, `sendErrors ${a.stats.sendErrors}`);
  await a.close();
  await b.close();
  await a.close(); // twice is fine
});

test('UdpSocket dual-stack: bound to "::" by default, IPv4 peers reported as IPv4 and reached from the same socket as IPv6 ones', async () => {
  const d = await UdpSocket.bind(0);
  assert.equal(d.local.address, '::');
  const v4 = await UdpSocket.bind(0, '127.0.0.1'), v6 = await UdpSocket.bind(0, '::1');
  const at4 = new Promise<Endpoint>((r) => v4.onMessage((_m, f) => r(f)));
  const at6 = new Promise<Endpoint>((r) => v6.onMessage((_m, f) => r(f)));
  d.send(Buffer.from('x'), v4.local);
  d.send(Buffer.from('y'), v6.local);
  assert.deepEqual(await at4, { address: '127.0.0.1', port: d.local.port });
  assert.deepEqual(await at6, { address: '::1', port: d.local.port });
  const back: Endpoint[] = [];
  const both = new Promise<void>((r) => d.onMessage((_m, f) => { back.push(f); if (back.length === 2) r(); }));
  v4.send(Buffer.from('a'), await at4);
  v6.send(Buffer.from('b'), await at6);
  await both;
  assert.deepEqual(new Set(back.map((e) => e.address)), new Set(['127.0.0.1', '::1']), 'unmapped, not ::ffff:127.0.0.1');
  for (const s of [d, v4, v6]) await s.close();
});

test('MemoryNetwork: async delivery of a copy, translate, seeded loss, rebind', async () => {
  const net = new MemoryNetwork({ seed: 42 });
  const a = net.socket('10.0.0.1', 1), b = net.socket('10.0.0.2', 2);
  const got: [string, Endpoint][] = [];
  b.onMessage((m, f) => got.push([m.toString(), f]));
  const buf = Buffer.from('one');
  a.send(buf, b.local);
  buf.write('two');
  assert.equal(got.length, 0, 'asynchronous');
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(got, [['one', { address: '10.0.0.1', port: 1 }]], 'bytes copied at send');

  net.setTranslate((from) => ({ address: '198.51.100.7', port: from.port + 40000 }));
  a.send(Buffer.from('natted'), b.local);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(got[1], ['natted', { address: '198.51.100.7', port: 40001 }]);
  net.setTranslate(undefined);

  a.rebind('10.0.0.9');
  a.send(Buffer.from('moved'), b.local);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(got[2], ['moved', { address: '10.0.0.9', port: 1 }]);

  const lossy = (seed: number) => {
    const n = new MemoryNetwork({ loss: 0.5, seed });
    const s = n.socket('1.1.1.1', 1);
    for (let i = 0; i < 1000; i++) s.send(Buffer.of(1), { address: '2.2.2.2', port: 2 });
    return n.stats.lost;
  };
  assert.equal(lossy(7), lossy(7), 'deterministic');
  assert.ok(lossy(7) > 400 && lossy(7) < 600);
  await a.close();
  await b.close();
});

test('MemoryNetwork: latency delays delivery', async () => {
  const net = new MemoryNetwork({ latencyMs: 30 });
  const a = net.socket('10.0.0.1', 1), b = net.socket('10.0.0.2', 2);
  const t0 = Date.now();
  const got = new Promise<number>((r) => b.onMessage(() => r(Date.now() - t0)));
  a.send(Buffer.of(1), b.local);
  const keep = setTimeout(() => {}, 1000); // delivery timers are unref'd; hold the loop open
  assert.ok((await got) >= 25);
  clearTimeout(keep);
});

test('endpointKeyOf: the same key as endpointKey, built once per object, and right after a mutation', () => {
  const e: Endpoint = { address: '2001:db8::1', port: 4500 };
  const k = endpointKeyOf(e);
  assert.equal(k, endpointKey(e));
  assert.equal(k, '[2001:db8::1]:4500');
  assert.ok(Object.is(endpointKeyOf(e), k), 'cached string returned');
  e.port = 4501;
  assert.equal(endpointKeyOf(e), '[2001:db8::1]:4501');
  e.address = '198.51.100.7';
  assert.equal(endpointKeyOf(e), '198.51.100.7:4501');
});

test('parseEndpoint: IPv4 and bracketed IPv6 (to RFC 5952 form) with a port; anything else undefined; endpointKey inverts it', () => {
  assert.deepEqual(parseEndpoint('198.51.100.7:4500'), { address: '198.51.100.7', port: 4500 });
  assert.deepEqual(parseEndpoint('[2001:DB8:0:0::100]:4500'), { address: '2001:db8::100', port: 4500 });
  assert.deepEqual(parseEndpoint('[::1]:1'), { address: '::1', port: 1 });
  for (const bad of ['2001:db8::1:4500', '[2001:db8::1]', '[2001:db8:::1]:4500', '[1:2:3:4:5:6:7:8:9]:1', '[198.51.100.7]:4500',
    '198.51.100.7:0', '198.51.100.7:65536', '[::1]:', ':4500', 'host name:1', '[::1]]:1']) {
    assert.equal(parseEndpoint(bad), undefined, bad);
  }
  for (const e of [{ address: '2001:db8:a::2', port: 4500 }, { address: '203.0.113.9', port: 1 }]) assert.deepEqual(parseEndpoint(endpointKey(e)), e);
});
