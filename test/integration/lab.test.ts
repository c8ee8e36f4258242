// The lab itself, without the agent: if these fail, every other integration test's failure is the lab's.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Lab } from './lab.js';
import { labUnavailable, prerequisites } from './prerequisites.js';

const skip = prerequisites('netns lab', labUnavailable({ tap: false }));

function namespaces(): string[] {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0]!).filter(Boolean);
}

function pidAlive(pid: number): boolean {
  // A zombie awaiting its reaper counts as gone: it runs nothing.
  try { return !/^\S+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8')); } catch { return false; }
}

describe('netns lab', { skip }, () => {
  let lab: Lab;
  before(async () => { lab = await Lab.create({ hosts: ['a', 'b', 'c'] }); });
  after(async () => { await lab?.destroy(); });

  it('gives each host its own namespace and address on the simulated internet', async () => {
    assert.deepEqual(lab.hosts, ['a', 'b', 'c']);
    assert.equal(lab.address('a'), '198.51.100.10');
    assert.equal(lab.address('c'), '198.51.100.12');
    const out = await lab.exec('b', ['ip', '-4', '-o', 'addr', 'show', 'dev', lab.uplink]);
    assert.match(out.stdout, /198\.51\.100\.11\/24/);
  });

  it('connects every pair of hosts', async () => {
    await Promise.all([['a', 'b'], ['b', 'c'], ['c', 'a']].map(([x, y]) =>
      lab.exec(x!, ['ping', '-c', '1', '-W', '2', lab.address(y!)])));
  });

  it('reports a failing command with its stderr, or returns it when allowed', async () => {
    await assert.rejects(lab.exec('a', ['sh', '-c', 'echo nope >&2; exit 3']), /exited 3: nope/);
    const r = await lab.exec('a', ['sh', '-c', 'exit 4'], { allowFail: true });
    assert.equal(r.code, 4);
    await assert.rejects(lab.exec('a', ['sleep', '10'], { timeoutMs: 200 }), /timed out/);
  });

  it('runs sshd reachable with the lab key', async () => {
    const sshd = await lab.startSshd('b');
    const r = await sshd.ssh('a', lab.address('b'), 'echo $((6*7)) $SSH_CONNECTION');
    const [answer, client, , server] = r.stdout.trim().split(' ');
    assert.equal(answer, '42');
    assert.equal(client, lab.address('a'));
    assert.equal(server, lab.address('b'));
    await lab.stopProcess(sshd.proc);
  });

  it('carries TCP between hosts (iperf3)', async () => {
    const server = lab.spawn('c', ['iperf3', '-s', '-1']);
    await lab.waitForPort('c', 5201);
    const r = await lab.exec('a', ['iperf3', '-c', lab.address('c'), '-t', '1', '-J']);
    const bps = JSON.parse(r.stdout).end.sum_received.bits_per_second as number;
    assert.ok(bps > 1e8, `plain TCP throughput ${bps} bit/s`);
    await server.exited;
  });

  it('stops long-running processes by pid and leaves no namespace behind', async () => {
    const lab2 = await Lab.create({ hosts: ['x'] });
    const p = lab2.spawn('x', ['sleep', '60']);
    // A process the lab never started (as an sshd session's shell is): found by its namespace.
    const stray = Number((await lab2.exec('x', ['sh', '-c', 'setsid sleep 60 >/dev/null 2>&1 < /dev/null & echo $!'])).stdout.trim());
    assert.ok(stray > 0 && pidAlive(stray));
    assert.ok(namespaces().some((n) => n.startsWith(lab2.prefix)));
    await lab2.destroy();
    assert.equal(p.running, false);
    for (let i = 0; i < 50 && pidAlive(stray); i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(pidAlive(stray), false, 'a process left inside the namespace is stopped too');
    await lab2.destroy(); // idempotent
    assert.ok(!namespaces().some((n) => n.startsWith(lab2.prefix)), namespaces().join(' '));
  });
});
