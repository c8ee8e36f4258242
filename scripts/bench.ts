// `npm run bench`: the plain path and the idloc tunnel measured side by side in one run, on a two-host
// netns lab (the design brief, section 7: compare ratios from the same run, never absolute numbers
// across runs). Prints a table and writes bench-results.json (--out PATH to change it).
//
// Measures (parts, each can be run alone with --only PART[,PART]):
//   tunnel:   iperf3 TCP throughput (--runs x --seconds each direction) at the default 1420 TAP MTU and
//             at a 65000-byte inner MTU, ping RTT (50 x 10 ms), time from agent start to the first ping
//             reply, the first ping's RTT through a fresh tunnel (handshake included), and the agents'
//             RSS idle and under load;
//   ipv6:     the tunnel over an IPv6 underlay next to the same over IPv4, and the plain path of each
//             family, in one dual-stack lab: TCP each way and ping RTT (bench-ipv6.ts);
//   overlay:  overlay-only agents (--bootstrap, no --peer): the first packet to a never-contacted peer,
//             lookup included (bench-overlay.ts);
//   nat:      agents behind NAT routers in a lab of their own (bench-nat.ts: first packet through two
//             NATs, plain vs direct vs TURN-relayed path), on the LAN and at 40 ms RTT / 1% loss;
//   handover: the mobility test's moves behind filtering NATs, the largest arrival gap of an ssh clock,
//             and the multihomed failovers, median of --handover-reps; sleep and wake, median of
//             --wake-reps; on the LAN and at 40 ms RTT / 1% loss (bench-handover.ts);
//   sim:      the overlay lookup simulation.
// Total about ten minutes.
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { resolve } from 'node:path';
import { Lab, type LabProcess } from '../test/integration/lab.js';
import { runSimulation, type SimResults } from '../agent/overlay/sim.js';
import { overlayBench, type OverlayBenchResult } from './bench-overlay.js';
import { NAT_WAN, natBench, natSideBySide, natTable, type NatBenchResult } from './bench-nat.js';
import { turnserverPath } from '../test/integration/coturn.js';
import {
  CLI, agentStatus, cliBuilt, counter, createAgent, logTail, startAgent, stopAgent, waitReady, type TestAgent,
} from '../test/integration/agents.js';
import { alignRows, fmt, mean, measurePath, ping, sleep, tcpBothWays, type PathResult } from './bench-util.js';
import { ipv6Bench, ipv6Table, type Ipv6BenchResult } from './bench-ipv6.js';
import { HANDOVER_WAN, handoverBench, handoverTable, type HandoverResult } from './bench-handover.js';

const PARTS = ['tunnel', 'ipv6', 'overlay', 'nat', 'handover', 'sim'] as const;
type Part = typeof PARTS[number];

interface Args { out: string; seconds: number; runs: number; simNodes: number[]; only: Set<Part>; handoverReps: number; wakeReps: number }

function parseArgs(argv: string[]): Args {
  const a: Args = { out: 'bench-results.json', seconds: 5, runs: 2, simNodes: [1000], only: new Set(PARTS), handoverReps: 5, wakeReps: 5 };
  for (let i = 0; i < argv.length; i++) {
    const [k, v] = [argv[i], argv[i + 1]];
    const num = () => {
      const n = Number(v);
      if (!Number.isFinite(n) || n <= 0) usage(`${k} needs a positive number`);
      i++;
      return n;
    };
    if (k === '--out' && v) { a.out = v; i++; } else if (k === '--seconds') a.seconds = num();
    else if (k === '--runs') a.runs = Math.round(num());
    // Overlay simulation sizes: 1,000 by default (~30 s); `--sim 1000,10000` adds the 10k runs (~15 min, ~3 GB).
    else if (k === '--sim' && v) { a.simNodes = v.split(',').map(Number).filter((n) => Number.isInteger(n) && n > 1); i++; }
    else if (k === '--handover-reps') a.handoverReps = Math.round(num());
    // Sleep and wake costs a minute per repetition: `--wake-reps 1` for a quick look.
    else if (k === '--wake-reps') a.wakeReps = Math.round(num());
    else if (k === '--only' && v) {
      const parts = v.split(',');
      const bad = parts.filter((x) => !(PARTS as readonly string[]).includes(x));
      if (bad.length) usage(`--only takes ${PARTS.join(', ')}; not ${bad.join(', ')}`);
      a.only = new Set(parts as Part[]);
      i++;
    }
    else usage(`unknown argument ${k}`);
  }
  return a;
}

