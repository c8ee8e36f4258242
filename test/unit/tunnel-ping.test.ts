// The in-tunnel ping of `idloc-agent ping` (tunnel/ping.ts) between two Tunnels over a MemoryNetwork:
// answered by the peer's agent on its session, the pong back where the ping came from; pongs nobody
// asked for, and other control messages, are not taken for one; the codec round-trips and refuses the rest.
import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import pino from 'pino';
import { ed25519 } from '@noble/curves/ed25519.js';
import { Tunnels } from '../../agent/tunnel/tunnels.js';
import { MemoryNetwork } from '../../agent/conn/memory-socket.js';
import {
  CTRL_TUNNEL_PING, CTRL_TUNNEL_PONG, TunnelPing, marshalTunnelPing, parseTunnelPing, type TunnelPong,
} from '../../agent/tunnel/ping.js';
import { TUNNEL_PINGS_PENDING_MAX } from '../../agent/base/constants.js';

const silent = pino({ level: 'silent' });
const settle = async () => { for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r)); };

function pair() {
  const net = new MemoryNetwork();
  const mk = (addr: string) => {
    const sk = ed25519.utils.randomSecretKey();
    const sock = net.socket(addr, 4500);
    const got: Buffer[] = [];
    const t = new Tunnels({ privateKey: sk, socket: sock, logger: silent, receiver: { handlePacket: (_p, b) => got.push(Buffer.from(b)) } });
    sock.onMessage((m, f) => t.handleDatagram(m, f));
    let hr = 0;
    return { t, sock, pub: ed25519.getPublicKey(sk), got, ping: new TunnelPing(t, () => (hr += 0.25)) };
  };
  const a = mk('10.0.0.1'), b = mk('10.0.0.2');
  return { a, b, ab: a.t.addPeer(b.pub, b.sock.local), ba: b.t.addPeer(a.pub, a.sock.local) };
}

test('a ping on the session is answered by the peer\'s agent: the pong comes from its endpoint, with a round trip', async () => {
  const { a, b, ab } = pair();
  assert.equal(a.ping.ping(ab, () => {}), false, 'no session yet: nothing is sent');
  a.t.send(ab, Buffer.from([0x45, 1, 2, 3]));
  await settle();
  const pongs: TunnelPong[] = [];
  assert.notEqual(a.ping.ping(ab, (p) => pongs.push(p)), false);
  await settle();
  assert.equal(pongs.length, 1);
  assert.deepEqual({ ...pongs[0]!.from }, { address: '10.0.0.2', port: 4500 });
  assert.ok(pongs[0]!.rttMs > 0);
  assert.deepEqual([b.ping.stats.pingsAnswered, a.ping.stats.pongs], [1, 1]);
  assert.equal(b.got.length, 1, 'the ping is not handed up as a packet');
  a.t.close(); b.t.close();
});

test('a pong nobody waits for is counted and taken for nothing; a cancelled wait drops its pong; the wait table is bounded', async () => {
  const { a, b, ab, ba } = pair();
  a.t.send(ab, Buffer.from([0x45]));
  await settle();
  assert.equal(b.t.sendControl(ba, marshalTunnelPing(CTRL_TUNNEL_PONG, 77)), true);
  await settle();
  assert.equal(a.ping.stats.pongsUnexpected, 1);
  let called = 0;
  const cancel = a.ping.ping(ab, () => called++);
  assert.ok(cancel);
  cancel();
  await settle();
  assert.equal(called, 0);
  assert.equal(a.ping.stats.pongsUnexpected, 2, 'its pong came after the wait was dropped');
  b.t.close(); // nobody answers now: the waits pile up to the bound, then pings are refused
  let refused = 0;
  for (let i = 0; i < TUNNEL_PINGS_PENDING_MAX + 5; i++) if (a.ping.ping(ab, () => {}) === false) refused++;
  assert.equal(refused, 5);
  assert.equal(a.ping.stats.pendingFull, 5);
  a.t.close();
});

test('codec: ping and pong round-trip; any other 8 bytes, and any other length, are not one', () => {
  fc.assert(fc.property(fc.constantFrom(CTRL_TUNNEL_PING, CTRL_TUNNEL_PONG), fc.nat({ max: 0xffffffff }), (type, id) => {
    assert.deepEqual(parseTunnelPing(marshalTunnelPing(type, id)), { type, id });
  }));
  fc.assert(fc.property(fc.uint8Array({ maxLength: 16 }), (b) => {
    const r = parseTunnelPing(b);
    if (r) assert.ok(b.length === 8 && (b[0] === CTRL_TUNNEL_PING || b[0] === CTRL_TUNNEL_PONG) && b[1] === 0 && b[2] === 0 && b[3] === 0);
  }));
});
