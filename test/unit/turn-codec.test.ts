// The STUN codec as TURN uses it (agent/nat/stun-wire.ts, agent/nat/turn-wire.ts): STUN parsing against RFC 5769's test
// vectors and against what the `stun` package writes, ChannelData, XOR addresses, Send indications.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  STUN_CLASS_ERROR, STUN_CLASS_INDICATION, STUN_CLASS_REQUEST, STUN_CLASS_SUCCESS, parseErrorCode, parseStunMessage,
  parseXorAddress, stunAttribute, stunType, verifyIntegrity as verifyMessageIntegrity, writeXorAddress,
} from '../../agent/nat/stun-wire.js';
import {
  ATTR_DATA, ATTR_ERROR_CODE, ATTR_LIFETIME, ATTR_NONCE, ATTR_REALM, ATTR_XOR_PEER_ADDRESS, CHANNEL_MAX, CHANNEL_MIN,
  TURN_METHOD_ALLOCATE, TURN_METHOD_CHANNEL_BIND, TURN_METHOD_DATA, TURN_METHOD_SEND, encodeChannelData,
  encodeSendIndication, longTermKey, parseChannelData,
} from '../../agent/nat/turn-wire.js';
import { stunPackage } from './stun-package.js';
import { classifyDatagram } from '../../agent/nat/demux.js';
import { formatIpv4, formatIpv6 } from '../../agent/idloc/addresses.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s/g, ''), 'hex');
const C = stunPackage.constants;

// RFC 5769 section 2.2-2.4.
const RFC5769_IPV4_RESPONSE = hex(`0101003c2112a442b7e7a701bc34d686fa87dfae 8022000b7465737420766563746f7220
  002000080001a147e112a643 000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7 80280004c07d4c96`);
const RFC5769_IPV6_RESPONSE = hex(`010100482112a442b7e7a701bc34d686fa87dfae 8022000b7465737420766563746f7220
  002000140002a1470113a9faa5d3f179bc25f4b5bed2b9d9 00080014a382954e4be67bf11784c97c8292c275bfe3ed41 80280004c8fb0b4c`);
const RFC5769_LONG_TERM_REQUEST = hex(`000100602112a44278ad3433c6ad72c029da412e
  00060012e3839ee38388e383aae38383e382afe382b90000 0015001c662f2f3439396b39353464364f4c33346f4c39465354767936347341
  0014000b6578616d706c652e6f726700 00080014f67024656dd64a3e02b8e0712e85c9a28ca89666`);
const SHORT_TERM_PASSWORD = Buffer.from('VOkJxbRl1RmTxUk/WvJxBt');

const ipv4 = fc.integer({ min: 0, max: 0xffffffff }).map(formatIpv4);
const ipv6 = fc.uint8Array({ minLength: 16, maxLength: 16 }).map(formatIpv6);
const endpoint = fc.tuple(fc.oneof(ipv4, ipv6), fc.integer({ min: 1, max: 65535 })).map(([address, port]) => ({ address, port }));
const txid = fc.uint8Array({ minLength: 12, maxLength: 12 }).map((b) => Buffer.from(b));

