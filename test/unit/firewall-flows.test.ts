// The firewall on packets: default drop by reason, rule admission by port, replies to tracked flows, their
// expiry on an injected clock, a full flow table, ICMP errors, fragments, IPv6 extension headers, garbage.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Firewall, type FirewallStats } from '../../agent/firewall/firewall.js';
import { parseFirewallRules } from '../../agent/firewall/rules.js';
import type { PeerIdentity } from '../../agent/firewall/policy.js';
import {
  FW_ICMP_ECHO_MS, FW_IPV6_EXT_HEADERS_MAX, FW_TCP_ESTABLISHED_MS, FW_TCP_OPENING_MS, FW_TCP_RESET_MS,
  FW_UDP_REPLIED_MS, FW_UDP_UNREPLIED_MS,
} from '../../agent/base/constants.js';
import { ipv4, ipv6, tcp, V4_HOST, V4_PEER, V6_HOST, V6_PEER } from './packet-helpers.js';

const SYN = 0x02, ACK = 0x10, RST = 0x04, FIN = 0x01;
const builder: PeerIdentity = { publicKeyHex: 'ab'.repeat(32), nodeIdHex: 'cd'.repeat(20), names: ['alice'], groups: ['build'] };
const stranger: PeerIdentity = { publicKeyHex: 'ef'.repeat(32), nodeIdHex: '01'.repeat(20), names: ['mallory'], groups: [] };

const clock = () => { const c = { t: 1_000_000, now: () => c.t }; return c; };
const setup = (rules: unknown[] = [{ from: 'group:build', proto: 'tcp', port: 22 }], flowCapacity?: number) => {
  const c = clock();
  const fw = new Firewall(parseFirewallRules(rules), { clock: c, flowCapacity });
  return { c, fw, p: fw.compileFor(builder), q: fw.compileFor(stranger) };
};

type V = 4 | 6;
const TCP = 6, UDP = 17;
const icmpProto = (v: V) => (v === 4 ? 1 : 58);

function seg(src: number, dst: number, flags: number): Buffer {
  const b = tcp(flags, new Uint8Array(0));
  b.writeUInt16BE(src, 0); b.writeUInt16BE(dst, 2);
  return b;
}
function dgram(src: number, dst: number): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt16BE(src, 0); b.writeUInt16BE(dst, 2); b.writeUInt16BE(12, 4);
  return b;
}
function icmp(type: number, id: number, body: Uint8Array = new Uint8Array(0)): Buffer {
  const b = Buffer.alloc(8 + body.length);
  b[0] = type; b.writeUInt16BE(id, 4); b.set(body, 8);
  return b;
}
/** Host -> peer, and peer -> host. */
const out = (v: V, l4: Uint8Array, proto: number): Buffer => (v === 4 ? ipv4(l4, { proto, src: V4_HOST, dst: V4_PEER }) : ipv6(l4, { nh: proto, src: V6_HOST, dst: V6_PEER }));
const inn = (v: V, l4: Uint8Array, proto: number): Buffer => (v === 4 ? ipv4(l4, { proto, src: V4_PEER, dst: V4_HOST }) : ipv6(l4, { nh: proto, src: V6_PEER, dst: V6_HOST }));
const echoReq = (v: V) => (v === 4 ? 8 : 128);
const echoRep = (v: V) => (v === 4 ? 0 : 129);

const sum = (s: FirewallStats) => s.allowedByRule + s.allowedAsReply + s.droppedNoRule + s.droppedMalformed + s.droppedFragment;

