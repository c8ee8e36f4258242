// The NAT part of `npm run bench`, in a lab of its own (destroyed at the end, also on failure): a public
// bootstrap (boot) and a second public member (turn, which also runs coturn), agents behind the lab's
// NAT routers (cone1, cone2: cone; cgn: CGNAT in front of a home router; sym1, sym2: symmetric) that know
// nothing but --bootstrap, and a plain public host (pub) for the plain path.
//
// 1. First packet to a never-seen peer behind NAT: for each sample both agents are restarted (no tunnel,
//    no cached lookup), wait until joined + IPv4 claimed + rendezvous kept (status overlay.rendezvous),
//    then one `ping -c 1 -W 5` to the other's overlay IPv4: its RTT is the whole first-packet cost
//    (lookup + Attach through rendezvous + ICE + handshake + echo). Pairs cone1 -> cone2, cgn -> cone2,
//    sym3 -> cone2 (a random-port symmetric NAT: birthday probing, no TURN).
// 2. Throughput (iperf3 TCP both ways) and ping RTT (50 x 10 ms) on: the plain path (between the two
//    NATed hosts if the underlay reaches at all, which two filtering NATs do not allow; else cone1 ->
//    pub through one NAT), the direct tunnel cone1 -> cone2, the tunnel relayed by coturn sym1 -> sym2
//    (both with --turn), sym3 -> sym4 (no TURN server) relayed through a public agent (peer relay), and
//    sym3 -> cone2 direct by birthday probing (sym3's end a probe socket, measured once reopened native);
//    `status` must say 'direct' / 'relayed' (via turn / peer-relay) first, and its path reasons are kept.
// bench.ts runs it twice, on the LAN (the lab's bridge) and on the WAN switch (NAT_WAN: 40 ms RTT, 1% loss
// per crossing between sites); natSideBySide() puts the two next to each other.
import { Lab, type LabProcess, type WanSettings } from '../test/integration/lab.js';
import { startCoturn } from '../test/integration/coturn.js';
import {
  agentStatus, createAgent, logTails, startOverlayAgent, stopAgent, waitOverlayReady, type AgentStatus, type TestAgent,
} from '../test/integration/agents.js';
import { WAN_40MS } from '../test/integration/mobility-lab.js';
import { iperf, mean, median, ping, sleep, type PingStats } from './bench-util.js';

/** The WAN run's settings: the issue's 40 ms RTT (2 ms jitter) and 1% loss between sites. */
export const NAT_WAN: WanSettings = WAN_40MS;

interface Measured { tcpMbit: { forward: number[]; reverse: number[] }; ping: PingStats }

export interface NatPath extends Measured {
  from: string;
  to: string;
  /** 'plain' for the underlay; else what the sender's status says about the receiver (and back). */
  path: string;
  pathReason?: string;
  endpoint?: string | null;
  reversePath?: string;
  reversePathReason?: string;
}

export interface NatFirstPacket {
  pair: string;
  nat: string;
  /** ping RTT of the first packet to the never-seen peer: lookup + Attach + ICE + handshake + echo. */
  samplesMs: number[];
  /** Samples whose one ping got no reply within 5 s (a loss on the WAN), left out of the median. */
  noReply: number;
  medianMs: number;
  /** The sender's own lookup latency (status), median over the samples. */
  lookupMedianMs: number;
  /** Path and reason the sender's status gave after each sample's ping. */
  paths: string[];
}

export interface NatBenchResult {
  /** 'LAN', or the WAN settings in words. */
  network: string;
  wan: WanSettings | null;
  firstPacket: NatFirstPacket[];
  /** Whether a plain (no tunnel) path exists between the two cone-NATed hosts, and what was tried. */
  plainBetweenNated: { reachable: boolean; tried: string };
  plain: NatPath;
  direct: NatPath;
  relayed: NatPath;
  peerRelayed: NatPath;
  /** Symmetric (random ports) to cone, direct by birthday probing. */
  birthday: NatPath;
  /** Each agent's NAT verdict (status nat.summary). */
  natSummary: Record<string, string>;
  config: { samples: number; seconds: number; runs: number };
  durationS: number;
}

