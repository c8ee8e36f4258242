// The DHT node's record store: access rules per kind, first-come claims, sequences, replays, expiry, limits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ed25519 } from '@noble/curves/ed25519.js';
import { RECORD_MAX_CLOCK_SKEW_MS } from '../../agent/base/constants.js';
import { ipv4FromNodeId, nodeIdFromPublicKey } from '../../agent/idloc/addresses.js';
import { solvePuzzle } from '../../agent/overlay/puzzle.js';
import {
  CandidateType, RecordKind, createIpv4ClaimRecord, createLocatorRecord, createNameRecord, createNameTombstone,
  createServiceRecord, createTombstone, marshalRecord, signRecord, type RecordSigner,
} from '../../agent/overlay/records.js';
import { RecordStore } from '../../agent/overlay/store.js';
import { ipv4ResourceId, nameResourceId, serviceResourceId } from '../../agent/overlay/names.js';

const D = 4;
const NOW = 1_700_000_000_000;

type Signer = RecordSigner & { publicKey: Uint8Array; nodeId: Uint8Array };
function signerFromSeed(seed: Uint8Array): Signer {
  const publicKey = ed25519.getPublicKey(seed);
  return { privateKey: seed, publicKey, nodeId: nodeIdFromPublicKey(publicKey), puzzleNonce: solvePuzzle(publicKey, D) };
}
const signer = (n: number) => signerFromSeed(new Uint8Array(32).fill(n));
const A = signer(1);
const B = signer(2);
const C = signer(3);
const newStore = (o: { maxRecords?: number; maxPerOwner?: number } = {}) => new RecordStore({ puzzleDifficulty: D, ...o });
const at = (now: number, seq: bigint, lifetime?: number) => (lifetime === undefined ? { now, seq } : { now, seq, lifetime });
const cand = { address: '192.0.2.1', port: 4500, type: CandidateType.Host, priority: 1 };

test('stores a valid record, keeps the highest sequence, refuses replays and older sequences as stale', () => {
  const s = newStore();
  const r1 = createLocatorRecord(A, { flags: 0, candidates: [cand], rendezvous: [] }, at(NOW, 10n));
  assert.equal(s.put(r1, NOW), 'stored');
  assert.equal(s.put(r1, NOW + 1), 'stale', 'the same record again (replay)');
  assert.equal(s.putBytes(marshalRecord(r1), NOW + 1), 'stale', 'replayed from the wire');
  const r2 = createLocatorRecord(A, { flags: 0, candidates: [{ ...cand, port: 4501 }], rendezvous: [] }, at(NOW + 5, 11n));
  assert.equal(s.put(r2, NOW + 5), 'stored');
  assert.equal(s.put(r1, NOW + 6), 'stale', 'older sequence after a newer one');
  const same = createLocatorRecord(A, { flags: 1, candidates: [], rendezvous: [] }, at(NOW + 7, 11n));
  assert.equal(s.put(same, NOW + 7), 'stale', 'same sequence, different content');
  const got = s.get(A.nodeId, RecordKind.Locator, NOW + 8);
  assert.equal(got.length, 1);
  assert.equal(got[0]!.seq, 11n);
  assert.equal(s.size, 1);
  assert.deepEqual(s.get(A.nodeId, RecordKind.Name, NOW + 8), [], 'kinds are separate');
  assert.equal(s.stats().rejected.stale, 4);
  assert.equal(s.stats().stored, 2);
});

