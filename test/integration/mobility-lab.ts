// The mobility lab, shared by mobility.test.ts and the bench's handover part (scripts/bench-handover.ts):
// two hosts, each behind a filtering home router and each with a second uplink behind another one, two
// public agents, and an ssh session whose 10 Hz clock is stamped as it ARRIVES (a clock stamped by the
// sender ticks into buffers while the path is down and would hide the stall).
//
//   pub 198.51.100.10, pub2 198.51.100.11 (public agents: bootstrap, rendezvous, STUN; both given to m, p)
//   m: eth0 -> r-m (cone, filtering)      eth1 -> r-m2 (cone, filtering; down until the first switch)
//   p: eth0 -> r-p (cone, filtering)      eth1 -> r-p2 (cone, filtering; down until the first switch)
//   sshd on p; the clock runs on p and is read on m (ssh m -> p over the overlay addresses)
//
// A second uplink is a second NAT host's LAN link moved into the host's namespace (the lab builds one
// uplink per host): m2's eth0 becomes m's eth1, so r-m2 routes for it as its home router. switchUplink()
// flips a host between its two uplinks (eth0 <-> eth1), so cases can be chained and repeated.
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { Lab, type SshServer, type WanSettings } from './lab.js';
import {
  agentStatus, createAgent, logTails, startOverlayAgent, stopAgent, waitOverlayReady, waitUntil, type TestAgent,
} from './agents.js';

export const PUBLIC_HOSTS = ['pub', 'pub2'] as const;
/** The WAN settings (item 8): 20 ms each way between sites (40 ms RTT), 2 ms jitter, 1% loss. */
export const WAN_40MS: WanSettings = { delayMs: 20, jitterMs: 2, lossPct: 1 };
/** Lines are watched this long after each move: a recovery slower than this shows as a gap anyway. */
export const MOVE_WATCH_MS = 3_500;
/** Each moving host and the NAT host whose LAN link becomes its second uplink. */
const DONORS: Record<string, string> = { m: 'm2', p: 'p2' };
/** TCP's retransmission backoff ceiling in m and p (net.ipv4.tcp_rto_max_ms, Linux 6.15+; the default is
 *  120 s). Only a silence longer than a few seconds meets it, i.e. the sleep-and-wake case, where the
 *  path is timed with ping and ssh only has to resume: with the default its next retransmission after a
 *  60 s sleep comes up to ~45 s after waking; with this, within 5 s. Every other case stalls far less. */
export const TCP_RTO_MAX_MS = 5_000;
/** Retransmissions before TCP gives a connection up (net.ipv4.tcp_retries2, default 15). The kernel turns
 *  the count into a time with the ceiling above: 15 tries capped at 5 s end a connection after ~56 s,
 *  inside the 60 s sleep; 60 tries keep it ~5 min, as the default count does with the default ceiling. */
