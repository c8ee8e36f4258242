// ChaCha20-Poly1305 (RFC 8439) with a context per key, sealing and opening into caller buffers.
//
// Native (native-helpers/aead.c) when the idloc_net addon is built: the key is set up once, and a call
// costs one N-API transition and no JS allocation. Otherwise node:crypto, which allocates a cipher
// object, output and tag per call but gives the same bytes: the fallback keeps the agent working
// anywhere and is the reference the native code is tested against.
//
// Nonce: a 12-byte Uint8Array, or a counter c meaning 4 zero bytes || c as u64 LE (Noise's ChaChaPoly
// nonce, which the tunnel uses), so the data path passes a number and writes no nonce bytes.
// Associated data is optional (the tunnel uses none, see messages.ts; RFC 8439's test vector does).
// `out` may be the input region itself (in place) or disjoint from it, never partly overlapping.

import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject } from 'node:crypto';
import { loadNetAddon, type AeadHandle, type NetAddon } from '../conn/native-net.js';

export const AEAD_KEY_LEN = 32;
export const AEAD_NONCE_LEN = 12;
export const AEAD_TAG_LEN = 16;

const CIPHER = 'chacha20-poly1305';
const OPTS = { authTagLength: AEAD_TAG_LEN } as const;

export interface AeadOptions {
  /** false forces node:crypto even when the addon is built (tests, comparisons). Default: native if available. */
  native?: boolean;
}

export class Aead {
  /** Whether this instance runs on the addon. */
  readonly native: boolean;
  private readonly lib: NetAddon | undefined;
  private readonly handle: AeadHandle | undefined;
  private readonly key: KeyObject | undefined;
  private readonly nonce: Buffer | undefined;

  constructor(key: Uint8Array, opts: AeadOptions = {}) {
    if (key.length !== AEAD_KEY_LEN) throw new TypeError('AEAD key must be 32 bytes');
    const lib = opts.native === false ? undefined : loadNetAddon();
    this.native = lib !== undefined;
    if (lib) {
      this.lib = lib;
      this.handle = lib.aeadCreate(key);
    } else {
      this.key = createSecretKey(key);
      this.nonce = Buffer.alloc(AEAD_NONCE_LEN);
    }
  }

  /** Whether the addon is available at all. */
  static nativeAvailable(): boolean {
    return loadNetAddon() !== undefined;
  }

  /** Encrypts `plaintext` to out[outOffset..]: ciphertext then tag. Returns bytes written (length + 16).
   *  Throws RangeError if out has no room. */
  seal(nonce: number | Uint8Array, plaintext: Uint8Array, out: Uint8Array, outOffset = 0, aad?: Uint8Array): number {
    if (this.lib) return this.lib.aeadSeal(this.handle!, nonce, plaintext, out, outOffset, aad);
    const n = plaintext.length;
    if (outOffset < 0 || outOffset + n + AEAD_TAG_LEN > out.length) throw new RangeError('out is too small at outOffset');
    const c = createCipheriv(CIPHER, this.key!, this.nonceBytes(nonce), OPTS);
    if (aad) c.setAAD(aad, { plaintextLength: n });
    if (n > 0) out.set(c.update(plaintext), outOffset);
    c.final();
    out.set(c.getAuthTag(), outOffset + n);
    return n + AEAD_TAG_LEN;
  }

  /** Decrypts ciphertext||tag to out[outOffset..]. Returns the plaintext length, or -1 if it does not
   *  authenticate or is shorter than a tag (out's bytes there are then meaningless). */
  open(nonce: number | Uint8Array, ciphertext: Uint8Array, out: Uint8Array, outOffset = 0, aad?: Uint8Array): number {
    if (this.lib) return this.lib.aeadOpen(this.handle!, nonce, ciphertext, out, outOffset, aad);
    const n = ciphertext.length - AEAD_TAG_LEN;
    if (outOffset < 0 || outOffset + Math.max(n, 0) > out.length) throw new RangeError('out is too small at outOffset');
    if (n < 0) return -1;
    try {
      const d = createDecipheriv(CIPHER, this.key!, this.nonceBytes(nonce), OPTS);
      d.setAuthTag(ciphertext.subarray(n));
      if (aad) d.setAAD(aad, { plaintextLength: n });
      const pt = d.update(ciphertext.subarray(0, n));
      d.final(); // throws when the tag does not verify
      out.set(pt, outOffset);
      return n;
    } catch {
      return -1;
    }
  }

  private nonceBytes(nonce: number | Uint8Array): Uint8Array {
    if (typeof nonce !== 'number') {
      if (nonce.length !== AEAD_NONCE_LEN) throw new TypeError('nonce must be a counter or a 12-byte Uint8Array');
      return nonce;
    }
    if (!Number.isSafeInteger(nonce) || nonce < 0) throw new TypeError('counter must be an integer in 0..2^53-1');
    const b = this.nonce!;
    b.writeUInt32LE(nonce >>> 0, 4);
    b.writeUInt32LE(Math.floor(nonce / 0x100000000), 8);
    return b;
  }
}
