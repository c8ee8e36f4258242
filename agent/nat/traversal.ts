// How the agent reaches a peer it found in the overlay, and how it lets a peer reach it through NATs.
//
//   Our candidates (what we publish in the locator and offer in Attach):
//     host: our interface addresses with the socket's port; srflx: our public mapping as the last netcheck
//     saw it (every agent answers STUN, so overlay members are the servers); behind a symmetric NAT that
//     allocates ports in order, Attach also offers the ports it likely gave the peer (nat/port-prediction.ts). Behind a NAT we also keep
//     rendezvous keepalives to a few overlay nodes and name them in the locator, so Attach can reach us.
//
//   Reaching a found peer (its locator in hand):
//     1. no rendezvous in its locator (it is not behind a NAT, by its own netcheck): its best candidate
//        is the tunnel endpoint, the handshake goes there at once (the fast path: no Attach round trip).
//     2. else ATTACH through its rendezvous nodes (overlay routing, Via back): our signed offer
//        (attach.ts), its signed answer. Both sides run ICE checks at once (ice.ts); the selected pair
//        becomes the tunnel endpoint and the handshake follows on it.
//     3. one side behind a NAT that maps each destination to a random port ("hard": netcheck saw
//        endpoint-dependent mapping and no order), the other behind an "easy" one (Attach says which):
//        birthday probing. The hard side opens PROBE_SOCKETS_COUNT sockets towards the easy side's srflx
//        and checks from each; the easy side sprays checks to HARD_NAT_SPRAY_COUNT random ports of the
//        hard side's address. One landing makes a direct pair (nat/probe-sockets.ts).
//     4. no direct pair within ICE_DIRECT_TIMEOUT_MS: a TURN relay's pair, else a peer relay, else "no
//        direct path", with the reason; a direct pair that answers later (onDirect) moves the tunnel.
//   Being reached: an ATTACH for us is checked (puzzle, target = us, fresh, signature, not a replay, within
//   its sender's rate: attach-guard.ts), answered with our offer of candidates, and our checks toward the
//   offerer start at once (they open our NAT for its checks).
//   Aiming, both ways: checks go only to offered candidates at the address the Attach's path observed for
//   the peer (or on our own LAN, or its one TURN relay), and birthday probing only at its srflx there
//   (attach-guard.ts), so an Attach cannot point our packets at a third party.
import { realScheduler, type Scheduler } from '../base/scheduler.js';
import type { Logger } from 'pino';
import {
  ATTACH_MAX_CANDIDATES, HARD_NAT_SPRAY_COUNT, HARD_NAT_SPRAY_DELAY_MS, ICE_DIRECT_TIMEOUT_MS, ICE_RELAY_TIMEOUT_MS,
  PORT_PREDICTION_COUNT, PROBE_SOCKETS_COUNT, TRAVERSAL_ANSWERED_REASONS_MAX,
} from '../base/constants.js';
import { allocationOrder, predictPorts, sprayPorts } from './port-prediction.js';
import { nodeIdFromPublicKey } from '../idloc/addresses.js';
import type { Identity } from '../idloc/identity.js';
import {
  candidatePriority, IceCandidateType, marshalAttach, parseAttach, type AttachParams, type AttachRefusal, type IceCandidate,
  type NatHint,
} from './attach.js';
import { AttachGuard, normalAddress, replayKey, type Aim } from './attach-guard.js';
import type { IceAgent, IceResult, IceSession } from './ice.js';
import type { ProbeSockets } from '../conn/probe-sockets.js';
import { summarizeNetcheck, type NetcheckReport } from './netcheck.js';
import { endpointKey, type Endpoint } from '../conn/socket.js';
import type { LocatorRecord } from '../overlay/records.js';
import type { OverlayNode } from '../overlay/node.js';
import type { TurnRelay } from './turn-relay.js';
import type { PeerRelayClient } from './peer-relay-client.js';
import { hex } from '../base/bytes.js';
import { familyOf } from '../base/ip-text.js';
import { noFamilyInCommon, type PathChoice } from './path-choice.js';

export { DIRECT, rank, type PathChoice } from './path-choice.js';


