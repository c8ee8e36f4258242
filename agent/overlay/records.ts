// Signed overlay records: what the DHT stores (store.ts) and the overlay carries as opaque blobs.
// One binary format for every kind; all integers big-endian (network order, as RELOAD).
//
//    0      1      2                    22                        54             62              70           74             82        84             84+n
//   +------+------+--------------------+-------------------------+--------------+---------------+------------+--------------+---------+--------------+----------------+
//   | ver  | kind | resource id (20)   | owner Ed25519 key (32)  | sequence u64 | created u64   | lifetime   | puzzle nonce | value   | value (n)    | signature (64) |
//   | = 1  |      |                    |                         |              | (Unix ms)     | u32 (s)    | u64          | len u16 |              |                |
//   +------+------+--------------------+-------------------------+--------------+---------------+------------+--------------+---------+--------------+----------------+
//
//   signature = Ed25519(owner key, "idloc record v1" || bytes[0 .. 84+n))
//   n = 0 is a tombstone (RELOAD's exists=false): the owner's removal of its entry, with a higher
//   sequence. n ≤ RECORD_MAX_VALUE_BYTES; the length must be exact (no trailing bytes); created ≤ 2^53-1.
//   Parsing is strict, so every accepted byte string is the one canonical encoding of its record:
//   marshalRecord(parseRecord(b)) equals b, and the signature can be checked on either.
//   The record expires at created + lifetime·1000 ms (the owner's clock; see RECORD_MAX_CLOCK_SKEW_MS).
//   puzzle nonce = the owner key's proof of work (puzzle.ts).
//
// Kinds, values, resource ids and access rules (only the key that owns a resource may write it):
//
//   1 LOCATOR    resource = NodeID of the owner key; only that key may write it.
//                value: | flags u32 | #cand u8 | candidate ... | #rdv u8 | rendezvous NodeID (20) ... |
//                candidate: | family u8 (4|6) | type u8 (0 host, 1 srflx, 2 relay) | port u16 | priority u32 | address (4|16) |
//                flags: ServiceFlag bits (unknown bits are kept, for later versions)
//   2 IPV4_CLAIM resource = SHA-256("idloc ipv4" || IPv4 u32)[0..20)
//                value: | ipv4 u32 | attempt u32 |
//                valid only if ipv4FromNodeId(NodeID(owner), attempt) = ipv4 and attempt ≤ IPV4_MAX_CLAIM_ATTEMPT;
//                first-come: while one key's live claim is stored, other keys' claims are refused (store.ts).
//                withdrawn with a tombstone (n = 0, same resource, higher sequence, lifetime covering the
//                claim's) when the key moves to another attempt (node-publish.ts), so fetches and ipv4Of stop
//                returning the old address before it expires; the address is then free for other keys.
//   3 NAME       resource = SHA-256("idloc name" || name)[0..20)   (P2PNS)
//                value: | len u8 | name (ASCII) | NodeID (20) |   NodeID must be the owner's.
//                unique, first-come; only the owner updates it or removes it (tombstone).
//   4 SERVICE    resource = SHA-256("idloc service" || service name)[0..20)   (SEP / RELOAD TURN-SERVICE)
//                value: | len u8 | service name | provider NodeID (20) | #endpoints u8 | candidate ... |
//                many providers per resource, one entry per owner key, each writable only by its owner.
//
// Name rules (names and service names): lowercase ASCII letters, digits and '-', 1..63 characters
// (1..32 for services), neither starting nor ending with '-', so `<name>.idloc` is a valid DNS label.
// A name of exactly 40 hex digits is refused: `resolve` reads that as a NodeID. normalizeName() maps user
// input (any case, optional trailing ".idloc" or ".") to this form; records carry only normalized names.
import { ed25519 } from '@noble/curves/ed25519.js';
import { sha256 } from '@noble/hashes/sha2.js';
import {
  IPV4_CLAIM_LIFETIME_S, IPV4_MAX_CLAIM_ATTEMPT, LOCATOR_LIFETIME_S, LOCATOR_MAX_CANDIDATES, LOCATOR_MAX_RENDEZVOUS,
  NAME_LIFETIME_S, NAME_MAX_LEN, NODE_ID_BYTES, PUZZLE_DEFAULT_DIFFICULTY, RECORD_MAX_CLOCK_SKEW_MS, RECORD_MAX_LIFETIME_S,
  RECORD_MAX_VALUE_BYTES, SERVICE_LIFETIME_S, SERVICE_MAX_ENDPOINTS, SERVICE_NAME_MAX_LEN,
} from '../base/constants.js';
import { formatIpv4, formatIpv6, ipv4FromNodeId, nodeIdFromPublicKey, parseIpv4, parseIpv6 } from '../idloc/addresses.js';
import { verifyPuzzle } from './puzzle.js';

