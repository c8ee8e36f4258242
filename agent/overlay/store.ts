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
//   - Tombstones follow the owner rule of a live record: LOCATOR and IPV4_CLAIM by records.ts (the key
//     owns the NodeID / derives the address); NAME and SERVICE only from a key that holds an entry here.
// put() answers:
//   'stored'   accepted (new entry or higher sequence)
//   'stale'    sequence not higher than the stored one for this (resource, owner) — replays included
//   'forged'   bad signature, the key does not own the resource, no puzzle proof (verifyRecord), or a
//              NAME/SERVICE tombstone from a key with no entry at the resource
//   'taken'    first-come conflict: another key holds this name or IPv4
//   'expired'  created + lifetime already past
//   'invalid'  malformed, inconsistent, over the lifetime cap, created beyond the clock-skew limit, or a
//              new entry from the network for a resource we are not responsible for (PutOptions.responsible)
//   'full'     a new non-locator entry of an owner already holding STORE_MAX_RECORDS_PER_OWNER here
// Every answer but 'stored' is counted by reason for `status`; `refused` and `evicted` say more.
//
// Bounds, and why a newcomer is never locked out: per owner (STORE_MAX_RECORDS_PER_OWNER; a locator
// makes room among its owner's own entries instead), per resource (STORE_MAX_RECORDS_PER_RESOURCE; a new
// owner replaces the newest entry there of the owner holding the most), and in total (STORE_MAX_RECORDS).
// A new entry into a full store evicts, never is refused: first a resource we are no longer responsible
// for (a clock hand looks at STORE_EVICT_SCAN resources), else one entry of the owner holding the most
// entries, the one that reached that count last. A flood of keys therefore evicts its own entries, and a
// long-lived owner's few records (its locator, its IPv4 claim) go only after every flooder is down to as
// few. Per put the work is bounded (the hand, and a scan of one owner's at most 32 entries), with owners
// kept in one linked list per entry count so the largest is found without a scan.
// Time is always passed in (Unix ms), so the store has no timers: the caller runs sweep() from its
// housekeeping tick.
import {
  STORE_EVICT_SCAN, STORE_MAX_RECORDS, STORE_MAX_RECORDS_PER_OWNER, STORE_MAX_RECORDS_PER_RESOURCE,
} from '../base/constants.js';
import {
  RecordKind, isTombstone, isUniqueKind, parseRecord, recordExpiresAt, verifyRecord, type OverlayRecord,
  type VerifyOptions,
} from './records.js';
import { bytesEqual, hex } from '../base/bytes.js';

export type PutResult = 'stored' | 'stale' | 'forged' | 'taken' | 'expired' | 'invalid' | 'full';
export type RejectReason = Exclude<PutResult, 'stored'>;

/** Refusals and evictions by their cause (finer than PutResult). */
export interface StoreRefusals {
  /** New entries from the network for resources we are not responsible for ('invalid'). */
  notResponsible: number;
  /** NAME/SERVICE tombstones from a key with no entry at the resource ('forged'). */
  tombstoneNotOwner: number;
  /** New entries of an owner at its per-owner bound ('full'). */
  ownerFull: number;
}
export interface StoreEvictions {
  /** Whole resources dropped to make room because we are no longer responsible for them. */
  notResponsible: number;
  /** Entries of the owner holding the most, to make room in a full store. */
  largestOwner: number;
  /** Entries replaced in a resource at its per-resource bound. */
  resourceFull: number;
  /** A locator's owner's other entry, making room under the per-owner bound. */
  ownerForLocator: number;
}

export interface StoreStats {
  /** Entries held (tombstones included). */
  records: number;
  tombstones: number;
  /** Accepted puts. */
  stored: number;
  /** Refused puts by reason. */
  rejected: Record<RejectReason, number>;
  refused: StoreRefusals;
  evicted: StoreEvictions;
  /** Entries removed by expiry. */
  expired: number;
}

