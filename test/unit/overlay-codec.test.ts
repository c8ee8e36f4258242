// The overlay wire protocol (agent/overlay/codec.ts): round trips for every message kind, golden bytes
// checked by hand against the layout drawn in codec.ts, malformed input, and the relay helpers.
import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  OVERLAY_MAX_CONTACTS, OVERLAY_MAX_DATAGRAM, OVERLAY_MAX_DESTINATIONS, OVERLAY_MAX_ENDPOINTS, OVERLAY_MAX_RECORDS,
  OVERLAY_MAX_TLVS, OVERLAY_MAX_VIA,
} from '../../agent/base/constants.js';
import { nodeIdFromPublicKey } from '../../agent/idloc/addresses.js';
import { classifyDatagram } from '../../agent/nat/demux.js';
import {
  answerDestinations, encodedLength, forwardHop, forwardMessage, fromSocketEndpoint, idMatchesKey, isAnswer,
  marshalOverlayMessage, parseOverlayMessage, parseRoute, toSocketEndpoint, trimToFit,
  type Body, type Destination, type OverlayContact, type OverlayEndpoint, type OverlayHeader, type OverlayMessage,
} from '../../agent/overlay/codec.js';

/** fc.record with ordinary prototypes, so deepStrictEqual compares them with parsed objects. */
const rec = <T>(m: { [K in keyof T]: fc.Arbitrary<T[K]> }) => fc.record(m, { noNullPrototype: true });
const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
const id = bytes(20);
const u16 = fc.integer({ min: 0, max: 0xffff });
const hex = (s: string) => new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const rep = (byte: string, n: number) => byte.repeat(n);
/** Parse a plain copy, so parsed views are Uint8Arrays (not Buffers) and compare deep-equal to the input. */
const reparse = (b: Uint8Array) => unsigned(parseOverlayMessage(new Uint8Array(b)));
/** A parsed message without what only parsing gives (the signature and where it sits), to compare with the
 *  message it was marshalled from. */
function unsigned(m: OverlayMessage | undefined): OverlayMessage | undefined {
  if (!m) return m;
  const { signature: _s, signatureAt: _a, ...rest } = m;
  return rest as OverlayMessage;
}

// ---- arbitraries ---------------------------------------------------------------------------------

const endpoint: fc.Arbitrary<OverlayEndpoint> = rec({ address: fc.oneof(bytes(4), bytes(16)), port: u16 });
const contact: fc.Arbitrary<OverlayContact> = rec({
  nodeId: id, publicKey: bytes(32), endpoints: fc.array(endpoint, { maxLength: OVERLAY_MAX_ENDPOINTS }),
});
const contacts = fc.array(contact, { maxLength: 6 });
const record = fc.uint8Array({ maxLength: 40 });
const records = (min: number) => fc.array(record, { minLength: min, maxLength: OVERLAY_MAX_RECORDS });
const reason = fc.string({ unit: 'grapheme', maxLength: 24 }).filter((s) => Buffer.byteLength(s) <= 128);

const bodies: Record<Body['kind'], fc.Arbitrary<Body>> = {
  'ping': fc.constant({ kind: 'ping' }),
  'pong': fc.option(endpoint, { nil: undefined }).map((o): Body => (o ? { kind: 'pong', observed: o } : { kind: 'pong' })),
  'find-node': id.map((target): Body => ({ kind: 'find-node', target })),
  'find-node-answer': contacts.map((c): Body => ({ kind: 'find-node-answer', contacts: c })),
  'fetch': rec({ resource: id, recordKind: u16 }).map((r): Body => ({ kind: 'fetch', ...r })),
  'fetch-answer': rec({ records: records(0), contacts }).map((r): Body => ({ kind: 'fetch-answer', ...r })),
  'store': rec({ resource: id, recordKind: u16, records: records(1) }).map((r): Body => ({ kind: 'store', ...r })),
  'store-answer': fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: OVERLAY_MAX_RECORDS })
    .map((statuses): Body => ({ kind: 'store-answer', statuses })),
  'attach': fc.uint8Array({ maxLength: 300 }).map((blob): Body => ({ kind: 'attach', blob })),
  'attach-answer': fc.uint8Array({ maxLength: 300 }).map((blob): Body => ({ kind: 'attach-answer', blob })),
  'leave': fc.constant({ kind: 'leave' }),
  'leave-answer': fc.constant({ kind: 'leave-answer' }),
  'error': rec({ method: u16, code: u16, reason }).map((r): Body => ({ kind: 'error', ...r })),
};

