// StunEndpoint: the server role (Binding success with XOR-MAPPED-ADDRESS, 420 for CHANGE-REQUEST), our
// transactions (retransmission, timeouts, source and integrity checks), ICE checks with short-term
// credentials and role conflicts, and malformed input counted, never thrown.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { MemoryNetwork, type MemorySocket } from '../../agent/conn/memory-socket.js';
import { MemoryNat } from '../../agent/conn/memory-nat.js';
import { StunEndpoint, type IncomingCheck, type StunEndpointOptions } from '../../agent/nat/stun-endpoint.js';
import { ATTR, stunType } from '../../agent/nat/stun-wire.js';
import { encodeBindingError, encodeBindingRequest, encodeBindingSuccess, parseStun } from '../../agent/nat/stun-binding.js';
import { STUN_MAX_PENDING, STUN_PADDED_REQUEST_BYTES } from '../../agent/base/constants.js';
import type { Endpoint } from '../../agent/conn/socket.js';

interface StunLibMessage { type: number; transactionId: Buffer; getXorAddress(): { address: string; port: number } | undefined }
const stun = createRequire(import.meta.url)('stun') as {
  decode(b: Buffer): StunLibMessage;
  validateFingerprint(m: StunLibMessage): boolean;
  validateMessageIntegrity(m: StunLibMessage, key: string): boolean;
  createMessage(type: number, txid?: Buffer): { addAttribute(t: number, ...v: unknown[]): unknown; addUsername(u: string): unknown; addMessageIntegrity(k: string): unknown; addFingerprint(): unknown; toBuffer(): Buffer };
};

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Value of the first attribute of this type in a STUN message (a test-side walk, independent of parseStun). */
function attrValue(msg: Buffer, type: number): Buffer | undefined {
  for (let o = 20; o + 4 <= msg.length; o += 4 + ((msg.readUInt16BE(o + 2) + 3) & ~3)) {
    if (msg.readUInt16BE(o) === type) return msg.subarray(o + 4, o + 4 + msg.readUInt16BE(o + 2));
  }
  return undefined;
}
const txid = (): Buffer => Buffer.from('0123456789ab');

/** A StunEndpoint on a memory socket; `drop(n)` makes the socket ignore its next n datagrams. */
function attach(sock: MemorySocket, opts: Partial<StunEndpointOptions> = {}): StunEndpoint & { sent: number } {
  const e = new StunEndpoint({ send: (b, to) => { e.sent++; sock.send(b, to); }, ...opts }) as StunEndpoint & { sent: number };
  e.sent = 0;
  sock.onMessage((m, f) => e.handleDatagram(m, f));
  return e;
}

test('server role: a Binding request gets XOR-MAPPED-ADDRESS = its source, with FINGERPRINT (checked by the stun package)', async () => {
  const net = new MemoryNetwork();
  const server = attach(net.socket('203.0.113.1', 3478));
  const client = net.socket('198.51.100.9', 4500);
  const got: Buffer[] = [];
  client.onMessage((m) => got.push(Buffer.from(m)));
  client.send(encodeBindingRequest(txid(), { padTo: STUN_PADDED_REQUEST_BYTES }), { address: '203.0.113.1', port: 3478 });
  await tick();
  assert.equal(got.length, 1);
  const d = stun.decode(got[0]!);
  assert.equal(d.type, 0x0101);
  assert.deepEqual(d.transactionId, txid());
  assert.deepEqual({ ...d.getXorAddress() }, { address: '198.51.100.9', port: 4500, family: 'IPv4' });
  assert.ok(stun.validateFingerprint(d));
  assert.equal(server.stats.answered, 1);
});

test('binding(): mapped address and RTT, directly, from IPv6, and through a NAT', async () => {
  const net = new MemoryNetwork();
  attach(net.socket('203.0.113.1', 3478));
  attach(net.socket('2001:db8::1', 3478));
  const direct = attach(net.socket('198.51.100.9', 4500));
  const r = await direct.binding({ address: '203.0.113.1', port: 3478 });
  assert.deepEqual(r?.mapped, { address: '198.51.100.9', port: 4500 });
  assert.ok(r!.rttMs >= 0 && r!.rttMs < 100);
  const v6 = attach(net.socket('2001:db8:0:1::5', 4500));
  assert.deepEqual((await v6.binding({ address: '2001:db8::1', port: 3478 }))?.mapped, { address: '2001:db8:0:1::5', port: 4500 });
  const nat = new MemoryNat(net, { publicAddress: '198.51.100.20', portAllocation: 'sequential' });
  const behind = attach(nat.socket('192.168.1.2', 4500));
  assert.deepEqual((await behind.binding({ address: '203.0.113.1', port: 3478 }))?.mapped, { address: '198.51.100.20', port: 40000 });
  assert.equal(direct.stats.responses, 1);
  assert.equal(direct.pendingCount, 0);
});

