// OverlayNode's two RpcCodec adapters: the typed requests and answers of its two Rpc instances on one side,
// the overlay messages of codec.ts on the other.
//
//   KademliaNode's Rpc:  PING / FIND_NODE / FIND_VALUE  <->  ping / find-node / fetch, and their answers
//   the second Rpc:      STORE / LEAVE                 <->  store / leave, their answers, ERROR for STORE
//
// How FETCH's record kind crosses KademliaNode (whose FIND_VALUE has only a key): the kind travels with the
// key object itself (a WeakMap keyed by the Uint8Array, which lookup() and KademliaNode pass through
// unchanged), outbound from fetch() to encodeRequest, inbound from decode to the node's getValue().
//
// Everything sent must fit one datagram (OVERLAY_MAX_DATAGRAM): answers drop their farthest contacts, then
// records (fitted); a sender splits a long list of records into several STOREs (storeBatches).
// Contacts taken from answers must have NodeID = H(key) and an endpoint; the others are counted, not used.
//
// Every message is signed (cx.sign). A request carries the cookie its destination gave us (cx.cookieFor), or
// is padded to at least COOKIE_ANSWER_BYTES, the size of the answer that asks for one (node-guard.ts).

import { OVERLAY_DEFAULT_TTL, OVERLAY_MAX_DATAGRAM, OVERLAY_MAX_RECORDS } from '../base/constants.js';
import type { Endpoint } from '../conn/socket.js';
import {
  encodedLength, fromSocketEndpoint, idMatchesKey, marshalOverlayMessage, parseOverlayMessage, toSocketEndpoint, trimToFit,
  ERR_COOKIE_REQUIRED, METHOD_FETCH, METHOD_PING, METHOD_STORE,
  type Body, type OverlayContact, type OverlayEndpoint, type OverlayMessage, type OverlaySign, type Sender,
} from './codec.js';
import type { DhtRequest, DhtResponse, NodeRef } from './kademlia.js';
import type { Decoded, RpcCodec } from './rpc.js';
import type { PutResult } from './store.js';
import type { ContactInfo } from './bucket.js';

/** The u8 status a STORE answer carries per record (0 = stored; the others are store.ts's PutResult). */
export const STORE_STATUS: Record<PutResult, number> = {
  stored: 0, stale: 1, forged: 2, taken: 3, expired: 4, invalid: 5, full: 6,
};
const STATUS_NAMES: PutResult[] = ['stored', 'stale', 'forged', 'taken', 'expired', 'invalid', 'full'];

/** PutResult of a STORE answer's status; unknown codes read as 'invalid'. */
export function putResultOfStatus(s: number): PutResult {
  return STATUS_NAMES[s] ?? 'invalid';
}

/** What a FETCH answer holder gave: raw record bytes, plus contacts so the lookup can go on. */
export interface FetchValue {
  records: Uint8Array[];
  contacts: ContactInfo[];
}

export type ExtraRequest =
  | { type: 'store'; sender: NodeRef; resource: Uint8Array; recordKind: number; records: Uint8Array[] }
  | { type: 'leave'; sender: NodeRef };
export type ExtraResponse =
  | { type: 'store-answer'; sender: NodeRef; statuses: number[] }
  | { type: 'leave-answer'; sender: NodeRef }
  | { type: 'error'; sender: NodeRef; code: number; reason: string };

/** What travels through both Rpc instances: the bytes, and the message already parsed (incoming). */
export interface Wire {
  bytes: Uint8Array;
  msg?: OverlayMessage;
}

/** What the adapters need from the node. */
export interface WireContext {
  readonly self: Sender;
  /** Record kind of a FETCH key (see the top of the file). */
  readonly fetchKinds: WeakMap<Uint8Array, number>;
  /** The request being answered right now (KademliaNode answers synchronously), if it is `txid`. */
  current(txid: bigint): { method: number; from: Endpoint } | undefined;
  /** A PONG said the other side saw us at this address. */
  observed(e: Endpoint): void;
  reject(reason: string): void;
  /** Our signature over what signature.ts says. */
  sign: OverlaySign;
  /** The cookie `to` gave us, if any. */
  cookieFor(to: Endpoint): Uint8Array | undefined;
}

/** The size of a COOKIE_REQUIRED answer: what a request without a cookie is padded to (the largest sender
 *  and no reason text, so any real one fits). */
export const COOKIE_ANSWER_BYTES = encodedLength({
  kind: 'error', method: METHOD_PING, code: ERR_COOKIE_REQUIRED, reason: '', ttl: 0, txid: 0n, via: [], dest: [],
  sender: { nodeId: new Uint8Array(20), publicKey: new Uint8Array(32), puzzleNonce: 0n }, cookie: new Uint8Array(16),
});