export interface TraversalOptions {
  identity: Identity;
  node: OverlayNode;
  ice: IceAgent;
  /** Host candidates: our interface addresses with the socket's port. */
  hostEndpoints: () => Endpoint[];
  /** Server-reflexive candidates beyond netcheck's: our other uplinks' public mappings (nat/standby.ts). */
  otherMappings?: () => Endpoint[];
  /** Our TURN relay, if configured: its relayed candidate is offered, peers' addresses are permitted. */
  turn?: TurnRelay;
  /** Paths through the peer's rendezvous nodes, the last resort (absent: never relay through peers). */
  peerRelay?: Pick<PeerRelayClient, 'towardsClient' | 'reverify'>;
  /** Where relayed candidates peers offer are noted (the underlay), so their tunnels count as relayed. */
  peersTurnRelays?: { notePeersTurnRelay(e: Endpoint): void };
  /** Sockets for birthday probing when we are the hard side (absent: port probing is off, in either role). */
  probes?: Pick<ProbeSockets, 'open' | 'route'>;
  logger: Logger;
  /** Attach offers and answers are stamped and checked against this clock. */
  clock?: Scheduler;
  /** An Attach with no observation of its sender at all (relayed through forwarders that do not report
   *  originObserved, or onAttach called without its context) from a node our routing table does not
   *  have: true (the default) aims at the offer's own public address, within the probing budgets; false
   *  checks nothing and does not probe. A direct Attach whose source the table contradicts never falls
   *  back to the claim. Set false once forwarders report originObserved and onAttach gets its context. */
  aimUnobserved?: boolean;
}

const TYPE_NAMES = ['host', 'srflx', 'relay', 'prflx'];

/** What onAttach needs of node-attach.ts's AttachContext. */
export interface AttachObservation { observed?: Endpoint | undefined; relayed?: boolean }

export class Traversal {
  private netcheck: NetcheckReport | undefined;
  private readonly guard = new AttachGuard(() => this.clock.now());
  /** Peers (NodeID hex) whose last Attach offer shared no address family with us: the reason. */
  private readonly answered = new Map<string, string>();
  readonly stats = {
    attachSent: 0, attachAnswered: 0, attachRefused: 0, attachFailed: 0, peerRelayed: 0, portsPredicted: 0,
    /** Birthday probing: as the hard side (sockets opened), as the easy side (sprays sent). */
    probeSocketsOpened: 0, sprays: 0,
    /** Attach offers refused by the codec's checks, and answers that were no answer. */
    attachRefusedBy: { malformed: 0, 'no-puzzle': 0, 'wrong-target': 0, stale: 0, 'bad-signature': 0, 'not-offer': 0 } as Record<AttachRefusal | 'not-offer', number>,
    /** What attach-guard.ts refused: replays, over-rate senders, unaimed candidates and probing. */
    attachGuard: this.guard.refused,
  };

  private readonly clock: Scheduler;

  constructor(private readonly o: TraversalOptions) {
    this.clock = o.clock ?? realScheduler;
  }

  /** The last netcheck: sets our srflx candidate and whether we need rendezvous. */
  setNetcheck(r: NetcheckReport): void {
    this.netcheck = r;
  }

  /** A new public mapping learned from one STUN answer (an ICE restart after a move): the srflx candidate
   *  offered from now on. The rest of the last netcheck stands until the next full one replaces it
   *  (before any netcheck there is nothing to restart). */
  setPublicEndpoint(e: Endpoint): void {
    const r = this.netcheck;
    if (!r) return;
    const f = familyOf(e.address);
    const fam = (x: NetcheckReport) => x.family ?? (x.publicEndpoint && familyOf(x.publicEndpoint.address));
    if (r.other && fam(r.other) === f) this.netcheck = { ...r, other: { ...r.other, publicEndpoint: e } };
    else if (fam(r) === f || fam(r) === undefined) this.netcheck = { ...r, publicEndpoint: e };
  }

  get behindNat(): boolean { return this.netcheck?.behindNat === true; }

  /** No NAT was found, but whether a firewall filters was not told (no server with a second port answered). */
  get firewallUntested(): boolean { return this.netcheck?.behindNat === false && this.netcheck.filtering === 'unknown'; }

  /** Did the last netcheck we kept get an answer (a public endpoint)? */
  get netcheckAnswered(): boolean { return this.netcheck?.udp === true; }

  /** For status: what the last netcheck said. */
  natStatus(): { behindNat: boolean | undefined; mapping: string; public: string | null; summary: string } | null {
    const r = this.netcheck;
    if (!r) return null;
    return { behindNat: r.behindNat, mapping: r.mapping, public: r.publicEndpoint ? endpointKey(r.publicEndpoint) : null, summary: summarizeNetcheck(r) };
  }

