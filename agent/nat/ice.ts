// ICE (RFC 8445) on the agent's one socket, reduced to what a tunnel needs: one component, UDP, and the
// remote side's candidates from an overlay Attach (attach.ts). The Noise handshake then runs on the pair
// ICE selected; the tunnel's own roaming keeps it current afterwards.
//
//   session = newSession(role)          our ufrag/pwd/tie-breaker go into the Attach offer or answer
//   session.start(remote)               both sides call it as soon as they know the other's parameters:
//     1. checks to every remote candidate, highest priority first, ICE_CHECK_PACING_MS apart; each is a
//        STUN Binding request signed with the remote pwd (StunEndpoint.check), retransmitted ICE_CHECK_RTO_MS
//        doubling. Sending them is what opens our NAT for the other side's checks (hole punching), so both
//        sides check at once, and keep checking for the whole schedule even after a success.
//     2. a check that arrives from an address we are not checking yet (the other side's NAT mapped it
//        elsewhere: a peer-reflexive candidate) gets a triggered check back to that address.
//     3. the controlling side (the offerer) uses aggressive nomination (USE-CANDIDATE on every check); the
//        first direct pair whose check succeeds is selected, and start() resolves with the remote endpoint.
//        A relayed pair (the peer's relayed candidate, or an address reached through our TURN relay) that
//        answers first is held for ICE_RELAY_GRACE_MS, in case a direct pair answers too. The
//        controlled side resolves with the pair the controller nominated (a verified check carrying
//        USE-CANDIDATE that we answered), or with its own first success.
//     4. nothing within ICE_DIRECT_TIMEOUT_MS: start() resolves undefined ("no direct path"), while the
//        checks already sent run out their schedule (a late success: step 6).
//     5. probe(endpoints): checks sent once each, paced in bursts, no transaction kept (StunEndpoint.probe):
//        birthday probing of a hard NAT's ports (probe-sockets.ts). A probe that lands provokes a check
//        back from the other side, and the triggered check of step 2 to its source then verifies the pair.
//     6. a direct pair that answers after start() resolved (with nothing, or with a relayed pair) goes to
//        onLateSuccess: the caller moves the tunnel to it.
//   Incoming checks reach us through StunEndpoint's passwordFor/onCheck hooks: USERNAME "ours:theirs" picks
//   the session; sessions linger ICE_SESSION_LINGER_MS after they finish to keep answering.
//
//   Bounds (an Attach is the other side's word, and it names the addresses): checks go only to the remote
//   candidates and to sources of verified checks, and only where `allow` says (traversal.ts: the peer's own
//   address as the Attach's path observed it); at most ICE_MAX_TRIGGERED triggered checks per session; each
//   check draws on a per-peer and an overall token bucket (ICE_PEER_CHECK_BURST, ICE_CHECK_BURST), and one
//   that finds it empty is not sent. Refused checks and probes are counted (checksUnaimed, checksLimited,
//   triggeredCapped, probesUnaimed).
import { realScheduler, type Scheduler } from '../base/scheduler.js';
import {
  ICE_CHECK_MAX_TRANSMITS, ICE_CHECK_PACING_MS, ICE_CHECK_RTO_MS, ICE_DIRECT_TIMEOUT_MS, ICE_MAX_SESSIONS, ICE_RELAY_GRACE_MS,
  ICE_SESSION_LINGER_MS, HARD_NAT_SPRAY_BURST, HARD_NAT_SPRAY_INTERVAL_MS, ICE_CHECK_BURST, ICE_CHECKS_PER_S,
  ICE_MAX_TRIGGERED, ICE_PEER_CHECK_BURST, ICE_PEER_CHECKS_PER_S, ATTACH_GUARD_MAX_PEERS,
} from '../base/constants.js';
import { PerSourceRateLimit } from '../conn/rate-limit.js';
import { candidatePriority, IceCandidateType, newCredentials, type IceCandidate } from './attach.js';
import { endpointKey, type Endpoint } from '../conn/socket.js';
import type { CheckReply, IceCheckRequest, IncomingCheck, StunEndpoint } from './stun-endpoint.js';

export interface IceRemote { ufrag: string; pwd: string; candidates: IceCandidate[] }

export interface IceResult {
  remote: Endpoint;
  /** Round trip of the check that selected it (upper bound if it was retransmitted). */
  rttMs: number;
  /** The type of the remote candidate (a prflx one was learnt from the other side's checks). */
  type: IceCandidateType;
}

export interface IceStats {
  sessions: number;
  checksSent: number;
  checksSucceeded: number;
  checksAnswered: number;
  triggered: number;
  selected: number;
  noDirectPath: number;
  /** Checks sent once by probe() (birthday probing of a hard NAT). */
  probes: number;
  /** Direct pairs found after the session had settled for a relay or nothing. */
  lateSuccesses: number;
  unknownUsername: number;
  /** Checks and probes not sent: to an address `allow` refused, over a token bucket, over ICE_MAX_TRIGGERED. */
  checksUnaimed: number;
  checksLimited: number;
  triggeredCapped: number;
  probesUnaimed: number;
}

