// The STUN side of the agent's one UDP socket (datagrams whose first byte is 0-3, agent/nat/demux.ts).
// Its messages are read and built by agent/nat/stun-binding.ts, on the STUN codec of agent/nat/stun-wire.ts.
//
// Behaviour:
//   - Server role (every public agent is a STUN server): a Binding request without USERNAME is answered with
//     a success response carrying XOR-MAPPED-ADDRESS = the source we saw, and FINGERPRINT.
//   - A second port (setChangedPort: a public agent's socket on its port + STUN_CHANGE_PORT_OFFSET, see
//     nat/change-port.ts): then Binding requests are answered on either socket, each answer with RFC 5780's
//     RESPONSE-ORIGIN (where it leaves from) and OTHER-ADDRESS (the other socket: same IP, other port; on a
//     dual-stack host, the IP of the client's family), and CHANGE-REQUEST "change port" is answered from the
//     other socket. That is what lets a client tell its NAT's mapping (the same or another mapped port towards
//     our two ports) and port filtering (does the answer from the port it never sent to come through) from one
//     server. "Change IP" (we have one address), "change port" without a second port, and other comprehension-
//     required attributes we do not implement get 420 Unknown Attribute, which is how an RFC 5780 client
//     learns what a server cannot do. The second socket is a STUN server and nothing else: ICE checks,
//     responses, indications and other methods arriving there are dropped and counted (`otherPortRefused`).
//   - ICE checks (requests with USERNAME): `passwordFor(username)` gives our password; the request must carry
//     PRIORITY, ICE-CONTROLLING or ICE-CONTROLLED and a MESSAGE-INTEGRITY that verifies with it, otherwise it
//     is dropped unanswered and counted (we do not answer 400/401: no reflection for unauthenticated
//     senders). Only then `onCheck` sees it, and decides: answer success (with MESSAGE-INTEGRITY), answer
//     487 Role Conflict, or drop. Retransmitted checks reach onCheck again (Binding is idempotent).
//   - Client role: `request()` sends a Binding request and retransmits it (same transaction id) after
//     STUN_RTO_INITIAL_MS, doubling, STUN_MAX_TRANSMITS times, then gives up; the response is matched by
//     transaction id and, unless `anySource` (RFC 5780 change tests), by its source being where we sent
//     the request (ICE's symmetry rule). A transaction with a password accepts only responses whose
//     MESSAGE-INTEGRITY verifies: a forged answer is counted and ignored, the transaction keeps waiting.
//   - Binding indications (ICE keepalives) are counted, never answered. Other methods (TURN) go to `onOther`.
//   - No amplifier: every source may be spoofed, so until a source has proved return routability (the
//     overlay verified it: `verified`, or it answered one of our own transactions from where we sent it)
//     it gets no SOFTWARE, no answer longer than its request (a client pads with PADDING, RFC 5780: our
//     netcheck does; shorter requests are dropped and counted `unpadded`), and at most
//     STUN_UNVERIFIED_RATE_BYTES per second per address (burst STUN_UNVERIFIED_BURST_BYTES, a bounded table):
//     what a forged source can make us send is at most what it sent, and bounded per victim. Answers from
//     the second port pay from the same per-address budget and obey the same size rule; RESPONSE-ORIGIN
//     and OTHER-ADDRESS are left out (not the answer) where they would make it longer than the request.
//   - handleDatagram never throws: garbage, truncation, bad lengths, a wrong FINGERPRINT are counted as
//     `malformed`.

