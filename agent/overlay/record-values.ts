// The value of a signed record, one format per kind (records.ts draws the record around it). Integers
// big-endian. A tombstone has no value (length 0); every other value fills its length exactly.
//
//   1 LOCATOR    | flags u32 | #cand u8 | candidate ... | #rdv u8 | rendezvous NodeID (20) ... |
//                flags: ServiceFlag bits (unknown bits are kept, for later versions);
//                #cand ≤ LOCATOR_MAX_CANDIDATES, #rdv ≤ LOCATOR_MAX_RENDEZVOUS
//   2 IPV4_CLAIM | ipv4 u32 | attempt u32 |
//   3 NAME       | len u8 | name (ASCII, len bytes) | NodeID (20) |
//   4 SERVICE    | len u8 | service name | provider NodeID (20) | #endpoints u8 | candidate ... |
//                #endpoints ≤ SERVICE_MAX_ENDPOINTS
//
//   candidate:   | family u8 (4|6) | type u8 (0 host, 1 srflx, 2 relay) | port u16 | priority u32 | address (4|16) |
//
// Names follow names.ts's rules, checked both ways. Who may write which value (ownership, first-come) is
// records.ts's verifyRecord and store.ts.
import { Reader, Writer } from '../base/binary.js';
import {
  LOCATOR_MAX_CANDIDATES, LOCATOR_MAX_RENDEZVOUS, NODE_ID_BYTES, RECORD_MAX_VALUE_BYTES, SERVICE_MAX_ENDPOINTS,
} from '../base/constants.js';
import { formatIpv4, formatIpv6, parseIpv4, parseIpv6 } from '../idloc/addresses.js';
import { isValidName, isValidServiceName } from './names.js';

export const RecordKind = { Locator: 1, Ipv4Claim: 2, Name: 3, Service: 4 } as const;
export type RecordKind = (typeof RecordKind)[keyof typeof RecordKind];
const KINDS: ReadonlySet<number> = new Set(Object.values(RecordKind));
export function isRecordKind(k: number): k is RecordKind { return KINDS.has(k); }
/** Kinds with one holder per resource, first-come (the store refuses a second key's live entry). */
export function isUniqueKind(k: RecordKind): boolean { return k === RecordKind.Ipv4Claim || k === RecordKind.Name; }

export const CandidateType = { Host: 0, Srflx: 1, Relay: 2 } as const;
export type CandidateType = (typeof CandidateType)[keyof typeof CandidateType];

/** Service flags of a locator: what this node offers to others. */
export const ServiceFlag = { Stun: 1, Turn: 2, Relay: 4, Rendezvous: 8 } as const;

/** An ICE-style candidate. `address` is text as addresses.ts writes it (IPv4 dotted, IPv6 RFC 5952,
 *  no zone id); the family on the wire follows from it. */
export interface Candidate {
  address: string;
  port: number;
  type: CandidateType;
  priority: number;
}

export interface LocatorValue {
  flags: number;
  candidates: Candidate[];
  /** NodeIDs (20 bytes) of the rendezvous peers this host keeps keepalives to. */
  rendezvous: Uint8Array[];
}
export interface Ipv4ClaimValue { ipv4: number; attempt: number }
export interface NameValue { name: string; nodeId: Uint8Array }
export interface ServiceValue { service: string; nodeId: Uint8Array; endpoints: Candidate[] }

/** A kind with its value; `value: null` is a tombstone. */
export type KindValue =
  | { kind: typeof RecordKind.Locator; value: LocatorValue | null }
  | { kind: typeof RecordKind.Ipv4Claim; value: Ipv4ClaimValue | null }
  | { kind: typeof RecordKind.Name; value: NameValue | null }
  | { kind: typeof RecordKind.Service; value: ServiceValue | null };

export const isU8 = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0xff;
export const isU16 = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0xffff;
export const isU32 = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0xffffffff;
export const isBytes = (v: unknown, n: number): v is Uint8Array => v instanceof Uint8Array && v.length === n;

export function fail(what: string): never { throw new RangeError(`record: ${what}`); }

const enc = new TextEncoder();

function writeCandidate(w: Writer, c: Candidate): void {
  if (!isU16(c.port) || !isU32(c.priority) || !isU8(c.type) || c.type > CandidateType.Relay) fail('bad candidate');
  const v4 = typeof c.address === 'string' ? parseIpv4(c.address) : undefined;
  const v6 = v4 === undefined && typeof c.address === 'string' ? parseIpv6(c.address) : undefined;
  if (v4 === undefined && v6 === undefined) fail(`bad candidate address ${String(c.address)}`);
  w.u8(v4 !== undefined ? 4 : 6);
  w.u8(c.type);
  w.u16(c.port);
  w.u32(c.priority);
  if (v4 !== undefined) w.u32(v4);
  else w.bytes(v6!);
}