export class IceSession {
  readonly ufrag: string;
  readonly pwd: string;
  readonly tieBreaker: bigint;
  private remote: IceRemote | undefined;
  private readonly checking = new Set<string>();
  private result: IceResult | undefined;
  private resultRelayed = false;
  private nominated: IceResult | undefined;
  /** A relayed pair that answered, held back for ICE_RELAY_GRACE_MS in case a direct one does too. */
  private fallback: IceResult | undefined;
  /** Sources of checks that arrived before start(): triggered checks once we know the remote pwd. */
  private readonly early: Endpoint[] = [];
  private settle: ((r: IceResult | undefined) => void) | undefined;
  private done = false;
  private triggered = 0;
  /** Where this session may send checks and probes (set before start; traversal.ts aims it). */
  allow: (e: Endpoint) => boolean = () => true;
  /** A direct pair that answered after start() resolved without one (nothing, or a relayed pair). */
  onLateSuccess?: (r: IceResult) => void;

  /** Whose budget its checks draw on: the peer's NodeID (hex), else its own. */
  readonly peer: string;

  constructor(private readonly agent: IceAgent, readonly controlling: boolean, peer?: string) {
    const c = newCredentials();
    this.peer = peer ?? `session:${c.ufrag}`;
    this.ufrag = c.ufrag;
    this.pwd = c.pwd;
    this.tieBreaker = c.tieBreaker;
  }

  /** Run the checks against the remote side's parameters. */
  start(remote: IceRemote, timeoutMs = ICE_DIRECT_TIMEOUT_MS): Promise<IceResult | undefined> {
    if (this.remote) throw new Error('ICE session already started');
    this.remote = remote;
    const p = new Promise<IceResult | undefined>((resolve) => { this.settle = resolve; });
    const clock = this.agent.clock;
    const timer = clock.setTimer(timeoutMs, () => this.finish(this.fallback));
    const sorted = remote.candidates.slice().sort((a, b) => b.priority - a.priority);
    sorted.forEach((c, i) => {
      clock.setTimer(i * ICE_CHECK_PACING_MS, () => this.check(c, c.type));
    });
    for (const e of this.early) this.trigger(e);
    if (this.nominated) this.finish(this.nominated); // the controller's nomination beat our start
    return p.finally(() => timer.cancel());
  }

  /** Send one check to each endpoint, HARD_NAT_SPRAY_BURST every HARD_NAT_SPRAY_INTERVAL_MS, starting
   *  after `delayMs`; stops early once a direct pair was selected. Needs start() first. */
  probe(endpoints: readonly Endpoint[], delayMs = 0): void {
    const remote = this.remote;
    if (!remote) return;
    const aimed = endpoints.filter((e) => this.allow(e));
    this.agent.stats.probesUnaimed += endpoints.length - aimed.length;
    endpoints = aimed;
    if (endpoints.length === 0) return;
    const check = this.checkRequest(remote);
    let i = 0;
    const later = (ms: number) => this.agent.clock.setTimer(ms, burst);
    const burst = (): void => {
      if (this.result && !this.resultRelayed) return;
      const end = Math.min(endpoints.length, i + HARD_NAT_SPRAY_BURST);
      this.agent.stats.probes += end - i;
      for (; i < end; i++) this.agent.stun.probe(endpoints[i]!, check);
      if (i < endpoints.length) later(HARD_NAT_SPRAY_INTERVAL_MS);
    };
    later(delayMs);
  }

  /** A verified check from the other side (StunEndpoint calls this via the agent). */
  handleCheck(req: IncomingCheck): CheckReply {
    this.agent.stats.checksAnswered++;
    if (!this.remote) {
      // The other side started first (the answerer checks as soon as it has our offer): check back there as
      // soon as we start, instead of waiting for its next retransmission.
      if (this.early.length < 16 && !this.early.some((e) => e.address === req.from.address && e.port === req.from.port)) this.early.push({ ...req.from });
    } else if (!this.checking.has(endpointKey(req.from))) {
      // A triggered check back to where the other side's check came from: its NAT mapped it there (one of
      // its listed candidates, typically the srflx one, or else a new, peer-reflexive address).
      this.trigger({ address: req.from.address, port: req.from.port });
    }
    if (!this.controlling && req.useCandidate && !this.nominated) {
      this.nominated = { remote: { ...req.from }, rttMs: 0, type: IceCandidateType.Prflx };
      if (this.remote) this.finish(this.nominated);
    }
    return 'success';
  }

  private trigger(e: Endpoint): void {
    if (!this.remote || this.checking.has(endpointKey(e))) return;
    if (this.triggered >= ICE_MAX_TRIGGERED) { this.agent.stats.triggeredCapped++; return; }
    this.triggered++;
    this.agent.stats.triggered++;
    const listed = this.remote.candidates.find((c) => c.address === e.address && c.port === e.port);
    this.check(e, listed ? listed.type : IceCandidateType.Prflx);
  }

