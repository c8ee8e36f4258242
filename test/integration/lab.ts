// A network-namespace lab: hosts on a simulated internet (198.51.100.0/24), optionally behind NAT
// routers (public side 203.0.113.0/24), used by the integration tests and by scripts/bench.ts.
// Everything it creates carries a per-run prefix (idl<pid>x<n>) so parallel or crashed runs never
// collide, and everything is torn down by pid / by name, also when a test fails or the process is
// interrupted (exit/SIGINT/SIGTERM handlers below).
//
// Shape: one "switch" namespace (sw) holds a Linux bridge per segment; every other node (host, NAT
// router) is a namespace with a veth into a segment's bridge. The "internet" segment carries both
// public subnets on one bridge: hosts at 198.51.100.(10+i), routers' WAN at 203.0.113.(10+k), with
// on-link routes between the two subnets (hosts: 203.0.113.0/24 dev eth0; routers: 198.51.100.0/24
// dev eth0; the host routes are added once the first router exists).
//
//   Lab.create({ hosts: ['p1', 'p2'], natHosts: [{ name: 'a', nat: 'cone' }, { name: 'g', nat: 'cgnat' }] })
//
//    p1 198.51.100.10   p2 198.51.100.11         (plain public hosts; nat 'none' hosts join them here)
//          |                 |
//   ===================== br-internet (sw) =====================================
//          |                                      |
//      eth0 203.0.113.10                       eth0 203.0.113.11
//     [r-a] home router                       [c-g] carrier router (CGNAT)
//      lan0 10.10.0.1                          lan0 10.11.100.1
//          |  br-lan-a                            |  br-cgn-g   (carrier-side net, 10.x: 100.64/10 is the overlay's)
//      eth0 10.10.0.2                          eth0 10.11.100.2
//        [a]  default via 10.10.0.1           [r-g] home router
//                                              lan0 10.11.0.1
//                                                 |  br-lan-g
//                                              eth0 10.11.0.2
//                                                [g]  default via 10.11.0.1
//
// NAT host number j (0, 1, ... in order of creation) gets the home LAN 10.(10+j).0.0/24 (router .1,
// host .2) and, for cgnat, the carrier-side net 10.(10+j).100.0/24 (carrier .1, home router .2).
// Routers are the nodes `r-<host>` (home) and `c-<host>` (carrier): lab.exec() works on them too
// (e.g. `conntrack -L` to see mappings), and lab.nat(host).routers lists them.
//
// Router behaviour, all iptables in the router's namespace (WAN = eth0, LAN = lan0):
// - cone:      -t nat POSTROUTING -o eth0 -j MASQUERADE. Conntrack keeps the private source port when
//              it is free, so one private socket gets one public port towards every destination
//              (endpoint-independent mapping in the common case).
// - symmetric: MASQUERADE --random-fully: a fresh random public port per destination (endpoint-dependent).
// - cgnat:     host -> home router (MASQUERADE) -> carrier router (MASQUERADE) -> internet; the public
//              side sees the carrier's address. Both layers get dropUnsolicited.
// - none:      no router: the host sits on the internet segment at the next 198.51.100.x address.
// - dropUnsolicited (default true; for 'none' default false): like a home router, drop what comes in on
//   the WAN unless conntrack knows it: INPUT -i eth0 --ctstate NEW,INVALID DROP (so an unsolicited
//   packet to a mapped port leaves no conntrack entry behind: without this, a peer's early punch
//   packet creates one and the router then maps our own later packet to that peer to a NEW port, so
//   two cone NATs act symmetric for that pair) and FORWARD -i eth0 not ESTABLISHED,RELATED DROP (no
//   inbound connection to the LAN even from a neighbour that routes 10.x via the router). With false
//   it is a bare MASQUERADE router. For 'none' the same INPUT rule goes into the host itself (a host
//   firewall without NAT). Linux conntrack filters address-and-port-dependently either way: only the
//   exact remote address:port a mapping was made for gets through.
// - udpBlockedExcept: [addresses]: UDP from the host to anything but these public addresses is dropped
//   (FORWARD -i lan0 on the home router; OUTPUT -o eth0 in the host for 'none'). TCP and ICMP still pass.
// UDP conntrack timeouts are the kernel's (30 s unreplied, 120 s once replied to): keep NAT bindings alive
// well within 30 s. A test that takes the last IPv4 address off a public host's eth0 loses that host's
// on-link route to 203.0.113.0/24 with it (the kernel flushes a device's routes then): call
// lab.addInternetRoutes(host) after giving it a new address.
//
// IPv6 (a host spec's `ipv6: 'dual' | 'only'`): 2001:db8::/32 beside the IPv4 internet, home routers
// with a stateful IPv6 firewall and no NAT66; drawn in lab-ipv6.ts.
//
// A WAN instead of a LAN (option `wan`, or IDLOC_LAB_WAN='{"delayMs":20,"jitterMs":2,"lossPct":1}' for a
// whole test run): the internet segment gets no bridge; its veth ports are left bare in the switch
// namespace and fixtures/wan-switch.py (a userspace switch, one AF_PACKET socket per port) forwards
// between them after a per-link delay with jitter, dropping IP frames at the link's loss rate. Settings
// are one-way, for every pair of nodes on the internet (delayMs 20 = 40 ms RTT), with per-node overrides:
//
//   Lab.create({ hosts: ['pub'], natHosts: [...], wan: { delayMs: 20, jitterMs: 2, lossPct: 1, hosts: { pub: { delayMs: 5 } } } })
//   lab.wan({ delayMs: 40 })           // change them while the lab runs (replaces every setting)
//   lab.wanStats()                     // the switch's counters: received, forwarded, lost, ...
//
// An override names a host (for a NAT host, it applies to its outermost router's WAN port) or a router;
// a link between two overridden nodes takes the larger of each field. Per-link FIFO order (jitter never
// reorders between two nodes), ARP and IPv6 ND cross at once and are never dropped: the top of
// wan-switch.py says why. Without `wan` (the default) the internet is the Linux bridge, as above.