const destination: fc.Arbitrary<Destination> = rec({ type: fc.constantFrom('node' as const, 'resource' as const), id });
const header: fc.Arbitrary<OverlayHeader> = rec({
  ttl: fc.integer({ min: 0, max: 255 }),
  txid: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  via: fc.array(id, { maxLength: OVERLAY_MAX_VIA }),
  dest: fc.array(destination, { maxLength: OVERLAY_MAX_DESTINATIONS }),
  sender: rec({ nodeId: id, publicKey: bytes(32), puzzleNonce: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }) }),
});
const messageOf = (b: fc.Arbitrary<Body>) =>
  fc.tuple(header, b).map(([h, body]) => ({ ...h, ...body }) as OverlayMessage).filter((m) => encodedLength(m) <= OVERLAY_MAX_DATAGRAM);
const anyMessage = messageOf(fc.oneof(...Object.values(bodies)));

// ---- round trips -----------------------------------------------------------------------------------

for (const [kind, body] of Object.entries(bodies)) {
  test(`${kind} round-trips`, () => {
    fc.assert(fc.property(messageOf(body), (m) => {
      const b = marshalOverlayMessage(m);
      assert.equal(b.length, encodedLength(m));
      assert.equal(classifyDatagram(b[0]), 'overlay');
      assert.deepStrictEqual(reparse(b), m);
    }), { numRuns: 60 });
  });
}

// ---- golden bytes ------------------------------------------------------------------------------------

const S = { nodeId: hex(rep('11', 20)), publicKey: hex(rep('22', 32)), puzzleNonce: 0x3333333333333333n };
const SENDER_TLV = `0001 003c ${rep('11', 20)} ${rep('22', 32)} ${rep('33', 8)}`; // 4 + 60 = 64 bytes
/** Marshalled without a signing function: a SIGNATURE of zeros, last (4 + 64 = 68 bytes). */
const SIG_TLV = `000c 0040 ${rep('00', 64)}`;
const SIG_LEN = 68;
const PING_LEN = 21 + 2 + 64 + SIG_LEN;
const TXID = 0x0102030405060708n;
/** token, version 2, TTL 8, flags, code, txid, length (21 bytes). */
const hdr = (flags: string, code: string, len: string) => `d249444c 02 08 ${flags} ${code} 0102030405060708 ${len}`;
const base = { ttl: 8, txid: TXID, via: [] as Uint8Array[], dest: [] as Destination[], sender: S };

