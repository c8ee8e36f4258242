// A private overlay (--overlay-secret) on real agents in network namespaces: members get in, strangers get
// nothing back at all, and the secret can be rotated under a running ping without losing a packet.
//
//   a  198.51.100.10  public, starts the overlay (secret S1)
//   w  198.51.100.11  public, bootstraps from a with a wrong secret (S2)
//   n  198.51.100.12  public, bootstraps from a with no secret, and --peer a so it also tries tunnel handshakes
//   o  198.51.100.13  after the rotation: the old secret S1 only
//   f  198.51.100.14  after the rotation: the new secret S3
//   b  10.10.0.2      behind a filtering cone NAT (203.0.113.10), secret S1, bootstraps from a
//
// 1. b joins, pings a's overlay IPv4 with the kernel's ping, registers a name that a resolves.
// 2. w and n never join, cannot resolve b, their pings get no reply; iptables counters in their own
//    namespaces show they kept sending towards a and that not one packet came back from a or from b's
//    router, not even to a hand-made STUN Binding request or an untagged overlay datagram. a counts them
//    as refused (admission, STUN not-member, tunnel mac1).
// 3. a and b rotate S1 -> S3 ([S1] -> [S1,S3] -> [S3,S1] -> [S3]) by rewriting their config files and
//    SIGHUP, one step on both before the next, while b pings a every 100 ms: every ping is answered. Then a
//    host with S1 alone cannot join (and gets nothing back), a host with S3 joins and pings a, and b's
//    overlay traffic still flows (a name registered after the rotation resolves at a).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, renameSync, writeFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Lab } from './lab.js';
import {
  AGENT_PORT, agentStatus, cliMissing, createAgent, hostPort, logTail, logTails, registerIn, resolveIn, runCli, startAgent, stopAgent,
  type TestAgent, waitOverlayReady, waitUntil,
} from './agents.js';
import { labUnavailable, prerequisites } from './prerequisites.js';
import { deriveSecretKeys } from '../../agent/base/overlay-secret.js';
import type { AgentStatus as RealAgentStatus } from '../../agent/status.js';

const skip = prerequisites('private overlay', labUnavailable(), cliMissing());

/** status --json with the sections this file reads (agents.ts's AgentStatus leaves them out). */
type FullStatus = RealAgentStatus;
const statusOf = async (lab: Lab, a: TestAgent) => (await agentStatus(lab, a)) as unknown as FullStatus;
const refused = (s: FullStatus, layer: string, kind: string) => s.refused[layer]?.[kind] ?? 0;

/** Counters in an outsider's own namespace: every packet from `sources` (any protocol), and UDP it sent
 *  towards `towards`. Inserted before the agent starts, so nothing it ever got is missed. */
async function installCounters(lab: Lab, host: string, sources: readonly string[], towards: string): Promise<void> {
  for (const s of sources) await lab.exec(host, ['iptables', '-I', 'INPUT', '-s', s, '-j', 'ACCEPT']);
  await lab.exec(host, ['iptables', '-I', 'OUTPUT', '-d', towards, '-p', 'udp', '-j', 'ACCEPT']);
}

interface Count { packets: number; bytes: number }
/** The packet and byte counters of the rules installCounters() put in `chain` for `addr`. */
async function readCounter(lab: Lab, host: string, chain: 'INPUT' | 'OUTPUT', addr: string): Promise<Count> {
  const r = await lab.exec(host, ['iptables', '-L', chain, '-v', '-x', '-n']);
  // "pkts bytes target prot opt in out source destination"
  for (const line of r.stdout.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[2] !== 'ACCEPT') continue;
    const match = chain === 'INPUT' ? f[7] === addr : f[8] === addr;
    if (match) return { packets: Number(f[0]), bytes: Number(f[1]) };
  }
  throw new Error(`no ${chain} counter for ${addr} in ${host}:\n${r.stdout}`);
}

/** A plain STUN Binding request and an untagged overlay datagram (first byte 0xD2) to each target, from a
 *  fresh socket; prints how many datagrams came back within a second. */
