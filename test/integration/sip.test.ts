// Unmodified softphones over the overlay, on real agents in network namespaces (sip-lab.ts): sipp runs 20
// calls at 5 calls/s, and baresip calls carry a 440 Hz tone whose decoded audio the callee records, over
// each kind of path an overlay pair can get, by overlay IPv4 and by overlay IPv6:
//   direct            c1 -> c2   both behind cone NATs: ICE, server-reflexive pair
//   birthday-probed   s1 -> c1   random-port symmetric NAT to a cone one: birthday probing
//                     c2 -> s2   the same, the cone side calling
//   TURN              t1 -> t2   both symmetric, both with --turn (coturn on `turn`): the TURN pair
//   peer relay        s1 -> s2   both symmetric, no TURN: relayed through pub, the one public agent
//                     r1 -> r2   cone to symmetric with birthday probing off on both: the same relay
// and, on the direct path: both by a .idloc name that c1's agent answers (--dns; c1's resolv.conf names
// it), an INVITE over 1,300 bytes over TCP (RFC 3261 18.1.1), and a three-party call
// whose answer names a third host's overlay address for the media: the caller's RTP reaches that host,
// which works only because every peer maps an overlay IPv4 to the same host.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab } from './lab.js';
import { coturnMissing, startCoturn, type Coturn } from './coturn.js';
import {
  agentStatus, cliMissing, createAgent, hostPort, logTails, registerIn, startOverlayAgent, stopAgent, waitOverlayReady, waitUntil, type AgentStatus, type TestAgent,
} from './agents.js';
import { labUnavailable, prerequisites } from './prerequisites.js';
import { netnsResolvConf } from './netns-resolv.js';
import { baresipCall, baresipDial, largeInviteScenario, mediaElsewhereScenario, sipMissing, sippCalls } from './sip-lab.js';

const SUITE = 'SIP softphones over the overlay (sipp, baresip)';
const skip = prerequisites(SUITE, labUnavailable(), cliMissing(), coturnMissing(), sipMissing());
const USER = 'idloc', PASS = 'relay-me-please';
/** baresip's payload type for opus when it is the only codec loaded (its first dynamic one). */
const OPUS_PT = 96;

type Peer = AgentStatus['peers'][number];
const PATHS: { name: string; from: string; to: string; is: (v: Peer) => boolean }[] = [
  { name: 'direct', from: 'c1', to: 'c2', is: (v) => v.path === 'direct' && !/birthday/.test(v.pathReason) },
  { name: 'birthday-probed', from: 's1', to: 'c1', is: (v) => v.path === 'direct' && /birthday probing/.test(v.pathReason) },
  // The cone side calls: its Attach may settle for the relay before the sprays land, then move to the
  // direct pair mid-run (calls must survive the switch).
  { name: 'birthday-probed, cone side calling', from: 'c2', to: 's2', is: (v) => v.path === 'direct' },
  { name: 'TURN', from: 't1', to: 't2', is: (v) => v.path === 'relayed' && v.via === 'turn' },
  { name: 'peer relay', from: 's1', to: 's2', is: (v) => v.path === 'relayed' && v.via === 'peer-relay' },
  // The case once seen failing (15 of 20 calls, BYEs retransmitted): a cone host calling a symmetric one
  // through the peer relay, birthday probing off on both so the relay carries the calls throughout.
  { name: 'peer relay, cone to symmetric', from: 'r1', to: 'r2', is: (v) => v.path === 'relayed' && v.via === 'peer-relay' },
];

