// Two (or three) Tunnels over a MemoryNetwork with a fake clock: handshakes, data, rekey, roaming,
// refusal of unknown keys, replays, garbage input, retries and keepalives.
import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import pino from 'pino';
import { ed25519, x25519 } from '@noble/curves/ed25519.js';
import { Tunnels, type TunnelPeer } from '../../agent/tunnel/tunnels.js';
import { MemoryNetwork, type MemorySocket } from '../../agent/conn/memory-socket.js';
import {
  KEEPALIVE_INTERVAL_MS, MAX_QUEUED_PACKETS_PER_PEER, REJECT_AFTER_TIME_MS, REKEY_AFTER_TIME_MS, REKEY_ATTEMPT_TIME_MS,
  REKEY_TIMEOUT_JITTER_MS, REKEY_TIMEOUT_MS, HANDSHAKE_RETRY_INITIAL_MS, ROAM_DIRECT_HOLD_MS, HANDSHAKE_RELOCATE_AFTER_TRIES, TUNNEL_TICK_MS,
} from '../../agent/base/constants.js';

const silent = pino({ level: 'silent' });
const settle = async () => { for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r)); };

interface Node {
  t: Tunnels;
  sock: MemorySocket;
  pub: Uint8Array;
  got: Buffer[];
  seen: Buffer[]; // every datagram that arrived, for replay tests
}

function world() {
  const net = new MemoryNetwork();
  const clock = { t: 1_700_000_000_000 };
  // The tunnels' clock twin: time moves only when a test moves it, and ticks run only when advance() says.
  const twin = { now: () => clock.t, setTimer: () => ({ cancel() {} }) };
  const nodes: Node[] = [];
  const node = (addr: string, isRelayed?: (e: { address: string }) => boolean, onHandshakeUnanswered?: () => void): Node => {
    const sk = ed25519.utils.randomSecretKey();
    const sock = net.socket(addr, 4500);
    const n = { sock, pub: ed25519.getPublicKey(sk), got: [] as Buffer[], seen: [] as Buffer[] } as Node;
    n.t = new Tunnels({
      privateKey: sk, socket: sock, logger: silent, clock: twin, receiver: { handlePacket: (_p, pkt) => n.got.push(Buffer.from(pkt)) },
      ...(isRelayed ? { paths: { isRelayed } } : {}),
      ...(onHandshakeUnanswered ? { admission: { acceptUnknown: () => false, handshakeUnanswered: onHandshakeUnanswered } } : {}),
    });
    sock.onMessage((m, from) => { n.seen.push(Buffer.from(m)); n.t.handleDatagram(m, from); });
    nodes.push(n);
    return n;
  };
  const advance = (ms: number, step = 250) => {
    for (let d = 0; d < ms; d += step) { clock.t += Math.min(step, ms - d); for (const n of nodes) n.t.tick(); }
  };
  const close = () => { for (const n of nodes) n.t.close(); };
  return { net, clock, node, advance, close };
}

function connect(a: Node, b: Node): [TunnelPeer, TunnelPeer] {
  return [a.t.addPeer(b.pub, b.sock.local), b.t.addPeer(a.pub, a.sock.local)];
}

const pkt = (s: string) => Buffer.from(s);

test('Ed25519 identity converts to the X25519 key the handshake uses', () => {
  const sk = ed25519.utils.randomSecretKey();
  const viaPub = ed25519.utils.toMontgomery(ed25519.getPublicKey(sk));
  const viaSec = x25519.getPublicKey(ed25519.utils.toMontgomerySecret(sk));
  assert.deepEqual(viaPub, viaSec);
});

