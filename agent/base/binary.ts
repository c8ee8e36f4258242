// Binary encoding, network byte order (big-endian) throughout: a bounds-checked Reader, a Writer into a
// growable or a fixed buffer, and free functions for fixed offsets on packet paths.
//
// Reader: a read past the end returns 0 (or zero bytes), moves nothing and sets `bad`, which stays set; a
// parser reads all its fields and checks once (`bad`, or `done()` for "exactly to the end"). It allocates
// nothing per field except the Uint8Array a `view`/`copy` returns, and `reset` lets one Reader serve every
// datagram. Writer: out-of-range values and overflowing a fixed buffer throw RangeError (our own code
// builds what it writes, so these are bugs, not input).

/** b[off .. off+2) as a u16. The caller has checked the bounds. */
export function getU16(b: Uint8Array, off: number): number {
  return (b[off]! << 8) | b[off + 1]!;
}

/** b[off .. off+4) as a u32. The caller has checked the bounds. */
export function getU32(b: Uint8Array, off: number): number {
  return ((b[off]! << 24) | (b[off + 1]! << 16) | (b[off + 2]! << 8) | b[off + 3]!) >>> 0;
}

export function setU16(b: Uint8Array, off: number, v: number): void {
  b[off] = v >>> 8;
  b[off + 1] = v & 0xff;
}

export function setU32(b: Uint8Array, off: number, v: number): void {
  b[off] = v >>> 24;
  b[off + 1] = (v >>> 16) & 0xff;
  b[off + 2] = (v >>> 8) & 0xff;
  b[off + 3] = v & 0xff;
}

const U64_MAX = (1n << 64n) - 1n;

export class Reader {
  private b: Uint8Array;
  /** Next byte to read. */
  off: number;
  private end: number;
  /** A read ran past the end (sticky until reset). */
  bad = false;

  /** Reads b[off .. end). */
  constructor(b: Uint8Array, off = 0, end = b.length) {
    this.b = b;
    this.off = off;
    this.end = end;
  }

  /** Read another range (b[off .. end)) with this Reader: no new object per datagram. */
  reset(b: Uint8Array, off = 0, end = b.length): this {
    this.b = b;
    this.off = off;
    this.end = end;
    this.bad = false;
    return this;
  }

  /** Bytes left to read. */
  get remaining(): number { return this.end - this.off; }

  /** True if nothing went past the end and every byte was read. */
  done(): boolean { return !this.bad && this.off === this.end; }

  /** Offset of n more bytes, or -1 (and `bad`) if they are not there. */
  private take(n: number): number {
    if (this.bad || n < 0 || n > this.end - this.off) { this.bad = true; return -1; }
    const o = this.off;
    this.off += n;
    return o;
  }

  u8(): number { const o = this.take(1); return o < 0 ? 0 : this.b[o]!; }
  u16(): number { const o = this.take(2); return o < 0 ? 0 : getU16(this.b, o); }
  u32(): number { const o = this.take(4); return o < 0 ? 0 : getU32(this.b, o); }
  u64(): bigint {
    const o = this.take(8);
    return o < 0 ? 0n : (BigInt(getU32(this.b, o)) << 32n) | BigInt(getU32(this.b, o + 4));
  }
  /** n bytes as a view into the input (empty if they are not there): copy what outlives the input. */
  view(n: number): Uint8Array { const o = this.take(n); return o < 0 ? this.b.subarray(0, 0) : this.b.subarray(o, o + n); }
  /** n bytes as a plain Uint8Array copy (zeros if they are not there), for values that must not alias the
   *  input. Not slice(): on a Buffer that is a view. */
  copy(n: number): Uint8Array {
    const o = this.take(n);
    const out = new Uint8Array(Math.max(n, 0));
    if (o >= 0) out.set(this.b.subarray(o, o + n));
    return out;
  }
  skip(n: number): void { this.take(n); }
}

function check(v: number, max: number, what: string): void {
  if (!Number.isInteger(v) || v < 0 || v > max) throw new RangeError(`not a ${what}: ${v}`);
}

export class Writer {
  private buf: Uint8Array;
  private readonly growable: boolean;
  /** Bytes written so far. */
  length = 0;

  /** Growable from `capacity` bytes; with `fixed`, writing past it throws instead (a reused scratch buffer). */
  constructor(capacity = 256, fixed = false) {
    this.buf = new Uint8Array(capacity);
    this.growable = !fixed;
  }

  /** Start over, keeping the buffer. */
  reset(): this { this.length = 0; return this; }

  /** The bytes written, as a view into the buffer (valid until the next write or reset). */
  view(): Uint8Array { return this.buf.subarray(0, this.length); }
  /** The bytes written, as a copy. */
  done(): Uint8Array { return this.buf.slice(0, this.length); }

  /** Offset of n more bytes, growing the buffer if it may. */
  private room(n: number): number {
    if (this.length + n > this.buf.length) {
      if (!this.growable) throw new RangeError(`write past the end of a ${this.buf.length}-byte buffer`);
      const nb = new Uint8Array(Math.max(this.buf.length * 2, this.length + n));
      nb.set(this.buf.subarray(0, this.length));
      this.buf = nb;
    }
    const o = this.length;
    this.length += n;
    return o;
  }

  // room() may replace buf, so it runs before buf is read.
  u8(v: number): void { check(v, 0xff, 'u8'); const o = this.room(1); this.buf[o] = v; }
  u16(v: number): void { check(v, 0xffff, 'u16'); const o = this.room(2); setU16(this.buf, o, v); }
  u32(v: number): void { check(v, 0xffffffff, 'u32'); const o = this.room(4); setU32(this.buf, o, v); }
  u64(v: bigint): void {
    if (typeof v !== 'bigint' || v < 0n || v > U64_MAX) throw new RangeError(`not a u64: ${String(v)}`);
    const o = this.room(8);
    setU32(this.buf, o, Number(v >> 32n));
    setU32(this.buf, o + 4, Number(v & 0xffffffffn));
  }
  /** `exactLen`: the caller's size rule for b (an id, a key), checked here. */
  bytes(b: Uint8Array, exactLen?: number): void {
    if (exactLen !== undefined && b.length !== exactLen) throw new RangeError(`expected ${exactLen} bytes, got ${b.length}`);
    const o = this.room(b.length);
    this.buf.set(b, o);
  }
  /** n zero bytes, for a field filled in later with setU16/setU32; returns its offset. */
  reserve(n: number): number {
    const o = this.room(n);
    this.buf.fill(0, o, o + n);
    return o;
  }
  /** Overwrite a u16 / u32 written (or reserved) earlier. */
  setU16(at: number, v: number): void {
    check(v, 0xffff, 'u16');
    if (at < 0 || at + 2 > this.length) throw new RangeError(`u16 at ${at} is past the ${this.length} bytes written`);
    setU16(this.buf, at, v);
  }
  setU32(at: number, v: number): void {
    check(v, 0xffffffff, 'u32');
    if (at < 0 || at + 4 > this.length) throw new RangeError(`u32 at ${at} is past the ${this.length} bytes written`);
    setU32(this.buf, at, v);
  }
}