const TCP_RETRIES2 = 60;

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One ping -D reply: when it arrived (the line's stamp) and when its request left (arrival - RTT). */
export interface PingReply { seq: number; arrivedMs: number; sentMs: number }

/** ping -D lines: "[1733350000.123456] 64 bytes from ...: icmp_seq=5 ttl=64 time=0.345 ms". */
export function pingReplies(stdout: string): PingReply[] {
  return [...stdout.matchAll(/^\[(\d+\.\d+)\].*icmp_seq=(\d+).*time=([\d.]+) ms/gm)].map((m) => {
    const arrivedMs = Number(m[1]) * 1000;
    return { seq: Number(m[2]), arrivedMs, sentMs: arrivedMs - Number(m[3]) };
  });
}

type Status = Awaited<ReturnType<typeof agentStatus>> & { nat?: { public: string | null } | null };

export class MobilityLab {
  readonly agents = new Map<string, TestAgent>();
  /** Arrival times (ms, Date.now()) of the clock's lines at m. */
  readonly arrivals: number[] = [];
  /** Each line's own content: when p printed it (ms, same clock: the lab is one machine). */
  readonly printed: number[] = [];
  private clock: ChildProcess | undefined;
  private sshd: SshServer | undefined;
  /** The uplink each moving host uses now. */
  private readonly active = new Map<string, 'eth0' | 'eth1'>([['m', 'eth0'], ['p', 'eth0']]);

  private constructor(readonly lab: Lab) {}

  /** The lab, both public agents, m and p joined with a rendezvous and their public mapping known, sshd on p. */
  static async create(opts: { wan?: WanSettings; readyMs?: number } = {}): Promise<MobilityLab> {
    const lab = await Lab.create({
      hosts: [...PUBLIC_HOSTS],
      natHosts: ['m', 'm2', 'p', 'p2'].map((name) => ({ name, nat: 'cone' as const })),
      ...(opts.wan ? { wan: opts.wan } : {}),
    });
    const ml = new MobilityLab(lab);
    try {
      await ml.setUp(opts.readyMs ?? 20_000);
    } catch (e) {
      await ml.destroy();
      throw e;
    }
    return ml;
  }

  private async setUp(readyMs: number): Promise<void> {
    const { lab } = this;
    for (const [host, donor] of Object.entries(DONORS)) {
      await lab.exec(donor, ['ip', 'link', 'set', 'eth0', 'down']);
      await lab.exec(donor, ['ip', 'link', 'set', 'eth0', 'name', 'eth1']);
      await lab.exec(donor, ['ip', 'link', 'set', 'eth1', 'netns', lab.ns(host)]);
      await lab.exec(host, ['sysctl', '-qw', `net.ipv4.tcp_retries2=${TCP_RETRIES2}`]);
      await lab.exec(host, ['sysctl', '-qw', `net.ipv4.tcp_rto_max_ms=${TCP_RTO_MAX_MS}`], { allowFail: true });
    }
    for (const h of [...PUBLIC_HOSTS, 'm', 'p']) this.agents.set(h, await createAgent(lab, h));
    startOverlayAgent(lab, this.A('pub'), []);
    await waitOverlayReady(lab, this.A('pub'), readyMs);
    startOverlayAgent(lab, this.A('pub2'), [this.A('pub')]);
    await waitOverlayReady(lab, this.A('pub2'), readyMs);
    const publics = PUBLIC_HOSTS.map((h) => this.A(h));
    for (const h of ['m', 'p']) startOverlayAgent(lab, this.A(h), publics);
    await Promise.all(['m', 'p'].map((h) => waitOverlayReady(lab, this.A(h), readyMs)));
    for (const h of ['m', 'p']) await this.waitSettled(h, readyMs);
    this.sshd = await lab.startSshd('p');
  }

  /** Both public agents kept as rendezvous, and the public mapping known (so the srflx candidate is in
   *  every Attach: else a first path may be a relay). */
  async waitSettled(host: string, ms = 20_000): Promise<void> {
    const want = PUBLIC_HOSTS.filter((h) => this.A(h).proc?.running).length;
    await waitUntil(async () => (await this.rendezvousOf(host)).length >= want, ms, `${host} keeps ${want} rendezvous${this.evidence()}`);
    await waitUntil(async () => ((await agentStatus(this.lab, this.A(host))) as Status).nat?.public, ms, `${host} knows its public mapping${this.evidence()}`);
  }

  A(host: string): TestAgent {
    const a = this.agents.get(host);
    if (!a) throw new Error(`no agent in ${host}`);
    return a;
  }

  evidence(lines = 30): string {
    return '\n' + logTails([...this.agents.values()], lines);
  }

  /** The router the host's traffic leaves through now. */
  router(host: string): string {
    return this.active.get(host) === 'eth1' ? `r-${DONORS[host]}` : `r-${host}`;
  }

  /** Uplink switch: the active uplink loses its address and its link, the other comes up with its
   *  router's LAN address and the default route (eth0 -> eth1, or back). */
  async switchUplink(host: string): Promise<void> {
    const from = this.active.get(host)!;
    const to = from === 'eth0' ? 'eth1' : 'eth0';
    const old = this.lab.nat(from === 'eth0' ? host : DONORS[host]!).privateAddress;
    const next = this.lab.nat(to === 'eth0' ? host : DONORS[host]!).privateAddress;
    await this.lab.exec(host, ['sh', '-c', [
      `ip addr del ${old}/24 dev ${from}`, `ip link set ${from} down`,
      `ip addr add ${next}/24 dev ${to}`, `ip link set ${to} up`,
      `ip route replace default via ${next.replace(/\.2$/, '.1')} dev ${to}`,
    ].join(' && ')]);
    this.active.set(host, to);
  }

  /** NAT rebinding: the host's current router forgets every mapping. */
  async rebind(host: string): Promise<void> {
    await this.lab.exec(this.router(host), ['conntrack', '-F'], { allowFail: true });
  }

  /** The public agents the host keeps as rendezvous now, per its `status`. */
  async rendezvousOf(host: string): Promise<string[]> {
    const st = await agentStatus(this.lab, this.A(host));
    const eps = st.overlay?.rendezvous ?? [];
    return PUBLIC_HOSTS.filter((h) => eps.some((e) => e.startsWith(`${this.lab.address(h)}:`)));
  }

  /** SIGKILL an agent (a node dying, nothing said to anyone). */
  async killAgent(host: string): Promise<void> {
    const a = this.A(host);
    if (a.proc) await this.lab.stopProcess(a.proc, { signal: 'SIGKILL' });
  }

  /** Start a killed public agent again (same identity), bootstrapping from the other public agents. */
  async restartPublic(host: string): Promise<void> {
    const others = PUBLIC_HOSTS.filter((h) => h !== host && this.A(h).proc?.running).map((h) => this.A(h));
    startOverlayAgent(this.lab, this.A(host), others);
    await waitOverlayReady(this.lab, this.A(host), 20_000);
  }

  /** The peer's (p's) overlay IPv4, which m's ssh connects to. */
  async peerAddress(host = 'p'): Promise<string> {
    return (await agentStatus(this.lab, this.A(host))).identity.ipv4;
  }

  /** ssh from m to p printing `date` at 10 Hz; every line's arrival at m goes into `arrivals`. */
  async startClock(): Promise<void> {
    this.clock = sshClock(this.lab, this.sshd!, 'm', await this.peerAddress(), (arrived, printed) => {
      this.arrivals.push(arrived);
      this.printed.push(printed);
    });
    const had = this.arrivals.length;
    await waitUntil(async () => this.arrivals.length >= had + 10, 15_000, `the clock to arrive over ssh${this.evidence()}`);
  }

  /** The ssh session still runs (its client has not exited). */
  get sshAlive(): boolean {
    return this.clock !== undefined && this.clock.exitCode === null && this.clock.signalCode === null;
  }

  get sshExit(): string {
    return `exit ${this.clock?.exitCode ?? '-'} signal ${this.clock?.signalCode ?? '-'}`;
  }

  /** The largest gap between consecutive arrivals from 0.5 s before `t0` to `watchMs` after it (waits
   *  until then). Nothing after the event at all counts as a gap to the end of the window. */
  gapAround(t0: number, watchMs: number): Promise<number> {
    return gapAround(this.arrivals, t0, watchMs);
  }

  /** When the first clock line PRINTED after `t` arrived, waiting at most `ms`: undefined if none did
   *  (lines printed before `t` may still be arriving from buffers; they say nothing about the path now). */
  async nextArrival(t: number, ms: number): Promise<number | undefined> {
    const end = Date.now() + ms;
    for (;;) {
      const i = this.printed.findIndex((x) => x > t);
      if (i >= 0) return this.arrivals[i];
      if (Date.now() > end) return undefined;
      await sleep(100);
    }
  }

  /** Sleep and wake: SIGSTOP m's agent for `stopMs` while its router forgets its mappings (at the stop,
   *  and again just before waking), then SIGCONT; p pings m's overlay address every 100 ms throughout
   *  the last seconds. Returns when SIGCONT was sent and the ms from it to the first reply to a ping
   *  SENT after it (stamped on arrival; undefined: none within `afterMs`). */
  async sleepAndWake(stopMs: number, afterMs = 5_000): Promise<{ contMs: number; firstReplyMs: number | undefined; replies: PingReply[] }> {
    const pid = this.A('m').proc!.pid;
    const mIpv4 = await this.peerAddress('m');
    process.kill(pid, 'SIGSTOP');
    try {
      await this.rebind('m');
      const lead = Math.min(3_000, stopMs);
      await sleep(stopMs - lead);
      const count = Math.ceil((lead + afterMs) / 100);
      const pinger = this.lab.exec('p', ['ping', '-D', '-i', '0.1', '-W', '1', '-c', String(count), mIpv4], { allowFail: true, timeoutMs: lead + afterMs + 15_000 });
      await sleep(lead - 200);
      await this.rebind('m');
      await sleep(200);
      const contMs = Date.now();
      process.kill(pid, 'SIGCONT');
      const replies = pingReplies((await pinger).stdout);
      const first = replies.find((r) => r.sentMs > contMs);
      return { contMs, firstReplyMs: first && first.arrivedMs - contMs, replies };
    } finally {
      try { process.kill(pid, 'SIGCONT'); } catch { /* gone */ }
    }
  }

  async destroy(): Promise<void> {
    const { lab } = this;
    if (this.clock?.pid) try { process.kill(-this.clock.pid, 'SIGKILL'); } catch { /* gone */ }
    if (this.sshd) await killSshSessions(lab, 'p', this.sshd);
    for (const a of this.agents.values()) if (a.proc) try { process.kill(a.proc.pid, 'SIGCONT'); } catch { /* gone */ }
    await Promise.all([...this.agents.values()].map((a) => stopAgent(lab, a)));
    await lab.destroy();
  }
}

/** ssh from `host` to `address` (served by `sshd`) printing `date` at 10 Hz; `onLine(arrivedMs, printedMs)`
 *  for every line, stamped as it ARRIVES. The client is its own process group (kill -pid ends it). */
export function sshClock(lab: Lab, sshd: SshServer, host: string, address: string, onLine: (arrivedMs: number, printedMs: number) => void): ChildProcess {
  const key = join(dirname(sshd.proc.argv.at(-1)!), 'client_ed25519_key');
  const clock = spawn('ip', ['netns', 'exec', lab.ns(host), 'ssh', '-F', '/dev/null', '-i', key, '-o', 'BatchMode=yes',
    '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'ConnectTimeout=5', '-o', 'LogLevel=ERROR',
    '-o', 'ServerAliveInterval=0', '-l', 'root', address, 'while true; do date +%s.%N; sleep 0.1; done'],
  { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let partial = '';
  clock.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    const now = Date.now();
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) onLine(now, Number(line) * 1000);
  });
  return clock;
}