test('handshake on first send, then data both ways', async () => {
  const w = world();
  const a = w.node('10.0.0.1'), b = w.node('10.0.0.2');
  const [ab, ba] = connect(a, b);
  assert.equal(a.t.status()[0]!.state, 'none');
  a.t.send(ab, pkt('hello b'));
  assert.equal(a.t.status()[0]!.state, 'handshaking');
  await settle();
  assert.deepEqual(b.got.map(String), ['hello b']);
  b.t.send(ba, pkt('hello a'));
  await settle();
  assert.deepEqual(a.got.map(String), ['hello a']);
  for (const n of [a, b]) {
    const st = n.t.status()[0]!;
    assert.equal(st.state, 'established');
    assert.equal(st.lastHandshake, w.clock.t);
    assert.ok(st.rxBytes > 0 && st.txBytes > 0);
  }
  assert.equal(a.t.status()[0]!.endpoint, '10.0.0.2:4500');
  assert.equal(a.t.stats.handshakeInitSent, 1);
  assert.equal(b.t.stats.handshakeRespSent, 1);
  assert.equal(a.t.stats.handshakeCompleted, 1);
  assert.equal(b.t.stats.handshakeCompleted, 1);
  assert.equal(a.t.peerByKey(Buffer.from(b.pub).toString('hex')), ab);
  w.close();
});

test('both sides initiating at once converge', async () => {
  const w = world();
  const a = w.node('10.0.0.1'), b = w.node('10.0.0.2');
  const [ab, ba] = connect(a, b);
  a.t.send(ab, pkt('a1'));
  b.t.send(ba, pkt('b1'));
  await settle();
  assert.deepEqual(b.got.map(String), ['a1']);
  assert.deepEqual(a.got.map(String), ['b1']);
  for (let i = 0; i < 5; i++) { a.t.send(ab, pkt(`a${i + 2}`)); b.t.send(ba, pkt(`b${i + 2}`)); await settle(); }
  assert.equal(b.got.length, 6);
  assert.equal(a.got.length, 6);
  assert.equal(a.t.status()[0]!.state, 'established');
  assert.equal(b.t.status()[0]!.state, 'established');
  assert.equal(a.t.stats.handshakeGaveUp + b.t.stats.handshakeGaveUp, 0);
  w.close();
});

test('our initiation lost, the peer\'s handshake completes first: ours is dropped, not retried into a second one', async () => {
  const w = world();
  const a = w.node('10.0.0.1'), b = w.node('10.0.0.2');
  const [ab, ba] = connect(a, b);
  w.net.setTranslate((from) => (from.address === '10.0.0.1' ? undefined : from)); // b not up yet: a's packets vanish
  a.t.send(ab, pkt('queued at a'));
  await settle();
  w.net.setTranslate(undefined);
  b.t.send(ba, pkt('from b')); // b starts: its handshake, a answers, b's data confirms it
  await settle();
  assert.deepEqual(a.got.map(String), ['from b']);
  assert.deepEqual(b.got.map(String), ['queued at a'], 'a sent its queue on the session b made');
  assert.equal(a.t.status()[0]!.state, 'established');
  w.advance(REKEY_TIMEOUT_MS * 2);
  assert.equal(a.t.stats.handshakeInitSent, 1, 'no retry of the moot initiation');
  assert.equal(a.t.stats.handshakeCompleted + b.t.stats.handshakeCompleted, 2, 'one handshake, counted once on each side');
  w.close();
});

