// The agent's use of the overlay: join through the bootstraps (none: this node starts a new overlay),
// publish this host's locator and claim its IPv4 address, keep the locator current when the host's
// addresses change, and answer the lookups Discovery and the CLI (register, resolve) ask for.
//
// The IPv4 claim is first-come: when another key holds our address, the overlay layer re-derives it with
// the next attempt; the attempt we hold is kept in identity.json (by the caller's onIpv4Changed), and
// tried first on the next start so the address survives restarts.
import type { Logger } from 'pino';
import type { AttachHandler } from './overlay/node.js';
import {
  formatIpv4, formatIpv6, ipv6FromNodeId, nodeIdFromPublicKey, parseIpv4, parseIpv6, publicKeyOwnsIpv6,
} from './idloc/addresses.js';
import type { Identity } from './idloc/identity.js';
import { SERVICE_PROVIDERS_CHECKED_MAX } from './base/constants.js';
import { ownerLivesAt, type ProviderCheck } from './nat/service-proof.js';
import { isOverlayIpv4, isOverlayIpv6 } from './idloc/ip.js';
import { endpointKey, type DatagramSocket, type Endpoint } from './conn/socket.js';
import { OverlayNode, locatorEndpoint } from './overlay/node.js';
import {
  RecordKind, createServiceRecord, marshalRecord, recordExpiresAt, type Candidate, type LocatorRecord,
} from './overlay/records.js';
import type { FoundPeer } from './discovery.js';
import { NETCHECK_MAX_SERVERS } from './base/constants.js';
import { normalizeName, serviceResourceId } from './overlay/names.js';
import { fromHex, hex } from './base/bytes.js';
import type { KeptNames } from './names-state.js';
import type { NameLookup } from './dns/service.js';
import { familyOf } from './base/ip-text.js';

export interface AgentOverlayOptions {
  socket: DatagramSocket;
  identity: Identity;
  bootstraps: Endpoint[];
  /** This host's candidates (host, and server-reflexive once netcheck found one), published in the locator
   *  (asked again when addresses change). */
  candidates: () => Endpoint[] | Candidate[];
  /** An ATTACH for us (NAT traversal): the answer blob, or undefined to refuse. */
  onAttach?: AttachHandler;
  logger: Logger;
  puzzleDifficulty?: number;
  /** The puzzle's solution for our key at that difficulty (kept in the state dir), to skip solving it. */
  puzzleNonce?: bigint;
  /** The IPv4 claim settled on another derivation than identity.ipv4Attempt. */
  onIpv4Changed: (attempt: number, ipv4: number) => void | Promise<void>;
  /** Names registered before, kept in the state dir: registered again at start, and `register` adds to them. */
  keptNames?: KeptNames;
}

export interface OverlayStatus {
  joined: boolean;
  ipv4Claimed: boolean;
  bootstraps: string[];
  routingTableSize: number;
  storedRecords: number;
  ownRecords: number;
  lookups: { count: number; empty: number; p50LatencyMs: number; p90LatencyMs: number };
  /** The nodes this host keeps keepalives to because it is behind a NAT (empty otherwise). */
  rendezvous: string[];
  datagrams: number;
  malformed: number;
  rejected: Record<string, number>;
}

export interface ResolveResult {
  query: string;
  name?: string;
  nodeId: string;
  publicKey: string;
  ipv4: string | null;
  ipv6: string;
  candidates: { address: string; port: number; type: number }[];
}

export type RegisterOutcome =
  | { ok: true; name: string; nodeId: string }
  | { ok: false; reason: 'invalid' | 'taken' | 'unreachable' | 'too-many'; holder?: string };

export class AgentOverlay {
  readonly node: OverlayNode;
  private ipv4Claimed = false;
  private closed = false;
  /** The address families of our host candidates, as of the last address change (empty: not known). */
  private families: Set<4 | 6> | undefined;

  constructor(private readonly o: AgentOverlayOptions) {
    this.node = new OverlayNode({
      socket: o.socket, identity: o.identity, reachable: (e) => this.canReach(e),
      ...(o.onAttach ? { onAttach: o.onAttach } : {}),
      ...(o.puzzleDifficulty !== undefined ? { puzzleDifficulty: o.puzzleDifficulty } : {}),
      ...(o.puzzleNonce !== undefined ? { puzzleNonce: o.puzzleNonce } : {}),
    });
  }

  /** Join, then publish the locator and claim the IPv4 address. Resolves when the claim settled. */
  async start(): Promise<void> {
    const log = this.o.logger;
    await this.node.start(this.o.bootstraps);
    if (this.closed) return;
    const id = this.o.identity;
    const r = await this.node.publisher.publishIdentity(id, this.o.candidates(), 0, { preferAttempt: id.ipv4Attempt });
    if (this.closed) return;
    if (r.ipv4 === undefined) {
      log.error('no IPv4 overlay address could be claimed (all derivations taken); IPv6 still works');
      return;
    }
    if (r.attempt !== id.ipv4Attempt) {
      log.warn({ was: formatIpv4(id.ipv4), now: formatIpv4(r.ipv4), attempt: r.attempt }, 'IPv4 overlay address taken by another host; re-derived');
      await this.o.onIpv4Changed(r.attempt, r.ipv4);
    }
    this.ipv4Claimed = true;
    log.info({ ipv4: formatIpv4(r.ipv4), locatorStored: r.locator.ok, routingTable: this.node.stats().routingTableSize }, 'overlay: locator published, IPv4 claimed');
  }

