// OverlayNode's ATTACH (RELOAD's Attach, RFC 6940 section 6.5.1): an opaque blob (agent/nat/attach.ts puts a
// signed ICE offer in it) delivered to a NodeID through the overlay, and the target's blob back.
//
//   attach(target, via, blob)          ATTACH, destinations [target], one transaction id, the same bytes to
//     └─ every endpoint in `via` at once (rendezvous nodes, and/or the target itself for a direct try), and
//        with opts.routes, to other first hops with destinations [...hops, target] (source routes),
//        retransmitted on the RPC schedule (250, 500, 1000 ms, RPC_MAX_TRIES): the first ATTACH answer or
//        ERROR from the target settles it; undefined on an ERROR or after the last timeout
//   relays (node-route.ts) forward it: TTL - 1, their NodeID on the Via list
//   the target (destinations [] or [us]) ─> onAttach(blob, originator) ─> ATTACH answer (or ERROR) with
//        destinations = the Via list reversed + the originator (answerDestinations), sent back to the
//        endpoint the request came from; each relay pops itself and forwards it to the next
//
// Only the target's answer counts: its SENDER must be the target's NodeID (node.ts has already checked it
// is the hash of the key given with it). A relay could still claim to be the target (messages are
// unsigned); the blob is signed by the target a layer up, which is what makes a forged answer useless.
//
// The target answers each (originator, transaction id) once: onAttach runs for the first copy to arrive (by
// whichever relay), and retransmissions within RPC_RESPONSE_CACHE_MS get the same result, along their own
// route. Copies arriving while onAttach still runs are dropped (the originator retransmits). No onAttach, a
// handler that returns undefined, throws or rejects: ERROR ERR_FORBIDDEN "attach refused", so the
// originator stops waiting at once; a blob too large to answer with: ERROR ERR_MESSAGE_TOO_LARGE.
//
// `observed` (handed to onAttach, and with an answer to attachObserved's caller): where the Attach's path
// saw its originator. A request straight from it (no Via): the datagram's source. Relayed: the message's
// originObserved, the source the forwarder that received it straight from the originator saw (its
// rendezvous node); absent if no forwarder reported one. NAT traversal aims its checks and birthday probing
// by it (agent/nat/attach-guard.ts), never by the addresses the blob claims.
//
// A request straight from its originator (no Via) may have a spoofed source: the reply to it (answer or
// ERROR) is sent only if it is no larger than the request (nat/attach.ts pads offers so that answers fit),
// else nothing is sent and 'attach-reply-over-request' is counted.

import {
  NODE_ID_BYTES, OVERLAY_DEFAULT_TTL, OVERLAY_MAX_DATAGRAM, OVERLAY_MAX_DESTINATIONS, OVERLAY_MAX_VIA,
  RPC_MAX_TRIES, RPC_RESPONSE_CACHE_MAX, RPC_RESPONSE_CACHE_MS, RPC_RETRANSMIT_INITIAL_MS,
} from '../base/constants.js';
import { endpointKey, type Endpoint } from '../conn/socket.js';
import {
  answerDestinations, encodedLength, toSocketEndpoint, ERR_FORBIDDEN, ERR_MESSAGE_TOO_LARGE,
  METHOD_ATTACH, type Destination, type MessageOf, type OverlayMessage, type Sender,
} from './codec.js';
import { copyBytes } from './node-wire.js';
import { cryptoTxids } from './rpc.js';
import type { Scheduler, TimerHandle } from '../base/scheduler.js';
import { idKey } from './xor-metric.js';
import { bytesEqual } from '../base/bytes.js';

/** Called for an ATTACH addressed to us: the blob to answer with, or undefined to refuse. `from` is the
 *  originator (its NodeID is the hash of its key; that it sent the message is not proven) and `observed`
 *  where the Attach's path saw it (see the top of the file). */
export type AttachHandler = (blob: Uint8Array, from: AttachContext) =>
  Promise<Uint8Array | undefined> | Uint8Array | undefined;

export interface AttachContext {
  nodeId: Uint8Array;
  publicKey: Uint8Array;
  /** It came through forwarders (a Via list), not straight from the originator. */
  relayed: boolean;
  /** Undefined: relayed, and no forwarder reported where it came from. */
  observed?: Endpoint;
}

