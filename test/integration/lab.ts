// A network-namespace lab: hosts on a simulated internet (198.51.100.0/24), used by the integration
// tests and by scripts/bench.ts. Everything it creates carries a per-run prefix (idl<pid>x<n>) so
// parallel or crashed runs never collide, and everything is torn down by pid / by name, also when a
// test fails or the process is interrupted (exit/SIGINT/SIGTERM handlers below).
//
// Shape: one "switch" namespace holds a Linux bridge per segment; every other node (host, and later
// NAT router) is a namespace with a veth into a segment's bridge. Today there is one segment,
// "internet". Adding NAT routers means: a router node attached to "internet" (WAN) and to a new
// private segment (LAN, 10.x), MASQUERADE on its WAN, and hosts attached to the LAN with the router
// as default gateway; `addNode`/`addSegment`/`attach` are the pieces that will need.

import { spawn as spawnChild, execFileSync } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync, chmodSync, readFileSync, type WriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface ExecOptions {
  /** Resolve with the result instead of throwing when the command exits non-zero. */
  allowFail?: boolean;
  /** Kill the command's process group after this long (default 30 s): a hung ping must not hang CI. */
  timeoutMs?: number;
  input?: string | Buffer;
  env?: NodeJS.ProcessEnv;
}

export interface ExecResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface SpawnOptions {
  /** Also append stdout+stderr to this file (agent logs are kept for post-mortems). */
  logFile?: string;
  env?: NodeJS.ProcessEnv;
  /** Keep at most this many bytes of output in memory; older output is dropped (long-running agents). */
  maxBuffer?: number;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A long-running process inside a lab node; it leads its own process group so it can be killed whole. */
export class LabProcess {
  private out = '';
  private err = '';
  private done: ExitInfo | undefined;
  readonly exited: Promise<ExitInfo>;

  constructor(
    readonly node: string,
    readonly argv: readonly string[],
    readonly pid: number,
    child: import('node:child_process').ChildProcess,
    private readonly maxBuffer: number,
    log: WriteStream | undefined,
  ) {
    const keep = (s: string, add: string) => {
      const t = s + add;
      return t.length > this.maxBuffer ? t.slice(t.length - this.maxBuffer) : t;
    };
    child.stdout?.on('data', (b: Buffer) => { this.out = keep(this.out, b.toString()); log?.write(b); });
    child.stderr?.on('data', (b: Buffer) => { this.err = keep(this.err, b.toString()); log?.write(b); });
    this.exited = new Promise((resolve) => {
      child.on('close', (code, signal) => {
        this.done = { code, signal };
        log?.end();
        resolve(this.done);
      });
    });
  }

  get stdout(): string { return this.out; }
  get stderr(): string { return this.err; }
  get running(): boolean { return this.done === undefined; }
  get exitInfo(): ExitInfo | undefined { return this.done; }

