import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  icmpTooBig, icmpUnreachable, icmpv4FragNeeded, icmpv4Unreachable, icmpv6PacketTooBig, icmpv6Unreachable,
} from '../../agent/idloc/icmp.js';
import { DEFAULT_TAP_MTU } from '../../agent/base/constants.js';
import { ipv4, ipv6, pseudoV6, refChecksum, tcp, V4_HOST, V4_PEER, V6_HOST, V6_PEER } from './packet-helpers.js';

const big4 = (df = true, len = 1500): Buffer => ipv4(Buffer.alloc(len - 20, 0xab), { df, proto: 17 });
const big6 = (len = 1500, nh = 17, payload?: Uint8Array): Buffer => ipv6(payload ?? Buffer.alloc(len - 40, 0xcd), { nh });

/** Independent checks of an ICMPv4 error: IPv4 header, ICMP checksum, addresses swapped, quote. */
function checkV4(r: Buffer, orig: Buffer, type: number, code: number, mtu: number): void {
  assert.equal(r[0], 0x45);
  assert.equal(r.readUInt16BE(2), r.length);
  assert.equal(r[9], 1);
  assert.ok(r[8]! > 0);
  assert.equal(refChecksum(r.subarray(0, 20)), 0, 'IPv4 header checksum');
  assert.deepEqual(r.subarray(12, 16), Buffer.from(orig.subarray(16, 20)), 'from the original destination');
  assert.deepEqual(r.subarray(16, 20), Buffer.from(orig.subarray(12, 16)), 'to the original source');
  assert.equal(r[20], type);
  assert.equal(r[21], code);
  assert.equal(refChecksum(r.subarray(20)), 0, 'ICMP checksum');
  assert.equal(r.readUInt16BE(24), 0);
  assert.equal(r.readUInt16BE(26), mtu);
  assert.ok(r.length <= 576);
  const quoted = r.subarray(28);
  assert.equal(quoted.length, Math.min(orig.length, 548));
  assert.deepEqual(quoted, orig.subarray(0, quoted.length));
}

function checkV6(r: Buffer, orig: Buffer, type: number, code: number, word: number): void {
  assert.equal(r[0]! >> 4, 6);
  assert.equal(r.readUInt16BE(4), r.length - 40);
  assert.equal(r[6], 58);
  assert.ok(r[7]! > 0);
  assert.deepEqual(r.subarray(8, 24), Buffer.from(orig.subarray(24, 40)));
  assert.deepEqual(r.subarray(24, 40), Buffer.from(orig.subarray(8, 24)));
  assert.equal(r[40], type);
  assert.equal(r[41], code);
  assert.equal(r.readUInt32BE(44), word);
  const icmp = Buffer.from(r.subarray(40));
  assert.equal(refChecksum(pseudoV6(r.subarray(8, 24), r.subarray(24, 40), 58, icmp.length), icmp), 0, 'ICMPv6 checksum');
  assert.ok(r.length <= 1280);
  const quoted = r.subarray(48);
  assert.equal(quoted.length, Math.min(orig.length, 1232));
  assert.deepEqual(quoted, orig.subarray(0, quoted.length));
}

test('ICMPv4 fragmentation needed for an oversize DF packet', () => {
  const p = big4();
  const r = icmpv4FragNeeded(p, DEFAULT_TAP_MTU)!;
  assert.ok(r);
  assert.equal(r.length, 576);
  checkV4(r, p, 3, 4, DEFAULT_TAP_MTU);
  assert.deepEqual(icmpTooBig(p, DEFAULT_TAP_MTU), r);
});

test('no fragmentation-needed without DF, for packets that fit, or for absurd MTUs', () => {
  assert.equal(icmpv4FragNeeded(big4(false), DEFAULT_TAP_MTU), undefined);
  assert.equal(icmpv4FragNeeded(big4(true, 1420), DEFAULT_TAP_MTU), undefined);
  assert.equal(icmpv4FragNeeded(big4(), 60), undefined);
  assert.equal(icmpv4FragNeeded(big4(), NaN), undefined);
});

test('ICMPv4 host unreachable quotes a small packet whole', () => {
  const p = ipv4(tcp(0x02, Uint8Array.of(2, 4, 5, 0xb4)));
  const r = icmpv4Unreachable(p)!;
  checkV4(r, p, 3, 1, 0);
  assert.equal(r.length, 28 + p.length);
  assert.deepEqual(icmpUnreachable(p), r);
  // Ethernet padding after the declared length is not quoted.
  const padded = Buffer.concat([p, Buffer.alloc(7, 0xee)]);
  assert.deepEqual(icmpv4Unreachable(padded), r);
});

