import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ed25519 } from '@noble/curves/ed25519.js';
import { PeerMap, describePeer } from '../../agent/idloc/peer-map.js';

const peer = (seed: number) => describePeer(ed25519.getPublicKey(new Uint8Array(32).fill(seed)), `link${seed}`);

test('finds peers by IPv4, by IPv6 inside a packet buffer, and by key; removes them', () => {
  const m = new PeerMap<string>();
  const ps = [1, 2, 3, 4, 5].map(peer);
  for (const p of ps) m.add(p);
  assert.equal(m.size, 5);
  for (const p of ps) {
    assert.equal(m.getIpv4(p.ipv4), p);
    const pkt = Buffer.alloc(40);
    pkt.set(p.ipv6, 24);
    assert.equal(m.getIpv6(pkt, 24), p);
    assert.equal(m.getByKey(p.publicKeyHex), p);
  }
  const other = Buffer.from(ps[0]!.ipv6); other[5] ^= 1;
  assert.equal(m.getIpv6(other, 0), undefined, 'same tail, different address: no match');
  m.remove(ps[0]!);
  assert.equal(m.getIpv4(ps[0]!.ipv4), undefined);
  assert.equal(m.getIpv6(ps[0]!.ipv6, 0), undefined);
  assert.equal(m.size, 4);
});

test('refuses a second peer with the same key', () => {
  const m = new PeerMap<string>();
  m.add(peer(7));
  assert.throws(() => m.add(peer(7)), /already known/);
});
