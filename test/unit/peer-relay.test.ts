// Peer relay frames and the relay's rules: round trip and fuzzing of the wire format; a relay forwards
// between a sender and its rendezvous client both ways and names the sender only by handle; it refuses
// unknown clients, handles used by anyone but their client, traffic over a source's byte rate, and
// everything while relaying is off; a client accepts FROM_CLIENT only on routes it opened.
import { test } from 'node:test';
import { SimScheduler } from '../../agent/base/scheduler.js';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  MSG_PEER_RELAY, PR_FROM_CLIENT, PR_FROM_PEER, PR_TO_CLIENT, PR_TO_PEER, marshalPeerRelay, newPeerRelayFrame, parsePeerRelay,
} from '../../agent/nat/peer-relay-wire.js';
import { PeerRelayServer } from '../../agent/nat/peer-relay-server.js';
import { PeerRelayClient } from '../../agent/nat/peer-relay-client.js';
import { classifyDatagram } from '../../agent/nat/demux.js';
import { NODE_ID_BYTES } from '../../agent/base/constants.js';
import { endpointKey, type Endpoint } from '../../agent/conn/socket.js';

const id = (b: number) => new Uint8Array(NODE_ID_BYTES).fill(b);

test('frames round-trip, classify as peer-relay, and every truncation below the header is refused', () => {
  fc.assert(fc.property(
    fc.constantFrom(PR_TO_CLIENT, PR_FROM_PEER, PR_TO_PEER, PR_FROM_CLIENT), fc.uint8Array({ minLength: NODE_ID_BYTES, maxLength: NODE_ID_BYTES }),
    fc.nat({ max: 0xffffffff }), fc.uint8Array({ minLength: 1, maxLength: 300 }),
    (kind, nodeId, handle, payload) => {
      const byNode = kind === PR_TO_CLIENT || kind === PR_FROM_CLIENT;
      const b = marshalPeerRelay(kind, byNode ? nodeId : handle, payload);
      assert.equal(classifyDatagram(b[0]), 'peer-relay');
      const f = newPeerRelayFrame();
      assert.ok(parsePeerRelay(b, f));
      assert.equal(f.kind, kind);
      if (byNode) assert.deepEqual([...f.nodeId], [...nodeId]);
      else assert.equal(f.handle, handle);
      assert.deepEqual([...f.payload], [...payload]);
      const header = b.length - payload.length;
      for (let n = 0; n <= header; n++) assert.equal(parsePeerRelay(b.subarray(0, n), newPeerRelayFrame()), false);
    }), { numRuns: 500 });
});

test('arbitrary bytes never throw, and what parses is consistent', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 80 }), fc.boolean(), (b, framed) => {
    if (framed && b.length > 0) b[0] = MSG_PEER_RELAY;
    const f = newPeerRelayFrame();
    if (!parsePeerRelay(b, f)) return;
    assert.ok([PR_TO_CLIENT, PR_FROM_PEER, PR_TO_PEER, PR_FROM_CLIENT].includes(f.kind));
    assert.ok(f.payload.length >= 1);
  }), { numRuns: 3000 });
  assert.throws(() => marshalPeerRelay(9, 1, Uint8Array.of(1)), /unknown peer relay kind/);
  assert.throws(() => marshalPeerRelay(PR_TO_CLIENT, 1, Uint8Array.of(1)), /20-byte id/);
  assert.throws(() => marshalPeerRelay(PR_TO_PEER, 1, new Uint8Array(0)), /payload of 0 bytes/);
});

interface Sent { bytes: Uint8Array; to: Endpoint }