/** SIGKILL sshd's per-connection children in `host`: each holds sshd's stderr open, and over a dead path
 *  it would outlive the client for minutes while the lab waits for that pipe to close. */
export async function killSshSessions(lab: Lab, host: string, sshd: SshServer): Promise<void> {
  const kids = await lab.exec(host, ['pgrep', '-P', String(sshd.proc.pid)], { allowFail: true });
  for (const pid of kids.stdout.split('\n').filter(Boolean)) try { process.kill(Number(pid), 'SIGKILL'); } catch { /* gone */ }
}

/** The largest gap in `arrivals` from 0.5 s before `t0` to `watchMs` after it (waits until then). */
export async function gapAround(arrivals: readonly number[], t0: number, watchMs: number): Promise<number> {
  await sleep(Math.max(0, t0 + watchMs - Date.now()));
  return largestGap(arrivals, t0 - 500, t0 + watchMs);
}

/** The largest gap between consecutive times within [from, to], counting the stretch from the last one
 *  to `to` (a stream that stopped is a gap to the end of the window). */
export function largestGap(times: readonly number[], from: number, to: number): number {
  const seen = times.filter((t) => t >= from && t <= to);
  let gap = 0;
  for (let i = 1; i < seen.length; i++) gap = Math.max(gap, seen[i]! - seen[i - 1]!);
  return Math.max(gap, to - (seen.at(-1) ?? from));
}

