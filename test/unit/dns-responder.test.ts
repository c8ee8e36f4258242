// The DNS responder against twins of the overlay's names and of an upstream resolver, on a simulated
// clock: .idloc answers (A, AAAA, NodeIDs, NXDOMAIN, no such type), one lookup for many queries, the cache
// and its expiry, forwarding with the client's id kept, only for this host's clients, truncation to what
// UDP may carry, and the bounds on lookups and forwarded queries.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SimScheduler } from '../../agent/base/scheduler.js';
import {
  DNS_ANSWER_MAX_TTL_S, DNS_FORWARD_IN_FLIGHT_MAX, DNS_LOOKUP_TIMEOUT_MS, DNS_LOOKUPS_IN_FLIGHT_MAX, DNS_NEGATIVE_TTL_S,
} from '../../agent/base/constants.js';
import { Zone } from '../../agent/dns/zone.js';
import { Forwarder, upstreamsOf, type Transport, type Upstream } from '../../agent/dns/forwarder.js';
import { Responder } from '../../agent/dns/responder.js';
import { BOB, NODE_ID, NamesTwin, UpstreamTwin, dataOf, decode, query } from './dns-helpers.js';

const LOCAL = { address: '100.87.0.1', over: 'udp' as const };
const TCP = { ...LOCAL, over: 'tcp' as const };
const UPSTREAMS: Upstream[] = [{ address: '10.0.0.53', port: 53 }, { address: '10.0.1.53', port: 53 }];

function setup(o: { upstreams?: Upstream[]; upstream?: UpstreamTwin } = {}) {
  const clock = new SimScheduler(1_000_000);
  const names = new NamesTwin();
  const upstream = o.upstream ?? new UpstreamTwin();
  let id = 7;
  const forwarder = new Forwarder({ upstreams: () => o.upstreams ?? UPSTREAMS, exchange: upstream, newId: () => id++ });
  const zone = new Zone(names, clock);
  const responder = new Responder({ zone, forwarder, isLocal: (a) => a === LOCAL.address || a === '127.0.0.1' });
  return { clock, names, upstream, zone, forwarder, responder, ask: (b: Buffer, c: { address: string; over: Transport } = LOCAL) => responder.handle(b, c) };
}

test('NAME.idloc: A and AAAA from the overlay, authoritative, with the client\'s id and spelling', async () => {
  const { ask, names } = setup();
  const a = decode(await ask(query('Bob.IDLOC', 'A', { id: 1234 })));
  assert.equal(a.id, 1234);
  assert.equal(a.type, 'response');
  assert.equal(a.rcode, 'NOERROR');
  assert.ok(a.flag_aa && a.flag_rd && a.flag_ra);
  assert.equal(a.questions![0]!.name, 'Bob.IDLOC', 'the question echoed as the client spelled it');
  assert.deepEqual(dataOf(a, 'A'), [BOB.ipv4]);
  assert.equal(a.answers![0]!.name, 'Bob.IDLOC');
  assert.equal((a.answers![0] as { ttl: number }).ttl, DNS_ANSWER_MAX_TTL_S, 'the record lives 900 s: capped');
  const aaaa = decode(await ask(query('bob.idloc', 'AAAA')));
  assert.deepEqual(dataOf(aaaa, 'AAAA'), [BOB.ipv6]);
  assert.deepEqual(names.asked, ['bob'], 'one lookup: the second question came from the cache');
});

test('<nodeid>.idloc answers the same way; a trailing dot and upper case do not matter', async () => {
  const { ask, names } = setup();
  const a = decode(await ask(query(`${NODE_ID.toUpperCase()}.idloc.`, 'A')));
  assert.deepEqual(dataOf(a, 'A'), [BOB.ipv4]);
  assert.equal(names.asked[0], NODE_ID);
});