function usage(msg: string): never {
  process.stderr.write(`bench: ${msg}\nusage: node dist/scripts/bench.js [--out FILE] [--seconds N] [--runs N] [--sim N,N] [--handover-reps N] [--wake-reps N] [--only ${PARTS.join('|')}[,...]]\n`);
  process.exit(2);
}

/** Resident set size in KiB, from /proc (the agents share our pid namespace, only the netns differs). */
function rssKb(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch { return undefined; }
}

const nowMs = () => Number(process.hrtime.bigint() / 1000n) / 1000;

/** Poll a single-shot ping until one is answered; returns ms since `t0`. Cheap polling on purpose:
 *  polling `status` (a node process per try) would steal the CPU the agents are starting on. */
async function firstReply(lab: Lab, from: string, to: string, t0: number, timeoutMs = 15_000): Promise<number> {
  while (nowMs() - t0 < timeoutMs) {
    const r = await lab.exec(from, ['ping', '-c', '1', '-W', '0.5', to], { allowFail: true });
    if (r.code === 0) return nowMs() - t0;
    if (r.code !== 1) await sleep(10); // no route yet (TAP not up): ping failed at once
  }
  throw new Error(`no reply from ${to} within ${timeoutMs} ms`);
}

interface TunnelResult extends PathResult {
  /** TCP with a 65000-byte inner MTU (`up --mtu 65000`): the outer datagrams are then IP-fragmented on
   *  the underlay, which a LAN or this lab carries and many internet paths do not; hence not the default. */
  tcpMbitLargeMtu: { mtu: number; forward: number[]; reverse: number[] };
  startToFirstReplyMs: number;
  coldHandshakeInits: number;
  firstPingRttMs: number;
  rssIdleKb: Record<string, number | undefined>;
  rssLoadKb: Record<string, number | undefined>;
}

async function tunnelBench(lab: Lab, a: Args, agents: TestAgent[]): Promise<TunnelResult> {
  const [A, B] = agents as [TestAgent, TestAgent];
  // 1. Cold start: both agents launched at t0, first reply through the tunnel (TAP, addresses, handshake).
  const t0 = nowMs();
  startAgent(lab, A, [B]);
  startAgent(lab, B, [A]);
  const startToFirstReplyMs = await firstReply(lab, 'a', B.id.ipv4, t0);
  // More than one initiation means the first was lost (typically: sent before the peer's socket was
  // bound) and the reply waited for the retry timer: say so next to the number, it explains outliers.
  const coldHandshakeInits = counter(await agentStatus(lab, A), 'tunnels', 'handshakeInitSent');
  // 2. Restart both and wait until ready with no traffic: the first ping's own RTT is then the
  //    never-seen-peer case (handshake + first packet).
  await Promise.all([stopAgent(lab, A), stopAgent(lab, B)]);
  startAgent(lab, A, [B]);
  startAgent(lab, B, [A]);
  await Promise.all([waitReady(lab, A), waitReady(lab, B)]);
  const first = await lab.exec('a', ['ping', '-c', '1', '-W', '3', B.id.ipv4]);
  const firstPingRttMs = Number(/time=([\d.]+) ms/.exec(first.stdout)?.[1]);
  await sleep(1000);
  const rssIdleKb = { a: rssKb(A.proc!.pid), b: rssKb(B.proc!.pid) };
  const ping4 = await ping(lab, 'a', B.id.ipv4);
  // RSS under load: sample while iperf3 runs, keep the peak.
  const rssLoadKb: Record<string, number | undefined> = { a: undefined, b: undefined };
  const sampler = setInterval(() => {
    for (const [k, ag] of [['a', A], ['b', B]] as const) {
      const v = rssKb(ag.proc!.pid);
      if (v !== undefined) rssLoadKb[k] = Math.max(rssLoadKb[k] ?? 0, v);
    }
  }, 250);
  let tcpMbit: PathResult['tcpMbit'];
  try {
    tcpMbit = await tcpBothWays(lab, 'a', B.id.ipv4, a);
  } finally {
    clearInterval(sampler);
  }
  // 3. The same with a large inner MTU, where per-packet costs stop dominating.
  await Promise.all([stopAgent(lab, A), stopAgent(lab, B)]);
  startAgent(lab, A, [B], ['--mtu', String(LARGE_MTU)]);
  startAgent(lab, B, [A], ['--mtu', String(LARGE_MTU)]);
  await Promise.all([waitReady(lab, A), waitReady(lab, B)]);
  const tcpMbitLargeMtu = { mtu: LARGE_MTU, ...(await tcpBothWays(lab, 'a', B.id.ipv4, a)) };
  return { tcpMbit, tcpMbitLargeMtu, ping: ping4, startToFirstReplyMs, coldHandshakeInits, firstPingRttMs, rssIdleKb, rssLoadKb };
}