  /** What our Attach says of our NAT: 'hard' only if we can open probe sockets for it. */
  natHint(): NatHint {
    const r = this.netcheck;
    if (!r || r.behindNat === undefined) return 'unknown';
    if (!r.behindNat) return 'none';
    if (r.mapping === 'endpoint-independent') return 'easy';
    if (r.mapping === 'endpoint-dependent' && !allocationOrder(r) && this.o.probes) return 'hard';
    // Behind a NAT whose mapping no server could tell (one plain STUN server): it may be hard, so probe
    // as a hard NAT would before settling for a relay (an easy peer sprays, we open probe sockets).
    if (r.mapping === 'unknown' && this.o.probes) return 'hard';
    return 'unknown';
  }

  /** Our candidates, best first: host addresses, then the server-reflexive one if it differs, then our
   *  other uplinks' mappings. */
  candidates(): IceCandidate[] {
    const out: IceCandidate[] = this.o.hostEndpoints().map((e, i) => ({ ...e, type: IceCandidateType.Host, priority: candidatePriority(IceCandidateType.Host, i) }));
    // The mapping of each family the netcheck asked (an IPv6 one is mostly our host address: no NAT66),
    // while we still have an address of that family.
    const families = new Set(out.map((c) => familyOf(c.address)));
    for (const pub of [this.netcheck?.publicEndpoint, this.netcheck?.other?.publicEndpoint]) {
      if (pub && (families.size === 0 || families.has(familyOf(pub.address))) && !out.some((c) => c.address === pub.address && c.port === pub.port)) {
        out.push({ ...pub, type: IceCandidateType.Srflx, priority: candidatePriority(IceCandidateType.Srflx) });
      }
    }
    for (const [i, m] of (this.o.otherMappings?.() ?? []).entries()) {
      if (!out.some((c) => c.address === m.address && c.port === m.port)) {
        out.push({ ...m, type: IceCandidateType.Srflx, priority: candidatePriority(IceCandidateType.Srflx, 1 + i) });
      }
    }
    out.push(...(this.o.turn?.candidates() ?? []));
    return out;
  }

  /** What an Attach offers: our candidates, and behind a symmetric NAT that allocates in sequence, the
   *  ports it will likely give our checks (nat/port-prediction.ts). */
  private offerCandidates(): IceCandidate[] {
    const base = this.candidates();
    const order = this.netcheck ? allocationOrder(this.netcheck) : undefined;
    if (!order) return base;
    const predicted = predictPorts(order, Math.min(PORT_PREDICTION_COUNT, ATTACH_MAX_CANDIDATES - base.length));
    this.stats.portsPredicted += predicted.length;
    const prio = candidatePriority(IceCandidateType.Srflx);
    return [...base, ...predicted.map((e, k) => ({ ...e, type: IceCandidateType.Srflx, priority: prio - 1 - k }))];
  }

