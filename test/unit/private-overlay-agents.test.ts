// Whole agents of a private overlay on the in-memory network: members join, register and resolve names
// and ping through IKpsk2 tunnels; a host with another secret or none gets no byte back from any member,
// whatever it tries (join, STUN, handshake, relay frame), and each try is counted on the member's side.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { Agent } from '../../agent/daemon.js';
import { MemoryTap } from '../../agent/tap/memory-tap.js';
import { MemoryNetwork } from '../../agent/conn/memory-socket.js';
import type { DatagramSocket } from '../../agent/conn/socket.js';
import { generateIdentity } from '../../agent/idloc/identity.js';
import { deriveSecretKeys, OverlaySecrets, type SecretKeys } from '../../agent/base/overlay-secret.js';
import { encodeBindingRequest } from '../../agent/nat/stun-binding.js';
import { keepEventLoopAlive, eventually } from './memory-agent.js';

keepEventLoopAlive();
const silent = pino({ level: 'silent' });

interface Host { agent: Agent; addr: string; bytesIn: () => number; socket: DatagramSocket }

function host(net: MemoryNetwork, i: number, bootstrap: string | undefined, keys: SecretKeys[] | undefined, peer?: Host): Host {
  const addr = `198.51.100.${10 + i}`;
  const raw = net.socket(addr, 4500);
  let bytesIn = 0;
  const socket: DatagramSocket = {
    get local() { return raw.local; },
    onMessage: (h) => raw.onMessage((m, f) => { bytesIn += m.length; h(m, f); }),
    send: (m, to) => raw.send(m, to), close: () => raw.close(),
  };
  const agent = new Agent({
    identity: generateIdentity(), tap: new MemoryTap({ name: `mem${i}`, mac: Uint8Array.of(2, 0, 0, 0, 0x50, i) }), socket, logger: silent,
    peers: peer ? [{ publicKey: peer.agent.currentIdentity.publicKey, endpoint: { address: peer.addr, port: 4500 } }] : [],
    overlay: { bootstraps: bootstrap ? [{ address: bootstrap, port: 4500 }] : [], puzzleDifficulty: 4 },
    ...(keys ? { secrets: new OverlaySecrets(keys) } : {}),
  });
  agent.start();
  return { agent, addr, bytesIn: () => bytesIn, socket };
}

describe('a private overlay (shared secret), whole agents', () => {
  const net = new MemoryNetwork();
  const s = deriveSecretKeys(randomBytes(32));
  const hosts: Host[] = [];
  let a: Host, b: Host, c: Host, wrong: Host, none: Host, knowsA: Host;
  before(async () => {
    a = host(net, 1, undefined, [s]);
    b = host(net, 2, a.addr, [s]);
    c = host(net, 3, a.addr, [s]);
    wrong = host(net, 4, a.addr, [deriveSecretKeys(randomBytes(32))]);
    none = host(net, 5, a.addr, undefined);
    knowsA = host(net, 6, undefined, [deriveSecretKeys(randomBytes(32))], a); // has A's key and address, not the secret
    hosts.push(a, b, c, wrong, none, knowsA);
    await eventually(async () => (b.agent.status().overlay?.joined && c.agent.status().overlay?.joined) || undefined, 5000, 'members joined');
  });
  after(async () => { for (const h of hosts) await h.agent.close(); });

  it('members register and resolve names, and ping each other through the tunnel', async () => {
    const reg = await b.agent.register('bob');
    assert.equal(reg.ok, true);
    const r = await eventually(() => c.agent.resolve('bob'), 5000, 'bob resolved');
    assert.equal(r.publicKey, b.agent.currentIdentity.publicKeyHex);
    const pong = await c.agent.ping('bob', 2000);
    assert.ok('rttMs' in pong && pong.rttMs !== null, `pong: ${JSON.stringify(pong)}`);
    assert.equal(c.agent.status().access.admission.startsWith('private overlay: shared secret'), true);
  });

  it('outsiders do not join, resolve or reach anyone, and no member sent them a single byte', async () => {
    for (const o of [wrong, none]) {
      assert.equal(o.agent.status().overlay?.joined, false);
      assert.equal(await o.agent.resolve(b.agent.currentIdentity.nodeIdHex), undefined);
      const pong = await o.agent.ping(b.agent.currentIdentity.nodeIdHex, 500);
      assert.ok(!('rttMs' in pong) || pong.rttMs === null);
    }
    // Plain STUN, a handshake initiation under no secret (the outsider's agent sends those while it
    // tries), an overlay datagram and a relay frame: none is answered.
    none.socket.send(encodeBindingRequest(randomBytes(12)), { address: a.addr, port: 4500 });
    none.socket.send(Buffer.concat([Buffer.of(0xd3, 1), randomBytes(60)]), { address: a.addr, port: 4500 });
    const pong = await knowsA.agent.ping(a.agent.currentIdentity.nodeIdHex, 1500);
    assert.ok(!('rttMs' in pong) || pong.rttMs === null);
    assert.equal(wrong.bytesIn(), 0, 'bytes the host with another secret received');
    assert.equal(none.bytesIn(), 0, 'bytes the host with no secret received');
    assert.equal(knowsA.bytesIn(), 0, 'bytes the host that knows A\'s key received');
    const refused = a.agent.status().refused;
    assert.ok((refused.tunnel?.rxBadMac ?? 0) > 0, `initiations without the secret's mac1: ${JSON.stringify(refused)}`);
    assert.ok((refused.admission?.refused ?? 0) > 0, JSON.stringify(refused));
    assert.ok((refused.stun?.notMember ?? 0) > 0, JSON.stringify(refused));
  });
});