test('rekey after REKEY_AFTER_TIME by the initiator; traffic never stops; old keys die', async () => {
  const w = world();
  const a = w.node('10.0.0.1'), b = w.node('10.0.0.2');
  const [ab, ba] = connect(a, b);
  a.t.send(ab, pkt('x'));
  await settle();
  w.clock.t += REKEY_AFTER_TIME_MS + 1;
  a.t.send(ab, pkt('after rekey time')); // sent on the old session, and starts a handshake
  assert.equal(a.t.stats.handshakeInitSent, 2);
  await settle();
  assert.equal(a.t.stats.handshakeCompleted, 2);
  assert.equal(b.t.stats.handshakeCompleted, 2);
  w.clock.t += REJECT_AFTER_TIME_MS - REKEY_AFTER_TIME_MS + 1; // first session now past REJECT_AFTER_TIME
  a.t.send(ab, pkt('new keys'));
  b.t.send(ba, pkt('reply'));
  await settle();
  assert.deepEqual(b.got.map(String), ['x', 'after rekey time', 'new keys']);
  assert.deepEqual(a.got.map(String), ['reply']);
  // With the network cut, the session expires after REJECT_AFTER_TIME and the peer is no longer established.
  w.net.setTranslate(() => undefined);
  w.advance(REJECT_AFTER_TIME_MS + 1000, 1000);
  assert.equal(a.t.status()[0]!.state === 'established', false);
  assert.equal(b.t.status()[0]!.state === 'established', false);
  w.close();
});

test('roaming: relayed packets do not pull a tunnel off a direct endpoint heard within the hold; after it they do', async () => {
  const w = world();
  const RELAY = '10.9.9.9'; // where b sees a's packets come from when they are relayed
  const a = w.node('10.0.0.1'), b = w.node('10.0.0.2', (e) => e.address === RELAY);
  const [ab] = connect(a, b);
  a.t.send(ab, pkt('1 direct'));
  await settle();
  a.sock.rebind(RELAY, 4500); // the same peer, its packets now arriving through the relay
  a.t.send(ab, pkt('2 relayed, in flight while the path moves'));
  await settle();
  assert.deepEqual(b.got.map(String), ['1 direct', '2 relayed, in flight while the path moves'], 'delivered all the same');
  assert.equal(b.t.status()[0]!.endpoint, '10.0.0.1:4500', 'still the direct endpoint');
  assert.equal(b.t.stats.roamHeld, 1);
  w.clock.t += ROAM_DIRECT_HOLD_MS + 1; // the direct path went silent: the peer really left it
  a.t.send(ab, pkt('3 relayed'));
  await settle();
  assert.equal(b.t.status()[0]!.endpoint, `${RELAY}:4500`);
  assert.equal(b.t.stats.roamed, 1);
  a.sock.rebind('10.0.0.1', 4500); // back on a direct path: taken at once, however fresh the relay is
  a.t.send(ab, pkt('4 direct'));
  await settle();
  assert.equal(b.t.status()[0]!.endpoint, '10.0.0.1:4500');
  assert.equal(b.t.stats.roamed, 2);
  w.close();
});

test('setEndpoint on an established tunnel sends a keepalive on the new path at once, so the peer roams to it', async () => {
  const w = world();
  const a = w.node('10.0.0.1'), b = w.node('10.0.0.2');
  const [ab] = connect(a, b);
  a.t.send(ab, pkt('1'));
  await settle();
  const elsewhere = w.net.socket('10.0.0.3', 4500); // b's second address, say
  elsewhere.onMessage((m, from) => b.t.handleDatagram(m, from));
  const before = a.t.stats.txKeepalive;
  a.t.setEndpoint(ab, elsewhere.local);
  await settle();
  assert.equal(a.t.stats.txKeepalive, before + 1);
  assert.equal(b.t.stats.rxKeepalive, 1, 'b heard it on its other address');
  w.close();
});

test('a new endpoint gets fresh handshake tries: the unanswered ones on the old path do not send the owner looking for the peer', async () => {
  const w = world();
  let relocations = 0;
  const a = w.node('10.0.0.1', undefined, () => relocations++), b = w.node('10.0.0.2');
  const ab = a.t.addPeer(b.pub, { address: '10.0.0.99', port: 4500 }); // a path that goes nowhere
  b.t.addPeer(a.pub, a.sock.local);
  a.t.send(ab, pkt('x'));
  // Tries at 0, 200 and 600 ms (+ up to one jitter each); the next, which would call the owner, at 1400.
  w.advance(HANDSHAKE_RETRY_INITIAL_MS * 3 + 2 * REKEY_TIMEOUT_JITTER_MS + 20, 10);
  assert.equal(a.t.stats.handshakeInitSent, HANDSHAKE_RELOCATE_AFTER_TRIES);
  assert.equal(relocations, 0);
  a.t.setEndpoint(ab, b.sock.local); // the better path, found while the old one was still being tried
  await settle();
  assert.equal(relocations, 0, 'not sent looking for the peer the moment a path was found');
  assert.deepEqual(b.got.map(String), ['x']);
  w.close();
});

