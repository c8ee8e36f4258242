// Attach cannot be aimed (issue 9): an agent T, wired as the daemon wires it (one socket shared by the
// overlay and STUN/ICE, the Traversal answering the overlay's onAttach with its context), behind what its
// netcheck calls an easy NAT, gets Attach offers an attacker crafted: replayed under new transaction ids,
// from a key whose NodeID puzzle does not hold, naming a third party V's address as candidates, claiming
// nat=hard with V's address as its srflx (directly, relayed with a forwarder's observation, and with its
// source spoofed to V). Every datagram T sends is recorded: none of them may be a check or a probe to V,
// and what T sends to V at all is no more than what arrived "from" V. Positive controls: an offer aimed at
// the attacker's own address still gets its checks and its spray, and a genuine peer still connects.
// The test uses only interfaces the code had before these defences, so it runs (and fails) against it.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { MemoryNetwork, type MemorySocket } from '../../agent/conn/memory-socket.js';
import type { Endpoint } from '../../agent/conn/socket.js';
import { generateIdentity, type Identity } from '../../agent/idloc/identity.js';
import { OverlayNode } from '../../agent/overlay/node.js';
import type { MessageOf } from '../../agent/overlay/codec.js';
import { verifyPuzzle } from '../../agent/overlay/puzzle.js';
import { StunEndpoint } from '../../agent/nat/stun-endpoint.js';
import { IceAgent } from '../../agent/nat/ice.js';
import { Traversal } from '../../agent/nat/traversal.js';
import {
  candidatePriority, IceCandidateType, marshalAttach, newCredentials, type AttachParams, type IceCandidate, type NatHint,
} from '../../agent/nat/attach.js';
import type { LocatorRecord } from '../../agent/overlay/records.js';
import type { NetcheckReport } from '../../agent/nat/netcheck.js';
import { HARD_NAT_SPRAY_COUNT, OVERLAY_DEFAULT_TTL } from '../../agent/base/constants.js';

const DIFFICULTY = 4;
const silent = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const keepAlive = setInterval(() => undefined, 1000); // the memory network's timers do not hold the loop
after(() => clearInterval(keepAlive));
const T_ADDR = '203.0.113.10', G_ADDR = '203.0.113.20', A_ADDR = '203.0.113.66', V_ADDR = '198.51.100.66';

interface Sent { to: Endpoint; bytes: number; stun: boolean }
interface Agent { identity: Identity; sock: MemorySocket; node: OverlayNode; ice: IceAgent; traversal: Traversal; sent: Sent[] }

/** An agent's NAT-traversal stack on one memory socket, as daemon.ts builds it; onAttach gets the overlay's
 *  context (where the Attach's path saw its sender). */
function agent(net: MemoryNetwork, address: string, nat?: Partial<NetcheckReport>): Agent {
  const sock = net.socket(address, 4500);
  const sent: Sent[] = [];
  const send = sock.send.bind(sock);
  sock.send = (b: Uint8Array, to: Endpoint) => { sent.push({ to: { ...to }, bytes: b.length, stun: b[0]! <= 3 }); send(b, to); };
  const identity = generateIdentity();
  let ice!: IceAgent;
  let traversal!: Traversal;
  const stun = new StunEndpoint({ send: (b, to) => sock.send(b, to), passwordFor: (u) => ice.passwordFor(u), onCheck: (r) => ice.onCheck(r) });
  ice = new IceAgent(stun);
  const handler = (blob: Uint8Array, from: unknown) => (traversal.onAttach as (b: Uint8Array, c: unknown) => Uint8Array | undefined).call(traversal, blob, from);
  const node = new OverlayNode({
    socket: sock, identity, puzzleDifficulty: DIFFICULTY, replicateIntervalMs: 0, refreshCheckIntervalMs: 1e9, republishIntervalMs: 1e9,
    onAttach: handler,
    // the eight attacker keys share one address here; the per-address table limit has its own test
    maxContactsPerIp: 0, maxContactsPerSubnet: 0,
  });
  sock.onMessage((m, f) => { if (m[0] === 0xd2) node.handleDatagram(m, f); else stun.handleDatagram(m, f); });
  // aimUnobserved left at its default: every Attach here has an observation (the datagram's source, a
  // forwarder's report, or the routing table's address for its sender), so none is aimed by its claims.
  const options = {
    identity, node, ice, hostEndpoints: () => [sock.local], logger: silent,
    probes: { open: () => Promise.resolve([]), route: () => undefined },
  };
  traversal = new Traversal(options as ConstructorParameters<typeof Traversal>[0]);
  if (nat) {
    traversal.setNetcheck({
      udp: true, servers: [], publicEndpoint: { ...sock.local }, publicEndpoints: [{ ...sock.local }], behindNat: true,
      mapping: 'endpoint-independent', mappingReason: '', filtering: 'address-and-port-dependent', filteringReason: '', durationMs: 1, ...nat,
    });
  }
  return { identity, sock, node, ice, traversal, sent };
}

