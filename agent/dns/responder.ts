// One client message in, at most one answer out. A question in .idloc is answered from the overlay
// (zone.ts); anything else is forwarded upstream (forwarder.ts), for this host's own clients only: the
// responder listens on overlay addresses that every peer can reach through its tunnel, and must not be an
// open resolver for the overlay. Every message lands in exactly one outcome counter (an answer by kind,
// or a drop by reason), and nothing a client sends makes handle() throw.
import { placeOf, type Zone } from './zone.js';
import type { Forwarder, Transport } from './forwarder.js';
import { Rcode, answer, fitUdp, readQuery, type Query, type QueryProblem } from './wire.js';

export type DropReason = QueryProblem | 'forwardBusy' | 'remoteForward' | 'internal';

export interface ResponderStats {
  /** Messages received (UDP datagrams and TCP frames). */
  queries: number;
  /** .idloc questions answered with records. */
  fromOverlay: number;
  /** .idloc names that exist, asked for a type they do not have: NOERROR and no records. */
  noData: number;
  nxdomain: number;
  /** No answer could be had (an overlay lookup that failed or timed out, no upstream answered). */
  servfail: number;
  /** A .idloc question in a class other than IN. */
  refused: number;
  /** Answers relayed from an upstream. */
  forwarded: number;
  /** .idloc answers that needed no overlay lookup (side count, within fromOverlay/noData/nxdomain). */
  cacheHits: number;
  /** UDP answers cut to the header and question, with TC (side count). */
  truncated: number;
  /** Messages not answered as asked, by reason (a FORMERR, NOTIMP or REFUSED may still have been sent). */
  dropped: Record<DropReason, number>;
}

/** The answer counters: each message that is answered as asked lands in one of them. */
type Outcome = 'fromOverlay' | 'noData' | 'nxdomain' | 'servfail' | 'refused' | 'forwarded';

interface Answered {
  outcome: Outcome | DropReason;
  /** The answer, with the query it answers when it may need fitting to UDP. */
  reply: { bytes: Buffer; q?: Query } | undefined;
  cached: boolean;
}

export interface ResponderOptions {
  zone: Zone;
  forwarder: Forwarder;
  /** Whether a client address is this host's own. */
  isLocal: (address: string) => boolean;
}

export class Responder {
  readonly stats: ResponderStats = {
    queries: 0, fromOverlay: 0, noData: 0, nxdomain: 0, servfail: 0, refused: 0, forwarded: 0, cacheHits: 0, truncated: 0,
    dropped: { tooLarge: 0, malformed: 0, notQuery: 0, badQuestion: 0, opcode: 0, forwardBusy: 0, remoteForward: 0, internal: 0 },
  };

  constructor(private readonly o: ResponderOptions) {}

  /** The answer to one message (UDP answers already fitted to what the client can take); never rejects. */
  async handle(msg: Uint8Array, client: { address: string; over: Transport }): Promise<Buffer | undefined> {
    this.stats.queries++;
    try {
      const { reply, outcome, cached } = await this.answer(msg, client);
      const fit = reply?.q && client.over === 'udp' ? fitUdp(reply.bytes, reply.q) : undefined;
      // counted once the answer is made, so a message that throws on the way counts only as 'internal'
      if (outcome in this.stats.dropped) this.stats.dropped[outcome as DropReason]++;
      else this.stats[outcome as Outcome]++;
      if (cached) this.stats.cacheHits++;
      if (fit?.truncated) this.stats.truncated++;
      return fit ? fit.bytes : reply?.bytes;
    } catch {
      this.stats.dropped.internal++;
      return undefined;
    }
  }

  private async answer(msg: Uint8Array, client: { address: string; over: Transport }): Promise<Answered> {
    const read = readQuery(msg);
    // a FORMERR or NOTIMP header is never longer than what it answers: no fitting needed
    if ('problem' in read) return { outcome: read.problem, reply: read.reply ? { bytes: read.reply } : undefined, cached: false };
    const q = read.query;
    const place = placeOf(q.question.name);
    if (place.at !== 'outside') {
      const z = await this.o.zone.answer(q.question, place);
      const outcome: Outcome = z.rcode === Rcode.NOERROR ? (z.answers.length > 0 ? 'fromOverlay' : 'noData')
        : z.rcode === Rcode.NXDOMAIN ? 'nxdomain' : z.rcode === Rcode.REFUSED ? 'refused' : 'servfail';
      return { outcome, reply: { bytes: answer(q, z.rcode, z), q }, cached: z.source === 'cache' };
    }
    if (!this.o.isLocal(client.address)) {
      return { outcome: 'remoteForward', reply: { bytes: answer(q, Rcode.REFUSED, {}, false), q }, cached: false };
    }
    const f = await this.o.forwarder.forward(q, client.over);
    if (f === 'busy') return { outcome: 'forwardBusy', reply: undefined, cached: false };
    return f
      ? { outcome: 'forwarded', reply: { bytes: f, q }, cached: false }
      : { outcome: 'servfail', reply: { bytes: answer(q, Rcode.SERVFAIL, {}, false), q }, cached: false };
  }
}