import { spawn as spawnChild, execFileSync } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync, chmodSync, readFileSync, type WriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LabIpv6, type Ipv6Mode } from './lab-ipv6.js';

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
interface LabNode { name: string; kind: NodeKind; ns: string; ports: number }
/** A bridge, or (wan) bare ports served by the userspace WAN switch. */
interface Segment { name: string; bridge: string; prefixLen: number; wan: boolean }

/** One-way settings of a link on the simulated internet. */
export interface WanLink {
  /** Mean one-way delay (default 0). */
  delayMs?: number;
  /** Uniform jitter around delayMs, +- this much (default 0); never reorders between two nodes. */
  jitterMs?: number;
  /** Probability, in percent, that an IP frame is dropped on each one-way crossing (default 0). */
  lossPct?: number;
}

/** Every link's settings, with overrides per host or router (by lab node name). */
export interface WanSettings extends WanLink {
  hosts?: Record<string, WanLink>;
}

/** The WAN switch's counters (fixtures/wan-switch.py). */
export interface WanStats {
  received: number; forwarded: number; immediate: number; delayed: number; lost: number;
  queueFull: number; sendErrors: number; flooded: number; portErrors: number; maxQueued: number;
}

/** The switch runs from the source tree: dist/test/integration/lab.js -> test/integration/fixtures/. */
const WAN_SWITCH = fileURLToPath(new URL('../../../test/integration/fixtures/wan-switch.py', import.meta.url));

/** WAN settings for every lab of this run, from IDLOC_LAB_WAN (JSON WanSettings), or undefined. */
function wanFromEnv(): WanSettings | undefined {
  const raw = process.env['IDLOC_LAB_WAN'];
  if (raw === undefined || raw === '') return undefined;
  try {
    return JSON.parse(raw) as WanSettings;
  } catch (e) {
    throw new Error(`IDLOC_LAB_WAN is not JSON WanSettings (e.g. {"delayMs":20,"jitterMs":2,"lossPct":1}): ${(e as Error).message}`);
  }
}

export type NatType = 'none' | 'cone' | 'symmetric' | 'cgnat';

/** A public host, with IPv6 too or IPv6 only (lab-ipv6.ts); a plain name is IPv4 only. */
export interface PublicHostSpec {
  name: string;
  ipv6?: Ipv6Mode;
}

