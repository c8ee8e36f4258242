// The NodeID crypto puzzle (S-Kademlia's static puzzle, P2PNS): minting a usable identity costs work,
// so a Sybil flood of keys is expensive, while checking one costs a single hash.
//
//   proof  = nonce X (u64, carried big-endian in records and overlay messages)
//   valid  ⇔  SHA-256("idloc puzzle v1" || Ed25519 public key (32) || X as 8 bytes big-endian)
//             has at least D leading zero bits
//
// NodeID stays SHA-256("idloc node id v1" || public key)[0..20) (agent/idloc/addresses.ts), so overlay
// addresses do not change: the puzzle is a separate proof bound to the same key, not a different id.
// Unlike S-Kademlia's H(H(key)) form the nonce is what varies, so an existing key gains a proof without
// being replaced. D is PUZZLE_DEFAULT_DIFFICULTY unless configured; all nodes of an overlay use one D.
import { sha256 } from '@noble/hashes/sha2.js';
import { PUZZLE_DEFAULT_DIFFICULTY, PUZZLE_MAX_DIFFICULTY } from '../base/constants.js';
import { setU32 } from '../base/binary.js';

const PUZZLE_TAG = new TextEncoder().encode('idloc puzzle v1');
const KEY_OFF = PUZZLE_TAG.length;
const NONCE_OFF = KEY_OFF + 32;
const INPUT_LEN = NONCE_OFF + 8;
const U64_MAX = (1n << 64n) - 1n;

function puzzleInput(publicKey: Uint8Array): Uint8Array {
  const b = new Uint8Array(INPUT_LEN);
  b.set(PUZZLE_TAG, 0);
  b.set(publicKey, KEY_OFF);
  return b;
}

function writeNonce(b: Uint8Array, nonce: bigint): void {
  setU32(b, NONCE_OFF, Number(nonce >> 32n));
  setU32(b, NONCE_OFF + 4, Number(nonce & 0xffffffffn));
}

/** Leading zero bits of a hash (0..8·length). */
export function leadingZeroBits(h: Uint8Array): number {
  let n = 0;
  for (const byte of h) {
    if (byte === 0) { n += 8; continue; }
    return n + Math.clz32(byte) - 24;
  }
  return n;
}

/** The puzzle hash for a key and nonce (exported for tests and diagnostics). */
export function puzzleHash(publicKey: Uint8Array, nonce: bigint): Uint8Array {
  const b = puzzleInput(publicKey);
  writeNonce(b, nonce);
  return sha256(b);
}

/** True when `nonce` solves the puzzle for `publicKey` at `difficulty` bits. Never throws. */
export function verifyPuzzle(publicKey: Uint8Array, nonce: bigint, difficulty: number = PUZZLE_DEFAULT_DIFFICULTY): boolean {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32) return false;
  if (typeof nonce !== 'bigint' || nonce < 0n || nonce > U64_MAX) return false;
  if (!Number.isInteger(difficulty) || difficulty < 0 || difficulty > 256) return false;
  return leadingZeroBits(puzzleHash(publicKey, nonce)) >= difficulty;
}

/** Find the smallest nonce ≥ `start` that solves the puzzle. About 2^difficulty hashes on average
 *  (~0.2 s at the default 16 bits). Synchronous: call it once at start and keep the nonce. */
export function solvePuzzle(publicKey: Uint8Array, difficulty: number = PUZZLE_DEFAULT_DIFFICULTY, start = 0n): bigint {
  if (publicKey.length !== 32) throw new RangeError('Ed25519 public key must be 32 bytes');
  if (!Number.isInteger(difficulty) || difficulty < 0 || difficulty > PUZZLE_MAX_DIFFICULTY) {
    throw new RangeError(`puzzle difficulty must be an integer in 0..${PUZZLE_MAX_DIFFICULTY}`);
  }
  const b = puzzleInput(publicKey);
  for (let nonce = start; nonce <= U64_MAX; nonce++) {
    writeNonce(b, nonce);
    if (leadingZeroBits(sha256(b)) >= difficulty) return nonce;
  }
  throw new Error('puzzle: nonce space exhausted'); // 2^64 tries: unreachable in practice
}
