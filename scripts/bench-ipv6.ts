// The ipv6 part of `npm run bench`: the idloc tunnel over an IPv6 underlay next to the same tunnel over
// IPv4, and the plain path of each family, in one lab and one run (ratios within a run are what compare).
// Two dual-stack public hosts a and b (lab-ipv6.ts), the tunnel part's host-to-host path: per family,
// first the plain path (b's IPv4 or IPv6 address), then agents started with `--peer KEY@v4:4500` or
// `--peer KEY@[v6]:4500` only, so the underlay family is the one under test. Through the tunnel the
// target is b's overlay IPv4 in both runs: only the underlay differs. Each path: iperf3 TCP --runs x
// --seconds each way and ping RTT (50 x 10 ms). Both runs get the same explicit TAP MTU, the default,
// which already leaves room for an outer IPv6 header. Each peer's endpoint in `status` is checked
// before and after the measuring, so a run that went over the other family fails instead of
// mislabelling its numbers.
import { Lab, type LabProcess } from '../test/integration/lab.js';
import {
  agentStatus, createAgent, hostPort, logTails, startAgent, stopAgent, waitReady, type TestAgent,
} from '../test/integration/agents.js';
import { DEFAULT_TAP_MTU } from '../agent/base/constants.js';
import { alignRows, fmt, mean, measurePath, type PathResult } from './bench-util.js';

export type Family = 'ipv4' | 'ipv6';

export interface FamilyResult {
  plain: PathResult;
  idloc: PathResult & { endpoints: { a: string; b: string } };
}

export interface Ipv6BenchResult {
  mtu: number;
  ipv4: FamilyResult;
  ipv6: FamilyResult;
  /** idloc over IPv6 / idloc over IPv4, of the means. */
  ratios: { tcpForward: number; tcpReverse: number; pingAvg: number; pingMedian: number };
}

const MTU = DEFAULT_TAP_MTU;

export async function ipv6Bench(o: { seconds: number; runs: number }): Promise<Ipv6BenchResult> {
  const lab = await Lab.create({ hosts: [{ name: 'a', ipv6: 'dual' }, { name: 'b', ipv6: 'dual' }] });
  const agents: TestAgent[] = [];
  let server: LabProcess | undefined;
  try {
    // iperf3 -s listens on a dual-stack socket: one server for the four paths.
    server = lab.spawn('b', ['iperf3', '-s']);
    await lab.waitForPort('b', 5201);
    agents.push(await createAgent(lab, 'a'), await createAgent(lab, 'b'));
    const res: Partial<Record<Family, FamilyResult>> = {};
    for (const family of ['ipv4', 'ipv6'] as const) {
      const addr = (host: string) => (family === 'ipv4' ? lab.address(host) : lab.address6(host));
      const b = addr('b');
      if (!b) throw new Error(`lab host b has no ${family} address`);
      process.stderr.write(`bench: ${family} underlay, plain path...\n`);
      const plain = await measurePath(lab, 'a', b, o);
      process.stderr.write(`bench: ${family} underlay, idloc tunnel...\n`);
      res[family] = { plain, idloc: await tunnelOver(lab, family, addr, agents as [TestAgent, TestAgent], o) };
    }
    const v4 = res.ipv4!.idloc, v6 = res.ipv6!.idloc;
    return {
      mtu: MTU, ipv4: res.ipv4!, ipv6: res.ipv6!,
      ratios: {
        tcpForward: mean(v6.tcpMbit.forward) / mean(v4.tcpMbit.forward),
        tcpReverse: mean(v6.tcpMbit.reverse) / mean(v4.tcpMbit.reverse),
        pingAvg: v6.ping.avgMs / v4.ping.avgMs,
        pingMedian: v6.ping.medianMs / v4.ping.medianMs,
      },
    };
  } catch (e) {
    throw new Error(`ipv6 part: ${(e as Error).message}\n${logTails(agents)}`);
  } finally {
    await Promise.all(agents.map((x) => stopAgent(lab, x)));
    if (server) await lab.stopProcess(server);
    await lab.destroy();
  }
}

