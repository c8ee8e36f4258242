// netcheck against StunEndpoint servers (agents) and an RFC 5780 server twin on a MemoryNetwork, with
// clients behind MemoryNat routers: no NAT, cone, symmetric and CGNAT told apart; filtering measured only
// where a server can answer from a second address; loss retried; garbage counted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { MemoryNetwork, type MemoryNetworkOptions, type MemorySocket } from '../../agent/conn/memory-socket.js';
import { MemoryNat, type MemoryNatOptions } from '../../agent/conn/memory-nat.js';
import { StunEndpoint, type StunTransactionOptions } from '../../agent/nat/stun-endpoint.js';
import { ATTR } from '../../agent/nat/stun-wire.js';
import { CHANGE_IP, CHANGE_PORT, parseStun } from '../../agent/nat/stun-binding.js';
import { netcheck, reachableUnsolicited, summarizeNetcheck, type NetcheckReport } from '../../agent/nat/netcheck.js';
import type { Endpoint } from '../../agent/conn/socket.js';

const stun = createRequire(import.meta.url)('stun') as {
  createMessage(type: number, txid?: Buffer): { addXorAddress(a: string, p: number): unknown; addAttribute(t: number, ...v: unknown[]): unknown; addFingerprint(): unknown; toBuffer(): Buffer };
};

function attach(sock: MemorySocket): StunEndpoint {
  const e = new StunEndpoint({ send: (b, to) => sock.send(b, to) });
  sock.onMessage((m, f) => e.handleDatagram(m, f));
  return e;
}

const S1: Endpoint = { address: '203.0.113.1', port: 3478 };
const S2: Endpoint = { address: '203.0.113.2', port: 3478 };
const fast: StunTransactionOptions = { rtoMs: 10, maxTransmits: 3 };

/** Two agent STUN servers on different IPs, and a client: public, or behind a NAT with these options. */
function world(nat?: Partial<MemoryNatOptions>, netOpts?: MemoryNetworkOptions) {
  const net = new MemoryNetwork(netOpts);
  attach(net.socket(S1.address, S1.port));
  attach(net.socket(S2.address, S2.port));
  const router = nat ? new MemoryNat(net, { publicAddress: '198.51.100.20', ...nat }) : undefined;
  const sock = router ? router.socket('192.168.1.2', 4500) : net.socket('198.51.100.10', 4500);
  const client = attach(sock);
  const localAddresses = [sock.local.address, '127.0.0.1'];
  return { net, router, client, sock, local: { localAddresses, localPort: 4500 } };
}

test('no NAT: the servers see our own address', async () => {
  const { client, local } = world();
  const r = await netcheck(client, [S1, S2], local);
  assert.equal(r.udp, true);
  assert.equal(r.behindNat, false);
  assert.equal(r.mapping, 'no-nat');
  assert.deepEqual(r.publicEndpoint, { address: '198.51.100.10', port: 4500 });
  assert.equal(r.filtering, 'unknown');
  assert.match(r.filteringReason, /OTHER-ADDRESS/);
  assert.equal(r.servers.length, 2);
  assert.match(summarizeNetcheck(r), /^no NAT; public 198\.51\.100\.10:4500; filtering unknown; rtt \d+\.\d ms$/);
});

test('cone NAT: one mapping for both servers (endpoint-independent), port preserved', async () => {
  const { client, local, router } = world({ mapping: 'endpoint-independent' });
  const r = await netcheck(client, [S1, S2], local);
  assert.equal(r.behindNat, true);
  assert.equal(r.mapping, 'endpoint-independent');
  assert.deepEqual(r.publicEndpoints, [{ address: '198.51.100.20', port: 4500 }]);
  assert.equal(r.portPreserved, true);
  assert.match(summarizeNetcheck(r), /^endpoint-independent mapping \(cone\); public 198\.51\.100\.20:4500; port preserved; filtering unknown; rtt/);
  assert.equal(router!.stats.mappingsCreated, 1);
});

