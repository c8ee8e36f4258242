// STUN is no amplifier (issue 9): every source may be spoofed, so to a source that never proved return
// routability the STUN endpoint never sends more bytes than it received from it, for every kind of request
// (plain, padded, with SOFTWARE, CHANGE-REQUEST, unknown comprehension-required attributes, ICE checks
// signed with the right, a wrong or an unknown password, role conflicts, indications, stray responses,
// other methods, garbage), and what one address can make it send is bounded by a byte budget.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { StunEndpoint } from '../../agent/nat/stun-endpoint.js';
import {
  ATTR, STUN_CLASS_ERROR, STUN_CLASS_INDICATION, STUN_CLASS_REQUEST, STUN_CLASS_SUCCESS, STUN_METHOD_BINDING, encodeStun, type StunAttr,
} from '../../agent/nat/stun-wire.js';
import { endpointKey, type Endpoint } from '../../agent/conn/socket.js';

const PADDING = 0x0026;

interface Variant {
  cls: number; method: number; ipv6: boolean; software: boolean; change: number; unknown: number;
  ice: 'none' | 'good' | 'wrong-key' | 'unknown-user'; pad: number; fingerprint: boolean; garbage: boolean;
}

const variant = fc.record({
  cls: fc.constantFrom(STUN_CLASS_REQUEST, STUN_CLASS_REQUEST, STUN_CLASS_REQUEST, STUN_CLASS_INDICATION, STUN_CLASS_SUCCESS, STUN_CLASS_ERROR),
  method: fc.constantFrom(STUN_METHOD_BINDING, STUN_METHOD_BINDING, STUN_METHOD_BINDING, 0x003, 0x004),
  ipv6: fc.boolean(), software: fc.boolean(), change: fc.constantFrom(0, 0, 2, 4, 6), unknown: fc.nat({ max: 20 }),
  ice: fc.constantFrom('none', 'none', 'good', 'wrong-key', 'unknown-user') as fc.Arbitrary<Variant['ice']>,
  pad: fc.constantFrom(0, 0, 4, 12, 24, 44, 100), fingerprint: fc.boolean(), garbage: fc.boolean(),
});

function forge(v: Variant): Uint8Array {
  if (v.garbage) { const b = randomBytes(20 + (v.pad % 40)); b[0] = b[0]! & 3; return b; }
  const attrs: StunAttr[] = [];
  if (v.ice !== 'none') attrs.push([ATTR.USERNAME, v.ice === 'unknown-user' ? 'nobody:x' : 'bU:aU']);
  if (v.software) attrs.push([ATTR.SOFTWARE, 'x']);
  if (v.ice !== 'none') {
    attrs.push([ATTR.PRIORITY, 1], [ATTR.ICE_CONTROLLING, 5n]);
  }
  if (v.change) attrs.push([ATTR.CHANGE_REQUEST, v.change]);
  for (let i = 0; i < v.unknown; i++) attrs.push([0x0030 + i]); // comprehension-required, unknown to us
  if (v.pad) attrs.push([PADDING, new Uint8Array(v.pad)]);
  const key = v.ice === 'good' ? 'b-password' : v.ice === 'wrong-key' ? 'guess' : undefined;
  return encodeStun(v.method, v.cls, randomBytes(12), attrs, key, v.fingerprint || v.ice !== 'none')!;
}

test('to never-verified sources the STUN endpoint sends at most the bytes it received, for every kind of request', (t) => {
  const inBytes = new Map<string, number>();
  const outBytes = new Map<string, number>();
  let now = 0;
  const e = new StunEndpoint({
    send: (b, to) => outBytes.set(endpointKey(to), (outBytes.get(endpointKey(to)) ?? 0) + b.length),
    software: 'idloc agent with a long SOFTWARE string', now: () => now,
    passwordFor: (u) => (u === 'bU:aU' ? 'b-password' : undefined),
    onCheck: (c) => (c.priority % 2 === 0 ? 'success' : 'role-conflict'),
  });
  let forged = 0, answers = 0;
  fc.assert(fc.property(variant, fc.nat({ max: 0xffff }), (v, n) => {
    const from: Endpoint = v.ipv6 ? { address: `2001:db8::${(n % 500).toString(16)}`, port: 1 + n } : { address: `198.51.100.${n % 250}`, port: 1 + n };
    const msg = forge(v);
    const k = endpointKey(from);
    inBytes.set(k, (inBytes.get(k) ?? 0) + msg.length);
    const before = outBytes.get(k) ?? 0;
    e.handleDatagram(msg, from);
    if ((outBytes.get(k) ?? 0) > before) answers++;
    forged++;
    now += 7;
    assert.ok((outBytes.get(k) ?? 0) <= inBytes.get(k)!, `answered ${from.address} with more than it sent: ${JSON.stringify(v)}`);
  }), { numRuns: 20_000 });
  const totalIn = [...inBytes.values()].reduce((a, b) => a + b, 0);
  const totalOut = [...outBytes.values()].reduce((a, b) => a + b, 0);
  t.diagnostic(`forged STUN datagrams: ${forged} from ${inBytes.size} spoofed sources, ${totalIn} bytes in; answered ${answers} `
    + `with ${totalOut} bytes out; unpadded ${e.stats.unpadded}, over budget ${e.stats.overBudget}, amplification 0`);
  assert.ok(totalOut <= totalIn);
  assert.ok(answers > 100, 'padded requests are still answered');
  assert.equal(e.stats.unverifiedBytesOut, totalOut);
});

test('one victim address gets at most its byte budget however many padded requests name it', (t) => {
  let now = 0;
  let out = 0;
  const e = new StunEndpoint({ send: (b) => { out += b.length; }, now: () => now });
  const victim: Endpoint = { address: '192.0.2.1', port: 53 };
  const padded = () => encodeStun(STUN_METHOD_BINDING, STUN_CLASS_REQUEST, randomBytes(12), [[PADDING, new Uint8Array(40)]], undefined, true)!;
  let sent = 0;
  for (let i = 0; i < 100_000; i++) { e.handleDatagram(padded(), { address: victim.address, port: 1 + (i % 60_000) }); sent++; if (i % 100 === 0) now += 10; }
  const seconds = now / 1000;
  t.diagnostic(`spoofed requests for one victim: ${sent} over ${seconds} s; bytes sent to it: ${out}; withheld: ${e.stats.overBudget}`);
  assert.ok(out <= 32 * 1024 + 4 * 1024 * seconds + 64, `${out} bytes to one victim`);
  assert.ok(e.stats.overBudget > 90_000);
  // Another address still gets answers: the budget is per victim.
  const before = out;
  e.handleDatagram(padded(), { address: '192.0.2.2', port: 1 });
  assert.ok(out > before);
});
