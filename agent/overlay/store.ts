// The DHT node's local record store (records.ts has the format and the per-kind rules).
//
// Entries are keyed by (kind, resource id, owner key): each owner has at most one entry per resource,
// its highest sequence so far, tombstones included (a tombstone is how the owner removes its entry,
// and keeping it stops older sequences from being replayed until it expires).
//   - LOCATOR: only the key whose NodeID is the resource can write it, so one entry per resource.
//   - IPV4_CLAIM, NAME: first-come. While one key has a live (unexpired, non-tombstone) entry, a live
//     entry from any other key is refused as 'taken'; the holder's own updates and its tombstone are
//     accepted; after the holder's tombstone or expiry the next claimant wins.
//   - SERVICE: a set of providers, one entry per owner key.
// put() answers:
//   'stored'   accepted (new entry or higher sequence)
//   'stale'    sequence not higher than the stored one for this (resource, owner) — replays included
//   'forged'   bad signature, the key does not own the resource, or no puzzle proof (verifyRecord)
//   'taken'    first-come conflict: another key holds this name or IPv4
//   'expired'  created + lifetime already past
//   'invalid'  malformed, inconsistent, over the lifetime cap, or created beyond the clock-skew limit
//   'full'     the store holds STORE_MAX_RECORDS entries, or this owner STORE_MAX_RECORDS_PER_OWNER
//              (policy and reasons in constants.ts: refuse new entries, never evict held ones;
//              updates of existing entries are always possible)
// Every answer but 'stored' is counted by reason for `status`. Time is always passed in (Unix ms),
// so the store has no timers: the caller runs sweep() from its housekeeping tick.
import { STORE_MAX_RECORDS, STORE_MAX_RECORDS_PER_OWNER } from '../base/constants.js';
import {
  isTombstone, isUniqueKind, parseRecord, recordExpiresAt, verifyRecord, type OverlayRecord, type RecordKind,
  type VerifyOptions,
} from './records.js';
import { bytesEqual, hex } from '../base/bytes.js';

export type PutResult = 'stored' | 'stale' | 'forged' | 'taken' | 'expired' | 'invalid' | 'full';
export type RejectReason = Exclude<PutResult, 'stored'>;

export interface StoreStats {
  /** Entries held (tombstones included). */
  records: number;
  tombstones: number;
  /** Accepted puts. */
  stored: number;
  /** Refused puts by reason. */
  rejected: Record<RejectReason, number>;
  /** Entries removed by expiry. */
  expired: number;
}

export interface StoreOptions extends VerifyOptions {
  maxRecords?: number;
  maxPerOwner?: number;
}

interface Entry {
  record: OverlayRecord;
  expiresAt: number;
  ownerHex: string;
}

const slotKey = (kind: number, resourceId: Uint8Array) => `${kind}:${hex(resourceId)}`;

export class RecordStore {
  private readonly slots = new Map<string, Map<string, Entry>>();
  private readonly perOwner = new Map<string, number>();
  private count = 0;
  private tombstoneCount = 0;
  private storedCount = 0;
  private expiredCount = 0;
  private readonly rejected: Record<RejectReason, number> = { stale: 0, forged: 0, taken: 0, expired: 0, invalid: 0, full: 0 };
  private readonly maxRecords: number;
  private readonly maxPerOwner: number;
  private readonly verifyOpts: VerifyOptions;

  constructor(opts: StoreOptions = {}) {
    this.maxRecords = opts.maxRecords ?? STORE_MAX_RECORDS;
    this.maxPerOwner = opts.maxPerOwner ?? STORE_MAX_RECORDS_PER_OWNER;
    this.verifyOpts = opts.puzzleDifficulty === undefined ? {} : { puzzleDifficulty: opts.puzzleDifficulty };
  }

  get size(): number { return this.count; }

  /** Verify and store a record received at `now` (Unix ms). */
  put(record: OverlayRecord, now: number): PutResult {
    return this.count1(this.tryPut(record, now));
  }

  /** put() for the opaque bytes the overlay carries; unparseable bytes are 'invalid'. */
  putBytes(bytes: Uint8Array, now: number): PutResult {
    const rec = parseRecord(bytes);
    return rec ? this.put(rec, now) : this.count1('invalid');
  }

