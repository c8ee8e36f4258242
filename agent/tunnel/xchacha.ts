// XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha-03) for the cookie reply, whose 24-byte nonce is random:
// with a 12-byte nonce, random nonces under one key would collide after ~2^48 replies; 24 bytes make that
// moot without keeping a counter. HChaCha20 (the first 16 nonce bytes) derives a subkey, and the remaining
// 8 bytes, after 4 zero bytes, are the 12-byte nonce of ordinary ChaCha20-Poly1305 under that subkey.
// There is no @noble/ciphers in the tree, so HChaCha20 is written out here (20 rounds of the ChaCha block
// function on 16 words, without the final addition) and the AEAD is aead.ts's ChaCha20-Poly1305 (the
// native addon when built, ~3 us a cookie reply under a flood; node:crypto otherwise).
// Not on the data path: an allocation or two per call is fine.

import { Aead } from './aead.js';

export const XCHACHA_KEY_LEN = 32;
export const XCHACHA_NONCE_LEN = 24;
const TAG_LEN = 16;
/** "expand 32-byte k" as four little-endian words. */
const SIGMA = [0x61707865, 0x3320646e, 0x79622d32, 0x6b206574];

function rotl(v: number, n: number): number { return (v << n) | (v >>> (32 - n)); }

function quarter(x: Uint32Array, a: number, b: number, c: number, d: number): void {
  x[a] = (x[a]! + x[b]!) | 0; x[d] = rotl(x[d]! ^ x[a]!, 16);
  x[c] = (x[c]! + x[d]!) | 0; x[b] = rotl(x[b]! ^ x[c]!, 12);
  x[a] = (x[a]! + x[b]!) | 0; x[d] = rotl(x[d]! ^ x[a]!, 8);
  x[c] = (x[c]! + x[d]!) | 0; x[b] = rotl(x[b]! ^ x[c]!, 7);
}

/** HChaCha20(key 32, nonce 16) -> 32-byte subkey. */
export function hchacha20(key: Uint8Array, nonce16: Uint8Array): Uint8Array {
  if (key.length !== XCHACHA_KEY_LEN || nonce16.length !== 16) throw new TypeError('HChaCha20 takes a 32-byte key and a 16-byte nonce');
  const x = new Uint32Array(16);
  const kv = new DataView(key.buffer, key.byteOffset, 32);
  const nv = new DataView(nonce16.buffer, nonce16.byteOffset, 16);
  for (let i = 0; i < 4; i++) x[i] = SIGMA[i]!;
  for (let i = 0; i < 8; i++) x[4 + i] = kv.getUint32(i * 4, true);
  for (let i = 0; i < 4; i++) x[12 + i] = nv.getUint32(i * 4, true);
  for (let r = 0; r < 10; r++) {
    quarter(x, 0, 4, 8, 12); quarter(x, 1, 5, 9, 13); quarter(x, 2, 6, 10, 14); quarter(x, 3, 7, 11, 15);
    quarter(x, 0, 5, 10, 15); quarter(x, 1, 6, 11, 12); quarter(x, 2, 7, 8, 13); quarter(x, 3, 4, 9, 14);
  }
  const out = new Uint8Array(32);
  const ov = new DataView(out.buffer);
  for (let i = 0; i < 4; i++) { ov.setUint32(i * 4, x[i]!, true); ov.setUint32(16 + i * 4, x[12 + i]!, true); }
  return out;
}

function split(key: Uint8Array, nonce: Uint8Array): { subkey: Uint8Array; iv: Uint8Array } {
  if (nonce.length !== XCHACHA_NONCE_LEN) throw new TypeError('XChaCha20 nonce must be 24 bytes');
  const iv = new Uint8Array(12);
  iv.set(nonce.subarray(16, 24), 4);
  return { subkey: hchacha20(key, nonce.subarray(0, 16)), iv };
}

/** Seal into out[outOffset..]: ciphertext || 16-byte tag; returns the bytes written. */
export function xchachaSealInto(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array, out: Uint8Array, outOffset = 0): number {
  const { subkey, iv } = split(key, nonce);
  return new Aead(subkey).seal(iv, plaintext, out, outOffset, aad);
}

/** Seal: ciphertext || 16-byte tag. */
export function xchachaSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Buffer {
  const out = Buffer.alloc(plaintext.length + TAG_LEN);
  xchachaSealInto(key, nonce, plaintext, aad, out);
  return out;
}

/** Open ciphertext || tag; undefined if it does not authenticate. */
export function xchachaOpen(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Buffer | undefined {
  const n = sealed.length - TAG_LEN;
  if (n < 0) return undefined;
  const { subkey, iv } = split(key, nonce);
  const out = Buffer.alloc(n);
  return new Aead(subkey).open(iv, sealed, out, 0, aad) === n ? out : undefined;
}
