// Three real agents in three namespaces: what a user does first (ping, ssh over both overlay families),
// what they look at (status), and that the underlay never carries the inner packets in clear.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab, type SshServer } from './lab.js';
import {
  AGENT_PORT, TAP_NAME, agentStatus, canonicalIpv6, cliMissing, logTails, runCli, startMesh, stopAgent, type TestAgent,
} from './agents.js';
import { labUnavailable, prerequisites } from './prerequisites.js';

const SUITE = 'agents on three hosts: ping, ssh, status, encryption';
const skip = prerequisites(SUITE, labUnavailable(), cliMissing());

describe(SUITE, { skip }, () => {
  let lab: Lab;
  let agents: TestAgent[] = [];
  const byHost = (h: string) => agents.find((a) => a.host === h)!;
  const pairs = () => agents.flatMap((a) => agents.filter((b) => b !== a).map((b) => [a, b] as const));

  before(async () => {
    lab = await Lab.create({ hosts: ['a', 'b', 'c'] });
    agents = await startMesh(lab, lab.hosts);
  });
  after(async () => {
    await Promise.all(agents.map((a) => stopAgent(lab, a)));
    await lab?.destroy();
  });

  it('pings every peer over overlay IPv4 and IPv6, in both directions', async () => {
    // All pairs at once: six pairs x two families of `ping -c 3` would take half a minute one by one.
    const results = await Promise.all(pairs().flatMap(([a, b]) => [
      lab.exec(a.host, ['ping', '-c', '3', '-W', '2', b.id.ipv4], { allowFail: true }).then((r) => ({ a, b, fam: 'v4', r })),
      lab.exec(a.host, ['ping', '-6', '-c', '3', '-W', '2', b.id.ipv6], { allowFail: true }).then((r) => ({ a, b, fam: 'v6', r })),
    ]));
    const failed = results.filter((x) => x.r.code !== 0);
    assert.equal(failed.length, 0, failed.map((x) => `${x.a.host} -> ${x.b.host} ${x.fam}: ${(x.r.stdout + x.r.stderr).trim()}`).join('\n') + '\n' + logTails(agents));
  });

  describe('ssh over the overlay', () => {
    const servers = new Map<string, SshServer>();
    before(async () => {
      for (const h of ['a', 'b']) servers.set(h, await lab.startSshd(h));
    });
    after(async () => {
      for (const s of servers.values()) await lab.stopProcess(s.proc);
    });

    for (const [from, to] of [['a', 'b'], ['c', 'a']] as const) {
      for (const fam of ['ipv4', 'ipv6'] as const) {
        it(`ssh ${from} -> ${to} over overlay ${fam} runs a command, seen from the overlay addresses`, async () => {
          const dst = byHost(to).id[fam];
          const r = await servers.get(to)!.ssh(from, dst, 'echo $((6*7)) $SSH_CONNECTION; cat /proc/net/dev | grep -c idloc0');
          const [first, count] = r.stdout.trim().split('\n');
          const [answer, client, , server, port] = first!.split(' ');
          const canon = fam === 'ipv6' ? canonicalIpv6 : (x: string) => x;
          assert.equal(answer, '42');
          // The server saw the connection come from the client's overlay address to its own: it really went through the TAPs.
          assert.equal(canon(client!), canon(byHost(from).id[fam]));
          assert.equal(canon(server!), canon(dst));
          assert.equal(port, '22');
          assert.equal(count, '1');
        });
      }
    }

    it('moves 2 MB through ssh intact (full-size segments cross the tunnel: no MTU black hole)', async () => {
      const data = randomBytes(2_000_000);
      const r = await servers.get('b')!.ssh('a', byHost('b').id.ipv4, 'sha256sum', { input: data, timeoutMs: 60_000 });
      assert.equal(r.stdout.split(' ')[0], createHash('sha256').update(data).digest('hex'));
    });
  });

  it('shows every peer in status with its endpoint, a handshake and traffic both ways', async () => {
    for (const a of agents) {
      const s = await agentStatus(lab, a);
      assert.equal(s.identity.publicKey, a.id.publicKey);
      assert.equal(s.tap.name, TAP_NAME);
      assert.ok(s.tap.mtu >= 1280 && s.tap.mtu <= 1500 - 28, `tap mtu ${s.tap.mtu}`);
      assert.equal(s.peers.length, agents.length - 1, JSON.stringify(s.peers));
      for (const b of agents.filter((x) => x !== a)) {
        const p = s.peers.find((x) => x.publicKey === b.id.publicKey);
        assert.ok(p, `${a.host} status lacks peer ${b.host}`);
        const what = `${a.host}'s view of ${b.host}: ${JSON.stringify(p)}`;
        assert.equal(p.ipv4, b.id.ipv4, what);
        assert.equal(canonicalIpv6(p.ipv6), canonicalIpv6(b.id.ipv6), what);
        assert.equal(p.endpoint, `${lab.address(b.host)}:${AGENT_PORT}`, what);
        assert.equal(p.path, 'direct', what);
        assert.ok(p.lastHandshake, what);
        assert.ok(p.rxBytes > 0 && p.txBytes > 0, what);
      }
    }
  });

  it('never carries the inner payload in clear on the underlay', async () => {
    // Control: a plain ping with one pattern must show up in the capture (so the capture works);
    // tunnelled pings with another pattern must not. ping -p fills the payload with the repeated pattern.
    const plain = 'a55a0ff0';
    const secret = 'c0ffee42';
    const cap = join(lab.dir, 'underlay-a.pcap');
    const dump = lab.spawn('a', ['tcpdump', '-i', lab.uplink, '-n', '-U', '--immediate-mode', '-s', '0', '-w', cap]);
    await dump.waitForOutput(/listening on/);
    const [b, c] = [byHost('b'), byHost('c')];
    await lab.exec('a', ['ping', '-c', '2', '-W', '2', '-p', plain, lab.address('b')]);
    await lab.exec('a', ['ping', '-c', '3', '-W', '2', '-i', '0.2', '-p', secret, b.id.ipv4]);
    await lab.exec('a', ['ping', '-6', '-c', '3', '-W', '2', '-i', '0.2', '-p', secret, c.id.ipv6]);
    await lab.exec('c', ['ping', '-c', '3', '-W', '2', '-i', '0.2', '-s', '1200', '-p', secret, byHost('a').id.ipv4]);
    await new Promise((r) => setTimeout(r, 500)); // let tcpdump write the last packets before it is stopped
    await lab.stopProcess(dump, { signal: 'SIGINT' });
    const bytes = readFileSync(cap);
    const rep = (hex: string) => Buffer.from(hex.repeat(3), 'hex');
    assert.ok(bytes.includes(rep(plain)), 'the capture did not see the plain ping: the check below would prove nothing');
    assert.ok(!bytes.includes(rep(secret)), 'tunnelled ping payload seen in clear on the underlay');
    // And the tunnelled pings did cross this wire, as UDP to/from the agents' port.
    const r = await lab.exec('a', ['tcpdump', '-r', cap, '-n', `udp port ${AGENT_PORT}`]);
    const lines = r.stdout.trim().split('\n').filter(Boolean);
    assert.ok(lines.length >= 18, `only ${lines.length} tunnel datagrams captured:\n${r.stdout}`);
  });

  it('stops on SIGTERM with exit code 0 and removes its TAP', async () => {
    const a = byHost('a');
    const exit = await stopAgent(lab, a);
    assert.deepEqual(exit, { code: 0, signal: null }, logTails([a]));
    const link = await lab.exec('a', ['ip', 'link', 'show', TAP_NAME], { allowFail: true });
    assert.notEqual(link.code, 0, `${TAP_NAME} still exists after the agent stopped`);
    const st = await runCli(lab, 'a', ['status', '--state-dir', a.stateDir, '--json'], { allowFail: true });
    assert.notEqual(st.code, 0);
    assert.equal(st.stderr.trim().split('\n').length, 1, st.stderr);
  });
});
