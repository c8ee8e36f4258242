// The shared secret of a private overlay: key derivation and files, the IKpsk2 handshake, and the tag on
// overlay and relay datagrams (agent/base/overlay-secret.ts, tunnel/noise.ts, nat/admission.ts).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deriveSecretKeys, generateSecretFile, loadSecrets, OverlaySecrets, readSecretFile } from '../../agent/base/overlay-secret.js';
import { StateFileError } from '../../agent/base/state-file.js';
import { generateKeyPair, HandshakeState } from '../../agent/tunnel/noise.js';
import { DatagramAdmission } from '../../agent/nat/admission.js';
import type { DatagramSocket, Endpoint } from '../../agent/conn/socket.js';

const prologue = new TextEncoder().encode('idloc test');

function handshake(iPsk: Uint8Array | undefined, rPsk: Uint8Array | undefined) {
  const iS = generateKeyPair(), rS = generateKeyPair();
  const ini = new HandshakeState({ initiator: true, prologue, s: iS, rs: rS.publicKey, ...(iPsk ? { psk: iPsk } : {}) });
  const res = new HandshakeState({ initiator: false, prologue, s: rS, ...(rPsk ? { psk: rPsk } : {}) });
  const m1 = ini.writeMessage(Uint8Array.of(1, 2, 3))!;
  const p1 = res.readMessage(m1);
  if (!p1) return { ini, res, p1, p2: undefined };
  const m2 = res.writeMessage(new Uint8Array(0))!;
  const p2 = ini.readMessage(m2);
  return { ini, res, p1, p2 };
}

describe('IKpsk2', () => {
  it('both sides with the same psk complete, with matching transport keys that differ from plain IK', () => {
    const psk = randomBytes(32);
    const h = handshake(psk, psk);
    assert.deepEqual(h.p1 && [...h.p1], [1, 2, 3]);
    assert.ok(h.p2 !== undefined && h.ini.complete && h.res.complete);
    const ik = h.ini.split(), rk = h.res.split();
    assert.deepEqual(ik.send, rk.recv);
    assert.deepEqual(ik.recv, rk.send);
    const plain = handshake(undefined, undefined);
    assert.ok(plain.ini.complete);
    assert.notDeepEqual(ik.send, plain.ini.split().send);
  });

  it('a responder with another psk (or none) cannot make a message 2 the initiator accepts', () => {
    assert.equal(handshake(randomBytes(32), randomBytes(32)).p2, undefined);
    assert.equal(handshake(randomBytes(32), undefined).p2, undefined, 'IK responder to an IKpsk2 initiator');
    assert.equal(handshake(undefined, randomBytes(32)).p1, undefined, 'the protocol name differs: message 1 does not decrypt');
  });

  it('refuses a psk of the wrong length', () => {
    assert.throws(() => new HandshakeState({ initiator: false, prologue, s: generateKeyPair(), psk: new Uint8Array(31) }));
  });
});

describe('secret files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'idloc-secret-'));

  it('generate writes 32 random bytes, 0600, and never overwrites', () => {
    const f = join(dir, 'a.secret');
    generateSecretFile(f);
    assert.equal(statSync(f).mode & 0o777, 0o600);
    assert.equal(readFileSync(f).length, 32);
    const before = readFileSync(f);
    assert.throws(() => generateSecretFile(f), (e: unknown) => e instanceof StateFileError && /exists/.test((e as Error).message));
    assert.deepEqual(readFileSync(f), before);
    const g = join(dir, 'b.secret');
    generateSecretFile(g);
    assert.notDeepEqual(readFileSync(g), before);
  });

  it('a short, long, exposed or missing file is one clear error, never another secret', () => {
    const short = join(dir, 'short');
    writeFileSync(short, randomBytes(31), { mode: 0o600 });
    assert.throws(() => readSecretFile(short), /holds 31 bytes, not 32/);
    const long = join(dir, 'long');
    writeFileSync(long, randomBytes(33), { mode: 0o600 });
    assert.throws(() => readSecretFile(long), /holds 33 bytes/);
    const open = join(dir, 'open');
    writeFileSync(open, randomBytes(32), { mode: 0o600 });
    chmodSync(open, 0o644);
    assert.throws(() => readSecretFile(open), /readable by other users/);
    assert.throws(() => readSecretFile(join(dir, 'missing')), /cannot read it \(ENOENT\)/);
    assert.throws(() => loadSecrets([short, long, open]), /at most 2/);
  });

  it('derived keys: one per use, all different, the same for the same secret', () => {
    const s = randomBytes(32);
    const a = deriveSecretKeys(s), b = deriveSecretKeys(Uint8Array.from(s));
    assert.deepEqual(a, b);
    const all = [a.tag, a.psk, a.mac1].map((k) => Buffer.from(k).toString('hex'));
    assert.equal(new Set(all).size, 3);
    assert.ok(!all.includes(Buffer.from(s).toString('hex')));
    assert.notDeepEqual(deriveSecretKeys(randomBytes(32)).tag, a.tag);
  });
});