test('unknown and impossible names: NXDOMAIN with the zone SOA; other types of a known name: NOERROR and no records', async () => {
  const { ask, names, responder } = setup();
  const nx = decode(await ask(query('nobody.idloc')));
  assert.equal(nx.rcode, 'NXDOMAIN');
  assert.equal(nx.answers!.length, 0);
  assert.equal(nx.authorities![0]!.type, 'SOA');
  assert.equal((nx.authorities![0] as { data: { minimum: number } }).data.minimum, DNS_NEGATIVE_TTL_S);
  for (const n of ['a.b.idloc', 'under_score.idloc', '-bob.idloc']) {
    assert.equal(decode(await ask(query(n))).rcode, 'NXDOMAIN', n);
  }
  assert.deepEqual(names.asked, ['nobody'], 'names nobody can hold are not looked up');
  const mx = decode(await ask(query('bob.idloc', 'MX')));
  assert.equal(mx.rcode, 'NOERROR');
  assert.equal(mx.answers!.length, 0);
  assert.equal(mx.authorities![0]!.type, 'SOA');
  const noV4 = decode(await ask(query('nov4.idloc', 'A')));
  assert.equal(noV4.rcode, 'NOERROR', 'a name whose owner holds no IPv4 claim has AAAA only');
  assert.equal(noV4.answers!.length, 0);
  const v6 = decode(await ask(query('nov4.idloc', 'AAAA')));
  assert.deepEqual(dataOf(v6, 'AAAA'), ['fd1d:10c0::7']);
  assert.equal((v6.answers![0] as { ttl: number }).ttl, DNS_NEGATIVE_TTL_S, 'without an IPv4 claim: kept only briefly, it may be stored in a moment');
  const apex = decode(await ask(query('idloc', 'SOA')));
  assert.equal(apex.rcode, 'NOERROR');
  assert.equal(apex.answers![0]!.type, 'SOA');
  assert.equal(decode(await ask(query('bob.idloc', 'A', { class: 'CH' }))).rcode, 'REFUSED');
  const s = responder.stats;
  assert.equal(s.nxdomain, 4);
  assert.equal(s.noData, 2);
  assert.equal(s.fromOverlay, 2);
  assert.equal(s.refused, 1);
});

test('A and AAAA asked at once share one lookup', async () => {
  const { ask, names } = setup();
  names.hold = true;
  const both = Promise.all([ask(query('bob.idloc', 'A')), ask(query('bob.idloc', 'AAAA')), ask(query('BOB.idloc', 'A'))]);
  await new Promise((r) => setImmediate(r));
  names.release();
  const [a, aaaa, again] = (await both).map(decode);
  assert.deepEqual(dataOf(a!, 'A'), [BOB.ipv4]);
  assert.deepEqual(dataOf(aaaa!, 'AAAA'), [BOB.ipv6]);
  assert.deepEqual(dataOf(again!, 'A'), [BOB.ipv4]);
  assert.deepEqual(names.asked, ['bob']);
});

test('the cache: answers for their lifetime (capped), counting down, then looked up again; "no such name" for a few seconds', async () => {
  const { ask, names, clock, responder } = setup();
  names.known.set('short', { ...BOB, ttlS: 30 });
  await ask(query('short.idloc'));
  clock.step(10_000);
  const mid = decode(await ask(query('short.idloc')));
  assert.equal((mid.answers![0] as { ttl: number }).ttl, 20, 'the TTL counts down');
  clock.step(20_000);
  await ask(query('short.idloc'));
  assert.deepEqual(names.asked, ['short', 'short'], 'looked up again once the record\'s lifetime ran out');

  await ask(query('bob.idloc'));
  clock.step((DNS_ANSWER_MAX_TTL_S - 1) * 1000);
  await ask(query('bob.idloc'));
  assert.equal(names.asked.filter((n) => n === 'bob').length, 1);
  clock.step(2_000);
  await ask(query('bob.idloc'));
  assert.equal(names.asked.filter((n) => n === 'bob').length, 2, 'at most DNS_ANSWER_MAX_TTL_S, whatever the record says');

  await ask(query('later.idloc'));
  names.known.set('later', BOB); // registered a moment after it was asked for
  assert.equal(decode(await ask(query('later.idloc'))).rcode, 'NXDOMAIN', 'the negative answer is kept');
  clock.step(DNS_NEGATIVE_TTL_S * 1000);
  assert.deepEqual(dataOf(decode(await ask(query('later.idloc'))), 'A'), [BOB.ipv4]);
  assert.equal(responder.stats.cacheHits, 3);
});