import { randomBytes } from 'node:crypto';
import {
  STUN_MAX_PENDING, STUN_MAX_TRANSMITS, STUN_PADDED_REQUEST_BYTES, STUN_RTO_INITIAL_MS, STUN_UNVERIFIED_BURST_BYTES, STUN_UNVERIFIED_RATE_BYTES,
  STUN_UNVERIFIED_SOURCES_MAX, STUN_VERIFIED_MAX, STUN_VERIFIED_MS,
} from '../base/constants.js';
import { endpointKey, type Endpoint } from '../conn/socket.js';
import { familyOf } from '../base/ip-text.js';
import { PerSourceRateLimit } from '../conn/rate-limit.js';
import {
  ATTR, STUN_CLASS_INDICATION, STUN_CLASS_REQUEST, STUN_CLASS_SUCCESS, STUN_METHOD_BINDING, txidHex, verifyIntegrity,
} from './stun-wire.js';
import {
  CHANGE_IP, CHANGE_PORT, encodeBindingError, encodeBindingRequest, encodeBindingSuccess, parseStun, stunAddress,
  type StunMessage, type StunRequestAttributes,
} from './stun-binding.js';
import type {
  ChangedPort, CheckReply, IceCheckRequest, IncomingCheck, StunEndpointOptions, StunEndpointStats, StunOutcome, StunTransactionOptions,
} from './stun-endpoint-api.js';

export type {
  ChangedPort, CheckReply, IceCheckRequest, IncomingCheck, StunEndpointOptions, StunEndpointStats, StunOutcome, StunTransactionOptions,
} from './stun-endpoint-api.js';

interface Transaction {
  key: string;
  to: Endpoint;
  bytes: Buffer;
  password: string | undefined;
  anySource: boolean;
  rto: number;
  maxTransmits: number;
  transmits: number;
  firstSentAt: number;
  timer: NodeJS.Timeout | undefined;
  resolve: (o: StunOutcome) => void;
}

function txKey(txid: Uint8Array): string {
  return Buffer.from(txid.buffer, txid.byteOffset, txid.length).toString('latin1');
}

function sameEndpoint(a: Endpoint, b: Endpoint): boolean {
  return a.port === b.port && (a.address === b.address || stunAddress(a.address) === stunAddress(b.address));
}

export class StunEndpoint {
  readonly stats: StunEndpointStats = {
    received: 0, malformed: 0, answered: 0, notMember: 0, unknownAttribute: 0, unauthenticated: 0, badIntegrity: 0,
    roleConflicts: 0, indications: 0, responses: 0, unmatched: 0, other: 0, transactions: 0, retransmits: 0, probes: 0,
    timeouts: 0, refused: 0, sendErrors: 0, unpadded: 0, overBudget: 0, unverifiedBytesIn: 0, unverifiedBytesOut: 0,
    changedPort: 0, otherPortRefused: 0,
  };
  private changed: ChangedPort | undefined;
  private readonly pending = new Map<string, Transaction>();
  private readonly now: () => number;
  private readonly budget: PerSourceRateLimit;
  /** endpointKey -> when it answered one of our transactions from where we sent it (insertion = recency). */
  private readonly answeredUs = new Map<string, number>();
  private closed = false;

  constructor(private readonly o: StunEndpointOptions) {
    this.now = o.now ?? (() => performance.now());
    this.budget = new PerSourceRateLimit({
      ratePerSecond: STUN_UNVERIFIED_RATE_BYTES, burst: STUN_UNVERIFIED_BURST_BYTES, maxSources: STUN_UNVERIFIED_SOURCES_MAX, now: this.now,
    });
  }

  /** Our transactions in flight. */
  get pendingCount(): number { return this.pending.size; }

  /** Answer from a second port too (CHANGE-REQUEST), or no longer (undefined). */
  setChangedPort(p: ChangedPort | undefined): void {
    this.changed = p;
  }

