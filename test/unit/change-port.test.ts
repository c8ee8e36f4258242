// One public agent is enough to tell NAT types apart (issue 10, item 7): an agent with a second STUN port
// (its port + STUN_CHANGE_PORT_OFFSET, nat/change-port.ts) answers from both ports and honours RFC 5780
// CHANGE-REQUEST "change port", so netcheck against it alone tells a cone NAT from a symmetric one and
// port filtering from none, on MemoryNat twins. The second port is no amplifier: to a source that never
// proved return routability it sends no more than it received, within the same per-address budget.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { MemoryNetwork, type MemorySocket } from '../../agent/conn/memory-socket.js';
import { MemoryNat, type MemoryNatOptions } from '../../agent/conn/memory-nat.js';
import { StunEndpoint } from '../../agent/nat/stun-endpoint.js';
import { ChangePortServer } from '../../agent/nat/change-port.js';
import { netcheck, summarizeNetcheck, type NetcheckReport } from '../../agent/nat/netcheck.js';
import { encodeBindingRequest, parseStun } from '../../agent/nat/stun-binding.js';
import { ATTR, STUN_CLASS_INDICATION, STUN_CLASS_SUCCESS, STUN_METHOD_BINDING, encodeStun } from '../../agent/nat/stun-wire.js';
import { STUN_CHANGE_PORT_OFFSET, STUN_UNVERIFIED_BURST_BYTES, VIRTUAL_MAC } from '../../agent/base/constants.js';
import { ipv4, refChecksum } from './packet-helpers.js';
import { endpointKey, type DatagramSocket, type Endpoint } from '../../agent/conn/socket.js';
import { formatNetcheck } from '../../agent/netcheck-format.js';
import { Agent } from '../../agent/daemon.js';
import { MemoryTap } from '../../agent/tap/memory-tap.js';
import { generateIdentity } from '../../agent/idloc/identity.js';

const S: Endpoint = { address: '203.0.113.1', port: 4500 };
const fast = { rtoMs: 10, maxTransmits: 3 };

function attach(sock: MemorySocket): StunEndpoint {
  const e = new StunEndpoint({ send: (b, to) => sock.send(b, to) });
  sock.onMessage((m, f) => e.handleDatagram(m, f));
  return e;
}

/** The public agent S as a STUN server, with its second port opened through ChangePortServer as the agent
 *  opens it (its own netcheck said: public); a client behind a NAT with these options. */
async function world(nat: Partial<MemoryNatOptions> | undefined, secondPort = true) {
  const net = new MemoryNetwork();
  const main = net.socket(S.address, S.port);
  const server = attach(main);
  const cp = new ChangePortServer({ stun: server, mainPort: () => S.port, open: (port) => Promise.resolve(net.socket(S.address, port)), hostAddresses: () => [S.address] });
  if (secondPort) {
    cp.follow({ behindNat: false, publicEndpoint: S } as NetcheckReport);
    for (let i = 0; i < 10 && cp.port === undefined; i++) await new Promise((r) => setImmediate(r));
    assert.equal(cp.port, S.port + STUN_CHANGE_PORT_OFFSET);
  }
  const router = nat ? new MemoryNat(net, { publicAddress: '198.51.100.20', ...nat }) : undefined;
  const sock = router ? router.socket('192.168.1.2', 4500) : net.socket('198.51.100.10', 4500);
  const client = attach(sock);
  return { net, server, cp, client, local: { localAddresses: [sock.local.address], localPort: 4500, transaction: fast } };
}