// Lengths: header 21, Via and destination counts (+ entries), SENDER 64, the body's TLVs, SIGNATURE 68.
const golden: Array<[OverlayMessage, string]> = [
  [{ ...base, via: [hex(rep('aa', 20))], dest: [{ type: 'node', id: hex(rep('bb', 20)) }], kind: 'ping' },
    `${hdr('00', '0001', '000000c4')} 01 ${rep('aa', 20)} 01 01 ${rep('bb', 20)} ${SENDER_TLV} ${SIG_TLV}`],
  [{ ...base, kind: 'pong', observed: { address: hex('c0000201'), port: 4500 } },
    `${hdr('01', '0001', '000000a6')} 00 00 ${SENDER_TLV} 0009 0007 04 c0000201 1194 ${SIG_TLV}`],
  [{ ...base, kind: 'find-node', target: hex(rep('cc', 20)) },
    `${hdr('00', '0002', '000000b3')} 00 00 ${SENDER_TLV} 0002 0014 ${rep('cc', 20)}${SIG_TLV}`],
  [{ ...base, kind: 'find-node-answer', contacts: [{ nodeId: hex(rep('dd', 20)), publicKey: hex(rep('ee', 32)), endpoints: [
    { address: hex('c6336407'), port: 4500 }, { address: hex('20010db8000000000000000000000001'), port: 4501 }] }] },
  `${hdr('01', '0002', '000000ef')} 00 00 ${SENDER_TLV} 0003 0050 01 ${rep('dd', 20)} ${rep('ee', 32)} 02
     04 c6336407 1194  06 20010db8000000000000000000000001 1195 ${SIG_TLV}`],
  [{ ...base, kind: 'fetch', resource: hex(rep('ff', 20)), recordKind: 3 },
    `${hdr('00', '0003', '000000b5')} 00 00 ${SENDER_TLV} 0004 0016 ${rep('ff', 20)} 0003 ${SIG_TLV}`],
  [{ ...base, kind: 'fetch-answer', records: [hex('0102'), hex('030405')], contacts: [] },
    `${hdr('01', '0003', '000000a8')} 00 00 ${SENDER_TLV} 0005 0002 0102 0005 0003 030405 ${SIG_TLV}`],
  [{ ...base, kind: 'store', resource: hex(rep('ff', 20)), recordKind: 1, records: [hex('abcd')] },
    `${hdr('00', '0004', '000000bb')} 00 00 ${SENDER_TLV} 0004 0016 ${rep('ff', 20)} 0001 0005 0002 abcd ${SIG_TLV}`],
  [{ ...base, kind: 'store-answer', statuses: [0, 1] },
    `${hdr('01', '0004', '000000a1')} 00 00 ${SENDER_TLV} 0006 0002 00 01 ${SIG_TLV}`],
  [{ ...base, kind: 'attach', blob: hex('deadbeef') },
    `${hdr('00', '0005', '000000a3')} 00 00 ${SENDER_TLV} 0007 0004 deadbeef ${SIG_TLV}`],
  [{ ...base, kind: 'attach-answer', blob: hex('cafe') },
    `${hdr('01', '0005', '000000a1')} 00 00 ${SENDER_TLV} 0007 0002 cafe ${SIG_TLV}`],
  [{ ...base, dest: [{ type: 'resource', id: hex(rep('99', 20)) }], kind: 'leave' },
    `${hdr('00', '0006', '000000b0')} 00 01 02 ${rep('99', 20)} ${SENDER_TLV} ${SIG_TLV}`],
  [{ ...base, kind: 'leave-answer' }, `${hdr('01', '0006', '0000009b')} 00 00 ${SENDER_TLV} ${SIG_TLV}`],
  [{ ...base, kind: 'error', method: 4, code: 2, reason: 'no' },
    `${hdr('03', '0004', '000000a3')} 00 00 ${SENDER_TLV} 0008 0004 0002 6e6f ${SIG_TLV}`],
];

test('golden bytes: one message of each kind, as drawn in codec.ts', () => {
  assert.equal(new Set(golden.map(([m]) => m.kind)).size, Object.keys(bodies).length);
  for (const [m, want] of golden) {
    const b = marshalOverlayMessage(m);
    assert.equal(Buffer.from(b).toString('hex'), Buffer.from(hex(want)).toString('hex'), m.kind);
    assert.deepStrictEqual(reparse(hex(want)), m, m.kind);
  }
});

// ---- malformed input -----------------------------------------------------------------------------------

test('random bytes never throw and never parse', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (raw) => {
    assert.equal(parseOverlayMessage(raw), undefined);
    assert.equal(forwardHop(raw, new Uint8Array(20)), undefined);
  }), { numRuns: 1000 });
});