describe(SUITE, { skip, timeout: 400_000 }, () => {
  let lab: Lab;
  let coturn: Coturn | undefined;
  const agents = new Map<string, TestAgent>();
  const A = (h: string) => agents.get(h)!;
  const addr = new Map<string, { v4: string; v6: string }>();
  const evidence = (hosts: string[]) => '\n' + logTails(hosts.map(A), 25);
  const view = async (from: string, to: string) => (await agentStatus(lab, A(from))).peers.find((p) => p.publicKey === A(to).id.publicKey);

  before(async () => {
    lab = await Lab.create({
      hosts: ['pub', 'turn'],
      natHosts: [
        { name: 'c1', nat: 'cone' }, { name: 'c2', nat: 'cone' }, { name: 's1', nat: 'symmetric' }, { name: 's2', nat: 'symmetric' },
        { name: 't1', nat: 'symmetric' }, { name: 't2', nat: 'symmetric' }, { name: 'r1', nat: 'cone' }, { name: 'r2', nat: 'symmetric' },
      ],
    });
    coturn = await startCoturn(lab, 'turn', { username: USER, password: PASS, realm: 'idloc.test' });
    const turnArg = ['--turn', `turn:${USER}:${PASS}@${hostPort(coturn.endpoint.address, coturn.endpoint.port)}`];
    const hosts = ['pub', 'c1', 'c2', 's1', 's2', 't1', 't2', 'r1', 'r2'];
    for (const h of hosts) agents.set(h, await createAgent(lab, h));
    startOverlayAgent(lab, A('pub'), []);
    await waitOverlayReady(lab, A('pub'));
    for (const h of hosts.slice(1)) startOverlayAgent(lab, A(h), [A('pub')], h.startsWith('t') ? turnArg : h === 'c1' ? ['--dns'] : h.startsWith('r') ? ['--no-port-probing'] : []);
    for (const h of hosts) {
      const st = await waitOverlayReady(lab, A(h));
      addr.set(h, { v4: st.identity.ipv4, v6: st.identity.ipv6 });
    }
    // Each NATed host knows its NAT (else an Attach may offer no srflx, and the first path is a relay).
    for (const h of hosts.slice(1)) {
      await waitUntil(async () => {
        const st = await agentStatus(lab, A(h)) as AgentStatus & { nat: { mapping: string } | null };
        return (st.overlay?.rendezvous?.length ?? 0) > 0 && st.nat !== null && st.nat.mapping !== 'unknown' && (!h.startsWith('t') || st.relay?.relayed);
      }, 30_000, `${h} to know its NAT, keep a rendezvous${h.startsWith('t') ? ' and allocate on coturn' : ''}${evidence([h])}`);
    }
  });

  let removeResolvConf: (() => void) | undefined;
  after(async () => {
    removeResolvConf?.();
    await Promise.all([...agents.values()].map((a) => stopAgent(lab, a)));
    if (coturn) await lab.stopProcess(coturn.proc);
    await lab?.destroy();
  });

  for (const p of PATHS) {
    describe(`${p.name}: ${p.from} -> ${p.to}`, () => {
      it('the path is the one named', async () => {
        // The first packet sets the path up (a relay only after ICE gave up on a direct pair): ask until answered.
        let r = await lab.exec(p.from, ['ping', '-n', '-c', '1', '-W', '3', addr.get(p.to)!.v4], { allowFail: true, timeoutMs: 10_000 });
        for (let i = 0; i < 5 && r.code !== 0; i++) r = await lab.exec(p.from, ['ping', '-n', '-c', '1', '-W', '3', addr.get(p.to)!.v4], { allowFail: true, timeoutMs: 10_000 });
        assert.equal(r.code, 0, `${r.stdout}${evidence([p.from, p.to])}`);
        let v: Peer | undefined;
        await waitUntil(async () => { v = await view(p.from, p.to); return v !== undefined && p.is(v); }, 20_000, `a ${p.name} path`)
          .catch((e: Error) => { throw new Error(`${e.message}: ${JSON.stringify(v)}${evidence([p.from, p.to])}`); });
        process.stderr.write(`# sip ${p.name}: ${v!.path} ${v!.via ?? ''} ${v!.endpoint}: ${v!.pathReason}\n`);
      });
      for (const family of ['v4', 'v6'] as const) {
        it(`sipp: 20 calls at 5 calls/s over overlay IP${family}, all successful`, async () => {
          const s = await sippCalls(lab, p.from, addr.get(p.from)![family], p.to, addr.get(p.to)![family]);
          process.stderr.write(`# sip ${p.name} ${family} sipp: ${s.successful} successful, ${s.failed} failed, ${s.retransmissions} retransmissions\n`);
          assert.deepEqual([s.code, s.successful, s.failed], [0, 20, 0], `${s.output}${evidence([p.from, p.to])}`);
          assert.ok(p.is((await view(p.from, p.to))!), 'still the same kind of path');
        });
        it(`baresip: a call over overlay IP${family} carries the tone to the callee`, async () => {
          const t = await baresipCall(lab, { host: p.from, address: addr.get(p.from)![family] }, { host: p.to, address: addr.get(p.to)![family] }, addr.get(p.to)![family]);
          process.stderr.write(`# sip ${p.name} ${family} baresip: callee decoded ${t.seconds.toFixed(1)} s, RMS ${t.rms.toFixed(0)}, tone in ${(t.toneShare * 100).toFixed(0)}% of 20 ms frames\n`);
          assert.ok(t.rms > 1_000 && t.toneShare > 0.5, `the callee decoded silence: ${JSON.stringify(t)}${evidence([p.from, p.to])}`);
        });
      }
    });
  }

  it('by a .idloc name through --dns: sipp and baresip call carol.idloc (c2) from c1', async () => {
    const reg = await registerIn(lab, A('c2'), 'carol');
    assert.equal(reg.code, 0, reg.stderr);
    removeResolvConf = netnsResolvConf(lab.ns('c1'), `nameserver ${addr.get('c1')!.v4}\noptions timeout:2 attempts:2\n`);
    // sipp takes the name's AAAA (its first answer) and needs a local address of that family.
    const s = await sippCalls(lab, 'c1', addr.get('c1')!.v6, 'c2', addr.get('c2')!.v6, { remote: 'carol.idloc' });
    process.stderr.write(`# sip carol.idloc sipp: ${s.successful} successful, ${s.failed} failed\n`);
    assert.deepEqual([s.code, s.successful, s.failed], [0, 20, 0], s.output + evidence(['c1', 'c2']));
    const t = await baresipCall(lab, { host: 'c1', address: addr.get('c1')!.v4 }, { host: 'c2', address: addr.get('c2')!.v4 }, 'carol.idloc');
    process.stderr.write(`# sip carol.idloc baresip: callee decoded ${t.seconds.toFixed(1)} s, RMS ${t.rms.toFixed(0)}, tone in ${(t.toneShare * 100).toFixed(0)}% of frames\n`);
    assert.ok(t.rms > 1_000 && t.toneShare > 0.5, `the callee decoded silence: ${JSON.stringify(t)}`);
  });

  it('an INVITE over 1,300 bytes goes over TCP, and 5 such calls succeed over the overlay (direct path)', async () => {
    const scenario = largeInviteScenario(lab.dir, 1500);
    const s = await sippCalls(lab, 'c1', addr.get('c1')!.v4, 'c2', addr.get('c2')!.v4, { calls: 5, rate: 5, transport: 't1', scenario });
    process.stderr.write(`# sip large INVITE over TCP: ${s.successful} successful, ${s.failed} failed\n`);
    assert.deepEqual([s.code, s.successful, s.failed], [0, 5, 0], s.output);
  });

  it('three parties: B\'s answer names C\'s overlay IPv4 for the media, and A\'s RTP reaches C', async () => {
    const c = addr.get('s1')!.v4, port = 40_000;
    const counter = lab.spawn('s1', [process.execPath, '-e', [
      'const s = require("node:dgram").createSocket("udp4"); let n = 0;',
      `s.on("message", (m, r) => { if (r.address === ${JSON.stringify(addr.get('c1')!.v4)}) console.log("rtp", ++n, m.length); });`,
      `s.bind(${port}, ${JSON.stringify(c)});`,
    ].join(' ')], { logFile: join(lab.dir, 'media-c.log') });
    try {
      const uas = mediaElsewhereScenario(lab.dir, c, port, OPUS_PT);
      const sipp = lab.spawn('c2', ['sipp', '-sf', uas, '-i', addr.get('c2')!.v4, '-p', '5060', '-nostdin', '-timeout', '30s'], { logFile: join(lab.dir, 'uas-3p.log') });
      try {
        await baresipDial(lab, { host: 'c1', address: addr.get('c1')!.v4 }, addr.get('c2')!.v4, 4);
      } finally {
        await lab.stopProcess(sipp);
      }
      const lines = readFileSync(join(lab.dir, 'media-c.log'), 'utf8').split('\n').filter((l) => l.startsWith('rtp '));
      process.stderr.write(`# sip three parties: C (${c}) received ${lines.length} RTP datagrams from A\n`);
      assert.ok(lines.length >= 50, `C got ${lines.length} RTP datagrams from A${evidence(['c1', 's1'])}`);
    } finally {
      await lab.stopProcess(counter);
    }
  });
});
