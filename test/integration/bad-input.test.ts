// Hostile and broken input at an agent's UDP port must be counted and dropped, never crash it or
// disturb its real peers: random datagrams, truncated/garbled tunnel messages (0xC1/0xC2/0xC4), and a
// well-formed agent whose key its targets never listed.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Lab } from './lab.js';
import {
  AGENT_PORT, agentStatus, cliMissing, counter, createAgent, logTails, pidAlive, startAgent, stopAgent, waitReady,
  type AgentStatus, type TestAgent,
} from './agents.js';
import { labUnavailable, prerequisites } from './prerequisites.js';

// Run by plain node inside the attacker's namespace (argv: address port count seed). Deterministic per
// seed so a failure can be replayed. Sends in small bursts, waiting for each burst's callbacks, so the
// sender's own socket buffer does not drop most of it.
const FUZZER = String.raw`
const dgram = require('node:dgram');
const [addr, port, count, seed] = process.argv.slice(1);
let s = Number(seed) >>> 0 || 1;
const rnd = (n) => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s % n; };
const bytes = (n) => { const b = Buffer.alloc(n); for (let i = 0; i < n; i++) b[i] = rnd(256); return b; };
const TYPES = [0xc1, 0xc2, 0xc3, 0xc4];
const FULL = { 0xc1: 188, 0xc2: 76, 0xc3: 64, 0xc4: 32 + 64 };
function packet(i) {
  if (i < 256) { const b = bytes(1 + rnd(64)); b[0] = i; return b; }      // every first byte once
  switch (rnd(6)) {
    case 0: return bytes(rnd(4));                                          // 0-3 bytes, incl. empty
    case 1: { const t = TYPES[rnd(TYPES.length)]; const b = bytes(rnd(FULL[t])); if (b.length) b[0] = t; return b; } // truncated
    case 2: { const t = TYPES[rnd(TYPES.length)]; const b = bytes(FULL[t]); b[0] = t; b[1] = b[2] = b[3] = 0; return b; } // right size, garbage
    case 3: { const t = TYPES[rnd(TYPES.length)]; const b = bytes(FULL[t] + 1 + rnd(1300)); b[0] = t; b[1] = b[2] = b[3] = 0; return b; } // oversize
    case 4: { const b = bytes(32 + rnd(1400)); b[0] = 0xc4; b[1] = b[2] = b[3] = 0; b.writeUInt32LE(rnd(8), 4); b.writeUInt32LE(0, 12); return b; } // low receiver index, plausible counter
    default: return bytes(rnd(1500));                                      // anything
  }
}
const sock = dgram.createSocket(addr.includes(':') ? 'udp6' : 'udp4');
let sent = 0, i = 0;
function burst() {
  if (i >= Number(count)) { sock.close(); console.log(JSON.stringify({ sent })); return; }
  let pending = 0;
  for (let k = 0; k < 64 && i < Number(count); k++, i++) {
    pending++;
    sock.send(packet(i), Number(port), addr, (err) => { if (!err) sent++; if (--pending === 0) setTimeout(burst, 1); });
  }
}
burst();
`;

const SUITE = 'bad input at the UDP port';
const skip = prerequisites(SUITE, labUnavailable(), cliMissing());

