// The .idloc zone: NAME.idloc and <nodeid>.idloc, answered from the overlay. A name or NodeID is looked
// up through OverlayNames (the daemon's: the same lookups and ownership checks as `idloc-agent resolve`),
// once however many queries ask for it meanwhile (a resolver asks for A and AAAA at once), and the
// answer is kept for its records' lifetime (at most DNS_ANSWER_MAX_TTL_S); "no such name", and an owner
// with no IPv4 claim found, for DNS_NEGATIVE_TTL_S. A lookup that fails or outlasts DNS_LOOKUP_TIMEOUT_MS
// is not kept.
import {
  DNS_ANSWER_MAX_TTL_S, DNS_CACHE_MAX_ENTRIES, DNS_LOOKUP_TIMEOUT_MS, DNS_LOOKUPS_IN_FLIGHT_MAX, DNS_NEGATIVE_TTL_S,
} from '../base/constants.js';
import type { Scheduler } from '../base/scheduler.js';
import { parseIpv4, parseIpv6 } from '../base/ip-text.js';
import { normalizeName } from '../overlay/names.js';
import { TtlCache } from './cache.js';
import { Rcode, type Answer, type Question } from './wire.js';

export const ZONE = 'idloc';

/** What the overlay says of a name or NodeID: its overlay addresses and for how long that holds. */
export interface NameAnswer {
  /** null: the owner holds no IPv4 claim (AAAA only). */
  ipv4: string | null;
  ipv6: string;
  /** Seconds the records behind it still live. */
  ttlS: number;
}

/** 'absent': nobody holds it; 'unavailable': the overlay could not tell (not joined, or the lookup failed). */
export type NameLookup = NameAnswer | 'absent' | 'unavailable';

/** The daemon's side: look a name (lowercase, as normalizeName gives it) or a 40-hex NodeID up. */
export interface OverlayNames {
  lookUp(label: string): Promise<NameLookup>;
}

/** Where a question's name falls: outside the zone, its apex, one name or NodeID in it, or a name in it
 *  that nobody can hold (several labels, or not a valid name). */
export type ZonePlace = { at: 'outside' } | { at: 'apex' } | { at: 'label'; label: string } | { at: 'none' };

export function placeOf(qname: string): ZonePlace {
  const n = qname.toLowerCase().replace(/\.$/, '');
  if (n === ZONE) return { at: 'apex' };
  if (!n.endsWith(`.${ZONE}`)) return { at: 'outside' };
  const label = n.slice(0, -(ZONE.length + 1));
  if (/^[0-9a-f]{40}$/.test(label)) return { at: 'label', label };
  const name = label.includes('.') ? undefined : normalizeName(label);
  return name === undefined ? { at: 'none' } : { at: 'label', label: name };
}

/** The records of an answer from the zone: rcode, answers, authority (the SOA, for negative caching). */
export interface ZoneReply {
  rcode: Rcode;
  answers: Answer[];
  authorities: Answer[];
  /** How it was found: from the cache, a lookup, or neither (apex, invalid names). */
  source: 'cache' | 'lookup' | 'none';
}

export interface ZoneStats {
  lookups: number;
  lookupsBusy: number;
  lookupsTimedOut: number;
  lookupsFailed: number;
}

export class Zone {
  private readonly cache: TtlCache<NameAnswer | 'absent'>;
  private readonly inFlight = new Map<string, Promise<NameLookup>>();
  readonly stats: ZoneStats = { lookups: 0, lookupsBusy: 0, lookupsTimedOut: 0, lookupsFailed: 0 };

  constructor(private readonly names: OverlayNames, private readonly clock: Scheduler) {
    this.cache = new TtlCache(DNS_CACHE_MAX_ENTRIES, clock);
  }

  get cached(): number { return this.cache.size; }

