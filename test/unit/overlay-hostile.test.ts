// The overlay against an attacker who crafts raw datagrams (simulated clock, MemoryNetwork): spoofed PINGs,
// Via entries and LEAVEs leave a victim's routing-table entry, its endpoint and the FIND_NODE answers about
// it unchanged; keys without a puzzle and crowds from one address stay out of the table; and nothing the
// attacker sends from an address that never proved itself gets more bytes back than it sent.
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryNetwork, type MemorySocket } from '../../agent/conn/memory-socket.js';
import { endpointKey, type Endpoint } from '../../agent/conn/socket.js';
import { generateIdentity, type Identity } from '../../agent/idloc/identity.js';
import { OverlayNode } from '../../agent/overlay/node.js';
import {
  marshalOverlayMessage, parseOverlayMessage, ERR_COOKIE_REQUIRED, type Body, type OverlayMessage, type Sender,
} from '../../agent/overlay/codec.js';
import { COOKIE_ANSWER_BYTES } from '../../agent/overlay/node-wire.js';
import { solvePuzzle } from '../../agent/overlay/puzzle.js';
import { ed25519Signer } from '../../agent/base/ed25519.js';
import { SimScheduler } from '../../agent/base/scheduler.js';
import { OVERLAY_DEFAULT_TTL, ROUTING_MAX_PER_IP, ROUTING_MAX_PER_SUBNET } from '../../agent/base/constants.js';
import { lookup } from '../../agent/overlay/lookup.js';
import { networkOf } from '../../agent/overlay/network-of.js';

const DIFFICULTY = 4;
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

interface Host { identity: Identity; socket: MemorySocket; node: OverlayNode; ep: Endpoint }

function makeHost(sim: SimScheduler, net: MemoryNetwork, address: string, port = 4500, identity = generateIdentity(),
  puzzleNonce?: bigint): Host {
  const socket = net.socket(address, port);
  const node = new OverlayNode({
    socket, identity, scheduler: sim, puzzleDifficulty: DIFFICULTY, replicateIntervalMs: 0, refreshCheckIntervalMs: 1e9,
    republishIntervalMs: 1e9, ...(puzzleNonce !== undefined ? { puzzleNonce } : {}),
  });
  socket.onMessage((msg, from) => { if (msg[0] === 0xd2) node.handleDatagram(msg, from); });
  return { identity, socket, node, ep: socket.local };
}

/** An attacker on its own address: crafts datagrams, signs them with any key it holds, and counts bytes. */
class Attacker {
  readonly socket: MemorySocket;
  readonly inbox: { bytes: Uint8Array; from: Endpoint }[] = [];
  sent = 0;
  received = 0;
  tried = 0;
  constructor(net: MemoryNetwork, address: string, readonly key = generateIdentity()) {
    this.socket = net.socket(address, 4500);
    this.socket.onMessage((bytes, from) => { this.inbox.push({ bytes: Uint8Array.from(bytes), from }); this.received += bytes.length; });
  }

  get self(): Sender {
    return { nodeId: this.key.nodeId, publicKey: this.key.publicKey, puzzleNonce: solvePuzzle(this.key.publicKey, DIFFICULTY) };
  }

  send(to: Endpoint, body: Body, o: { sender?: Sender; signWith?: Identity; cookie?: Uint8Array; padTo?: number;
    via?: Uint8Array[]; dest?: OverlayMessage['dest']; txid?: bigint } = {}): Uint8Array {
    const m = {
      ttl: OVERLAY_DEFAULT_TTL, txid: o.txid ?? BigInt(1000 + this.tried), via: o.via ?? [], dest: o.dest ?? [],
      sender: o.sender ?? this.self, ...body, ...(o.cookie ? { cookie: o.cookie } : {}), ...(o.padTo ? { padTo: o.padTo } : {}),
    } as OverlayMessage;
    const b = marshalOverlayMessage(m, ed25519Signer((o.signWith ?? this.key).privateKey));
    this.sendRaw(b, to);
    return b;
  }

