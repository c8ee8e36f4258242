// Direct tunnels through NATs: real agents behind the lab's Linux NAT routers (which drop unsolicited
// inbound packets, like home routers) find each other through the overlay with --bootstrap only, learn
// their NAT from netcheck (every agent answers STUN), keep rendezvous with public members, and reach each
// other with Attach + ICE: pings go both ways over a direct pair, and `status` says so and why. Where no
// direct path can exist (two symmetric NATs), agents given a TURN server (real coturn) relay through it,
// end to end encrypted, and status says which path each peer has and why; without one, they relay
// through a public overlay member that is the peer's rendezvous node (a peer relay). When coturn stops,
// the agents it carried move to a peer relay; when it comes back, they move back to it.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Lab } from './lab.js';
import { coturnMissing, startCoturn, type Coturn } from './coturn.js';
import {
  agentStatus, cliMissing, createAgent, labUnavailable, logTails, startOverlayAgent, stopAgent, waitOverlayReady,
  type AgentStatus, type TestAgent, waitUntil,
} from './agents.js';
import { prerequisites } from './prerequisites.js';

const skip = prerequisites('NAT traversal', labUnavailable(), cliMissing(), coturnMissing());
const NATED = ['cone1', 'cone2', 'cgn', 'sym1', 'sym2', 'sym3', 'sym4'];