type Status = AgentStatus & { overlay?: { rendezvous?: string[] }; nat?: { summary?: string } | null; relay?: { relayed?: string | null } | null };


/** Ping RTT, then iperf3 both ways, from `from` to the server at `to` (already listening). */
async function measure(lab: Lab, from: string, to: string, seconds: number, runs: number): Promise<Measured> {
  const p = await ping(lab, from, to);
  const tcpMbit = { forward: [] as number[], reverse: [] as number[] };
  for (const reverse of [false, true]) {
    for (let i = 0; i < runs; i++) (reverse ? tcpMbit.reverse : tcpMbit.forward).push(await iperf(lab, from, to, seconds, reverse));
  }
  return { ping: p, tcpMbit };
}

async function until<T>(fn: () => Promise<T | undefined | null | false | 0>, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    try { const v = await fn(); if (v) return v; } catch { /* not yet */ }
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms: ${what}`);
    await sleep(100);
  }
}

/** Joined, IPv4 claimed, rendezvous kept (and, with --turn, the relay allocated): the status then. */
async function ready(lab: Lab, a: TestAgent, relay = false): Promise<Status> {
  await waitOverlayReady(lab, a);
  return until(async () => {
    const s = (await agentStatus(lab, a)) as Status;
    return (s.overlay?.rendezvous?.length ?? 0) > 0 && (!relay || s.relay?.relayed) ? s : undefined;
  }, 15_000, `${a.host} keeps rendezvous${relay ? ' and has a TURN allocation' : ''}`);
}

async function peerOf(lab: Lab, from: TestAgent, to: TestAgent) {
  return (await agentStatus(lab, from)).peers.find((p) => p.publicKey === to.id.publicKey);
}

export async function natBench(opts: { samples?: number; seconds: number; runs?: number; network?: string; wan?: WanSettings }): Promise<NatBenchResult> {
  const started = Date.now();
  const samples = opts.samples ?? 5;
  const runs = opts.runs ?? 1;
  const lab = await Lab.create({
    hosts: ['boot', 'turn', 'pub'],
    natHosts: [
      { name: 'cone1', nat: 'cone' }, { name: 'cone2', nat: 'cone' }, { name: 'cgn', nat: 'cgnat' },
      { name: 'sym1', nat: 'symmetric' }, { name: 'sym2', nat: 'symmetric' },
      { name: 'sym3', nat: 'symmetric' }, { name: 'sym4', nat: 'symmetric' },
    ],
    ...(opts.wan ? { wan: opts.wan } : {}),
  });
  const network = opts.network ?? (opts.wan ? 'WAN' : 'LAN');
  const agents = new Map<string, TestAgent>();
  const servers: LabProcess[] = [];
  const A = (h: string) => agents.get(h)!;
  try {
    const coturn = await startCoturn(lab, 'turn', { username: 'idloc', password: 'bench-relay', realm: 'idloc.bench' });
    const turnArg = ['--turn', `turn:idloc:bench-relay@${coturn.endpoint.address}:${coturn.endpoint.port}`];
    for (const h of ['boot', 'turn', 'cone1', 'cone2', 'cgn', 'sym1', 'sym2', 'sym3', 'sym4']) agents.set(h, await createAgent(lab, h));
    startOverlayAgent(lab, A('boot'), []);
    await waitOverlayReady(lab, A('boot'));
    startOverlayAgent(lab, A('turn'), [A('boot')]);
    await waitOverlayReady(lab, A('turn'));
    const start = (h: string) => startOverlayAgent(lab, A(h), [A('boot')], h === 'sym1' || h === 'sym2' ? turnArg : []);
    const natSummary: Record<string, string> = {};
    const note = (h: string, s: Status) => { natSummary[h] = s.nat?.summary ?? '-'; };

    // 1. First packet to a never-seen peer behind NAT.
    const firstPacket: NatFirstPacket[] = [];
    const pairs = [['cone1', 'cone2', 'cone -> cone'], ['cgn', 'cone2', 'CGNAT -> cone'], ['sym3', 'cone2', 'symmetric (random ports) -> cone']] as const;
    for (const [x, y, nat] of pairs) {
      const fp: NatFirstPacket = { pair: `${x} -> ${y}`, nat, samplesMs: [], noReply: 0, medianMs: NaN, lookupMedianMs: NaN, paths: [] };
      const lookups: number[] = [];
      for (let i = 0; i < samples; i++) {
        process.stderr.write(`bench: NAT (${network}) first packet ${x} -> ${y}, sample ${i + 1}/${samples}...\n`);
        await Promise.all([stopAgent(lab, A(x)), stopAgent(lab, A(y))]);
        start(x);
        start(y);
        const [sx, sy] = await Promise.all([ready(lab, A(x)), ready(lab, A(y))]);
        note(x, sx);
        note(y, sy);
        const r = await lab.exec(x, ['ping', '-c', '1', '-W', '5', sy.identity.ipv4], { allowFail: true });
        const rtt = Number(/time=([\d.]+) ms/.exec(r.stdout)?.[1]);
        // At 1% loss per crossing a single ping (several crossings each way) is lost now and then: counted,
        // not fatal, unless every sample was.
        if (!Number.isFinite(rtt)) {
          fp.noReply++;
          process.stderr.write(`bench: NAT (${network}) first ping ${x} -> ${y} got no reply within 5 s\n`);
          if (fp.noReply === samples) throw new Error(`first ping ${x} -> ${y} (${sy.identity.ipv4}) never got a reply: ${r.stdout}${r.stderr}`);
        } else fp.samplesMs.push(rtt);
        const st = await agentStatus(lab, A(x));
        const p = st.peers.find((q) => q.publicKey === A(y).id.publicKey);
        fp.paths.push(`${p?.path}: ${p?.pathReason}`);
        const p50 = (st.overlay as { discovery?: { p50LatencyMs?: number } } | undefined)?.discovery?.p50LatencyMs;
        if (typeof p50 === 'number') lookups.push(p50);
      }
      fp.medianMs = median(fp.samplesMs);
      fp.lookupMedianMs = median(lookups);
      firstPacket.push(fp);
    }

    // 2. Plain, direct and relayed paths. iperf3 servers on all addresses of the receiving hosts.
    for (const h of ['pub', 'cone2', 'sym2', 'sym4']) servers.push(lab.spawn(h, ['iperf3', '-s']));
    await Promise.all(['pub', 'cone2', 'sym2', 'sym4'].map((h) => lab.waitForPort(h, 5201)));
    // Is there a plain path between the two NATed hosts? Try TCP to cone2's public and private address.
    const tries: string[] = [];
    let plainTo: string | undefined;
    for (const to of [lab.publicAddress('cone2'), lab.address('cone2')]) {
      const r = await lab.exec('cone1', ['iperf3', '-c', to, '-t', '1', '--connect-timeout', '2000'], { allowFail: true, timeoutMs: 15_000 });
      tries.push(`cone1 -> cone2 at ${to}: ${r.code === 0 ? 'connected' : (r.stderr || r.stdout).trim().split('\n').pop()}`);
      if (r.code === 0) { plainTo = to; break; }
    }
    const plainBetweenNated = { reachable: plainTo !== undefined, tried: tries.join('; ') };
    process.stderr.write(`bench: NAT (${network}) plain path...\n`);
    const plain: NatPath = plainTo
      ? { from: 'cone1', to: `cone2 (${plainTo})`, path: 'plain', ...(await measure(lab, 'cone1', plainTo, opts.seconds, runs)) }
      : { from: 'cone1 (cone NAT)', to: 'pub (public)', path: 'plain', ...(await measure(lab, 'cone1', lab.address('pub'), opts.seconds, runs)) };

    const tunnel = async (x: string, y: string, want: 'direct' | 'relayed', via?: 'turn' | 'peer-relay', settle?: () => Promise<unknown>): Promise<NatPath> => {
      process.stderr.write(`bench: NAT (${network}) ${want} tunnel ${x} -> ${y}${via ? ` (${via})` : ''}...\n`);
      // Fresh agents: one whose peer restarted under it keeps a stale tunnel for a while (seen here).
      await Promise.all([stopAgent(lab, A(x)), stopAgent(lab, A(y))]);
      start(x);
      start(y);
      const [sx, sy] = await Promise.all([ready(lab, A(x), via === 'turn'), ready(lab, A(y), via === 'turn')]);
      note(x, sx);
      note(y, sy);
      const to = sy.identity.ipv4;
      await lab.exec(x, ['ping', '-c', '3', '-i', '0.2', '-W', '5', to], { timeoutMs: 20_000 });
      await lab.exec(y, ['ping', '-c', '3', '-i', '0.2', '-W', '5', sx.identity.ipv4], { timeoutMs: 20_000 });
      const p = await until(async () => { const q = await peerOf(lab, A(x), A(y)); return q?.path === want && (!via || q.via === via) && q; }, 10_000, `${x} -> ${y} path ${want}${via ? ` via ${via}` : ''}`)
        .catch(async (e: Error) => { throw new Error(`${e.message}: ${JSON.stringify(await peerOf(lab, A(x), A(y)))}`); });
      const q = await peerOf(lab, A(y), A(x));
      if (q?.path !== want) throw new Error(`${y} -> ${x} path is not ${want}: ${JSON.stringify(q)}`);
      await settle?.();
      return {
        from: x, to: y, path: p.path, pathReason: String(p.pathReason), endpoint: p.endpoint, reversePath: q.path, reversePathReason: String(q.pathReason),
        ...(await measure(lab, x, to, opts.seconds, runs)),
      };
    };
    const direct = await tunnel('cone1', 'cone2', 'direct');
    await Promise.all(['cone1', 'cone2', 'cgn'].map((h) => stopAgent(lab, A(h)))); // idle CPU for the relay run
    const relayed = await tunnel('sym1', 'sym2', 'relayed', 'turn');
    await Promise.all(['sym1', 'sym2'].map((h) => stopAgent(lab, A(h))));
    const peerRelayed = await tunnel('sym3', 'sym4', 'relayed', 'peer-relay');
    await stopAgent(lab, A('sym4'));
    // Measured once the probe socket in use was reopened as the native one (within ~1 s of the hit).
    const reopened = () => until(async () => ((await agentStatus(lab, A('sym3'))).counters.probeSockets?.reopened ?? 0) > 0, 20_000, 'sym3 reopened its probe socket');
    const birthday = await tunnel('sym3', 'cone2', 'direct', undefined, reopened);
    return { network, wan: opts.wan ?? null, firstPacket, plainBetweenNated, plain, direct, relayed, peerRelayed, birthday, natSummary, config: { samples, seconds: opts.seconds, runs }, durationS: (Date.now() - started) / 1000 };
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${logTails([...agents.values()].filter((a) => a.proc), 15)}`);
  } finally {
    await Promise.all([...agents.values()].map((a) => stopAgent(lab, a)));
    for (const s of servers) await lab.stopProcess(s);
    await lab.destroy(); // also stops coturn
  }
}

