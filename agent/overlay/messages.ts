// Bodies of the overlay's messages: their codes, and one encode/decode pair per message saying which TLVs
// (tlvs.ts) it carries. The datagram around them (header, Via and destination lists, TLV framing, routing
// helpers) is codec.ts, which is the module to import.
//
// A known TLV type in a message that does not carry it, or a missing required TLV, makes the message
// invalid. Every message carries SENDER exactly once.

import type { Writer } from '../base/binary.js';
import { NODE_ID_BYTES } from '../base/constants.js';
import {
  TLV_BLOB, TLV_CONTACTS, TLV_ERROR, TLV_OBSERVED, TLV_RECORD, TLV_RESOURCE, TLV_SENDER, TLV_STATUS, TLV_TARGET,
  bit, tlvEnd, tlvStart, writeContacts, writeEndpoint, writeError, writeRecords, writeResource, writeStatuses, writeTlv,
  type Fields, type OverlayContact, type OverlayEndpoint,
} from './tlvs.js';

/** Message codes. A request and its answer share the code; the header's response flag tells them apart,
 *  and an error answer (response + error flags) keeps the code of the request it answers. */
export const METHOD_PING = 1;
export const METHOD_FIND_NODE = 2;
export const METHOD_FETCH = 3;
export const METHOD_STORE = 4;
export const METHOD_ATTACH = 5;
export const METHOD_LEAVE = 6;

/** Error codes, numbered as RELOAD's (RFC 6940 section 14.9) where one fits. */
export const ERR_FORBIDDEN = 2;
export const ERR_NOT_FOUND = 3;
export const ERR_REQUEST_TIMEOUT = 4;
export const ERR_DATA_TOO_LARGE = 8;
export const ERR_DATA_TOO_OLD = 9;
export const ERR_TTL_EXCEEDED = 10;
export const ERR_MESSAGE_TOO_LARGE = 11;
export const ERR_UNKNOWN_KIND = 12;
export const ERR_UNKNOWN_EXTENSION = 13;
export const ERR_INVALID_MESSAGE = 20;
/** idloc's own: the request showed no valid cookie for its source; the answer carries one (cookies.ts). */
export const ERR_COOKIE_REQUIRED = 0x8001;

export type Body =
  | { kind: 'ping' }
  | { kind: 'pong'; observed?: OverlayEndpoint }
  | { kind: 'find-node'; target: Uint8Array }
  | { kind: 'find-node-answer'; contacts: OverlayContact[] }
  | { kind: 'fetch'; resource: Uint8Array; recordKind: number }
  /** Records if the node holds some, and/or contacts closer to the resource (Kademlia's FIND_VALUE). */
  | { kind: 'fetch-answer'; records: Uint8Array[]; contacts: OverlayContact[] }
  | { kind: 'store'; resource: Uint8Array; recordKind: number; records: Uint8Array[] }
  /** One status per stored record, in order (0 = stored; the other codes are the store's). */
  | { kind: 'store-answer'; statuses: number[] }
  | { kind: 'attach'; blob: Uint8Array }
  | { kind: 'attach-answer'; blob: Uint8Array }
  | { kind: 'leave' }
  | { kind: 'leave-answer' }
  /** `method` is the code of the request this answers (any u16: it may be one we do not know). */
  | { kind: 'error'; method: number; code: number; reason: string };

export type BodyKind = Body['kind'];

// ---- one encode/decode pair per message ------------------------------------------------------------

export interface Spec<K extends BodyKind> {
  method: number;
  response: boolean;
  /** TLV types that must be present / may be present (besides SENDER, which every message has). */
  required: number;
  optional: number;
  encode(w: Writer, m: Extract<Body, { kind: K }>): void;
  /** `method` is the header's code (only ERROR, which answers any code, needs it). */
  decode(f: Fields, method: number): Extract<Body, { kind: K }>;
}

type Specs = { [K in BodyKind]: Spec<K> };

const none = () => undefined;