describe('NAT traversal: direct paths through cone and CGNAT routers', { skip, timeout: 240_000 }, () => {
  let lab: Lab;
  let coturn: Coturn;
  const agents = new Map<string, TestAgent>();
  const A = (h: string) => agents.get(h)!;
  const addr = new Map<string, { ipv4: string; ipv6: string }>();
  const evidence = () => '\n' + logTails([...agents.values()], 25);

  before(async () => {
    lab = await Lab.create({
      hosts: ['pub1', 'pub2', 'turn'],
      natHosts: [
        { name: 'cone1', nat: 'cone' }, { name: 'cone2', nat: 'cone' }, { name: 'cgn', nat: 'cgnat' },
        { name: 'sym1', nat: 'symmetric' }, { name: 'sym2', nat: 'symmetric' },
        { name: 'sym3', nat: 'symmetric' }, { name: 'sym4', nat: 'symmetric' },
      ],
    });
    coturn = await startCoturn(lab, 'turn', { username: 'idloc', password: 'relay-me-please', realm: 'idloc.test' });
    const turnArg = ['--turn', `turn:idloc:relay-me-please@${coturn.endpoint.address}:${coturn.endpoint.port}`];
    for (const h of ['pub1', 'pub2', ...NATED]) agents.set(h, await createAgent(lab, h));
    startOverlayAgent(lab, A('pub1'), []);
    await waitOverlayReady(lab, A('pub1'));
    startOverlayAgent(lab, A('pub2'), [A('pub1')]);
    await waitOverlayReady(lab, A('pub2'));
    // sym1 and sym2 have a TURN server; sym3 and sym4 have none.
    for (const h of NATED) startOverlayAgent(lab, A(h), [A('pub1')], h === 'sym1' || h === 'sym2' ? turnArg : []);
    const st = await Promise.all(['pub1', 'pub2', ...NATED].map(async (h) => [h, await waitOverlayReady(lab, A(h))] as const));
    for (const [h, s] of st) addr.set(h, { ipv4: s.identity.ipv4, ipv6: s.identity.ipv6 });
    // Each NATed agent must have run netcheck and published its srflx candidate and rendezvous.
    for (const h of NATED) {
      await waitUntil(async () => ((await agentStatus(lab, A(h))) as Status).overlay?.rendezvous?.length ?? 0, 10_000, `${h} keeps rendezvous`);
    }
  });

  after(async () => {
    await Promise.all([...agents.values()].map((a) => (lab ? stopAgent(lab, a) : undefined)));
    if (coturn) await lab.stopProcess(coturn.proc);
    await lab?.destroy();
  });

  type Status = AgentStatus & { overlay?: { rendezvous?: string[] } };

  async function pingBothWays(a: string, b: string): Promise<void> {
    for (const [x, y] of [[a, b], [b, a]] as const) {
      const r = await lab.exec(x, ['ping', '-c', '3', '-i', '0.2', '-W', '3', addr.get(y)!.ipv4], { allowFail: true, timeoutMs: 20_000 });
      assert.equal(r.code, 0, `${x} -> ${y} (${addr.get(y)!.ipv4}) failed:\n${r.stdout}${r.stderr}${evidence()}`);
    }
  }

  async function peerPath(from: string, to: string) {
    const s = await agentStatus(lab, A(from));
    return s.peers.find((p) => p.publicKey === A(to).id.publicKey);
  }

  for (const [a, b] of [['cone1', 'cone2'], ['cgn', 'cone1'], ['pub2', 'cone2']] as const) {
    it(`${a} <-> ${b}: direct, through both NATs, ping both ways`, async () => {
      await pingBothWays(a, b);
      const p = await peerPath(a, b);
      assert.equal(p?.path, 'direct', JSON.stringify(p));
      const pub = lab.publicAddress(b);
      assert.equal(p?.endpoint?.split(':')[0], pub, `${a} talks to ${b}'s public mapping: ${JSON.stringify(p)}`);
      // b is behind a NAT: its locator names rendezvous, so the path came from Attach + ICE, which says so.
      assert.match(String(p?.pathReason), /^ICE: (srflx|prflx|host) candidate /, JSON.stringify(p));
      assert.equal(p?.pair?.split(' -> ')[1]?.split(' ').pop(), p?.endpoint, `the pair ends at the endpoint: ${JSON.stringify(p)}`);
      process.stderr.write(`# ${a} -> ${b}: ${p?.endpoint} ${p?.pathReason}\n`);
    });
  }

  it('sym1 <-> sym2 (both symmetric, with TURN): relayed through coturn, ping both ways, status says why', async () => {
    await waitUntil(async () => ((await agentStatus(lab, A('sym1'))) as Status & { relay?: { relayed?: string } }).relay?.relayed, 10_000, 'sym1 allocated');
    await pingBothWays('sym1', 'sym2');
    const p = await peerPath('sym1', 'sym2');
    assert.equal(p?.path, 'relayed', JSON.stringify(p));
    assert.match(String(p?.pathReason), /TURN relay/, JSON.stringify(p));
    assert.match(String(p?.pair), /^(relay \S+ -> |host \S+ -> relay )/, `one side of the pair is a TURN allocation: ${JSON.stringify(p)}`);
    process.stderr.write(`# sym1 -> sym2: ${p?.pair} ${p?.pathReason}\n`);
    const q = await peerPath('sym2', 'sym1');
    assert.equal(q?.path, 'relayed', JSON.stringify(q));
    assert.ok(/Allocate|allocation/i.test(coturn.log()), 'coturn served an allocation');
  });

  const publicAgents = () => ['pub1', 'pub2'].map((h) => `${lab.address(h)}:${A(h).port}`);

  it('sym3 <-> sym4 (both symmetric, no TURN server): relayed through a public overlay peer, ping both ways, status says why', async () => {
    await pingBothWays('sym3', 'sym4');
    const p = await peerPath('sym3', 'sym4');
    assert.equal(p?.path, 'relayed', JSON.stringify(p));
    assert.equal(p?.via, 'peer-relay', JSON.stringify(p));
    assert.ok(publicAgents().includes(String(p?.relay)), `through pub1 or pub2, not ${p?.relay}`);
    assert.match(String(p?.pathReason), /^via peer relay .*no direct path.*no TURN relay on either side/, JSON.stringify(p));
    process.stderr.write(`# sym3 -> sym4: ${p?.endpoint} rtt ${p?.rttMs} ms: ${p?.pathReason}\n`);
    const q = await peerPath('sym4', 'sym3');
    assert.equal(q?.via, 'peer-relay', JSON.stringify(q));
    const relayed = await Promise.all(['pub1', 'pub2'].map(async (h) => (await agentStatus(lab, A(h))).counters.peerRelay.server?.toClient ?? 0));
    assert.ok(relayed.some((n) => n > 0), `a public agent relayed: ${relayed}`);
  });

  // A symmetric NAT that picks ports at random (--random-fully) against a cone one, no TURN server on either
  // side: birthday probing. The symmetric side opens 256 sockets towards the cone side's mapping; the
  // cone side sprays checks at random ports of the symmetric NAT until one lands on a mapped port.
  for (const [a, b] of [['sym3', 'cone2'], ['cone1', 'sym4']] as const) {
    it(`${a} starts towards ${b} (symmetric with random ports vs cone, no TURN): direct by birthday probing`, async () => {
      const [sym, cone] = a.startsWith('sym') ? [a, b] : [b, a];
      await pingBothWays(a, b);
      const [s, c] = [await peerPath(sym, cone), await peerPath(cone, sym)];
      assert.equal(s?.path, 'direct', JSON.stringify(s));
      assert.equal(c?.path, 'direct', JSON.stringify(c));
      // The symmetric side talks from a probe socket to the cone side's one public mapping...
      assert.equal(s?.endpoint, `${lab.publicAddress(cone)}:${A(cone).port}`, JSON.stringify(s));
      assert.match(String(s?.pair), /^host \S+:\d+ -> (srflx |prflx )?\S+$/, JSON.stringify(s));
      assert.notEqual(s?.pair?.split(' ')[1]?.split(':')[1], String(A(sym).port), `from a probe socket, not the agent's port: ${JSON.stringify(s)}`);
      // ...and the cone side to whichever port of the symmetric NAT its spray found.
      assert.equal(c?.endpoint?.split(':')[0], lab.publicAddress(sym), JSON.stringify(c));
      if (sym === a) assert.match(String(s?.pathReason), /birthday probing/, JSON.stringify(s));
      const [ss, cs] = [await agentStatus(lab, A(sym)), await agentStatus(lab, A(cone))];
      assert.ok((ss.counters.probeSockets?.received ?? 0) > 0, `${sym}'s probe socket carries the tunnel: ${JSON.stringify(ss.counters.probeSockets)}`);
      // The cone side sprays from 200 ms on; when the symmetric side's probe-socket checks reach it first
      // (its own check to the symmetric NAT opened its router for that address), it selects that pair and
      // the spray is not needed. Either way the pair went through a probe socket (asserted above).
      assert.ok((cs.counters.ice.probes ?? 0) > 0 || (cs.counters.ice.selected ?? 0) > 0,
        `${cone} sprayed, or selected the probe socket's pair before its spray began: ${JSON.stringify(cs.counters.ice)}`);
      process.stderr.write(`# ${sym} -> ${cone}: ${s?.pair}; ${cone} -> ${sym}: ${c?.pair} (${cs.counters.ice.probes} probes sprayed)\n`);
      if (sym !== a) return;
      // At the first sweep after the hit (~1 s) the probe socket in use is reopened on its port as the native socket:
      // the NAT's mapping is the port's, so the path holds, now at the native socket's speed.
      await waitUntil(async () => ((await agentStatus(lab, A(sym))).counters.probeSockets?.reopened ?? 0) > 0, 20_000, `${sym} reopened its probe socket`);
      await pingBothWays(a, b);
      const after = await peerPath(sym, cone);
      assert.equal(after?.path, 'direct', JSON.stringify(after));
      assert.equal(after?.pair, s?.pair, 'the same pair, through the same NAT mapping');
    });
  }

  it('coturn stopped: sym1 and sym2 move to a peer relay; coturn back: they move back to it', async () => {
    const via = async (a: string, b: string) => (await peerPath(a, b))?.via;
    assert.equal(await via('sym1', 'sym2'), 'turn');
    await lab.stopProcess(coturn.proc);
    // The TURN clients' probes (every 10 s, ~7.5 s of retransmissions) find the server gone.
    await waitUntil(async () => (await via('sym1', 'sym2')) === 'peer-relay', 45_000, `sym1's path to sym2 to move to a peer relay${evidence()}`);
    await pingBothWays('sym1', 'sym2');
    const p = await peerPath('sym1', 'sym2');
    assert.ok(publicAgents().includes(String(p?.relay)), JSON.stringify(p));
    process.stderr.write(`# coturn stopped, sym1 -> sym2: ${p?.pathReason}\n`);
    coturn = await startCoturn(lab, 'turn', { username: 'idloc', password: 'relay-me-please', realm: 'idloc.test' });
    // Allocations are retried every 10 s; a new one makes the agent try for a TURN pair at once.
    await waitUntil(async () => (await via('sym1', 'sym2')) === 'turn', 45_000, `sym1's path to sym2 to move back to TURN${evidence()}`);
    await pingBothWays('sym1', 'sym2');
    process.stderr.write(`# coturn back, sym1 -> sym2: ${(await peerPath('sym1', 'sym2'))?.pathReason}\n`);
  });
});
