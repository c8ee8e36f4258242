// The STUN codec (agent/nat/stun-wire.ts) both views read: what encodeStun writes, parseStunMessage and
// parseStun read back as it was (fast-check); it writes what the `stun` package writes, byte for byte;
// and no random or mutated datagram makes either view, or the integrity check, throw.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  ATTR, STUN_CLASS_REQUEST, encodeStun, parseStunMessage, parseXorAddress, stunAttribute, stunType, verifyIntegrity,
  type StunAttr, type StunValue,
} from '../../agent/nat/stun-wire.js';
import { encodeBindingRequest, parseStun } from '../../agent/nat/stun-binding.js';
import {
  ATTR_CHANNEL_NUMBER, ATTR_DATA, ATTR_LIFETIME, ATTR_REQUESTED_TRANSPORT, ATTR_XOR_PEER_ADDRESS, TRANSPORT_UDP,
  TURN_METHOD_ALLOCATE, TURN_METHOD_CHANNEL_BIND, TURN_METHOD_CREATE_PERMISSION, TURN_METHOD_REFRESH, channelNumberValue,
  longTermKey,
} from '../../agent/nat/turn-wire.js';
import { TURN_MAX_STUN_ATTRIBUTES } from '../../agent/base/constants.js';
import { formatIpv4, formatIpv6, parseIpv4, parseIpv6 } from '../../agent/idloc/addresses.js';
import { stunPackage } from './stun-package.js';

const txidArb = fc.uint8Array({ minLength: 12, maxLength: 12 }).map((b) => Buffer.from(b));
const endpointArb = fc.record({
  address: fc.oneof(fc.integer({ min: 0, max: 0xffffffff }).map(formatIpv4), fc.uint8Array({ minLength: 16, maxLength: 16 }).map(formatIpv6)),
  port: fc.integer({ min: 1, max: 65535 }),
}).map((e) => ({ ...e }));
const keyArb = fc.option(fc.oneof(fc.string({ maxLength: 20 }), fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => Buffer.from(b))), { nil: undefined });
/** Any type but MESSAGE-INTEGRITY and FINGERPRINT, which encodeStun appends itself. */
const typeArb = fc.integer({ min: 0, max: 0xffff }).filter((t) => t !== ATTR.MESSAGE_INTEGRITY && t !== ATTR.FINGERPRINT);
const valueArb: fc.Arbitrary<StunValue> = fc.oneof(
  fc.constant(undefined), fc.integer({ min: 0, max: 0xffffffff }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  fc.string({ unit: 'grapheme', maxLength: 30 }), fc.uint8Array({ maxLength: 40 }), endpointArb,
);

/** How the value reads back from its attribute. */
function readBack(v: StunValue, bytes: Uint8Array, txid: Uint8Array): unknown {
  const b = Buffer.from(bytes);
  if (v === undefined) return b.length === 0 ? undefined : b;
  if (typeof v === 'number') return b.length === 4 ? b.readUInt32BE(0) : b;
  if (typeof v === 'bigint') return b.length === 8 ? b.readBigUInt64BE(0) : b;
  if (typeof v === 'string') return b.toString('utf8');
  if (v instanceof Uint8Array) return new Uint8Array(b);
  return parseXorAddress(bytes, txid);
}

test('round trip: any message encodeStun writes, parseStunMessage reads back attribute for attribute', () => {
  fc.assert(fc.property(
    fc.integer({ min: 0, max: 0xfff }), fc.integer({ min: 0, max: 3 }), txidArb,
    fc.array(fc.tuple(typeArb, valueArb), { maxLength: TURN_MAX_STUN_ATTRIBUTES - 2 }), keyArb, fc.boolean(),
    (method, cls, txid, attrs, key, fingerprint) => {
      const raw = encodeStun(method, cls, txid, attrs, key, fingerprint)!;
      assert.ok(raw);
      assert.equal(raw.length % 4, 0);
      const m = parseStunMessage(raw)!;
      assert.ok(m, 'parses');
      assert.equal(m.method, method);
      assert.equal(m.cls, cls);
      assert.deepEqual(Buffer.from(m.transactionId), txid);
      const types = [...attrs.map((a) => a[0]), ...(key !== undefined ? [ATTR.MESSAGE_INTEGRITY] : []), ...(fingerprint ? [ATTR.FINGERPRINT] : [])];
      assert.deepEqual(m.attributes.map((a) => a.type), types);
      attrs.forEach(([, v], i) => {
        const want = v instanceof Uint8Array ? new Uint8Array(v) : v;
        assert.deepEqual(readBack(v, m.attributes[i]!.value, m.transactionId), typeof v === 'string' ? Buffer.from(v, 'utf8').toString('utf8') : want);
      });
      if (key !== undefined) {
        assert.ok(verifyIntegrity(raw, m, key));
        assert.ok(!verifyIntegrity(raw, m, `${key.toString()}x`));
      } else {
        assert.equal(m.integrityOffset, -1);
      }
    }), { numRuns: 1000 });
});

/** A Binding-view message: the attributes parseStun interprets. */
const bindingArb = fc.record({
  cls: fc.integer({ min: 0, max: 3 }),
  xorMappedAddress: fc.option(endpointArb, { nil: undefined }),
  mappedAddress: fc.option(endpointArb, { nil: undefined }),
  username: fc.option(fc.string({ maxLength: 40 }), { nil: undefined }),
  software: fc.option(fc.string({ maxLength: 40 }), { nil: undefined }),
  priority: fc.option(fc.integer({ min: 0, max: 0xffffffff }), { nil: undefined }),
  useCandidate: fc.boolean(),
  iceControlling: fc.option(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), { nil: undefined }),
  iceControlled: fc.option(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), { nil: undefined }),
  changeRequest: fc.option(fc.integer({ min: 0, max: 0xffffffff }), { nil: undefined }),
  error: fc.option(fc.tuple(fc.integer({ min: 300, max: 699 }), fc.string({ maxLength: 30 })), { nil: undefined }),
  unknownRequired: fc.option(fc.uniqueArray(fc.integer({ min: 0x7000, max: 0x7fff }), { minLength: 1, maxLength: 16 }), { nil: undefined }),
}, { requiredKeys: ['cls', 'useCandidate'] });

