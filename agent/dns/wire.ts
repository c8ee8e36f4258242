// DNS messages, through dns-packet (the codec). What this file adds is what the responder needs around
// it: what a client's message must be before it is answered, answers built for its question, truncation
// to what UDP may carry, and the query id (forwarded queries go upstream under an id of our own).
//
// A message (RFC 1035 4.1.1): a 12-byte header, then its sections.
//
//    0  1  2  3  4  5  6  7  8  9 10 11 12 13 14 15
//   +--+-----------+--+--+--+--+--+--+--+-----------+
//   |                      ID                       |  the client's: kept in every answer, forwarded ones too
//   |QR|  opcode   |AA|TC|RD|RA| Z|AD|CD|   RCODE   |  QR=0 and opcode 0 (QUERY) in what we answer
//   |                    QDCOUNT                    |  exactly 1
//   |                    ANCOUNT                    |
//   |                    NSCOUNT                    |  the zone's SOA in a "no such name" or "no such type"
//   |                    ARCOUNT                    |  the OPT record (EDNS, RFC 6891) is one of these
//   +-----------------------------------------------+
//   | question: QNAME (labels) QTYPE (2) QCLASS (2) |
//   | answer, authority, additional records         |
//   +-----------------------------------------------+
//
// Over TCP every message is preceded by its length, 2 bytes big-endian (RFC 1035 4.2.2; tcp-frames.ts).
// Over UDP an answer is at most 512 bytes, or the size the query's OPT record offers (at most
// DNS_EDNS_UDP_MAX); a longer one goes out truncated: the header with TC set and the question, no
// records, and the client asks again over TCP.
import dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, Question } from 'dns-packet';
import { DNS_EDNS_UDP_MAX, DNS_QUERY_MAX_BYTES, DNS_UDP_PLAIN_MAX } from '../base/constants.js';

export type { Answer, Question } from 'dns-packet';

/** The rcodes this responder sends (RFC 1035 4.1.1, RFC 6895). */
export const Rcode = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
export type Rcode = (typeof Rcode)[keyof typeof Rcode];

const QR = 1 << 15;
const AA = dnsPacket.AUTHORITATIVE_ANSWER;
const TC = dnsPacket.TRUNCATED_RESPONSE;
const RD = dnsPacket.RECURSION_DESIRED;
const RA = dnsPacket.RECURSION_AVAILABLE;
const CD = dnsPacket.CHECKING_DISABLED;
const HEADER_BYTES = 12;

/** dns-packet's question codec, which its types leave out. */
const questionCodec = (dnsPacket as unknown as { question: { decode(buf: Buffer, offset: number): Question } }).question;

export interface Query {
  id: number;
  /** The header's flags as the client sent them (RD and CD are echoed). */
  flags: number;
  question: Question;
  /** The UDP size the client's OPT record offers; undefined without EDNS. */
  edns: number | undefined;
  /** The message as it came. */
  bytes: Buffer;
}

/** Why a message gets no answer of its own (a FORMERR or NOTIMP answer is still sent where it can be). */
export type QueryProblem = 'tooLarge' | 'malformed' | 'notQuery' | 'badQuestion' | 'opcode';

/** A client's message: a query we can answer, or why not (with the error answer to send, if any). */
export function readQuery(msg: Uint8Array): { query: Query } | { problem: QueryProblem; reply?: Buffer } {
  if (msg.length > DNS_QUERY_MAX_BYTES) return { problem: 'tooLarge' };
  if (msg.length < HEADER_BYTES) return { problem: 'malformed' };
  const bytes = Buffer.from(msg.buffer, msg.byteOffset, msg.byteLength);
  const id = bytes.readUInt16BE(0);
  const flags = bytes.readUInt16BE(2);
  // An answer is never answered: two responders pointed at each other would otherwise loop.
  if (flags & QR) return { problem: 'notQuery' };
  if (((flags >> 11) & 0xf) !== 0) return { problem: 'opcode', reply: errorReply(id, flags, Rcode.NOTIMP) };
  let packet: DecodedPacket;
  try {
    packet = dnsPacket.decode(bytes);
  } catch {
    return { problem: 'malformed', reply: errorReply(id, flags, Rcode.FORMERR) };
  }
  const question = packet.questions?.[0];
  if (packet.questions?.length !== 1 || !question || typeof question.name !== 'string') {
    return { problem: 'badQuestion', reply: errorReply(id, flags, Rcode.FORMERR) };
  }
  const opt = packet.additionals?.find((a) => a.type === 'OPT') as { udpPayloadSize?: number } | undefined;
  return { query: { id, flags, question, edns: opt ? opt.udpPayloadSize ?? DNS_UDP_PLAIN_MAX : undefined, bytes } };
}

