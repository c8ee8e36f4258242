// Whole agents with the overlay, on the in-memory twins, no static peers: the first packet to an overlay
// address finds the peer (IPv4 through its claim, IPv6 through its NodeID bits), packets queued meanwhile
// arrive, the far side maps us back, an address nobody holds gets ICMP unreachable (once per negative-cache
// period), and a stranger whose NodeID puzzle does not hold is not admitted.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Agent } from '../../agent/daemon.js';
import { MemoryTap } from '../../agent/tap/memory-tap.js';
import { MemoryNetwork } from '../../agent/conn/memory-socket.js';
import { generateIdentity, type Identity } from '../../agent/idloc/identity.js';
import { ipv4FromNodeId } from '../../agent/idloc/addresses.js';
import { verifyPuzzle } from '../../agent/overlay/puzzle.js';
import { PEER_SILENT_MS, VIRTUAL_MAC } from '../../agent/base/constants.js';
import { realScheduler } from '../../agent/base/scheduler.js';
import { ipv4, ipv6, refChecksum } from './packet-helpers.js';

const silent = pino({ level: 'silent' });
const DIFFICULTY = 4;

interface Host { id: Identity; tap: MemoryTap; agent: Agent; addr: string }

function makeHost(net: MemoryNetwork, i: number, bootstraps: string[],
  opts: { id?: Identity; difficulty?: number; peers?: Identity[]; now?: () => number } = {}): Host {
  const id = opts.id ?? generateIdentity();
  const addr = `198.51.100.${10 + i}`;
  const tap = new MemoryTap({ name: `mem${i}`, mac: Uint8Array.of(2, 0, 0, 0, 0, 10 + i) });
  const agent = new Agent({
    identity: id, tap, socket: net.socket(addr, 4500), logger: silent,
    peers: (opts.peers ?? []).map((p) => ({ publicKey: p.publicKey, endpoint: { address: '198.51.100.10', port: 4500 } })),
    overlay: { bootstraps: bootstraps.map((b) => ({ address: b, port: 4500 })), puzzleDifficulty: opts.difficulty ?? DIFFICULTY },
    ...(opts.now ? { clock: { now: opts.now, setTimer: realScheduler.setTimer } } : {}),
  });
  agent.start();
  return { id, tap, agent, addr };
}

