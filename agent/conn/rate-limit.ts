// A token bucket per source IP address: relays (the overlay's routed messages, peer relay frames) limit
// what one source can make them send. Per address, not per port: a flood from many ports of one host shares
// one bucket. Buckets are kept for at most `maxSources` addresses, least recently active forgotten first
// (which only resets that source's limit).

export interface RateLimitOptions {
  /** Tokens added per second (datagrams, or bytes). */
  ratePerSecond: number;
  /** Bucket size: what a source may spend at once after being quiet. */
  burst: number;
  maxSources: number;
  now: () => number;
}

interface Bucket { tokens: number; at: number }

export class PerSourceRateLimit {
  private readonly buckets = new Map<string, Bucket>();

  constructor(private readonly o: RateLimitOptions) {}

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