  /** Where to send the handshake for a peer found with this locator (see the top of the file). */
  async reach(locator: LocatorRecord, attempt = 0, onDirect?: (c: PathChoice) => void): Promise<PathChoice> {
    const rdv = locator.value?.rendezvous ?? [];
    const cands = (locator.value?.candidates ?? []).slice().sort((a, b) => b.priority - a.priority);
    if (rdv.length === 0) {
      const best = cands[0];
      return best
        ? { how: 'locator', endpoint: { address: best.address, port: best.port }, type: best.type, reason: `the peer's locator names ${endpointKey(best)} (not behind a NAT)` }
        : { how: 'attach-failed', reason: 'the peer published no candidates and no rendezvous' };
    }
    const via = await this.o.node.rendezvousEndpoints(locator);
    // Also through our own rendezvous nodes (source-routed on to the peer's): a host whose UDP reaches only
    // a few overlay members still gets its Attach to the peer's rendezvous that way.
    const ours = this.o.node.rendezvous.current().filter((c) => !rdv.some((id) => hex(id) === hex(c.nodeId)));
    const routes = ours.map((c, i) => ({ to: c.endpoint, hops: [rdv[i % rdv.length]!] }));
    if (via.length + routes.length === 0) return { how: 'attach-failed', reason: 'none of the peer\'s rendezvous nodes could be found' };
    const target = nodeIdFromPublicKey(locator.owner);
    const session = this.o.ice.newSession(true, hex(target));
    const offer = marshalAttach({
      role: 'offer', sender: this.o.identity.publicKey, target, created: this.clock.now(), tieBreaker: session.tieBreaker,
      puzzleNonce: this.o.node.puzzleNonce, ufrag: session.ufrag, pwd: session.pwd, candidates: this.offerCandidates(), nat: this.natHint(),
    }, this.o.identity.privateKey);
    this.stats.attachSent++;
    const res = await this.o.node.attacher.attachObserved(target, via, offer, { routes });
    const answer = res ? parseAttach(res.blob, this.o.identity.nodeId, this.clock.now(), this.o.node.puzzleDifficulty) : undefined;
    if (!answer?.ok || hex(answer.params.sender) !== hex(locator.owner) || answer.params.role !== 'answer') {
      this.stats.attachFailed++;
      return { how: 'attach-failed', reason: answer ? `the peer's Attach answer was refused (${answer.ok ? 'another key, or not an answer' : answer.reason})` : `no Attach answer through ${via.map(endpointKey).join(', ')}` };
    }
    const aim = this.aim(answer.params, this.observedFor(target, { relayed: true, ...(res?.observed ? { observed: res.observed } : {}) }));
    session.allow = this.allowFor(aim);
    // The peer's checks to our relayed candidate get through only once the relay permits its addresses.
    const relayOnEitherSide = this.hasRelay(aim.candidates);
    this.notePeerRelays(aim.candidates);
    void this.o.turn?.permit(aim.candidates.map((c) => c.address));
    const started = session.start({ ...answer.params, candidates: aim.candidates }, relayOnEitherSide ? ICE_RELAY_TIMEOUT_MS : ICE_DIRECT_TIMEOUT_MS);
    if (onDirect) session.onLateSuccess = (late) => onDirect(this.chosen(late));
    const probing = this.punchHardNat(session, answer.params, aim, hex(target));
    const r = await started;
    if (r) return this.chosen(r, this.familyReason(aim.candidates));
    const why = this.noDirectReason(aim.candidates, probing) + (relayOnEitherSide ? '; no TURN relay answered either' : '; no TURN relay on either side');
    const relays = this.o.peerRelay ? await this.relaysOf(locator) : [];
    const relay = relays[attempt % Math.max(1, relays.length)];
    if (!this.o.peerRelay || !relay) return { how: 'no-direct-path', reason: why };
    this.stats.peerRelayed++;
    return {
      how: 'peer-relay', endpoint: this.o.peerRelay.towardsClient(relay, target),
      reason: `via peer relay ${endpointKey(relay)} (the peer's rendezvous node): ${why}`,
    };
  }

  /** A relayed path to bridge a broken direct one while ICE looks for a new pair (path-keeper.ts): through
   *  one of the peer's rendezvous nodes (the peer relay; a TURN allocation of ours is bound to the address
   *  we just left). The relay checks our source again first: it may be new. */
  async bridgeVia(locator: LocatorRecord): Promise<{ endpoint: Endpoint; relay: Endpoint } | undefined> {
    if (!this.o.peerRelay) return undefined;
    const relay = (await this.relaysOf(locator))[0];
    if (!relay) return undefined;
    this.o.peerRelay.reverify(relay);
    return { endpoint: this.o.peerRelay.towardsClient(relay, nodeIdFromPublicKey(locator.owner)), relay };
  }

  /** The peer's rendezvous nodes that can relay to it: not us, where we are one (for Attach that entry
   *  stands for the peer's own endpoint, which is no relay). Those that are our rendezvous nodes too come
   *  first: they answered our keepalives lately, and a locator may still name one that died. */
  private async relaysOf(locator: LocatorRecord): Promise<Endpoint[]> {
    const rendezvous = (locator.value?.rendezvous ?? []).filter((id) => hex(id) !== hex(this.o.identity.nodeId));
    if (!locator.value || rendezvous.length === 0) return [];
    const ours = this.hostFamilies();
    const relays = (await this.o.node.rendezvousEndpoints({ ...locator, value: { ...locator.value, rendezvous } })).filter((e) => ours.has(familyOf(e.address)));
    const live = new Set(this.o.node.rendezvous.current().map((c) => endpointKey(c.endpoint)));
    return [...relays.filter((e) => live.has(endpointKey(e))), ...relays.filter((e) => !live.has(endpointKey(e)))];
  }