test('random bodies behind a valid header never throw; what parses re-marshals to the same message', () => {
  fc.assert(fc.property(fc.constantFrom('00', '01', '03'), fc.integer({ min: 0, max: 8 }), fc.uint8Array({ maxLength: 200 }),
    fc.array(fc.tuple(fc.constantFrom(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0x8001), fc.uint8Array({ maxLength: 60 }))), (flags, code, tail, tlvs) => {
      const tlvBytes = Buffer.concat(tlvs.map(([t, v]) => Buffer.concat([Buffer.of(t >> 8, t & 0xff, v.length >> 8, v.length & 0xff), v])));
      const body = Buffer.concat([Buffer.of(0, 0), Buffer.from(hex(SENDER_TLV)), tlvBytes, tail.length % 3 === 0 ? Buffer.alloc(0) : tail]);
      const b = Buffer.concat([Buffer.from(hex(hdr(flags, code.toString(16).padStart(4, '0'), '00000000'))), body]);
      b.writeUInt32BE(b.length, 17);
      const m = reparse(b);
      if (m) assert.deepStrictEqual(reparse(marshalOverlayMessage(m)), m);
    }), { numRuns: 1000 });
});

test('every truncation and every extension of a valid message is refused', () => {
  fc.assert(fc.property(anyMessage, (m) => {
    const b = marshalOverlayMessage(m);
    for (let n = 0; n < b.length; n++) assert.equal(parseOverlayMessage(b.subarray(0, n)), undefined, `cut at ${n}`);
    for (const extra of [Buffer.of(0), Buffer.of(0, 0, 0, 0)]) {
      const longer = Buffer.concat([b, extra]);
      assert.equal(parseOverlayMessage(longer), undefined, 'trailing garbage');
      longer.writeUInt32BE(longer.length, 17);
      // With the length field fixed up, one byte is still no TLV; four zero bytes are an empty TLV of the
      // unknown type 0, which is skipped elsewhere but not after SIGNATURE (only ORIGIN may follow it).
      assert.equal(parseOverlayMessage(longer), undefined);
    }
  }), { numRuns: 40 });
});

test('bit flips never throw; whatever still parses is canonical again', () => {
  fc.assert(fc.property(anyMessage, fc.nat(), fc.integer({ min: 0, max: 7 }), (m, pos, bitNo) => {
    const b = marshalOverlayMessage(m);
    const i = pos % b.length;
    b[i]! ^= 1 << bitNo;
    const p = reparse(b);
    if (i < 5 || (i >= 17 && i < 21)) assert.equal(p, undefined, 'token, version and length are checked');
    if (p) assert.deepStrictEqual(reparse(marshalOverlayMessage(p)), p);
    forwardHop(b, m.sender.nodeId);
  }), { numRuns: 1500 });
});

/** A valid PING with `extra` (as TLV bytes) before its SIGNATURE, the length field fixed. */
function pingWith(extra: string, patch?: (b: Buffer) => void): Buffer {
  const ping = marshalOverlayMessage({ ...base, kind: 'ping' });
  const at = ping.length - SIG_LEN;
  const b = Buffer.concat([ping.subarray(0, at), Buffer.from(hex(extra)), ping.subarray(at)]);
  b.writeUInt32BE(b.length, 17);
  patch?.(b);
  return b;
}

test('header and list checks', () => {
  assert.ok(parseOverlayMessage(pingWith('')));
  assert.equal(parseOverlayMessage(pingWith('', (b) => { b[4] = 3; })), undefined, 'unknown version');
  assert.equal(parseOverlayMessage(pingWith('', (b) => { b[1] = 0; })), undefined, 'token');
  assert.equal(parseOverlayMessage(pingWith('', (b) => { b[6] = 0x04; })), undefined, 'reserved flag');
  assert.equal(parseOverlayMessage(pingWith('', (b) => { b[6] = 0x02; })), undefined, 'error flag without response');
  assert.equal(parseOverlayMessage(pingWith('', (b) => { b[8] = 7; })), undefined, 'unknown method');
  assert.equal(parseOverlayMessage(pingWith('', (b) => { b[21] = OVERLAY_MAX_VIA + 1; })), undefined, 'Via count');
  assert.equal(parseOverlayMessage(pingWith('', (b) => { b[22] = 1; })), undefined, 'dest count past the end');
  // A destination of unknown type 3.
  const d = marshalOverlayMessage({ ...base, kind: 'ping', dest: [{ type: 'node', id: new Uint8Array(20) }] });
  d[23] = 3;
  assert.equal(parseOverlayMessage(d), undefined, 'destination type');
  // Oversize: a datagram over the limit is refused even if well formed.
  const big = pingWith(`0100 ${(OVERLAY_MAX_DATAGRAM - PING_LEN - 4 + 1).toString(16).padStart(4, '0')} ${rep('00', OVERLAY_MAX_DATAGRAM - PING_LEN - 4 + 1)}`);
  assert.equal(big.length, OVERLAY_MAX_DATAGRAM + 1);
  assert.equal(parseOverlayMessage(big), undefined, 'over OVERLAY_MAX_DATAGRAM');
  assert.ok(parseOverlayMessage(big.subarray(0, 0)) === undefined);
});

