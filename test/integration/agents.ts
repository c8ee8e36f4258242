// Running real idloc agents (dist/agent/cli.js) inside lab hosts: state dirs, identities, `up` with a
// full-mesh --peer list or through the overlay (--bootstrap), readiness, status, overlay CLI commands
// (register, resolve) and stopping. Shared by the integration tests and the bench.
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ed25519 } from '@noble/curves/ed25519.js';
import { ipv4FromNodeId, nodeIdFromPublicKey } from '../../agent/idloc/addresses.js';
import { waitFor, type ExecOptions, type ExecResult, type ExitInfo, type Lab, type LabProcess } from './lab.js';
import type { OverlayStatus as AgentOverlayStatus } from '../../agent/agent-overlay.js';
import type { AgentStatus as RealAgentStatus } from '../../agent/status.js';

type AgentCounters = RealAgentStatus['counters'];

/** The built CLI, next to this file's compiled copy: dist/test/integration -> dist/agent/cli.js. */
export const CLI = fileURLToPath(new URL('../../agent/cli.js', import.meta.url));
export const AGENT_PORT = 4500;
export const TAP_NAME = 'idloc0';

export interface AgentIdentity { nodeId: string; publicKey: string; ipv4: string; ipv6: string }

/** A peer as `status --json` reports it: the agent's own type, so tests read what the agent really sends. */
export type PeerStatus = RealAgentStatus['peers'][number];

/** The agent's own overlay status shape: the tests read what the agent really sends. */
export type OverlayStatus = AgentOverlayStatus & { [more: string]: unknown };

export interface AgentStatus {
  /** With the overlay, identity.ipv4 is the claimed address (it differs from `id`'s after a collision). */
  identity: AgentIdentity;
  tap: { name: string; mtu: number };
  listen: string;
  peers: PeerStatus[];
  /** Grouped by layer (tap, inside, outside, tunnels, demux, ...), as the agent sends them. */
  counters: AgentCounters;
  /** Present once the agent runs the overlay. */
  overlay?: OverlayStatus;
  /** The TURN relay (--turn / --turn-secret), if any. */
  relay?: RealAgentStatus['relay'];
}

export interface TestAgent {
  host: string;
  stateDir: string;
  id: AgentIdentity;
  port: number;
  logFile: string;
  proc?: LabProcess;
}

export function cliBuilt(): boolean {
  return existsSync(CLI);
}

/** For prerequisites(): the suite runs real agents. */
export function cliMissing(): string | false {
  return !cliBuilt() && `the agent's CLI ${CLI} is not built (npm run build:ts)`;
}

export { labUnavailable } from './prerequisites.js';

/** Run the CLI to completion inside `host`, as root unless `wrap` (e.g. setpriv ...) changes who runs it. */
export function runCli(lab: Lab, host: string, args: readonly string[], opts: ExecOptions & { wrap?: readonly string[] } = {}): Promise<ExecResult> {
  return lab.exec(host, [...(opts.wrap ?? []), process.execPath, CLI, ...args], { timeoutMs: 15_000, ...opts });
}

/** A fresh state dir (inside the lab's scratch dir, so destroy() removes it) and its identity. */
export async function createAgent(lab: Lab, host: string, port = AGENT_PORT): Promise<TestAgent> {
  const stateDir = mkdtempSync(join(lab.dir, `state-${host}-`));
  const r = await runCli(lab, host, ['id', '--state-dir', stateDir, '--json']);
  return { host, stateDir, id: JSON.parse(r.stdout) as AgentIdentity, port, logFile: join(lab.dir, `agent-${host}.log`) };
}

/** "<pubkey>@<underlay address>:<port>", as `up --peer` takes it. */
export function peerArg(lab: Lab, a: TestAgent): string {
  return `${a.id.publicKey}@${hostPort(lab.address(a.host), a.port)}`;
}

