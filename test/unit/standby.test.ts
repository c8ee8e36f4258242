// Standby paths on a host with two uplinks (nat/standby.ts), on a twin clock with the tunnel and STUN
// edges recorded: the offer/probe/answer exchange, failover on a silent path (at once while sending,
// after an unanswered probe of the active path while receiving), no move while the active path answers,
// failback to the preferred uplink, unpinning when an uplink goes, the answering side's bounded answers;
// the wire format round trip (fast-check) and the /proc/net/route parser.
import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import pino from 'pino';
import { SimScheduler } from '../../agent/base/scheduler.js';
import type { Endpoint } from '../../agent/conn/socket.js';
import { parseDefaultRoutes, type Uplink } from '../../agent/conn/uplinks.js';
import { formatIpv4, formatIpv6 } from '../../agent/idloc/addresses.js';
import {
  STANDBY_CHECK_MIN_MS, STANDBY_CHECK_MS, STANDBY_CHECK_RTTS, STANDBY_FAILBACK_MS, STANDBY_FRESH_MS, STANDBY_OFFER_ANSWER_MIN_MS, STANDBY_PROBE_MS, STANDBY_TICK_MS,
} from '../../agent/base/constants.js';
import { StandbyPaths, type StandbyTunnels } from '../../agent/nat/standby.js';
import {
  CTRL_STANDBY_ANSWER, CTRL_STANDBY_OFFER, CTRL_STANDBY_PROBE, marshalControl, parseControl, type ControlMessage,
} from '../../agent/nat/standby-wire.js';
import type { ControlReceiver, TunnelPeer } from '../../agent/tunnel/tunnels.js';

const silent = pino({ level: 'silent' });
const ETH0: Uplink = { name: 'eth0', index: 2, address: '10.1.0.2', metric: 0 };
const ETH1: Uplink = { name: 'eth1', index: 3, address: '10.2.0.2', metric: 200 };
const PEER_AT: Endpoint = { address: '203.0.113.20', port: 4500 };
const MAPPED_ETH1: Endpoint = { address: '198.51.100.30', port: 61000 };
const MAPPED_ETH0: Endpoint = { address: '198.51.100.31', port: 4500 };

interface Sent { msg: ControlMessage; to: Endpoint | undefined }

function rig(uplinks: Uplink[] = [ETH0, ETH1]) {
  const clock = new SimScheduler(1_000_000);
  const peer: TunnelPeer = { publicKey: new Uint8Array(32), publicKeyHex: 'ab'.repeat(32), endpoint: { ...PEER_AT }, lastDataAt: 0, lastReceivedAt: 0 };
  const sent: Sent[] = [];
  const moves: { endpoint: Endpoint; nudge: boolean | undefined }[] = [];
  let receive: ControlReceiver | undefined;
  const tunnels: StandbyTunnels = {
    sendControl: (_p, m, to) => { sent.push({ msg: parseControl(m)!, to }); return true; },
    onControl: (h) => { receive = h; },
    setEndpoint: (p, e, nudge) => { p.endpoint = e; moves.push({ endpoint: e, nudge }); },
  };
  const ups = { list: uplinks };
  const asked: Endpoint[] = [];
  const sb = new StandbyPaths({
    tunnels, peers: () => [peer], logger: silent, clock, uplinks: () => ups.list,
    stunServers: () => [{ address: '198.51.100.10', port: 4500 }],
    stun: { binding: async (s) => { asked.push(s); return { mapped: s.via === ETH1.index ? MAPPED_ETH1 : MAPPED_ETH0 }; } },
  });
  const deliver = (m: ControlMessage, from: Endpoint = PEER_AT) => receive!(peer, Buffer.from(marshalControl(m)), from);
  /** Advance the twin clock, letting the STUN stubs' promises settle between its steps. */
  const advance = async (ms: number) => {
    for (let t = 0; t < ms; t += STANDBY_TICK_MS) { clock.step(Math.min(STANDBY_TICK_MS, ms - t)); await new Promise((r) => setImmediate(r)); }
  };
  return { clock, peer, sent, moves, sb, deliver, advance, ups, asked };
}