/** The header of an answer to a message we could not read whole: its id, its RD, our rcode. */
function errorReply(id: number, flags: number, rcode: Rcode): Buffer {
  return dnsPacket.encode({ type: 'response', id, flags: (flags & (RD | CD)) | RA | rcode });
}

/** Our answer to `q`: authoritative (the .idloc zone is ours), its question echoed as the client spelled
 *  it (resolvers that randomise case check that), RD and CD echoed, RA (we forward everything else), and
 *  an OPT record when the query had one. */
export function answer(q: Query, rcode: Rcode, records: { answers?: Answer[]; authorities?: Answer[] } = {}, authoritative = true): Buffer {
  return dnsPacket.encode({
    type: 'response', id: q.id, flags: (q.flags & (RD | CD)) | RA | (authoritative ? AA : 0) | rcode,
    questions: [q.question], answers: records.answers ?? [], authorities: records.authorities ?? [],
    additionals: optFor(q),
  });
}

function optFor(q: Query): Answer[] {
  return q.edns === undefined ? [] : [{ type: 'OPT', name: '.', udpPayloadSize: DNS_EDNS_UDP_MAX, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }];
}

/** How large a UDP answer to `q` may be. */
export function udpLimit(q: Query): number {
  return q.edns === undefined ? DNS_UDP_PLAIN_MAX : Math.min(DNS_EDNS_UDP_MAX, Math.max(DNS_UDP_PLAIN_MAX, q.edns));
}

/** `reply` as UDP may carry it to the client of `q`: itself, or the header with TC and the question only. */
export function fitUdp(reply: Buffer, q: Query): { bytes: Buffer; truncated: boolean } {
  if (reply.length <= udpLimit(q)) return { bytes: reply, truncated: false };
  const flags = reply.length >= 4 ? reply.readUInt16BE(2) : RA | Rcode.SERVFAIL;
  const bytes = dnsPacket.encode({ type: 'response', id: q.id, flags: flags | TC, questions: [q.question], additionals: optFor(q) });
  return { bytes, truncated: true };
}

/** A copy of a message under another id. */
export function withId(msg: Uint8Array, id: number): Buffer {
  const b = Buffer.from(msg);
  if (b.length >= 2) b.writeUInt16BE(id & 0xffff, 0);
  return b;
}

/** Whether an upstream's message answers the query we sent it under `id`: an answer, that id, one
 *  question, the same name (in any case), type and class. Only the header and the question are read:
 *  the records are relayed as they came, whatever their types. */
export function answersQuery(reply: Uint8Array, id: number, q: Question): boolean {
  if (reply.length < HEADER_BYTES) return false;
  const b = Buffer.from(reply.buffer, reply.byteOffset, reply.byteLength);
  if (!(b.readUInt16BE(2) & QR) || b.readUInt16BE(0) !== id || b.readUInt16BE(4) !== 1) return false;
  try {
    const got = questionCodec.decode(b, HEADER_BYTES);
    return got.name.toLowerCase() === q.name.toLowerCase() && got.type === q.type && (got.class ?? 'IN') === (q.class ?? 'IN');
  } catch {
    return false;
  }
}

/** The rcode of a message (its low 4 header bits), or undefined when it has no header. */
export function rcodeOf(msg: Uint8Array): number | undefined {
  return msg.length < 4 ? undefined : msg[3]! & 0xf;
}
