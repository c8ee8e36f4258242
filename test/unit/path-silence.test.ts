// Mobility's fast paths, on twins: a tunnel notices a path that went silent (data sent, nothing heard for
// PATH_SILENT_MS; a flow towards us stopped for RECEIVE_SILENT_MS) once per silence, and only an
// authenticated packet ends a silence or moves the endpoint; the path keeper restarts ICE on a local
// change at once, with fresh srflx, at most once per ICE_RESTART_MIN_INTERVAL_MS per peer, never with a
// peer reached at its public locator, and keeps the old path when a restart finds nothing.
import test from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { ed25519 } from '@noble/curves/ed25519.js';
import { Tunnels, type TunnelPeer } from '../../agent/tunnel/tunnels.js';
import { MemoryNetwork } from '../../agent/conn/memory-socket.js';
import { BRIDGE_DIRECT_RETRY_MS, ICE_RESTART_MIN_INTERVAL_MS, PATH_SILENT_MS, RECEIVE_SILENT_MS, TUNNEL_TICK_MS } from '../../agent/base/constants.js';
import { SimScheduler } from '../../agent/base/scheduler.js';
import { PathKeeper, type KeptPeers, type PathKeeperOverlay } from '../../agent/nat/path-keeper.js';
import type { PathChoice, Traversal } from '../../agent/nat/traversal.js';
import type { NetcheckReport } from '../../agent/nat/netcheck.js';
import type { OverlayPeer } from '../../agent/idloc/peer-map.js';
import type { LocatorRecord } from '../../agent/overlay/records.js';
import type { Endpoint } from '../../agent/conn/socket.js';

const silent = pino({ level: 'silent' });
const settle = async () => { for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r)); };

function world() {
  const net = new MemoryNetwork();
  const clock = { t: 1_700_000_000_000 };
  const twin = { now: () => clock.t, setTimer: () => ({ cancel() {} }) };
  const all: Tunnels[] = [];
  const node = (addr: string) => {
    const sk = ed25519.utils.randomSecretKey();
    const sock = net.socket(addr, 4500);
    const reports: string[] = [];
    const t = new Tunnels({
      privateKey: sk, socket: sock, logger: silent, clock: twin, receiver: { handlePacket: () => {} },
      admission: { acceptUnknown: () => false, handshakeUnanswered: () => {}, pathSilent: (_p, side) => reports.push(side) },
    });
    const seen: Buffer[] = [];
    sock.onMessage((m, from) => { seen.push(Buffer.from(m)); t.handleDatagram(m, from); });
    all.push(t);
    return { t, sock, pub: ed25519.getPublicKey(sk), reports, seen };
  };
  const advance = (ms: number) => { for (let d = 0; d < ms; d += TUNNEL_TICK_MS) { clock.t += TUNNEL_TICK_MS; for (const t of all) t.tick(); } };
  return { net, node, advance, close: () => { for (const t of all) t.close(); } };
}

type N = ReturnType<ReturnType<typeof world>['node']>;
const connect = (a: N, b: N): [TunnelPeer, TunnelPeer] => [a.t.addPeer(b.pub, b.sock.local), b.t.addPeer(a.pub, a.sock.local)];

