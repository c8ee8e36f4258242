// Kademlia routing table: k-buckets (bucket.ts) over the 160-bit NodeID space with the XOR metric
// (xor-metric.ts).
//
//   bucket i  = contacts whose id shares exactly i leading bits with ours (cpl = i),
//               i.e. XOR distance in [2^(159-i), 2^(160-i)); i = 0 is the far half of the space.
//   160 flat buckets are the same as the paper's tree with only our own side ever split.
//
// Insertion follows the paper's rule, which favours old, stable nodes: a new contact for a full bucket
// triggers a ping of the least-recently-seen one (through the caller's callback); only if that fails is it
// evicted and the newcomer (or the freshest replacement) takes its place. A contact that fails
// ROUTING_MAX_FAILURES RPCs in a row (one if a replacement waits) is removed. onAdded/onRemoved tell the
// owner of every contact that enters or leaves (the overlay node re-joins when alone, hands records over).

import {
  BUCKET_REFRESH_INTERVAL_MS, BUCKET_REPLACEMENT_CACHE_SIZE, KADEMLIA_K, NODE_ID_BYTES,
  ROUTING_MAX_FAILURES, ROUTING_PING_IF_IDLE_MS,
} from '../base/constants.js';
import { bytesEqual } from '../base/bytes.js';
import { Bucket, newContact, selectClosest, type Contact, type ContactInfo } from './bucket.js';
import { ID_BITS, commonPrefixLength, idPrefix24 } from './xor-metric.js';
import { endpointKey } from '../conn/socket.js';
import { networkOf } from './network-of.js';

export interface RoutingTableOptions {
  selfId: Uint8Array;
  now: () => number;
  /** Liveness check for a full bucket's least-recently-seen contact; resolves true if it answered. */
  ping?: (c: Contact) => Promise<boolean>;
  k?: number;
  replacementCacheSize?: number;
  maxFailures?: number;
  /** The least-recently-seen contact is pinged only if idle longer than this (0: always). */
  pingIfIdleMs?: number;
  refreshIntervalMs?: number;
  /** A contact entered the table (new, or promoted from a replacement cache) / left it. Called inside the
   *  table change, after it: observers must not change the table from there (defer the work instead). */
  onAdded?: (c: Contact) => void;
  onRemoved?: (c: Contact) => void;
  /** Contacts of one bucket that may share an IP address / a public subnet (networkOf); 0 or absent: any. */
  maxPerIp?: number;
  maxPerSubnet?: number;
}

export type ObserveResult = 'added' | 'updated' | 'pending' | 'ignored';

export interface RoutingTableStats {
  added: number;
  removed: number;
  evictedByPing: number;
  keptByPing: number;
  promoted: number;
  /** Newcomers refused because their bucket holds enough contacts at their IP or subnet. */
  networkLimited: number;
}

export class RoutingTable {
  readonly selfId: Uint8Array;
  readonly k: number;
  readonly stats: RoutingTableStats = { added: 0, removed: 0, evictedByPing: 0, keptByPing: 0, promoted: 0, networkLimited: 0 };
  private readonly buckets: (Bucket | undefined)[] = new Array(ID_BITS);
  private readonly now: () => number;
  private readonly ping: ((c: Contact) => Promise<boolean>) | undefined;
  private readonly replacementCacheSize: number;
  private readonly maxFailures: number;
  private readonly pingIfIdleMs: number;
  private readonly refreshIntervalMs: number;
  private readonly created: number;
  private readonly onAdded: ((c: Contact) => void) | undefined;
  private readonly onRemoved: ((c: Contact) => void) | undefined;
  private count = 0;
  private readonly maxPerIp: number;
  private readonly maxPerSubnet: number;

  constructor(opts: RoutingTableOptions) {
    if (opts.selfId.length !== NODE_ID_BYTES) throw new Error(`NodeID must be ${NODE_ID_BYTES} bytes`);
    this.selfId = opts.selfId;
    this.now = opts.now;
    this.ping = opts.ping;
    this.k = opts.k ?? KADEMLIA_K;
    this.replacementCacheSize = opts.replacementCacheSize ?? BUCKET_REPLACEMENT_CACHE_SIZE;
    this.maxFailures = opts.maxFailures ?? ROUTING_MAX_FAILURES;
    this.pingIfIdleMs = opts.pingIfIdleMs ?? ROUTING_PING_IF_IDLE_MS;
    this.refreshIntervalMs = opts.refreshIntervalMs ?? BUCKET_REFRESH_INTERVAL_MS;
    this.created = this.now();
    this.onAdded = opts.onAdded;
    this.onRemoved = opts.onRemoved;
    this.maxPerIp = opts.maxPerIp ?? 0;
    this.maxPerSubnet = opts.maxPerSubnet ?? 0;
  }