export interface StoreOptions extends VerifyOptions {
  maxRecords?: number;
  maxPerOwner?: number;
  maxPerResource?: number;
}

export interface PutOptions {
  /** The put comes from the network: a new entry is refused unless this holds for its resource
   *  (responsibility.ts), and a full store first evicts resources it no longer holds. */
  responsible?: (resourceId: Uint8Array) => boolean;
}

interface Owner {
  hex: string;
  count: number;
  entries: Set<Entry>;
  /** Neighbours in the list of owners with the same count (most recent to reach it last). */
  prev: Owner | undefined;
  next: Owner | undefined;
}

interface Entry {
  record: OverlayRecord;
  expiresAt: number;
  owner: Owner;
  slot: Slot;
}

interface Slot {
  key: string;
  resourceId: Uint8Array;
  /** By owner key hex, in the order entries first came (the newest last). */
  entries: Map<string, Entry>;
}

const slotKey = (kind: number, resourceId: Uint8Array) => `${kind}:${hex(resourceId)}`;

/** Eviction order within one owner's entries: lowest first (what is cheapest to lose). */
function keepRank(r: OverlayRecord): number {
  if (isTombstone(r)) return 0;
  switch (r.kind) {
    case RecordKind.Service: return 1;
    case RecordKind.Name: return 2;
    case RecordKind.Ipv4Claim: return 3;
    case RecordKind.Locator: return 4;
  }
}

export class RecordStore {
  private readonly slots = new Map<string, Slot>();
  private readonly owners = new Map<string, Owner>();
  /** heads[c] / tails[c]: owners holding c entries, in the order they reached c. */
  private readonly heads: (Owner | undefined)[] = [];
  private readonly tails: (Owner | undefined)[] = [];
  private hand: Iterator<Slot> | undefined;
  private count = 0;
  private tombstoneCount = 0;
  private storedCount = 0;
  private expiredCount = 0;
  private readonly rejected: Record<RejectReason, number> = { stale: 0, forged: 0, taken: 0, expired: 0, invalid: 0, full: 0 };
  private readonly refused: StoreRefusals = { notResponsible: 0, tombstoneNotOwner: 0, ownerFull: 0 };
  private readonly evicted: StoreEvictions = { notResponsible: 0, largestOwner: 0, resourceFull: 0, ownerForLocator: 0 };
  private readonly maxRecords: number;
  private readonly maxPerOwner: number;
  private readonly maxPerResource: number;
  private readonly verifyOpts: VerifyOptions;

  constructor(opts: StoreOptions = {}) {
    this.maxRecords = Math.max(1, opts.maxRecords ?? STORE_MAX_RECORDS);
    this.maxPerOwner = Math.max(1, opts.maxPerOwner ?? STORE_MAX_RECORDS_PER_OWNER);
    this.maxPerResource = Math.max(1, opts.maxPerResource ?? STORE_MAX_RECORDS_PER_RESOURCE);
    this.verifyOpts = opts.puzzleDifficulty === undefined ? {} : { puzzleDifficulty: opts.puzzleDifficulty };
  }

  get size(): number { return this.count; }

  /** Verify and store a record received at `now` (Unix ms). */
  put(record: OverlayRecord, now: number, opts: PutOptions = {}): PutResult {
    return this.count1(this.tryPut(record, now, opts));
  }

  /** put() for the opaque bytes the overlay carries; unparseable bytes are 'invalid'. */
  putBytes(bytes: Uint8Array, now: number, opts: PutOptions = {}): PutResult {
    const rec = parseRecord(bytes);
    return rec ? this.put(rec, now, opts) : this.count1('invalid');
  }

  /** Entries this owner key holds here (for tests and status). */
  ownerCount(ownerKey: Uint8Array): number {
    return this.owners.get(hex(ownerKey))?.count ?? 0;
  }

  private count1(r: PutResult): PutResult {
    if (r === 'stored') this.storedCount++;
    else this.rejected[r]++;
    return r;
  }

