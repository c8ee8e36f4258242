// The multihoming lab, shared by multihoming.test.ts and the bench's handover part
// (scripts/bench-handover.ts): a host with two uplinks, each behind its own filtering NAT router, keeps a
// standby path to its peer on the second one (nat/standby.ts). The peer prints a 10 Hz clock over ssh;
// each line is stamped as it ARRIVES at the multihomed host.
//
//   pub 198.51.100.10 (public agent: bootstrap, rendezvous, STUN)
//   m: eth0 -> r-m  (cone, filtering; default route, metric 0)
//      eth1 -> r-m2 (cone, filtering; default route, metric 200: the kernel's second choice)
//   p: eth0 -> r-p  (cone, filtering)
//
// Failovers (FAILOVER_CASES): (1) m's eth0 link is cut; (2) eth0's router stops forwarding without a word.
// Each has a restore that puts the traffic back on eth0, so both can be repeated.
import type { ChildProcess } from 'node:child_process';
import { Lab, type SshServer, type WanSettings } from './lab.js';
import {
  agentStatus, createAgent, logTails, startOverlayAgent, stopAgent, waitOverlayReady, waitUntil, type AgentStatus, type TestAgent,
} from './agents.js';
import { gapAround, killSshSessions, sleep, sshClock } from './mobility-lab.js';
import type { StandbyStatus } from '../../agent/nat/standby.js';

export type MultihomedPeer = AgentStatus['peers'][number] & { standby: StandbyStatus | null };

/** One failover of the active uplink, and how the lab is put back so that it can run again. */
export interface FailoverCase {
  id: string;
  name: string;
  act: (ml: MultihomingLab) => Promise<void>;
  restore: (ml: MultihomingLab) => Promise<void>;
}

export const FAILOVER_CASES: readonly FailoverCase[] = [
  {
    id: 'mh1', name: '(1) the active uplink\'s link is cut',
    act: (ml) => ml.exec('m', ['ip', 'link', 'set', 'eth0', 'down']),
    // eth0 up with its default route again: the traffic returns to it, eth1 is the standby again.
    restore: async (ml) => {
      await ml.exec('m', ['ip', 'link', 'set', 'eth0', 'up']);
      await ml.exec('m', ['ip', 'route', 'replace', 'default', 'via', ml.gateway('m'), 'dev', 'eth0', 'metric', '0']);
    },
  },
  {
    id: 'mh2', name: '(2) the active uplink\'s router goes silent (link up, nothing forwarded)',
    act: (ml) => ml.exec('r-m', ['iptables', '-I', 'FORWARD', '1', '-j', 'DROP']),
    restore: (ml) => ml.exec('r-m', ['iptables', '-D', 'FORWARD', '-j', 'DROP']),
  },
];

/** What one failover did: the largest arrival gap, whether the session's keys stayed, where p sends now. */
export interface FailoverResult {
  gapMs: number;
  sshAlive: boolean;
  sameHandshakes: boolean;
  /** p now sends to m's mapping on r-m2 (the standby uplink). */
  movedToStandby: boolean;
  mp: MultihomedPeer;
  pm: MultihomedPeer;
}

export class MultihomingLab {
  readonly agents = new Map<string, TestAgent>();
  readonly arrivals: number[] = [];
  private clock: ChildProcess | undefined;
  private sshd: SshServer | undefined;

  private constructor(readonly lab: Lab) {}

  /** The lab, pub, m (two uplinks) and p joined with a rendezvous and their public mapping known, sshd on p. */
  static async create(opts: { wan?: WanSettings } = {}): Promise<MultihomingLab> {
    const lab = await Lab.create({
      hosts: ['pub'],
      natHosts: ['m', 'm2', 'p'].map((name) => ({ name, nat: 'cone' as const })),
      ...(opts.wan ? { wan: opts.wan } : {}),
    });
    const ml = new MultihomingLab(lab);
    try {
      await ml.setUp();
    } catch (e) {
      await ml.destroy();
      throw e;
    }
    return ml;
  }