test('a lookup the overlay cannot answer gives SERVFAIL, is not kept, and is bounded in time and number', async () => {
  const { ask, names, clock, zone } = setup();
  names.known.set('flaky', 'unavailable');
  assert.equal(decode(await ask(query('flaky.idloc'))).rcode, 'SERVFAIL');
  names.known.set('flaky', BOB);
  assert.equal(decode(await ask(query('flaky.idloc'))).rcode, 'NOERROR', 'SERVFAIL was not cached');

  names.hold = true;
  const slow = ask(query('slow.idloc'));
  await clock.advance(DNS_LOOKUP_TIMEOUT_MS);
  assert.equal(decode(await slow).rcode, 'SERVFAIL');
  assert.equal(zone.stats.lookupsTimedOut, 1);

  const many = Array.from({ length: DNS_LOOKUPS_IN_FLIGHT_MAX }, (_, i) => ask(query(`n${i}.idloc`)));
  const over = decode(await ask(query('one-more.idloc')));
  assert.equal(over.rcode, 'SERVFAIL');
  assert.equal(zone.stats.lookupsBusy, 1);
  names.release();
  assert.ok((await Promise.all(many)).every((b) => decode(b).rcode === 'NXDOMAIN'));
});

test('other names are forwarded upstream under our own id and answered under the client\'s', async () => {
  const { ask, upstream, responder } = setup();
  const r = decode(await ask(query('www.example.test', 'A', { id: 999 })));
  assert.equal(r.id, 999);
  assert.deepEqual(dataOf(r, 'A'), ['192.0.2.1']);
  assert.equal(upstream.asked.length, 1);
  assert.equal(upstream.asked[0]!.id, 7, 'the upstream saw the forwarder\'s id');
  assert.deepEqual(upstream.asked[0]!.server, UPSTREAMS[0]);
  assert.equal(upstream.asked[0]!.over, 'udp');
  await ask(query('www.example.test'), TCP);
  assert.equal(upstream.asked[1]!.over, 'tcp', 'a TCP client\'s query goes upstream over TCP');
  assert.equal(responder.stats.forwarded, 2);
});

test('forwarding: a silent or lying upstream, then the next; none answers or none known: SERVFAIL', async () => {
  const liar = new UpstreamTwin((q, server) => server.address === '10.0.0.53'
    ? { type: 'response', id: q.id! ^ 1, questions: q.questions! } // wrong id: not an answer to our query
    : { type: 'response', id: q.id, questions: q.questions!, answers: [{ type: 'A', name: q.questions![0]!.name, ttl: 5, data: '192.0.2.99' }] });
  const { ask, forwarder } = setup({ upstream: liar });
  assert.deepEqual(dataOf(decode(await ask(query('x.example.test'))), 'A'), ['192.0.2.99']);
  assert.equal(forwarder.stats.upstreamMismatched, 1);
  assert.equal(forwarder.stats.upstreamNoAnswer, 1);
  const question = new UpstreamTwin((q) => ({ type: 'response', id: q.id, questions: [{ name: 'other.test', type: 'A' }] }));
  const s2 = setup({ upstream: question });
  assert.equal(decode(await s2.ask(query('x.example.test', 'A', { id: 5 }))).rcode, 'SERVFAIL', 'an answer to another question is no answer');
  assert.equal(s2.forwarder.stats.upstreamMismatched, 2);
  const none = setup({ upstreams: [] });
  const r = decode(await none.ask(query('x.example.test', 'A', { id: 77 })));
  assert.equal(r.rcode, 'SERVFAIL');
  assert.equal(r.id, 77);
  assert.equal(none.upstream.asked.length, 0);
});

