// ICE between two agents' sockets behind in-process NAT routers, with the Attach parameters handed over
// directly (the overlay carries them in the agent): both sides check at once, so two cone NATs that filter
// by address and port still get a direct pair; two symmetric NATs do not, and say so within the timeout;
// checks with a wrong password are never answered. And the Attach codec: signed, bound to its target,
// fresh, and strict about its bytes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { generateIdentity } from '../../agent/idloc/identity.js';
import { ed25519 } from '@noble/curves/ed25519.js';
import { MemoryNetwork, type MemorySocket } from '../../agent/conn/memory-socket.js';
import { MemoryNat, type NatMapping } from '../../agent/conn/memory-nat.js';
import { StunEndpoint } from '../../agent/nat/stun-endpoint.js';
import { IceAgent } from '../../agent/nat/ice.js';
import { solvePuzzle, verifyPuzzle } from '../../agent/overlay/puzzle.js';
import {
  IceCandidateType, candidatePriority, marshalAttach, newCredentials, parseAttach, type AttachParams, type IceCandidate,
} from '../../agent/nat/attach.js';

interface Side { sock: MemorySocket; stun: StunEndpoint; ice: IceAgent; candidates: IceCandidate[] }

function side(sock: MemorySocket, publicAddress?: string, relayed?: (e: { address: string }) => boolean): Side {
  let ice!: IceAgent;
  const stun = new StunEndpoint({ send: (b, to) => sock.send(b, to), passwordFor: (u) => ice.passwordFor(u), onCheck: (r) => ice.onCheck(r) });
  ice = new IceAgent(stun, relayed);
  sock.onMessage((m, f) => stun.handleDatagram(m, f));
  const candidates: IceCandidate[] = [{ ...sock.local, type: IceCandidateType.Host, priority: candidatePriority(IceCandidateType.Host) }];
  // The srflx candidate a netcheck would have found: the NAT keeps the port ('preserve').
  if (publicAddress) candidates.push({ address: publicAddress, port: sock.local.port, type: IceCandidateType.Srflx, priority: candidatePriority(IceCandidateType.Srflx) });
  return { sock, stun, ice, candidates };
}

function natted(net: MemoryNetwork, i: number, mapping: NatMapping): Side {
  const pub = `203.0.113.${i}`;
  const nat = new MemoryNat(net, { publicAddress: pub, mapping, filtering: 'address-and-port-dependent', portAllocation: 'preserve' });
  return side(nat.socket(`10.${i}.0.2`, 4500), pub);
}

async function run(a: Side, b: Side, timeoutMs?: number) {
  const sa = a.ice.newSession(true), sb = b.ice.newSession(false);
  // The answerer starts as soon as the offer arrives, the offerer when the answer is back.
  const rb = sb.start({ ufrag: sa.ufrag, pwd: sa.pwd, candidates: a.candidates }, timeoutMs);
  await new Promise((r) => setTimeout(r, 5));
  const ra = sa.start({ ufrag: sb.ufrag, pwd: sb.pwd, candidates: b.candidates }, timeoutMs);
  return Promise.all([ra, rb]);
}

test('two cone NATs that filter by address and port: a direct pair, the other side\'s public mapping', async () => {
  const net = new MemoryNetwork({ latencyMs: 2 });
  const a = natted(net, 1, 'endpoint-independent'), b = natted(net, 2, 'endpoint-independent');
  const [ra, rb] = await run(a, b);
  assert.deepEqual(ra?.remote, { address: '203.0.113.2', port: 4500 });
  assert.equal(ra?.type, IceCandidateType.Srflx);
  assert.deepEqual(rb?.remote, { address: '203.0.113.1', port: 4500 }, 'the controlled side takes the nominated pair');
  assert.ok(a.ice.stats.checksSucceeded >= 1 && b.ice.stats.checksAnswered >= 1);
});