function relay(clients: Map<string, Endpoint>, opts: {
  enabled?: () => boolean; rate?: number; burst?: number; clock?: SimScheduler; verified?: (e: Endpoint) => boolean;
} = {}) {
  const sent: Sent[] = [];
  const server = new PeerRelayServer({
    send: (bytes, to) => sent.push({ bytes: Uint8Array.from(bytes), to }),
    rendezvousClientEndpoint: (n) => clients.get(Buffer.from(n).toString('hex')),
    peerVerified: opts.verified ?? (() => true),
    enabled: opts.enabled ?? (() => true),
    ...(opts.clock ? { clock: opts.clock } : {}),
    ...(opts.rate !== undefined ? { rateBytesPerSecond: opts.rate, burstBytes: opts.burst ?? opts.rate } : {}),
  });
  return { server, sent };
}

const R: Endpoint = { address: '203.0.113.1', port: 4500 };
const A: Endpoint = { address: '198.51.100.7', port: 40001 };
const B: Endpoint = { address: '198.51.100.9', port: 51000 };

test('a relay carries a sender\'s datagrams to its client and the client\'s answers back, naming the sender by handle', () => {
  const clients = new Map([[Buffer.from(id(0xbb)).toString('hex'), B]]);
  const { server, sent } = relay(clients);
  // Two agents' client sides, wired through the relay by hand.
  const gotA: { msg: Buffer; from: Endpoint }[] = [];
  const gotB: { msg: Buffer; from: Endpoint }[] = [];
  const ca = new PeerRelayClient((b, to) => { assert.deepEqual(to, R); server.handleDatagram(b, A); }, (msg, from) => gotA.push({ msg: Buffer.from(msg), from }));
  const cb = new PeerRelayClient((b, to) => { assert.deepEqual(to, R); server.handleDatagram(b, B); }, (msg, from) => gotB.push({ msg: Buffer.from(msg), from }));
  const vB = ca.towardsClient(R, id(0xbb));
  assert.ok(PeerRelayClient.isVirtual(vB));
  assert.equal(ca.relayOf(vB), endpointKey(R));
  assert.equal(ca.send(Buffer.from('hello b'), vB), true);
  assert.equal(sent.length, 1);
  assert.deepEqual(sent[0]!.to, B);
  cb.handleDatagram(sent[0]!.bytes, R);
  assert.equal(gotB.length, 1);
  assert.equal(gotB[0]!.msg.toString(), 'hello b');
  const vA = gotB[0]!.from;
  assert.ok(PeerRelayClient.isVirtual(vA) && cb.relayOf(vA) === endpointKey(R));
  // b answers to the virtual endpoint it learnt; the relay sends it to a's address.
  cb.send(Buffer.from('hello a'), vA);
  assert.equal(sent.length, 2);
  assert.deepEqual(sent[1]!.to, A);
  ca.handleDatagram(sent[1]!.bytes, R);
  assert.equal(gotA.length, 1);
  assert.equal(gotA[0]!.msg.toString(), 'hello a');
  assert.equal(endpointKey(gotA[0]!.from), endpointKey(vB), 'the answer arrives from the endpoint a sends to');
  // The same sender keeps its handle: b sees one virtual endpoint for it.
  ca.send(Buffer.from('again'), vB);
  cb.handleDatagram(sent[2]!.bytes, R);
  assert.equal(endpointKey(gotB[1]!.from), endpointKey(vA));
  assert.equal(server.stats.toClient, 2);
  assert.equal(server.stats.toPeer, 1);
  assert.equal(server.handleCount, 1);
  // Not virtual: left to the caller.
  assert.equal(ca.send(Buffer.from('x'), A), false);
});

