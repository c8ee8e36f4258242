// The TURN client's requests to its server (RFC 8656 over UDP): retransmission, matching answers to
// requests, and the long-term credential dance (RFC 8489 section 9.2). turn-client.ts and
// turn-permissions.ts send every request through here; the bytes come from turn-wire.ts.
//
//   request(method, attrs) --> bytes, sent at once and again after rto, 2 rto, 4 rto ... (same
//                              transaction id) until TURN_MAX_TRANSMISSIONS, then rejected
//   answer(m, raw)         <-- a success or error answer from the server, matched by transaction id
//
// The first request goes without credentials; the server answers 401 with REALM and NONCE, and from then
// on every request carries USERNAME, REALM, NONCE and MESSAGE-INTEGRITY with the key
// MD5(username:realm:password). A success answer to such a request must carry a valid
// MESSAGE-INTEGRITY or it is ignored (counted; the transaction keeps waiting). 438 Stale Nonce: retry
// with the new nonce. 401 to a request that carried credentials: wrong username or password, unless
// another request learnt a fresher nonce meanwhile.

import type { Scheduler, TimerHandle } from '../base/scheduler.js';
import { TURN_MAX_TRANSMISSIONS, TURN_STALE_NONCE_RETRIES } from '../base/constants.js';
import type { Endpoint } from '../conn/socket.js';
import {
  ATTR, STUN_CLASS_SUCCESS, parseErrorCode, stunAttribute, textAttr, verifyIntegrity, type ParsedStun, type StunAttr,
} from './stun-wire.js';
import { encodeTurnRequest, longTermKey } from './turn-wire.js';

export class TurnError extends Error {
  /** STUN error code (401, 437, 438, 441, 486, 508, ...) when the server answered with one. */
  readonly code: number | undefined;
  constructor(message: string, code?: number) {
    super(message);
    this.name = 'TurnError';
    this.code = code;
  }
}

export interface TurnClientStats {
  channelDataIn: number;
  dataIndicationsIn: number;
  channelDataOut: number;
  sendIndicationsOut: number;
  /** sendTo() with no allocation, a bad peer or an oversize payload. */
  sendDropped: number;
  malformed: number;
  notFromServer: number;
  unknownChannel: number;
  unknownTransaction: number;
  badIntegrity: number;
  retransmits: number;
  /** 438 Stale Nonce answers retried with the server's fresh nonce. */
  staleNonceRetries: number;
  refreshes: number;
  refreshFailures: number;
  callbackErrors: number;
  /** Allocates asked again for fewer families after a 400/440 (see turn-client.ts). */
  familyFallbacks: number;
  /** Permissions, channels and sends refused for a peer of a family the allocation has no address of. */
  peerFamilyMismatch: number;
}

/** Sends a request, resolves with the server's success answer, rejects with a TurnError. */
export type TurnRequest = (method: number, what: string, attrs: readonly StunAttr[]) => Promise<ParsedStun>;

export interface TurnTransactionsOptions {
  server: Endpoint;
  /** The server as "address:port", for messages. */
  serverName: string;
  username: string;
  password: string;
  send: (bytes: Uint8Array, to: Endpoint) => void;
  /** First retransmission timeout (ms); doubles on each retransmission. */
  rtoMs: number;
  stats: TurnClientStats;
  clock: Scheduler;
}

interface Transaction {
  method: number;
  timer: TimerHandle;
  onAnswer: (m: ParsedStun, raw: Uint8Array) => void;
  fail: (e: Error) => void;
}

const txKey = (id: Uint8Array): string => Buffer.from(id.buffer, id.byteOffset, id.length).toString('latin1');

export class TurnTransactions {
  private realm: string | undefined;
  private nonce: string | undefined;
  private key: Buffer | undefined;
  private readonly pending = new Map<string, Transaction>();

  constructor(private readonly o: TurnTransactionsOptions) {}

  /** The server has challenged us and we answer with credentials. */
  get authenticated(): boolean { return this.key !== undefined; }

  /** A success or error answer from the server (already checked to come from it). */
  answer(m: ParsedStun, raw: Uint8Array): void {
    const tx = this.pending.get(txKey(m.transactionId));
    if (!tx) { this.o.stats.unknownTransaction++; return; }
    if (tx.method !== m.method) { this.o.stats.malformed++; return; }
    tx.onAnswer(m, raw);
  }