test('TLV rules: unknown skipped unless critical, no duplicates, no strays, bounded count', () => {
  assert.deepStrictEqual(reparse(pingWith('0100 0003 010203')), { ...base, kind: 'ping' }, 'unknown non-critical skipped');
  assert.deepStrictEqual(reparse(pingWith('7fff 0000')), { ...base, kind: 'ping' });
  assert.equal(parseOverlayMessage(pingWith('8100 0003 010203')), undefined, 'unknown critical');
  assert.equal(parseOverlayMessage(pingWith('8000 0000')), undefined, 'critical type 0');
  assert.equal(parseOverlayMessage(pingWith(SENDER_TLV)), undefined, 'second SENDER');
  assert.equal(parseOverlayMessage(pingWith(`0002 0014 ${rep('cc', 20)}`)), undefined, 'TARGET in a PING');
  assert.equal(parseOverlayMessage(pingWith('0100 0005 0102')), undefined, 'TLV past the end');
  assert.ok(parseOverlayMessage(pingWith('0100 0000'.repeat(OVERLAY_MAX_TLVS - 2))), 'at the TLV limit');
  assert.equal(parseOverlayMessage(pingWith('0100 0000'.repeat(OVERLAY_MAX_TLVS - 1))), undefined, 'over the TLV limit');
  // SIGNATURE: exactly once, last but for a forwarder's ORIGIN; nothing else after it, ORIGIN not before it
  const ping = marshalOverlayMessage({ ...base, kind: 'ping' });
  assert.equal(parseOverlayMessage(ping.subarray(0, ping.length - SIG_LEN).map((x, i) => (i === 20 ? x - SIG_LEN : x))), undefined, 'no SIGNATURE');
  assert.equal(parseOverlayMessage(pingWith(SIG_TLV)), undefined, 'two SIGNATUREs');
  const after = (tlv: string) => { const b = Buffer.concat([ping, Buffer.from(hex(tlv))]); b.writeUInt32BE(b.length, 17); return b; };
  assert.ok(parseOverlayMessage(after('000d 0007 04 c0000201 1194'))?.originObserved, 'ORIGIN after SIGNATURE');
  assert.equal(parseOverlayMessage(after('0100 0000')), undefined, 'an unknown TLV after SIGNATURE');
  assert.equal(parseOverlayMessage(pingWith('000d 0007 04 c0000201 1194')), undefined, 'ORIGIN before SIGNATURE');
  assert.equal(parseOverlayMessage(pingWith('000b 0002 0001')), undefined, 'PADDING that is not zeros');
  assert.ok(parseOverlayMessage(pingWith('000b 0002 0000')), 'PADDING of zeros');
  assert.equal(parseOverlayMessage(pingWith('000a 0003 010203')), undefined, 'a COOKIE of the wrong size');
  // No SENDER at all.
  const noSender = Buffer.from(hex(`${hdr('00', '0001', '00000017')} 00 00`));
  assert.equal(parseOverlayMessage(noSender), undefined);
  // Missing required TLV: FIND_NODE without TARGET.
  assert.equal(parseOverlayMessage(pingWith('', (b) => { b[8] = 2; })), undefined);
  // Wrong sizes inside values.
  const fn = (v: string) => pingWith(v, (b) => { b[6] = 1; b[8] = 2; });
  assert.ok(parseOverlayMessage(fn('0003 0001 00')), 'empty contact list');
  assert.equal(parseOverlayMessage(fn(`0003 0001 ${(OVERLAY_MAX_CONTACTS + 1).toString(16)}`)), undefined, 'too many contacts');
  assert.equal(parseOverlayMessage(fn(`0003 0036 01 ${rep('dd', 20)} ${rep('ee', 32)} 01`)), undefined, 'endpoint missing');
  assert.equal(parseOverlayMessage(fn(`0003 003d 01 ${rep('dd', 20)} ${rep('ee', 32)} 01 05 01020304 0001`)), undefined, 'family 5');
  assert.equal(parseOverlayMessage(fn(`0003 0036 01 ${rep('dd', 20)} ${rep('ee', 32)} 00 ff`)), undefined, 'slack in contacts');
  assert.equal(parseOverlayMessage(fn(`0003 0036 01 ${rep('dd', 20)} ${rep('ee', 32)} 05`)), undefined, 'too many endpoints');
  // STORE answer statuses: 1..16.
  const sa = (v: string) => pingWith(v, (b) => { b[6] = 1; b[8] = 4; });
  assert.ok(parseOverlayMessage(sa('0006 0001 00')));
  assert.equal(parseOverlayMessage(sa('0006 0000')), undefined);
  assert.equal(parseOverlayMessage(sa(`0006 0011 ${rep('00', 17)}`)), undefined);
  // ERROR reason limit; bad UTF-8 decodes to U+FFFD without throwing.
  const er = (v: string) => pingWith(v, (b) => { b[6] = 3; });
  assert.equal(parseOverlayMessage(er(`0008 0082 0001 ${rep('61', 128)}`))?.kind, 'error');
  assert.equal(parseOverlayMessage(er(`0008 0083 0001 ${rep('61', 129)}`)), undefined);
  const bad = parseOverlayMessage(er('0008 0003 0001 ff'));
  assert.ok(bad?.kind === 'error' && bad.reason === '\ufffd');
  // STORE: 17 records is over the limit.
  const st = (n: number) => pingWith(`0004 0016 ${rep('ff', 20)} 0001 ${'0005 0000'.repeat(n)}`, (b) => { b[8] = 4; });
  assert.ok(parseOverlayMessage(st(OVERLAY_MAX_RECORDS)));
  assert.equal(parseOverlayMessage(st(OVERLAY_MAX_RECORDS + 1)), undefined);
  assert.equal(parseOverlayMessage(st(0)), undefined, 'STORE with no record');
});