const PROBE = `
const dgram = require('node:dgram'); const crypto = require('node:crypto');
const [host, ...ports] = process.argv.slice(1);
const s = dgram.createSocket('udp4'); let got = 0;
s.on('message', () => { got++; });
s.bind(0, () => {
  for (const p of ports) {
    const stun = Buffer.alloc(20); stun.writeUInt16BE(0x0001, 0); stun.writeUInt32BE(0x2112a442, 4); crypto.randomBytes(12).copy(stun, 8);
    s.send(stun, Number(p), host);
    const ov = Buffer.concat([Buffer.from([0xd2]), crypto.randomBytes(63)]);
    s.send(ov, Number(p), host);
  }
  setTimeout(() => { console.log(JSON.stringify({ got })); s.close(); }, 1000);
});`;

function pingSummary(out: string): { transmitted: number; received: number } {
  const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
  if (!m) throw new Error(`no ping summary in: ${out}`);
  return { transmitted: Number(m[1]), received: Number(m[2]) };
}

describe('private overlay: members in, strangers get no answer, secret rotation without a lost ping', { skip, timeout: 120_000 }, () => {
  let lab: Lab;
  const agents = new Map<string, TestAgent>();
  const A = (h: string) => agents.get(h)!;
  const secrets: Record<'s1' | 's2' | 's3', string> = { s1: '', s2: '', s3: '' };
  const ids: Record<string, string> = {};
  let aIp = '', bRouter = '';
  let aOverlay = '';
  const bName = 'bee-private';

  const cfgFile = (h: string) => join(lab.dir, `config-${h}.json`);
  /** Rewrite the agent's config as a whole (rename: a SIGHUP never reads half a file). */
  function writeConfig(h: string, list: readonly string[]): void {
    const tmp = `${cfgFile(h)}.tmp`;
    writeFileSync(tmp, JSON.stringify({ overlaySecret: list }) + '\n', { mode: 0o600 });
    renameSync(tmp, cfgFile(h));
  }
  const bootstrapA = () => ['--bootstrap', hostPort(aIp, AGENT_PORT)];
  const admission = (list: readonly string[]) => list.length === 1 ? `private overlay: shared secret ${ids[list[0]!]}; strangers get no answer`
    : `private overlay: shared secret ${ids[list[0]!]} (also accepting ${ids[list[1]!]}: rotation); strangers get no answer`;

  before(async () => {
    lab = await Lab.create({ hosts: ['a', 'w', 'n', 'o', 'f'], natHosts: [{ name: 'b', nat: 'cone' }] });
    aIp = lab.address('a');
    bRouter = lab.nat('b').publicAddress;
    for (const k of ['s1', 's2', 's3'] as const) {
      secrets[k] = join(lab.dir, `${k}.secret`);
      await runCli(lab, 'a', ['secret', 'generate', secrets[k]]);
      assert.equal(statSync(secrets[k]).mode & 0o777, 0o600, `${k} is written 0600`);
      ids[secrets[k]] = deriveSecretKeys(new Uint8Array(readFileSync(secrets[k]))).id;
    }
    for (const h of ['a', 'b', 'w', 'n', 'o', 'f']) agents.set(h, await createAgent(lab, h));
    // Outsiders count from their very first packet on.
    for (const h of ['w', 'n', 'o']) await installCounters(lab, h, [aIp, bRouter], aIp);
    writeConfig('a', [secrets.s1]);
    writeConfig('b', [secrets.s1]);
    startAgent(lab, A('a'), [], ['--config', cfgFile('a')]);
    aOverlay = (await waitOverlayReady(lab, A('a'))).identity.ipv4;
    startAgent(lab, A('b'), [], ['--config', cfgFile('b'), ...bootstrapA()]);
    startAgent(lab, A('w'), [], ['--overlay-secret', secrets.s2, ...bootstrapA()]);
    // n also knows a's key and address, so it keeps initiating tunnel handshakes, not only overlay joins.
    startAgent(lab, A('n'), [A('a')], bootstrapA());
    await waitOverlayReady(lab, A('b'), 25_000);
  });
  after(async () => {
    await Promise.all([...agents.values()].map((a) => stopAgent(lab, a)));
    await lab?.destroy();
  });

  it('1. b (behind a NAT, same secret) joins, pings a over the overlay, registers a name that a resolves', async () => {
    const ping = await lab.exec('b', ['ping', '-n', '-c', '3', '-i', '0.2', '-W', '3', aOverlay], { allowFail: true, timeoutMs: 20_000 });
    assert.equal(ping.code, 0, `b -> a ${aOverlay}: ${ping.stdout}${ping.stderr}\n${logTails([A('a'), A('b')])}`);
    const reg = await registerIn(lab, A('b'), bName);
    assert.equal(reg.code, 0, `register: ${reg.stdout}${reg.stderr}`);
    const { r, answer } = await resolveIn(lab, A('a'), bName);
    assert.equal(answer?.nodeId, A('b').id.nodeId, `a resolves ${bName}: ${r.stdout}${r.stderr}`);
    const s = await statusOf(lab, A('a'));
    assert.equal(s.access.admission, admission([secrets.s1]));
    process.stderr.write(`# a: ${s.access.admission}; counters ${JSON.stringify(s.access.counters)}\n`);
  });

  it('2. a wrong secret (w) and none (n): never joined, no resolve, no ping, and not one packet back', async () => {
    const before = await statusOf(lab, A('a'));
    // They have been trying since before b joined; give them a few more seconds of retries.
    await new Promise((r) => setTimeout(r, 4_000));
    for (const h of ['w', 'n']) {
      const s = await statusOf(lab, A(h));
      assert.equal(s.overlay?.joined, false, `${h} must not have joined: ${JSON.stringify(s.overlay)}`);
      for (const q of [bName, A('b').id.nodeId]) {
        const { r, answer } = await resolveIn(lab, A(h), q);
        assert.equal(answer, undefined, `${h} resolved ${q}: ${r.stdout}`);
      }
      const ping = await lab.exec(h, ['ping', '-n', '-c', '3', '-i', '0.2', '-W', '1', aOverlay], { allowFail: true, timeoutMs: 15_000 });
      assert.match(ping.stdout, /100% packet loss/, `${h} -> ${aOverlay}: ${ping.stdout}${ping.stderr}`);
      const probe = await lab.exec(h, [process.execPath, '-e', PROBE, aIp, '4500', '4501'], { timeoutMs: 10_000 });
      assert.equal((JSON.parse(probe.stdout) as { got: number }).got, 0, `${h}: raw STUN / untagged overlay probes were answered`);
    }
    const after = await statusOf(lab, A('a'));
    for (const h of ['w', 'n']) {
      const out = await readCounter(lab, h, 'OUTPUT', aIp);
      const fromA = await readCounter(lab, h, 'INPUT', aIp);
      const fromB = await readCounter(lab, h, 'INPUT', bRouter);
      process.stderr.write(`# ${h}: sent to a ${out.packets} packets / ${out.bytes} bytes; received from a ${fromA.packets}/${fromA.bytes}, from b's router ${fromB.packets}/${fromB.bytes}\n`);
      assert.ok(out.packets > 0, `${h} sent nothing towards a: the test would show nothing`);
      assert.deepEqual(fromA, { packets: 0, bytes: 0 }, `${h} got packets from a\n${logTail(A(h))}`);
      assert.deepEqual(fromB, { packets: 0, bytes: 0 }, `${h} got packets from b's router`);
    }
    process.stderr.write(`# a refused: ${JSON.stringify(after.refused)} (before the last 4 s: ${JSON.stringify(before.refused)}); access counters ${JSON.stringify(after.access.counters)}\n`);
    assert.ok(refused(after, 'admission', 'refused') > refused(before, 'admission', 'refused'), 'a kept refusing untagged overlay datagrams');
    assert.ok(refused(after, 'stun', 'notMember') > 0, 'a refused STUN from non-members');
    assert.ok(refused(after, 'tunnel', 'rxBadMac') > 0, 'a dropped n\'s handshake initiations on mac1');
    assert.equal(after.access.counters?.refused, refused(after, 'admission', 'refused'));
    await Promise.all(['w', 'n'].map((h) => stopAgent(lab, A(h))));
  });

  it('3. rotation S1 -> S3 on a and b under a 100 ms ping: every ping answered; then S1 alone is shut out, S3 gets in', async () => {
    const s1 = secrets.s1, s3 = secrets.s3;
    const pinger = lab.exec('b', ['ping', '-n', '-i', '0.1', '-c', '70', '-W', '2', aOverlay], { allowFail: true, timeoutMs: 30_000 });
    await new Promise((r) => setTimeout(r, 1_000));
    const steps = [[s1, s3], [s3, s1], [s3]];
    const before = await statusOf(lab, A('a'));
    for (const list of steps) {
      for (const h of ['a', 'b']) {
        writeConfig(h, list);
        process.kill(A(h).proc!.pid, 'SIGHUP');
      }
      for (const h of ['a', 'b']) {
        await waitUntil(async () => (await statusOf(lab, A(h))).access.admission === admission(list), 5_000, `${h} to take ${JSON.stringify(list.map((p) => ids[p]))}`);
      }
      await new Promise((r) => setTimeout(r, 1_000));
    }
    const ping = await pinger;
    const sum = pingSummary(ping.stdout);
    const mid = await statusOf(lab, A('a'));
    process.stderr.write(`# rotation ping b -> a: ${sum.transmitted} transmitted, ${sum.received} received; a access counters before ${JSON.stringify(before.access.counters)} after ${JSON.stringify(mid.access.counters)}\n`);
    assert.equal(sum.received, sum.transmitted, `pings lost across the rotation:\n${ping.stdout}\n${logTails([A('a'), A('b')], 30)}`);
    assert.equal(sum.transmitted, 70);
    assert.equal(mid.access.admission, admission([s3]), 'a holds one secret, the new one');
    assert.equal((await statusOf(lab, A('b'))).overlay?.joined, true, 'b is still a member');

    // b's overlay messages now go out under S3 and a takes them: a name registered now resolves at a.
    const reg = await registerIn(lab, A('b'), 'bee-rotated');
    assert.equal(reg.code, 0, `register after the rotation: ${reg.stdout}${reg.stderr}`);
    const { r, answer } = await resolveIn(lab, A('a'), 'bee-rotated');
    assert.equal(answer?.nodeId, A('b').id.nodeId, `a resolves bee-rotated: ${r.stdout}${r.stderr}`);

    // The old secret alone, and the new one: started together, o is judged after f has joined.
    startAgent(lab, A('o'), [], ['--overlay-secret', s1, ...bootstrapA()]);
    startAgent(lab, A('f'), [], ['--overlay-secret', s3, ...bootstrapA()]);
    await waitOverlayReady(lab, A('f'), 25_000);
    const fp = await lab.exec('f', ['ping', '-n', '-c', '3', '-i', '0.2', '-W', '3', aOverlay], { allowFail: true, timeoutMs: 20_000 });
    assert.equal(fp.code, 0, `f (new secret) -> a: ${fp.stdout}${fp.stderr}\n${logTail(A('f'))}`);
    await new Promise((r2) => setTimeout(r2, 2_000));
    const os = await statusOf(lab, A('o'));
    assert.equal(os.overlay?.joined, false, `o (old secret only) joined: ${JSON.stringify(os.overlay)}`);
    const out = await readCounter(lab, 'o', 'OUTPUT', aIp);
    const fromA = await readCounter(lab, 'o', 'INPUT', aIp);
    process.stderr.write(`# o (old secret): sent to a ${out.packets} packets / ${out.bytes} bytes; received from a ${fromA.packets}/${fromA.bytes}; f (new secret) joined and pinged a\n`);
    assert.ok(out.packets > 0, 'o sent nothing towards a');
    assert.deepEqual(fromA, { packets: 0, bytes: 0 }, `o got packets from a\n${logTail(A('o'))}`);
  });
});
