// The discovery queue's limits on the real packet path: an app's packets to overlay addresses no peer is
// mapped to yet go through the TAP into the agent, which holds at most LOOKUP_QUEUE_PER_DEST of them per
// destination and looks up at most LOOKUP_MAX_PENDING destinations at once. Counters come from
// `status --json` (overlay.discovery, counters.inside), answers from a capture on the sender's TAP (ICMP
// unreachable) or from the receiving app (delivery).
//
// A lookup in a three-node lab answers in a millisecond, faster than a burst fills the queue; to hold the
// lookups open while the burst arrives, the sender's host drops the overlay's answers (INPUT, UDP) for a
// while: its RPCs go out and are retransmitted, and the lookup ends when the drop is lifted (found) or the
// RPCs give up (not found).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Lab, waitFor, type LabProcess } from './lab.js';
import {
  type AgentStatus, agentStatus, cliMissing, counter, createAgent, logTails, startOverlayAgent, stopAgent, TAP_NAME, type TestAgent, waitOverlayReady,
} from './agents.js';
import { labUnavailable, prerequisites } from './prerequisites.js';
import { LOOKUP_MAX_PENDING, LOOKUP_QUEUE_PER_DEST, LOOKUP_TIMEOUT_MS, VIRTUAL_MAC } from '../../agent/base/constants.js';
import type { DiscoveryStats } from '../../agent/discovery.js';

const skip = prerequisites('discovery queue limits', labUnavailable(), cliMissing());
const MAC = [...VIRTUAL_MAC].map((b) => b.toString(16).padStart(2, '0')).join(':');
/** Sends `count` datagrams "p<i>" to every address given (in order, as fast as the socket takes them). */
const SENDER = `const [port, count, ...dsts] = process.argv.slice(1); const dgram = require('dgram');
const s4 = dgram.createSocket('udp4'), s6 = dgram.createSocket('udp6'); let left = dsts.length * count;
for (const d of dsts) for (let i = 0; i < +count; i++) (d.includes(':') ? s6 : s4).send('p' + i, +port, d, () => { if (--left === 0) { s4.close(); s6.close(); } });`;
/** Prints every datagram it gets on [::]:port, one per line. */
const RECEIVER = `const s = require('dgram').createSocket({ type: 'udp6' }); s.on('message', (m) => console.log(String(m)));
s.bind(+process.argv[1], '::', () => console.log('bound'));`;

const disc = (s: AgentStatus): DiscoveryStats => s.overlay!['discovery'] as DiscoveryStats;
const delta = (a: AgentStatus, b: AgentStatus, k: keyof DiscoveryStats): number => disc(b)[k] - disc(a)[k];
const settled = (d: DiscoveryStats): number => d.found + d.notFound + d.timedOut + d.wrongOwner;

