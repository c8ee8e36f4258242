// `idloc-agent ca` (agent/ca-cli.ts, agent/cert/ca.ts) run as a process in a temp dir: file modes, refusing
// to replace a CA, certificates that verify, the revocation list's sequence, and one-line errors with
// exit 2 for bad flags and exit 1 for an unusable CA dir.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ed25519 } from '@noble/curves/ed25519.js';
import { hex } from '../../agent/base/bytes.js';
import { nodeIdFromPublicKey } from '../../agent/idloc/addresses.js';
import { certificateFromText, verifyCertificate } from '../../agent/cert/certificate.js';
import { isRevoked, revocationListFromText, verifyRevocationList } from '../../agent/cert/revocation.js';
import { parseDuration } from '../../agent/ca-cli.js';

const CLI = fileURLToPath(new URL('../../agent/cli.js', import.meta.url));
const top = mkdtempSync(join(tmpdir(), 'idloc-ca-'));
after(() => rmSync(top, { recursive: true, force: true }));

function run(...args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: top, encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}
/** Exit `code` with exactly one line on stderr matching `re`. */
function refused(r: ReturnType<typeof run>, code: number, re: RegExp): void {
  assert.equal(r.code, code, r.err);
  assert.match(r.err, re);
  assert.equal(r.err.trimEnd().split('\n').length, 1, r.err);
}
const newKey = () => hex(ed25519.getPublicKey(ed25519.utils.randomSecretKey()));
const mode = (p: string) => statSync(p).mode & 0o777;

test('durations: m h d y, bounded by a minute and ten years', () => {
  assert.equal(parseDuration('90d'), 90 * 86_400);
  assert.equal(parseDuration('12h'), 12 * 3_600);
  assert.equal(parseDuration('30m'), 1_800);
  assert.equal(parseDuration('1y'), 365 * 86_400);
  for (const bad of ['', '0d', '11y', '5x', '1.5d', 'd', '-1d', '1 d 2h']) assert.equal(parseDuration(bad), undefined, bad);
});

test('ca init, sign, revoke: files, modes, certificates that verify, lists that supersede', () => {
  const dir = join(top, 'ca');
  const init = run('ca', 'init', '--ca-dir', dir, '--name', 'acme');
  assert.equal(init.code, 0, init.err);
  assert.match(init.out, /^CA "acme" created in /);
  assert.equal(mode(dir), 0o700);
  assert.equal(mode(join(dir, 'ca.key')), 0o600);
  assert.equal(mode(join(dir, 'ca.crt')), 0o644);
  const caCert = certificateFromText(readFileSync(join(dir, 'ca.crt'), 'utf8'))!;
  const base = { caPublicKeys: [caCert.caPublicKey], now: Math.floor(Date.now() / 1000), nodeIdOf: nodeIdFromPublicKey };
  assert.deepEqual(verifyCertificate(caCert, { ...base, kind: 'ca' }), { ok: true });

  const key = readFileSync(join(dir, 'ca.key'), 'utf8');
  refused(run('ca', 'init', '--ca-dir', dir), 1, /already holds a CA/);
  assert.equal(readFileSync(join(dir, 'ca.key'), 'utf8'), key, 'the CA key is never replaced');

  // the key exactly as `idloc-agent id --json` prints it
  const id = JSON.parse(run('id', '--state-dir', join(top, 'state'), '--json').out) as { publicKey: string };
  const signed = run('ca', 'sign', '--ca-dir', dir, '--public-key', id.publicKey, '--name', 'Alice', '--groups', 'web,db', '--valid', '90d');
  assert.equal(signed.code, 0, signed.err);
  assert.match(signed.out, /^alice\.crt: member "alice" groups db,web, key [0-9a-f]{64}, valid until /);
  assert.equal(mode(join(top, 'alice.crt')), 0o644);
  const cert = certificateFromText(readFileSync(join(top, 'alice.crt'), 'utf8'))!;
  assert.equal(hex(cert.subjectPublicKey), id.publicKey);
  assert.equal(cert.notAfter - cert.notBefore, 90 * 86_400 + 300);
  assert.deepEqual(verifyCertificate(cert, { ...base, expectSubjectKey: cert.subjectPublicKey }), { ok: true });

  const toStdout = run('ca', 'sign', '--ca-dir', dir, '--public-key', newKey(), '--name', 'bob', '--valid', '1d', '--out', '-');
  assert.equal(toStdout.code, 0);
  assert.equal(certificateFromText(toStdout.out)?.name, 'bob');
  assert.match(toStdout.err, /warning: this certificate expires .* within 7 days/);

  const other = newKey();
  for (const [k, seq] of [[id.publicKey, 1], [other, 2]] as const) {
    const r = run('ca', 'revoke', '--ca-dir', dir, '--public-key', k);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, new RegExp(`revoked\\.crl: revoked ${k} \\(list ${seq}, ${seq} keys?\\)`));
  }
  assert.match(run('ca', 'revoke', '--ca-dir', dir, '--public-key', other).out, /revoked already \(list 2 unchanged\)/);
  assert.deepEqual(run('ca', 'revoke', '--ca-dir', dir, '--list').out.trim().split('\n').sort(), [id.publicKey, other].sort());
  const crl = revocationListFromText(readFileSync(join(dir, 'revoked.crl'), 'utf8'))!;
  assert.equal(crl.sequence, 2);
  assert.ok(verifyRevocationList(crl, [caCert.caPublicKey]));
  assert.ok(isRevoked(crl, cert.subjectPublicKey));
  refused(run('ca', 'sign', '--ca-dir', dir, '--public-key', other, '--name', 'carol'), 1, /is revoked by this CA/);
  assert.match(run('ca', 'show', join(dir, 'revoked.crl')).out, /^caPublicKey +[0-9a-f]{64}\nsequence +2\n/);
  assert.equal(JSON.parse(run('ca', 'show', join(top, 'alice.crt'), '--json').out).name, 'alice');
});

