// The record store under attack: tombstones from keys that do not own the resource, STOREs for resources
// the node is not responsible for, a key flood filling the store, and the bounds under random puts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ed25519 } from '@noble/curves/ed25519.js';
import { STORE_MAX_RECORDS, STORE_MAX_RECORDS_PER_OWNER } from '../../agent/base/constants.js';
import { ipv4FromNodeId, nodeIdFromPublicKey } from '../../agent/idloc/addresses.js';
import { solvePuzzle } from '../../agent/overlay/puzzle.js';
import {
  CandidateType, RecordKind, createIpv4ClaimRecord, createLocatorRecord, createNameRecord, createServiceRecord,
  createTombstone, type OverlayRecord, type RecordSigner,
} from '../../agent/overlay/records.js';
import { RecordStore } from '../../agent/overlay/store.js';
import { ipv4ResourceId, nameResourceId, serviceResourceId } from '../../agent/overlay/names.js';

const D = 4;
const NOW = 1_700_000_000_000;
type Signer = RecordSigner & { publicKey: Uint8Array; nodeId: Uint8Array };
function signer(n: number): Signer {
  const sk = new Uint8Array(32);
  new DataView(sk.buffer).setUint32(0, n);
  sk[31] = 0x77;
  const publicKey = ed25519.getPublicKey(sk);
  return { privateKey: sk, publicKey, nodeId: nodeIdFromPublicKey(publicKey), puzzleNonce: solvePuzzle(publicKey, D) };
}
const at = (seq: bigint, now = NOW) => ({ now, seq });
const cand = { address: '192.0.2.1', port: 4500, type: CandidateType.Host, priority: 1 };
const locator = (s: Signer, seq = 1n) => createLocatorRecord(s, { flags: 0, candidates: [cand], rendezvous: [] }, at(seq));
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

test('a tombstone from a key that does not own the resource is refused, for every kind', (t) => {
  const [A, B] = [signer(1), signer(2)];
  const s = new RecordStore({ puzzleDifficulty: D });
  assert.equal(s.put(createNameRecord(A, 'alice', at(1n)), NOW), 'stored');
  assert.equal(s.put(createServiceRecord(A, 'turn', [cand], at(1n)), NOW), 'stored');
  assert.equal(s.put(createIpv4ClaimRecord(A, 0, at(1n)), NOW), 'stored');
  const v4 = ipv4FromNodeId(A.nodeId, 0);
  assert.ok(![...Array(32).keys()].some((a) => ipv4FromNodeId(B.nodeId, a) === v4), "no attempt of B's NodeID derives A's address");
  const forged: [string, OverlayRecord][] = [
    ['name held by another key', createTombstone(B, RecordKind.Name, nameResourceId('alice'), at(9n))],
    ['name nobody holds', createTombstone(B, RecordKind.Name, nameResourceId('nobody'), at(9n))],
    ['service B never offered', createTombstone(B, RecordKind.Service, serviceResourceId('turn'), at(9n))],
    ["IPv4 claim of an address B's NodeID cannot derive", createTombstone(B, RecordKind.Ipv4Claim, ipv4ResourceId(v4), at(9n))],
    ["another key's locator", createTombstone(B, RecordKind.Locator, A.nodeId, at(9n))],
    ['arbitrary resource, as a flood would', createTombstone(B, RecordKind.Name, new Uint8Array(20).fill(7), at(9n))],
  ];
  for (const [what, r] of forged) assert.equal(s.put(r, NOW), 'forged', what);
  assert.equal(s.size, 3, 'nothing of B entered the store');
  assert.equal(s.get(nameResourceId('alice'), RecordKind.Name, NOW).length, 1);
  assert.equal(s.get(ipv4ResourceId(v4), RecordKind.Ipv4Claim, NOW).length, 1);
  // the owner's own tombstones still work
  assert.equal(s.put(createTombstone(A, RecordKind.Ipv4Claim, ipv4ResourceId(v4), at(2n)), NOW), 'stored');
  assert.equal(s.put(createTombstone(A, RecordKind.Service, serviceResourceId('turn'), at(2n)), NOW), 'stored');
  assert.equal(s.get(ipv4ResourceId(v4), RecordKind.Ipv4Claim, NOW).length, 0);
  assert.equal(s.stats().rejected.forged, forged.length);
  t.diagnostic(`forged tombstones tried: ${forged.length}, stored: 0 (refused as forged: ${s.stats().rejected.forged})`);
});

