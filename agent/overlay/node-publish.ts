// OverlayNode's write side: where records go and how they stay there.
//
//   publish / publishIdentity / updateLocator / registerName
//        └─ storeEverywhere: local copy, FIND_NODE for the resource id, STORE at the k closest
//   publishIdentity: claims IPv4 attempts in order, skipping those the quorum read (node-resolve.ts) gives
//                 to another key, or that most storers refuse as taken (takenByMajority); a claim of this
//                 key left behind (an earlier attempt it held, or one that turned out taken) is withdrawn
//                 with a tombstone stored everywhere
//   republish():  own records, re-signed with a higher sequence when we made them, stored everywhere again
//                 (every DHT_REPUBLISH_INTERVAL_MS, and when the routing table grows from empty)
//   refreshLocator(): our own locator re-signed and stored now (the rendezvous set changed); a locator of
//                 ours always names the rendezvous set current when it is signed
//   replicate():  every held record that is not ours, re-STOREd at the current k closest of its resource
//   contactAdded(c) ─(DHT_HANDOFF_DELAY_MS, one pass per burst)─> handoff: each held record goes to the
//                 newcomers that are now among the k closest we know for its resource
//
// Why the hand-off (Kademlia's "store on join"): a record lives on the k nodes closest to its resource at
// the time it was stored. A node that joins later and is closer would otherwise not get it before the next
// republish (minutes); worse, the first node of an overlay stores its own records only locally, and if it
// goes away before a republish nobody has them. Records that are not ours are handed over only by the
// known node closest to their resource, so a newcomer gets one copy rather than k; our own records we
// always hand over (we know their current version).
//
// Sequences only grow: a record remade here gets max(now, previous + 1), so an update in the same
// millisecond (or after the clock stepped back) still replaces the old one.

import {
  DHT_HANDOFF_DELAY_MS, IPV4_MAX_CLAIM_ATTEMPT, LOCATOR_MAX_RENDEZVOUS, OVERLAY_MAX_RECORDS, RECORD_MAX_LIFETIME_S,
} from '../base/constants.js';
import { ipv4FromNodeId, nodeIdFromPublicKey } from '../idloc/addresses.js';
import type { Identity } from '../idloc/identity.js';
import type { Endpoint } from '../conn/socket.js';
import type { Sender } from './codec.js';
import type { KademliaNode } from './kademlia.js';
import { storeBatches, type FetchValue, type Wire } from './node-wire.js';
import { solvePuzzle } from './puzzle.js';
import {
  CandidateType, RecordKind, createIpv4ClaimRecord, createLocatorRecord, createNameRecord, createTombstone,
  defaultLifetime, marshalRecord, parseRecord, recordExpiresAt, type Candidate, type LocatorRecord,
  type NameRecord, type OverlayRecord, type RecordSigner,
} from './records.js';
import type { Scheduler, TimerHandle } from '../base/scheduler.js';
import type { PutResult, RecordStore } from './store.js';
import { ipv4ResourceId, nameResourceId, normalizeName } from './names.js';
import { bytesEqual, hex } from '../base/bytes.js';
import { compareDistance, idKey } from './xor-metric.js';
import type { ContactInfo } from './bucket.js';

export interface PublishResult {
  /** The record was accepted by at least one node (local copy included if no remote answered). */
  ok: boolean;
  /** What the local store said. */
  local: PutResult;
  /** Nodes a STORE was sent to, and how many answered. */
  contacted: number;
  answered: number;
  /** Remote statuses, counted. */
  statuses: Record<PutResult, number>;
}

export interface PublishIdentityResult {
  locator: PublishResult;
  /** The IPv4 overlay address claimed (attempt 0 = identity.ipv4 unless it was taken). */
  ipv4: number | undefined;
  attempt: number;
  claim: PublishResult | undefined;
}

export interface PublishIdentityOptions {
  /** Claim attempt to try first (the one this host held before, so its IPv4 survives restarts); then
   *  0, 1, 2, ... as usual. Ignored unless an integer in 0..IPV4_MAX_CLAIM_ATTEMPT. */
  preferAttempt?: number;
}