export const RECORD_VERSION = 1;
export const RECORD_HEADER_LEN = 84;
export const RECORD_SIGNATURE_LEN = 64;
export const RECORD_MIN_LEN = RECORD_HEADER_LEN + RECORD_SIGNATURE_LEN;
export const RECORD_MAX_LEN = RECORD_MIN_LEN + RECORD_MAX_VALUE_BYTES;

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

interface RecordHeader {
  resourceId: Uint8Array; // 20
  owner: Uint8Array; // Ed25519 public key, 32
  seq: bigint; // u64
  created: number; // Unix ms
  lifetime: number; // seconds, u32
  puzzleNonce: bigint; // u64
}

/** `value: null` is a tombstone. */
export type UnsignedRecord = RecordHeader & (
  | { kind: typeof RecordKind.Locator; value: LocatorValue | null }
  | { kind: typeof RecordKind.Ipv4Claim; value: Ipv4ClaimValue | null }
  | { kind: typeof RecordKind.Name; value: NameValue | null }
  | { kind: typeof RecordKind.Service; value: ServiceValue | null }
);
export type OverlayRecord = UnsignedRecord & { signature: Uint8Array };
export type LocatorRecord = Extract<OverlayRecord, { kind: typeof RecordKind.Locator }>;
export type Ipv4ClaimRecord = Extract<OverlayRecord, { kind: typeof RecordKind.Ipv4Claim }>;
export type NameRecord = Extract<OverlayRecord, { kind: typeof RecordKind.Name }>;
export type ServiceRecord = Extract<OverlayRecord, { kind: typeof RecordKind.Service }>;

const enc = new TextEncoder();
const SIG_TAG = enc.encode('idloc record v1');
const IPV4_RES_TAG = enc.encode('idloc ipv4');
const NAME_RES_TAG = enc.encode('idloc name');
const SERVICE_RES_TAG = enc.encode('idloc service');
const U64_MAX = (1n << 64n) - 1n;

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) { out.set(p, off); off += p.length; }
  return out;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// ---- names and resource ids --------------------------------------------------------------

const LABEL_RE = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/;
const NODE_ID_HEX_RE = /^[0-9a-f]{40}$/;

/** True for a normalized overlay name (rules at the top). */
export function isValidName(name: string): boolean {
  return name.length >= 1 && name.length <= NAME_MAX_LEN && LABEL_RE.test(name) && !NODE_ID_HEX_RE.test(name);
}

export function isValidServiceName(s: string): boolean {
  return s.length >= 1 && s.length <= SERVICE_NAME_MAX_LEN && LABEL_RE.test(s);
}

/** User input → normalized name, or undefined if it breaks the rules. Lowercases, drops a trailing
 *  "." and ".idloc". Only ASCII is accepted: no Unicode case folding, so no look-alike names. */
export function normalizeName(input: string): string | undefined {
  let s = input.trim();
  if (!/^[\x21-\x7e]+$/.test(s)) return undefined;
  s = s.toLowerCase();
  if (s.endsWith('.')) s = s.slice(0, -1);
  if (s.endsWith('.idloc')) s = s.slice(0, -'.idloc'.length);
  return isValidName(s) ? s : undefined;
}

function taggedId(tag: Uint8Array, data: Uint8Array): Uint8Array {
  return sha256(concat(tag, data)).subarray(0, NODE_ID_BYTES);
}

/** LOCATOR resource: the owner's NodeID. */
export function locatorResourceId(publicKey: Uint8Array): Uint8Array {
  return nodeIdFromPublicKey(publicKey);
}

export function ipv4ResourceId(ipv4: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, ipv4 >>> 0, false);
  return taggedId(IPV4_RES_TAG, b);
}

/** NAME resource of user input (normalized first); throws RangeError if the name breaks the rules. */
export function nameResourceId(name: string): Uint8Array {
  const n = normalizeName(name);
  if (n === undefined) throw new RangeError(`invalid name: ${JSON.stringify(name)}`);
  return taggedId(NAME_RES_TAG, enc.encode(n));
}

