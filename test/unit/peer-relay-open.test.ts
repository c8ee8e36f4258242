// The peer relay is no open relay (issue 9): a public agent relays only to its own rendezvous clients, at the
// endpoint they talk to it from, and only frames from sources that proved themselves to its overlay. An
// attacker crafts raw datagrams: an overlay request with a spoofed source (the victim's address) whose Via
// names a made-up NodeID, then relay frames for that NodeID; frames for a real client from an address that
// never spoke to the overlay, and from a spoofed one. Counted: the relay frames that reach the victim and
// the client. Whole agents over the in-memory network, as daemon.ts wires them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Agent } from '../../agent/daemon.js';
import { MemoryNetwork, type MemorySocket } from '../../agent/conn/memory-socket.js';
import { generateIdentity } from '../../agent/idloc/identity.js';
import { marshalOverlayMessage } from '../../agent/overlay/codec.js';
import { OVERLAY_DEFAULT_TTL } from '../../agent/base/constants.js';
import { PR_TO_CLIENT, PR_TO_PEER, marshalPeerRelay } from '../../agent/nat/peer-relay-wire.js';
import { endpointKey, type Endpoint } from '../../agent/conn/socket.js';
import { keepEventLoopAlive, memoryAgent, sleep } from './memory-agent.js';

keepEventLoopAlive();

function agent(sock: MemorySocket, i: number, bootstrap?: string): Agent {
  return memoryAgent(sock, i, { bootstrap, macByte: 9 });
}

/** Count the peer relay frames (0xD3) a socket receives, and hand everything on. */
function counting(sock: MemorySocket): { sock: MemorySocket; frames: () => number; bytes: () => number } {
  let frames = 0, bytes = 0;
  const on = sock.onMessage.bind(sock);
  sock.onMessage = (h) => on((m, f) => { if (m[0] === 0xd3) { frames++; bytes += m.length; } h(m, f); });
  return { sock, frames: () => frames, bytes: () => bytes };
}

test('the peer relay sends nothing to a non-client address: spoofed Via, unknown NodeID, unverified peer', async (t) => {
  const net = new MemoryNetwork({ latencyMs: 1 });
  const R = agent(net.socket('203.0.113.1', 4500), 1);
  const client = counting(net.socket('203.0.113.2', 4500));
  const C = agent(client.sock, 2, '203.0.113.1');
  // The victim listens and answers nothing; it only counts what the relay sends it.
  const victim = counting(net.socket('192.0.2.77', 9));
  victim.sock.onMessage(() => undefined);
  const attacker = net.socket('198.51.100.66', 4000);
  attacker.onMessage(() => undefined);
  // A second attacker socket whose datagrams arrive with the victim's source address (spoofing).
  const spoofer = net.socket('198.51.100.67', 4000);
  spoofer.onMessage(() => undefined);
  const V: Endpoint = victim.sock.local;
  net.setTranslate((from) => (from.address === spoofer.local.address ? V : from));
  const relay: Endpoint = { address: '203.0.113.1', port: 4500 };
  try {
    const end = Date.now() + 8000;
    while (!(R.status().overlay?.routingTableSize && C.status().overlay?.routingTableSize)) {
      if (Date.now() > end) throw new Error('the client never joined the relay');
      await sleep(10);
    }
    const me = generateIdentity();
    const rId = R.currentIdentity.nodeId;
    const cId = C.currentIdentity.nodeId;
    let spoofedVia = 0, unknownId = 0, unverified = 0, spoofedSrc = 0, foreignHandle = 0;
    const bytesIn = () => (spoofedVia + unknownId + unverified + spoofedSrc + foreignHandle) * (2 + 20 + 1200);
    for (let round = 0; round < 20; round++) {
      // 1. A request "from" the victim whose Via names a made-up NodeID, to the relay itself and onwards.
      const fake = randomBytes(20);
      for (const dest of [rId, randomBytes(20)]) {
        spoofer.send(marshalOverlayMessage({
          kind: 'attach', ttl: OVERLAY_DEFAULT_TTL, txid: BigInt(round + 1), via: [fake], dest: [{ type: 'node', id: dest }],
          sender: { nodeId: me.nodeId, publicKey: me.publicKey }, blob: new Uint8Array(8),
        }), relay);
      }
      await sleep(3);
      // ... then frames for that NodeID, from the attacker's own address and from the spoofed one.
      for (let i = 0; i < 5; i++) {
        attacker.send(marshalPeerRelay(PR_TO_CLIENT, fake, new Uint8Array(1200)), relay); spoofedVia++;
        spoofer.send(marshalPeerRelay(PR_TO_CLIENT, fake, new Uint8Array(1200)), relay); spoofedVia++;
        // 2. A NodeID nobody has.
        attacker.send(marshalPeerRelay(PR_TO_CLIENT, randomBytes(20), new Uint8Array(1200)), relay); unknownId++;
        // 3. The real client, from an address that never proved itself to the relay's overlay ...
        attacker.send(marshalPeerRelay(PR_TO_CLIENT, cId, new Uint8Array(1200)), relay); unverified++;
        // ... and from the victim's (spoofed): the client's answers would go there.
        spoofer.send(marshalPeerRelay(PR_TO_CLIENT, cId, new Uint8Array(1200)), relay); spoofedSrc++;
        // 4. Guessed handles, as if the attacker were the client answering a peer.
        attacker.send(marshalPeerRelay(PR_TO_PEER, (Math.random() * 2 ** 32) >>> 0, new Uint8Array(1200)), relay); foreignHandle++;
      }
      await sleep(3);
    }
    await sleep(50);
    const served = R.status().counters.peerRelay.server!;
    const tried = spoofedVia + unknownId + unverified + spoofedSrc + foreignHandle;
    t.diagnostic(`forged relay frames: ${tried} (${spoofedVia} after a spoofed Via, ${unknownId} unknown NodeIDs, `
      + `${unverified} from an unverified peer, ${spoofedSrc} with a spoofed source, ${foreignHandle} guessed handles); `
      + `, about ${bytesIn()} bytes; frames that reached the victim: ${victim.frames()} (${victim.bytes()} bytes), the client: `
      + `${client.frames()} (${client.bytes()} bytes); relay counters ${JSON.stringify(served)}`);
    assert.equal(victim.frames(), 0, `the relay sent ${victim.bytes()} bytes of attacker payload to ${endpointKey(V)}`);
    assert.equal(client.frames(), 0, 'frames from peers the relay cannot authenticate never reach its client');
    assert.equal(served.toClient + served.toPeer, 0);
  } finally {
    await Promise.all([R.close(), C.close()]);
  }
});
