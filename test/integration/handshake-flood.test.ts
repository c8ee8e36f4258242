// A handshake flood at a real agent: two agents with an established tunnel, and a raw-UDP attacker in a
// third namespace that sends forged initiations at 10,000 per second for ~10 s to one agent's port, each
// from a random spoofed source (IP_HDRINCL) and each valid up to mac1 (computed from the target's public
// key, as anyone can), so every one reaches the cost path. Meanwhile `ping -i 0.1` runs over the tunnel:
// at least 90% of the pings must be answered. The test prints the flood rate the attacker reached, what
// the agent saw of it, and the ping loss.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ed25519 } from '@noble/curves/ed25519.js';
import { Lab } from './lab.js';
import { AGENT_PORT, agentStatus, cliMissing, counter, logTails, pidAlive, startMesh, stopAgent, type TestAgent } from './agents.js';
import { labUnavailable, prerequisites } from './prerequisites.js';
import { HANDSHAKE_INIT_LEN, INIT_MAC1_OFF, mac1Key } from '../../agent/tunnel/messages.js';

// argv: target-ip port mac1-key-hex init-len mac1-offset rate seconds. Spoofed sources from 198.18.0.0/15 (RFC 2544's
// benchmarking range); a pool of distinct forgeries is built first so the send loop only paces and sends.
const ATTACKER = String.raw`
import hashlib, json, os, random, socket, struct, sys, time
dst, port, key, n, off = sys.argv[1], int(sys.argv[2]), bytes.fromhex(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
rate, secs = int(sys.argv[6]), float(sys.argv[7])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
daddr = socket.inet_aton(dst)
pool = []
for i in range(4096):
    b = bytearray(os.urandom(n)); b[0] = 0xc1; b[1:4] = b'\0\0\0'
    b[off:off + 16] = hashlib.blake2s(bytes(b[:off]), key=key, digest_size=16).digest()  # mac1 over the bytes before it
    src = bytes([198, 18 + random.getrandbits(1), random.getrandbits(8), 1 + random.getrandbits(7)])
    udp = struct.pack('!HHHH', 1024 + random.getrandbits(15), port, 8 + n, 0) + bytes(b)  # UDP checksum 0: none (IPv4)
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0, src, daddr)  # kernel fills id + checksum
    pool.append(ip + udp)
sent = errors = 0
start = time.perf_counter(); end = start + secs
while True:
    now = time.perf_counter()
    if now >= end: break
    due = int((now - start) * rate) - sent
    if due <= 0:
        time.sleep(0.0005); continue
    for _ in range(min(due, 256)):
        try:
            s.sendto(pool[sent % 4096], (dst, 0)); sent += 1
        except OSError:
            errors += 1; sent += 1
took = time.perf_counter() - start
print(json.dumps({'sent': sent, 'errors': errors, 'seconds': round(took, 3), 'rate': round(sent / took)}))
`;

const SUITE = 'handshake flood at an agent';
const skip = prerequisites(SUITE, labUnavailable(), cliMissing());
const RATE = 10_000, FLOOD_S = 11, PINGS = 100;

describe(SUITE, { skip }, () => {
  let lab: Lab;
  let agents: TestAgent[] = [];

  before(async () => {
    lab = await Lab.create({ hosts: ['a', 'b', 'm'] });
    agents = await startMesh(lab, ['a', 'b']);
    // Answers to the spoofed sources leave towards the attacker's host (which drops them), as they would
    // leave towards the internet: b has no other route there, and a reverse-path filter wants one.
    await lab.exec('b', ['ip', 'route', 'add', '198.18.0.0/15', 'via', lab.address('m'), 'dev', 'eth0']);
    await lab.exec('a', ['ping', '-c', '2', '-W', '3', agents[1]!.id.ipv4]); // the tunnel is up before the flood
  });
  after(async () => {
    await Promise.all(agents.map((x) => stopAgent(lab, x)));
    await lab?.destroy();
  });

  it('keeps an established tunnel answering pings through 10,000 forged initiations per second', async (t) => {
    const [a, b] = agents as [TestAgent, TestAgent];
    const key = Buffer.from(mac1Key(ed25519.utils.toMontgomery(Buffer.from(b.id.publicKey, 'hex')))).toString('hex');
    const script = join(lab.dir, 'flood.py');
    writeFileSync(script, ATTACKER);
    const before = await agentStatus(lab, b);
    const flood = lab.exec('m', ['python3', script, lab.address('b'), String(AGENT_PORT), key, String(HANDSHAKE_INIT_LEN), String(INIT_MAC1_OFF), String(RATE), String(FLOOD_S)],
      { timeoutMs: (FLOOD_S + 30) * 1000 });
    await new Promise((r) => setTimeout(r, 500)); // the flood is under way
    const ping = await lab.exec('a', ['ping', '-i', '0.1', '-c', String(PINGS), '-W', '1', '-q', b.id.ipv4], { allowFail: true, timeoutMs: 30_000 });
    const f = JSON.parse((await flood).stdout) as { sent: number; errors: number; seconds: number; rate: number };
    const after = await agentStatus(lab, b);
    const d = (name: string) => counter(after, 'tunnels', name) - counter(before, 'tunnels', name);
    const m = /(\d+) packets transmitted, (\d+) received/.exec(ping.stdout);
    const [sent, got] = m ? [Number(m[1]), Number(m[2])] : [PINGS, 0];
    const loss = 100 * (1 - got / sent);
    t.diagnostic(`attacker: ${f.sent} forged initiations (${f.errors} send errors) in ${f.seconds} s = ${f.rate}/s from spoofed sources (asked for ${RATE}/s)`);
    t.diagnostic(`agent b saw ${d('handshakeInitRecv')} initiations: cookie replies ${d('cookieReplySent')} (${d('cookieReplySkipped')} more left unanswered past the reply budget), rate-limited ${d('handshakeRateLimited')}, queue full ${d('handshakeQueueDropped')}, reached X25519 ${d('rxDecryptFailed')}, bad mac1 ${d('rxBadMac')}, handshakes completed ${d('handshakeCompleted')}`);
    t.diagnostic(`pings over the tunnel: ${sent} sent, ${got} answered, ${loss.toFixed(1)}% loss; ${ping.stdout.trim().split('\n').pop()}`);
    assert.ok(b.proc!.running && pidAlive(b.proc!.pid), `agent b died under the flood:\n${logTails(agents)}`);
    assert.ok(got >= sent * 0.9, `only ${got} of ${sent} pings answered during the flood:\n${ping.stdout}\n${JSON.stringify(after.counters.tunnels)}`);
    assert.equal(d('handshakeCompleted'), 0, 'no forged initiation completed a handshake');
    assert.ok(d('handshakeInitRecv') >= f.sent * 0.5, `the agent saw ${d('handshakeInitRecv')} of ${f.sent} forgeries`);
    const peer = after.peers.find((p) => p.publicKey === a.id.publicKey);
    assert.equal(peer?.path, 'direct', JSON.stringify(peer));
  });
});
