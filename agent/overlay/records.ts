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
//   value: one format per kind (record-values.ts); resource id: per kind (names.ts).
//
// Access rules (only the key that owns a resource may write it):
//
//   1 LOCATOR    resource = NodeID of the owner key; only that key may write it (its tombstone too).
//   2 IPV4_CLAIM valid only if ipv4FromNodeId(NodeID(owner), attempt) = ipv4 and attempt ≤ IPV4_MAX_CLAIM_ATTEMPT;
//                first-come: while one key's live claim is stored, other keys' claims are refused (store.ts).
//                withdrawn with a tombstone (n = 0, same resource, higher sequence, lifetime covering the
//                claim's) when the key moves to another attempt (node-publish.ts), so fetches and ipv4Of stop
//                returning the old address before it expires; the address is then free for other keys.
//                A tombstone obeys the claim's rule: some attempt of the owner's NodeID derives the address.
//   3 NAME       the value's NodeID must be the owner's; unique, first-come; only the owner updates it or
//                removes it (tombstone: a store takes it only from a key holding an entry there, store.ts).
//   4 SERVICE    many providers per resource, one entry per owner key, each writable only by its owner;
//                the provider NodeID must be the owner's; tombstones as for NAME.
//   Which of these a node takes at all (the resources it is responsible for, bounds) is store.ts.
import { ed25519 } from '@noble/curves/ed25519.js';
import { ed25519Signer, ed25519Verify } from '../base/ed25519.js';
import { Reader, Writer } from '../base/binary.js';
import { bytesEqual, hex } from '../base/bytes.js';
import {
  IPV4_CLAIM_LIFETIME_S, IPV4_MAX_CLAIM_ATTEMPT, LOCATOR_LIFETIME_S, NAME_LIFETIME_S, NODE_ID_BYTES,
  PUZZLE_DEFAULT_DIFFICULTY, RECORD_MAX_CLOCK_SKEW_MS, RECORD_MAX_LIFETIME_S, RECORD_MAX_VALUE_BYTES, SERVICE_LIFETIME_S,
} from '../base/constants.js';
import { ipv4FromNodeId, nodeIdFromPublicKey } from '../idloc/addresses.js';
import { ipv4ResourceId, nameResourceId, normalizeName, serviceResourceId } from './names.js';
import { verifyPuzzle } from './puzzle.js';
import {
  RecordKind, fail, isBytes, isRecordKind, isU32, marshalValue, parseValue,
  type Candidate, type KindValue, type LocatorValue,
} from './record-values.js';

export {
  CandidateType, RecordKind, ServiceFlag, isRecordKind, isUniqueKind,
  type Candidate, type Ipv4ClaimValue, type LocatorValue, type NameValue, type ServiceValue,
} from './record-values.js';

export const RECORD_VERSION = 1;
export const RECORD_HEADER_LEN = 84;
export const RECORD_SIGNATURE_LEN = 64;
export const RECORD_MIN_LEN = RECORD_HEADER_LEN + RECORD_SIGNATURE_LEN;
export const RECORD_MAX_LEN = RECORD_MIN_LEN + RECORD_MAX_VALUE_BYTES;

interface RecordHeader {
  resourceId: Uint8Array; // 20
  owner: Uint8Array; // Ed25519 public key, 32
  seq: bigint; // u64
  created: number; // Unix ms
  lifetime: number; // seconds, u32
  puzzleNonce: bigint; // u64
}

/** `value: null` is a tombstone. */
export type UnsignedRecord = RecordHeader & KindValue;
export type OverlayRecord = UnsignedRecord & { signature: Uint8Array };
export type LocatorRecord = Extract<OverlayRecord, { kind: typeof RecordKind.Locator }>;
export type Ipv4ClaimRecord = Extract<OverlayRecord, { kind: typeof RecordKind.Ipv4Claim }>;
export type NameRecord = Extract<OverlayRecord, { kind: typeof RecordKind.Name }>;
export type ServiceRecord = Extract<OverlayRecord, { kind: typeof RecordKind.Service }>;

