// Overlay records: canonical round-trips, malformed input, and every way a record can be forged or wrong.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ed25519 } from '@noble/curves/ed25519.js';
import {
  IPV4_MAX_CLAIM_ATTEMPT, LOCATOR_MAX_CANDIDATES, LOCATOR_MAX_RENDEZVOUS, RECORD_MAX_CLOCK_SKEW_MS, RECORD_MAX_LIFETIME_S,
  SERVICE_MAX_ENDPOINTS,
} from '../../agent/base/constants.js';
import { formatIpv4, formatIpv6, ipv4FromNodeId, nodeIdFromPublicKey } from '../../agent/idloc/addresses.js';
import { solvePuzzle, verifyPuzzle } from '../../agent/overlay/puzzle.js';
import {
  CandidateType, RECORD_HEADER_LEN, RECORD_MAX_LEN, RecordKind, ServiceFlag, createIpv4ClaimRecord,
  createLocatorRecord, createNameRecord, createNameTombstone, createServiceRecord, marshalRecord, newestPerOwner,
  parseRecord, signRecord, verifyRecord, type Candidate, type OverlayRecord, type RecordSigner,
  type UnsignedRecord,
} from '../../agent/overlay/records.js';
import {
  ipv4ResourceId, isValidName, locatorResourceId, nameResourceId, normalizeName, serviceResourceId,
} from '../../agent/overlay/names.js';

const D = 4; // low puzzle difficulty keeps the tests fast
const OPTS = { puzzleDifficulty: D };
const NOW = 1_700_000_000_000;

function signer(seed: number): RecordSigner & { publicKey: Uint8Array; nodeId: Uint8Array } {
  const privateKey = new Uint8Array(32).fill(seed);
  const publicKey = ed25519.getPublicKey(privateKey);
  return { privateKey, publicKey, nodeId: nodeIdFromPublicKey(publicKey), puzzleNonce: solvePuzzle(publicKey, D) };
}
const A = signer(1);
const B = signer(2);
const eq = (a: Uint8Array, b: Uint8Array) => Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;

const cands: Candidate[] = [
  { address: '192.0.2.7', port: 4500, type: CandidateType.Host, priority: 2130706431 },
  { address: '2001:db8::7', port: 4500, type: CandidateType.Host, priority: 2130706175 },
  { address: '198.51.100.9', port: 61000, type: CandidateType.Srflx, priority: 1694498815 },
  { address: '203.0.113.1', port: 3478, type: CandidateType.Relay, priority: 16777215 },
];

// ---- fast-check arbitraries -------------------------------------------------------------------

const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const label = (max: number) => fc.stringMatching(new RegExp(`^[a-z0-9](?:[a-z0-9-]{0,${max - 2}}[a-z0-9])?$`));
// Plain-prototype objects, so deepEqual against parsed records compares fields only.
const rec = <T,>(m: { [K in keyof T]: fc.Arbitrary<T[K]> }): fc.Arbitrary<T> => fc.record(m, { noNullPrototype: true });
const arbCandidate: fc.Arbitrary<Candidate> = rec({
  address: fc.oneof(u32.map(formatIpv4), bytes(16).map(formatIpv6)),
  port: fc.integer({ min: 0, max: 0xffff }),
  type: fc.constantFrom(CandidateType.Host, CandidateType.Srflx, CandidateType.Relay),
  priority: u32,
});
const arbHeader = rec({
  resourceId: bytes(20), owner: bytes(32), seq: u64, created: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  lifetime: u32, puzzleNonce: u64, signature: bytes(64),
});
const arbValue = fc.oneof(
  rec({ kind: fc.constant(RecordKind.Locator), value: fc.option(rec({
    flags: u32, candidates: fc.array(arbCandidate, { maxLength: LOCATOR_MAX_CANDIDATES }),
    rendezvous: fc.array(bytes(20), { maxLength: LOCATOR_MAX_RENDEZVOUS }),
  })) }),
  rec({ kind: fc.constant(RecordKind.Ipv4Claim), value: fc.option(rec({ ipv4: u32, attempt: u32 })) }),
  rec({ kind: fc.constant(RecordKind.Name), value: fc.option(rec({ name: label(63).filter(isValidName), nodeId: bytes(20) })) }),
  rec({ kind: fc.constant(RecordKind.Service), value: fc.option(rec({
    service: label(32), nodeId: bytes(20), endpoints: fc.array(arbCandidate, { maxLength: SERVICE_MAX_ENDPOINTS }),
  })) }),
);
const arbRecord = fc.tuple(arbHeader, arbValue).map(([h, v]) => ({ ...h, ...v }) as OverlayRecord);

// ---- format ---------------------------------------------------------------------------------------