  /** Feed one datagram whose first byte said STUN; `onOtherPort`: it came to the second socket. Never throws. */
  handleDatagram(msg: Uint8Array, from: Endpoint, onOtherPort = false): void {
    this.stats.received++;
    let m: StunMessage | undefined;
    try { m = parseStun(msg); } catch { m = undefined; }
    if (!m) { this.stats.malformed++; return; }
    if (onOtherPort) {
      // Only plain Binding requests, and only while the second port is ours to answer from.
      if (m.method !== STUN_METHOD_BINDING || m.cls !== STUN_CLASS_REQUEST || m.username !== undefined || m.integrityOffset >= 0 || !this.changed) {
        this.stats.otherPortRefused++; return;
      }
      try { this.answer(msg, m, from, true); } catch { this.stats.malformed++; }
      return;
    }
    if (m.method !== STUN_METHOD_BINDING) {
      this.stats.other++;
      if (this.o.onOther) try { this.o.onOther(msg, m, from); } catch { /* the hook's problem, not the socket's */ }
      return;
    }
    try {
      switch (m.cls) {
        case STUN_CLASS_REQUEST: this.answer(msg, m, from); break;
        case STUN_CLASS_INDICATION: this.stats.indications++; break;
        default: this.complete(msg, m, from);
      }
    } catch {
      this.stats.malformed++; // e.g. an address the encoder refuses; never let it reach the socket's loop
    }
  }

  /** Binding request to a STUN server: our server-reflexive address as it saw it, or undefined. Padded
   *  (STUN_PADDED_REQUEST_BYTES), so a server that has not verified us may answer it. */
  async binding(server: Endpoint, opts?: StunTransactionOptions): Promise<{ mapped: Endpoint; rttMs: number } | undefined> {
    const r = await this.request(server, { padTo: STUN_PADDED_REQUEST_BYTES }, opts);
    return r.kind === 'success' && r.mapped ? { mapped: r.mapped, rttMs: r.rttMs } : undefined;
  }

  /** ICE connectivity check: signed with the remote password, the response must be signed with it too. */
  check(to: Endpoint, c: IceCheckRequest, opts?: StunTransactionOptions): Promise<StunOutcome> {
    return this.request(to, checkAttributes(c), opts);
  }

  /** An ICE check sent once and forgotten: for spraying many ports of a hard NAT, where a hit is known
   *  by the triggered check it provokes (ice.ts), not by its answer, so no transaction (and none of the
   *  STUN_MAX_PENDING slots) is held for the thousands that go nowhere. */
  probe(to: Endpoint, c: IceCheckRequest): void {
    if (this.closed) return;
    try {
      this.safeSend(encodeBindingRequest(randomBytes(12), checkAttributes(c), this.o.software), to);
      this.stats.probes++;
    } catch {
      this.stats.refused++;
    }
  }

  /** Send a Binding request with these attributes, retransmitting until answered or given up. */
  request(to: Endpoint, attrs: StunRequestAttributes = {}, opts: StunTransactionOptions = {}): Promise<StunOutcome> {
    if (this.closed) { this.stats.refused++; return Promise.resolve({ kind: 'failed', reason: 'closed' }); }
    if (this.pending.size >= STUN_MAX_PENDING) {
      this.stats.refused++;
      return Promise.resolve({ kind: 'failed', reason: `${STUN_MAX_PENDING} transactions already pending` });
    }
    const txid = randomBytes(12);
    let bytes: Buffer;
    try {
      bytes = encodeBindingRequest(txid, attrs, this.o.software);
    } catch (e) {
      this.stats.refused++;
      return Promise.resolve({ kind: 'failed', reason: `cannot encode request: ${(e as Error).message}` });
    }
    this.stats.transactions++;
    return new Promise<StunOutcome>((resolve) => {
      const t: Transaction = {
        key: txid.toString('latin1'), to: { ...to }, bytes, // with `via`: a standby uplink's mapping (standby.ts)
        password: attrs.password, anySource: opts.anySource ?? false,
        rto: opts.rtoMs ?? this.o.rtoMs ?? STUN_RTO_INITIAL_MS,
        maxTransmits: Math.max(1, opts.maxTransmits ?? this.o.maxTransmits ?? STUN_MAX_TRANSMITS),
        transmits: 0, firstSentAt: this.now(), timer: undefined, resolve,
      };
      this.pending.set(t.key, t);
      this.transmit(t);
    });
  }

