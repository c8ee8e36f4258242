// A dual-stack underlay on real agents in network namespaces (lab-ipv6.ts): 2001:db8::/32 is the
// simulated IPv6 internet, and every home router filters IPv6 with a stateful firewall (no NAT66), so a
// host's packets get in only from where it has sent to. netcheck finds no NAT, and its change-port test
// finds the firewall (an answer from the server's other port never comes), so such a host keeps
// rendezvous nodes as a NATed one does; an Attach through them makes both sides check at once, which
// opens both firewalls. No port translation means no birthday probing: the pair is the host addresses.
//   (1) pub6 (IPv6 only) is the only bootstrap; a6 and b6 are IPv6 only, each behind its own firewall:
//       they find each other by overlay IPv4 and IPv6 address and the path is direct over IPv6.
//   (2) d (dual-stack, behind a cone NAT and an IPv6 firewall) and b6: direct over IPv6.
//   (3) c4 (IPv4 only, behind a cone NAT; bootstraps from pub over IPv4) and b6 have no address family in
//       common: relayed through pub, the dual-stack public agent, which is a rendezvous of both.
//   (4) d loses its IPv4 uplink and keeps IPv6: an ssh session d -> e (dual-stack, behind its own cone NAT
//       and IPv6 firewall), which ran over IPv4 (e's router dropped IPv6 UDP from d while it was set up), moves to
//       IPv6 by the mobility machinery (address watch, ICE restart, the bridge) within 1 s, timed by the
//       arrivals of a 10 Hz clock.
//   (5) a 1280-byte IPv6 link (the IPv6 minimum) in front of b6: a full-size tunnelled packet from a6 is too
//       big for it; the router's ICMPv6 packet-too-big reaches a6's kernel (its firewall relates it), which
//       fragments the datagrams to b6 from then on, and full-size pings and a bulk ssh transfer get through.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Lab } from './lab.js';
import {
  agentStatus, cliMissing, createAgent, logTails, startOverlayAgent, stopAgent, waitOverlayReady, waitUntil, type AgentStatus, type TestAgent,
} from './agents.js';
import { labUnavailable, prerequisites } from './prerequisites.js';
import { gapAround, killSshSessions, MOVE_WATCH_MS, sleep, sshClock } from './mobility-lab.js';
import type { SshServer } from './lab.js';
import { dirname, join } from 'node:path';

const SUITE = 'IPv6 underlay: IPv6-only and dual-stack hosts behind stateful firewalls';
const skip = prerequisites(SUITE, labUnavailable(), cliMissing());