test('one agent with a second port tells cone from symmetric: the mapping seen from port P and port P+1', async (t) => {
  const cases: [string, Partial<MemoryNatOptions>, NetcheckReport['mapping']][] = [
    ['cone', { mapping: 'endpoint-independent' }, 'endpoint-independent'],
    ['symmetric, random ports', { mapping: 'endpoint-dependent', portAllocation: 'random', seed: 7 }, 'endpoint-dependent'],
    ['symmetric, ports in order', { mapping: 'endpoint-dependent', portAllocation: 'sequential' }, 'endpoint-dependent'],
  ];
  for (const [name, nat, want] of cases) {
    const { client, server, local } = await world(nat);
    const r = await netcheck(client, [S], local);
    assert.equal(r.mapping, want, `${name}: ${r.mappingReason}`);
    assert.equal(r.mappingTested, 'port', 'the report says only a port change was tested');
    assert.deepEqual(r.servers.map((s) => s.probe), [undefined, 'other-port']);
    assert.deepEqual(r.servers[0]!.otherAddress, { address: S.address, port: S.port + 1 }, 'OTHER-ADDRESS names the second port');
    assert.deepEqual(r.servers[1]!.server, { address: S.address, port: S.port + 1 });
    assert.ok(server.stats.changedPort >= 1, 'the filtering test was answered from the other port');
    if (want === 'endpoint-independent') {
      assert.match(r.mappingReason, /only a change of destination port was tested/);
      assert.match(summarizeNetcheck(r), /^endpoint-independent mapping \(cone; only a port change tested\)/);
    } else {
      assert.equal(r.publicEndpoints.length, 2);
      assert.match(r.mappingReason, /^two ports of one server saw different addresses/);
    }
    assert.match(formatNetcheck(r), /\(its other port\)/);
    t.diagnostic(`${name}: ${summarizeNetcheck(r)}`);
  }
  // Without the second port (the agent as it was): one server cannot tell, and says why.
  const { client, local } = await world({ mapping: 'endpoint-independent' }, false);
  const r = await netcheck(client, [S], local);
  assert.equal(r.mapping, 'unknown');
  assert.match(r.mappingReason, /only one server answered, and it answered from no second port/);
  assert.equal(r.filtering, 'unknown');
});

test('filtering from one agent: an answer from the changed port arrives only through a NAT that does not filter by port', async () => {
  const cases = [
    ['endpoint-independent', 'not-port-dependent'], ['address-dependent', 'not-port-dependent'],
    ['address-and-port-dependent', 'address-and-port-dependent'],
  ] as const;
  for (const [filtering, want] of cases) {
    const { client, local } = await world({ mapping: 'endpoint-independent', filtering });
    const r = await netcheck(client, [S], local);
    assert.equal(r.filtering, want, `${filtering}: ${r.filteringReason}`);
    // The filtering test ran before the mapping test opened the filter for the other port.
    assert.equal(r.mapping, 'endpoint-independent');
  }
  // Left out (the agent's own netchecks): no change-port request, the mapping all the same, and no wait
  // for an answer a NAT that filters by port never lets through.
  const { client, server, local } = await world({ mapping: 'endpoint-independent', filtering: 'address-and-port-dependent' });
  const full = await netcheck(client, [S], local);
  const sent = server.stats.changedPort;
  const quick = await netcheck(client, [S], { ...local, portFiltering: false });
  assert.equal(server.stats.changedPort, sent, 'no change-port request');
  assert.deepEqual([quick.mapping, quick.filtering, quick.publicEndpoint], ['endpoint-independent', 'unknown', full.publicEndpoint]);
  assert.match(quick.filteringReason, /^not tested: the change-port test/);
  assert.ok(full.durationMs >= 30 && quick.durationMs < full.durationMs, `${quick.durationMs} ms without the test, ${full.durationMs} ms with it`);
  const open = await world(undefined);
  const r = await netcheck(open.client, [S], open.local);
  assert.deepEqual([r.mapping, r.filtering, r.mappingTested], ['no-nat', 'not-port-dependent', undefined]);
});

test('the second port follows the netcheck verdict: open while public, closed behind a NAT; a taken port is no failure', async () => {
  const { net, server, cp, client } = await world(undefined);
  cp.follow({ behindNat: true } as NetcheckReport);
  await new Promise((r) => setImmediate(r));
  assert.equal(cp.port, undefined);
  const after = await client.request(S, { changePort: true, padTo: 100 }, { ...fast, anySource: true });
  assert.equal(after.kind === 'error' && after.code, 420, 'behind a NAT: change port is answered with 420 again');
  assert.equal(server.stats.unknownAttribute, 1);
  // A port someone else holds: counted, the agent carries on with one port.
  net.socket(S.address, S.port + 1);
  const busy = new ChangePortServer({ stun: server, mainPort: () => S.port, open: (p) => Promise.resolve().then(() => net.socket(S.address, p)), hostAddresses: () => [] });
  busy.start(); // no address known yet: nothing opened
  assert.equal(busy.stats.opened + busy.stats.openFailed, 0);
  busy.follow({ behindNat: false, publicEndpoint: S } as NetcheckReport);
  await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(busy.stats, { opened: 0, openFailed: 1, notStun: 0 });
  await busy.close();
  await cp.close();
});