const probesOn = (sent: Sent[], via: number) => sent.filter((s) => s.msg.type === CTRL_STANDBY_PROBE && s.to?.via === via);

test('a second uplink: its mapping asked out of it, then an offer on the active path and probes out of it until answered', async () => {
  const r = rig();
  await r.advance(STANDBY_TICK_MS * 2);
  assert.ok(r.asked.some((a) => a.via === ETH1.index), 'the mapping on eth1 is asked out of eth1');
  const offer = r.sent.find((s) => s.msg.type === CTRL_STANDBY_OFFER);
  assert.ok(offer && offer.to === undefined, 'the offer goes on the active path');
  assert.deepEqual(offer.msg.type === CTRL_STANDBY_OFFER && offer.msg.endpoint, MAPPED_ETH1);
  const probes = probesOn(r.sent, ETH1.index);
  assert.equal(probes.length, 1);
  assert.deepEqual({ address: probes[0]!.to!.address, port: probes[0]!.to!.port }, PEER_AT);
  assert.equal(probesOn(r.sent, ETH0.index).length, 0, 'no standby on the uplink in use');
  // Unanswered: again every STANDBY_PROBE_MS.
  await r.advance(STANDBY_PROBE_MS * 3);
  assert.ok(probesOn(r.sent, ETH1.index).length >= 3);
  assert.equal(r.sb.covers(r.peer), false);
  // Answered: fresh, and probed only every keepalive interval from then on.
  r.deliver({ type: CTRL_STANDBY_ANSWER, id: probes[0]!.msg.id });
  assert.equal(r.sb.covers(r.peer), true);
  const before = probesOn(r.sent, ETH1.index).length;
  await r.advance(STANDBY_PROBE_MS * 5);
  assert.equal(probesOn(r.sent, ETH1.index).length, before, 'an answered standby is not probed every second');
  assert.equal(r.sb.status(r.peer)?.ours[0]?.uplink, 'eth1');
  assert.equal(r.sb.status(r.peer)?.ours[0]?.mapped, '198.51.100.30:61000');
  // An answer with an id we never sent counts, and changes nothing.
  r.deliver({ type: CTRL_STANDBY_ANSWER, id: 12345 });
  assert.equal(r.sb.stats.unknownId, 1);
  // No longer answered for STANDBY_FRESH_MS: not trusted.
  await r.advance(STANDBY_FRESH_MS);
  assert.equal(r.sb.covers(r.peer), false);
  r.sb.close();
});

async function answered() {
  const r = rig();
  await r.advance(STANDBY_TICK_MS * 2);
  r.deliver({ type: CTRL_STANDBY_ANSWER, id: probesOn(r.sent, ETH1.index)[0]!.msg.id });
  return r;
}

test('silent while sending: the traffic moves to the answered standby at once, pinned to its uplink, no handshake', async () => {
  const r = await answered();
  assert.equal(r.sb.pathSilent(r.peer, 'sending'), true);
  assert.deepEqual(r.moves.at(-1), { endpoint: { ...PEER_AT, via: ETH1.index }, nudge: true });
  assert.equal(r.sb.stats.failovers, 1);
  assert.equal(r.sb.status(r.peer)?.pinned, 'eth1');
  // Nothing to move to when the standby is the path in use already.
  assert.equal(r.sb.pathSilent(r.peer, 'sending'), false);
  r.sb.close();
});

test('silent while receiving: the active path is probed; it moves only if that probe goes unanswered', async () => {
  const r = await answered();
  assert.equal(r.sb.pathSilent(r.peer, 'receiving'), false);
  const check = r.sent.at(-1)!;
  assert.equal(check.msg.type, CTRL_STANDBY_PROBE);
  assert.equal(check.to, undefined, 'the check goes on the active path');
  r.deliver({ type: CTRL_STANDBY_ANSWER, id: check.msg.id });
  await r.advance(STANDBY_CHECK_MS * 2);
  assert.equal(r.moves.length, 0, 'a path that answers keeps the traffic (the flow had only ended)');
  assert.equal(r.sb.pathSilent(r.peer, 'receiving'), false);
  await r.advance(STANDBY_CHECK_MS + STANDBY_TICK_MS);
  assert.deepEqual(r.moves.at(-1)?.endpoint, { ...PEER_AT, via: ETH1.index }, 'an unanswered check moves it');
  r.sb.close();
});

