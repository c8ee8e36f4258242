import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Reader, Writer, getU16, getU32, setU16, setU32 } from '../../agent/base/binary.js';

type Field =
  | { t: 'u8'; v: number } | { t: 'u16'; v: number } | { t: 'u32'; v: number } | { t: 'u64'; v: bigint }
  | { t: 'bytes'; v: Uint8Array };

const field: fc.Arbitrary<Field> = fc.oneof(
  fc.integer({ min: 0, max: 0xff }).map((v) => ({ t: 'u8' as const, v })),
  fc.integer({ min: 0, max: 0xffff }).map((v) => ({ t: 'u16' as const, v })),
  fc.integer({ min: 0, max: 0xffffffff }).map((v) => ({ t: 'u32' as const, v })),
  fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }).map((v) => ({ t: 'u64' as const, v })),
  fc.uint8Array({ maxLength: 40 }).map((v) => ({ t: 'bytes' as const, v })),
);
const size = (f: Field) => (f.t === 'u8' ? 1 : f.t === 'u16' ? 2 : f.t === 'u32' ? 4 : f.t === 'u64' ? 8 : f.v.length);

function write(w: Writer, f: Field): void {
  switch (f.t) {
    case 'u8': w.u8(f.v); break;
    case 'u16': w.u16(f.v); break;
    case 'u32': w.u32(f.v); break;
    case 'u64': w.u64(f.v); break;
    case 'bytes': w.bytes(f.v); break;
  }
}

function read(r: Reader, f: Field): unknown {
  switch (f.t) {
    case 'u8': return r.u8();
    case 'u16': return r.u16();
    case 'u32': return r.u32();
    case 'u64': return r.u64();
    case 'bytes': return r.copy(f.v.length);
  }
}

test('what a Writer writes, a Reader reads back, big-endian, to exactly the end', () => {
  fc.assert(fc.property(fc.array(field, { maxLength: 30 }), fc.integer({ min: 1, max: 64 }), (fields, capacity) => {
    const w = new Writer(capacity); // small capacities make it grow mid-field
    for (const f of fields) write(w, f);
    const b = w.done();
    assert.equal(b.length, fields.reduce((n, f) => n + size(f), 0));
    assert.deepEqual(w.view(), b);
    const r = new Reader(b);
    for (const f of fields) assert.deepEqual(read(r, f), f.v);
    assert.ok(r.done());
    assert.equal(r.bad, false);
  }));
});

test('Writer byte order is network order', () => {
  const w = new Writer(4);
  w.u16(0x0102);
  w.u32(0x03040506);
  w.u64(0x0708090a0b0c0d0en);
  assert.deepEqual([...w.done()], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]);
});

test('a Reader never reads past the end: zeros, nothing consumed, and `bad` stays set', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 24 }), fc.array(field, { minLength: 1, maxLength: 12 }), (b, fields) => {
    const r = new Reader(b);
    let left = b.length;
    let failed = false;
    for (const f of fields) {
      const n = size(f);
      const before = r.off;
      const v = read(r, f);
      if (failed || n > left) {
        failed = true;
        assert.equal(r.bad, true);
        assert.equal(r.off, before, 'a failed read consumes nothing');
        if (f.t === 'bytes') assert.deepEqual(v, new Uint8Array(n));
        else assert.equal(v, f.t === 'u64' ? 0n : 0);
      } else {
        left -= n;
        assert.equal(r.remaining, left);
      }
      assert.ok(r.off <= b.length);
    }
    assert.equal(r.done(), !failed && left === 0);
  }));
});

test('a Reader on a range stays inside it; view aliases the input, copy does not', () => {
  const b = Uint8Array.of(1, 2, 3, 4, 5, 6);
  const r = new Reader(b, 1, 4);
  assert.equal(r.u16(), 0x0203);
  const v = r.view(1);
  assert.deepEqual([...v], [4]);
  assert.ok(r.done());
  assert.equal(r.u8(), 0, 'byte 4 is outside the range');
  assert.ok(r.bad);
  b[3] = 9;
  assert.equal(v[0], 9, 'view is into the input');
  r.reset(b, 0, 2);
  assert.equal(r.bad, false);
  const c = r.copy(2);
  b[0] = 7;
  assert.deepEqual([...c], [1, 2], 'copy is its own');
  const buf = Buffer.from([5, 6]);
  const fromBuffer = new Reader(buf).copy(2);
  buf[0] = 0;
  assert.deepEqual(fromBuffer, Uint8Array.of(5, 6), 'a copy out of a Buffer is a plain Uint8Array of its own');
  assert.ok(r.done());
  r.reset(b);
  r.skip(7);
  assert.ok(r.bad, 'skipping past the end is reported too');
  assert.equal(r.view(-1).length, 0);
});

test('Writer refuses values out of range', () => {
  const w = new Writer();
  assert.throws(() => w.u8(256), RangeError);
  assert.throws(() => w.u16(-1), RangeError);
  assert.throws(() => w.u16(1.5), RangeError);
  assert.throws(() => w.u32(2 ** 32), RangeError);
  assert.throws(() => w.u64(1n << 64n), RangeError);
  assert.throws(() => w.u64(-1n), RangeError);
  assert.throws(() => w.bytes(new Uint8Array(3), 4), RangeError);
  assert.equal(w.length, 0, 'nothing written by a refused value');
});

test('a fixed Writer throws instead of growing; reset reuses it', () => {
  const w = new Writer(4, true);
  w.u32(1);
  assert.throws(() => w.u8(0), RangeError);
  w.reset();
  w.u16(0xabcd);
  assert.deepEqual([...w.done()], [0xab, 0xcd]);
});

test('reserve then setU16/setU32 patch a field in place, and only inside what was written', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 20 }), fc.integer({ min: 0, max: 0xffffffff }), (tail, v) => {
    const w = new Writer(2);
    const at = w.reserve(6);
    w.bytes(tail);
    w.setU32(at, v);
    w.setU16(at + 4, v & 0xffff);
    const r = new Reader(w.done());
    assert.equal(r.u32(), v);
    assert.equal(r.u16(), v & 0xffff);
    assert.deepEqual(r.copy(tail.length), tail);
    assert.ok(r.done());
  }));
  const w = new Writer();
  w.u8(0);
  assert.throws(() => w.setU16(0, 1), RangeError);
  assert.throws(() => w.setU32(-1, 1), RangeError);
});

test('getU16/getU32 and setU16/setU32 round-trip at any offset', () => {
  fc.assert(fc.property(fc.nat(8), fc.integer({ min: 0, max: 0xffffffff }), (off, v) => {
    const b = new Uint8Array(off + 4);
    setU32(b, off, v);
    assert.equal(getU32(b, off), v);
    setU16(b, off, v & 0xffff);
    assert.equal(getU16(b, off), v & 0xffff);
    assert.equal(Buffer.from(b).readUInt16BE(off), v & 0xffff);
  }));
});
