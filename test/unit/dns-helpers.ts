// Twins for the DNS responder's tests: the overlay's names (answers set by the test, lookups counted,
// held back when a test wants them in flight), an upstream resolver that answers from a function, and
// queries and answers through dns-packet.
import dnsPacket from 'dns-packet';
import type { DecodedPacket, Packet, Question } from 'dns-packet';
import type { NameAnswer, NameLookup, OverlayNames } from '../../agent/dns/zone.js';
import type { Transport, Upstream, UpstreamExchange } from '../../agent/dns/forwarder.js';

export const BOB: NameAnswer = { ipv4: '100.87.12.9', ipv6: 'fd1d:10c0:1111:2222:3333:4444:5555:6666', ttlS: 900 };
export const NODE_ID = 'ab'.repeat(20);

/** The overlay's names, as the daemon's OverlayNames answers them. */
export class NamesTwin implements OverlayNames {
  readonly known = new Map<string, NameLookup>([['bob', BOB], [NODE_ID, { ...BOB, ttlS: 600 }], ['nov4', { ipv4: null, ipv6: 'fd1d:10c0::7', ttlS: 60 }]]);
  readonly asked: string[] = [];
  /** While set, lookups wait for release(). */
  hold = false;
  private held: (() => void)[] = [];

  lookUp(label: string): Promise<NameLookup> {
    this.asked.push(label);
    const answer = () => this.known.get(label) ?? 'absent';
    if (!this.hold) return Promise.resolve(answer());
    return new Promise((r) => this.held.push(() => r(answer())));
  }

  release(): void {
    this.hold = false;
    for (const f of this.held.splice(0)) f();
  }
}

export interface Asked { server: Upstream; query: DecodedPacket; id: number; over: Transport }

/** An upstream resolver: `answer` makes its reply from the query it got (undefined: silence). */
export class UpstreamTwin implements UpstreamExchange {
  readonly asked: Asked[] = [];
  constructor(public answer: (q: DecodedPacket, server: Upstream) => Packet | Buffer | undefined = defaultUpstream) {}

  exchange(server: Upstream, query: Buffer, over: Transport, accepts: (reply: Buffer) => boolean): Promise<Buffer | undefined> {
    const q = dnsPacket.decode(query);
    this.asked.push({ server, query: q, id: q.id!, over });
    const a = this.answer(q, server);
    if (a === undefined) return Promise.resolve(undefined);
    const bytes = Buffer.isBuffer(a) ? a : dnsPacket.encode(a);
    return Promise.resolve(accepts(bytes) ? bytes : undefined);
  }
}

/** example.test names answer 192.0.2.1 (big.example.test: 30 addresses, about 1 KB: over 512 bytes, under 1232). */
export function defaultUpstream(q: DecodedPacket): Packet {
  const question = q.questions![0]!;
  const n = question.name.toLowerCase() === 'big.example.test' ? 30 : 1;
  return {
    type: 'response', id: q.id, flags: dnsPacket.RECURSION_AVAILABLE | dnsPacket.RECURSION_DESIRED, questions: [question],
    answers: Array.from({ length: n }, (_, i) => ({ type: 'A' as const, name: question.name, ttl: 60, data: `192.0.2.${i + 1}` })),
  };
}

export function query(name: string, type: Question['type'] = 'A', o: { id?: number; edns?: number; class?: Question['class'] } = {}): Buffer {
  return dnsPacket.encode({
    type: 'query', id: o.id ?? 4242, flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ name, type, ...(o.class ? { class: o.class } : {}) }],
    ...(o.edns !== undefined ? { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: o.edns, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }] } : {}),
  });
}

export function decode(b: Buffer | undefined): DecodedPacket & { rcode: string } {
  if (!b) throw new Error('no answer');
  return dnsPacket.decode(b) as DecodedPacket & { rcode: string };
}

/** The data of every answer record of one type. */
export function dataOf(p: DecodedPacket, type: string): unknown[] {
  return (p.answers ?? []).filter((a) => a.type === type).map((a) => (a as { data: unknown }).data);
}
