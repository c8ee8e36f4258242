// Every parser and answer function must survive arbitrary bytes: random buffers, truncations and
// bit-flips of valid packets, odd offsets. "Survive" = no exception, and a sane return type.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { answerArp, arpRequestTarget } from '../../agent/idloc/arp.js';
import { answerNeighborSolicitation, silentIcmpv6Type } from '../../agent/idloc/ndp.js';
import { etherType } from '../../agent/tap/ethernet.js';
import { clampMss } from '../../agent/idloc/mss.js';
import { icmpTooBig, icmpUnreachable, icmpv4FragNeeded, icmpv4Unreachable, icmpv6PacketTooBig, icmpv6Unreachable } from '../../agent/idloc/icmp.js';
import {
  ipHeaderLength, ipPacketLength, ipPayloadOffset, ipProtocol, ipVersion, ipv4Dst, ipv4Src, isOverlayIpv6,
} from '../../agent/idloc/ip.js';
import { formatIpv6 } from '../../agent/idloc/addresses.js';
import { ipv4HeaderChecksumOk, internetChecksum } from '../../agent/idloc/checksum.js';
import { VIRTUAL_MAC } from '../../agent/base/constants.js';
import { fixL4Checksum, ipv4, ipv6, tcp } from './packet-helpers.js';

const yes = (): boolean => true;

function everything(buf: Uint8Array, off: number): void {
  const u = (x: unknown): void => assert.ok(x === undefined || Buffer.isBuffer(x));
  const n = (x: number): void => assert.ok(Number.isFinite(x));
  u(answerArp(buf, VIRTUAL_MAC, yes));
  n(arpRequestTarget(buf));
  u(answerNeighborSolicitation(buf, VIRTUAL_MAC, yes));
  n(silentIcmpv6Type(buf, off));
  n(etherType(buf, off));
  assert.equal(typeof clampMss(buf, 1000, 1000, off), 'boolean');
  u(icmpv4FragNeeded(buf, 1280)); u(icmpv6PacketTooBig(buf, 1280)); u(icmpv4Unreachable(buf)); u(icmpv6Unreachable(buf));
  u(icmpTooBig(buf, 1280)); u(icmpUnreachable(buf));
  n(ipVersion(buf, off)); n(ipHeaderLength(buf, off)); n(ipPacketLength(buf, off)); n(ipProtocol(buf, off));
  n(ipPayloadOffset(buf, off)); n(ipv4Src(buf, off)); n(ipv4Dst(buf, off));
  assert.equal(typeof isOverlayIpv6(buf, off), 'boolean');
  assert.equal(typeof ipv4HeaderChecksumOk(buf, off), 'boolean');
  n(internetChecksum(buf, 0, buf.length));
  if (off + 16 <= buf.length) assert.equal(typeof formatIpv6(buf.subarray(off, off + 16)), 'string');
}

/** Valid-looking seeds: SYNs, ARP, NS-shaped frames, ICMP, with every version nibble. */
function seeds(): Buffer[] {
  const syn4 = ipv4(tcp(0x02, Uint8Array.of(2, 4, 0xff, 0xff, 1, 1, 4, 2)), { df: true }); fixL4Checksum(syn4, 16);
  const syn6 = ipv6(tcp(0x12, Uint8Array.of(1, 2, 4, 0xff, 0xff))); fixL4Checksum(syn6, 16);
  const eth = (type: number, p: Uint8Array): Buffer => { const h = Buffer.alloc(14); h.writeUInt16BE(type, 12); return Buffer.concat([h, p]); };
  const arp = eth(0x0806, Buffer.from('000108000604000152540012345664400001000000000000646407 09'.replace(/ /g, ''), 'hex'));
  const ns = eth(0x86dd, ipv6(Buffer.concat([Buffer.from([135, 0, 0, 0, 0, 0, 0, 0]), Buffer.alloc(16, 0xfd), Buffer.from([1, 1, 1, 2, 3, 4, 5, 6])]), { nh: 58, hopLimit: 255 }));
  const mld = eth(0x86dd, ipv6(Buffer.from([58, 0, 5, 2, 0, 0, 1, 0, 143, 0, 0, 0]), { nh: 0 }));
  return [syn4, syn6, arp, ns, mld, ipv4(Uint8Array.of(8, 0, 0, 0), { proto: 1 }), ipv6(Buffer.alloc(1400), { nh: 60 })];
}

test('fuzz: random buffers at random offsets never throw', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), fc.integer({ min: -2, max: 210 }), (b, off) => {
    everything(Buffer.from(b), off);
  }), { numRuns: 3000 });
});

test('fuzz: random buffers with a plausible IP or Ethernet/IP start never throw', () => {
  const head = fc.constantFrom(0x45, 0x46, 0x4f, 0x60, 0x40, 0x6f);
  fc.assert(fc.property(head, fc.uint8Array({ maxLength: 120 }), fc.boolean(), (h, rest, framed) => {
    const b = Buffer.from([h, ...rest]);
    everything(b, 0);
    if (framed) {
      const f = Buffer.concat([Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, h === 0x60 ? 0x86 : 0x08, h === 0x60 ? 0xdd : 0x06]), b]);
      everything(f, 0);
    }
  }), { numRuns: 3000 });
});

test('fuzz: every truncation of valid seeds never throws', () => {
  for (const s of seeds()) for (let n = 0; n <= s.length; n++) everything(Buffer.from(s.subarray(0, n)), 0);
});

test('fuzz: bit flips and byte overwrites of valid seeds never throw', () => {
  const all = seeds();
  fc.assert(fc.property(fc.nat(all.length - 1), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), (i, edits) => {
    const b = Buffer.from(all[i]!);
    for (const [pos, v] of edits) b[pos % b.length] = v;
    everything(b, 0);
    everything(b, 14);
  }), { numRuns: 3000 });
});