  /** Stop answering; pending transactions end as 'failed: closed'. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const t of [...this.pending.values()]) this.finish(t, { kind: 'failed', reason: 'closed' });
  }

  private transmit(t: Transaction): void {
    t.transmits++;
    if (t.transmits > 1) this.stats.retransmits++;
    this.safeSend(t.bytes, t.to);
    t.timer = setTimeout(() => this.onTimer(t), t.rto * 2 ** (t.transmits - 1));
  }

  private onTimer(t: Transaction): void {
    if (this.pending.get(t.key) !== t) return;
    if (t.transmits >= t.maxTransmits) {
      this.stats.timeouts++;
      this.finish(t, { kind: 'timeout', transmits: t.transmits });
    } else {
      this.transmit(t);
    }
  }

  private finish(t: Transaction, o: StunOutcome): void {
    if (t.timer) clearTimeout(t.timer);
    this.pending.delete(t.key);
    t.resolve(o);
  }

  private safeSend(bytes: Uint8Array, to: Endpoint): void {
    try { this.o.send(bytes, to); } catch { this.stats.sendErrors++; }
  }

  private answer(msg: Uint8Array, m: StunMessage, from: Endpoint, onOtherPort = false): void {
    if (this.closed) return;
    const txid = m.txid;
    let password: string | undefined;
    let check: IncomingCheck | undefined;
    if (m.username !== undefined || m.integrityOffset >= 0) {
      // Short-term credentials (ICE). Authenticate before anything else looks at the request.
      const tie = m.iceControlling ?? m.iceControlled;
      if (m.username === undefined || m.integrityOffset < 0 || m.priority === undefined || tie === undefined) {
        this.stats.unauthenticated++; return;
      }
      password = this.o.passwordFor?.(m.username);
      if (password === undefined) { this.stats.unauthenticated++; return; }
      if (!verifyIntegrity(msg, m, password)) { this.stats.badIntegrity++; return; }
      check = {
        username: m.username, priority: m.priority, useCandidate: m.useCandidate,
        controlling: m.iceControlling !== undefined, tieBreaker: tie, from: { address: from.address, port: from.port },
        txid: txidHex(m.txid),
      };
    }
    // A private overlay's agent is a STUN server for its members only: a plain Binding request from a
    // source the overlay has not authenticated (by the secret's tag on its overlay messages) is dropped.
    if (!check && this.o.membersOnly && !this.o.verified?.(from)) { this.stats.notMember++; return; }
    // CHANGE-REQUEST we cannot honour (another IP; another port without a second socket; any change on an
    // ICE check) is as unknown to us as any attribute we do not implement (RFC 5780 section 7.2: 420).
    let unknown = m.unknownRequired;
    const change = m.changeRequest ?? 0;
    const changePort = (change & CHANGE_PORT) !== 0;
    if ((change & CHANGE_IP) !== 0 || (changePort && (!this.changed || check))) unknown = [...(unknown ?? []), ATTR.CHANGE_REQUEST];
    const verified = this.isVerified(from);
    const software = verified ? this.o.software : undefined;
    if (unknown) {
      // from the socket the request came to
      const here = onOtherPort ? this.changed?.send : undefined;
      if (this.reply(encodeBindingError(txid, 420, unknown, password, software), msg.length, from, verified, here)) this.stats.unknownAttribute++;
      return;
    }
    if (check) {
      let reply: CheckReply | void = 'success';
      if (this.o.onCheck) {
        try { reply = this.o.onCheck(check); } catch { reply = 'drop'; }
      }
      if (reply === 'drop') return;
      if (reply === 'role-conflict') {
        if (this.reply(encodeBindingError(txid, 487, undefined, password, software), msg.length, from, verified)) this.stats.roleConflicts++;
        return;
      }
    }
    const cp = check ? undefined : this.changed;
    const fam = familyOf(from.address);
    const c = cp && familyOf(cp.main.address) === fam ? cp : cp?.also && familyOf(cp.also.main.address) === fam ? cp.also : undefined;
    if (!c || !cp) {
      if (this.reply(encodeBindingSuccess(txid, from, password, software), msg.length, from, verified)) this.stats.answered++;
      return;
    }
    // With a second port: answer from the socket it came to, or from the other one if asked to change port.
    const viaSecond = onOtherPort !== changePort;
    const origin = { responseOrigin: viaSecond ? c.other : c.main, otherAddress: onOtherPort ? c.main : c.other };
    let answer = encodeBindingSuccess(txid, from, undefined, software, origin);
    if (!verified && answer.length > msg.length) answer = encodeBindingSuccess(txid, from, undefined, software);
    if (this.reply(answer, msg.length, from, verified, viaSecond ? cp.send : undefined)) {
      this.stats.answered++;
      if (changePort) this.stats.changedPort++;
    }
  }

  /** Send an answer to a request of `requestBytes` (from the main socket, or by `send`); to an unverified
   *  source only if it is no longer than the request and within the address's budget (dropped and counted
   *  otherwise). */
  private reply(answer: Buffer, requestBytes: number, to: Endpoint, verified: boolean, send?: ChangedPort['send']): boolean {
    if (!verified) {
      this.stats.unverifiedBytesIn += requestBytes;
      if (answer.length > requestBytes) { this.stats.unpadded++; return false; }
      if (!this.budget.allowFrom(to.address, answer.length)) { this.stats.overBudget++; return false; }
      this.stats.unverifiedBytesOut += answer.length;
    }
    if (!send) this.safeSend(answer, to);
    else try { send(answer, to); } catch { this.stats.sendErrors++; }
    return true;
  }