/** The target's answer, and where its path saw the target (originObserved, if a forwarder reported it). */
export interface AttachAnswer { blob: Uint8Array; observed?: Endpoint }

/** The originator's source as the first forwarder saw it, if the message carries one (the overlay codec
 *  adds it to relayed messages); read defensively, since the field is optional on the parsed message. */
function originObserved(m: OverlayMessage): Endpoint | undefined {
  const e = m.originObserved;
  if (!e || !(e.address instanceof Uint8Array) || (e.address.length !== 4 && e.address.length !== 16)) return undefined;
  return toSocketEndpoint(e);
}

export interface AttachOptions {
  initialTimeoutMs?: number;
  maxTries?: number;
  /** Source routes tried at the same time: the ATTACH goes to `to` with destinations [...hops, target], so
   *  a node that can reach only a few overlay members (UDP blocked but to them) still reaches the target's
   *  rendezvous through them. At most OVERLAY_MAX_DESTINATIONS - 1 hops each. */
  routes?: { to: Endpoint; hops: Uint8Array[] }[];
}

export interface AttachStats {
  /** attach() calls sent, answered with a blob, refused (ERROR from the target), timed out. */
  sent: number;
  answered: number;
  refused: number;
  timeouts: number;
  /** ATTACH answers or ERRORs for no attach() in progress, or not from its target. */
  unexpectedAnswers: number;
  /** ATTACHes to us handed to onAttach, and those it refused (answered with an ERROR). */
  served: number;
  refusedByUs: number;
  /** Retransmitted ATTACHes to us answered from the cache (or dropped while onAttach ran). */
  duplicates: number;
}

/** Largest blob attach() (or onAttach's answer) may carry: what fits one datagram even with a full Via list
 *  (the request, after OVERLAY_MAX_VIA relays) or a full destination list (the answer to that). */
export const ATTACH_MAX_BLOB = OVERLAY_MAX_DATAGRAM - encodedLength({
  kind: 'attach', ttl: 0, txid: 0n, blob: new Uint8Array(0),
  via: Array.from({ length: OVERLAY_MAX_VIA }, () => new Uint8Array(NODE_ID_BYTES)),
  dest: Array.from({ length: OVERLAY_MAX_DESTINATIONS }, () => ({ type: 'node' as const, id: new Uint8Array(NODE_ID_BYTES) })),
  sender: { nodeId: new Uint8Array(NODE_ID_BYTES), publicKey: new Uint8Array(32) },
});

export interface AttacherDeps {
  scheduler: Scheduler;
  self: Sender;
  send: (bytes: Uint8Array, to: Endpoint) => void;
  /** Signed bytes of a message; with `to`, a request carrying the cookie `to` gave us (or padded). */
  marshal: (m: OverlayMessage, to?: Endpoint) => Uint8Array;
  onAttach?: AttachHandler;
  reject: (reason: string) => void;
  newTxid?: () => bigint;
}

interface Pending {
  target: Uint8Array;
  /** One datagram per first hop: the same transaction, each with its own destination list. */
  sends: { bytes: Uint8Array; to: Endpoint; build: () => Uint8Array; resends: number }[];
  tries: number;
  maxTries: number;
  timeoutMs: number;
  timer: TimerHandle | undefined;
  resolve: (answer: AttachAnswer | undefined) => void;
}

interface Served {
  /** undefined while onAttach runs; null: refused. */
  result: Uint8Array | null | undefined;
  expires: number;
}

export class Attacher {
  readonly stats: AttachStats = {
    sent: 0, answered: 0, refused: 0, timeouts: 0, unexpectedAnswers: 0, served: 0, refusedByUs: 0, duplicates: 0,
  };
  private readonly pending = new Map<bigint, Pending>();
  private readonly served = new Map<string, Served>();
  private readonly newTxid: () => bigint;
  private closed = false;

  constructor(private readonly d: AttacherDeps) {
    this.newTxid = d.newTxid ?? cryptoTxids();
  }