test('the second port answers plain Binding requests only; ICE checks, responses, indications, other methods and non-STUN are dropped and counted', async (t) => {
  const { net, server, cp, client } = await world(undefined);
  const other = { address: S.address, port: S.port + 1 };
  const attacker = net.socket('198.51.100.66', 999);
  const got: Buffer[] = [];
  attacker.onMessage((m) => got.push(Buffer.from(m)));
  const forged = [
    encodeBindingRequest(randomBytes(12), { username: 'a:b', password: 'x', priority: 1, controlling: true, tieBreaker: 1n, padTo: 200 }),
    encodeStun(STUN_METHOD_BINDING, STUN_CLASS_SUCCESS, randomBytes(12), [[ATTR.XOR_MAPPED_ADDRESS, { address: '192.0.2.1', port: 1 }]], undefined, true)!,
    encodeStun(STUN_METHOD_BINDING, STUN_CLASS_INDICATION, randomBytes(12), [], undefined, true)!,
    encodeStun(0x003, 0, randomBytes(12), [[0x0026, new Uint8Array(200)]], undefined, true)!, // TURN Allocate
  ];
  for (const f of forged) attacker.send(f, other);
  attacker.send(Buffer.from([0xd2, 1, 2, 3]), other); // an overlay message
  attacker.send(Buffer.from([0x04, 1, 2, 3]), other); // a tunnel one
  await new Promise((r) => setImmediate(r));
  assert.equal(server.stats.otherPortRefused, forged.length);
  assert.equal(cp.stats.notStun, 2);
  assert.equal(got.length, 0, 'nothing answered');
  t.diagnostic(`${forged.length + 2} forged datagrams at the second port: ${got.length} answered`);
  // A real client there: answered from the port it asked, or from the main one when it asks to change port.
  const any =  { ...fast, anySource: true };
  const plain = await client.request(other, { padTo: 100 }, any);
  const back = await client.request(other, { changePort: true, padTo: 100 }, any);
  const ip = await client.request(other, { changeIp: true, padTo: 100 }, any);
  assert.ok(plain.kind === 'success' && back.kind === 'success' && ip.kind === 'error');
  assert.deepEqual([plain.from, plain.responseOrigin, plain.otherAddress], [other, other, S]);
  assert.deepEqual([back.from, back.responseOrigin, back.otherAddress], [S, S, S]);
  assert.deepEqual([ip.from, ip.code], [other, 420], 'change IP: 420, from the port it was asked at');
  await cp.close();
});

