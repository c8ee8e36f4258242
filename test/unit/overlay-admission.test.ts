// Lock-out on the in-memory twins: 1,024 strangers (cheap keys, each from its own IPv6 /64) complete a
// handshake with an overlay-open agent and then send nothing, which fills MAX_OVERLAY_PEERS. A legitimate
// newcomer must still connect within 1 s (simulated clock); the idle admissions must be evicted after
// their bound and a peer that goes quiet after its own; and the IPv4 claim lookups the admissions start
// must stay capped in flight. Built from Tunnels + Peers + Discovery on a SimScheduler (no overlay: its
// lookups are stubs that never answer, the worst case for a lookup cap).
// Counters and constants are read by name (num(), constant()), so a missing one fails an assertion, not the build.
import test from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { ed25519 } from '@noble/curves/ed25519.js';
import { Tunnels, type TunnelPeer } from '../../agent/tunnel/tunnels.js';
import { MemoryNetwork } from '../../agent/conn/memory-socket.js';
import { SimScheduler } from '../../agent/base/scheduler.js';
import { PeerMap } from '../../agent/idloc/peer-map.js';
import { Peers, type PeersOptions } from '../../agent/peers.js';
import { Discovery, type DiscoveryDeps } from '../../agent/discovery.js';
import * as C from '../../agent/base/constants.js';

const silent = pino({ level: 'silent' });
const constant = (k: string, fallback: number): number => (C as unknown as Record<string, number | undefined>)[k] ?? fallback;
const num = (o: object, k: string): number => (o as Record<string, number | undefined>)[k] ?? 0;
const VICTIM = { address: '198.51.100.1', port: 4500 };

function setup() {
  const net = new MemoryNetwork();
  const clock = new SimScheduler(1_700_000_000_000);
  const sk = ed25519.utils.randomSecretKey();
  const pub = ed25519.getPublicKey(sk);
  const got: { from: string; data: string }[] = [];
  const sock = net.socket(VICTIM.address, VICTIM.port);
  const tunnels = new Tunnels({
    privateKey: sk, socket: sock, logger: silent, clock,
    receiver: { handlePacket: (p, pkt) => got.push({ from: p.publicKeyHex, data: pkt.toString() }) },
  });
  sock.onMessage((m, from) => tunnels.handleDatagram(m, from));
  const map = new PeerMap<TunnelPeer>();
  const peers = new Peers({
    ownPublicKeyHex: Buffer.from(pub).toString('hex'), map, tunnels, logger: silent, allow: 'overlay',
    overlay: { locate: async () => undefined, puzzleDifficulty: 0 }, clock,
  } as PeersOptions);
  const lookups = { inFlight: 0, maxInFlight: 0, started: 0 };
  const discovery = new Discovery({
    overlay: {
      lookupIpv4: async () => undefined, lookupIpv6: async () => undefined,
      ipv4Of: () => { lookups.started++; lookups.maxInFlight = Math.max(lookups.maxInFlight, ++lookups.inFlight); return new Promise<undefined>(() => {}); },
    },
    peers, inside: { forward() {}, unreachable() {} }, outside: { deliver() {} }, clock,
  } as unknown as DiscoveryDeps);
  peers.keepPathsWith(undefined, discovery);
  tunnels.admitWith(peers);
  // A stranger: its own Tunnels on its own address, which knows the victim.
  const stranger = (address: string) => {
    const s = net.socket(address, 4500);
    const key = ed25519.utils.randomSecretKey();
    const t = new Tunnels({ privateKey: key, socket: s, logger: silent, clock, receiver: { handlePacket() {} } });
    s.onMessage((m, from) => t.handleDatagram(m, from));
    const keyHex = Buffer.from(ed25519.getPublicKey(key)).toString('hex');
    return { t, keyHex, peer: t.addPeer(pub, VICTIM), close: () => { t.close(); void s.close(); } };
  };
  return { clock, tunnels, map, peers, discovery, got, lookups, stranger };
}

const turns = async (n = 3) => { for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r)); };

