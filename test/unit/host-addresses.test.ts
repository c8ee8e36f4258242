// The host candidates' IPv6 part: /proc/net/if_inet6 lines -> the addresses another host can reach and
// that will last (conn/host-addresses.ts), and bad lines skipped.
import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseIfInet6 } from '../../agent/conn/host-addresses.js';

const hex = (min: number, max: number) => fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: min, maxLength: max });
const line = (hex: string, scope: string, flags: string, name = 'eth0') => `${hex} 03 40 ${scope} ${flags}     ${name}`;

test('parseIfInet6 keeps global, lasting, non-ULA addresses and drops the rest with the reason in the name', () => {
  const text = [
    line('20010db8000a00000000000000000002', '00', '80'), // global, permanent: kept
    line('20010db8000a0000a1b2c3d4e5f60718', '00', '01'), // temporary (privacy): outbound only
    line('20010db8000a00000000000000000003', '00', '40'), // tentative: DAD not done
    line('20010db8000a00000000000000000004', '00', '20'), // deprecated
    line('20010db8000a00000000000000000005', '00', '08'), // DAD failed
    line('fe800000000000000000000000000001', '20', '80'), // link-local
    line('00000000000000000000000000000001', '10', '80', 'lo'), // loopback
    line('fd1d10c0000000000000000000000007', '00', '80'), // ULA
    line('20010db8000b00000000000000000009', '00', '00', 'idloc0'), // the TAP
    line('20010db8000c00000000000000000001', '00', '00', 'eth1'), // dynamic (SLAAC, no flags): kept
    'garbage', '', line('2001db8', '00', '80'),
  ].join('\n');
  assert.deepEqual(parseIfInet6(text, 'idloc0'), [
    { address: '2001:db8:a::2', name: 'eth0', flags: 0x80 },
    { address: '2001:db8:c::1', name: 'eth1', flags: 0 },
  ]);
});

test('parseIfInet6 never throws and keeps only what a line says, on arbitrary text', () => {
  fc.assert(fc.property(fc.array(fc.oneof(fc.string(), fc.tuple(hex(32, 32), hex(1, 2),
    hex(1, 2)).map(([h, s, f]) => line(h, s, f)))), (lines) => {
    const got = parseIfInet6(lines.join('\n'));
    for (const a of got) {
      assert.ok(!a.address.startsWith('fc') && !a.address.startsWith('fd'), a.address);
      assert.equal(a.flags & 0x69, 0);
    }
    assert.ok(got.length <= lines.length);
  }));
});
