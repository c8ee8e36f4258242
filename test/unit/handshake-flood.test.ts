// Handshake floods on the in-memory twins (MemoryNetwork + SimScheduler): forged initiations that are
// valid up to mac1 (an attacker computes it from the target's public key), 10,000 per simulated second
// from spoofed sources, while an established tunnel carries a ping and its answer every 10 ms. The
// tunnel must not lose a packet, the forgeries must not buy X25519 work beyond a bound, the answers to
// spoofed sources must be smaller than what they sent, and a real initiator that arrives during the
// flood gets a cookie reply and connects with mac2.
// Written against the tunnels' public surface (stats read by name), so it also runs on code without cookies.
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
  const mac1Off = INIT_LEN - ((INIT_LEN as number) === 172 ? 16 : 32); // 172 bytes: mac1 last; 188: mac1 then mac2
  b.set(messages.computeMac1(key, b.subarray(0, mac1Off)), mac1Off);
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

test('10,000 forged initiations per simulated second from spoofed sources: the tunnel loses nothing, X25519 work is bounded, a newcomer connects with a cookie', async (t) => {
  const w = world();
  // b answers every ping from a with a pong: the round trip crosses the flooded agent twice.
  const b = w.node('198.51.100.2', (self, peer, pkt) => { if (pkt.toString().startsWith('ping')) self.t.send(peer, Buffer.from(`pong${pkt.toString().slice(4)}`)); });
  const a = w.node('198.51.100.1');
  const ab = a.t.addPeer(b.pub, b.sock.local);
  b.t.addPeer(a.pub, a.sock.local);
  a.t.send(ab, Buffer.from('hello'));
  await w.clock.advance(100);
  await turns();
  assert.deepEqual(b.got, ['hello'], 'tunnel established before the flood');

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