export type RegisterResult =
  | { ok: true; record: NameRecord; publish: PublishResult }
  | { ok: false; reason: 'invalid' | 'taken' | 'unreachable'; holder?: Uint8Array };

/** Candidates of a locator from socket endpoints: host candidates, earlier ones preferred. */
export function hostCandidates(endpoints: Endpoint[]): Candidate[] {
  return endpoints.map((e, i) => ({
    address: e.address, port: e.port, type: CandidateType.Host,
    priority: ((126 << 24) >>> 0) + ((0xffff - Math.min(i, 0xffff)) << 8) + 255,
  }));
}

function toCandidates(endpoints: Endpoint[] | Candidate[]): Candidate[] {
  return endpoints.length > 0 && 'type' in endpoints[0]! ? (endpoints as Candidate[]) : hostCandidates(endpoints as Endpoint[]);
}

/** Attempts in the order publishIdentity tries them. */
export function claimAttemptOrder(prefer: number | undefined): number[] {
  const all: number[] = [];
  for (let a = 0; a <= IPV4_MAX_CLAIM_ATTEMPT; a++) all.push(a);
  if (prefer === undefined || !Number.isInteger(prefer) || prefer <= 0 || prefer > IPV4_MAX_CLAIM_ATTEMPT) return all;
  return [prefer, ...all.filter((a) => a !== prefer)];
}

function emptyStatuses(): Record<PutResult, number> {
  return { stored: 0, stale: 0, forged: 0, taken: 0, expired: 0, invalid: 0, full: 0 };
}

/** A first-come record the storers (our own store one of them) mostly refused as held by another key.
 *  A majority, as a quorum read decides (node-resolve.ts): a few storers holding a rival claim (planted,
 *  or lying) must not make us give up an address or name the rest hold for us. */
export function takenByMajority(r: PublishResult): boolean {
  const taken = r.statuses.taken + (r.local === 'taken' ? 1 : 0);
  return 2 * taken > r.answered + 1;
}

const ownKey = (r: OverlayRecord): string => `${r.kind}:${hex(r.resourceId)}:${hex(r.owner)}`;

/** Re-create a record (re-signed) with this creation time and sequence. */
type Remake = (now: number, seq: bigint) => OverlayRecord;

interface OwnRecord {
  bytes: Uint8Array;
  record: OverlayRecord;
  /** Absent: re-send the same bytes until they expire. */
  remake?: Remake;
}

export interface PublisherDeps {
  kad: KademliaNode<FetchValue, Wire>;
  store: RecordStore;
  scheduler: Scheduler;
  /** Wall clock for records (Unix ms). */
  clock: () => number;
  k: number;
  self: Sender;
  signer: RecordSigner;
  puzzleDifficulty: number;
  storeAt: (to: Endpoint, records: Uint8Array[]) => Promise<PutResult[] | undefined>;
  fetch: (resourceId: Uint8Array, kind: RecordKind) => Promise<OverlayRecord[]>;
  noteLookup: (latencyMs: number, empty: boolean) => void;
  handoffDelayMs?: number;
  /** NodeIDs of our current rendezvous nodes, for our own locator (read each time it is signed). */
  rendezvous?: () => Uint8Array[];
}

export class Publisher {
  private readonly own = new Map<string, OwnRecord>();
  private readonly newcomers = new Map<string, ContactInfo>();
  private handoffTimer: TimerHandle | undefined;
  private closed = false;

  constructor(private readonly d: PublisherDeps) {}

  get size(): number { return this.own.size; }

  close(): void {
    this.closed = true;
    this.handoffTimer?.cancel();
    this.handoffTimer = undefined;
  }

  /** STORE a signed record at the k nodes closest to its resource id (found by a lookup) and keep a local
   *  copy; kept for republishing unless `republish` is false. Throws RangeError on unparseable bytes. */
  async publish(bytes: Uint8Array, opts: { republish?: boolean } = {}): Promise<PublishResult> {
    const record = parseRecord(bytes);
    if (!record) throw new RangeError('publish: not a record');
    if (opts.republish !== false) this.own.set(ownKey(record), { bytes: Uint8Array.from(bytes), record });
    return this.storeEverywhere(record, bytes);
  }

