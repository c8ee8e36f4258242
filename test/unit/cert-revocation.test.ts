// Revocation lists (agent/cert/revocation.ts): round trips, the drawn layout, malformed forms, random
// bytes, which list supersedes which, and the bound on its length.
import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ed25519 } from '@noble/curves/ed25519.js';
import { CERT_MAX_REVOKED } from '../../agent/base/constants.js';
import {
  CRL_MAX_BYTES, isRevoked, marshalRevocationList, parseRevocationList, revocationListFromText, revocationListToText,
  signRevocationList, supersedes, verifyRevocationList, type RevocationList,
} from '../../agent/cert/revocation.js';

const keyPair = () => { const seed = ed25519.utils.randomSecretKey(); return { seed, pub: ed25519.getPublicKey(seed) }; };
const ca = keyPair(), other = keyPair();
const key = (n: number) => { const k = new Uint8Array(32); k[0] = n >> 8; k[1] = n & 0xff; k[31] = 7; return k; };
const list = (revoked: Uint8Array[], sequence = 1, seed = ca.seed): RevocationList =>
  signRevocationList({ caPublicKey: ca.pub, sequence, issuedAt: 1_800_000_000, revoked }, seed);
const reparse = (b: Uint8Array) => parseRevocationList(new Uint8Array(b));

test('a list round-trips, verifies, sorts and deduplicates its keys, and follows the drawn layout', () => {
  const l = list([key(3), key(1), key(2), key(1)]);
  assert.deepEqual(l.revoked, [key(1), key(2), key(3)]);
  const b = marshalRevocationList(l);
  assert.equal(b[0], 0xcf); assert.equal(b[1], 1);
  assert.deepEqual(b.subarray(2, 34), ca.pub);
  assert.equal(Buffer.from(b).readBigUInt64BE(34), 1n);
  assert.equal(Buffer.from(b).readBigUInt64BE(42), 1_800_000_000n);
  assert.equal(Buffer.from(b).readUInt16BE(50), 3);
  assert.deepEqual(b.subarray(52, 84), key(1));
  assert.equal(b.length, 52 + 3 * 32 + 64);
  assert.deepEqual(reparse(b), l);
  assert.ok(verifyRevocationList(reparse(b)!, [ca.pub]));
  assert.ok(isRevoked(l, key(2)));
  assert.ok(!isRevoked(l, key(4)));
  assert.ok(!isRevoked(l, key(2).subarray(0, 31)));
  const empty = list([]);
  assert.deepEqual(reparse(marshalRevocationList(empty)), empty);
  assert.ok(!isRevoked(empty, key(1)));
});

test('another CA\'s list, a forged field or signature, and an untrusted CA do not verify', () => {
  const l = list([key(1)]);
  assert.ok(!verifyRevocationList(l, [other.pub]));
  assert.ok(!verifyRevocationList(list([key(1)], 1, other.seed), [ca.pub]), 'signed by another key, naming our CA');
  assert.ok(!verifyRevocationList({ ...l, sequence: 2 }, [ca.pub]));
  assert.ok(!verifyRevocationList({ ...l, revoked: [] }, [ca.pub]));
  assert.ok(!verifyRevocationList({ ...l, revoked: [key(2), key(1)] }, [ca.pub]));
  const b = marshalRevocationList(l);
  for (let i = 0; i < b.length; i++) {
    const m = new Uint8Array(b); m[i]! ^= 0x01;
    const p = parseRevocationList(m);
    if (p) assert.ok(!verifyRevocationList(p, [ca.pub]), `byte ${i}`);
  }
});

test('a higher sequence of the same CA supersedes; a lower or equal one, or another CA\'s, does not', () => {
  const one = list([key(1)], 1), two = list([key(1), key(2)], 2);
  assert.ok(supersedes(one, undefined));
  assert.ok(supersedes(two, one));
  assert.ok(!supersedes(one, two), 'an old list replayed cannot un-revoke');
  assert.ok(!supersedes(list([], 2), two));
  const theirs = signRevocationList({ caPublicKey: other.pub, sequence: 9, issuedAt: 0, revoked: [] }, other.seed);
  assert.ok(!supersedes(theirs, two));
});

