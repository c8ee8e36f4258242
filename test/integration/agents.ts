// Running real idloc agents (dist/agent/cli.js) inside lab hosts: state dirs, identities, `up` with a
// full-mesh --peer list, readiness, status and stopping. Shared by the integration tests and the bench.
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor, type ExecOptions, type ExecResult, type ExitInfo, type Lab, type LabProcess } from './lab.js';

/** The built CLI, next to this file's compiled copy: dist/test/integration -> dist/agent/cli.js. */
export const CLI = fileURLToPath(new URL('../../agent/cli.js', import.meta.url));
export const AGENT_PORT = 4500;
export const TAP_NAME = 'idloc0';

export interface AgentIdentity { nodeId: string; publicKey: string; ipv4: string; ipv6: string }

export interface PeerStatus extends AgentIdentity {
  endpoint: string | null;
  path: string;
  lastHandshake: string | number | null;
  rxBytes: number;
  txBytes: number;
  [more: string]: unknown;
}

export interface AgentStatus {
  identity: AgentIdentity;
  tap: { name: string; mtu: number };
  listen: string;
  peers: PeerStatus[];
  /** Grouped by layer (tap, inside, outside, tunnels, demux), each a flat record of numbers. */
  counters: Record<string, Record<string, number>>;
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
  return `${a.id.publicKey}@${lab.address(a.host)}:${a.port}`;
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
export function counter(s: AgentStatus, layer: string, name: string): number {
  const v = s.counters[layer]?.[name];
  return typeof v === 'number' ? v : 0;
}
