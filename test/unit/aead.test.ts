// ChaCha20-Poly1305 (agent/nat/aead.ts): the native addon against node:crypto on random inputs, the
// RFC 8439 section 2.8.2 vector, tamper detection, in-place use and argument checking.
import test from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, createDecipheriv } from 'node:crypto';
import fc from 'fast-check';
import { Aead } from '../../agent/tunnel/aead.js';

const native = Aead.nativeAvailable();
const skip = !native && 'idloc_net addon not built';
const hex = (s: string) => Buffer.from(s.replace(/[^0-9a-f]/gi, ''), 'hex');

function counterNonce(c: number): Buffer {
  const n = Buffer.alloc(12);
  n.writeUInt32LE(c >>> 0, 4);
  n.writeUInt32LE(Math.floor(c / 0x100000000), 8);
  return n;
}

function refSeal(key: Uint8Array, nonce: Uint8Array, pt: Uint8Array, aad?: Uint8Array): Buffer {
  const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
  if (aad) c.setAAD(aad, { plaintextLength: pt.length });
  return Buffer.concat([c.update(pt), c.final(), c.getAuthTag()]);
}

test('RFC 8439 2.8.2 AEAD test vector, native and fallback', () => {
  const key = hex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f');
  const nonce = hex('070000004041424344454647');
  const aad = hex('50515253c0c1c2c3c4c5c6c7');
  const pt = Buffer.from("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.");
  const expected = hex(`
    d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b
    1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc
    3ff4def08e4b7a9de576d26586cec64b6116
    1ae10b594f09e26a7e902ecbd0600691`);
  assert.deepEqual(refSeal(key, nonce, pt, aad), expected, 'the vector itself, checked against node:crypto');
  for (const opts of native ? [{}, { native: false }] : [{ native: false }]) {
    const a = new Aead(key, opts);
    const out = Buffer.alloc(expected.length + 5);
    assert.equal(a.seal(nonce, pt, out, 5, aad), expected.length);
    assert.deepEqual(out.subarray(5), expected);
    const back = Buffer.alloc(pt.length);
    assert.equal(a.open(nonce, expected, back, 0, aad), pt.length);
    assert.deepEqual(back, pt);
    assert.equal(a.open(nonce, expected, back, 0), -1, 'without the AAD it does not authenticate');
  }
});

test('native seal/open match node:crypto on random keys, counters, nonces and lengths', { skip }, () => {
  const nonceArb = fc.oneof(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), fc.uint8Array({ minLength: 12, maxLength: 12 }));
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 32, maxLength: 32 }), nonceArb, fc.uint8Array({ minLength: 0, maxLength: 2000 }),
      fc.nat(64), fc.option(fc.uint8Array({ maxLength: 40 }), { nil: undefined }),
      (key, nonce, pt, off, aad) => {
        const nonceBytes = typeof nonce === 'number' ? counterNonce(nonce) : nonce;
        const expected = refSeal(key, nonceBytes, pt, aad);
        const a = new Aead(key);
        const out = Buffer.alloc(off + pt.length + 16, 0xee);
        assert.equal(a.seal(nonce, pt, out, off, aad), pt.length + 16);
        assert.deepEqual(out.subarray(off), expected);
        assert.ok(out.subarray(0, off).every((b) => b === 0xee), 'nothing written before outOffset');
        // node:crypto opens what we sealed, and we open what it sealed.
        const d = createDecipheriv('chacha20-poly1305', key, nonceBytes, { authTagLength: 16 });
        if (aad) d.setAAD(aad, { plaintextLength: pt.length });
        d.setAuthTag(expected.subarray(pt.length));
        assert.deepEqual(Buffer.concat([d.update(out.subarray(off, off + pt.length)), d.final()]), Buffer.from(pt));
        const back = Buffer.alloc(pt.length + 3);
        assert.equal(a.open(nonce, expected, back, 3, aad), pt.length);
        assert.deepEqual(back.subarray(3), Buffer.from(pt));
      },
    ),
    { numRuns: 300 },
  );
});

test('tampered ciphertext, tag, nonce or key gives -1 (and 0-length messages authenticate too)', { skip }, () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.integer({ min: 0, max: 2 ** 40 }),
      fc.uint8Array({ minLength: 0, maxLength: 300 }), fc.nat(), fc.integer({ min: 1, max: 255 }),
      (key, counter, pt, where, flip) => {
        const a = new Aead(key);
        const sealed = Buffer.alloc(pt.length + 16);
        a.seal(counter, pt, sealed, 0);
        const out = Buffer.alloc(pt.length);
        assert.equal(a.open(counter, sealed, out), pt.length);
        const bad = Buffer.from(sealed);
        bad[where % bad.length]! ^= flip; // with pt empty this hits the tag
        assert.equal(a.open(counter, bad, out), -1);
        assert.equal(a.open(counter + 1, sealed, out), -1, 'wrong nonce');
        const other = Buffer.from(key);
        other[0]! ^= 1;
        assert.equal(new Aead(other).open(counter, sealed, out), -1, 'wrong key');
        assert.equal(a.open(counter, sealed.subarray(0, 15), out), -1, 'shorter than a tag');
        assert.equal(a.open(counter, sealed, out), pt.length, 'the context still works after failures');
      },
    ),
    { numRuns: 300 },
  );
});

test('in-place open and seal; bad arguments throw instead of reaching OpenSSL', { skip }, () => {
  const key = new Uint8Array(32).fill(7);
  const a = new Aead(key), ref = new Aead(key, { native: false });
  const pt = Buffer.from('in place, like a datagram decrypted where it arrived');
  const pkt = Buffer.alloc(16 + pt.length + 16);
  pt.copy(pkt, 16);
  assert.equal(a.seal(9, pkt.subarray(16, 16 + pt.length), pkt, 16), pt.length + 16);
  const copy = Buffer.alloc(pt.length + 16);
  ref.seal(9, pt, copy);
  assert.deepEqual(pkt.subarray(16), copy, 'in-place seal = separate seal');
  assert.equal(a.open(9, pkt.subarray(16), pkt, 16), pt.length);
  assert.deepEqual(pkt.subarray(16, 16 + pt.length), pt);

  const out = Buffer.alloc(64);
  assert.throws(() => a.seal(1, Buffer.alloc(49), out, 0), RangeError, 'no room for the tag');
  assert.throws(() => a.seal(1, Buffer.alloc(8), out, 65), TypeError, 'offset beyond out');
  assert.throws(() => a.seal(-1, Buffer.alloc(8), out, 0), TypeError);
  assert.throws(() => a.seal(2 ** 53, Buffer.alloc(8), out, 0), TypeError);
  assert.throws(() => a.seal(new Uint8Array(11), Buffer.alloc(8), out, 0), TypeError);
  assert.throws(() => new Aead(new Uint8Array(31)), TypeError);
  assert.throws(() => a.open(1, 'nope' as unknown as Uint8Array, out, 0), TypeError);
});
