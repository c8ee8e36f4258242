// Certificates (agent/cert/certificate.ts): round trips, the layout drawn in the module checked byte by
// byte, every field's malformed form, random bytes, and each reason verifyCertificate gives.
import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ed25519 } from '@noble/curves/ed25519.js';
import { Writer } from '../../agent/base/binary.js';
import { CERT_MAX_BYTES, CERT_MAX_GROUPS } from '../../agent/base/constants.js';
import { nodeIdFromPublicKey } from '../../agent/idloc/addresses.js';
import {
  CERT_MAGIC, CERT_VERSION, certificateFingerprint, certificateFromText, certificateToText, marshalCertificate,
  parseCertificate, signCertificate, verifyCertificate, type Certificate, type VerifyOptions,
} from '../../agent/cert/certificate.js';

const NOW = 1_800_000_000;
const keyPair = () => { const seed = ed25519.utils.randomSecretKey(); return { seed, pub: ed25519.getPublicKey(seed) }; };
const ca = keyPair(), other = keyPair(), host = keyPair();

function member(o: Partial<Parameters<typeof signCertificate>[0]> = {}, seed = ca.seed): Certificate {
  return signCertificate({
    kind: 'member', caPublicKey: ca.pub, subjectPublicKey: host.pub, name: 'alice', groups: ['web', 'db'],
    notBefore: NOW - 60, notAfter: NOW + 86_400, ...o,
  }, seed, nodeIdFromPublicKey);
}
const opts = (o: Partial<VerifyOptions> = {}): VerifyOptions => ({ caPublicKeys: [ca.pub], now: NOW, nodeIdOf: nodeIdFromPublicKey, ...o });
/** A plain copy, so parsed fields are Uint8Arrays (not Buffers) and compare deep-equal. */
const reparse = (b: Uint8Array) => parseCertificate(new Uint8Array(b));

/** Certificate bytes written field by field, with nothing checked: for the malformed forms. */
function raw(o: { ver?: number; kind?: number; name?: string; groups?: string[]; nb?: bigint; na?: bigint; sub?: Uint8Array; extra?: number }): Uint8Array {
  const w = new Writer(1024);
  w.u8(CERT_MAGIC); w.u8(o.ver ?? CERT_VERSION); w.u8(o.kind ?? 2);
  w.bytes(ca.pub); w.bytes(o.sub ?? host.pub); w.bytes(nodeIdFromPublicKey(host.pub));
  w.u64(o.nb ?? 1n); w.u64(o.na ?? 2n);
  const name = Buffer.from(o.name ?? 'alice'); w.u8(name.length); w.bytes(name);
  const groups = o.groups ?? [];
  w.u8(groups.length);
  for (const g of groups) { const b = Buffer.from(g); w.u8(b.length); w.bytes(b); }
  w.bytes(new Uint8Array(64 + (o.extra ?? 0)));
  return w.done();
}

test('a member certificate round-trips and verifies; its bytes follow the drawn layout', () => {
  const c = member();
  assert.deepEqual(c.groups, ['db', 'web'], 'signing sorts the groups');
  const b = marshalCertificate(c);
  assert.equal(b[0], 0xce); assert.equal(b[1], 1); assert.equal(b[2], 2);
  assert.deepEqual(b.subarray(3, 35), ca.pub);
  assert.deepEqual(b.subarray(35, 67), host.pub);
  assert.deepEqual(b.subarray(67, 87), nodeIdFromPublicKey(host.pub));
  assert.equal(Buffer.from(b).readBigUInt64BE(87), BigInt(NOW - 60));
  assert.equal(Buffer.from(b).readBigUInt64BE(95), BigInt(NOW + 86_400));
  assert.equal(b[103], 5); assert.equal(Buffer.from(b.subarray(104, 109)).toString(), 'alice');
  assert.deepEqual([...b.subarray(109, 117)], [2, 2, 0x64, 0x62, 3, 0x77, 0x65, 0x62]);
  assert.equal(b.length, 117 + 64);
  assert.deepEqual(reparse(b), c);
  assert.deepEqual(verifyCertificate(c, opts()), { ok: true });
  assert.deepEqual(verifyCertificate(reparse(b)!, opts({ expectSubjectKey: host.pub })), { ok: true });
});