  /** Contacts in the table. */
  get size(): number {
    return this.count;
  }

  bucketIndex(id: Uint8Array): number {
    return commonPrefixLength(this.selfId, id);
  }

  /** Contacts of bucket i, least-recently-seen first (a copy). */
  bucket(i: number): Contact[] {
    return this.buckets[i]?.contacts.slice() ?? [];
  }

  bucketSize(i: number): number {
    return this.buckets[i]?.contacts.length ?? 0;
  }

  replacementsOf(i: number): ContactInfo[] {
    return this.buckets[i]?.replacements.slice() ?? [];
  }

  all(): Contact[] {
    const out: Contact[] = [];
    for (const b of this.buckets) if (b) out.push(...b.contacts);
    return out;
  }

  get(id: Uint8Array): Contact | undefined {
    const b = this.buckets[this.bucketIndex(id)];
    return b?.find(id);
  }

  /** We heard from this node (a request from it, or its answer): add it, refresh it, or queue it. */
  observe(info: ContactInfo): ObserveResult {
    const i = this.bucketIndex(info.nodeId);
    if (i >= ID_BITS) return 'ignored'; // ourselves
    const b = this.bucketAt(i);
    const now = this.now();
    const at = b.indexOf(info.nodeId);
    const moved = at >= 0 && endpointKey(b.contacts[at]!.endpoint) !== endpointKey(info.endpoint);
    if ((at < 0 || moved) && this.crowded(b, info)) { this.stats.networkLimited++; return 'ignored'; }
    if (at >= 0) {
      const c = b.contacts[at]!;
      c.lastSeen = now;
      c.failures = 0;
      c.endpoint = info.endpoint; // roaming: the latest address wins (messages are authenticated above us)
      c.publicKey = info.publicKey;
      if (at !== b.contacts.length - 1) { b.contacts.splice(at, 1); b.contacts.push(c); }
      return 'updated';
    }
    if (b.contacts.length < this.k) {
      this.insert(b, info, now);
      b.dropReplacement(info.nodeId);
      return 'added';
    }
    b.addReplacement(info, this.replacementCacheSize);
    this.checkOldest(b);
    return 'pending';
  }

  /** An RPC to this node succeeded (same as observe for a known contact). */
  markSeen(id: Uint8Array): void {
    const c = this.get(id);
    if (c) this.observe(c);
  }

  /** An RPC to this node failed (after its retransmissions). Returns true if the contact was removed. */
  markFailed(id: Uint8Array): boolean {
    const i = this.bucketIndex(id);
    const b = this.buckets[i];
    if (!b) return false;
    const c = b.find(id);
    if (!c) { b.dropReplacement(id); return false; }
    c.failures++;
    if (c.failures >= this.maxFailures || b.replacements.length > 0) {
      this.removeFrom(b, c);
      return true;
    }
    return false;
  }

  remove(id: Uint8Array): boolean {
    const b = this.buckets[this.bucketIndex(id)];
    if (!b) return false;
    const c = b.find(id);
    if (!c) return b.dropReplacement(id);
    this.removeFrom(b, c);
    return true;
  }

  /** The n contacts closest to target by XOR, closest first, leaving out `exclude` and those `skip` holds
   *  for. Visits buckets in distance order, so only the bucket(s) that can hold the answer are sorted:
   *  bucket cpl(self, target) holds everything closer than the deeper buckets, which are all closer than
   *  bucket cpl-1, then cpl-2, ... */
  closest(target: Uint8Array, n: number = this.k, exclude?: Uint8Array, skip?: (c: Contact) => boolean): Contact[] {
    const out: Contact[] = [];
    if (n <= 0) return out;
    let filter: ((c: Contact) => boolean) | undefined;
    if (exclude) {
      const [e0, e1] = idPrefix24(exclude); // compare the cached prefix first: no id bytes touched
      filter = skip
        ? (c) => (c.p0 !== e0 || c.p1 !== e1 || !bytesEqual(c.nodeId, exclude)) && !skip(c)
        : (c) => c.p0 !== e0 || c.p1 !== e1 || !bytesEqual(c.nodeId, exclude);
    } else if (skip) {
      filter = (c) => !skip(c);
    }
    const b = Math.min(this.bucketIndex(target), ID_BITS - 1);
    // 1. bucket b: contacts that agree with target at bit b.
    selectClosest(this.buckets, b, b + 1, target, n, filter, out);
    // 2. buckets deeper than b: all at distance with top bit b from target, ordered among themselves.
    if (out.length < n && b + 1 < ID_BITS) selectClosest(this.buckets, b + 1, ID_BITS, target, n, filter, out);
    // 3. buckets shallower than b, nearest first; each is wholly farther than the one before.
    for (let i = b - 1; i >= 0 && out.length < n; i--) selectClosest(this.buckets, i, i + 1, target, n, filter, out);
    return out;
  }

