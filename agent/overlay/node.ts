// The agent's overlay endpoint: one KademliaNode on the agent's shared UDP socket, speaking the wire
// format of codec.ts, holding a RecordStore, publishing and fetching signed records.
//
//   socket ──(first byte 0xD2, daemon demux)──> handleDatagram(msg, from)
//        parse once (malformed: counted) ─> sender NodeID = H(key)? (else counted, dropped)
//        ├─ PING / FIND_NODE / FETCH and their answers ──> KademliaNode (its RPC, via the codec adapter)
//        │     FETCH = Kademlia's FIND_VALUE: resource id + record kind; answered from the RecordStore
//        ├─ STORE / LEAVE and their answers ──────────────> a second Rpc (same retransmission rules)
//        │     STORE: every record parsed, checked against the message's resource/kind, put() in the
//        │     store (signature, ownership, puzzle, sequence, first-come); one status per record
//        └─ ATTACH, routed messages (Via/destinations)  ──> counted as unsupported (NAT traversal issue)
//
//   publish(bytes): lookup of the resource id (FIND_NODE) -> STORE to the k closest (and a local copy);
//                   own records are republished every DHT_REPUBLISH_INTERVAL_MS (re-signed when we made them)
//   fetch(id, kind): α-parallel iterative FETCH that goes on until `fetchQuorum` holders answered (or it
//                   converged), every record verified (verifyRecord) before use, highest sequence per owner
//
// Why two Rpc instances: KademliaNode's RPC only knows PING/FIND_NODE/FIND_VALUE and its handler is its own.
// Both share the socket; answers are routed to the right one by message code, never by guessing.
//
// How FETCH's record kind crosses KademliaNode (whose FIND_VALUE has only a key): the kind travels with the
// key object itself (a WeakMap keyed by the Uint8Array, which lookup() and KademliaNode pass through
// unchanged), outbound from fetch() to the codec, inbound from the codec to getValue().
//
// Trust: messages are not signed; the sender's NodeID must be the hash of its key (idMatchesKey), contacts
// in answers likewise, and only nodes that answered us enter the routing table (KademliaNode). The wire
// format has no field for a sender's puzzle nonce, so the NodeID puzzle is enforced on records only
// (verifyRecord), not on routing-table admission.

import {
  BUCKET_REFRESH_INTERVAL_MS, DHT_REPLICATE_INTERVAL_MS, DHT_REPUBLISH_INTERVAL_MS, IPV4_MAX_CLAIM_ATTEMPT,
  KADEMLIA_ALPHA, KADEMLIA_K, OVERLAY_DEFAULT_TTL, OVERLAY_MAX_DATAGRAM, OVERLAY_MAX_RECORDS, PUZZLE_DEFAULT_DIFFICULTY,
} from '../constants.js';
import { nodeIdFromPublicKey } from '../idloc/addresses.js';
import type { Identity } from '../idloc/identity.js';
import { endpointKey, type DatagramSocket, type Endpoint } from '../nat/socket.js';
import {
  encodedLength, fromSocketEndpoint, idMatchesKey, marshalOverlayMessage, parseOverlayMessage, toSocketEndpoint, trimToFit,
  METHOD_FETCH, METHOD_FIND_NODE, METHOD_LEAVE, METHOD_PING, METHOD_STORE,
  type Body, type OverlayContact, type OverlayEndpoint, type OverlayMessage, type Sender,
} from './codec.js';
import { KademliaNode, type DhtRequest, type DhtResponse, type JoinResult, type NodeRef } from './kademlia.js';
import { lookup } from './lookup.js';
import { solvePuzzle } from './puzzle.js';
import {
  CandidateType, RecordKind, bytesEqual, createIpv4ClaimRecord, createLocatorRecord, createNameRecord, ipv4ResourceId,
  isRecordKind, isTombstone, isUniqueKind, marshalRecord, nameResourceId, newestPerOwner, normalizeName,
  parseRecord, recordExpiresAt, verifyRecord,
  type Candidate, type Ipv4ClaimRecord, type LocatorRecord, type NameRecord, type OverlayRecord, type RecordSigner,
  type RecordVerdict,
} from './records.js';
import { idsEqual, type ContactInfo } from './routing-table.js';
import { Rpc, type Decoded, type RpcCodec, type RpcStats } from './rpc.js';
import { realScheduler, type Scheduler, type TimerHandle } from './scheduler.js';
import { RecordStore, type PutResult, type StoreStats } from './store.js';

// ---- STORE statuses ---------------------------------------------------------------------------------

