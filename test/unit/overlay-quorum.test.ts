// Unique addresses by quorum: a forged IPv4 claim (a key that derives the victim's address) stored at a
// node that is not among the claim's storers is neither stored nor believed, lying storers below a
// majority do not change the answer (for names too), and service providers are read from the k closest, not from
// whatever sits in the local store. 30 OverlayNodes on a MemoryNetwork, k = 5.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ed25519 } from '@noble/curves/ed25519.js';
import { MemoryNetwork, type MemorySocket } from '../../agent/conn/memory-socket.js';
import { identityFromPrivateKey, generateIdentity, type Identity } from '../../agent/idloc/identity.js';
import { ipv4FromNodeId, nodeIdFromPublicKey } from '../../agent/idloc/addresses.js';
import { IPV4_MAX_CLAIM_ATTEMPT } from '../../agent/base/constants.js';
import { OverlayNode } from '../../agent/overlay/node.js';
import { solvePuzzle } from '../../agent/overlay/puzzle.js';
import {
  CandidateType, RecordKind, createIpv4ClaimRecord, createNameRecord, createServiceRecord, marshalRecord, type OverlayRecord,
} from '../../agent/overlay/records.js';
import { RecordStore } from '../../agent/overlay/store.js';
import { ipv4ResourceId, nameResourceId, serviceResourceId } from '../../agent/overlay/names.js';
import { responsibility } from '../../agent/overlay/responsibility.js';
import { compareDistance } from '../../agent/overlay/xor-metric.js';
import { bytesEqual } from '../../agent/base/bytes.js';

const N = 30;
const K = 5;
const DIFFICULTY = 4;
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** A store whose FETCH answers for one resource are whatever its (malicious) operator wants. */
class LyingStore extends RecordStore {
  lie: OverlayRecord | undefined;
  override getAll(resourceId: Uint8Array, kind: RecordKind, now: number): OverlayRecord[] {
    if (this.lie && this.lie.kind === kind && bytesEqual(this.lie.resourceId, resourceId)) return [this.lie];
    return super.getAll(resourceId, kind, now);
  }
}

interface Host { identity: Identity; socket: MemorySocket; node: OverlayNode; store: LyingStore }

/** Two keys whose IPv4 derivations meet (a birthday search over keys x 32 attempts, ~100 keys): the
 *  attacker's key x derives, with attempt ax, the address the victim's key y holds with attempt ay. */
function collidingKeys(): { victim: Uint8Array; ay: number; attacker: Uint8Array; ax: number } {
  const seen = new Map<number, { sk: Uint8Array; attempt: number }>();
  for (let seed = 1; ; seed++) {
    const sk = new Uint8Array(32);
    new DataView(sk.buffer).setUint32(0, seed);
    sk[31] = 0x9e;
    const id = nodeIdFromPublicKey(ed25519.getPublicKey(sk));
    for (let attempt = 0; attempt <= IPV4_MAX_CLAIM_ATTEMPT; attempt++) {
      const v4 = ipv4FromNodeId(id, attempt);
      const prev = seen.get(v4);
      if (prev && prev.sk !== sk) return { victim: prev.sk, ay: prev.attempt, attacker: sk, ax: attempt };
      if (!prev) seen.set(v4, { sk, attempt });
    }
  }
}