/** An attacker: an ordinary overlay member (so T's routing table has it at its own address) that crafts
 *  Attach blobs and overlay datagrams by hand. */
interface Attacker { identity: Identity; sock: MemorySocket; node: OverlayNode; nonce: bigint }
function attacker(net: MemoryNetwork, port: number): Attacker {
  const sock = net.socket(A_ADDR, port);
  const identity = generateIdentity();
  const node = new OverlayNode({ socket: sock, identity, puzzleDifficulty: DIFFICULTY, replicateIntervalMs: 0, refreshCheckIntervalMs: 1e9, republishIntervalMs: 1e9 });
  sock.onMessage((m, f) => { if (m[0] === 0xd2) node.handleDatagram(m, f); });
  return { identity, sock, node, nonce: node.puzzleNonce };
}

const cand = (address: string, port: number, type: IceCandidateType): IceCandidate => ({ address, port, type, priority: candidatePriority(type) });

function offerBlob(a: Attacker, target: Agent, candidates: IceCandidate[], nat: NatHint, nonce = a.nonce): Uint8Array {
  const c = newCredentials();
  const p = {
    role: 'offer', sender: a.identity.publicKey, target: target.identity.nodeId, created: Date.now(), tieBreaker: c.tieBreaker,
    puzzleNonce: nonce, ufrag: c.ufrag, pwd: c.pwd, candidates, nat,
  };
  return marshalAttach(p as AttachParams, a.identity.privateKey);
}

let txids = 1000n;
/** An Attach as the attacker's own node would sign it for T (with the cookie T gave its address). */
function attachDatagram(a: Attacker, target: Agent, blob: Uint8Array): Uint8Array {
  return a.node.marshalRequest({
    kind: 'attach', ttl: OVERLAY_DEFAULT_TTL, txid: txids++, via: [], dest: [{ type: 'node', id: target.identity.nodeId }],
    sender: { nodeId: a.identity.nodeId, publicKey: a.identity.publicKey }, blob,
  }, target.sock.local);
}

const toIp = (s: Sent[], ip: string) => s.filter((x) => x.to.address === ip);
const stunTo = (s: Sent[], ip: string) => toIp(s, ip).filter((x) => x.stun);
const bytesTo = (s: Sent[], ip: string) => toIp(s, ip).reduce((n, x) => n + x.bytes, 0);