test('a relay refuses unknown clients, foreign handles, traffic over the rate, and all while relaying is off', () => {
  const clients = new Map([[Buffer.from(id(0xbb)).toString('hex'), B]]);
  let on = true;
  const clock = new SimScheduler(0);
  const { server, sent } = relay(clients, { enabled: () => on, rate: 1000, burst: 1000, clock });
  server.handleDatagram(marshalPeerRelay(PR_TO_CLIENT, id(0xcc), Uint8Array.of(1)), A);
  assert.equal(server.stats.unknownClient, 1);
  // The client itself cannot relay to itself (a loop).
  server.handleDatagram(marshalPeerRelay(PR_TO_CLIENT, id(0xbb), Uint8Array.of(1)), B);
  assert.equal(server.stats.unknownClient, 2);
  server.handleDatagram(marshalPeerRelay(PR_TO_CLIENT, id(0xbb), Uint8Array.of(1)), A);
  assert.equal(sent.length, 1);
  const f = newPeerRelayFrame();
  assert.ok(parsePeerRelay(sent[0]!.bytes, f) && f.kind === PR_FROM_PEER);
  // Someone other than the client uses the handle: refused (a relay is not an open proxy to a's address).
  server.handleDatagram(marshalPeerRelay(PR_TO_PEER, f.handle, Uint8Array.of(2)), { address: '198.51.100.66', port: 1 });
  assert.equal(server.stats.foreignHandle, 1);
  server.handleDatagram(marshalPeerRelay(PR_TO_PEER, (f.handle + 1) >>> 0, Uint8Array.of(2)), B);
  assert.equal(server.stats.unknownHandle, 1);
  // Frames meant for clients are not the relay's to take.
  server.handleDatagram(marshalPeerRelay(PR_FROM_CLIENT, id(0xbb), Uint8Array.of(2)), A);
  server.handleDatagram(Uint8Array.of(MSG_PEER_RELAY, 1, 2), A);
  assert.equal(server.stats.malformed, 2);
  assert.equal(sent.length, 1);
  // Over the byte rate: 1000 bytes/s, burst 1000.
  const big = new Uint8Array(600);
  server.handleDatagram(marshalPeerRelay(PR_TO_CLIENT, id(0xbb), big), A);
  server.handleDatagram(marshalPeerRelay(PR_TO_CLIENT, id(0xbb), big), A);
  assert.equal(server.stats.rateLimited, 1);
  clock.step(1000);
  server.handleDatagram(marshalPeerRelay(PR_TO_CLIENT, id(0xbb), big), A);
  assert.equal(server.stats.rateLimited, 1, 'the bucket refills with time');
  on = false;
  server.handleDatagram(marshalPeerRelay(PR_TO_CLIENT, id(0xbb), Uint8Array.of(1)), A);
  assert.equal(server.stats.disabled, 1);
  assert.equal(sent.length, 3);
});

test('a client takes FROM_CLIENT only on routes it opened, and counts what it drops', () => {
  const got: Endpoint[] = [];
  const c = new PeerRelayClient(() => undefined, (_m, from) => got.push(from));
  c.handleDatagram(marshalPeerRelay(PR_FROM_CLIENT, id(0xbb), Uint8Array.of(1)), R);
  assert.equal(c.stats.unsolicited, 1);
  c.towardsClient(R, id(0xbb));
  c.handleDatagram(marshalPeerRelay(PR_FROM_CLIENT, id(0xbb), Uint8Array.of(1)), { address: '203.0.113.99', port: 4500 });
  assert.equal(c.stats.unsolicited, 2, 'the same NodeID through another relay is another route');
  c.handleDatagram(marshalPeerRelay(PR_FROM_CLIENT, id(0xbb), Uint8Array.of(1)), R);
  c.handleDatagram(marshalPeerRelay(PR_TO_PEER, 5, Uint8Array.of(1)), R);
  assert.equal(c.stats.malformed, 1);
  assert.equal(got.length, 1);
  assert.equal(c.send(Uint8Array.of(1), { address: '100::ffff:ffff', port: 1 }), true, 'a virtual endpoint never leaks to the socket');
  assert.equal(c.stats.staleRoute, 1);
});

