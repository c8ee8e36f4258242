// attach-guard.ts on its own: the replay cache is bounded and forgets only what left the freshness window
// (or the oldest, when full), offers are rate-limited per key, candidates are kept only where the Attach's
// path observed the sender (or on our LAN, or one TURN relay), and probing is rationed per peer, per
// address and overall.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AttachGuard, isPrivate, normalAddress, replayKey } from '../../agent/nat/attach-guard.js';
import { candidatePriority, IceCandidateType, type AttachParams, type IceCandidate } from '../../agent/nat/attach.js';
import {
  ATTACH_MAX_AGE_MS, ATTACH_OFFERS_PEER_BURST, ATTACH_REPLAY_CACHE_MAX, HARD_NAT_SPRAY_PEER_INTERVAL_MS, HARD_NAT_SPRAYS_BURST,
} from '../../agent/base/constants.js';

const cand = (address: string, port: number, type: IceCandidateType): IceCandidate => ({ address, port, type, priority: candidatePriority(type) });

function params(sender: number, tieBreaker: bigint, candidates: IceCandidate[] = [], created = 0): AttachParams {
  return {
    role: 'offer', sender: Uint8Array.from({ length: 32 }, (_, i) => (i < 2 ? (sender >> (8 * i)) & 255 : 1)), target: new Uint8Array(20), created, tieBreaker, puzzleNonce: 0n,
    ufrag: 'abcd', pwd: 'x'.repeat(22), candidates, nat: 'hard',
  };
}
const key = (p: AttachParams) => Buffer.from(p.sender).toString('hex') + p.tieBreaker.toString(16).padStart(16, '0');

test('replayKey reads (sender key, tie-breaker) from the blob layout', () => {
  const b = new Uint8Array(100);
  b.fill(7, 2, 34);
  b.set([0, 0, 0, 0, 0, 0, 1, 2], 62);
  assert.equal(replayKey(b), '07'.repeat(32) + '0000000000000102');
  assert.equal(replayKey(b.subarray(0, 69)), undefined);
});

test('replays are refused for the freshness window, then forgotten; the cache stays bounded', () => {
  let now = 0;
  const g = new AttachGuard(() => now);
  const p = params(1, 1n);
  assert.ok(g.fresh(key(p)));
  assert.ok(g.admit(key(p), p));
  assert.equal(g.fresh(key(p)), false);
  now = ATTACH_MAX_AGE_MS + 1; // parseAttach refuses the blob as stale from here on
  assert.ok(g.fresh(key(p)));
  // More fresh offers from distinct keys than it holds, all within the window: it stays at its bound, the
  // oldest giving way, and the newest is still refused as a replay.
  let tried = 0;
  let last = p;
  for (let i = 0; i < ATTACH_REPLAY_CACHE_MAX + 50; i++) {
    last = params(2 + i, BigInt(i), [], now);
    if (g.admit(key(last), last)) tried++;
  }
  const seen = (g as unknown as { seen: Map<string, number> }).seen;
  console.log(`admitted ${tried} offers from distinct keys; replay cache holds ${seen.size} (bound ${ATTACH_REPLAY_CACHE_MAX})`);
  assert.equal(tried, ATTACH_REPLAY_CACHE_MAX + 50);
  assert.equal(seen.size, ATTACH_REPLAY_CACHE_MAX);
  assert.equal(g.fresh(key(last)), false);
});

test('offers per key are rate-limited after the signature held; other keys are not affected', () => {
  const now = 0;
  const g = new AttachGuard(() => now);
  let ok = 0;
  for (let i = 0; i < 10; i++) { const p = params(9, BigInt(i)); if (g.admit(key(p), p)) ok++; }
  assert.equal(ok, ATTACH_OFFERS_PEER_BURST);
  assert.equal(g.refused['rate-limited'], 10 - ATTACH_OFFERS_PEER_BURST);
  const other = params(10, 1n);
  assert.ok(g.admit(key(other), other));
});