test('forged records (bad signature, wrong key, tampered) are refused and counted', () => {
  const s = newStore();
  const r = createLocatorRecord(A, { flags: 0, candidates: [cand], rendezvous: [] }, at(NOW, 1n));
  const sig = Uint8Array.from(r.signature); sig[0]! ^= 0x80;
  assert.equal(s.put({ ...r, signature: sig }, NOW), 'forged');
  assert.equal(s.put(signRecord({ ...r, owner: B.publicKey, puzzleNonce: B.puzzleNonce }, B.privateKey), NOW), 'forged', "B writing A's locator");
  assert.equal(s.put({ ...r, seq: 99n }, NOW), 'forged', 'sequence raised without re-signing');
  assert.equal(s.putBytes(new Uint8Array(40), NOW), 'invalid');
  assert.equal(s.put({ ...r, owner: undefined } as unknown as typeof r, NOW), 'invalid', 'hand-built garbage does not throw');
  assert.equal(s.size, 0);
  assert.deepEqual(s.stats().rejected, { stale: 0, forged: 3, taken: 0, expired: 0, invalid: 2, full: 0 });
  assert.equal(s.put(r, NOW), 'stored', 'the genuine record is still accepted');
});

test('names are first-come: a second key is refused while the owner updates, and only the owner removes', () => {
  const s = newStore();
  assert.equal(s.put(createNameRecord(A, 'alice', at(NOW, 1n)), NOW), 'stored');
  assert.equal(s.put(createNameRecord(B, 'Alice', at(NOW + 1, 1n)), NOW + 1), 'taken', 'second claim of a taken name');
  assert.equal(s.put(createNameRecord(B, 'alice', at(NOW + 2, 50n)), NOW + 2), 'taken', 'a higher sequence does not help another key');
  assert.equal(s.put(createNameRecord(A, 'alice', at(NOW + 3, 2n)), NOW + 3), 'stored', "the owner's update");
  const res = nameResourceId('alice');
  // B holds no entry at the name: its tombstone is refused (it does not own the resource), A's name stays.
  assert.equal(s.put(createNameTombstone(B, 'alice', at(NOW + 4, 60n)), NOW + 4), 'forged');
  let live = s.get(res, RecordKind.Name, NOW + 4);
  assert.equal(live.length, 1);
  assert.deepEqual(live[0]!.owner, A.publicKey, 'a non-owner cannot remove the name');
  // A's tombstone with an older sequence is stale; with a higher one it removes the name.
  assert.equal(s.put(createNameTombstone(A, 'alice', at(NOW + 5, 2n)), NOW + 5), 'stale');
  assert.equal(s.put(createNameTombstone(A, 'alice', at(NOW + 5, 3n)), NOW + 5), 'stored');
  assert.deepEqual(s.get(res, RecordKind.Name, NOW + 5), [], 'removed by its owner');
  assert.equal(s.getAll(res, RecordKind.Name, NOW + 5).length, 1, 'the tombstone is kept for replication');
  assert.equal(s.stats().tombstones, 1);
  // The removed record cannot be replayed, and the name is free for the next claimant.
  assert.equal(s.put(createNameRecord(A, 'alice', at(NOW + 3, 2n)), NOW + 6), 'stale', 'replay of the removed record');
  assert.equal(s.put(createNameRecord(C, 'alice', at(NOW + 7, 1n)), NOW + 7), 'stored', 'freed name goes to the next key');
  assert.equal(s.put(createNameRecord(A, 'alice', at(NOW + 8, 4n)), NOW + 8), 'taken', 'the old owner now comes second');
  live = s.get(res, RecordKind.Name, NOW + 8);
  assert.deepEqual(live.map((r) => r.owner), [C.publicKey]);
  assert.equal(s.stats().rejected.taken, 3);
});

/** Two keys whose IPv4 derivations collide (birthday search over keys x attempts 0..31; ~100 keys). */
function collidingKeys(): { first: Signer; firstAttempt: number; second: Signer; secondAttempt: number } {
  const seen = new Map<number, { seed: number; attempt: number }>();
  for (let seed = 1; ; seed++) {
    const sk = new Uint8Array(32);
    new DataView(sk.buffer).setUint32(0, seed);
    sk[31] = 0x5a;
    const id = nodeIdFromPublicKey(ed25519.getPublicKey(sk));
    for (let attempt = 0; attempt <= 31; attempt++) {
      const v4 = ipv4FromNodeId(id, attempt);
      const prev = seen.get(v4);
      if (prev && prev.seed !== seed) {
        const psk = new Uint8Array(32);
        new DataView(psk.buffer).setUint32(0, prev.seed);
        psk[31] = 0x5a;
        return { first: signerFromSeed(psk), firstAttempt: prev.attempt, second: signerFromSeed(sk), secondAttempt: attempt };
      }
      if (!prev) seen.set(v4, { seed, attempt });
    }
  }
}

