// OverlayNode's read side: fetching signed records and turning identifiers into locators.
//
//   fetch(id, kind): α-parallel iterative FETCH (Kademlia's FIND_VALUE) that goes on until `fetchQuorum`
//                    holders answered (or it converged); every record verified (verifyRecord) before use,
//                    the highest sequence per owner kept, tombstones dropped. For first-come kinds it is
//                    the quorum read below instead: [the holder] when a majority names one, else every
//                    live claim the storers gave (contested: a publisher must not claim it)
//   quorum(id, kind) / fetchAtClosest(id, kind):
//                    RESOLVE_DISJOINT_PATHS lookups in parallel, seeded with disjoint shares of our k
//                    closest, no node asked by two paths (S/Kademlia), each FETCHing until it converged;
//                    the storers are the k closest of every node that answered (ourselves too, when we
//                    are that close: our own store counts only then), after waiting for any of the k
//                    closest whose answer is still coming (a straggler to a lookup is a storer here). quorum: each storer votes for the
//                    owner of its live record (one at most; a storer offering two votes for nobody; an
//                    owner whose newest record anywhere is its tombstone has withdrawn), and the holder
//                    is the owner more than half of the voting storers name (P2PNS), else nobody.
//                    Storers holding nothing do not vote: a slow replica replaced by a farther node that
//                    never got the record (a lookup leaves stragglers behind) must not void a claim.
//                    fetchAtClosest: what those storers hold, newest per owner, most widely held first
//   NodeID  ─> LOCATOR at that NodeID, owned by the key hashing to it
//   IPv4    ─> quorum IPV4_CLAIM at H(ipv4) ─> its holder's key ─> that key's LOCATOR
//   IPv6    ─> 96 NodeID bits ─> FIND_NODE for them (rest zero) converges on the owner ─> its key must own
//              the address (publicKeyOwnsIpv6) ─> its LOCATOR, whose owner must own the address too
//   key     ─> its IPv4 (ipv4Of): the quorum claims for attempts 0, 1, ... in small batches, the first one
//              whose holder is this key; so ipv4Of(key) = ip only if resolveIpv4Claim(ip) is that key's
//   name    ─> quorum NAME record (its value names the owner's NodeID)
//
// Why quorum reads for IPv4 claims and names: they are first-come, so who holds one is a fact about the
// k closest storers, not about whichever node answers first. Any key can derive a given IPv4 address in
// about 2^17 tries; its claim, stored at a node that never held the real one, or offered by a few lying
// nodes, must not map the address to that key. Storers refuse resources they are not responsible for
// (responsibility.ts), and a minority of liars among the k closest cannot reach a majority.
//
// Why the IPv6 path needs a node lookup: the address holds only 96 of the NodeID's 160 bits, so the
// locator's resource id cannot be computed from it; but nodes are placed by NodeID, and no other node
// shares 96 leading bits with the owner, so a lookup for those bits ends at the owner itself. That finds
// hosts that run an overlay node (every agent does); the locator then proves the key.
//
// Verified record bytes are cached (with their expiry) so a record fetched again costs no Ed25519 check.

import {
  IPV4_MAX_CLAIM_ATTEMPT, IPV4_OF_BATCH, NODE_ID_BYTES, OVERLAY_IPV6_PREFIX, RESOLVE_DISJOINT_PATHS, RESOLVE_LATENCY_SAMPLES,
  RESOLVE_VERIFIED_CACHE_MAX,
} from '../base/constants.js';
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
import { compareDistance, idKey } from './xor-metric.js';

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
  /** Disjoint paths of a quorum read (default RESOLVE_DISJOINT_PATHS). */
  paths?: number;
}

/** What the k closest storers of a resource say (Resolver.quorum). */
export interface QuorumResult {
  /** For first-come kinds: the live record of the owner more than half of the voting storers hold. */
  holder: OverlayRecord | undefined;
  /** Storers among the k closest that answered (ourselves included when we are among them). */
  storers: number;
  /** Storers that named an owner (the majority is of these). */
  voters: number;
  /** Storers that hold the holder's record (0 without a holder). */
  votes: number;
  /** Every live record the storers gave, newest per owner, most widely held first (then the oldest). */
  records: OverlayRecord[];
}

/** One storer's answer: its verified records for the resource ([] when it had none). */
interface StorerAnswer {
  nodeId: Uint8Array;
  records: OverlayRecord[];
}

export class Resolver {
  /** Record bytes (latin1) that verified, with their expiry: saves an Ed25519 check per repeat. */
  private readonly verified = new Map<string, number>();

  constructor(private readonly d: ResolverDeps) {}

