// Handshake floods on the in-memory twins (MemoryNetwork + SimScheduler): forged initiations that are
// valid up to mac1 (an attacker computes it from the target's public key), 10,000 per simulated second
// from spoofed sources, while an established tunnel carries a ping and its answer every 10 ms. The
// tunnel must not lose a packet, the forgeries must not buy X25519 work beyond a bound, the answers to
// spoofed sources must be smaller than what they sent, and a real initiator that arrives during the
// flood gets a cookie reply and connects with mac2.
// Counters are read by name (stat()), so a missing one reads 0 and fails its assertion rather than the build.
import test from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { ed25519 } from '@noble/curves/ed25519.js';
import { Tunnels, type TunnelPeer } from '../../agent/tunnel/tunnels.js';
import { MemoryNetwork, type MemorySocket } from '../../agent/conn/memory-socket.js';
import type { DatagramSocket, Endpoint } from '../../agent/conn/socket.js';
import { SimScheduler } from '../../agent/base/scheduler.js';
import * as messages from '../../agent/tunnel/messages.js';
import * as noise from '../../agent/tunnel/noise.js';

const silent = pino({ level: 'silent' });
const stat = (t: Tunnels, k: string): number => (t.stats as unknown as Record<string, number | undefined>)[k] ?? 0;
const x25519Ops = (): number | undefined => (noise as unknown as { x25519Operations?: () => number }).x25519Operations?.();
const INIT_LEN = messages.HANDSHAKE_INIT_LEN;

/** mac1's key for messages to the holder of `targetEd25519`: anyone can compute it from the public key. */
export const mac1KeyOf = (targetEd25519: Uint8Array): Uint8Array => messages.mac1Key(ed25519.utils.toMontgomery(targetEd25519));

/** A forged initiation: random Noise bytes, a valid mac1 under `key` (mac1KeyOf the target), mac2 random. */
export function forgedInitiation(key: Uint8Array): Buffer {
  const b = randomBytes(INIT_LEN);
  b[0] = messages.MSG_HANDSHAKE_INIT; b[1] = 0; b[2] = 0; b[3] = 0;
  b.set(messages.computeMac1(key, b.subarray(0, messages.INIT_MAC1_OFF)), messages.INIT_MAC1_OFF);
  return b;
}

interface Node { t: Tunnels; sock: MemorySocket; pub: Uint8Array; got: string[]; toSpoofed: { n: number; bytes: number } }

function world() {
  const net = new MemoryNetwork();
  const clock = new SimScheduler(1_700_000_000_000);
  const legit = new Set<string>();
  const node = (addr: string, onPacket?: (n: Node, peer: TunnelPeer, pkt: Buffer) => void): Node => {
    const sk = ed25519.utils.randomSecretKey();
    const sock = net.socket(addr, 4500);
    legit.add(addr);
    const n = { sock, pub: ed25519.getPublicKey(sk), got: [] as string[], toSpoofed: { n: 0, bytes: 0 } } as Node;
    // Count what this node sends to addresses that are nobody's (the spoofed sources).
    const counting: DatagramSocket = {
      local: sock.local, onMessage: (h) => sock.onMessage(h), close: () => sock.close(),
      send: (m: Uint8Array, to: Endpoint) => {
        if (!legit.has(to.address)) { n.toSpoofed.n++; n.toSpoofed.bytes += m.length; }
        sock.send(m, to);
      },
    };
    n.t = new Tunnels({
      privateKey: sk, socket: counting, logger: silent, clock,
      receiver: { handlePacket: (peer, pkt) => { n.got.push(pkt.toString()); onPacket?.(n, peer, Buffer.from(pkt)); } },
    });
    sock.onMessage((m, from) => n.t.handleDatagram(m, from));
    return n;
  };
  // The attacker's socket: every datagram leaves with a random source address (raw sockets can).
  const attacker = net.socket('203.0.113.66', 6666);
  net.setTranslate((from) => (from.address === '203.0.113.66'
    ? { address: `198.18.${(Math.random() * 256) | 0}.${(Math.random() * 256) | 0}`, port: 1024 + ((Math.random() * 60000) | 0) }
    : from));
  return { net, clock, node, attacker };
}

const turns = async (n = 4) => { for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r)); };

