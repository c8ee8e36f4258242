// This host's uplinks: the interfaces with an IPv4 default route, best first (the lowest metric is the one
// the kernel sends by), each with the index an Endpoint's `via` names and its IPv4 address. A laptop with
// Wi-Fi and LTE, or a server with two providers, has two: the first carries the traffic, the others can
// keep standby paths (nat/standby.ts) through the same socket.
//
// Read from /proc/net/route (this network namespace's IPv4 routing table), /sys/class/net/NAME/{ifindex,
// operstate} and the interface addresses; nothing is spawned, so it can run on every address change.
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';

export interface Uplink {
  /** Interface name (eth0, wlan0). */
  name: string;
  /** Interface index: Endpoint.via. */
  index: number;
  /** Its IPv4 address: our source on it. */
  address: string;
  /** The default route's metric (lower is preferred). */
  metric: number;
}

/** RTF_UP: the route is usable. */
const RTF_UP = 0x1;

/** Default routes (destination and mask 0) in /proc/net/route's text: interface and metric, each
 *  interface once with its best metric, best first. Malformed lines are skipped. */
export function parseDefaultRoutes(text: string): { name: string; metric: number }[] {
  const best = new Map<string, number>();
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    const [name, dest, , flags, , , metric, mask] = f as [string, string, string, string, string, string, string, string];
    const m = Number(metric);
    if (dest !== '00000000' || mask !== '00000000' || !Number.isInteger(m) || m < 0) continue;
    if ((Number.parseInt(flags, 16) & RTF_UP) === 0) continue;
    const had = best.get(name);
    if (had === undefined || m < had) best.set(name, m);
  }
  return [...best].map(([name, metric]) => ({ name, metric })).sort((a, b) => a.metric - b.metric || (a.name < b.name ? -1 : 1));
}

/** The uplinks as they are now; [] where the files are not there (not Linux, no /sys in this namespace). */
export function readUplinks(): Uplink[] {
  let routes: { name: string; metric: number }[];
  try { routes = parseDefaultRoutes(readFileSync('/proc/net/route', 'utf8')); } catch { return []; }
  const addrs = networkInterfaces();
  const out: Uplink[] = [];
  for (const r of routes) {
    const address = addrs[r.name]?.find((a) => a.family === 'IPv4' && !a.internal)?.address;
    if (!address || !/^[\w.-]+$/.test(r.name)) continue;
    try {
      // A route through a link without carrier stays in the table; nothing gets through it.
      if (readFileSync(`/sys/class/net/${r.name}/operstate`, 'utf8').trim() === 'down') continue;
      const index = Number(readFileSync(`/sys/class/net/${r.name}/ifindex`, 'utf8').trim());
      if (Number.isInteger(index) && index > 0) out.push({ name: r.name, index, address, metric: r.metric });
    } catch { /* gone while we looked */ }
  }
  return out;
}