test('data sent with nothing heard for PATH_SILENT_MS is reported once per silence; a forged packet does not end it, an authenticated one does', async () => {
  const w = world();
  const a = w.node('10.0.0.1'), b = w.node('10.0.0.2');
  const [ab, ba] = connect(a, b);
  a.t.send(ab, Buffer.from('hello'));
  await settle();
  b.t.send(ba, Buffer.from('back'));
  await settle();
  w.net.detach(b.sock); // b's NAT forgets us: nothing of ours arrives, nothing of b's comes back
  const forged = { tried: 0 };
  for (let ms = 0; ms < 3 * PATH_SILENT_MS; ms += TUNNEL_TICK_MS) {
    a.t.send(ab, Buffer.from('data into the void'));
    w.advance(TUNNEL_TICK_MS);
    // Garbage, and a replay of an old datagram of b's, from a spoofed address: neither counts as heard.
    a.t.handleDatagram(Buffer.from([4, 0, 0, 0, 1, 2, 3]), { address: '203.0.113.66', port: 9 });
    a.t.handleDatagram(a.seen[a.seen.length - 1]!, { address: '203.0.113.66', port: 9 });
    forged.tried += 2;
  }
  // The flow towards a stopped too (a keepalive went back at RECEIVE_SILENT_MS); then, as a sender, once.
  assert.deepEqual(a.reports, ['receiving', 'sending'], 'reported once each, not every tick');
  assert.equal(a.t.stats.pathSilent, 1);
  assert.equal(a.t.status()[0]!.endpoint, '10.0.0.2:4500', 'forged packets moved nothing');
  w.net.attach(b.sock);
  b.t.send(ba, Buffer.from('b is back'));
  await settle();
  w.net.detach(b.sock);
  for (let ms = 0; ms < 2 * PATH_SILENT_MS; ms += TUNNEL_TICK_MS) { a.t.send(ab, Buffer.from('again')); w.advance(TUNNEL_TICK_MS); }
  assert.deepEqual(a.reports.filter((r) => r === 'sending'), ['sending', 'sending'], 'a new silence after an authenticated packet is reported again');
  console.log(`path silence: ${forged.tried} forged/replayed/spoofed datagrams during the silence, none ended it or moved the endpoint`);
  w.close();
});

test('a flow towards us that stops gets one keepalive back after RECEIVE_SILENT_MS (re-creating a forgotten NAT mapping), once per silence', async () => {
  const w = world();
  const a = w.node('10.0.0.1'), b = w.node('10.0.0.2');
  const [ab, ba] = connect(a, b);
  a.t.send(ab, Buffer.from('hello'));
  await settle();
  for (let i = 0; i < 6; i++) { b.t.send(ba, Buffer.from(`clock ${i}`)); await settle(); w.advance(TUNNEL_TICK_MS); }
  const keepalives = () => a.t.stats.txKeepalive - a.t.stats.flowAcks; // flow acks answer b's flow meanwhile
  const before = keepalives();
  w.advance(RECEIVE_SILENT_MS + TUNNEL_TICK_MS);
  await settle();
  assert.equal(keepalives(), before + 1);
  assert.equal(a.t.stats.rxSilentKeepalive, 1);
  assert.deepEqual(a.reports, ['receiving']);
  w.advance(5 * RECEIVE_SILENT_MS);
  assert.equal(a.t.stats.rxSilentKeepalive, 1, 'one per silence');
  // b's one-way flow was answered by a's keepalives (FLOW_ACK_MS): no silence as a sender.
  assert.ok(!b.reports.includes('sending'), JSON.stringify(b.reports));
  assert.ok(a.t.stats.flowAcks > 0);
  w.close();
});

test('setEndpoint to the same endpoint sends a keepalive only when nudged (an ICE restart that found the old pair again)', async () => {
  const w = world();
  const a = w.node('10.0.0.1'), b = w.node('10.0.0.2');
  const [ab] = connect(a, b);
  a.t.send(ab, Buffer.from('hello'));
  await settle();
  const before = a.t.stats.txKeepalive;
  a.t.setEndpoint(ab, b.sock.local);
  assert.equal(a.t.stats.txKeepalive, before);
  a.t.setEndpoint(ab, b.sock.local, true);
  assert.equal(a.t.stats.txKeepalive, before + 1);
  w.close();
});

// ---- the path keeper ---------------------------------------------------------------------------------

