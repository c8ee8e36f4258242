// Request/response over datagrams for the overlay, hop by hop (as P2PP over UDP):
//
//   request(to, body) --encode--> send ──┐ no answer in 250 ms: send the same bytes again,
//        ▲                               │ 500 ms, then 1000 ms; after RPC_MAX_TRIES: { ok: false }
//        └── response with the same 64-bit transaction id (BigInt) settles it; later copies are ignored
//
//        an answer counts only from the endpoint the request went to; one that asks for a cookie
//        (resend) has the request encoded again, for that endpoint, and sent at once
//
//   incoming request --> handler(body, from) --> response, encoded once and cached by (sender, txid)
//        a retransmitted request is answered from that cache (or dropped while the first is still being
//        handled), so a repeated STORE is never applied twice.
//
// The RPC knows nothing of the wire format: it is generic over the wire type W (Uint8Array in the agent,
// plain objects in the simulation) and a codec that turns (kind, txid, body) into W and back. So it plugs
// into agent/overlay/codec.ts through a three-function adapter.

import {
  RPC_MAX_TRIES, RPC_RESPONSE_CACHE_MAX, RPC_RESPONSE_CACHE_MS, RPC_RETRANSMIT_INITIAL_MS,
} from '../base/constants.js';
import { endpointKey, type Endpoint } from '../conn/socket.js';
import { randomFillSync } from 'node:crypto';
import type { Scheduler, TimerHandle } from '../base/scheduler.js';

export type Decoded<Req, Res> =
  | { kind: 'request'; txid: bigint; body: Req }
  | { kind: 'response'; txid: bigint; body: Res };

export interface RpcCodec<Req, Res, W> {
  /** `to`: where it goes (a request may carry a cookie that endpoint gave us). */
  encodeRequest(txid: bigint, body: Req, to: Endpoint): W;
  encodeResponse(txid: bigint, body: Res): W;
  /** undefined for anything malformed (counted, never thrown). */
  decode(wire: W): Decoded<Req, Res> | undefined;
}

/** Answer a request; undefined sends no answer (the requester will time out). */
export type RpcHandler<Req, Res> = (body: Req, from: Endpoint, txid: bigint) => Res | undefined | Promise<Res | undefined>;

export type RpcResult<Res> =
  | { ok: true; value: Res; rttMs: number; tries: number }
  | { ok: false; reason: 'timeout' | 'closed' };

export interface RpcOptions<Req, Res, W> {
  send: (wire: W, to: Endpoint) => void;
  codec: RpcCodec<Req, Res, W>;
  handler: RpcHandler<Req, Res>;
  scheduler: Scheduler;
  /** 64-bit transaction ids; default: crypto-random (an off-path attacker must guess 64 bits). */
  newTxid?: () => bigint;
  initialTimeoutMs?: number;
  maxTries?: number;
  responseCacheMs?: number;
  responseCacheMax?: number;
}

export interface RequestOptions {
  initialTimeoutMs?: number;
  maxTries?: number;
}

export interface RpcStats {
  requestsSent: number;
  retransmits: number;
  timeouts: number;
  responsesMatched: number;
  duplicateResponses: number;
  unmatchedResponses: number;
  requestsHandled: number;
  duplicateRequests: number;
  malformed: number;
  /** Answers from another endpoint than the request went to: dropped. */
  wrongSource: number;
  /** Requests encoded again because the answer asked for a cookie. */
  resent: number;
}

interface Pending<Req, Res, W> {
  to: Endpoint;
  body: Req;
  wire: W;
  resends: number;
  tries: number;
  maxTries: number;
  timeoutMs: number;
  sentFirst: number;
  timer: TimerHandle | undefined;
  resolve: (r: RpcResult<Res>) => void;
}

interface CachedResponse<W> {
  wire: W | undefined; // undefined while the handler runs, or when it chose not to answer
  expires: number;
}

/** Crypto-random 64-bit ids, drawn from a pooled buffer (one syscall per 256 ids). */
export function cryptoTxids(): () => bigint {
  const pool = new BigUint64Array(256);
  let next = pool.length;
  return () => {
    if (next >= pool.length) { randomFillSync(pool); next = 0; }
    return pool[next++]!;
  };
}

export class Rpc<Req, Res, W = Uint8Array> {
  readonly stats: RpcStats = {
    requestsSent: 0, retransmits: 0, timeouts: 0, responsesMatched: 0, duplicateResponses: 0,
    unmatchedResponses: 0, requestsHandled: 0, duplicateRequests: 0, malformed: 0, wrongSource: 0, resent: 0,
  };
  private readonly pending = new Map<bigint, Pending<Req, Res, W>>();
  /** Ids of requests recently settled, so a late duplicate response is told apart from garbage. */
  private readonly settled = new Map<bigint, number>();
  private readonly responses = new Map<string, CachedResponse<W>>();
  private readonly newTxid: () => bigint;
  private readonly initialTimeoutMs: number;
  private readonly maxTries: number;
  private readonly cacheMs: number;
  private readonly cacheMax: number;
  private closed = false;

  constructor(private readonly opts: RpcOptions<Req, Res, W>) {
    this.newTxid = opts.newTxid ?? cryptoTxids();
    this.initialTimeoutMs = opts.initialTimeoutMs ?? RPC_RETRANSMIT_INITIAL_MS;
    this.maxTries = opts.maxTries ?? RPC_MAX_TRIES;
    this.cacheMs = opts.responseCacheMs ?? RPC_RESPONSE_CACHE_MS;
    this.cacheMax = opts.responseCacheMax ?? RPC_RESPONSE_CACHE_MAX;
  }

  get inFlight(): number {
    return this.pending.size;
  }