test('marshal refuses what parse would refuse', () => {
  const m = (body: Body, h: Partial<OverlayHeader> = {}) => () => marshalOverlayMessage({ ...base, ...h, ...body } as OverlayMessage);
  assert.throws(m({ kind: 'find-node', target: new Uint8Array(19) }), RangeError);
  assert.throws(m({ kind: 'ping' }, { ttl: 256 }), RangeError);
  assert.throws(m({ kind: 'ping' }, { txid: 2n ** 64n }), RangeError);
  assert.throws(m({ kind: 'ping' }, { via: Array.from({ length: OVERLAY_MAX_VIA + 1 }, () => new Uint8Array(20)) }), RangeError);
  assert.throws(m({ kind: 'store', resource: new Uint8Array(20), recordKind: 1, records: [] }), RangeError);
  assert.throws(m({ kind: 'store-answer', statuses: [256] }), RangeError);
  assert.throws(m({ kind: 'error', method: 1, code: 1, reason: 'x'.repeat(129) }), RangeError);
  assert.throws(m({ kind: 'attach', blob: new Uint8Array(OVERLAY_MAX_DATAGRAM) }), RangeError);
  assert.throws(m({ kind: 'pong', observed: { address: new Uint8Array(5), port: 1 } }), RangeError);
});

// ---- sizes ---------------------------------------------------------------------------------------------

