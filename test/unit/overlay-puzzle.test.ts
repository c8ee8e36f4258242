// The NodeID crypto puzzle: solve/verify, difficulty respected, wrong nonces and keys fail, bad input never throws.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ed25519 } from '@noble/curves/ed25519.js';
import { PUZZLE_DEFAULT_DIFFICULTY, PUZZLE_MAX_DIFFICULTY } from '../../agent/base/constants.js';
import { leadingZeroBits, puzzleHash, solvePuzzle, verifyPuzzle } from '../../agent/overlay/puzzle.js';

const key = (seed: number) => ed25519.getPublicKey(new Uint8Array(32).fill(seed));

test('leadingZeroBits counts bits, not bytes', () => {
  assert.equal(leadingZeroBits(Uint8Array.of(0x80)), 0);
  assert.equal(leadingZeroBits(Uint8Array.of(0x01)), 7);
  assert.equal(leadingZeroBits(Uint8Array.of(0, 0x20, 0xff)), 10);
  assert.equal(leadingZeroBits(new Uint8Array(4)), 32);
});

test('solvePuzzle finds the smallest nonce with at least D leading zero bits; every smaller nonce fails', () => {
  for (const [seed, d] of [[1, 0], [2, 3], [3, 8], [4, 10]] as const) {
    const pk = key(seed);
    const n = solvePuzzle(pk, d);
    assert.ok(verifyPuzzle(pk, n, d));
    assert.ok(leadingZeroBits(puzzleHash(pk, n)) >= d);
    for (let x = 0n; x < n; x++) assert.equal(verifyPuzzle(pk, x, d), false, `nonce ${x} must not solve D=${d}`);
  }
});

test('the default difficulty is solved quickly and respected exactly', () => {
  const pk = key(5);
  const t0 = performance.now();
  const n = solvePuzzle(pk);
  const ms = performance.now() - t0;
  assert.ok(ms < 5_000, `default puzzle took ${ms} ms`);
  const bits = leadingZeroBits(puzzleHash(pk, n));
  assert.ok(bits >= PUZZLE_DEFAULT_DIFFICULTY);
  assert.ok(verifyPuzzle(pk, n));
  assert.ok(verifyPuzzle(pk, n, bits));
  assert.equal(verifyPuzzle(pk, n, bits + 1), false, 'one bit more than the hash has must fail');
  assert.equal(verifyPuzzle(pk, n + 1n), false, 'the next nonce does not solve it (fixed key)');
  assert.equal(verifyPuzzle(key(6), n), false, "the proof is bound to the key: another key's check fails");
});

test('verifyPuzzle agrees with the hash for any key, nonce and difficulty', () => {
  fc.assert(fc.property(
    fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.integer({ min: 0, max: 12 }),
    (pk, nonce, d) => verifyPuzzle(pk, nonce, d) === (leadingZeroBits(puzzleHash(pk, nonce)) >= d),
  ), { numRuns: 300 });
});

test('about 2^D hashes on average (statistical, loose bounds)', () => {
  let total = 0n;
  const keys = 40;
  for (let s = 10; s < 10 + keys; s++) total += solvePuzzle(key(s), 6) + 1n;
  const mean = Number(total) / keys;
  assert.ok(mean > 16 && mean < 256, `mean tries ${mean} for D=6 (expected ~64)`);
});

test('bad input never throws from verifyPuzzle; solvePuzzle refuses impossible settings', () => {
  const pk = key(7);
  assert.equal(verifyPuzzle(new Uint8Array(31), 0n, 0), false);
  assert.equal(verifyPuzzle(pk, -1n, 0), false);
  assert.equal(verifyPuzzle(pk, 1n << 64n, 0), false);
  assert.equal(verifyPuzzle(pk, 0n, Number.NaN), false);
  assert.equal(verifyPuzzle(pk, 0n, -1), false);
  assert.equal(verifyPuzzle(pk, 0n, 257), false);
  assert.equal(verifyPuzzle(pk, 0n, 0), true, 'difficulty 0 accepts any nonce');
  assert.throws(() => solvePuzzle(pk, PUZZLE_MAX_DIFFICULTY + 1), RangeError);
  assert.throws(() => solvePuzzle(pk, 1.5), RangeError);
  assert.throws(() => solvePuzzle(new Uint8Array(5), 1), RangeError);
});
