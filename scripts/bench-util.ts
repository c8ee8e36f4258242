// Measuring helpers shared by the bench scripts: ping and iperf3 inside lab hosts, small statistics and
// the text tables they print.
import type { Lab } from '../test/integration/lab.js';

export interface PingStats { sent: number; received: number; minMs: number; avgMs: number; medianMs: number; maxMs: number }

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

export const mean = (xs: number[]) => xs.reduce((x, y) => x + y, 0) / xs.length;

/** `count` pings 10 ms apart from `from` to `to` (IPv6 if it has a colon); throws if none is answered. */
export async function ping(lab: Lab, from: string, to: string, count = 50): Promise<PingStats> {
  const args = ['ping', ...(to.includes(':') ? ['-6'] : []), '-c', String(count), '-i', '0.01', '-W', '1', to];
  const r = await lab.exec(from, args, { allowFail: true, timeoutMs: 30_000 });
  const times = [...r.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
  if (times.length === 0) throw new Error(`no ping replies ${from} -> ${to}: ${r.stdout}${r.stderr}`);
  return { sent: count, received: times.length, minMs: Math.min(...times), avgMs: mean(times), medianMs: median(times), maxMs: Math.max(...times) };
}

/** iperf3 TCP from `from` to the server at `to` (already listening) for `seconds`; Mbit/s received. */
export async function iperf(lab: Lab, from: string, to: string, seconds: number, reverse: boolean): Promise<number> {
  const args = ['iperf3', '-c', to, '-t', String(seconds), '-J', '--connect-timeout', '3000', ...(reverse ? ['-R'] : [])];
  const r = await lab.exec(from, args, { allowFail: true, timeoutMs: (seconds + 20) * 1000 });
  let j: { end?: { sum_received?: { bits_per_second: number } }; error?: string };
  try { j = JSON.parse(r.stdout); } catch { throw new Error(`iperf3 ${from} -> ${to}: ${r.stderr || r.stdout}`); }
  if (j.error || !j.end?.sum_received) throw new Error(`iperf3 ${from} -> ${to}: ${j.error ?? 'no result'}`);
  return j.end.sum_received.bits_per_second / 1e6;
}

/** What a path gives: iperf3 TCP Mbit/s each way (reverse = the server sends) and ping RTT. */
export interface PathResult { tcpMbit: { forward: number[]; reverse: number[] }; ping: PingStats }

/** `runs` iperf3 TCP runs of `seconds` from `from` to the server at `to`, then as many with the server sending. */
export async function tcpBothWays(lab: Lab, from: string, to: string, o: { seconds: number; runs: number }): Promise<PathResult['tcpMbit']> {
  const res = { forward: [] as number[], reverse: [] as number[] };
  for (const reverse of [false, true]) {
    for (let i = 0; i < o.runs; i++) (reverse ? res.reverse : res.forward).push(await iperf(lab, from, to, o.seconds, reverse));
  }
  return res;
}

/** ping, then iperf3 both ways, from `from` to `to`. */
export async function measurePath(lab: Lab, from: string, to: string, o: { seconds: number; runs: number }): Promise<PathResult> {
  return { ping: await ping(lab, from, to), tcpMbit: await tcpBothWays(lab, from, to, o) };
}

export function fmt(n: number | undefined, digits = 2): string {
  return n === undefined || Number.isNaN(n) ? '-' : n.toFixed(digits);
}

/** Rows as aligned text columns: the first left-aligned (the row names), the others right-aligned. */
export function alignRows(rows: string[][], indent = ''): string {
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => indent + r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('   ')).join('\n');
}