export const SPECS: Specs = {
  'ping': { method: METHOD_PING, response: false, required: 0, optional: 0, encode: none, decode: () => ({ kind: 'ping' }) },
  'pong': {
    method: METHOD_PING, response: true, required: 0, optional: bit(TLV_OBSERVED),
    encode: (w, m) => {
      if (!m.observed) return;
      const at = tlvStart(w, TLV_OBSERVED);
      writeEndpoint(w, m.observed);
      tlvEnd(w, at);
    },
    decode: (f) => (f.observed ? { kind: 'pong', observed: f.observed } : { kind: 'pong' }),
  },
  'find-node': {
    method: METHOD_FIND_NODE, response: false, required: bit(TLV_TARGET), optional: 0,
    encode: (w, m) => { const at = tlvStart(w, TLV_TARGET); w.bytes(m.target, NODE_ID_BYTES); tlvEnd(w, at); },
    decode: (f) => ({ kind: 'find-node', target: f.target! }),
  },
  'find-node-answer': {
    method: METHOD_FIND_NODE, response: true, required: bit(TLV_CONTACTS), optional: 0,
    encode: (w, m) => writeContacts(w, m.contacts),
    decode: (f) => ({ kind: 'find-node-answer', contacts: f.contacts! }),
  },
  'fetch': {
    method: METHOD_FETCH, response: false, required: bit(TLV_RESOURCE), optional: 0,
    encode: (w, m) => writeResource(w, m.resource, m.recordKind),
    decode: (f) => ({ kind: 'fetch', resource: f.resource!, recordKind: f.recordKind }),
  },
  'fetch-answer': {
    method: METHOD_FETCH, response: true, required: 0, optional: bit(TLV_RECORD) | bit(TLV_CONTACTS),
    encode: (w, m) => {
      writeRecords(w, m.records, 0);
      if (m.contacts.length > 0) writeContacts(w, m.contacts); // canonical: no empty CONTACTS
    },
    decode: (f) => ({ kind: 'fetch-answer', records: f.records ?? [], contacts: f.contacts ?? [] }),
  },
  'store': {
    method: METHOD_STORE, response: false, required: bit(TLV_RESOURCE) | bit(TLV_RECORD), optional: 0,
    encode: (w, m) => { writeResource(w, m.resource, m.recordKind); writeRecords(w, m.records, 1); },
    decode: (f) => ({ kind: 'store', resource: f.resource!, recordKind: f.recordKind, records: f.records! }),
  },
  'store-answer': {
    method: METHOD_STORE, response: true, required: bit(TLV_STATUS), optional: 0,
    encode: (w, m) => writeStatuses(w, m.statuses),
    decode: (f) => ({ kind: 'store-answer', statuses: f.statuses! }),
  },
  'attach': {
    method: METHOD_ATTACH, response: false, required: bit(TLV_BLOB), optional: 0,
    encode: (w, m) => writeTlv(w, TLV_BLOB, m.blob),
    decode: (f) => ({ kind: 'attach', blob: f.blob! }),
  },
  'attach-answer': {
    method: METHOD_ATTACH, response: true, required: bit(TLV_BLOB), optional: 0,
    encode: (w, m) => writeTlv(w, TLV_BLOB, m.blob),
    decode: (f) => ({ kind: 'attach-answer', blob: f.blob! }),
  },
  'leave': { method: METHOD_LEAVE, response: false, required: 0, optional: 0, encode: none, decode: () => ({ kind: 'leave' }) },
  'leave-answer': { method: METHOD_LEAVE, response: true, required: 0, optional: 0, encode: none, decode: () => ({ kind: 'leave-answer' }) },
  'error': {
    method: -1 /* any: an ERROR carries the code of the request it answers */, response: true, required: bit(TLV_ERROR), optional: 0,
    encode: (w, m) => writeError(w, m.code, m.reason),
    decode: (f, method) => ({ kind: 'error', method, code: f.errorCode, reason: f.reason }),
  },
};

/** Kind of a non-error message by (code, response flag); undefined for codes we do not know. */
export function kindOf(method: number, response: boolean): Exclude<BodyKind, 'error'> | undefined {
  switch (method) {
    case METHOD_PING: return response ? 'pong' : 'ping';
    case METHOD_FIND_NODE: return response ? 'find-node-answer' : 'find-node';
    case METHOD_FETCH: return response ? 'fetch-answer' : 'fetch';
    case METHOD_STORE: return response ? 'store-answer' : 'store';
    case METHOD_ATTACH: return response ? 'attach-answer' : 'attach';
    case METHOD_LEAVE: return response ? 'leave-answer' : 'leave';
    default: return undefined;
  }
}

/** Known-TLV mask the scan may report for `kind`: everything else known makes the message invalid. */
export function allowedMask(spec: Spec<BodyKind>): number {
  return spec.required | spec.optional | bit(TLV_SENDER);
}
