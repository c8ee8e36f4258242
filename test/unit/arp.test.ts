import { test } from 'node:test';
import assert from 'node:assert/strict';
import { answerArp, arpRequestTarget, ARP_FRAME_LEN } from '../../agent/idloc/arp.js';
import {
  ETHERTYPE_ARP, etherType, isVlanEtherType, macEquals, macToString, parseMac, writeEthernetHeader, ETH_HEADER_LEN,
} from '../../agent/tap/ethernet.js';
import { VIRTUAL_MAC } from '../../agent/base/constants.js';
import { parseIpv4 } from '../../agent/idloc/addresses.js';
import { mac } from './packet-helpers.js';

const HOST_MAC = mac('52:54:00:12:34:56');

/** An ARP request as the kernel sends it, padded to 60 bytes like a real Ethernet frame. */
function request(opts: { spa?: string; tpa?: string; op?: number; sha?: Uint8Array; ptype?: number } = {}): Buffer {
  const f = Buffer.alloc(60);
  f.set([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 0);
  f.set(HOST_MAC, 6);
  f.writeUInt16BE(0x0806, 12);
  f.writeUInt16BE(1, 14);
  f.writeUInt16BE(opts.ptype ?? 0x0800, 16);
  f[18] = 6; f[19] = 4;
  f.writeUInt16BE(opts.op ?? 1, 20);
  f.set(opts.sha ?? HOST_MAC, 22);
  f.writeUInt32BE(parseIpv4(opts.spa ?? '100.64.0.1')!, 28);
  f.writeUInt32BE(parseIpv4(opts.tpa ?? '100.100.7.9')!, 38);
  return f;
}

test('ethernet helpers', () => {
  const b = Buffer.alloc(20);
  assert.equal(writeEthernetHeader(b, 2, HOST_MAC, VIRTUAL_MAC, 0x86dd), 16);
  assert.equal(etherType(b, 2), 0x86dd);
  assert.equal(etherType(b, 7), -1);
  assert.equal(etherType(b.subarray(0, 13)), -1);
  assert.ok(macEquals(b, 2, HOST_MAC, 0) && macEquals(b, 8, VIRTUAL_MAC, 0) && !macEquals(b, 3, HOST_MAC, 0));
  assert.ok(isVlanEtherType(0x8100) && isVlanEtherType(0x88a8) && !isVlanEtherType(0x0800));
  assert.equal(macToString(VIRTUAL_MAC), '02:1d:10:c0:00:01');
  assert.deepEqual(parseMac('02:1d:10:c0:00:01'), VIRTUAL_MAC);
  assert.equal(parseMac('02:1d:10:c0:00'), undefined);
  assert.equal(ETH_HEADER_LEN, 14);
});

test('answers an ARP request for an address we speak for, every field exact', () => {
  const asked: number[] = [];
  const reply = answerArp(request(), VIRTUAL_MAC, (ip) => { asked.push(ip); return true; });
  assert.deepEqual(asked, [parseIpv4('100.100.7.9')]);
  assert.ok(reply);
  const expected = Buffer.concat([
    Buffer.from(HOST_MAC), Buffer.from(VIRTUAL_MAC), Buffer.from([0x08, 0x06]), // Ethernet: to the requester
    Buffer.from([0, 1, 0x08, 0x00, 6, 4, 0, 2]), // Ethernet/IPv4, reply
    Buffer.from(VIRTUAL_MAC), Buffer.from([100, 100, 7, 9]), // sender: virtual MAC, the asked-for address
    Buffer.from(HOST_MAC), Buffer.from([100, 64, 0, 1]), // target: the requester
  ]);
  assert.equal(reply.length, ARP_FRAME_LEN);
  assert.deepEqual(reply, expected);
  assert.equal(etherType(reply), ETHERTYPE_ARP);
});

test('replies go to the sender hardware address, not the Ethernet source', () => {
  const other = mac('52:54:00:aa:bb:cc');
  const reply = answerArp(request({ sha: other }), VIRTUAL_MAC, () => true)!;
  assert.deepEqual(reply.subarray(0, 6), Buffer.from(other));
  assert.deepEqual(reply.subarray(32, 38), Buffer.from(other));
});

test('does not answer: foreign address, gratuitous ARP, replies, non-IPv4, bad sender MAC, bad MAC arg', () => {
  const yes = (): boolean => true;
  assert.equal(answerArp(request(), VIRTUAL_MAC, () => false), undefined);
  assert.equal(answerArp(request({ spa: '100.100.7.9' }), VIRTUAL_MAC, yes), undefined, 'gratuitous');
  assert.equal(answerArp(request({ op: 2 }), VIRTUAL_MAC, yes), undefined, 'reply');
  assert.equal(answerArp(request({ ptype: 0x86dd }), VIRTUAL_MAC, yes), undefined);
  assert.equal(answerArp(request({ sha: mac('ff:ff:ff:ff:ff:ff') }), VIRTUAL_MAC, yes), undefined);
  assert.equal(answerArp(request({ sha: mac('00:00:00:00:00:00') }), VIRTUAL_MAC, yes), undefined);
  assert.equal(answerArp(request({ tpa: '0.0.0.0' }), VIRTUAL_MAC, yes), undefined);
  assert.equal(answerArp(request(), VIRTUAL_MAC.subarray(0, 5), yes), undefined);
  assert.equal(answerArp(request().subarray(0, 41), VIRTUAL_MAC, yes), undefined, 'truncated');
  const ipFrame = request(); ipFrame.writeUInt16BE(0x0800, 12);
  assert.equal(answerArp(ipFrame, VIRTUAL_MAC, yes), undefined);
  assert.equal(arpRequestTarget(ipFrame), -1);
});

test('an RFC 5227 probe (sender 0.0.0.0) for a claimed address is answered to 0.0.0.0', () => {
  const reply = answerArp(request({ spa: '0.0.0.0' }), VIRTUAL_MAC, () => true)!;
  assert.deepEqual(reply.subarray(38, 42), Buffer.from([0, 0, 0, 0]));
  assert.deepEqual(reply.subarray(28, 32), Buffer.from([100, 100, 7, 9]));
});