test('IPv4 claims are first-come: a colliding newcomer is refused, re-derives and claims again', () => {
  const { first, firstAttempt, second, secondAttempt } = collidingKeys();
  const v4 = ipv4FromNodeId(first.nodeId, firstAttempt);
  assert.equal(ipv4FromNodeId(second.nodeId, secondAttempt), v4);
  const s = newStore();
  assert.equal(s.put(createIpv4ClaimRecord(first, firstAttempt, at(NOW, 1n)), NOW), 'stored');
  assert.equal(s.put(createIpv4ClaimRecord(second, secondAttempt, at(NOW + 1, 1n)), NOW + 1), 'taken', 'second claim of a taken IPv4');
  assert.equal(s.put(createIpv4ClaimRecord(first, firstAttempt, at(NOW + 2, 2n)), NOW + 2), 'stored', "the holder's refresh");
  // The newcomer re-derives with the next attempt that gives a different address.
  let next = secondAttempt + 1;
  while (ipv4FromNodeId(second.nodeId, next) === v4) next++;
  const again = createIpv4ClaimRecord(second, next, at(NOW + 3, 2n));
  assert.equal(s.put(again, NOW + 3), 'stored');
  const holders = s.get(ipv4ResourceId(v4), RecordKind.Ipv4Claim, NOW + 4);
  assert.deepEqual(holders.map((r) => r.owner), [first.publicKey], 'every peer maps the address to the first claimant');
  // A claim with the wrong attempt for the address is forged.
  const wrong = signRecord({ ...again, value: { ipv4: again.value!.ipv4, attempt: next + 1 } }, second.privateKey);
  assert.equal(s.put(wrong, NOW + 4), 'forged');
});

test('services: many providers per resource, each entry written only by its owner', () => {
  const s = newStore();
  const res = serviceResourceId('turn');
  assert.equal(s.put(createServiceRecord(A, 'turn', [cand], at(NOW, 1n)), NOW), 'stored');
  assert.equal(s.put(createServiceRecord(B, 'turn', [{ ...cand, address: '192.0.2.2' }], at(NOW, 1n)), NOW), 'stored');
  assert.equal(s.get(res, RecordKind.Service, NOW).length, 2);
  const aRec = createServiceRecord(A, 'turn', [cand], at(NOW + 1, 2n));
  assert.equal(s.put(signRecord({ ...aRec, owner: B.publicKey, puzzleNonce: B.puzzleNonce }, B.privateKey), NOW + 1), 'forged',
    "B cannot write an entry that names A's NodeID");
  assert.equal(s.put(createTombstone(A, RecordKind.Service, res, at(NOW + 2, 3n)), NOW + 2), 'stored');
  assert.deepEqual(s.get(res, RecordKind.Service, NOW + 2).map((r) => r.owner), [B.publicKey]);
});