  /** Publish the locator record (these endpoints as host candidates) and claim the IPv4 overlay address:
   *  opts.preferAttempt first (the attempt this host held before), then 0, 1, 2, ..., skipping any another
   *  key holds. Both are republished (a new claim ends the republishing of this key's earlier one). For
   *  this node's own identity the locator names our current rendezvous nodes, kept up to date. */
  async publishIdentity(identity: Identity, endpoints: Endpoint[] | Candidate[], flags = 0,
    opts: PublishIdentityOptions = {}): Promise<PublishIdentityResult> {
    const signer: RecordSigner = bytesEqual(identity.nodeId, this.d.self.nodeId) ? this.d.signer
      : { privateKey: identity.privateKey, publicKey: identity.publicKey, puzzleNonce: solvePuzzle(identity.publicKey, this.d.puzzleDifficulty) };
    const candidates = toCandidates(endpoints);
    // our rendezvous nodes keep our NAT open, not another identity's
    const rendezvous = signer === this.d.signer ? () => this.rendezvous() : () => [];
    const locator = (await this.publishOwn((now, seq) =>
      createLocatorRecord(signer, { flags, candidates, rendezvous: rendezvous() }, { now, seq }))).result;
    const mine = (r: OverlayRecord) => bytesEqual(r.owner, identity.publicKey);
    /** Claims of this key we are not keeping: withdrawn (tombstones) once the outcome is known. */
    const leftBehind: OverlayRecord[] = [];
    for (const attempt of claimAttemptOrder(opts.preferAttempt)) {
      const ipv4 = ipv4FromNodeId(identity.nodeId, attempt);
      const found = await this.d.fetch(ipv4ResourceId(ipv4), RecordKind.Ipv4Claim);
      if (found.some((r) => !mine(r))) {
        leftBehind.push(...found.filter(mine)); // another key holds it: a copy of ours somewhere goes
        continue;
      }
      const { result: claim, record } = await this.publishOwn((now, seq) => createIpv4ClaimRecord(signer, attempt, { now, seq }));
      if (takenByMajority(claim)) {
        this.own.delete(ownKey(record));
        if (claim.local === 'stored' || claim.statuses.stored > 0) leftBehind.push(record); // stored at some
        continue;
      }
      // one address per key: claims this key made for other attempts are withdrawn, not left to expire (an
      // hour), or ipv4Of, which takes the lowest attempt it finds, could keep answering the old address
      for (const [key, o] of this.own) {
        if (o.record.kind === RecordKind.Ipv4Claim && key !== ownKey(record) && mine(o.record)) {
          this.own.delete(key);
          leftBehind.push(o.record);
        }
      }
      await this.withdraw(signer, leftBehind.filter((r) => !bytesEqual(r.resourceId, record.resourceId)));
      return { locator, ipv4, attempt, claim };
    }
    await this.withdraw(signer, leftBehind);
    return { locator, ipv4: undefined, attempt: -1, claim: undefined };
  }

  /** Store a tombstone for each of these records of ours (one per resource) at the k closest and locally:
   *  a higher sequence than the record's, and a lifetime that outlasts it, so no copy can outrank it. */
  private async withdraw(signer: RecordSigner, records: OverlayRecord[]): Promise<void> {
    const newest = new Map<string, OverlayRecord>();
    for (const r of records) {
      const cur = newest.get(ownKey(r));
      if (!cur || r.seq > cur.seq) newest.set(ownKey(r), r);
    }
    await Promise.all([...newest.values()].map((r) => {
      const now = this.d.clock();
      const seq = BigInt(Math.floor(now));
      const left = Math.ceil((recordExpiresAt(r) - now) / 1000);
      const lifetime = Math.min(RECORD_MAX_LIFETIME_S, Math.max(defaultLifetime(r.kind), left));
      const tomb = createTombstone(signer, r.kind, r.resourceId, { now, seq: seq > r.seq ? seq : r.seq + 1n, lifetime });
      return this.storeEverywhere(tomb, marshalRecord(tomb)).catch(() => undefined);
    }));
  }

