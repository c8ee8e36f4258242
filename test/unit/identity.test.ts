import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  IdentityError, identityToJson, loadOrCreateIdentity, saveIpv4Attempt, withIpv4Attempt,
} from '../../agent/idloc/identity.js';
import { publicKeyOwnsIpv6 } from '../../agent/idloc/addresses.js';

test('identity is created once with mode 0600 and is stable', () => {
  const top = mkdtempSync(join(tmpdir(), 'idloc-id-'));
  after(() => rmSync(top, { recursive: true, force: true }));
  const dir = join(top, 'state');
  const a = loadOrCreateIdentity(dir);
  const st = statSync(join(dir, 'identity.json'));
  assert.equal(st.mode & 0o777, 0o600);
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  const b = loadOrCreateIdentity(dir);
  assert.deepEqual(identityToJson(a), identityToJson(b));
  assert.ok(publicKeyOwnsIpv6(a.publicKey, a.ipv6));
  const j = identityToJson(a);
  assert.match(j.publicKey, /^[0-9a-f]{64}$/);
  assert.match(j.nodeId, /^[0-9a-f]{40}$/);
  assert.match(j.ipv4, /^100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\.\d+\.\d+$/);
  assert.match(j.ipv6, /^fd1d:10c0:/);
});

test('a corrupt or mismatched identity file is one clear line naming the fix, and is never replaced', () => {
  const dir = mkdtempSync(join(tmpdir(), 'idloc-id-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'identity.json');
  const good = JSON.stringify({ version: 1, privateKey: '11'.repeat(32) });
  const cases: [string, RegExp][] = [
    [good.slice(0, 30), /truncated JSON/],
    ['', /empty/],
    ['not json', /not JSON/],
    [JSON.stringify({ privateKey: '11'.repeat(32), publicKey: '22'.repeat(32) }), /publicKey does not match privateKey/],
    [JSON.stringify({ privateKey: 'xyz' }), /privateKey is not 64 hex/],
    [JSON.stringify({ privateKey: '11'.repeat(32), ipv4Attempt: -1 }), /ipv4Attempt/],
  ];
  for (const [text, why] of cases) {
    writeFileSync(file, text, { mode: 0o600 });
    assert.throws(() => loadOrCreateIdentity(dir), (e: unknown) => {
      const m = (e as Error).message;
      return e instanceof IdentityError && why.test(m) && !m.includes('\n')
        && m.startsWith(`identity.json in ${dir} is corrupt (`)
        && m.endsWith('restore it from a backup, or move it away to start with a new identity');
    }, JSON.stringify(text));
    assert.equal(readFileSync(file, 'utf8'), text, 'the corrupt file is left as it was (no new key written over it)');
    assert.deepEqual(readdirSync(dir), ['identity.json']);
  }
  console.log(`identity: ${cases.length} corrupt files tried, each refused with the fix, none replaced`);
});

test('a state dir or identity file other users can read or write is refused, naming the chmod', () => {
  const top = mkdtempSync(join(tmpdir(), 'idloc-id-'));
  after(() => rmSync(top, { recursive: true, force: true }));
  const dir = join(top, 'state');
  const id = loadOrCreateIdentity(dir);
  chmodSync(dir, 0o777);
  assert.throws(() => loadOrCreateIdentity(dir), (e: unknown) => e instanceof IdentityError
    && e.message === `state dir ${dir} is writable by other users (mode 777); run chmod 700 ${dir}`);
  chmodSync(dir, 0o755);
  assert.throws(() => loadOrCreateIdentity(dir), /state dir .* is readable by other users \(mode 755\); run chmod 700/);
  chmodSync(dir, 0o700);
  chmodSync(join(dir, 'identity.json'), 0o644);
  assert.throws(() => loadOrCreateIdentity(dir), (e: unknown) => e instanceof IdentityError
    && e.message === `identity.json in ${dir} is readable by other users (mode 644); run chmod 600 ${join(dir, 'identity.json')}`);
  chmodSync(join(dir, 'identity.json'), 0o600);
  assert.deepEqual(identityToJson(loadOrCreateIdentity(dir)), identityToJson(id), 'after the chmod, the same key');
});

test('the IPv4 attempt is saved atomically and read back; no temporary file is left', () => {
  const top = mkdtempSync(join(tmpdir(), 'idloc-id-'));
  after(() => rmSync(top, { recursive: true, force: true }));
  const dir = join(top, 'state');
  const id = loadOrCreateIdentity(dir);
  saveIpv4Attempt(dir, withIpv4Attempt(id, 3));
  const again = loadOrCreateIdentity(dir);
  assert.equal(again.ipv4Attempt, 3);
  assert.equal(again.publicKeyHex, id.publicKeyHex);
  assert.equal(statSync(join(dir, 'identity.json')).mode & 0o777, 0o600);
  assert.deepEqual(readdirSync(dir), ['identity.json']);
});