test('k contacts with one IPv4 endpoint fit a datagram; with IPv6 trimToFit drops the farthest', () => {
  const c = (i: number, address: Uint8Array): OverlayContact => ({ nodeId: new Uint8Array(20).fill(i), publicKey: new Uint8Array(32), endpoints: [{ address, port: 4500 }] });
  const v4 = { ...base, kind: 'find-node-answer' as const, contacts: Array.from({ length: OVERLAY_MAX_CONTACTS }, (_, i) => c(i, new Uint8Array(4))) };
  assert.ok(encodedLength(v4) <= OVERLAY_MAX_DATAGRAM);
  assert.equal(trimToFit(v4), v4);
  const v6 = { ...v4, contacts: Array.from({ length: OVERLAY_MAX_CONTACTS }, (_, i) => c(i, new Uint8Array(16))) };
  assert.throws(() => marshalOverlayMessage(v6), RangeError);
  const t = trimToFit(v6)!;
  assert.ok(t.contacts.length < OVERLAY_MAX_CONTACTS && t.contacts.length >= 15);
  assert.deepStrictEqual(t.contacts, v6.contacts.slice(0, t.contacts.length));
  assert.ok(marshalOverlayMessage(t).length <= OVERLAY_MAX_DATAGRAM);
  assert.equal(trimToFit({ ...base, kind: 'attach', blob: new Uint8Array(OVERLAY_MAX_DATAGRAM) }), undefined);
});

// ---- routing --------------------------------------------------------------------------------------------

const isRequest = (m: OverlayMessage) => !['pong', 'find-node-answer', 'fetch-answer', 'store-answer', 'attach-answer', 'leave-answer', 'error'].includes(m.kind);

test('isAnswer follows the response flag', () => {
  for (const [m, want] of golden) assert.equal(isAnswer(m), (want.replace(/\s+/g, '').slice(12, 14)) !== '00', m.kind);
});

test('forwardHop (bytes) and forwardMessage agree: TTL - 1, Via + self for requests, own destination popped', () => {
  fc.assert(fc.property(anyMessage, id, fc.boolean(), (m0, self, selfFirst) => {
    const m = selfFirst && m0.dest.length > 0 ? { ...m0, dest: [{ type: 'node' as const, id: self }, ...m0.dest.slice(1)] } : m0;
    const b = marshalOverlayMessage(m);
    const fb = forwardHop(b, self);
    const fm = forwardMessage(m, self);
    const loop = isRequest(m) && m.via.some((v) => Buffer.compare(v, self) === 0);
    if (m.ttl === 0 || (isRequest(m) && m.via.length >= OVERLAY_MAX_VIA) || loop) {
      assert.equal(fb, undefined);
      assert.equal(fm, undefined);
      return;
    }
    assert.equal(fb === undefined, fm === undefined);
    if (!fm || !fb) return; // would outgrow the datagram
    assert.deepStrictEqual(reparse(fb), fm);
    assert.equal(fm.ttl, m.ttl - 1);
    assert.deepStrictEqual(fm.via, isRequest(m) ? [...m.via, self] : m.via);
    assert.equal(fm.dest.length, m.dest.length - (selfFirst && m.dest.length > 0 ? 1 : 0));
  }), { numRuns: 300 });
});

test('forwardHop refuses TTL 0 and a full Via list, and keeps unknown TLVs it cannot parse', () => {
  const self = new Uint8Array(20).fill(7);
  assert.equal(forwardHop(marshalOverlayMessage({ ...base, ttl: 0, kind: 'ping' }), self), undefined);
  const one = forwardHop(marshalOverlayMessage({ ...base, ttl: 1, kind: 'ping' }), self)!;
  assert.equal(reparse(one)?.ttl, 0);
  assert.equal(forwardHop(one, self), undefined, 'dropped at TTL 0');
  const full = { ...base, ttl: 9, kind: 'ping' as const, via: Array.from({ length: OVERLAY_MAX_VIA }, () => new Uint8Array(20)) };
  assert.equal(forwardHop(marshalOverlayMessage(full), self), undefined);
  assert.equal(forwardHop(forwardHop(marshalOverlayMessage({ ...base, kind: 'ping' }), self)!, self), undefined, 'loop');
  const withExt = pingWith('0100 0002 abcd');
  const fwd = forwardHop(withExt, self)!;
  assert.equal(Buffer.from(fwd.subarray(fwd.length - SIG_LEN - 6, fwd.length - SIG_LEN)).toString('hex'), '01000002abcd');
  // A relay does not need to know the method: code 99 is relayed as is, though we cannot parse it.
  const future = pingWith('', (b) => { b[8] = 99; });
  assert.equal(parseOverlayMessage(future), undefined);
  assert.equal(parseRoute(forwardHop(future, self)!)?.code, 99);
});

