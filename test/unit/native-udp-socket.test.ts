// NativeUdpSocket (native-helpers/udp.c) over loopback: batched exchange with exact contents and
// endpoints, flushing rules, close from inside the receive callback, and errors counted, not thrown.
import test from 'node:test';
import assert from 'node:assert/strict';
import { NativeUdpSocket, parseIpv4 } from '../../agent/conn/native-udp-socket.js';
import { UDP_BATCH } from '../../agent/base/constants.js';
import type { Endpoint } from '../../agent/conn/socket.js';
import { Worker } from 'node:worker_threads';

const skip = !NativeUdpSocket.available() && 'idloc_net addon not built';
const turn = () => new Promise((r) => setImmediate(r));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Datagram i: 4-byte index, then (i * 7) % 1400 bytes of a pattern derived from i. */
function datagram(i: number, from: number): Buffer {
  const b = Buffer.alloc(8 + ((i * 7) % 1400));
  b.writeUInt32LE(i, 0);
  b.writeUInt32LE(from, 4);
  for (let j = 8; j < b.length; j++) b[j] = (i + j * 31) & 255;
  return b;
}

/** Collects what a socket receives, and how many JS-visible batches it came in: microtasks run after
 *  each addon callback, so one microtask per batch marks its end. */
function collect(s: NativeUdpSocket) {
  const got: { msg: Buffer; from: Endpoint }[] = [];
  const r = { got, batches: 0 };
  let open = false;
  s.onMessage((msg, from) => {
    got.push({ msg: Buffer.from(msg), from });
    if (!open) {
      open = true;
      queueMicrotask(() => { r.batches++; open = false; });
    }
  });
  return r;
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await sleep(5);
  }
}

test('two NativeUdpSockets exchange thousands of datagrams in batches, contents and endpoints intact', { skip }, async () => {
  const a = NativeUdpSocket.bind(0, '127.0.0.1'), b = NativeUdpSocket.bind(0, '127.0.0.1');
  assert.equal(a.local.address, '127.0.0.1');
  assert.ok(a.local.port > 0 && a.local.port !== b.local.port);
  const ra = collect(a), rb = collect(b);
  const N = 5000;
  // Bursts of 250 per turn: more than one batch each, so both the full-batch and the end-of-turn
  // flush are exercised; both directions at once.
  for (let sent = 0; sent < N; sent += 250) {
    for (let i = sent; i < sent + 250; i++) {
      a.send(datagram(i, 1), b.local);
      b.send(datagram(i, 2), a.local);
    }
    await turn();
  }
  await until(() => ra.got.length === N && rb.got.length === N);
  for (const [r, from, tag] of [[rb, a.local, 1], [ra, b.local, 2]] as const) {
    r.got.forEach(({ msg, from: f }, i) => {
      assert.deepEqual(msg, datagram(i, tag), `datagram ${i} intact and in order`);
      assert.deepEqual(f, from);
    });
    assert.equal(r.got[0]!.from, r.got[N - 1]!.from, 'one endpoint object per source, reused');
    assert.ok(r.batches < N / 4, `delivered in batches (${r.batches} callbacks for ${N})`);
  }
  assert.equal(a.stats.sent, N);
  assert.equal(b.stats.received, N);
  assert.equal(a.stats.sendErrors + a.stats.dropped + b.stats.truncated, 0);

  // Big datagrams: several do not fit the send arena together, which flushes early; none is cut short.
  const big = Buffer.alloc(60_000, 0xab);
  for (let i = 0; i < 6; i++) a.send(big, b.local);
  a.flush(); // explicit flush sends now, no turn needed
  await until(() => rb.got.length === N + 6);
  assert.ok(rb.got.slice(N).every(({ msg }) => msg.equals(big)));
  await a.close();
  await b.close();
});