describe('datagram admission', () => {
  const s1 = deriveSecretKeys(randomBytes(32)), s2 = deriveSecretKeys(randomBytes(32));

  it('a tagged overlay datagram opens under the same secret, not under another', () => {
    const a = new DatagramAdmission(new OverlaySecrets([s1]));
    const msg = Buffer.concat([Buffer.of(0xd2), randomBytes(100)]);
    const sealed = a.seal(msg);
    assert.equal(sealed.length, msg.length + 16);
    assert.deepEqual(sealed.subarray(0, msg.length), msg);
    assert.equal(a.open(sealed), msg.length);
    const other = new DatagramAdmission(new OverlaySecrets([s2]));
    assert.equal(other.open(sealed), -1);
    assert.equal(other.stats.refused, 1);
  });

  it('every flipped bit, every truncation and random bytes are refused and counted, never thrown', () => {
    const a = new DatagramAdmission(new OverlaySecrets([s1]));
    const sealed = a.seal(Buffer.concat([Buffer.of(0xd3, 1), randomBytes(40)]));
    for (let i = 0; i < sealed.length * 8; i++) {
      const b = Buffer.from(sealed);
      b[i >> 3]! ^= 1 << (i & 7);
      assert.equal(a.open(b), -1, `bit ${i}`);
    }
    for (let n = 0; n < sealed.length; n++) assert.equal(a.open(sealed.subarray(0, n)), -1, `length ${n}`);
    for (let i = 0; i < 2000; i++) assert.equal(a.open(randomBytes(i % 80)), -1);
    assert.equal(a.stats.admitted, 0);
    assert.equal(a.stats.refused, sealed.length * 8 + sealed.length + 2000);
  });

  it('rotation: [old, new] sends with old and accepts both; replace() takes effect at once', () => {
    const secrets = new OverlaySecrets([s1, s2]);
    const a = new DatagramAdmission(secrets);
    const onlyNew = new DatagramAdmission(new OverlaySecrets([s2]));
    const msg = Buffer.of(0xd2, 9, 9, 9);
    assert.equal(a.open(onlyNew.seal(msg)), msg.length);
    assert.equal(a.stats.admittedByOldSecret, 1, 'proved the second secret of the list');
    assert.equal(onlyNew.open(a.seal(msg)), -1, 'a sends with its first secret, which onlyNew does not hold');
    secrets.replace([s2]);
    assert.equal(onlyNew.open(a.seal(msg)), msg.length);
    assert.equal(a.open(new DatagramAdmission(new OverlaySecrets([s1])).seal(msg)), -1, 'the retired secret no longer opens');
  });

  it('wrap() tags overlay and relay datagrams only: tunnel and STUN datagrams leave as they were', () => {
    const sent: Uint8Array[] = [];
    const raw: DatagramSocket = {
      local: { address: '198.51.100.1', port: 4500 }, onMessage: () => undefined,
      send: (m: Uint8Array, _to: Endpoint) => { sent.push(m); }, close: async () => undefined,
    };
    const w = new DatagramAdmission(new OverlaySecrets([s1])).wrap(raw);
    const to = { address: '198.51.100.2', port: 4500 };
    for (const first of [0xd2, 0xd3, 0xc1, 0xc4, 0x00, 0x01, 0x40]) w.send(Buffer.of(first, 1, 2, 3), to);
    assert.deepEqual(sent.map((m) => m.length), [20, 20, 4, 4, 4, 4, 4]);
  });
});