  private async setUp(): Promise<void> {
    const { lab } = this;
    // m2's LAN link (and so r-m2) becomes m's second uplink, up, with a second default route.
    await this.exec('m2', ['ip', 'link', 'set', 'eth0', 'down']);
    await this.exec('m2', ['ip', 'link', 'set', 'eth0', 'name', 'eth1']);
    await this.exec('m2', ['ip', 'link', 'set', 'eth1', 'netns', lab.ns('m')]);
    await this.exec('m', ['ip', 'addr', 'add', `${lab.nat('m2').privateAddress}/24`, 'dev', 'eth1']);
    await this.exec('m', ['ip', 'link', 'set', 'eth1', 'up']);
    await this.exec('m', ['ip', 'route', 'add', 'default', 'via', this.gateway('m2'), 'dev', 'eth1', 'metric', '200']);
    for (const h of ['pub', 'm', 'p']) this.agents.set(h, await createAgent(lab, h));
    startOverlayAgent(lab, this.A('pub'), []);
    await waitOverlayReady(lab, this.A('pub'));
    for (const h of ['m', 'p']) startOverlayAgent(lab, this.A(h), [this.A('pub')]);
    await Promise.all(['m', 'p'].map((h) => waitOverlayReady(lab, this.A(h))));
    for (const h of ['m', 'p']) {
      await waitUntil(async () => ((await agentStatus(lab, this.A(h))).overlay?.rendezvous?.length ?? 0) > 0, 15_000, `${h} keeps a rendezvous`);
      await waitUntil(async () => ((await agentStatus(lab, this.A(h))) as { nat?: { public: string | null } | null }).nat?.public, 15_000, `${h} knows its public mapping`);
    }
    this.sshd = await lab.startSshd('p');
  }

  A(host: string): TestAgent {
    const a = this.agents.get(host);
    if (!a) throw new Error(`no agent in ${host}`);
    return a;
  }

  async exec(host: string, argv: string[]): Promise<void> {
    await this.lab.exec(host, argv);
  }

  /** The router of a NAT host's LAN (x.x.x.1 of its private /24). */
  gateway(host: string): string {
    return this.lab.nat(host).privateAddress.replace(/\.2$/, '.1');
  }

  evidence(lines = 30): string {
    return '\n' + logTails([...this.agents.values()], lines);
  }

  async peerOf(host: string, other: string): Promise<MultihomedPeer> {
    const st = await agentStatus(this.lab, this.A(host));
    return st.peers.find((x) => x.publicKey === this.A(other).id.publicKey) as MultihomedPeer;
  }

  /** m's standby on eth1 towards p has been answered, and p has heard m's other uplink. */
  async standbyReady(): Promise<boolean> {
    const mine = (await this.peerOf('m', 'p'))?.standby?.ours.find((o) => o.uplink === 'eth1');
    return mine?.answeredAgoMs !== null && mine?.answeredAgoMs !== undefined && (await this.peerOf('p', 'm'))?.standby?.theirs !== null;
  }

  /** p sends to m through r-m (eth0). */
  async onEth0(): Promise<boolean> {
    return (await this.peerOf('p', 'm')).endpoint?.startsWith(`${this.lab.publicAddress('m')}:`) ?? false;
  }

  /** m pings p, then ssh from m to p prints a 10 Hz clock whose arrivals go into `arrivals`. */
  async startClock(): Promise<void> {
    const pIpv4 = this.A('p').id.ipv4;
    const ping = await this.lab.exec('m', ['ping', '-c', '3', '-i', '0.2', '-W', '3', pIpv4], { allowFail: true, timeoutMs: 20_000 });
    if (ping.code !== 0) throw new Error(`m cannot ping p: ${ping.stdout}${this.evidence()}`);
    this.clock = sshClock(this.lab, this.sshd!, 'm', pIpv4, (arrived) => this.arrivals.push(arrived));
    const had = this.arrivals.length;
    await waitUntil(async () => this.arrivals.length >= had + 10, 10_000, 'the clock to arrive over ssh');
  }

  get sshAlive(): boolean {
    return this.clock !== undefined && this.clock.exitCode === null && this.clock.signalCode === null;
  }

  /** Wait for the traffic on eth0 with a fresh standby on eth1, then fail eth0 and watch `watchMs`. */
  async failover(c: FailoverCase, watchMs: number): Promise<FailoverResult> {
    await waitUntil(async () => (await this.peerOf('m', 'p')).standby?.pinned === null && await this.standbyReady(), 30_000,
      'a fresh standby on eth1 with the traffic on eth0');
    await waitUntil(() => this.onEth0(), 10_000, 'p to send to m through r-m');
    const handshakes = [(await this.peerOf('m', 'p')).lastHandshake, (await this.peerOf('p', 'm')).lastHandshake];
    await sleep(500);
    const t0 = Date.now();
    await c.act(this);
    const gapMs = await gapAround(this.arrivals, t0, watchMs);
    const [mp, pm] = [await this.peerOf('m', 'p'), await this.peerOf('p', 'm')];
    return {
      gapMs, sshAlive: this.sshAlive, mp, pm,
      sameHandshakes: mp.lastHandshake === handshakes[0] && pm.lastHandshake === handshakes[1],
      movedToStandby: pm.endpoint?.startsWith(`${this.lab.publicAddress('m2')}:`) ?? false,
    };
  }

  async destroy(): Promise<void> {
    if (this.clock?.pid) try { process.kill(-this.clock.pid, 'SIGKILL'); } catch { /* gone */ }
    if (this.sshd) await killSshSessions(this.lab, 'p', this.sshd);
    await Promise.all([...this.agents.values()].map((a) => stopAgent(this.lab, a)));
    await this.lab.destroy();
  }
}