  /** The answer to a question inside the zone (placeOf said apex, label or none). */
  async answer(q: Question, place: ZonePlace): Promise<ZoneReply> {
    const cls = q.class ?? 'IN';
    if (cls !== 'IN' && cls !== 'ANY') return { rcode: Rcode.REFUSED, answers: [], authorities: [], source: 'none' };
    if (place.at === 'apex') {
      return q.type === 'SOA' ? { rcode: Rcode.NOERROR, answers: [soa()], authorities: [], source: 'none' } : noData('none');
    }
    if (place.at !== 'label') return nxdomain('none');
    const hit = this.cache.get(place.label);
    let found: NameAnswer | 'absent';
    let ttlS: number;
    if (hit) {
      ({ value: found, ttlS } = hit);
    } else {
      const r = await this.lookUp(place.label);
      if (r === 'unavailable') return { rcode: Rcode.SERVFAIL, answers: [], authorities: [], source: 'lookup' };
      found = r;
      // No IPv4 claim found is kept no longer than "no such name": the claim may be a moment from stored
      // (the owner just joined, or is re-deriving), and an A-less answer must not hide it for minutes.
      ttlS = r === 'absent' ? DNS_NEGATIVE_TTL_S : Math.min(r.ipv4 === null ? DNS_NEGATIVE_TTL_S : DNS_ANSWER_MAX_TTL_S, Math.floor(r.ttlS));
      this.cache.set(place.label, found, ttlS);
    }
    const source = hit ? 'cache' : 'lookup';
    if (found === 'absent') return nxdomain(source);
    const answers = recordsFor(q, found, Math.max(1, ttlS));
    return answers.length > 0 ? { rcode: Rcode.NOERROR, answers, authorities: [], source } : noData(source);
  }

  /** One lookup per label at a time, at most DNS_LOOKUPS_IN_FLIGHT_MAX labels, each bounded in time. */
  private lookUp(label: string): Promise<NameLookup> {
    const pending = this.inFlight.get(label);
    if (pending) return pending;
    if (this.inFlight.size >= DNS_LOOKUPS_IN_FLIGHT_MAX) {
      this.stats.lookupsBusy++;
      return Promise.resolve('unavailable');
    }
    this.stats.lookups++;
    const p = new Promise<NameLookup>((resolve) => {
      const timer = this.clock.setTimer(DNS_LOOKUP_TIMEOUT_MS, () => { this.stats.lookupsTimedOut++; resolve('unavailable'); });
      this.names.lookUp(label).then(
        (r) => { timer.cancel(); resolve(validLookup(r) ? r : 'unavailable'); },
        () => { timer.cancel(); this.stats.lookupsFailed++; resolve('unavailable'); },
      );
    }).finally(() => this.inFlight.delete(label));
    this.inFlight.set(label, p);
    return p;
  }
}

/** An answer dns-packet can encode: addresses in their text forms, a lifetime. */
function validLookup(r: NameLookup): boolean {
  if (r === 'absent' || r === 'unavailable') return true;
  return typeof r === 'object' && r !== null && parseIpv6(r.ipv6) !== undefined && Number.isFinite(r.ttlS) &&
    (r.ipv4 === null || parseIpv4(r.ipv4) !== undefined);
}

function recordsFor(q: Question, a: NameAnswer, ttl: number): Answer[] {
  const out: Answer[] = [];
  const any = (q.type as string) === 'ANY'; // dns-packet's types leave out QTYPE 255
  if ((q.type === 'A' || any) && a.ipv4) out.push({ type: 'A', name: q.name, ttl, data: a.ipv4 });
  if (q.type === 'AAAA' || any) out.push({ type: 'AAAA', name: q.name, ttl, data: a.ipv6 });
  return out;
}

/** The zone's SOA: what negative answers carry so resolvers know how long to keep them (RFC 2308). */
function soa(): Answer {
  return {
    type: 'SOA', name: ZONE, ttl: DNS_NEGATIVE_TTL_S,
    data: { mname: ZONE, rname: `hostmaster.${ZONE}`, serial: 1, refresh: 3_600, retry: 600, expire: 86_400, minimum: DNS_NEGATIVE_TTL_S },
  };
}

function noData(source: ZoneReply['source']): ZoneReply {
  return { rcode: Rcode.NOERROR, answers: [], authorities: [soa()], source };
}

function nxdomain(source: ZoneReply['source']): ZoneReply {
  return { rcode: Rcode.NXDOMAIN, answers: [], authorities: [soa()], source };
}