describe(SUITE, { skip, timeout: 120_000 }, () => {
  let lab: Lab;
  const agents = new Map<string, TestAgent>();
  const A = (h: string) => agents.get(h)!;
  const evidence = (hosts: string[]) => '\n' + logTails(hosts.map(A), 30);
  const view = async (from: string, to: string) => (await agentStatus(lab, A(from))).peers.find((p) => p.publicKey === A(to).id.publicKey);

  before(async () => {
    lab = await Lab.create({
      hosts: [{ name: 'pub6', ipv6: 'only' }, { name: 'pub', ipv6: 'dual' }],
      natHosts: [
        { name: 'a6', nat: 'cone', ipv6: 'only' }, { name: 'b6', nat: 'cone', ipv6: 'only' },
        { name: 'd', nat: 'cone', ipv6: 'dual' }, { name: 'c4', nat: 'cone' },
        { name: 'e', nat: 'cone', ipv6: 'dual' },
      ],
    });
    for (const h of ['pub6', 'pub', 'a6', 'b6', 'd', 'c4', 'e']) agents.set(h, await createAgent(lab, h));
    startOverlayAgent(lab, A('pub6'), []);
    await waitOverlayReady(lab, A('pub6'));
    // pub (dual-stack) joins through pub6 over IPv6; the rest bootstrap from pub6 alone.
    startOverlayAgent(lab, A('pub'), [A('pub6')]);
    await waitOverlayReady(lab, A('pub'));
    for (const h of ['a6', 'b6', 'd', 'e']) startOverlayAgent(lab, A(h), [A('pub6')]);
    startOverlayAgent(lab, A('c4'), [A('pub')]);
    await Promise.all(['a6', 'b6', 'd', 'c4', 'e'].map((h) => waitOverlayReady(lab, A(h))));
  });

  let sshd: SshServer | undefined;
  let clock: ReturnType<typeof sshClock> | undefined;
  after(async () => {
    if (clock?.pid) try { process.kill(-clock.pid, 'SIGKILL'); } catch { /* gone */ }
    if (sshd) await killSshSessions(lab, 'e', sshd);
    await Promise.all([...agents.values()].map((a) => stopAgent(lab, a)));
    await lab?.destroy();
  });

  it('an IPv6-only host behind a firewall: netcheck says no NAT but filtered, and it keeps rendezvous nodes; the public ones keep none', async () => {
    type Nat = AgentStatus & { nat: { behindNat: boolean; summary: string } | null };
    for (const h of ['a6', 'b6']) {
      let st: Nat | undefined;
      await waitUntil(async () => {
        st = await agentStatus(lab, A(h)) as Nat;
        return /filtering address-and-port-dependent/.test(st.nat?.summary ?? '') && (st.overlay?.rendezvous?.length ?? 0) > 0;
      }, 20_000, `${h} to find its firewall and keep rendezvous`).catch((e: Error) => { throw new Error(`${e.message}: ${JSON.stringify(st?.nat)} ${JSON.stringify(st?.overlay?.rendezvous)}`); });
      assert.match(st!.nat!.summary, /^no NAT/);
      process.stderr.write(`# ipv6 ${h}: ${st!.nat!.summary}; rendezvous ${st!.overlay!.rendezvous.join(', ')}\n`);
    }
    for (const h of ['pub6', 'pub']) {
      const st = await agentStatus(lab, A(h)) as Nat;
      assert.doesNotMatch(st.nat?.summary ?? '', /filtering address/, `${h}: ${st.nat?.summary}`);
      assert.equal(st.overlay?.rendezvous?.length ?? 0, 0, `${h} is public: no rendezvous`);
    }
  });

  it('the agents listen on one dual-stack socket and publish their global IPv6 address as a host candidate', async () => {
    for (const h of ['a6', 'd']) {
      const st = await agentStatus(lab, A(h)) as AgentStatus & { listen: string; candidates: string[] };
      assert.equal(st.listen, '[::]:4500');
      assert.ok(st.candidates.includes(`host [${lab.address6(h)}]:4500`), `${h}'s candidates: ${st.candidates.join(', ')}`);
      if (h === 'd') assert.ok(st.candidates.includes(`host ${lab.nat('d').privateAddress}:4500`), `d's candidates: ${st.candidates.join(', ')}`);
    }
  });

  for (const [x, y, why] of [['a6', 'b6', 'both IPv6 only'], ['d', 'b6', 'dual-stack to IPv6 only']] as const) {
    it(`${x} -> ${y} (${why}): ping by overlay IPv4 and IPv6, direct over IPv6`, async () => {
      for (const target of [A(y).id.ipv4, A(y).id.ipv6]) {
        const r = await lab.exec(x, ['ping', '-n', '-c', '3', '-i', '0.2', '-W', '4', target], { allowFail: true, timeoutMs: 25_000 });
        assert.equal(r.code, 0, `${x} -> ${target}: ${r.stdout}${r.stderr}${evidence([x, y])}`);
      }
      await waitUntil(async () => (await view(x, y))?.path === 'direct', 10_000, `${x}'s path to ${y} direct${evidence([x, y])}`);
      const v = await view(x, y);
      assert.ok(v?.endpoint?.startsWith(`[${lab.address6(y)}]:`), `${x} sends to ${y}'s IPv6 address: ${JSON.stringify(v)}`);
      assert.match(String(v?.pathReason), /^ICE/, JSON.stringify(v));
      process.stderr.write(`# ipv6 ${x} -> ${y}: ${v?.path} ${v?.endpoint}: ${v?.pathReason}\n`);
    });
  }

  it('c4 (IPv4 only) <-> b6 (IPv6 only): no family in common, relayed through the dual-stack public agent, and status says why', async () => {
    // b6 learns of pub (a relay provider) after it chose its first rendezvous: it asks the providers
    // again while it knows fewer public members than it wants, so pub becomes one within seconds.
    const pub = `[${lab.address6('pub')}]:4500`;
    await waitUntil(async () => ((await agentStatus(lab, A('b6'))).overlay?.rendezvous ?? []).includes(pub), 20_000,
      `b6 to take pub as a rendezvous: ${JSON.stringify((await agentStatus(lab, A('b6'))).overlay?.rendezvous)}${evidence(['b6', 'pub', 'pub6', 'a6', 'd', 'c4'])}`);
    for (const [x, y] of [['c4', 'b6'], ['b6', 'c4']] as const) {
      for (const target of [A(y).id.ipv4, A(y).id.ipv6]) {
        const r = await lab.exec(x, ['ping', '-n', '-c', '3', '-i', '0.2', '-W', '4', target], { allowFail: true, timeoutMs: 30_000 });
        assert.equal(r.code, 0, `${x} -> ${target}: ${r.stdout}${r.stderr}${evidence([x, y, 'pub'])}`);
      }
      const v = await view(x, y);
      assert.equal(v?.path, 'relayed', JSON.stringify(v));
      assert.equal(v?.via, 'peer-relay', JSON.stringify(v));
      assert.match(String(v?.pathReason), /no address family in common/, JSON.stringify(v));
      process.stderr.write(`# ipv6 ${x} -> ${y}: ${v?.path} via ${v?.via}: ${v?.pathReason}\n`);
    }
  });

  it('d loses its IPv4 uplink and keeps IPv6: its ssh session to e, on IPv4 until then, moves to IPv6 within 1 s', async () => {
    // While the pair is made, e's router drops IPv6 UDP between d and e, so ICE can only pair IPv4.
    const block = ['-I', 'FORWARD', '-s', lab.address6('d')!, '-p', 'udp', '-j', 'DROP'];
    await lab.exec('r-e', ['ip6tables', '-w', ...block]);
    const arrivals: number[] = [];
    try {
      // Both know their IPv4 mapping first (else the first Attach has no srflx candidate, and the path is a relay).
      for (const h of ['d', 'e']) {
        await waitUntil(async () => /^endpoint-independent/.test(((await agentStatus(lab, A(h))) as AgentStatus & { nat: { summary: string } | null }).nat?.summary ?? ''), 20_000, `${h} to know its IPv4 mapping`);
      }
      sshd = await lab.startSshd('e');
      const r = await lab.exec('d', ['ping', '-n', '-c', '3', '-i', '0.2', '-W', '4', A('e').id.ipv4], { allowFail: true, timeoutMs: 25_000 });
      assert.equal(r.code, 0, `d -> e: ${r.stdout}${r.stderr}${evidence(['d', 'e'])}`);
      clock = sshClock(lab, sshd, 'd', A('e').id.ipv4, (at) => arrivals.push(at));
      await waitUntil(async () => arrivals.length >= 10, 20_000, `the clock to arrive over ssh${evidence(['d', 'e'])}`);
      await waitUntil(async () => (await view('d', 'e'))?.path === 'direct', 15_000, 'd -> e direct').catch(() => undefined);
      const before = await view('d', 'e');
      const es = await agentStatus(lab, A('e')) as AgentStatus & { candidates: string[]; nat: { summary: string } | null };
      assert.ok(before?.path === 'direct' && !before.endpoint?.startsWith('['), `d -> e direct over IPv4 first: ${JSON.stringify(before)}; e: ${es.candidates.join(', ')}; ${es.nat?.summary}`);
    } finally {
      await lab.exec('r-e', ['ip6tables', '-w', ...block.map((x) => (x === '-I' ? '-D' : x))]);
    }
    await sleep(500);
    const t0 = Date.now();
    const v4 = lab.nat('d').privateAddress;
    await lab.exec('d', ['sh', '-c', `ip addr del ${v4}/24 dev eth0 && ip route flush default`]);
    const gap = await gapAround(arrivals, t0, MOVE_WATCH_MS);
    const after = await view('d', 'e');
    process.stderr.write(`# ipv6 d lost IPv4: largest arrival gap ${gap} ms; d -> e ${after?.path} ${after?.endpoint}: ${after?.pathReason}\n`);
    assert.equal(clock!.exitCode, null, 'ssh alive');
    assert.ok(gap <= 1_000, `largest arrival gap ${gap} ms${evidence(['d', 'e'])}`);
    assert.ok(after?.endpoint?.startsWith(`[${lab.address6('e')}]:`), `d -> e over IPv6 now: ${JSON.stringify(after)}`);
  });

  it('a 1280-byte IPv6 link in front of b6: packet-too-big is honoured, full-size pings and a 1 MB ssh transfer get through', async () => {
    for (const [node, dev] of [['r-b6', 'lan0'], ['b6', 'eth0']] as const) await lab.exec(node, ['ip', 'link', 'set', dev, 'mtu', '1280']);
    // 1372 bytes of ICMP data: a 1400-byte inner packet (DF), under the TAP MTU; 1480 bytes outside.
    const r = await lab.exec('a6', ['ping', '-n', '-M', 'do', '-s', '1372', '-c', '8', '-i', '0.2', '-W', '2', A('b6').id.ipv4], { allowFail: true, timeoutMs: 30_000 });
    // The first ones meet the small link before its packet-too-big is back: from the fourth on, all answer.
    const seqs = new Set([...r.stdout.matchAll(/icmp_seq=(\d+)/g)].map((m) => Number(m[1])));
    const got = seqs.size;
    assert.ok([4, 5, 6, 7, 8].every((q) => seqs.has(q)), `full-size pings a6 -> b6 over a 1280 link: ${r.stdout}${r.stderr}${evidence(['a6', 'b6'])}`);
    const b6sshd = await lab.startSshd('b6');
    try {
      const key = join(dirname(b6sshd.proc.argv.at(-1)!), 'client_ed25519_key');
      const t = await lab.exec('a6', ['sh', '-c', `head -c 1000000 /dev/zero | ssh -F /dev/null -i ${key} -o BatchMode=yes -o StrictHostKeyChecking=no `
        + `-o UserKnownHostsFile=/dev/null -o ConnectTimeout=10 -o LogLevel=ERROR -l root ${A('b6').id.ipv4} 'wc -c'`], { allowFail: true, timeoutMs: 60_000 });
      assert.equal(t.stdout.trim(), '1000000', `1 MB over ssh a6 -> b6: ${t.stdout}${t.stderr}`);
      const v = await view('a6', 'b6');
      assert.ok(v?.endpoint?.startsWith('['), `still direct over IPv6: ${JSON.stringify(v)}`);
      process.stderr.write(`# ipv6 1280-byte link: ${got}/8 full-size pings, 1 MB over ssh, path ${v?.path} ${v?.endpoint}\n`);
    } finally {
      await killSshSessions(lab, 'b6', b6sshd);
    }
  });
});