  /** Reject every request in flight with `e`. */
  failAll(e: Error): void {
    for (const tx of [...this.pending.values()]) tx.fail(e);
  }

  readonly request: TurnRequest = (method, what, attrs) => new Promise<ParsedStun>((resolve, reject) => {
    const o = this.o;
    let staleRetries = 0;
    const attempt = (): void => {
      const key = this.key;
      const nonce = this.nonce;
      const credentials = key && { username: o.username, realm: this.realm!, nonce: nonce!, key };
      const req = encodeTurnRequest(method, attrs, credentials);
      if (!req) { reject(new TurnError(`TURN ${what}: a peer address is not an IP address`)); return; }
      const { bytes, transactionId } = req;
      const k = txKey(transactionId);
      let rto = o.rtoMs;
      let sent = 1;
      const done = (): void => { tx.timer.cancel(); this.pending.delete(k); };
      const onTimer = (): void => {
        if (sent >= TURN_MAX_TRANSMISSIONS) {
          done();
          reject(new TurnError(`TURN ${what}: no answer from ${o.serverName} after ${sent} tries`));
          return;
        }
        sent++;
        rto *= 2;
        o.stats.retransmits++;
        o.send(bytes, o.server);
        tx.timer = o.clock.setTimer(rto, onTimer);
      };
      const tx: Transaction = {
        method,
        timer: o.clock.setTimer(rto, onTimer),
        fail: (e) => { done(); reject(e); },
        onAnswer: (ans, raw) => {
          if (ans.cls === STUN_CLASS_SUCCESS) {
            // An answer to a request with credentials must prove the server knows them too.
            if (key && !verifyIntegrity(raw, ans, key)) { o.stats.badIntegrity++; return; }
            done();
            resolve(ans);
            return;
          }
          done();
          const retry = this.onError(ans, what, key, nonce, staleRetries);
          if (retry instanceof TurnError) { reject(retry); return; }
          if (retry === 'stale') { staleRetries++; o.stats.staleNonceRetries++; }
          attempt();
        },
      };
      this.pending.set(k, tx);
      o.send(bytes, o.server);
    };
    attempt();
  });

  /** An error answer: learn the realm and nonce it teaches and say whether to try again ('stale' for a
   *  438), or the error to reject with. `key` and `nonce` are what the request was sent with. */
  private onError(ans: ParsedStun, what: string, key: Buffer | undefined, nonce: string | undefined, staleRetries: number):
    'retry' | 'stale' | TurnError {
    const o = this.o;
    const ec = parseErrorCode(stunAttribute(ans, ATTR.ERROR_CODE) ?? new Uint8Array(0));
    if (!ec) return new TurnError(`TURN ${what}: ${o.serverName} sent an error answer without a valid ERROR-CODE`);
    const realm = textAttr(ans, ATTR.REALM);
    const newNonce = textAttr(ans, ATTR.NONCE);
    if (ec.code === 401 && !key && realm !== undefined && newNonce !== undefined) {
      this.realm = realm;
      this.nonce = newNonce;
      this.key = longTermKey(o.username, realm, o.password);
      return 'retry';
    }
    if (ec.code === 401 && key && nonce !== this.nonce) return 'retry'; // another request learnt a fresh nonce meanwhile
    if (ec.code === 438 && newNonce !== undefined && staleRetries < TURN_STALE_NONCE_RETRIES) {
      this.nonce = newNonce;
      if (realm !== undefined && realm !== this.realm) {
        this.realm = realm;
        this.key = longTermKey(o.username, realm, o.password);
      }
      return 'stale';
    }
    if (ec.code === 401) {
      return new TurnError(
        `TURN ${what} refused by ${o.serverName}: 401 ${ec.reason || 'Unauthorized'} ` +
        (key ? `(wrong username or password for realm "${this.realm}")` : '(no REALM/NONCE to answer with)'), 401);
    }
    return new TurnError(`TURN ${what} refused by ${o.serverName}: ${ec.code} ${ec.reason}`.trimEnd(), ec.code);
  }
}