const LARGE_MTU = 65000;

function table(plain: PathResult, tunnel: TunnelResult | undefined): string {
  const rows: [string, string, string, string][] = [['', 'plain', 'idloc', 'idloc/plain']];
  const row = (name: string, p: number[], t: number[] | undefined, digits: number) => {
    const pm = mean(p), tm = t ? mean(t) : undefined;
    rows.push([name, p.map((x) => fmt(x, digits)).join(', '), t ? t.map((x) => fmt(x, digits)).join(', ') : '-',
      tm === undefined ? '-' : `${fmt(tm / pm, 3)}`]);
  };
  row('TCP a->b Mbit/s', plain.tcpMbit.forward, tunnel?.tcpMbit.forward, 0);
  row('TCP b->a Mbit/s', plain.tcpMbit.reverse, tunnel?.tcpMbit.reverse, 0);
  if (tunnel) {
    rows.push([`TCP a->b Mbit/s, inner MTU ${tunnel.tcpMbitLargeMtu.mtu}`, '', tunnel.tcpMbitLargeMtu.forward.map((x) => fmt(x, 0)).join(', '), fmt(mean(tunnel.tcpMbitLargeMtu.forward) / mean(plain.tcpMbit.forward), 3)]);
    rows.push([`TCP b->a Mbit/s, inner MTU ${tunnel.tcpMbitLargeMtu.mtu}`, '', tunnel.tcpMbitLargeMtu.reverse.map((x) => fmt(x, 0)).join(', '), fmt(mean(tunnel.tcpMbitLargeMtu.reverse) / mean(plain.tcpMbit.reverse), 3)]);
  }
  row('ping avg ms', [plain.ping.avgMs], tunnel && [tunnel.ping.avgMs], 3);
  row('ping median ms', [plain.ping.medianMs], tunnel && [tunnel.ping.medianMs], 3);
  row('ping max ms', [plain.ping.maxMs], tunnel && [tunnel.ping.maxMs], 3);
  rows.push(['ping replies', `${plain.ping.received}/${plain.ping.sent}`, tunnel ? `${tunnel.ping.received}/${tunnel.ping.sent}` : '-', '']);
  if (tunnel) {
    rows.push(['agent start -> first reply s', '', fmt(tunnel.startToFirstReplyMs / 1000, 3), `${tunnel.coldHandshakeInits} handshake init(s)`]);
    rows.push(['first ping RTT, new tunnel ms', '', fmt(tunnel.firstPingRttMs, 3), '']);
    const mb = (r: Record<string, number | undefined>) => Object.values(r).map((v) => fmt(v === undefined ? undefined : v / 1024, 1)).join(', ');
    rows.push(['agent RSS idle MiB (a, b)', '', mb(tunnel.rssIdleKb), '']);
    rows.push(['agent RSS peak under load MiB', '', mb(tunnel.rssLoadKb), '']);
  }
  return alignRows(rows);
}

