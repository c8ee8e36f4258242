// Codec round-trips and malformed-input properties for the tunnel wire formats, plus demux.
import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  HANDSHAKE_INIT_LEN, HANDSHAKE_RESP_LEN, MAX_COUNTER, MSG_HANDSHAKE_INIT, MSG_HANDSHAKE_RESP, MSG_TRANSPORT,
  TRANSPORT_MIN_LEN, compareTai64n, mac1Key, marshalHandshakeInit, marshalHandshakeResp, marshalTransport,
  parseHandshakeInit, parseHandshakeResp, parseTransport, tai64n, verifyMac1,
} from '../../agent/tunnel/messages.js';
import { classifyDatagram } from '../../agent/nat/demux.js';

const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const eq = (a: Uint8Array, b: Uint8Array) => Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;

test('handshake initiation round-trips (mac1 computed and verified)', () => {
  fc.assert(
    fc.property(u32, bytes(32), bytes(48), bytes(68), bytes(32), (senderIndex, ephemeral, encryptedStatic, encryptedPayload, pub) => {
      const key = mac1Key(pub);
      const b = marshalHandshakeInit({ senderIndex, ephemeral, encryptedStatic, encryptedPayload, mac1: new Uint8Array(16) }, key);
      assert.equal(b.length, HANDSHAKE_INIT_LEN);
      const m = parseHandshakeInit(b)!;
      assert.ok(verifyMac1(key, b));
      const flipped = Buffer.from(b);
      flipped[10]! ^= 1;
      assert.equal(verifyMac1(key, flipped), false);
      return m.senderIndex === senderIndex && eq(m.ephemeral, ephemeral) && eq(m.encryptedStatic, encryptedStatic) &&
        eq(m.encryptedPayload, encryptedPayload) && eq(marshalHandshakeInit(m), b);
    }),
  );
});

test('handshake response round-trips', () => {
  fc.assert(
    fc.property(u32, u32, bytes(32), bytes(16), bytes(16), (senderIndex, receiverIndex, ephemeral, encryptedNothing, mac1) => {
      const b = marshalHandshakeResp({ senderIndex, receiverIndex, ephemeral, encryptedNothing, mac1 });
      assert.equal(b.length, HANDSHAKE_RESP_LEN);
      const m = parseHandshakeResp(b)!;
      return m.senderIndex === senderIndex && m.receiverIndex === receiverIndex && eq(m.ephemeral, ephemeral) &&
        eq(m.encryptedNothing, encryptedNothing) && eq(m.mac1, mac1);
    }),
  );
});

test('transport round-trips, counters up to 2^53-1, reusable out object', () => {
  const out = {} as NonNullable<ReturnType<typeof parseTransport>>;
  fc.assert(
    fc.property(u32, fc.oneof(fc.integer({ min: 0, max: 2 ** 32 + 5 }), fc.integer({ min: 0, max: MAX_COUNTER })), fc.uint8Array({ minLength: 16, maxLength: 1500 }), (receiverIndex, counter, ciphertext) => {
      const b = marshalTransport({ receiverIndex, counter, ciphertext });
      const m = parseTransport(b, out)!;
      return m === out && m.receiverIndex === receiverIndex && m.counter === counter && eq(m.ciphertext, ciphertext);
    }),
  );
  // Counter 2^53 (high word 0x200000) is refused.
  const b = marshalTransport({ receiverIndex: 1, counter: 0, ciphertext: new Uint8Array(16) });
  b.writeUInt32LE(0x200000, 12);
  assert.equal(parseTransport(b), undefined);
});

test('random bytes never throw and never parse unless they have the exact shape', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (raw) => {
      const b = Buffer.from(raw);
      const i = parseHandshakeInit(b);
      const r = parseHandshakeResp(b);
      const t = parseTransport(b);
      if (i) assert.ok(b.length === HANDSHAKE_INIT_LEN && b[0] === MSG_HANDSHAKE_INIT);
      if (r) assert.ok(b.length === HANDSHAKE_RESP_LEN && b[0] === MSG_HANDSHAKE_RESP);
      if (t) assert.ok(b.length >= TRANSPORT_MIN_LEN && b[0] === MSG_TRANSPORT);
      verifyMac1(new Uint8Array(32), b);
      return true;
    }),
    { numRuns: 2000 },
  );
});

