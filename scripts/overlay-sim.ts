// Command line for the overlay simulation (agent/overlay/sim.ts):
//   node dist/scripts/overlay-sim.js --nodes 1000 --churn 0.3 --loss 0.05 [--lookups N] [--seed S]
//        [--no-replace] [--no-join-refresh] [--json] [--quiet]
// Prints a summary (or the results as JSON with --json).
import { runSimulation, type SimOptions } from '../agent/overlay/sim.js';

function parseArgs(argv: string[]): SimOptions & { json: boolean } {
  const o: SimOptions & { json: boolean } = { nodes: 1000, json: false };
  let quiet = false;
  const num = (flag: string, v: string | undefined): number => {
    const x = Number(v);
    if (v === undefined || !Number.isFinite(x)) throw new Error(`${flag} needs a number`);
    return x;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    switch (a) {
      case '--nodes': o.nodes = num(a, argv[++i]); break;
      case '--churn': o.churn = num(a, argv[++i]); break;
      case '--loss': o.loss = num(a, argv[++i]); break;
      case '--lookups': o.lookups = num(a, argv[++i]); break;
      case '--seed': o.seed = num(a, argv[++i]); break;
      case '--join-interval': o.joinIntervalMs = num(a, argv[++i]); break;
      case '--no-replace': o.replace = false; break;
      case '--no-join-refresh': o.joinRefresh = false; break;
      case '--json': o.json = true; break;
      case '--quiet': quiet = true; break;
      default: throw new Error(`unknown argument ${a}`);
    }
  }
  if (!quiet) o.onProgress = (line) => process.stderr.write(`${line}\n`);
  return o;
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const r = await runSimulation(opts);
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
    return;
  }
  const p = (x: { p50: number; p90: number; p99: number; mean: number }) => `p50 ${x.p50}  p90 ${x.p90}  p99 ${x.p99}  mean ${x.mean}`;
  process.stdout.write([
    `overlay simulation: ${r.nodes} nodes, churn ${(r.churn * 100).toFixed(0)}%${r.replace ? ' (replaced)' : ''}, loss ${(r.loss * 100).toFixed(0)}%`,
    `  lookups      ${r.succeeded}/${r.lookups} found (${(r.successRate * 100).toFixed(2)}%)`,
    `  hops         ${p(r.hops)}`,
    `  latency ms   ${p(r.latencyMs)}`,
    `  queries      ${p(r.queriesPerLookup)}`,
    `  table size   ${p(r.routingTableSize)}`,
    `  joins failed ${r.joinsFailed}; left ${r.nodesLeft}; joined after churn ${r.nodesJoinedAfterChurn}`,
    `  datagrams    ${r.datagrams.sent} sent, ${r.datagrams.lost} lost, ${r.datagrams.toDeadNodes} to dead nodes; rpc retransmits ${r.rpc.retransmits}, timeouts ${r.rpc.timeouts}`,
    `  ${r.simulatedSeconds} simulated s, ${r.events} events, ${r.wallSeconds} s wall`,
  ].join('\n') + '\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`overlay-sim: ${(e as Error).message}\n`);
  process.exit(1);
});
