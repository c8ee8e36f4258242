// Everything outside .idloc goes to the resolvers the host used before the agent (resolv.conf's
// nameservers, our own addresses left out, so the responder never asks itself), in order, each for
// DNS_FORWARD_TIMEOUT_MS. The query goes as the client sent it (its EDNS options and all) under an id of
// our own, over the transport the client used; the first message back that answers it (same id, same
// question: answersQuery) goes to the client under the client's id. An upstream's records are relayed as
// they came: the forwarder reads only the header and the question.
import { randomBytes } from 'node:crypto';
import { DNS_FORWARD_IN_FLIGHT_MAX, DNS_FORWARD_TIMEOUT_MS, DNS_PORT, DNS_UPSTREAMS_MAX } from '../base/constants.js';
import { canonicalAddress, parseIpv4, parseIpv6 } from '../base/ip-text.js';
import { answersQuery, withId, type Query } from './wire.js';

export interface Upstream { address: string; port: number }
export type Transport = 'udp' | 'tcp';

/** The network side (upstream-net.ts; a twin in tests). */
export interface UpstreamExchange {
  /** Send `query` to `server` over `over`; resolve with the first message back that `accepts` takes, or
   *  undefined after timeoutMs, or at once when the server cannot be reached (a refused connection). */
  exchange(server: Upstream, query: Buffer, over: Transport, accepts: (reply: Buffer) => boolean, timeoutMs: number): Promise<Buffer | undefined>;
}

/** "nameserver ADDRESS" lines of a resolv.conf, in order: addresses only (no names, as glibc), an IPv6
 *  link-local one with its %zone, our own addresses left out, at most DNS_UPSTREAMS_MAX. */
export function upstreamsOf(resolvConf: string, ours: (address: string) => boolean): Upstream[] {
  const out: Upstream[] = [];
  for (const line of resolvConf.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (!m) continue;
    const text = m[1]!;
    const [bare] = text.split('%');
    if (parseIpv4(bare!) === undefined && parseIpv6(bare!) === undefined) continue;
    const address = text.includes('%') ? `${canonicalAddress(bare!)}%${text.split('%')[1]}` : canonicalAddress(text);
    if (ours(canonicalAddress(bare!)) || out.some((u) => u.address === address)) continue;
    out.push({ address, port: DNS_PORT });
    if (out.length === DNS_UPSTREAMS_MAX) break;
  }
  return out;
}

export interface ForwarderStats {
  /** Queries sent to an upstream (a query asked of two upstreams counts twice). */
  upstreamQueries: number;
  /** An upstream that did not answer in time, or could not be reached: the next one is asked. */
  upstreamNoAnswer: number;
  /** Messages from an upstream that answered no query of ours (wrong id or question): dropped. */
  upstreamMismatched: number;
  /** Queries no upstream answered, or that had none to go to. */
  unanswered: number;
}

export interface ForwarderOptions {
  /** The upstreams now (our own addresses, which can change, left out). */
  upstreams: () => Upstream[];
  exchange: UpstreamExchange;
  /** The id a forwarded query goes under (default: random). */
  newId?: () => number;
}

export class Forwarder {
  private inFlight = 0;
  readonly stats: ForwarderStats = { upstreamQueries: 0, upstreamNoAnswer: 0, upstreamMismatched: 0, unanswered: 0 };

  constructor(private readonly o: ForwarderOptions) {}

  get pending(): number { return this.inFlight; }

  /** The upstream's answer under the client's id; undefined when none answered (the caller sends
   *  SERVFAIL); 'busy' when DNS_FORWARD_IN_FLIGHT_MAX queries are out already. */
  async forward(q: Query, over: Transport): Promise<Buffer | undefined | 'busy'> {
    const servers = this.o.upstreams();
    if (servers.length === 0) { this.stats.unanswered++; return undefined; }
    if (this.inFlight >= DNS_FORWARD_IN_FLIGHT_MAX) return 'busy';
    this.inFlight++;
    try {
      for (const server of servers) {
        const id = this.o.newId?.() ?? randomBytes(2).readUInt16BE(0);
        this.stats.upstreamQueries++;
        const reply = await this.o.exchange.exchange(server, withId(q.bytes, id), over, (r) => {
          const ok = answersQuery(r, id, q.question);
          if (!ok) this.stats.upstreamMismatched++;
          return ok;
        }, DNS_FORWARD_TIMEOUT_MS).catch(() => undefined);
        if (reply) return withId(reply, q.id);
        this.stats.upstreamNoAnswer++;
      }
      this.stats.unanswered++;
      return undefined;
    } finally {
      this.inFlight--;
    }
  }
}
