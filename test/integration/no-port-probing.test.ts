// --no-port-probing on the real path: a host behind a symmetric NAT that picks ports at random
// (--random-fully) and a host behind a cone NAT are the pair birthday probing makes direct. With the flag
// on both, neither side opens probe sockets or sprays checks, and the pair is relayed (here through the
// public overlay members they keep rendezvous with: a peer relay), with ping working both ways. The same
// kind of pair without the flag, in the same lab, is direct by birthday probing (as in nat-traversal and
// the NAT matrix), so the relayed verdict comes from the flag and not from the lab. Two public members, so
// netcheck asks STUN servers on two addresses and can tell the symmetric NAT's mapping (with one it says
// 'unknown', and no birthday probing would start with or without the flag).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Lab } from './lab.js';
import {
  type AgentStatus, agentStatus, cliMissing, createAgent, logTails, startOverlayAgent, stopAgent, type TestAgent, waitOverlayReady, waitUntil,
} from './agents.js';
import { labUnavailable, prerequisites } from './prerequisites.js';
import type { AgentStatus as RealAgentStatus } from '../../agent/status.js';

const skip = prerequisites('--no-port-probing', labUnavailable(), cliMissing());
const NATED = ['sym1', 'cone1', 'sym2', 'cone2'];
/** The test helpers' status shape plus the netcheck verdict the agent reports. */
type Status = AgentStatus & { nat?: RealAgentStatus['nat'] };
/** The pair that runs with --no-port-probing. */
const NO_PROBING = new Set(['sym1', 'cone1']);