test('an ATTACH relayed A -> R1 -> R2 -> B, and its answer back along the Via list', () => {
  const [A, R1, R2, B] = [1, 2, 3, 4].map((i) => new Uint8Array(20).fill(i)) as [Uint8Array, Uint8Array, Uint8Array, Uint8Array];
  const req: OverlayMessage = { ttl: 8, txid: 42n, via: [], dest: [{ type: 'node', id: B }], sender: { nodeId: A, publicKey: new Uint8Array(32) }, kind: 'attach', blob: hex('0102') };
  let wire: Uint8Array = marshalOverlayMessage(req);
  wire = forwardHop(wire, R1)!;
  wire = forwardHop(wire, R2)!;
  const atB = reparse(wire)!;
  assert.deepStrictEqual(atB.via, [R1, R2]);
  assert.deepStrictEqual(atB.dest, [{ type: 'node', id: B }]);
  assert.equal(atB.ttl, 6);
  const dest = answerDestinations(atB);
  assert.deepStrictEqual(dest.map((d) => d.id), [R2, R1, A]);
  let ans: Uint8Array = marshalOverlayMessage({ ttl: 8, txid: atB.txid, via: [], dest, sender: { nodeId: B, publicKey: new Uint8Array(32) }, kind: 'attach-answer', blob: hex('0304') });
  ans = forwardHop(ans, R2)!;
  ans = forwardHop(ans, R1)!;
  const atA = reparse(ans)!;
  assert.deepStrictEqual(atA.dest, [{ type: 'node', id: A }]);
  assert.deepStrictEqual(atA.via, [], 'answers do not grow a Via list');
  assert.equal(atA.txid, 42n);
  assert.equal(atA.kind, 'attach-answer');
  assert.deepStrictEqual(answerDestinations({ ...req }), [], 'a direct request is answered directly');
});

// ---- identity and endpoints ---------------------------------------------------------------------------------

test('idMatchesKey checks NodeID = hash(public key)', () => {
  fc.assert(fc.property(bytes(32), (publicKey) => {
    const nodeId = nodeIdFromPublicKey(publicKey);
    assert.ok(idMatchesKey({ nodeId, publicKey }));
    const forged = Uint8Array.from(nodeId);
    forged[0]! ^= 1;
    assert.equal(idMatchesKey({ nodeId: forged, publicKey }), false);
  }), { numRuns: 50 });
});

test('socket endpoints convert both ways; IPv4-mapped IPv6 becomes IPv4', () => {
  fc.assert(fc.property(endpoint, (e) => {
    assert.deepStrictEqual(fromSocketEndpoint(toSocketEndpoint(e)), e);
  }), { numRuns: 200 });
  assert.deepStrictEqual(toSocketEndpoint({ address: hex('c0000201'), port: 4500 }), { address: '192.0.2.1', port: 4500 });
  assert.deepStrictEqual(fromSocketEndpoint({ address: '::ffff:192.0.2.1', port: 1 }), { address: hex('c0000201'), port: 1 });
  assert.deepStrictEqual(fromSocketEndpoint({ address: '2001:db8::1', port: 2 })?.address, hex('20010db8000000000000000000000001'));
  assert.equal(fromSocketEndpoint({ address: 'fe80::1%eth0', port: 1 }), undefined);
  assert.equal(fromSocketEndpoint({ address: '1.2.3.4', port: 70000 }), undefined);
});