  /** An endpoint of a family we have an address in; anything while we know of none. */
  private canReach(e: Endpoint): boolean {
    this.families ??= new Set(this.o.candidates().filter((c) => !('type' in c) || c.type === 0).map((c) => familyOf(c.address)));
    return this.families.size === 0 || this.families.has(familyOf(e.address));
  }

  /** The host's addresses changed: publish the new candidates. */
  addressesChanged(): void {
    this.families = undefined;
    void this.node.publisher.updateLocator(this.o.candidates()).catch(() => undefined);
  }

  handleDatagram(msg: Uint8Array, from: Endpoint): void {
    this.node.handleDatagram(msg, from);
  }

  // ---- for Discovery --------------------------------------------------------------------------

  async lookupIpv4(ipv4: number): Promise<FoundPeer | undefined> {
    const loc = await this.node.resolver.resolveIpv4(ipv4);
    return loc ? { publicKey: loc.owner, endpoint: locatorEndpoint(loc), ipv4, locator: loc } : undefined;
  }

  async lookupIpv6(ipv6: Uint8Array): Promise<FoundPeer | undefined> {
    const loc = await this.node.resolver.resolveIpv6(ipv6);
    if (!loc || !publicKeyOwnsIpv6(loc.owner, ipv6)) return undefined;
    return { publicKey: loc.owner, endpoint: locatorEndpoint(loc), ipv4: 0, locator: loc };
  }

  /** The key's current locator (a peer that went silent at its old endpoint). */
  locate(publicKey: Uint8Array): Promise<LocatorRecord | undefined> {
    return this.node.resolver.resolveNodeId(nodeIdFromPublicKey(publicKey));
  }

  ipv4Of(publicKey: Uint8Array): Promise<number | undefined> {
    return this.node.resolver.ipv4Of(publicKey);
  }

  /** STUN servers for netcheck: overlay contacts on distinct IP addresses (every agent answers STUN),
   *  bootstraps first; distinct IPs are what tells endpoint-independent mapping from dependent. */
  stunCandidates(): Endpoint[] {
    const out: Endpoint[] = [];
    const seen = new Set<string>();
    for (const e of [...this.o.bootstraps, ...this.node.kad.table.all().map((c) => c.endpoint)]) {
      if (seen.has(e.address) || out.length >= NETCHECK_MAX_SERVERS) continue;
      seen.add(e.address);
      out.push(e);
    }
    return out;
  }

  /** Advertise that this host offers `service` (SEP / RELOAD's TURN-SERVICE: "stun" for every public agent)
   *  at these candidates (for "turn", the server and its vouch: nat/service-proof.ts). Called again before
   *  SERVICE_LIFETIME_S runs out (netcheck's interval). */
  async advertise(service: string, candidates: Candidate[]): Promise<boolean> {
    const rec = createServiceRecord(this.node.signer, service, candidates, { now: Date.now() });
    const r = await this.node.publisher.publish(marshalRecord(rec), { republish: false }).catch(() => undefined);
    return r?.ok === true;
  }

  /** Providers of `service` found in the overlay that prove their record, ours left out: `check` says which
   *  of a record's candidates its owner has shown to be genuine (a TURN vouch); by default, those where the
   *  owner's key lives (nat/service-proof.ts). Records the resource's k closest storers hold come first, most
   *  widely held first (resolver.fetchAtClosest); only then any from our own store, where anyone may have
   *  STOREd one. At most SERVICE_PROVIDERS_CHECKED_MAX records are checked. */
  async providers(service: string, check?: ProviderCheck): Promise<Endpoint[]> {
    const resource = serviceResourceId(service);
    const atClosest = await this.node.resolver.fetchAtClosest(resource, RecordKind.Service);
    // one record per provider: what the storers hold for it, else what our own store does
    const seen = new Set(atClosest.map((r) => hex(r.owner)));
    const ordered = atClosest.concat(this.node.store.getAll(resource, RecordKind.Service, Date.now()).filter((r) => !seen.has(hex(r.owner))));
    const checks: Promise<Endpoint[]>[] = [];
    for (const r of ordered) {
      if (r.kind !== RecordKind.Service || !r.value || idEquals(r.owner, this.o.identity.publicKey)) continue;
      if (checks.length >= SERVICE_PROVIDERS_CHECKED_MAX) break;
      const cands = r.value.endpoints;
      checks.push(Promise.resolve(check ? check(r.owner, cands) : ownerLivesAt(this.node, r.owner, cands)).catch(() => []));
    }
    return (await Promise.all(checks)).flat();
  }

  // ---- for the CLI ----------------------------------------------------------------------------