/** `up` in the agent's host, knowing `peers`. Does not wait: see waitReady. */
export function startAgent(lab: Lab, agent: TestAgent, peers: readonly TestAgent[], extraArgs: readonly string[] = []): LabProcess {
  const argv = [
    process.execPath, CLI, 'up', '--state-dir', agent.stateDir, '--tap', TAP_NAME, '--listen', String(agent.port),
    ...peers.flatMap((p) => ['--peer', peerArg(lab, p)]), '--log-level', 'info', ...extraArgs,
  ];
  agent.proc = lab.spawn(agent.host, argv, { logFile: agent.logFile });
  return agent.proc;
}

export async function agentStatus(lab: Lab, agent: TestAgent): Promise<AgentStatus> {
  const r = await runCli(lab, agent.host, ['status', '--state-dir', agent.stateDir, '--json']);
  return JSON.parse(r.stdout) as AgentStatus;
}

/** Ready = status answers with our identity and the TAP carries both overlay addresses, usable now
 *  (not tentative: a tentative IPv6 address cannot be a packet source, so ping -6 would fail). */
export async function waitReady(lab: Lab, agent: TestAgent, timeoutMs = 15_000): Promise<AgentStatus> {
  let dead: string | undefined;
  const st = await waitFor(async () => {
    if (agent.proc && !agent.proc.running) {
      dead = `agent in ${agent.host} exited ${JSON.stringify(agent.proc.exitInfo)} before it was ready:\n${logTail(agent)}`;
      return 'dead' as const;
    }
    const s = await agentStatus(lab, agent);
    if (s.identity.publicKey !== agent.id.publicKey) throw new Error(`status answered with another identity ${s.identity.publicKey}`);
    const addr = await lab.exec(agent.host, ['ip', '-j', 'addr', 'show', 'dev', TAP_NAME]);
    const infos = (JSON.parse(addr.stdout) as { addr_info: { local: string; tentative?: boolean; dadfailed?: boolean }[] }[])[0]?.addr_info ?? [];
    const has = (a: string, canonical: (x: string) => string) =>
      infos.find((i) => canonical(i.local) === canonical(a));
    const v4 = has(agent.id.ipv4, (x) => x);
    const v6 = has(agent.id.ipv6, canonicalIpv6);
    if (!v4 || !v6) throw new Error(`${TAP_NAME} in ${agent.host} lacks overlay addresses: ${JSON.stringify(infos)}`);
    if (v6.dadfailed) throw new Error(`${agent.id.ipv6} on ${TAP_NAME} failed duplicate address detection`);
    if (v6.tentative) throw new Error(`${agent.id.ipv6} on ${TAP_NAME} is still tentative (DAD)`);
    return s;
  }, timeoutMs, { what: `agent in ${agent.host} to be ready`, intervalMs: 100 });
  if (st === 'dead') throw new Error(dead);
  return st;
}

/** Identities for every host, then one agent per host peered with all the others, all ready. */
export async function startMesh(lab: Lab, hosts: readonly string[]): Promise<TestAgent[]> {
  const agents = await Promise.all(hosts.map((h) => createAgent(lab, h)));
  for (const a of agents) startAgent(lab, a, agents.filter((p) => p !== a));
  await Promise.all(agents.map((a) => waitReady(lab, a)));
  return agents;
}

/** SIGTERM the agent and wait for it (SIGKILL after timeoutMs): how it exited tells whether it cleaned up. */
export async function stopAgent(lab: Lab, agent: TestAgent, timeoutMs = 5_000): Promise<ExitInfo | undefined> {
  if (!agent.proc) return undefined;
  return lab.stopProcess(agent.proc, { signal: 'SIGTERM', timeoutMs });
}

export function pidAlive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

/** The last lines of an agent's log, for assertion messages: a failure should carry its own evidence. */
export function logTail(agent: TestAgent, lines = 40): string {
  let text = '';
  try { text = readFileSync(agent.logFile, 'utf8'); } catch { text = agent.proc ? agent.proc.stderr : ''; }
  return `--- ${agent.host} agent log (last ${lines} lines) ---\n` + text.trimEnd().split('\n').slice(-lines).join('\n');
}