test('1,024 idle admissions do not lock out a newcomer, are evicted after their bound, and their lookups stay capped', async (t) => {
  const w = setup();
  const MAX = constant('MAX_OVERLAY_PEERS', 1024);
  const attackers = Array.from({ length: MAX }, (_, i) => w.stranger(`2001:db8:${(i + 1).toString(16)}::66`));
  for (const a of attackers) a.t.connect(a.peer); // handshake, then nothing: no inner packet ever
  const fillStart = w.clock.now();
  for (let ms = 0; ms < 20_000 && w.map.size < MAX; ms += 50) { await w.clock.advance(50); await turns(); }
  const fillMs = w.clock.now() - fillStart;
  const admittedBefore = w.map.size;
  t.diagnostic(`idle admissions: ${admittedBefore} of ${MAX} strangers in ${fillMs} ms simulated (cookie replies ${num(w.tunnels.stats, 'cookieReplySent')})`);
  t.diagnostic(`IPv4 claim lookups: started ${w.lookups.started}, at most ${w.lookups.maxInFlight} in flight, dropped ${num(w.discovery.stats, 'ipv4LookupsDropped')}`);
  assert.equal(admittedBefore, MAX, 'the table is full of idle strangers');

  const n = w.stranger('198.51.100.7');
  n.t.send(n.peer, Buffer.from('hello from the newcomer'));
  const start = w.clock.now();
  let connectedMs: number | undefined;
  for (let ms = 0; ms < 3000 && connectedMs === undefined; ms += 10) {
    await w.clock.advance(10); await turns();
    if (w.got.some((g) => g.data === 'hello from the newcomer')) connectedMs = w.clock.now() - start;
  }
  t.diagnostic(`newcomer connected after ${connectedMs ?? 'never'} ms; refused as full: ${w.peers.stats.full}, evicted to make room: ${num(w.peers.stats, 'evictedForRoom')}`);
  assert.ok(connectedMs !== undefined && connectedMs <= 1000, `the newcomer got through within 1 s (${connectedMs} ms)`);
  assert.ok(w.lookups.maxInFlight <= constant('PEER_LOOKUPS_IN_FLIGHT', 16), `${w.lookups.maxInFlight} IPv4 claim lookups ran at once`);

  // The strangers stay idle (and silent): after the bound, every one of them is gone; the newcomer, who
  // sent data and keeps its keepalives coming, stays.
  for (const a of attackers) a.close();
  await w.clock.advance(constant('OVERLAY_PEER_NO_DATA_MS', 30_000) + constant('OVERLAY_PEER_SWEEP_MS', 5_000));
  await turns();
  t.diagnostic(`after the no-data bound: ${w.map.size} peer(s) left, evicted for no data ${num(w.peers.stats, 'evictedNoData')}`);
  assert.equal(w.map.size, 1, 'only the newcomer is left');
  assert.ok(w.map.getByKey(n.keyHex), 'and it is the newcomer');

  // The newcomer goes quiet (its agent stops): its slot is freed after OVERLAY_PEER_QUIET_MS.
  n.close();
  await w.clock.advance(constant('OVERLAY_PEER_QUIET_MS', 180_000) + constant('OVERLAY_PEER_SWEEP_MS', 5_000));
  await turns();
  t.diagnostic(`after the quiet bound: ${w.map.size} peer(s) left, evicted as quiet ${num(w.peers.stats, 'evictedQuiet')}`);
  assert.equal(w.map.size, 0, 'a peer that went quiet is evicted too');
  w.tunnels.close(); w.peers.close(); w.discovery.close();
});

test('a static peer is never evicted, however idle', async () => {
  const w = setup();
  const sk = ed25519.utils.randomSecretKey();
  w.peers.add({ publicKey: ed25519.getPublicKey(sk), endpoint: { address: '198.51.100.9', port: 4500 } });
  await w.clock.advance(constant('OVERLAY_PEER_QUIET_MS', 180_000) * 2);
  assert.equal(w.map.size, 1);
  w.tunnels.close(); w.peers.close(); w.discovery.close();
});
