// OverlayNode's read side: fetching signed records and turning identifiers into locators.
//
//   fetch(id, kind): α-parallel iterative FETCH (Kademlia's FIND_VALUE) that goes on until `fetchQuorum`
//                    holders answered (or it converged); every record verified (verifyRecord) before use,
//                    the highest sequence per owner kept, tombstones dropped
//   NodeID  ─> LOCATOR at that NodeID, owned by the key hashing to it
//   IPv4    ─> IPV4_CLAIM at H(ipv4) ─> its owner's key ─> that key's LOCATOR
//   IPv6    ─> 96 NodeID bits ─> FIND_NODE for them (rest zero) converges on the owner ─> its key must own
//              the address (publicKeyOwnsIpv6) ─> its LOCATOR, whose owner must own the address too
//   key     ─> its IPv4 (ipv4Of): the claims for attempts 0, 1, ... in small batches, first one it owns
//   name    ─> NAME record (its value names the owner's NodeID)
//
// Why the IPv6 path needs a node lookup: the address holds only 96 of the NodeID's 160 bits, so the
// locator's resource id cannot be computed from it; but nodes are placed by NodeID, and no other node
// shares 96 leading bits with the owner, so a lookup for those bits ends at the owner itself. That finds
// hosts that run an overlay node (every agent does); the locator then proves the key.
//
// Verified record bytes are cached (with their expiry) so a record fetched again costs no Ed25519 check.

import { IPV4_MAX_CLAIM_ATTEMPT, IPV4_OF_BATCH, NODE_ID_BYTES, OVERLAY_IPV6_PREFIX, RESOLVE_LATENCY_SAMPLES, RESOLVE_VERIFIED_CACHE_MAX } from '../base/constants.js';
import { ipv4FromNodeId, nodeIdFromPublicKey, publicKeyOwnsIpv6 } from '../idloc/addresses.js';
import type { Endpoint } from '../conn/socket.js';
import type { KademliaNode } from './kademlia.js';
import { lookup } from './lookup.js';
import { copyBytes, type FetchValue, type Wire } from './node-wire.js';
import {
  RecordKind, isTombstone, isUniqueKind, newestPerOwner, parseRecord, recordExpiresAt, verifyRecord,
  type Ipv4ClaimRecord, type LocatorRecord, type NameRecord, type OverlayRecord, type RecordVerdict,
} from './records.js';
import type { Scheduler } from '../base/scheduler.js';
import type { RecordStore } from './store.js';
import { ipv4ResourceId, nameResourceId, normalizeName } from './names.js';
import { bytesEqual, hex } from '../base/bytes.js';

export interface LookupStats {
  count: number;
  /** Fetches that found no record / node lookups that found nobody. */
  empty: number;
  p50LatencyMs: number;
  p90LatencyMs: number;
}


function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

/** Lookup counts and the latencies of the last RESOLVE_LATENCY_SAMPLES lookups. */
export class LookupRecorder {
  private readonly latencies: number[] = [];
  private count = 0;
  private empty = 0;

  note(latencyMs: number, empty: boolean): void {
    this.count++;
    if (empty) this.empty++;
    if (this.latencies.length >= RESOLVE_LATENCY_SAMPLES) this.latencies.shift();
    this.latencies.push(latencyMs);
  }

  stats(): LookupStats {
    const sorted = this.latencies.slice().sort((a, b) => a - b);
    return { count: this.count, empty: this.empty, p50LatencyMs: percentile(sorted, 0.5), p90LatencyMs: percentile(sorted, 0.9) };
  }
}

export interface ResolverDeps {
  kad: KademliaNode<FetchValue, Wire>;
  store: RecordStore;
  scheduler: Scheduler;
  /** Wall clock for records (Unix ms). */
  clock: () => number;
  k: number;
  alpha: number;
  fetchQuorum: number;
  puzzleDifficulty: number;
  fetchKinds: WeakMap<Uint8Array, number>;
  lookups: LookupRecorder;
  reject: (reason: string) => void;
}

export class Resolver {
  /** Record bytes (latin1) that verified, with their expiry: saves an Ed25519 check per repeat. */
  private readonly verified = new Map<string, number>();

  constructor(private readonly d: ResolverDeps) {}