test('a CA certificate is self-signed, verifies only as a CA, and a CA kind naming another subject is refused', () => {
  const c = member({ kind: 'ca', subjectPublicKey: ca.pub, groups: [] });
  assert.deepEqual(verifyCertificate(reparse(marshalCertificate(c))!, opts({ kind: 'ca' })), { ok: true });
  assert.deepEqual(verifyCertificate(c, opts()), { ok: false, reason: 'wrong-kind' });
  assert.throws(() => member({ kind: 'ca' }), RangeError);
  assert.equal(parseCertificate(raw({ kind: 1 })), undefined);
});

test('the largest certificate (63-character name, 8 groups of 32) fits CERT_MAX_BYTES', () => {
  const groups = Array.from({ length: CERT_MAX_GROUPS }, (_, i) => String.fromCharCode(97 + i).repeat(32));
  const b = marshalCertificate(member({ name: 'n'.repeat(63), groups }));
  assert.equal(b.length, 496);
  assert.ok(b.length <= CERT_MAX_BYTES);
  assert.deepEqual(reparse(b)?.groups, groups);
});

test('every truncation and any trailing byte is refused', () => {
  const b = marshalCertificate(member());
  for (let n = 0; n < b.length; n++) assert.equal(parseCertificate(b.subarray(0, n)), undefined, `truncated to ${n}`);
  const longer = new Uint8Array(b.length + 1); longer.set(b);
  assert.equal(parseCertificate(longer), undefined);
  assert.equal(parseCertificate(new Uint8Array(CERT_MAX_BYTES + 1)), undefined);
});

test('a flipped bit anywhere is refused by the parser or by the signature check', () => {
  const b = marshalCertificate(member());
  for (let i = 0; i < b.length; i++) {
    for (const bit of [0x01, 0x80]) {
      const m = new Uint8Array(b); m[i]! ^= bit;
      const c = parseCertificate(m);
      if (c) assert.equal(verifyCertificate(c, opts()).ok, false, `byte ${i} bit ${bit}`);
    }
  }
});

test('malformed fields: version, kind, name, groups, validity', () => {
  assert.ok(parseCertificate(raw({})), 'the raw writer makes a parseable certificate');
  const bad: [string, Uint8Array][] = [
    ['version 2', raw({ ver: 2 })], ['version 0', raw({ ver: 0 })], ['kind 0', raw({ kind: 0 })], ['kind 3', raw({ kind: 3 })],
    ['empty name', raw({ name: '' })], ['64-character name', raw({ name: 'a'.repeat(64) })],
    ['uppercase name', raw({ name: 'Alice' })], ['leading dash', raw({ name: '-a' })], ['trailing dash', raw({ name: 'a-' })],
    ['non-ASCII name', raw({ name: 'ä' })], ['NodeID-like name', raw({ name: 'a'.repeat(40) })],
    ['9 groups', raw({ groups: Array.from({ length: 9 }, (_, i) => `g${i}`) })],
    ['33-character group', raw({ groups: ['g'.repeat(33)] })], ['empty group', raw({ groups: [''] })],
    ['unsorted groups', raw({ groups: ['web', 'db'] })], ['repeated group', raw({ groups: ['db', 'db'] })],
    ['notBefore after notAfter', raw({ nb: 3n, na: 2n })], ['notAfter past 2^53', raw({ na: 1n << 60n })],
    ['signature one byte long', raw({ extra: 1 })],
  ];
  for (const [what, b] of bad) assert.equal(parseCertificate(b), undefined, what);
  const m = marshalCertificate(member()); m[0] = 0xcf;
  assert.equal(parseCertificate(m), undefined, 'wrong magic');
});

test('signing refuses fields the parser would refuse', () => {
  assert.throws(() => member({ name: 'Bad_Name' }), RangeError);
  assert.throws(() => member({ groups: Array.from({ length: 9 }, (_, i) => `g${i}`) }), RangeError);
  assert.throws(() => member({ groups: ['x'.repeat(33)] }), RangeError);
  assert.throws(() => member({ notBefore: NOW, notAfter: NOW - 1 }), RangeError);
  assert.throws(() => member({ subjectPublicKey: new Uint8Array(31) }), RangeError);
});