  /** Register `name` and keep it in the state dir, so that every start registers it again. */
  async register(name: string): Promise<RegisterOutcome> {
    const kept = this.o.keptNames;
    if (kept && !kept.room(name)) return { ok: false, reason: normalizeName(name) === undefined ? 'invalid' : 'too-many' };
    const r = await this.node.publisher.registerName(name);
    if (!r.ok) return { ok: false, reason: r.reason, ...(r.holder ? { holder: hex(r.holder) } : {}) };
    kept?.keep(r.record.value!.name);
    return { ok: true, name: r.record.value!.name, nodeId: hex(nodeIdFromPublicKey(r.record.owner)) };
  }

  /** At start: register again every name kept in the state dir (the publisher republishes them from then
   *  on). A name another key took while we were away is reported and left alone. */
  async registerKeptNames(): Promise<void> {
    for (const name of this.o.keptNames?.list() ?? []) {
      if (this.closed) return;
      const r = await this.node.publisher.registerName(name).catch((e: unknown) => ({ ok: false as const, reason: (e as Error).message }));
      if (r.ok) this.o.logger.info({ name }, 'overlay: kept name registered again');
      else this.o.logger.warn({ name, reason: r.reason, ...('holder' in r && r.holder ? { holder: hex(r.holder) } : {}) }, 'overlay: kept name not registered');
    }
  }

  /** A name, a 40-hex NodeID, an overlay IPv4 or IPv6 address -> the owner and its locator. */
  async resolve(query: string): Promise<ResolveResult | undefined> {
    return (await this.resolveUntil(query))?.result;
  }

  /** For the DNS responder (dns/zone.ts): resolve()'s addresses for a name or NodeID, and how long they
   *  hold. 'unavailable' before the overlay is joined, so resolvers ask again rather than keep "no such name". */
  async dnsAnswer(label: string): Promise<NameLookup> {
    if (!this.node.stats().joined) return 'unavailable';
    const r = await this.resolveUntil(label);
    if (!r) return 'absent';
    return { ipv4: r.result.ipv4, ipv6: r.result.ipv6, ttlS: Math.floor((r.expiresAt - Date.now()) / 1000) };
  }

  /** resolve(), and when its answer stops being vouched for (Unix ms): the first expiry of the records it
   *  rests on (the name record, the locator). */
  private async resolveUntil(query: string): Promise<{ result: ResolveResult; expiresAt: number } | undefined> {
    const q = query.trim();
    let loc: LocatorRecord | undefined;
    let name: string | undefined;
    let expiresAt = Infinity;
    let ipv4: number | undefined;
    const v4 = parseIpv4(q);
    const v6 = v4 === undefined ? parseIpv6(q) : undefined;
    const id = /^[0-9a-fA-F]{40}$/.test(q) ? fromHex(q, 20) : undefined;
    if (v4 !== undefined) {
      if (!isOverlayIpv4(v4)) return undefined;
      loc = await this.node.resolver.resolveIpv4(v4);
      ipv4 = v4;
    } else if (v6) {
      if (!isOverlayIpv6(v6, 0)) return undefined;
      loc = await this.node.resolver.resolveIpv6(v6);
    } else if (id) {
      loc = await this.node.resolver.resolveNodeId(id);
    } else {
      const rec = await this.node.resolver.resolveName(q);
      if (!rec?.value) return undefined;
      name = rec.value.name;
      expiresAt = recordExpiresAt(rec);
      loc = await this.node.resolver.resolveNodeId(nodeIdFromPublicKey(rec.owner));
    }
    if (!loc) return undefined;
    ipv4 ??= await this.node.resolver.ipv4Of(loc.owner);
    const nodeId = nodeIdFromPublicKey(loc.owner);
    const result: ResolveResult = {
      query: q, ...(name !== undefined ? { name } : {}),
      nodeId: hex(nodeId), publicKey: hex(loc.owner),
      ipv4: ipv4 === undefined ? null : formatIpv4(ipv4), ipv6: formatIpv6(ipv6FromNodeId(nodeId)),
      candidates: (loc.value?.candidates ?? []).map((c) => ({ address: c.address, port: c.port, type: c.type })),
    };
    return { result, expiresAt: Math.min(expiresAt, recordExpiresAt(loc)) };
  }

  status(): OverlayStatus {
    const s = this.node.stats();
    return {
      joined: s.joined, ipv4Claimed: this.ipv4Claimed, bootstraps: this.o.bootstraps.map(endpointKey),
      routingTableSize: s.routingTableSize, storedRecords: s.storedRecords, ownRecords: s.ownRecords,
      lookups: s.lookups, rendezvous: this.node.rendezvous.current().map((c) => endpointKey(c.endpoint)), datagrams: s.datagrams, malformed: s.malformed, rejected: s.rejected,
    };
  }

  /** Say goodbye to the neighbours (briefly) and stop. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.race([this.node.leave().catch(() => 0), new Promise((r) => setTimeout(r, 300))]);
    this.node.close();
  }
}

function idEquals(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
