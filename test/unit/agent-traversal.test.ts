// Whole agents behind in-process NAT routers, no static peers, no TURN server: a cone host cannot reach a
// host behind a symmetric NAT directly, so its tunnel goes through a peer relay (the other host's
// rendezvous node) and status says so and why; with relaying switched off on the public nodes there is no
// path, and status says that. When the symmetric host moves to a network with a cone NAT, the background
// retry finds the direct pair that is now possible and the tunnel moves to it.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Agent } from '../../agent/daemon.js';
import { MemoryTap } from '../../agent/tap/memory-tap.js';
import { MemoryNetwork, type MemorySocket } from '../../agent/conn/memory-socket.js';
import { MemoryNat } from '../../agent/conn/memory-nat.js';
import { generateIdentity } from '../../agent/idloc/identity.js';
import { PORT_PREDICTION_COUNT, VIRTUAL_MAC } from '../../agent/base/constants.js';
import { allocationOrder, predictPorts } from '../../agent/nat/port-prediction.js';
import { ipv4, refChecksum } from './packet-helpers.js';

const silent = pino({ level: 'silent' });
const keepAlive = setInterval(() => undefined, 1000);
after(() => clearInterval(keepAlive));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Host { agent: Agent; tap: MemoryTap; sock: MemorySocket }

function host(sock: MemorySocket, i: number, bootstrap?: string, offerPeerRelay = true, probeSockets?: () => MemorySocket): Host {
  const tap = new MemoryTap({ name: `mem${i}`, mac: Uint8Array.of(2, 0, 0, 0, 3, i) });
  const agent = new Agent({
    identity: generateIdentity(), tap, socket: sock, peers: [], logger: silent,
    ...(probeSockets ? { probeSockets: { open: () => Promise.resolve(probeSockets()) } } : {}),
    overlay: { bootstraps: bootstrap ? [{ address: bootstrap, port: 4500 }] : [], puzzleDifficulty: 4, directRetryMs: 300, offerPeerRelay },
  });
  agent.start();
  return { agent, tap, sock };
}

const MARKER = Buffer.from('plaintext a relay must never see');

