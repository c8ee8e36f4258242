// TURN bridging the address families (RFC 8656 dual allocation) in the netns lab: "v4" is IPv4 only behind
// a cone NAT, "v6" IPv6 only behind its home router's stateful IPv6 firewall (lab-ipv6.ts): no address
// family in common, so no direct path can exist. "turn" is dual-stack and runs coturn on both families
// (coturn.ts dualStack); v4 reaches it over IPv4, v6 over IPv6 (--turn with a bracketed address), and each
// allocation gets relayed addresses of both families. "pub" and an agent on "turn" (dual-stack both) are
// the overlay's bootstraps and the hosts' rendezvous, started with --no-peer-relay so that only TURN can
// carry the pair. Two of them, on two addresses, so that v6's netcheck can tell its mapping without
// asking a second port of one server, which would open v6's firewall to that port before the
// change-port test could find the firewall. They ping each other by overlay IPv4 and IPv6 address, and
// status says the path is TURN and why. Each offers both its relayed addresses; the pair ICE
// finds is whichever relayed pair of a family the other has answers first.
// Needs root, network namespaces and coturn's turnserver: see prerequisites.ts.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Lab } from './lab.js';
import { coturnMissing, startCoturn, type Coturn } from './coturn.js';
import {
  agentStatus, cliMissing, createAgent, hostPort, logTails, startOverlayAgent, stopAgent, waitOverlayReady, waitUntil,
  AGENT_PORT, type AgentStatus, type TestAgent,
} from './agents.js';
import { labUnavailable, prerequisites } from './prerequisites.js';

const SUITE = 'TURN between an IPv4-only and an IPv6-only host through a dual-stack coturn';
const skip = prerequisites(SUITE, labUnavailable(), cliMissing(), coturnMissing());
const USER = 'idloc', PASS = 'relay-me-please';