const f = (n: number | undefined, d = 2) => (n === undefined || Number.isNaN(n) ? '-' : n.toFixed(d));

export function natTable(r: NatBenchResult): string {
  const out = [`[${r.network}] agents behind NAT (--bootstrap only), first packet to a never-seen peer, ${r.config.samples} samples, both agents restarted before each:`];
  for (const fp of r.firstPacket) {
    const lost = fp.noReply ? `   (${fp.noReply} without a reply)` : '';
    out.push(`  ${`${fp.nat} (${fp.pair}), lookup + Attach + ICE + handshake + echo ms`.padEnd(100)}${fp.samplesMs.map((x) => f(x)).join(', ')}   median ${f(fp.medianMs)}   (lookup p50 ${f(fp.lookupMedianMs, 1)})${lost}`);
  }
  const rows: string[][] = [['', `plain ${r.plain.from} -> ${r.plain.to}`, 'direct cone1 -> cone2', 'relayed sym1 -> sym2 (coturn)', 'sym3 -> sym4 (peer relay)', 'sym3 -> cone2 (birthday)']];
  const tcp = (k: 'forward' | 'reverse') => (p: NatPath) => `${p.tcpMbit[k].map((x) => f(x, 0)).join(', ')}${p === r.plain ? '' : ` (${f(mean(p.tcpMbit[k]) / mean(r.plain.tcpMbit[k]), 3)}x)`}`;
  const add = (name: string, cell: (p: NatPath) => string) => rows.push([name, cell(r.plain), cell(r.direct), cell(r.relayed), cell(r.peerRelayed), cell(r.birthday)]);
  add('TCP sender -> receiver Mbit/s', tcp('forward'));
  add('TCP receiver -> sender Mbit/s', tcp('reverse'));
  add('ping avg / median / max ms', (p) => `${f(p.ping.avgMs, 3)} / ${f(p.ping.medianMs, 3)} / ${f(p.ping.maxMs, 3)}`);
  add('ping replies', (p) => `${p.ping.received}/${p.ping.sent}`);
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((x) => x[i]!.length)));
  out.push('', ...rows.map((x) => x.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('   ')));
  if (!r.plainBetweenNated.reachable) out.push(`  plain: no plain path between two NATed hosts (${r.plainBetweenNated.tried}); plain is one NATed host to a public one`);
  out.push(`  direct: ${r.direct.path} via ${r.direct.endpoint}: ${r.direct.pathReason} | back: ${r.direct.reversePath}: ${r.direct.reversePathReason}`);
  out.push(`  relayed: ${r.relayed.path} via ${r.relayed.endpoint}: ${r.relayed.pathReason} | back: ${r.relayed.reversePath}: ${r.relayed.reversePathReason}`);
  out.push(`  birthday: ${r.birthday.path} via ${r.birthday.endpoint}: ${r.birthday.pathReason} | back: ${r.birthday.reversePath}: ${r.birthday.reversePathReason}`);
  out.push(`  peer relay: ${r.peerRelayed.path} via ${r.peerRelayed.endpoint}: ${r.peerRelayed.pathReason} | back: ${r.peerRelayed.reversePath}: ${r.peerRelayed.reversePathReason}`);
  return out.join('\n');
}

