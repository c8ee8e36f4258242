// UdpSocket over loopback and the MemoryNetwork twin's delivery, copy, translate, loss and rebind.
import test from 'node:test';
import assert from 'node:assert/strict';
import { UdpSocket } from '../../agent/conn/udp-socket.js';
import { MemoryNetwork } from '../../agent/conn/memory-socket.js';
import { endpointKey, endpointKeyOf, type Endpoint } from '../../agent/conn/socket.js';

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
