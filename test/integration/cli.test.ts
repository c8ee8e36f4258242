// The CLI's promises to a user at a terminal: bad input gives exit code 2 and one line saying what is
// wrong; no agent or no privilege gives a clear one-liner and exit code 1 (as README promises, after the
// config file example); `id` is stable and private; a corrupt or exposed state dir is one line and exit 1,
// and the control socket answers only root and the state dir's owner.
// Every `up` runs inside a lab namespace: if validation ever let one through, its TAP lands there,
// not on the machine.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab, waitFor, type ExecResult } from './lab.js';
import { CLI, cliMissing, runCli } from './agents.js';
import { labUnavailable, prerequisites } from './prerequisites.js';

const KEY = 'ab'.repeat(32);

function assertOneLine(r: ExecResult, code: 1 | 2, re: RegExp): void {
  const what = `exit ${r.code}, stdout ${JSON.stringify(r.stdout)}, stderr ${JSON.stringify(r.stderr)}`;
  assert.equal(r.code, code, what);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `want one line on stderr: ${what}`);
  assert.match(lines[0]!, re, what);
  assert.doesNotMatch(r.stderr, /\n\s+at /, `stack trace on stderr: ${what}`);
}

const SUITE = 'idloc-agent command line';
const skip = prerequisites(SUITE, labUnavailable(), cliMissing());

