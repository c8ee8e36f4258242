// The tunnel's bridge (tunnels.ts bridge, FOLLOW_ME), on twins: a and b on a direct path, and R, a relay
// that forwards whatever one sends it to the other (b sees a's relayed packets come from R, and back).
// When the direct path breaks, a's bridge copies every datagram to R; the FOLLOW_ME it sends first moves
// b onto R at once, although b heard a directly moments ago (roam()'s hold would keep it there); each
// packet arrives once. Once a hears b at its (new) direct endpoint the copies stop. Only a's keys can
// move b: a replayed FOLLOW_ME from elsewhere moves nothing.
import test from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { ed25519 } from '@noble/curves/ed25519.js';
import { Tunnels } from '../../agent/tunnel/tunnels.js';
import { MemoryNetwork, type MemorySocket } from '../../agent/conn/memory-socket.js';
import { BRIDGE_MAX_MS, ROAM_DIRECT_HOLD_MS } from '../../agent/base/constants.js';
import type { Endpoint } from '../../agent/conn/socket.js';

const silent = pino({ level: 'silent' });
const settle = async () => { for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r)); };
const RELAY = '198.51.100.10';
const isRelayed = (e: Endpoint) => e.address === RELAY;

function world() {
  const net = new MemoryNetwork();
  const clock = { t: 1_700_000_000_000 };
  const twin = { now: () => clock.t, setTimer: () => ({ cancel() {} }) };
  let directBroken = false;
  let relayDrops = 0;
  // The direct path between a and b breaks (a's NAT changed, say); the relay still reaches both.
  net.setTranslate((from, to) => (directBroken && from.address !== RELAY && to.address !== RELAY ? undefined : from));
  const node = (addr: string) => {
    const sk = ed25519.utils.randomSecretKey();
    const sock = net.socket(addr, 4500);
    const got: string[] = [];
    const seen: { msg: Buffer; from: Endpoint }[] = [];
    const t = new Tunnels({ privateKey: sk, socket: sock, logger: silent, clock: twin, paths: { isRelayed }, receiver: { handlePacket: (_p, pkt) => got.push(String(pkt)) } });
    sock.onMessage((m, from) => { seen.push({ msg: Buffer.from(m), from }); t.handleDatagram(m, from); });
    return { t, sock, pub: ed25519.getPublicKey(sk), got, seen };
  };
  const a = node('203.0.113.1'), b = node('203.0.113.2');
  const relay: MemorySocket = net.socket(RELAY, 4500);
  relay.onMessage((m, from) => { if (relayDrops > 0) { relayDrops--; return; } relay.send(m, from.address === a.sock.local.address ? b.sock.local : a.sock.local); });
  const ab = a.t.addPeer(b.pub, b.sock.local), ba = b.t.addPeer(a.pub, a.sock.local);
  return {
    a, b, ab, ba, clock, relay: relay.local,
    breakDirect: (v: boolean) => { directBroken = v; },
    dropAtRelay: (n: number) => { relayDrops = n; },
    close: () => { a.t.close(); b.t.close(); },
  };
}

async function established(w: ReturnType<typeof world>): Promise<void> {
  w.a.t.send(w.ab, Buffer.from('hello'));
  await settle();
  w.b.t.send(w.ba, Buffer.from('hello back'));
  await settle();
  assert.deepEqual([w.a.got, w.b.got], [['hello back'], ['hello']]);
}

const endpointOf = (t: Tunnels) => t.status()[0]!.endpoint;