test('a new entry for a resource the node is not responsible for is refused; held entries still update', (t) => {
  const [A, B, C] = [signer(11), signer(12), signer(13)];
  const s = new RecordStore({ puzzleDifficulty: D, maxRecords: 3 });
  const notMine = (id: Uint8Array) => hex(id) !== hex(nameResourceId('far'));
  assert.equal(s.put(createNameRecord(A, 'far', at(1n)), NOW), 'stored', 'a local put (our own record) is not judged');
  assert.equal(s.put(createNameRecord(B, 'near', at(1n)), NOW, { responsible: notMine }), 'stored');
  assert.equal(s.put(createNameRecord(B, 'far2', at(1n)), NOW, { responsible: () => false }), 'invalid');
  assert.equal(s.put(createNameRecord(A, 'far', at(2n)), NOW, { responsible: () => false }), 'stored', 'update of a held entry');
  assert.equal(s.stats().refused.notResponsible, 1);
  // full: the resource we are no longer responsible for goes first, not an entry of a larger owner
  assert.equal(s.put(createNameRecord(B, 'near2', at(1n)), NOW, { responsible: notMine }), 'stored');
  assert.equal(s.put(createNameRecord(C, 'near3', at(1n)), NOW, { responsible: notMine }), 'stored');
  assert.equal(s.stats().evicted.notResponsible, 1);
  assert.equal(s.get(nameResourceId('far'), RecordKind.Name, NOW).length, 0);
  assert.equal(s.ownerCount(B.publicKey), 2, "B's entries stay");
  t.diagnostic(`not-responsible STOREs tried: 1, stored: 0; evicted as no longer ours: ${s.stats().evicted.notResponsible}`);
});

test(`a store flood (${STORE_MAX_RECORDS} / 31.25 records; 25 keys x ${STORE_MAX_RECORDS_PER_OWNER + 2} tries) does not stop a newcomer's locator, nor evict a long-lived owner's claim`, (t) => {
  // 625 keys x 32 records fill the real store; scaled by 1/31.25 with the real per-owner bound
  const max = STORE_MAX_RECORDS / 31.25;
  const s = new RecordStore({ puzzleDifficulty: D, maxRecords: max });
  const mine = () => true; // the attacker ground every resource to land next to us
  const old = signer(100);
  assert.equal(s.put(locator(old), NOW, { responsible: mine }), 'stored');
  assert.equal(s.put(createIpv4ClaimRecord(old, 0, at(1n)), NOW, { responsible: mine }), 'stored');
  let flood = 0;
  let floodStored = 0;
  for (let k = 0; k < 25; k++) {
    const f = signer(1000 + k);
    for (let i = 0; i < STORE_MAX_RECORDS_PER_OWNER + 2; i++) {
      flood++;
      if (s.put(createNameRecord(f, `flood-${k}-${i}`, at(1n)), NOW, { responsible: mine }) === 'stored') floodStored++;
      assert.ok(s.size <= max);
    }
  }
  assert.equal(s.size, max, 'the flood filled the store');
  const newcomers = [signer(5000), signer(5001), signer(5002)];
  for (const n of newcomers) assert.equal(s.put(locator(n), NOW, { responsible: mine }), 'stored', "a newcomer's locator is stored");
  assert.equal(s.get(old.nodeId, RecordKind.Locator, NOW).length, 1, "the long-lived owner's locator stays");
  assert.equal(s.get(ipv4ResourceId(ipv4FromNodeId(old.nodeId, 0)), RecordKind.Ipv4Claim, NOW).length, 1, 'and its IPv4 claim');
  for (const n of newcomers) assert.equal(s.get(n.nodeId, RecordKind.Locator, NOW).length, 1);
  assert.ok(s.size <= max);
  const st = s.stats();
  t.diagnostic(`flood records tried: ${flood}, stored: ${floodStored} (refused at the per-owner bound: ${st.refused.ownerFull}, ` +
    `flood entries evicted by later ones: ${st.evicted.largestOwner}); newcomer locators: ${newcomers.length} tried, ${newcomers.length} stored; ` +
    `long-lived owner's 2 records: 2 kept`);
});

