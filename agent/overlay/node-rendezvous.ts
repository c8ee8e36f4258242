// OverlayNode's rendezvous set: for a host behind a NAT, a few routing-table contacts it PINGs every
// RENDEZVOUS_KEEPALIVE_MS, so their NAT mappings stay open and they can forward ATTACH to it (node-route.ts,
// node-attach.ts). Their NodeIDs go in its locator, where others find them (rendezvousEndpoints).
//
//   count > 0 ─> fill: candidates from the routing table, best first, PINGed; those that answer are kept
//   every keepaliveMs: PING each kept one; one that does not answer (all RPC tries) is dropped and replaced
//   a kept contact leaves the routing table ─> dropped and replaced; a contact enters it ─> fill if short
//   the set changes ─> onChanged (the node re-stores its own locator with the new list)
//
// Best first: bootstraps (configured, so public by design: a contact behind a NAT of its own answers us,
// because we opened its NAT by talking to it, but not the others who would forward through it), then the
// contacts in our table longest (Kademlia's observation: a node up for long is likely to stay up), then the
// lowest round trip of an earlier PING. Recently unresponsive contacts are skipped. Once a bootstrap or a
// preferred (public) member is in the table, only those are chosen, and prefer() lets go of kept contacts
// that are neither: a contact behind a NAT or a firewall of its own answers us, but drops the Attach of
// anyone it has not talked to, so as a rendezvous it only looks alive.

import { LOCATOR_MAX_RENDEZVOUS } from '../base/constants.js';
import { nodeIdFromPublicKey } from '../idloc/addresses.js';
import { endpointKey, type Endpoint } from '../conn/socket.js';
import type { KademliaNode } from './kademlia.js';
import { locatorEndpoint } from './node-resolve.js';
import type { FetchValue, Wire } from './node-wire.js';
import type { LocatorRecord } from './records.js';
import type { Scheduler, TimerHandle } from '../base/scheduler.js';
import { idKey } from './xor-metric.js';
import type { ContactInfo } from './bucket.js';
import { bytesEqual } from '../base/bytes.js';

export interface RendezvousDeps {
  kad: KademliaNode<FetchValue, Wire>;
  scheduler: Scheduler;
  /** The configured bootstraps (preferred before those given to prefer()). */
  bootstraps: () => Endpoint[];
  count: number;
  keepaliveMs: number;
  onChanged: (current: ContactInfo[]) => void;
}

interface Kept {
  nodeId: Uint8Array;
  publicKey: Uint8Array;
  endpoint: Endpoint;
}

const clampCount = (n: number): number => (Number.isFinite(n) ? Math.max(0, Math.min(LOCATOR_MAX_RENDEZVOUS, Math.floor(n))) : 0);

export class Rendezvous {
  /** In the order chosen (the best first). */
  private readonly kept = new Map<string, Kept>();
  /** When each routing-table contact entered it. */
  private readonly since = new Map<string, number>();
  /** Round trip of the last PING we sent it as a candidate or rendezvous. */
  private readonly rtt = new Map<string, number>();
  private count: number;
  private timer: TimerHandle | undefined;
  private fillTimer: TimerHandle | undefined;
  private filling = false;
  /** A fill was asked for while one ran: run another after it. */
  private again = false;
  private notified = '';
  private closed = false;
  private preferred: Endpoint[] = [];

  constructor(private readonly d: RendezvousDeps) {
    this.count = clampCount(d.count);
    if (this.count > 0) this.arm();
  }

  get size(): number { return this.kept.size; }
  get wanted(): number { return this.count; }

  /** The kept contacts, best first, at their current routing-table endpoints. */
  current(): ContactInfo[] {
    return [...this.kept.values()].map((k) => {
      const c = this.d.kad.table.get(k.nodeId);
      return { nodeId: k.nodeId, publicKey: k.publicKey, endpoint: { ...(c?.endpoint ?? k.endpoint) } };
    });
  }

  ids(): Uint8Array[] {
    return [...this.kept.values()].map((k) => k.nodeId);
  }

