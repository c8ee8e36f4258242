// The NodeID puzzle's solution (overlay/puzzle.ts), kept in the state dir so that a start does not solve
// it again: a nonce is a few hashes to check and about 2^difficulty to find.
//
// puzzle.json: {"version":1,"publicKey":"<hex>","difficulty":16,"nonce":"51234"}   (mode 0600)
// A file for another key or difficulty, or one whose nonce does not solve the puzzle, or one that does
// not parse, is replaced by a fresh solution (with a warning for the last two): the nonce is no secret and
// is always recomputable, so nothing depends on the file but the start-up time.
import { join } from 'node:path';
/** Where a replaced file is told about (the agent's logger). */
type Warn = { warn(o: object, msg: string): void };
import { PUZZLE_FILE_NAME } from './base/constants.js';
import { readStateFile, writeStateFile, type StateFs } from './base/state-file.js';
import { solvePuzzle, verifyPuzzle } from './overlay/puzzle.js';
import { hex } from './base/bytes.js';

/** The nonce for this key at this difficulty: the kept one if it still solves the puzzle, else a new one,
 *  written back. */
export function loadPuzzleNonce(stateDir: string, publicKey: Uint8Array, difficulty: number, logger?: Warn, fs?: StateFs): bigint {
  const file = join(stateDir, PUZZLE_FILE_NAME);
  const kept = readKept(file, fs, logger);
  if (kept && kept.publicKey === hex(publicKey) && kept.difficulty === difficulty) {
    if (verifyPuzzle(publicKey, kept.nonce, difficulty)) return kept.nonce;
    logger?.warn({ file }, 'the kept NodeID puzzle solution does not solve the puzzle; solving it again');
  }
  const nonce = solvePuzzle(publicKey, difficulty);
  try {
    writeStateFile(file, JSON.stringify({ version: 1, publicKey: hex(publicKey), difficulty, nonce: nonce.toString() }) + '\n', { mode: 0o600, ...(fs ? { fs } : {}) });
  } catch (e) {
    logger?.warn({ file, err: (e as Error).message }, 'could not keep the NodeID puzzle solution; the next start solves it again');
  }
  return nonce;
}

function readKept(file: string, fs: StateFs | undefined, logger: Warn | undefined): { publicKey: string; difficulty: number; nonce: bigint } | undefined {
  let text: string | undefined;
  try { text = readStateFile(file, fs); } catch { return undefined; }
  if (text === undefined) return undefined;
  try {
    const o = JSON.parse(text) as { version?: unknown; publicKey?: unknown; difficulty?: unknown; nonce?: unknown };
    if (o.version === 1 && typeof o.publicKey === 'string' && typeof o.difficulty === 'number' && typeof o.nonce === 'string' && /^\d{1,20}$/.test(o.nonce) && BigInt(o.nonce) <= 0xffffffffffffffffn) {
      return { publicKey: o.publicKey, difficulty: o.difficulty, nonce: BigInt(o.nonce) };
    }
  } catch { /* not JSON: below */ }
  logger?.warn({ file }, 'the kept NodeID puzzle solution is unreadable; solving it again');
  return undefined;
}