test('send copies: the caller may reuse its buffer before the batch leaves', { skip }, async () => {
  const a = NativeUdpSocket.bind(0, '127.0.0.1'), b = NativeUdpSocket.bind(0, '127.0.0.1');
  const r = collect(b);
  const buf = Buffer.from('first');
  a.send(buf, b.local);
  buf.write('XXXXX');
  a.send(buf, b.local);
  await until(() => r.got.length === 2);
  assert.deepEqual(r.got.map((g) => g.msg.toString()), ['first', 'XXXXX']);
  await a.close();
  await b.close();
});

test('close() from inside the receive callback stops delivery cleanly; close twice is fine', { skip }, async () => {
  const a = NativeUdpSocket.bind(0, '127.0.0.1'), b = NativeUdpSocket.bind(0, '127.0.0.1');
  let seen = 0;
  const closed = new Promise<void>((resolve) => {
    b.onMessage(() => {
      seen++;
      void b.close().then(resolve);
    });
  });
  for (let i = 0; i < UDP_BATCH * 3; i++) a.send(datagram(i, 1), b.local);
  a.flush();
  await closed;
  await sleep(50); // the remaining datagrams and libuv's close callback have had their chance
  assert.equal(seen, 1, 'nothing delivered after close, not even the rest of the batch');
  b.send(Buffer.of(1), a.local); // after close: counted, not thrown
  assert.equal(b.stats.sendErrors, 1);
  await b.close();
  // The port is free again at once.
  const again = NativeUdpSocket.bind(b.local.port, '127.0.0.1');
  await again.close();
  await a.close();
});

test('unreachable and invalid destinations are counted, never thrown; the socket keeps working', { skip }, async () => {
  const a = NativeUdpSocket.bind(0, '127.0.0.1'), b = NativeUdpSocket.bind(0, '127.0.0.1');
  const r = collect(b);
  const closedPort = NativeUdpSocket.bind(0, '127.0.0.1');
  const deadPort = closedPort.local.port;
  await closedPort.close();
  a.send(Buffer.of(1), { address: '255.255.255.255', port: 9 }); // EACCES: broadcast not enabled
  a.send(Buffer.of(1), { address: '::1', port: 9 }); // IPv6 on this IPv4-only socket
  a.send(Buffer.of(1), { address: 'not an address', port: 9 });
  a.send(Buffer.of(1), { address: '127.0.0.1', port: 0 });
  a.send(Buffer.of(1), { address: '127.0.0.1', port: 70000 });
  a.send(Buffer.of(1), { address: '127.0.0.1', port: deadPort }); // ICMP port unreachable comes back
  a.flush();
  assert.equal(a.stats.sendErrors, 5);
  await sleep(20);
  a.send(Buffer.from('still here'), b.local);
  await until(() => r.got.length === 1);
  assert.equal(r.got[0]!.msg.toString(), 'still here');
  assert.equal(a.stats.recvErrors, 0);
  assert.throws(() => NativeUdpSocket.bind(b.local.port, '127.0.0.1'), { code: 'EADDRINUSE' });
  assert.throws(() => NativeUdpSocket.bind(0, 'fe80::1::2'), TypeError, 'not an IP address');
  await a.close();
  await b.close();
});

test('a worker torn down with sockets open and datagrams in flight exits cleanly (async cleanup hook)', { skip }, async () => {
  const mod = new URL('../../agent/conn/native-udp-socket.js', import.meta.url).href;
  const src = `import(${JSON.stringify(mod)}).then(({ NativeUdpSocket }) => {
    const a = NativeUdpSocket.bind(0, '127.0.0.1'), b = NativeUdpSocket.bind(0, '127.0.0.1');
    b.onMessage(() => {});
    for (let i = 0; i < 200; i++) a.send(Buffer.alloc(100), b.local);
    require('node:worker_threads').parentPort.postMessage('up');
    setInterval(() => {}, 1000);
  });`;
  for (let i = 0; i < 10; i++) {
    const w = new Worker(src, { eval: true });
    await new Promise((r) => w.once('message', r));
    await w.terminate();
  }
});