/** The LAN and WAN runs next to each other: first-packet medians, then per path the ping median and the
 *  mean TCP rate each way. */
export function natSideBySide(lan: NatBenchResult, wan: NatBenchResult): string {
  const rows: string[][] = [['', lan.network, wan.network]];
  for (const [i, fp] of lan.firstPacket.entries()) {
    const cell = (x: NatFirstPacket | undefined) => (x ? `${f(x.medianMs)}${x.noReply ? ` (${x.noReply} lost)` : ''}` : '-');
    rows.push([`first packet ${fp.nat} median ms`, cell(fp), cell(wan.firstPacket[i])]);
  }
  const paths = [['plain', 'plain'], ['direct', 'direct cone1 -> cone2'], ['relayed', 'relayed (coturn)'], ['peerRelayed', 'peer relay'], ['birthday', 'birthday sym3 -> cone2']] as const;
  for (const [k, name] of paths) {
    const ping = (r: NatBenchResult) => `${f(r[k].ping.medianMs, 3)} (${r[k].ping.received}/${r[k].ping.sent})`;
    const tcp = (r: NatBenchResult) => `${f(mean(r[k].tcpMbit.forward), 0)} / ${f(mean(r[k].tcpMbit.reverse), 0)}`;
    rows.push([`${name}: ping median ms (replies)`, ping(lan), ping(wan)]);
    rows.push([`${name}: TCP Mbit/s fwd / rev`, tcp(lan), tcp(wan)]);
  }
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((x) => x[i]!.length)));
  return ['NAT part, LAN and WAN side by side:', ...rows.map((x) => '  ' + x.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('   '))].join('\n');
}
