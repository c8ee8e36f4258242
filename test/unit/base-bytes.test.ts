import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { bytesEqual, equalAt, fromHex, hex } from '../../agent/base/bytes.js';

test('hex and fromHex round-trip any bytes', () => {
  fc.assert(fc.property(fc.uint8Array({ minLength: 1, maxLength: 64 }), (b) => {
    const h = hex(b);
    assert.equal(h.length, b.length * 2);
    assert.match(h, /^[0-9a-f]*$/);
    assert.deepEqual(fromHex(h, b.length), b);
    assert.deepEqual(fromHex(h.toUpperCase(), b.length), b);
  }));
});

test('hex of a view covers the view only, not its buffer', () => {
  const whole = Uint8Array.of(0xde, 0xad, 0xbe, 0xef);
  assert.equal(hex(whole.subarray(1, 3)), 'adbe');
  assert.equal(hex(new Uint8Array(0)), '');
});

test('fromHex refuses the wrong length and non-hex text', () => {
  assert.equal(fromHex('00f', 2), undefined);
  assert.equal(fromHex('0011', 1), undefined);
  assert.equal(fromHex('zz', 1), undefined);
  assert.equal(fromHex(' 0', 1), undefined);
});

test('bytesEqual agrees with comparing hex', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 24 }), fc.uint8Array({ maxLength: 24 }), (a, b) => {
    assert.equal(bytesEqual(a, b), hex(a) === hex(b));
    assert.ok(bytesEqual(a, a.slice()));
  }));
});

test('bytesEqual: one differing byte anywhere, or another length, is unequal', () => {
  fc.assert(fc.property(fc.uint8Array({ minLength: 1, maxLength: 32 }), fc.nat(), (a, i) => {
    const b = a.slice();
    b[i % a.length] ^= 1;
    assert.equal(bytesEqual(a, b), false);
    assert.equal(bytesEqual(a, a.subarray(0, a.length - 1)), false);
  }));
});

test('equalAt compares ranges in place and is false for ranges past either end', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 32 }), fc.uint8Array({ maxLength: 32 }), fc.nat(40), fc.nat(40), fc.nat(40),
    (a, b, aOff, bOff, n) => {
      const fits = aOff + n <= a.length && bOff + n <= b.length;
      const want = fits && hex(a.subarray(aOff, aOff + n)) === hex(b.subarray(bOff, bOff + n));
      assert.equal(equalAt(a, aOff, b, bOff, n), want);
    }));
  const x = Uint8Array.of(1, 2, 3, 4);
  assert.ok(equalAt(x, 2, Uint8Array.of(9, 3, 4), 1, 2));
  assert.equal(equalAt(x, -1, x, 0, 1), false);
});