  sendRaw(b: Uint8Array, to: Endpoint): void {
    this.tried++;
    this.sent += b.length;
    this.socket.send(b, to);
  }

  /** The cookie `to` mints for our address, got the honest way (a padded, signed PING). */
  async cookieFrom(sim: SimScheduler, to: Endpoint): Promise<Uint8Array> {
    this.send(to, { kind: 'ping' }, { padTo: COOKIE_ANSWER_BYTES });
    await sim.advance(5);
    for (const x of this.inbox.slice().reverse()) {
      const m = parseOverlayMessage(x.bytes);
      if (m?.kind === 'error' && m.code === ERR_COOKIE_REQUIRED && m.cookie) return Uint8Array.from(m.cookie);
    }
    throw new Error('no cookie');
  }
}

describe('overlay: routing state follows only proven keys', () => {
  const sim = new SimScheduler(0);
  const net = new MemoryNetwork({ latencyMs: 0 });
  let H!: Host, V!: Host, W!: Host;
  let M!: Attacker;

  before(async () => {
    H = makeHost(sim, net, '203.0.113.10');
    void H.node.start([]);
    V = makeHost(sim, net, '203.0.113.20');
    W = makeHost(sim, net, '198.51.100.30');
    void V.node.start([H.ep]);
    void W.node.start([H.ep]);
    await sim.advance(3_000);
    M = new Attacker(net, '192.0.2.66');
    assert.equal(endpointKey(H.node.kad.table.get(V.identity.nodeId)!.endpoint), endpointKey(V.ep));
  });

  const victimAtH = () => endpointKey(H.node.kad.table.get(V.identity.nodeId)?.endpoint ?? { address: 'gone', port: 0 });
  /** What H answers W's FIND_NODE for V with, about V. */
  async function findNodeAnswerAboutV(): Promise<string[]> {
    const asked = W.node.kad.call({ nodeId: H.identity.nodeId, publicKey: H.identity.publicKey, endpoint: H.ep },
      { type: 'find_node', sender: W.node.kad.self, target: V.identity.nodeId });
    await sim.advance(10);
    const r = await asked;
    assert.ok(r && r.type === 'nodes');
    return r.contacts.filter((c) => hex(c.nodeId) === V.identity.nodeIdHex).map((c) => endpointKey(c.endpoint));
  }

  it('a PING claiming the victim, from the attacker\'s address, moves nothing (no cookie, a cookie, a replay)', async () => {
    const cookie = await M.cookieFrom(sim, H.ep);
    const claim: Sender = { nodeId: V.identity.nodeId, publicKey: V.identity.publicKey, puzzleNonce: V.node.puzzleNonce };
    const before = M.tried;
    M.send(H.ep, { kind: 'ping' }, { sender: claim }); // no cookie, signed by the attacker
    M.send(H.ep, { kind: 'ping' }, { sender: claim, padTo: COOKIE_ANSWER_BYTES });
    M.send(H.ep, { kind: 'ping' }, { sender: claim, cookie }); // our own cookie: signature is not V's
    M.send(H.ep, { kind: 'find-node', target: V.identity.nodeId }, { sender: claim, cookie });
    // a real PING of V's, captured on its way to H and replayed from the attacker's address
    let captured: Uint8Array | undefined;
    const send = V.socket.send.bind(V.socket);
    V.socket.send = (b, to) => { if (!captured && to.address === H.ep.address && b[8] === 1) captured = Uint8Array.from(b); send(b, to); };
    await V.node.kad.ping({ nodeId: H.identity.nodeId, publicKey: H.identity.publicKey, endpoint: H.ep });
    V.socket.send = send;
    assert.ok(captured);
    M.sendRaw(captured, H.ep);
    await sim.advance(10);
    const forged = M.tried - before;
    const r = H.node.stats().rejected;
    assert.ok((r['bad-signature'] ?? 0) >= 2, JSON.stringify(r));
    assert.ok((r['cookie-invalid'] ?? 0) >= 1, 'the replay carries a cookie for V\'s address, not ours');
    assert.equal(victimAtH(), endpointKey(V.ep), 'the victim\'s entry still points at the victim');
    assert.deepEqual(await findNodeAnswerAboutV(), [endpointKey(V.ep)], 'FIND_NODE answers still give the true endpoint');
    console.log(`# spoofed PING/FIND_NODE: ${forged} forged or replayed, 0 got through`);
  });

  it('a Via entry naming the victim is not evidence of where it is', async () => {
    const cookie = await M.cookieFrom(sim, H.ep);
    const before = M.tried;
    // routed to H "through" V: from the attacker's address, which V never proved itself at
    M.send(H.ep, { kind: 'attach', blob: new Uint8Array(8) }, { via: [V.identity.nodeId], dest: [{ type: 'node', id: H.identity.nodeId }] });
    // routed through H to W, with V on the Via list and our own cookie: H is not the first hop
    M.send(H.ep, { kind: 'attach', blob: new Uint8Array(8) }, { via: [V.identity.nodeId], cookie, dest: [{ type: 'node', id: W.identity.nodeId }] });
    await sim.advance(10);
    assert.equal(H.node.endpointOfNode(V.identity.nodeId) && endpointKey(H.node.endpointOfNode(V.identity.nodeId)!), endpointKey(V.ep));
    assert.equal(H.node.rendezvousClientEndpoint(V.identity.nodeId) === undefined
      || endpointKey(H.node.rendezvousClientEndpoint(V.identity.nodeId)!) === endpointKey(V.ep), true);
    assert.equal(H.node.stats().route.forwarded, 0, 'nothing forwarded for an unproven hop');
    assert.ok((H.node.stats().rejected['routed-from-unproven-hop'] ?? 0) >= 1);
    console.log(`# spoofed Via: ${M.tried - before} forged, 0 got through`);
  });

  it('a LEAVE naming the victim (unsigned, signed by another key, replayed) evicts nothing', async () => {
    const cookie = await M.cookieFrom(sim, H.ep);
    const claim: Sender = { nodeId: V.identity.nodeId, publicKey: V.identity.publicKey, puzzleNonce: V.node.puzzleNonce };
    const before = M.tried;
    M.sendRaw(marshalOverlayMessage({ kind: 'leave', ttl: 8, txid: 5n, via: [], dest: [], sender: claim, padTo: COOKIE_ANSWER_BYTES }), H.ep);
    M.send(H.ep, { kind: 'leave' }, { sender: claim, cookie });
    M.send(H.ep, { kind: 'leave' }, { sender: claim, cookie, signWith: V.identity }); // V's signature, but from our address
    await sim.advance(10);
    assert.equal(victimAtH(), endpointKey(V.ep));
    // the last one is a real LEAVE of V's key: it only counts from where V proved itself
    assert.ok((H.node.stats().rejected['leave-unknown-sender'] ?? 0) >= 1);
    console.log(`# forged LEAVE: ${M.tried - before} tried, 0 got through`);
  });

  it('a key without a NodeID puzzle, and crowds from one address, stay out of the table', async () => {
    const noPuzzle = generateIdentity();
    let nonce = 0n;
    while (solvePuzzle(noPuzzle.publicKey, DIFFICULTY, nonce) === nonce) nonce++; // a nonce that does not solve it
    const lazy = makeHost(sim, net, '198.51.100.77', 4500, noPuzzle, nonce);
    void lazy.node.start([H.ep]);
    await sim.advance(3_000);
    assert.equal(H.node.kad.table.get(noPuzzle.nodeId), undefined, 'no puzzle: not admitted');
    assert.ok((H.node.stats().rejected['sender-no-puzzle'] ?? 0) >= 1);
    // twelve keys on one public address, every one with a puzzle: a bucket takes ROUTING_MAX_PER_IP of them
    const crowd = Array.from({ length: 12 }, (_, i) => makeHost(sim, net, '198.51.100.88', 5000 + i));
    for (const c of crowd) void c.node.start([H.ep]);
    await sim.advance(5_000);
    const perBucket = new Map<number, number>();
    for (const c of H.node.kad.table.all()) {
      if (c.endpoint.address !== '198.51.100.88') continue;
      const b = H.node.kad.table.bucketIndex(c.nodeId);
      perBucket.set(b, (perBucket.get(b) ?? 0) + 1);
    }
    for (const [b, n] of perBucket) assert.ok(n <= ROUTING_MAX_PER_IP, `bucket ${b} holds ${n} from one address`);
    assert.ok(H.node.kad.table.stats.networkLimited > 0 || [...perBucket.values()].every((n) => n <= ROUTING_MAX_PER_IP));
    console.log(`# one address, 12 keys: ${[...perBucket.values()].reduce((a, b) => a + b, 0)} admitted, at most ${ROUTING_MAX_PER_IP} per bucket`);
  });

  it('amplification budget: bytes back to an address that never proved itself <= bytes it sent, every kind', async () => {
    const X = new Attacker(net, '192.0.2.99');
    const bogus = new Uint8Array(16).fill(9);
    const bodies: Body[] = [
      { kind: 'ping' }, { kind: 'find-node', target: V.identity.nodeId }, { kind: 'fetch', resource: V.identity.nodeId, recordKind: 1 },
      { kind: 'store', resource: V.identity.nodeId, recordKind: 1, records: [new Uint8Array(40)] }, { kind: 'leave' },
      { kind: 'attach', blob: new Uint8Array(60) },
    ];
    for (const body of bodies) {
      for (const o of [{}, { padTo: COOKIE_ANSWER_BYTES }, { cookie: bogus }, { cookie: bogus, padTo: COOKIE_ANSWER_BYTES }]) {
        X.send(H.ep, body, o);
        X.send(H.ep, body, { ...o, dest: [{ type: 'node', id: W.identity.nodeId }] }); // routed through H
      }
    }
    for (let i = 0; i < 200; i++) X.send(H.ep, { kind: 'find-node', target: V.identity.nodeId }, { padTo: COOKIE_ANSWER_BYTES });
    await sim.advance(10);
    assert.ok(X.received <= X.sent, `${X.received} bytes back for ${X.sent} sent`);
    for (const x of X.inbox) {
      const m = parseOverlayMessage(x.bytes);
      assert.ok(m?.kind === 'error' && m.code === ERR_COOKIE_REQUIRED, 'only cookie answers go to an unproven address');
    }
    console.log(`# amplification: ${X.tried} requests (${X.sent} bytes) from an unproven address, ${X.received} bytes back`);
  });
});

