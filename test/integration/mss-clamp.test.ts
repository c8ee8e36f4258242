// TCP MSS clamping on the real packet path: two agents, a real TCP handshake between their overlay
// addresses whose SYN and SYN-ACK both advertise an MSS far larger than the tunnel carries (a host route
// with `advmss` makes each kernel offer it, as a jumbo-frame LAN or a misconfigured host would). A capture
// on each TAP shows the segment as the sending kernel wrote it (the big MSS: the control) and as the
// receiving kernel got it (clamped to TAP MTU - 40 for IPv4, - 60 for IPv6), in both directions.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Lab, type LabProcess } from './lab.js';
import {
  agentStatus, cliMissing, counter, logTails, startMesh, stopAgent, TAP_NAME, type TestAgent,
} from './agents.js';
import { labUnavailable, prerequisites } from './prerequisites.js';

const skip = prerequisites('MSS clamping', labUnavailable(), cliMissing());
/** What each kernel advertises towards the peer's overlay address: far above any tunnel's MSS. */
const ADV_MSS = 8_000;

/** A TCP server on every address of the node: accepts, reads a line, answers, closes. */
const SERVER = `require('net').createServer((c) => c.on('data', () => c.end('ok\\n'))).listen(+process.argv[1], '::')`;
/** Connects, sends a line, prints the answer. */
const CLIENT = `const c = require('net').connect({ host: process.argv[1], port: +process.argv[2] }, () => c.write('hi\\n'));
c.on('data', (d) => process.stdout.write(d)); c.setTimeout(5000, () => { console.error('timeout'); process.exit(2); });`;

interface Syn { flags: 'S' | 'S.'; mss: number; line: string }

describe('MSS clamping through the agents, SYN and SYN-ACK', { skip, timeout: 60_000 }, () => {
  let lab: Lab;
  let agents: TestAgent[] = [];
  let mtu = 0;
  let server: LabProcess | undefined;

  before(async () => {
    lab = await Lab.create({ hosts: ['a', 'b'] });
    agents = await startMesh(lab, lab.hosts);
    mtu = (await agentStatus(lab, agents[0]!)).tap.mtu;
    server = lab.spawn('b', [process.execPath, '-e', SERVER, '5001']);
    await lab.waitForPort('b', 5001);
  });
  after(async () => {
    if (server) await lab.stopProcess(server);
    await Promise.all(agents.map((a) => stopAgent(lab, a)));
    await lab?.destroy();
  });

  /** The SYN-flagged segments for port 5001 in a capture, with the MSS option they carry. */
  async function syns(node: string, pcap: string): Promise<Syn[]> {
    const r = await lab.exec(node, ['tcpdump', '-r', pcap, '-nn', 'tcp port 5001']);
    const out: Syn[] = [];
    for (const line of r.stdout.split('\n')) {
      const f = /Flags \[(S\.?)\]/.exec(line);
      if (!f) continue;
      const m = /mss (\d+)/.exec(line);
      out.push({ flags: f[1] as 'S' | 'S.', mss: m ? Number(m[1]) : -1, line });
    }
    return out;
  }

  for (const fam of ['ipv4', 'ipv6'] as const) {
    it(`over overlay ${fam}: the SYN arrives at b and the SYN-ACK at a with MSS clamped to TAP MTU - ${fam === 'ipv4' ? 40 : 60}`, async () => {
      const [a, b] = agents as [TestAgent, TestAgent];
      const v6 = fam === 'ipv6';
      const limit = mtu - (v6 ? 60 : 40);
      // Each kernel advertises ADV_MSS towards the other's overlay address (the SYN-ACK's MSS comes from the
      // server's route back to the client).
      for (const [x, y] of [[a, b], [b, a]] as const) {
        await lab.exec(x.host, ['ip', ...(v6 ? ['-6'] : []), 'route', 'replace', `${y.id[fam]}/${v6 ? 128 : 32}`, 'dev', TAP_NAME, 'advmss', String(ADV_MSS)]);
      }
      const before = await Promise.all(agents.map((x) => agentStatus(lab, x)));
      const caps = agents.map((x) => join(lab.dir, `mss-${fam}-${x.host}.pcap`));
      const dumps = agents.map((x, i) => lab.spawn(x.host, ['tcpdump', '-i', TAP_NAME, '-n', '-U', '--immediate-mode', '-s', '0', '-w', caps[i]!, 'tcp port 5001']));
      for (const d of dumps) await d.waitForOutput(/listening on/);
      const r = await lab.exec('a', [process.execPath, '-e', CLIENT, b.id[fam], '5001'], { allowFail: true, timeoutMs: 15_000 });
      await new Promise((res) => setTimeout(res, 300)); // the last segments into the capture files
      for (const d of dumps) await lab.stopProcess(d, { signal: 'SIGINT' });
      assert.equal(r.stdout.trim(), 'ok', `the TCP exchange a -> b over ${fam} failed: ${r.stdout}${r.stderr}\n${logTails(agents)}`);

      const [atA, atB] = [await syns('a', caps[0]!), await syns('b', caps[1]!)];
      const show = `\na's TAP:\n${atA.map((s) => s.line).join('\n')}\nb's TAP:\n${atB.map((s) => s.line).join('\n')}`;
      const one = (list: Syn[], flags: Syn['flags'], where: string): Syn => {
        const hits = list.filter((s) => s.flags === flags);
        assert.equal(hits.length, 1, `want one [${flags}] segment on ${where}'s TAP${show}`);
        return hits[0]!;
      };
      // The control: each kernel really offered the big MSS (otherwise a clamped value would prove nothing).
      assert.equal(one(atA, 'S', 'a').mss, ADV_MSS, `a's kernel did not advertise ${ADV_MSS} in its SYN${show}`);
      assert.equal(one(atB, 'S.', 'b').mss, ADV_MSS, `b's kernel did not advertise ${ADV_MSS} in its SYN-ACK${show}`);
      // What crossed the tunnel arrives clamped, both ways.
      const synAtB = one(atB, 'S', 'b').mss;
      const synAckAtA = one(atA, 'S.', 'a').mss;
      assert.ok(synAtB > 0 && synAtB <= limit, `SYN arrived at b with MSS ${synAtB}, above ${limit} (TAP MTU ${mtu})${show}`);
      assert.ok(synAckAtA > 0 && synAckAtA <= limit, `SYN-ACK arrived at a with MSS ${synAckAtA}, above ${limit} (TAP MTU ${mtu})${show}`);
      // Clamped to the limit, not lowered further (the rule is min(offered, limit)).
      assert.equal(synAtB, limit, show);
      assert.equal(synAckAtA, limit, show);
      // Each side's agent counted the clamp of the SYN it sent.
      const after = await Promise.all(agents.map((x) => agentStatus(lab, x)));
      for (const i of [0, 1]) {
        const clamped = counter(after[i]!, 'inside', 'mssClamped') + counter(after[i]!, 'outside', 'mssClamped')
          - counter(before[i]!, 'inside', 'mssClamped') - counter(before[i]!, 'outside', 'mssClamped');
        assert.ok(clamped >= 1, `${agents[i]!.host}'s agent counted no MSS clamp: ${JSON.stringify(after[i]!.counters.inside)}`);
      }
    });
  }
});
