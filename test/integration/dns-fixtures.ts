// Two small DNS programs for dns.test.ts, run inside lab hosts (the lab has no internet and no dig):
//   node dns-fixtures.js upstream --port 53
//       a resolver for the simulated internet: every name under example.test has A 192.0.2.10 and
//       AAAA 2001:db8::10, anything else is NXDOMAIN; UDP and TCP; prints "dns-upstream: listening" once
//       bound and one line per query ("query ID NAME TYPE udp|tcp from ADDRESS").
//   node dns-fixtures.js ask SERVER NAME TYPE [udp|tcp] [ID]
//       one query (id ID, default 4242); prints one JSON line with the answer, or {"error":...}; exit 0.
import { createSocket } from 'node:dgram';
import { connect, createServer } from 'node:net';
import dnsPacket from 'dns-packet';
import type { DecodedPacket, Packet, RecordType } from 'dns-packet';
import { TcpFrames, frame } from '../../agent/dns/tcp-frames.js';

export const UPSTREAM_A = '192.0.2.10';
export const UPSTREAM_AAAA = '2001:db8::10';

export interface Asked {
  id: number; rcode: string; aa: boolean; tc: boolean;
  answers: { type: string; data: unknown; ttl: number | undefined }[];
  authorities: string[];
}

function answerFor(q: DecodedPacket): Packet {
  const question = q.questions![0]!;
  const ours = /(^|\.)example\.test$/i.test(question.name);
  const data = question.type === 'A' ? UPSTREAM_A : question.type === 'AAAA' ? UPSTREAM_AAAA : undefined;
  return {
    type: 'response', id: q.id, flags: dnsPacket.RECURSION_AVAILABLE | (ours ? 0 : 3), questions: [question],
    answers: ours && data ? [{ type: question.type as 'A', name: question.name, ttl: 30, data }] : [],
  };
}

function upstream(port: number): void {
  const log = (q: DecodedPacket, over: string, from: string) =>
    process.stdout.write(`query ${q.id} ${q.questions?.[0]?.name} ${q.questions?.[0]?.type} ${over} from ${from}\n`);
  const udp = createSocket('udp4');
  udp.on('message', (m, from) => {
    try {
      const q = dnsPacket.decode(m);
      log(q, 'udp', from.address);
      udp.send(dnsPacket.encode(answerFor(q)), from.port, from.address);
    } catch { /* not a query: no answer */ }
  });
  const tcp = createServer((c) => {
    const frames = new TcpFrames(65_535);
    c.on('error', () => c.destroy());
    c.on('data', (d) => {
      const msgs = frames.push(d);
      if (msgs === 'bad') { c.destroy(); return; }
      for (const m of msgs) {
        const q = dnsPacket.decode(m);
        log(q, 'tcp', c.remoteAddress ?? '?');
        c.write(frame(dnsPacket.encode(answerFor(q)))!);
      }
    });
  });
  udp.bind(port, () => tcp.listen(port, () => process.stdout.write('dns-upstream: listening\n')));
}

function ask(server: string, name: string, type: RecordType, over: string, id: number): void {
  const msg = dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type }] });
  const done = (b: Buffer | undefined, error?: string) => {
    if (!b) { process.stdout.write(JSON.stringify({ error: error ?? 'no answer within 5 s' }) + '\n'); process.exit(0); }
    const p = dnsPacket.decode(b) as DecodedPacket & { rcode: string };
    const out: Asked = {
      id: p.id!, rcode: p.rcode, aa: p.flag_aa, tc: p.flag_tc,
      answers: (p.answers ?? []).map((a) => ({ type: a.type, data: (a as { data: unknown }).data, ttl: (a as { ttl?: number }).ttl })),
      authorities: (p.authorities ?? []).map((a) => a.type),
    };
    process.stdout.write(JSON.stringify(out) + '\n');
    process.exit(0);
  };
  setTimeout(() => done(undefined), 5_000);
  if (over === 'tcp') {
    const c = connect({ host: server, port: 53 });
    const frames = new TcpFrames(65_535);
    c.on('error', (e) => done(undefined, e.message));
    c.on('connect', () => c.write(frame(msg)!));
    c.on('data', (d) => { const m = frames.push(d); if (m !== 'bad' && m[0]) done(m[0]); });
  } else {
    const s = createSocket(server.includes(':') ? 'udp6' : 'udp4');
    s.on('error', (e) => done(undefined, e.message));
    s.on('message', (m) => done(m));
    s.send(msg, 53, server);
  }
}

const [mode, ...rest] = process.argv.slice(2);
if (mode === 'upstream') upstream(Number(rest[1] ?? 53));
else if (mode === 'ask') ask(rest[0]!, rest[1]!, (rest[2] ?? 'A') as RecordType, rest[3] ?? 'udp', Number(rest[4] ?? 4242));
else if (process.argv[1]?.endsWith('dns-fixtures.js')) { process.stderr.write('usage: dns-fixtures.js upstream --port N | ask SERVER NAME TYPE [udp|tcp] [ID]\n'); process.exit(2); }
