// NAT traversal in the overlay (simulated clock, MemoryNetwork + MemoryNat): B sits behind an address-and-port-
// dependent filtering NAT and keeps rendezvous with the public R; A (public) reaches B only with an ATTACH
// relayed by R; keepalives hold B's NAT mapping open; relays drop what they cannot or must not forward.
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryNetwork, type MemorySocket } from '../../agent/conn/memory-socket.js';
import { MemoryNat } from '../../agent/conn/memory-nat.js';
import { endpointKey, type Endpoint } from '../../agent/conn/socket.js';
import { generateIdentity, type Identity } from '../../agent/idloc/identity.js';
import { OverlayNode, hostCandidates, type OverlayNodeOptions } from '../../agent/overlay/node.js';
import { marshalOverlayMessage, type Destination } from '../../agent/overlay/codec.js';
import { RecordKind, createLocatorRecord, marshalRecord, type LocatorRecord } from '../../agent/overlay/records.js';
import { solvePuzzle } from '../../agent/overlay/puzzle.js';
import { SimScheduler } from '../../agent/base/scheduler.js';
import { OVERLAY_DEFAULT_TTL } from '../../agent/base/constants.js';
import type { ContactInfo } from '../../agent/overlay/bucket.js';

const DIFFICULTY = 4; // cheap puzzle for tests; every node and store uses the same value
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const text = (b: Uint8Array | undefined) => (b ? Buffer.from(b).toString() : undefined);
const bytes = (s: string) => new Uint8Array(Buffer.from(s));
const ids = (cs: ContactInfo[]) => cs.map((c) => hex(c.nodeId));

interface Host {
  identity: Identity;
  socket: MemorySocket;
  node: OverlayNode;
  ep: Endpoint;
}

function makeHost(sim: SimScheduler, socket: MemorySocket, extra: Partial<OverlayNodeOptions> = {}): Host {
  const identity = generateIdentity();
  const node = new OverlayNode({
    socket, identity, scheduler: sim, puzzleDifficulty: DIFFICULTY, replicateIntervalMs: 0,
    // no background lookups: B must not contact A by itself (that would open its NAT to A)
    refreshCheckIntervalMs: 1e9, republishIntervalMs: 1e9, ...extra,
  });
  socket.onMessage((msg, from) => { if (msg[0] === 0xd2) node.handleDatagram(msg, from); });
  return { identity, socket, node, ep: socket.local };
}

/** A routed ATTACH from `from` as raw bytes, for crafting what an honest node would never send. */
function attachBytes(from: Identity, dest: Destination[], o: { via?: Uint8Array[]; ttl?: number; txid?: bigint } = {}): Uint8Array {
  return marshalOverlayMessage({
    kind: 'attach', ttl: o.ttl ?? OVERLAY_DEFAULT_TTL, txid: o.txid ?? 7n, via: o.via ?? [], dest,
    sender: { nodeId: from.nodeId, publicKey: from.publicKey }, blob: bytes('crafted'),
  });
}
const toNode = (id: Uint8Array): Destination => ({ type: 'node', id });