test('expiry: expired on arrival refused, entries vanish at their end, sweep counts, a freed name is claimable', () => {
  const s = newStore();
  assert.equal(s.put(createNameRecord(A, 'gone', at(NOW - 120_000, 1n, 60)), NOW), 'expired');
  assert.equal(s.put(createNameRecord(A, 'alice', at(NOW, 1n, 60)), NOW), 'stored');
  assert.equal(s.put(createNameRecord(A, 'bob', at(NOW, 1n, 600)), NOW), 'stored');
  assert.equal(s.put(createNameRecord(B, 'alice', at(NOW + 30_000, 1n)), NOW + 30_000), 'taken');
  assert.equal(s.get(nameResourceId('alice'), RecordKind.Name, NOW + 59_999).length, 1);
  assert.deepEqual(s.get(nameResourceId('alice'), RecordKind.Name, NOW + 60_000), []);
  assert.equal(s.sweep(NOW + 60_000), 0, 'get already dropped it');
  assert.equal(s.size, 1);
  assert.equal([...s.records(NOW + 60_000)].length, 1);
  assert.equal(s.put(createNameRecord(B, 'alice', at(NOW + 61_000, 2n)), NOW + 61_000), 'stored', 'free after expiry');
  assert.equal(s.sweep(NOW + 200_000_000), 2);
  assert.equal(s.size, 0);
  assert.equal(s.stats().expired, 3);
  assert.equal(s.stats().rejected.expired, 1);
});

test('a record created too far in the future is refused (clock-skew limit)', () => {
  const s = newStore();
  assert.equal(s.put(createNameRecord(A, 'alice', at(NOW + RECORD_MAX_CLOCK_SKEW_MS + 1, 1n)), NOW), 'invalid');
  assert.equal(s.put(createNameRecord(A, 'alice', at(NOW + RECORD_MAX_CLOCK_SKEW_MS, 1n)), NOW), 'stored');
  assert.equal(s.stats().rejected.invalid, 1);
});

test('bounded: the per-owner limit refuses new entries (a locator makes room), a full store evicts, expiry frees room', () => {
  const s = newStore({ maxRecords: 3, maxPerOwner: 2 });
  assert.equal(s.put(createNameRecord(A, 'a1', at(NOW, 1n, 60)), NOW), 'stored');
  assert.equal(s.put(createNameRecord(A, 'a2', at(NOW, 1n)), NOW), 'stored');
  assert.equal(s.put(createNameRecord(A, 'a3', at(NOW, 1n)), NOW), 'full', 'per-owner limit');
  assert.equal(s.put(createNameRecord(A, 'a2', at(NOW + 1, 2n)), NOW + 1), 'stored', 'update of a held entry');
  assert.equal(s.put(createNameRecord(B, 'b1', at(NOW, 1n)), NOW), 'stored');
  assert.equal(s.stats().refused.ownerFull, 1);
  // full: C's first entry evicts one of A's (the owner holding the most), never B's only one
  assert.equal(s.put(createNameRecord(C, 'c1', at(NOW, 1n)), NOW), 'stored', 'a full store makes room');
  assert.equal(s.size, 3);
  assert.equal(s.ownerCount(A.publicKey), 1);
  assert.equal(s.get(nameResourceId('b1'), RecordKind.Name, NOW).length, 1);
  assert.equal(s.stats().evicted.largestOwner, 1);
  // an owner at its limit still gets its locator in: its own newest other entry makes room
  const s2 = newStore({ maxPerOwner: 2 });
  assert.equal(s2.put(createNameRecord(A, 'a1', at(NOW, 1n)), NOW), 'stored');
  assert.equal(s2.put(createNameRecord(A, 'a2', at(NOW, 1n)), NOW), 'stored');
  assert.equal(s2.put(createLocatorRecord(A, { flags: 0, candidates: [cand], rendezvous: [] }, at(NOW, 1n)), NOW), 'stored');
  assert.equal(s2.ownerCount(A.publicKey), 2);
  assert.equal(s2.stats().evicted.ownerForLocator, 1);
  // expiry frees room before anything is evicted
  const s3 = newStore({ maxRecords: 2 });
  assert.equal(s3.put(createNameRecord(A, 'x1', at(NOW, 1n, 60)), NOW), 'stored');
  assert.equal(s3.put(createNameRecord(B, 'x2', at(NOW, 1n)), NOW), 'stored');
  assert.equal(s3.put(createNameRecord(C, 'x3', at(NOW + 60_000, 1n)), NOW + 60_000), 'stored');
  assert.equal(s3.stats().expired, 1);
  assert.equal(s3.stats().evicted.largestOwner, 0);
});