test('round trip: Binding messages of every attribute parseStun knows read back as written', () => {
  fc.assert(fc.property(txidArb, bindingArb, keyArb, (txid, b, key) => {
    const attrs: StunAttr[] = [];
    const plainAddress = (e: { address: string; port: number }): Buffer => {
      const v4 = parseIpv4(e.address);
      const v = Buffer.alloc(v4 === undefined ? 20 : 8);
      v[1] = v4 === undefined ? 2 : 1;
      v.writeUInt16BE(e.port, 2);
      if (v4 === undefined) v.set(parseIpv6(e.address)!, 4); else v.writeUInt32BE(v4, 4);
      return v;
    };
    if (b.xorMappedAddress) attrs.push([ATTR.XOR_MAPPED_ADDRESS, b.xorMappedAddress]);
    if (b.mappedAddress) attrs.push([ATTR.MAPPED_ADDRESS, plainAddress(b.mappedAddress)]);
    if (b.username !== undefined) attrs.push([ATTR.USERNAME, b.username]);
    if (b.software !== undefined) attrs.push([ATTR.SOFTWARE, b.software]);
    if (b.priority !== undefined) attrs.push([ATTR.PRIORITY, b.priority]);
    if (b.useCandidate) attrs.push([ATTR.USE_CANDIDATE]);
    if (b.iceControlling !== undefined) attrs.push([ATTR.ICE_CONTROLLING, b.iceControlling]);
    if (b.iceControlled !== undefined) attrs.push([ATTR.ICE_CONTROLLED, b.iceControlled]);
    if (b.changeRequest !== undefined) attrs.push([ATTR.CHANGE_REQUEST, b.changeRequest]);
    if (b.error) {
      const r = Buffer.from(b.error[1], 'utf8');
      attrs.push([ATTR.ERROR_CODE, Buffer.concat([Buffer.from([0, 0, Math.floor(b.error[0] / 100), b.error[0] % 100]), r])]);
    }
    for (const t of b.unknownRequired ?? []) attrs.push([t, Buffer.from('x')]);
    const raw = encodeStun(1, b.cls, txid, attrs, key, true)!;
    const m = parseStun(raw)!;
    assert.ok(m, 'parses');
    assert.equal(m.cls, b.cls);
    assert.equal(m.length, raw.length);
    assert.deepEqual(Buffer.from(m.txid), txid);
    assert.deepEqual(m.xorMappedAddress, b.xorMappedAddress);
    assert.deepEqual(m.mappedAddress, b.mappedAddress);
    assert.equal(m.username, b.username === undefined ? undefined : Buffer.from(b.username).toString());
    assert.equal(m.software, b.software === undefined ? undefined : Buffer.from(b.software).toString());
    assert.equal(m.priority, b.priority);
    assert.equal(m.useCandidate, b.useCandidate);
    assert.equal(m.iceControlling, b.iceControlling);
    assert.equal(m.iceControlled, b.iceControlled);
    assert.equal(m.changeRequest, b.changeRequest);
    assert.equal(m.errorCode, b.error?.[0]);
    assert.equal(m.errorReason, b.error ? Buffer.from(b.error[1]).toString() : undefined);
    assert.deepEqual(m.unknownRequired, b.unknownRequired);
    assert.ok(m.fingerprint);
    assert.equal(m.integrityOffset >= 0, key !== undefined);
    if (key !== undefined) assert.ok(verifyIntegrity(raw, m, key));
  }), { numRuns: 1000 });
});

