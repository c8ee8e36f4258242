import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IdentityError, identityToJson, loadOrCreateIdentity } from '../../agent/idloc/identity.js';
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

test('a corrupt or mismatched identity file is a clear error, not a new key', () => {
  const dir = mkdtempSync(join(tmpdir(), 'idloc-id-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'identity.json'), 'not json');
  assert.throws(() => loadOrCreateIdentity(dir), (e: unknown) => e instanceof IdentityError && /not valid JSON/.test(e.message));
  writeFileSync(join(dir, 'identity.json'), JSON.stringify({ privateKey: '11'.repeat(32), publicKey: '22'.repeat(32) }));
  assert.throws(() => loadOrCreateIdentity(dir), /does not match/);
  writeFileSync(join(dir, 'identity.json'), JSON.stringify({ privateKey: 'xyz' }));
  assert.throws(() => loadOrCreateIdentity(dir), /64 hex/);
});
