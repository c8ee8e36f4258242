// The peer relay is no open relay, with real agents and a raw-UDP attacker (issue 9). "pub" relays for
// "cli" (behind a cone NAT, pub is its rendezvous node). "m" sends raw datagrams, some with the source
// address of the victim "v" (a raw socket, IP_HDRINCL): an overlay ATTACH whose Via names a made-up
// NodeID, then peer relay frames for that NodeID, for a NodeID nobody has, and for cli itself, from m's
// own address and from v's. Captures on v and on cli's NAT router count the relay frames pub sends them:
// none. The frames' bytes are made with the agent's own codecs (overlay, peer relay) by a node script.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lab, type LabProcess } from './lab.js';
import {
  agentStatus, cliMissing, createAgent, logTails, startOverlayAgent, stopAgent, waitOverlayReady, waitUntil, type TestAgent,
} from './agents.js';
import { labUnavailable, prerequisites } from './prerequisites.js';

const DIST = fileURLToPath(new URL('../../agent/', import.meta.url));

// node: print the datagrams as JSON [{ hex, spoof }] (argv: client NodeID hex, rounds).
const MAKER = String.raw`
const { randomBytes } = require('node:crypto');
(async () => {
  const dist = process.argv[1];
  const { marshalOverlayMessage } = await import(dist + 'overlay/codec.js');
  const { marshalPeerRelay, PR_TO_CLIENT, PR_TO_PEER } = await import(dist + 'nat/peer-relay-wire.js');
  const { generateIdentity } = await import(dist + 'idloc/identity.js');
  const client = Buffer.from(process.argv[2], 'hex');
  const rounds = Number(process.argv[3]);
  const me = generateIdentity();
  const out = [];
  const push = (b, spoof, kind) => out.push({ hex: Buffer.from(b).toString('hex'), spoof, kind });
  for (let r = 0; r < rounds; r++) {
    const fake = randomBytes(20);
    push(marshalOverlayMessage({ kind: 'attach', ttl: 8, txid: BigInt(r + 1), via: [fake], dest: [{ type: 'node', id: randomBytes(20) }],
      sender: { nodeId: me.nodeId, publicKey: me.publicKey }, blob: new Uint8Array(8) }), true, 'via');
    for (let i = 0; i < 5; i++) {
      push(marshalPeerRelay(PR_TO_CLIENT, fake, new Uint8Array(1200)), false, 'spoofed-via');
      push(marshalPeerRelay(PR_TO_CLIENT, fake, new Uint8Array(1200)), true, 'spoofed-via');
      push(marshalPeerRelay(PR_TO_CLIENT, randomBytes(20), new Uint8Array(1200)), false, 'unknown-node');
      push(marshalPeerRelay(PR_TO_CLIENT, client, new Uint8Array(1200)), false, 'unverified-peer');
      push(marshalPeerRelay(PR_TO_CLIENT, client, new Uint8Array(1200)), true, 'spoofed-source');
      push(marshalPeerRelay(PR_TO_PEER, randomBytes(4).readUInt32BE(0), new Uint8Array(1200)), false, 'guessed-handle');
    }
  }
  console.log(JSON.stringify(out));
})();
`;

// python3: send each datagram from a raw socket with the given IPv4 source (argv: file src spoof_src dst port).
const SENDER = String.raw`
import json, socket, struct, sys, time
path, src, spoof, dst, port = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
def packet(payload, source):
    udp = struct.pack('!HHHH', 40000, port, 8 + len(payload), 0) + payload
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0, socket.inet_aton(source), socket.inet_aton(dst))
    return ip + udp
sent = {}
for i, d in enumerate(json.load(open(path))):
    s.sendto(packet(bytes.fromhex(d['hex']), spoof if d['spoof'] else src), (dst, 0))
    sent[d['kind']] = sent.get(d['kind'], 0) + 1
    if d['kind'] == 'via': time.sleep(0.02)
print(json.dumps(sent))
`;

const SUITE = 'the peer relay against a raw-UDP attacker';
const skip = prerequisites(SUITE, labUnavailable(), cliMissing());

describe(SUITE, { skip, timeout: 90_000 }, () => {
  let lab: Lab;
  const agents = new Map<string, TestAgent>();
  const A = (h: string) => agents.get(h)!;

  before(async () => {
    lab = await Lab.create({ hosts: ['pub', 'm', 'v'], natHosts: [{ name: 'cli', nat: 'cone' }] });
    for (const h of ['pub', 'cli']) agents.set(h, await createAgent(lab, h));
    startOverlayAgent(lab, A('pub'), []);
    await waitOverlayReady(lab, A('pub'));
    startOverlayAgent(lab, A('cli'), [A('pub')]);
    await waitOverlayReady(lab, A('cli'));
    await waitUntil(async () => ((await agentStatus(lab, A('cli'))).overlay?.['rendezvous'] as string[] | undefined)?.length,
      20_000, 'cli keeps pub as its rendezvous node');
  });
  after(async () => {
    await Promise.all([...agents.values()].map((a) => stopAgent(lab, a)));
    await lab?.destroy();
  });

  async function capture(node: string, name: string): Promise<{ proc: LabProcess; file: string }> {
    const file = join(lab.dir, `${name}.pcap`);
    const proc = lab.spawn(node, ['tcpdump', '-i', lab.uplink, '-n', '-U', '--immediate-mode', '-s', '0', '-B', '8192', '-w', file]);
    await proc.waitForOutput(/listening on/);
    return { proc, file };
  }

  it('sends nothing to the victim or its client for spoofed Via, unknown NodeIDs, unverified and spoofed peers', async (t) => {
    const pub = lab.address('pub');
    const made = await lab.exec('m', ['node', '-e', MAKER, DIST, A('cli').id.nodeId, '20'], { timeoutMs: 20_000 });
    const file = join(lab.dir, 'forged.json');
    writeFileSync(file, made.stdout);
    const atVictim = await capture('v', 'victim');
    const atClient = await capture('r-cli', 'client');
    const r = await lab.exec('m', ['python3', '-c', SENDER, file, lab.address('m'), lab.address('v'), pub, '4500'], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    await new Promise((res) => setTimeout(res, 1000));
    await Promise.all([atVictim, atClient].map((c) => lab.stopProcess(c.proc, { signal: 'SIGINT' })));
    const count = async (node: string, f: string) =>
      (await lab.exec(node, ['tcpdump', '-r', f, '-nn', `udp and src host ${pub} and udp[8] = 0xd3`])).stdout.split('\n').filter(Boolean).length;
    const [victimFrames, clientFrames] = [await count('v', atVictim.file), await count('r-cli', atClient.file)];
    const server = (await agentStatus(lab, A('pub'))).counters.peerRelay.server;
    t.diagnostic(`forged datagrams sent: ${r.stdout.trim()}; relay frames pub sent to the victim: ${victimFrames}, `
      + `towards its client: ${clientFrames}; pub's relay counters ${JSON.stringify(server)}`);
    const evidence = '\n' + logTails([A('pub'), A('cli')], 15);
    assert.equal(victimFrames, 0, `pub relayed attacker payload to the victim${evidence}`);
    assert.equal(clientFrames, 0, `pub relayed frames from an unverified peer to its client${evidence}`);
    assert.ok((server?.unverifiedPeer ?? 0) > 0, `the forged frames were counted: ${JSON.stringify(server)}`);
  });
});