test('roaming: a host changes address, the far side follows on the first authenticated packet', async () => {
  const w = world();
  const a = w.node('10.0.0.1'), b = w.node('10.0.0.2');
  const [ab, ba] = connect(a, b);
  a.t.send(ab, pkt('1'));
  await settle();
  a.sock.rebind('192.0.2.99', 31000); // A moved networks (new NAT mapping)
  a.t.send(ab, pkt('2 from new address'));
  await settle();
  assert.equal(b.t.status()[0]!.endpoint, '192.0.2.99:31000');
  assert.equal(b.t.stats.roamed, 1);
  b.t.send(ba, pkt('reply reaches new address'));
  await settle();
  assert.deepEqual(a.got.map(String), ['reply reaches new address']);
  // A forged/garbage packet from yet another address does not move the endpoint.
  b.t.handleDatagram(Buffer.from(a.seen.length ? a.seen[0]! : Buffer.alloc(40)), { address: '203.0.113.5', port: 1 });
  const junk = Buffer.alloc(60); junk[0] = 0xc4;
  b.t.handleDatagram(junk, { address: '203.0.113.5', port: 1 });
  assert.equal(b.t.status()[0]!.endpoint, '192.0.2.99:31000');
  w.close();
});

test('a peer with an unknown or wrong key is refused and counted while the good peer works', async () => {
  const w = world();
  const a = w.node('10.0.0.1'), b = w.node('10.0.0.2'), c = w.node('10.0.0.3'), d = w.node('10.0.0.4');
  const [ab] = connect(a, b);
  const ca = c.t.addPeer(a.pub, a.sock.local); // C knows A, A does not know C
  const da = d.t.addPeer(b.pub, a.sock.local); // D thinks A's address holds B's key
  a.t.send(ab, pkt('good'));
  c.t.send(ca, pkt('let me in'));
  d.t.send(da, pkt('me too'));
  await settle();
  assert.equal(a.t.stats.rxUnknownPeer, 1);
  assert.equal(a.t.stats.rxBadMac, 1);
  assert.equal(a.t.stats.handshakeRespSent, 0);
  assert.deepEqual(b.got.map(String), ['good']);
  assert.equal(c.t.status()[0]!.state, 'handshaking');
  w.advance(REKEY_TIMEOUT_MS + REKEY_TIMEOUT_JITTER_MS + 250);
  await settle();
  assert.ok(a.t.stats.rxUnknownPeer >= 2, 'the retries are refused too');
  assert.equal(a.t.stats.handshakeRespSent, 0);
  assert.equal(a.t.status()[0]!.state, 'established');
  w.close();
});