test('encodeStun writes requests byte for byte as the stun package does', () => {
  fc.assert(fc.property(txidArb, fc.string({ maxLength: 20 }), fc.string({ maxLength: 30 }), fc.string({ minLength: 1, maxLength: 30 }),
    endpointArb, fc.integer({ min: 0x4000, max: 0x4fff }), fc.option(fc.integer({ min: 0, max: 0xffffffff }), { nil: undefined }), fc.boolean(),
    (txid, user, realm, nonce, peer, channel, lifetime, signed) => {
      const key = longTermKey(user, realm, 'pw');
      const cases: [number, StunAttr[], (m: ReturnType<typeof stunPackage.createMessage>) => void][] = [
        [TURN_METHOD_ALLOCATE, [[ATTR_REQUESTED_TRANSPORT, TRANSPORT_UDP], ...(lifetime === undefined ? [] : [[ATTR_LIFETIME, lifetime] as const])],
          (m) => { m.addAttribute(ATTR_REQUESTED_TRANSPORT, TRANSPORT_UDP); if (lifetime !== undefined) m.addAttribute(ATTR_LIFETIME, lifetime); }],
        [TURN_METHOD_REFRESH, [[ATTR_LIFETIME, 0]], (m) => m.addAttribute(ATTR_LIFETIME, 0)],
        [TURN_METHOD_CREATE_PERMISSION, [[ATTR_XOR_PEER_ADDRESS, peer]], (m) => m.addAttribute(ATTR_XOR_PEER_ADDRESS, peer.address, peer.port)],
        [TURN_METHOD_CHANNEL_BIND, [[ATTR_CHANNEL_NUMBER, channelNumberValue(channel)], [ATTR_XOR_PEER_ADDRESS, peer]],
          (m) => { m.addAttribute(ATTR_CHANNEL_NUMBER, (channel << 16) >>> 0); m.addAttribute(ATTR_XOR_PEER_ADDRESS, peer.address, peer.port); }],
      ];
      for (const [method, attrs, fill] of cases) {
        const pkg = stunPackage.createMessage(stunType(method, STUN_CLASS_REQUEST), txid);
        fill(pkg);
        const ours: StunAttr[] = [...attrs];
        if (signed) {
          pkg.addAttribute(ATTR.USERNAME, user); pkg.addAttribute(ATTR.REALM, realm); pkg.addAttribute(ATTR.NONCE, nonce);
          pkg.addMessageIntegrity(key);
          ours.push([ATTR.USERNAME, user], [ATTR.REALM, realm], [ATTR.NONCE, nonce]);
        }
        assert.deepEqual(encodeStun(method, STUN_CLASS_REQUEST, txid, ours, signed ? key : undefined), pkg.toBuffer());
      }
      // Binding requests as the package built them (the ICE attributes, MESSAGE-INTEGRITY, FINGERPRINT).
      const pkg = stunPackage.createMessage(stunType(1, STUN_CLASS_REQUEST), txid);
      pkg.addAttribute(ATTR.USERNAME, user);
      pkg.addAttribute(ATTR.SOFTWARE, 'idloc');
      pkg.addAttribute(ATTR.PRIORITY, lifetime ?? 0);
      const tb = Buffer.alloc(8); tb.writeBigUInt64BE(BigInt(channel) << 40n);
      pkg.addAttribute(ATTR.ICE_CONTROLLING, tb);
      pkg.addAttribute(ATTR.USE_CANDIDATE);
      pkg.addMessageIntegrity(nonce);
      pkg.addFingerprint();
      assert.deepEqual(encodeBindingRequest(txid, {
        username: user, priority: lifetime ?? 0, controlling: true, tieBreaker: BigInt(channel) << 40n, useCandidate: true, password: nonce,
      }, 'idloc'), pkg.toBuffer());
    }), { numRuns: 300 });
});

