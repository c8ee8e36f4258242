// TURN's address-family attributes (agent/nat/turn-wire.ts, RFC 8656): REQUESTED-ADDRESS-FAMILY,
// ADDITIONAL-ADDRESS-FAMILY and ADDRESS-ERROR-CODE against bytes written out by hand from the RFC's
// layout, and coturn's codepoints for them; IPv6 XOR-PEER-ADDRESS / XOR-RELAYED-ADDRESS / XOR-MAPPED-ADDRESS
// against RFC 5769's IPv6 vector and the `stun` package; a dual allocation's two XOR-RELAYED-ADDRESS; and
// that no truncation or garbage makes any of the readers throw.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  STUN_CLASS_SUCCESS, encodeStun, parseStunMessage, parseXorAddress, stunAttribute,
} from '../../agent/nat/stun-wire.js';
import {
  ADDRESS_FAMILY_IPV4, ADDRESS_FAMILY_IPV6, ATTR_ADDITIONAL_ADDRESS_FAMILY, ATTR_ADDITIONAL_ADDRESS_FAMILY_COTURN,
  ATTR_ADDRESS_ERROR_CODE, ATTR_ADDRESS_ERROR_CODE_COTURN, ATTR_REQUESTED_ADDRESS_FAMILY, ATTR_REQUESTED_TRANSPORT,
  ATTR_XOR_MAPPED_ADDRESS, ATTR_XOR_PEER_ADDRESS, ATTR_XOR_RELAYED_ADDRESS, TRANSPORT_UDP, TURN_METHOD_ALLOCATE,
  TURN_METHOD_CHANNEL_BIND, TURN_METHOD_CREATE_PERMISSION, addressError, addressErrorCodeValue, addressFamilyValue,
  channelNumberValue, encodeTurnRequest, familyOf, parseAddressErrorCode, parseAddressFamily, relayedAddresses,
  ATTR_CHANNEL_NUMBER, type AddressFamily,
} from '../../agent/nat/turn-wire.js';
import { formatIpv4, formatIpv6 } from '../../agent/idloc/addresses.js';
import { stunPackage } from './stun-package.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s/g, ''), 'hex');
const C = stunPackage.constants;

const ipv4 = fc.integer({ min: 1, max: 0xffffffff }).map(formatIpv4);
const ipv6 = fc.uint8Array({ minLength: 16, maxLength: 16 }).filter((b) => b.some((x) => x !== 0)).map(formatIpv6);
const port = fc.integer({ min: 1, max: 65535 });
const endpointOf = (addr: fc.Arbitrary<string>) => fc.tuple(addr, port).map(([address, p]) => ({ address, port: p }));
const txid = fc.uint8Array({ minLength: 12, maxLength: 12 }).map((b) => Buffer.from(b));
const family = fc.constantFrom<AddressFamily>(ADDRESS_FAMILY_IPV4, ADDRESS_FAMILY_IPV6);

/** A success answer of `attrs` (type, raw value) behind a valid header, written out here by hand. */
function answer(id: Uint8Array, attrs: readonly (readonly [number, Uint8Array])[]): Buffer {
  const parts = attrs.map(([t, v]) => {
    const a = Buffer.alloc(4 + ((v.length + 3) & ~3));
    a.writeUInt16BE(t, 0); a.writeUInt16BE(v.length, 2); a.set(v, 4);
    return a;
  });
  const head = Buffer.alloc(20);
  head.writeUInt16BE(0x0103, 0); // Allocate success
  head.writeUInt16BE(parts.reduce((n, p) => n + p.length, 0), 2);
  head.writeUInt32BE(0x2112a442, 4);
  head.set(id, 8);
  return Buffer.concat([head, ...parts]);
}