  /** Contacts to choose before others (after the bootstraps): e.g. members that advertise relaying, so a
   *  peer can also be relayed through the rendezvous it reaches us by. Returns how many members known
   *  public (these and the bootstraps) are in our routing table: those we can choose from. */
  prefer(endpoints: Endpoint[]): number {
    this.preferred = endpoints.map((e) => ({ address: e.address, port: e.port }));
    const pub = this.publicKeys();
    if (this.closed) return 0;
    let dropped = false;
    if (pub.size > 0) for (const [key, k] of this.kept) if (!pub.has(endpointKey(k.endpoint))) { this.kept.delete(key); dropped = true; }
    if (dropped) this.notify();
    if (this.kept.size < this.count) this.scheduleFill();
    return this.d.kad.table.all().filter((c) => pub.has(endpointKey(c.endpoint))).length;
  }

  /** The endpoint keys of members known public (bootstraps, preferred), if any of them is in our table. */
  private publicKeys(): Set<string> {
    const boot = new Set([...this.d.bootstraps(), ...this.preferred].map(endpointKey));
    return this.d.kad.table.all().some((c) => boot.has(endpointKey(c.endpoint))) ? boot : new Set();
  }

  /** Keep this many rendezvous nodes (0 stops the keepalives; at most LOCATOR_MAX_RENDEZVOUS). */
  setCount(n: number): void {
    if (this.closed) return;
    this.count = clampCount(n);
    const extra = [...this.kept.keys()].slice(this.count);
    for (const key of extra) this.kept.delete(key);
    if (this.count === 0) {
      this.timer?.cancel();
      this.timer = undefined;
    } else {
      if (!this.timer) this.arm();
      this.scheduleFill();
    }
    this.notify();
  }

  /** From the routing table, inside its change: bookkeeping and a deferred fill only. */
  contactAdded(c: ContactInfo): void {
    this.since.set(idKey(c.nodeId), this.d.scheduler.now());
    if (this.kept.size < this.count) this.scheduleFill();
  }

  contactRemoved(c: ContactInfo): void {
    const key = idKey(c.nodeId);
    this.since.delete(key);
    this.rtt.delete(key);
    if (!this.kept.delete(key)) return;
    this.notify();
    this.scheduleFill();
  }

  /** Our address changed: PING the kept ones now, from the new address, so our NAT's mappings towards them
   *  (through which they forward Attach to us) exist again at once rather than at the next keepalive. The
   *  caller bounds how often (path-keeper.ts, ICE_RESTART_MIN_INTERVAL_MS). */
  refresh(): void {
    if (this.closed || this.count === 0) return;
    void this.keepalive().catch(() => undefined);
  }

  close(): void {
    this.closed = true;
    this.timer?.cancel();
    this.fillTimer?.cancel();
    this.timer = this.fillTimer = undefined;
  }

  private arm(): void {
    this.timer = this.d.scheduler.setTimer(this.d.keepaliveMs, () => {
      this.timer = undefined;
      if (this.closed || this.count === 0) return;
      this.arm();
      void this.keepalive().catch(() => undefined);
    });
  }

  private async keepalive(): Promise<void> {
    const list = [...this.kept.entries()];
    const answered = await Promise.all(list.map(([, k]) => this.probe(k)));
    list.forEach(([key, k], i) => { if (!answered[i] && this.kept.get(key) === k) this.kept.delete(key); });
    this.notify();
    await this.fill();
  }

  /** PING it (at its current table endpoint); records the round trip. */
  private async probe(k: Kept): Promise<boolean> {
    const c = this.d.kad.table.get(k.nodeId) ?? k;
    const t0 = this.d.scheduler.now();
    const ok = await this.d.kad.ping(c);
    if (ok) this.rtt.set(idKey(k.nodeId), this.d.scheduler.now() - t0);
    return ok;
  }

  private scheduleFill(): void {
    if (this.fillTimer || this.closed || this.count === 0) return;
    this.fillTimer = this.d.scheduler.setTimer(0, () => {
      this.fillTimer = undefined;
      void this.fill().catch(() => undefined);
    });
  }