  /** Iterative FETCH of (resource, kind): verified, live records, the highest sequence per owner, tombstones
   *  dropped. For first-come kinds, the owner most holders agree on comes first (then the oldest). */
  async fetch(resourceId: Uint8Array, kind: RecordKind): Promise<OverlayRecord[]> {
    const { kad, k } = this.d;
    const key = copyBytes(resourceId);
    this.d.fetchKinds.set(key, kind);
    const now = this.d.clock();
    const found: OverlayRecord[] = [];
    const votes = new Map<string, number>();
    const take = (recs: Iterable<OverlayRecord>) => {
      const owners = new Set<string>();
      for (const r of recs) { found.push(r); owners.add(hex(r.owner)); }
      for (const o of owners) votes.set(o, (votes.get(o) ?? 0) + 1);
    };
    const local = this.d.store.getAll(key, kind, now);
    let holders = 0;
    if (local.length > 0) { take(local); holders++; }
    kad.table.touch(key);
    const self = kad.self;
    const res = await lookup<never>({
      target: key, seeds: kad.seeds(key), scheduler: this.d.scheduler, k, alpha: this.d.alpha,
      selfId: self.nodeId, skip: kad.skipContact, stopWhen: () => holders >= this.d.fetchQuorum,
      query: async (c, t) => {
        const r = await kad.call(c, { type: 'find_value', sender: self, key: t });
        if (!r) return undefined;
        if (r.type === 'nodes') return { contacts: r.contacts };
        if (r.type !== 'value') return undefined;
        const good = this.verifyFetched(r.value.records, key, kind);
        if (good.length > 0) { holders++; take(good); }
        return { contacts: r.value.contacts };
      },
    });
    const out = newestPerOwner(found).filter((r) => !isTombstone(r));
    if (isUniqueKind(kind)) {
      out.sort((a, b) => (votes.get(hex(b.owner)) ?? 0) - (votes.get(hex(a.owner)) ?? 0) || a.created - b.created);
    }
    this.d.lookups.note(res.latencyMs, out.length === 0);
    return out;
  }

  /** The locator record of a NodeID (its owner key hashes to that NodeID). */
  async resolveNodeId(nodeId: Uint8Array): Promise<LocatorRecord | undefined> {
    const recs = await this.fetch(nodeId, RecordKind.Locator);
    return recs.find((r): r is LocatorRecord =>
      r.kind === RecordKind.Locator && bytesEqual(nodeIdFromPublicKey(r.owner), nodeId));
  }

  /** The claim of an IPv4 overlay address (u32). */
  async resolveIpv4Claim(ipv4: number): Promise<Ipv4ClaimRecord | undefined> {
    const recs = await this.fetch(ipv4ResourceId(ipv4 >>> 0), RecordKind.Ipv4Claim);
    return recs.find((r): r is Ipv4ClaimRecord => r.kind === RecordKind.Ipv4Claim && r.value?.ipv4 === ipv4 >>> 0);
  }

  /** IPv4 overlay address → its claim → the owner's key → the owner's locator. */
  async resolveIpv4(ipv4: number): Promise<LocatorRecord | undefined> {
    const claim = await this.resolveIpv4Claim(ipv4);
    if (!claim) return undefined;
    const loc = await this.resolveNodeId(nodeIdFromPublicKey(claim.owner));
    return loc && bytesEqual(loc.owner, claim.owner) ? loc : undefined;
  }

  /** Overlay IPv6 address (16 bytes) → the node whose key owns it (a FIND_NODE for its NodeID bits) → its
   *  locator, whose owner key owns the address. undefined if not an overlay address or nobody owns it. */
  async resolveIpv6(addr: Uint8Array): Promise<LocatorRecord | undefined> {
    const prefix = OVERLAY_IPV6_PREFIX.length;
    if (addr.length !== 16 || !bytesEqual(addr.subarray(0, prefix), OVERLAY_IPV6_PREFIX)) return undefined;
    const owns = (key: Uint8Array) => publicKeyOwnsIpv6(key, addr);
    const { kad } = this.d;
    let owner: Uint8Array | undefined = owns(kad.self.publicKey) ? kad.self.publicKey : undefined;
    if (!owner) {
      const target = new Uint8Array(NODE_ID_BYTES);
      target.set(addr.subarray(prefix));
      // the owner, when we know it, is our closest contact to those bits: no lookup needed
      const known = kad.table.closest(target, 1)[0];
      if (known && owns(known.publicKey)) {
        owner = known.publicKey;
      } else {
        const res = await kad.findNode(target, { sought: (c) => owns(c.publicKey) });
        const at = res.foundAt && owns(res.foundAt.publicKey) ? res.foundAt : res.contacts.find((c) => owns(c.publicKey));
        this.d.lookups.note(res.latencyMs, at === undefined);
        owner = at?.publicKey;
      }
    }
    if (!owner) return undefined;
    const loc = await this.resolveNodeId(nodeIdFromPublicKey(owner));
    return loc && owns(loc.owner) ? loc : undefined;
  }

