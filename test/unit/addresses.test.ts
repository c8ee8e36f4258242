import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ed25519 } from '@noble/curves/ed25519.js';
import {
  formatIpv4, formatIpv6, ipv4FromNodeId, ipv6FromNodeId, nodeIdFromPublicKey, parseIpv4, parseIpv6,
  publicKeyOwnsIpv6,
} from '../../agent/idloc/addresses.js';
import { isIPv6 } from 'node:net';
import { fromHex, hex as toHex } from '../../agent/base/bytes.js';

const key = (seed: number) => ed25519.getPublicKey(new Uint8Array(32).fill(seed));

test('NodeID is 160 bits and depends on the whole key', () => {
  const a = nodeIdFromPublicKey(key(1));
  assert.equal(a.length, 20);
  const k = key(1); k[31] ^= 1;
  assert.notDeepEqual(nodeIdFromPublicKey(k), a);
  assert.throws(() => nodeIdFromPublicKey(new Uint8Array(31)));
});

test('IPv6 overlay address is fd1d:10c0::/32 followed by NodeID bits, verifiable from the key', () => {
  const pub = key(2);
  const id = nodeIdFromPublicKey(pub);
  const v6 = ipv6FromNodeId(id);
  assert.deepEqual([...v6.subarray(0, 4)], [0xfd, 0x1d, 0x10, 0xc0]);
  assert.deepEqual([...v6.subarray(4)], [...id.subarray(0, 12)]);
  assert.ok(publicKeyOwnsIpv6(pub, v6));
  assert.ok(!publicKeyOwnsIpv6(key(3), v6), 'another key must not own the address');
  const forged = Uint8Array.from(v6); forged[15] ^= 0x80;
  assert.ok(!publicKeyOwnsIpv6(pub, forged));
});

test('IPv4 overlay address is inside 100.64.0.0/10, never network or broadcast, stable, re-derivable', () => {
  fc.assert(fc.property(fc.uint8Array({ minLength: 20, maxLength: 20 }), fc.nat(1000), (id, attempt) => {
    const a = ipv4FromNodeId(id, attempt);
    assert.equal(a >>> 22, (100 << 2) | 1); // top 10 bits = 100.64/10
    const host = a & 0x3fffff;
    assert.ok(host !== 0 && host !== 0x3fffff);
    assert.equal(ipv4FromNodeId(id, attempt), a);
  }));
  const id = nodeIdFromPublicKey(key(4));
  const seen = new Set(Array.from({ length: 50 }, (_, i) => ipv4FromNodeId(id, i)));
  assert.ok(seen.size > 45, 're-derivation must give new addresses');
});

test('IPv4 text round-trips and bad text is refused', () => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 0xffffffff }), (a) => assert.equal(parseIpv4(formatIpv4(a)), a)));
  for (const bad of ['1.2.3', '1.2.3.256', 'a.b.c.d', '1.2.3.4.5', '']) assert.equal(parseIpv4(bad), undefined);
});

test('IPv6 text is RFC 5952 and round-trips', () => {
  assert.equal(formatIpv6(parseIpv6('fd1d:10c0::1')!), 'fd1d:10c0::1');
  assert.equal(formatIpv6(parseIpv6('2001:db8:0:0:1:0:0:1')!), '2001:db8::1:0:0:1');
  assert.equal(formatIpv6(new Uint8Array(16)), '::');
  fc.assert(fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (b) => {
    const s = formatIpv6(b);
    assert.ok(isIPv6(s), s);
    assert.deepEqual(parseIpv6(s), b);
  }));
  for (const bad of ['1::2::3', 'g::1', '1:2:3:4:5:6:7', '12345::1']) assert.equal(parseIpv6(bad), undefined);
});

test('hex helpers check length and alphabet', () => {
  assert.equal(toHex(Uint8Array.of(0, 255)), '00ff');
  assert.deepEqual(fromHex('00ff', 2), Uint8Array.of(0, 255));
  assert.equal(fromHex('00f', 2), undefined);
  assert.equal(fromHex('zz', 1), undefined);
});