test('every truncation and any non-zero reserved byte of a valid message is refused', () => {
  const init = marshalHandshakeInit({ senderIndex: 7, ephemeral: new Uint8Array(32), encryptedStatic: new Uint8Array(48), encryptedPayload: new Uint8Array(68), mac1: new Uint8Array(16) });
  const resp = marshalHandshakeResp({ senderIndex: 7, receiverIndex: 9, ephemeral: new Uint8Array(32), encryptedNothing: new Uint8Array(16), mac1: new Uint8Array(16) });
  const data = marshalTransport({ receiverIndex: 3, counter: 4, ciphertext: new Uint8Array(40) });
  for (let n = 0; n < init.length; n++) assert.equal(parseHandshakeInit(init.subarray(0, n)), undefined);
  for (let n = 0; n < resp.length; n++) assert.equal(parseHandshakeResp(resp.subarray(0, n)), undefined);
  for (let n = 0; n < TRANSPORT_MIN_LEN; n++) assert.equal(parseTransport(data.subarray(0, n)), undefined);
  assert.equal(parseHandshakeInit(Buffer.concat([init, Buffer.of(0)])), undefined, 'trailing byte');
  for (const [b, parse] of [[init, parseHandshakeInit], [resp, parseHandshakeResp], [data, parseTransport]] as const) {
    for (let pos = 1; pos <= 3; pos++) {
      const bad = Buffer.from(b);
      bad[pos] = 1;
      assert.equal((parse as (x: Uint8Array) => unknown)(bad), undefined, `reserved byte ${pos}`);
    }
  }
});

test('TAI64N orders like time', () => {
  fc.assert(
    fc.property(fc.bigInt({ min: 0n, max: 2n ** 62n }), fc.bigInt({ min: 0n, max: 2n ** 62n }), (a, b) => {
      const c = compareTai64n(tai64n(a), tai64n(b));
      return Math.sign(c) === (a < b ? -1 : a > b ? 1 : 0);
    }),
  );
});

test('classifyDatagram follows RFC 7983 and our type bytes', () => {
  const expect = (b: number) =>
    b <= 3 ? 'stun' : b >= 64 && b <= 79 ? 'turn-channel' : b >= 0xc1 && b <= 0xc4 ? 'tunnel' : b === 0xd2 ? 'overlay' : b === 0xd3 ? 'peer-relay' : 'unknown';
  for (let b = 0; b < 256; b++) assert.equal(classifyDatagram(b), expect(b), `byte ${b}`);
  assert.equal(classifyDatagram(undefined), 'unknown');
  assert.equal(classifyDatagram(0xc3), 'tunnel', 'the cookie reply');
});

test('mac2 and the cookie reply: round trips, and mac2 covers mac1', async () => {
  const m = await import('../../agent/tunnel/messages.js');
  fc.assert(fc.property(u32, bytes(32), bytes(16), bytes(24), bytes(32), (senderIndex, pub, cookie, nonce, encryptedCookie) => {
    const key = m.mac1Key(pub);
    const b = m.marshalHandshakeInit({ senderIndex, ephemeral: new Uint8Array(32), encryptedStatic: new Uint8Array(48), encryptedPayload: new Uint8Array(68), mac1: new Uint8Array(16) }, key, cookie);
    assert.ok(m.verifyMac1(key, b) && m.verifyMacAt(cookie, b, m.INIT_MAC2_OFF));
    const flipped = Buffer.from(b); flipped[m.INIT_MAC1_OFF]! ^= 1;
    assert.equal(m.verifyMacAt(cookie, flipped, m.INIT_MAC2_OFF), false);
    const r = m.marshalCookieReply({ receiverIndex: senderIndex, nonce, encryptedCookie });
    const p = m.parseCookieReply(r)!;
    return r.length === m.COOKIE_REPLY_LEN && p.receiverIndex === senderIndex && eq(p.nonce, nonce) && eq(p.encryptedCookie, encryptedCookie);
  }));
  fc.assert(fc.property(fc.uint8Array({ maxLength: 100 }), (raw) => {
    const p = m.parseCookieReply(raw);
    return !p || (raw.length === m.COOKIE_REPLY_LEN && raw[0] === m.MSG_COOKIE_REPLY);
  }));
});