test('CHANGE-REQUEST is no amplifier: to unverified (spoofable) sources, bytes out <= bytes in on both ports, one budget per address', () => {
  let now = 0;
  const outBy = new Map<string, number>(), inBy = new Map<string, number>();
  const count = (b: Uint8Array, to: Endpoint) => outBy.set(to.address, (outBy.get(to.address) ?? 0) + b.length);
  let fromOther = 0;
  const e = new StunEndpoint({ send: count, now: () => now, software: 'idloc agent with a long SOFTWARE string' });
  e.setChangedPort({
    send: (b, to) => { fromOther += b.length; count(b, to); },
    main: { address: '2001:db8::1', port: 4500 }, other: { address: '2001:db8::1', port: 4501 },
  });
  let forged = 0, answers = 0, oversized = 0;
  for (let i = 0; i < 20_000; i++) {
    const v6 = i % 3 === 0;
    const from = v6 ? { address: `2001:db8:1::${(i % 5).toString(16)}`, port: 1 + i } : { address: `198.51.100.${i % 5}`, port: 1 + i };
    const change = [0, 2, 2, 4, 6][i % 5]!;
    const pad = [0, 40, 64, 84, 100, 200][i % 6]!;
    const msg = encodeBindingRequest(randomBytes(12), { changePort: (change & 2) !== 0, changeIp: (change & 4) !== 0, ...(pad ? { padTo: pad } : {}) });
    if (msg.length < 100) oversized++; // an answer with both RFC 5780 addresses over IPv6 would be longer
    inBy.set(from.address, (inBy.get(from.address) ?? 0) + msg.length);
    const before = [...outBy.values()].reduce((a, b) => a + b, 0);
    e.handleDatagram(msg, from, i % 4 === 0);
    if ([...outBy.values()].reduce((a, b) => a + b, 0) > before) answers++;
    forged++;
    if (i % 1000 === 999) now += 1000;
  }
  for (const [a, out] of outBy) {
    assert.ok(out <= inBy.get(a)!, `${a}: ${out} bytes out for ${inBy.get(a)} in`);
    assert.ok(out <= STUN_UNVERIFIED_BURST_BYTES + 4 * 1024 * 20 + 100, `${a}: ${out} bytes, over the budget`);
  }
  assert.ok(e.stats.unverifiedBytesOut <= e.stats.unverifiedBytesIn);
  assert.ok(e.stats.changedPort > 0 && fromOther > 0, 'change-port requests were answered from the second port');
  assert.ok(e.stats.overBudget > 0, 'the per-address budget held the flood back');
  console.log(`# ${forged} forged requests (${oversized} shorter than a full RFC 5780 answer) from 10 spoofed sources, `
    + `${answers} answered (${e.stats.changedPort} from the second port, ${e.stats.unpadded} refused as unpadded, ${e.stats.overBudget} over budget): `
    + `${e.stats.unverifiedBytesOut} bytes out for ${e.stats.unverifiedBytesIn} in, none over what its source sent`);
  // A padded IPv4 request gets both addresses; an IPv6 one short of them gets a plain answer, never a longer one.
  const sent: Buffer[] = [];
  const f = new StunEndpoint({ send: (b) => sent.push(Buffer.from(b)) });
  f.setChangedPort({ send: (b) => sent.push(Buffer.from(b)), main: { address: '203.0.113.1', port: 4500 }, other: { address: '203.0.113.1', port: 4501 } });
  f.handleDatagram(encodeBindingRequest(randomBytes(12), { padTo: 64 }), { address: '198.51.100.1', port: 1 });
  f.handleDatagram(encodeBindingRequest(randomBytes(12), { padTo: 64 }), { address: '2001:db8::5', port: 1 });
  const [v4, v6] = sent.map((b) => parseStun(b)!);
  assert.deepEqual(v4!.otherAddress, { address: '203.0.113.1', port: 4501 });
  assert.deepEqual(v4!.responseOrigin, { address: '203.0.113.1', port: 4500 });
  assert.equal(v6!.otherAddress, undefined);
  assert.ok(sent.every((b) => b.length <= 64));
  // A dual-stack agent: each client is named the pair of its own family (another family's OTHER-ADDRESS
  // would have the client compare an IPv4 mapping with an IPv6 one), or none if we have no address in it.
  sent.length = 0;
  const pair6 = { main: { address: '2001:db8::1', port: 4500 }, other: { address: '2001:db8::1', port: 4501 } };
  f.setChangedPort({ send: (b) => sent.push(Buffer.from(b)), main: { address: '203.0.113.1', port: 4500 }, other: { address: '203.0.113.1', port: 4501 }, also: pair6 });
  f.handleDatagram(encodeBindingRequest(randomBytes(12), { padTo: 128 }), { address: '198.51.100.1', port: 1 });
  f.handleDatagram(encodeBindingRequest(randomBytes(12), { padTo: 128 }), { address: '2001:db8::5', port: 1 });
  const [d4, d6] = sent.map((b) => parseStun(b)!);
  assert.deepEqual(d4!.otherAddress, { address: '203.0.113.1', port: 4501 });
  assert.deepEqual(d6!.otherAddress, pair6.other);
  assert.deepEqual(d6!.responseOrigin, pair6.main);
  f.setChangedPort({ send: (b) => sent.push(Buffer.from(b)), ...pair6 });
  f.handleDatagram(encodeBindingRequest(randomBytes(12), { padTo: 128 }), { address: '198.51.100.1', port: 1 });
  assert.equal(parseStun(sent.at(-1)!)!.otherAddress, undefined, 'an IPv6-only agent names no pair to an IPv4 client');
});