const SIG_TAG = new TextEncoder().encode('idloc record v1');
const U64_MAX = (1n << 64n) - 1n;
const isU64 = (v: unknown): v is bigint => typeof v === 'bigint' && v >= 0n && v <= U64_MAX;

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

// ---- record parse / marshal ------------------------------------------------------------------

/** The signed part (bytes 0 .. 84+n). Throws RangeError on a field out of range. */
export function marshalUnsignedRecord(rec: UnsignedRecord): Uint8Array {
  if (!isRecordKind(rec.kind)) fail('unknown kind');
  if (!isBytes(rec.resourceId, NODE_ID_BYTES) || !isBytes(rec.owner, 32)) fail('bad resource id or owner');
  if (!isU64(rec.seq) || !isU64(rec.puzzleNonce)) fail('bad sequence or nonce');
  if (!Number.isSafeInteger(rec.created) || rec.created < 0 || !isU32(rec.lifetime)) fail('bad created or lifetime');
  const value = marshalValue(rec);
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
  const resourceId = r.copy(NODE_ID_BYTES);
  const owner = r.copy(32);
  const seq = r.u64();
  const created = r.u64();
  const lifetime = r.u32();
  const puzzleNonce = r.u64();
  const n = r.u16();
  if (created > BigInt(Number.MAX_SAFE_INTEGER) || n > RECORD_MAX_VALUE_BYTES) return undefined;
  if (b.length !== RECORD_HEADER_LEN + n + RECORD_SIGNATURE_LEN) return undefined;
  const valueBytes = r.view(n);
  const signature = r.copy(RECORD_SIGNATURE_LEN);
  if (!r.done()) return undefined;
  const value = n === 0 ? null : parseValue(kind, valueBytes);
  if (value === undefined) return undefined;
  return { kind, resourceId, owner, seq, created: Number(created), lifetime, puzzleNonce, value, signature } as OverlayRecord;
}

// ---- signing and verification ------------------------------------------------------------------

function signingInput(body: Uint8Array): Uint8Array {
  return concat(SIG_TAG, body);
}

export function signRecord<R extends UnsignedRecord>(rec: R, privateKey: Uint8Array): R & { signature: Uint8Array } {
  const signature = ed25519Signer(privateKey)(signingInput(marshalUnsignedRecord(rec)));
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

/** Whether some claim attempt of this NodeID derives the IPv4 address whose resource id this is: the
 *  ownership rule for an IPv4 tombstone, which has no value to name the address (at most 32 derivations
 *  and hashes, far cheaper than the signature check after it). */
export function ownsIpv4Resource(ownerId: Uint8Array, resourceId: Uint8Array): boolean {
  for (let a = 0; a <= IPV4_MAX_CLAIM_ATTEMPT; a++) if (bytesEqual(ipv4ResourceId(ipv4FromNodeId(ownerId, a)), resourceId)) return true;
  return false;
}

/** Check a record at time `now` (Unix ms). Never throws.
 *  - 'invalid': a field out of range or inconsistent with itself (resource id not the hash of the
 *    value's name or IPv4, lifetime over RECORD_MAX_LIFETIME_S, attempt over IPV4_MAX_CLAIM_ATTEMPT,
 *    created more than RECORD_MAX_CLOCK_SKEW_MS in the future, malformed signature);
 *  - 'expired': created + lifetime is not after now;
 *  - 'forged': the record claims what the owner key cannot prove: bad signature, the key does not own
 *    the resource (LOCATOR NodeID, IPv4 not derived from its NodeID with that attempt, an IPv4 tombstone
 *    for an address no attempt of its NodeID derives, name or service NodeID not its own), or no valid
 *    puzzle proof;
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
      } else if (!ownsIpv4Resource(ownerId, rec.resourceId)) {
        return 'forged'; // a tombstone only for an address the key could claim
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
    return ed25519Verify(rec.owner, signingInput(body), rec.signature) ? 'valid' : 'forged';
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
    const k = `${r.kind}:${hex(r.resourceId)}:${hex(r.owner)}`;
    const cur = best.get(k);
    if (!cur || r.seq > cur.seq) best.set(k, r);
  }
  return [...best.values()];
}
