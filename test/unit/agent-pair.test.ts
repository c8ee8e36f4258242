// Two (and three) whole agents in one process, on the in-memory TAP and network twins: the kernel's
// frames go in one TAP and must come out of the other, ARP/ND are answered locally, spoofed and
// garbage input is counted and dropped, and the good path keeps working.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Agent } from '../../agent/daemon.js';
import { MemoryTap } from '../../agent/tap/memory-tap.js';
import { MemoryNetwork } from '../../agent/conn/memory-socket.js';
import { generateIdentity, type Identity } from '../../agent/idloc/identity.js';
import { VIRTUAL_MAC } from '../../agent/base/constants.js';
import { ipv4, ipv6, refChecksum } from './packet-helpers.js';

const silent = pino({ level: 'silent' });

interface Host { id: Identity; tap: MemoryTap; agent: Agent; addr: string }

function makeHosts(n: number, net: MemoryNetwork): Host[] {
  const ids = Array.from({ length: n }, () => generateIdentity());
  return ids.map((id, i) => {
    const addr = `198.51.100.${10 + i}`;
    const tap = new MemoryTap({ name: `mem${i}`, mac: Uint8Array.of(2, 0, 0, 0, 0, 10 + i) });
    const peers = ids.filter((p) => p !== id).map((p) => ({ publicKey: p.publicKey, endpoint: { address: `198.51.100.${10 + ids.indexOf(p)}`, port: 4500 } }));
    const agent = new Agent({ identity: id, tap, socket: net.socket(addr, 4500), peers, logger: silent });
    agent.start();
    return { id, tap, agent, addr };
  });
}

const u32 = (a: number) => Uint8Array.of(a >>> 24, (a >>> 16) & 255, (a >>> 8) & 255, a & 255);

function echoRequest(seq: number): Buffer {
  const icmp = Buffer.alloc(16);
  icmp[0] = 8; icmp.writeUInt16BE(0x1d, 4); icmp.writeUInt16BE(seq, 6); icmp.write('idloc!!!', 8);
  icmp.writeUInt16BE(refChecksum(icmp), 2);
  return icmp;
}

function frame(from: Host, ethertype: number, packet: Uint8Array): Buffer {
  const f = Buffer.alloc(14 + packet.length);
  f.set(VIRTUAL_MAC, 0); f.set(from.tap.mac, 6); f.writeUInt16BE(ethertype, 12); f.set(packet, 14);
  return f;
}

function pingV4(from: Host, to: Host, seq: number, src = from.id.ipv4): Buffer {
  return frame(from, 0x0800, ipv4(echoRequest(seq), { src: u32(src), dst: u32(to.id.ipv4), proto: 1 }));
}

const settle = (ms = 20) => new Promise((r) => setTimeout(r, ms));

async function waitFor(cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await settle(5);
  }
}

function ipPacketsWritten(h: Host): Buffer[] {
  return h.tap.written.filter((f) => f.readUInt16BE(12) === 0x0800 || f.readUInt16BE(12) === 0x86dd).map((f) => f.subarray(14));
}

test('a packet from one TAP comes out of the peer TAP, framed for the kernel, both families', async (t) => {
  const net = new MemoryNetwork();
  const [a, b] = makeHosts(2, net);
  t.after(() => Promise.all([a!.agent.close(), b!.agent.close()]));
  a!.tap.inject([pingV4(a!, b!, 1)]);
  await waitFor(() => ipPacketsWritten(b!).length === 1);
  const f = b!.tap.written.find((x) => x.readUInt16BE(12) === 0x0800)!;
  assert.deepEqual([...f.subarray(0, 6)], [...b!.tap.mac], 'to the kernel side MAC');
  assert.deepEqual([...f.subarray(6, 12)], [...VIRTUAL_MAC], 'from the virtual MAC');
  assert.equal(f.readUInt32BE(14 + 12), a!.id.ipv4);
  assert.equal(f.readUInt32BE(14 + 16), b!.id.ipv4);
  assert.equal(f.subarray(14 + 28, 14 + 36).toString(), 'idloc!!!');

  // IPv6 the other way.
  const p6 = ipv6(Buffer.from('hello over v6'), { src: b!.id.ipv6, dst: a!.id.ipv6, nh: 17 });
  b!.tap.inject([frame(b!, 0x86dd, p6)]);
  await waitFor(() => ipPacketsWritten(a!).some((p) => p[0]! >> 4 === 6));
  const got = ipPacketsWritten(a!).find((p) => p[0]! >> 4 === 6)!;
  assert.deepEqual(got, p6);

  const st = a!.agent.status();
  assert.equal(st.peers.length, 1);
  assert.equal(st.peers[0]!.path, 'direct');
  assert.equal(st.peers[0]!.endpoint, `${b!.addr}:4500`);
  assert.ok(st.peers[0]!.txBytes > 0 && st.peers[0]!.rxBytes > 0);
  assert.ok(st.peers[0]!.lastHandshake);
});