  /** The IPv4 overlay address this key holds a claim for (attempts 0.. looked up IPV4_OF_BATCH at a time,
   *  the lowest in the first batch that has one), or undefined. */
  async ipv4Of(publicKey: Uint8Array): Promise<number | undefined> {
    if (publicKey.length !== 32) return undefined;
    const nodeId = nodeIdFromPublicKey(publicKey);
    for (let first = 0; first <= IPV4_MAX_CLAIM_ATTEMPT; first += IPV4_OF_BATCH) {
      const attempts: number[] = [];
      for (let a = first; a < first + IPV4_OF_BATCH && a <= IPV4_MAX_CLAIM_ATTEMPT; a++) attempts.push(a);
      const held = await Promise.all(attempts.map(async (a) => {
        const ipv4 = ipv4FromNodeId(nodeId, a);
        const recs = await this.fetch(ipv4ResourceId(ipv4), RecordKind.Ipv4Claim);
        return recs.some((r) => r.kind === RecordKind.Ipv4Claim && r.value?.ipv4 === ipv4 && bytesEqual(r.owner, publicKey))
          ? ipv4 : undefined;
      }));
      const hit = held.find((x) => x !== undefined);
      if (hit !== undefined) return hit;
    }
    return undefined;
  }

  /** The name record for `name` (its value holds the owner's NodeID), or undefined. */
  async resolveName(name: string): Promise<NameRecord | undefined> {
    const n = normalizeName(name);
    if (n === undefined) return undefined;
    const recs = await this.fetch(nameResourceId(n), RecordKind.Name);
    return recs.find((r): r is NameRecord => r.kind === RecordKind.Name && r.value?.name === n);
  }

  /** Drop expired entries of the verification cache (housekeeping). */
  sweep(now: number): void {
    for (const [k, v] of this.verified) if (v <= now) this.verified.delete(k);
  }

  /** Records of a FETCH answer that parse, are for (resource, kind) and verify; the rest are counted. */
  private verifyFetched(list: Uint8Array[], resource: Uint8Array, kind: number): OverlayRecord[] {
    const now = this.d.clock();
    const out: OverlayRecord[] = [];
    for (const b of list) {
      const r = parseRecord(b);
      if (!r) { this.d.reject('fetched-unparseable'); continue; }
      if (r.kind !== kind || !bytesEqual(r.resourceId, resource)) { this.d.reject('fetched-wrong-resource'); continue; }
      const v = this.verifyCached(r, b, now);
      if (v !== 'valid') { this.d.reject(`fetched-${v}`); continue; }
      out.push(r);
    }
    return out;
  }

  private verifyCached(r: OverlayRecord, bytes: Uint8Array, now: number): RecordVerdict {
    const key = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
    const exp = this.verified.get(key);
    if (exp !== undefined && exp > now) return 'valid'; // verified before (future-created ones never enter)
    const v = verifyRecord(r, now, { puzzleDifficulty: this.d.puzzleDifficulty });
    if (v === 'valid') {
      if (this.verified.size >= RESOLVE_VERIFIED_CACHE_MAX) this.verified.delete(this.verified.keys().next().value!);
      this.verified.set(key, recordExpiresAt(r));
    }
    return v;
  }
}

/** For logs, the CLI and ATTACH: "host:port" of a locator's best candidate. */
export function locatorEndpoint(r: LocatorRecord): Endpoint | undefined {
  const c = r.value?.candidates.slice().sort((a, b) => b.priority - a.priority)[0];
  return c ? { address: c.address, port: c.port } : undefined;
}