  /** Replace this node's own locator with a freshly signed one (higher sequence) for these endpoints or
   *  candidates, and store it now: for when the host's addresses change. Flags stay those of the current
   *  locator unless `flags` is given; the rendezvous list is the current set, read again whenever it is
   *  re-signed. */
  async updateLocator(endpoints: Endpoint[] | Candidate[], flags?: number): Promise<PublishResult> {
    const prev = this.own.get(this.selfLocatorKey())?.record as LocatorRecord | undefined;
    const fixed = { flags: flags ?? prev?.value?.flags ?? 0, candidates: toCandidates(endpoints) };
    return (await this.publishOwn((now, seq) =>
      createLocatorRecord(this.d.signer, { ...fixed, rendezvous: this.rendezvous() }, { now, seq }))).result;
  }

  /** Re-sign and store our own locator, if we published one, so it names the current rendezvous set.
   *  undefined if there is none. */
  async refreshLocator(): Promise<PublishResult | undefined> {
    const own = this.own.get(this.selfLocatorKey());
    if (!own?.remake || this.closed) return undefined;
    own.record = this.remade(own.remake, this.d.clock(), own.record.seq);
    own.bytes = marshalRecord(own.record);
    return this.storeEverywhere(own.record, own.bytes);
  }

  /** Register `name` → this node (P2PNS): refused if another key holds it. Republished while we run. */
  async registerName(name: string): Promise<RegisterResult> {
    const n = normalizeName(name);
    if (n === undefined) return { ok: false, reason: 'invalid' };
    const holder = (await this.d.fetch(nameResourceId(n), RecordKind.Name)).find((r) => !bytesEqual(r.owner, this.d.self.publicKey));
    if (holder) return { ok: false, reason: 'taken', holder: nodeIdFromPublicKey(holder.owner) };
    const { result: publish, record } = await this.publishOwn((now, seq) => createNameRecord(this.d.signer, n, { now, seq }));
    if (takenByMajority(publish)) {
      this.own.delete(ownKey(record));
      return { ok: false, reason: 'taken' };
    }
    if (!publish.ok) return { ok: false, reason: 'unreachable' };
    return { ok: true, record: record as NameRecord, publish };
  }

  /** Store every own record again, re-signed where we can; those we cannot re-sign go until they expire. */
  republish(): void {
    const now = this.d.clock();
    for (const [key, own] of this.own) {
      if (own.remake) {
        own.record = this.remade(own.remake, now, own.record.seq);
        own.bytes = marshalRecord(own.record);
      } else if (recordExpiresAt(own.record) <= now) {
        this.own.delete(key);
        continue;
      }
      void this.storeEverywhere(own.record, own.bytes).catch(() => undefined);
    }
  }

  /** Kademlia's replication: re-STORE every held record (not our own: those are republished) at the
   *  current k closest of its resource, one lookup per resource. */
  replicate(): void {
    for (const recs of this.heldByResource(false).values()) {
      const r0 = recs[0]!;
      void (async () => {
        const res = await this.d.kad.findNode(r0.resourceId);
        const batches = storeBatches(this.d.self, r0.resourceId, r0.kind, recs.slice(0, OVERLAY_MAX_RECORDS).map(marshalRecord));
        await Promise.all(res.contacts.flatMap((c) => batches.map((b) => this.d.storeAt(c.endpoint, b).catch(() => undefined))));
      })().catch(() => undefined);
    }
  }

  /** A contact entered the routing table (called from inside the table change: the work is deferred). */
  contactAdded(c: ContactInfo): void {
    if (this.closed) return;
    this.newcomers.set(idKey(c.nodeId), c);
    this.handoffTimer ??= this.d.scheduler.setTimer(this.d.handoffDelayMs ?? DHT_HANDOFF_DELAY_MS, () => {
      this.handoffTimer = undefined;
      if (!this.closed) this.handoff();
    });
  }

  // ---- internals ----------------------------------------------------------------------------------

  private selfLocatorKey(): string {
    return `${RecordKind.Locator}:${hex(this.d.self.nodeId)}:${hex(this.d.self.publicKey)}`;
  }