/** a and b with an established tunnel; b answers every ping from a with a pong, so each round trip
 *  crosses the flooded agent twice. */
async function established(w: ReturnType<typeof world>): Promise<{ a: Node; b: Node; ab: TunnelPeer }> {
  const b = w.node('198.51.100.2', (self, peer, pkt) => { if (pkt.toString().startsWith('ping')) self.t.send(peer, Buffer.from(`pong${pkt.toString().slice(4)}`)); });
  const a = w.node('198.51.100.1');
  const ab = a.t.addPeer(b.pub, b.sock.local);
  b.t.addPeer(a.pub, a.sock.local);
  a.t.send(ab, Buffer.from('hello'));
  await w.clock.advance(100);
  await turns();
  assert.deepEqual(b.got, ['hello'], 'tunnel established before the flood');
  return { a, b, ab };
}

test('10,000 forged initiations per simulated second from spoofed sources: the tunnel loses nothing, X25519 work is bounded, a newcomer connects with a cookie', async (t) => {
  const w = world();
  const { a, b, ab } = await established(w);

  const c = w.node('198.51.100.3');
  const cb = c.t.addPeer(b.pub, b.sock.local);
  b.t.addPeer(c.pub, c.sock.local);

  const SECONDS = 2, STEP_MS = 10, PER_STEP = 100; // 100 per 10 ms = 10,000 per second
  const steps = (SECONDS * 1000) / STEP_MS;
  const failedBefore = b.t.stats.rxDecryptFailed, opsBefore = x25519Ops();
  const respBefore = b.t.stats.handshakeRespSent;
  let forged = 0, pings = 0, cConnectedAt: number | undefined;
  const key = mac1KeyOf(b.pub);
  const started = w.clock.now(), wallStart = performance.now();
  for (let s = 0; s < steps; s++) {
    for (let i = 0; i < PER_STEP; i++) { w.attacker.send(forgedInitiation(key), b.sock.local); forged++; }
    a.t.send(ab, Buffer.from(`ping${s}`)); pings++;
    if (s === 10) c.t.send(cb, Buffer.from('from c')); // a newcomer 100 ms into the flood
    await w.clock.advance(STEP_MS);
    await turns(2);
    if (cConnectedAt === undefined && b.got.includes('from c')) cConnectedAt = w.clock.now() - started - 100;
  }
  await w.clock.advance(100);
  await turns(8);
  const wallMs = performance.now() - wallStart;

  const pongs = a.got.filter((g) => g.startsWith('pong')).length;
  const reachedNoise = b.t.stats.rxDecryptFailed - failedBefore; // each is one X25519 bought by a forgery
  const ops = opsBefore === undefined ? undefined : x25519Ops()! - opsBefore;
  const bound = SECONDS * (128 + 256); // HANDSHAKE_UNDER_LOAD_PER_SECOND + HANDSHAKE_QUEUE_MAX per second
  t.diagnostic(`forged initiations sent: ${forged} (${(forged / SECONDS).toFixed(0)}/s simulated) in ${wallMs.toFixed(0)} ms of wall time`);
  t.diagnostic(`forgeries that reached X25519: ${reachedNoise} (${(reachedNoise / SECONDS).toFixed(0)}/s; bound ${bound / SECONDS}/s); X25519 operations in the process: ${ops ?? 'not counted'}`);
  t.diagnostic(`answered with a cookie reply: ${stat(b.t, 'cookieReplySent')}; handshake responses to forgeries: ${b.t.stats.handshakeRespSent - respBefore - (cConnectedAt !== undefined ? 1 : 0)}`);
  t.diagnostic(`to spoofed sources: ${b.toSpoofed.n} datagrams, ${b.toSpoofed.bytes} bytes, for ${forged * INIT_LEN} bytes received`);
  t.diagnostic(`pings ${pings}, pongs ${pongs}; newcomer connected after ${cConnectedAt ?? 'never'} ms, cookie replies it took: ${stat(c.t, 'cookieReplyRecv')}`);

  assert.equal(pongs, pings, 'every ping over the established tunnel was answered during the flood');
  assert.ok(reachedNoise <= bound, `forgeries bought ${reachedNoise} X25519 operations in ${SECONDS} s (bound ${bound})`);
  if (ops !== undefined) assert.ok(ops <= bound + 64, `X25519 operations ${ops} in ${SECONDS} s`);
  assert.ok(b.toSpoofed.bytes <= forged * INIT_LEN, 'no answer to a spoofed source is larger than what it sent');
  assert.ok(stat(b.t, 'cookieReplySent') > 0, 'under load, initiations without mac2 got cookie replies');
  assert.ok(stat(c.t, 'cookieReplyRecv') >= 1, 'the newcomer was asked for mac2');
  assert.ok(cConnectedAt !== undefined && cConnectedAt <= 1000, `the newcomer connected within 1 s (${cConnectedAt} ms)`);
  assert.equal(a.t.status()[0]!.state, 'established');
  for (const n of [a, b, c]) n.t.close();
});