describe(SUITE, { skip }, () => {
  let lab: Lab;
  let dir: string;
  const cli = (args: string[], opts: Parameters<typeof runCli>[3] = {}) => runCli(lab, 'h', args, { allowFail: true, timeoutMs: 10_000, ...opts });
  const up = (args: string[]) => cli(['up', '--state-dir', join(dir, 'state-up'), ...args]);

  before(async () => {
    lab = await Lab.create({ hosts: ['h'] });
    dir = mkdtempSync(join(lab.dir, 'cli-'));
  });
  after(async () => { await lab?.destroy(); });

  describe('bad flags and config files exit 2 with one line', () => {
    const cases: [string, string[], RegExp][] = [
      ['a port out of range', ['--listen', '99999'], /listen.*99999|99999.*port/i],
      ['a port that is not a number', ['--listen', 'abc'], /listen/i],
      ['a peer that is garbage', ['--peer', 'garbage'], /peer.*garbage/i],
      ['a peer key of the wrong length', ['--peer', `${KEY.slice(2)}@198.51.100.11:4500`], /peer/i],
      ['a peer with a bad endpoint', ['--peer', `${KEY}@198.51.100.11:99999`], /peer|HOST:PORT/i],
      ['an unknown option', ['--frobnicate'], /unknown option.*frobnicate/i],
      ['an unknown log level', ['--log-level', 'loud'], /log-level|loud/i],
      ['a bad TAP name', ['--tap', 'this-name-is-way-too-long'], /tap|interface name/i],
      ['a bootstrap that is not HOST:PORT', ['--bootstrap', '198.51.100.7'], /bootstrap.*198\.51\.100\.7.*HOST:PORT/i],
      ['an unknown --allow', ['--allow', 'everyone'], /allow|everyone/i],
      ['a puzzle difficulty out of range', ['--puzzle-difficulty', '99'], /puzzle-difficulty.*99/i],
    ];
    for (const [what, args, re] of cases) {
      it(what, async () => assertOneLine(await up(args), 2, re));
    }

    it('a config file that is not JSON', async () => {
      const f = join(dir, 'broken.json');
      writeFileSync(f, '{ "listen": 4500, ');
      assertOneLine(await up(['--config', f]), 2, /broken\.json.*JSON/i);
    });
    it('a config file with a bad value', async () => {
      const f = join(dir, 'badvalue.json');
      writeFileSync(f, JSON.stringify({ listen: 70000 }));
      assertOneLine(await up(['--config', f]), 2, /listen/i);
    });
    it('a config file with an unknown key', async () => {
      const f = join(dir, 'unknownkey.json');
      writeFileSync(f, JSON.stringify({ lisen: 4500 }));
      assertOneLine(await up(['--config', f]), 2, /lisen/);
    });
    it('a config file that does not exist', async () => {
      assertOneLine(await up(['--config', join(dir, 'missing.json')]), 2, /missing\.json/);
    });
    it('a config file that cannot be read (a directory)', async () => {
      const d = join(dir, 'adir.json');
      mkdirSync(d);
      assertOneLine(await up(['--config', d]), 2, /adir\.json/);
    });
    it('netcheck with a --stun that is not HOST:PORT', async () => {
      assertOneLine(await cli(['netcheck', '--stun', 'nope', '--state-dir', join(dir, 'nobody-home')]), 2, /--stun: "nope" is not HOST:PORT/);
    });
    it('register with no name', async () => {
      assertOneLine(await cli(['register', '--state-dir', join(dir, 'nobody-home')]), 2, /missing required argument|name/i);
    });
    it('an unknown command', async () => {
      assertOneLine(await cli(['frobnicate']), 2, /frobnicate|unknown command/i);
    });
  });

  for (const cmd of [['status', '--json'], ['resolve', 'alice'], ['register', 'alice'], ['netcheck']]) {
    it(`${cmd[0]} with no agent running says so in one line and exits 1`, async () => {
      const r = await cli([...cmd, '--state-dir', join(dir, 'nobody-home')]);
      assertOneLine(r, 1, /no agent is running/i);
      assert.equal(r.stdout, '');
    });
  }

  it('id --json creates a private identity file and prints the same identity every time', async () => {
    const state = join(dir, 'state-id');
    const first = await cli(['id', '--state-dir', state, '--json']);
    assert.equal(first.code, 0, first.stderr);
    const id = JSON.parse(first.stdout) as Record<string, string>;
    assert.match(id['publicKey']!, /^[0-9a-f]{64}$/);
    assert.match(id['nodeId']!, /^[0-9a-f]+$/);
    assert.match(id['ipv4']!, /^100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\.\d+\.\d+$/); // 100.64.0.0/10
    assert.match(id['ipv6']!, /^fd1d:10c0:/);
    assert.equal(statSync(join(state, 'identity.json')).mode & 0o777, 0o600);
    const second = await cli(['id', '--state-dir', state, '--json']);
    assert.deepEqual(JSON.parse(second.stdout), id);
    const plain = await cli(['id', '--state-dir', state]);
    assert.equal(plain.code, 0);
    assert.ok(plain.stdout.includes(id['publicKey']!), plain.stdout);
  });

  it('up as an unprivileged user names the missing privilege and exits 1', async () => {
    // A state dir the user may write, so the only thing missing is the privilege itself.
    const state = join(dir, 'state-nobody');
    for (const d of [lab.dir, dir]) chmodSync(d, 0o711); // traversable by nobody, still not listable
    mkdirSync(state);
    chownSync(state, 65534, 65534);
    const wrap = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', '--'];
    const r = await runCli(lab, 'h', ['up', '--state-dir', state, '--listen', '4500'], { wrap, allowFail: true });
    assertOneLine(r, 1, /CAP_NET_ADMIN|root/);
    const link = await lab.exec('h', ['ip', 'link', 'show', 'idloc0'], { allowFail: true });
    assert.notEqual(link.code, 0, 'a TAP was left behind');
  });

  describe('a damaged or exposed state dir exits 1 with one line naming the fix, and nothing is replaced', () => {
    const NOBODY = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', '--'];
    /** A state dir with a real identity in it, 0700 and 0600 as the agent makes them. */
    const made = async (name: string): Promise<string> => {
      const state = join(dir, name);
      const r = await cli(['id', '--state-dir', state, '--json']);
      assert.equal(r.code, 0, r.stderr);
      return state;
    };
    let tried = 0;
    after(() => console.log(`cli: ${tried} damaged or exposed state dirs tried (id and up each), every one refused with exit 1`));

    it('a truncated identity.json', async () => {
      const state = await made('state-truncated');
      const file = join(state, 'identity.json');
      const whole = readFileSync(file, 'utf8');
      writeFileSync(file, whole.slice(0, Math.floor(whole.length / 2)));
      const re = new RegExp(`^idloc-agent: identity\\.json in ${state} is corrupt \\(truncated JSON\\); restore it from a backup, or move it away to start with a new identity$`);
      assertOneLine(await cli(['id', '--state-dir', state]), 1, re);
      assertOneLine(await cli(['up', '--state-dir', state, '--listen', '4510']), 1, re);
      assert.equal(readFileSync(file, 'utf8'), whole.slice(0, Math.floor(whole.length / 2)), 'the damaged key is left for the user to restore, not replaced');
      tried++;
    });
    it('a world-writable state dir', async () => {
      const state = await made('state-777');
      chmodSync(state, 0o777);
      const re = new RegExp(`^idloc-agent: state dir ${state} is writable by other users \\(mode 777\\); run chmod 700 ${state}$`);
      assertOneLine(await cli(['id', '--state-dir', state]), 1, re);
      assertOneLine(await cli(['up', '--state-dir', state, '--listen', '4511']), 1, re);
      tried++;
    });
    it('an identity.json others can read', async () => {
      const state = await made('state-644');
      chmodSync(join(state, 'identity.json'), 0o644);
      const re = /^idloc-agent: identity\.json in .* is readable by other users \(mode 644\); run chmod 600 .*identity\.json$/;
      assertOneLine(await cli(['id', '--state-dir', state]), 1, re);
      assertOneLine(await cli(['up', '--state-dir', state, '--listen', '4512']), 1, re);
      tried++;
    });

    it('a user other than root or the state dir\'s owner is refused by the control socket, with or without file access', async () => {
      const state = join(dir, 'state-ctl');
      const agent = lab.spawn('h', [process.execPath, CLI, 'up', '--state-dir', state, '--tap', 'ctl0', '--listen', '4513', '--log-level', 'warn']);
      try {
        await waitFor(async () => (await cli(['status', '--state-dir', state])).code === 0, 10_000, { what: 'agent up' });
        assert.equal(statSync(join(state, 'control.sock')).mode & 0o777, 0o600);
        for (const d of [lab.dir, dir]) chmodSync(d, 0o711);
        // nobody, plainly: the 0700 state dir and the 0600 socket keep it out
        const plain = await runCli(lab, 'h', ['status', '--state-dir', state], { wrap: NOBODY, allowFail: true });
        assertOneLine(plain, 1, /permission denied: only root and the owner of .* may use the agent's control socket/);
        // nobody with CAP_DAC_OVERRIDE gets past the file modes; the agent asks the kernel who it is
        const past = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=+dac_override', '--ambient-caps=+dac_override', '--'];
        for (const cmd of [['status'], ['register', 'mallory'], ['resolve', 'bob']]) {
          const r = await runCli(lab, 'h', [...cmd, '--state-dir', state], { wrap: past, allowFail: true });
          assertOneLine(r, 1, /permission denied: uid 65534 may not use the agent's control socket .*; only root and the owner of .* may \(uid 0\)/);
          assert.equal(r.stdout, '');
        }
        console.log('cli: 4 control requests from uid 65534 (1 blocked by file modes, 3 past them by CAP_DAC_OVERRIDE), all refused');
        assert.equal((await cli(['status', '--state-dir', state])).code, 0, 'root still may');
        assert.ok(agent.running);
      } finally {
        await lab.stopProcess(agent);
      }
    });
  });

  it('a second agent on a busy TAP name, state dir or UDP port says which and what to do', async () => {
    const first = lab.spawn('h', [process.execPath, CLI, 'up', '--state-dir', join(dir, 'state-busy'), '--listen', '4700', '--log-level', 'warn']);
    try {
      await waitFor(async () => (await cli(['status', '--state-dir', join(dir, 'state-busy')])).code === 0, 10_000, { what: 'first agent up' });
      assertOneLine(await cli(['up', '--state-dir', join(dir, 'state-busy2'), '--listen', '4701']), 1, /TAP device idloc0 is in use .*--tap/);
      assertOneLine(await cli(['up', '--state-dir', join(dir, 'state-busy'), '--tap', 'other0', '--listen', '4702']), 1, /another agent is already running with state dir/);
      assertOneLine(await cli(['up', '--state-dir', join(dir, 'state-busy3'), '--tap', 'other1', '--listen', '4700']), 1, /UDP port 4700 is in use; choose another with --listen/);
      assert.ok(first.running, 'the first agent is unharmed');
      assert.equal((await cli(['status', '--state-dir', join(dir, 'state-busy')])).code, 0);
    } finally {
      await lab.stopProcess(first);
    }
  });
});
