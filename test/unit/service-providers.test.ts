// "stun" and "relay" service records are a hint, not trust (issue 9): a provider counts only at an endpoint
// where its record's key lives. A stranger signs records naming a victim's address (nobody there speaks
// the overlay) and another member's address (a node lives there, but not the stranger's key), beside its
// own; providers() gives only its own, whether the record came from the storers or straight into the
// asker's local store.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent } from '../../agent/daemon.js';
import { MemoryNetwork, type MemorySocket } from '../../agent/conn/memory-socket.js';
import type { AgentOverlay } from '../../agent/agent-overlay.js';
import { createServiceRecord, marshalRecord, type Candidate } from '../../agent/overlay/records.js';
import { endpointKey } from '../../agent/conn/socket.js';
import { keepEventLoopAlive, memoryAgent, sleep } from './memory-agent.js';

keepEventLoopAlive();

function agent(sock: MemorySocket, i: number, bootstrap?: string): Agent {
  return memoryAgent(sock, i, { bootstrap, macByte: 8, overlay: { offerPeerRelay: false } });
}
const overlayOf = (a: Agent) => (a as unknown as { overlay: AgentOverlay }).overlay;

test('"stun" and "relay" providers count only where their key lives', async (t) => {
  const net = new MemoryNetwork({ latencyMs: 1 });
  const S = agent(net.socket('203.0.113.1', 4500), 1);
  const X = agent(net.socket('203.0.113.9', 4500), 2, '203.0.113.1');
  const W = agent(net.socket('203.0.113.20', 4500), 3, '203.0.113.1');
  const victim = net.socket('192.0.2.77', 4500);
  let atVictim = 0;
  victim.onMessage(() => { atVictim++; });
  try {
    const end = Date.now() + 8000;
    while (![X, W].every((a) => (a.status().overlay?.routingTableSize ?? 0) > 0)) {
      if (Date.now() > end) throw new Error('agents never joined');
      await sleep(10);
    }
    const host = (address: string): Candidate => ({ address, port: 4500, type: 0, priority: 0 });
    const cands = [host('192.0.2.77'), host('203.0.113.1'), host('203.0.113.9')];
    const xo = overlayOf(X);
    let forged = 0;
    for (const service of ['stun', 'relay']) {
      assert.ok(await xo.advertise(service, cands));
      await xo.node.storeAt({ address: '203.0.113.20', port: 4500 },
        [marshalRecord(createServiceRecord(xo.node.signer, service, cands, { now: Date.now() }))]);
      forged += 2;
    }
    for (const service of ['stun', 'relay']) {
      const got = (await W.providers(service)).map(endpointKey);
      assert.deepEqual(got, ['203.0.113.9:4500'], `${service}: only where the stranger's key lives`);
    }
    t.diagnostic(`provider endpoints forged: ${forged} (a victim's address, another member's), in the overlay and in the asker's store; `
      + `accepted: 0; overlay PINGs that reached the victim while checking: ${atVictim}`);
    assert.ok(atVictim <= 2 * 4, 'a bounded check: a PING and its retransmissions per lookup');
  } finally {
    await Promise.all([S.close(), X.close(), W.close()]);
  }
});
