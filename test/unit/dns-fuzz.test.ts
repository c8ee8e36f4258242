// Whatever a client sends the DNS responder — random bytes, valid queries cut short, bit-flipped, with
// bytes overwritten or counts changed — handle() never throws, answers at most one message, and every
// message lands in exactly one counter (an answer by kind, or a drop by reason). The TCP framer and the
// upstream answer check take arbitrary bytes the same way.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import dnsPacket from 'dns-packet';
import { SimScheduler } from '../../agent/base/scheduler.js';
import { Zone } from '../../agent/dns/zone.js';
import { Forwarder } from '../../agent/dns/forwarder.js';
import { Responder, type ResponderStats } from '../../agent/dns/responder.js';
import { TcpFrames } from '../../agent/dns/tcp-frames.js';
import { answersQuery, readQuery } from '../../agent/dns/wire.js';
import { NODE_ID, NamesTwin, UpstreamTwin, query } from './dns-helpers.js';

function responder(): Responder {
  const clock = new SimScheduler();
  // The upstream twin echoes the forwarded bytes back as an "answer" too, so hostile bytes also travel
  // the way back through the answer check.
  const upstream = new UpstreamTwin((q) => (q.questions?.[0]?.name.endsWith('echo.test') ? Buffer.from(dnsPacket.encode(q)) : undefined));
  const forwarder = new Forwarder({ upstreams: () => [{ address: '10.0.0.53', port: 53 }], exchange: upstream });
  return new Responder({ zone: new Zone(new NamesTwin(), clock), forwarder, isLocal: (a) => a === '127.0.0.1' });
}

function outcomes(s: ResponderStats): number {
  return s.fromOverlay + s.noData + s.nxdomain + s.servfail + s.refused + s.forwarded + Object.values(s.dropped).reduce((a, b) => a + b, 0);
}

/** Valid queries of many shapes: .idloc names and NodeIDs, forwarded names, EDNS or not, odd types. */
function seeds(): Buffer[] {
  const out: Buffer[] = [];
  for (const name of ['bob.idloc', `${NODE_ID}.idloc`, 'nobody.idloc', 'idloc', 'www.example.test', 'a.echo.test', 'x.y.idloc']) {
    for (const type of ['A', 'AAAA', 'MX', 'TXT', 'SOA'] as const) {
      out.push(query(name, type), query(name, type, { edns: 1232 }));
    }
  }
  out.push(dnsPacket.encode({
    type: 'query', id: 1, questions: [{ name: 'bob.idloc', type: 'A' }],
    additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 4096, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: true, options: [{ code: 12, length: 8 }] }],
  }));
  return out;
}

async function survives(r: Responder, msg: Uint8Array, over: 'udp' | 'tcp', address: string): Promise<void> {
  const before = r.stats.queries;
  const reply = await r.handle(msg, { address, over });
  assert.equal(r.stats.queries, before + 1);
  assert.equal(outcomes(r.stats), r.stats.queries, `every message counted once: ${JSON.stringify(r.stats)}`);
  assert.ok(reply === undefined || Buffer.isBuffer(reply));
  if (reply && over === 'udp') assert.ok(reply.length <= 1232, `UDP answer of ${reply.length} bytes`);
}

test('fuzz: random bytes never throw and are counted', async () => {
  const r = responder();
  await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 1400 }), fc.constantFrom('udp' as const, 'tcp' as const), fc.constantFrom('127.0.0.1', '100.99.0.1'),
    (b, over, address) => survives(r, b, over, address)), { numRuns: 2000 });
  assert.equal(r.stats.dropped.internal, 0, 'no message reached an unexpected exception');
});

test('fuzz: valid queries cut short, bit-flipped, overwritten or with other counts never throw and are counted', async () => {
  const r = responder();
  const all = seeds();
  const mutated = fc.tuple(fc.nat({ max: all.length - 1 }), fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 }), fc.nat({ max: 3 })), { maxLength: 6 }), fc.nat())
    .map(([i, edits, cut]) => {
      const b = Buffer.from(all[i]!);
      for (const [pos, val, kind] of edits) {
        const at = pos % b.length;
        if (kind === 0) b[at] = val;
        else if (kind === 1) b[at]! ^= 1 << (val % 8);
        else if (kind === 2 && b.length >= 12) b.writeUInt16BE(val, 4 + 2 * (val % 4)); // a section count
        else b[at] = 0xc0; // a compression pointer where a label was
      }
      return cut % 4 === 0 ? b.subarray(0, cut % (b.length + 1)) : b;
    });
  await fc.assert(fc.asyncProperty(mutated, fc.constantFrom('udp' as const, 'tcp' as const), (b, over) => survives(r, b, over, '127.0.0.1')), { numRuns: 3000 });
  assert.ok(r.stats.fromOverlay + r.stats.nxdomain + r.stats.forwarded > 0, 'some mutations still answer');
  assert.equal(r.stats.dropped.internal, 0, 'no message reached an unexpected exception');
});

test('fuzz: the TCP framer and the upstream answer check take arbitrary bytes', () => {
  const q = readQuery(query('www.example.test'));
  assert.ok('query' in q);
  fc.assert(fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 8 }), fc.integer({ min: 1, max: 1232 }), (chunks, max) => {
    const f = new TcpFrames(max);
    for (const c of chunks) {
      const got = f.push(c);
      if (got === 'bad') break;
      assert.ok(got.every((m) => m.length >= 1 && m.length <= max));
      assert.ok(f.buffered <= max + 1);
    }
    for (const c of chunks) assert.equal(typeof answersQuery(c, 4242, q.query.question), 'boolean');
  }), { numRuns: 2000 });
});