  /** The overlay's onAttach: an offer for us. Answer with our candidates and start checking at once.
   *  `ctx` is node-attach.ts's AttachContext: where the Attach's path saw the offerer, and whether it was
   *  relayed (see observedFor). */
  onAttach(blob: Uint8Array, ctx: AttachObservation = {}): Uint8Array | undefined {
    const key = replayKey(blob);
    if (!this.guard.fresh(key)) { this.stats.attachRefused++; return undefined; }
    const v = parseAttach(blob, this.o.identity.nodeId, this.clock.now(), this.o.node.puzzleDifficulty);
    const refusal = !v.ok ? v.reason : v.params.role !== 'offer' ? 'not-offer' : undefined;
    if (refusal || !v.ok) { this.stats.attachRefused++; this.stats.attachRefusedBy[refusal ?? 'malformed']++; return undefined; }
    if (!this.guard.admit(key!, v.params)) { this.stats.attachRefused++; return undefined; }
    const peer = nodeIdFromPublicKey(v.params.sender);
    const aim = this.aim(v.params, this.observedFor(peer, ctx));
    const session = this.o.ice.newSession(false, hex(peer));
    const family = this.familyReason(aim.candidates);
    if (this.answered.size >= TRAVERSAL_ANSWERED_REASONS_MAX) this.answered.clear();
    if (family) this.answered.set(hex(peer), family); else this.answered.delete(hex(peer));
    session.allow = this.allowFor(aim);
    this.notePeerRelays(aim.candidates);
    void this.o.turn?.permit(aim.candidates.map((c) => c.address));
    void session.start({ ...v.params, candidates: aim.candidates }, this.hasRelay(aim.candidates) ? ICE_RELAY_TIMEOUT_MS : ICE_DIRECT_TIMEOUT_MS).then((r) => {
      if (r) this.o.logger.debug({ peer: hex(peer), remote: endpointKey(r.remote) }, 'ICE pair selected (controlled)');
    });
    // The offerer moves its tunnel to a pair found late; ours follows its handshake there (roaming).
    this.punchHardNat(session, v.params, aim, hex(peer));
    this.stats.attachAnswered++;
    return marshalAttach({
      role: 'answer', sender: this.o.identity.publicKey, target: peer, created: this.clock.now(),
      tieBreaker: session.tieBreaker, puzzleNonce: this.o.node.puzzleNonce, ufrag: session.ufrag, pwd: session.pwd,
      candidates: this.offerCandidates(), nat: this.natHint(),
    }, this.o.identity.privateKey);
  }

  /** Where the Attach's path saw `peer`: a forwarder's report; the source of one straight from it only if
   *  our routing table has it there (a source address can be spoofed), else null (no stand-in either);
   *  with no report, the routing table's address. */
  private observedFor(peer: Uint8Array, ctx: AttachObservation): Endpoint | undefined | null {
    const known = this.o.node.kad.table.get(peer)?.endpoint;
    if (!ctx.observed) return known;
    if (ctx.relayed === true) return ctx.observed;
    if (known && normalAddress(known.address) === normalAddress(ctx.observed.address)) return ctx.observed;
    this.guard.refused['direct-unverified']++;
    return null;
  }

  /** Which of the peer's candidates we may check, and where probing may aim (attach-guard.ts). */
  private aim(peer: AttachParams, observed: Endpoint | undefined | null): Aim {
    const ours = { publicAddress: this.netcheck?.publicEndpoint?.address, hosts: this.o.hostEndpoints() };
    return this.guard.aim(peer, observed ?? undefined, ours, observed === undefined && this.o.aimUnobserved !== false);
  }

  /** The session's `allow`: an aimed address, or a probe socket of ours opened towards one. */
  /** Not one of a family we have no address in (a check there could only fail to send), unless our TURN
   *  relay may carry it. */
  private allowFor(aim: Aim): (e: Endpoint) => boolean {
    const ours = this.hostFamilies();
    return (e) => {
      const probe = this.o.probes?.route(e);
      if (probe) return aim.addresses.has(normalAddress(probe.remote.address));
      return aim.addresses.has(normalAddress(e.address)) && (ours.has(familyOf(e.address)) || this.o.turn?.candidate() !== undefined);
    };
  }

  /** The address families of our host candidates. */
  hostFamilies(): Set<4 | 6> {
    return new Set(this.o.hostEndpoints().map((e) => familyOf(e.address)));
  }