test('retransmission: lost requests are re-sent (same transaction id) with a doubling RTO, then given up', async () => {
  const net = new MemoryNetwork();
  const serverSock = net.socket('203.0.113.1', 3478);
  const server = new StunEndpoint({ send: (b, to) => serverSock.send(b, to) });
  let dropped = 0;
  const ids = new Set<string>();
  serverSock.onMessage((m, f) => {
    ids.add(Buffer.from(m.subarray(8, 20)).toString('hex'));
    if (dropped++ < 2) return; // the first two requests are "lost"
    server.handleDatagram(m, f);
  });
  const client = attach(net.socket('198.51.100.9', 4500));
  const t0 = performance.now();
  const ok = await client.request({ address: '203.0.113.1', port: 3478 }, { padTo: STUN_PADDED_REQUEST_BYTES }, { rtoMs: 20 });
  const elapsed = performance.now() - t0;
  assert.equal(ok.kind, 'success');
  assert.equal(ok.kind === 'success' && ok.transmits, 3);
  assert.ok(elapsed >= 55, `sent at 0, 20, 60 ms: ${elapsed}`);
  assert.equal(ids.size, 1, 'one transaction id for all transmissions');
  assert.equal(client.stats.retransmits, 2);

  const lonely = attach(net.socket('198.51.100.10', 4500));
  const t1 = performance.now();
  const gone = await lonely.request({ address: '203.0.113.99', port: 3478 }, {}, { rtoMs: 10, maxTransmits: 3 });
  assert.deepEqual(gone, { kind: 'timeout', transmits: 3 });
  assert.ok(performance.now() - t1 >= 65, 'waits 10 + 20 + 40 ms');
  assert.equal(lonely.sent, 3);
  assert.equal(await lonely.binding({ address: '203.0.113.99', port: 3478 }, { rtoMs: 5, maxTransmits: 1 }), undefined);
  assert.equal(lonely.stats.timeouts, 2);
});

test('responses: matched by transaction id and source; late, forged and wrong-source answers are counted', async () => {
  let request: Buffer | undefined;
  const ep = new StunEndpoint({ send: (b) => { request = Buffer.from(b); } });
  const server: Endpoint = { address: '203.0.113.1', port: 3478 };
  const p = ep.request(server);
  const tx = request!.subarray(8, 20);
  const answer = encodeBindingSuccess(Buffer.from(tx), { address: '198.51.100.9', port: 4500 });
  ep.handleDatagram(answer, { address: '203.0.113.66', port: 3478 }); // someone else
  ep.handleDatagram(encodeBindingSuccess(Buffer.from('xxxxxxxxxxxx'), { address: '1.2.3.4', port: 1 }), server); // no such tx
  assert.equal(ep.pendingCount, 1);
  ep.handleDatagram(answer, server);
  const r = await p;
  assert.equal(r.kind, 'success');
  assert.deepEqual(r.kind === 'success' && r.mapped, { address: '198.51.100.9', port: 4500 });
  ep.handleDatagram(answer, server); // a duplicate after completion
  assert.equal(ep.stats.unmatched, 3);
  assert.equal(ep.stats.responses, 1);

  // anySource (RFC 5780 change tests): the answer may come from the server's other address
  const q = ep.request(server, { changeIp: true, changePort: true }, { anySource: true });
  ep.handleDatagram(encodeBindingSuccess(Buffer.from(request!.subarray(8, 20)), { address: '198.51.100.9', port: 4500 }), { address: '203.0.113.2', port: 3479 });
  const rq = await q;
  assert.deepEqual(rq.kind === 'success' && rq.from, { address: '203.0.113.2', port: 3479 });
  assert.equal(parseStun(request!)?.changeRequest, 0x6);
  ep.close();
});