test('default drop: only what a rule admits passes, each drop counted', () => {
  const { fw, p, q } = setup();
  for (const v of [4, 6] as const) {
    assert.equal(fw.allowInbound(p, inn(v, seg(50000, 22, SYN), TCP)), true, 'tcp 22 from group:build');
    assert.equal(fw.allowInbound(p, inn(v, seg(50000, 23, SYN), TCP)), false, 'other port');
    assert.equal(fw.allowInbound(p, inn(v, dgram(50000, 22), UDP)), false, 'udp 22');
    assert.equal(fw.allowInbound(p, inn(v, icmp(echoReq(v), 1), icmpProto(v))), false, 'ping');
    assert.equal(fw.allowInbound(q, inn(v, seg(50000, 22, SYN), TCP)), false, 'not in the group');
    assert.equal(fw.allowInbound(p, inn(v, Buffer.alloc(8), 47)), false, 'GRE');
  }
  assert.deepEqual(fw.stats, { allowedByRule: 2, allowedAsReply: 0, droppedNoRule: 10, droppedMalformed: 0, droppedFragment: 0 });
});

test('"*" icmp admits pings from everyone; proto any admits everything', () => {
  const { fw, p, q } = setup([{ from: '*', proto: 'icmp' }, { from: 'alice' }]);
  for (const v of [4, 6] as const) {
    assert.equal(fw.allowInbound(q, inn(v, icmp(echoReq(v), 9), icmpProto(v))), true);
    assert.equal(fw.allowInbound(q, inn(v, seg(1, 2, SYN), TCP)), false);
    assert.equal(fw.allowInbound(p, inn(v, dgram(1, 9999), UDP)), true);
  }
});

test('replies to outbound TCP, UDP and pings pass, for that peer, those ports, that IP version only', () => {
  const { fw, p, q } = setup();
  for (const v of [4, 6] as const) {
    fw.noteOutbound(p, out(v, seg(40000, 80, SYN), TCP));
    assert.equal(fw.allowInbound(p, inn(v, seg(80, 40000, SYN | ACK), TCP)), true);
    assert.equal(fw.allowInbound(p, inn(v, seg(81, 40000, SYN | ACK), TCP)), false, 'other remote port');
    assert.equal(fw.allowInbound(p, inn(v, seg(80, 40001, SYN | ACK), TCP)), false, 'other local port');
    assert.equal(fw.allowInbound(q, inn(v, seg(80, 40000, SYN | ACK), TCP)), false, 'other peer');
    fw.noteOutbound(p, out(v, dgram(5353, 53), UDP));
    assert.equal(fw.allowInbound(p, inn(v, dgram(53, 5353), UDP)), true);
    assert.equal(fw.allowInbound(p, inn(v, seg(53, 5353, ACK), TCP)), false, 'the UDP flow admits no TCP');
    fw.noteOutbound(p, out(v, icmp(echoReq(v), 77), icmpProto(v)));
    assert.equal(fw.allowInbound(p, inn(v, icmp(echoRep(v), 77), icmpProto(v))), true);
    assert.equal(fw.allowInbound(p, inn(v, icmp(echoRep(v), 78), icmpProto(v))), false, 'other echo id');
    assert.equal(fw.allowInbound(p, inn(v, icmp(echoReq(v), 77), icmpProto(v))), false, 'a request is no reply');
  }
  const { fw: fw2, p: p2 } = setup();
  fw2.noteOutbound(p2, out(4, dgram(5353, 53), UDP));
  assert.equal(fw2.allowInbound(p2, inn(6, dgram(53, 5353), UDP)), false, 'an IPv4 flow admits no IPv6 reply');
  assert.equal(fw.stats.allowedAsReply, 6);
});

test('a server\'s own replies (from a port a rule admits) are not tracked', () => {
  const { fw, p } = setup();
  fw.noteOutbound(p, out(4, seg(22, 50000, SYN | ACK), TCP));
  assert.equal(fw.flowStats.added, 0);
});