test('ICMPv4: never about errors, fragments, or multicast/broadcast/unspecified addresses', () => {
  const echo = ipv4(Uint8Array.of(8, 0, 0, 0, 0, 1, 0, 1), { proto: 1 });
  assert.ok(icmpv4Unreachable(echo), 'echo request is answered');
  for (const t of [0, 3, 4, 5, 11, 12, 200]) {
    const e = ipv4(Uint8Array.of(t, 0, 0, 0, 0, 0, 0, 0), { proto: 1 });
    if (t !== 0) assert.equal(icmpv4Unreachable(e), undefined, `type ${t}`);
  }
  assert.equal(icmpv4Unreachable(ipv4(new Uint8Array(0), { proto: 1 })), undefined, 'ICMP without a header');
  assert.equal(icmpv4Unreachable(ipv4(new Uint8Array(8), { fragOffset8: 10 })), undefined);
  for (const src of [[224, 0, 0, 1], [255, 255, 255, 255], [0, 0, 0, 0], [127, 0, 0, 1]]) {
    assert.equal(icmpv4Unreachable(ipv4(new Uint8Array(8), { src: Uint8Array.from(src) })), undefined, `src ${src}`);
  }
  assert.equal(icmpv4Unreachable(ipv4(new Uint8Array(8), { dst: Uint8Array.of(239, 1, 1, 1) })), undefined);
  assert.equal(icmpv4Unreachable(ipv4(new Uint8Array(8), { src: V4_HOST, dst: V4_PEER }).subarray(0, 25)), undefined, 'truncated');
});

test('ICMPv6 packet too big: MTU field, capped at 1280 bytes', () => {
  const p = big6();
  const r = icmpv6PacketTooBig(p, DEFAULT_TAP_MTU)!;
  assert.equal(r.length, 1280);
  checkV6(r, p, 2, 0, DEFAULT_TAP_MTU);
  assert.deepEqual(icmpTooBig(p, DEFAULT_TAP_MTU), r);
  assert.equal(icmpv6PacketTooBig(big6(1420), DEFAULT_TAP_MTU), undefined, 'fits');
  assert.equal(icmpv6PacketTooBig(p, 1000), undefined, 'below the IPv6 minimum MTU');
});

test('ICMPv6 address unreachable', () => {
  const p = ipv6(tcp(0x02, Uint8Array.of(2, 4, 5, 0xa0)));
  const r = icmpv6Unreachable(p)!;
  checkV6(r, p, 1, 3, 0);
  assert.equal(r.length, 48 + p.length);
  assert.deepEqual(icmpUnreachable(p), r);
});

test('ICMPv6: never about errors (even behind extension headers), multicast or unspecified', () => {
  const echo = big6(0, 58, Uint8Array.of(128, 0, 0, 0, 0, 0, 0, 0));
  assert.ok(icmpv6Unreachable(echo));
  assert.equal(icmpv6Unreachable(big6(0, 58, Uint8Array.of(1, 3, 0, 0, 0, 0, 0, 0))), undefined);
  assert.equal(icmpv6Unreachable(big6(0, 58, Uint8Array.of(2, 0, 0, 0, 5, 0, 0, 0))), undefined);
  const behindDstOpts = big6(0, 60, Uint8Array.of(58, 0, 1, 4, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0));
  assert.equal(icmpv6Unreachable(behindDstOpts), undefined);
  const echoBehindDstOpts = big6(0, 60, Uint8Array.of(58, 0, 1, 4, 0, 0, 0, 0, 128, 0, 0, 0, 0, 0, 0, 0));
  assert.ok(icmpv6Unreachable(echoBehindDstOpts));
  const laterFragment = big6(0, 44, Uint8Array.of(58, 0, 0, 0x10, 0, 0, 0, 1, 1, 1, 1, 1));
  assert.ok(icmpv6Unreachable(laterFragment), 'a non-first fragment shows no upper layer: answered');
  const truncatedChain = big6(0, 60, Uint8Array.of(58, 4, 0, 0));
  assert.equal(icmpv6Unreachable(truncatedChain), undefined);
  const mc = Uint8Array.from(Buffer.from('ff020000000000000000000000000001', 'hex'));
  assert.equal(icmpv6Unreachable(ipv6(new Uint8Array(8), { src: mc })), undefined);
  assert.equal(icmpv6Unreachable(ipv6(new Uint8Array(8), { dst: mc })), undefined);
  assert.equal(icmpv6Unreachable(ipv6(new Uint8Array(8), { src: new Uint8Array(16) })), undefined);
  assert.equal(icmpv6Unreachable(ipv6(new Uint8Array(8), { src: V6_HOST, dst: V6_PEER }).subarray(0, 47)), undefined, 'truncated');
  assert.equal(icmpUnreachable(new Uint8Array(0)), undefined);
});
