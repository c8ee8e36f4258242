// Sliding anti-replay window for transport counters, RFC 6479 style.
//
//   ring of NBLOCKS 32-bit words (NBLOCKS = REPLAY_WINDOW_BITS/32 + 1):
//
//     word:  [ b0 ][ b1 ][ b2 ] ... [ bN-1 ]      counter c lives in word (c>>5) % NBLOCKS, bit c & 31
//                    ^ block of `last`
//
// Why a ring of words: when the highest counter advances, whole words are zeroed instead of shifting
// a bit string, so the cost is O(words crossed), not O(window). The one extra word keeps a full
// REPLAY_WINDOW_BITS of history behind `last` even while the current word is only partly used
// (RFC 6479 section 2 gives up one block of the window for this; we add it instead).
//
// Counters are JS numbers: exact up to 2^53, which a sender reaches after ~285 years at a million
// packets a second. Counters at or beyond 2^53 are refused (the sender side never produces them).
// No allocation per packet: the bitmap is one Uint32Array made at construction.

import { REPLAY_WINDOW_BITS } from '../base/constants.js';

const BLOCK_BITS = 32;

export class ReplayWindow {
  /** Largest offset behind the highest counter still accepted is windowSize - 1. */
  readonly windowSize: number;
  private readonly nblocks: number;
  private readonly bitmap: Uint32Array;
  /** Highest counter accepted so far; -1 before the first. */
  private last = -1;

  constructor(windowBits: number = REPLAY_WINDOW_BITS) {
    if (!Number.isInteger(windowBits) || windowBits <= 0 || windowBits % BLOCK_BITS !== 0) {
      throw new Error('window must be a positive multiple of 32 bits');
    }
    this.windowSize = windowBits;
    this.nblocks = windowBits / BLOCK_BITS + 1;
    this.bitmap = new Uint32Array(this.nblocks);
  }

  /** Highest counter accepted so far (-1 if none). */
  get highest(): number {
    return this.last;
  }

  /** Would `counter` be accepted? Does not change state: call it before spending a decryption. */
  check(counter: number): boolean {
    if (!(counter >= 0 && counter <= Number.MAX_SAFE_INTEGER)) return false;
    if (counter > this.last) return true;
    if (this.last - counter >= this.windowSize) return false; // too old: fell out of the window
    const block = Math.floor(counter / BLOCK_BITS) % this.nblocks;
    return (this.bitmap[block]! & (1 << counter % BLOCK_BITS)) === 0;
  }

  /** Record `counter` as seen; returns false (and changes nothing) if it is a duplicate or too old.
   *  Call only after the packet authenticated, so forgeries cannot move the window. */
  update(counter: number): boolean {
    if (!this.check(counter)) return false;
    const block = Math.floor(counter / BLOCK_BITS);
    if (counter > this.last) {
      const lastBlock = this.last < 0 ? -1 : Math.floor(this.last / BLOCK_BITS);
      // Zero the words the window slides over; at most the whole ring.
      const crossed = Math.min(block - lastBlock, this.nblocks);
      for (let i = 1; i <= crossed; i++) this.bitmap[(lastBlock + i) % this.nblocks] = 0;
      this.last = counter;
    }
    this.bitmap[block % this.nblocks]! |= 1 << counter % BLOCK_BITS;
    return true;
  }

  reset(): void {
    this.bitmap.fill(0);
    this.last = -1;
  }
}