export interface NatHostSpec {
  name: string;
  nat: NatType;
  /** IPv6 too ('dual'), or IPv6 only ('only'): see lab-ipv6.ts. Not with cgnat. */
  ipv6?: Ipv6Mode;
  /** Drop inbound packets conntrack does not know (a home router's stateful firewall). Default true,
   *  except for 'none' (a public host), where true adds the same rule to the host's own INPUT chain. */
  dropUnsolicited?: boolean;
  /** Drop all UDP from the host except to these (public) addresses, e.g. only the TURN relay. */
  udpBlockedExcept?: string[];
}

export interface NatInfo {
  nat: NatType;
  /** Router nodes from the host outwards: [home] or, for cgnat, [home, carrier]; [] for 'none'. */
  routers: string[];
  /** The address the host itself has (what an agent inside sees). */
  privateAddress: string;
  /** The address the internet sees the host's traffic come from (the outermost router's WAN). */
  publicAddress: string;
  dropUnsolicited: boolean;
  udpBlockedExcept: string[] | undefined;
}

export const INTERNET_PREFIX = '198.51.100.';
/** Routers' WAN addresses on the simulated internet: 203.0.113.(10+k). */
export const ROUTER_PREFIX = '203.0.113.';
const NAME_RE = /^[a-z][a-z0-9]{0,7}$/;
const ROUTER_NAME_RE = /^[rc]-[a-z][a-z0-9]{0,7}$/;
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
  private readonly natInfo = new Map<string, NatInfo>();
  private readonly v6 = new LabIpv6((n) => this.ns(n), 'eth0');
  /** Hosts with an address on the internet segment (they need a route to the routers' subnet). */
  private readonly publicHosts: string[] = [];
  private publicHostCount = 0;
  private routerCount = 0;
  private natHostCount = 0;
  private destroyed = false;
  /** The WAN switch's control socket and the settings last given, while the internet is a WAN. */
  private wanCtlPath: string | undefined;
  private wanSettings: WanSettings = {};

  private constructor() {
    this.prefix = `idl${process.pid}x${labSeq++}`;
    this.dir = mkdtempSync(join(tmpdir(), `${this.prefix}-`));
  }

  /** Build the switch, the internet segment and one namespace per host (host i at 198.51.100.(10+i)),
   *  then the NAT hosts in order, each with its router(s) (see the top of this file). */
  static async create(opts: { hosts: (string | PublicHostSpec)[]; natHosts?: NatHostSpec[]; wan?: WanSettings }): Promise<Lab> {
    if (process.getuid?.() !== 0) throw new Error('the netns lab needs root (ip netns, veth, bridges)');
    installExitHandlers();
    sweepStale();
    const lab = new Lab();
    liveLabs.add(lab);
    try {
      lab.addNode('sw', 'switch');
      const wan = opts.wan ?? wanFromEnv();
      lab.addSegment('internet', 24, wan !== undefined);
      if (wan) await lab.startWanSwitch(wan);
      for (const h of opts.hosts) typeof h === 'string' ? lab.addPublicHost(h) : lab.addPublicHost(h.name, h.ipv6);
      for (const spec of opts.natHosts ?? []) lab.addNatHost(spec);
    } catch (e) {
      await lab.destroy();
      throw e;
    }
    return lab;
  }

  get hosts(): string[] {
    return [...this.nodes.values()].filter((n) => n.kind === 'host').map((n) => n.name);
  }

  /** The node's own address: on the simulated internet for public hosts, the private (10.x) one for a
   *  host behind NAT, the WAN address for a router. */
  address(node: string): string {
    const a = this.addresses.get(node);
    if (!a) throw new Error(`no address for lab node ${node}`);
    return a;
  }

  /** The address the internet sees a host's packets come from: its NAT's outermost router, or its own. */
  publicAddress(node: string): string {
    return this.natInfo.get(node)?.publicAddress ?? this.address(node);
  }

  /** How a host added with natHosts/addNatHost is connected (routers, addresses, firewall). */
  nat(node: string): NatInfo {
    const n = this.natInfo.get(node);
    if (!n) throw new Error(`${node} is not a NAT host of this lab`);
    return n;
  }

  /** Add a host behind a NAT router (or, for 'none', straight on the internet); see the top of this file.
   *  Synchronous and usable after create(); a failure leaves what it made to destroy(). */
  addNatHost(spec: NatHostSpec): void {
    const { name, nat } = spec;
    if (!NAME_RE.test(name)) throw new Error(`bad lab node name ${JSON.stringify(name)} (want ${NAME_RE})`);
    if (!['none', 'cone', 'symmetric', 'cgnat'].includes(nat)) throw new Error(`unknown NAT type ${JSON.stringify(nat)}`);
    const allow = spec.udpBlockedExcept;
    for (const a of allow ?? []) if (!/^\d+\.\d+\.\d+\.\d+$/.test(a)) throw new Error(`udpBlockedExcept: not an IPv4 address: ${a}`);
    if (spec.ipv6 && nat === 'cgnat') throw new Error('ipv6: not with cgnat (no carrier IPv6 in this lab)');
    if (nat === 'none') {
      const drop = spec.dropUnsolicited ?? false;
      this.addPublicHost(name, spec.ipv6);
      if (drop) this.ipt(name, '-A', 'INPUT', '-i', this.uplink, '-m', 'conntrack', '--ctstate', 'NEW,INVALID', '-j', 'DROP');
      if (allow) {
        for (const a of allow) this.ipt(name, '-A', 'OUTPUT', '-o', this.uplink, '-p', 'udp', '-d', a, '-j', 'ACCEPT');
        this.ipt(name, '-A', 'OUTPUT', '-o', this.uplink, '-p', 'udp', '-j', 'DROP');
      }
      const address = this.address(name);
      this.natInfo.set(name, { nat, routers: [], privateAddress: address, publicAddress: address, dropUnsolicited: drop, udpBlockedExcept: allow });
      return;
    }
    const drop = spec.dropUnsolicited ?? true;
    const j = this.natHostCount++;
    if (j > 240) throw new Error('too many NAT hosts');
    const net = `10.${10 + j}`;
    const home = `r-${name}`;
    this.addNode(name, 'host');
    this.addNode(home, 'router');
    this.addSegment(`lan-${name}`, 24);
    const routers = [home];
    let publicAddress: string;
    if (nat === 'cgnat') {
      const carrier = `c-${name}`;
      routers.push(carrier);
      this.addNode(carrier, 'router');
      publicAddress = this.addRouterWan(carrier);
      this.addSegment(`cgn-${name}`, 24);
      this.attach(carrier, `cgn-${name}`, `${net}.100.1`, 'lan0');
      this.attach(home, `cgn-${name}`, `${net}.100.2`); // the home router's WAN is on the carrier-side net
      run(['ip', '-n', this.ns(home), 'route', 'add', 'default', 'via', `${net}.100.1`]);
      this.configureRouter(carrier, { random: false, drop, allow: undefined });
    } else {
      publicAddress = this.addRouterWan(home);
    }
    const k = this.routerCount - 1;
    this.attach(home, `lan-${name}`, `${net}.0.1`, 'lan0');
    this.configureRouter(home, { random: nat === 'symmetric', drop, allow });
    this.attach(name, `lan-${name}`, `${net}.0.2`);
    run(['ip', '-n', this.ns(name), 'route', 'add', 'default', 'via', `${net}.0.1`]);
    let privateAddress = `${net}.0.2`;
    if (spec.ipv6) {
      const v6 = this.v6.addHomeNetwork(name, home, k, j, spec.ipv6, drop, privateAddress);
      if (spec.ipv6 === 'only') { privateAddress = v6; publicAddress = v6; this.addresses.set(name, v6); }
    }
    this.natInfo.set(name, { nat, routers, privateAddress, publicAddress, dropUnsolicited: drop, udpBlockedExcept: allow });
    // An override may have named this host before it existed: it now has a router to apply to.
    if (this.wanCtlPath && this.wanSettings.hosts?.[name]) this.wan(this.wanSettings);
  }

  /** Whether the simulated internet is the WAN switch (option `wan` or IDLOC_LAB_WAN), not a bridge. */
  get isWan(): boolean {
    return this.wanCtlPath !== undefined;
  }

  /** Replace every WAN link setting (see the top of this file); applied to frames arriving from now on.
   *  Throws when the lab was made without `wan`. */
  wan(settings: WanSettings): void {
    const { hosts, ...def } = settings;
    const nodes: Record<string, WanLink> = {};
    for (const [h, link] of Object.entries(hosts ?? {})) {
      // A NAT host's traffic meets the internet at its outermost router; a host not made yet is kept
      // in wanSettings and applied when addNatHost creates it.
      const routers = this.natInfo.get(h)?.routers ?? [];
      nodes[routers.length > 0 ? routers[routers.length - 1]! : h] = link;
    }
    this.wanCtl({ op: 'set', default: def, nodes });
    this.wanSettings = settings;
  }

  /** The WAN switch's counters so far. */
  wanStats(): WanStats {
    return (this.wanCtl({ op: 'stats' }) as { stats: WanStats }).stats;
  }

  private async startWanSwitch(settings: WanSettings): Promise<void> {
    const ctl = join(this.dir, 'wan.sock');
    const proc = this.spawn('sw', ['python3', WAN_SWITCH, '--ctl-socket', ctl], { logFile: join(this.dir, 'wan-switch.log') });
    await proc.waitForOutput(/wan-switch: listening on/, 10_000);
    this.wanCtlPath = ctl;
    this.wan(settings);
  }

  /** One request to the WAN switch, synchronously (ports must forward before attach() returns). */
  private wanCtl(request: object): unknown {
    if (!this.wanCtlPath) throw new Error('this lab has no WAN switch (create it with the `wan` option)');
    let out: string;
    try {
      out = execFileSync('python3', [WAN_SWITCH, '--ctl', this.wanCtlPath, JSON.stringify(request)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });
    } catch (e) {
      const err = e as { stdout?: string; stderr?: string; message: string };
      throw new Error(`WAN switch refused ${JSON.stringify(request)}: ${(err.stdout || err.stderr || err.message).trim()}`);
    }
    return JSON.parse(out) as unknown;
  }

  /** (Re-)add a public host's on-link route to the routers' subnet (the kernel drops it with the
   *  device's last IPv4 address). A no-op while the lab has no routers. */
  addInternetRoutes(node: string): void {
    if (this.routerCount === 0) return;
    run(['ip', '-n', this.ns(node), 'route', 'replace', `${ROUTER_PREFIX}0/24`, 'dev', this.uplink]);
  }

  private addPublicHost(name: string, ipv6?: Ipv6Mode): void {
    const i = this.publicHostCount++;
    if (i > 240) throw new Error('too many public hosts');
    this.addNode(name, 'host');
    this.attach(name, 'internet', `${INTERNET_PREFIX}${10 + i}`);
    this.publicHosts.push(name);
    this.addInternetRoutes(name);
    if (ipv6) {
      const v6 = this.v6.addPublicHost(name, i, ipv6, this.address(name));
      if (ipv6 === 'only') this.addresses.set(name, v6);
    }
  }

  /** A node's IPv6 address (lab-ipv6.ts), or undefined if it was made without one. */
  address6(node: string): string | undefined {
    return this.v6.address(node);
  }

  /** Put a router's WAN on the internet segment at the next 203.0.113.x; returns that address. */
  private addRouterWan(router: string): string {
    const k = this.routerCount++;
    if (k > 240) throw new Error('too many routers');
    const address = `${ROUTER_PREFIX}${10 + k}`;
    this.attach(router, 'internet', address);
    run(['ip', '-n', this.ns(router), 'route', 'add', `${INTERNET_PREFIX}0/24`, 'dev', this.uplink]);
    if (k === 0) for (const h of this.publicHosts) this.addInternetRoutes(h);
    return address;
  }

  /** iptables in a node's namespace (-w: iptables-legacy shares one lock across namespaces). */
  private ipt(node: string, ...args: string[]): void {
    run(['ip', 'netns', 'exec', this.ns(node), 'iptables', '-w', ...args]);
  }

  private configureRouter(router: string, o: { random: boolean; drop: boolean; allow: string[] | undefined }): void {
    const wan = this.uplink;
    run(['ip', 'netns', 'exec', this.ns(router), 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
    this.ipt(router, '-t', 'nat', '-A', 'POSTROUTING', '-o', wan, '-j', 'MASQUERADE', ...(o.random ? ['--random-fully'] : []));
    if (o.drop) {
      this.ipt(router, '-A', 'INPUT', '-i', wan, '-m', 'conntrack', '--ctstate', 'NEW,INVALID', '-j', 'DROP');
      this.ipt(router, '-A', 'FORWARD', '-i', wan, '-m', 'conntrack', '!', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'DROP');
    }
    if (o.allow) {
      for (const a of o.allow) this.ipt(router, '-A', 'FORWARD', '-i', 'lan0', '-p', 'udp', '-d', a, '-j', 'ACCEPT');
      this.ipt(router, '-A', 'FORWARD', '-i', 'lan0', '-p', 'udp', '-j', 'DROP');
    }
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
    // Routers are named r-<host>/c-<host>: the '-' keeps them apart from any host name.
    const re = kind === 'router' ? ROUTER_NAME_RE : NAME_RE;
    if (!re.test(name)) throw new Error(`bad lab node name ${JSON.stringify(name)} (want ${re})`);
    if (this.nodes.has(name)) throw new Error(`duplicate lab node ${name}`);
    const ns = `${this.prefix}-${name}`;
    run(['ip', 'netns', 'add', ns]);
    // Record it before configuring it, so a failure below still gets it deleted.
    this.nodes.set(name, { name, kind, ns, ports: 0 });
    run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
  }

  private addSegment(name: string, prefixLen: number, wan = false): void {
    const bridge = `br-${name}`;
    if (bridge.length > 15) throw new Error(`segment name ${name} too long for a bridge name (IFNAMSIZ)`);
    if (this.segments.has(name)) throw new Error(`duplicate segment ${name}`);
    const sw = this.ns('sw');
    if (!wan) {
      run(['ip', '-n', sw, 'link', 'add', bridge, 'type', 'bridge']);
      run(['ip', '-n', sw, 'link', 'set', bridge, 'up']);
    }
    this.segments.set(name, { name, bridge, prefixLen, wan });
  }

  /** Plug `node` into `segment` with a veth (`ifname`, default eth0, on the node's side) and give it
   *  `address`. The switch-side port is p-<node> for a node's first attachment, q-<node> for its second
   *  (at most 15 characters: node names are at most 10). The first address is the node's address(). */
  private attach(node: string, segment: string, address: string, ifname: string = this.uplink): void {
    const seg = this.segments.get(segment);
    if (!seg) throw new Error(`no segment ${segment}`);
    const n = this.nodes.get(node);
    if (!n) throw new Error(`no lab node ${node}`);
    const ns = n.ns;
    const sw = this.ns('sw');
    const port = `${n.ports === 0 ? 'p' : 'q'}-${node}`;
    if (n.ports >= 2 || port.length > 15) throw new Error(`cannot name a switch port for ${node} (IFNAMSIZ)`);
    n.ports++;
    // Both ends are created directly in their namespaces, so names never clash with the root namespace.
    run(['ip', 'link', 'add', ifname, 'netns', ns, 'type', 'veth', 'peer', 'name', port, 'netns', sw]);
    if (seg.wan) {
      run(['ip', '-n', sw, 'link', 'set', port, 'up']);
      this.wanCtl({ op: 'port', port, node });
    } else {
      run(['ip', '-n', sw, 'link', 'set', port, 'master', seg.bridge, 'up']);
    }
    run(['ip', '-n', ns, 'addr', 'add', `${address}/${seg.prefixLen}`, 'dev', ifname]);
    run(['ip', '-n', ns, 'link', 'set', ifname, 'up']);
    if (!this.addresses.has(node)) this.addresses.set(node, address);
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
    // Whatever still runs inside a namespace (an sshd session's shell, a child a test did not track) goes
    // too: deleting the namespace would leave it running, outside any lab.
    for (const n of order) {
      try {
        const pids = execFileSync('ip', ['netns', 'pids', n.ns], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
        for (const pid of pids.split('\n').filter(Boolean)) try { process.kill(Number(pid), 'SIGKILL'); } catch { /* exited */ }
      } catch { /* namespace already gone */ }
    }
    for (const n of order) {
      try { run(['ip', 'netns', 'del', n.ns]); } catch { /* already gone */ }
    }
    this.nodes.clear();
    this.natInfo.clear();
    if (process.env['IDLOC_KEEP_LAB'] !== '1') rmSync(this.dir, { recursive: true, force: true });
  }
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try { process.kill(-pid, signal); } catch { /* already exited */ }
}