test('only this host\'s clients are forwarded for (REFUSED to a peer); .idloc is answered for anyone', async () => {
  const { ask, upstream, responder } = setup();
  const peer = { address: '100.99.1.2', over: 'udp' as const };
  assert.equal(decode(await ask(query('www.example.test'), peer)).rcode, 'REFUSED');
  assert.equal(upstream.asked.length, 0);
  assert.equal(responder.stats.dropped.remoteForward, 1);
  assert.deepEqual(dataOf(decode(await ask(query('bob.idloc'), peer)), 'A'), [BOB.ipv4]);
});

test('UDP answers over 512 bytes are truncated (TC) unless EDNS offers more; TCP answers never', async () => {
  const { ask, responder } = setup();
  const plain = decode(await ask(query('big.example.test', 'A', { id: 31 })));
  assert.ok(plain.flag_tc, 'TC set');
  assert.equal(plain.id, 31);
  assert.equal(plain.answers!.length, 0);
  assert.equal(plain.questions![0]!.name, 'big.example.test');
  const raw = await ask(query('big.example.test', 'A', { edns: 1232 }));
  assert.ok(raw!.length > 512 && raw!.length <= 1232);
  const edns = decode(raw);
  assert.ok(!edns.flag_tc);
  assert.equal(edns.answers!.length, 30);
  const small = decode(await ask(query('big.example.test', 'A', { edns: 400 })));
  assert.ok(small.flag_tc, 'an EDNS size under 512 still allows 512, not more');
  assert.equal(decode(await ask(query('big.example.test'), TCP)).answers!.length, 30);
  assert.equal(responder.stats.truncated, 2);
});

test('forwarded queries in flight are bounded; the excess is dropped and counted', async () => {
  let release: () => void = () => {};
  const gate = new Promise<void>((r) => { release = r; });
  const slow = new UpstreamTwin();
  const exchange = slow.exchange.bind(slow);
  slow.exchange = (...args) => gate.then(() => exchange(...args));
  const { ask, responder } = setup({ upstream: slow });
  const pending = Array.from({ length: DNS_FORWARD_IN_FLIGHT_MAX }, (_, i) => ask(query(`q${i}.example.test`)));
  assert.equal(await ask(query('over.example.test')), undefined);
  assert.equal(responder.stats.dropped.forwardBusy, 1);
  release();
  assert.equal((await Promise.all(pending)).filter((b) => decode(b).rcode === 'NOERROR').length, DNS_FORWARD_IN_FLIGHT_MAX);
});

test('upstreams come from resolv.conf in order, our own addresses and non-addresses left out, at most three', () => {
  const conf = [
    '# generated', 'search lan', 'nameserver 100.87.0.1', 'nameserver 10.0.0.53', 'nameserver   FD00::0053 ',
    'nameserver resolver.example', 'nameserver 10.0.0.53', 'nameserver fe80::1%eth0', 'nameserver 192.0.2.9', 'options edns0',
  ].join('\n');
  const ours = (a: string) => a === '100.87.0.1';
  assert.deepEqual(upstreamsOf(conf, ours).map((u) => `${u.address} ${u.port}`), ['10.0.0.53 53', 'fd00::53 53', 'fe80::1%eth0 53']);
  assert.deepEqual(upstreamsOf('', ours), []);
});

test('messages that are not queries we can answer: dropped by reason, FORMERR or NOTIMP where the header can carry it', async () => {
  const { ask, responder } = setup();
  const q = query('bob.idloc');
  const response = Buffer.from(q); response[2]! |= 0x80;
  assert.equal(await ask(response), undefined, 'an answer is never answered');
  const notify = Buffer.from(q); notify[2] = (notify[2]! & 0x87) | (4 << 3);
  assert.equal(decode(await ask(notify)).rcode, 'NOTIMP');
  const two = Buffer.from(q); two.writeUInt16BE(2, 4);
  assert.equal(decode(await ask(two)).rcode, 'FORMERR');
  assert.equal(await ask(Buffer.alloc(5)), undefined);
  assert.equal(await ask(Buffer.alloc(2000)), undefined);
  const d = responder.stats.dropped;
  assert.deepEqual([d.notQuery, d.opcode, d.malformed + d.badQuestion, d.tooLarge], [1, 1, 2, 1]);
  assert.equal(responder.stats.queries, 5);
});