test('a batch of packets queued during the handshake all arrive intact (no reuse of the TAP buffer)', async (t) => {
  const net = new MemoryNetwork({ latencyMs: 5 });
  const [a, b] = makeHosts(2, net);
  t.after(() => Promise.all([a!.agent.close(), b!.agent.close()]));
  a!.tap.inject([1, 2, 3, 4, 5].map((s) => pingV4(a!, b!, s)));
  a!.tap.inject([6, 7].map((s) => pingV4(a!, b!, s))); // poisons the first batch's buffer
  await waitFor(() => ipPacketsWritten(b!).length === 7);
  const seqs = ipPacketsWritten(b!).map((p) => p.readUInt16BE(20 + 6)).sort((x, y) => x - y);
  assert.deepEqual(seqs, [1, 2, 3, 4, 5, 6, 7]);
  for (const p of ipPacketsWritten(b!)) assert.equal(p.subarray(28, 36).toString(), 'idloc!!!');
});

test('ARP and neighbour solicitations for peers are answered locally with the virtual MAC, not for ourselves', async (t) => {
  const net = new MemoryNetwork();
  const [a, b] = makeHosts(2, net);
  t.after(() => Promise.all([a!.agent.close(), b!.agent.close()]));
  const arp = (target: number) => {
    const f = Buffer.alloc(42);
    f.fill(0xff, 0, 6); f.set(a!.tap.mac, 6); f.writeUInt16BE(0x0806, 12);
    f.writeUInt16BE(1, 14); f.writeUInt16BE(0x0800, 16); f[18] = 6; f[19] = 4; f.writeUInt16BE(1, 20);
    f.set(a!.tap.mac, 22); f.writeUInt32BE(a!.id.ipv4, 28); f.writeUInt32BE(target, 38);
    return f;
  };
  await settle();
  const sentBefore = net.stats.sent;
  a!.tap.inject([arp(b!.id.ipv4), arp(a!.id.ipv4)]);
  await settle();
  const replies = a!.tap.written.filter((f) => f.readUInt16BE(12) === 0x0806);
  assert.equal(replies.length, 1, 'only the peer address is answered');
  assert.equal(replies[0]!.readUInt16BE(20), 2);
  assert.deepEqual([...replies[0]!.subarray(22, 28)], [...VIRTUAL_MAC]);
  assert.equal(replies[0]!.readUInt32BE(28), b!.id.ipv4);
  assert.equal(net.stats.sent, sentBefore, 'nothing left the host for ARP');
});

