// packaging/idloc-agent.service: systemd-analyze verify accepts it (its ExecStart pointed at a launcher
// of the built CLI, since verify wants the program to exist), and `up` run as the unit runs it (root with nothing
// but the unit's CapabilityBoundingSet, no new privileges, NOTIFY_SOCKET set) comes up in a lab
// namespace and says READY=1 once its TAP carries both overlay addresses. A stand-in for systemd
// (python3 on a unix datagram socket) receives what the real systemd-notify sends. Without
// CAP_NET_ADMIN the same command fails: the bounding set really is what the agent runs with.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lab, waitFor } from './lab.js';
import { canonicalIpv6, CLI, cliMissing, TAP_NAME, type AgentIdentity } from './agents.js';
import { labUnavailable, prerequisites } from './prerequisites.js';

const UNIT = fileURLToPath(new URL('../../../packaging/idloc-agent.service', import.meta.url));
const unitText = readFileSync(UNIT, 'utf8');
/** Every value of `key=` in the unit (systemd allows a key more than once). */
const values = (key: string) => [...unitText.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1]!.trim());

const runs = (cmd: string, args: string[]) => {
  try { execFileSync(cmd, args, { stdio: 'ignore' }); return true; } catch { return false; }
};
const missing = (cmd: string, why: string, args = ['--version']) =>
  !runs(cmd, args) && `${cmd} is not installed (${why}; Debian: scripts/install-test-deps.sh)`;

const VERIFY = 'the systemd unit passes systemd-analyze verify';
const verifySkip = prerequisites(VERIFY, missing('systemd-analyze', 'it checks the unit'), cliMissing());

describe(VERIFY, { skip: verifySkip }, () => {
  let dir: string;
  before(() => { dir = mkdtempSync(join(tmpdir(), 'idloc-unit-')); });
  after(() => { rmSync(dir, { recursive: true, force: true }); });

  it('no error and no warning about the unit, its ExecStart on a launcher of the built CLI', async () => {
    const exec = values('ExecStart');
    assert.equal(exec.length, 1, 'one ExecStart');
    const program = exec[0]!.split(/\s+/)[0]!;
    // Where npm would have put the command: a launcher of the built CLI, made here.
    const launcher = join(dir, 'idloc-agent');
    writeFileSync(launcher, `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} "$@"\n`, { mode: 0o755 });
    const copy = join(dir, 'idloc-agent.service');
    writeFileSync(copy, unitText.replace(`ExecStart=${program} `, `ExecStart=${launcher} `));
    const r = await new Promise<{ code: number; out: string }>((resolve) => {
      execFile('systemd-analyze', ['verify', '--man=no', copy], { timeout: 30_000 }, (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: `${stdout}${stderr}` }));
    });
    assert.equal(r.code, 0, r.out);
    const aboutUnit = r.out.split('\n').filter((l) => l.includes('idloc-agent'));
    assert.deepEqual(aboutUnit, [], 'systemd-analyze said nothing about the unit');
  });
});

// Receives notify datagrams and prints each as one JSON line; closes the descriptors that come with
// them, which is what systemd-notify's barrier waits for.
const FAKE_SYSTEMD = `
import array, json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print(json.dumps('listening'), flush=True)
while True:
    data, anc, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(16 * 4))
    for level, kind, body in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds = array.array('i')
            fds.frombytes(body[:len(body) - len(body) % fds.itemsize])
            for fd in fds:
                socket.close(fd)
    print(json.dumps(data.decode()), flush=True)
`;

/** CAP_NET_ADMIN CAP_NET_BIND_SERVICE -> setpriv's "-all,+net_admin,+net_bind_service". */
function boundingSetArg(caps: readonly string[]): string {
  return ['-all', ...caps.map((c) => `+${c.replace(/^CAP_/, '').toLowerCase()}`)].join(',');
}
/** The kernel's capability numbers (linux/capability.h) of the ones the unit may name. */
const CAP_BITS: Record<string, number> = { CAP_NET_BIND_SERVICE: 10, CAP_NET_BROADCAST: 11, CAP_NET_ADMIN: 12, CAP_NET_RAW: 13 };

const RUN = 'up with only the unit\'s capabilities, telling systemd when it is ready';
const runSkip = prerequisites(RUN, labUnavailable(), cliMissing(), missing('setpriv', 'it drops capabilities as the unit does'),
  missing('systemd-notify', 'the agent sends READY=1 through it'), missing('python3', 'the stand-in for systemd', ['-c', 'import socket']));