  /** Send a request, retransmitting with doubling timeouts; never rejects. */
  request(to: Endpoint, body: Req, o: RequestOptions = {}): Promise<RpcResult<Res>> {
    if (this.closed) return Promise.resolve({ ok: false, reason: 'closed' });
    let txid = this.newTxid();
    while (this.pending.has(txid)) txid = this.newTxid();
    const wire = this.opts.codec.encodeRequest(txid, body, to);
    return new Promise((resolve) => {
      const p: Pending<Req, Res, W> = {
        to, body, wire, resends: 0, tries: 0, maxTries: o.maxTries ?? this.maxTries, timeoutMs: o.initialTimeoutMs ?? this.initialTimeoutMs,
        sentFirst: this.opts.scheduler.now(), timer: undefined, resolve,
      };
      this.pending.set(txid, p);
      this.transmit(txid, p);
    });
  }

  /** True if `txid` is a request of ours in flight to `from`: worth checking an answer's signature for. */
  awaits(txid: bigint, from: Endpoint): boolean {
    const p = this.pending.get(txid);
    return p !== undefined && endpointKey(p.to) === endpointKey(from);
  }

  /** The answer to `txid` asked us to try again (with the cookie the caller has now stored): encode the
   *  request again and send it at once, at most `max` times per request. False if not sent. */
  resend(txid: bigint, max: number): boolean {
    const p = this.pending.get(txid);
    if (!p || p.resends >= max || this.closed) return false;
    p.resends++;
    this.stats.resent++;
    p.wire = this.opts.codec.encodeRequest(txid, p.body, p.to);
    this.opts.send(p.wire, p.to);
    return true;
  }

  /** Feed every datagram meant for the overlay here. */
  onMessage(wire: W, from: Endpoint): void {
    if (this.closed) return;
    let m: Decoded<Req, Res> | undefined;
    try {
      m = this.opts.codec.decode(wire);
    } catch {
      m = undefined;
    }
    if (!m) { this.stats.malformed++; return; }
    if (m.kind === 'response') this.onResponse(m.txid, m.body, from);
    else this.onRequest(m.txid, m.body, from);
  }

  /** Fail everything in flight and stop answering. */
  close(): void {
    this.closed = true;
    for (const p of this.pending.values()) {
      p.timer?.cancel();
      p.resolve({ ok: false, reason: 'closed' });
    }
    this.pending.clear();
    this.responses.clear();
    this.settled.clear();
  }

  private transmit(txid: bigint, p: Pending<Req, Res, W>): void {
    p.tries++;
    if (p.tries === 1) this.stats.requestsSent++;
    else this.stats.retransmits++;
    const wait = p.timeoutMs;
    p.timeoutMs *= 2;
    p.timer = this.opts.scheduler.setTimer(wait, () => {
      p.timer = undefined;
      if (this.pending.get(txid) !== p) return;
      if (p.tries < p.maxTries) { this.transmit(txid, p); return; }
      this.pending.delete(txid);
      this.stats.timeouts++;
      this.remember(txid);
      p.resolve({ ok: false, reason: 'timeout' });
    });
    this.opts.send(p.wire, p.to);
  }

  private onResponse(txid: bigint, body: Res, from: Endpoint): void {
    const p = this.pending.get(txid);
    if (!p) {
      if (this.settled.has(txid)) this.stats.duplicateResponses++;
      else this.stats.unmatchedResponses++;
      return;
    }
    if (endpointKey(p.to) !== endpointKey(from)) { this.stats.wrongSource++; return; }
    this.pending.delete(txid);
    p.timer?.cancel();
    this.stats.responsesMatched++;
    this.remember(txid);
    p.resolve({ ok: true, value: body, rttMs: this.opts.scheduler.now() - p.sentFirst, tries: p.tries });
  }

  private remember(txid: bigint): void {
    const now = this.opts.scheduler.now();
    this.settled.set(txid, now + this.cacheMs);
    this.expire(this.settled, now, (v) => v);
  }

  private onRequest(txid: bigint, body: Req, from: Endpoint): void {
    const key = `${endpointKey(from)}/${txid}`;
    const now = this.opts.scheduler.now();
    const cached = this.responses.get(key);
    if (cached && cached.expires > now) {
      this.stats.duplicateRequests++;
      if (cached.wire !== undefined) this.opts.send(cached.wire, from);
      return; // still being handled: the first answer will go out
    }
    const entry: CachedResponse<W> = { wire: undefined, expires: now + this.cacheMs };
    this.responses.delete(key); // re-insert at the end (Map keeps insertion order = expiry order)
    this.responses.set(key, entry);
    this.expire(this.responses, now, (v) => v.expires);
    this.stats.requestsHandled++;
    let out: Res | undefined | Promise<Res | undefined>;
    try {
      out = this.opts.handler(body, from, txid);
    } catch {
      out = undefined;
    }
    const reply = (res: Res | undefined) => {
      if (this.closed || res === undefined) return;
      const wire = this.opts.codec.encodeResponse(txid, res);
      entry.wire = wire;
      entry.expires = Math.max(entry.expires, this.opts.scheduler.now() + this.cacheMs);
      this.opts.send(wire, from);
    };
    if (out instanceof Promise) out.then(reply, () => undefined);
    else reply(out);
  }

  /** Drop expired entries from the front (insertion order ~ expiry order, so this is amortised O(1));
   *  if still over the bound, the oldest go anyway. */
  private expire<V>(m: Map<string | bigint, V>, now: number, expiry: (v: V) => number): void {
    for (const [k, v] of m) {
      if (expiry(v) > now && m.size <= this.cacheMax) break; // first live entry: the rest are newer
      m.delete(k);
    }
  }
}
