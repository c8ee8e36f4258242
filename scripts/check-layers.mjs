#!/usr/bin/env node
// The house rules for agent/, checked on every `npm run lint` and `npm test`:
//   1. a folder imports only from itself and from folders on a lower floor (siblings on one floor are
//      independent edges), the files at the top of agent/ may import anything;
//   2. no import cycle between files;
//   3. no source file over MAX_LINES lines.
// Floors, lowest first (docs/architecture.md draws them):
//   0 base      clock, constants, bytes: imports nothing of ours
//   1 conn tap  the edges: datagram sockets, the TAP device
//     cert      certificates for private overlays, the CA, revocation lists (imports only base/)
//   2 tunnel    Noise, sessions, tunnels: datagrams in, packets out
//   2.5 firewall inbound rules by identity and flow tracking, on whole IP packets (base only)
//   3 idloc     identity, addresses, inside/outside (TAP <-> tunnel), ARP/ND
//   4 overlay   RELOAD-style messages on Kademlia, signed records
//   5 nat dns   STUN, ICE, Attach, TURN, peer relay, the underlay routing | the DNS responder for .idloc
//   6 agent/*   the daemon that builds and connects, peers, status, CLI
// Plain JavaScript so it runs before (and without) the TypeScript build.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';

const MAX_LINES = 420;
// Every timer and limit lives in one file on purpose (one place to read them, grouped by floor).
const LONG_BY_DESIGN = new Set(['base/constants.ts']);
const FLOOR = { base: 0, conn: 1, tap: 1, cert: 1, tunnel: 2, firewall: 2.5, idloc: 3, overlay: 4, nat: 5, dns: 5, '.': 6 };
const root = join(dirname(new URL(import.meta.url).pathname), '..', 'agent');

const walk = (d, out = []) => {
  for (const f of readdirSync(d)) {
    const p = join(d, f);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (p.endsWith('.ts')) out.push(p);
  }
  return out;
};
const folderOf = (file) => relative(root, dirname(file)).split('/')[0] || '.';

const problems = [];
const graph = new Map();
const importRe = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s*'(\.{1,2}\/[^']+)'|import\(\s*'(\.{1,2}\/[^']+)'\s*\)/g;
for (const file of walk(root)) {
  const src = readFileSync(file, 'utf8');
  const rel = relative(root, file);
  const lines = src.split('\n').length;
  if (lines > MAX_LINES && !LONG_BY_DESIGN.has(rel)) problems.push(`${rel}: ${lines} lines (at most ${MAX_LINES}: split it by what it does)`);
  const folder = folderOf(file);
  if (!(folder in FLOOR)) problems.push(`${rel}: folder ${folder} has no floor in scripts/check-layers.mjs`);
  const deps = new Set();
  for (const m of src.matchAll(importRe)) {
    const spec = m[1] ?? m[2];
    const target = normalize(join(dirname(file), spec.replace(/\.js$/, '.ts')));
    if (!target.startsWith(root)) continue;
    deps.add(target);
    const to = folderOf(target);
    if (to === folder) continue;
    if (folder !== '.' && !(FLOOR[to] < FLOOR[folder])) {
      problems.push(`${rel}: imports ${relative(root, target)} (${to}/ is not below ${folder}/)`);
    }
  }
  graph.set(file, deps);
}

// Cycles: depth-first search, reporting each back edge's loop once.
const state = new Map();
const stack = [];
const visit = (f) => {
  state.set(f, 1);
  stack.push(f);
  for (const d of graph.get(f) ?? []) {
    if (state.get(d) === 1) {
      const loop = stack.slice(stack.indexOf(d)).concat(d).map((x) => relative(root, x));
      problems.push(`import cycle: ${loop.join(' -> ')}`);
    } else if (!state.has(d)) visit(d);
  }
  stack.pop();
  state.set(f, 2);
};
for (const f of graph.keys()) if (!state.has(f)) visit(f);

if (problems.length) {
  for (const p of problems) console.error(`check-layers: ${p}`);
  process.exit(1);
}
console.log(`check-layers: ${graph.size} files, floors and cycles clean`);