  /** Wait until stdout or stderr matches (e.g. tcpdump's "listening on"); throws with the output so far. */
  async waitForOutput(re: RegExp, timeoutMs = 10_000): Promise<void> {
    await waitFor(() => {
      if (re.test(this.out) || re.test(this.err)) return true;
      if (!this.running) throw new Error(`exited (${JSON.stringify(this.done)}) before printing ${re}: ${this.err.slice(-2000)}`);
      return false;
    }, timeoutMs, { what: `${this.argv[0]} in ${this.node} to print ${re}` });
  }
}

export interface SshServer {
  node: string;
  port: number;
  proc: LabProcess;
  /** Run `command` on the server's node from `from`, connecting to `address` as root with the lab's key. */
  ssh(from: string, address: string, command: string, opts?: ExecOptions): Promise<ExecResult>;
}

/** Poll `fn` until it returns something truthy; thrown errors count as "not yet" and the last one is reported. */
export async function waitFor<T>(
  fn: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  timeoutMs: number,
  opts: { intervalMs?: number; what?: string } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() >= deadline) {
      const why = last instanceof Error ? last.message : last === undefined ? 'condition stayed false' : String(last);
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${opts.what ?? 'condition'}: ${why}`);
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 50));
  }
}

type NodeKind = 'switch' | 'host' | 'router';
interface LabNode { name: string; kind: NodeKind; ns: string }
interface Segment { name: string; bridge: string; prefixLen: number }

export const INTERNET_PREFIX = '198.51.100.';
const NAME_RE = /^[a-z][a-z0-9]{0,7}$/;
const PREFIX_RE = /^idl(\d+)x\d+-/;

let labSeq = 0;
const liveLabs = new Set<Lab>();
let handlersInstalled = false;

/** Last-resort cleanup when the process dies with labs alive (a crashed test, Ctrl-C, the runner's SIGTERM).
 *  Synchronous because 'exit' handlers cannot await. */
function installExitHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', () => { for (const lab of liveLabs) lab.destroySync(); });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      for (const lab of liveLabs) lab.destroySync();
      process.exit(128 + ({ SIGHUP: 1, SIGINT: 2, SIGTERM: 15 } as const)[sig]);
    });
  }
}

function run(argv: string[]): void {
  execFileSync(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
}

function pidAlive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

/** Delete namespaces and scratch dirs left by lab runs whose process is gone (a SIGKILLed run cannot
 *  clean up after itself). Only names with our prefix and a dead pid are touched. */
function sweepStale(): void {
  const stale = (name: string) => { const m = PREFIX_RE.exec(name); return m !== null && !pidAlive(Number(m[1])); };
  let list = '';
  try { list = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }); } catch { /* no netns support: create() fails later */ }
  for (const name of list.split('\n').map((l) => l.split(' ')[0] ?? '')) {
    if (stale(name)) try { run(['ip', 'netns', 'del', name]); } catch { /* someone else swept it */ }
  }
  for (const name of readdirSync(tmpdir())) {
    if (stale(name)) rmSync(join(tmpdir(), name), { recursive: true, force: true });
  }
}

export class Lab {
  readonly prefix: string;
  /** Scratch dir for logs, keys and captures; removed by destroy() unless IDLOC_KEEP_LAB=1. */
  readonly dir: string;
  private readonly nodes = new Map<string, LabNode>();
  private readonly segments = new Map<string, Segment>();
  private readonly addresses = new Map<string, string>();
  private readonly procs = new Set<LabProcess>();
  private destroyed = false;

  private constructor() {
    this.prefix = `idl${process.pid}x${labSeq++}`;
    this.dir = mkdtempSync(join(tmpdir(), `${this.prefix}-`));
  }

  /** Build the switch, the internet segment and one namespace per host (host i at 198.51.100.(10+i)). */
  static async create(opts: { hosts: string[] }): Promise<Lab> {
    if (process.getuid?.() !== 0) throw new Error('the netns lab needs root (ip netns, veth, bridges)');
    installExitHandlers();
    sweepStale();
    const lab = new Lab();
    liveLabs.add(lab);
    try {
      lab.addNode('sw', 'switch');
      lab.addSegment('internet', 24);
      opts.hosts.forEach((h, i) => {
        lab.addNode(h, 'host');
        lab.attach(h, 'internet', `${INTERNET_PREFIX}${10 + i}`);
      });
    } catch (e) {
      await lab.destroy();
      throw e;
    }
    return lab;
  }

  get hosts(): string[] {
    return [...this.nodes.values()].filter((n) => n.kind === 'host').map((n) => n.name);
  }

  /** The node's address on the simulated internet. */
  address(node: string): string {
    const a = this.addresses.get(node);
    if (!a) throw new Error(`no address for lab node ${node}`);
    return a;
  }

  /** Namespace name of a node, for `ip netns exec` by hand while debugging. */
  ns(node: string): string {
    const n = this.nodes.get(node);
    if (!n) throw new Error(`no lab node ${node}`);
    return n.ns;
  }

  /** Name of a host's interface on its segment (same in every host: its own namespace). */
  readonly uplink = 'eth0';

  private addNode(name: string, kind: NodeKind): void {
    if (!NAME_RE.test(name)) throw new Error(`bad lab node name ${JSON.stringify(name)} (want ${NAME_RE})`);
    if (this.nodes.has(name)) throw new Error(`duplicate lab node ${name}`);
    const ns = `${this.prefix}-${name}`;
    run(['ip', 'netns', 'add', ns]);
    // Record it before configuring it, so a failure below still gets it deleted.
    this.nodes.set(name, { name, kind, ns });
    run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
  }

  private addSegment(name: string, prefixLen: number): void {
    const bridge = `br-${name}`.slice(0, 15);
    const sw = this.ns('sw');
    run(['ip', '-n', sw, 'link', 'add', bridge, 'type', 'bridge']);
    run(['ip', '-n', sw, 'link', 'set', bridge, 'up']);
    this.segments.set(name, { name, bridge, prefixLen });
  }

  /** Plug `node` into `segment` with a veth (eth0 on the node's side) and give it `address`. */
  private attach(node: string, segment: string, address: string): void {
    const seg = this.segments.get(segment);
    if (!seg) throw new Error(`no segment ${segment}`);
    const ns = this.ns(node);
    const sw = this.ns('sw');
    const port = `p-${node}`;
    // Both ends are created directly in their namespaces, so names never clash with the root namespace.
    run(['ip', 'link', 'add', this.uplink, 'netns', ns, 'type', 'veth', 'peer', 'name', port, 'netns', sw]);
    run(['ip', '-n', sw, 'link', 'set', port, 'master', seg.bridge, 'up']);
    run(['ip', '-n', ns, 'addr', 'add', `${address}/${seg.prefixLen}`, 'dev', this.uplink]);
    run(['ip', '-n', ns, 'link', 'set', this.uplink, 'up']);
    this.addresses.set(node, address);
  }

  private spawnIn(node: string, argv: readonly string[], env: NodeJS.ProcessEnv | undefined) {
    if (this.destroyed) throw new Error('lab already destroyed');
    // `ip netns exec` execs the command in place, so the child's pid is the command's pid.
    return spawnChild('ip', ['netns', 'exec', this.ns(node), ...argv], {
      detached: true, // own process group: killing -pid takes its children with it
      stdio: ['pipe', 'pipe', 'pipe'],
      env: env ?? process.env,
    });
  }

  /** Run a command to completion inside a node; throws with its stderr on non-zero exit unless allowFail. */
  exec(node: string, argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const child = this.spawnIn(node, argv, opts.env);
    const pid = child.pid!;
    const tracked = new LabProcess(node, argv, pid, child, 16 << 20, undefined);
    this.procs.add(tracked);
    child.stdin!.on('error', () => { /* the command may exit before reading its input */ });
    child.stdin!.end(opts.input ?? '');
    const timeoutMs = opts.timeoutMs ?? 30_000;
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; killGroup(pid, 'SIGKILL'); }, timeoutMs);
    return tracked.exited.then(({ code, signal }) => {
      clearTimeout(timer);
      this.procs.delete(tracked);
      const res: ExecResult = { code, signal, stdout: tracked.stdout, stderr: tracked.stderr };
      if (timedOut) {
        throw new Error(`${node}: \`${argv.join(' ')}\` timed out after ${timeoutMs} ms; stdout: ${res.stdout.slice(-1000)} stderr: ${res.stderr.slice(-1000)}`);
      }
      if (code !== 0 && !opts.allowFail) {
        throw new Error(`${node}: \`${argv.join(' ')}\` exited ${code ?? signal}: ${(res.stderr || res.stdout).trim().slice(-2000)}`);
      }
      return res;
    });
  }

  /** Start a long-running command inside a node; it is tracked and killed by destroy() if still running. */
  spawn(node: string, argv: readonly string[], opts: SpawnOptions = {}): LabProcess {
    const child = this.spawnIn(node, argv, opts.env);
    child.stdin!.end();
    const log = opts.logFile ? createWriteStream(opts.logFile, { flags: 'a' }) : undefined;
    const p = new LabProcess(node, argv, child.pid!, child, opts.maxBuffer ?? 4 << 20, log);
    this.procs.add(p);
    void p.exited.then(() => this.procs.delete(p));
    return p;
  }

  /** Wait until something in `node` listens on `port` (programs like iperf3 buffer their "listening" line). */
  async waitForPort(node: string, port: number, opts: { udp?: boolean; timeoutMs?: number } = {}): Promise<void> {
    await waitFor(async () => {
      const r = await this.exec(node, ['ss', '-Hln', opts.udp ? '-u' : '-t', `sport = :${port}`]);
      return r.stdout.trim() !== '';
    }, opts.timeoutMs ?? 10_000, { what: `${opts.udp ? 'udp' : 'tcp'} port ${port} in ${node}`, intervalMs: 100 });
  }

  /** Signal the process group, wait for it to exit, SIGKILL after `timeoutMs`. Returns how it exited. */
  async stopProcess(p: LabProcess, opts: { signal?: NodeJS.Signals; timeoutMs?: number } = {}): Promise<ExitInfo> {
    if (p.running) killGroup(p.pid, opts.signal ?? 'SIGTERM');
    const timeoutMs = opts.timeoutMs ?? 5_000;
    let timer: NodeJS.Timeout | undefined;
    const killed = new Promise<void>((r) => { timer = setTimeout(() => { killGroup(p.pid, 'SIGKILL'); r(); }, timeoutMs); });
    await Promise.race([p.exited, killed]);
    clearTimeout(timer);
    return p.exited;
  }

  /** Start OpenSSH's sshd in `node` on all addresses (IPv4 and IPv6, so overlay addresses that appear later
   *  are served too), root login by a key generated for this lab only. */
  async startSshd(node: string, opts: { port?: number } = {}): Promise<SshServer> {
    const port = opts.port ?? 22;
    const dir = mkdtempSync(join(this.dir, `sshd-${node}-`));
    chmodSync(dir, 0o700);
    const hostKey = join(dir, 'host_ed25519_key');
    const clientKey = join(dir, 'client_ed25519_key');
    for (const f of [hostKey, clientKey]) run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'idloc-lab', '-f', f]);
    const authorized = join(dir, 'authorized_keys');
    writeFileSync(authorized, readFileSync(`${clientKey}.pub`), { mode: 0o600 });
    // sshd refuses to start without its privilege-separation directory; Debian creates it only at service start.
    mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
    const config = join(dir, 'sshd_config');
    writeFileSync(config, [
      `Port ${port}`,
      'ListenAddress 0.0.0.0',
      'ListenAddress ::',
      `HostKey ${hostKey}`,
      `AuthorizedKeysFile ${authorized}`,
      'PidFile none',
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no', // no PAM stack needed, and nothing touches the machine's login records
      'StrictModes no', // the key lives in the lab's temp dir, not in ~root/.ssh
      'UseDNS no',
      'LogLevel INFO',
      '',
    ].join('\n'));
    const proc = this.spawn(node, ['/usr/sbin/sshd', '-D', '-e', '-f', config], { logFile: join(dir, 'sshd.log') });
    await proc.waitForOutput(/Server listening on :: port/, 10_000);
    await proc.waitForOutput(/Server listening on 0\.0\.0\.0 port/, 10_000);
    return {
      node, port, proc,
      ssh: (from, address, command, o) => this.exec(from, [
        'ssh', '-F', '/dev/null', '-i', clientKey,
        '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null',
        '-o', 'ConnectTimeout=5', '-o', 'LogLevel=ERROR', '-p', String(port), '-l', 'root', address, command,
      ], { timeoutMs: 20_000, ...o }),
    };
  }

  /** Stop every process started here, delete every namespace, remove the scratch dir. Safe to call twice. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    await Promise.all([...this.procs].map((p) => this.stopProcess(p, { timeoutMs: 3_000 })));
    this.destroySync();
  }

  /** The synchronous part of destroy(), also used from the process 'exit' handler. */
  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    liveLabs.delete(this);
    for (const p of this.procs) if (p.running) killGroup(p.pid, 'SIGKILL');
    this.procs.clear();
    // Hosts before the switch: deleting a namespace deletes its veth ends, emptying the bridges.
    const order = [...this.nodes.values()].sort((a, b) => Number(a.kind === 'switch') - Number(b.kind === 'switch'));
    for (const n of order) {
      try { run(['ip', 'netns', 'del', n.ns]); } catch { /* already gone */ }
    }
    this.nodes.clear();
    if (process.env['IDLOC_KEEP_LAB'] !== '1') rmSync(this.dir, { recursive: true, force: true });
  }
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try { process.kill(-pid, signal); } catch { /* already exited */ }
}
