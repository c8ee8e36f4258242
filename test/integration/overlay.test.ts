// Reaching any peer by its identifier alone: real agents in network namespaces that know nothing but a
// bootstrap address (no --peer anywhere) find each other through the overlay, by overlay IPv4/IPv6 address,
// NodeID and registered name; IPv4 collisions are settled first-come; forged, stale and taken records sent
// by a hostile member (overlay-forger.ts) are refused by the real agents; losing the bootstrap loses nothing.
//
// Hosts h0..h5 run agents (h0 starts the overlay, h1..h4 join through it, h5 comes later through h2 with a
// key whose attempt-0 IPv4 address collides with h4's); "mallory" runs the forger.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { formatIpv4, ipv4FromNodeId } from '../../agent/idloc/addresses.js';
import { Lab } from './lab.js';
import {
  AGENT_PORT, TAP_NAME, agentStatus, canonicalIpv6, cliMissing, createAgent, createAgentWithKey, findIpv4Collisions, labUnavailable,
  logTails, registerIn, resolveIn, startOverlayAgent, stopAgent, waitOverlayReady,
  type AgentStatus, type KeyPairHex, type PeerStatus, type ResolveAnswer, type TestAgent,
} from './agents.js';
import { prerequisites } from './prerequisites.js';

const FORGER = fileURLToPath(new URL('./overlay-forger.js', import.meta.url));
const HOSTS = ['h0', 'h1', 'h2', 'h3', 'h4', 'h5', 'mallory'] as const;
/** Never contacted during the all-pairs pings: h1 -> h2 checks the first packet, h3 -> h4 pings after h0 is gone. */
const FIRST_PACKET_PAIR = ['h1', 'h2'] as const;
const LATE_PAIR = ['h3', 'h4'] as const;
const NAME = 'alice';
const FORGER_NAME = 'forger-target';

const skip = prerequisites('overlay', labUnavailable(), cliMissing());
const hexId = (hex: string) => Uint8Array.from(Buffer.from(hex, 'hex'));
const reserved = (a: string, b: string) =>
  [FIRST_PACKET_PAIR, LATE_PAIR].some(([x, y]) => (a === x && b === y) || (a === y && b === x));