test('a dual-stack agent names its ports in the client\'s family: an IPv6-only client can test its filtering too', async () => {
  const net = new MemoryNetwork();
  const S6: Endpoint = { address: '2001:db8::1', port: S.port };
  /** One dual-stack socket, as the agent's: two memory sockets, sends by the destination's family. */
  const dual = (port: number): DatagramSocket => {
    const v4 = net.socket(S.address, port), v6 = net.socket(S6.address, port);
    return {
      local: { address: '::', port }, send: (b, to) => (to.address.includes(':') ? v6 : v4).send(b, to),
      onMessage: (h) => { v4.onMessage(h); v6.onMessage(h); }, close: async () => { await v4.close(); await v6.close(); },
    };
  };
  const main = dual(S.port);
  const server = new StunEndpoint({ send: (b, to) => main.send(b, to) });
  main.onMessage((m, f) => server.handleDatagram(m, f));
  const cp = new ChangePortServer({
    stun: server, mainPort: () => S.port, open: (port) => Promise.resolve(dual(port)),
    hostAddresses: () => [S.address, 'fd00::5', S6.address],
  });
  cp.follow({ behindNat: false, publicEndpoint: S } as NetcheckReport);
  for (let i = 0; i < 10 && cp.port === undefined; i++) await new Promise((r) => setImmediate(r));
  for (const [client, ours] of [[{ address: '2001:db8:5::2', port: 4500 }, S6], [{ address: '198.51.100.10', port: 4500 }, S]] as const) {
    const r = await netcheck(attach(net.socket(client.address, client.port)), [ours], { localAddresses: [client.address], localPort: 4500, transaction: fast });
    assert.deepEqual(r.servers[0]!.otherAddress, { address: ours.address, port: S.port + 1 }, `OTHER-ADDRESS for ${client.address}`);
    assert.equal(r.behindNat, false);
    assert.notEqual(r.filtering, 'unknown', `${client.address}: ${r.filteringReason}`);
  }
  await cp.close();
});

// ---- whole agents --------------------------------------------------------------------------------------

const silent = pino({ level: 'silent' });
const keepAlive = setInterval(() => undefined, 1000);
after(() => clearInterval(keepAlive));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Host = Agent & { tap: MemoryTap };

function wholeAgent(socket: MemorySocket, i: number, bootstrap: Endpoint[], changePortSocket?: (p: number) => Promise<MemorySocket>): Host {
  const tap = new MemoryTap({ name: `cp${i}`, mac: Uint8Array.of(2, 0, 0, 0, 7, i) });
  const a = new Agent({
    identity: generateIdentity(), tap, socket, peers: [], logger: silent,
    overlay: { bootstraps: bootstrap, puzzleDifficulty: 4 }, ...(changePortSocket ? { changePortSocket } : {}),
  });
  a.start();
  return Object.assign(a, { tap });
}

