// Keyed BLAKE2s-128 (RFC 7693) for mac1, mac2 and cookies: the work every forged initiation costs us, so it
// has to be small. Under a flood of 10,000 initiations per second each one is MACed two or three times;
// @noble/hashes (the reference this is tested against) allocates a hasher and processes the key block on
// every call, ~10-15 us each. Here the state after the key block is computed once per key, the compression
// works on local variables, and nothing is allocated per call: a few microseconds for a 172-byte message.

const IV = Int32Array.of(0x6a09e667, 0xbb67ae85 | 0, 0x3c6ef372, 0xa54ff53a | 0, 0x510e527f, 0x9b05688c | 0, 0x1f83d9ab, 0x5be0cd19);
const SIGMA = Uint8Array.of(
  0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3,
  11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4, 7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8,
  9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13, 2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9,
  12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11, 13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10,
  6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5, 10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0,
);
const OUT_LEN = 16;
const BLOCK = 64;
const M = new Int32Array(16); // the block being compressed (one JS thread: safe to share)
const H = new Int32Array(8); // the chaining state of the MAC in progress
const TAG = new Uint8Array(OUT_LEN);

/** Load a block of data[p..end) (zero-padded) into M. */
function load(data: Uint8Array, p: number, end: number): void {
  if (end - p >= BLOCK) {
    for (let i = 0; i < 16; i++, p += 4) M[i] = data[p]! | (data[p + 1]! << 8) | (data[p + 2]! << 16) | (data[p + 3]! << 24);
    return;
  }
  M.fill(0);
  for (let i = 0; p < end; i++, p++) M[i >> 2]! |= data[p]! << ((i & 3) * 8);
}