describe(SUITE, { skip }, () => {
  let lab: Lab;
  let a: TestAgent, b: TestAgent, stranger: TestAgent;
  const all = () => [a, b, stranger].filter(Boolean);
  const COUNT = 5000;

  before(async () => {
    // a and b know each other; "x" knows them but neither lists x; "m" only sends garbage.
    lab = await Lab.create({ hosts: ['a', 'b', 'x', 'm'] });
    [a, b, stranger] = await Promise.all(['a', 'b', 'x'].map((h) => createAgent(lab, h))) as [TestAgent, TestAgent, TestAgent];
    // --allow static: these two take only each other, so the stranger below (a real agent with a valid
    // NodeID puzzle, which an overlay-open agent would admit) must be refused.
    startAgent(lab, a, [b], ['--allow', 'static']);
    startAgent(lab, b, [a], ['--allow', 'static']);
    startAgent(lab, stranger, [a, b]);
    await Promise.all(all().map((x) => waitReady(lab, x)));
    // A working tunnel before the attack, so the test can also see that an established session survives it.
    await lab.exec('a', ['ping', '-c', '1', '-W', '3', b.id.ipv4]);
  });
  after(async () => {
    await Promise.all(all().map((x) => stopAgent(lab, x)));
    await lab?.destroy();
  });

  it('survives thousands of random, truncated and garbled datagrams, counting them', async () => {
    const before = await agentStatus(lab, a);
    const r = await lab.exec('m', [process.execPath, '-e', FUZZER, lab.address('a'), String(AGENT_PORT), String(COUNT), '7'], { timeoutMs: 60_000 });
    const { sent } = JSON.parse(r.stdout) as { sent: number };
    assert.ok(sent >= COUNT * 0.9, `fuzzer sent only ${sent}`);
    await new Promise((res) => setTimeout(res, 300)); // let the agent drain its socket
    assert.ok(a.proc!.running && pidAlive(a.proc!.pid), `agent a died under garbage:\n${logTails([a])}`);
    const after = await agentStatus(lab, a);
    const d = (layer: string, name: string) => counter(after, layer, name) - counter(before, layer, name);
    const summary = JSON.stringify(after.counters, null, 1);
    // Most datagrams must have reached the agent (the kernel may drop some on a full socket buffer).
    assert.ok(d('demux', 'datagrams') >= sent * 0.5, `agent saw ${d('demux', 'datagrams')} of ${sent} datagrams: ${summary}`);
    assert.ok(d('demux', 'unknown') > 0, `no unknown-type datagrams counted: ${summary}`);
    assert.ok(d('tunnels', 'rxInvalid') > 0, `no malformed tunnel datagrams counted: ${summary}`);
    assert.ok(d('tunnels', 'rxBadMac') > 0, `no handshake with a bad mac1 counted: ${summary}`);
    assert.ok(d('tunnels', 'rxUnknownIndex') > 0, `no transport datagram for an unknown session counted: ${summary}`);
    // Nothing garbage must have reached the TAP or counted as a peer's packet.
    assert.equal(d('tunnels', 'handshakeCompleted'), 0, summary);
    assert.equal(d('outside', 'packetsIn'), 0, summary);
    assert.equal(d('tunnels', 'callbackErrors'), 0, summary);
  });

  it('refuses a well-formed agent whose key is not a configured peer', async () => {
    // x pings a and b: its agent handshakes with them, which they must refuse.
    const before = await agentStatus(lab, a);
    for (const t of [a, b]) {
      const r = await lab.exec('x', ['ping', '-c', '2', '-W', '1', t.id.ipv4], { allowFail: true });
      assert.notEqual(r.code, 0, `stranger reached ${t.host}: ${r.stdout}`);
    }
    let after: AgentStatus = before;
    // Retries happen on the agent's own timer; the first initiation is enough to be refused.
    for (let i = 0; i < 20 && counter(after, 'tunnels', 'rxUnknownPeer') === counter(before, 'tunnels', 'rxUnknownPeer'); i++) {
      await new Promise((res) => setTimeout(res, 100));
      after = await agentStatus(lab, a);
    }
    assert.ok(counter(after, 'tunnels', 'rxUnknownPeer') > counter(before, 'tunnels', 'rxUnknownPeer'),
      `a did not count the stranger's handshake: ${JSON.stringify(after.counters.tunnels)}\n${logTails(all())}`);
    assert.ok(!after.peers.some((p) => p.publicKey === stranger.id.publicKey), 'the stranger became a peer of a');
    const xs = await agentStatus(lab, stranger);
    for (const p of xs.peers) {
      assert.equal(p.lastHandshake, null, `stranger completed a handshake with ${p.ipv4}: ${JSON.stringify(p)}`);
      assert.notEqual(p.path, 'direct');
    }
  });

  it('keeps serving its real peers afterwards', async () => {
    for (const x of [a, b]) assert.ok(x.proc!.running && pidAlive(x.proc!.pid), `agent ${x.host} died:\n${logTails([x])}`);
    await lab.exec('a', ['ping', '-c', '3', '-W', '2', b.id.ipv4]);
    await lab.exec('b', ['ping', '-6', '-c', '3', '-W', '2', a.id.ipv6]);
    const s = await agentStatus(lab, a);
    const peer = s.peers.find((p) => p.publicKey === b.id.publicKey);
    assert.equal(peer?.path, 'direct', JSON.stringify(peer));
  });
});