test('symmetric NAT: a new mapping per server (endpoint-dependent)', async () => {
  const { client, local } = world({ mapping: 'endpoint-dependent', portAllocation: 'random', seed: 5 });
  const r = await netcheck(client, [S1, S2], local);
  assert.equal(r.behindNat, true);
  assert.equal(r.mapping, 'endpoint-dependent');
  assert.equal(r.publicEndpoints.length, 2);
  assert.equal(r.portPreserved, false);
  assert.match(r.mappingReason, /203\.0\.113\.1:3478 saw 198\.51\.100\.20:\d+, 203\.0\.113\.2:3478 saw 198\.51\.100\.20:\d+/);
  assert.match(summarizeNetcheck(r), /^endpoint-dependent mapping \(symmetric\); public 198\.51\.100\.20:\d+, 198\.51\.100\.20:\d+; port changed/);
});

test('address-dependent mapping: symmetric to servers on two IPs, unknown to two ports of one IP', async () => {
  const { net, client, local } = world({ mapping: 'address-dependent' });
  const S1b = { address: S1.address, port: 3479 };
  attach(net.socket(S1b.address, S1b.port));
  const sameIp = await netcheck(client, [S1, S1b], local);
  assert.equal(sameIp.mapping, 'unknown');
  assert.match(sameIp.mappingReason, /share one IP address/);
  assert.equal((await netcheck(client, [S1, S2], local)).mapping, 'endpoint-dependent');
});

test('carrier-grade NAT (two layers): the outer address is the public one', async () => {
  const net = new MemoryNetwork();
  attach(net.socket(S1.address, S1.port));
  attach(net.socket(S2.address, S2.port));
  const cgn = new MemoryNat(net, { publicAddress: '198.51.100.30', portAllocation: 'sequential' });
  const home = new MemoryNat(net, { publicAddress: '100.64.1.2', parent: cgn });
  const client = attach(home.socket('192.168.1.2', 4500));
  const r = await netcheck(client, [S1, S2], { localAddresses: ['192.168.1.2'], localPort: 4500 });
  assert.equal(r.mapping, 'endpoint-independent');
  assert.deepEqual(r.publicEndpoint, { address: '198.51.100.30', port: 40000 });
});

test('servers down or UDP blocked: reported, never thrown', async () => {
  const { client, local } = world();
  const one = await netcheck(client, [S1, { address: '203.0.113.99', port: 3478 }], { ...local, transaction: fast });
  assert.equal(one.udp, true);
  assert.equal(one.mapping, 'no-nat');
  assert.equal(one.servers[1]!.error, 'no answer after 3 transmissions');
  const nat = world({});
  const single = await netcheck(nat.client, [S1, { address: '203.0.113.99', port: 3478 }], { ...nat.local, transaction: fast });
  assert.equal(single.mapping, 'unknown');
  assert.match(single.mappingReason, /only one server answered/);
  const none = await netcheck(client, [{ address: '203.0.113.98', port: 3478 }, { address: '203.0.113.99', port: 3478 }], { ...local, transaction: fast });
  assert.equal(none.udp, false);
  assert.equal(none.behindNat, undefined);
  assert.equal(summarizeNetcheck(none), 'no UDP: none of 2 STUN servers answered (UDP blocked, or the servers are down)');
  assert.equal((await netcheck(client, [], local)).udp, false);
});

test('lost packets are retransmitted: the default timers find the mapping on a 25% lossy network', async () => {
  const { client, local, net } = world({ mapping: 'endpoint-independent' }, { loss: 0.25, seed: 4 });
  const r = await netcheck(client, [S1, S2], local);
  assert.equal(r.mapping, 'endpoint-independent', r.mappingReason);
  assert.ok(client.stats.retransmits > 0, 'some requests or answers were lost and re-sent');
  assert.ok(net.stats.lost > 0);
  assert.ok(r.servers.some((s) => s.transmits > 1));
  // and over many seeds, with the default 4 transmissions, netcheck almost never loses a server at 25% loss
  let complete = 0;
  const runs = await Promise.all(Array.from({ length: 20 }, (_, seed) => {
    const w = world({ mapping: 'endpoint-independent' }, { loss: 0.25, seed: 100 + seed });
    return netcheck(w.client, [S1, S2], { ...w.local, transaction: { rtoMs: 5 } });
  }));
  for (const x of runs) if (x.mapping === 'endpoint-independent') complete++;
  assert.ok(complete >= 17, `${complete}/20`);
});