describe('overlay: reach any peer by its identifier alone', { skip, timeout: 180_000 }, () => {
  let lab: Lab;
  const agents = new Map<string, TestAgent>();
  /** Claimed overlay addresses (status identity), as the others must use them. */
  const claimed = new Map<string, { ipv4: string; ipv6: string }>();
  let collide: [KeyPairHex, KeyPairHex];
  let forgerPair: [KeyPairHex, KeyPairHex];
  const A = (h: string) => agents.get(h)!;
  const running = () => [...agents.values()].filter((a) => a.proc?.running);
  const endpoint = (h: string) => `${lab.address(h)}:${AGENT_PORT}`;
  const status = (h: string) => agentStatus(lab, A(h));
  const peerOf = (s: AgentStatus, h: string): PeerStatus | undefined => s.peers.find((p) => p.publicKey === A(h).id.publicKey);
  const evidence = () => '\n' + logTails(running(), 30);

  before(async () => {
    const t0 = Date.now();
    [collide, forgerPair] = findIpv4Collisions(2) as [[KeyPairHex, KeyPairHex], [KeyPairHex, KeyPairHex]];
    const searchMs = Date.now() - t0;
    lab = await Lab.create({ hosts: [...HOSTS] });
    for (const h of ['h0', 'h1', 'h2', 'h3']) agents.set(h, await createAgent(lab, h));
    // h4 gets one key of a colliding pair now (it claims the address first, in step 1); h5 the other.
    agents.set('h4', await createAgentWithKey(lab, 'h4', collide[0].privateKey, collide[0].publicKey));
    agents.set('h5', await createAgentWithKey(lab, 'h5', collide[1].privateKey, collide[1].publicKey));
    process.stderr.write(`# overlay.test: IPv4 collision search ${searchMs} ms; lab in ${lab.dir}\n`);
  });

  after(async () => {
    await Promise.all([...agents.values()].map((a) => (lab ? stopAgent(lab, a) : undefined)));
    await lab?.destroy();
  });

  it('1. h0 starts the overlay, h1..h4 join with --bootstrap only and claim their IPv4 addresses', async () => {
    assert.equal(A('h4').id.ipv4, A('h5').id.ipv4, 'the h4/h5 keys collide at attempt 0');
    startOverlayAgent(lab, A('h0'), []);
    const s0 = await waitOverlayReady(lab, A('h0'));
    const h14 = ['h1', 'h2', 'h3', 'h4'];
    for (const h of h14) startOverlayAgent(lab, A(h), [A('h0')]);
    const sts = await Promise.all(h14.map((h) => waitOverlayReady(lab, A(h)))).catch((e: Error) => {
      throw new Error(e.message + evidence());
    });
    for (const [h, s] of [['h0', s0] as const, ...h14.map((h, i) => [h, sts[i]!] as const)]) {
      claimed.set(h, { ipv4: s.identity.ipv4, ipv6: s.identity.ipv6 });
    }
    // Statuses again now that everyone is in: routing tables have filled in the meantime.
    const hosts = ['h0', ...h14];
    const all = await Promise.all(hosts.map(status));
    for (const [i, s] of all.entries()) {
      const h = hosts[i]!;
      const o = s.overlay!;
      assert.ok(o.joined && o.ipv4Claimed, `${h}: ${JSON.stringify(o)}`);
      assert.equal(s.identity.ipv4, claimed.get(h)!.ipv4, `${h}'s claimed address stayed put`);
      assert.deepEqual(o.bootstraps, h === 'h0' ? [] : [endpoint('h0')], `${h} bootstraps`);
      assert.ok(o.routingTableSize >= 1, `${h} routing table: ${JSON.stringify(o)}`);
      assert.ok(o.ownRecords >= 2, `${h} owns a locator and an IPv4 claim: ${JSON.stringify(o)}`);
      assert.equal(canonicalIpv6(s.identity.ipv6), canonicalIpv6(A(h).id.ipv6), `${h} IPv6 is derived from the key`);
      // No collision among h0..h4 (h5 is not running yet): everyone keeps its attempt-0 address.
      assert.equal(s.identity.ipv4, A(h).id.ipv4, `${h} claimed its attempt-0 IPv4`);
      assert.equal(s.peers.filter((p) => p.source === 'static').length, 0, `${h} has no static peers`);
    }
    assert.equal(all[0]!.overlay!.routingTableSize, 4, `the bootstrap knows all four: ${JSON.stringify(all[0]!.overlay)}`);
  });

  it('2. every agent pings every other over overlay IPv4 and IPv6, knowing only the address', async () => {
    const hosts = ['h0', 'h1', 'h2', 'h3', 'h4'];
    const failed: string[] = [];
    // One source host at a time, its pings concurrent; -c 2 lets the first packet be spent on the lookup
    // (the first-packet behaviour is checked on its own below).
    for (const src of hosts) {
      const results = await Promise.all(hosts.filter((d) => d !== src && !reserved(src, d)).flatMap((dst) => [
        lab.exec(src, ['ping', '-c', '2', '-i', '0.2', '-W', '2', claimed.get(dst)!.ipv4], { allowFail: true }).then((r) => ({ dst, fam: 'v4', r })),
        lab.exec(src, ['ping', '-6', '-c', '2', '-i', '0.2', '-W', '2', claimed.get(dst)!.ipv6], { allowFail: true }).then((r) => ({ dst, fam: 'v6', r })),
      ]));
      for (const x of results) if (x.r.code !== 0) failed.push(`${src} -> ${x.dst} ${x.fam}: ${(x.r.stdout + x.r.stderr).trim()}`);
    }
    assert.equal(failed.length, 0, failed.join('\n') + evidence());
    for (const src of hosts) {
      const s = await status(src);
      for (const dst of hosts.filter((d) => d !== src)) {
        const p = peerOf(s, dst);
        if (reserved(src, dst)) {
          assert.equal(p, undefined, `${src} must not know ${dst} yet (reserved pair): ${JSON.stringify(p)}`);
          continue;
        }
        assert.ok(p, `${src} status lacks peer ${dst}: ${JSON.stringify(s.peers)}`);
        const what = `${src}'s view of ${dst}: ${JSON.stringify(p)}`;
        assert.equal(p.source, 'overlay', what);
        assert.equal(p.ipv4, claimed.get(dst)!.ipv4, what);
        assert.equal(canonicalIpv6(p.ipv6), canonicalIpv6(claimed.get(dst)!.ipv6), what);
        assert.equal(p.endpoint, endpoint(dst), what);
        assert.ok(p.rxBytes > 0 && p.txBytes > 0, what);
      }
      const o = s.overlay!;
      assert.ok(o.lookups.count > 0, `${src} counted its lookups: ${JSON.stringify(o.lookups)}`);
    }
  });

  it('2b. the first packet to a never-contacted peer is queued during lookup and handshake, then delivered', async () => {
    const [src, dst] = FIRST_PACKET_PAIR;
    const r = await lab.exec(src, ['ping', '-c', '1', '-W', '3', claimed.get(dst)!.ipv4], { allowFail: true });
    assert.equal(r.code, 0, `${src} -> ${dst}: a single ping did not come back:\n${r.stdout}${r.stderr}` + evidence());
    const [ss, sd] = await Promise.all([status(src), status(dst)]);
    assert.equal(peerOf(ss, dst)?.source, 'overlay', JSON.stringify(ss.peers));
    assert.equal(peerOf(sd, src)?.source, 'overlay', `${dst} accepted ${src} as an overlay peer: ${JSON.stringify(sd.peers)}`);
  });

  it('3. register a name, resolve by name, NodeID, IPv4 and IPv6; a taken name and an unknown one fail', async () => {
    const h1 = A('h1');
    const reg = await registerIn(lab, h1, NAME);
    assert.equal(reg.code, 0, reg.stderr + evidence());
    assert.equal(reg.stdout.trim(), `${NAME} -> ${h1.id.nodeId}`);

    const expectH1 = (x: { r: { code: number | null; stderr: string }; answer?: ResolveAnswer }, what: string) => {
      assert.equal(x.r.code, 0, `${what}: ${x.r.stderr}`);
      const a = x.answer!;
      assert.equal(a.nodeId, h1.id.nodeId, what);
      assert.equal(a.publicKey, h1.id.publicKey, what);
      assert.equal(a.ipv4, claimed.get('h1')!.ipv4, what);
      assert.equal(canonicalIpv6(a.ipv6), canonicalIpv6(claimed.get('h1')!.ipv6), what);
      assert.ok(a.candidates.some((c) => c.address === lab.address('h1') && c.port === AGENT_PORT), `${what}: ${JSON.stringify(a.candidates)}`);
    };
    const [byName, byId, byV4, byV6, taken, unknown, invalid] = await Promise.all([
      resolveIn(lab, A('h3'), NAME),
      resolveIn(lab, A('h4'), h1.id.nodeId),
      resolveIn(lab, A('h0'), claimed.get('h1')!.ipv4),
      resolveIn(lab, A('h2'), claimed.get('h1')!.ipv6),
      registerIn(lab, A('h2'), NAME),
      resolveIn(lab, A('h3'), 'nobody-here'),
      registerIn(lab, A('h2'), 'Not_A-Name!'),
    ]);
    expectH1(byName, 'resolve by name from h3');
    assert.equal(byName.answer!.query, NAME);
    expectH1(byId, 'resolve by NodeID from h4');
    expectH1(byV4, 'resolve by IPv4 from h0');
    expectH1(byV6, 'resolve by IPv6 from h2');

    assert.equal(taken.code, 1, `second register: ${taken.stdout}${taken.stderr}`);
    assert.equal(taken.stderr.trim(), `idloc-agent: name "${NAME}" is taken by ${h1.id.nodeId}`);
    assert.equal(unknown.r.code, 1, `unknown name: ${unknown.r.stdout}${unknown.r.stderr}`);
    assert.equal(unknown.r.stderr.trim(), 'idloc-agent: nobody-here not found in the overlay');
    assert.equal(invalid.code, 2, `invalid name: ${invalid.stdout}${invalid.stderr}`);
    assert.equal(invalid.stderr.trim().split('\n').length, 1, invalid.stderr);
  });

  it('4. an IPv4 collision: h5 re-derives its address, h4 keeps its own, and h5 is reached at the new one', async () => {
    const [h4, h5] = [A('h4'), A('h5')];
    const attempt0 = h5.id.ipv4;
    const attempt1 = formatIpv4(ipv4FromNodeId(hexId(h5.id.nodeId), 1));
    startOverlayAgent(lab, h5, [A('h2')]);
    const s5 = await waitOverlayReady(lab, h5, 25_000).catch((e: Error) => { throw new Error(e.message + evidence()); });
    claimed.set('h5', { ipv4: s5.identity.ipv4, ipv6: s5.identity.ipv6 });
    assert.deepEqual(s5.overlay!.bootstraps, [endpoint('h2')]);
    assert.notEqual(s5.identity.ipv4, attempt0, 'h5 must not keep the address h4 claimed first');
    assert.equal(s5.identity.ipv4, attempt1, 'h5 re-derived with attempt 1');
    const s4 = await status('h4');
    assert.equal(s4.identity.ipv4, attempt0, 'h4 kept its address');
    const tap5 = await lab.exec('h5', ['ip', '-4', '-o', 'addr', 'show', 'dev', TAP_NAME]);
    assert.ok(!tap5.stdout.includes(`${attempt0}/`), `h5's TAP still carries the taken address: ${tap5.stdout}`);

    // h1 and h3 ping the claimed address: the packets must land at h5, not at h4 (whose TAP sees nothing).
    const rxTap = async (h: string) => Number((await lab.exec(h, ['cat', `/sys/class/net/${TAP_NAME}/statistics/rx_packets`])).stdout.trim());
    const tap4Before = await rxTap('h4');
    const pings = await Promise.all(['h1', 'h3'].map((src) =>
      lab.exec(src, ['ping', '-c', '3', '-i', '0.2', '-W', '2', s5.identity.ipv4], { allowFail: true }).then((r) => ({ src, r }))));
    for (const { src, r } of pings) assert.equal(r.code, 0, `${src} -> h5 ${s5.identity.ipv4}: ${r.stdout}${r.stderr}` + evidence());
    const tap4After = await rxTap('h4');
    assert.equal(tap4After - tap4Before, 0, "h4's TAP received packets while h1 and h3 pinged h5's address");
    const after5 = await status('h5');
    for (const src of ['h1', 'h3']) {
      const p = peerOf(after5, src);
      assert.ok(p && p.rxBytes > 0, `h5 shows ${src} as a peer that sent to it: ${JSON.stringify(after5.peers)}`);
      assert.equal(p.source, 'overlay');
      const back = peerOf(await status(src), 'h5');
      assert.equal(back?.ipv4, s5.identity.ipv4, `${src}'s view of h5 carries the claimed IPv4: ${JSON.stringify(back)}`);
    }
    assert.equal(peerOf(after5, 'h4'), undefined, 'h5 never talked to h4');
    assert.equal(h4.id.ipv4, attempt0);
  });

  it('5. forged, stale and taken records from a hostile overlay member are refused by the real agents', async (t) => {
    const h1 = A('h1');
    const reg = await registerIn(lab, h1, FORGER_NAME, true);
    assert.equal(reg.code, 0, reg.stderr + evidence());
    assert.deepEqual(JSON.parse(reg.stdout), { name: FORGER_NAME, nodeId: h1.id.nodeId });

    const agentHosts = ['h0', 'h1', 'h2', 'h3', 'h4', 'h5'];
    const rejectedSum = (sts: AgentStatus[], re: RegExp) => sts.reduce((n, s) =>
      n + Object.entries(s.overlay?.rejected ?? {}).filter(([k]) => re.test(k)).reduce((m, [, v]) => m + v, 0), 0);
    const before = await Promise.all(agentHosts.map(status));

    const victim = A('h2');
    const r = await lab.exec('mallory', [
      process.execPath, FORGER, '--bootstrap', endpoint('h3'), '--address', lab.address('mallory'), '--port', String(AGENT_PORT),
      '--victim', victim.id.nodeId, '--name', FORGER_NAME, '--claim-a', forgerPair[0].privateKey, '--claim-b', forgerPair[1].privateKey,
    ], { allowFail: true, timeoutMs: 40_000 });
    const line = r.stdout.trim().split('\n').pop() ?? '';
    assert.equal(r.code, 0, `forger failed: ${r.stdout}${r.stderr}` + evidence());
    const f = JSON.parse(line) as {
      joined: { ok: boolean }; routingTableSize: number;
      forged: { targets: string[]; victimFound: boolean; wrongOwner: Record<string, string>; badSignature: Record<string, string> | null };
      stale: { first: Record<string, string>; second: Record<string, string> };
      name: { register: { ok: boolean; reason?: string; holder?: string | null }; store: Record<string, string> };
      ipv4: { first: Record<string, string>; second: Record<string, string> };
    };
    const out = `forger output: ${line}`;
    t.diagnostic(out);
    assert.ok(f.joined.ok, out);
    const eps = agentHosts.map(endpoint).sort();
    // Every real agent is among the k closest of every resource here (k = 20 > 7 nodes) and must answer.
    const expectAll = (got: Record<string, string> | null, want: string, what: string) => {
      assert.ok(got, `${what}: nothing sent. ${out}`);
      assert.deepEqual(Object.keys(got).filter((e) => eps.includes(e)).sort(), eps, `${what}: not sent to every agent. ${out}`);
      for (const e of eps) assert.equal(got[e], want, `${what} at ${e}. ${out}`);
    };
    assert.ok(f.forged.victimFound, `the forger could not even fetch the victim's locator. ${out}`);
    expectAll(f.forged.wrongOwner, 'forged', "(a) victim's locator owned by the forger's key");
    expectAll(f.forged.badSignature, 'forged', "(a) victim's real locator re-pointed, signed by the forger");
    expectAll(f.stale.first, 'stored', '(b) own locator, seq N');
    expectAll(f.stale.second, 'stale', '(b) own locator, seq N-1');
    assert.deepEqual({ ok: f.name.register.ok, reason: f.name.register.reason, holder: f.name.register.holder },
      { ok: false, reason: 'taken', holder: h1.id.nodeId }, `(c) registerName. ${out}`);
    expectAll(f.name.store, 'taken', '(c) direct STORE of a taken name');
    expectAll(f.ipv4.first, 'stored', '(d) IPv4 claim by key A');
    expectAll(f.ipv4.second, 'taken', '(d) IPv4 claim of the same address by key B');

    // The victim still resolves to its real locator, the name to its owner.
    const [byId, byName] = await Promise.all([resolveIn(lab, A('h4'), victim.id.nodeId), resolveIn(lab, A('h5'), FORGER_NAME)]);
    assert.equal(byId.r.code, 0, byId.r.stderr);
    assert.equal(byId.answer!.nodeId, victim.id.nodeId);
    assert.ok(byId.answer!.candidates.some((c) => c.address === lab.address('h2') && c.port === AGENT_PORT), JSON.stringify(byId.answer));
    assert.ok(!byId.answer!.candidates.some((c) => c.address === lab.address('mallory')), `forged candidate served: ${JSON.stringify(byId.answer)}`);
    assert.equal(byName.r.code, 0, byName.r.stderr);
    assert.equal(byName.answer!.nodeId, h1.id.nodeId);

    // And the agents counted what they refused.
    const afterSt = await Promise.all(agentHosts.map(status));
    const count = (m: Record<string, string> | null, v: string) => Object.values(m ?? {}).filter((x) => x === v).length;
    for (const [re, n] of [
      [/forged/, count(f.forged.wrongOwner, 'forged') + count(f.forged.badSignature, 'forged')],
      [/stale/, count(f.stale.second, 'stale')],
      [/taken/, count(f.name.store, 'taken') + count(f.ipv4.second, 'taken')],
    ] as const) {
      const delta = rejectedSum(afterSt, re) - rejectedSum(before, re);
      t.diagnostic(`overlay.rejected ${re}: +${delta} (forger saw ${n})`);
      assert.ok(delta >= n, `overlay.rejected ${re} went up by ${delta}, want >= ${n}: ${JSON.stringify(afterSt.map((s) => s.overlay?.rejected))}`);
    }
  });

  it('6. with the bootstrap stopped, h1..h5 still resolve each other and a new pair meets over IPv6', async () => {
    const exit = await stopAgent(lab, A('h0'));
    assert.ok(exit && !A('h0').proc!.running, 'h0 stopped');
    const rest = ['h1', 'h2', 'h3', 'h4', 'h5'];
    const [src, dst] = LATE_PAIR;
    assert.equal(peerOf(await status(src), dst), undefined, `${src} and ${dst} must not have met yet`);
    const resolves = await Promise.all(rest.flatMap((a) => rest.filter((b) => b !== a).map((b) =>
      resolveIn(lab, A(a), A(b).id.nodeId).then((x) => ({ a, b, x })))));
    const bad = resolves.filter(({ b, x }) => x.r.code !== 0 || x.answer?.nodeId !== A(b).id.nodeId
      || !x.answer.candidates.some((c) => c.address === lab.address(b) && c.port === AGENT_PORT));
    assert.equal(bad.length, 0, bad.map(({ a, b, x }) => `${a} resolve ${b}: exit ${x.r.code} ${x.r.stdout.trim()} ${x.r.stderr.trim()}`).join('\n') + evidence());

    const r = await lab.exec(src, ['ping', '-6', '-c', '3', '-i', '0.3', '-W', '3', claimed.get(dst)!.ipv6], { allowFail: true });
    assert.equal(r.code, 0, `${src} -> ${dst} over IPv6 after the bootstrap left: ${r.stdout}${r.stderr}` + evidence());
    const [ss, sd] = await Promise.all([status(src), status(dst)]);
    assert.equal(peerOf(ss, dst)?.source, 'overlay', JSON.stringify(ss.peers));
    assert.equal(peerOf(sd, src)?.source, 'overlay', JSON.stringify(sd.peers));
  });
});