test('the silence check waits STANDBY_CHECK_RTTS round trips of the active path (measured by its own probe), within its bounds', async () => {
  for (const rttMs of [5, 50]) {
    const r = rig(); // its first look at the peer probes the active path
    const rttProbe = r.sent.find((x) => x.msg.type === CTRL_STANDBY_PROBE && x.to === undefined);
    assert.ok(rttProbe, 'a probe on the active path measures its round trip');
    r.clock.step(rttMs);
    r.deliver({ type: CTRL_STANDBY_ANSWER, id: rttProbe.msg.id });
    await r.advance(STANDBY_TICK_MS * 2);
    r.deliver({ type: CTRL_STANDBY_ANSWER, id: probesOn(r.sent, ETH1.index)[0]!.msg.id });
    const wait = Math.min(STANDBY_CHECK_MS, Math.max(STANDBY_CHECK_MIN_MS, STANDBY_CHECK_RTTS * rttMs));
    assert.ok(wait < STANDBY_CHECK_MS, 'shorter than the unmeasured wait');
    assert.equal(r.sb.pathSilent(r.peer, 'receiving'), false);
    r.clock.step(wait - 1);
    assert.equal(r.moves.length, 0, `not before ${wait} ms (round trip ${rttMs} ms)`);
    r.clock.step(2);
    assert.deepEqual(r.moves.at(-1)?.endpoint, { ...PEER_AT, via: ETH1.index }, `moved after ${wait} ms`);
    r.sb.close();
  }
});

test('failback: pinned to eth1, back on eth0 once eth0 answers again and STANDBY_FAILBACK_MS has passed', async () => {
  const r = await answered();
  r.sb.pathSilent(r.peer, 'sending');
  await r.advance(STANDBY_TICK_MS * 2);
  const p0 = probesOn(r.sent, ETH0.index);
  assert.ok(p0.length >= 1, 'the preferred uplink is now probed as a standby');
  assert.equal(p0[0]!.to!.address, PEER_AT.address);
  r.deliver({ type: CTRL_STANDBY_ANSWER, id: p0[0]!.msg.id });
  await r.advance(STANDBY_TICK_MS);
  assert.equal(r.moves.length, 1, 'not before STANDBY_FAILBACK_MS');
  await r.advance(STANDBY_FAILBACK_MS);
  assert.deepEqual(r.moves.at(-1)?.endpoint, PEER_AT, 'unpinned: the routing table (eth0) again');
  assert.equal(r.sb.stats.failbacks, 1);
  r.sb.close();
});

test('an uplink that goes unpins the peers on it, and a host with one uplink keeps no standby', async () => {
  const r = await answered();
  r.sb.pathSilent(r.peer, 'sending');
  r.ups.list = [ETH0];
  r.sb.uplinksChanged();
  assert.deepEqual(r.moves.at(-1)?.endpoint, PEER_AT);
  const n = r.sent.length;
  await r.advance(STANDBY_PROBE_MS * 3);
  assert.equal(r.sent.filter((s) => s.msg.type !== CTRL_STANDBY_ANSWER).length, r.sent.slice(0, n).filter((s) => s.msg.type !== CTRL_STANDBY_ANSWER).length, 'nothing more is probed or offered');
  r.sb.close();
  const one = rig([ETH0]);
  await one.advance(STANDBY_PROBE_MS * 3);
  assert.equal(one.sent.length, 0);
  assert.equal(one.sb.status(one.peer), undefined);
  one.sb.close();
});