test('every record round-trips through marshal/parse, and the encoding is canonical', () => {
  fc.assert(fc.property(arbRecord, (r) => {
    const b = marshalRecord(r);
    assert.ok(b.length <= RECORD_MAX_LEN);
    const p = parseRecord(b);
    assert.ok(p, 'parses');
    assert.deepEqual(p, r);
    assert.ok(eq(marshalRecord(p), b));
  }), { numRuns: 500 });
});

test('parse never throws on random bytes, and whatever it accepts re-marshals to the same bytes', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 1300 }), (b) => {
    const p = parseRecord(b);
    if (p) assert.ok(eq(marshalRecord(p), b));
  }), { numRuns: 2000 });
});

test('parse never throws on mutated valid records (bit flips, truncation, extension)', () => {
  fc.assert(fc.property(arbRecord, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 2 }), (r, pos, x, how) => {
    let b = marshalRecord(r);
    if (how === 0) { b = Uint8Array.from(b); b[pos % b.length] ^= x; }
    else if (how === 1) b = b.subarray(0, pos % b.length);
    else b = Uint8Array.from([...b, x]);
    const p = parseRecord(b);
    if (how !== 0) assert.equal(p, undefined, 'wrong length is refused');
    if (p) assert.ok(eq(marshalRecord(p), b));
  }), { numRuns: 1000 });
});

test('parse refuses wrong version, unknown kind, bad lengths, and non-canonical values', () => {
  const good = marshalRecord(createNameRecord(A, 'alice', { now: NOW }));
  assert.ok(parseRecord(good));
  const mut = (f: (b: Uint8Array) => void) => { const b = Uint8Array.from(good); f(b); return parseRecord(b); };
  assert.equal(mut((b) => { b[0] = 2; }), undefined, 'version');
  assert.equal(mut((b) => { b[1] = 9; }), undefined, 'kind');
  assert.equal(mut((b) => { b[1] = 0; }), undefined, 'kind 0');
  assert.equal(mut((b) => { b[RECORD_HEADER_LEN - 1]! += 1; }), undefined, 'value length');
  assert.equal(mut((b) => { b[RECORD_HEADER_LEN + 1] = 'A'.charCodeAt(0); }), undefined, 'uppercase name');
  assert.equal(mut((b) => { b[RECORD_HEADER_LEN + 1] = '-'.charCodeAt(0); }), undefined, 'leading hyphen');
  assert.equal(mut((b) => { b[62] = 0xff; }), undefined, 'created beyond 2^53');
  assert.equal(parseRecord(new Uint8Array(0)), undefined);
  assert.equal(parseRecord(new Uint8Array(RECORD_MAX_LEN + 1)), undefined);
  assert.throws(() => marshalRecord({ ...createNameRecord(A, 'alice', { now: NOW }), signature: new Uint8Array(3) }), RangeError);
});

// ---- names and resource ids --------------------------------------------------------------------

test('name rules: lowercase [a-z0-9-], 1..63, no edge hyphen, not a 40-hex NodeID; normalizeName maps input', () => {
  assert.equal(normalizeName('Alice'), 'alice');
  assert.equal(normalizeName(' bob.idloc. '), 'bob');
  assert.equal(normalizeName('BOB.IDLOC'), 'bob');
  assert.equal(normalizeName('a-1'), 'a-1');
  assert.equal(normalizeName('x'.repeat(63)), 'x'.repeat(63));
  for (const bad of ['', '-a', 'a-', 'a_b', 'a.b', 'x'.repeat(64), 'ålice', 'a b', 'a'.repeat(40).replace(/a/g, 'f')]) {
    assert.equal(normalizeName(bad), undefined, JSON.stringify(bad));
  }
  assert.ok(eq(nameResourceId('Alice'), nameResourceId('alice')));
  assert.ok(!eq(nameResourceId('alice'), nameResourceId('alicf')));
  assert.throws(() => nameResourceId('-x'), RangeError);
  assert.throws(() => createNameRecord(A, 'no_good', { now: NOW }), RangeError);
  assert.equal(nameResourceId('alice').length, 20);
  assert.ok(eq(locatorResourceId(A.publicKey), A.nodeId));
  assert.ok(!eq(serviceResourceId('stun'), serviceResourceId('turn')));
});

// ---- verification --------------------------------------------------------------------------------