  /** Take the best candidates until the set is full or none is left (each tried once per fill). */
  private async fill(): Promise<void> {
    if (this.closed) return;
    if (this.filling) { this.again = true; return; }
    this.filling = true;
    const tried = new Set<string>();
    try {
      while (!this.closed && this.kept.size < this.count) {
        const cands = this.candidates(tried).slice(0, this.count - this.kept.size);
        if (cands.length === 0) break;
        for (const c of cands) tried.add(idKey(c.nodeId));
        const ok = await Promise.all(cands.map((c) => this.probe(c)));
        cands.forEach((c, i) => {
          const key = idKey(c.nodeId);
          if (ok[i] && !this.closed && this.kept.size < this.count && !this.kept.has(key) && this.d.kad.table.get(c.nodeId)) {
            this.kept.set(key, { nodeId: c.nodeId, publicKey: c.publicKey, endpoint: { ...c.endpoint } });
          }
        });
        this.notify();
      }
    } finally {
      this.filling = false;
      if (this.again) {
        this.again = false;
        if (this.kept.size < this.count) this.scheduleFill();
      }
    }
  }

  private candidates(tried: Set<string>): ContactInfo[] {
    const boot = new Set([...this.d.bootstraps(), ...this.preferred].map(endpointKey));
    const bootstraps = new Set(this.d.bootstraps().map(endpointKey));
    const onlyPublic = this.publicKeys().size > 0;
    const now = this.d.scheduler.now();
    const skip = this.d.kad.unresponsive;
    const score = (c: ContactInfo) => {
      const key = idKey(c.nodeId);
      const ek = endpointKey(c.endpoint);
      return { boot: bootstraps.has(ek) ? 0 : boot.has(ek) ? 1 : 2, since: this.since.get(key) ?? now, rtt: this.rtt.get(key) ?? Infinity };
    };
    return this.d.kad.table.all()
      .filter((c) => !this.kept.has(idKey(c.nodeId)) && !tried.has(idKey(c.nodeId)) && !skip.has(c.nodeId))
      .filter((c) => !onlyPublic || boot.has(endpointKey(c.endpoint)))
      .map((c) => ({ c, s: score(c) }))
      .sort((a, b) => a.s.boot - b.s.boot || a.s.since - b.s.since || a.s.rtt - b.s.rtt)
      .map((x) => x.c);
  }

  private notify(): void {
    const sig = [...this.kept.keys()].join('|');
    if (sig === this.notified) return;
    this.notified = sig;
    this.d.onChanged(this.current());
  }
}

export interface RendezvousLookupDeps {
  selfId: Uint8Array;
  /** Our best endpoint for a NodeID (recent senders, then the routing table). */
  endpointOf: (nodeId: Uint8Array) => Endpoint | undefined;
  resolveNodeId: (nodeId: Uint8Array) => Promise<LocatorRecord | undefined>;
}

/** Endpoints to send an ATTACH for a locator's owner through: each rendezvous NodeID's endpoint as we know
 *  it, else its own locator's best candidate (looked up in parallel); unknown ones skipped, duplicates
 *  dropped, in the locator's order. If we are one of its rendezvous nodes, the owner's own endpoint as we
 *  last saw it (its keepalives reach us, so our datagrams reach it). */
export async function rendezvousEndpoints(locator: LocatorRecord, d: RendezvousLookupDeps): Promise<Endpoint[]> {
  const ids = locator.value?.rendezvous ?? [];
  const found = await Promise.all(ids.map(async (id): Promise<Endpoint | undefined> => {
    if (bytesEqual(id, d.selfId)) return d.endpointOf(nodeIdFromPublicKey(locator.owner));
    const known = d.endpointOf(id);
    if (known) return { ...known };
    const loc = await d.resolveNodeId(id).catch(() => undefined);
    return loc ? locatorEndpoint(loc) : undefined;
  }));
  const seen = new Set<string>();
  const out: Endpoint[] = [];
  for (const e of found) {
    if (!e || seen.has(endpointKey(e))) continue;
    seen.add(endpointKey(e));
    out.push(e);
  }
  return out;
}
