import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig, parsePeer } from '../../agent/config.js';

const KEY = 'ab'.repeat(32);
const dir = mkdtempSync(join(tmpdir(), 'idloc-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, body: string) => { const p = join(dir, name); writeFileSync(p, body); return p; };

test('defaults, flags over file, peers parsed', () => {
  const cfg = file('ok.json', JSON.stringify({ listen: 5000, tap: 'filetap', peers: [`${KEY}@198.51.100.7:4500`], logLevel: 'debug' }));
  const c = loadConfig({ config: cfg, tap: 'flagtap' });
  assert.equal(c.tap, 'flagtap');
  assert.equal(c.listen, 5000);
  assert.equal(c.logLevel, 'debug');
  assert.equal(c.peers.length, 1);
  assert.deepEqual(c.peers[0]!.endpoint, { address: '198.51.100.7', port: 4500 });
  const d = loadConfig({});
  assert.equal(d.listen, 4500);
  assert.equal(d.mtu, 1420);
  assert.equal(d.tap, 'idloc0');
});

test('bad values are refused with one line naming where they came from', () => {
  const cases: [Parameters<typeof loadConfig>[0], RegExp][] = [
    [{ listen: '99999' }, /--listen: "99999" is not a UDP port/],
    [{ listen: 'abc' }, /--listen/],
    [{ mtu: '500' }, /--mtu/],
    [{ tap: 'this-name-is-way-too-long' }, /--tap/],
    [{ peer: ['garbage'] }, /--peer: "garbage" must be PUBKEY@HOST:PORT/],
    [{ peer: [`${KEY}@nohostport`] }, /is not HOST:PORT/],
    [{ peer: [`${KEY}@1.2.3.4:1`, `${KEY}@1.2.3.5:1`] }, /given twice/],
    [{ logLevel: 'loud' }, /not a log level/],
    [{ config: join(dir, 'missing.json') }, /cannot read config file .*ENOENT/],
    [{ config: file('bad.json', '{nope') }, /is not valid JSON/],
    [{ config: file('arr.json', '[]') }, /must hold a JSON object/],
    [{ config: file('unk.json', '{"lisen": 1}') }, /unknown key "lisen"/],
    [{ config: file('type.json', '{"listen": "x"}') }, /"listen": "x" is not a UDP port/],
    [{ config: file('peers.json', '{"peers": "x"}') }, /"peers" must be an array/],
  ];
  for (const [flags, re] of cases) {
    assert.throws(() => loadConfig(flags), (e: unknown) => e instanceof ConfigError && re.test(e.message) && !e.message.includes('\n'), JSON.stringify(flags));
  }
});

test('a peer may be given without an endpoint (it will contact us)', () => {
  const p = parsePeer(KEY);
  assert.equal(p.endpoint, undefined);
  assert.deepEqual(parsePeer(`${KEY}@[fd00::1]:7`).endpoint, { address: 'fd00::1', port: 7 });
});