test('garbage and truncated STUN arriving during a netcheck is counted, and the answer is still right', async () => {
  const { client, local, net } = world();
  const attacker = net.socket('203.0.113.66', 1);
  const spray = (): void => {
    for (const b of [Buffer.of(0, 1, 0), Buffer.alloc(20), Buffer.from('0101000c2112a442', 'hex'), Buffer.of(1, 1, 0, 4, 0x21, 0x12, 0xa4, 0x42, ...new Array<number>(16).fill(0))]) {
      attacker.send(b, { address: '198.51.100.10', port: 4500 });
    }
  };
  spray();
  const pending = netcheck(client, [S1, S2], local);
  queueMicrotask(spray);
  const r = await pending;
  assert.equal(r.mapping, 'no-nat');
  await new Promise((res) => setImmediate(res));
  // per spray: three malformed, and one well-formed success response (an unknown attribute 0x0000) nobody asked for
  assert.equal(client.stats.malformed, 6);
  assert.equal(client.stats.unmatched, 2);
  assert.equal(client.stats.responses, 2);
});

/** RFC 5780 server twin (as coturn with two addresses): four sockets, answers CHANGE-REQUEST from the
 *  other IP and/or port, reports OTHER-ADDRESS and RESPONSE-ORIGIN. */
function rfc5780Server(net: MemoryNetwork, ip1: string, ip2: string, p1: number, p2: number): Endpoint {
  const socks = new Map<string, MemorySocket>();
  for (const ip of [ip1, ip2]) for (const p of [p1, p2]) socks.set(`${ip}:${p}`, net.socket(ip, p));
  for (const s of socks.values()) {
    s.onMessage((msg, from) => {
      const m = parseStun(msg);
      if (!m || m.cls !== 0) return;
      const change = m.changeRequest ?? 0;
      const ip = (change & CHANGE_IP) ? (s.local.address === ip1 ? ip2 : ip1) : s.local.address;
      const port = (change & CHANGE_PORT) ? (s.local.port === p1 ? p2 : p1) : s.local.port;
      const r = stun.createMessage(0x0101, Buffer.from(m.txid));
      r.addXorAddress(from.address, from.port);
      r.addAttribute(ATTR.OTHER_ADDRESS, ip2, p2);
      r.addAttribute(ATTR.RESPONSE_ORIGIN, ip, port);
      r.addFingerprint();
      socks.get(`${ip}:${port}`)!.send(r.toBuffer(), from);
    });
  }
  return { address: ip1, port: p1 };
}

test('filtering, measured with an RFC 5780 server: endpoint-independent, address-dependent, address-and-port-dependent', async () => {
  for (const filtering of ['endpoint-independent', 'address-dependent', 'address-and-port-dependent'] as const) {
    const { net, client, local } = world({ mapping: 'endpoint-independent', filtering });
    const coturn = rfc5780Server(net, '203.0.113.10', '203.0.113.11', 3478, 3479);
    const r = await netcheck(client, [coturn, S1], { ...local, transaction: fast });
    assert.equal(r.mapping, 'endpoint-independent');
    assert.equal(r.filtering, filtering, r.filteringReason);
    assert.deepEqual(r.servers[0]!.otherAddress, { address: '203.0.113.11', port: 3479 });
    assert.ok(summarizeNetcheck(r).includes(`filtering ${filtering}`));
  }
  const open = world();
  const coturn = rfc5780Server(open.net, '203.0.113.10', '203.0.113.11', 3478, 3479);
  const r = await netcheck(open.client, [coturn], { ...open.local, transaction: fast });
  assert.deepEqual([r.mapping, r.filtering], ['no-nat', 'endpoint-independent']);
  const off = await netcheck(open.client, [coturn], { ...open.local, filtering: false });
  assert.deepEqual([off.filtering, off.filteringReason], ['unknown', 'not tested']);
});