test('flows expire: UDP unreplied and replied, TCP opening, established and reset, pings', () => {
  const { c, fw, p } = setup();
  const udpIn = () => fw.allowInbound(p, inn(4, dgram(53, 5000), UDP));
  fw.noteOutbound(p, out(4, dgram(5000, 53), UDP));
  c.t += FW_UDP_UNREPLIED_MS + 1;
  assert.equal(udpIn(), false, 'unanswered UDP lapses');
  fw.noteOutbound(p, out(4, dgram(5000, 53), UDP));
  c.t += FW_UDP_UNREPLIED_MS - 1;
  assert.equal(udpIn(), true);
  c.t += FW_UDP_REPLIED_MS - 1;
  assert.equal(udpIn(), true, 'a replied flow lives longer, refreshed by each reply');
  c.t += FW_UDP_REPLIED_MS + 1;
  assert.equal(udpIn(), false);

  const tcpIn = (flags: number) => fw.allowInbound(p, inn(6, seg(443, 41000, flags), TCP));
  fw.noteOutbound(p, out(6, seg(41000, 443, SYN), TCP));
  c.t += FW_TCP_OPENING_MS + 1;
  assert.equal(tcpIn(SYN | ACK), false, 'an unanswered SYN lapses');
  fw.noteOutbound(p, out(6, seg(41000, 443, SYN), TCP));
  assert.equal(tcpIn(SYN | ACK), true);
  fw.noteOutbound(p, out(6, seg(41000, 443, ACK), TCP));
  c.t += FW_TCP_ESTABLISHED_MS - 1;
  assert.equal(tcpIn(ACK), true, 'established: idle for hours');
  c.t += FW_TCP_ESTABLISHED_MS + 1;
  assert.equal(tcpIn(ACK), false);
  fw.noteOutbound(p, out(6, seg(41000, 443, ACK), TCP));
  assert.equal(tcpIn(RST), true, 'the reset itself passes');
  c.t += FW_TCP_RESET_MS + 1;
  assert.equal(tcpIn(ACK), false, 'then the flow is gone soon');
  fw.noteOutbound(p, out(6, seg(41000, 443, ACK), TCP));
  fw.noteOutbound(p, out(6, seg(41000, 443, FIN | ACK), TCP));
  c.t += FW_TCP_OPENING_MS - 1;
  assert.equal(tcpIn(FIN | ACK), true, 'the other half may close minutes later');

  fw.noteOutbound(p, out(4, icmp(8, 5), 1));
  c.t += FW_ICMP_ECHO_MS + 1;
  assert.equal(fw.allowInbound(p, inn(4, icmp(0, 5), 1)), false, 'a late pong');
});

test('a full table evicts and still admits every new flow; expired flows go first', () => {
  const { c, fw, p } = setup(undefined, 16);
  for (let port = 10000; port < 10200; port++) {
    fw.noteOutbound(p, out(4, dgram(port, 53), UDP));
    assert.equal(fw.allowInbound(p, inn(4, dgram(53, port), UDP)), true, `flow ${port} admitted`);
  }
  assert.ok(fw.flowStats.evicted >= 200 - 16, `evicted ${fw.flowStats.evicted}`);
  assert.ok(fw.flowsLive() <= 16);
  c.t += FW_UDP_REPLIED_MS + 1;
  const evicted = fw.flowStats.evicted;
  for (let port = 20000; port < 20008; port++) fw.noteOutbound(p, out(4, dgram(port, 53), UDP));
  assert.equal(fw.flowStats.evicted, evicted, 'expired slots are taken before live ones');
});

test('forget() drops a departed peer\'s flows', () => {
  const { fw, p } = setup();
  fw.noteOutbound(p, out(4, dgram(5000, 53), UDP));
  fw.forget(p);
  assert.equal(fw.allowInbound(p, inn(4, dgram(53, 5000), UDP)), false);
  assert.equal(fw.flowsLive(), 0);
});

/** ICMP error `type` quoting `quoted` (cut to `keep` bytes: for v4 IP header + 8 by default, as RFC 792 does). */
function icmpError(v: V, type: number, quoted: Buffer, keep = v === 4 ? 28 : quoted.length): Buffer {
  const cut = quoted.subarray(0, keep);
  const b = Buffer.alloc(8 + cut.length);
  b[0] = type; b[1] = v === 4 && type === 3 ? 4 : 0;
  b.set(cut, 8);
  return inn(v, b, icmpProto(v));
}