describe('address-family attributes (RFC 8656)', () => {
  it('REQUESTED-ADDRESS-FAMILY and ADDITIONAL-ADDRESS-FAMILY: | family (8) | RFFU (24) |, at the RFC\'s codepoints and coturn\'s', () => {
    assert.equal(addressFamilyValue(ADDRESS_FAMILY_IPV4), 0x01000000);
    assert.equal(addressFamilyValue(ADDRESS_FAMILY_IPV6), 0x02000000);
    const ipv6Value = addressFamilyValue(ADDRESS_FAMILY_IPV6);
    const req = encodeTurnRequest(TURN_METHOD_ALLOCATE, [
      [ATTR_REQUESTED_TRANSPORT, TRANSPORT_UDP], [ATTR_ADDITIONAL_ADDRESS_FAMILY, ipv6Value], [ATTR_ADDITIONAL_ADDRESS_FAMILY_COTURN, ipv6Value],
    ])!;
    assert.equal(req.bytes.subarray(20).toString('hex'), '0019000411000000' + '8000000402000000' + '8032000402000000');
    const one = encodeTurnRequest(TURN_METHOD_ALLOCATE, [[ATTR_REQUESTED_ADDRESS_FAMILY, ipv6Value]])!;
    assert.equal(one.bytes.subarray(20).toString('hex'), '0017000402000000');
    // The stun package (which knows neither) frames them as any other attribute.
    const d = stunPackage.decode(req.bytes);
    assert.equal(d.type, C['STUN_ALLOCATE_REQUEST']);
    assert.deepEqual(d.getAttribute(0x8000)?.value, hex('02000000'));
    assert.deepEqual(d.getAttribute(0x8032)?.value, hex('02000000'));
  });

  it('reads a family only from 4 bytes naming IPv4 or IPv6', () => {
    assert.equal(parseAddressFamily(hex('01000000')), ADDRESS_FAMILY_IPV4);
    assert.equal(parseAddressFamily(hex('02000000')), ADDRESS_FAMILY_IPV6);
    for (const bad of ['', '02', '020000', '0200000000', '00000000', '03000000', 'ff000000']) assert.equal(parseAddressFamily(hex(bad)), undefined, bad);
    fc.assert(fc.property(fc.uint8Array({ maxLength: 12 }), (v) => {
      const f = parseAddressFamily(v);
      assert.ok(f === undefined || (v.length === 4 && f === v[0]));
    }));
  });

  it('ADDRESS-ERROR-CODE: | family (8) | reserved (13) | class (3) | number (8) | reason |, coturn\'s NUL padding dropped', () => {
    const rfc = Buffer.concat([hex('02000428'), Buffer.from('Address Family not Supported')]);
    assert.deepEqual(parseAddressErrorCode(rfc), { family: ADDRESS_FAMILY_IPV6, code: 440, reason: 'Address Family not Supported' });
    // coturn: stun_attr_add_address_error_code pads the reason to a multiple of 4 inside the value.
    const coturn = Buffer.concat([hex('01000508'), Buffer.from('Insufficient Capacity'), Buffer.alloc(3)]);
    assert.deepEqual(parseAddressErrorCode(coturn), { family: ADDRESS_FAMILY_IPV4, code: 508, reason: 'Insufficient Capacity' });
    assert.deepEqual(addressErrorCodeValue(ADDRESS_FAMILY_IPV6, 440, 'Address Family not Supported'), rfc);
    for (const bad of ['', '020004', '03000440', '00000440', '02000240', '02000464', '02000740']) {
      assert.equal(parseAddressErrorCode(hex(bad)), undefined, bad);
    }
  });

  it('round-trip: ADDRESS-ERROR-CODE written then read, any family, code and reason', () => {
    const reason = fc.string({ maxLength: 60 }).filter((r) => !r.endsWith('\0'));
    fc.assert(fc.property(family, fc.integer({ min: 300, max: 699 }), reason, (f, code, r) => {
      assert.deepEqual(parseAddressErrorCode(addressErrorCodeValue(f, code, r)), { family: f, code, reason: r });
    }), { numRuns: 300 });
  });

  it('finds ADDRESS-ERROR-CODE at either codepoint, the first well-formed one', () => {
    const id = Buffer.alloc(12, 7);
    const e6 = addressErrorCodeValue(ADDRESS_FAMILY_IPV6, 440, 'no');
    for (const type of [ATTR_ADDRESS_ERROR_CODE, ATTR_ADDRESS_ERROR_CODE_COTURN]) {
      const m = parseStunMessage(answer(id, [[type, hex('0300')], [type, e6]]))!;
      assert.deepEqual(addressError(m), { family: ADDRESS_FAMILY_IPV6, code: 440, reason: 'no' });
    }
    assert.equal(addressError(parseStunMessage(answer(id, [[0x8002, e6]]))!), undefined);
  });

  it('tells an address\'s family from its text', () => {
    assert.equal(familyOf('198.51.100.10'), ADDRESS_FAMILY_IPV4);
    assert.equal(familyOf('2001:db8::10'), ADDRESS_FAMILY_IPV6);
    for (const bad of ['', 'turn.example', '1.2.3', '2001:db8:::1', '::ffff:1.2.3.4x']) assert.equal(familyOf(bad), undefined, bad);
  });
});