describe('--no-port-probing: a random-port symmetric NAT and a cone NAT are relayed, not birthday-probed', { skip, timeout: 90_000 }, () => {
  let lab: Lab;
  const agents = new Map<string, TestAgent>();
  const A = (h: string) => agents.get(h)!;
  const ipv4 = new Map<string, string>();
  const evidence = (hosts: string[]) => '\n' + logTails(hosts.map(A), 25);

  before(async () => {
    lab = await Lab.create({
      hosts: ['pub1', 'pub2'],
      natHosts: [{ name: 'sym1', nat: 'symmetric' }, { name: 'cone1', nat: 'cone' }, { name: 'sym2', nat: 'symmetric' }, { name: 'cone2', nat: 'cone' }],
    });
    for (const h of ['pub1', 'pub2', ...NATED]) agents.set(h, await createAgent(lab, h));
    startOverlayAgent(lab, A('pub1'), []);
    await waitOverlayReady(lab, A('pub1'));
    startOverlayAgent(lab, A('pub2'), [A('pub1')]);
    await waitOverlayReady(lab, A('pub2'));
    for (const h of NATED) startOverlayAgent(lab, A(h), [A('pub1'), A('pub2')], NO_PROBING.has(h) ? ['--no-port-probing'] : []);
    const st = await Promise.all(NATED.map(async (h) => [h, await waitOverlayReady(lab, A(h))] as const));
    for (const [h, s] of st) ipv4.set(h, s.identity.ipv4);
    // Netcheck done and rendezvous kept: the NAT verdict (hard / easy) that decides birthday probing is known.
    for (const h of NATED) {
      let s: Status | undefined;
      await waitUntil(async () => {
        s = await agentStatus(lab, A(h)) as Status;
        return (s.overlay?.['rendezvous'] as string[] | undefined)?.length && s.nat && s.nat.mapping !== 'unknown';
      }, 15_000, `${h} keeps rendezvous and knows its NAT's mapping`).catch((e: Error) => { throw new Error(`${e.message}: ${JSON.stringify(s?.nat)}`); });
      const cone = h.startsWith('cone');
      assert.equal(s!.nat!.mapping === 'endpoint-independent', cone, `${h}'s netcheck got its NAT wrong: ${JSON.stringify(s!.nat)}`);
    }
  });
  after(async () => {
    await Promise.all([...agents.values()].map((a) => stopAgent(lab, a)));
    await lab?.destroy();
  });

  async function pingBothWays(a: string, b: string): Promise<void> {
    for (const [x, y] of [[a, b], [b, a]] as const) {
      const r = await lab.exec(x, ['ping', '-n', '-c', '3', '-i', '0.2', '-W', '4', ipv4.get(y)!], { allowFail: true, timeoutMs: 25_000 });
      assert.equal(r.code, 0, `${x} -> ${y} (${ipv4.get(y)}) failed:\n${r.stdout}${r.stderr}${evidence([a, b])}`);
    }
  }
  const view = (s: AgentStatus, of: string) => s.peers.find((p) => p.publicKey === A(of).id.publicKey);
  const traversal = (s: AgentStatus, k: string) => (s.counters.traversal as Record<string, number | undefined>)[k] ?? 0;

  it('sym1 starts towards cone1, both with --no-port-probing: relayed through the peer relay, ping both ways, no probe sockets, no spray', async () => {
    await pingBothWays('sym1', 'cone1');
    // A relayed pair may still be settling onto the relay right after the first pings: wait for both views.
    let s: AgentStatus | undefined, c: AgentStatus | undefined;
    await waitUntil(async () => {
      [s, c] = await Promise.all([agentStatus(lab, A('sym1')), agentStatus(lab, A('cone1'))]);
      return view(s, 'cone1')?.path && view(c, 'sym1')?.path;
    }, 10_000, 'both sides to report a path');
    const [vs, vc] = [view(s!, 'cone1'), view(c!, 'sym1')];
    const pubs = ['pub1', 'pub2'].map((h) => `${lab.address(h)}:${A(h).port}`);
    for (const [who, v] of [['sym1', vs], ['cone1', vc]] as const) {
      assert.equal(v?.path, 'relayed', `${who}: birthday probing is off, yet the path is not relayed: ${JSON.stringify(v)}${evidence(['sym1', 'cone1'])}`);
      assert.equal(v?.via, 'peer-relay', `${who}: ${JSON.stringify(v)}`);
      assert.ok(pubs.includes(String(v?.relay)), `${who}: through pub1's or pub2's peer relay: ${JSON.stringify(v)}`);
    }
    // The flag really kept both halves of birthday probing off.
    assert.equal(s!.counters.probeSockets, null, `sym1 has probe sockets: ${JSON.stringify(s!.counters.probeSockets)}`);
    assert.equal(traversal(s!, 'probeSocketsOpened'), 0, JSON.stringify(s!.counters.traversal));
    assert.equal(traversal(c!, 'sprays'), 0, `cone1 sprayed: ${JSON.stringify(c!.counters.traversal)}`);
    assert.equal(c!.counters.ice.probes ?? 0, 0, `cone1 sent probes: ${JSON.stringify(c!.counters.ice)}`);
    const relayed = await Promise.all(['pub1', 'pub2'].map(async (h) => (await agentStatus(lab, A(h))).counters.peerRelay.server?.toClient ?? 0));
    assert.ok(relayed.some((n) => n > 0), `no public agent relayed: ${relayed}`);
    process.stderr.write(`# sym1 -> cone1 (--no-port-probing): ${vs?.pair}: ${vs?.pathReason}\n`);
  });

  it('sym2 starts towards cone2, without the flag: direct by birthday probing (the control)', async () => {
    await pingBothWays('sym2', 'cone2');
    let s: AgentStatus | undefined, c: AgentStatus | undefined;
    // Birthday probing moves the tunnel to the direct pair as soon as a probe lands, which may follow a relayed start.
    await waitUntil(async () => {
      [s, c] = await Promise.all([agentStatus(lab, A('sym2')), agentStatus(lab, A('cone2'))]);
      return view(s, 'cone2')?.path === 'direct' && view(c, 'sym2')?.path === 'direct';
    }, 10_000, `both sides direct${evidence(['sym2', 'cone2'])}`).catch((e: Error) => {
      throw new Error(`${e.message}\nsym2: ${JSON.stringify(view(s!, 'cone2'))}\ncone2: ${JSON.stringify(view(c!, 'sym2'))}`);
    });
    assert.match(String(view(s!, 'cone2')?.pathReason), /birthday probing/, JSON.stringify(view(s!, 'cone2')));
    assert.ok(traversal(s!, 'probeSocketsOpened') > 0, JSON.stringify(s!.counters.traversal));
    assert.ok(traversal(c!, 'sprays') > 0, JSON.stringify(c!.counters.traversal));
  });
});