function overlayTable(o: OverlayBenchResult): string {
  const list = (xs: number[]) => xs.map((x) => fmt(x, 2)).join(', ');
  return [
    `overlay agents (--bootstrap only), ${o.samples} samples each, both agents restarted before each:`,
    `  first packet to a never-contacted peer, IPv4 (lookup + handshake + echo) ms   ${list(o.firstPacketRttMs.ipv4)}`,
    `  first packet to a never-contacted peer, IPv6 (lookup + handshake + echo) ms   ${list(o.firstPacketRttMs.ipv6)}`,
    `  the agent's own lookup latency, median ms                                     ${fmt(o.lookupMedianMs, 1)}`,
    `  agent start -> joined and IPv4 claimed, median s                              ${fmt(o.joinMedianMs / 1000, 2)}`,
  ].join('\n');
}

function simTable(sim: SimResults[]): string {
  const rows = [['overlay lookups', 'found', 'hops p50/p90/p99', 'latency ms p50/p90/p99', 'wall s']];
  for (const r of sim) {
    rows.push([`${r.nodes} nodes, churn ${r.churn * 100}%, loss ${r.loss * 100}%`, `${r.succeeded}/${r.lookups} (${(r.successRate * 100).toFixed(2)}%)`,
      `${r.hops.p50}/${r.hops.p90}/${r.hops.p99}`, `${fmt(r.latencyMs.p50, 0)}/${fmt(r.latencyMs.p90, 0)}/${fmt(r.latencyMs.p99, 0)}`, fmt(r.wallSeconds, 0)]);
  }
  return alignRows(rows);
}