/** Both agents up with the other as their only peer, at its `family` address; measured a -> b's overlay IPv4. */
async function tunnelOver(lab: Lab, family: Family, addr: (host: string) => string | undefined, [A, B]: [TestAgent, TestAgent],
  o: { seconds: number; runs: number }): Promise<FamilyResult['idloc']> {
  const peer = (p: TestAgent) => ['--peer', `${p.id.publicKey}@${hostPort(addr(p.host)!, p.port)}`];
  startAgent(lab, A, [], [...peer(B), '--mtu', String(MTU)]);
  startAgent(lab, B, [], [...peer(A), '--mtu', String(MTU)]);
  try {
    const ready = await Promise.all([waitReady(lab, A), waitReady(lab, B)]);
    for (const s of ready) if (s.tap.mtu !== MTU) throw new Error(`TAP MTU ${s.tap.mtu} in ${s.identity.ipv4}, not ${MTU}`);
    // The handshake on this first packet is the tunnel part's figure; kept out of the RTT here.
    await lab.exec('a', ['ping', '-c', '1', '-W', '5', B.id.ipv4]);
    await checkEndpoints(lab, family, addr, A, B);
    const path = await measurePath(lab, 'a', B.id.ipv4, o);
    return { ...path, endpoints: await checkEndpoints(lab, family, addr, A, B) };
  } finally {
    await Promise.all([stopAgent(lab, A), stopAgent(lab, B)]);
  }
}

/** Each agent's endpoint for the other must be the other's `family` address: else the run is not what it says. */
async function checkEndpoints(lab: Lab, family: Family, addr: (host: string) => string | undefined,
  A: TestAgent, B: TestAgent): Promise<{ a: string; b: string }> {
  const seen: Record<string, string> = {};
  for (const [me, other] of [[A, B], [B, A]] as const) {
    const st = await agentStatus(lab, me);
    const p = st.peers.find((x) => x.publicKey === other.id.publicKey);
    const want = hostPort(addr(other.host)!, other.port);
    const ep = p?.endpoint ?? '';
    if (ep !== want || ep.startsWith('[') !== (family === 'ipv6') || p?.path !== 'direct') {
      throw new Error(`the ${family} run is not over ${family}: ${me.host} reaches ${other.host} at ${ep || 'no endpoint'} (path ${p?.path}), want ${want} direct`);
    }
    seen[me.host] = ep;
  }
  return { a: seen['a']!, b: seen['b']! };
}

export function ipv6Table(r: Ipv6BenchResult): string {
  const list = (xs: number[], digits: number) => xs.map((x) => fmt(x, digits)).join(', ');
  const rows: string[][] = [['', 'plain IPv4', 'idloc over IPv4', 'plain IPv6', 'idloc over IPv6', 'idloc v6/v4']];
  const row = (name: string, get: (p: PathResult) => number[], digits: number) => {
    const cols = [r.ipv4.plain, r.ipv4.idloc, r.ipv6.plain, r.ipv6.idloc].map((p) => list(get(p), digits));
    rows.push([name, ...cols, fmt(mean(get(r.ipv6.idloc)) / mean(get(r.ipv4.idloc)), 3)]);
  };
  row('TCP a->b Mbit/s', (p) => p.tcpMbit.forward, 0);
  row('TCP b->a Mbit/s', (p) => p.tcpMbit.reverse, 0);
  row('ping avg ms', (p) => [p.ping.avgMs], 3);
  row('ping median ms', (p) => [p.ping.medianMs], 3);
  const replies = (p: PathResult) => `${p.ping.received}/${p.ping.sent}`;
  rows.push(['ping replies', replies(r.ipv4.plain), replies(r.ipv4.idloc), replies(r.ipv6.plain), replies(r.ipv6.idloc), '']);
  rows.push(['underlay endpoint a->b', '', r.ipv4.idloc.endpoints.a, '', r.ipv6.idloc.endpoints.a, '']);
  return `idloc over an IPv6 underlay next to IPv4 (same lab and run, TAP MTU ${r.mtu} in both):\n${alignRows(rows, '  ')}`;
}