/** The compression function F on H with block M, byte counter t (< 2^32 here), final-block flag. */
function compress(t: number, last: boolean): void {
  let v0 = H[0]!, v1 = H[1]!, v2 = H[2]!, v3 = H[3]!, v4 = H[4]!, v5 = H[5]!, v6 = H[6]!, v7 = H[7]!;
  let v8 = IV[0]!, v9 = IV[1]!, v10 = IV[2]!, v11 = IV[3]!, v12 = IV[4]! ^ t, v13 = IV[5]!, v14 = last ? ~IV[6]! : IV[6]!, v15 = IV[7]!;
  for (let r = 0; r < 160; r += 16) {
    const s = SIGMA;
    v0 = (v0 + v4 + M[s[r]!]!) | 0; v12 ^= v0; v12 = (v12 >>> 16) | (v12 << 16); v8 = (v8 + v12) | 0; v4 ^= v8; v4 = (v4 >>> 12) | (v4 << 20);
    v0 = (v0 + v4 + M[s[r + 1]!]!) | 0; v12 ^= v0; v12 = (v12 >>> 8) | (v12 << 24); v8 = (v8 + v12) | 0; v4 ^= v8; v4 = (v4 >>> 7) | (v4 << 25);
    v1 = (v1 + v5 + M[s[r + 2]!]!) | 0; v13 ^= v1; v13 = (v13 >>> 16) | (v13 << 16); v9 = (v9 + v13) | 0; v5 ^= v9; v5 = (v5 >>> 12) | (v5 << 20);
    v1 = (v1 + v5 + M[s[r + 3]!]!) | 0; v13 ^= v1; v13 = (v13 >>> 8) | (v13 << 24); v9 = (v9 + v13) | 0; v5 ^= v9; v5 = (v5 >>> 7) | (v5 << 25);
    v2 = (v2 + v6 + M[s[r + 4]!]!) | 0; v14 ^= v2; v14 = (v14 >>> 16) | (v14 << 16); v10 = (v10 + v14) | 0; v6 ^= v10; v6 = (v6 >>> 12) | (v6 << 20);
    v2 = (v2 + v6 + M[s[r + 5]!]!) | 0; v14 ^= v2; v14 = (v14 >>> 8) | (v14 << 24); v10 = (v10 + v14) | 0; v6 ^= v10; v6 = (v6 >>> 7) | (v6 << 25);
    v3 = (v3 + v7 + M[s[r + 6]!]!) | 0; v15 ^= v3; v15 = (v15 >>> 16) | (v15 << 16); v11 = (v11 + v15) | 0; v7 ^= v11; v7 = (v7 >>> 12) | (v7 << 20);
    v3 = (v3 + v7 + M[s[r + 7]!]!) | 0; v15 ^= v3; v15 = (v15 >>> 8) | (v15 << 24); v11 = (v11 + v15) | 0; v7 ^= v11; v7 = (v7 >>> 7) | (v7 << 25);
    v0 = (v0 + v5 + M[s[r + 8]!]!) | 0; v15 ^= v0; v15 = (v15 >>> 16) | (v15 << 16); v10 = (v10 + v15) | 0; v5 ^= v10; v5 = (v5 >>> 12) | (v5 << 20);
    v0 = (v0 + v5 + M[s[r + 9]!]!) | 0; v15 ^= v0; v15 = (v15 >>> 8) | (v15 << 24); v10 = (v10 + v15) | 0; v5 ^= v10; v5 = (v5 >>> 7) | (v5 << 25);
    v1 = (v1 + v6 + M[s[r + 10]!]!) | 0; v12 ^= v1; v12 = (v12 >>> 16) | (v12 << 16); v11 = (v11 + v12) | 0; v6 ^= v11; v6 = (v6 >>> 12) | (v6 << 20);
    v1 = (v1 + v6 + M[s[r + 11]!]!) | 0; v12 ^= v1; v12 = (v12 >>> 8) | (v12 << 24); v11 = (v11 + v12) | 0; v6 ^= v11; v6 = (v6 >>> 7) | (v6 << 25);
    v2 = (v2 + v7 + M[s[r + 12]!]!) | 0; v13 ^= v2; v13 = (v13 >>> 16) | (v13 << 16); v8 = (v8 + v13) | 0; v7 ^= v8; v7 = (v7 >>> 12) | (v7 << 20);
    v2 = (v2 + v7 + M[s[r + 13]!]!) | 0; v13 ^= v2; v13 = (v13 >>> 8) | (v13 << 24); v8 = (v8 + v13) | 0; v7 ^= v8; v7 = (v7 >>> 7) | (v7 << 25);
    v3 = (v3 + v4 + M[s[r + 14]!]!) | 0; v14 ^= v3; v14 = (v14 >>> 16) | (v14 << 16); v9 = (v9 + v14) | 0; v4 ^= v9; v4 = (v4 >>> 12) | (v4 << 20);
    v3 = (v3 + v4 + M[s[r + 15]!]!) | 0; v14 ^= v3; v14 = (v14 >>> 8) | (v14 << 24); v9 = (v9 + v14) | 0; v4 ^= v9; v4 = (v4 >>> 7) | (v4 << 25);
  }
  H[0]! ^= v0 ^ v8; H[1]! ^= v1 ^ v9; H[2]! ^= v2 ^ v10; H[3]! ^= v3 ^ v11;
  H[4]! ^= v4 ^ v12; H[5]! ^= v5 ^ v13; H[6]! ^= v6 ^ v14; H[7]! ^= v7 ^ v15;
}

/** Keyed BLAKE2s with a 16-byte tag, the key block absorbed once (constructor). */
export class Blake2sMac {
  private readonly keyed = new Int32Array(8);

  constructor(key: Uint8Array) {
    if (key.length < 1 || key.length > 32) throw new RangeError('BLAKE2s key must be 1..32 bytes');
    H.set(IV);
    H[0]! ^= 0x01010000 ^ (key.length << 8) ^ OUT_LEN;
    load(key, 0, key.length); // the key, zero-padded to a block; never the last block (data follows)
    compress(BLOCK, false);
    this.keyed.set(H);
  }

  /** The tag of data[0..len) (len >= 1) into out[outOff..outOff+16). */
  macInto(data: Uint8Array, len: number, out: Uint8Array, outOff = 0): void {
    H.set(this.keyed);
    let p = 0;
    while (len - p > BLOCK) { load(data, p, p + BLOCK); p += BLOCK; compress(BLOCK + p, false); }
    load(data, p, len);
    compress(BLOCK + len, true);
    for (let i = 0; i < OUT_LEN; i++) out[outOff + i] = H[i >> 2]! >>> ((i & 3) * 8);
  }

  /** Whether data[off..off+16) is the tag of data[0..off). */
  verifyAt(data: Uint8Array, off: number): boolean {
    if (off < 1 || off + OUT_LEN > data.length) return false;
    this.macInto(data, off, TAG);
    let diff = 0;
    for (let i = 0; i < OUT_LEN; i++) diff |= TAG[i]! ^ data[off + i]!;
    return diff === 0;
  }
}