/** The COOKIE_REQUIRED answer to a request (`method`, `txid`) from an endpoint that showed no valid cookie. */
export function cookieAnswer(self: Sender, sign: OverlaySign, method: number, txid: bigint, cookie: Uint8Array): Buffer {
  return marshalOverlayMessage({
    kind: 'error', method, code: ERR_COOKIE_REQUIRED, reason: '', ttl: OVERLAY_DEFAULT_TTL, txid, via: [], dest: [], sender: self, cookie,
  }, sign);
}

/** Header fields of a request to `to`: its cookie if we have one, and padding up to the answer that asks
 *  for one (also with a cookie: it may have gone stale, or the node at `to` restarted). */
export function requestExtras(cx: Pick<WireContext, 'cookieFor'>, to: Endpoint): { cookie?: Uint8Array; padTo: number } {
  const cookie = cx.cookieFor(to);
  return cookie ? { cookie, padTo: COOKIE_ANSWER_BYTES } : { padTo: COOKIE_ANSWER_BYTES };
}

export const copyBytes = (b: Uint8Array): Uint8Array => Uint8Array.from(b);

function message(cx: WireContext, txid: bigint, body: Body, to?: Endpoint): Wire {
  const m: OverlayMessage = {
    ttl: OVERLAY_DEFAULT_TTL, txid, via: [], dest: [], sender: cx.self, ...body, ...(to ? requestExtras(cx, to) : {}),
  };
  return { bytes: marshalOverlayMessage(m, cx.sign) };
}

/** An answer that may carry contacts and records: drop the farthest contacts, then records, to fit. */
function fitted(cx: WireContext, txid: bigint, body: Extract<Body, { kind: 'find-node-answer' | 'fetch-answer' }>): Wire {
  const m: OverlayMessage = { ttl: OVERLAY_DEFAULT_TTL, txid, via: [], dest: [], sender: cx.self, ...body };
  let t = trimToFit(m);
  if (!t && m.kind === 'fetch-answer') {
    const f = { ...m, contacts: [], records: m.records.slice() };
    while (f.records.length > 0 && encodedLength(f) > OVERLAY_MAX_DATAGRAM) f.records.pop();
    t = f;
  }
  return { bytes: marshalOverlayMessage(t ?? { ...m, kind: 'find-node-answer', contacts: [] }, cx.sign) };
}

function toWireContacts(list: ContactInfo[]): OverlayContact[] {
  const out: OverlayContact[] = [];
  for (const c of list) {
    const e = fromSocketEndpoint(c.endpoint);
    if (e) out.push({ nodeId: c.nodeId, publicKey: c.publicKey, endpoints: [e] });
  }
  return out;
}

function fromWireContacts(cx: WireContext, list: OverlayContact[]): ContactInfo[] {
  const out: ContactInfo[] = [];
  for (const c of list) {
    if (!idMatchesKey(c)) { cx.reject('contact-id-mismatch'); continue; }
    const e: OverlayEndpoint | undefined = c.endpoints[0];
    if (!e) { cx.reject('contact-no-endpoint'); continue; }
    out.push({ nodeId: copyBytes(c.nodeId), publicKey: copyBytes(c.publicKey), endpoint: toSocketEndpoint(e) });
  }
  return out;
}

function senderOf(m: OverlayMessage): NodeRef {
  return { nodeId: copyBytes(m.sender.nodeId), publicKey: copyBytes(m.sender.publicKey), puzzleNonce: m.sender.puzzleNonce ?? 0n };
}