  /** See the top of the file. Rejects only with a RangeError for a blob over ATTACH_MAX_BLOB or a target
   *  that is not a NodeID. */
  attach(target: Uint8Array, via: Endpoint[], blob: Uint8Array, o: AttachOptions = {}): Promise<Uint8Array | undefined> {
    return this.attachObserved(target, via, blob, o).then((a) => a?.blob);
  }

  /** attach(), with where the answer's path saw the target. */
  attachObserved(target: Uint8Array, via: Endpoint[], blob: Uint8Array, o: AttachOptions = {}): Promise<AttachAnswer | undefined> {
    if (target.length !== NODE_ID_BYTES) return Promise.reject(new RangeError('attach: target is not a NodeID'));
    if (blob.length > ATTACH_MAX_BLOB) return Promise.reject(new RangeError(`attach: blob of ${blob.length} bytes, at most ${ATTACH_MAX_BLOB}`));
    const seen = new Set<string>();
    const to = via.filter((e) => !seen.has(endpointKey(e)) && seen.add(endpointKey(e))).map((e) => ({ address: e.address, port: e.port }));
    const routes = (o.routes ?? []).filter((r) => r.hops.length > 0 && r.hops.length < OVERLAY_MAX_DESTINATIONS && r.hops.every((h) => h.length === NODE_ID_BYTES));
    if (this.closed || to.length + routes.length === 0 || bytesEqual(target, this.d.self.nodeId)) return Promise.resolve(undefined);
    let txid = this.newTxid();
    while (this.pending.has(txid)) txid = this.newTxid();
    const send = (hops: Uint8Array[], e: Endpoint) => {
      const build = () => this.d.marshal({
        kind: 'attach', ttl: OVERLAY_DEFAULT_TTL, txid, via: [], sender: this.d.self, blob,
        dest: [...hops.map((id) => ({ type: 'node' as const, id })), { type: 'node', id: target }],
      }, e);
      return { bytes: build(), to: e, build, resends: 0 };
    };
    const sends = [
      ...to.map((e) => send([], e)),
      ...routes.map((r) => send(r.hops, { address: r.to.address, port: r.to.port })),
    ];
    this.stats.sent++;
    return new Promise((resolve) => {
      const p: Pending = {
        target: copyBytes(target), sends, tries: 0, maxTries: o.maxTries ?? RPC_MAX_TRIES,
        timeoutMs: o.initialTimeoutMs ?? RPC_RETRANSMIT_INITIAL_MS, timer: undefined, resolve,
      };
      this.pending.set(txid, p);
      this.transmit(txid, p);
    });
  }

  /** An ATTACH answer, or an ERROR answering an ATTACH, addressed to us. */
  onAnswer(m: MessageOf<'attach-answer'> | MessageOf<'error'>): void {
    const p = this.pending.get(m.txid);
    if (!p || !bytesEqual(m.sender.nodeId, p.target)) {
      this.stats.unexpectedAnswers++;
      if (p) this.d.reject('attach-answer-not-from-target');
      return;
    }
    this.pending.delete(m.txid);
    p.timer?.cancel();
    if (m.kind === 'attach-answer') {
      this.stats.answered++;
      const observed = originObserved(m);
      p.resolve(observed ? { blob: copyBytes(m.blob), observed } : { blob: copyBytes(m.blob) });
    } else {
      this.stats.refused++;
      p.resolve(undefined);
    }
  }

  /** The first hop `from` of attach `txid` asked for a cookie (now stored): send that hop's copy again. */
  resend(txid: bigint, from: Endpoint, max: number): boolean {
    const p = this.pending.get(txid);
    const x = p?.sends.find((s) => endpointKey(s.to) === endpointKey(from));
    if (!x || x.resends >= max || this.closed) return false;
    x.resends++;
    x.bytes = x.build();
    this.d.send(x.bytes, x.to);
    return true;
  }

  /** Is attach `txid` in flight with `from` as one of its first hops (where its answer comes back from)? */
  awaits(txid: bigint, from: Endpoint): boolean {
    return this.pending.get(txid)?.sends.some((s) => endpointKey(s.to) === endpointKey(from)) ?? false;
  }