test('bad flags are one line and exit 2', () => {
  const dir = join(top, 'flags');
  assert.equal(run('ca', 'init', '--ca-dir', dir).code, 0);
  const k = newKey();
  const sign = (...more: string[]) => run('ca', 'sign', '--ca-dir', dir, ...more);
  refused(sign('--public-key', k, '--name', 'a', '--valid', '5x'), 2, /--valid: "5x" is not a duration/);
  refused(sign('--public-key', k, '--name', 'a', '--valid', '20y'), 2, /--valid/);
  refused(sign('--public-key', 'abcd', '--name', 'a'), 2, /--public-key: "abcd" is not an Ed25519 public key/);
  refused(sign('--public-key', k, '--name', 'not_valid'), 2, /--name/);
  refused(sign('--public-key', k, '--name', 'a', '--groups', 'a,b,c,d,e,f,g,h,i'), 2, /at most 8/);
  refused(sign('--public-key', k, '--name', 'a', '--groups', 'Has Space'), 2, /--groups/);
  refused(sign('--name', 'a'), 2, /required option '--public-key/);
  refused(run('ca', 'sign', '--public-key', k, '--name', 'a'), 2, /--ca-dir/);
  refused(run('ca', 'revoke', '--ca-dir', dir), 2, /either --public-key KEY or --list/);
  refused(run('ca', 'init', '--ca-dir', join(top, 'flags2'), '--valid', '0d'), 2, /--valid/);
});

test('an unusable CA dir is one line and exit 1, never a new CA', () => {
  const dir = join(top, 'broken');
  assert.equal(run('ca', 'init', '--ca-dir', dir, '--valid', '30d').code, 0);
  const k = newKey();
  refused(run('ca', 'sign', '--ca-dir', dir, '--public-key', k, '--name', 'a'), 1, /would outlive the CA/);
  refused(run('ca', 'sign', '--ca-dir', join(top, 'none'), '--public-key', k, '--name', 'a'), 1, /holds no CA .*ca init/);
  const keyFile = join(dir, 'ca.key');
  const good = readFileSync(keyFile, 'utf8');
  chmodSync(keyFile, 0o644);
  refused(run('ca', 'sign', '--ca-dir', dir, '--public-key', k, '--name', 'a', '--valid', '1d'), 1, /readable by other users.*chmod 600/);
  chmodSync(keyFile, 0o600);
  writeFileSync(keyFile, good.slice(0, 20));
  refused(run('ca', 'revoke', '--ca-dir', dir, '--list'), 1, /ca\.key in .* is corrupt \(truncated JSON\)/);
  refused(run('ca', 'init', '--ca-dir', dir), 1, /already holds a CA/);
  assert.equal(readFileSync(keyFile, 'utf8'), good.slice(0, 20), 'a corrupt key stays as it is');
  writeFileSync(keyFile, good);
  writeFileSync(join(dir, 'ca.crt'), 'garbage\n');
  refused(run('ca', 'revoke', '--ca-dir', dir, '--list'), 1, /ca\.crt in .* is corrupt/);
});
