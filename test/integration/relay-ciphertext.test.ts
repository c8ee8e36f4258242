// Relays see only ciphertext: two pairs of agents behind symmetric NATs (no direct path can exist), one
// pair relayed through coturn (--turn), the other through the public agent's peer relay. Captures on the
// relay hosts' wire show the tunnelled pings crossing them, and the ping payload's pattern never in
// clear; a plain ping with another pattern to each relay host proves the capture would have seen it.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab, type LabProcess } from './lab.js';
import { coturnMissing, startCoturn, type Coturn } from './coturn.js';
import {
  agentStatus, cliMissing, createAgent, logTails, startOverlayAgent, stopAgent, waitOverlayReady, waitUntil,
  type AgentStatus, type TestAgent,
} from './agents.js';
import { labUnavailable, prerequisites } from './prerequisites.js';

const skip = prerequisites('relays see only ciphertext', labUnavailable(), cliMissing(), coturnMissing());
const NATED = ['sym1', 'sym2', 'sym3', 'sym4'];
const WITH_TURN = new Set(['sym1', 'sym2']);
/** coturn's relay ports (coturn.ts): what it sends to and receives from the far side of an allocation. */
const RELAY_PORTS = '49152-49407';
const rep = (hex: string) => Buffer.from(hex.repeat(4), 'hex');