  // ---- refresh bookkeeping -------------------------------------------------------------

  /** A lookup for target was performed: its bucket counts as refreshed. */
  touch(target: Uint8Array): void {
    const i = this.bucketIndex(target);
    if (i < ID_BITS) this.bucketAt(i).lastLookup = this.now();
  }

  /** Buckets with no lookup for longer than the refresh interval, up to one past the deepest non-empty
   *  bucket (deeper ones are our own neighbourhood, which a lookup of our own id keeps fresh). */
  idleBuckets(now = this.now()): number[] {
    let deepest = -1;
    for (let i = ID_BITS - 1; i >= 0; i--) if (this.buckets[i]?.contacts.length) { deepest = i; break; }
    const out: number[] = [];
    const last = Math.min(deepest + 1, ID_BITS - 1);
    for (let i = 0; i <= last; i++) {
      const seen = this.buckets[i]?.lastLookup ?? this.created;
      if (now - seen > this.refreshIntervalMs) out.push(i);
    }
    return out;
  }

  /** A random id in bucket i (shares exactly i leading bits with us); random() in [0, 1). */
  randomIdInBucket(i: number, random: () => number = Math.random): Uint8Array {
    const id = new Uint8Array(NODE_ID_BYTES);
    for (let j = 0; j < id.length; j++) id[j] = (random() * 256) | 0;
    const byte = i >> 3;
    const bit = 0x80 >> (i & 7);
    const keepMask = (0xff00 >> (i & 7)) & 0xff; // bits before i in this byte
    for (let j = 0; j < byte; j++) id[j] = this.selfId[j]!;
    const s = this.selfId[byte]!;
    id[byte] = (s & keepMask) | (~s & bit) | (id[byte]! & ~keepMask & ~bit & 0xff);
    return id;
  }

  // ---- internals -----------------------------------------------------------------------

  /** Would `info` make its bucket hold more than allowed at one IP or one subnet (itself not counted)? */
  private crowded(b: Bucket, info: ContactInfo): boolean {
    if (this.maxPerIp <= 0 && this.maxPerSubnet <= 0) return false;
    const ip = info.endpoint.address;
    const net = networkOf(ip);
    let sameIp = 0;
    let sameNet = 0;
    for (const c of b.contacts) {
      if (bytesEqual(c.nodeId, info.nodeId)) continue;
      if (c.endpoint.address === ip) sameIp++;
      if (net !== undefined && networkOf(c.endpoint.address) === net) sameNet++;
    }
    return (this.maxPerIp > 0 && sameIp >= this.maxPerIp) || (this.maxPerSubnet > 0 && net !== undefined && sameNet >= this.maxPerSubnet);
  }

  private bucketAt(i: number): Bucket {
    let b = this.buckets[i];
    if (!b) {
      b = new Bucket(this.created);
      this.buckets[i] = b;
    }
    return b;
  }

  private insert(b: Bucket, info: ContactInfo, now: number): void {
    const c = newContact(info, now);
    b.contacts.push(c);
    this.count++;
    this.stats.added++;
    this.onAdded?.(c);
  }

  private removeFrom(b: Bucket, c: Contact): void {
    const at = b.contacts.indexOf(c);
    if (at < 0) return;
    b.contacts.splice(at, 1);
    this.count--;
    this.stats.removed++;
    const r = b.replacements.pop(); // freshest replacement takes the place
    if (r) { this.insert(b, r, this.now()); this.stats.promoted++; }
    this.onRemoved?.(c); // after the promotion: an observer sees the table as it stays
  }

  /** Kademlia's rule for a full bucket: ping the least-recently-seen contact; evict it only if it fails. */
  private checkOldest(b: Bucket): void {
    if (b.pinging || !this.ping) return;
    const oldest = b.contacts[0];
    if (!oldest || this.now() - oldest.lastSeen <= this.pingIfIdleMs) return;
    b.pinging = true;
    this.ping(oldest).then(
      (alive) => this.afterPing(b, oldest, alive),
      () => this.afterPing(b, oldest, false),
    );
  }

  private afterPing(b: Bucket, oldest: Contact, alive: boolean): void {
    b.pinging = false;
    if (!b.contacts.includes(oldest)) return; // removed meanwhile
    if (alive) {
      this.stats.keptByPing++;
      this.observe(oldest); // moves to the most-recently-seen end; newcomer stays a replacement
    } else {
      this.stats.evictedByPing++;
      this.removeFrom(b, oldest);
    }
  }
}