function keeperWorld(opts: { result?: () => PathChoice; how?: PathChoice['how']; bridgeVia?: boolean } = {}) {
  const clock = new SimScheduler(1_000_000);
  const reached: { peer: string; at: number; offered: Endpoint | undefined }[] = [];
  let publicEndpoint: Endpoint | undefined = { address: '203.0.113.10', port: 4500 };
  const refreshed: number[] = [];
  const pointed: string[] = [];
  const bridges: { peer: string; via: string; at: number }[] = [];
  const peer = { nodeIdHex: 'aa'.repeat(20) } as OverlayPeer<unknown>;
  const publicPeer = { nodeIdHex: 'bb'.repeat(20) } as OverlayPeer<unknown>;
  const locator = { owner: new Uint8Array(32), value: { rendezvous: [new Uint8Array(20)], candidates: [] } } as unknown as LocatorRecord;
  const ice = (): PathChoice => ({ how: 'ice', endpoint: { address: '203.0.113.12', port: 4500 }, reason: 'test' });
  const traversal = {
    behindNat: true, candidates: () => [{ address: '10.10.0.2', port: 4500, type: 0, priority: 1 }], setNetcheck: () => {}, hostFamilies: () => new Set([4]),
    setPublicEndpoint: (e: Endpoint) => { publicEndpoint = e; },
    reach: async (loc: LocatorRecord) => {
      reached.push({ peer: loc === locator ? 'nat' : 'public', at: clock.now(), offered: publicEndpoint });
      return loc === locator ? (opts.result ?? ice)() : { how: 'locator', endpoint: { address: '198.51.100.10', port: 4500 }, reason: 'public' } as PathChoice;
    },
    ...(opts.bridgeVia ? {
      bridgeVia: async (loc: LocatorRecord) => (loc.value?.rendezvous.length ? { endpoint: { address: '100::1', port: 1 }, relay: { address: '198.51.100.10', port: 4500 } } : undefined),
    } : {}),
  } as unknown as Traversal;
  const overlay: PathKeeperOverlay = {
    node: {
      rendezvous: { prefer: () => {}, setCount: () => {}, current: () => [{ endpoint: { address: '198.51.100.10', port: 4500 } }] as never, refresh: () => refreshed.push(clock.now()) },
      resolver: { resolveNodeId: async () => locator },
    } as unknown as PathKeeperOverlay['node'],
    advertise: async () => true, providers: async () => [], stunCandidates: () => [], addressesChanged: () => {},
  };
  const peers: KeptPeers = {
    pointTo: (p) => pointed.push(p.nodeIdHex), alive: () => true,
    bridge: (p, via) => bridges.push({ peer: p.nodeIdHex, via: `${via.address}:${via.port}`, at: clock.now() }) > 0,
    overlayPaths: () => [peer, publicPeer].map((p) => ({ peer: p, established: true, endpoint: { address: '203.0.113.12', port: 4500 } })),
  };
  // Our new mapping, as the first STUN server answers it.
  const netcheck = async (servers: Endpoint[]) => ({ udp: true, servers: [], publicEndpoint: { address: '203.0.113.11', port: 4500 }, publicEndpoints: [], behindNat: true, mapping: 'endpoint-independent', durationMs: 1, servers0: servers } as unknown as NetcheckReport);
  const keeper = new PathKeeper({ overlay, traversal, logger: silent, stunServers: [], offerPeerRelay: false, routes: { relayRoute: () => undefined }, netcheck, peers, clock });
  return { clock, keeper, reached, refreshed, pointed, bridges, peer, publicPeer, locator };
}

test('a local change restarts ICE at once with the fresh srflx, with peers behind NATs only; restarts are rate-limited per peer, a change inside the interval runs once at its end', async () => {
  const k = keeperWorld();
  k.keeper.traverse(k.peer, k.locator);
  k.keeper.traverse(k.publicPeer, { owner: new Uint8Array(32), value: { rendezvous: [], candidates: [] } } as unknown as LocatorRecord);
  await k.clock.advance(0);
  await settle();
  k.reached.length = 0;
  k.pointed.length = 0;
  const t0 = k.clock.now();
  k.keeper.localChange();
  await settle();
  assert.deepEqual(k.reached.map((r) => r.peer), ['nat'], 'only the peer that needed traversal');
  assert.equal(k.reached[0]!.at, t0, 'at once');
  assert.equal(k.reached[0]!.offered?.address, '203.0.113.11', 'offering the new mapping');
  assert.deepEqual(k.pointed, [k.peer.nodeIdHex]);
  assert.equal(k.refreshed.length, 1, 'rendezvous PINGed from the new address');
  // A flapping link: ten more changes within the interval cost one restart, at its end.
  for (let i = 0; i < 10; i++) { await k.clock.advance(ICE_RESTART_MIN_INTERVAL_MS / 20); k.keeper.localChange(); await settle(); }
  assert.equal(k.reached.length, 1);
  assert.equal(k.refreshed.length, 1);
  await k.clock.advance(ICE_RESTART_MIN_INTERVAL_MS);
  await settle();
  assert.equal(k.reached.length, 2, 'the deferred change ran once');
  assert.equal(k.keeper.restartStats.run, 2);
  assert.ok(k.keeper.restartStats.deferred >= 10);
  console.log(`ice restarts: 11 changes in ${ICE_RESTART_MIN_INTERVAL_MS / 2} ms -> ${k.keeper.restartStats.run} restarts (${k.keeper.restartStats.deferred} deferred)`);
  k.keeper.close();
});