test('a public host and a cone NAT: direct', async () => {
  const net = new MemoryNetwork({ latencyMs: 2 });
  const a = side(net.socket('198.51.100.10', 4500)), b = natted(net, 3, 'endpoint-independent');
  const [ra, rb] = await run(a, b);
  assert.deepEqual(ra?.remote, { address: '203.0.113.3', port: 4500 });
  assert.deepEqual(rb?.remote, { address: '198.51.100.10', port: 4500 });
});

test('two symmetric NATs: no direct path, reported within the timeout', async () => {
  const net = new MemoryNetwork({ latencyMs: 2 });
  const a = natted(net, 4, 'endpoint-dependent'), b = natted(net, 5, 'endpoint-dependent');
  const t0 = Date.now();
  const [ra, rb] = await run(a, b, 600);
  assert.equal(ra, undefined);
  assert.equal(rb, undefined);
  assert.ok(Date.now() - t0 < 1500);
  assert.equal(a.ice.stats.noDirectPath, 1);
});

test('a direct pair that answers after the session settled for a relayed one is reported late (the tunnel moves to it)', async () => {
  const net = new MemoryNetwork({ latencyMs: 1 });
  const RELAY = '198.51.100.99';
  const a = side(net.socket('198.51.100.20', 4500), undefined, (e) => e.address === RELAY);
  const b = side(net.socket('198.51.100.21', 4500));
  // b's relayed candidate: another address where b's session answers checks (as a TURN relay would carry them).
  const relaySock = net.socket(RELAY, 5000);
  const viaRelay = new StunEndpoint({ send: (m, to) => relaySock.send(m, to), passwordFor: (u) => b.ice.passwordFor(u), onCheck: (r) => b.ice.onCheck(r) });
  relaySock.onMessage((m, f) => viaRelay.handleDatagram(m, f));
  const sa = a.ice.newSession(true), sb = b.ice.newSession(false);
  const late: unknown[] = [];
  sa.onLateSuccess = (r) => late.push(r.remote);
  const ra = await sa.start({ ufrag: sb.ufrag, pwd: sb.pwd, candidates: [{ address: RELAY, port: 5000, type: IceCandidateType.Relay, priority: 5 }] }, 1500);
  assert.deepEqual(ra?.remote, { address: RELAY, port: 5000 }, 'only the relayed pair answered in time');
  // b starts checking only now: its check reaches a directly, a's triggered check back succeeds.
  void sb.start({ ufrag: sa.ufrag, pwd: sa.pwd, candidates: a.candidates }, 1500);
  const end = Date.now() + 2000;
  while (late.length === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(late, [{ address: '198.51.100.21', port: 4500 }]);
  assert.equal(a.ice.stats.lateSuccesses, 1);
});

test('a check signed with the wrong password is not answered; the session is not selected by it', async () => {
  const net = new MemoryNetwork({ latencyMs: 1 });
  const a = side(net.socket('198.51.100.11', 4500)), b = side(net.socket('198.51.100.12', 4500));
  const sb = b.ice.newSession(false);
  void sb.start({ ufrag: 'abcd', pwd: 'x'.repeat(22), candidates: [] }, 300);
  const o = await a.stun.check(b.sock.local, {
    username: `${sb.ufrag}:abcd`, password: 'wrong-password-wrong-pw', priority: 1, controlling: true, tieBreaker: 1n, useCandidate: true,
  }, { rtoMs: 20, maxTransmits: 2 });
  assert.equal(o.kind, 'timeout');
  assert.ok(b.stun.stats.badIntegrity >= 1);
  assert.equal(b.ice.stats.checksAnswered, 0);
});

// ---- the Attach codec ------------------------------------------------------------------------------

const alice = generateIdentity(), bob = generateIdentity();
const alicePuzzle = solvePuzzle(alice.publicKey);
const NOW = 1_790_000_000_000;

function offer(over: Partial<AttachParams> = {}): AttachParams {
  const c = newCredentials();
  return {
    role: 'offer', sender: alice.publicKey, target: bob.nodeId, created: NOW, tieBreaker: c.tieBreaker, puzzleNonce: alicePuzzle,
    ufrag: c.ufrag, pwd: c.pwd,
    candidates: [
      { address: '10.1.0.2', port: 4500, type: IceCandidateType.Host, priority: candidatePriority(IceCandidateType.Host) },
      { address: '203.0.113.9', port: 61000, type: IceCandidateType.Srflx, priority: candidatePriority(IceCandidateType.Srflx) },
      { address: 'fd00::7', port: 1, type: IceCandidateType.Relay, priority: 5 },
    ],
    nat: 'hard',
    ...over,
  };
}

test('attach: round trip; forged, misdirected, stale and altered blobs are refused', () => {
  const p = offer();
  const b = marshalAttach(p, alice.privateKey);
  const v = parseAttach(b, bob.nodeId, NOW + 1000);
  assert.ok(v.ok);
  assert.deepEqual(v.params, p);
  assert.deepEqual(parseAttach(marshalAttach(p, bob.privateKey), bob.nodeId, NOW), { ok: false, reason: 'bad-signature' });
  assert.deepEqual(parseAttach(b, alice.nodeId, NOW), { ok: false, reason: 'wrong-target' });
  assert.deepEqual(parseAttach(b, bob.nodeId, NOW + 120_000), { ok: false, reason: 'stale' });
  // A key whose puzzle does not hold (a fresh key, or a nonce that is not its proof) is refused before its
  // signature is checked; a lower overlay difficulty is honoured.
  let puzzleless = 0n;
  while (verifyPuzzle(alice.publicKey, puzzleless)) puzzleless++;
  assert.deepEqual(parseAttach(marshalAttach(offer({ puzzleNonce: puzzleless }), alice.privateKey), bob.nodeId, NOW), { ok: false, reason: 'no-puzzle' });
  assert.ok(parseAttach(marshalAttach(offer({ puzzleNonce: solvePuzzle(alice.publicKey, 4) }), alice.privateKey), bob.nodeId, NOW, 4).ok);
  const altered = Uint8Array.from(b);
  altered[80] ^= 1; // inside the candidates: the signature no longer holds (or it no longer parses)
  assert.equal(parseAttach(altered, bob.nodeId, NOW).ok, false);
});

test('attach: the NAT hint round-trips (absent reads as unknown); an undefined hint value is refused', () => {
  for (const nat of ['unknown', 'none', 'easy', 'hard'] as const) {
    const v = parseAttach(marshalAttach(offer({ nat }), alice.privateKey), bob.nodeId, NOW);
    assert.ok(v.ok && v.params.nat === nat, nat);
  }
  const { nat: _, ...noHint } = offer();
  const v = parseAttach(marshalAttach(noHint, alice.privateKey), bob.nodeId, NOW);
  assert.ok(v.ok && v.params.nat === 'unknown');
  // A hint byte of 4 with a valid signature over it: still refused, as malformed.
  const b = Buffer.from(marshalAttach(offer(), alice.privateKey));
  const body = b.subarray(0, b.length - 64);
  body[body.length - 1] = 4;
  const resigned = Buffer.concat([body, ed25519.sign(Buffer.concat([Buffer.from('idloc attach v3'), body]), alice.privateKey)]);
  assert.deepEqual(parseAttach(resigned, bob.nodeId, NOW), { ok: false, reason: 'malformed' });
});

test('attach: any truncation or garbage is refused without throwing', () => {
  const b = marshalAttach(offer(), alice.privateKey);
  for (let n = 0; n < b.length; n++) assert.equal(parseAttach(b.subarray(0, n), bob.nodeId, NOW).ok, false);
  fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), (junk) => parseAttach(junk, bob.nodeId, NOW).ok === false), { numRuns: 500 });
});
