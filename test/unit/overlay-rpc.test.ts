import test from 'node:test';
import assert from 'node:assert/strict';
import { Rpc, type RpcCodec } from '../../agent/overlay/rpc.js';
import { SimScheduler } from '../../agent/base/scheduler.js';
import type { Endpoint } from '../../agent/conn/socket.js';

// A tiny binary codec: [kind 0|1][txid u64][body utf8], to show the RPC runs over bytes.
const codec: RpcCodec<string, string, Uint8Array> = {
  encodeRequest: (txid, body) => enc(0, txid, body),
  encodeResponse: (txid, body) => enc(1, txid, body),
  decode: (w) => {
    if (w.length < 9 || w[0]! > 1) return undefined;
    const b = Buffer.from(w);
    const txid = b.readBigUInt64BE(1);
    const body = b.subarray(9).toString();
    return w[0] === 0 ? { kind: 'request', txid, body } : { kind: 'response', txid, body };
  },
};
function enc(kind: number, txid: bigint, body: string): Uint8Array {
  const b = Buffer.alloc(9 + Buffer.byteLength(body));
  b[0] = kind; b.writeBigUInt64BE(txid, 1); b.write(body, 9);
  return b;
}

const A: Endpoint = { address: '10.0.0.1', port: 1 };
const B: Endpoint = { address: '10.0.0.2', port: 1 };

function pair(opts: { dropToB?: (n: number) => boolean; dropToA?: (n: number) => boolean; latency?: number } = {}) {
  const s = new SimScheduler();
  const sentAt: number[] = [];
  let toB = 0;
  let toA = 0;
  let applied = 0;
  const lat = opts.latency ?? 10;
  let a!: Rpc<string, string>;
  let b!: Rpc<string, string>;
  a = new Rpc<string, string>({
    scheduler: s, codec, handler: () => undefined,
    send: (w) => { sentAt.push(s.now()); if (opts.dropToB?.(toB++)) return; s.setTimer(lat, () => b.onMessage(w, A)); },
  });
  b = new Rpc<string, string>({
    scheduler: s, codec, handler: (body) => { applied++; return `ok:${body}`; },
    send: (w) => { if (opts.dropToA?.(toA++)) return; s.setTimer(lat, () => a.onMessage(w, B)); },
  });
  return { s, a, b, sentAt, applied: () => applied };
}

test('request/response matched by transaction id', async () => {
  const { s, a } = pair();
  const p = a.request(B, 'hello');
  await s.run();
  const r = await p;
  assert.ok(r.ok);
  assert.equal(r.value, 'ok:hello');
  assert.equal(r.rttMs, 20);
  assert.equal(r.tries, 1);
});

test('lost requests are retransmitted at 250, 750 ms (doubling); answer on the third try', async () => {
  const { s, a, sentAt, applied } = pair({ dropToB: (n) => n < 2 });
  const p = a.request(B, 'x');
  await s.run();
  const r = await p;
  assert.ok(r.ok);
  assert.equal(r.tries, 3);
  assert.deepEqual(sentAt, [0, 250, 750]);
  assert.equal(applied(), 1);
});

test('no answer: fails after 3 tries, 1750 ms', async () => {
  const { s, a, sentAt } = pair({ dropToB: () => true });
  let settledAt = -1;
  const p = a.request(B, 'x').then((r) => { settledAt = s.now(); return r; });
  await s.run();
  const r = await p;
  assert.equal(r.ok, false);
  assert.equal(!r.ok && r.reason, 'timeout');
  assert.deepEqual(sentAt, [0, 250, 750]);
  assert.equal(settledAt, 1750);
  assert.equal(a.stats.timeouts, 1);
});

test('lost response: retransmitted request answered from the cache, handler applied once', async () => {
  const { s, a, b, applied } = pair({ dropToA: (n) => n === 0 });
  const p = a.request(B, 'store');
  await s.run();
  const r = await p;
  assert.ok(r.ok);
  assert.equal(r.value, 'ok:store');
  assert.equal(applied(), 1, 'STORE not applied twice');
  assert.equal(b.stats.duplicateRequests, 1);
});

test('duplicate responses are ignored', async () => {
  // latency 300 ms > first timeout: the request goes twice, both get answered; the second answer is a duplicate
  const { s, a, b, applied } = pair({ latency: 300 });
  const p = a.request(B, 'slow');
  await s.run();
  const r = await p;
  assert.ok(r.ok);
  assert.equal(r.tries, 2);
  assert.equal(applied(), 1);
  assert.equal(b.stats.duplicateRequests, 1);
  assert.equal(a.stats.responsesMatched, 1);
  assert.equal(a.stats.duplicateResponses, 1);
});

test('malformed datagrams are counted, never thrown; close fails what is in flight', async () => {
  const { s, a } = pair({ dropToB: () => true });
  a.onMessage(Uint8Array.of(7), A);
  assert.equal(a.stats.malformed, 1);
  const p = a.request(B, 'x');
  a.close();
  const r = await p;
  assert.equal(!r.ok && r.reason, 'closed');
  await s.run();
});