test('random and mutated datagrams never throw, in either view or the integrity check', () => {
  const views = (b: Uint8Array): void => {
    const l = parseStunMessage(b);
    if (l) {
      assert.ok(l.attributes.length <= TURN_MAX_STUN_ATTRIBUTES);
      for (const a of l.attributes) assert.ok(a.value.byteOffset + a.value.length <= b.byteOffset + b.length);
      verifyIntegrity(b, l, 'k');
      stunAttribute(l, ATTR_DATA);
    }
    const m = parseStun(b);
    if (m) verifyIntegrity(b, m, Buffer.from('k'));
  };
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), views), { numRuns: 2000 });
  const valid = fc.tuple(txidArb, fc.array(fc.tuple(typeArb, valueArb), { maxLength: 8 }), keyArb, fc.boolean())
    .map(([txid, attrs, key, fp]) => encodeStun(TURN_METHOD_ALLOCATE, 2, txid, attrs, key, fp)!);
  const mutation = fc.oneof(
    fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
    fc.record({ kind: fc.constant('byte' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
    fc.record({ kind: fc.constant('length' as const), value: fc.integer({ min: 0, max: 0xffff }) }),
    fc.record({ kind: fc.constant('append' as const), bytes: fc.uint8Array({ maxLength: 12 }) }),
  );
  fc.assert(fc.property(valid, fc.array(mutation, { minLength: 1, maxLength: 4 }), (msg, muts) => {
    let b = Buffer.from(msg);
    for (const u of muts) {
      if (u.kind === 'flip' && b.length) b[u.at % b.length]! ^= 1 << u.bit;
      else if (u.kind === 'byte' && b.length) b[u.at % b.length] = u.value;
      else if (u.kind === 'cut') b = b.subarray(0, u.at % (b.length + 1));
      else if (u.kind === 'length' && b.length >= 4) b.writeUInt16BE(u.value, 2);
      else if (u.kind === 'append') b = Buffer.concat([b, u.bytes]);
    }
    views(b);
  }), { numRuns: 2000 });
});

test('the attribute list keeps its bound; the Binding view walks any number', () => {
  const many = (n: number): Buffer => encodeStun(1, 0, Buffer.alloc(12), Array.from({ length: n }, () => [0x8001] as const))!;
  assert.ok(parseStunMessage(many(TURN_MAX_STUN_ATTRIBUTES)));
  assert.equal(parseStunMessage(many(TURN_MAX_STUN_ATTRIBUTES + 1)), undefined);
  assert.ok(parseStun(many(1000)));
  assert.equal(encodeStun(1, 0, Buffer.alloc(12), [[ATTR_XOR_PEER_ADDRESS, { address: 'not-an-ip', port: 1 }]]), undefined);
});