test('ICE checks: signed request, onCheck sees the attributes, signed response; wrong passwords go nowhere', async () => {
  const net = new MemoryNetwork();
  const checks: IncomingCheck[] = [];
  const b = attach(net.socket('10.0.0.2', 4500), {
    passwordFor: (u) => (u === 'bU:aU' ? 'b-password' : undefined),
    onCheck: (c) => { checks.push(c); },
  });
  const a = attach(net.socket('10.0.0.1', 4500));
  const to = { address: '10.0.0.2', port: 4500 };
  const base = { username: 'bU:aU', password: 'b-password', priority: 0xfe00_00ff, controlling: true, tieBreaker: 0x1234_5678_9abc_def0n };
  const r = await a.check(to, { ...base, useCandidate: true });
  assert.equal(r.kind, 'success');
  assert.deepEqual(r.kind === 'success' && r.mapped, { address: '10.0.0.1', port: 4500 });
  assert.equal(checks.length, 1);
  const { txid: id, ...c } = checks[0]!;
  assert.match(id, /^[0-9a-f]{24}$/);
  assert.deepEqual(c, {
    username: 'bU:aU', priority: 0xfe00_00ff, useCandidate: true, controlling: true, tieBreaker: 0x1234_5678_9abc_def0n,
    from: { address: '10.0.0.1', port: 4500 },
  });

  const fast = { rtoMs: 5, maxTransmits: 2 };
  assert.equal((await a.check(to, { ...base, password: 'wrong' }, fast)).kind, 'timeout');
  assert.equal(b.stats.badIntegrity, 2, 'both transmissions refused');
  assert.equal((await a.check(to, { ...base, username: 'nobody:aU' }, fast)).kind, 'timeout');
  // A check without PRIORITY, or a plain request carrying MESSAGE-INTEGRITY without USERNAME: dropped.
  const sock = net.socket('10.0.0.3', 4500);
  const m = stun.createMessage(0x0001);
  m.addUsername('bU:aU'); m.addMessageIntegrity('b-password'); m.addFingerprint();
  sock.send(m.toBuffer(), to);
  const m2 = stun.createMessage(0x0001);
  m2.addMessageIntegrity('b-password');
  sock.send(m2.toBuffer(), to);
  await tick();
  assert.equal(b.stats.unauthenticated, 2 + 2);
  assert.equal(checks.length, 1);
  assert.equal(b.stats.answered, 1);
});

test('ICE checks: role conflict answered 487 (signed), drop answers nothing, forged responses are ignored', async () => {
  const net = new MemoryNetwork();
  let reply: 'role-conflict' | 'drop' = 'role-conflict';
  attach(net.socket('10.0.0.2', 4500), { passwordFor: () => 'pw', onCheck: () => reply });
  const a = attach(net.socket('10.0.0.1', 4500));
  const to = { address: '10.0.0.2', port: 4500 };
  const c = { username: 'b:a', password: 'pw', priority: 1, controlling: false, tieBreaker: 7n };
  const r = await a.check(to, c);
  assert.equal(r.kind, 'error');
  assert.equal(r.kind === 'error' && r.code, 487);
  reply = 'drop';
  assert.equal((await a.check(to, c, { rtoMs: 5, maxTransmits: 2 })).kind, 'timeout');

  // A response to a check must verify with the remote password; a forged one does not complete it.
  let req: Buffer | undefined;
  const e = new StunEndpoint({ send: (b) => { req = Buffer.from(b); } });
  const p = e.check(to, c);
  const tx = Buffer.from(req!.subarray(8, 20));
  e.handleDatagram(encodeBindingSuccess(tx, { address: '6.6.6.6', port: 666 }), to); // unsigned
  e.handleDatagram(encodeBindingSuccess(tx, { address: '6.6.6.6', port: 666 }, 'evil'), to); // wrong key
  assert.equal(e.stats.badIntegrity, 2);
  e.handleDatagram(encodeBindingSuccess(tx, { address: '10.0.0.1', port: 4500 }, 'pw'), to);
  const ok = await p;
  assert.deepEqual(ok.kind === 'success' && ok.mapped, { address: '10.0.0.1', port: 4500 });
});

