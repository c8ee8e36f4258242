import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  checksumReplaceWord, finishChecksum, foldSum, internetChecksum, ipv4HeaderChecksum, ipv4HeaderChecksumOk, onesSum,
  pseudoHeaderSumV4, pseudoHeaderSumV6, swap16, transportChecksumV4, transportChecksumV6, writeIpv4HeaderChecksum,
} from '../../agent/idloc/checksum.js';
import { ipv4, ipv6, pseudoV4, pseudoV6, refChecksum, tcp, fixL4Checksum } from './packet-helpers.js';

test('internetChecksum agrees with the modulo-65535 reference on random data, odd lengths included', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 3000 }), (data) => {
    assert.equal(internetChecksum(data, 0, data.length), refChecksum(data));
  }), { numRuns: 500 });
});

test('large buffers (over one 32 KiB chunk) sum like the reference', () => {
  const data = new Uint8Array(70001).fill(0xff);
  assert.equal(internetChecksum(data, 0, data.length), refChecksum(data));
  for (let i = 0; i < data.length; i++) data[i] = (i * 7919) & 0xff;
  assert.equal(internetChecksum(data, 0, data.length), refChecksum(data));
});

test('partial sums chain across even-length ranges', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), fc.nat(300), (data, cut) => {
    const c = Math.min(cut * 2, data.length - (data.length & 1));
    assert.equal(finishChecksum(onesSum(data, c, data.length, onesSum(data, 0, c))), internetChecksum(data, 0, data.length));
  }));
});

test('foldSum: end-around carry, zero only for zero', () => {
  assert.equal(foldSum(0), 0);
  assert.equal(foldSum(0xffff), 0xffff);
  assert.equal(foldSum(0x1fffe), 0xffff);
  assert.equal(foldSum(0x10000), 1);
  assert.equal(foldSum(0xffffffff), 0xffff);
});

test('IPv4 header checksum: the classic example header 4500 0073 ... b861', () => {
  const h = Buffer.from('450000730000400040110000c0a80001c0a800c7', 'hex');
  assert.equal(ipv4HeaderChecksum(h, 0), 0xb861);
  writeIpv4HeaderChecksum(h, 0);
  assert.equal(h.readUInt16BE(10), 0xb861);
  assert.ok(ipv4HeaderChecksumOk(h, 0));
  h[8] = 63;
  assert.ok(!ipv4HeaderChecksumOk(h, 0));
  assert.ok(!ipv4HeaderChecksumOk(h.subarray(0, 19), 0));
});

test('pseudo-header sums match the byte-level pseudo-headers', () => {
  const p4 = ipv4(tcp(0x02, new Uint8Array(0)));
  assert.equal(finishChecksum(pseudoHeaderSumV4(p4, 0, 6, 20)), refChecksum(pseudoV4(p4.subarray(12, 16), p4.subarray(16, 20), 6, 20)));
  const p6 = ipv6(new Uint8Array(8), { nh: 17 });
  assert.equal(finishChecksum(pseudoHeaderSumV6(p6, 0, 17, 70000)), refChecksum(pseudoV6(p6.subarray(8, 24), p6.subarray(24, 40), 17, 70000)));
});

test('transportChecksumV4/V6 give 0 over a correct segment and the value to store over a zeroed one', () => {
  const p4 = ipv4(tcp(0x12, Uint8Array.of(2, 4, 5, 0xb4), Buffer.from('hello')));
  fixL4Checksum(p4, 16);
  assert.equal(transportChecksumV4(p4, 0, 20, p4.length, 6), 0);
  const stored = p4.readUInt16BE(36);
  p4.writeUInt16BE(0, 36);
  assert.equal(transportChecksumV4(p4, 0, 20, p4.length, 6), stored);
  const p6 = ipv6(tcp(0x02, Uint8Array.of(1, 2, 4, 5, 0xb4), Buffer.from('odd')));
  fixL4Checksum(p6, 16);
  assert.equal(transportChecksumV6(p6, 0, 40, p6.length, 6), 0);
});

test('RFC 1624 update equals recomputation from scratch, aligned and odd offsets', () => {
  fc.assert(fc.property(
    fc.uint8Array({ minLength: 4, maxLength: 200 }), fc.nat(), fc.integer({ min: 0, max: 0xffff }),
    (data, pos, nw) => {
      const buf = Buffer.from(data);
      const at = pos % (buf.length - 1);
      const before = refChecksum(buf);
      const old = buf.readUInt16BE(at);
      buf.writeUInt16BE(nw, at);
      const odd = at % 2 === 1;
      const upd = odd ? checksumReplaceWord(before, swap16(old), swap16(nw)) : checksumReplaceWord(before, old, nw);
      assert.equal(upd, refChecksum(buf));
    }), { numRuns: 1000 });
});