describe('STUN parsing (hand-written)', () => {
  it('computes message types as RFC 8489 interleaves them', () => {
    assert.equal(stunType(TURN_METHOD_ALLOCATE, STUN_CLASS_REQUEST), 0x0003);
    assert.equal(stunType(TURN_METHOD_ALLOCATE, STUN_CLASS_ERROR), 0x0113);
    assert.equal(stunType(TURN_METHOD_CHANNEL_BIND, STUN_CLASS_SUCCESS), 0x0109);
    assert.equal(stunType(TURN_METHOD_SEND, STUN_CLASS_INDICATION), 0x0016);
    assert.equal(stunType(TURN_METHOD_DATA, STUN_CLASS_INDICATION), 0x0017);
    assert.equal(stunType(TURN_METHOD_ALLOCATE, STUN_CLASS_ERROR), C['STUN_ALLOCATE_ERROR_RESPONSE']);
    assert.equal(stunType(TURN_METHOD_DATA, STUN_CLASS_INDICATION), C['STUN_DATA_INDICATION']);
  });

  it('reads the RFC 5769 IPv4 and IPv6 responses and checks their MESSAGE-INTEGRITY', () => {
    for (const [raw, want] of [
      [RFC5769_IPV4_RESPONSE, { address: '192.0.2.1', port: 32853 }],
      [RFC5769_IPV6_RESPONSE, { address: '2001:db8:1234:5678:11:2233:4455:6677', port: 32853 }],
    ] as const) {
      const m = parseStunMessage(raw)!;
      assert.ok(m);
      assert.equal(m.cls, STUN_CLASS_SUCCESS);
      assert.equal(m.method, 1);
      assert.deepEqual(parseXorAddress(stunAttribute(m, 0x0020)!, m.transactionId), want);
      assert.ok(verifyMessageIntegrity(raw, m, SHORT_TERM_PASSWORD));
      assert.ok(!verifyMessageIntegrity(raw, m, Buffer.from('wrong')));
    }
  });

  it('verifies the RFC 5769 long-term credential request with MD5(username:realm:password)', () => {
    const m = parseStunMessage(RFC5769_LONG_TERM_REQUEST)!;
    assert.ok(m);
    assert.equal(Buffer.from(stunAttribute(m, ATTR_REALM)!).toString(), 'example.org');
    assert.ok(verifyMessageIntegrity(RFC5769_LONG_TERM_REQUEST, m, longTermKey('マトリックス', 'example.org', 'TheMatrIX')));
    assert.ok(!verifyMessageIntegrity(RFC5769_LONG_TERM_REQUEST, m, longTermKey('マトリックス', 'example.org', 'TheMatrix')));
    const tampered = Buffer.from(RFC5769_LONG_TERM_REQUEST);
    tampered[25]! ^= 1;
    assert.ok(!verifyMessageIntegrity(tampered, parseStunMessage(tampered)!, longTermKey('マトリックス', 'example.org', 'TheMatrIX')));
  });

  it('ignores attributes after MESSAGE-INTEGRITY except FINGERPRINT', () => {
    const m = parseStunMessage(RFC5769_IPV4_RESPONSE)!;
    assert.deepEqual(m.attributes.map((a) => a.type), [0x8022, 0x0020, 0x0008, 0x8028]);
    const extra = Buffer.concat([RFC5769_IPV4_RESPONSE, hex('000d000400000258')]);
    extra.writeUInt16BE(extra.length - 20, 2);
    assert.equal(stunAttribute(parseStunMessage(extra)!, ATTR_LIFETIME), undefined);
  });

  it('reads ERROR-CODE correctly where the stun package does not (its decode turns 401 into 404)', () => {
    for (const code of [300, 401, 437, 438, 441, 486, 508, 699]) {
      const msg = stunPackage.createMessage(C['STUN_ALLOCATE_ERROR_RESPONSE']!);
      msg.addAttribute(ATTR_ERROR_CODE, code, 'some reason');
      const m = parseStunMessage(msg.toBuffer())!;
      assert.deepEqual(parseErrorCode(stunAttribute(m, ATTR_ERROR_CODE)!), { code, reason: 'some reason' });
    }
    assert.equal(parseErrorCode(Uint8Array.of(0, 0, 2, 0)), undefined); // class 2 is not an error
    assert.equal(parseErrorCode(Uint8Array.of(0, 0, 4, 100)), undefined);
    assert.equal(parseErrorCode(Uint8Array.of(0, 0, 4)), undefined);
  });

  it('refuses truncated, mis-framed and cookie-less messages, and never throws', () => {
    const good = RFC5769_IPV4_RESPONSE;
    for (let n = 0; n < good.length; n++) assert.equal(parseStunMessage(good.subarray(0, n)), undefined, `prefix ${n}`);
    const noCookie = Buffer.from(good); noCookie[4] = 0;
    const topBits = Buffer.from(good); topBits[0]! |= 0x80;
    const oddLen = Buffer.from(good); oddLen.writeUInt16BE(good.length - 21, 2);
    const overlong = Buffer.from(good); overlong.writeUInt16BE(200, 22); // SOFTWARE claims more than is there
    for (const b of [noCookie, topBits, oddLen, overlong, Buffer.concat([good, Buffer.alloc(4)])]) assert.equal(parseStunMessage(b), undefined);
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (b) => { parseStunMessage(b); parseChannelData(b); }));
    // Random attribute sections behind a valid header.
    fc.assert(fc.property(fc.uint8Array({ maxLength: 120 }).map((a) => a.subarray(0, a.length & ~3)), (body) => {
      const b = Buffer.concat([good.subarray(0, 20), body]);
      b.writeUInt16BE(body.length, 2);
      const m = parseStunMessage(b);
      if (m) for (const a of m.attributes) assert.ok(a.value.byteOffset + a.value.length <= b.byteOffset + b.length);
    }));
  });

  it('round-trip: whatever attributes the stun package writes, the hand-written parser reads back', () => {
    fc.assert(fc.property(
      txid, endpoint, fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 0, max: 0xffffffff }),
      fc.string({ maxLength: 40 }), fc.string({ minLength: 1, maxLength: 40 }), fc.integer({ min: 300, max: 699 }),
      (id, peer, data, lifetime, realm, nonce, code) => {
        const msg = stunPackage.createMessage(C['STUN_ALLOCATE_ERROR_RESPONSE']!, id);
        msg.addAttribute(ATTR_XOR_PEER_ADDRESS, peer.address, peer.port);
        msg.addAttribute(ATTR_DATA, Buffer.from(data));
        msg.addAttribute(ATTR_LIFETIME, lifetime);
        msg.addAttribute(ATTR_REALM, realm);
        msg.addAttribute(ATTR_NONCE, nonce);
        msg.addAttribute(ATTR_ERROR_CODE, code, 'x');
        const raw = msg.toBuffer();
        const m = parseStunMessage(raw);
        assert.ok(m);
        assert.equal(m.cls, STUN_CLASS_ERROR);
        assert.equal(m.method, TURN_METHOD_ALLOCATE);
        assert.deepEqual(Buffer.from(m.transactionId), id);
        assert.deepEqual(parseXorAddress(stunAttribute(m, ATTR_XOR_PEER_ADDRESS)!, m.transactionId), peer);
        assert.deepEqual(Buffer.from(stunAttribute(m, ATTR_DATA)!), Buffer.from(data));
        assert.equal(Buffer.from(stunAttribute(m, ATTR_LIFETIME)!).readUInt32BE(0), lifetime);
        assert.equal(Buffer.from(stunAttribute(m, ATTR_REALM)!).toString(), realm);
        assert.equal(Buffer.from(stunAttribute(m, ATTR_NONCE)!).toString(), nonce);
        assert.equal(parseErrorCode(stunAttribute(m, ATTR_ERROR_CODE)!)!.code, code);
      }), { numRuns: 300 });
  });

  it('round-trip: the stun package\'s MESSAGE-INTEGRITY verifies with the long-term key, and breaks on any flipped bit', () => {
    fc.assert(fc.property(txid, fc.string({ maxLength: 20 }), fc.string({ maxLength: 20 }), fc.nat(), (id, user, pass, flip) => {
      const key = longTermKey(user, 'idloc', pass);
      const msg = stunPackage.createMessage(C['STUN_ALLOCATE_REQUEST']!, id);
      msg.addAttribute(0x0019, (17 << 24) >>> 0);
      msg.addAttribute(0x0006, user);
      msg.addAttribute(ATTR_REALM, 'idloc');
      msg.addAttribute(ATTR_NONCE, 'abc');
      msg.addMessageIntegrity(key);
      const raw = msg.toBuffer();
      assert.ok(verifyMessageIntegrity(raw, parseStunMessage(raw)!, key));
      const bad = Buffer.from(raw);
      bad[flip % raw.length]! ^= 1 << (flip % 8);
      const m = parseStunMessage(bad);
      assert.ok(!m || !verifyMessageIntegrity(bad, m, key));
    }), { numRuns: 200 });
  });
});

