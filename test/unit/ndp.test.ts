import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  answerNeighborSolicitation, silentIcmpv6Type, NA_FRAME_LEN, ICMPV6_ROUTER_SOLICIT, ICMPV6_MLDV2_REPORT, ICMPV6_NEIGHBOR_ADVERT,
} from '../../agent/idloc/ndp.js';
import { VIRTUAL_MAC } from '../../agent/base/constants.js';
import { mac, pseudoV6, refChecksum, V6_HOST, V6_PEER } from './packet-helpers.js';

const HOST_MAC = mac('52:54:00:12:34:56');
const LINK_LOCAL = Uint8Array.from(Buffer.from('fe800000000000005054000000123456', 'hex'));

function solicitedNode(t: Uint8Array): Uint8Array {
  const a = Uint8Array.from(Buffer.from('ff0200000000000000000001ff000000', 'hex'));
  a.set(t.subarray(13), 13);
  return a;
}

function ns(o: { src?: Uint8Array; dst?: Uint8Array; target?: Uint8Array; hopLimit?: number; options?: Uint8Array; badChecksum?: boolean; ethSrc?: Uint8Array } = {}): Buffer {
  const target = o.target ?? V6_PEER;
  const options = o.options ?? Uint8Array.from([1, 1, ...HOST_MAC]);
  const icmp = Buffer.alloc(24 + options.length);
  icmp[0] = 135;
  icmp.set(target, 8);
  icmp.set(options, 24);
  const src = o.src ?? V6_HOST;
  const dst = o.dst ?? solicitedNode(target);
  icmp.writeUInt16BE(refChecksum(pseudoV6(src, dst, 58, icmp.length), icmp) ^ (o.badChecksum ? 1 : 0), 2);
  const f = Buffer.alloc(54 + icmp.length);
  f.set([0x33, 0x33, ...dst.subarray(12)], 0);
  f.set(o.ethSrc ?? HOST_MAC, 6);
  f.writeUInt16BE(0x86dd, 12);
  f[14] = 0x60;
  f.writeUInt16BE(icmp.length, 18);
  f[20] = 58;
  f[21] = o.hopLimit ?? 255;
  f.set(src, 22);
  f.set(dst, 38);
  f.set(icmp, 54);
  return f;
}

/** Checks an NA from scratch: layout, then the ICMPv6 checksum with an independently built pseudo-header. */
function checkNa(na: Buffer, ethDst: Uint8Array, ipDst: Uint8Array, flags: number, target = V6_PEER): void {
  assert.equal(na.length, NA_FRAME_LEN);
  assert.deepEqual(na.subarray(0, 6), Buffer.from(ethDst));
  assert.deepEqual(na.subarray(6, 12), Buffer.from(VIRTUAL_MAC));
  assert.equal(na.readUInt16BE(12), 0x86dd);
  assert.equal(na.readUInt32BE(14), 0x60000000);
  assert.equal(na.readUInt16BE(18), 32);
  assert.equal(na[20], 58);
  assert.equal(na[21], 255);
  assert.deepEqual(na.subarray(22, 38), Buffer.from(target), 'source = the target address');
  assert.deepEqual(na.subarray(38, 54), Buffer.from(ipDst));
  assert.equal(na[54], 136);
  assert.equal(na[55], 0);
  assert.equal(na[58], flags);
  assert.deepEqual(na.subarray(59, 62), Buffer.alloc(3));
  assert.deepEqual(na.subarray(62, 78), Buffer.from(target));
  assert.deepEqual(na.subarray(78, 86), Buffer.from([2, 1, ...VIRTUAL_MAC]));
  const icmp = Buffer.from(na.subarray(54));
  const stored = icmp.readUInt16BE(2);
  icmp.writeUInt16BE(0, 2);
  assert.equal(stored, refChecksum(pseudoV6(target, ipDst, 58, 32), icmp), 'checksum recomputed from scratch');
}

test('answers address resolution: unicast to the solicitor, Solicited + Override', () => {
  let seen: Uint8Array | undefined;
  const na = answerNeighborSolicitation(ns(), VIRTUAL_MAC, (t) => { seen = Uint8Array.from(t); return true; });
  assert.deepEqual(seen, V6_PEER);
  assert.ok(na);
  checkNa(na, HOST_MAC, V6_HOST, 0x60);
});

test('answers from a link-local source; SLLA option beats the Ethernet source', () => {
  const other = mac('52:54:00:99:99:99');
  const na = answerNeighborSolicitation(ns({ src: LINK_LOCAL, ethSrc: other }), VIRTUAL_MAC, () => true)!;
  checkNa(na, HOST_MAC, LINK_LOCAL, 0x60);
});

