import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  PROTO_UNSUPPORTED, ipHeaderLength, ipPacketLength, ipPayloadOffset, ipProtocol, ipVersion, ipv4Dst, ipv4DontFragment,
  ipv4FragmentOffset, ipv4IsFragment, ipv4Src, ipv6Equals, isIpv4Multicast, isIpv4NonUnicast,
  isIpv6Loopback, isIpv6Multicast, isIpv6Unspecified, isOverlayIpv4, isOverlayIpv6,
} from '../../agent/idloc/ip.js';
import { formatIpv4 as ipv4ToString, formatIpv6, parseIpv4 } from '../../agent/idloc/addresses.js';
const ipv6ToString = (b: Uint8Array): string => formatIpv6(b);
import { ipv4, ipv6, V6_PEER } from './packet-helpers.js';

test('IPv4 accessors read the header in place', () => {
  const p = ipv4(new Uint8Array(12), { src: Uint8Array.of(100, 64, 0, 1), dst: Uint8Array.of(203, 0, 113, 200), proto: 17, df: true, options: new Uint8Array(4) });
  const framed = Buffer.concat([Buffer.alloc(14), p, Buffer.alloc(10)]); // Ethernet header before, padding after
  assert.equal(ipVersion(framed, 14), 4);
  assert.equal(ipHeaderLength(framed, 14), 24);
  assert.equal(ipPacketLength(framed, 14), 36);
  assert.equal(ipProtocol(framed, 14), 17);
  assert.equal(ipPayloadOffset(framed, 14), 38);
  assert.equal(ipv4Src(framed, 14), ((100 << 24) | (64 << 16) | 1) >>> 0);
  assert.equal(ipv4Dst(framed, 14), 0xcb0071c8);
  assert.ok(ipv4Dst(framed, 14) > 0);
  assert.ok(ipv4DontFragment(framed, 14));
  assert.ok(!ipv4IsFragment(framed, 14));
  assert.equal(ipPacketLength(framed, 14, 14 + 35), 0, 'declared length beyond the end');
});

test('IPv4 fragments', () => {
  const p = ipv4(new Uint8Array(8), { mf: true });
  assert.ok(ipv4IsFragment(p));
  assert.equal(ipv4FragmentOffset(p), 0);
  const q = ipv4(new Uint8Array(8), { fragOffset8: 185 });
  assert.equal(ipv4FragmentOffset(q), 1480);
});

test('IPv6 accessors; extension headers are "unsupported"', () => {
  const p = ipv6(new Uint8Array(20), { nh: 6 });
  assert.equal(ipVersion(p), 6);
  assert.equal(ipHeaderLength(p), 40);
  assert.equal(ipPacketLength(p), 60);
  assert.equal(ipProtocol(p), 6);
  for (const nh of [0, 43, 44, 60]) assert.equal(ipProtocol(ipv6(new Uint8Array(8), { nh })), PROTO_UNSUPPORTED);
  assert.equal(ipPacketLength(p.subarray(0, 59)), 0);
  assert.equal(ipPacketLength(new Uint8Array(0)), 0);
  assert.equal(ipProtocol(Uint8Array.of(0x50)), -2);
});

test('overlay address classes', () => {
  const v4 = (s: string): number => parseIpv4(s)!;
  assert.ok(isOverlayIpv4(v4('100.64.0.0')));
  assert.ok(isOverlayIpv4(v4('100.127.255.255')));
  assert.ok(!isOverlayIpv4(v4('100.128.0.0')));
  assert.ok(!isOverlayIpv4(v4('100.63.255.255')));
  assert.ok(!isOverlayIpv4(v4('255.255.255.255')));
  assert.ok(isOverlayIpv6(V6_PEER, 0));
  const other = Uint8Array.from(V6_PEER); other[3] = 0xc1;
  assert.ok(!isOverlayIpv6(other, 0));
  assert.ok(!isOverlayIpv6(V6_PEER.subarray(0, 15), 0));
  assert.ok(isIpv4Multicast(v4('224.0.0.251')) && !isIpv4Multicast(v4('100.64.0.1')));
  for (const s of ['0.0.0.0', '127.0.0.1', '239.1.1.1', '255.255.255.255', '240.0.0.1']) assert.ok(isIpv4NonUnicast(v4(s)), s);
  assert.ok(!isIpv4NonUnicast(v4('100.64.0.1')));
  assert.ok(isIpv6Multicast(Uint8Array.of(0xff, 2), 0));
  assert.ok(isIpv6Unspecified(new Uint8Array(16), 0) && !isIpv6Unspecified(new Uint8Array(15), 0));
  const lo = new Uint8Array(16); lo[15] = 1;
  assert.ok(isIpv6Loopback(lo, 0) && !isIpv6Loopback(V6_PEER, 0));
  assert.ok(ipv6Equals(V6_PEER, 0, Uint8Array.from(V6_PEER), 0));
});

test('ipv4ToString / parseIpv4 round-trip and reject junk', () => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 0xffffffff }), (a) => {
    assert.equal(parseIpv4(ipv4ToString(a)), a);
  }));
  for (const s of ['1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', ' 1.2.3.4', 'a.b.c.d', '']) assert.equal(parseIpv4(s), undefined, s);
});

test('ipv6ToString follows RFC 5952', () => {
  const h = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'));
  assert.equal(ipv6ToString(h('fd1d10c0000000000000000000000001')), 'fd1d:10c0::1');
  assert.equal(ipv6ToString(new Uint8Array(16)), '::');
  assert.equal(ipv6ToString(h('20010db8000000010000000000000001')), '2001:db8:0:1::1');
  assert.equal(ipv6ToString(h('20010db8000100010001000100010001')), '2001:db8:1:1:1:1:1:1');
  assert.equal(ipv6ToString(h('ff020000000000000000000000000001')), 'ff02::1');
});