test('records made by the helpers verify, for every kind', () => {
  const loc = createLocatorRecord(A, { flags: ServiceFlag.Stun | ServiceFlag.Rendezvous, candidates: cands, rendezvous: [B.nodeId] }, { now: NOW });
  const v4 = createIpv4ClaimRecord(A, 0, { now: NOW });
  const name = createNameRecord(A, 'Alice', { now: NOW });
  const svc = createServiceRecord(A, 'turn', cands.slice(3), { now: NOW });
  for (const r of [loc, v4, name, svc]) {
    assert.equal(verifyRecord(r, NOW, OPTS), 'valid', `kind ${r.kind}`);
    assert.equal(verifyRecord(parseRecord(marshalRecord(r))!, NOW + 1000, OPTS), 'valid', `kind ${r.kind} after the wire`);
  }
  assert.ok(eq(v4.resourceId, ipv4ResourceId(ipv4FromNodeId(A.nodeId, 0))));
  assert.equal(v4.value!.ipv4, ipv4FromNodeId(A.nodeId, 0));
  assert.equal(name.value!.name, 'alice');
  assert.ok(eq(loc.resourceId, A.nodeId));
  assert.equal(name.seq, BigInt(NOW), 'default sequence is the creation time in ms');
});

test('a forged signature, a wrong key, or any tampered field is rejected', () => {
  const r = createNameRecord(A, 'alice', { now: NOW });
  const sig = Uint8Array.from(r.signature); sig[5]! ^= 1;
  assert.equal(verifyRecord({ ...r, signature: sig }, NOW, OPTS), 'forged', 'flipped signature bit');
  assert.equal(verifyRecord({ ...r, seq: r.seq + 1n }, NOW, OPTS), 'forged', 'sequence');
  assert.equal(verifyRecord({ ...r, created: r.created + 1 }, NOW, OPTS), 'forged', 'created');
  assert.equal(verifyRecord({ ...r, lifetime: r.lifetime - 1 }, NOW, OPTS), 'forged', 'lifetime');
  // B's key with A's signature: B's NodeID is not the one the name points to.
  assert.equal(verifyRecord({ ...r, owner: B.publicKey, puzzleNonce: B.puzzleNonce }, NOW, OPTS), 'forged', 'owner swapped');
  // B signs a record that names A's NodeID: the name can only point at the signer's own NodeID.
  const u: UnsignedRecord = { ...r, owner: B.publicKey, puzzleNonce: B.puzzleNonce };
  assert.equal(verifyRecord(signRecord(u, B.privateKey), NOW, OPTS), 'forged', 'name pointing at another NodeID');
  // B writes A's locator (resource = A's NodeID): only A's key may.
  const loc = createLocatorRecord(A, { flags: 0, candidates: cands, rendezvous: [] }, { now: NOW });
  const byB = signRecord({ ...loc, owner: B.publicKey, puzzleNonce: B.puzzleNonce }, B.privateKey);
  assert.equal(verifyRecord(byB, NOW, OPTS), 'forged', "B writing A's locator");
  const locMoved = { ...loc, value: { ...loc.value!, candidates: [{ ...cands[0]!, address: '192.0.2.66' }] } };
  assert.equal(verifyRecord(locMoved, NOW, OPTS), 'forged', 'candidate address changed after signing');
});

test('every single-byte change on the wire is refused by parse or by verify', () => {
  const r = createServiceRecord(A, 'stun', cands.slice(0, 2), { now: NOW });
  const b = marshalRecord(r);
  for (let i = 0; i < b.length; i++) {
    const m = Uint8Array.from(b); m[i]! ^= 0x01;
    const p = parseRecord(m);
    if (p) assert.notEqual(verifyRecord(p, NOW, OPTS), 'valid', `byte ${i}`);
  }
});

test('IPv4 claims: only the attempt that derives the address, within the attempt limit, and not another key\'s address', () => {
  const ipv4 = ipv4FromNodeId(A.nodeId, 0);
  const wrong = ipv4FromNodeId(A.nodeId, 1) === ipv4 ? 2 : 1;
  const base = createIpv4ClaimRecord(A, 0, { now: NOW });
  const wrongAttempt = signRecord({ ...base, kind: RecordKind.Ipv4Claim, value: { ipv4, attempt: wrong } }, A.privateKey);
  assert.equal(verifyRecord(wrongAttempt, NOW, OPTS), 'forged', 'wrong attempt');
  const bIpv4 = ipv4FromNodeId(B.nodeId, 0);
  const stealing = signRecord({ ...base, resourceId: ipv4ResourceId(bIpv4), kind: RecordKind.Ipv4Claim, value: { ipv4: bIpv4, attempt: 0 } }, A.privateKey);
  assert.equal(verifyRecord(stealing, NOW, OPTS), 'forged', "claiming B's address with A's key");
  const mismatch = signRecord({ ...base, resourceId: ipv4ResourceId(ipv4 + 1) }, A.privateKey);
  assert.equal(verifyRecord(mismatch, NOW, OPTS), 'invalid', 'resource id not the hash of the address');
  const far = IPV4_MAX_CLAIM_ATTEMPT + 1;
  assert.equal(verifyRecord(createIpv4ClaimRecord(A, far, { now: NOW }), NOW, OPTS), 'invalid', 'attempt over the limit');
  assert.equal(verifyRecord(createIpv4ClaimRecord(A, IPV4_MAX_CLAIM_ATTEMPT, { now: NOW }), NOW, OPTS), 'valid');
});