describe(RUN, { skip: runSkip }, () => {
  let lab: Lab;
  let fake: ChildProcess | undefined;
  const received: string[] = [];
  const caps = (values('CapabilityBoundingSet')[0] ?? '').split(/\s+/).filter(Boolean);
  const notifySocket = () => join(lab.dir, 'notify.sock');

  before(async () => {
    lab = await Lab.create({ hosts: ['h'] });
    fake = spawn('python3', ['-c', FAKE_SYSTEMD, notifySocket()], { stdio: ['ignore', 'pipe', 'inherit'] });
    let buf = '';
    fake.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) { received.push(JSON.parse(buf.slice(0, i)) as string); buf = buf.slice(i + 1); }
    });
    await waitFor(() => {
      if (fake!.exitCode !== null) throw new Error(`the stand-in for systemd exited ${fake!.exitCode}`);
      return received.includes('listening');
    }, 5_000, { what: 'the stand-in for systemd to listen' });
  });
  after(async () => {
    if (fake?.pid !== undefined && fake.exitCode === null) process.kill(fake.pid, 'SIGKILL');
    await lab?.destroy(); // stops the agent, deletes the namespaces and lab.dir (the socket with it)
  });

  /** `up` as the unit runs it, but with this bounding set, in a fresh state dir. */
  function upAsUnit(name: string, bounding: readonly string[]) {
    const stateDir = join(lab.dir, `state-${name}`);
    const argv = ['setpriv', `--bounding-set=${boundingSetArg(bounding)}`, '--no-new-privs', '--',
      process.execPath, CLI, 'up', '--state-dir', stateDir, '--tap', TAP_NAME, '--listen', '4500'];
    const proc = lab.spawn('h', argv, { env: { ...process.env, NOTIFY_SOCKET: notifySocket() }, logFile: join(lab.dir, `agent-${name}.log`) });
    return { proc, stateDir };
  }

  it('comes up, holding exactly those capabilities, and READY=1 arrives after the TAP has its addresses', async () => {
    assert.deepEqual(caps.filter((c) => !(c in CAP_BITS)), [], `the test knows the bit of every capability the unit names: ${caps.join(' ')}`);
    const { proc, stateDir } = upAsUnit('unit', caps);
    const id = JSON.parse((await lab.exec('h', [process.execPath, CLI, 'id', '--json', '--state-dir', stateDir])).stdout) as AgentIdentity;
    const ready = await waitFor(() => (proc.running ? received.find((d) => d.split('\n').includes('READY=1')) : 'exited'),
      20_000, { what: 'READY=1 from the agent', intervalMs: 50 });
    assert.notEqual(ready, 'exited', `up exited ${JSON.stringify(proc.exitInfo)} before READY=1: ${proc.stderr.slice(-2000)}`);
    assert.match(ready, /^STATUS=TAP idloc0 up, UDP port 4500$/m);

    // Ready means usable: both addresses on the TAP and the control socket answering, right now.
    const addr = JSON.parse((await lab.exec('h', ['ip', '-j', 'addr', 'show', 'dev', TAP_NAME])).stdout) as { addr_info: { local: string }[] }[];
    const have = (addr[0]?.addr_info ?? []).map((a) => canonicalIpv6(a.local));
    assert.ok(have.includes(id.ipv4) && have.includes(canonicalIpv6(id.ipv6)), `at READY=1 ${TAP_NAME} has ${have.join(', ')}`);
    const status = JSON.parse((await lab.exec('h', [process.execPath, CLI, 'status', '--json', '--state-dir', stateDir])).stdout) as { identity: AgentIdentity };
    assert.equal(status.identity.publicKey, id.publicKey);

    const capEff = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/${proc.pid}/status`, 'utf8'))![1]!;
    const want = caps.reduce((m, c) => m | (1n << BigInt(CAP_BITS[c]!)), 0n);
    assert.equal(BigInt(`0x${capEff}`), want, `the agent's effective capabilities are the unit's ${caps.join(' ')}`);

    const exit = await lab.stopProcess(proc, { signal: 'SIGTERM', timeoutMs: 5_000 });
    assert.deepEqual(exit, { code: 0, signal: null }, `SIGTERM stops it cleanly: ${proc.stderr.slice(-2000)}`);
  });

  it('without CAP_NET_ADMIN the same command fails at the TAP and never says READY=1', async () => {
    const before = received.length;
    const { proc } = upAsUnit('no-net-admin', caps.filter((c) => c !== 'CAP_NET_ADMIN'));
    const exit = await waitFor(() => proc.exitInfo, 15_000, { what: 'up without CAP_NET_ADMIN to exit' });
    assert.equal(exit.code, 1, proc.stderr);
    assert.match(proc.stderr, /EPERM|not permitted|TUNSETIFF/i);
    assert.deepEqual(received.slice(before).filter((d) => d.includes('READY=1')), []);
  });
});
