// DNS for overlay names with real agents: host a runs `up --dns`, host b registers "bob", and inside a's
// namespace a resolver pointed at a's own overlay address finds bob.idloc (A and AAAA) and b's NodeID,
// gets NXDOMAIN for a name nobody holds, and has other names forwarded to the resolver a's resolv.conf
// named before (a small one in host "up": the lab has no internet). Then what a user types: getent,
// ping bob.idloc and ssh bob.idloc through glibc's resolver.
//
// `ip netns exec NS` puts /etc/netns/NS/resolv.conf over /etc/resolv.conf: the test writes one for a's
// namespace (its first nameserver is a's own overlay address, which the agent must leave out, then the
// upstream) and removes it afterwards, also when the test fails or the process exits.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { netnsResolvConf } from './netns-resolv.js';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lab, type LabProcess, type SshServer } from './lab.js';
import {
  agentStatus, canonicalIpv6, cliMissing, createAgent, logTails, registerIn, runCli, startOverlayAgent, stopAgent, waitOverlayReady,
  type AgentStatus, type TestAgent,
} from './agents.js';
import { labUnavailable, prerequisites } from './prerequisites.js';
import type { Asked } from './dns-fixtures.js';
import type { DnsStatus } from '../../agent/dns/service.js';

const FIXTURES = fileURLToPath(new URL('./dns-fixtures.js', import.meta.url));
const UPSTREAM_A = '192.0.2.10';
const UPSTREAM_AAAA = '2001:db8::10';
const SUITE = 'DNS for overlay names (up --dns)';
const skip = prerequisites(SUITE, labUnavailable(), cliMissing());