  /** An ATTACH addressed to us (its sender already checked by the node). */
  onRequest(m: MessageOf<'attach'>, from: Endpoint): void {
    // the datagram is only valid during this call: keep copies of what the answer needs
    const dest = answerDestinations(m).map((x): Destination => ({ type: x.type, id: copyBytes(x.id) }));
    const back = { address: from.address, port: from.port };
    const txid = m.txid;
    const observed = m.via.length === 0 ? back : originObserved(m);
    const limit = m.via.length === 0 ? encodedLength(m) : Infinity;
    const key = `${idKey(m.sender.nodeId)}/${txid}`;
    const now = this.d.scheduler.now();
    const cached = this.served.get(key);
    if (cached && cached.expires > now) {
      this.stats.duplicates++;
      if (cached.result !== undefined) this.answer(txid, dest, cached.result, back, limit);
      return;
    }
    const entry: Served = { result: undefined, expires: now + RPC_RESPONSE_CACHE_MS };
    this.served.delete(key);
    this.served.set(key, entry);
    this.expireServed(now);
    this.stats.served++;
    const done = (blob: Uint8Array | undefined) => {
      entry.result = blob ?? null;
      if (entry.result === null) this.stats.refusedByUs++;
      entry.expires = Math.max(entry.expires, this.d.scheduler.now() + RPC_RESPONSE_CACHE_MS);
      if (!this.closed) this.answer(txid, dest, entry.result, back, limit);
    };
    let out: ReturnType<AttachHandler>;
    try {
      const from: AttachContext = { nodeId: copyBytes(m.sender.nodeId), publicKey: copyBytes(m.sender.publicKey), relayed: m.via.length > 0 };
      if (observed) from.observed = { address: observed.address, port: observed.port };
      out = this.d.onAttach?.(copyBytes(m.blob), from);
    } catch {
      this.d.reject('attach-handler-error');
      out = undefined;
    }
    if (out instanceof Promise) {
      out.then((b) => done(b instanceof Uint8Array ? b : undefined), () => { this.d.reject('attach-handler-error'); done(undefined); });
    } else {
      done(out instanceof Uint8Array ? out : undefined);
    }
  }

  /** Every attach() in progress resolves undefined; no more answers. */
  close(): void {
    this.closed = true;
    for (const p of this.pending.values()) {
      p.timer?.cancel();
      p.resolve(undefined);
    }
    this.pending.clear();
    this.served.clear();
  }

  private transmit(txid: bigint, p: Pending): void {
    p.tries++;
    const wait = p.timeoutMs;
    p.timeoutMs *= 2;
    p.timer = this.d.scheduler.setTimer(wait, () => {
      p.timer = undefined;
      if (this.pending.get(txid) !== p) return;
      if (p.tries < p.maxTries) { this.transmit(txid, p); return; }
      this.pending.delete(txid);
      this.stats.timeouts++;
      p.resolve(undefined);
    });
    for (const x of p.sends) this.d.send(x.bytes, x.to);
  }

  /** `limit`: the largest reply `to` may get (the request's size when it came straight from its source). */
  private answer(txid: bigint, dest: Destination[], result: Uint8Array | null, to: Endpoint, limit: number): void {
    const head = { ttl: OVERLAY_DEFAULT_TTL, txid, via: [], dest, sender: this.d.self };
    const refuse = (code: number, reason: string): OverlayMessage => ({ ...head, kind: 'error', method: METHOD_ATTACH, code, reason });
    let m: OverlayMessage = result === null ? refuse(ERR_FORBIDDEN, 'attach refused') : { ...head, kind: 'attach-answer', blob: result };
    if (m.kind === 'attach-answer' && encodedLength(m) > OVERLAY_MAX_DATAGRAM) {
      this.d.reject('attach-answer-too-large');
      m = refuse(ERR_MESSAGE_TOO_LARGE, 'attach answer too large');
    }
    if (encodedLength(m) > limit) { this.d.reject('attach-reply-over-request'); return; }
    this.d.send(this.d.marshal(m), to);
  }

  private expireServed(now: number): void {
    for (const [k, s] of this.served) {
      if (s.expires > now && this.served.size <= RPC_RESPONSE_CACHE_MAX) break;
      this.served.delete(k);
    }
  }
}