describe('IPv6 XOR addresses and dual allocations', () => {
  // RFC 5769 section 2.3: XOR-MAPPED-ADDRESS 2001:db8:1234:5678:11:2233:4455:6677 port 32853 under this id.
  const RFC5769_ID = hex('b7e7a701bc34d686fa87dfae');
  const RFC5769_V6 = hex('0002a1470113a9faa5d3f179bc25f4b5bed2b9d9');
  const V6 = { address: '2001:db8:1234:5678:11:2233:4455:6677', port: 32853 };

  it('reads RFC 5769\'s IPv6 XOR address as XOR-RELAYED-ADDRESS too, next to an IPv4 one, IPv4 first', () => {
    const v4 = hex('0001a147e112a643'); // RFC 5769 section 2.2: 192.0.2.1 port 32853, under the same cookie
    const m = parseStunMessage(answer(RFC5769_ID, [[ATTR_XOR_RELAYED_ADDRESS, RFC5769_V6], [ATTR_XOR_RELAYED_ADDRESS, v4],
      [ATTR_XOR_MAPPED_ADDRESS, RFC5769_V6]]))!;
    assert.deepEqual(relayedAddresses(m), [{ address: '192.0.2.1', port: 32853 }, V6]);
    assert.deepEqual(parseXorAddress(stunAttribute(m, ATTR_XOR_MAPPED_ADDRESS)!, m.transactionId), V6);
  });

  it('keeps the first of each family and skips coturn\'s unspecified stand-in for a family it failed to allocate', () => {
    const id = Buffer.alloc(12, 3);
    const xor = (e: { address: string; port: number }): Uint8Array => {
      const b = encodeStun(TURN_METHOD_ALLOCATE, STUN_CLASS_SUCCESS, id, [[ATTR_XOR_RELAYED_ADDRESS, e]])!;
      return b.subarray(24, 24 + b.readUInt16BE(22));
    };
    const any4 = hex('0001 2112 2112a442'); // 0.0.0.0 port 0, XOR'd
    const any6 = Buffer.concat([hex('0002 2112 2112a442'), id]); // :: port 0, XOR'd
    const a = { address: '198.51.100.12', port: 49152 }, b = { address: '198.51.100.12', port: 49153 };
    const c = { address: '2001:db8::12', port: 49154 };
    const m = parseStunMessage(answer(id, [[ATTR_XOR_RELAYED_ADDRESS, any6], [ATTR_XOR_RELAYED_ADDRESS, xor(a)],
      [ATTR_XOR_RELAYED_ADDRESS, xor(b)], [ATTR_XOR_RELAYED_ADDRESS, hex('0002')], [ATTR_XOR_RELAYED_ADDRESS, xor(c)]]))!;
    assert.deepEqual(relayedAddresses(m), [a, c]);
    assert.deepEqual(relayedAddresses(parseStunMessage(answer(id, [[ATTR_XOR_RELAYED_ADDRESS, any4], [ATTR_XOR_RELAYED_ADDRESS, any6]]))!), []);
    // Port 0 on a real address is no relayed address either.
    const zero = Buffer.from(xor(a)); zero[2] = 0x21; zero[3] = 0x12;
    assert.deepEqual(relayedAddresses(parseStunMessage(answer(id, [[ATTR_XOR_RELAYED_ADDRESS, zero]]))!), []);
  });

  it('round-trip: XOR-RELAYED-ADDRESS of each family as the stun package writes it', () => {
    fc.assert(fc.property(txid, fc.oneof(endpointOf(ipv4), endpointOf(ipv6)), (id, e) => {
      const msg = stunPackage.createMessage(C['STUN_ALLOCATE_RESPONSE']!, id);
      msg.addAttribute(ATTR_XOR_RELAYED_ADDRESS, e.address, e.port);
      assert.deepEqual(relayedAddresses(parseStunMessage(msg.toBuffer())!), e.address === '0.0.0.0' ? [] : [e]);
    }), { numRuns: 300 });
  });

  it('round-trip: CreatePermission and ChannelBind for IPv6 peers, as the stun package reads them', () => {
    fc.assert(fc.property(endpointOf(ipv6), fc.integer({ min: 0x4000, max: 0x4fff }), (peer, ch) => {
      const perm = encodeTurnRequest(TURN_METHOD_CREATE_PERMISSION, [[ATTR_XOR_PEER_ADDRESS, peer]])!;
      const bind = encodeTurnRequest(TURN_METHOD_CHANNEL_BIND, [[ATTR_CHANNEL_NUMBER, channelNumberValue(ch)], [ATTR_XOR_PEER_ADDRESS, peer]])!;
      for (const { bytes } of [perm, bind]) {
        const d = stunPackage.decode(bytes);
        const got = d.getAttribute(ATTR_XOR_PEER_ADDRESS)!.value as { address: string; port: number; family: string };
        assert.equal(got.family, 'IPv6');
        assert.equal(new URL(`http://[${got.address}]/`).hostname, new URL(`http://[${peer.address}]/`).hostname);
        assert.equal(got.port, peer.port);
        assert.equal(bytes[20 + (bytes === bind.bytes ? 8 : 0) + 5], 2, 'family 2 on the wire');
      }
    }), { numRuns: 200 });
  });
});