describe(SUITE, { skip, timeout: 150_000 }, () => {
  let lab: Lab;
  let a: TestAgent;
  let b: TestAgent;
  let bob: AgentStatus['identity'];
  let upstream: LabProcess;
  let removeResolvConf: (() => void) | undefined;
  const evidence = () => '\n' + logTails([a, b].filter(Boolean)) + `\n--- upstream ---\n${upstream?.stdout ?? ''}`;
  const ask = async (server: string, name: string, type = 'A', over = 'udp', id = 4242): Promise<Asked> => {
    const r = await lab.exec('a', [process.execPath, FIXTURES, 'ask', server, name, type, over, String(id)]);
    const out = JSON.parse(r.stdout) as Asked & { error?: string };
    if (out.error) throw new Error(`${name} ${type} over ${over} to ${server}: ${out.error}${evidence()}`);
    return out;
  };
  const data = (r: Asked, type: string) => r.answers.filter((x) => x.type === type).map((x) => String(x.data));

  before(async () => {
    lab = await Lab.create({ hosts: ['a', 'b', 'up'] });
    [a, b] = [await createAgent(lab, 'a'), await createAgent(lab, 'b')];
    upstream = lab.spawn('up', [process.execPath, FIXTURES, 'upstream', '--port', '53']);
    await upstream.waitForOutput(/dns-upstream: listening/);
    // As on a host whose resolver was pointed at the responder: our own address first, then the one it had.
    removeResolvConf = netnsResolvConf(lab.ns('a'), `nameserver ${a.id.ipv4}\nnameserver ${lab.address('up')}\noptions timeout:2 attempts:2\n`);
    startOverlayAgent(lab, a, [], ['--dns']);
    const sa = await waitOverlayReady(lab, a);
    assert.equal(sa.identity.ipv4, a.id.ipv4, 'a kept its attempt-0 IPv4 (the resolv.conf above names it)');
    startOverlayAgent(lab, b, [a]);
    bob = (await waitOverlayReady(lab, b)).identity;
    const reg = await registerIn(lab, b, 'bob');
    assert.equal(reg.code, 0, reg.stderr + evidence());
  });

  after(async () => {
    try {
      await Promise.all([a, b].filter(Boolean).map((x) => stopAgent(lab, x)));
      await lab?.destroy();
    } finally {
      removeResolvConf?.();
    }
  });

  it('answers bob.idloc A and AAAA from the overlay, over UDP on the overlay IPv4 and TCP on the IPv6', async () => {
    const v4 = await ask(a.id.ipv4, 'bob.idloc', 'A', 'udp', 1111);
    assert.equal(v4.rcode, 'NOERROR', JSON.stringify(v4) + evidence());
    assert.equal(v4.id, 1111);
    assert.ok(v4.aa, 'authoritative for .idloc');
    assert.deepEqual(data(v4, 'A'), [bob.ipv4]);
    const v6 = await ask(a.id.ipv6, 'BOB.idloc', 'AAAA', 'tcp', 2222);
    assert.equal(v6.id, 2222);
    assert.deepEqual(data(v6, 'AAAA').map(canonicalIpv6), [canonicalIpv6(bob.ipv6)]);
  });

  it('answers <nodeid>.idloc the same way', async () => {
    const r = await ask(a.id.ipv4, `${bob.nodeId}.idloc`, 'A');
    assert.deepEqual(data(r, 'A'), [bob.ipv4], JSON.stringify(r));
    const r6 = await ask(a.id.ipv6, `${bob.nodeId}.idloc`, 'AAAA');
    assert.deepEqual(data(r6, 'AAAA').map(canonicalIpv6), [canonicalIpv6(bob.ipv6)]);
  });

  it('gives NXDOMAIN for a name nobody holds, and NOERROR with no records for another type of a known one', async () => {
    const nx = await ask(a.id.ipv4, 'nobody-here.idloc', 'A');
    assert.equal(nx.rcode, 'NXDOMAIN', JSON.stringify(nx));
    assert.deepEqual(nx.authorities, ['SOA']);
    const mx = await ask(a.id.ipv4, 'bob.idloc', 'MX');
    assert.equal(mx.rcode, 'NOERROR');
    assert.equal(mx.answers.length, 0);
  });

  it('forwards other names to the resolver resolv.conf named (not to itself), with the client\'s id, over UDP and TCP', async () => {
    const seenBefore = upstream.stdout.split('\n').length;
    const u = await ask(a.id.ipv4, 'www.example.test', 'A', 'udp', 3333);
    assert.equal(u.id, 3333);
    assert.deepEqual(data(u, 'A'), [UPSTREAM_A], JSON.stringify(u) + evidence());
    const t = await ask(a.id.ipv6, 'www.example.test', 'AAAA', 'tcp', 4444);
    assert.equal(t.id, 4444);
    assert.deepEqual(data(t, 'AAAA'), [UPSTREAM_AAAA]);
    assert.equal((await ask(a.id.ipv4, 'nowhere.invalid')).rcode, 'NXDOMAIN', 'the upstream\'s NXDOMAIN relayed');
    const lines = upstream.stdout.split('\n').slice(seenBefore - 1).filter((l) => l.includes('example.test'));
    assert.deepEqual(lines.map((l) => l.split(' ').slice(2, 5).join(' ')), ['www.example.test A udp', 'www.example.test AAAA tcp'], upstream.stdout);
    // the fixture's TCP listener is dual-stack: an IPv4 client shows as ::ffff:a.b.c.d there
    assert.ok(lines.every((l) => l.replace('::ffff:', '').endsWith(`from ${lab.address('a')}`)), `asked from host a's own address: ${lines.join('; ')}`);
  });

  it('serves glibc\'s resolver: getent, ping bob.idloc, and names outside .idloc still resolve', async () => {
    const g = await lab.exec('a', ['getent', 'ahostsv4', 'bob.idloc']);
    assert.match(g.stdout, new RegExp(`^${bob.ipv4.replace(/\./g, '\\.')}\\s`, 'm'), g.stdout);
    const g6 = await lab.exec('a', ['getent', 'ahostsv6', 'bob.idloc']);
    assert.equal(canonicalIpv6(g6.stdout.split(/\s+/)[0]!), canonicalIpv6(bob.ipv6), g6.stdout);
    const other = await lab.exec('a', ['getent', 'ahostsv4', 'www.example.test']);
    assert.match(other.stdout, /^192\.0\.2\.10\s/m);
    // glibc orders the two addresses by its own rules (RFC 6724): ping -4 / -6 take each family by name
    for (const [fam, address] of [['-4', bob.ipv4], ['-6', bob.ipv6]] as const) {
      const ping = await lab.exec('a', ['ping', fam, '-c', '2', '-i', '0.2', '-W', '2', 'bob.idloc'], { allowFail: true });
      assert.equal(ping.code, 0, ping.stdout + ping.stderr + evidence());
      const to = /^PING [^(]*\(([0-9a-f.:]+)/.exec(ping.stdout)?.[1] ?? '';
      assert.equal(canonicalIpv6(to), canonicalIpv6(address), ping.stdout);
    }
    const unknown = await lab.exec('a', ['getent', 'hosts', 'nobody-here.idloc'], { allowFail: true });
    assert.equal(unknown.code, 2, 'getent: not found');
  });

  describe('ssh bob.idloc', () => {
    let sshd: SshServer;
    before(async () => { sshd = await lab.startSshd('b'); });
    after(async () => { if (sshd) await lab.stopProcess(sshd.proc); });

    it('reaches b by its name, through the tunnel', async () => {
      const r = await sshd.ssh('a', 'bob.idloc', 'echo $SSH_CONNECTION');
      const [client, , server] = r.stdout.trim().split(' ');
      const ours = [a.id.ipv4, canonicalIpv6(a.id.ipv6)];
      assert.ok(ours.includes(canonicalIpv6(client!)), `ssh came from ${client}, not a's overlay address`);
      assert.ok([bob.ipv4, canonicalIpv6(bob.ipv6)].includes(canonicalIpv6(server!)), `ssh reached ${server}`);
    });
  });

  it('status shows where the responder listens, its upstream and its counts; how to use it is logged', async () => {
    const s = await agentStatus(lab, a) as AgentStatus & { dns: DnsStatus | null };
    const d = s.dns!;
    assert.ok(d, 'a runs with --dns');
    const canon = (hp: string) => hp.replace(/^\[(.*)\]/, (_, v6: string) => `[${canonicalIpv6(v6)}]`);
    assert.deepEqual(d.listening.map(canon), [`${a.id.ipv4}:53`, `[${canonicalIpv6(a.id.ipv6)}]:53`]);
    assert.deepEqual(d.upstreams, [`${lab.address('up')}:53`], 'its own address left out');
    assert.match(d.integration, /no systemd-resolved/, 'the lab\'s namespaces are not the one resolved serves');
    const c = d.counters;
    assert.ok(c.queries >= 15, JSON.stringify(c));
    assert.ok(c.fromOverlay >= 5 && c.nxdomain >= 1 && c.noData >= 1 && c.forwarded >= 3, JSON.stringify(c));
    assert.ok(c.cacheHits >= 1, JSON.stringify(c));
    assert.equal(Object.values(c.dropped).reduce((x, y) => x + y, 0), 0, JSON.stringify(c.dropped));
    assert.equal((await agentStatus(lab, b) as AgentStatus & { dns: unknown }).dns, null, 'b runs without --dns');
    const log = readFileSync(a.logFile, 'utf8');
    assert.match(log, new RegExp(`DNS for \\.idloc on ${a.id.ipv4.replace(/\./g, '\\.')}:53 and \\[[0-9a-f:]+\\]:53: add it to your resolver, or use \`dig @${a.id.ipv4.replace(/\./g, '\\.')} bob\\.idloc\``));
    const text = await lab.exec('a', [process.execPath, fileURLToPath(new URL('../../agent/cli.js', import.meta.url)), 'status', '--state-dir', a.stateDir]);
    assert.match(text.stdout, /\ndns {6}\S+:53, \[\S+\]:53 \(udp, tcp\); forwarding to 198\.51\.100\.\d+:53; /);
  });

  it('refuses a bad "dns" value, and a port 53 taken, with one line each (exit 2, exit 1), leaving no TAP behind', async () => {
    const conf = join(lab.dir, 'dns-bad.json');
    writeFileSync(conf, '{"dns": "yes"}');
    const bad = await runCli(lab, 'up', ['up', '--config', conf, '--state-dir', join(lab.dir, 'unused')], { allowFail: true });
    assert.equal(bad.code, 2, bad.stderr);
    assert.deepEqual(bad.stderr.trim().split('\n'), [`idloc-agent: ${conf}: "dns" must be true or false`]);
    // host "up" runs the upstream fixture on every address's port 53
    const c = await createAgent(lab, 'up');
    const taken = await runCli(lab, 'up', ['up', '--dns', '--state-dir', c.stateDir, '--tap', 'idloc0', '--log-level', 'error'], { allowFail: true, timeoutMs: 20_000 });
    assert.equal(taken.code, 1, taken.stdout + taken.stderr);
    assert.deepEqual(taken.stderr.trim().split('\n'), [`idloc-agent: cannot serve DNS on ${c.id.ipv4}:53: EADDRINUSE (another DNS server on this port, bound to every address?)`]);
    const link = await lab.exec('up', ['ip', 'link', 'show', 'idloc0'], { allowFail: true });
    assert.notEqual(link.code, 0, 'the TAP was removed');
  });

  it('stops with exit code 0 and stops answering', async () => {
    const exit = await stopAgent(lab, a);
    assert.deepEqual(exit, { code: 0, signal: null }, evidence());
    const r = await lab.exec('a', ['ss', '-Hlnu', 'sport = :53']);
    assert.equal(r.stdout.trim(), '', 'nothing listens on port 53 any more');
  });
});