test('forged cookie replies (1,000 random ones at a retrying initiator) are never taken', async (t) => {
  const w = world();
  const b = w.node('198.51.100.2');
  const c = w.node('198.51.100.3');
  const cb = c.t.addPeer(b.pub, { address: '198.51.100.99', port: 4500 }); // nobody there: c keeps retrying
  c.t.send(cb, Buffer.from('x'));
  await turns();
  // Forged cookie replies for every index c could have: random bytes never open (unknown index or bad tag).
  for (let i = 0; i < 1000; i++) {
    const r = Buffer.alloc(64);
    r[0] = 0xc3; randomBytes(60).copy(r, 4);
    c.t.handleDatagram(r, { address: '198.51.100.99', port: 4500 });
  }
  assert.equal(stat(c.t, 'cookieReplyRecv'), 0, 'no forged cookie reply was taken');
  assert.ok(c.t.stats.rxInvalid + c.t.stats.rxUnknownIndex + c.t.stats.rxDecryptFailed >= 1000);
  t.diagnostic('forged cookie replies: 1000, taken: 0');
  c.t.close(); b.t.close();
});

test('forged responses that know a pending initiation\'s index buy at most HANDSHAKE_RESP_TRIES_MAX decryptions', async (t) => {
  const w = world();
  const a = w.node('198.51.100.1');
  const ghost = w.net.socket('198.51.100.50', 4500); // an on-path observer where a's peer should be
  let index: number | undefined;
  ghost.onMessage((m) => { if (m[0] === messages.MSG_HANDSHAKE_INIT) index = m.readUInt32LE(4); });
  const pa = a.t.addPeer(ed25519.getPublicKey(ed25519.utils.randomSecretKey()), ghost.local);
  a.t.send(pa, Buffer.from('x'));
  await turns();
  assert.ok(index !== undefined, 'the observer saw the initiation');
  const key = mac1KeyOf(a.pub);
  for (let i = 0; i < 100; i++) {
    const r = randomBytes(messages.HANDSHAKE_RESP_LEN);
    r[0] = messages.MSG_HANDSHAKE_RESP; r[1] = r[2] = r[3] = 0;
    r.writeUInt32LE(index, 8);
    r.set(messages.computeMac1(key, r.subarray(0, messages.HANDSHAKE_RESP_LEN - 16)), messages.HANDSHAKE_RESP_LEN - 16);
    a.t.handleDatagram(r, ghost.local);
    await turns(1);
  }
  await turns();
  t.diagnostic(`forged responses with the right index: 100; decrypted (X25519 x2 each): ${a.t.stats.rxDecryptFailed}; turned away first: ${a.t.stats.rxUnknownIndex}`);
  assert.ok(a.t.stats.rxDecryptFailed <= 4, `${a.t.stats.rxDecryptFailed} forged responses reached Noise`);
  assert.equal(a.t.stats.handshakeCompleted, 0);
  a.t.close();
});