  /** Birthday probing when one side is hard and the other easy (step 3 at the top), aimed only at the
   *  peer's srflx where its path observed it, and within attach-guard.ts's probing budget; what was tried,
   *  for the reason status gives if nothing landed. */
  private punchHardNat(session: IceSession, peer: AttachParams, aim: Aim, peerKey: string): string | undefined {
    const ours = this.natHint();
    const wanted = (ours === 'hard' && peer.nat === 'easy') || (ours === 'easy' && peer.nat === 'hard');
    if (!wanted || !this.o.probes || !peer.candidates.some((c) => c.type === IceCandidateType.Srflx)) return undefined;
    const srflx = aim.srflx;
    if (!this.guard.mayProbe(peerKey, srflx?.address) || !srflx) {
      return srflx ? `birthday probing towards ${srflx.address} was skipped: it was probed moments ago` : 'no birthday probing: the peer\'s public candidate is not the address its Attach came from';
    }
    if (ours === 'hard') {
      void this.o.probes.open(srflx, PROBE_SOCKETS_COUNT).then((virtuals) => {
        this.stats.probeSocketsOpened += virtuals.length;
        session.probe(virtuals);
      });
      return `${PROBE_SOCKETS_COUNT} probe sockets towards the peer's ${endpointKey(srflx)} were not reached by its probes`;
    }
    this.stats.sprays++;
    session.probe(sprayPorts(srflx.address, HARD_NAT_SPRAY_COUNT, [srflx.port]), HARD_NAT_SPRAY_DELAY_MS);
    return `${HARD_NAT_SPRAY_COUNT} probes to random ports of ${srflx.address} found none of its probe sockets`;
  }

  private notePeerRelays(remote: IceCandidate[]): void {
    for (const c of remote) if (c.type === IceCandidateType.Relay) this.o.peersTurnRelays?.notePeersTurnRelay(c);
  }

  private hasRelay(remote: IceCandidate[]): boolean {
    return this.o.turn?.candidate() !== undefined || remote.some((c) => c.type === IceCandidateType.Relay);
  }

  /** `family`: why no pair could be direct, when our families and the peer's do not meet. */
  private chosen(r: IceResult, family?: string): PathChoice {
    const probe = this.o.probes?.route(r.remote);
    if (probe) {
      return {
        how: 'ice', endpoint: r.remote, type: r.type, rttMs: r.rttMs,
        reason: `ICE after birthday probing: the peer's ${endpointKey(probe.remote)} reached our probe socket (port ${probe.local.port}) through this host's random-port NAT (${r.rttMs.toFixed(1)} ms)`,
      };
    }
    if (this.o.turn?.relays(r.remote)) {
      return {
        how: 'turn', endpoint: r.remote, type: r.type, rttMs: r.rttMs,
        reason: `via TURN relay ${this.o.turn.serverKey}: ${family ?? `no direct pair answered first (${this.netcheck?.mapping === 'endpoint-dependent' ? 'this host is behind a symmetric NAT' : 'the NATs between us filter'})`}`,
      };
    }
    if (r.type === IceCandidateType.Relay) {
      return { how: 'turn', endpoint: r.remote, type: r.type, rttMs: r.rttMs, reason: `via the peer's TURN relay ${endpointKey(r.remote)}: ${family ?? 'no direct pair answered first'}` };
    }
    return {
      how: 'ice', endpoint: r.remote, type: r.type, rttMs: r.rttMs,
      reason: `ICE: ${TYPE_NAMES[r.type] ?? 'unknown'} candidate ${endpointKey(r.remote)} answered our check (${r.rttMs.toFixed(1)} ms)`,
    };
  }

  private familyReason(remote: readonly IceCandidate[]): string | undefined {
    const direct = (c: IceCandidate) => c.type !== IceCandidateType.Relay;
    return noFamilyInCommon(this.candidates().filter(direct), remote.filter(direct));
  }

  /** For status, on a path the peer chose (it reached us through a relay): why it could not be direct,
   *  when its last Attach to us told. */
  answeredReason(peerNodeIdHex: string): string | undefined {
    return this.answered.get(peerNodeIdHex);
  }

  private noDirectReason(remote: IceCandidate[], probing: string | undefined): string {
    const family = this.familyReason(remote);
    if (family) return family;
    const ours = this.netcheck?.mapping;
    const theirsSrflx = remote.some((c) => c.type === IceCandidateType.Srflx);
    if (probing) return `no direct path yet: one side is behind a NAT that picks ports at random; ${probing}`;
    if (ours === 'endpoint-dependent') {
      const predicted = this.netcheck && allocationOrder(this.netcheck) ? 'the ports it predicted got no answer' : 'it picks ports at random, so none could be predicted';
      return `no direct path: this host is behind a symmetric NAT (endpoint-dependent mapping; ${predicted}) and the peer's NAT filters`;
    }
    if (!theirsSrflx) return 'no direct path: the peer offered no public (server-reflexive) candidate';
    return 'no direct path: no connectivity check got through (the peer\'s NAT is symmetric, or UDP is blocked)';
  }
}
