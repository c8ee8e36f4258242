import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { clampMss, mssForMtu } from '../../agent/idloc/mss.js';
import { DEFAULT_TAP_MTU } from '../../agent/base/constants.js';
import { fixL4Checksum, ipv4, ipv6, l4ChecksumOk, tcp } from './packet-helpers.js';

/** One TCP option as bytes; MSS options remember their value. */
type Opt = { bytes: number[]; mss?: number };

const optArb: fc.Arbitrary<Opt> = fc.oneof(
  fc.constant<Opt>({ bytes: [1] }),
  fc.integer({ min: 0, max: 0xffff }).map((m) => ({ bytes: [2, 4, m >> 8, m & 0xff], mss: m })),
  fc.integer({ min: 0, max: 14 }).map((s) => ({ bytes: [3, 3, s] })),
  fc.constant<Opt>({ bytes: [4, 2] }),
  fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 8, maxLength: 8 }).map((ts) => ({ bytes: [8, 10, ...ts] })),
  fc.tuple(fc.integer({ min: 9, max: 253 }), fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 6 }))
    .map(([k, d]) => ({ bytes: [k, d.length + 2, ...d] })),
);

interface Syn { packet: Buffer; mssAt: number[]; mssValues: number[]; limit: number }

/** A random SYN or SYN-ACK, v4 or v6, options laid out from `opts` (whatever fits in 40 bytes). */
const synArb: fc.Arbitrary<Syn> = fc.record({
  v6: fc.boolean(),
  synAck: fc.boolean(),
  opts: fc.array(optArb, { maxLength: 12 }),
  data: fc.uint8Array({ maxLength: 64 }),
  limit: fc.oneof(fc.integer({ min: 1200, max: 1460 }), fc.integer({ min: 0, max: 0xffff })),
  ipOptions: fc.integer({ min: 0, max: 10 }),
}).map(({ v6, synAck, opts, data, limit, ipOptions }) => {
  const bytes: number[] = [];
  const rel: number[] = [];
  const mssValues: number[] = [];
  for (const o of opts) {
    if (bytes.length + o.bytes.length > 40) continue;
    if (o.mss !== undefined) { rel.push(bytes.length + 2); mssValues.push(o.mss); }
    bytes.push(...o.bytes);
  }
  const seg = tcp(synAck ? 0x12 : 0x02, Uint8Array.from(bytes), data);
  const packet = v6 ? ipv6(seg) : ipv4(seg, { options: new Uint8Array(ipOptions * 4).fill(1), df: true });
  fixL4Checksum(packet, 16);
  const tcpOff = v6 ? 40 : 20 + ipOptions * 4;
  return { packet, mssAt: rel.map((r) => tcpOff + 20 + r), mssValues, limit };
});

test('property: clamped SYNs keep a correct checksum, MSS <= limit, nothing else changes', () => {
  fc.assert(fc.property(synArb, ({ packet, mssAt, mssValues, limit }) => {
    const before = Buffer.from(packet);
    const v6 = packet[0]! >> 4 === 6;
    const tcpOff = v6 ? 40 : (packet[0]! & 15) * 4;
    const changed = clampMss(packet, v6 ? 0 : limit, v6 ? limit : 0);
    assert.equal(changed, mssValues.some((m) => m > limit));
    assert.ok(l4ChecksumOk(packet, 6), 'checksum recomputed from scratch matches the stored one');
    const allowed = new Set<number>([tcpOff + 16, tcpOff + 17]);
    mssAt.forEach((at, i) => {
      const now = packet.readUInt16BE(at);
      assert.equal(now, Math.min(mssValues[i]!, limit));
      allowed.add(at); allowed.add(at + 1);
    });
    for (let i = 0; i < packet.length; i++) if (!allowed.has(i)) assert.equal(packet[i], before[i], `byte ${i}`);
    if (!changed) assert.deepEqual(packet, before);
  }), { numRuns: 2000 });
});

test('property: segments without SYN are never touched', () => {
  fc.assert(fc.property(synArb, fc.integer({ min: 0, max: 255 }), ({ packet }, flags) => {
    const tcpOff = packet[0]! >> 4 === 6 ? 40 : (packet[0]! & 15) * 4;
    packet[tcpOff + 13] = flags & ~0x02;
    const before = Buffer.from(packet);
    assert.equal(clampMss(packet, 0, 0), false);
    assert.deepEqual(packet, before);
  }), { numRuns: 300 });
});

test('clamps a typical Linux SYN inside a frame buffer, at an offset, ignoring padding', () => {
  const seg = tcp(0x02, Uint8Array.of(2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7));
  const p = ipv4(seg, { df: true });
  fixL4Checksum(p, 16);
  const frame = Buffer.concat([Buffer.alloc(14), p, Buffer.alloc(6, 0xee)]);
  assert.ok(clampMss(frame, 1380, 1360, 14, 14 + p.length));
  assert.equal(frame.readUInt16BE(14 + 20 + 22), 1380);
  assert.ok(l4ChecksumOk(frame.subarray(14, 14 + p.length), 6));
  assert.ok(!clampMss(frame, 1380, 1360, 14, 14 + p.length), 'second pass: already within the limit');
});

test('leaves alone: UDP, IPv6 with extension headers, non-first fragments, bad limits, junk options', () => {
  const mk = (): Buffer => { const p = ipv4(tcp(0x02, Uint8Array.of(2, 4, 0xff, 0xff))); fixL4Checksum(p, 16); return p; };
  const udp = mk(); udp[9] = 17;
  assert.ok(!clampMss(udp, 1000, 1000));
  const frag = ipv4(tcp(0x02, Uint8Array.of(2, 4, 0xff, 0xff)), { fragOffset8: 1 });
  assert.ok(!clampMss(frag, 1000, 1000));
  const ext = ipv6(tcp(0x02, Uint8Array.of(2, 4, 0xff, 0xff)), { nh: 60 });
  assert.ok(!clampMss(ext, 1000, 1000));
  assert.ok(!clampMss(mk(), -1, 1000));
  assert.ok(!clampMss(mk(), 70000, 1000));
  assert.ok(!clampMss(mk(), 1000.5, 1000));
  const junk = ipv4(tcp(0x02, Uint8Array.of(30, 0, 2, 4, 0xff, 0xff))); // zero-length option first
  assert.ok(!clampMss(junk, 1000, 1000));
  assert.ok(!clampMss(mk().subarray(0, 39), 1000, 1000), 'truncated');
  const v6 = ipv6(tcp(0x02, Uint8Array.of(2, 4, 0xff, 0xff))); fixL4Checksum(v6, 16);
  assert.ok(!clampMss(Buffer.from(v6), 0xffff, 0xffff));
  assert.ok(clampMss(v6, 0xffff, 1360));
  assert.ok(l4ChecksumOk(v6, 6));
});

test('mssForMtu', () => {
  assert.equal(mssForMtu(1500, 4), 1460);
  assert.equal(mssForMtu(1500, 6), 1440);
  assert.equal(mssForMtu(DEFAULT_TAP_MTU, 4), 1380);
  assert.equal(mssForMtu(DEFAULT_TAP_MTU, 6), 1360);
  assert.equal(mssForMtu(30, 6), 0);
});