describe('discovery queue limits on the real packet path', { skip, timeout: 90_000 }, () => {
  let lab: Lab;
  const agents = new Map<string, TestAgent>();
  const A = (h: string) => agents.get(h)!;
  let receiver: LabProcess | undefined;
  const evidence = () => '\n' + logTails([...agents.values()], 20);

  before(async () => {
    lab = await Lab.create({ hosts: ['pub', 'a', 'b'] });
    for (const h of lab.hosts) agents.set(h, await createAgent(lab, h));
    startOverlayAgent(lab, A('pub'), []);
    await waitOverlayReady(lab, A('pub'));
    for (const h of ['a', 'b']) startOverlayAgent(lab, A(h), [A('pub')]);
    await Promise.all(['a', 'b'].map((h) => waitOverlayReady(lab, A(h))));
    receiver = lab.spawn('b', [process.execPath, '-e', RECEIVER, '7001']);
    await receiver.waitForOutput(/bound/);
  });
  after(async () => {
    if (receiver) await lab.stopProcess(receiver);
    await Promise.all([...agents.values()].map((a) => stopAgent(lab, a)));
    await lab?.destroy();
  });

  /** a's host drops what the underlay brings it (UDP): its lookups' RPCs get no answer until unblocked. */
  const deafen = (on: boolean) => lab.exec('a', ['iptables', '-w', on ? '-I' : '-D', 'INPUT', '-i', lab.uplink, '-p', 'udp', '-j', 'DROP']);
  /** Neighbour entries for the addresses, so the kernel hands every packet to the TAP at once (no ARP queue). */
  const neighbours = (addrs: string[]) => lab.exec('a', ['ip', '-batch', '-'], {
    input: addrs.map((x) => `neigh replace ${x} lladdr ${MAC} dev ${TAP_NAME} nud permanent`).join('\n') + '\n',
  });
  const send = (port: number, count: number, dsts: string[]) => lab.exec('a', [process.execPath, '-e', SENDER, String(port), String(count), ...dsts]);
  /** Capture ICMP on a's TAP; stop() returns the overlay addresses the unreachables quote, in arrival order. */
  async function captureUnreachables(name: string): Promise<{ stop(): Promise<string[]> }> {
    const cap = join(lab.dir, `${name}.pcap`);
    // A short snap length: with -s 0, a burst of answers overflows the capture's ring and some go missing.
    const dump = lab.spawn('a', ['tcpdump', '-i', TAP_NAME, '-n', '-U', '--immediate-mode', '-s', '128', '-B', '4096', '-w', cap, 'icmp']);
    await dump.waitForOutput(/listening on/);
    return {
      async stop() {
        await new Promise((r) => setTimeout(r, 300));
        await lab.stopProcess(dump, { signal: 'SIGINT' });
        assert.match(dump.stderr, /^0 packets dropped by kernel$/m, `the capture lost packets: ${dump.stderr}`);
        const r = await lab.exec('a', ['tcpdump', '-r', cap, '-nn']);
        return [...r.stdout.matchAll(/ICMP host (\S+) unreachable/g)].map((m) => m[1]!);
      },
    };
  }
  /** Until every lookup a started has ended; returns the status then. */
  const lookupsDone = (from: AgentStatus, lookups: number) => waitFor(async () => {
    const s = await agentStatus(lab, A('a'));
    return delta(from, s, 'lookups') === lookups && settled(disc(s)) - settled(disc(from)) === lookups ? s : undefined;
  }, LOOKUP_TIMEOUT_MS + 5_000, { what: `${lookups} lookups in a to end`, intervalMs: 200 });

  it(`20 packets to an address nobody holds: ${LOOKUP_QUEUE_PER_DEST} queued and answered with ICMP unreachable when the lookup fails, 4 refused and counted`, async () => {
    const dst = '100.100.7.1';
    await neighbours([dst]);
    const icmp = await captureUnreachables('per-dest-unknown');
    const s0 = await agentStatus(lab, A('a'));
    await deafen(true);
    try {
      await send(9, 20, [dst]);
      const s1 = await lookupsDone(s0, 1);
      const quoted = await icmp.stop();
      assert.equal(delta(s0, s1, 'queued'), LOOKUP_QUEUE_PER_DEST, JSON.stringify(disc(s1)));
      assert.equal(delta(s0, s1, 'queueDropped'), 20 - LOOKUP_QUEUE_PER_DEST, JSON.stringify(disc(s1)));
      assert.equal(delta(s0, s1, 'notFound') + delta(s0, s1, 'timedOut'), 1, JSON.stringify(disc(s1)));
      assert.equal(counter(s1, 'inside', 'lookedUp') - counter(s0, 'inside', 'lookedUp'), 20, JSON.stringify(s1.counters.inside));
      // Every queued packet got its answer, the refused ones none.
      assert.deepEqual(quoted, Array(LOOKUP_QUEUE_PER_DEST).fill(dst), `unreachables quoting ${quoted.join(' ')}`);
    } finally {
      await deafen(false);
    }
  });

  it(`20 packets to a peer's IPv6 before it is known: the first ${LOOKUP_QUEUE_PER_DEST} are delivered once the lookup finds it, 4 refused and counted`, async () => {
    const dst = A('b').id.ipv6;
    await neighbours([dst]);
    const s0 = await agentStatus(lab, A('a'));
    assert.ok(!s0.peers.some((p) => p.publicKey === A('b').id.publicKey), 'a already knows b: the burst would not be looked up');
    const got0 = receiver!.stdout.split('\n').filter((l) => /^p\d+$/.test(l)).length;
    await deafen(true);
    try {
      await send(7001, 20, [dst]);
      await new Promise((r) => setTimeout(r, 200));
    } finally {
      await deafen(false);
    }
    const s1 = await lookupsDone(s0, 1);
    assert.equal(delta(s0, s1, 'found'), 1, `the lookup of b failed: ${JSON.stringify(disc(s1))}${evidence()}`);
    assert.equal(delta(s0, s1, 'queued'), LOOKUP_QUEUE_PER_DEST, JSON.stringify(disc(s1)));
    assert.equal(delta(s0, s1, 'queueDropped'), 20 - LOOKUP_QUEUE_PER_DEST, JSON.stringify(disc(s1)));
    const lines = () => receiver!.stdout.split('\n').filter((l) => /^p\d+$/.test(l)).slice(got0);
    await waitFor(() => lines().length >= LOOKUP_QUEUE_PER_DEST, 10_000, { what: `b to receive ${LOOKUP_QUEUE_PER_DEST} datagrams (got ${lines().length})` })
      .catch((e: Error) => { throw new Error(`${e.message}${evidence()}`); });
    await new Promise((r) => setTimeout(r, 500)); // nothing more may come
    assert.deepEqual(lines(), Array.from({ length: LOOKUP_QUEUE_PER_DEST }, (_, i) => `p${i}`), 'b got the first 16 of the burst, in order, and no more');
  });

  it(`${LOOKUP_MAX_PENDING + 6} new destinations at once: ${LOOKUP_MAX_PENDING} looked up and answered when they fail, the 6 beyond refused at once with ICMP unreachable and counted busy`, async () => {
    const n = LOOKUP_MAX_PENDING + 6;
    const dsts = Array.from({ length: n }, (_, i) => `100.101.${i >> 8}.${(i & 0xff) + 1}`);
    await neighbours(dsts);
    const icmp = await captureUnreachables('pending-limit');
    const s0 = await agentStatus(lab, A('a'));
    await deafen(true);
    try {
      await send(9, 1, dsts);
      const s1 = await lookupsDone(s0, LOOKUP_MAX_PENDING);
      const quoted = await icmp.stop();
      assert.equal(delta(s0, s1, 'busy'), 6, JSON.stringify(disc(s1)));
      assert.equal(delta(s0, s1, 'queued'), LOOKUP_MAX_PENDING, JSON.stringify(disc(s1)));
      assert.equal(delta(s0, s1, 'queueDropped'), 0, JSON.stringify(disc(s1)));
      // Inside handed the 64 to the lookup; it counts every unreachable it wrote (6 at once, 64 later) as noPeer.
      assert.equal(counter(s1, 'inside', 'lookedUp') - counter(s0, 'inside', 'lookedUp'), LOOKUP_MAX_PENDING, JSON.stringify(s1.counters.inside));
      assert.equal(counter(s1, 'inside', 'noPeer') - counter(s0, 'inside', 'noPeer'), n, JSON.stringify(s1.counters.inside));
      // Every packet got exactly one answer: the refused (last 6 sent) at once, before any lookup ended.
      assert.deepEqual([...quoted].sort(), [...dsts].sort(), `unreachables quoting ${quoted.join(' ')}; tap ${JSON.stringify(s1.counters.tap)} then ${JSON.stringify((await agentStatus(lab, A('a'))).counters.tap)}`);
      assert.deepEqual(new Set(quoted.slice(0, 6)), new Set(dsts.slice(-6)), `the first answers were not the refused destinations: ${quoted.join(' ')}`);
    } finally {
      await deafen(false);
    }
  });
});