test('name or service resource id that does not match the value is invalid', () => {
  const r = createNameRecord(A, 'alice', { now: NOW });
  assert.equal(verifyRecord(signRecord({ ...r, resourceId: nameResourceId('bob') }, A.privateKey), NOW, OPTS), 'invalid');
  const s = createServiceRecord(A, 'stun', [], { now: NOW });
  assert.equal(verifyRecord(signRecord({ ...s, resourceId: serviceResourceId('turn') }, A.privateKey), NOW, OPTS), 'invalid');
});

test('expiry, lifetime cap and the clock-skew limit', () => {
  const r = createNameRecord(A, 'alice', { now: NOW, lifetime: 60 });
  assert.equal(verifyRecord(r, NOW + 59_999, OPTS), 'valid');
  assert.equal(verifyRecord(r, NOW + 60_000, OPTS), 'expired');
  assert.equal(verifyRecord(createNameRecord(A, 'alice', { now: NOW, lifetime: 0 }), NOW, OPTS), 'expired');
  assert.equal(verifyRecord(createNameRecord(A, 'alice', { now: NOW, lifetime: RECORD_MAX_LIFETIME_S + 1 }), NOW, OPTS), 'invalid');
  assert.equal(verifyRecord(createNameRecord(A, 'alice', { now: NOW, lifetime: RECORD_MAX_LIFETIME_S }), NOW, OPTS), 'valid');
  const future = createNameRecord(A, 'alice', { now: NOW + RECORD_MAX_CLOCK_SKEW_MS + 1 });
  assert.equal(verifyRecord(future, NOW, OPTS), 'invalid', 'created too far in the future');
  assert.equal(verifyRecord(createNameRecord(A, 'alice', { now: NOW + RECORD_MAX_CLOCK_SKEW_MS }), NOW, OPTS), 'valid');
});

test('the owner\'s puzzle proof is checked at the configured difficulty', () => {
  let bad = 0n;
  while (verifyPuzzle(A.publicKey, bad, D)) bad++;
  const r = createNameRecord({ ...A, puzzleNonce: bad }, 'alice', { now: NOW });
  assert.equal(verifyRecord(r, NOW, OPTS), 'forged', 'no valid proof');
  assert.equal(verifyRecord(r, NOW, { puzzleDifficulty: 0 }), 'valid', 'difficulty 0 accepts it');
  const good = createNameRecord(A, 'alice', { now: NOW });
  assert.equal(verifyRecord(good, NOW, { puzzleDifficulty: 30 }), 'forged', 'a 4-bit proof does not meet 30 bits');
});

test('verifyRecord never throws on nonsense records', () => {
  fc.assert(fc.property(arbRecord, (r) => { assert.notEqual(verifyRecord(r, NOW, OPTS), 'valid'); }), { numRuns: 100 });
  const r = createNameRecord(A, 'alice', { now: NOW });
  const junk = [
    { ...r, value: { name: 'Not Valid', nodeId: A.nodeId } },
    { ...r, resourceId: new Uint8Array(3) },
    { ...r, seq: -1n },
    { ...r, created: Number.NaN },
    { ...r, signature: new Uint8Array(10) },
    { ...r, kind: 77 },
    { ...r, value: undefined },
  ] as unknown as OverlayRecord[];
  for (const j of junk) assert.equal(verifyRecord(j, NOW, OPTS), 'invalid');
});

test('tombstones: empty value, owner-signed; newestPerOwner keeps the highest sequence per owner', () => {
  const r = createNameRecord(A, 'alice', { now: NOW, seq: 5n });
  const t = createNameTombstone(A, 'alice', { now: NOW + 1, seq: 6n });
  assert.equal(t.value, null);
  assert.equal(marshalRecord(t).length, RECORD_HEADER_LEN + 64);
  assert.equal(verifyRecord(t, NOW + 1, OPTS), 'valid');
  assert.deepEqual(parseRecord(marshalRecord(t)), t);
  const rB = createNameRecord(B, 'alice', { now: NOW, seq: 1n });
  const merged = newestPerOwner([r, t, rB, r]);
  assert.equal(merged.length, 2);
  assert.ok(merged.includes(t) && merged.includes(rB));
});
