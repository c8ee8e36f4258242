// A token bucket per source IP address: relays (the overlay's routed messages, peer relay frames) limit
// what one source can make them send. Per address, not per port: a flood from many ports of one host shares
// one bucket; and allowFrom() takes an IPv6 source by its /64 (sourceKey), which one host or one site
// holds whole, so rotating the low 64 bits buys nothing. Buckets are kept for at most `maxSources` addresses, least recently active forgotten first
// (which only resets that source's limit).

export interface RateLimitOptions {
  /** Tokens added per second (datagrams, or bytes). */
  ratePerSecond: number;
  /** Bucket size: what a source may spend at once after being quiet. */
  burst: number;
  maxSources: number;
  now: () => number;
}

import { isIPv4 } from 'node:net';
import { SOURCE_KEY_CACHE_MAX } from '../base/constants.js';

interface Bucket { tokens: number; at: number }

const keys = new Map<string, string>();

/** An IPv4 address as it is (IPv4-mapped IPv6 included); an IPv6 address by its /64, which one host or
 *  one site holds whole, so a host cannot multiply its limit by changing the low 64 bits. */
export function sourceKey(address: string): string {
  if (address.indexOf(':') < 0) return address; // IPv4: itself, nothing built
  // 100::/64 (RFC 6666, discard-only) never arrives from a network: the peer relay client names each peer
  // it reaches through a relay by one such address (nat/peer-relay-client.ts), so each is its own source.
  if (address.startsWith('100::')) return address;
  const hit = keys.get(address);
  if (hit !== undefined) return hit;
  if (keys.size >= SOURCE_KEY_CACHE_MAX) keys.clear();
  const key = ipv6SourceKey(address);
  keys.set(address, key);
  return key;
}

function ipv6SourceKey(address: string): string {
  const a = address.split('%')[0]!.toLowerCase();
  const mapped = a.startsWith('::ffff:') ? a.slice(7) : a;
  if (isIPv4(mapped)) return mapped;
  const [head = '', tail] = a.split('::');
  const hi = head ? head.split(':') : [];
  const lo = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? hi : [...hi, ...Array<string>(Math.max(0, 8 - hi.length - lo.length)).fill('0'), ...lo];
  return groups.slice(0, 4).map((g) => parseInt(g || '0', 16).toString(16)).join(':') + '::/64';
}


export class PerSourceRateLimit {
  private readonly buckets = new Map<string, Bucket>();

  constructor(private readonly o: RateLimitOptions) {}

  /** Sources with a bucket now (at most maxSources). */
  get size(): number { return this.buckets.size; }

  /** allow() for a datagram's source address: IPv6 by its /64. */
  allowFrom(address: string, cost = 1): boolean {
    return this.allow(sourceKey(address), cost);
  }

  /** Take `cost` tokens from the source's bucket; false (nothing taken) if it has fewer. */
  allow(address: string, cost = 1): boolean {
    const now = this.o.now();
    let b = this.buckets.get(address);
    if (b) {
      this.buckets.delete(address); // re-inserted below: Map order = recency
      b.tokens = Math.min(this.o.burst, b.tokens + (Math.max(0, now - b.at) * this.o.ratePerSecond) / 1000);
      b.at = now;
    } else {
      if (this.buckets.size >= this.o.maxSources) this.buckets.delete(this.buckets.keys().next().value!);
      b = { tokens: this.o.burst, at: now };
    }
    this.buckets.set(address, b);
    if (b.tokens < cost) return false;
    b.tokens -= cost;
    return true;
  }
}