  private tryPut(record: OverlayRecord, now: number, opts: PutOptions): PutResult {
    // Shape guard so hand-built garbage is 'invalid' rather than a throw (parseRecord output always passes).
    if (!(record?.owner instanceof Uint8Array) || !(record.resourceId instanceof Uint8Array) || !(record.signature instanceof Uint8Array)) {
      return 'invalid';
    }
    const key = slotKey(record.kind, record.resourceId);
    const ownerHex = hex(record.owner);
    let slot = this.slots.get(key);
    if (slot) this.expireSlot(slot, now);
    slot = this.slots.get(key);
    const existing = slot?.entries.get(ownerHex);
    // Exact copy of what we hold (republishes from other replicas, replays): stale without spending an
    // Ed25519 verification on it. Nothing is stored either way.
    if (existing && existing.record.seq === record.seq && bytesEqual(existing.record.signature, record.signature)) return 'stale';
    const verdict = verifyRecord(record, now, this.verifyOpts);
    if (verdict !== 'valid') return verdict;
    if (existing && record.seq <= existing.record.seq) return 'stale';
    const tomb = isTombstone(record);
    if (slot && !tomb && isUniqueKind(record.kind)) {
      for (const e of slot.entries.values()) if (e.owner.hex !== ownerHex && !isTombstone(e.record)) return 'taken';
    }
    if (existing) {
      this.replace(existing, record);
      return 'stored';
    }
    if (tomb && (record.kind === RecordKind.Name || record.kind === RecordKind.Service)) {
      this.refused.tombstoneNotOwner++; // nothing of this key's here to remove
      return 'forged';
    }
    if (opts.responsible && !opts.responsible(record.resourceId)) {
      this.refused.notResponsible++;
      return 'invalid';
    }
    const owner = this.owners.get(ownerHex);
    if (owner && owner.count >= this.maxPerOwner) {
      if (record.kind !== RecordKind.Locator) { this.refused.ownerFull++; return 'full'; }
      this.evictFromOwner(owner, undefined);
      this.evicted.ownerForLocator++;
    }
    if (slot && slot.entries.size >= this.maxPerResource) {
      this.evictInResource(slot);
      this.evicted.resourceFull++;
    }
    if (this.count >= this.maxRecords) this.makeRoom(now, opts.responsible, key);
    this.insert(record, ownerHex, key);
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
    const slot = this.slots.get(slotKey(kind, resourceId));
    if (!slot) return [];
    this.expireSlot(slot, now);
    return [...slot.entries.values()].map((e) => e.record);
  }

  /** Every live record (tombstones included), for republishing and handing records to closer nodes. */
  *records(now: number): IterableIterator<OverlayRecord> {
    for (const slot of this.slots.values()) for (const e of slot.entries.values()) if (e.expiresAt > now) yield e.record;
  }

  /** Drop expired entries; returns how many. */
  sweep(now: number): number {
    let n = 0;
    for (const slot of this.slots.values()) n += this.expireSlot(slot, now); // deleting while iterating a Map is safe
    return n;
  }

  stats(): StoreStats {
    return {
      records: this.count, tombstones: this.tombstoneCount, stored: this.storedCount,
      rejected: { ...this.rejected }, refused: { ...this.refused }, evicted: { ...this.evicted }, expired: this.expiredCount,
    };
  }

  // ---- room ----------------------------------------------------------------------------------

  /** Free one entry in a full store for a new entry at `forKey`: a resource we no longer hold, else the
   *  largest owner's. */
  private makeRoom(now: number, responsible: ((id: Uint8Array) => boolean) | undefined, forKey: string): void {
    for (let i = 0; i < STORE_EVICT_SCAN && this.slots.size > 0; i++) {
      let step = this.hand?.next();
      if (!step || step.done) {
        this.hand = this.slots.values();
        step = this.hand.next();
        if (step.done) break;
      }
      const slot = step.value;
      if (slot.key === forKey || !this.slots.has(slot.key)) continue;
      if (this.expireSlot(slot, now) > 0) return;
      if (responsible && !responsible(slot.resourceId)) {
        for (const e of slot.entries.values()) this.remove(e);
        this.evicted.notResponsible++;
        return;
      }
    }
    // the largest owners first, the last to reach that count first; one whose only entries are at `forKey`
    // cannot make room for it, so the walk goes on (bounded: it stops at the first entry removed)
    for (let c = Math.min(this.maxPerOwner, this.tails.length - 1); c > 0; c--) {
      for (let owner = this.tails[c]; owner; owner = owner.prev) {
        if (!this.evictFromOwner(owner, forKey)) continue;
        this.evicted.largestOwner++;
        return;
      }
    }
  }