/** The tunnel and overlay parts, in one five-host lab. */
async function lanParts(a: Args): Promise<{ plain?: PathResult; tunnel?: TunnelResult; overlay?: OverlayBenchResult; skipped?: string }> {
  const lab = await Lab.create({ hosts: ['a', 'b', 'c', 'd', 'e'] });
  const agents: TestAgent[] = [];
  let server: LabProcess | undefined;
  const out: { plain?: PathResult; tunnel?: TunnelResult; overlay?: OverlayBenchResult; skipped?: string } = {};
  try {
    if (a.only.has('tunnel')) {
      // One iperf3 server on b, on all addresses: it serves the plain and (later) the overlay runs.
      server = lab.spawn('b', ['iperf3', '-s']);
      await lab.waitForPort('b', 5201);
      process.stderr.write('bench: plain path...\n');
      out.plain = await measurePath(lab, 'a', lab.address('b'), a);
      if (cliBuilt()) {
        process.stderr.write('bench: idloc tunnel...\n');
        agents.push(await createAgent(lab, 'a'), await createAgent(lab, 'b'));
        try {
          out.tunnel = await tunnelBench(lab, a, agents);
        } catch (e) {
          throw new Error(`${(e as Error).message}\n${agents.map((x) => logTail(x)).join('\n')}`);
        }
      } else {
        out.skipped = `${CLI} not built: tunnel not measured`;
        process.stderr.write(`bench: ${out.skipped}\n`);
      }
    }
    if (cliBuilt() && a.only.has('overlay')) {
      process.stderr.write('bench: overlay agents, first packet to a never-contacted peer...\n');
      out.overlay = await overlayBench(lab, ['c', 'd', 'e']);
    }
    return out;
  } finally {
    await Promise.all(agents.map((x) => stopAgent(lab, x)));
    if (server) await lab.stopProcess(server);
    await lab.destroy();
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const started = Date.now();
  const { plain, tunnel, overlay, skipped } = args.only.has('tunnel') || args.only.has('overlay') ? await lanParts(args) : {};
  // The underlay families side by side, in a dual-stack lab of its own (bench-ipv6.ts).
  let ipv6: Ipv6BenchResult | undefined;
  if (args.only.has('ipv6')) {
    if (cliBuilt()) ipv6 = await ipv6Bench(args);
    else process.stderr.write('bench: ipv6 part skipped (CLI not built)\n');
  }
  // Agents behind NAT routers, in a lab of their own (bench-nat.ts creates and destroys it).
  // Run twice, LAN then WAN (NAT_WAN), each in its own lab.
  let nat: { lan: NatBenchResult; wan: NatBenchResult } | undefined;
  if (args.only.has('nat')) {
    if (cliBuilt() && turnserverPath()) {
      const lan = await natBench({ seconds: args.seconds, network: 'LAN' });
      nat = { lan, wan: await natBench({ seconds: args.seconds, network: 'WAN 40 ms RTT, 1% loss', wan: NAT_WAN }) };
    }
    else process.stderr.write('bench: NAT part skipped (CLI not built or coturn not installed)\n');
  }
  // Moves behind filtering NATs, on the LAN and on the WAN (bench-handover.ts, a lab per network).
  const handover: HandoverResult[] = [];
  if (args.only.has('handover')) {
    if (cliBuilt()) {
      handover.push(await handoverBench({ network: 'LAN', reps: args.handoverReps, wakeReps: args.wakeReps }));
      handover.push(await handoverBench({ network: 'WAN 40 ms RTT, 1% loss', wan: HANDOVER_WAN, reps: args.handoverReps, wakeReps: args.wakeReps }));
    } else process.stderr.write('bench: handover part skipped (CLI not built)\n');
  }
  // Lookups at scale: a discrete-event simulation of the same
  // routing-table, RPC and lookup code, 10-50 ms links; without churn and with 30% churn + 5% loss.
  const sim: SimResults[] = [];
  for (const nodes of args.only.has('sim') ? args.simNodes : []) {
    for (const [churn, loss] of [[0, 0], [0.3, 0.05]] as const) {
      process.stderr.write(`bench: overlay simulation, ${nodes} nodes, churn ${churn}, loss ${loss}...\n`);
      sim.push(await runSimulation({ nodes, churn, loss, lookups: Math.min(nodes, 1000), seed: 1 }));
    }
  }
  const results = {
    parts: [...args.only],
    ipv6: ipv6 ?? null,
    overlay: overlay ?? null,
    nat: nat ?? null,
    handover,
    overlaySimulation: sim,
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, kernel: release(), node: process.version },
    config: { seconds: args.seconds, runs: args.runs, pingCount: 50, pingIntervalMs: 10, handoverReps: args.handoverReps, wakeReps: args.wakeReps },
    plain: plain ?? null, tunnel: tunnel ?? null, skipped: skipped ?? null,
    ratios: tunnel && plain ? {
      tcpForward: mean(tunnel.tcpMbit.forward) / mean(plain.tcpMbit.forward),
      tcpReverse: mean(tunnel.tcpMbit.reverse) / mean(plain.tcpMbit.reverse),
      pingAvgExtraMs: tunnel.ping.avgMs - plain.ping.avgMs,
      pingMedianExtraMs: tunnel.ping.medianMs - plain.ping.medianMs,
    } : null,
    durationS: (Date.now() - started) / 1000,
  };
  if (plain) process.stdout.write(`\n${table(plain, tunnel)}\n\n`);
  if (ipv6) process.stdout.write(`${ipv6Table(ipv6)}\n\n`);
  if (overlay) process.stdout.write(`${overlayTable(overlay)}\n\n`);
  if (nat) process.stdout.write(`${natTable(nat.lan)}\n\n${natTable(nat.wan)}\n\n${natSideBySide(nat.lan, nat.wan)}\n\n`);
  if (handover.length) process.stdout.write(`${handoverTable(handover)}\n\n`);
  if (sim.length) process.stdout.write(`${simTable(sim)}\n\n`);
  const out = resolve(args.out);
  writeFileSync(out, JSON.stringify(results, null, 2) + '\n');
  process.stdout.write(`wrote ${out} (${results.durationS.toFixed(0)} s)\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench: ${(e as Error).stack ?? String(e)}\n`);
  process.exitCode = 1;
});