export function serviceResourceId(service: string): Uint8Array {
  if (!isValidServiceName(service)) throw new RangeError(`invalid service name: ${JSON.stringify(service)}`);
  return taggedId(SERVICE_RES_TAG, enc.encode(service));
}

// ---- byte writer / reader ----------------------------------------------------------------

class Writer {
  private buf = new Uint8Array(256);
  private view = new DataView(this.buf.buffer);
  len = 0;
  private room(n: number): number {
    if (this.len + n > this.buf.length) {
      const nb = new Uint8Array(Math.max(this.buf.length * 2, this.len + n));
      nb.set(this.buf);
      this.buf = nb;
      this.view = new DataView(nb.buffer);
    }
    const off = this.len;
    this.len += n;
    return off;
  }
  // room() may replace buf/view, so it runs before they are read.
  u8(v: number): void { const o = this.room(1); this.view.setUint8(o, v); }
  u16(v: number): void { const o = this.room(2); this.view.setUint16(o, v, false); }
  u32(v: number): void { const o = this.room(4); this.view.setUint32(o, v, false); }
  u64(v: bigint): void { const o = this.room(8); this.view.setBigUint64(o, v, false); }
  bytes(b: Uint8Array): void { const o = this.room(b.length); this.buf.set(b, o); }
  done(): Uint8Array { return this.buf.slice(0, this.len); }
}

/** Reads past the end return zeros and set `bad`; callers check `ok()` once at the end. */
class Reader {
  private readonly view: DataView;
  off = 0;
  bad = false;
  constructor(private readonly b: Uint8Array) { this.view = new DataView(b.buffer, b.byteOffset, b.byteLength); }
  private take(n: number): number {
    if (this.bad || this.off + n > this.b.length) { this.bad = true; return -1; }
    const o = this.off;
    this.off += n;
    return o;
  }
  u8(): number { const o = this.take(1); return o < 0 ? 0 : this.view.getUint8(o); }
  u16(): number { const o = this.take(2); return o < 0 ? 0 : this.view.getUint16(o, false); }
  u32(): number { const o = this.take(4); return o < 0 ? 0 : this.view.getUint32(o, false); }
  u64(): bigint { const o = this.take(8); return o < 0 ? 0n : this.view.getBigUint64(o, false); }
  /** A copy, so parsed records never alias a datagram buffer. */
  bytes(n: number): Uint8Array { const o = this.take(n); return o < 0 ? new Uint8Array(n) : this.b.slice(o, o + n); }
  ok(): boolean { return !this.bad && this.off === this.b.length; }
}

// ---- values --------------------------------------------------------------------------------

const isU8 = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0xff;
const isU16 = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0xffff;
const isU32 = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0xffffffff;
const isU64 = (v: unknown): v is bigint => typeof v === 'bigint' && v >= 0n && v <= U64_MAX;
const isBytes = (v: unknown, n: number): v is Uint8Array => v instanceof Uint8Array && v.length === n;

function fail(what: string): never { throw new RangeError(`record: ${what}`); }

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
  else if (family === 6) address = formatIpv6(r.bytes(16));
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
  const b = r.bytes(r.u8());
  if (r.bad) return undefined;
  const s = String.fromCharCode(...b); // validity (ASCII subset) is checked right after
  return valid(s) ? s : undefined;
}