export function logTails(agents: readonly TestAgent[], lines = 25): string {
  return agents.map((a) => logTail(a, lines)).join('\n');
}

/** Canonical text of an IPv6 address (WHATWG URL compresses it the standard way), for comparisons. */
export function canonicalIpv6(a: string): string {
  if (!a.includes(':')) return a;
  return new URL(`http://[${a}]/`).hostname.replace(/^\[|\]$/g, '');
}

/** Sum a counter over the layers, e.g. counter(s, 'tunnels', 'rxBadMac'). Missing counters read 0. */
/** Poll `cond` every 250 ms until it is truthy; after `ms`, fail naming `what` (and the last error). */
export async function waitUntil(cond: () => Promise<unknown>, ms: number, what: string): Promise<void> {
  await waitFor(cond, ms, { what, intervalMs: 250 });
}

export function counter(s: AgentStatus, layer: string, name: string): number {
  const v = (s.counters as unknown as Record<string, Record<string, unknown> | undefined>)[layer]?.[name];
  return typeof v === 'number' ? v : 0;
}

// ---- the overlay: agents found by identifier alone ------------------------------------------------------

/** Write identity.json ({"version":1,"privateKey","publicKey"}, mode 0600) into a fresh state dir for this
 *  key, then read it back with `id --json` so the agent itself vouches for the derived identity. */
export async function createAgentWithKey(lab: Lab, host: string, privateKeyHex: string, publicKeyHex: string, port = AGENT_PORT): Promise<TestAgent> {
  const stateDir = mkdtempSync(join(lab.dir, `state-${host}-`));
  chmodSync(stateDir, 0o700);
  const file = join(stateDir, 'identity.json');
  writeFileSync(file, JSON.stringify({ version: 1, privateKey: privateKeyHex, publicKey: publicKeyHex }) + '\n', { mode: 0o600 });
  chmodSync(file, 0o600);
  const r = await runCli(lab, host, ['id', '--state-dir', stateDir, '--json']);
  const id = JSON.parse(r.stdout) as AgentIdentity;
  if (id.publicKey !== publicKeyHex) throw new Error(`id --json in ${host} answered with key ${id.publicKey}, not the one written`);
  return { host, stateDir, id, port, logFile: join(lab.dir, `agent-${host}.log`) };
}

/** `up` with the overlay only: --bootstrap for each endpoint (none: this agent starts a new overlay), no --peer. */
export function startOverlayAgent(lab: Lab, agent: TestAgent, bootstraps: readonly TestAgent[], extraArgs: readonly string[] = []): LabProcess {
  return startAgent(lab, agent, [], [...bootstraps.flatMap((b) => ['--bootstrap', hostPort(lab.address(b.host), b.port)]), ...extraArgs]);
}

/** Ready on the overlay: status says joined and the IPv4 address claimed, and the TAP carries the claimed
 *  IPv4 (status identity.ipv4, not `id`'s attempt-0 address) and a usable (non-tentative) IPv6. */
export async function waitOverlayReady(lab: Lab, agent: TestAgent, timeoutMs = 20_000): Promise<AgentStatus> {
  let dead: string | undefined;
  const st = await waitFor(async () => {
    if (agent.proc && !agent.proc.running) {
      dead = `agent in ${agent.host} exited ${JSON.stringify(agent.proc.exitInfo)} before it joined:\n${logTail(agent)}`;
      return 'dead' as const;
    }
    const s = await agentStatus(lab, agent);
    if (s.identity.publicKey !== agent.id.publicKey) throw new Error(`status answered with another identity ${s.identity.publicKey}`);
    if (!s.overlay) throw new Error(`status of ${agent.host} has no "overlay" section`);
    if (!s.overlay.joined || !s.overlay.ipv4Claimed) throw new Error(`${agent.host} overlay: ${JSON.stringify(s.overlay)}`);
    const addr = await lab.exec(agent.host, ['ip', '-j', 'addr', 'show', 'dev', TAP_NAME]);
    const infos = (JSON.parse(addr.stdout) as { addr_info: { local: string; tentative?: boolean; dadfailed?: boolean }[] }[])[0]?.addr_info ?? [];
    const v4 = infos.find((i) => i.local === s.identity.ipv4);
    const v6 = infos.find((i) => canonicalIpv6(i.local) === canonicalIpv6(s.identity.ipv6));
    if (!v4 || !v6) throw new Error(`${TAP_NAME} in ${agent.host} lacks the claimed addresses ${s.identity.ipv4}, ${s.identity.ipv6}: ${JSON.stringify(infos)}`);
    if (v6.dadfailed) throw new Error(`${s.identity.ipv6} on ${TAP_NAME} failed duplicate address detection`);
    if (v6.tentative) throw new Error(`${s.identity.ipv6} on ${TAP_NAME} is still tentative (DAD)`);
    return s;
  }, timeoutMs, { what: `agent in ${agent.host} to join the overlay and claim its IPv4`, intervalMs: 300 });
  if (st === 'dead') throw new Error(dead);
  return st;
}