test('random and truncated datagrams are counted and never throw; the tunnel keeps working', async () => {
  const w = world();
  const a = w.node('10.0.0.1'), b = w.node('10.0.0.2');
  const [ab] = connect(a, b);
  a.t.send(ab, pkt('before'));
  await settle();
  const valid = [...b.seen];
  const from = { address: '198.51.100.1', port: 9 };
  const before = { ...b.t.stats };
  fc.assert(
    fc.property(fc.constantFrom(0xc1, 0xc2, 0xc4, 0x00, 0xff), fc.uint8Array({ maxLength: 200 }), (type, body) => {
      const m = Buffer.concat([Buffer.of(type), body]);
      b.t.handleDatagram(m, from);
      return true;
    }),
    { numRuns: 3000 },
  );
  for (const v of valid) for (let n = 0; n < v.length; n++) b.t.handleDatagram(v.subarray(0, n), from);
  b.t.handleDatagram(Buffer.alloc(0), from);
  const s = b.t.stats;
  const bad = (x: typeof s) => x.rxInvalid + x.rxBadMac + x.rxDecryptFailed + x.rxUnknownIndex + x.rxReplayed + x.rxUnknownPeer;
  assert.ok(bad(s) - bad(before) >= 3000, `counted ${bad(s) - bad(before)}`);
  assert.equal(s.rxPackets, before.rxPackets, 'nothing delivered');
  assert.equal(b.t.status()[0]!.endpoint, '10.0.0.1:4500', 'garbage never moves the endpoint');
  a.t.send(ab, pkt('after'));
  await settle();
  assert.deepEqual(b.got.map(String), ['before', 'after']);
  w.close();
});

test('a replayed data packet and a replayed initiation are rejected', async () => {
  const w = world();
  const a = w.node('10.0.0.1'), b = w.node('10.0.0.2');
  const [ab] = connect(a, b);
  a.t.send(ab, pkt('once'));
  await settle();
  const init = b.seen.find((m) => m[0] === 0xc1)!;
  const data = b.seen.find((m) => m[0] === 0xc4 && m.length > 32)!;
  const evil = { address: '203.0.113.66', port: 6666 };
  b.t.handleDatagram(Buffer.from(data), evil);
  assert.equal(b.t.stats.rxReplayed, 1);
  assert.deepEqual(b.got.map(String), ['once']);
  w.clock.t += 10_000; // past the init rate limit: only the timestamp refuses it
  b.t.handleDatagram(Buffer.from(init), evil);
  await settle(); // initiations wait in the handshake queue for the next event-loop turn
  assert.equal(b.t.stats.rxReplayed, 2);
  assert.equal(b.t.stats.handshakeRejected, 1);
  assert.equal(b.t.stats.handshakeRespSent, 1, 'no response to the replay');
  assert.equal(b.t.status()[0]!.endpoint, '10.0.0.1:4500', 'replays do not move the endpoint');
  w.close();
});

test('handshake retries back off from HANDSHAKE_RETRY_INITIAL to REKEY_TIMEOUT and give up after REKEY_ATTEMPT_TIME', async () => {
  const w = world();
  const a = w.node('10.0.0.1');
  const ghost = ed25519.getPublicKey(ed25519.utils.randomSecretKey());
  const p = a.t.addPeer(ghost, { address: '10.9.9.9', port: 4500 }); // nobody there
  for (let i = 0; i < MAX_QUEUED_PACKETS_PER_PEER + 6; i++) a.t.send(p, pkt(`q${i}`));
  assert.equal(a.t.stats.queueDropped, 6);
  assert.equal(a.t.stats.handshakeInitSent, 1);
  w.advance(HANDSHAKE_RETRY_INITIAL_MS + REKEY_TIMEOUT_JITTER_MS + 250);
  // The first retry is due by 533 ms (200 + jitter); with little jitter the second (400 ms later) may be too.
  assert.ok(a.t.stats.handshakeInitSent >= 2, 'a lost first initiation is retried within a fraction of a second');
  // Delays double: 0.2, 0.4, 0.8, 1.6, 3.2 s, then REKEY_TIMEOUT (5 s) plus jitter each.
  w.advance(20_000);
  const at20 = a.t.stats.handshakeInitSent;
  assert.ok(at20 >= 7 && at20 <= 10, `backed off to ~5 s retries by 20 s, got ${at20}`);
  w.advance(REKEY_TIMEOUT_MS - 500);
  assert.ok(a.t.stats.handshakeInitSent <= at20 + 1, 'no faster than REKEY_TIMEOUT once backed off');
  w.advance(REKEY_ATTEMPT_TIME_MS);
  assert.equal(a.t.stats.handshakeGaveUp, 1);
  assert.equal(a.t.stats.queueDropped, MAX_QUEUED_PACKETS_PER_PEER + 6);
  const sent = a.t.stats.handshakeInitSent;
  assert.ok(sent >= 18 && sent <= 24, `5 quick tries then ~84 s / 5.x s tries, got ${sent}`);
  w.advance(20_000);
  assert.equal(a.t.stats.handshakeInitSent, sent, 'silent after giving up');
  assert.equal(a.t.status()[0]!.state, 'none');
  w.close();
});