test('answers unicast reachability probes (dst = target, no SLLA) to the Ethernet source', () => {
  const na = answerNeighborSolicitation(ns({ dst: V6_PEER, options: new Uint8Array(0) }), VIRTUAL_MAC, () => true)!;
  checkNa(na, HOST_MAC, V6_HOST, 0x60);
});

test('DAD probe (source ::) is answered to all-nodes without the Solicited flag', () => {
  const na = answerNeighborSolicitation(ns({ src: new Uint8Array(16), options: new Uint8Array(0) }), VIRTUAL_MAC, () => true)!;
  checkNa(na, mac('33:33:00:00:00:01'), Uint8Array.from(Buffer.from('ff020000000000000000000000000001', 'hex')), 0x20);
});

test('rejects invalid solicitations and foreign targets', () => {
  const yes = (): boolean => true;
  assert.equal(answerNeighborSolicitation(ns(), VIRTUAL_MAC, () => false), undefined);
  assert.equal(answerNeighborSolicitation(ns({ hopLimit: 64 }), VIRTUAL_MAC, yes), undefined, 'hop limit');
  assert.equal(answerNeighborSolicitation(ns({ badChecksum: true }), VIRTUAL_MAC, yes), undefined, 'checksum');
  const mc = Uint8Array.from(Buffer.from('ff020000000000000000000000000001', 'hex'));
  assert.equal(answerNeighborSolicitation(ns({ target: mc, dst: V6_PEER }), VIRTUAL_MAC, yes), undefined, 'multicast target');
  assert.equal(answerNeighborSolicitation(ns({ options: Uint8Array.of(1, 0, 0, 0, 0, 0, 0, 0) }), VIRTUAL_MAC, yes), undefined, 'zero-length option');
  assert.equal(answerNeighborSolicitation(ns({ src: new Uint8Array(16) }), VIRTUAL_MAC, yes), undefined, 'DAD with SLLA');
  assert.equal(answerNeighborSolicitation(ns({ dst: V6_HOST }), VIRTUAL_MAC, yes), undefined, 'wrong destination');
  assert.equal(answerNeighborSolicitation(ns({ src: mc }), VIRTUAL_MAC, yes), undefined, 'multicast source');
  assert.equal(answerNeighborSolicitation(ns({ options: Uint8Array.from([1, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]) }), VIRTUAL_MAC, yes), undefined, 'multicast SLLA');
  assert.equal(answerNeighborSolicitation(ns().subarray(0, 85), VIRTUAL_MAC, yes), undefined, 'truncated');
  assert.equal(answerNeighborSolicitation(ns(), VIRTUAL_MAC.subarray(1), yes), undefined, 'bad MAC argument');
});

test('silentIcmpv6Type: RS, MLDv2 behind hop-by-hop, NA; not NS, not echo, not IPv4', () => {
  const frame = (nh: number, payload: number[]): Buffer => {
    const f = Buffer.alloc(54 + payload.length);
    f.writeUInt16BE(0x86dd, 12);
    f[14] = 0x60;
    f.writeUInt16BE(payload.length, 18);
    f[20] = nh;
    f[21] = 1;
    f.set(payload, 54);
    return f;
  };
  assert.equal(silentIcmpv6Type(frame(58, [133, 0, 0, 0, 0, 0, 0, 0])), ICMPV6_ROUTER_SOLICIT);
  const hbh = [58, 0, 5, 2, 0, 0, 1, 0]; // next 58, len 0, Router Alert option, PadN
  assert.equal(silentIcmpv6Type(frame(0, [...hbh, 143, 0, 0, 0, 0, 0, 0, 1])), ICMPV6_MLDV2_REPORT);
  assert.equal(silentIcmpv6Type(frame(58, [136, 0, 0, 0])), ICMPV6_NEIGHBOR_ADVERT);
  assert.equal(silentIcmpv6Type(frame(58, [135, 0, 0, 0])), -1);
  assert.equal(silentIcmpv6Type(frame(58, [128, 0, 0, 0])), -1);
  assert.equal(silentIcmpv6Type(frame(6, [133, 0, 0, 0])), -1);
  assert.equal(silentIcmpv6Type(frame(0, [58, 0])), -1, 'truncated after hop-by-hop');
  const padded = Buffer.concat([Buffer.alloc(3), frame(58, [133, 0, 0, 0])]);
  assert.equal(silentIcmpv6Type(padded, 3), ICMPV6_ROUTER_SOLICIT);
  assert.equal(silentIcmpv6Type(Buffer.alloc(10)), -1);
});
