// The firewall by identity: inbound packets from a peer's tunnel pass if a rule admits that peer for their
// protocol and local port, or if they answer a flow this host started (noteOutbound on the way out);
// everything else is dropped and counted by reason. With no rules at all every packet passes.
//
// What counts as an answer, per protocol (local = this host's side):
//   TCP/UDP   the reversed (local port, remote port) of a tracked outbound flow; TCP's flags move the
//             flow between opening, established, closing and reset, each with its own idle timeout
//   ICMP      an echo reply to a tracked echo request (by identifier); an error (unreachable, too big,
//             time exceeded, parameter problem) quoting a packet of a tracked flow, or of a connection a
//             rule admits (path MTU discovery for a connection the peer opened must work too)
//   fragments a datagram's later fragments pass when its first one did (by IP identification), or when a
//             rule admits the protocol on every port; otherwise they are dropped (no ports to check)
// Outbound packets a rule would admit anyway (a server's replies) are not tracked: they need no entry.
//
// Per packet: one parse into reused fields, a few compares, one or two flow table probes; nothing allocated.
import {
  FW_FRAGMENT_MS, FW_ICMP_ECHO_MS, FW_TCP_CLOSING_MS, FW_TCP_ESTABLISHED_MS, FW_TCP_OPENING_MS, FW_TCP_RESET_MS,
  FW_UDP_REPLIED_MS, FW_UDP_UNREPLIED_MS,
} from '../base/constants.js';
import { realScheduler, type Scheduler } from '../base/scheduler.js';
import { FlowTable, KIND_ECHO, KIND_FRAG, KIND_TCP, KIND_UDP, KIND_V6, type FlowTableStats } from './flows.js';
import {
  echoReplyType, echoRequestType, FRAG_FIRST, FRAG_LATER, isIcmp, isIcmpError, PacketFields, PROTO_TCP, PROTO_UDP,
  readPacket, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN,
} from './packet.js';
import { compileInto, PeerPolicy, type PeerIdentity } from './policy.js';
import type { FirewallRule } from './rules.js';

export interface FirewallStats {
  allowedByRule: number;
  /** Replies to this host's flows: TCP/UDP, echo replies, ICMP errors quoting them, later fragments. */
  allowedAsReply: number;
  droppedNoRule: number;
  /** Truncated, bad lengths, too many IPv6 extension headers, not IPv4/IPv6. */
  droppedMalformed: number;
  /** Later fragments of a datagram whose first fragment was not let in (or not seen). */
  droppedFragment: number;
}

export interface FirewallOptions {
  clock?: Pick<Scheduler, 'now'>;
  /** Flow table slots (a power of two); FW_FLOW_CAPACITY by default. */
  flowCapacity?: number;
}

// Flow states (FlowTable.state) per kind.
const TCP_OPENING = 0;
const TCP_ESTABLISHED = 1;
const TCP_CLOSING = 2;
const TCP_RESET = 3;
const UDP_UNREPLIED = 0;
const UDP_REPLIED = 1;
const TCP_TTL = [FW_TCP_OPENING_MS, FW_TCP_ESTABLISHED_MS, FW_TCP_CLOSING_MS, FW_TCP_RESET_MS];

// Verdicts of judge().
const NO = 0;
const BY_RULE = 1;
const AS_REPLY = 2;

/** Peer ids run 1..2^32-1 and are not reused before they wrap, so a departed peer's flows (forget() drops
 *  them anyway) can never answer for a newcomer. */
const MAX_PEER_ID = 0xffffffff;

export class Firewall {
  readonly stats: FirewallStats = { allowedByRule: 0, allowedAsReply: 0, droppedNoRule: 0, droppedMalformed: 0, droppedFragment: 0 };
  private readonly flows: FlowTable;
  private readonly clock: Pick<Scheduler, 'now'>;
  private readonly f = new PacketFields();
  private readonly q = new PacketFields();
  private nextId = 1;

  constructor(readonly rules: readonly FirewallRule[], o: FirewallOptions = {}) {
    this.clock = o.clock ?? realScheduler;
    this.flows = new FlowTable(o.flowCapacity);
  }

  get flowStats(): Readonly<FlowTableStats> { return this.flows.stats; }

  /** Flows live now (scans the table: for status, not per packet). */
  flowsLive(): number { return this.flows.live(this.clock.now()); }

  /** One line for `status`. */
  describe(): string {
    const n = this.rules.length;
    if (n === 0) return 'no inbound rules: every member may reach every port';
    return `${n} inbound rule${n === 1 ? '' : 's'}, default drop (replies to this host's own flows pass)`;
  }

  /** A new peer's policy, with a fresh id (the flow table's key for it). */
  compileFor(who: PeerIdentity): PeerPolicy {
    const p = new PeerPolicy(this.nextId);
    this.nextId = this.nextId === MAX_PEER_ID ? 1 : this.nextId + 1;
    this.recompile(p, who);
    return p;
  }

  /** The peer's names or groups changed: same policy object and id, so its flows stay. Cheap; any time. */
  recompile(p: PeerPolicy, who: PeerIdentity): void {
    compileInto(p, this.rules, who);
    if (this.rules.length === 0) p.all = true;
  }

  /** The peer left: drop its flows (O(flow capacity)). */
  forget(p: PeerPolicy): void { this.flows.forgetPeer(p.id); }