describe('lookup: a liar cannot fill the shortlist with one address', () => {
  it('one answer adds at most ROUTING_MAX_PER_IP contacts per IP and ROUTING_MAX_PER_SUBNET per public /24', async () => {
    const sim = new SimScheduler(0);
    const target = generateIdentity().nodeId;
    const liar = { nodeId: generateIdentity().nodeId, publicKey: new Uint8Array(32), endpoint: { address: '203.0.113.1', port: 1 } };
    const sybils = Array.from({ length: 20 }, (_, i) => ({
      nodeId: generateIdentity().nodeId, publicKey: new Uint8Array(32), endpoint: { address: i < 10 ? '192.0.2.7' : `192.0.2.${100 + i}`, port: 1000 + i },
    }));
    const asked: string[] = [];
    const r = await lookup({
      target, seeds: [liar], scheduler: sim, k: 20,
      networkLimit: { perIp: ROUTING_MAX_PER_IP, perSubnet: ROUTING_MAX_PER_SUBNET, networkOf },
      query: async (c) => { asked.push(c.endpoint.address); return { contacts: c === liar ? sybils : [] }; },
    });
    const fromSybils = asked.filter((a) => a.startsWith('192.0.2.'));
    assert.ok(fromSybils.length <= ROUTING_MAX_PER_SUBNET, `queried ${fromSybils.length} of the sybils' /24`);
    assert.ok(r.contacts.filter((c) => c.endpoint.address.startsWith('192.0.2.')).length <= ROUTING_MAX_PER_SUBNET);
    console.log(`# lookup: 20 contacts on one /24 offered, ${fromSybils.length} queried`);
  });
});
