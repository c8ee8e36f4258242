// The pieces of the handshake gate: XChaCha20-Poly1305 and HChaCha20 against draft-irtf-cfrg-xchacha-03's
// vectors, the fast BLAKE2s-128 against @noble/hashes, the cookie reply's binding to one initiation and one
// source address, and the per-source limiter (IPv4 address, IPv6 /64).
import test from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { blake2s } from '@noble/hashes/blake2.js';
import { hchacha20, xchachaOpen, xchachaSeal } from '../../agent/tunnel/xchacha.js';
import { Blake2sMac } from '../../agent/tunnel/blake2s-mac.js';
import { CookieChecker, SourceLimiter, openCookieReply, sourceKey } from '../../agent/tunnel/cookie.js';
import {
  COOKIE_REPLY_LEN, HANDSHAKE_INIT_LEN, INIT_MAC1_OFF, INIT_MAC2_OFF, computeMac1, cookieKey, parseCookieReply,
} from '../../agent/tunnel/messages.js';
import { COOKIE_REFRESH_MS, HANDSHAKE_SOURCE_BURST, HANDSHAKE_SOURCE_PER_SECOND } from '../../agent/base/constants.js';

const h = (s: string) => Buffer.from(s, 'hex');

test('HChaCha20 and XChaCha20-Poly1305 match draft-irtf-cfrg-xchacha-03 (2.2.1, A.3.1)', () => {
  assert.equal(Buffer.from(hchacha20(h('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'), h('000000090000004a0000000031415927'))).toString('hex'),
    '82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc');
  const key = h('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f');
  const nonce = h('404142434445464748494a4b4c4d4e4f5051525354555657');
  const aad = h('50515253c0c1c2c3c4c5c6c7');
  const pt = Buffer.from("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.");
  const sealed = xchachaSeal(key, nonce, pt, aad);
  assert.equal(sealed.toString('hex'),
    'bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452' +
    '2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff921f9664c97637da9768812f615c68b13b52e' + 'c0875924c1c7987947deafd8780acf49');
  assert.deepEqual(xchachaOpen(key, nonce, sealed, aad), pt);
  const bad = Buffer.from(sealed); bad[5]! ^= 1;
  assert.equal(xchachaOpen(key, nonce, bad, aad), undefined);
  assert.equal(xchachaOpen(key, nonce, sealed, h('00')), undefined);
});

test('the fast BLAKE2s-128 equals @noble/hashes for every key and message length', () => {
  fc.assert(fc.property(fc.uint8Array({ minLength: 1, maxLength: 32 }), fc.uint8Array({ minLength: 1, maxLength: 300 }), (key, msg) => {
    const out = new Uint8Array(16);
    new Blake2sMac(key).macInto(msg, msg.length, out);
    return Buffer.from(out).equals(Buffer.from(blake2s(msg, { key, dkLen: 16 })));
  }), { numRuns: 500 });
});

/** An initiation-shaped message with a valid mac1 (the checker only looks at mac1 and mac2). */
function initiation(mac1Key: Uint8Array): Buffer {
  const b = randomBytes(HANDSHAKE_INIT_LEN);
  b.set(computeMac1(mac1Key, b.subarray(0, INIT_MAC1_OFF)), INIT_MAC1_OFF);
  b.fill(0, INIT_MAC2_OFF);
  return b;
}

test('a cookie reply opens only for the initiation it answers, and its cookie makes a mac2 valid only from that source', () => {
  const responderStatic = randomBytes(32);
  const checker = new CookieChecker(responderStatic, 0);
  const from = { address: '198.51.100.7', port: 4500 };
  const init = initiation(randomBytes(32));
  const reply = checker.reply(init, 77, from, 0);
  assert.equal(reply.length, COOKIE_REPLY_LEN);
  assert.ok(reply.length < init.length, 'smaller than the initiation it answers: no amplification');
  const r = parseCookieReply(reply)!;
  assert.equal(r.receiverIndex, 77);
  const sealKey = cookieKey(responderStatic);
  const mac1 = init.subarray(INIT_MAC1_OFF, INIT_MAC2_OFF);
  assert.equal(openCookieReply(r, sealKey, randomBytes(16)), undefined, 'not for another initiation');
  assert.equal(openCookieReply(r, cookieKey(randomBytes(32)), mac1), undefined, 'not from another responder');
  const cookie = openCookieReply(r, sealKey, mac1)!;
  assert.ok(cookie);
  assert.equal(checker.mac2Valid(init, from, 1), false, 'no mac2 yet');
  const next = initiation(randomBytes(32));
  next.set(computeMac1(cookie, next.subarray(0, INIT_MAC2_OFF)), INIT_MAC2_OFF);
  assert.equal(checker.mac2Valid(next, from, 1), true);
  assert.equal(checker.mac2Valid(next, { ...from, port: 4501 }, 1), false, 'another port');
  assert.equal(checker.mac2Valid(next, { ...from, address: '198.51.100.8' }, 1), false, 'another address');
  assert.equal(checker.mac2Valid(next, from, COOKIE_REFRESH_MS + 1), false, 'the secret rotated');
  let forged = 0;
  for (let i = 0; i < 1000; i++) {
    const f = initiation(randomBytes(32));
    randomBytes(16).copy(f, INIT_MAC2_OFF);
    if (checker.mac2Valid(f, from, COOKIE_REFRESH_MS + 2)) forged++;
  }
  assert.equal(forged, 0, '1,000 random mac2 values: none valid');
});

test('the per-source limit: a burst then the rate, per IPv4 address and per IPv6 /64', () => {
  assert.equal(sourceKey('203.0.113.5'), '203.0.113.5');
  assert.equal(sourceKey('::ffff:203.0.113.5'), '203.0.113.5');
  assert.equal(sourceKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
  assert.equal(sourceKey('2001:db8:1:2::ffff'), '2001:db8:1:2::/64');
  assert.equal(sourceKey('2001:db8::1'), '2001:db8:0:0::/64');
  assert.equal(sourceKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
  const l = new SourceLimiter();
  let ok = 0;
  for (let i = 0; i < 100; i++) if (l.allow(`2001:db8:7:7::${(i + 1).toString(16)}`, 0)) ok++;
  assert.equal(ok, HANDSHAKE_SOURCE_BURST, 'one /64, however many addresses, gets one burst');
  assert.ok(l.allow('2001:db8:7:8::1', 0), 'the next /64 is another source');
  ok = 0;
  for (let ms = 0; ms < 1000; ms += 10) if (l.allow('2001:db8:7:7::1', 1 + ms)) ok++;
  assert.ok(ok <= HANDSHAKE_SOURCE_PER_SECOND + 1 && ok >= HANDSHAKE_SOURCE_PER_SECOND - 2, `${ok} in a second`);
});