  /** Evict the owner's entry that is cheapest to lose (tombstones, then services, names, claims, a locator
   *  last), the newest among equals; never the one at `notKey`. */
  private evictFromOwner(owner: Owner, notKey: string | undefined): boolean {
    let victim: Entry | undefined;
    for (const e of owner.entries) {
      if (e.slot.key === notKey) continue;
      if (!victim || keepRank(e.record) <= keepRank(victim.record)) victim = e;
    }
    if (victim) this.remove(victim);
    return victim !== undefined;
  }

  /** Make room in a resource at its bound: the newest entry of the owner holding the most entries here. */
  private evictInResource(slot: Slot): void {
    let victim: Entry | undefined;
    for (const e of slot.entries.values()) if (!victim || e.owner.count >= victim.owner.count) victim = e;
    if (victim) this.remove(victim);
  }

  // ---- bookkeeping ---------------------------------------------------------------------------

  private insert(record: OverlayRecord, ownerHex: string, key: string): void {
    let slot = this.slots.get(key);
    if (!slot) {
      slot = { key, resourceId: record.resourceId, entries: new Map() };
      this.slots.set(key, slot);
    }
    let owner = this.owners.get(ownerHex);
    if (!owner) {
      owner = { hex: ownerHex, count: 0, entries: new Set(), prev: undefined, next: undefined };
      this.owners.set(ownerHex, owner);
    } else {
      this.unlink(owner);
    }
    const e: Entry = { record, expiresAt: recordExpiresAt(record), owner, slot };
    slot.entries.set(ownerHex, e);
    owner.entries.add(e);
    owner.count++;
    this.link(owner);
    this.count++;
    if (isTombstone(record)) this.tombstoneCount++;
  }

  private replace(e: Entry, record: OverlayRecord): void {
    if (isTombstone(e.record)) this.tombstoneCount--;
    if (isTombstone(record)) this.tombstoneCount++;
    e.record = record;
    e.expiresAt = recordExpiresAt(record);
  }

  private remove(e: Entry): void {
    const { slot, owner } = e;
    slot.entries.delete(owner.hex);
    if (slot.entries.size === 0) this.slots.delete(slot.key);
    owner.entries.delete(e);
    this.unlink(owner);
    owner.count--;
    if (owner.count > 0) this.link(owner);
    else this.owners.delete(owner.hex);
    this.count--;
    if (isTombstone(e.record)) this.tombstoneCount--;
  }

  private expireSlot(slot: Slot, now: number): number {
    let n = 0;
    for (const e of slot.entries.values()) {
      if (e.expiresAt > now) continue;
      this.remove(e);
      n++;
    }
    this.expiredCount += n;
    return n;
  }

  /** Append an owner to the list of its count (it is the most recent to reach it). */
  private link(o: Owner): void {
    const c = o.count;
    const tail = this.tails[c];
    o.prev = tail;
    o.next = undefined;
    if (tail) tail.next = o;
    else this.heads[c] = o;
    this.tails[c] = o;
  }

  private unlink(o: Owner): void {
    const c = o.count;
    if (o.prev) o.prev.next = o.next;
    else if (this.heads[c] === o) this.heads[c] = o.next;
    if (o.next) o.next.prev = o.prev;
    else if (this.tails[c] === o) this.tails[c] = o.prev;
    o.prev = undefined;
    o.next = undefined;
  }
}