  private rendezvous(): Uint8Array[] {
    return (this.d.rendezvous?.() ?? []).slice(0, LOCATOR_MAX_RENDEZVOUS);
  }

  /** Store on join: each held record to the newcomers now among the k closest we know (us included). */
  private handoff(): void {
    const { kad, k } = this.d;
    const selfId = this.d.self.nodeId;
    const fresh = [...this.newcomers.values()].filter((c) => kad.table.get(c.nodeId)); // still there
    this.newcomers.clear();
    if (fresh.length === 0) return;
    const isNew = (id: Uint8Array) => fresh.some((n) => bytesEqual(n.nodeId, id));
    for (const recs of this.heldByResource(true).values()) {
      const resource = recs[0]!.resourceId;
      const closest = kad.table.closest(resource, k);
      const targets = fresh.filter((n) => {
        const at = closest.findIndex((c) => bytesEqual(c.nodeId, n.nodeId));
        return at >= 0 && at + (compareDistance(selfId, n.nodeId, resource) < 0 ? 1 : 0) < k;
      });
      if (targets.length === 0) continue;
      const nearestOld = closest.find((c) => !isNew(c.nodeId));
      const weAreNearest = !nearestOld || compareDistance(selfId, nearestOld.nodeId, resource) < 0;
      const send = weAreNearest ? recs : recs.filter((r) => this.own.has(ownKey(r)));
      if (send.length === 0) continue;
      const batches = storeBatches(this.d.self, resource, send[0]!.kind, send.map(marshalRecord));
      for (const t of targets) for (const b of batches) void this.d.storeAt(t.endpoint, b).catch(() => undefined);
    }
  }

  /** Live records in the store, tombstones included, grouped by (kind, resource); own ones only if asked. */
  private heldByResource(withOwn: boolean): Map<string, OverlayRecord[]> {
    const byResource = new Map<string, OverlayRecord[]>();
    for (const r of this.d.store.records(this.d.clock())) {
      if (!withOwn && this.own.has(ownKey(r))) continue;
      const key = `${r.kind}:${hex(r.resourceId)}`;
      const list = byResource.get(key);
      if (list) list.push(r);
      else byResource.set(key, [r]);
    }
    return byResource;
  }

  private remade(remake: Remake, now: number, after: bigint | undefined): OverlayRecord {
    const seq = BigInt(Math.floor(now));
    return remake(now, after !== undefined && seq <= after ? after + 1n : seq);
  }

  private async publishOwn(remake: Remake): Promise<{ result: PublishResult; record: OverlayRecord }> {
    const now = this.d.clock();
    let record = remake(now, BigInt(Math.floor(now)));
    const prev = this.own.get(ownKey(record));
    if (prev && record.seq <= prev.record.seq) record = this.remade(remake, now, prev.record.seq);
    const bytes = marshalRecord(record);
    this.own.set(ownKey(record), { bytes, record, remake });
    return { result: await this.storeEverywhere(record, bytes), record };
  }

  private async storeEverywhere(record: OverlayRecord, bytes: Uint8Array): Promise<PublishResult> {
    const local = this.d.store.put(record, this.d.clock());
    const statuses = emptyStatuses();
    // 'taken' here is one storer's view: the k closest decide (takenByMajority)
    if (local === 'forged' || local === 'invalid' || local === 'expired') {
      return { ok: false, local, contacted: 0, answered: 0, statuses };
    }
    const res = await this.d.kad.findNode(record.resourceId);
    this.d.noteLookup(res.latencyMs, res.contacts.length === 0);
    const targets = res.contacts.slice(0, this.d.k);
    const answers = await Promise.all(targets.map((c) => this.d.storeAt(c.endpoint, [bytes]).catch(() => undefined)));
    let answered = 0;
    for (const a of answers) {
      if (!a) continue;
      answered++;
      for (const s of a) statuses[s]++;
    }
    const ok = statuses.stored + statuses.stale > 0 || (targets.length === 0 && local === 'stored');
    return { ok, local, contacted: targets.length, answered, statuses };
  }
}
