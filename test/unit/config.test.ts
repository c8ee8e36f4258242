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
  assert.deepEqual(d.bootstrap, [], 'no bootstrap: this agent starts a new overlay');
  assert.equal(d.allow, 'overlay');
  assert.equal(d.puzzleDifficulty, 16);
});

test('--turn and --stun: parsed, port defaults to 3478, the password never echoed in errors', () => {
  const c = loadConfig({ turn: 'turn:idloc:s3cret@203.0.113.5', stun: ['198.51.100.7:3478'] });
  assert.deepEqual(c.turn, { server: { address: '203.0.113.5', port: 3478 }, username: 'idloc', password: 's3cret' });
  assert.deepEqual(c.stun, [{ address: '198.51.100.7', port: 3478 }]);
  assert.deepEqual(loadConfig({ turn: 'u:p@203.0.113.5:5349' }).turn?.server, { address: '203.0.113.5', port: 5349 });
  assert.equal(loadConfig({}).turn, undefined);
  assert.throws(() => loadConfig({ turn: 'turn:u:s3cret@nohost:x' }), (e: unknown) => e instanceof ConfigError && !e.message.includes('s3cret'));
});

test('bootstrap, allow and puzzle difficulty from the file; flags win', () => {
  const cfg = file('overlay.json', JSON.stringify({ bootstrap: ['198.51.100.7:4500', '203.0.113.9:4501'], allow: 'static', puzzleDifficulty: 8 }));
  const c = loadConfig({ config: cfg });
  assert.deepEqual(c.bootstrap, [{ address: '198.51.100.7', port: 4500 }, { address: '203.0.113.9', port: 4501 }]);
  assert.equal(c.allow, 'static');
  assert.equal(c.puzzleDifficulty, 8);
  const f = loadConfig({ config: cfg, bootstrap: ['198.51.100.1:1'], allow: 'overlay', puzzleDifficulty: '12' });
  assert.deepEqual(f.bootstrap, [{ address: '198.51.100.1', port: 1 }]);
  assert.equal(f.allow, 'overlay');
  assert.equal(f.puzzleDifficulty, 12);
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
    [{ logFormat: 'xml' }, /--log-format: "xml" is not a log format \(auto, json, pretty\)/],
    [{ metrics: 'nowhere' }, /--metrics: "nowhere" is not HOST:PORT/],
    [{ metrics: '127.0.0.1:0' }, /--metrics: "127.0.0.1:0" is not HOST:PORT/],
    [{ config: join(dir, 'missing.json') }, /cannot read config file .*ENOENT/],
    [{ config: file('bad.json', '{nope') }, /is not valid JSON/],
    [{ config: file('arr.json', '[]') }, /must hold a JSON object/],
    [{ config: file('unk.json', '{"lisen": 1}') }, /unknown key "lisen"/],
    [{ config: file('type.json', '{"listen": "x"}') }, /"listen": "x" is not a UDP port/],
    [{ config: file('peers.json', '{"peers": "x"}') }, /"peers" must be an array/],
    [{ bootstrap: ['nohostport'] }, /--bootstrap: "nohostport" is not HOST:PORT/],
    [{ bootstrap: ['198.51.100.7:0'] }, /--bootstrap: "198\.51\.100\.7:0" is not HOST:PORT/],
    [{ config: file('boot.json', '{"bootstrap": "198.51.100.7:4500"}') }, /"bootstrap" must be an array of "HOST:PORT"/],
    [{ allow: 'everyone' }, /--allow: "everyone" is not overlay or static/],
    [{ stun: ['nope'] }, /--stun: "nope" is not HOST:PORT/],
    [{ turn: 'user@198.51.100.1:3478' }, /--turn: .* is not turn:USER:PASS@HOST\[:PORT\]/],
    [{ turn: 'turn:user:pw@' }, /--turn: "turn:user:\*\*\*@" is not/],
    [{ puzzleDifficulty: '41' }, /--puzzle-difficulty: "41" is not a puzzle difficulty/],
    [{ config: file('puz.json', '{"puzzleDifficulty": -1}') }, /"puzzleDifficulty": -1 is not a puzzle difficulty/],
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

test('port probing: on by default, off by --no-port-probing or "portProbing": false, anything else refused', () => {
  assert.equal(loadConfig({}).portProbing, true);
  assert.equal(loadConfig({ portProbing: false }).portProbing, false);
  assert.equal(loadConfig({ config: file('probe-off.json', '{"portProbing": false}') }).portProbing, false);
  assert.equal(loadConfig({ portProbing: false, config: file('probe-on.json', '{"portProbing": true}') }).portProbing, false, 'the flag wins');
  assert.throws(() => loadConfig({ config: file('probe-bad.json', '{"portProbing": 1}') }), (e: unknown) => e instanceof ConfigError && /"portProbing" must be true or false/.test(e.message));
});

test('DNS for .idloc: off by default, on by --dns or "dns": true, anything else refused in one line', () => {
  assert.equal(loadConfig({}).dns, false);
  assert.equal(loadConfig({ dns: true }).dns, true);
  assert.equal(loadConfig({ config: file('dns-on.json', '{"dns": true}') }).dns, true);
  assert.equal(loadConfig({ config: file('dns-off.json', '{"dns": false}') }).dns, false);
  assert.equal(loadConfig({ dns: true, config: file('dns-off2.json', '{"dns": false}') }).dns, true, 'the flag wins');
  assert.throws(() => loadConfig({ config: file('dns-bad.json', '{"dns": "yes"}') }),
    (e: unknown) => e instanceof ConfigError && /dns-bad\.json: "dns" must be true or false$/.test(e.message) && !e.message.includes('\n'));
});

test('peer relaying: on by default, off by --no-peer-relay or "peerRelay": false, anything else refused', () => {
  assert.equal(loadConfig({}).peerRelay, true);
  assert.equal(loadConfig({ peerRelay: false }).peerRelay, false);
  assert.equal(loadConfig({ config: file('relay-off.json', '{"peerRelay": false}') }).peerRelay, false);
  assert.equal(loadConfig({ peerRelay: false, config: file('relay-on.json', '{"peerRelay": true}') }).peerRelay, false, 'the flag wins');
  assert.throws(() => loadConfig({ config: file('relay-bad.json', '{"peerRelay": "no"}') }), (e: unknown) => e instanceof ConfigError && /"peerRelay" must be true or false/.test(e.message));
});

test('--turn-secret and --offer-turn: parsed; a secret with --turn, an empty secret or a bad endpoint refused', () => {
  const c = loadConfig({ turnSecret: 's3cret', offerTurn: '198.51.100.11:3478' });
  assert.equal(c.turnSecret, 's3cret');
  assert.deepEqual(c.offerTurn, { address: '198.51.100.11', port: 3478 });
  assert.equal(loadConfig({ config: file('turn-secret.json', '{"turnSecret": "x", "offerTurn": "198.51.100.11:3478"}') }).turnSecret, 'x');
  assert.throws(() => loadConfig({ turnSecret: 's', turn: 'turn:u:p@198.51.100.1' }), (e: unknown) => e instanceof ConfigError && /not both/.test(e.message));
  assert.throws(() => loadConfig({ turnSecret: '' }), (e: unknown) => e instanceof ConfigError && /--turn-secret: the TURN secret is empty/.test(e.message));
  assert.throws(() => loadConfig({ offerTurn: 'nowhere' }), (e: unknown) => e instanceof ConfigError && /--offer-turn: "nowhere" is not HOST:PORT/.test(e.message));
  assert.throws(() => loadConfig({ offerTurn: '198.51.100.11:3478' }), (e: unknown) => e instanceof ConfigError && /--offer-turn needs --turn-secret/.test(e.message));
});