test('bridge: the FOLLOW_ME moves the peer onto the relay past the hold; every packet arrives once; the copies stop once the peer is heard at the direct endpoint', async () => {
  const w = world();
  await established(w);
  w.breakDirect(true);
  assert.ok(w.a.t.bridge(w.ab, w.relay));
  await settle();
  assert.equal(w.b.t.stats.followed, 1);
  assert.equal(endpointOf(w.b.t), `${RELAY}:4500`, 'b answers on the relay at once, inside ROAM_DIRECT_HOLD_MS');
  assert.equal(endpointOf(w.a.t), `${w.b.sock.local.address}:4500`, 'a keeps its direct endpoint (the restart may find it again)');
  assert.equal(w.a.t.status()[0]!.bridge, `${RELAY}:4500`);
  for (let i = 0; i < 5; i++) { w.a.t.send(w.ab, Buffer.from(`a ${i}`)); w.b.t.send(w.ba, Buffer.from(`b ${i}`)); }
  await settle();
  assert.deepEqual(w.b.got.slice(1), ['a 0', 'a 1', 'a 2', 'a 3', 'a 4'], 'through the bridge, once each');
  assert.deepEqual(w.a.got.slice(1), ['b 0', 'b 1', 'b 2', 'b 3', 'b 4'], 'b\'s answers come back through the relay');
  assert.ok(w.a.t.stats.roamHeld >= 1, 'a was not pulled off its direct endpoint by the relayed answers');
  // The direct path is back (the restart found it): a's keepalive there and its copy on the relay both
  // reach b; the second is a replay. b's answer at the direct endpoint ends a's bridge.
  w.breakDirect(false);
  w.a.t.setEndpoint(w.ab, w.b.sock.local, true);
  await settle();
  assert.equal(endpointOf(w.b.t), `${w.a.sock.local.address}:4500`, 'b back on the direct path');
  assert.ok(w.b.t.stats.rxReplayed >= 1, 'the relayed copy was dropped as a replay');
  w.b.t.send(w.ba, Buffer.from('direct again'));
  await settle();
  assert.equal(w.a.t.status()[0]!.bridge, null, 'heard at the endpoint: the bridge ended');
  const copies = w.a.t.stats.bridgeCopies;
  w.a.t.send(w.ab, Buffer.from('no copy'));
  await settle();
  assert.equal(w.a.t.stats.bridgeCopies, copies);
  assert.equal(w.b.got.at(-1), 'no copy');
  w.close();
});

test('bridge: a replayed or spoofed FOLLOW_ME moves nothing; a bridge ends after BRIDGE_MAX_MS; none on a relayed endpoint or without a session', async () => {
  const w = world();
  assert.equal(w.a.t.bridge(w.ab, w.relay), false, 'no session yet');
  await established(w);
  assert.ok(w.a.t.bridge(w.ab, w.relay));
  await settle();
  const follow = w.b.seen.at(-1)!;
  assert.equal(follow.from.address, RELAY);
  w.b.t.setEndpoint(w.ba, w.a.sock.local); // b back on the direct endpoint
  w.b.t.handleDatagram(follow.msg, { address: '192.0.2.66', port: 9 });
  assert.equal(endpointOf(w.b.t), `${w.a.sock.local.address}:4500`, 'a replay from a spoofed source moved nothing');
  assert.equal(w.b.t.stats.followed, 1);
  assert.ok(w.b.t.stats.rxReplayed >= 1);
  // The bridge lapses: nothing was heard at a's endpoint, but copies stop after BRIDGE_MAX_MS.
  w.clock.t += BRIDGE_MAX_MS;
  const copies = w.a.t.stats.bridgeCopies;
  w.a.t.send(w.ab, Buffer.from('late'));
  assert.equal(w.a.t.stats.bridgeCopies, copies);
  assert.equal(w.a.t.status()[0]!.bridge, null);
  // On a relay already (b roamed there after the hold): nothing to bridge.
  w.clock.t += ROAM_DIRECT_HOLD_MS;
  w.b.t.setEndpoint(w.ba, w.relay);
  assert.equal(w.b.t.bridge(w.ba, w.relay), false);
  w.close();
});


test('bridge: a FOLLOW_ME the relay dropped is sent again every tick until the peer is heard, then no more', async () => {
  const w = world();
  await established(w);
  w.breakDirect(true);
  w.dropAtRelay(2); // a relay that had not verified our new source yet
  assert.ok(w.a.t.bridge(w.ab, w.relay));
  await settle();
  assert.equal(w.b.t.stats.followed, 0);
  w.clock.t += 250; w.a.t.tick(); await settle();
  assert.equal(w.b.t.stats.followed, 0, 'the second one was dropped too');
  w.clock.t += 250; w.a.t.tick(); await settle();
  assert.equal(w.b.t.stats.followed, 1, 'the third got through');
  w.b.t.send(w.ba, Buffer.from('heard'));
  await settle();
  assert.equal(w.a.got.at(-1), 'heard');
  // Control messages other than FOLLOW_ME: the CATCH_ME_UP that goes with each receive silence.
  const followMes = () => w.a.t.stats.txControl - w.a.t.stats.rxSilentKeepalive;
  const sent = followMes();
  for (let i = 0; i < 4; i++) { w.clock.t += 250; w.a.t.tick(); }
  await settle();
  assert.equal(followMes(), sent, 'answered: no more FOLLOW_ME');
  w.close();
});