test('ICMP errors pass when they quote a tracked flow or a connection a rule admits', () => {
  const { fw, p } = setup();
  for (const v of [4, 6] as const) {
    const unreach = v === 4 ? 3 : 1, tooBig = v === 4 ? 3 : 2, exceeded = v === 4 ? 11 : 3;
    const query = out(v, dgram(5000, 53), UDP);
    assert.equal(fw.allowInbound(p, icmpError(v, unreach, query)), false, 'no flow yet');
    fw.noteOutbound(p, query);
    assert.equal(fw.allowInbound(p, icmpError(v, unreach, query)), true, 'port unreachable for our query');
    assert.equal(fw.allowInbound(p, icmpError(v, unreach, out(v, dgram(5001, 53), UDP))), false, 'an untracked flow');
    assert.equal(fw.allowInbound(p, icmpError(v, tooBig, out(v, seg(22, 50000, ACK), TCP))), true, 'PMTU for the ssh server\'s reply');
    const ping = out(v, icmp(echoReq(v), 3), icmpProto(v));
    fw.noteOutbound(p, ping);
    assert.equal(fw.allowInbound(p, icmpError(v, exceeded, ping)), true, 'time exceeded for our ping');
    assert.equal(fw.allowInbound(p, icmpError(v, v === 4 ? 5 : 137, query)), false, 'redirect is no error we take');
    const inPorts = (v === 4 ? 20 : 40) + 3;
    assert.equal(fw.allowInbound(p, icmpError(v, unreach, query, inPorts)), false, 'quote cut inside the ports');
    assert.equal(fw.stats.droppedMalformed, 0, 'the error itself is well formed');
  }
});

test('fragments: later ones pass after their first one did, or when a rule covers the protocol', () => {
  const { fw, p } = setup([{ from: '*', proto: 'udp', port: 53 }, { from: 'alice', proto: 'tcp' }]);
  const first = ipv4(dgram(5000, 53), { proto: UDP, src: V4_PEER, dst: V4_HOST, mf: true });
  const later = ipv4(Buffer.alloc(64), { proto: UDP, src: V4_PEER, dst: V4_HOST, fragOffset8: 185 });
  const stray = Buffer.from(later); stray.writeUInt16BE(0x4321, 4);
  assert.equal(fw.allowInbound(p, later), false, 'no first fragment seen');
  assert.equal(fw.allowInbound(p, first), true);
  assert.equal(fw.allowInbound(p, later), true);
  assert.equal(fw.allowInbound(p, stray), false, 'another datagram');
  assert.equal(fw.allowInbound(p, ipv4(Buffer.alloc(64), { proto: TCP, src: V4_PEER, dst: V4_HOST, fragOffset8: 185 })), true, 'tcp on every port');
  const frag6 = (off8: number, m: boolean, id: number, rest: Uint8Array) => {
    const h = Buffer.from([UDP, 0, (off8 << 3) >> 8, ((off8 << 3) & 0xff) | (m ? 1 : 0), 0, 0, 0, 0]);
    h.writeUInt32BE(id, 4);
    return inn(6, Buffer.concat([h, rest]), 44);
  };
  assert.equal(fw.allowInbound(p, frag6(0, true, 0xdeadbeef, dgram(5000, 53))), true);
  assert.equal(fw.allowInbound(p, frag6(100, false, 0xdeadbeef, Buffer.alloc(40))), true);
  assert.equal(fw.allowInbound(p, frag6(100, false, 0xdeadbeee, Buffer.alloc(40))), false);
  assert.equal(fw.allowInbound(p, frag6(0, true, 7, dgram(5000, 54))), false, 'a first fragment is judged by its ports');
  assert.equal(fw.stats.droppedFragment, 3);
});