describe('ATTACH through a rendezvous node to a host behind a NAT', () => {
  const sim = new SimScheduler(0);
  const net = new MemoryNetwork({ latencyMs: 0 });
  const nat = new MemoryNat(net, {
    publicAddress: '198.51.100.20', mapping: 'endpoint-independent', filtering: 'address-and-port-dependent',
    mappingTimeoutMs: 30_000, clock: sim,
  });
  let R!: Host, B!: Host, A!: Host, P!: Host;
  let bPublic!: Endpoint;
  const attaches: { blob: string; from: string }[] = [];
  const changes: string[][] = [];

  before(async () => {
    R = makeHost(sim, net.socket('203.0.113.10', 4500));
    void R.node.start([]);
    B = makeHost(sim, nat.socket('192.168.1.2', 4500), {
      rendezvousCount: 1, rendezvousKeepaliveMs: 10_000, onRendezvousChanged: (c) => changes.push(ids(c)),
      onAttach: (blob, from) => {
        attaches.push({ blob: text(blob)!, from: hex(from.nodeId) });
        if (text(blob) === 'no') return undefined;
        const answer = bytes(`answer to ${text(blob)}`);
        return text(blob)!.startsWith('slow') ? new Promise((r) => sim.setTimer(400, () => r(answer))) : answer;
      },
    });
    void B.node.start([R.ep]);
    await sim.advance(100);
    assert.equal(B.node.membership.joined, true);
    const published = B.node.publisher.publishIdentity(B.identity, [B.socket.local]);
    await sim.advance(100);
    assert.ok((await published).locator.ok);
    bPublic = nat.mappings()[0]!.outside;
    // A and P join after B is settled: B never sends A anything
    A = makeHost(sim, net.socket('203.0.113.20', 4500));
    P = makeHost(sim, net.socket('203.0.113.30', 4500));
    void A.node.start([R.ep]);
    void P.node.start([R.ep]);
    await sim.advance(5_000);
    assert.ok(A.node.membership.joined && P.node.membership.joined);
  });

  it('B keeps R as its rendezvous and its locator names R; rendezvousEndpoints finds R', async () => {
    assert.deepEqual(ids(B.node.rendezvous.current()), [R.identity.nodeIdHex]);
    assert.deepEqual(changes, [[R.identity.nodeIdHex]]);
    assert.equal(B.node.stats().rendezvous, 1);
    const found = A.node.resolver.resolveNodeId(B.identity.nodeId);
    await sim.advance(100);
    const loc = await found;
    assert.ok(loc?.value);
    assert.deepEqual(loc.value.rendezvous.map(hex), [R.identity.nodeIdHex]);
    const eps = A.node.rendezvousEndpoints(loc);
    await sim.advance(10);
    assert.deepEqual(await eps, [R.ep]);
    assert.ok(!nat.mappings()[0]!.permits.includes(endpointKey(A.ep)), 'B never contacted A');
  });

  it('a direct ATTACH from A is filtered by B\'s NAT; through R, B answers', async () => {
    const filtered = nat.stats.filtered;
    const direct = A.node.attacher.attach(B.identity.nodeId, [bPublic], bytes('direct'));
    await sim.advance(3_000);
    assert.equal(await direct, undefined);
    assert.equal(A.node.stats().attach.timeouts, 1);
    assert.ok(nat.stats.filtered >= filtered + 3, 'all three tries filtered');
    assert.equal(attaches.length, 0);

    const forwarded = R.node.stats().route.forwarded;
    const relayed = A.node.attacher.attach(B.identity.nodeId, [R.ep], bytes('hello'));
    await sim.advance(50);
    assert.equal(text(await relayed), 'answer to hello');
    assert.deepEqual(attaches, [{ blob: 'hello', from: A.identity.nodeIdHex }]);
    assert.equal(R.node.stats().route.forwarded, forwarded + 2, 'the request and the answer');

    // both at once: the unreachable direct endpoint and R; the answer comes back through R
    const both = A.node.attacher.attach(B.identity.nodeId, [bPublic, R.ep, R.ep], bytes('both'));
    await sim.advance(50);
    assert.equal(text(await both), 'answer to both');

    // R, which B's NAT lets in, reaches B directly: destinations [B], and B knows itself
    const direct2 = R.node.attacher.attach(B.identity.nodeId, [bPublic], bytes('from R'));
    await sim.advance(50);
    assert.equal(text(await direct2), 'answer to from R');
    assert.deepEqual(attaches.at(-1), { blob: 'from R', from: R.identity.nodeIdHex });
  });

  it('a source route: A sends through P with hops [R]; P and R forward, the answer returns along Via', async () => {
    const [pFwd, rFwd] = [P.node.stats().route.forwarded, R.node.stats().route.forwarded];
    const routed = A.node.attacher.attach(B.identity.nodeId, [], bytes('routed'), { routes: [{ to: P.ep, hops: [R.identity.nodeId] }] });
    await sim.advance(50);
    assert.equal(text(await routed), 'answer to routed');
    assert.deepEqual(attaches.at(-1), { blob: 'routed', from: A.identity.nodeIdHex });
    assert.equal(P.node.stats().route.forwarded, pFwd + 2, 'P carried the request and the answer');
    assert.equal(R.node.stats().route.forwarded, rFwd + 2, 'so did R');
    // Routes with no hops, too many hops or a hop that is not a NodeID are not sent; nothing else: nothing to do.
    const none = A.node.attacher.attach(B.identity.nodeId, [], bytes('x'), { routes: [{ to: P.ep, hops: [] }, { to: P.ep, hops: [Uint8Array.of(1)] }] });
    assert.equal(await none, undefined);
  });

  it('a refusal comes back as an error at once; retransmissions reach onAttach once', async () => {
    const refused = A.node.attacher.attach(B.identity.nodeId, [R.ep], bytes('no'));
    await sim.advance(50);
    assert.equal(await refused, undefined);
    assert.equal(A.node.stats().attach.refused, 1);
    assert.equal(B.node.stats().attach.refusedByUs, 1);

    const before = attaches.length;
    const slow = A.node.attacher.attach(B.identity.nodeId, [R.ep], bytes('slow'));
    await sim.advance(1_000); // A retransmits at 250 ms; B answers at 400 ms
    assert.equal(text(await slow), 'answer to slow');
    assert.equal(attaches.length, before + 1);
    assert.equal(B.node.stats().attach.duplicates, 1);
  });

  it('keepalives hold B\'s NAT mapping open; without them it expires and ATTACH fails, until they resume', async () => {
    await sim.advance(120_000); // four mapping timeouts; B PINGs R every 10 s
    const held = A.node.attacher.attach(B.identity.nodeId, [R.ep], bytes('later'));
    await sim.advance(50);
    assert.equal(text(await held), 'answer to later');

    B.node.rendezvous.setCount(0);
    assert.deepEqual(changes.at(-1), []);
    await sim.advance(60_000);
    const expired = nat.stats.expired;
    const lost = A.node.attacher.attach(B.identity.nodeId, [R.ep], bytes('lost'));
    await sim.advance(3_000);
    assert.equal(await lost, undefined);
    assert.ok(nat.stats.expired + nat.stats.noMapping > expired, 'R forwarded into a mapping that is gone');

    B.node.rendezvous.setCount(1);
    await sim.advance(100);
    assert.deepEqual(ids(B.node.rendezvous.current()), [R.identity.nodeIdHex], 'the bootstrap comes first');
    const back = A.node.attacher.attach(B.identity.nodeId, [R.ep], bytes('back'));
    await sim.advance(50);
    assert.equal(text(await back), 'answer to back');
  });

  it('rendezvousEndpoints: routing table first, else the rendezvous node\'s locator; unknown ones skipped', async () => {
    // E runs no node: only its locator is in the DHT
    const e = generateIdentity();
    const eSigner = { privateKey: e.privateKey, publicKey: e.publicKey, puzzleNonce: solvePuzzle(e.publicKey, DIFFICULTY) };
    const eLoc = createLocatorRecord(eSigner, { flags: 0, candidates: hostCandidates([{ address: '203.0.113.77', port: 4500 }]), rendezvous: [] }, { now: Date.now() });
    const stored = P.node.publisher.publish(marshalRecord(eLoc));
    await sim.advance(100);
    assert.ok((await stored).ok);
    const f = generateIdentity();
    const fSigner = { privateKey: f.privateKey, publicKey: f.publicKey, puzzleNonce: solvePuzzle(f.publicKey, DIFFICULTY) };
    const fLoc = createLocatorRecord(fSigner, {
      flags: 0, candidates: [], rendezvous: [e.nodeId, generateIdentity().nodeId, R.identity.nodeId, A.identity.nodeId],
    }, { now: Date.now() });
    const eps = A.node.rendezvousEndpoints(fLoc);
    await sim.advance(5_000);
    // E from its locator, nobody for the unknown id, R from the table; A itself: F's own endpoint, unknown
    assert.deepEqual((await eps).map(endpointKey), ['203.0.113.77:4500', endpointKey(R.ep)]);
  });

  it('a relay drops unknown NodeIDs, loops, expired TTLs and malformed datagrams, counting each; never throws', async () => {
    const x = generateIdentity();
    const xs = net.socket('203.0.113.99', 4500);
    const replies: Uint8Array[] = [];
    xs.onMessage((m) => replies.push(m));
    const r0 = R.node.stats();
    let rSent = 0;
    const rSend = R.socket.send.bind(R.socket);
    // requests R relays (method ATTACH, or the unknown 99 below), not its own answers (flags byte 6)
    R.socket.send = (m, to) => { if (m[6] === 0 && (m[8] === 5 || m[8] === 99)) rSent++; rSend(m, to); };

    const nobody = A.node.attacher.attach(generateIdentity().nodeId, [R.ep], bytes('anyone?'), { maxTries: 1 });
    await sim.advance(500);
    assert.equal(await nobody, undefined);
    assert.equal(R.node.stats().route.unroutable, r0.route.unroutable + 1);

    xs.send(attachBytes(x, [toNode(B.identity.nodeId)], { via: [R.identity.nodeId] }), R.ep); // R already on Via
    const noCookie = attachBytes(x, [toNode(x.nodeId)]);
    xs.send(noCookie, R.ep); // no cookie: the first hop's proof fails, and only the cookie answer goes back
    xs.send(attachBytes(x, [toNode(R.identity.nodeId), toNode(R.identity.nodeId)]), R.ep); // R, then R again
    xs.send(attachBytes(x, [toNode(B.identity.nodeId)], { ttl: 0 }), R.ep);
    xs.send(attachBytes(x, [{ type: 'resource', id: B.identity.nodeId }]), R.ep);
    const forged = attachBytes(x, [toNode(B.identity.nodeId)]);
    forged[50] ^= 1; // inside the SENDER's NodeID (its TLV starts at 44: 21 + Via count + 1 + 21): no longer H(key)
    xs.send(forged, R.ep);
    const garbage = [
      Buffer.of(0xd2, 0x49, 0x44, 0x4c, 1, 8, 0, 0, 5), // truncated header
      attachBytes(x, [toNode(B.identity.nodeId)]).subarray(0, 60), // cut short: length field disagrees
      (() => { const b = Buffer.from(attachBytes(x, [toNode(B.identity.nodeId)])); b[23] = 9; return b; })(), // bad destination type
      (() => { // valid route, but the TLVs run past the end (no readable SENDER)
        const b = Buffer.from(attachBytes(x, [toNode(B.identity.nodeId)]));
        b[46] = 0xff; // the SENDER TLV's length
        return b;
      })(),
    ];
    for (const g of garbage) xs.send(g, R.ep);
    await sim.advance(10);
    const r1 = R.node.stats();
    assert.equal(r1.route.loops, r0.route.loops + 2);
    assert.equal(r1.rejected['cookie-missing'] ?? 0, (r0.rejected['cookie-missing'] ?? 0) + 1);
    assert.equal(r1.route.ttlExpired, r0.route.ttlExpired + 1);
    assert.equal(r1.route.unroutable, r0.route.unroutable + 2);
    assert.equal(r1.rejected['sender-id-mismatch'] ?? 0, (r0.rejected['sender-id-mismatch'] ?? 0) + 1);
    assert.equal(r1.malformed, r0.malformed + garbage.length);
    assert.equal(r1.route.forwarded, r0.route.forwarded);
    assert.equal(rSent, 0, 'R relayed nothing of all that');
    assert.equal(replies.length, 1);
    assert.ok(replies[0]!.length <= noCookie.length, 'the cookie answer is no larger than the request');

    // a message kind R does not know cannot prove its originator at the first hop: dropped there
    const future = Buffer.from(attachBytes(x, [toNode(B.identity.nodeId)]));
    future[8] = 99; // method code 99
    const rMalformed = R.node.stats().malformed;
    xs.send(future, R.ep);
    await sim.advance(10);
    assert.equal(R.node.stats().route.forwarded, r1.route.forwarded);
    assert.equal(R.node.stats().malformed, rMalformed + 1);
    assert.equal(rSent, 0);

    // a flood from one address: up to the burst asked for a cookie, then rate limited; nothing relayed, and
    // never more bytes back than came in
    const flood = attachBytes(x, [toNode(generateIdentity().nodeId)]);
    const before = { replies: replies.length, cookie: R.node.stats().rejected['cookie-missing'] ?? 0 };
    for (let i = 0; i < 150; i++) xs.send(flood, R.ep);
    await sim.advance(10);
    const r2 = R.node.stats();
    assert.ok(r2.route.rateLimited >= 50, `rate limited: ${r2.route.rateLimited}`);
    assert.equal((r2.rejected['cookie-missing'] ?? 0) - before.cookie + r2.route.rateLimited - r1.route.rateLimited, 150);
    const back = replies.slice(before.replies).reduce((n, b) => n + b.length, 0);
    assert.ok(back <= 150 * flood.length, `${back} bytes back for ${150 * flood.length} in`);
    assert.equal(rSent, 0);
  });
});

