// Whole agents on the in-memory twins, one of them behind an in-process NAT router: every agent answers
// STUN on its one socket, so `netcheck` needs no STUN server of its own — it asks overlay members on
// distinct addresses and tells no NAT, a cone (endpoint-independent) and a symmetric mapping apart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Agent } from '../../agent/daemon.js';
import { MemoryTap } from '../../agent/tap/memory-tap.js';
import { MemoryNetwork, type MemorySocket } from '../../agent/conn/memory-socket.js';
import { MemoryNat } from '../../agent/conn/memory-nat.js';
import { generateIdentity } from '../../agent/idloc/identity.js';
import { keepEventLoopAlive, memoryAgent, sleep } from './memory-agent.js';

const silent = pino({ level: 'silent' });
keepEventLoopAlive();

function agentOn(socket: MemorySocket, i: number, bootstrap?: string): Agent {
  return memoryAgent(socket, i, { bootstrap, macByte: 1 });
}

async function joined(a: Agent): Promise<void> {
  for (let i = 0; i < 400 && a.status().overlay?.joined !== true; i++) await sleep(5);
  assert.equal(a.status().overlay?.joined, true, 'joined');
}

for (const kind of ['none', 'cone', 'symmetric'] as const) {
  test(`netcheck through overlay members: ${kind}`, async () => {
    const net = new MemoryNetwork({ latencyMs: 1 });
    const s1 = agentOn(net.socket('203.0.113.1', 4500), 1);
    const s2 = agentOn(net.socket('203.0.113.2', 4500), 2, '203.0.113.1');
    const nat = kind === 'none' ? undefined
      : new MemoryNat(net, { publicAddress: '198.51.100.20', mapping: kind === 'cone' ? 'endpoint-independent' : 'endpoint-dependent', portAllocation: 'random', seed: 3 });
    const x = agentOn(nat ? nat.socket('10.1.0.2', 4500) : net.socket('198.51.100.30', 4500), 3, '203.0.113.1');
    try {
      await Promise.all([joined(s2), joined(x)]);
      for (let i = 0; i < 400 && (x.status().overlay?.routingTableSize ?? 0) < 2; i++) await sleep(5);
      const before = s1.status().counters.stun;
      const r = await x.netcheck();
      assert.ok(r.udp, 'UDP works');
      assert.ok(r.servers.filter((s) => s.mapped).length >= 2, `two servers answered: ${JSON.stringify(r.servers)}`);
      if (kind === 'none') {
        assert.equal(r.behindNat, false);
        assert.equal(r.mapping, 'no-nat');
      } else {
        assert.equal(r.behindNat, true);
        assert.equal(r.publicEndpoint?.address, '198.51.100.20');
        assert.equal(r.mapping, kind === 'cone' ? 'endpoint-independent' : 'endpoint-dependent', r.mappingReason);
      }
      assert.equal(r.filtering, 'unknown', 'agents have one address: filtering cannot be measured against them');
      const after = s1.status().counters.stun;
      assert.ok(JSON.stringify(after) !== JSON.stringify(before), 's1 answered as a STUN server');
      // s2, public by its own netcheck, advertised STUN in the overlay: others find it there.
      let found: string[] = [];
      for (let i = 0; i < 100 && !found.includes('203.0.113.2:4500'); i++) {
        found = (await x.providers('stun')).map((e) => `${e.address}:${e.port}`);
        if (!found.includes('203.0.113.2:4500')) await sleep(20);
      }
      assert.ok(found.includes('203.0.113.2:4500'), `s2 advertises stun: ${JSON.stringify(found)}`);
      // Explicit servers override the overlay's.
      const only = await x.netcheck([{ address: '203.0.113.2', port: 4500 }]);
      assert.equal(only.servers.length, 1);
    } finally {
      await Promise.all([s1.close(), s2.close(), x.close()]);
    }
  });
}

test('netcheck with no overlay and no servers says what to do', async () => {
  const net = new MemoryNetwork();
  const tap = new MemoryTap({ name: 'memz', mac: Uint8Array.of(2, 0, 0, 0, 2, 1) });
  const a = new Agent({ identity: generateIdentity(), tap, socket: net.socket('198.51.100.9', 4500), peers: [], logger: silent });
  a.start();
  try {
    await assert.rejects(a.netcheck(), /no STUN servers: give --stun HOST:PORT/);
  } finally {
    await a.close();
  }
});