describe(SUITE, { skip, timeout: 150_000 }, () => {
  let lab: Lab;
  let coturn: Coturn | undefined;
  const agents = new Map<string, TestAgent>();
  const A = (h: string) => agents.get(h)!;
  const evidence = (hosts: string[]) => '\n' + logTails(hosts.map(A), 30) + (coturn ? `\n--- coturn ---\n${coturn.log().slice(-2500)}` : '');
  const view = async (from: string, to: string) => (await agentStatus(lab, A(from))).peers.find((p) => p.publicKey === A(to).id.publicKey);

  before(async () => {
    lab = await Lab.create({
      hosts: [{ name: 'pub', ipv6: 'dual' }, { name: 'turn', ipv6: 'dual' }],
      natHosts: [{ name: 'v4', nat: 'cone' }, { name: 'v6', nat: 'cone', ipv6: 'only' }],
    });
    coturn = await startCoturn(lab, 'turn', { username: USER, password: PASS, realm: 'idloc.test', dualStack: true });
    const turnArg = (e: { address: string; port: number }) => ['--turn', `turn:${USER}:${PASS}@${hostPort(e.address, e.port)}`];
    for (const h of ['pub', 'turn', 'v4', 'v6']) agents.set(h, await createAgent(lab, h));
    startOverlayAgent(lab, A('pub'), [], ['--no-peer-relay']);
    await waitOverlayReady(lab, A('pub'));
    startOverlayAgent(lab, A('turn'), [A('pub')], ['--no-peer-relay']);
    await waitOverlayReady(lab, A('turn'));
    startOverlayAgent(lab, A('v4'), [A('pub'), A('turn')], turnArg(coturn.endpoint));
    // v6 has no IPv4 at all: it bootstraps from the public agents' IPv6 addresses and reaches coturn by its IPv6 one.
    const bootstrap6 = ['pub', 'turn'].flatMap((h) => ['--bootstrap', hostPort(lab.address6(h)!, AGENT_PORT)]);
    startOverlayAgent(lab, A('v6'), [], [...bootstrap6, ...turnArg(coturn.endpoint6!)]);
    await Promise.all(['v4', 'v6'].map((h) => waitOverlayReady(lab, A(h))));
    // Until its netcheck has found the NAT or the firewall, a host publishes no rendezvous, and a peer
    // would send straight to its host address (which only a common family could carry).
    for (const h of ['v4', 'v6']) {
      await waitUntil(async () => ((await agentStatus(lab, A(h))).overlay?.rendezvous?.length ?? 0) > 0, 30_000,
        `${h} to keep rendezvous nodes${evidence([h])}`);
    }
  });

  after(async () => {
    await Promise.all([...agents.values()].map((a) => stopAgent(lab, a)));
    if (coturn) await lab.stopProcess(coturn.proc);
    await lab?.destroy();
  });

  it('each host allocates on coturn over its own family and gets relayed addresses of both families', async () => {
    for (const [h, server] of [['v4', coturn!.endpoint], ['v6', coturn!.endpoint6!]] as const) {
      let r: AgentStatus['relay'];
      await waitUntil(async () => (r = (await agentStatus(lab, A(h))).relay)?.relayed, 30_000, `${h} to allocate${evidence([h])}`);
      assert.equal(r!.server, hostPort(server.address, server.port));
      assert.equal(r!.relayedAll.length, 2, `${h}: ${JSON.stringify(r)}`);
      assert.match(r!.relayedAll[0]!, new RegExp(`^${lab.address('turn').replace(/\./g, '\\.')}:\\d+$`), JSON.stringify(r));
      assert.ok(r!.relayedAll[1]!.startsWith(`[${lab.address6('turn')}]:`), JSON.stringify(r));
      assert.equal(r!.familyError, null);
      assert.equal(r!.stats?.familyFallbacks, 0);
      process.stderr.write(`# turn-ipv6 ${h}: allocated on ${r!.server}: ${r!.relayedAll.join(', ')}\n`);
    }
  });

  for (const [x, y] of [['v4', 'v6'], ['v6', 'v4']] as const) {
    it(`${x} -> ${y}: ping by overlay IPv4 and IPv6 through TURN (no address family in common)`, async () => {
      for (const target of [A(y).id.ipv4, A(y).id.ipv6]) {
        const r = await lab.exec(x, ['ping', '-n', '-c', '3', '-i', '0.2', '-W', '4', target], { allowFail: true, timeoutMs: 30_000 });
        assert.equal(r.code, 0, `${x} -> ${target}: ${r.stdout}${r.stderr}${evidence([x, y])}`);
      }
      await waitUntil(async () => (await view(x, y))?.path === 'relayed', 10_000, `${x}'s path to ${y} relayed${evidence([x, y])}`);
      const v = await view(x, y);
      assert.equal(v?.via, 'turn', `TURN, not a peer relay: ${JSON.stringify(v)}`);
      assert.ok([lab.address('turn'), `[${lab.address6('turn')}]`].some((a) => v?.relay?.startsWith(`${a}:`)), `through coturn: ${JSON.stringify(v)}`);
      assert.match(String(v?.pathReason), /TURN/, JSON.stringify(v));
      const v6Relayed = (await agentStatus(lab, A('v6'))).relay!.relayedAll[0]!;
      if (x === 'v4') assert.equal(v?.endpoint, v6Relayed, `v4 sends to v6's IPv4 relayed address: ${JSON.stringify(v)}`);
      else assert.match(String(v?.pair), new RegExp(`^relay ${v6Relayed.replace(/\./g, '\\.')} -> `), `v6 sends out of its IPv4 relayed address: ${JSON.stringify(v)}`);
      process.stderr.write(`# turn-ipv6 ${x} -> ${y}: ${v?.path} via ${v?.via} ${v?.relay}, pair ${v?.pair}: ${v?.pathReason}\n`);
    });
  }

  it('v6, reached through its own relay, says why in its pathReason: no address family in common', async () => {
    const v = await view('v6', 'v4');
    assert.match(String(v?.pathReason), /^via our TURN relay .*no address family in common.*this host has IPv6 only/, JSON.stringify(v));
  });

  it('status lists every relayed address among our candidates', async () => {
    for (const h of ['v4', 'v6']) {
      const st = await agentStatus(lab, A(h)) as AgentStatus & { candidates: string[] };
      const relays = st.candidates.filter((c) => c.startsWith('relay '));
      assert.equal(relays.length, 2, `${h}: ${st.candidates.join(', ')}`);
    }
  });

  it('v4, through the peer\'s relay, says why in its pathReason: no address family in common', async () => {
    const v = await view('v4', 'v6');
    assert.match(String(v?.pathReason), /no address family in common/, JSON.stringify(v));
  });
});