describe('the family readers never throw on what the network sends', () => {
  const seed = (() => {
    const id = Buffer.alloc(12, 9);
    return answer(id, [
      [ATTR_XOR_RELAYED_ADDRESS, Buffer.concat([hex('0002 2112'), Buffer.alloc(16, 0x42)])],
      [ATTR_XOR_RELAYED_ADDRESS, hex('0001 e112 01020304')],
      [ATTR_ADDRESS_ERROR_CODE_COTURN, addressErrorCodeValue(ADDRESS_FAMILY_IPV6, 440, 'Address Family not Supported')],
    ]);
  })();

  const sane = (b: Uint8Array): void => {
    const m = parseStunMessage(b);
    if (!m) return;
    const r = relayedAddresses(m);
    assert.ok(r.length <= 2);
    for (const e of r) {
      assert.ok(familyOf(e.address) !== undefined && e.port >= 1 && e.port <= 65535, JSON.stringify(e));
      assert.ok(e.address !== '0.0.0.0' && e.address !== '::');
    }
    if (r.length === 2) assert.ok(!r[0]!.address.includes(':') && r[1]!.address.includes(':'));
    const err = addressError(m);
    if (err) assert.ok(err.code >= 300 && err.code <= 699 && (err.family === 1 || err.family === 2));
  };

  it('every truncation of a dual allocation answer', () => {
    for (let n = 0; n <= seed.length; n++) sane(seed.subarray(0, n));
    for (let n = 0; n <= 40; n++) { parseAddressErrorCode(seed.subarray(20, 20 + n)); parseAddressFamily(seed.subarray(20, 20 + n)); }
  });

  it('random attribute sections behind a valid header, random bytes, bit flips', () => {
    const types = fc.constantFrom(ATTR_XOR_RELAYED_ADDRESS, ATTR_ADDRESS_ERROR_CODE, ATTR_ADDRESS_ERROR_CODE_COTURN, ATTR_XOR_MAPPED_ADDRESS, 0x8000, 0x0017);
    const attrs = fc.array(fc.tuple(types, fc.uint8Array({ maxLength: 40 })), { maxLength: 12 });
    fc.assert(fc.property(txid, attrs, (id, as) => sane(answer(id, as))), { numRuns: 500 });
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
      sane(b); parseAddressErrorCode(b); parseAddressFamily(b);
      const withHeader = Buffer.concat([seed.subarray(0, 20), b.subarray(0, b.length & ~3)]);
      withHeader.writeUInt16BE(withHeader.length - 20, 2);
      sane(withHeader);
    }), { numRuns: 500 });
    fc.assert(fc.property(fc.nat(), (flip) => {
      const b = Buffer.from(seed);
      b[flip % b.length]! ^= 1 << (flip % 8);
      sane(b);
    }), { numRuns: 500 });
  });
});