  private count1(r: PutResult): PutResult {
    if (r === 'stored') this.storedCount++;
    else this.rejected[r]++;
    return r;
  }

  private tryPut(record: OverlayRecord, now: number): PutResult {
    // Shape guard so hand-built garbage is 'invalid' rather than a throw (parseRecord output always passes).
    if (!(record?.owner instanceof Uint8Array) || !(record.resourceId instanceof Uint8Array) || !(record.signature instanceof Uint8Array)) {
      return 'invalid';
    }
    const key = slotKey(record.kind, record.resourceId);
    const ownerHex = hex(record.owner);
    let slot = this.slots.get(key);
    if (slot) this.expireSlot(key, slot, now);
    slot = this.slots.get(key);
    const existing = slot?.get(ownerHex);
    // Exact copy of what we hold (republishes from other replicas, replays): stale without spending an
    // Ed25519 verification on it. Nothing is stored either way.
    if (existing && existing.record.seq === record.seq && bytesEqual(existing.record.signature, record.signature)) return 'stale';
    const verdict = verifyRecord(record, now, this.verifyOpts);
    if (verdict !== 'valid') return verdict;
    if (existing && record.seq <= existing.record.seq) return 'stale';
    if (slot && !isTombstone(record) && isUniqueKind(record.kind)) {
      for (const e of slot.values()) if (e.ownerHex !== ownerHex && !isTombstone(e.record)) return 'taken';
    }
    if (!existing) {
      if (this.count >= this.maxRecords) this.sweep(now);
      if (this.count >= this.maxRecords || (this.perOwner.get(ownerHex) ?? 0) >= this.maxPerOwner) return 'full';
    }
    if (!slot) { slot = new Map(); this.slots.set(key, slot); }
    if (existing) this.forget(existing);
    else {
      this.count++;
      this.perOwner.set(ownerHex, (this.perOwner.get(ownerHex) ?? 0) + 1);
    }
    if (isTombstone(record)) this.tombstoneCount++;
    slot.set(ownerHex, { record, expiresAt: recordExpiresAt(record), ownerHex });
    return 'stored';
  }

  /** Live records at (resource, kind), tombstones left out: what a resolver wants. For unique kinds
   *  at most one; for SERVICE one per provider. */
  get(resourceId: Uint8Array, kind: RecordKind, now: number): OverlayRecord[] {
    return this.getAll(resourceId, kind, now).filter((r) => !isTombstone(r));
  }

  /** Live records at (resource, kind) including tombstones: what a FETCH answer and replication to
   *  other storing nodes carry, so removals spread and outrank older copies elsewhere. */
  getAll(resourceId: Uint8Array, kind: RecordKind, now: number): OverlayRecord[] {
    const key = slotKey(kind, resourceId);
    const slot = this.slots.get(key);
    if (!slot) return [];
    this.expireSlot(key, slot, now);
    return [...slot.values()].map((e) => e.record);
  }

  /** Every live record (tombstones included), for republishing and handing records to closer nodes. */
  *records(now: number): IterableIterator<OverlayRecord> {
    for (const slot of this.slots.values()) for (const e of slot.values()) if (e.expiresAt > now) yield e.record;
  }

  /** Drop expired entries; returns how many. */
  sweep(now: number): number {
    let n = 0;
    for (const [key, slot] of this.slots) n += this.expireSlot(key, slot, now);
    return n;
  }

  stats(): StoreStats {
    return {
      records: this.count, tombstones: this.tombstoneCount, stored: this.storedCount,
      rejected: { ...this.rejected }, expired: this.expiredCount,
    };
  }

  private expireSlot(key: string, slot: Map<string, Entry>, now: number): number {
    let n = 0;
    for (const [owner, e] of slot) {
      if (e.expiresAt > now) continue;
      slot.delete(owner);
      this.forget(e);
      this.count--;
      const left = (this.perOwner.get(owner) ?? 1) - 1;
      if (left > 0) this.perOwner.set(owner, left);
      else this.perOwner.delete(owner);
      n++;
    }
    if (slot.size === 0) this.slots.delete(key);
    this.expiredCount += n;
    return n;
  }

  /** Undo an entry's contribution to the tombstone count (the caller handles count and perOwner). */
  private forget(e: Entry): void {
    if (isTombstone(e.record)) this.tombstoneCount--;
  }
}