test('a relay forwards only between verified peers and its clients: forged frames reach no third party', (t) => {
  const clients = new Map([[Buffer.from(id(0xbb)).toString('hex'), B]]);
  const verified = new Set([endpointKey(A)]);
  const { server, sent } = relay(clients, { verified: (e) => verified.has(endpointKey(e)) });
  const V: Endpoint = { address: '192.0.2.77', port: 9 }; // a victim: spoofed as the source
  let forged = 0;
  for (let i = 0; i < 500; i++) {
    const src = i % 2 === 0 ? V : { address: `198.51.100.${100 + (i % 50)}`, port: 1000 + i };
    // to our client, from a source that never proved itself; to a NodeID that is no client of ours
    server.handleDatagram(marshalPeerRelay(PR_TO_CLIENT, id(0xbb), new Uint8Array(100 + i)), src);
    server.handleDatagram(marshalPeerRelay(PR_TO_CLIENT, id(i % 0xba), new Uint8Array(100)), A);
    forged += 2;
  }
  assert.equal(sent.length, 0, 'nothing relayed');
  assert.equal(server.stats.unverifiedPeer, 500);
  assert.equal(server.stats.unknownClient, 500);
  // A verified peer's handle lapses when its proof does: the client's answer goes nowhere.
  sent.length = 0;
  server.handleDatagram(marshalPeerRelay(PR_TO_CLIENT, id(0xbb), Uint8Array.of(1)), A);
  const f = newPeerRelayFrame();
  assert.ok(parsePeerRelay(sent[0]!.bytes, f) && f.kind === PR_FROM_PEER);
  verified.clear();
  server.handleDatagram(marshalPeerRelay(PR_TO_PEER, f.handle, Uint8Array.of(2)), B);
  assert.equal(server.stats.unverifiedPeer, 501);
  assert.equal(sent.length, 1, 'only the frame to the client, while A was verified');
  t.diagnostic(`forged frames: ${forged} (spoofed or unverified sources, unknown NodeIDs); relayed to a third party: 0`);
});

test('a client proves its source to a relay before its first frame, holding frames meanwhile, and again while it sends', async () => {
  const clock = new SimScheduler(0);
  const out: { bytes: Uint8Array; to: Endpoint }[] = [];
  const asked: Endpoint[] = [];
  let settle!: () => void;
  const c = new PeerRelayClient((b, to) => out.push({ bytes: b, to }), () => undefined);
  c.verifyRelaysWith((r) => { asked.push(r); return new Promise<void>((res) => { settle = res; }); }, () => clock.now());
  const v = c.towardsClient(R, id(0xbb));
  for (let i = 0; i < 12; i++) c.send(Uint8Array.of(i + 1), v);
  assert.equal(asked.length, 1);
  assert.equal(out.length, 0, 'held until the relay knows us');
  assert.equal(c.stats.heldOverflow, 12 - 8);
  settle();
  await new Promise((r) => setImmediate(r));
  assert.equal(out.length, 8);
  c.send(Uint8Array.of(99), v);
  assert.equal(out.length, 9, 'once verified, frames go at once');
  clock.step(15_000);
  c.send(Uint8Array.of(100), v);
  assert.equal(asked.length, 2, 'proved again while the route is used');
  assert.equal(out.length, 10, 'without holding frames the second time');
  // A second client behind the same relay shares the proof.
  c.send(Uint8Array.of(1), c.towardsClient(R, id(0xcc)));
  assert.equal(asked.length, 2);
  assert.equal(out.length, 11);
});

test('forged FROM_PEER frames cannot push out a route the client opened', (t) => {
  const out: Endpoint[] = [];
  const c = new PeerRelayClient((_b, to) => out.push(to), () => undefined);
  const v = c.towardsClient(R, id(0xbb));
  const forged = 4096 + 500;
  for (let h = 0; h < forged; h++) c.handleDatagram(marshalPeerRelay(PR_FROM_PEER, h, Uint8Array.of(1)), R);
  assert.equal(c.send(Uint8Array.of(1), v), true);
  assert.equal(c.stats.staleRoute, 0, 'the opened route survived');
  assert.deepEqual(out, [R]);
  assert.equal(c.routes, 4096 + 1, 'the learned routes are bounded on their own');
  t.diagnostic(`forged FROM_PEER frames: ${forged}; opened routes lost: 0`);
});