/** One move, timed by the clock's arrivals. `prepare` runs before the quiet half second that precedes
 *  the event (e.g. reading `status`), `act` is the event, `repair` puts the lab back for a repetition. */
export interface MoveCase {
  id: string;
  name: string;
  /** The target for the largest arrival gap. */
  targetMs: number;
  prepare?: (ml: MobilityLab) => Promise<void>;
  act: (ml: MobilityLab) => Promise<void>;
  repair?: (ml: MobilityLab) => Promise<void>;
}

/** The public agent case (f) killed, for its repair. */
let victim: string | undefined;

/** Cases (a)-(f), in an order that chains: each starts where the one before left the uplinks. */
export const MOVE_CASES: readonly MoveCase[] = [
  { id: 'a', name: '(a) the mover switches uplinks (eth0 gone, eth1 up behind another filtering NAT)', targetMs: 1_000, act: (ml) => ml.switchUplink('m') },
  { id: 'b', name: '(b) NAT rebinding: the mover\'s router forgets its mappings (conntrack -F)', targetMs: 1_000, act: (ml) => ml.rebind('m') },
  { id: 'c', name: '(c) the peer switches uplinks (roles reversed)', targetMs: 1_000, act: (ml) => ml.switchUplink('p') },
  { id: 'd', name: '(d) NAT rebinding on the peer\'s router (roles reversed)', targetMs: 1_000, act: (ml) => ml.rebind('p') },
  { id: 'e', name: '(e) both switch uplinks at once', targetMs: 2_000, act: async (ml) => { await Promise.all([ml.switchUplink('m'), ml.switchUplink('p')]); } },
  // (multihomed failover, both uplinks up and the active one's link cut, is its own case: it needs both
  // links up at once, which switchUplink never leaves; it belongs here, between (e) and (f).)
  {
    id: 'f', name: '(f) the mover switches uplinks and one of its rendezvous nodes dies at that moment', targetMs: 2_000,
    prepare: async (ml) => {
      victim = (await ml.rendezvousOf('m'))[0];
      if (!victim) throw new Error(`m keeps no public agent as rendezvous${ml.evidence()}`);
    },
    act: async (ml) => { await Promise.all([ml.switchUplink('m'), ml.killAgent(victim!)]); },
    repair: async (ml) => {
      if (!victim) return;
      await ml.restartPublic(victim);
      for (const h of ['m', 'p']) await ml.waitSettled(h, 60_000);
      victim = undefined;
    },
  },
];

/** Run one case: a quiet half second, the event, then the largest arrival gap over `watchMs`. */
export async function measureMove(ml: MobilityLab, c: MoveCase, watchMs: number): Promise<{ gapMs: number; sshAlive: boolean }> {
  await c.prepare?.(ml);
  await sleep(500);
  const t0 = Date.now();
  await c.act(ml);
  const gapMs = await ml.gapAround(t0, watchMs);
  return { gapMs, sshAlive: ml.sshAlive };
}