test('the list holds at most CERT_MAX_REVOKED keys: signing more throws, parsing more is refused', () => {
  const full = list(Array.from({ length: CERT_MAX_REVOKED }, (_, i) => key(i)));
  const b = marshalRevocationList(full);
  assert.equal(b.length, CRL_MAX_BYTES);
  assert.equal(reparse(b)?.revoked.length, CERT_MAX_REVOKED);
  assert.throws(() => list(Array.from({ length: CERT_MAX_REVOKED + 1 }, (_, i) => key(i))), RangeError);
  // one more key and a count to match: over the bound, and over CRL_MAX_BYTES
  const over = new Uint8Array(b.length + 32);
  over.set(b.subarray(0, 52 + CERT_MAX_REVOKED * 32));
  over.set(key(CERT_MAX_REVOKED), 52 + CERT_MAX_REVOKED * 32);
  Buffer.from(over.buffer).writeUInt16BE(CERT_MAX_REVOKED + 1, 50);
  assert.equal(parseRevocationList(over), undefined);
});

test('truncation, trailing bytes, wrong magic or version, a count that disagrees, keys out of order', () => {
  const b = marshalRevocationList(list([key(1), key(2)]));
  for (let n = 0; n < b.length; n++) assert.equal(parseRevocationList(b.subarray(0, n)), undefined, `truncated to ${n}`);
  const longer = new Uint8Array(b.length + 1); longer.set(b);
  assert.equal(parseRevocationList(longer), undefined);
  const patch = (at: number, v: number) => { const m = new Uint8Array(b); m[at] = v; return parseRevocationList(m); };
  assert.equal(patch(0, 0xce), undefined, 'magic');
  assert.equal(patch(1, 2), undefined, 'version');
  assert.equal(patch(51, 1), undefined, 'count 1 with 2 keys');
  assert.equal(patch(51, 3), undefined, 'count 3 with 2 keys');
  const swapped = new Uint8Array(b);
  swapped.set(b.subarray(84, 116), 52); swapped.set(b.subarray(52, 84), 84);
  assert.equal(parseRevocationList(swapped), undefined, 'descending keys');
  const repeated = new Uint8Array(b); repeated.set(b.subarray(52, 84), 84);
  assert.equal(parseRevocationList(repeated), undefined, 'a repeated key');
  const bigSeq = new Uint8Array(b); bigSeq[34] = 0xff;
  assert.equal(parseRevocationList(bigSeq), undefined, 'sequence past 2^53');
});

test('random bytes, and random changes to a valid list, never throw', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), (b) => { parseRevocationList(b); }), { numRuns: 2000 });
  const b = marshalRevocationList(list([key(1), key(2), key(3)]));
  fc.assert(fc.property(fc.array(fc.tuple(fc.nat(b.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), (edits) => {
    const m = new Uint8Array(b);
    for (const [i, v] of edits) m[i] = v;
    const p = parseRevocationList(m);
    if (p) verifyRevocationList(p, [ca.pub]);
  }), { numRuns: 2000 });
});

test('the text form round-trips and says what it holds', () => {
  const l = list([key(1)], 4);
  const text = revocationListToText(l);
  assert.match(text, /^# idloc revocation list 4 of CA [0-9a-f]{64}\n# issued 2027-01-15T08:00:00Z, 1 revoked key\n-----BEGIN IDLOC REVOCATION LIST-----\n/);
  assert.deepEqual(revocationListFromText(text), l);
  assert.equal(revocationListFromText(text.replace(/\n[A-Za-z0-9+/]{10}/, '\n!!!!!!!!!!')), undefined);
});