test('dual-stack: one socket on "::" talks to IPv4 and IPv6 peers; IPv4 peers are reported as IPv4, each source as one object', { skip }, async () => {
  const d = NativeUdpSocket.bind(0);
  assert.equal(d.local.address, '::');
  const v4 = NativeUdpSocket.bind(0, '127.0.0.1'), v6 = NativeUdpSocket.bind(0, '::1');
  assert.equal(v6.local.address, '::1');
  const rd = collect(d), r4 = collect(v4), r6 = collect(v6);
  for (let i = 0; i < 3; i++) {
    d.send(datagram(i, 4), { address: '127.0.0.1', port: v4.local.port });
    d.send(datagram(i, 6), { address: '::1', port: v6.local.port });
  }
  await until(() => r4.got.length === 3 && r6.got.length === 3);
  assert.deepEqual(r4.got.map((g) => g.from), Array(3).fill({ address: '127.0.0.1', port: d.local.port }));
  assert.deepEqual(r6.got.map((g) => g.from), Array(3).fill({ address: '::1', port: d.local.port }));
  assert.deepEqual(r6.got.map((g) => g.msg), [0, 1, 2].map((i) => datagram(i, 6)));
  v4.send(Buffer.from('four'), r4.got[0]!.from);
  v4.send(Buffer.from('four'), r4.got[0]!.from);
  v6.send(Buffer.from('six'), r6.got[0]!.from);
  v6.send(Buffer.from('six'), r6.got[0]!.from);
  await until(() => rd.got.length === 4);
  const by = (t: string) => rd.got.filter((g) => g.msg.toString() === t).map((g) => g.from);
  assert.deepEqual(by('four'), Array(2).fill({ address: '127.0.0.1', port: v4.local.port }), 'unmapped, not ::ffff:127.0.0.1');
  assert.deepEqual(by('six'), Array(2).fill({ address: '::1', port: v6.local.port }));
  assert.equal(by('six')[0], by('six')[1], 'one endpoint object per IPv6 source');
  assert.equal(by('four')[0], by('four')[1], 'one endpoint object per IPv4 source');
  assert.equal(d.stats.sendErrors, 0);
  for (const s of [d, v4, v6]) await s.close();
});

test('parseIpv4', () => {
  assert.equal(parseIpv4('1.2.3.4'), 0x01020304);
  assert.equal(parseIpv4('255.255.255.255'), 0xffffffff);
  assert.equal(parseIpv4('::ffff:10.0.0.1'), 0x0a000001);
  for (const bad of ['1.2.3', '1.2.3.256', '01.2.3.4', '::1', '', '1.2.3.4 ']) assert.equal(parseIpv4(bad), -1, bad);
});

test('a send pinned to an interface (Endpoint.via) leaves through it: loopback delivers, an interface that does not exist is a counted error', { skip }, async () => {
  const a = NativeUdpSocket.bind(0, '127.0.0.1');
  const b = NativeUdpSocket.bind(0, '127.0.0.1');
  try {
    const got: Buffer[] = [];
    b.onMessage((m) => got.push(Buffer.from(m)));
    a.send(Buffer.from('pinned'), { address: '127.0.0.1', port: b.local.port, via: 1 }); // lo is index 1
    a.send(Buffer.from('nowhere'), { address: '127.0.0.1', port: b.local.port, via: 0x7ffffff0 });
    a.send(Buffer.from('plain'), { address: '127.0.0.1', port: b.local.port });
    a.flush();
    for (let i = 0; i < 50 && got.length < 2; i++) await sleep(10);
    assert.deepEqual(got.map((g) => g.toString()).sort(), ['pinned', 'plain']);
    assert.equal(a.stats.sendErrors, 1);
    assert.equal(a.stats.sent, 2);
  } finally {
    await a.close();
    await b.close();
  }
});