  /** Iterative FETCH of (resource, kind): verified, live records, the highest sequence per owner, tombstones
   *  dropped. For first-come kinds, the quorum's holder alone, or with no majority every claim seen. */
  async fetch(resourceId: Uint8Array, kind: RecordKind): Promise<OverlayRecord[]> {
    if (isUniqueKind(kind)) {
      const q = await this.quorum(resourceId, kind);
      return q.holder ? [q.holder] : q.records;
    }
    const { kad, k } = this.d;
    const key = copyBytes(resourceId);
    this.d.fetchKinds.set(key, kind);
    const now = this.d.clock();
    const found: OverlayRecord[] = [];
    const local = this.d.store.getAll(key, kind, now);
    let holders = 0;
    if (local.length > 0) { found.push(...local); holders++; }
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
        if (good.length > 0) { holders++; found.push(...good); }
        return { contacts: r.value.contacts };
      },
    });
    const out = newestPerOwner(found).filter((r) => !isTombstone(r));
    this.d.lookups.note(res.latencyMs, out.length === 0);
    return out;
  }

  /** What the k closest storers of (resource, kind) hold, read over disjoint paths: records held only
   *  elsewhere (our own store included, unless we are among the k closest) do not count. For service
   *  providers, which anyone can STORE at any one node. */
  async fetchAtClosest(resourceId: Uint8Array, kind: RecordKind): Promise<OverlayRecord[]> {
    return (await this.quorum(resourceId, kind)).records;
  }

  /** The k closest storers' view of (resource, kind), with the majority holder for first-come kinds. */
  async quorum(resourceId: Uint8Array, kind: RecordKind): Promise<QuorumResult> {
    const storers = await this.readClosest(resourceId, kind);
    const newest = new Map<string, OverlayRecord>();
    for (const s of storers) {
      for (const r of s.records) {
        const o = hex(r.owner);
        const cur = newest.get(o);
        if (!cur || r.seq > cur.seq) newest.set(o, r);
      }
    }
    const votes = new Map<string, number>();
    let voters = 0;
    for (const s of storers) {
      const live = new Set<string>();
      for (const r of s.records) {
        const o = hex(r.owner);
        if (!isTombstone(r) && !isTombstone(newest.get(o)!)) live.add(o); // a withdrawn owner gets no vote
      }
      if (live.size > 0) voters++;
      if (live.size > 1 && isUniqueKind(kind)) { this.d.reject('fetched-conflicting'); continue; } // no honest store does that
      for (const o of live) votes.set(o, (votes.get(o) ?? 0) + 1);
    }
    const count = (r: OverlayRecord) => votes.get(hex(r.owner)) ?? 0;
    const records = [...newest.values()].filter((r) => !isTombstone(r) && count(r) > 0)
      .sort((a, b) => count(b) - count(a) || a.created - b.created);
    const top = records[0];
    const topVotes = top ? count(top) : 0;
    const holder = top && isUniqueKind(kind) && 2 * topVotes > voters ? top : undefined;
    return { holder, storers: storers.length, voters, votes: holder ? topVotes : 0, records };
  }

  /** The k closest nodes to a resource that answered a FETCH (and we, if that close), each with the
   *  verified records it gave. RESOLVE_DISJOINT_PATHS lookups run at once; each node is asked by one. */
  private async readClosest(resourceId: Uint8Array, kind: RecordKind): Promise<StorerAnswer[]> {
    const { kad, k } = this.d;
    const key = copyBytes(resourceId);
    this.d.fetchKinds.set(key, kind);
    kad.table.touch(key);
    const self = kad.self;
    const started = this.d.scheduler.now();
    const seeds = kad.seeds(key);
    const paths = Math.max(1, Math.min(this.d.paths ?? RESOLVE_DISJOINT_PATHS, seeds.length));
    const claimedBy = new Map<string, number>();
    const answers = new Map<string, StorerAnswer>();
    /** Queries still out (a lookup leaves stragglers behind; a quorum read waits for the closest). */
    const inflight = new Map<string, { nodeId: Uint8Array; done: Promise<unknown> }>();
    const runs = [];
    for (let p = 0; p < paths; p++) {
      runs.push(lookup<never>({
        target: key, seeds: seeds.filter((_, i) => i % paths === p), scheduler: this.d.scheduler, k, alpha: this.d.alpha,
        selfId: self.nodeId, skip: kad.skipContact,
        query: async (c, t) => {
          const id = idKey(c.nodeId);
          const owner = claimedBy.get(id);
          if (owner !== undefined && owner !== p) return undefined; // another path's: this one goes round it
          claimedBy.set(id, p);
          const call = kad.call(c, { type: 'find_value', sender: self, key: t });
          inflight.set(id, { nodeId: c.nodeId, done: call.catch(() => undefined) });
          const r = await call.finally(() => inflight.delete(id));
          if (!r) return undefined;
          if (r.type === 'nodes') { answers.set(id, { nodeId: c.nodeId, records: [] }); return { contacts: r.contacts }; }
          if (r.type !== 'value') return undefined;
          answers.set(id, { nodeId: c.nodeId, records: this.verifyFetched(r.value.records, key, kind) });
          return { contacts: r.value.contacts };
        },
      }));
    }
    await Promise.all(runs);
    const byDistance = (a: { nodeId: Uint8Array }, b: { nodeId: Uint8Array }) => compareDistance(a.nodeId, b.nodeId, key);
    // the closest are the storers that matter: wait for those still answering (their RPC retries end it)
    const slow = [...answers.values(), ...inflight.values()].sort(byDistance).slice(0, k)
      .flatMap((c) => ('done' in c ? [c.done] : []));
    if (slow.length > 0) await Promise.all(slow);
    const all = [...answers.values(), { nodeId: self.nodeId, records: this.d.store.getAll(key, kind, this.d.clock()) }];
    all.sort(byDistance);
    const storers = all.slice(0, k);
    this.d.lookups.note(this.d.scheduler.now() - started, !storers.some((s) => s.records.length > 0));
    return storers;
  }

  /** The locator record of a NodeID (its owner key hashes to that NodeID). */
  async resolveNodeId(nodeId: Uint8Array): Promise<LocatorRecord | undefined> {
    const recs = await this.fetch(nodeId, RecordKind.Locator);
    return recs.find((r): r is LocatorRecord =>
      r.kind === RecordKind.Locator && bytesEqual(nodeIdFromPublicKey(r.owner), nodeId));
  }

  /** The claim of an IPv4 overlay address (u32): the one its k closest storers' majority holds. */
  async resolveIpv4Claim(ipv4: number): Promise<Ipv4ClaimRecord | undefined> {
    const { holder } = await this.quorum(ipv4ResourceId(ipv4 >>> 0), RecordKind.Ipv4Claim);
    return holder?.kind === RecordKind.Ipv4Claim && holder.value?.ipv4 === ipv4 >>> 0 ? holder : undefined;
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
        // The owner's key is all we need (it hashes to the address; its locator comes signed from the
        // storers), so the first answer that lists it will do: the owner itself, behind a NAT, may never
        // answer our query, and the lookup would wait for it to the end.
        let listed: (key: Uint8Array) => void = () => {};
        const seen = new Promise<Uint8Array>((r) => { listed = r; });
        const search = kad.findNode(target, { sought: (c) => { const o = owns(c.publicKey); if (o) listed(c.publicKey); return o; } }).then((res) => {
          const at = res.foundAt && owns(res.foundAt.publicKey) ? res.foundAt : res.contacts.find((c) => owns(c.publicKey));
          this.d.lookups.note(res.latencyMs, at === undefined);
          return at?.publicKey;
        });
        owner = await Promise.race([search, seen]);
      }
    }
    if (!owner) return undefined;
    const loc = await this.resolveNodeId(nodeIdFromPublicKey(owner));
    return loc && owns(loc.owner) ? loc : undefined;
  }

  /** The IPv4 overlay address this key holds by quorum (resolveIpv4Claim of it is this key's claim):
   *  attempts 0.. looked up IPV4_OF_BATCH at a time, the lowest in the first batch that has one, or
   *  undefined. */
  async ipv4Of(publicKey: Uint8Array): Promise<number | undefined> {
    if (publicKey.length !== 32) return undefined;
    const nodeId = nodeIdFromPublicKey(publicKey);
    for (let first = 0; first <= IPV4_MAX_CLAIM_ATTEMPT; first += IPV4_OF_BATCH) {
      const attempts: number[] = [];
      for (let a = first; a < first + IPV4_OF_BATCH && a <= IPV4_MAX_CLAIM_ATTEMPT; a++) attempts.push(a);
      const held = await Promise.all(attempts.map(async (a) => {
        const ipv4 = ipv4FromNodeId(nodeId, a);
        const claim = await this.resolveIpv4Claim(ipv4);
        return claim && bytesEqual(claim.owner, publicKey) ? ipv4 : undefined;
      }));
      const hit = held.find((x) => x !== undefined);
      if (hit !== undefined) return hit;
    }
    return undefined;
  }

  /** The name record for `name` (its value holds the owner's NodeID) its storers' majority holds. */
  async resolveName(name: string): Promise<NameRecord | undefined> {
    const n = normalizeName(name);
    if (n === undefined) return undefined;
    const { holder } = await this.quorum(nameResourceId(n), RecordKind.Name);
    return holder?.kind === RecordKind.Name && holder.value?.name === n ? holder : undefined;
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