test('unknown overlay address gets ICMP unreachable; oversize DF packet gets fragmentation-needed', async (t) => {
  const net = new MemoryNetwork();
  const [a, b] = makeHosts(2, net);
  t.after(() => Promise.all([a!.agent.close(), b!.agent.close()]));
  const stranger = ((100 << 24) | (65 << 16) | 7) >>> 0;
  a!.tap.inject([frame(a!, 0x0800, ipv4(echoRequest(1), { src: u32(a!.id.ipv4), dst: u32(stranger), proto: 1 }))]);
  a!.tap.inject([frame(a!, 0x0800, ipv4(Buffer.alloc(1600), { src: u32(a!.id.ipv4), dst: u32(b!.id.ipv4), proto: 17, df: true }))]);
  await settle();
  const icmps = ipPacketsWritten(a!).filter((p) => p[9] === 1);
  assert.deepEqual(icmps.map((p) => [p[20], p[21]]), [[3, 1], [3, 4]]);
  assert.equal(icmps[1]!.readUInt16BE(20 + 6), a!.tap.mtu, 'next-hop MTU is the TAP MTU');
  const s = a!.agent.status().counters.inside;
  assert.equal(s.noPeer, 1);
  assert.equal(s.tooBig, 1);
});

test('a peer cannot send with another peer\'s inner source; garbage datagrams are counted; good traffic flows', async (t) => {
  const net = new MemoryNetwork();
  const [a, b, c] = makeHosts(3, net);
  t.after(() => Promise.all([a!.agent.close(), b!.agent.close(), c!.agent.close()]));
  // A (authenticated as A) claims to be C.
  a!.tap.inject([pingV4(a!, b!, 9, c!.id.ipv4)]);
  await waitFor(() => b!.agent.status().counters.outside.spoofedSource === 1);
  assert.equal(ipPacketsWritten(b!).length, 0);
  // Garbage from a stranger's socket, every type byte, every short length.
  const evil = net.socket('203.0.113.66', 999);
  for (let i = 0; i < 2000; i++) {
    const len = i % 200;
    const m = Buffer.alloc(len);
    for (let j = 0; j < len; j++) m[j] = (Math.random() * 256) | 0;
    if (len > 0 && i % 3 === 0) m[0] = [0xc1, 0xc2, 0xc4][i % 9 / 3 | 0]!;
    evil.send(m, { address: b!.addr, port: 4500 });
  }
  await settle(50);
  const st = b!.agent.status().counters;
  const dropped = st.demux.unknown + st.demux.notYetHandled + st.tunnels.rxInvalid + st.tunnels.rxUnknownIndex + st.tunnels.rxDecryptFailed + st.tunnels.handshakeRejected;
  assert.ok(dropped >= 1900, `dropped ${dropped} of 2000: ${JSON.stringify(st)}`);
  // Still works.
  a!.tap.inject([pingV4(a!, b!, 10)]);
  await waitFor(() => ipPacketsWritten(b!).length === 1);
  c!.tap.inject([pingV4(c!, b!, 11)]);
  await waitFor(() => ipPacketsWritten(b!).length === 2);
});

test('peers with an endpoint are handshaken at start, and a first initiation lost to a late peer is retried quickly', async (t) => {
  const net = new MemoryNetwork();
  const [a, b] = makeHosts(2, net);
  t.after(() => Promise.all([a!.agent.close(), b!.agent.close()]));
  await waitFor(() => a!.agent.status().peers[0]!.path === 'direct' && b!.agent.status().peers[0]!.path === 'direct');
  // A peer that comes up late: its first initiation finds nobody listening.
  const late = new MemoryNetwork();
  const idA = generateIdentity(), idB = generateIdentity();
  const tapA = new MemoryTap();
  const agentA = new Agent({ identity: idA, tap: tapA, socket: late.socket('198.51.100.1', 4500), peers: [{ publicKey: idB.publicKey, endpoint: { address: '198.51.100.2', port: 4500 } }], logger: silent });
  agentA.start();
  t.after(() => agentA.close());
  await settle(50);
  assert.equal(late.stats.noListener, 1, 'the first initiation was lost');
  const agentB = new Agent({ identity: idB, tap: new MemoryTap(), socket: late.socket('198.51.100.2', 4500), peers: [{ publicKey: idA.publicKey }], logger: silent });
  agentB.start();
  t.after(() => agentB.close());
  const t0 = Date.now();
  await waitFor(() => agentA.status().peers[0]!.path === 'direct', 3000);
  assert.ok(Date.now() - t0 < 1500, `retried within ${Date.now() - t0} ms`);
});
