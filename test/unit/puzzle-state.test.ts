// puzzle.json (agent/puzzle-state.ts): the NodeID puzzle's solution kept across starts; one for another
// key or difficulty, a wrong one and an unreadable file are replaced by a fresh solution, never trusted.
import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ed25519 } from '@noble/curves/ed25519.js';
import { loadPuzzleNonce } from '../../agent/puzzle-state.js';
import { solvePuzzle, verifyPuzzle } from '../../agent/overlay/puzzle.js';

const DIFFICULTY = 8;

test('solved once and kept (0600); a kept solution is used as it is; another key, difficulty or a bad file is solved again', () => {
  const dir = mkdtempSync(join(tmpdir(), 'idloc-puzzle-'));
  try {
    const key = ed25519.getPublicKey(ed25519.utils.randomSecretKey());
    const file = join(dir, 'puzzle.json');
    const warned: string[] = [];
    const logger = { warn: (_o: object, m: string) => { warned.push(m); } };
    const first = loadPuzzleNonce(dir, key, DIFFICULTY, logger);
    assert.ok(verifyPuzzle(key, first, DIFFICULTY));
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(JSON.parse(readFileSync(file, 'utf8')).nonce, first.toString());
    // A valid solution that is not the smallest one: read back unchanged, so nothing was solved again.
    const later = solvePuzzle(key, DIFFICULTY, first + 1n);
    writeFileSync(file, JSON.stringify({ version: 1, publicKey: Buffer.from(key).toString('hex'), difficulty: DIFFICULTY, nonce: later.toString() }));
    assert.equal(loadPuzzleNonce(dir, key, DIFFICULTY, logger), later);
    assert.deepEqual(warned, []);
    // Another difficulty: a fresh solution, written back.
    const harder = loadPuzzleNonce(dir, key, DIFFICULTY + 2, logger);
    assert.ok(verifyPuzzle(key, harder, DIFFICULTY + 2));
    assert.equal(JSON.parse(readFileSync(file, 'utf8')).difficulty, DIFFICULTY + 2);
    // Another key's file: not used for ours.
    const other = ed25519.getPublicKey(ed25519.utils.randomSecretKey());
    assert.ok(verifyPuzzle(other, loadPuzzleNonce(dir, other, DIFFICULTY, logger), DIFFICULTY));
    // A nonce that does not solve it, and a file that does not parse: warned, and solved again.
    let bad = 0n;
    while (verifyPuzzle(key, bad, DIFFICULTY)) bad++;
    writeFileSync(file, JSON.stringify({ version: 1, publicKey: Buffer.from(key).toString('hex'), difficulty: DIFFICULTY, nonce: bad.toString() }));
    assert.ok(verifyPuzzle(key, loadPuzzleNonce(dir, key, DIFFICULTY, logger), DIFFICULTY));
    writeFileSync(file, JSON.stringify({ version: 1, publicKey: Buffer.from(key).toString('hex'), difficulty: DIFFICULTY, nonce: '99999999999999999999' }));
    assert.ok(verifyPuzzle(key, loadPuzzleNonce(dir, key, DIFFICULTY, logger), DIFFICULTY));
    writeFileSync(file, '{"version":1,"nonce":');
    assert.ok(verifyPuzzle(key, loadPuzzleNonce(dir, key, DIFFICULTY, logger), DIFFICULTY));
    assert.equal(warned.length, 3, warned.join('; '));
    assert.ok(warned.every((w) => /solving it again/.test(w)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