test('keepalive after KEEPALIVE_INTERVAL of silence keeps both sides established', async () => {
  const w = world();
  const a = w.node('10.0.0.1'), b = w.node('10.0.0.2');
  const [ab] = connect(a, b);
  a.t.send(ab, pkt('x'));
  await settle();
  for (let i = 0; i < 40; i++) { w.advance(KEEPALIVE_INTERVAL_MS / 3, 1000); await settle(); } // 200 s
  assert.ok(a.t.stats.txKeepalive >= 10, `a keepalives ${a.t.stats.txKeepalive}`);
  assert.ok(b.t.stats.rxKeepalive >= 10);
  assert.ok(a.t.stats.handshakeCompleted >= 2, 'rekeyed along the way');
  assert.equal(a.t.status()[0]!.state, 'established');
  assert.equal(b.t.status()[0]!.state, 'established');
  assert.equal(b.got.length, 1, 'keepalives are not delivered');
  w.close();
});

test('removePeer forgets sessions; close() stops everything', async () => {
  const w = world();
  const a = w.node('10.0.0.1'), b = w.node('10.0.0.2');
  const [ab, ba] = connect(a, b);
  a.t.send(ab, pkt('x'));
  await settle();
  b.t.removePeer(ba);
  a.t.send(ab, pkt('y'));
  await settle();
  assert.equal(b.got.length, 1);
  assert.equal(b.t.stats.rxUnknownIndex, 1);
  assert.equal(b.t.status().length, 0);
  w.close();
  const sent = w.net.stats.sent;
  const stats = JSON.stringify([a.t.stats, b.t.stats]);
  a.t.send(ab, pkt('z'));
  a.t.handleDatagram(Buffer.alloc(10), { address: '1.1.1.1', port: 1 });
  for (const m of a.seen) a.t.handleDatagram(m, b.sock.local); // b's handshake answer and data, again
  // Past every keepalive, rekey and session expiry: neither the fake clock's ticks nor the real interval
  // may send, receive or count anything.
  w.advance(REJECT_AFTER_TIME_MS + KEEPALIVE_INTERVAL_MS, 5_000);
  await new Promise((r) => setTimeout(r, 3 * TUNNEL_TICK_MS));
  await settle();
  assert.equal(w.net.stats.sent, sent, 'a datagram left after close()');
  assert.equal(JSON.stringify([a.t.stats, b.t.stats]), stats, 'a counter moved after close()');
  assert.deepEqual([a.got.length, b.got.length], [0, 1], 'a packet was delivered after close()');
});

test('30% loss (seeded): retries get the handshake through and traffic flows', async () => {
  const w = world();
  w.net.loss = 0.3;
  const a = w.node('10.0.0.1'), b = w.node('10.0.0.2');
  const [ab, ba] = connect(a, b);
  for (let i = 0; i < 60; i++) {
    a.t.send(ab, pkt(`a${i}`));
    b.t.send(ba, pkt(`b${i}`));
    await settle();
    w.advance(1000);
    await settle();
  }
  assert.equal(a.t.status()[0]!.state, 'established');
  assert.equal(b.t.status()[0]!.state, 'established');
  assert.ok(b.got.length >= 30 && a.got.length >= 30, `delivered ${b.got.length}/${a.got.length}`);
  assert.ok(w.net.stats.lost > 0);
  w.close();
});