  /** A whole IP packet this host sends to the peer: record the flow its replies will belong to. */
  noteOutbound(p: PeerPolicy, packet: Uint8Array): void {
    if (p.all) return;
    const f = this.f;
    if (!readPacket(packet, 0, packet.length, false, f) || f.fragment === FRAG_LATER) return;
    const v6 = f.version === 6 ? KIND_V6 : 0;
    const now = this.clock.now();
    const fl = this.flows;
    if (f.proto === PROTO_TCP) {
      if (p.tcpPort(f.srcPort)) return;
      const word = (f.srcPort << 16) | f.dstPort;
      const flags = f.tcpFlags;
      const slot = fl.find(p.id, KIND_TCP + v6, word, now);
      let state: number;
      if (flags & TCP_RST) { if (slot >= 0) fl.update(slot, TCP_RESET, now, FW_TCP_RESET_MS); return; }
      if (flags & TCP_FIN) state = TCP_CLOSING;
      else if ((flags & (TCP_SYN | TCP_ACK)) === TCP_SYN) state = TCP_OPENING;
      else if (slot >= 0 && fl.stateAt(slot) >= TCP_CLOSING) state = fl.stateAt(slot);
      else state = TCP_ESTABLISHED;
      fl.upsert(p.id, KIND_TCP + v6, word, state, now, TCP_TTL[state]!);
    } else if (f.proto === PROTO_UDP) {
      if (p.udpPort(f.srcPort)) return;
      const word = (f.srcPort << 16) | f.dstPort;
      const slot = fl.find(p.id, KIND_UDP + v6, word, now);
      const state = slot >= 0 ? fl.stateAt(slot) : UDP_UNREPLIED;
      fl.upsert(p.id, KIND_UDP + v6, word, state, now, state === UDP_REPLIED ? FW_UDP_REPLIED_MS : FW_UDP_UNREPLIED_MS);
    } else if (isIcmp(f)) {
      if (!p.icmp && f.icmpType === echoRequestType(f.version)) fl.upsert(p.id, KIND_ECHO + v6, f.echoId, 0, now, FW_ICMP_ECHO_MS);
    }
  }

  /** A whole IP packet from the peer's tunnel (source and destination already checked): may it in? */
  allowInbound(p: PeerPolicy, packet: Uint8Array): boolean {
    const s = this.stats;
    if (p.all) { s.allowedByRule++; return true; }
    const f = this.f;
    if (!readPacket(packet, 0, packet.length, false, f)) { s.droppedMalformed++; return false; }
    const now = this.clock.now();
    const v6 = f.version === 6 ? KIND_V6 : 0;
    if (f.fragment === FRAG_LATER) {
      const whole = f.proto === PROTO_TCP ? p.tcpAll : f.proto === PROTO_UDP ? p.udpAll : isIcmp(f) && p.icmp;
      if (whole) { s.allowedByRule++; return true; }
      if (this.flows.find(p.id, KIND_FRAG + v6, f.fragId, now) >= 0) { s.allowedAsReply++; return true; }
      s.droppedFragment++;
      return false;
    }
    const verdict = this.judge(p, packet, f, v6, now);
    if (verdict === NO) { s.droppedNoRule++; return false; }
    if (verdict === BY_RULE) s.allowedByRule++; else s.allowedAsReply++;
    if (f.fragment === FRAG_FIRST) this.flows.upsert(p.id, KIND_FRAG + v6, f.fragId, 0, now, FW_FRAGMENT_MS);
    return true;
  }

  private judge(p: PeerPolicy, packet: Uint8Array, f: PacketFields, v6: number, now: number): number {
    const fl = this.flows;
    if (f.proto === PROTO_TCP) {
      if (p.tcpPort(f.dstPort)) return BY_RULE;
      const slot = fl.find(p.id, KIND_TCP + v6, (f.dstPort << 16) | f.srcPort, now);
      if (slot < 0) return NO;
      const flags = f.tcpFlags;
      const was = fl.stateAt(slot);
      const state = flags & TCP_RST ? TCP_RESET : flags & TCP_FIN ? Math.max(was, TCP_CLOSING)
        : was === TCP_OPENING && (flags & (TCP_SYN | TCP_ACK)) === TCP_SYN ? TCP_OPENING // a simultaneous open
        : was === TCP_OPENING ? TCP_ESTABLISHED : was;
      fl.update(slot, state, now, TCP_TTL[state]!);
      return AS_REPLY;
    }
    if (f.proto === PROTO_UDP) {
      if (p.udpPort(f.dstPort)) return BY_RULE;
      const slot = fl.find(p.id, KIND_UDP + v6, (f.dstPort << 16) | f.srcPort, now);
      if (slot < 0) return NO;
      fl.update(slot, UDP_REPLIED, now, FW_UDP_REPLIED_MS);
      return AS_REPLY;
    }
    if (!isIcmp(f)) return NO;
    if (p.icmp) return BY_RULE;
    if (f.icmpType === echoReplyType(f.version)) {
      return fl.find(p.id, KIND_ECHO + v6, f.echoId, now) >= 0 ? AS_REPLY : NO;
    }
    if (!isIcmpError(f.version, f.icmpType)) return NO;
    const q = this.q;
    if (!readPacket(packet, f.l4 + 8, f.end, true, q) || q.version !== f.version || q.fragment === FRAG_LATER) return NO;
    // The quoted packet is one this host sent: its source port is ours.
    const word = (q.srcPort << 16) | q.dstPort;
    if (q.proto === PROTO_TCP) return p.tcpPort(q.srcPort) || fl.find(p.id, KIND_TCP + v6, word, now) >= 0 ? AS_REPLY : NO;
    if (q.proto === PROTO_UDP) return p.udpPort(q.srcPort) || fl.find(p.id, KIND_UDP + v6, word, now) >= 0 ? AS_REPLY : NO;
    if (isIcmp(q) && q.icmpType === echoRequestType(q.version)) return fl.find(p.id, KIND_ECHO + v6, q.echoId, now) >= 0 ? AS_REPLY : NO;
    return NO;
  }
}