describe('rendezvous maintenance', () => {
  it('prefers the bootstrap, replaces a rendezvous that stops answering, and keeps the locator current', async () => {
    const sim = new SimScheduler(0);
    const net = new MemoryNetwork({ latencyMs: 0 });
    const nat = new MemoryNat(net, { publicAddress: '198.51.100.40', mappingTimeoutMs: 30_000, clock: sim });
    const R = makeHost(sim, net.socket('203.0.113.10', 4500));
    const P = makeHost(sim, net.socket('203.0.113.11', 4500));
    const Q = makeHost(sim, net.socket('203.0.113.12', 4500));
    void R.node.start([]);
    void P.node.start([R.ep]);
    void Q.node.start([R.ep]);
    await sim.advance(3_000);
    const changes: string[][] = [];
    const B = makeHost(sim, nat.socket('192.168.1.2', 4500), {
      rendezvousCount: 2, rendezvousKeepaliveMs: 5_000, onRendezvousChanged: (c) => changes.push(ids(c)),
    });
    // P and Q are public too: as the agent does with the members that advertise relaying.
    B.node.rendezvous.prefer([P.ep, Q.ep]);
    void B.node.start([R.ep]);
    await sim.advance(3_000);
    const published = B.node.publisher.publishIdentity(B.identity, [B.socket.local]);
    await sim.advance(100);
    await published;
    const first = ids(B.node.rendezvous.current());
    assert.equal(first.length, 2);
    assert.equal(first[0], R.identity.nodeIdHex, 'the bootstrap first');
    const ownLocator = () => (B.node.store.get(B.identity.nodeId, RecordKind.Locator, Date.now())[0] as LocatorRecord).value!.rendezvous.map(hex);
    assert.deepEqual(ownLocator(), first);

    const [gone, other] = first[1] === P.identity.nodeIdHex ? [P, Q] : [Q, P];
    gone.node.close();
    await gone.socket.close();
    await sim.advance(10_000); // the next keepalive fails (1.75 s of tries), the other takes its place
    assert.deepEqual(ids(B.node.rendezvous.current()), [R.identity.nodeIdHex, other.identity.nodeIdHex]);
    assert.deepEqual(changes.at(-1), [R.identity.nodeIdHex, other.identity.nodeIdHex]);
    await sim.advance(100);
    assert.deepEqual(ownLocator(), [R.identity.nodeIdHex, other.identity.nodeIdHex], 're-stored with the new set');
    const atR = R.node.store.get(B.identity.nodeId, RecordKind.Locator, Date.now())[0] as LocatorRecord;
    assert.deepEqual(atR.value!.rendezvous.map(hex), [R.identity.nodeIdHex, other.identity.nodeIdHex], 'and at the DHT');

    const updated = B.node.publisher.updateLocator([{ address: '192.168.1.2', port: 4501 }]);
    await sim.advance(100);
    assert.ok((await updated).ok);
    assert.deepEqual(ownLocator(), [R.identity.nodeIdHex, other.identity.nodeIdHex], 'updateLocator names them too');

    B.node.rendezvous.setCount(1);
    assert.deepEqual(ids(B.node.rendezvous.current()), [R.identity.nodeIdHex]);
    B.node.rendezvous.setCount(0);
    await sim.advance(100);
    assert.deepEqual(ownLocator(), []);
    const pings = R.node.stats().rpc.requestsHandled;
    await sim.advance(30_000);
    assert.equal(R.node.stats().rpc.requestsHandled, pings, 'no keepalives any more');
    for (const h of [R, other, B]) { h.node.close(); await h.socket.close(); }
  });

  it('keeps only members known public (bootstraps, preferred) once one is in the table, and lets go of others when told who is public', async () => {
    const sim = new SimScheduler(0);
    const net = new MemoryNetwork({ latencyMs: 0 });
    const R = makeHost(sim, net.socket('203.0.113.10', 4500));
    const P = makeHost(sim, net.socket('203.0.113.11', 4500));
    void R.node.start([]);
    void P.node.start([R.ep]);
    await sim.advance(3_000);
    const B = makeHost(sim, net.socket('203.0.113.20', 4500), { rendezvousCount: 2, rendezvousKeepaliveMs: 5_000 });
    void B.node.start([R.ep]);
    await sim.advance(3_000);
    assert.ok(B.node.kad.table.get(P.identity.nodeId), 'P is in B\'s table');
    assert.deepEqual(ids(B.node.rendezvous.current()), [R.identity.nodeIdHex], 'P (not known public) is not taken, though one more is wanted');
    B.node.rendezvous.prefer([P.ep]);
    await sim.advance(100);
    assert.deepEqual(ids(B.node.rendezvous.current()).sort(), [R.identity.nodeIdHex, P.identity.nodeIdHex].sort(), 'once P is known public');
    B.node.rendezvous.prefer([]);
    await sim.advance(100);
    assert.deepEqual(ids(B.node.rendezvous.current()), [R.identity.nodeIdHex], 'P let go when no longer named');
    for (const h of [R, P, B]) { h.node.close(); await h.socket.close(); }
  });
});