/** The u8 status a STORE answer carries per record (0 = stored; the others are store.ts's PutResult). */
export const STORE_STATUS: Record<PutResult, number> = {
  stored: 0, stale: 1, forged: 2, taken: 3, expired: 4, invalid: 5, full: 6,
};
const STATUS_NAMES: PutResult[] = ['stored', 'stale', 'forged', 'taken', 'expired', 'invalid', 'full'];

/** PutResult of a STORE answer's status; unknown codes read as 'invalid'. */
export function putResultOfStatus(s: number): PutResult {
  return STATUS_NAMES[s] ?? 'invalid';
}

// ---- public types -----------------------------------------------------------------------------------

export interface OverlayNodeOptions {
  socket: DatagramSocket;
  identity: Identity;
  /** Proof of work for identity's key; solved at construction (synchronously) when absent. */
  puzzleNonce?: bigint;
  /** Bits every node of this overlay requires (records from keys without a proof are refused). */
  puzzleDifficulty?: number;
  scheduler?: Scheduler;
  /** Wall clock for records (Unix ms); the scheduler's clock is only for timeouts. */
  now?: () => number;
  k?: number;
  alpha?: number;
  /** FETCH lookups go on until this many nodes returned records (or the lookup converged). */
  fetchQuorum?: number;
  republishIntervalMs?: number;
  /** Storers re-send held records to the current k closest this often; 0 disables. */
  replicateIntervalMs?: number;
  /** How often idle buckets are looked for (each is refreshed after BUCKET_REFRESH_INTERVAL_MS idle). */
  refreshCheckIntervalMs?: number;
  store?: RecordStore;
}

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

export type RegisterResult =
  | { ok: true; record: NameRecord; publish: PublishResult }
  | { ok: false; reason: 'invalid' | 'taken' | 'unreachable'; holder?: Uint8Array };

export interface LookupStats {
  count: number;
  /** Fetches that found no record / node lookups that found nobody. */
  empty: number;
  p50LatencyMs: number;
  p90LatencyMs: number;
}

export interface OverlayNodeStats {
  routingTableSize: number;
  storedRecords: number;
  store: StoreStats;
  ownRecords: number;
  lookups: LookupStats;
  /** Datagrams handed to handleDatagram, and those that did not parse. */
  datagrams: number;
  malformed: number;
  /** Messages, contacts and records refused, by reason (see `reject` calls in node.ts). */
  rejected: Record<string, number>;
  rpc: RpcStats;
  storeRpc: RpcStats;
  /** Our address as the last PONG said the other side saw it (NAT mapping), if any. */
  observed: Endpoint | undefined;
}

/** What a FETCH answer holder gave: raw record bytes, plus contacts so the lookup can go on. */
export interface FetchValue {
  records: Uint8Array[];
  contacts: ContactInfo[];
}

// ---- the second RPC: STORE and LEAVE ----------------------------------------------------------------

type ExtraRequest =
  | { type: 'store'; sender: NodeRef; resource: Uint8Array; recordKind: number; records: Uint8Array[] }
  | { type: 'leave'; sender: NodeRef };
type ExtraResponse =
  | { type: 'store-answer'; sender: NodeRef; statuses: number[] }
  | { type: 'leave-answer'; sender: NodeRef }
  | { type: 'error'; sender: NodeRef; code: number; reason: string };

/** What travels through both Rpc instances: the bytes, and the message already parsed (incoming). */
interface Wire {
  bytes: Uint8Array;
  msg?: OverlayMessage;
}

interface OwnRecord {
  bytes: Uint8Array;
  record: OverlayRecord;
  /** Re-create (re-sign) the record with a fresh time and sequence; absent: re-send the bytes until expiry. */
  remake?: (now: number) => OverlayRecord;
}

const copy = (b: Uint8Array): Uint8Array => Uint8Array.from(b);
const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
const LATENCY_SAMPLES = 1024;
const VERIFIED_CACHE_MAX = 4096;

