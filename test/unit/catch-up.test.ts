// Catch-up (tunnel/catch-up.ts), on twins: a sends to b, b moves to a new address and a's packets go
// nowhere for a while; b's first authenticated packet from the new address moves a's endpoint, and what
// a sent into the silence reaches b at once, each packet once. Only after a real silence, only once, at
// most CATCH_UP_PACKETS_MAX, never on an unauthenticated packet.
import test from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import fc from 'fast-check';
import { ed25519 } from '@noble/curves/ed25519.js';
import { Tunnels } from '../../agent/tunnel/tunnels.js';
import { CATCH_ME_UP_BYTES, CTRL_CATCH_ME_UP, CatchUp, marshalCatchMeUp, parseCatchMeUp } from '../../agent/tunnel/catch-up.js';
import { MemoryNetwork } from '../../agent/conn/memory-socket.js';
import { CATCH_UP_PACKETS_MAX, CATCH_UP_SILENCE_MS, RECEIVE_SILENT_MS } from '../../agent/base/constants.js';
import type { DatagramSocket, Endpoint } from '../../agent/conn/socket.js';

const silent = pino({ level: 'silent' });
const settle = async () => { for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r)); };

function world() {
  const net = new MemoryNetwork();
  const clock = { t: 1_700_000_000_000 };
  const twin = { now: () => clock.t, setTimer: () => ({ cancel() {} }) };
  const node = (addr: string) => {
    const sk = ed25519.utils.randomSecretKey();
    const sock = net.socket(addr, 4500);
    const got: string[] = [];
    const t = new Tunnels({ privateKey: sk, socket: sock, logger: silent, clock: twin, receiver: { handlePacket: (_p, pkt) => got.push(String(pkt)) } });
    sock.onMessage((m, from) => t.handleDatagram(m, from));
    return { t, sock, pub: ed25519.getPublicKey(sk), got };
  };
  const a = node('203.0.113.1'), b = node('203.0.113.2');
  const ab = a.t.addPeer(b.pub, b.sock.local), ba = b.t.addPeer(a.pub, a.sock.local);
  // b's NAT forgetting its mapping: a's packets to b are dropped until b sends again.
  let dropToB = false;
  net.setTranslate((from, to) => (dropToB && to.address === b.sock.local.address && from.address === a.sock.local.address ? undefined : from));
  return { net, a, b, ab, ba, clock, dropToB: (v: boolean) => { dropToB = v; }, close: () => { a.t.close(); b.t.close(); } };
}

async function established(w: ReturnType<typeof world>): Promise<void> {
  w.a.t.send(w.ab, Buffer.from('hello'));
  await settle();
  w.clock.t += 1;
  w.b.t.send(w.ba, Buffer.from('hello back'));
  await settle();
  w.clock.t += 1;
  assert.deepEqual([w.a.got, w.b.got], [['hello back'], ['hello']]);
}

/** b moves; a sends `n` packets that go to b's old address and are lost, over `silenceMs`. */
async function moveAndSendIntoSilence(w: ReturnType<typeof world>, address: string, n: number, silenceMs: number, tag: string) {
  w.b.sock.rebind(address);
  for (let i = 0; i < n; i++) { w.clock.t += silenceMs / Math.max(n, 1); w.a.t.send(w.ab, Buffer.from(`${tag} ${i}`)); }
  await settle();
}

test('catch-up: after a silence, what went into it reaches the peer once its new address is heard; once each, once only', async () => {
  const w = world();
  try {
    await established(w);
    await moveAndSendIntoSilence(w, '203.0.113.3', 4, 600, 'lost');
    assert.deepEqual(w.b.got, ['hello'], 'nothing reached b at its new address yet');
    w.b.t.send(w.ba, Buffer.from('from my new address'));
    await settle();
    assert.equal(w.a.t.status()[0]!.endpoint, '203.0.113.3:4500', 'a roamed to b\'s new address');
    assert.deepEqual(w.b.got, ['hello', 'lost 0', 'lost 1', 'lost 2', 'lost 3'], 'the packets sent into the silence, in order, once each');
    assert.equal(w.a.t.stats.caughtUp, 4);
    // A second move: nothing is sent again (the four were caught up already), only what is new.
    await moveAndSendIntoSilence(w, '203.0.113.4', 1, 600, 'second');
    w.b.t.send(w.ba, Buffer.from('moved again'));
    await settle();
    assert.deepEqual(w.b.got.slice(5), ['second 0']);
    assert.equal(w.a.t.stats.caughtUp, 5);
    assert.equal(w.b.t.stats.rxReplayed, 0);
  } finally { w.close(); }
});

test('catch-up: no silence, no resend; a resent packet the peer had is dropped by its replay window', async () => {
  const w = world();
  try {
    await established(w);
    // The endpoint moves right after a was heard: nothing is resent (the path had not broken).
    await moveAndSendIntoSilence(w, '203.0.113.3', 1, CATCH_UP_SILENCE_MS / 2, 'quick');
    w.clock.t += 1;
    w.b.t.send(w.ba, Buffer.from('moved'));
    await settle();
    assert.equal(w.a.t.stats.caughtUp, 0, 'no resend within CATCH_UP_SILENCE_MS');
    assert.deepEqual(w.b.got, ['hello']);
    // b gets a's packet, stays quiet, then moves: a resends it, and b's replay window drops the copy.
    w.clock.t += 1;
    w.a.t.send(w.ab, Buffer.from('delivered'));
    await settle();
    w.clock.t += 2 * CATCH_UP_SILENCE_MS;
    w.b.sock.rebind('203.0.113.4');
    w.b.t.send(w.ba, Buffer.from('moved again'));
    await settle();
    assert.equal(w.a.t.stats.caughtUp, 1);
    assert.equal(w.b.t.stats.rxReplayed, 1, 'the second copy is a replay');
    assert.deepEqual(w.b.got, ['hello', 'delivered'], 'delivered once');
  } finally { w.close(); }
});