function ping(from: Host, to: Host, seq: number): Buffer {
  const icmp = Buffer.alloc(16 + MARKER.length);
  MARKER.copy(icmp, 16);
  icmp[0] = 8; icmp.writeUInt16BE(seq, 6); icmp.writeUInt16BE(refChecksum(icmp), 2);
  const u32 = (a: number) => Uint8Array.of(a >>> 24, (a >>> 16) & 255, (a >>> 8) & 255, a & 255);
  const p = ipv4(icmp, { src: u32(from.agent.currentIdentity.ipv4), dst: u32(to.agent.currentIdentity.ipv4), proto: 1 });
  const f = Buffer.alloc(14 + p.length);
  f.set(VIRTUAL_MAC, 0); f.set(from.tap.mac, 6); f.writeUInt16BE(0x0800, 12); f.set(p, 14);
  return f;
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

interface Lab {
  net: MemoryNetwork; s1: Host; s2: Host; a: Host; b: Host; coneB: MemoryNat; symB: MemoryNat;
  /** Every datagram the public agents (the relays) received. */
  atRelays: Buffer[];
  close: () => Promise<void>;
}

/** Keep a copy of every datagram the socket receives. */
function sniffed(sock: MemorySocket, into: Buffer[]): MemorySocket {
  const on = sock.onMessage.bind(sock);
  sock.onMessage = (h) => on((m, f) => { into.push(Buffer.from(m)); h(m, f); });
  return sock;
}

/** Two public agents (s1 the bootstrap), a behind a cone NAT, b behind a symmetric one (random ports, or
 *  handed out in order). */
async function lab(offerPeerRelay: boolean, bPorts: 'random' | 'sequential' = 'random', probing = false): Promise<Lab> {
  const net = new MemoryNetwork({ latencyMs: 1 });
  const atRelays: Buffer[] = [];
  const s1 = host(sniffed(net.socket('203.0.113.1', 4500), atRelays), 1, undefined, offerPeerRelay);
  const s2 = host(sniffed(net.socket('203.0.113.2', 4500), atRelays), 2, '203.0.113.1', offerPeerRelay);
  const coneA = new MemoryNat(net, { publicAddress: '198.51.100.20', mapping: 'endpoint-independent', filtering: 'address-and-port-dependent' });
  const symB = new MemoryNat(net, { publicAddress: '198.51.100.21', mapping: 'endpoint-dependent', filtering: 'address-and-port-dependent', portAllocation: bPorts, seed: 9 });
  const coneB = new MemoryNat(net, { publicAddress: '198.51.100.22', mapping: 'endpoint-independent', filtering: 'address-and-port-dependent' });
  // With probing, each NATed host can open more sockets behind its own NAT (ports from 30000 up).
  const more = (nat: MemoryNat, address: string) => { let port = 30_000; return () => nat.socket(address, port++); };
  const a = host(coneA.socket('10.1.0.2', 4500), 3, '203.0.113.1', true, probing ? more(coneA, '10.1.0.2') : undefined);
  const b = host(symB.socket('10.2.0.2', 4500), 4, '203.0.113.1', true, probing ? more(symB, '10.2.0.2') : undefined);
  const close = async () => { await Promise.all([s1.agent.close(), s2.agent.close(), a.agent.close(), b.agent.close()]); };
  try {
    const ready = (h: Host) => (h.agent.status().overlay?.rendezvous.length ?? 0) > 0 && h.agent.status().nat?.behindNat === true;
    await until(() => ready(a) && ready(b), 8000, 'both behind NAT with rendezvous');
    assert.equal(b.agent.status().nat?.mapping, 'endpoint-dependent');
  } catch (e) {
    await close();
    throw e;
  }
  return { net, s1, s2, a, b, coneB, symB, atRelays, close };
}

const peerOf = (h: Host, other: Host) => () => h.agent.status().peers.find((p) => p.publicKey === other.agent.currentIdentity.publicKeyHex);
const pingsAt = (h: Host) => h.tap.written.filter((f) => f.readUInt16BE(12) === 0x0800 && f[14 + 20] === 8).length;

test('no TURN server: a cone host reaches a host behind a symmetric NAT through a peer relay, and says so', async () => {
  const { s1, s2, a, b, atRelays, close } = await lab(true);
  try {
    const peerB = peerOf(a, b);
    a.tap.inject([ping(a, b, 1)]);
    await until(() => peerB()?.path === 'relayed', 5000, 'a to take a relayed path');
    const p = peerB()!;
    assert.equal(p.via, 'peer-relay');
    assert.ok(p.relay === '203.0.113.1:4500' || p.relay === '203.0.113.2:4500', `relayed through a public agent, not ${p.relay}`);
    assert.match(p.pathReason, /^via peer relay .*the peer's rendezvous node.*no direct path.*no TURN relay on either side/);
    assert.ok(p.rttMs !== null && p.rttMs >= 2, `the handshake round trip through the relay (4 links of 1 ms): ${p.rttMs}`);
    assert.equal(p.pair, `host 10.1.0.2:4500 -> peer relay ${p.relay}`);
    let seq = 2;
    await until(() => { if (seq++ % 20 === 0) a.tap.inject([ping(a, b, seq)]); return pingsAt(b) > 0; }, 5000, 'a ping to reach b through the relay');
    // b sees a as relayed too (it learnt a's virtual endpoint from the handshake through the relay).
    const q = peerOf(b, a)();
    assert.equal(q?.path, 'relayed', JSON.stringify(q));
    assert.equal(q?.via, 'peer-relay');
    // The public agents advertise relaying (SEP-style service records); the first node once it had
    // someone to run netcheck against (NETCHECK_RETRY_MS after it started alone).
    let relays: string[] = [];
    const end = Date.now() + 15_000;
    while (relays.length < 2 && Date.now() < end) {
      relays = (await a.agent.providers('relay')).map((e) => `${e.address}:${e.port}`).sort();
      if (relays.length < 2) await sleep(500);
    }
    assert.deepEqual(relays, ['203.0.113.1:4500', '203.0.113.2:4500']);
    const served = [s1, s2].map((s) => s.agent.status().counters.peerRelay.server);
    assert.ok(served.some((x) => x !== null && x.toClient > 0 && x.toPeer > 0), `a relay carried both ways: ${JSON.stringify(served)}`);
    // What the relays carried is the tunnel's ciphertext: frames big enough for the pings, never their bytes.
    const frames = atRelays.filter((d) => d[0] === 0xd3);
    assert.ok(frames.some((d) => d.length > 20 + 16 + MARKER.length), 'the pings crossed a relay');
    assert.ok(!frames.some((d) => d.includes(MARKER)), 'a relay saw plaintext');
    assert.ok(pingsAt(b) > 0 && b.tap.written.some((f) => f.includes(MARKER)), 'b got the plaintext, so the marker was sent');
  } finally {
    await close();
  }
});

test('no TURN server and no peer that relays: status says there is no direct path and why', async () => {
  const { a, b, close } = await lab(false);
  try {
    const peerB = peerOf(a, b);
    a.tap.inject([ping(a, b, 1)]);
    await until(() => /no direct path/.test(peerB()?.pathReason ?? ''), 8000, 'a to say there is no direct path');
    await sleep(1500); // handshakes through the relay go unanswered
    assert.equal(peerB()?.path, 'none', JSON.stringify(peerB()));
    assert.match(peerB()!.pathReason, /^no answer yet through peer relay .*no direct path: no connectivity check got through/);
    assert.equal(pingsAt(b), 0);
    assert.deepEqual(await a.agent.providers('relay'), [], 'nobody advertises relaying');
  } finally {
    await close();
  }
});

test('a peer on a relay moves to the direct path when one becomes possible (it moved behind a cone NAT)', async () => {
  const { a, b, coneB, close } = await lab(true);
  try {
    const peerB = peerOf(a, b);
    a.tap.inject([ping(a, b, 1)]);
    await until(() => peerB()?.path === 'relayed', 5000, 'a relayed path first');
    // b moves to a network behind a cone NAT; its agent notices (as host.ts's address watch would tell it).
    b.sock.rebind('10.3.0.2', 4500, coneB);
    b.agent.addressesChanged();
    await until(() => b.agent.status().nat?.mapping === 'endpoint-independent', 5000, 'b to see its new NAT');
    let seq = 2;
    await until(() => {
      if (seq % 20 === 0) a.tap.inject([ping(a, b, seq)]);
      seq++;
      // b's own ICE restart on its move can make the tunnel direct first; a's retry then says how.
      return peerB()?.path === 'direct' && /^ICE: /.test(peerB()!.pathReason);
    }, 15_000, 'the background retry to find the direct pair');
    assert.match(peerB()!.pathReason, /^ICE: /);
    assert.equal(peerB()!.endpoint?.split(':')[0], '198.51.100.22', 'through b\'s new public mapping');
    const before = pingsAt(b);
    await until(() => {
      if (seq++ % 20 === 0) a.tap.inject([ping(a, b, seq)]);
      return pingsAt(b) > before;
    }, 5000, 'a ping to reach b over the direct path');
    assert.equal(peerB()?.path, 'direct');
  } finally {
    await close();
  }
});

test('a symmetric NAT that hands out ports in order: the predicted ports give a direct pair', async () => {
  const { a, b, symB, close } = await lab(true, 'sequential');
  try {
    const peerB = peerOf(a, b);
    // What b's netcheck saw: its NAT's mappings towards the public agents (its STUN servers), in the
    // order the sequential NAT made them; the ports b can predict from them are these.
    const seen = symB.mappings().filter((m) => m.permits.some((q) => q.startsWith('203.0.113.'))).map((m) => m.outside.port).sort((x, y) => x - y);
    const order = allocationOrder({
      mapping: 'endpoint-dependent', publicEndpoint: { address: '198.51.100.21', port: seen[0]! },
      servers: seen.map((port, i) => ({ server: { address: `203.0.113.${i + 1}`, port: 4500 }, mapped: { address: '198.51.100.21', port }, transmits: 1 })),
    });
    assert.ok(order, `b's NAT mapped its STUN servers in order: ${JSON.stringify(symB.mappings())}`);
    const predicted = predictPorts(order, PORT_PREDICTION_COUNT).map((e) => e.port);
    a.tap.inject([ping(a, b, 1)]);
    await until(() => peerB()?.state === 'established', 5000, 'a tunnel to b');
    assert.ok(b.agent.status().counters.traversal.portsPredicted! > 0, 'b offered predicted ports');
    const p = peerB()!;
    assert.equal(p.path, 'direct', JSON.stringify(p));
    assert.match(p.pathReason, /^ICE: /);
    assert.equal(p.endpoint?.split(':')[0], '198.51.100.21', 'b\'s symmetric NAT, at the port it gave the checks');
    assert.match(String(p.pair), /^host 10\.1\.0\.2:4500 -> (srflx|prflx) 198\.51\.100\.21:\d+$/);
    // The pair's port on b's NAT is one no netcheck saw, and one b predicted: a's cone NAT filters by
    // address and port, so b's checks got through only from a port a had checked, an offered prediction.
    const port = Number(p.endpoint?.split(':')[1]);
    assert.ok(!seen.includes(port), `the pair uses ${port}, a port b's netcheck saw (${seen.join(', ')}): nothing was predicted`);
    assert.ok(predicted.includes(port), `the pair uses ${port}, not one of the predicted ports ${predicted.join(', ')}`);
    let seq = 2;
    await until(() => { if (seq++ % 20 === 0) a.tap.inject([ping(a, b, seq)]); return pingsAt(b) > 0; }, 5000, 'a ping over the predicted pair');
  } finally {
    await close();
  }
});

for (const initiator of ['cone', 'symmetric'] as const) {
  test(`a symmetric NAT that picks ports at random: birthday probing gives a direct pair (${initiator} side starts)`, async () => {
    const { a, b, close } = await lab(true, 'random', true);
    try {
      const [from, to] = initiator === 'cone' ? [a, b] : [b, a];
      const peerB = peerOf(a, b), peerA = peerOf(b, a);
      from.tap.inject([ping(from, to, 1)]);
      let seq = 2;
      await until(() => {
        if (seq++ % 20 === 0) from.tap.inject([ping(from, to, seq)]);
        return peerB()?.path === 'direct' && peerA()?.path === 'direct' && pingsAt(to) > 0;
      }, 10_000, 'a direct path both ways, and a ping across it');
      // The cone side sprayed checks across b's ports; b opened probe sockets and one of them was hit.
      assert.equal(a.agent.status().counters.traversal.sprays, 1);
      assert.ok(a.agent.status().counters.ice.probes >= 64, 'a sprayed probes');
      const probes = b.agent.status().counters.probeSockets!;
      assert.ok(probes.opened >= 200, `b opened probe sockets: ${JSON.stringify(probes)}`);
      assert.ok(probes.received > 0, 'the hit socket carries the tunnel');
      // a reaches b at a port of b's NAT that no netcheck saw; b uses a probe socket towards a's mapping.
      assert.equal(peerB()!.endpoint?.split(':')[0], '198.51.100.21');
      assert.equal(peerA()!.endpoint, '198.51.100.20:4500', 'status shows the real address, not the probe socket\'s virtual one');
      assert.match(String(peerA()!.pair), /^host 10\.2\.0\.2:3\d{4} -> \S*\s?198\.51\.100\.20:4500$/);
      if (initiator === 'symmetric') assert.match(peerA()!.pathReason, /birthday probing/);
      // Traffic both ways over it.
      const atA = pingsAt(a);
      await until(() => { if (seq++ % 20 === 0) b.tap.inject([ping(b, a, seq)]); return pingsAt(a) > atA; }, 5000, 'a ping from b to a');
    } finally {
      await close();
    }
  });
}