test('CHANGE-REQUEST and unknown comprehension-required attributes get 420 with UNKNOWN-ATTRIBUTES', async () => {
  const net = new MemoryNetwork();
  // 10.0.0.9 proved return routability (the overlay says so): no padding needed for it.
  const server = attach(net.socket('203.0.113.1', 3478), { verified: (f) => f.address === '10.0.0.9' });
  const a = attach(net.socket('10.0.0.1', 4500));
  const r = await a.request({ address: '203.0.113.1', port: 3478 }, { changeIp: true, padTo: STUN_PADDED_REQUEST_BYTES });
  assert.equal(r.kind === 'error' && r.code, 420);
  const got: Buffer[] = [];
  const sock = net.socket('10.0.0.9', 1);
  sock.onMessage((m) => got.push(Buffer.from(m)));
  const m = stun.createMessage(0x0001, txid());
  m.addAttribute(0x0027, 1234); // RESPONSE-PORT: comprehension-required, not implemented
  m.addAttribute(0x802f, 'ORIGIN: comprehension-optional, ignored');
  sock.send(m.toBuffer(), { address: '203.0.113.1', port: 3478 });
  await tick();
  const p = parseStun(got[0]!);
  assert.equal(p?.errorCode, 420);
  assert.deepEqual(attrValue(got[0]!, ATTR.UNKNOWN_ATTRIBUTES), Buffer.of(0x00, 0x27));
  assert.ok(attrValue(got[0]!, ATTR.FINGERPRINT));
  assert.equal(server.stats.unknownAttribute, 2);
});

test('garbage, truncated and corrupted datagrams are counted as malformed, never thrown, never answered', async () => {
  // Recorded, not thrown: the endpoint counts a throwing send as a sendError, which would hide the answer.
  const answers: Uint8Array[] = [];
  const e = new StunEndpoint({ send: (b) => { answers.push(b); } });
  const from = { address: '198.51.100.9', port: 4500 };
  const good = encodeBindingRequest(txid());
  const cases: Uint8Array[] = [
    new Uint8Array(0), Uint8Array.of(0), Uint8Array.of(1, 1, 0, 0), good.subarray(0, 19), good.subarray(0, 20), good.subarray(0, good.length - 1),
    Buffer.concat([good, Buffer.alloc(4)]), // trailing bytes beyond the header length
  ];
  const badFp = Buffer.from(good); badFp[badFp.length - 1]! ^= 1; cases.push(badFp);
  const badCookie = Buffer.from(good); badCookie[5]! ^= 0x10; cases.push(badCookie);
  const badTop = Buffer.from(good); badTop[0] = 0x41; cases.push(badTop);
  const badLen = Buffer.from(good); badLen.writeUInt16BE(good.length - 20 + 4, 2); cases.push(badLen);
  for (let i = 0; i < 200; i++) {
    const r = Buffer.from(Array.from({ length: i % 64 }, (_, j) => (i * 31 + j * 17) & 0xff));
    r[0] = r[0]! & 3; cases.push(r);
  }
  for (const c of cases) e.handleDatagram(c, from);
  assert.equal(e.stats.received, cases.length);
  assert.equal(e.stats.malformed, cases.length);
  // Indications are counted, other methods go to onOther, success responses nobody asked for are unmatched.
  let other = 0;
  const f = new StunEndpoint({ send: (b) => { answers.push(b); }, onOther: () => { other++; } });
  f.handleDatagram(stun.createMessage(stunType(1, 1)).toBuffer(), from);
  f.handleDatagram(stun.createMessage(0x0003).toBuffer(), from); // TURN Allocate request
  f.handleDatagram(encodeBindingError(txid(), 400), from);
  assert.deepEqual([f.stats.indications, f.stats.other, other, f.stats.unmatched], [1, 1, 1, 1]);
  await tick();
  assert.equal(answers.length, 0, 'must not answer');
  assert.deepEqual([e.stats.sendErrors, f.stats.sendErrors, e.stats.answered, f.stats.answered], [0, 0, 0, 0]);
});

test('close() ends pending transactions and stops answering; STUN_MAX_PENDING bounds the table', async () => {
  const e = new StunEndpoint({ send: () => {} });
  const ps = Array.from({ length: STUN_MAX_PENDING }, () => e.request({ address: '203.0.113.1', port: 3478 }));
  assert.deepEqual(await e.request({ address: '203.0.113.1', port: 3478 }), { kind: 'failed', reason: `${STUN_MAX_PENDING} transactions already pending` });
  e.close();
  for (const o of await Promise.all(ps)) assert.deepEqual(o, { kind: 'failed', reason: 'closed' });
  assert.equal((await e.request({ address: '203.0.113.1', port: 3478 })).kind, 'failed');
  e.handleDatagram(encodeBindingRequest(txid()), { address: '1.2.3.4', port: 5 }); // no answer (send would not throw anyway)
  assert.equal(e.stats.answered, 0);
  assert.equal(e.stats.refused, 2);
  assert.equal(ATTR.XOR_MAPPED_ADDRESS, 0x20);
});