test('a resource holds at most maxPerResource providers; the first providers stay', () => {
  const s = new RecordStore({ puzzleDifficulty: D, maxPerResource: 4 });
  const keys = [...Array(10).keys()].map((i) => signer(200 + i));
  for (const k of keys) assert.equal(s.put(createServiceRecord(k, 'turn', [cand], at(1n)), NOW), 'stored');
  const held = s.get(serviceResourceId('turn'), RecordKind.Service, NOW).map((r) => hex(r.owner));
  assert.equal(held.length, 4);
  for (const k of keys.slice(0, 3)) assert.ok(held.includes(hex(k.publicKey)), 'an early provider is kept');
  assert.equal(s.stats().evicted.resourceFull, 6);
});

// ---- property: bounds hold and a responsible locator always gets in ---------------------------------

const OWNERS = [...Array(6).keys()].map((i) => signer(300 + i));
const NAMES = ['n0', 'n1', 'n2', 'n3', 'n4', 'n5'];
const POOL: OverlayRecord[] = [];
for (const o of OWNERS) {
  POOL.push(locator(o), createIpv4ClaimRecord(o, 0, at(1n)));
  for (const n of NAMES) POOL.push(createNameRecord(o, n, at(1n)), createTombstone(o, RecordKind.Name, nameResourceId(n), at(2n)));
  for (const sv of ['s0', 's1']) POOL.push(createServiceRecord(o, sv, [cand], at(1n)), createTombstone(o, RecordKind.Service, serviceResourceId(sv), at(2n)));
}
const responsibleFor = (id: Uint8Array) => (id[0]! & 3) !== 0; // three resources in four are ours
const NEWCOMERS: Signer[] = [];
for (let i = 0; NEWCOMERS.length < 12; i++) {
  const n = signer(400 + i);
  if (responsibleFor(n.nodeId)) NEWCOMERS.push(n);
}
const NEWCOMER_LOCATORS = NEWCOMERS.map((n) => locator(n));

test('property: random puts never exceed the per-owner, per-resource and total bounds; a responsible locator is always stored', (t) => {
  const bounds = { maxRecords: 10, maxPerOwner: 4, maxPerResource: 3 };
  let puts = 0;
  let locators = 0;
  const op = fc.oneof(
    fc.record({ pool: fc.nat(POOL.length - 1), remote: fc.boolean() }),
    fc.constant({ newcomer: true as const }),
  );
  fc.assert(fc.property(fc.array(op, { minLength: 10, maxLength: 40 }), (ops) => {
    const s = new RecordStore({ puzzleDifficulty: D, ...bounds });
    let next = 0;
    for (const o of ops) {
      puts++;
      if ('newcomer' in o) {
        if (next >= NEWCOMER_LOCATORS.length) continue;
        locators++;
        assert.equal(s.put(NEWCOMER_LOCATORS[next++]!, NOW, { responsible: responsibleFor }), 'stored');
      } else {
        s.put(POOL[o.pool]!, NOW, o.remote ? { responsible: responsibleFor } : {});
      }
      const held = [...s.records(NOW)];
      assert.equal(held.length, s.size, 'the count matches what is held');
      assert.ok(s.size <= bounds.maxRecords, 'total bound');
      assert.equal(s.stats().tombstones, held.filter((r) => r.value === null).length);
      const perOwner = new Map<string, number>();
      const perResource = new Map<string, number>();
      for (const r of held) {
        perOwner.set(hex(r.owner), (perOwner.get(hex(r.owner)) ?? 0) + 1);
        const key = `${r.kind}:${hex(r.resourceId)}`;
        perResource.set(key, (perResource.get(key) ?? 0) + 1);
      }
      for (const [o, n] of perOwner) { assert.ok(n <= bounds.maxPerOwner, 'per-owner bound'); assert.equal(s.ownerCount(Buffer.from(o, 'hex')), n); }
      for (const n of perResource.values()) assert.ok(n <= bounds.maxPerResource, 'per-resource bound');
    }
  }), { numRuns: 80 });
  t.diagnostic(`random puts: ${puts}; responsible newcomer locators: ${locators}, all stored; no bound ever exceeded`);
});