test('one RFC 5780 server is enough to tell the mapping: netcheck asks its other IP too', async () => {
  for (const mapping of ['endpoint-independent', 'endpoint-dependent'] as const) {
    const { net, client, local } = world({ mapping, portAllocation: 'sequential' });
    const coturn = rfc5780Server(net, '203.0.113.10', '203.0.113.11', 3478, 3479);
    const r = await netcheck(client, [coturn], { ...local, transaction: fast, filtering: false });
    assert.equal(r.mapping, mapping, r.mappingReason);
    assert.deepEqual(r.servers.map((s) => s.probe), [undefined, 'other-address']);
    assert.deepEqual(r.servers[1]!.server, { address: '203.0.113.11', port: 3478 });
  }
});

test('reachableUnsolicited: public only with no NAT and no firewall seen filtering; undecided filtering counts as public', () => {
  const r = (behindNat: boolean | undefined, filtering: NetcheckReport['filtering']) => ({ behindNat, filtering }) as NetcheckReport;
  assert.equal(reachableUnsolicited(r(false, 'endpoint-independent')), true);
  assert.equal(reachableUnsolicited(r(false, 'unknown')), true);
  assert.equal(reachableUnsolicited(r(false, 'address-and-port-dependent')), false, 'a stateful firewall, no NAT');
  assert.equal(reachableUnsolicited(r(false, 'address-dependent')), false);
  assert.equal(reachableUnsolicited(r(true, 'endpoint-independent')), false);
  assert.equal(reachableUnsolicited(r(undefined, 'unknown')), false, 'nobody answered');
});

test('dual stack: IPv4 and IPv6 servers are checked apart (a cone IPv4 NAT is not read as symmetric next to an IPv6 mapping), and an OTHER-ADDRESS of another family is not followed', async () => {
  const asked: string[] = [];
  const v6 = { address: '2001:db8:12::2', port: 4500 };
  const endpoint = {
    request: async (server: Endpoint) => {
      asked.push(server.address);
      const six = server.address.includes(':');
      return {
        kind: 'success' as const, rttMs: 1, transmits: 1, from: server,
        mapped: six ? v6 : { address: '198.51.100.20', port: 4500 },
        // a dual-stack agent that names its IPv6 second address to everyone
        ...(server.address === '203.0.113.1' ? { otherAddress: { address: '2001:db8::1', port: 3479 } } : {}),
      };
    },
  } as unknown as StunEndpoint;
  const servers = [S1, S2, { address: '2001:db8::1', port: 3478 }, { address: '2001:db8::2', port: 3478 }];
  const r = await netcheck(endpoint, servers, { localAddresses: ['10.12.0.2', v6.address], localPort: 4500, filtering: false });
  assert.equal(r.family, 4);
  assert.equal(r.mapping, 'endpoint-independent', r.mappingReason);
  assert.deepEqual(r.publicEndpoints, [{ address: '198.51.100.20', port: 4500 }]);
  assert.equal(r.other?.family, 6);
  assert.equal(r.other?.mapping, 'no-nat');
  assert.equal(r.servers.length, 4, 'no probe of the other-family OTHER-ADDRESS');
  assert.deepEqual(asked.sort(), ['198.51.100.20', '2001:db8::1', '2001:db8::2', '203.0.113.1', '203.0.113.2'].filter((a) => a !== '198.51.100.20').sort());
  assert.match(summarizeNetcheck(r), /^endpoint-independent mapping \(cone\); public 198\.51\.100\.20:4500;.*; IPv6: no NAT; public \[2001:db8:12::2\]:4500/);
  // reachable unsolicited only if every family is: the IPv4 side is behind a NAT
  assert.equal(reachableUnsolicited(r), false);
  assert.equal(reachableUnsolicited({ ...r, behindNat: false, mapping: 'no-nat' }), true);
  assert.equal(reachableUnsolicited({ ...r, behindNat: false, other: { ...r.other!, filtering: 'address-and-port-dependent' } }), false);
});