/** An ICMP echo request from x's overlay address to y's, as x's TAP would read it. */
function ping(x: Host, y: Host): Buffer {
  const icmp = Buffer.alloc(16);
  icmp[0] = 8; icmp.writeUInt16BE(refChecksum(icmp), 2);
  const u32 = (v: number) => Uint8Array.of(v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255);
  const p = ipv4(icmp, { src: u32(x.currentIdentity.ipv4), dst: u32(y.currentIdentity.ipv4), proto: 1 });
  const f = Buffer.alloc(14 + p.length);
  f.set(VIRTUAL_MAC, 0); f.set(x.tap.mac, 6); f.writeUInt16BE(0x0800, 12); f.set(p, 14);
  return f;
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

for (const kind of ['cone', 'symmetric'] as const) {
  test(`whole agents, one public overlay member: a host behind a ${kind} NAT knows its mapping`, async (t) => {
    const net = new MemoryNetwork({ latencyMs: 1 });
    const pub = wholeAgent(net.socket(S.address, S.port), 1, [], (port) => Promise.resolve(net.socket(S.address, port)));
    const nat = new MemoryNat(net, { publicAddress: '198.51.100.20', mapping: kind === 'cone' ? 'endpoint-independent' : 'endpoint-dependent', portAllocation: 'random', seed: 3 });
    const x = wholeAgent(nat.socket('10.1.0.2', 4500), 2, [S]);
    try {
      await until(() => (x.status().nat?.mapping ?? 'unknown') !== 'unknown', 15_000, 'x to know its mapping');
      assert.equal(x.status().nat?.mapping, kind === 'cone' ? 'endpoint-independent' : 'endpoint-dependent', JSON.stringify(x.status().nat));
      // The agent's own netchecks leave the change-port filtering test out (it would hold an ICE
      // restart's mapping back); `idloc-agent netcheck` runs it.
      assert.equal(pub.status().counters.stun.changedPort, 0, 'no change-port request from the agent\'s own netchecks');
      assert.match(x.status().nat?.summary ?? '', /filtering unknown/);
      const r = await x.netcheck();
      assert.ok(pub.status().counters.stun.changedPort > 0, 'on request, the change-port test runs');
      // Behind the symmetric NAT the mapping towards P never sent to P+1: its filter stays shut. Behind the
      // cone one the agent's own mapping test to P+1 opened it (the reason says that it may have).
      if (kind === 'symmetric') assert.equal(r.filtering, 'address-and-port-dependent', r.filteringReason);
      else assert.match(r.filteringReason, /unless this socket sent to that port lately/);
      t.diagnostic(`${kind}: ${x.status().nat?.summary}; on request: filtering ${r.filtering}`);
    } finally {
      await Promise.all([pub.close(), x.close()]);
    }
  });
}

// An ICE restart offers the mapping the first STUN server to answer names (path-keeper.ts freshMapping,
// waiting ICE_RESTART_STUN_WAIT_MS at most). A netcheck of the public member that also tests its second
// port took longer than that behind a filtering NAT (the change-port test), or far longer when that
// port is firewalled (the mapping test to it): the restart then offered the old uplink's mapping, every
// check towards the peer's filtering NAT failed and the path fell to the peer relay.
for (const second of ['answers', 'is firewalled (its answers never arrive)'] as const) {
  test(`whole agents, one public member whose second port ${second}: a host that moves behind another filtering NAT is direct again at once, at its new mapping`, async (t) => {
    const net = new MemoryNetwork({ latencyMs: 1 });
    const pub = wholeAgent(net.socket(S.address, S.port), 1, [], (port) => {
      const k = net.socket(S.address, port);
      if (second !== 'answers') k.send = () => undefined;
      return Promise.resolve(k);
    });
    const cone = (publicAddress: string) => new MemoryNat(net, { publicAddress, mapping: 'endpoint-independent', filtering: 'address-and-port-dependent' });
    const [natA, natA2, natB] = [cone('198.51.100.20'), cone('198.51.100.23'), cone('198.51.100.21')];
    const sockA = natA.socket('10.1.0.2', 4500);
    const a = wholeAgent(sockA, 2, [S]);
    const b = wholeAgent(natB.socket('10.2.0.2', 4500), 3, [S]);
    const view = (x: Host, y: Host) => x.status().peers.find((p) => p.publicKey === y.currentIdentity.publicKeyHex);
    try {
      const ready = (x: Host) => (x.status().overlay?.rendezvous.length ?? 0) > 0 && !!x.status().nat?.public;
      await until(() => ready(a) && ready(b), 15_000, 'both behind their NATs, knowing their public mapping, with rendezvous');
      a.tap.inject([ping(a, b)]);
      await until(() => view(a, b)?.path === 'direct' && view(b, a)?.path === 'direct', 10_000, 'a direct path first');
      sockA.rebind('10.3.0.2', 4500, natA2);
      const t0 = Date.now();
      a.addressesChanged();
      // The restart's srflx must be the new mapping: the old one leads nowhere, and b's NAT lets a's checks
      // in only after b has sent towards the new one.
      await until(() => view(b, a)?.endpoint?.startsWith('198.51.100.23:') === true && view(a, b)?.path === 'direct', 3_000,
        `b to reach a at its new mapping directly (b sees ${JSON.stringify(view(b, a))})`).catch((e: Error) => {
        throw new Error(`${e.message}; a: ${JSON.stringify(view(a, b))}`);
      });
      const ms = Date.now() - t0;
      t.diagnostic(`direct again ${ms} ms after the move: ${view(a, b)?.pathReason}`);
      assert.match(String(view(a, b)?.pathReason), /^ICE: /);
      assert.ok(ms < 1_000, `${ms} ms after the move`);
    } finally {
      await Promise.all([pub.close(), a.close(), b.close()]);
    }
  });
}

void endpointKey;