test('random bytes, and random changes to a valid certificate, never throw', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), (b) => { parseCertificate(b); }), { numRuns: 2000 });
  const b = marshalCertificate(member());
  fc.assert(fc.property(fc.array(fc.tuple(fc.nat(b.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), (edits) => {
    const m = new Uint8Array(b);
    for (const [i, v] of edits) m[i] = v;
    const c = parseCertificate(m);
    if (c) verifyCertificate(c, opts());
  }), { numRuns: 2000 });
});

test('verify: expiry and start are inclusive bounds', () => {
  const c = member();
  assert.deepEqual(verifyCertificate(c, opts({ now: c.notAfter })), { ok: true });
  assert.deepEqual(verifyCertificate(c, opts({ now: c.notAfter + 1 })), { ok: false, reason: 'expired' });
  assert.deepEqual(verifyCertificate(c, opts({ now: c.notBefore })), { ok: true });
  assert.deepEqual(verifyCertificate(c, opts({ now: c.notBefore - 1 })), { ok: false, reason: 'not-yet-valid' });
});

test('verify: another CA, a forged CA field, a mismatched key or NodeID, a revoked key', () => {
  const c = member();
  assert.deepEqual(verifyCertificate(c, opts({ caPublicKeys: [other.pub] })), { ok: false, reason: 'wrong-ca' });
  assert.deepEqual(verifyCertificate(c, opts({ caPublicKeys: [other.pub, ca.pub] })), { ok: true });
  // signed by `other` but naming our CA: the signature does not hold
  assert.deepEqual(verifyCertificate(member({}, other.seed), opts()), { ok: false, reason: 'bad-signature' });
  assert.deepEqual(verifyCertificate(c, opts({ expectSubjectKey: other.pub })), { ok: false, reason: 'wrong-key' });
  assert.deepEqual(verifyCertificate(c, opts({ nodeIdOf: () => new Uint8Array(20) })), { ok: false, reason: 'wrong-node-id' });
  const revoked = (k: Uint8Array) => Buffer.from(k).equals(host.pub);
  assert.deepEqual(verifyCertificate(c, opts({ isRevoked: revoked })), { ok: false, reason: 'revoked' });
  assert.deepEqual(verifyCertificate({ ...c, name: 'mallory' }, opts()), { ok: false, reason: 'bad-signature' });
  assert.deepEqual(verifyCertificate({ ...c, groups: ['admin'] }, opts()), { ok: false, reason: 'bad-signature' });
  assert.deepEqual(verifyCertificate({ ...c, notAfter: c.notAfter + 1 }, opts()), { ok: false, reason: 'bad-signature' });
  assert.deepEqual(verifyCertificate({ ...c, name: 'Not Valid' }, opts()), { ok: false, reason: 'bad-signature' });
});

test('the text form round-trips, its comments do not count, and anything else in place of the block is refused', () => {
  const c = member();
  const text = certificateToText(c);
  assert.match(text, /^# idloc member certificate "alice" groups db,web\n/);
  assert.match(text, /\n-----BEGIN IDLOC CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END IDLOC CERTIFICATE-----\n$/);
  assert.deepEqual(certificateFromText(text), c);
  assert.deepEqual(certificateFromText(text.replace('"alice"', '"mallory"')), c);
  assert.equal(certificateFromText(''), undefined);
  assert.equal(certificateFromText(text.replace('-----END', '*-----END')), undefined);
  assert.equal(certificateFromText(text + text), undefined, 'two certificates in one file');
  assert.equal(certificateFromText(text.replace('BEGIN IDLOC CERTIFICATE', 'BEGIN IDLOC REVOCATION LIST')), undefined);
});

test('fingerprints are the bytes\' hash: equal for the same certificate, different for any other', () => {
  const c = member();
  const fp = certificateFingerprint(c);
  assert.equal(fp.length, 32);
  assert.deepEqual(certificateFingerprint(marshalCertificate(c)), fp);
  assert.notDeepEqual(certificateFingerprint(member({ notAfter: c.notAfter + 1 })), fp);
});