test('the answering side: a probe is answered where it came from; an offer towards the offered address, at most every STANDBY_OFFER_ANSWER_MIN_MS', async () => {
  const r = rig([ETH0]);
  const other: Endpoint = { address: '198.51.100.30', port: 61000 };
  r.deliver({ type: CTRL_STANDBY_PROBE, id: 7 }, other);
  assert.deepEqual(r.sent.at(-1), { msg: { type: CTRL_STANDBY_ANSWER, id: 7 }, to: other });
  assert.equal(r.sb.status(r.peer)?.theirs?.endpoint, '198.51.100.30:61000');
  const victim: Endpoint = { address: '192.0.2.99', port: 80 };
  for (let i = 0; i < 50; i++) r.deliver({ type: CTRL_STANDBY_OFFER, id: 8, endpoint: victim });
  assert.equal(r.sent.filter((s) => s.to?.address === victim.address).length, 1, '50 offers, one answer');
  await r.advance(STANDBY_OFFER_ANSWER_MIN_MS);
  r.deliver({ type: CTRL_STANDBY_OFFER, id: 8, endpoint: victim });
  assert.equal(r.sent.filter((s) => s.to?.address === victim.address).length, 2);
  assert.equal(r.moves.length, 0, 'neither moves the tunnel');
  // Malformed control messages are counted and dropped.
  const receiveRaw = (b: Uint8Array) => (r.sb as unknown as { onControl(p: TunnelPeer, m: Buffer, f: Endpoint): void }).onControl(r.peer, Buffer.from(b), PEER_AT);
  receiveRaw(Uint8Array.of(0x01, 0, 0));
  receiveRaw(Uint8Array.of(0x09, 0, 0, 0, 0, 0, 0, 0));
  assert.equal(r.sb.stats.malformed, 2);
  r.sb.close();
});

test('standby-wire: every message reads back as written; truncated, padded and unknown ones are refused', () => {
  const ep = fc.record({
    address: fc.oneof(fc.integer({ min: 0, max: 0xffffffff }).map(formatIpv4), fc.uint8Array({ minLength: 16, maxLength: 16 }).map(formatIpv6)),
    port: fc.integer({ min: 1, max: 65535 }),
  });
  const msg: fc.Arbitrary<ControlMessage> = fc.oneof(
    fc.record({ type: fc.constantFrom(CTRL_STANDBY_PROBE, CTRL_STANDBY_ANSWER), id: fc.integer({ min: 0, max: 0xffffffff }) }),
    fc.record({ type: fc.constant(CTRL_STANDBY_OFFER), id: fc.integer({ min: 0, max: 0xffffffff }), endpoint: ep }),
  );
  fc.assert(fc.property(msg, (m) => {
    const b = marshalControl(m);
    assert.ok(b[0]! < 0x10, 'a control message never looks like an IP packet');
    assert.deepEqual(parseControl(b), JSON.parse(JSON.stringify(m)) as ControlMessage); // fast-check builds prototype-less objects
    assert.equal(parseControl(b.subarray(0, b.length - 1)), undefined);
    assert.equal(parseControl(Uint8Array.of(...b, 0)), undefined);
  }));
  fc.assert(fc.property(fc.uint8Array({ maxLength: 40 }), (b) => {
    const m = parseControl(b); // never throws
    if (m) assert.deepEqual(marshalControl(m), b);
  }));
});

test('parseDefaultRoutes: default routes by metric, once per interface; other routes, down ones and junk skipped', () => {
  const text = [
    'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT',
    'eth1\t00000000\t0102000A\t0003\t0\t0\t200\t00000000\t0\t0\t0',
    'eth0\t00000000\t0101000A\t0003\t0\t0\t0\t00000000\t0\t0\t0',
    'eth0\t0001000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0',
    'eth1\t00000000\t0103000A\t0003\t0\t0\t50\t00000000\t0\t0\t0',
    'wlan0\t00000000\t0104000A\t0002\t0\t0\t10\t00000000\t0\t0\t0',
    'garbage line',
  ].join('\n');
  assert.deepEqual(parseDefaultRoutes(text), [{ name: 'eth0', metric: 0 }, { name: 'eth1', metric: 50 }]);
  assert.deepEqual(parseDefaultRoutes(''), []);
});