export interface ResolveAnswer {
  query: string;
  nodeId: string;
  publicKey: string;
  ipv4: string;
  ipv6: string;
  candidates: { address: string; port: number; type: string | number }[];
}

/** `resolve QUERY --json` in the agent's host: the answer, or the failed result (exit code, stderr). */
export async function resolveIn(lab: Lab, agent: TestAgent, query: string): Promise<{ r: ExecResult; answer?: ResolveAnswer }> {
  const r = await runCli(lab, agent.host, ['resolve', query, '--state-dir', agent.stateDir, '--json'], { allowFail: true });
  if (r.code !== 0) return { r };
  return { r, answer: JSON.parse(r.stdout) as ResolveAnswer };
}

/** `register NAME` in the agent's host (exit code and output returned, never thrown). */
export function registerIn(lab: Lab, agent: TestAgent, name: string, json = false): Promise<ExecResult> {
  return runCli(lab, agent.host, ['register', name, '--state-dir', agent.stateDir, ...(json ? ['--json'] : [])], { allowFail: true });
}

export interface KeyPairHex { privateKey: string; publicKey: string; nodeId: string; ipv4: number }

/** `count` pairs of fresh Ed25519 keys whose attempt-0 IPv4 overlay addresses collide (22 bits of hash:
 *  a birthday search, ~2^11-2^12 keys for the first pairs; @noble makes a key in ~0.5 ms, so about a
 *  second per pair. Not node:crypto's generateKeyPairSync + JWK export: on Node 20 it can deadlock in a
 *  GC that runs during the export (main thread stuck in ~KeyGenJob's mutex). Searching for a key that
 *  collides with one given address instead would take ~2^22 keys (~30 min per address). Every pair has its own address. */
export function findIpv4Collisions(count: number, maxKeys = 1 << 17): [KeyPairHex, KeyPairHex][] {
  const seen = new Map<number, KeyPairHex>();
  const used = new Set<number>();
  const pairs: [KeyPairHex, KeyPairHex][] = [];
  for (let n = 0; n < maxKeys && pairs.length < count; n++) {
    const seed = randomBytes(32);
    const pub = ed25519.getPublicKey(seed);
    const nodeId = nodeIdFromPublicKey(pub);
    const key: KeyPairHex = {
      privateKey: seed.toString('hex'), publicKey: Buffer.from(pub).toString('hex'),
      nodeId: Buffer.from(nodeId).toString('hex'), ipv4: ipv4FromNodeId(nodeId),
    };
    const other = seen.get(key.ipv4);
    if (other && !used.has(key.ipv4)) {
      used.add(key.ipv4);
      pairs.push([other, key]);
    } else if (!other) {
      seen.set(key.ipv4, key);
    }
  }
  if (pairs.length < count) throw new Error(`found only ${pairs.length} IPv4 collisions in ${maxKeys} keys`);
  return pairs;
}

/** "address:port", with the IPv6 address in brackets ("[2001:db8::10]:4500"), as the CLI takes it. */
export function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}