/** An 8-byte IPv6 extension header (hop-by-hop, routing or destination options: the same layout), then `next`. */
const ext = (next: number) => Buffer.from([next, 0, 1, 4, 0, 0, 0, 0]);

test('IPv6 extension headers are walked to the upper layer; too long a chain is malformed', () => {
  const { fw, p } = setup();
  const chain = Buffer.concat([ext(43), ext(60), ext(TCP)]);
  assert.equal(fw.allowInbound(p, inn(6, Buffer.concat([chain, seg(50000, 22, SYN)]), 0)), true);
  assert.equal(fw.allowInbound(p, inn(6, Buffer.concat([chain, seg(50000, 23, SYN)]), 0)), false);
  const ah = Buffer.from([TCP, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  assert.equal(fw.allowInbound(p, inn(6, Buffer.concat([ah, seg(50000, 22, SYN)]), 51)), true, 'AH: 4*(2+len) bytes');
  const long = Buffer.concat([...Array(FW_IPV6_EXT_HEADERS_MAX).fill(0).map(() => ext(60)), ext(TCP)]);
  assert.equal(fw.allowInbound(p, inn(6, Buffer.concat([long, seg(50000, 22, SYN)]), 60)), false);
  assert.equal(fw.allowInbound(p, inn(6, Buffer.from([TCP, 5, 0, 0, 0, 0, 0, 0]), 0)), false, 'header runs past the end');
  assert.equal(fw.stats.droppedMalformed, 2);
});

test('truncated packets are dropped as malformed, never thrown on', () => {
  const { fw, p } = setup([{ from: '*', proto: 'udp', port: 9 }]);
  for (const v of [4, 6] as const) {
    for (const whole of [inn(v, seg(1, 22, SYN), TCP), inn(v, dgram(1, 53), UDP), inn(v, icmp(echoRep(v), 1), icmpProto(v))]) {
      for (let n = 0; n < whole.length; n++) {
        const cut = whole.subarray(0, n);
        assert.equal(fw.allowInbound(p, cut), false, `${n} of ${whole.length} bytes`);
        fw.noteOutbound(p, cut);
      }
    }
  }
  assert.equal(fw.stats.droppedMalformed, sum(fw.stats));
});

test('fuzz: random bytes and bit flips never throw, and every verdict is counted', () => {
  const { fw, p } = setup([{ from: '*', proto: 'udp', port: '1-1000' }, { from: 'alice', proto: 'icmp' }]);
  const seeds = [inn(4, seg(1, 22, SYN), TCP), inn(6, dgram(1, 53), UDP), icmpError(4, 3, out(4, dgram(5000, 53), UDP)),
    icmpError(6, 2, out(6, seg(40000, 80, ACK), TCP)), inn(6, Buffer.concat([ext(44), Buffer.alloc(8), dgram(1, 2)]), 0)];
  let calls = 0;
  fc.assert(fc.property(fc.uint8Array({ maxLength: 120 }), fc.nat(seeds.length - 1), fc.array(fc.nat(), { maxLength: 6 }), (junk, s, flips) => {
    const seeded = Buffer.from(seeds[s]!);
    for (const f of flips) seeded[f % seeded.length]! ^= 1 << (f % 8);
    for (const b of [Buffer.from(junk), seeded]) {
      fw.noteOutbound(p, b);
      assert.equal(typeof fw.allowInbound(p, b), 'boolean');
      calls++;
    }
  }), { numRuns: 2000 });
  assert.equal(sum(fw.stats), calls);
});

test('no rules: every packet passes, none is tracked', () => {
  const c = clock();
  const fw = new Firewall([], { clock: c });
  const p = fw.compileFor(stranger);
  fw.noteOutbound(p, out(4, dgram(5000, 53), UDP));
  assert.equal(fw.allowInbound(p, inn(4, seg(1, 2, SYN), TCP)), true);
  assert.equal(fw.flowStats.added, 0);
});