test('a botnet of 1,000 real /64s that collected cookies and floods valid-mac2 forgeries: X25519 work stays within HANDSHAKE_MAX_PER_SECOND', async (t) => {
  const w = world();
  const { openCookieReply } = await import('../../agent/tunnel/cookie.js');
  const C = await import('../../agent/base/constants.js');
  const { a, b, ab } = await established(w);
  const key = mac1KeyOf(b.pub), sealKey = messages.cookieKey(ed25519.utils.toMontgomery(b.pub));
  for (let i = 0; i < 100; i++) w.attacker.send(forgedInitiation(key), b.sock.local); // b is under load now
  await turns();
  // Each bot sends one initiation from its own /64 and keeps the cookie it is answered with.
  const bots = Array.from({ length: 1000 }, (_, i) => {
    const sock = w.net.socket(`2001:db8:b07:${(i + 1).toString(16)}::1`, 4500);
    const bot = { sock, cookie: undefined as Uint8Array | undefined, sent: forgedInitiation(key) };
    sock.onMessage((m) => {
      const r = messages.parseCookieReply(m);
      if (r) bot.cookie = openCookieReply(r, sealKey, bot.sent.subarray(messages.INIT_MAC1_OFF, messages.INIT_MAC2_OFF));
    });
    sock.send(bot.sent, b.sock.local);
    return bot;
  });
  await turns(4);
  const armed = bots.filter((x) => x.cookie).length;
  const failedBefore = b.t.stats.rxDecryptFailed, t0 = w.clock.now();
  let sent = 0, pings = 0;
  const SECONDS = 2;
  for (let s = 0; s < SECONDS * 100; s++) {
    for (let k = 0; k < 100; k++) { // 10,000 per second in all, 10 per second per bot: under the per-source limit
      const bot = bots[(s * 100 + k) % bots.length]!;
      if (!bot.cookie) continue;
      const f = forgedInitiation(key);
      f.set(messages.computeMac1(bot.cookie, f.subarray(0, messages.INIT_MAC2_OFF)), messages.INIT_MAC2_OFF);
      bot.sock.send(f, b.sock.local); sent++;
    }
    a.t.send(ab, Buffer.from(`ping${s}`)); pings++;
    await w.clock.advance(10);
    await turns(2);
  }
  await w.clock.advance(100); await turns(8);
  const reached = b.t.stats.rxDecryptFailed - failedBefore;
  const pongs = a.got.filter((g) => g.startsWith('pong')).length;
  const bound = Math.floor(C.HANDSHAKE_MAX_PER_SECOND * ((w.clock.now() - t0) / 1000 + 1)); // the rate, plus one full bucket
  t.diagnostic(`bots with a cookie: ${armed} of ${bots.length}; valid-mac2 forgeries sent: ${sent}; reached X25519: ${reached} in ${w.clock.now() - t0} ms (bound ${bound}); queue full: ${stat(b.t, 'handshakeQueueDropped')}, rate-limited: ${stat(b.t, 'handshakeRateLimited')}; pings ${pings}, pongs ${pongs}`);
  assert.ok(armed >= 900, `${armed} bots got a cookie`);
  assert.ok(reached <= bound, `${reached} valid-mac2 forgeries reached X25519`);
  assert.ok(stat(b.t, 'handshakeQueueDropped') > 0, 'the rest was dropped at the full queue, counted');
  assert.equal(pongs, pings, 'the established tunnel lost nothing');
  for (const n of [a, b]) n.t.close();
});

test('past COOKIE_REPLIES_PER_SECOND, forgeries are left unanswered: 30,000 in a simulated second get at most the budget', async (t) => {
  const w = world();
  const C = await import('../../agent/base/constants.js');
  const { a, b } = await established(w);
  const key = mac1KeyOf(b.pub);
  const t0 = w.clock.now();
  for (let s = 0; s < 100; s++) {
    for (let i = 0; i < 300; i++) w.attacker.send(forgedInitiation(key), b.sock.local);
    await w.clock.advance(10);
    await turns(1);
  }
  await turns();
  const secs = (w.clock.now() - t0) / 1000;
  const budget = C.COOKIE_REPLIES_PER_SECOND * (secs + 0.1);
  t.diagnostic(`forged: 30000 in ${secs} s; cookie replies ${stat(b.t, 'cookieReplySent')} (budget ${budget}), unanswered ${stat(b.t, 'cookieReplySkipped')}; bytes to spoofed sources ${b.toSpoofed.bytes}`);
  assert.ok(stat(b.t, 'cookieReplySent') <= budget);
  assert.ok(stat(b.t, 'cookieReplySkipped') >= 30_000 - budget - 256);
  a.t.close(); b.t.close();
});