  private isVerified(from: Endpoint): boolean {
    if (this.o.verified?.(from)) return true;
    const at = this.answeredUs.size > 0 ? this.answeredUs.get(endpointKey(from)) : undefined;
    return at !== undefined && this.now() - at < STUN_VERIFIED_MS;
  }

  /** `from` answered a transaction we sent it (a random id it could only learn there): it is reachable. */
  private noteAnswered(from: Endpoint): void {
    const k = endpointKey(from);
    this.answeredUs.delete(k);
    if (this.answeredUs.size >= STUN_VERIFIED_MAX) this.answeredUs.delete(this.answeredUs.keys().next().value!);
    this.answeredUs.set(k, this.now());
  }

  private complete(msg: Uint8Array, m: StunMessage, from: Endpoint): void {
    const t = this.pending.get(txKey(m.txid));
    if (!t || (!t.anySource && !sameEndpoint(from, t.to))) { this.stats.unmatched++; return; }
    if (t.password !== undefined && !verifyIntegrity(msg, m, t.password)) { this.stats.badIntegrity++; return; }
    this.stats.responses++;
    if (sameEndpoint(from, t.to)) this.noteAnswered(from);
    const f = { address: from.address, port: from.port };
    const rttMs = this.now() - t.firstSentAt;
    if (m.unknownRequired) {
      // RFC 8489 section 7.3.3/7.3.4: a response with unknown comprehension-required attributes fails the transaction.
      this.finish(t, { kind: 'failed', reason: `response has unknown attribute 0x${m.unknownRequired[0]!.toString(16).padStart(4, '0')}` });
    } else if (m.cls === STUN_CLASS_SUCCESS) {
      const o: StunOutcome = { kind: 'success', from: f, mapped: m.xorMappedAddress ?? m.mappedAddress, rttMs, transmits: t.transmits };
      if (m.otherAddress) o.otherAddress = m.otherAddress;
      if (m.responseOrigin) o.responseOrigin = m.responseOrigin;
      this.finish(t, o);
    } else if (m.errorCode !== undefined) {
      this.finish(t, { kind: 'error', from: f, code: m.errorCode, reason: m.errorReason ?? '', rttMs, transmits: t.transmits });
    } else {
      this.finish(t, { kind: 'failed', reason: 'error response without ERROR-CODE' });
    }
  }
}

function checkAttributes(c: IceCheckRequest): StunRequestAttributes {
  return {
    username: c.username, password: c.password, priority: c.priority, controlling: c.controlling,
    tieBreaker: c.tieBreaker, useCandidate: c.useCandidate ?? false,
  };
}