describe(`IPv4 claims and names by quorum, ${N} nodes, k = ${K}`, () => {
  const net = new MemoryNetwork({ latencyMs: 1 });
  const hosts: Host[] = [];
  let next = 1;
  const keepAlive = setInterval(() => undefined, 1000);
  const pair = collidingKeys();
  const victimId = identityFromPrivateKey(pair.victim, pair.ay);
  const attackerId = identityFromPrivateKey(pair.attacker, pair.ax);
  const ip = victimId.ipv4;
  const res = ipv4ResourceId(ip);
  const attackerSigner = { privateKey: attackerId.privateKey, publicKey: attackerId.publicKey, puzzleNonce: solvePuzzle(attackerId.publicKey, DIFFICULTY) };
  let forgedClaim: OverlayRecord;
  let victim!: Host;
  let mallory!: Host;

  function makeHost(identity: Identity): Host {
    const socket = net.socket(`10.9.0.${next++}`, 4500);
    const store = new LyingStore({ puzzleDifficulty: DIFFICULTY });
    const node = new OverlayNode({ socket, identity, store, puzzleDifficulty: DIFFICULTY, replicateIntervalMs: 0, k: K });
    socket.onMessage((msg, from) => { if (msg[0] === 0xd2) node.handleDatagram(msg, from); });
    return { identity, socket, node, store };
  }
  const byDistance = () => hosts.slice().sort((a, b) => compareDistance(a.identity.nodeId, b.identity.nodeId, res));
  const owner = (r: OverlayRecord | undefined) => (r ? hex(r.owner) : 'nobody');

  before(async () => {
    assert.equal(ipv4FromNodeId(attackerId.nodeId, pair.ax), ip, "the attacker's key derives the victim's address");
    for (let i = 0; i < N; i++) hosts.push(makeHost(i === 7 ? victimId : generateIdentity()));
    victim = hosts[7]!;
    await hosts[0]!.node.start([]);
    for (const h of hosts.slice(1)) await h.node.start([hosts[0]!.socket.local]);
    const published = await Promise.all(hosts.map((h) => h.node.publisher.publishIdentity(h.identity, [h.socket.local], 0,
      { preferAttempt: h.identity.ipv4Attempt })));
    assert.equal(published[7]!.ipv4, ip, 'the victim holds the address');
    forgedClaim = createIpv4ClaimRecord(attackerSigner, pair.ax, { now: Date.now() });
    // the attacker's own node: never joins, only sends STOREs
    mallory = makeHost(attackerId);
  });

  after(async () => {
    for (const h of [...hosts, mallory]) { h.node.close(); await h.socket.close(); }
    clearInterval(keepAlive);
  });

  it('the forged claim STOREd at every node not responsible for the address is refused by each', async (t) => {
    const refusers = hosts.filter((h) => !responsibility(h.node.kad.table, h.identity.nodeId, K)(res));
    assert.ok(refusers.length >= 4, `nodes far from the address know they are not responsible (${refusers.length})`);
    let tried = 0;
    let stored = 0;
    for (const h of refusers) {
      const before = h.node.stats().store.refused?.notResponsible ?? 0;
      const statuses = await mallory.node.storeAt(h.socket.local, [marshalRecord(forgedClaim)]);
      tried++;
      if (statuses?.[0] === 'stored') stored++;
      assert.deepEqual(statuses, ['invalid'], 'refused: not responsible');
      assert.equal(h.node.stats().store.refused.notResponsible - before, 1);
      assert.ok(!h.store.getAll(res, RecordKind.Ipv4Claim, Date.now()).some((r) => bytesEqual(r.owner, attackerId.publicKey)));
    }
    t.diagnostic(`forged IPv4 claims STOREd at non-responsible nodes: ${tried}, stored: ${stored}`);
  });

  it('a forged claim planted in the local store of nodes outside the k closest is not believed there', async (t) => {
    const outside = byDistance().slice(2 * K).filter((h) => h !== victim).slice(0, 6);
    for (const h of outside) assert.equal(h.node.store.put(forgedClaim, Date.now()), 'stored', 'planted (as an unchecked store would)');
    let believed = 0;
    for (const h of outside) {
      const x = await h.node.resolver.ipv4Of(attackerId.publicKey);
      const claim = await h.node.resolver.resolveIpv4Claim(ip);
      const loc = await h.node.resolver.resolveIpv4(ip);
      if (x !== undefined || owner(claim) !== victimId.publicKeyHex) believed++;
      assert.equal(x, undefined, "ipv4Of(attacker) is not the victim's address");
      assert.equal(owner(claim), victimId.publicKeyHex, 'resolveIpv4Claim still gives the victim');
      assert.equal(owner(loc), victimId.publicKeyHex, 'resolveIpv4 leads to the victim');
      assert.equal(await h.node.resolver.ipv4Of(victimId.publicKey), ip, 'ipv4Of(victim) agrees');
    }
    t.diagnostic(`planted forged claims: ${outside.length}, believed: ${believed}`);
  });

  it(`a minority of lying storers (2 of the ${K} closest) does not change the answer; a majority would`, async (t) => {
    const closest = byDistance().slice(0, K);
    const liars = closest.filter((h) => h !== victim).slice(0, 2);
    for (const l of liars) l.store.lie = forgedClaim;
    const readers = hosts.filter((h) => !closest.includes(h)).slice(0, 5);
    let believed = 0;
    for (const h of readers) {
      const x = await h.node.resolver.ipv4Of(attackerId.publicKey);
      if (x !== undefined) believed++;
      assert.equal(x, undefined, "ipv4Of(attacker) is not the victim's address");
      assert.equal(owner(await h.node.resolver.resolveIpv4Claim(ip)), victimId.publicKeyHex);
      assert.equal(await h.node.resolver.ipv4Of(victimId.publicKey), ip);
      const q = await h.node.resolver.quorum(res, RecordKind.Ipv4Claim);
      assert.equal(owner(q.holder), victimId.publicKeyHex);
      assert.ok(q.votes >= 3 && q.voters <= K, `votes ${q.votes}/${q.voters}`);
    }
    // the bound is the majority: three liars of five decide (so the test above does measure the vote)
    const third = closest.find((h) => h !== victim && !liars.includes(h))!;
    third.store.lie = forgedClaim;
    const q = await readers[0]!.node.resolver.quorum(res, RecordKind.Ipv4Claim);
    assert.equal(owner(q.holder), attackerId.publicKeyHex);
    for (const l of [...liars, third]) l.store.lie = undefined;
    assert.equal(owner(await readers[0]!.node.resolver.resolveIpv4Claim(ip)), victimId.publicKeyHex);
    t.diagnostic(`lying storers: ${liars.length} of ${K}; readers: ${readers.length}; believed the forged claim: ${believed}`);
  });

  it('a name is decided the same way: a lying minority of its storers offering another key does not take it', async (t) => {
    const reg = await victim.node.publisher.registerName('victim-name');
    assert.ok(reg.ok);
    const nres = nameResourceId('victim-name');
    const near = hosts.slice().sort((a, b) => compareDistance(a.identity.nodeId, b.identity.nodeId, nres)).slice(0, K);
    const liars = near.filter((h) => h !== victim).slice(0, 2);
    const rival = createNameRecord(attackerSigner, 'victim-name', { now: Date.now() });
    for (const l of liars) l.store.lie = rival;
    const readers = hosts.filter((h) => !near.includes(h)).slice(0, 4);
    let believed = 0;
    for (const h of readers) {
      const rec = await h.node.resolver.resolveName('victim-name');
      if (owner(rec) !== victimId.publicKeyHex) believed++;
      assert.equal(owner(rec), victimId.publicKeyHex);
    }
    // nor does it make the holder give up its name when it registers again
    assert.ok((await victim.node.publisher.registerName('victim-name')).ok);
    for (const l of liars) l.store.lie = undefined;
    t.diagnostic(`lying name storers: ${liars.length} of ${K}; readers: ${readers.length}; believed the rival: ${believed}`);
  });

  it('service providers from the k closest: a rogue "turn" record in the local store is not returned', async (t) => {
    const sres = serviceResourceId('turn');
    const provider = hosts[3]!;
    const cand = { address: provider.socket.local.address, port: 3478, type: CandidateType.Host, priority: 1 };
    const real = createServiceRecord(provider.node.signer, 'turn', [cand], { now: Date.now() });
    assert.ok((await provider.node.publisher.publish(marshalRecord(real), { republish: false })).ok);
    const near = hosts.slice().sort((a, b) => compareDistance(a.identity.nodeId, b.identity.nodeId, sres));
    const reader = near.slice(2 * K).find((h) => h !== provider)!;
    const rogue = createServiceRecord(attackerSigner, 'turn', [{ ...cand, address: '198.51.100.66' }], { now: Date.now() });
    assert.equal(reader.node.store.put(rogue, Date.now()), 'stored', 'planted straight into the local store');
    const found = await reader.node.resolver.fetchAtClosest(sres, RecordKind.Service);
    assert.deepEqual(found.map(owner), [provider.identity.publicKeyHex]);
    t.diagnostic(`rogue providers in the local store: 1, returned by fetchAtClosest: ${found.filter((r) => owner(r) === attackerId.publicKeyHex).length}`);
  });
});