  private check(c: Endpoint, type: IceCandidateType): void {
    const remote = this.remote;
    if (!remote || this.checking.has(endpointKey(c))) return;
    if (!this.allow(c)) { this.agent.stats.checksUnaimed++; return; }
    if (!this.agent.spend(this.peer)) { this.agent.stats.checksLimited++; return; }
    this.checking.add(endpointKey(c));
    this.agent.stats.checksSent++;
    void this.agent.stun.check({ address: c.address, port: c.port }, this.checkRequest(remote), { rtoMs: ICE_CHECK_RTO_MS, maxTransmits: ICE_CHECK_MAX_TRANSMITS }).then((o) => {
      if (o.kind !== 'success') return;
      this.agent.stats.checksSucceeded++;
      const r: IceResult = { remote: { address: c.address, port: c.port }, rttMs: o.rttMs, type };
      const relayed = type === IceCandidateType.Relay || this.agent.relayed(r.remote);
      if (this.done) {
        if (!relayed && (!this.result || this.resultRelayed)) {
          this.setResult(r);
          this.agent.stats.lateSuccesses++;
          this.onLateSuccess?.(r);
        }
        return;
      }
      if (!relayed) { this.finish(r); return; }
      // A relayed pair answered: give direct pairs ICE_RELAY_GRACE_MS to answer too, since they are better
      // (lower latency, no relay bandwidth) and their checks may simply be a round trip behind.
      if (!this.fallback) {
        this.fallback = r;
        this.agent.clock.setTimer(ICE_RELAY_GRACE_MS, () => this.finish(this.fallback));
      }
    });
  }

  /** Our check, signed with the remote password; the controller nominates with every one (aggressive). */
  private checkRequest(remote: IceRemote): IceCheckRequest {
    return {
      username: `${remote.ufrag}:${this.ufrag}`, password: remote.pwd, priority: candidatePriority(IceCandidateType.Prflx),
      controlling: this.controlling, tieBreaker: this.tieBreaker, useCandidate: this.controlling,
    };
  }

  private setResult(r: IceResult): void {
    this.result = r;
    this.resultRelayed = r.type === IceCandidateType.Relay || this.agent.relayed(r.remote);
  }

  private finish(r: IceResult | undefined): void {
    if (this.done) return;
    this.done = true;
    if (r) this.setResult(r);
    if (r) this.agent.stats.selected++; else this.agent.stats.noDirectPath++;
    this.settle?.(r);
    this.agent.retire(this);
  }
}

/** Owns the sessions and answers the StunEndpoint's hooks for them. */
export class IceAgent {
  readonly stats: IceStats = {
    sessions: 0, checksSent: 0, checksSucceeded: 0, checksAnswered: 0, triggered: 0, selected: 0, noDirectPath: 0, unknownUsername: 0,
    probes: 0, lateSuccesses: 0, checksUnaimed: 0, checksLimited: 0, triggeredCapped: 0, probesUnaimed: 0,
  };
  private readonly sessions = new Map<string, IceSession>();
  private readonly perPeer: PerSourceRateLimit;
  private readonly overall: PerSourceRateLimit;

  /** `relayed(e)`: traffic to e goes through our TURN relay (such a pair is used only if no direct one answers). */
  constructor(readonly stun: StunEndpoint, readonly relayed: (e: Endpoint) => boolean = () => false, readonly clock: Scheduler = realScheduler) {
    const now = () => clock.now();
    this.perPeer = new PerSourceRateLimit({ ratePerSecond: ICE_PEER_CHECKS_PER_S, burst: ICE_PEER_CHECK_BURST, maxSources: ATTACH_GUARD_MAX_PEERS, now });
    this.overall = new PerSourceRateLimit({ ratePerSecond: ICE_CHECKS_PER_S, burst: ICE_CHECK_BURST, maxSources: 1, now });
  }

  /** `peer` (the peer's NodeID, hex) names the per-peer check budget; absent, the session has its own. */
  newSession(controlling: boolean, peer?: string): IceSession {
    if (this.sessions.size >= ICE_MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value!);
    const s = new IceSession(this, controlling, peer);
    this.sessions.set(s.ufrag, s);
    this.stats.sessions++;
    return s;
  }

  /** One check's worth of the peer's and the overall budget; false (nothing taken) if either is empty. */
  spend(peer: string): boolean {
    if (!this.perPeer.allow(peer)) return false;
    return this.overall.allow('');
  }

  /** StunEndpoint's passwordFor: USERNAME is "<our ufrag>:<their ufrag>". */
  passwordFor(username: string): string | undefined {
    const s = this.sessions.get(username.split(':', 1)[0]!);
    if (!s) this.stats.unknownUsername++;
    return s?.pwd;
  }

  /** StunEndpoint's onCheck: only verified checks get here. */
  onCheck(req: IncomingCheck): CheckReply {
    const s = this.sessions.get(req.username.split(':', 1)[0]!);
    return s ? s.handleCheck(req) : 'drop';
  }

  /** A finished session keeps answering the other side's checks for ICE_SESSION_LINGER_MS. */
  retire(s: IceSession): void {
    this.clock.setTimer(ICE_SESSION_LINGER_MS, () => { if (this.sessions.get(s.ufrag) === s) this.sessions.delete(s.ufrag); });
  }

  close(): void {
    this.sessions.clear();
  }
}
