// The overlay part of `npm run bench`: three agents that know nothing but --bootstrap (c starts the
// overlay, d and e join through it). For each sample both d and e are restarted (so neither has a tunnel
// or a cached lookup), wait until they joined and claimed their IPv4 address, and then one ping from d to
// e's overlay address: its RTT is the whole first-packet cost — overlay lookup (claim / NodeID bits ->
// locator), Noise handshake, and the echo itself. The agent's own lookup latency (status) is read beside it.
import type { Lab } from '../test/integration/lab.js';
import {
  agentStatus, createAgent, startOverlayAgent, stopAgent, waitOverlayReady, type TestAgent,
} from '../test/integration/agents.js';
import { median } from './bench-util.js';

export interface OverlayBenchResult {
  /** ping RTT of the first packet to a never-contacted peer, lookup and handshake included. */
  firstPacketRttMs: { ipv4: number[]; ipv6: number[] };
  /** The agents' own figure: lookup start to peer found, median over the samples. */
  lookupMedianMs: number;
  /** Agent start (both restarted) to joined + IPv4 claimed, median. */
  joinMedianMs: number;
  samples: number;
}


export async function overlayBench(lab: Lab, hosts: [string, string, string], samples = 3): Promise<OverlayBenchResult> {
  const [c, d, e] = await Promise.all(hosts.map((h) => createAgent(lab, h))) as [TestAgent, TestAgent, TestAgent];
  const result: OverlayBenchResult = { firstPacketRttMs: { ipv4: [], ipv6: [] }, lookupMedianMs: NaN, joinMedianMs: NaN, samples };
  const lookups: number[] = [];
  const joins: number[] = [];
  try {
    startOverlayAgent(lab, c, []);
    await waitOverlayReady(lab, c);
    for (let i = 0; i < samples; i++) {
      for (const family of ['ipv4', 'ipv6'] as const) {
        await Promise.all([stopAgent(lab, d), stopAgent(lab, e)]);
        const t0 = performance.now();
        startOverlayAgent(lab, d, [c]);
        startOverlayAgent(lab, e, [c]);
        const [, se] = await Promise.all([waitOverlayReady(lab, d), waitOverlayReady(lab, e)]);
        joins.push(performance.now() - t0);
        const to = family === 'ipv4' ? se.identity.ipv4 : se.identity.ipv6;
        const r = await lab.exec(d.host, ['ping', ...(family === 'ipv6' ? ['-6'] : []), '-c', '1', '-W', '5', to], { allowFail: true });
        const rtt = Number(/time=([\d.]+) ms/.exec(r.stdout)?.[1]);
        if (!Number.isFinite(rtt)) throw new Error(`first ping ${d.host} -> ${to} got no reply: ${r.stdout}${r.stderr}`);
        result.firstPacketRttMs[family].push(rtt);
        const sd = await agentStatus(lab, d);
        const p50 = (sd as { overlay?: { discovery?: { p50LatencyMs?: number } } }).overlay?.discovery?.p50LatencyMs;
        if (typeof p50 === 'number') lookups.push(p50);
      }
    }
  } finally {
    await Promise.all([c, d, e].map((a) => stopAgent(lab, a)));
  }
  result.lookupMedianMs = median(lookups);
  result.joinMedianMs = median(joins);
  return result;
}