describe('Attach cannot be aimed at a third party', () => {
  const net = new MemoryNetwork({ latencyMs: 1 });
  let T!: Agent, G!: Agent;
  const A: Attacker[] = [];
  /** Bytes that arrived at T "from" V (the spoofed datagrams), and the hostile inputs tried. */
  let fromV = 0;
  const tried = { replayed: 0, puzzleless: 0, thirdPartyCandidates: 0, aimedHard: 0, spoofed: 0 };

  before(async () => {
    T = agent(net, T_ADDR, {});
    G = agent(net, G_ADDR);
    for (let i = 0; i < 8; i++) A.push(attacker(net, 5000 + i));
    await T.node.start([]);
    await Promise.all([G.node.start([T.sock.local]), ...A.map((a) => a.node.start([T.sock.local]))]);
    for (const a of A) assert.ok(T.node.kad.table.get(a.identity.nodeId), 'the attacker is an ordinary member in T\'s table');
  });
  after(() => {
    for (const h of [T, G, ...A]) h.node.close();
    T.ice.close(); G.ice.close();
  });

  it('an offer naming V as its candidates, or claiming nat=hard with V as its srflx, sends nothing to V', async () => {
    const before = T.ice.stats.sessions;
    // 1. plain ICE towards V: host, srflx, prflx and predicted ports all at V
    const third = [cand(V_ADDR, 4500, IceCandidateType.Host), cand(V_ADDR, 4501, IceCandidateType.Srflx), cand(V_ADDR, 4502, IceCandidateType.Prflx),
      ...Array.from({ length: 8 }, (_, k) => cand(V_ADDR, 40_000 + k, IceCandidateType.Srflx))];
    A[0]!.sock.send(attachDatagram(A[0]!, T, offerBlob(A[0]!, T, third, 'easy')), T.sock.local);
    tried.thirdPartyCandidates++;
    // 2. nat=hard with V's address as srflx: the spray would go to 2048 random ports of V
    A[1]!.sock.send(attachDatagram(A[1]!, T, offerBlob(A[1]!, T, [cand(V_ADDR, 4500, IceCandidateType.Srflx)], 'hard')), T.sock.local);
    tried.aimedHard++;
    // 3. the same, relayed: the forwarder that received it from A reports A's address (originObserved)
    const relayed = (a: Attacker, observed: Uint8Array | undefined): void => {
      const m = {
        kind: 'attach', ttl: OVERLAY_DEFAULT_TTL, txid: txids++, via: [A[7]!.identity.nodeId], dest: [],
        sender: { nodeId: a.identity.nodeId, publicKey: a.identity.publicKey },
        blob: offerBlob(a, T, [cand(V_ADDR, 4500, IceCandidateType.Srflx), cand(V_ADDR, 4500, IceCandidateType.Host)], 'hard'),
        ...(observed ? { originObserved: { address: observed, port: 5002 } } : {}),
      } as MessageOf<'attach'>;
      T.node.attacher.onRequest(m, A[7]!.sock.local);
      tried.aimedHard++;
    };
    relayed(A[2]!, Uint8Array.of(203, 0, 113, 66));
    relayed(A[3]!, undefined); // no forwarder report: the routing table has A3 at A's address, not V's
    // 4. nat=hard aimed at V, the datagram's source spoofed to V (T's answer goes to V)
    const spoof = attachDatagram(A[4]!, T, offerBlob(A[4]!, T, [cand(V_ADDR, 4500, IceCandidateType.Srflx)], 'hard'));
    net.setTranslate((from) => (from.address === A_ADDR && from.port === 5004 ? { address: V_ADDR, port: 4500 } : from));
    A[4]!.sock.send(spoof, T.sock.local);
    fromV += spoof.length;
    tried.spoofed++;
    await sleep(30);
    net.setTranslate(undefined);
    await sleep(2500); // every check schedule (1.55 s) and spray (0.2 s + 0.32 s) has run out
    const toV = stunTo(T.sent, V_ADDR);
    const s = T.traversal.stats as typeof T.traversal.stats & { attachGuard?: Record<string, number> };
    console.log(`hostile Attach offers: ${tried.thirdPartyCandidates} naming V in ${third.length} candidates, ${tried.aimedHard} nat=hard at V ` +
      `(1 direct, 2 relayed), ${tried.spoofed} spoofed from V; checks and probes T sent to V: ${toV.length}; ` +
      `T's sessions ${T.ice.stats.sessions - before}, sprays ${s.sprays}, refused ${JSON.stringify(s.attachGuard)}`);
    assert.equal(toV.length, 0, `T sent ${toV.length} checks/probes to the third party`);
    assert.equal(s.sprays, 0);
    assert.ok(bytesTo(T.sent, V_ADDR) <= fromV, `amplification: ${bytesTo(T.sent, V_ADDR)} bytes to V for ${fromV} "from" it`);
    console.log(`amplification towards V (never verified): ${bytesTo(T.sent, V_ADDR)} bytes sent for ${fromV} bytes received`);
  });

  it('a replayed offer (the same blob under new transaction ids, from A or anyone) starts nothing', async () => {
    const a = A[5]!;
    const blob = offerBlob(a, T, [cand(A_ADDR, 5005, IceCandidateType.Host)], 'easy');
    a.sock.send(attachDatagram(a, T, blob), T.sock.local);
    await sleep(2000);
    const sessions = T.ice.stats.sessions;
    const checks = stunTo(T.sent, A_ADDR).length;
    assert.ok(checks > 0, 'the first copy is acted on: T checks A\'s own address');
    for (let i = 0; i < 5; i++) {
      (i % 2 ? G.sock : a.sock).send(attachDatagram(a, T, blob), T.sock.local);
      tried.replayed++;
    }
    await sleep(2000);
    console.log(`replays: ${tried.replayed} under new txids; new sessions ${T.ice.stats.sessions - sessions}, new checks ${stunTo(T.sent, A_ADDR).length - checks}`);
    assert.equal(T.ice.stats.sessions, sessions, 'a replay started an ICE session');
    assert.equal(stunTo(T.sent, A_ADDR).length, checks, 'a replay sent checks');
  });

  it('an offer from a key whose puzzle does not hold is refused: no checks, no spray, even at its own address', async () => {
    const a = A[6]!;
    let bad = 0n;
    while (verifyPuzzle(a.identity.publicKey, bad, DIFFICULTY)) bad++;
    const before = stunTo(T.sent, A_ADDR).length;
    const sessions = T.ice.stats.sessions;
    a.sock.send(attachDatagram(a, T, offerBlob(a, T, [cand(A_ADDR, 5006, IceCandidateType.Srflx)], 'hard', bad)), T.sock.local);
    tried.puzzleless++;
    await sleep(1500);
    const sent = stunTo(T.sent, A_ADDR).length - before;
    console.log(`puzzle-less offers: ${tried.puzzleless}; sessions started ${T.ice.stats.sessions - sessions}, checks and probes sent ${sent}`);
    assert.equal(T.ice.stats.sessions, sessions);
    assert.equal(sent, 0);
  });

  it('aimed at its own observed address, nat=hard still gets the spray there; a genuine peer still connects', async () => {
    const a = A[0]!; // its earlier offer named V; this one names itself
    const sprays = T.traversal.stats.sprays;
    a.sock.send(attachDatagram(a, T, offerBlob(a, T, [cand(A_ADDR, 5000, IceCandidateType.Srflx)], 'hard')), T.sock.local);
    await sleep(1200);
    const probes = toIp(T.sent, A_ADDR).filter((x) => x.stun && x.to.port !== 5000 && x.to.port !== 5005).length;
    assert.equal(T.traversal.stats.sprays, sprays + 1, 'the aimed spray went out');
    assert.ok(probes >= HARD_NAT_SPRAY_COUNT - 64, `probes to A's own address: ${probes}`);
    const locator = { owner: T.identity.publicKey, value: { rendezvous: [G.identity.nodeId], candidates: [] } } as unknown as LocatorRecord;
    const choice = await G.traversal.reach(locator);
    console.log(`aimed spray: ${probes} probes to the attacker's own address; genuine peer: ${choice.how} ${choice.reason}`);
    assert.equal(choice.how, 'ice', choice.reason);
    assert.deepEqual(choice.endpoint, T.sock.local);
    assert.equal(stunTo(T.sent, V_ADDR).length, 0, 'still nothing to V');
  });
});