test('aim: only the observed address, our LAN\'s private hosts behind our own NAT, one relay, two global hosts or srflx of the other family', () => {
  const g = new AttachGuard(() => 0);
  const ours = { publicAddress: '198.51.100.7', hosts: [{ address: '192.168.1.5', port: 4500 }] };
  const p = params(1, 1n, [
    cand('192.168.1.9', 4500, IceCandidateType.Host), // our LAN: only if behind the same NAT
    cand('10.9.9.9', 4500, IceCandidateType.Host), // private, not our subnet
    cand('203.0.113.50', 4500, IceCandidateType.Srflx), // a third party
    cand('198.51.100.7', 61000, IceCandidateType.Srflx),
    cand('203.0.113.99', 3478, IceCandidateType.Relay),
    cand('203.0.113.98', 3478, IceCandidateType.Relay), // a second relay: no
    cand('::1', 4500, IceCandidateType.Host), // loopback, of the other family: never
    cand('ff02::1', 4500, IceCandidateType.Host), // multicast: never
    cand('fd00::5', 4500, IceCandidateType.Host), // ULA: never
    cand('2001:db8::1', 4500, IceCandidateType.Host), // another family than the observation: two of them
    cand('2001:db8:1::1', 4500, IceCandidateType.Srflx), // a srflx of the other family counts too: the second
    cand('2001:db8::2', 4500, IceCandidateType.Host),
    cand('2001:db8::3', 4500, IceCandidateType.Host), // a third and a fourth: no
  ]);
  const same = g.aim(p, { address: '::ffff:198.51.100.7', port: 1234 }, ours);
  assert.deepEqual(same.candidates.map((c) => c.address), ['192.168.1.9', '198.51.100.7', '203.0.113.99', '2001:db8::1', '2001:db8:1::1']);
  assert.equal(same.srflx?.port, 61000);
  const elsewhere = g.aim(p, { address: '203.0.113.77', port: 1 }, ours);
  assert.deepEqual(elsewhere.candidates.map((c) => c.address), ['203.0.113.99', '2001:db8::1', '2001:db8:1::1'], 'only its TURN relay and two IPv6 candidates');
  const v6seen = g.aim(p, { address: '2001:db8::2', port: 4500 }, ours);
  assert.deepEqual(v6seen.candidates.map((c) => c.address), ['203.0.113.50', '198.51.100.7', '203.0.113.99', '2001:db8::2'], 'observed at IPv6: two public IPv4 candidates, no unobserved IPv6, no private IPv4 host');
  assert.equal(elsewhere.srflx, undefined);
  const none = g.aim(p, undefined, ours);
  assert.equal(none.candidates.length, 0);
  const claimed = g.aim(p, undefined, ours, true);
  assert.equal(claimed.srflx?.address, '203.0.113.50', 'trusting the claim: the first srflx stands in for the observation');
  assert.ok(g.refused['candidate-unaimed'] >= 4 + 6 + 7);
  assert.ok(isPrivate('100.64.1.1') && isPrivate('fd00::1') && isPrivate('fe80::1') && !isPrivate('203.0.113.1'));
  assert.equal(normalAddress('::FFFF:1.2.3.4'), '1.2.3.4');
});

test('probing: once per peer and per address per interval, a bucket overall, none unaimed', () => {
  let now = 0;
  const g = new AttachGuard(() => now);
  assert.equal(g.mayProbe('peer1', undefined), false);
  assert.equal(g.refused['spray-unaimed'], 1);
  assert.ok(g.mayProbe('peer1', '203.0.113.1'));
  assert.equal(g.mayProbe('peer1', '203.0.113.2'), false, 'the same peer again at once');
  assert.equal(g.mayProbe('peer2', '203.0.113.1'), false, 'the same address through another key');
  let granted = 1;
  for (let i = 3; i < 40; i++) if (g.mayProbe(`peer${i}`, `203.0.113.${i}`)) granted++;
  assert.equal(granted, HARD_NAT_SPRAYS_BURST, 'the overall bucket');
  now += HARD_NAT_SPRAY_PEER_INTERVAL_MS * 2;
  assert.ok(g.mayProbe('peer1', '203.0.113.1'), 'later, and the bucket refilled');
  console.log(`probing requests: 40, granted ${granted + 1}, refused ${JSON.stringify(g.refused)}`);
});