describe('XOR addresses, Send indications and ChannelData (hand-written)', () => {
  it('round-trip: XOR-*-ADDRESS write then parse, IPv4 and IPv6', () => {
    fc.assert(fc.property(endpoint, txid, (e, id) => {
      const out = new Uint8Array(20);
      const n = writeXorAddress(out, 0, e, id);
      assert.equal(n, e.address.includes(':') ? 20 : 8);
      assert.deepEqual(parseXorAddress(out.subarray(0, n), id), e);
    }));
    assert.equal(writeXorAddress(new Uint8Array(20), 0, { address: 'nonsense', port: 1 }, new Uint8Array(12)), 0);
    assert.equal(parseXorAddress(Uint8Array.of(0, 1, 0, 0, 1, 2, 3), new Uint8Array(12)), undefined);
    assert.equal(parseXorAddress(Uint8Array.of(0, 3, 0, 0, 1, 2, 3, 4), new Uint8Array(12)), undefined);
  });

  it('round-trip: Send indications read back by the stun package and by our parser', () => {
    fc.assert(fc.property(endpoint, fc.uint8Array({ maxLength: 1500 }), txid, (peer, data, id) => {
      const raw = encodeSendIndication(peer, data, id)!;
      const d = stunPackage.decode(raw);
      assert.equal(d.type, C['STUN_SEND_INDICATION']);
      const pa = d.getAttribute(ATTR_XOR_PEER_ADDRESS)!.value as { address: string; port: number };
      assert.equal(pa.port, peer.port);
      assert.deepEqual(Buffer.from(d.getAttribute(ATTR_DATA)!.value as Buffer), Buffer.from(data));
      const m = parseStunMessage(raw)!;
      assert.equal(m.method, TURN_METHOD_SEND);
      assert.deepEqual(parseXorAddress(stunAttribute(m, ATTR_XOR_PEER_ADDRESS)!, m.transactionId), peer);
      assert.deepEqual(Buffer.from(stunAttribute(m, ATTR_DATA)!), Buffer.from(data));
    }), { numRuns: 200 });
  });

  it('round-trip: ChannelData encode then parse, with or without padding; demux sees turn-channel', () => {
    fc.assert(fc.property(fc.integer({ min: CHANNEL_MIN, max: CHANNEL_MAX }), fc.uint8Array({ maxLength: 2000 }), fc.integer({ min: 0, max: 3 }),
      (channel, data, pad) => {
        const raw = Buffer.concat([encodeChannelData(channel, data), Buffer.alloc(pad)]);
        assert.equal(classifyDatagram(raw[0]), 'turn-channel');
        const p = parseChannelData(raw)!;
        assert.equal(p.channel, channel);
        assert.deepEqual(Buffer.from(p.data), Buffer.from(data));
      }));
  });

  it('refuses truncated, overlong and out-of-range ChannelData', () => {
    fc.assert(fc.property(fc.integer({ min: CHANNEL_MIN, max: CHANNEL_MAX }), fc.uint8Array({ minLength: 1, maxLength: 300 }), fc.nat(), (channel, data, cut) => {
      const raw = encodeChannelData(channel, data);
      assert.equal(parseChannelData(raw.subarray(0, cut % raw.length)), undefined); // truncated
      assert.equal(parseChannelData(Buffer.concat([raw, Buffer.alloc(4)])), undefined); // more than padding behind it
    }));
    assert.equal(parseChannelData(encodeChannelData(0x3fff, Buffer.alloc(4))), undefined);
    assert.equal(parseChannelData(encodeChannelData(0x5000, Buffer.alloc(4))), undefined);
  });
});