test('a restart that finds no path keeps the one there was; a silent path restarts only that peer', async () => {
  let fail = false;
  const k = keeperWorld({ result: () => (fail ? { how: 'no-direct-path', reason: 'nothing answered' } : { how: 'ice', endpoint: { address: '203.0.113.12', port: 4500 }, reason: 'ok' }) });
  k.keeper.traverse(k.peer, k.locator);
  await settle();
  fail = true;
  k.keeper.localChange(k.peer);
  await settle();
  assert.equal(k.keeper.choice(k.peer)?.how, 'ice', 'nothing never replaces something');
  assert.deepEqual(k.reached.map((r) => r.peer), ['nat', 'nat']);
  k.keeper.close();
});

test('bridge: a restart of a direct path copies the tunnel to the peer relay at once; the restart\'s direct pair ends it; one that finds none keeps the relay and tries direct again after BRIDGE_DIRECT_RETRY_MS', async () => {
  let result: 'ice' | 'none' = 'ice';
  const k = keeperWorld({ bridgeVia: true, result: () => (result === 'ice' ? { how: 'ice', endpoint: { address: '203.0.113.12', port: 4500 }, reason: 'ok' } : { how: 'no-direct-path', reason: 'nothing answered' }) });
  k.keeper.traverse(k.peer, k.locator);
  k.keeper.traverse(k.publicPeer, { owner: new Uint8Array(32), value: { rendezvous: [], candidates: [] } } as unknown as LocatorRecord);
  await settle();
  assert.deepEqual(k.bridges, [], 'no bridge before anything changed');
  // Our move: the NATed peer's tunnel is bridged at once, the public one's is not (nothing of ours
  // filters between us and a public locator). The restart's direct pair then replaces the bridge.
  const t0 = k.clock.now();
  result = 'ice';
  k.keeper.localChange();
  await settle();
  assert.deepEqual(k.bridges, [{ peer: k.peer.nodeIdHex, via: '100::1:1', at: t0 }]);
  assert.equal(k.keeper.restartStats.bridged, 1);
  assert.equal(k.keeper.choice(k.peer)?.how, 'ice', 'the restart\'s direct pair ended the bridge');
  // A silent path whose restart finds nothing: the bridge stays the path, with its reason, and direct is
  // tried again soon, not after ICE_DIRECT_RETRY_MS.
  await k.clock.advance(ICE_RESTART_MIN_INTERVAL_MS);
  result = 'none';
  k.keeper.localChange(k.peer);
  await settle();
  assert.equal(k.bridges.length, 2);
  const c = k.keeper.choice(k.peer);
  assert.equal(c?.how, 'peer-relay', JSON.stringify(c));
  assert.match(c!.reason, /bridged through peer relay 198\.51\.100\.10:4500 .*the direct path went silent/);
  const tried = k.reached.length;
  result = 'ice';
  await k.clock.advance(BRIDGE_DIRECT_RETRY_MS);
  await settle();
  assert.equal(k.reached.length, tried + 1, 'direct tried again after BRIDGE_DIRECT_RETRY_MS');
  assert.equal(k.keeper.choice(k.peer)?.how, 'ice', 'and taken: direct beats the bridge');
  k.keeper.close();
});