function writeValue(w: Writer, rec: UnsignedRecord): void {
  if (rec.value === null) return;
  switch (rec.kind) {
    case RecordKind.Locator: {
      const v = rec.value;
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
      const v = rec.value;
      if (!isU32(v.ipv4) || !isU32(v.attempt)) fail('bad ipv4 claim');
      w.u32(v.ipv4);
      w.u32(v.attempt);
      return;
    }
    case RecordKind.Name: {
      const v = rec.value;
      writeLabel(w, v.name, isValidName);
      if (!isBytes(v.nodeId, NODE_ID_BYTES)) fail('bad NodeID');
      w.bytes(v.nodeId);
      return;
    }
    case RecordKind.Service: {
      const v = rec.value;
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

function encodeValue(rec: UnsignedRecord): Uint8Array {
  const w = new Writer();
  writeValue(w, rec);
  const out = w.done();
  if (out.length > RECORD_MAX_VALUE_BYTES) fail('value too long');
  return out;
}

function decodeValue(kind: RecordKind, b: Uint8Array): UnsignedRecord['value'] | undefined {
  const r = new Reader(b);
  let v: UnsignedRecord['value'] | undefined;
  switch (kind) {
    case RecordKind.Locator: {
      const flags = r.u32();
      const candidates = readCandidates(r, LOCATOR_MAX_CANDIDATES);
      const n = r.u8();
      if (!candidates || n > LOCATOR_MAX_RENDEZVOUS) return undefined;
      const rendezvous: Uint8Array[] = [];
      for (let i = 0; i < n; i++) rendezvous.push(r.bytes(NODE_ID_BYTES));
      v = { flags, candidates, rendezvous };
      break;
    }
    case RecordKind.Ipv4Claim:
      v = { ipv4: r.u32(), attempt: r.u32() };
      break;
    case RecordKind.Name: {
      const name = readLabel(r, isValidName);
      if (name === undefined) return undefined;
      v = { name, nodeId: r.bytes(NODE_ID_BYTES) };
      break;
    }
    case RecordKind.Service: {
      const service = readLabel(r, isValidServiceName);
      if (service === undefined) return undefined;
      const nodeId = r.bytes(NODE_ID_BYTES);
      const endpoints = readCandidates(r, SERVICE_MAX_ENDPOINTS);
      if (!endpoints) return undefined;
      v = { service, nodeId, endpoints };
      break;
    }
  }
  return r.ok() ? v : undefined;
}

// ---- record parse / marshal ------------------------------------------------------------------

/** The signed part (bytes 0 .. 84+n). Throws RangeError on a field out of range. */
export function marshalUnsignedRecord(rec: UnsignedRecord): Uint8Array {
  if (!isRecordKind(rec.kind)) fail('unknown kind');
  if (!isBytes(rec.resourceId, NODE_ID_BYTES) || !isBytes(rec.owner, 32)) fail('bad resource id or owner');
  if (!isU64(rec.seq) || !isU64(rec.puzzleNonce)) fail('bad sequence or nonce');
  if (!Number.isSafeInteger(rec.created) || rec.created < 0 || !isU32(rec.lifetime)) fail('bad created or lifetime');
  const value = encodeValue(rec);
  const w = new Writer();
  w.u8(RECORD_VERSION);
  w.u8(rec.kind);
  w.bytes(rec.resourceId);
  w.bytes(rec.owner);
  w.u64(rec.seq);
  w.u64(BigInt(rec.created));
  w.u32(rec.lifetime);
  w.u64(rec.puzzleNonce);
  w.u16(value.length);
  w.bytes(value);
  return w.done();
}

/** Serialize a signed record. Throws RangeError on a field out of range (a programming error). */
export function marshalRecord(rec: OverlayRecord): Uint8Array {
  if (!isBytes(rec.signature, RECORD_SIGNATURE_LEN)) fail('bad signature length');
  return concat(marshalUnsignedRecord(rec), rec.signature);
}

/** Parse one record; undefined if malformed or non-canonical. Never throws. Fields are copies.
 *  Parsing checks structure only: verifyRecord() checks signature, ownership and the kind's rules. */
export function parseRecord(b: Uint8Array): OverlayRecord | undefined {
  if (!(b instanceof Uint8Array) || b.length < RECORD_MIN_LEN || b.length > RECORD_MAX_LEN) return undefined;
  const r = new Reader(b);
  const version = r.u8();
  const kind = r.u8();
  if (version !== RECORD_VERSION || !isRecordKind(kind)) return undefined;
  const resourceId = r.bytes(NODE_ID_BYTES);
  const owner = r.bytes(32);
  const seq = r.u64();
  const created = r.u64();
  const lifetime = r.u32();
  const puzzleNonce = r.u64();
  const n = r.u16();
  if (created > BigInt(Number.MAX_SAFE_INTEGER) || n > RECORD_MAX_VALUE_BYTES) return undefined;
  if (b.length !== RECORD_HEADER_LEN + n + RECORD_SIGNATURE_LEN) return undefined;
  const valueBytes = r.bytes(n);
  const signature = r.bytes(RECORD_SIGNATURE_LEN);
  if (!r.ok()) return undefined;
  const value = n === 0 ? null : decodeValue(kind, valueBytes);
  if (value === undefined) return undefined;
  return { kind, resourceId, owner, seq, created: Number(created), lifetime, puzzleNonce, value, signature } as OverlayRecord;
}

// ---- signing and verification ------------------------------------------------------------------

function signingInput(body: Uint8Array): Uint8Array {
  return concat(SIG_TAG, body);
}

export function signRecord<R extends UnsignedRecord>(rec: R, privateKey: Uint8Array): R & { signature: Uint8Array } {
  const signature = ed25519.sign(signingInput(marshalUnsignedRecord(rec)), privateKey);
  return { ...rec, signature };
}

export type RecordVerdict = 'valid' | 'forged' | 'invalid' | 'expired';

export interface VerifyOptions {
  /** Puzzle difficulty in bits this overlay requires (default PUZZLE_DEFAULT_DIFFICULTY). */
  puzzleDifficulty?: number;
}

export function recordExpiresAt(rec: Pick<OverlayRecord, 'created' | 'lifetime'>): number {
  return rec.created + rec.lifetime * 1000;
}

export function isTombstone(rec: OverlayRecord): boolean {
  return rec.value === null;
}

/** Check a record at time `now` (Unix ms). Never throws.
 *  - 'invalid': a field out of range or inconsistent with itself (resource id not the hash of the
 *    value's name or IPv4, lifetime over RECORD_MAX_LIFETIME_S, attempt over IPV4_MAX_CLAIM_ATTEMPT,
 *    created more than RECORD_MAX_CLOCK_SKEW_MS in the future, malformed signature);
 *  - 'expired': created + lifetime is not after now;
 *  - 'forged': the record claims what the owner key cannot prove: bad signature, the key does not own
 *    the resource (LOCATOR NodeID, IPv4 not derived from its NodeID with that attempt, name or service
 *    NodeID not its own), or no valid puzzle proof;
 *  - 'valid'. Cheap checks run first; the Ed25519 verification (the costly one) last. */
export function verifyRecord(rec: OverlayRecord, now: number, opts: VerifyOptions = {}): RecordVerdict {
  let body: Uint8Array;
  try {
    if (!isBytes(rec.signature, RECORD_SIGNATURE_LEN)) return 'invalid';
    body = marshalUnsignedRecord(rec);
  } catch {
    return 'invalid';
  }
  if (rec.lifetime > RECORD_MAX_LIFETIME_S || rec.created > now + RECORD_MAX_CLOCK_SKEW_MS) return 'invalid';
  if (recordExpiresAt(rec) <= now) return 'expired';
  const ownerId = nodeIdFromPublicKey(rec.owner);
  switch (rec.kind) {
    case RecordKind.Locator:
      if (!bytesEqual(rec.resourceId, ownerId)) return 'forged';
      break;
    case RecordKind.Ipv4Claim:
      if (rec.value) {
        if (!bytesEqual(rec.resourceId, ipv4ResourceId(rec.value.ipv4))) return 'invalid';
        if (rec.value.attempt > IPV4_MAX_CLAIM_ATTEMPT) return 'invalid';
        if (ipv4FromNodeId(ownerId, rec.value.attempt) !== rec.value.ipv4) return 'forged';
      }
      break;
    case RecordKind.Name:
      if (rec.value) {
        if (!bytesEqual(rec.resourceId, nameResourceId(rec.value.name))) return 'invalid';
        if (!bytesEqual(rec.value.nodeId, ownerId)) return 'forged';
      }
      break;
    case RecordKind.Service:
      if (rec.value) {
        if (!bytesEqual(rec.resourceId, serviceResourceId(rec.value.service))) return 'invalid';
        if (!bytesEqual(rec.value.nodeId, ownerId)) return 'forged';
      }
      break;
  }
  if (!verifyPuzzle(rec.owner, rec.puzzleNonce, opts.puzzleDifficulty ?? PUZZLE_DEFAULT_DIFFICULTY)) return 'forged';
  try {
    return ed25519.verify(rec.signature, signingInput(body), rec.owner) ? 'valid' : 'forged';
  } catch {
    return 'forged';
  }
}

// ---- creating records ----------------------------------------------------------------------------

/** What signs records: the identity's private key (agent/idloc/identity.ts) and its puzzle nonce. */
export interface RecordSigner {
  privateKey: Uint8Array;
  /** Derived from privateKey when absent. */
  publicKey?: Uint8Array;
  puzzleNonce: bigint;
}

export interface CreateOptions {
  /** Creation time, Unix ms. */
  now: number;
  /** Seconds; default per kind (LOCATOR_LIFETIME_S, ...). */
  lifetime?: number;
  /** Default BigInt(now): keeps increasing across restarts without saved state, as long as the clock
   *  does not go back and the owner writes one resource at most once per millisecond. */
  seq?: bigint;
}

export function defaultLifetime(kind: RecordKind): number {
  switch (kind) {
    case RecordKind.Locator: return LOCATOR_LIFETIME_S;
    case RecordKind.Ipv4Claim: return IPV4_CLAIM_LIFETIME_S;
    case RecordKind.Name: return NAME_LIFETIME_S;
    case RecordKind.Service: return SERVICE_LIFETIME_S;
  }
}

function header(signer: RecordSigner, kind: RecordKind, resourceId: Uint8Array, opts: CreateOptions) {
  const owner = signer.publicKey ?? ed25519.getPublicKey(signer.privateKey);
  return {
    resourceId, owner, seq: opts.seq ?? BigInt(Math.floor(opts.now)), created: Math.floor(opts.now),
    lifetime: opts.lifetime ?? defaultLifetime(kind), puzzleNonce: signer.puzzleNonce,
  };
}

function ownerNodeId(signer: RecordSigner): Uint8Array {
  return nodeIdFromPublicKey(signer.publicKey ?? ed25519.getPublicKey(signer.privateKey));
}

export function createLocatorRecord(signer: RecordSigner, value: LocatorValue, opts: CreateOptions): LocatorRecord {
  const h = header(signer, RecordKind.Locator, ownerNodeId(signer), opts);
  return signRecord({ ...h, kind: RecordKind.Locator, value }, signer.privateKey);
}

/** Claim ipv4FromNodeId(own NodeID, attempt); on 'taken' the caller retries with attempt + 1. */
export function createIpv4ClaimRecord(signer: RecordSigner, attempt: number, opts: CreateOptions): Ipv4ClaimRecord {
  const ipv4 = ipv4FromNodeId(ownerNodeId(signer), attempt);
  const h = header(signer, RecordKind.Ipv4Claim, ipv4ResourceId(ipv4), opts);
  return signRecord({ ...h, kind: RecordKind.Ipv4Claim, value: { ipv4, attempt } }, signer.privateKey);
}

/** Register `name` (normalized first; throws RangeError if invalid) → own NodeID. */
export function createNameRecord(signer: RecordSigner, name: string, opts: CreateOptions): NameRecord {
  const n = normalizeName(name);
  if (n === undefined) throw new RangeError(`invalid name: ${JSON.stringify(name)}`);
  const h = header(signer, RecordKind.Name, nameResourceId(n), opts);
  return signRecord({ ...h, kind: RecordKind.Name, value: { name: n, nodeId: ownerNodeId(signer) } }, signer.privateKey);
}

/** Offer `service` ("stun", "turn", "relay", ...) at these endpoints. */
export function createServiceRecord(signer: RecordSigner, service: string, endpoints: Candidate[], opts: CreateOptions): ServiceRecord {
  const h = header(signer, RecordKind.Service, serviceResourceId(service), opts);
  return signRecord({ ...h, kind: RecordKind.Service, value: { service, nodeId: ownerNodeId(signer), endpoints } }, signer.privateKey);
}

/** Removal of the owner's entry at (kind, resource): a value-less record whose seq must exceed the
 *  removed one's. Give it at least the lifetime of the record it removes (the default does), so the
 *  old record cannot be replayed after the tombstone expires. */
export function createTombstone(signer: RecordSigner, kind: RecordKind, resourceId: Uint8Array, opts: CreateOptions): OverlayRecord {
  const h = header(signer, kind, resourceId, opts);
  return signRecord({ ...h, kind, value: null } as UnsignedRecord, signer.privateKey) as OverlayRecord;
}

export function createNameTombstone(signer: RecordSigner, name: string, opts: CreateOptions): NameRecord {
  return createTombstone(signer, RecordKind.Name, nameResourceId(name), opts) as NameRecord;
}

/** Merge answers from several storing nodes: per (kind, resource, owner) the highest sequence wins.
 *  Tombstones are kept (they outrank older records); callers drop them with isTombstone. */
export function newestPerOwner(records: Iterable<OverlayRecord>): OverlayRecord[] {
  const best = new Map<string, OverlayRecord>();
  for (const r of records) {
    const k = `${r.kind}:${Buffer.from(r.resourceId).toString('hex')}:${Buffer.from(r.owner).toString('hex')}`;
    const cur = best.get(k);
    if (!cur || r.seq > cur.seq) best.set(k, r);
  }
  return [...best.values()];
}
