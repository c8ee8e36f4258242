// Names kept in the state dir (agent/names-state.ts): `register` keeps what it registered, a restarted
// agent (fresh overlay stores everywhere: nothing survives but the state dir) registers it again, the
// file is bounded, and a corrupt or exposed names.json is one clear line.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { NamesState } from '../../agent/names-state.js';
import { StateFileError } from '../../agent/base/state-file.js';
import { NAMES_MAX_KEPT } from '../../agent/base/constants.js';
import { Agent } from '../../agent/daemon.js';
import { MemoryTap } from '../../agent/tap/memory-tap.js';
import { MemoryNetwork } from '../../agent/conn/memory-socket.js';
import { generateIdentity, type Identity } from '../../agent/idloc/identity.js';
import { eventually } from './memory-agent.js';

function scratch(): string {
  const dir = mkdtempSync(join(tmpdir(), 'idloc-names-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('kept names survive a reload, normalized, once each, mode 0600, at most NAMES_MAX_KEPT', () => {
  const dir = scratch();
  const s = NamesState.load(dir);
  assert.deepEqual(s.list(), []);
  assert.equal(s.keep('Bob'), true);
  assert.equal(s.keep('bob'), true);
  assert.equal(s.keep('not a name!'), false);
  assert.deepEqual(NamesState.load(dir).list(), ['bob']);
  assert.equal(statSync(join(dir, 'names.json')).mode & 0o777, 0o600);
  for (let i = 1; i < NAMES_MAX_KEPT; i++) assert.equal(s.keep(`n${i}`), true);
  assert.equal(s.room('one-more'), false);
  assert.equal(s.keep('one-more'), false);
  assert.equal(s.room('bob'), true, 'a kept name can always be registered again');
  assert.equal(NamesState.load(dir).list().length, NAMES_MAX_KEPT);
});

test('a corrupt or exposed names.json is one line naming the file and the fix', () => {
  const dir = scratch();
  const file = join(dir, 'names.json');
  const cases: [string, RegExp][] = [
    ['{"version":1,"names":["bo', /truncated JSON/],
    ['{"version":1,"names":"bob"}', /"names" is not a list/],
    ['{"version":1,"names":["no spaces allowed"]}', /is not a valid name/],
    [JSON.stringify({ version: 1, names: Array.from({ length: NAMES_MAX_KEPT + 1 }, (_, i) => `n${i}`) }), /more than/],
  ];
  for (const [text, why] of cases) {
    writeFileSync(file, text, { mode: 0o600 });
    assert.throws(() => NamesState.load(dir), (e: unknown) => e instanceof StateFileError && why.test(e.message)
      && e.message.startsWith(`names.json in ${dir} is corrupt (`) && e.message.includes('fix or remove it') && !e.message.includes('\n'));
    assert.equal(readFileSync(file, 'utf8'), text, 'left as it was');
  }
  writeFileSync(file, '{"version":1,"names":[]}');
  chmodSync(file, 0o666);
  assert.throws(() => NamesState.load(dir), /names\.json in .* is writable by other users \(mode 666\); run chmod 600/);
});

const silent = pino({ level: 'silent' });
const DIFFICULTY = 4;

function agentOn(net: MemoryNetwork, i: number, id: Identity, bootstraps: string[], keptNames?: NamesState): Agent {
  const tap = new MemoryTap({ name: `mem${i}`, mac: Uint8Array.of(2, 0, 0, 0, 0, 10 + i) });
  const agent = new Agent({
    identity: id, tap, socket: net.socket(`198.51.100.${10 + i}`, 4500), logger: silent, peers: [],
    overlay: { bootstraps: bootstraps.map((b) => ({ address: b, port: 4500 })), puzzleDifficulty: DIFFICULTY },
    ...(keptNames ? { keptNames } : {}),
  });
  agent.start();
  return agent;
}

test('a name registered before a restart is registered again from the state dir (every store started empty)', async () => {
  const dir = scratch();
  const ids = [generateIdentity(), generateIdentity()];
  const net1 = new MemoryNetwork();
  const a1 = agentOn(net1, 0, ids[0]!, []);
  const b1 = agentOn(net1, 1, ids[1]!, ['198.51.100.10'], NamesState.load(dir));
  try {
    const r = await eventually(async () => { const x = await b1.register('bob'); return x.ok ? x : undefined; }, 5000, 'register bob');
    assert.equal(r.nodeId, ids[1]!.nodeIdHex);
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 'names.json'), 'utf8')), { version: 1, names: ['bob'] });
  } finally {
    await Promise.all([a1.close(), b1.close()]);
  }
  // The restart: a new network and new agents, so no overlay store remembers bob; only names.json does.
  const net2 = new MemoryNetwork();
  const a2 = agentOn(net2, 0, ids[0]!, []);
  const b2 = agentOn(net2, 1, ids[1]!, ['198.51.100.10'], NamesState.load(dir));
  try {
    const found = await eventually(() => a2.resolve('bob'), 5000, 'bob to resolve after the restart');
    assert.equal(found.publicKey, ids[1]!.publicKeyHex);
    assert.equal(found.name, 'bob');
  } finally {
    await Promise.all([a2.close(), b2.close()]);
  }
});