/** Split records for one (resource, kind) into lists that each fit one STORE datagram, in order. */
export function storeBatches(self: Sender, resource: Uint8Array, recordKind: number, records: Uint8Array[]): Uint8Array[][] {
  if (records.length === 0) return [];
  const one: OverlayMessage = {
    kind: 'store', ttl: OVERLAY_DEFAULT_TTL, txid: 0n, via: [], dest: [], sender: self, resource, recordKind, records: [records[0]!],
  };
  const base = encodedLength(one) - (4 + records[0]!.length); // every record is one TLV: 4 bytes + the record
  const out: Uint8Array[][] = [];
  let cur: Uint8Array[] = [];
  let size = base;
  for (const r of records) {
    if (base + 4 + r.length > OVERLAY_MAX_DATAGRAM) continue; // cannot be sent at all (records.ts keeps them smaller)
    if (cur.length > 0 && (size + 4 + r.length > OVERLAY_MAX_DATAGRAM || cur.length >= OVERLAY_MAX_RECORDS)) {
      out.push(cur);
      cur = [];
      size = base;
    }
    cur.push(r);
    size += 4 + r.length;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

export function kadCodec(cx: WireContext): RpcCodec<DhtRequest, DhtResponse<FetchValue>, Wire> {
  return {
    encodeRequest: (txid, req, to) => {
      switch (req.type) {
        case 'ping': return message(cx, txid, { kind: 'ping' }, to);
        case 'find_node': return message(cx, txid, { kind: 'find-node', target: req.target }, to);
        case 'find_value':
          return message(cx, txid, { kind: 'fetch', resource: req.key, recordKind: cx.fetchKinds.get(req.key) ?? 0 }, to);
      }
    },
    encodeResponse: (txid, res) => {
      const ctx = cx.current(txid);
      switch (res.type) {
        case 'pong': {
          const observed = ctx ? fromSocketEndpoint(ctx.from) : undefined;
          return message(cx, txid, observed ? { kind: 'pong', observed } : { kind: 'pong' });
        }
        case 'nodes':
          return ctx?.method === METHOD_FETCH
            ? fitted(cx, txid, { kind: 'fetch-answer', records: [], contacts: toWireContacts(res.contacts) })
            : fitted(cx, txid, { kind: 'find-node-answer', contacts: toWireContacts(res.contacts) });
        case 'value':
          return fitted(cx, txid, { kind: 'fetch-answer', records: res.value.records, contacts: toWireContacts(res.value.contacts) });
      }
    },
    decode: (w): Decoded<DhtRequest, DhtResponse<FetchValue>> | undefined => {
      const m = w.msg ?? parseOverlayMessage(w.bytes);
      if (!m) return undefined;
      const sender = senderOf(m);
      switch (m.kind) {
        case 'ping': return { kind: 'request', txid: m.txid, body: { type: 'ping', sender } };
        case 'find-node': return { kind: 'request', txid: m.txid, body: { type: 'find_node', sender, target: copyBytes(m.target) } };
        case 'fetch': {
          const key = copyBytes(m.resource);
          cx.fetchKinds.set(key, m.recordKind);
          return { kind: 'request', txid: m.txid, body: { type: 'find_value', sender, key } };
        }
        case 'pong':
          if (m.observed) cx.observed(toSocketEndpoint(m.observed));
          return { kind: 'response', txid: m.txid, body: { type: 'pong', sender } };
        case 'find-node-answer':
          return { kind: 'response', txid: m.txid, body: { type: 'nodes', sender, contacts: fromWireContacts(cx, m.contacts) } };
        case 'fetch-answer': {
          const contacts = fromWireContacts(cx, m.contacts);
          if (m.records.length === 0) return { kind: 'response', txid: m.txid, body: { type: 'nodes', sender, contacts } };
          return {
            kind: 'response', txid: m.txid,
            body: { type: 'value', sender, value: { records: m.records.map(copyBytes), contacts }, contacts },
          };
        }
        default: return undefined;
      }
    },
  };
}

export function extraCodec(cx: WireContext): RpcCodec<ExtraRequest, ExtraResponse, Wire> {
  return {
    encodeRequest: (txid, req, to) => req.type === 'leave'
      ? message(cx, txid, { kind: 'leave' }, to)
      : message(cx, txid, { kind: 'store', resource: req.resource, recordKind: req.recordKind, records: req.records }, to),
    encodeResponse: (txid, res) => {
      switch (res.type) {
        case 'store-answer': return message(cx, txid, { kind: 'store-answer', statuses: res.statuses });
        case 'leave-answer': return message(cx, txid, { kind: 'leave-answer' });
        case 'error': return message(cx, txid, { kind: 'error', method: METHOD_STORE, code: res.code, reason: res.reason });
      }
    },
    decode: (w): Decoded<ExtraRequest, ExtraResponse> | undefined => {
      const m = w.msg ?? parseOverlayMessage(w.bytes);
      if (!m) return undefined;
      const sender = senderOf(m);
      switch (m.kind) {
        case 'store':
          return {
            kind: 'request', txid: m.txid,
            body: { type: 'store', sender, resource: copyBytes(m.resource), recordKind: m.recordKind, records: m.records.map(copyBytes) },
          };
        case 'leave': return { kind: 'request', txid: m.txid, body: { type: 'leave', sender } };
        case 'store-answer': return { kind: 'response', txid: m.txid, body: { type: 'store-answer', sender, statuses: m.statuses } };
        case 'leave-answer': return { kind: 'response', txid: m.txid, body: { type: 'leave-answer', sender } };
        case 'error': return { kind: 'response', txid: m.txid, body: { type: 'error', sender, code: m.code, reason: m.reason } };
        default: return undefined;
      }
    },
  };
}
