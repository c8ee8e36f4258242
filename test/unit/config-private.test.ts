// The private overlay's settings in flags and the config file: secret file lists and firewall rules are
// checked up front, and every bad one is one ConfigError line (the CLI's exit 2), never a partial start.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig } from '../../agent/config.js';

const dir = mkdtempSync(join(tmpdir(), 'idloc-config-private-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, body: unknown) => {
  const p = join(dir, name);
  writeFileSync(p, typeof body === 'string' ? body : JSON.stringify(body));
  return p;
};
const refused = (f: () => unknown, re: RegExp) => assert.throws(f, (e: unknown) => e instanceof ConfigError && re.test((e as Error).message) && !(e as Error).message.includes('\n'));

test('overlaySecret: a string or a list of two from the file, repeatable flags, flags win', () => {
  assert.deepEqual(loadConfig({ config: file('a.json', { overlaySecret: '/etc/s' }) }).overlaySecret, ['/etc/s']);
  assert.deepEqual(loadConfig({ config: file('b.json', { overlaySecret: ['/n', '/o'] }) }).overlaySecret, ['/n', '/o']);
  assert.deepEqual(loadConfig({ config: file('c.json', { overlaySecret: '/etc/s' }), overlaySecret: ['/f'] }).overlaySecret, ['/f']);
  assert.deepEqual(loadConfig({}).overlaySecret, []);
  refused(() => loadConfig({ overlaySecret: ['/a', '/b', '/c'] }), /^--overlay-secret: at most 2 secrets/);
  refused(() => loadConfig({ overlaySecret: ['/a', '/a'] }), /the same file twice/);
  refused(() => loadConfig({ config: file('d.json', { overlaySecret: 7 }) }), /"overlaySecret" must be an array/);
  refused(() => loadConfig({ config: file('e.json', { overlaySecret: [''] }) }), /an empty file name/);
});

test('firewall: rules from the file or --firewall FILE; a bad rule or file is one line naming where', () => {
  const rules = [{ from: '*', proto: 'icmp' }, { from: 'group:build', proto: 'tcp', port: 22 }];
  assert.equal(loadConfig({ config: file('f.json', { firewall: rules }) }).firewall.length, 2);
  assert.equal(loadConfig({ firewall: file('rules.json', { inbound: rules }) }).firewall.length, 2);
  assert.deepEqual(loadConfig({}).firewall, []);
  refused(() => loadConfig({ config: file('g.json', { firewall: [{ from: '*', proto: 'tcpp' }] }) }), /"firewall": firewall rule 1: unknown proto "tcpp"/);
  refused(() => loadConfig({ firewall: file('bad.json', '[{') }), /^--firewall .*bad\.json: /);
  refused(() => loadConfig({ firewall: join(dir, 'missing.json') }), /^--firewall: cannot read .*ENOENT/);
  refused(() => loadConfig({ firewall: file('port.json', [{ from: '*', proto: 'icmp', port: 22 }]) }), /firewall rule 1/);
});