function emptyStatuses(): Record<PutResult, number> {
  return { stored: 0, stale: 0, forged: 0, taken: 0, expired: 0, invalid: 0, full: 0 };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

/** Candidates of a locator from socket endpoints: host candidates, earlier ones preferred. */
export function hostCandidates(endpoints: Endpoint[]): Candidate[] {
  return endpoints.map((e, i) => ({
    address: e.address, port: e.port, type: CandidateType.Host,
    priority: ((126 << 24) >>> 0) + ((0xffff - Math.min(i, 0xffff)) << 8) + 255,
  }));
}

export class OverlayNode {
  readonly kad: KademliaNode<FetchValue, Wire>;
  readonly store: RecordStore;
  readonly identity: Identity;
  readonly puzzleNonce: bigint;
  readonly puzzleDifficulty: number;
  private readonly socket: DatagramSocket;
  private readonly scheduler: Scheduler;
  private readonly clock: () => number;
  private readonly k: number;
  private readonly alpha: number;
  private readonly fetchQuorum: number;
  private readonly self: Sender;
  private readonly extra: Rpc<ExtraRequest, ExtraResponse, Wire>;
  /** Record kind of a FETCH key (see the top of the file). */
  private readonly fetchKinds = new WeakMap<Uint8Array, number>();
  /** The request being handled right now (KademliaNode answers synchronously): its code and source. */
  private ctx: { txid: bigint; method: number; from: Endpoint } | undefined;
  private readonly own = new Map<string, OwnRecord>();
  /** Record bytes (latin1) that verified, with their expiry: saves an Ed25519 check per repeat. */
  private readonly verified = new Map<string, number>();
  private readonly rejected: Record<string, number> = {};
  private readonly latencies: number[] = [];
  private lookupCount = 0;
  private lookupEmpty = 0;
  private datagrams = 0;
  private malformed = 0;
  private observed: Endpoint | undefined;
  private readonly timers: TimerHandle[] = [];
  private closed = false;

  constructor(o: OverlayNodeOptions) {
    this.socket = o.socket;
    this.identity = o.identity;
    this.scheduler = o.scheduler ?? realScheduler;
    this.clock = o.now ?? Date.now;
    this.k = o.k ?? KADEMLIA_K;
    this.alpha = o.alpha ?? KADEMLIA_ALPHA;
    this.fetchQuorum = o.fetchQuorum ?? 3;
    this.puzzleDifficulty = o.puzzleDifficulty ?? PUZZLE_DEFAULT_DIFFICULTY;
    this.puzzleNonce = o.puzzleNonce ?? solvePuzzle(o.identity.publicKey, this.puzzleDifficulty);
    this.store = o.store ?? new RecordStore({ puzzleDifficulty: this.puzzleDifficulty });
    this.self = { nodeId: o.identity.nodeId, publicKey: o.identity.publicKey };
    const send = (w: Wire, to: Endpoint) => { if (!this.closed) this.socket.send(w.bytes, to); };
    this.kad = new KademliaNode<FetchValue, Wire>({
      nodeId: o.identity.nodeId, publicKey: o.identity.publicKey, scheduler: this.scheduler, k: this.k, alpha: this.alpha,
      send, codec: this.kadCodec(), getValue: (key) => this.localValue(key),
      acceptContact: (c) => idMatchesKey(c) && !idsEqual(c.nodeId, this.self.nodeId),
    });
    this.extra = new Rpc<ExtraRequest, ExtraResponse, Wire>({
      send, codec: this.extraCodec(), scheduler: this.scheduler, handler: (req, from) => this.handleExtra(req, from),
    });
    this.every(o.republishIntervalMs ?? DHT_REPUBLISH_INTERVAL_MS, () => this.housekeeping());
    const replicate = o.replicateIntervalMs ?? DHT_REPLICATE_INTERVAL_MS;
    if (replicate > 0) this.every(replicate, () => this.replicate());
    this.every(o.refreshCheckIntervalMs ?? Math.floor(BUCKET_REFRESH_INTERVAL_MS / 4), () => { void this.kad.refreshIdle(); });
  }

  get nodeId(): Uint8Array { return this.self.nodeId; }

  /** The signer of this node's own records. */
  get signer(): RecordSigner {
    return { privateKey: this.identity.privateKey, publicKey: this.identity.publicKey, puzzleNonce: this.puzzleNonce };
  }

  // ---- datagrams ----------------------------------------------------------------------------------

  /** Every datagram whose first byte is 0xD2. Never throws; anything wrong is counted. */
  handleDatagram(msg: Uint8Array, from: Endpoint): void {
    if (this.closed) return;
    this.datagrams++;
    try {
      const m = parseOverlayMessage(msg);
      if (!m) { this.malformed++; return; }
      if (!idMatchesKey(m.sender)) { this.reject('sender-id-mismatch'); return; }
      if (idsEqual(m.sender.nodeId, this.self.nodeId)) { this.reject('sender-is-self'); return; }
      if (m.via.length > 0 || m.dest.length > 0) { this.reject('routed-unsupported'); return; }
      const wire: Wire = { bytes: msg, msg: m };
      switch (m.kind) {
        case 'ping': case 'find-node': case 'fetch':
          this.ctx = { txid: m.txid, method: m.kind === 'ping' ? METHOD_PING : m.kind === 'fetch' ? METHOD_FETCH : METHOD_FIND_NODE, from };
          try { this.kad.onMessage(wire, from); } finally { this.ctx = undefined; }
          return;
        case 'pong': case 'find-node-answer': case 'fetch-answer':
          this.kad.onMessage(wire, from);
          return;
        case 'store': case 'store-answer': case 'leave': case 'leave-answer':
          this.extra.onMessage(wire, from);
          return;
        case 'error':
          if (m.method === METHOD_STORE || m.method === METHOD_LEAVE) this.extra.onMessage(wire, from);
          else this.reject('error-answer'); // we never send these for PING/FIND_NODE/FETCH; the request times out
          return;
        default: // attach, attach-answer: the NAT traversal layer will take these
          this.reject('unsupported-method');
      }
    } catch {
      this.reject('internal-error');
    }
  }

  // ---- membership ---------------------------------------------------------------------------------

  /** Join through any of the bootstraps; none: this node starts a new overlay (ok: false, nothing to join). */
  join(bootstraps: Endpoint[]): Promise<JoinResult> {
    return this.kad.join(bootstraps);
  }

  /** Tell the routing-table contacts we are going (LEAVE, one try each, answers awaited briefly). Call
   *  close() afterwards. Returns how many acknowledged. */
  async leave(): Promise<number> {
    const contacts = this.kad.table.all();
    const answers = await Promise.all(contacts.map((c) =>
      this.extra.request(c.endpoint, { type: 'leave', sender: this.self }, { maxTries: 1 })));
    return answers.filter((r) => r.ok && r.value.type === 'leave-answer').length;
  }

  /** Stop timers and RPCs; later datagrams are ignored. Does not close the shared socket. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) t.cancel();
    this.timers.length = 0;
    this.kad.close();
    this.extra.close();
  }

  // ---- publishing ---------------------------------------------------------------------------------

  /** STORE a signed record at the k nodes closest to its resource id (found by a lookup) and keep a local
   *  copy; kept for republishing unless `republish` is false. Throws RangeError on unparseable bytes. */
  async publish(bytes: Uint8Array, opts: { republish?: boolean } = {}): Promise<PublishResult> {
    const record = parseRecord(bytes);
    if (!record) throw new RangeError('publish: not a record');
    if (opts.republish !== false) this.own.set(this.ownKey(record), { bytes: copy(bytes), record });
    return this.storeEverywhere(record, bytes);
  }

  /** STORE records directly at one node (no lookup): replication, tests. undefined if it did not answer. */
  async storeAt(to: Endpoint, records: Uint8Array[]): Promise<PutResult[] | undefined> {
    const first = records[0] ? parseRecord(records[0]) : undefined;
    if (!first) throw new RangeError('storeAt: the first record does not parse');
    const r = await this.extra.request(to, {
      type: 'store', sender: this.self, resource: first.resourceId, recordKind: first.kind, records,
    });
    if (!r.ok || r.value.type !== 'store-answer') return undefined;
    return r.value.statuses.map(putResultOfStatus);
  }

  /** Publish the locator record (these endpoints as host candidates) and claim the IPv4 overlay address
   *  (re-deriving with attempt + 1 while another key holds it); both are republished. */
  async publishIdentity(identity: Identity, endpoints: Endpoint[] | Candidate[], flags = 0): Promise<PublishIdentityResult> {
    const signer: RecordSigner = idsEqual(identity.nodeId, this.self.nodeId) ? this.signer
      : { privateKey: identity.privateKey, publicKey: identity.publicKey, puzzleNonce: solvePuzzle(identity.publicKey, this.puzzleDifficulty) };
    const candidates: Candidate[] = endpoints.length > 0 && 'type' in endpoints[0]!
      ? (endpoints as Candidate[]) : hostCandidates(endpoints as Endpoint[]);
    const remakeLocator = (now: number) => createLocatorRecord(signer, { flags, candidates, rendezvous: [] }, { now });
    const locator = await this.publishOwn(remakeLocator);
    for (let attempt = 0; attempt <= IPV4_MAX_CLAIM_ATTEMPT; attempt++) {
      const remake = (now: number) => createIpv4ClaimRecord(signer, attempt, { now });
      const probe = remake(this.clock());
      const held = (await this.fetch(probe.resourceId, RecordKind.Ipv4Claim))
        .find((r) => !bytesEqual(r.owner, identity.publicKey));
      if (held) continue;
      const claim = await this.publishOwn(remake, probe);
      if (claim.local === 'taken' || claim.statuses.taken > 0) { this.own.delete(this.ownKey(probe)); continue; }
      return { locator, ipv4: (probe as Ipv4ClaimRecord).value!.ipv4, attempt, claim };
    }
    return { locator, ipv4: undefined, attempt: -1, claim: undefined };
  }

  /** Register `name` → this node (P2PNS): refused if another key holds it. Republished while we run. */
  async registerName(name: string): Promise<RegisterResult> {
    const n = normalizeName(name);
    if (n === undefined) return { ok: false, reason: 'invalid' };
    const holder = (await this.fetch(nameResourceId(n), RecordKind.Name)).find((r) => !bytesEqual(r.owner, this.self.publicKey));
    if (holder) return { ok: false, reason: 'taken', holder: nodeIdFromPublicKey(holder.owner) };
    const remake = (now: number) => createNameRecord(this.signer, n, { now });
    const first = remake(this.clock());
    const publish = await this.publishOwn(remake, first);
    if (publish.local === 'taken' || publish.statuses.taken > 0) {
      this.own.delete(this.ownKey(first));
      return { ok: false, reason: 'taken' };
    }
    if (!publish.ok) return { ok: false, reason: 'unreachable' };
    return { ok: true, record: first as NameRecord, publish };
  }

  // ---- fetching -----------------------------------------------------------------------------------

  /** Iterative FETCH of (resource, kind): verified, live records, the highest sequence per owner, tombstones
   *  dropped. For first-come kinds, the owner most holders agree on comes first (then the oldest). */
  async fetch(resourceId: Uint8Array, kind: RecordKind): Promise<OverlayRecord[]> {
    const key = copy(resourceId);
    this.fetchKinds.set(key, kind);
    const now = this.clock();
    const found: OverlayRecord[] = [];
    const votes = new Map<string, number>();
    const take = (recs: Iterable<OverlayRecord>) => {
      const owners = new Set<string>();
      for (const r of recs) { found.push(r); owners.add(hex(r.owner)); }
      for (const o of owners) votes.set(o, (votes.get(o) ?? 0) + 1);
    };
    const local = this.store.getAll(key, kind, now);
    let holders = 0;
    if (local.length > 0) { take(local); holders++; }
    this.kad.table.touch(key);
    const self = this.kad.self;
    const res = await lookup<never>({
      target: key, seeds: this.kad.table.closest(key, this.k), scheduler: this.scheduler, k: this.k, alpha: this.alpha,
      selfId: this.self.nodeId, stopWhen: () => holders >= this.fetchQuorum,
      query: async (c, t) => {
        const r = await this.kad.call(c, { type: 'find_value', sender: self, key: t });
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
    this.noteLookup(res.latencyMs, out.length === 0);
    return out;
  }

  /** The locator record of a NodeID (its owner key hashes to that NodeID). */
  async resolveNodeId(nodeId: Uint8Array): Promise<LocatorRecord | undefined> {
    const recs = await this.fetch(nodeId, RecordKind.Locator);
    return recs.find((r): r is LocatorRecord =>
      r.kind === RecordKind.Locator && bytesEqual(nodeIdFromPublicKey(r.owner), nodeId)) ;
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

  /** The name record for `name` (its value holds the owner's NodeID), or undefined. */
  async resolveName(name: string): Promise<NameRecord | undefined> {
    const n = normalizeName(name);
    if (n === undefined) return undefined;
    const recs = await this.fetch(nameResourceId(n), RecordKind.Name);
    return recs.find((r): r is NameRecord => r.kind === RecordKind.Name && r.value?.name === n);
  }

  // ---- status -------------------------------------------------------------------------------------

  stats(): OverlayNodeStats {
    const sorted = this.latencies.slice().sort((a, b) => a - b);
    const store = this.store.stats();
    return {
      routingTableSize: this.kad.table.size,
      storedRecords: store.records,
      store,
      ownRecords: this.own.size,
      lookups: { count: this.lookupCount, empty: this.lookupEmpty, p50LatencyMs: percentile(sorted, 0.5), p90LatencyMs: percentile(sorted, 0.9) },
      datagrams: this.datagrams,
      malformed: this.malformed + this.kad.rpc.stats.malformed + this.extra.stats.malformed,
      rejected: { ...this.rejected },
      rpc: { ...this.kad.rpc.stats },
      storeRpc: { ...this.extra.stats },
      observed: this.observed,
    };
  }

  // ---- internals: publishing ----------------------------------------------------------------------

  private async publishOwn(remake: (now: number) => OverlayRecord, first?: OverlayRecord): Promise<PublishResult> {
    const record = first ?? remake(this.clock());
    const bytes = marshalRecord(record);
    this.own.set(this.ownKey(record), { bytes, record, remake });
    return this.storeEverywhere(record, bytes);
  }

  private async storeEverywhere(record: OverlayRecord, bytes: Uint8Array): Promise<PublishResult> {
    const local = this.store.put(record, this.clock());
    const statuses = emptyStatuses();
    if (local === 'forged' || local === 'invalid' || local === 'expired' || local === 'taken') {
      return { ok: false, local, contacted: 0, answered: 0, statuses };
    }
    const res = await this.kad.findNode(record.resourceId);
    this.noteLookup(res.latencyMs, res.contacts.length === 0);
    const targets = res.contacts.slice(0, this.k);
    const answers = await Promise.all(targets.map((c) => this.storeAt(c.endpoint, [bytes]).catch(() => undefined)));
    let answered = 0;
    for (const a of answers) {
      if (!a) continue;
      answered++;
      for (const s of a) statuses[s]++;
    }
    const ok = statuses.stored + statuses.stale > 0 || (targets.length === 0 && local === 'stored');
    return { ok, local, contacted: targets.length, answered, statuses };
  }

  private ownKey(r: OverlayRecord): string {
    return `${r.kind}:${hex(r.resourceId)}:${hex(r.owner)}`;
  }

  private every(ms: number, fn: () => void): void {
    if (!(ms > 0)) return;
    const slot = this.timers.length;
    const arm = () => {
      this.timers[slot] = this.scheduler.setTimer(ms, () => {
        if (this.closed) return;
        try { fn(); } catch { this.reject('internal-error'); }
        arm();
      });
    };
    arm();
  }

  /** Republish own records (re-signed when we can), sweep the store and the verification cache. */
  private housekeeping(): void {
    const now = this.clock();
    this.store.sweep(now);
    for (const [k, v] of this.verified) if (v <= now) this.verified.delete(k);
    for (const [key, own] of this.own) {
      if (own.remake) {
        own.record = own.remake(now);
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
  private replicate(): void {
    const now = this.clock();
    const byResource = new Map<string, OverlayRecord[]>();
    for (const r of this.store.records(now)) {
      if (this.own.has(this.ownKey(r))) continue;
      const k = `${r.kind}:${hex(r.resourceId)}`;
      const list = byResource.get(k);
      if (list) list.push(r);
      else byResource.set(k, [r]);
    }
    for (const recs of byResource.values()) {
      void (async () => {
        const res = await this.kad.findNode(recs[0]!.resourceId);
        const bytes = recs.slice(0, OVERLAY_MAX_RECORDS).map(marshalRecord);
        await Promise.all(res.contacts.map((c) => this.storeAt(c.endpoint, bytes).catch(() => undefined)));
      })().catch(() => undefined);
    }
  }

  private noteLookup(latencyMs: number, empty: boolean): void {
    this.lookupCount++;
    if (empty) this.lookupEmpty++;
    if (this.latencies.length >= LATENCY_SAMPLES) this.latencies.shift();
    this.latencies.push(latencyMs);
  }

  private reject(reason: string): void {
    this.rejected[reason] = (this.rejected[reason] ?? 0) + 1;
  }

  // ---- internals: records -------------------------------------------------------------------------

  /** Records of a FETCH answer that parse, are for (resource, kind) and verify; the rest are counted. */
  private verifyFetched(list: Uint8Array[], resource: Uint8Array, kind: number): OverlayRecord[] {
    const now = this.clock();
    const out: OverlayRecord[] = [];
    for (const b of list) {
      const r = parseRecord(b);
      if (!r) { this.reject('fetched-unparseable'); continue; }
      if (r.kind !== kind || !bytesEqual(r.resourceId, resource)) { this.reject('fetched-wrong-resource'); continue; }
      const v = this.verifyCached(r, b, now);
      if (v !== 'valid') { this.reject(`fetched-${v}`); continue; }
      out.push(r);
    }
    return out;
  }

  private verifyCached(r: OverlayRecord, bytes: Uint8Array, now: number): RecordVerdict {
    const key = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
    const exp = this.verified.get(key);
    if (exp !== undefined && exp > now) return 'valid'; // verified before (future-created ones never enter)
    const v = verifyRecord(r, now, { puzzleDifficulty: this.puzzleDifficulty });
    if (v === 'valid') {
      if (this.verified.size >= VERIFIED_CACHE_MAX) this.verified.delete(this.verified.keys().next().value!);
      this.verified.set(key, recordExpiresAt(r));
    }
    return v;
  }

  /** FIND_VALUE's local answer: our records at (key, kind), tombstones included, and contacts. */
  private localValue(key: Uint8Array): FetchValue | undefined {
    const kind = this.fetchKinds.get(key);
    if (kind === undefined || !isRecordKind(kind)) return undefined;
    const recs = this.store.getAll(key, kind, this.clock());
    if (recs.length === 0) return undefined;
    return { records: recs.slice(0, OVERLAY_MAX_RECORDS).map(marshalRecord), contacts: this.kad.table.closest(key, this.k) };
  }

  private handleExtra(req: ExtraRequest, from: Endpoint): ExtraResponse | undefined {
    if (req.type === 'leave') {
      // Messages are unsigned: only a LEAVE from the address we know the contact at removes it, so a third
      // party cannot knock contacts out of our table by naming them.
      const c = this.kad.table.get(req.sender.nodeId);
      if (c && endpointKey(c.endpoint) === endpointKey(from)) this.kad.table.remove(req.sender.nodeId);
      else this.reject('leave-unknown-sender');
      return { type: 'leave-answer', sender: this.self };
    }
    this.learn(req.sender, from);
    const now = this.clock();
    const statuses = req.records.map((b) => {
      const r = parseRecord(b);
      let result: PutResult;
      if (!r || r.kind !== req.recordKind || !bytesEqual(r.resourceId, req.resource)) {
        this.store.putBytes(new Uint8Array(0), now); // counted by the store as 'invalid'
        result = 'invalid';
      } else {
        result = this.store.put(r, now);
      }
      if (result !== 'stored') this.reject(`store-${result}`);
      return STORE_STATUS[result];
    });
    return { type: 'store-answer', sender: this.self, statuses };
  }

  private learn(sender: NodeRef, from: Endpoint): void {
    if (!idMatchesKey(sender) || idsEqual(sender.nodeId, this.self.nodeId)) return;
    this.kad.table.observe({ nodeId: sender.nodeId, publicKey: sender.publicKey, endpoint: from });
  }

  // ---- internals: codec adapters ------------------------------------------------------------------

  private message(txid: bigint, body: Body): Wire {
    const m: OverlayMessage = { ttl: OVERLAY_DEFAULT_TTL, txid, via: [], dest: [], sender: this.self, ...body };
    return { bytes: marshalOverlayMessage(m) };
  }

  /** An answer that may carry contacts and records: drop the farthest contacts, then records, to fit. */
  private fitted(txid: bigint, body: Extract<Body, { kind: 'find-node-answer' | 'fetch-answer' }>): Wire {
    const m: OverlayMessage = { ttl: OVERLAY_DEFAULT_TTL, txid, via: [], dest: [], sender: this.self, ...body };
    let t = trimToFit(m);
    if (!t && m.kind === 'fetch-answer') {
      const f = { ...m, contacts: [], records: m.records.slice() };
      while (f.records.length > 0 && encodedLength(f) > OVERLAY_MAX_DATAGRAM) f.records.pop();
      t = f;
    }
    return { bytes: marshalOverlayMessage(t ?? { ...m, kind: 'find-node-answer', contacts: [] }) };
  }

  private toWireContacts(list: ContactInfo[]): OverlayContact[] {
    const out: OverlayContact[] = [];
    for (const c of list) {
      const e = fromSocketEndpoint(c.endpoint);
      if (e) out.push({ nodeId: c.nodeId, publicKey: c.publicKey, endpoints: [e] });
    }
    return out;
  }

  private fromWireContacts(list: OverlayContact[]): ContactInfo[] {
    const out: ContactInfo[] = [];
    for (const c of list) {
      if (!idMatchesKey(c)) { this.reject('contact-id-mismatch'); continue; }
      const e: OverlayEndpoint | undefined = c.endpoints[0];
      if (!e) { this.reject('contact-no-endpoint'); continue; }
      out.push({ nodeId: copy(c.nodeId), publicKey: copy(c.publicKey), endpoint: toSocketEndpoint(e) });
    }
    return out;
  }

  private senderOf(m: OverlayMessage): NodeRef {
    return { nodeId: copy(m.sender.nodeId), publicKey: copy(m.sender.publicKey) };
  }

  private kadCodec(): RpcCodec<DhtRequest, DhtResponse<FetchValue>, Wire> {
    return {
      encodeRequest: (txid, req) => {
        switch (req.type) {
          case 'ping': return this.message(txid, { kind: 'ping' });
          case 'find_node': return this.message(txid, { kind: 'find-node', target: req.target });
          case 'find_value':
            return this.message(txid, { kind: 'fetch', resource: req.key, recordKind: this.fetchKinds.get(req.key) ?? 0 });
        }
      },
      encodeResponse: (txid, res) => {
        const ctx = this.ctx && this.ctx.txid === txid ? this.ctx : undefined;
        switch (res.type) {
          case 'pong': {
            const observed = ctx ? fromSocketEndpoint(ctx.from) : undefined;
            return this.message(txid, observed ? { kind: 'pong', observed } : { kind: 'pong' });
          }
          case 'nodes':
            return ctx?.method === METHOD_FETCH
              ? this.fitted(txid, { kind: 'fetch-answer', records: [], contacts: this.toWireContacts(res.contacts) })
              : this.fitted(txid, { kind: 'find-node-answer', contacts: this.toWireContacts(res.contacts) });
          case 'value':
            return this.fitted(txid, {
              kind: 'fetch-answer', records: res.value.records, contacts: this.toWireContacts(res.value.contacts),
            });
        }
      },
      decode: (w): Decoded<DhtRequest, DhtResponse<FetchValue>> | undefined => {
        const m = w.msg ?? parseOverlayMessage(w.bytes);
        if (!m) return undefined;
        const sender = this.senderOf(m);
        switch (m.kind) {
          case 'ping': return { kind: 'request', txid: m.txid, body: { type: 'ping', sender } };
          case 'find-node': return { kind: 'request', txid: m.txid, body: { type: 'find_node', sender, target: copy(m.target) } };
          case 'fetch': {
            const key = copy(m.resource);
            this.fetchKinds.set(key, m.recordKind);
            return { kind: 'request', txid: m.txid, body: { type: 'find_value', sender, key } };
          }
          case 'pong':
            if (m.observed) this.observed = toSocketEndpoint(m.observed);
            return { kind: 'response', txid: m.txid, body: { type: 'pong', sender } };
          case 'find-node-answer':
            return { kind: 'response', txid: m.txid, body: { type: 'nodes', sender, contacts: this.fromWireContacts(m.contacts) } };
          case 'fetch-answer': {
            const contacts = this.fromWireContacts(m.contacts);
            if (m.records.length === 0) return { kind: 'response', txid: m.txid, body: { type: 'nodes', sender, contacts } };
            return {
              kind: 'response', txid: m.txid,
              body: { type: 'value', sender, value: { records: m.records.map(copy), contacts }, contacts },
            };
          }
          default: return undefined;
        }
      },
    };
  }

  private extraCodec(): RpcCodec<ExtraRequest, ExtraResponse, Wire> {
    return {
      encodeRequest: (txid, req) => req.type === 'leave'
        ? this.message(txid, { kind: 'leave' })
        : this.message(txid, { kind: 'store', resource: req.resource, recordKind: req.recordKind, records: req.records }),
      encodeResponse: (txid, res) => {
        switch (res.type) {
          case 'store-answer': return this.message(txid, { kind: 'store-answer', statuses: res.statuses });
          case 'leave-answer': return this.message(txid, { kind: 'leave-answer' });
          case 'error': return this.message(txid, { kind: 'error', method: METHOD_STORE, code: res.code, reason: res.reason });
        }
      },
      decode: (w): Decoded<ExtraRequest, ExtraResponse> | undefined => {
        const m = w.msg ?? parseOverlayMessage(w.bytes);
        if (!m) return undefined;
        const sender = this.senderOf(m);
        switch (m.kind) {
          case 'store':
            return {
              kind: 'request', txid: m.txid,
              body: { type: 'store', sender, resource: copy(m.resource), recordKind: m.recordKind, records: m.records.map(copy) },
            };
          case 'leave': return { kind: 'request', txid: m.txid, body: { type: 'leave', sender } };
          case 'store-answer': return { kind: 'response', txid: m.txid, body: { type: 'store-answer', sender, statuses: m.statuses } };
          case 'leave-answer': return { kind: 'response', txid: m.txid, body: { type: 'leave-answer', sender } };
          case 'error': return { kind: 'response', txid: m.txid, body: { type: 'error', sender, code: m.code, reason: m.reason } };
          default: return undefined;
        }
      },
    };
  }
}

/** For logs and the CLI: "host:port" of a locator's best candidate. */
export function locatorEndpoint(r: LocatorRecord): Endpoint | undefined {
  const c = r.value?.candidates.slice().sort((a, b) => b.priority - a.priority)[0];
  return c ? { address: c.address, port: c.port } : undefined;
}
