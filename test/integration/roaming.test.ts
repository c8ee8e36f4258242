// Roaming: a host's underlay address changes under a running agent. The moving agent notices (netlink)
// and speaks first; the peer moves its endpoint as soon as an authenticated packet arrives from the new
// address (WireGuard's rule). The moving side is the *silent* one here — it only receives ssh output —
// so without the first the session would stall until the next keepalive.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Lab, waitFor, type SshServer } from './lab.js';
import { agentStatus, cliMissing, logTails, startMesh, stopAgent, type TestAgent } from './agents.js';
import { labUnavailable, prerequisites } from './prerequisites.js';

const NEW_ADDRESS = '198.51.100.50';

const SUITE = 'roaming: the underlay address of a host changes';
const skip = prerequisites(SUITE, labUnavailable(), cliMissing());

describe(SUITE, { skip }, () => {
  let lab: Lab;
  let agents: TestAgent[] = [];
  let sshd: SshServer;

  before(async () => {
    lab = await Lab.create({ hosts: ['a', 'b'] });
    agents = await startMesh(lab, lab.hosts);
    sshd = await lab.startSshd('b');
  });
  after(async () => {
    if (sshd) await lab.stopProcess(sshd.proc);
    await Promise.all(agents.map((a) => stopAgent(lab, a)));
    await lab?.destroy();
  });

  it('ssh session and pings survive; the peer follows to the new endpoint', async () => {
    const b = agents[1]!;
    await lab.exec('a', ['ping', '-c', '1', '-W', '2', b.id.ipv4]);
    // 30 lines, one every 0.2 s: the address changes while the session is streaming.
    const started = Date.now();
    const session = sshd.ssh('a', b.id.ipv4, 'for i in $(seq 1 30); do echo line$i; sleep 0.2; done', { timeoutMs: 30_000 });
    await new Promise((r) => setTimeout(r, 1500));
    const old = lab.address('a');
    // As a laptop moving networks: the old address goes, a new one comes.
    await lab.exec('a', ['ip', 'addr', 'del', `${old}/24`, 'dev', lab.uplink]);
    await lab.exec('a', ['ip', 'addr', 'add', `${NEW_ADDRESS}/24`, 'dev', lab.uplink]);
    const r = await session;
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), Array.from({ length: 30 }, (_, i) => `line${i + 1}`));
    // 6 s of output plus ssh setup; a stall until the next keepalive (15 s) would blow this.
    const took = Date.now() - started;
    assert.ok(took < 9000, `the session took ${took} ms: traffic stalled after the move`);
    const st = await waitFor(async () => {
      const s = await agentStatus(lab, b);
      return s.peers[0]?.endpoint?.startsWith(`${NEW_ADDRESS}:`) ? s : undefined;
    }, 5000, { what: 'b to see a at its new address' });
    assert.ok(st.peers[0]!.path === 'direct');
    const p = await lab.exec('a', ['ping', '-c', '3', '-i', '0.2', '-W', '2', b.id.ipv4], { allowFail: true });
    assert.equal(p.code, 0, p.stdout + logTails(agents));
  });
});