function readCandidate(r: Reader): Candidate | undefined {
  const family = r.u8();
  const type = r.u8();
  const port = r.u16();
  const priority = r.u32();
  if (type > CandidateType.Relay) return undefined;
  let address: string;
  if (family === 4) address = formatIpv4(r.u32());
  else if (family === 6) address = formatIpv6(r.copy(16));
  else return undefined;
  return { address, port, type: type as CandidateType, priority };
}

function writeCandidates(w: Writer, list: Candidate[], max: number): void {
  if (!Array.isArray(list) || list.length > max) fail('too many candidates');
  w.u8(list.length);
  for (const c of list) writeCandidate(w, c);
}

function readCandidates(r: Reader, max: number): Candidate[] | undefined {
  const n = r.u8();
  if (n > max) return undefined;
  const out: Candidate[] = [];
  for (let i = 0; i < n; i++) {
    const c = readCandidate(r);
    if (!c || r.bad) return undefined;
    out.push(c);
  }
  return out;
}

function writeLabel(w: Writer, s: string, valid: (s: string) => boolean): void {
  if (typeof s !== 'string' || !valid(s)) fail(`bad name ${JSON.stringify(s)}`);
  w.u8(s.length);
  w.bytes(enc.encode(s));
}

function readLabel(r: Reader, valid: (s: string) => boolean): string | undefined {
  const b = r.view(r.u8());
  if (r.bad) return undefined;
  const s = String.fromCharCode(...b); // validity (ASCII subset) is checked right after
  return valid(s) ? s : undefined;
}

function writeValue(w: Writer, kv: KindValue): void {
  if (kv.value === null) return;
  switch (kv.kind) {
    case RecordKind.Locator: {
      const v = kv.value;
      if (!isU32(v.flags)) fail('bad flags');
      w.u32(v.flags);
      writeCandidates(w, v.candidates, LOCATOR_MAX_CANDIDATES);
      if (!Array.isArray(v.rendezvous) || v.rendezvous.length > LOCATOR_MAX_RENDEZVOUS) fail('too many rendezvous peers');
      w.u8(v.rendezvous.length);
      for (const id of v.rendezvous) {
        if (!isBytes(id, NODE_ID_BYTES)) fail('bad rendezvous NodeID');
        w.bytes(id);
      }
      return;
    }
    case RecordKind.Ipv4Claim: {
      const v = kv.value;
      if (!isU32(v.ipv4) || !isU32(v.attempt)) fail('bad ipv4 claim');
      w.u32(v.ipv4);
      w.u32(v.attempt);
      return;
    }
    case RecordKind.Name: {
      const v = kv.value;
      writeLabel(w, v.name, isValidName);
      if (!isBytes(v.nodeId, NODE_ID_BYTES)) fail('bad NodeID');
      w.bytes(v.nodeId);
      return;
    }
    case RecordKind.Service: {
      const v = kv.value;
      writeLabel(w, v.service, isValidServiceName);
      if (!isBytes(v.nodeId, NODE_ID_BYTES)) fail('bad NodeID');
      w.bytes(v.nodeId);
      writeCandidates(w, v.endpoints, SERVICE_MAX_ENDPOINTS);
      return;
    }
    default:
      fail('unknown kind');
  }
}

/** The value's bytes (empty for a tombstone). Throws RangeError on a field out of range. */
export function marshalValue(kv: KindValue): Uint8Array {
  const w = new Writer();
  writeValue(w, kv);
  const out = w.done();
  if (out.length > RECORD_MAX_VALUE_BYTES) fail('value too long');
  return out;
}

/** A non-empty value of `kind`; undefined if malformed or not filling `b` exactly. Ids are copies. */
export function parseValue(kind: RecordKind, b: Uint8Array): KindValue['value'] | undefined {
  const r = new Reader(b);
  let v: KindValue['value'] | undefined;
  switch (kind) {
    case RecordKind.Locator: {
      const flags = r.u32();
      const candidates = readCandidates(r, LOCATOR_MAX_CANDIDATES);
      const n = r.u8();
      if (!candidates || n > LOCATOR_MAX_RENDEZVOUS) return undefined;
      const rendezvous: Uint8Array[] = [];
      for (let i = 0; i < n; i++) rendezvous.push(r.copy(NODE_ID_BYTES));
      v = { flags, candidates, rendezvous };
      break;
    }
    case RecordKind.Ipv4Claim:
      v = { ipv4: r.u32(), attempt: r.u32() };
      break;
    case RecordKind.Name: {
      const name = readLabel(r, isValidName);
      if (name === undefined) return undefined;
      v = { name, nodeId: r.copy(NODE_ID_BYTES) };
      break;
    }
    case RecordKind.Service: {
      const service = readLabel(r, isValidServiceName);
      if (service === undefined) return undefined;
      const nodeId = r.copy(NODE_ID_BYTES);
      const endpoints = readCandidates(r, SERVICE_MAX_ENDPOINTS);
      if (!endpoints) return undefined;
      v = { service, nodeId, endpoints };
      break;
    }
  }
  return r.done() ? v : undefined;
}