describe('relays carry only ciphertext: coturn and a peer relay', { skip, timeout: 90_000 }, () => {
  let lab: Lab;
  let coturn: Coturn | undefined;
  const agents = new Map<string, TestAgent>();
  const A = (h: string) => agents.get(h)!;
  const addr = new Map<string, { ipv4: string; ipv6: string }>();
  const evidence = (hosts: string[]) => '\n' + logTails(hosts.map(A), 25);

  before(async () => {
    lab = await Lab.create({ hosts: ['pub', 'turn'], natHosts: NATED.map((name) => ({ name, nat: 'symmetric' as const })) });
    coturn = await startCoturn(lab, 'turn', { username: 'idloc', password: 'relay-me-please', realm: 'idloc.test' });
    const turnArg = ['--turn', `turn:idloc:relay-me-please@${coturn.endpoint.address}:${coturn.endpoint.port}`];
    for (const h of ['pub', ...NATED]) agents.set(h, await createAgent(lab, h));
    startOverlayAgent(lab, A('pub'), []);
    await waitOverlayReady(lab, A('pub'));
    for (const h of NATED) startOverlayAgent(lab, A(h), [A('pub')], WITH_TURN.has(h) ? turnArg : []);
    const st = await Promise.all(NATED.map(async (h) => [h, await waitOverlayReady(lab, A(h))] as const));
    for (const [h, s] of st) addr.set(h, { ipv4: s.identity.ipv4, ipv6: s.identity.ipv6 });
    for (const h of NATED) {
      await waitUntil(async () => {
        const s = await agentStatus(lab, A(h));
        return (s.overlay?.['rendezvous'] as string[] | undefined)?.length && (!WITH_TURN.has(h) || s.relay?.relayed);
      }, 20_000, `${h} keeps rendezvous${WITH_TURN.has(h) ? ' and has its TURN allocation' : ''}`);
    }
  });
  after(async () => {
    await Promise.all([...agents.values()].map((a) => stopAgent(lab, a)));
    if (coturn) await lab.stopProcess(coturn.proc);
    await lab?.destroy();
  });

  const ping = (from: string, extra: string[]) =>
    lab.exec(from, ['ping', '-n', '-c', '5', '-i', '0.2', '-W', '4', ...extra], { allowFail: true, timeoutMs: 25_000 });
  async function tunnelPings(a: string, b: string, pattern: string): Promise<void> {
    for (const [x, y] of [[a, b], [b, a]] as const) {
      for (const fam of ['ipv4', 'ipv6'] as const) {
        const r = await ping(x, [...(fam === 'ipv6' ? ['-6'] : []), '-s', '1000', '-p', pattern, addr.get(y)![fam]]);
        assert.equal(r.code, 0, `${x} -> ${y} over overlay ${fam} failed:\n${r.stdout}${r.stderr}${evidence([a, b])}`);
      }
    }
  }
  async function capture(node: string, name: string): Promise<{ proc: LabProcess; file: string }> {
    const file = join(lab.dir, `${name}.pcap`);
    const proc = lab.spawn(node, ['tcpdump', '-i', lab.uplink, '-n', '-U', '--immediate-mode', '-s', '0', '-B', '8192', '-w', file]);
    await proc.waitForOutput(/listening on/);
    return { proc, file };
  }
  async function stopCapture(c: { proc: LabProcess; file: string }): Promise<Buffer> {
    await new Promise((r) => setTimeout(r, 300));
    await lab.stopProcess(c.proc, { signal: 'SIGINT' });
    assert.match(c.proc.stderr, /^0 packets dropped by kernel$/m, `the capture lost packets: ${c.proc.stderr}`);
    return readFileSync(c.file);
  }
  const countIn = async (node: string, file: string, filter: string) =>
    (await lab.exec(node, ['tcpdump', '-r', file, '-nn', filter])).stdout.split('\n').filter(Boolean).length;
  const view = (s: AgentStatus, of: string) => s.peers.find((p) => p.publicKey === A(of).id.publicKey);
  /** Frames pub's peer relay passed on, either way (to the member it keeps rendezvous for, or from it). */
  const pubRelayed = async () => {
    const srv = (await agentStatus(lab, A('pub'))).counters.peerRelay.server;
    return (srv?.toClient ?? 0) + (srv?.toPeer ?? 0);
  };

  for (const { a, b, relayHost, via } of [
    { a: 'sym1', b: 'sym2', relayHost: 'turn', via: 'turn' },
    { a: 'sym3', b: 'sym4', relayHost: 'pub', via: 'peer-relay' },
  ] as const) {
    it(`${a} <-> ${b} relayed through ${via === 'turn' ? 'coturn' : 'the peer relay'}: the pings cross ${relayHost}'s wire, their payload never in clear`, async () => {
      const plain = 'a55a0ff0';
      const secret = 'c0ffee42';
      // The path first (ICE settles on the relay), so the capture holds the relayed tunnel.
      await tunnelPings(a, b, '00');
      for (const [x, y] of [[a, b], [b, a]] as const) {
        const v = view(await agentStatus(lab, A(x)), y);
        assert.equal(v?.path, 'relayed', `${x}'s view of ${y}: ${JSON.stringify(v)}${evidence([a, b])}`);
        assert.equal(v?.via, via, `${x}'s view of ${y}: ${JSON.stringify(v)}`);
      }
      const relayedBefore = await pubRelayed();
      const cap = await capture(relayHost, `relay-${relayHost}`);
      // The control: the relay host's wire carries a plain ping's pattern, so the capture would show cleartext.
      const c = await ping(a, ['-c', '2', '-p', plain, lab.address(relayHost)]);
      assert.equal(c.code, 0, `plain ping ${a} -> ${relayHost}: ${c.stdout}${c.stderr}`);
      await tunnelPings(a, b, secret);
      const bytes = await stopCapture(cap);
      assert.ok(bytes.includes(rep(plain)), `the capture on ${relayHost} did not see the plain ping: the check below would prove nothing`);
      assert.ok(!bytes.includes(rep(secret)), `the tunnelled ping payload crossed ${relayHost} in clear`);
      // And the 20 tunnelled echo requests and their 20 replies did cross the relay, in and out.
      if (via === 'turn') {
        const out = await countIn(relayHost, cap.file, `udp and src portrange ${RELAY_PORTS}`);
        const into = await countIn(relayHost, cap.file, `udp and dst portrange ${RELAY_PORTS}`);
        assert.ok(out >= 20 && into >= 20, `coturn's relay ports carried ${out} datagrams out, ${into} in: the pings did not go through it`);
      } else {
        const n = await countIn(relayHost, cap.file, `udp port ${A('pub').port}`);
        assert.ok(n >= 80, `only ${n} datagrams on pub's agent port: the pings did not go through it`);
        const relayed = (await pubRelayed()) - relayedBefore;
        assert.ok(relayed >= 40, `pub's peer relay counted ${relayed} frames relayed during the pings`);
      }
    });
  }
});