test('catch-up: at most CATCH_UP_PACKETS_MAX, the newest; a forged packet from elsewhere moves and resends nothing', async () => {
  const w = world();
  try {
    await established(w);
    const n = CATCH_UP_PACKETS_MAX + 8;
    await moveAndSendIntoSilence(w, '203.0.113.3', n, 800, 'lost');
    // A stranger at b's new address sends a transport message it cannot have the keys for.
    const forger = w.net.socket('198.51.100.66', 4500);
    const forged = Buffer.alloc(64); forged[0] = 4;
    forger.send(forged, w.a.sock.local);
    await settle();
    assert.equal(w.a.t.stats.caughtUp, 0, 'an unauthenticated packet sends nothing');
    assert.equal(w.a.t.status()[0]!.endpoint, '203.0.113.2:4500');
    w.b.t.send(w.ba, Buffer.from('here'));
    await settle();
    assert.equal(w.a.t.stats.caughtUp, CATCH_UP_PACKETS_MAX);
    assert.deepEqual(w.b.got.slice(1), Array.from({ length: CATCH_UP_PACKETS_MAX }, (_, i) => `lost ${i + 8}`));
  } finally { w.close(); }
});

test('CatchUp ring (property): resend sends exactly the recorded datagrams since heardAt among the last MAX, oldest first, then holds none', () => {
  fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: 50 }), { maxLength: 3 * CATCH_UP_PACKETS_MAX }), fc.integer({ min: 0, max: 2000 }), (gaps, heardOffset) => {
    const ring = new CatchUp();
    const sent: { d: Uint8Array; at: number }[] = [];
    let t = 10_000;
    for (const g of gaps) { t += g; const d = new Uint8Array([sent.length & 0xff]); ring.record(d, t); sent.push({ d, at: t }); }
    const heardAt = 10_000 + heardOffset;
    const now = Math.max(t, heardAt) + CATCH_UP_SILENCE_MS;
    const out: Uint8Array[] = [];
    const sock = { send: (d: Uint8Array, _to: Endpoint) => { out.push(d); } } as unknown as DatagramSocket;
    const n = ring.resend(sock, { address: '203.0.113.9', port: 1 }, heardAt, now);
    const want = sent.slice(-CATCH_UP_PACKETS_MAX).filter((s) => s.at >= heardAt).map((s) => s.d);
    assert.equal(n, want.length);
    assert.deepEqual(out, want);
    assert.equal(ring.held, 0);
  }));
});

test('CATCH_ME_UP: a flow that stops at the same endpoint (our NAT forgot us) is resent by counter, past what the receiver had, once', async () => {
  const w = world();
  try {
    await established(w);
    w.a.t.send(w.ab, Buffer.from('delivered'));
    await settle();
    w.dropToB(true);
    for (let i = 0; i < 3; i++) { w.clock.t += 50; w.a.t.send(w.ab, Buffer.from(`lost ${i}`)); }
    await settle();
    assert.deepEqual(w.b.got, ['hello', 'delivered']);
    // b's NAT gives the mapping back once b sends; b notices the silence on its tick and asks.
    w.dropToB(false);
    w.clock.t += RECEIVE_SILENT_MS;
    w.b.t.tick();
    await settle();
    assert.equal(w.b.t.stats.rxSilentKeepalive, 1);
    assert.equal(w.a.t.status()[0]!.endpoint, '203.0.113.2:4500', 'nothing moved');
    assert.deepEqual(w.b.got, ['hello', 'delivered', 'lost 0', 'lost 1', 'lost 2'], 'the lost ones, and only those');
    assert.equal(w.a.t.stats.caughtUp, 3);
    assert.equal(w.b.t.stats.rxReplayed, 0, 'nothing b had was sent again');
    // Asking again (an authenticated peer may) gets nothing more: each datagram goes once.
    w.clock.t += 1;
    w.b.t.sendControl(w.ba, marshalCatchMeUp({ receiverIndex: 0, highest: 0 }));
    await settle();
    assert.equal(w.a.t.stats.caughtUp, 3);
  } finally { w.close(); }
});

test('CATCH_ME_UP wire (property): marshal then parse gives it back; any other length, type or reserved byte is refused', () => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (receiverIndex, highest) => {
    const b = marshalCatchMeUp({ receiverIndex, highest });
    assert.equal(b.length, CATCH_ME_UP_BYTES);
    assert.deepEqual(parseCatchMeUp(b), { receiverIndex, highest });
  }));
  fc.assert(fc.property(fc.uint8Array({ minLength: 0, maxLength: 40 }), (junk) => {
    const m = parseCatchMeUp(junk);
    if (m) {
      assert.equal(junk.length, CATCH_ME_UP_BYTES);
      assert.deepEqual([junk[0], junk[1], junk[2], junk[3]], [CTRL_CATCH_ME_UP, 0, 0, 0]);
      assert.ok(Number.isSafeInteger(m.highest));
    }
  }));
  const good = marshalCatchMeUp({ receiverIndex: 7, highest: 9 });
  for (const bad of [good.slice(0, 15), Uint8Array.from([...good, 0]), Uint8Array.from(good, (x, i) => (i === 2 ? 1 : x))]) assert.equal(parseCatchMeUp(bad), undefined);
});
