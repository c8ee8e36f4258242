// One public overlay member is enough to tell NAT types apart (issue 10, item 7), on real agents in
// network namespaces: pub is the only public member, so every netcheck behind a NAT asks pub alone. pub
// answers STUN from its port + 1 as well (RFC 5780 change port), so the host behind a random-port
// symmetric NAT (--random-fully) learns 'endpoint-dependent' and the one behind a cone NAT
// 'endpoint-independent' (each report saying only a port change was tested), and the pair goes direct by
// birthday probing instead of through pub's peer relay. With one port, both said 'mapping unknown'.
// Run on the LAN (the lab's bridge) and on the WAN switch (40 ms RTT, 2 ms jitter, 1% loss per crossing).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Lab, type WanSettings } from './lab.js';
import {
  type AgentStatus, agentStatus, cliMissing, createAgent, logTails, runCli, startOverlayAgent, stopAgent, type TestAgent, waitOverlayReady, waitUntil,
} from './agents.js';
import { WAN_40MS } from './mobility-lab.js';
import { labUnavailable, prerequisites } from './prerequisites.js';
import type { AgentStatus as RealAgentStatus } from '../../agent/status.js';

const skip = prerequisites('one public member', labUnavailable(), cliMissing());
type Status = AgentStatus & { nat?: RealAgentStatus['nat'] };

function suite(label: string, wan: WanSettings | undefined): void {
  describe(`one public overlay member: netcheck tells a symmetric NAT from a cone one, and the pair goes direct by birthday probing (${label})`, { skip, timeout: 90_000 }, () => {
    let lab: Lab;
    const agents = new Map<string, TestAgent>();
    const A = (h: string) => agents.get(h)!;
    const ipv4 = new Map<string, string>();

    before(async () => {
      lab = await Lab.create({ hosts: ['pub'], natHosts: [{ name: 'sym', nat: 'symmetric' }, { name: 'cone', nat: 'cone' }], ...(wan ? { wan } : {}) });
      for (const h of ['pub', 'sym', 'cone']) agents.set(h, await createAgent(lab, h));
      startOverlayAgent(lab, A('pub'), []);
      await waitOverlayReady(lab, A('pub'));
      for (const h of ['sym', 'cone']) startOverlayAgent(lab, A(h), [A('pub')]);
      for (const h of ['sym', 'cone']) ipv4.set(h, (await waitOverlayReady(lab, A(h))).identity.ipv4);
    });
    after(async () => {
      await Promise.all([...agents.values()].map((a) => stopAgent(lab, a)));
      await lab?.destroy();
    });

    it('each NATed host knows its mapping from pub alone (only a port change tested)', async () => {
      for (const [h, want] of [['sym', 'endpoint-dependent'], ['cone', 'endpoint-independent']] as const) {
        let s: Status | undefined;
        await waitUntil(async () => {
          s = await agentStatus(lab, A(h)) as Status;
          return (s.overlay?.['rendezvous'] as string[] | undefined)?.length && s.nat && s.nat.mapping !== 'unknown';
        }, 20_000, `${h} keeps rendezvous and knows its NAT's mapping`).catch((e: Error) => { throw new Error(`${e.message}: ${JSON.stringify(s?.nat)}`); });
        assert.equal(s!.nat!.mapping, want, JSON.stringify(s!.nat));
        process.stderr.write(`# ${label} ${h}: ${s!.nat!.summary}\n`);
      }
      const stun = async () => (await agentStatus(lab, A('pub'))).counters.stun as unknown as Record<string, number>;
      // The agents' own netchecks leave the change-port filtering test out (an ICE restart waits for their
      // mapping); `idloc-agent netcheck` runs it. Behind the symmetric NAT nothing went from the mapping
      // towards pub's main port to its second one, so the answer from there is filtered.
      assert.equal((await stun())['changedPort'], 0, 'no change-port request from the agents\' own netchecks');
      const cli = await runCli(lab, 'sym', ['netcheck', '--state-dir', A('sym').stateDir, '--json'], { allowFail: true });
      assert.equal(cli.code, 0, cli.stderr);
      const r = JSON.parse(cli.stdout) as { mapping: string; filtering: string; filteringReason: string };
      assert.deepEqual([r.mapping, r.filtering], ['endpoint-dependent', 'address-and-port-dependent'], r.filteringReason);
      const p = await stun();
      assert.ok(p['changedPort']! > 0, `pub answered the change-port request from its second port: ${JSON.stringify(p)}`);
      assert.equal(p['unverifiedBytesOut']! <= p['unverifiedBytesIn']!, true, JSON.stringify(p));
    });

    it('sym starts towards cone: direct by birthday probing, not through pub\'s relay', async () => {
      for (const [x, y] of [['sym', 'cone'], ['cone', 'sym']] as const) {
        const r = await lab.exec(x, ['ping', '-n', '-c', '3', '-i', '0.2', '-W', '4', ipv4.get(y)!], { allowFail: true, timeoutMs: 25_000 });
        assert.equal(r.code, 0, `${x} -> ${y}: ${r.stdout}${r.stderr}\n${logTails([A('sym'), A('cone')], 25)}`);
      }
      const view = (s: AgentStatus, of: string) => s.peers.find((p) => p.publicKey === A(of).id.publicKey);
      let s: AgentStatus | undefined, c: AgentStatus | undefined;
      await waitUntil(async () => {
        [s, c] = await Promise.all([agentStatus(lab, A('sym')), agentStatus(lab, A('cone'))]);
        return view(s, 'cone')?.path === 'direct' && view(c, 'sym')?.path === 'direct';
      }, 15_000, 'both sides direct').catch((e: Error) => {
        throw new Error(`${e.message}\nsym: ${JSON.stringify(s && view(s, 'cone'))}\ncone: ${JSON.stringify(c && view(c, 'sym'))}\n${logTails([A('sym'), A('cone')], 25)}`);
      });
      const v = view(s!, 'cone');
      assert.match(String(v?.pathReason), /birthday probing/, JSON.stringify(v));
      process.stderr.write(`# ${label} sym -> cone: ${v?.pair}: ${v?.pathReason}\n`);
    });
  });
}

suite('LAN', undefined);
suite('WAN 40 ms RTT, 1% loss', WAN_40MS);