const u32 = (a: number) => Uint8Array.of(a >>> 24, (a >>> 16) & 255, (a >>> 8) & 255, a & 255);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(cond: () => boolean, ms = 3000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

function echo(type: 8 | 0 | 128 | 129, seq: number): Buffer {
  const icmp = Buffer.alloc(16);
  icmp[0] = type; icmp.writeUInt16BE(0x1d, 4); icmp.writeUInt16BE(seq, 6); icmp.write('idloc!!!', 8);
  if (type === 8 || type === 0) icmp.writeUInt16BE(refChecksum(icmp), 2);
  return icmp;
}

function frame(from: Host, ethertype: number, packet: Uint8Array): Buffer {
  const f = Buffer.alloc(14 + packet.length);
  f.set(VIRTUAL_MAC, 0); f.set(from.tap.mac, 6); f.writeUInt16BE(ethertype, 12); f.set(packet, 14);
  return f;
}

const ipv4Of = (h: Host) => h.agent.currentIdentity.ipv4;
const v4 = (from: Host, dst: number, type: 8 | 0, seq: number) =>
  frame(from, 0x0800, ipv4(echo(type, seq), { src: u32(ipv4Of(from)), dst: u32(dst), proto: 1 }));
const v6 = (from: Host, to: Host, seq: number) =>
  frame(from, 0x86dd, ipv6(echo(128, seq), { src: from.id.ipv6, dst: to.id.ipv6, nh: 58 }));

/** IP packets the agent wrote into this TAP (to the kernel), by family. */
const written = (h: Host, family: 4 | 6) =>
  h.tap.written.filter((f) => f.readUInt16BE(12) === (family === 4 ? 0x0800 : 0x86dd)).map((f) => f.subarray(14));

describe('agents find each other through the overlay (in-memory twins)', () => {
  const net = new MemoryNetwork({ latencyMs: 1 });
  const hosts: Host[] = [];
  const keepAlive = setInterval(() => undefined, 1000);

  // Host 1's tunnel clock can jump ahead, to play out "the peer has been silent for PEER_SILENT_MS".
  let skew = 0;
  before(async () => {
    hosts.push(makeHost(net, 0, []));
    for (let i = 1; i < 5; i++) hosts.push(makeHost(net, i, ['198.51.100.10'], i === 1 ? { now: () => Date.now() + skew } : {}));
    await waitFor(() => hosts.every((h) => h.agent.status().overlay?.ipv4Claimed === true), 5000, 'every IPv4 claim');
  });

  after(async () => {
    await Promise.all(hosts.map((h) => h.agent.close()));
    clearInterval(keepAlive);
  });

  it('the first IPv4 packet to an unknown peer is queued, the peer looked up, the packet delivered; replies map back', async () => {
    const [a, b] = [hosts[1]!, hosts[2]!];
    a.tap.inject([v4(a, ipv4Of(b), 8, 1), v4(a, ipv4Of(b), 8, 2)]);
    await waitFor(() => written(b, 4).length >= 2, 3000, 'both queued pings at b').catch((e: Error) => {
      throw new Error(`${e.message}: a ${JSON.stringify(a.agent.status().overlay)} ${JSON.stringify(a.agent.status().counters)}\nb ${JSON.stringify(b.agent.status().overlay)} ${JSON.stringify(b.agent.status().counters)}`);
    });
    const got = written(b, 4);
    assert.equal(got[0]!.readUInt32BE(12), ipv4Of(a), 'source is a\'s claimed address');
    assert.deepEqual(got.map((p) => p.readUInt16BE(26)), [1, 2], 'queued packets arrive in order');
    const sa = a.agent.status();
    assert.equal(sa.overlay!.discovery.found, 1);
    assert.ok(sa.overlay!.discovery.queued >= 2);
    const peerB = sa.peers.find((p) => p.publicKey === b.id.publicKeyHex);
    assert.equal(peerB?.source, 'overlay');
    // b never looked a up: a's handshake admitted it, and b learnt a's IPv4 from a's claim.
    b.tap.inject([v4(b, ipv4Of(a), 0, 1)]);
    await waitFor(() => written(a, 4).some((p) => p[20] === 0), 3000, 'the reply at a');
    const sb = b.agent.status();
    assert.equal(sb.counters.overlayPeers.admitted, 1);
    assert.equal(sb.peers.find((p) => p.publicKey === a.id.publicKeyHex)?.ipv4, sa.identity.ipv4);
  });

  it('the first IPv6 packet finds the peer by the NodeID bits in the address', async () => {
    const [c, d] = [hosts[3]!, hosts[4]!];
    c.tap.inject([v6(c, d, 7)]);
    await waitFor(() => written(d, 6).some((p) => p[40] === 128), 3000, 'the IPv6 echo at d');
    assert.equal(c.agent.status().peers.find((p) => p.publicKey === d.id.publicKeyHex)?.source, 'overlay');
  });

  it('an overlay address nobody claimed gets ICMP unreachable, and the next packet hits the negative cache', async () => {
    const a = hosts[0]!;
    const nobody = ipv4FromNodeId(generateIdentity().nodeId);
    a.tap.inject([v4(a, nobody, 8, 1)]);
    await waitFor(() => written(a, 4).some((p) => p[9] === 1 && p[20] === 3), 6000, 'ICMP unreachable');
    const d = a.agent.status().overlay!.discovery;
    assert.equal(d.notFound + d.timedOut, 1);
    a.tap.inject([v4(a, nobody, 8, 2)]);
    await waitFor(() => written(a, 4).filter((p) => p[9] === 1 && p[20] === 3).length === 2, 1000, 'second unreachable');
    assert.equal(a.agent.status().overlay!.discovery.negativeCached, 1);
  });

  it('a peer that restarted at another address is found again through its locator once it falls silent', async () => {
    const [a, b] = [hosts[1]!, hosts[2]!]; // a tunnel between them exists since the first test
    await b.agent.close();
    const b2 = makeHost(net, 20, ['198.51.100.10'], { id: b.id }); // same key, new underlay address
    hosts[2] = b2;
    await waitFor(() => b2.agent.status().overlay?.ipv4Claimed === true, 5000, 'b2 joined');
    assert.equal(ipv4Of(b2), ipv4Of(b), 'same key, same claimed IPv4');
    skew += PEER_SILENT_MS + 1000; // a has now heard nothing from b for longer than PEER_SILENT_MS
    let seq = 100;
    await waitFor(() => {
      a.tap.inject([v4(a, ipv4Of(b2), 8, seq++)]);
      return written(b2, 4).some((p) => p.readUInt32BE(12) === ipv4Of(a));
    }, 8000, 'a ping to reach b at its new address');
    const st = a.agent.status();
    assert.equal(st.counters.overlayPeers.relocated, 1);
    assert.equal(st.peers.find((p) => p.publicKey === b.id.publicKeyHex)?.endpoint, `${b2.addr}:4500`);
  });

  it('a stranger whose NodeID puzzle does not hold is refused; the peers keep working', async () => {
    let id: Identity;
    do id = generateIdentity(); while (verifyPuzzle(id.publicKey, 0n, DIFFICULTY));
    // Difficulty 0: its agent sends nonce 0, which does not meet the overlay's DIFFICULTY for this key.
    const stranger = makeHost(net, 9, [], { id, difficulty: 0, peers: [hosts[0]!.id] });
    try {
      stranger.tap.inject([v4(stranger, ipv4Of(hosts[0]!), 8, 1)]);
      await waitFor(() => hosts[0]!.agent.status().counters.overlayPeers.badPuzzle > 0, 3000, 'the refusal');
      assert.ok(!hosts[0]!.agent.status().peers.some((p) => p.publicKey === id.publicKeyHex));
      assert.equal(written(hosts[0]!, 4).filter((p) => p.readUInt32BE(12) === ipv4Of(stranger)).length, 0);
    } finally {
      await stranger.agent.close();
    }
  });
});
