// `idloc-agent ping PEER` on real agents in network namespaces: pings inside the tunnel, each pong printed
// with the path it came back on, by name, NodeID and overlay address, to a peer never contacted before (the
// ping itself looks it up and sets the path up).
//   pub public (the one overlay member that relays); c behind a cone NAT (registers "bob"); s1, s2 behind
//   random-port symmetric NATs: s1 -> bob goes direct by birthday probing; s1 -> s2 can only be relayed
//   through pub, so `--until-direct` exits 1 having printed "via peer relay". s1 serves --metrics, and a
//   scrape of it shows the peers with their paths, the handshakes and the bytes.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Lab } from './lab.js';
import { cliMissing, createAgent, logTails, registerIn, runCli, startOverlayAgent, stopAgent, waitOverlayReady, type TestAgent } from './agents.js';
import { labUnavailable, prerequisites } from './prerequisites.js';
import type { PingReply } from '../../agent/ping.js';

const SUITE = 'idloc-agent ping: in-tunnel pings that say the path';
const skip = prerequisites(SUITE, labUnavailable(), cliMissing());

describe(SUITE, { skip, timeout: 120_000 }, () => {
  let lab: Lab;
  const agents = new Map<string, TestAgent>();
  const A = (h: string) => agents.get(h)!;
  const ping = (from: string, args: string[]) => runCli(lab, from, ['ping', ...args, '--state-dir', A(from).stateDir], { allowFail: true, timeoutMs: 60_000 });
  const lines = (out: string) => out.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as PingReply);

  before(async () => {
    lab = await Lab.create({ hosts: ['pub'], natHosts: [{ name: 'c', nat: 'cone' }, { name: 's1', nat: 'symmetric' }, { name: 's2', nat: 'symmetric' }] });
    for (const h of ['pub', 'c', 's1', 's2']) agents.set(h, await createAgent(lab, h));
    startOverlayAgent(lab, A('pub'), []);
    await waitOverlayReady(lab, A('pub'));
    for (const h of ['c', 's1', 's2']) startOverlayAgent(lab, A(h), [A('pub')], h === 's1' ? ['--metrics', '127.0.0.1:9105'] : []);
    await Promise.all(['c', 's1', 's2'].map((h) => waitOverlayReady(lab, A(h))));
    const r = await registerIn(lab, A('c'), 'bob');
    assert.equal(r.code, 0, r.stderr);
  });

  after(async () => {
    await Promise.all([...agents.values()].map((a) => stopAgent(lab, a)));
    await lab?.destroy();
  });

  it('by name, to a peer never contacted: pongs, and --until-direct stops at the first direct one', async () => {
    const r = await ping('s1', ['bob', '-c', '15', '--until-direct', '--json']);
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}\n${logTails([A('s1'), A('c')], 30)}`);
    const got = lines(r.stdout);
    const last = got.at(-1)!;
    assert.equal(last.path, 'direct', r.stdout);
    assert.equal(last.name, 'bob');
    assert.equal(last.nodeId, A('c').id.nodeId);
    assert.equal(last.endpoint, `${lab.nat('c').publicAddress}:4500`, 'the peer\'s public address, not a probe socket\'s');
    assert.ok(last.rttMs !== null && last.rttMs > 0 && last.rttMs < 1_000, r.stdout);
    assert.ok(got.slice(0, -1).every((g) => g.path !== 'direct'), 'it stopped at the first direct pong');
    const text = await ping('s1', ['bob', '-c', '2']);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, new RegExp(`^pong from bob \\(${A('c').id.ipv4.replace(/\./g, '\\.')}\\) via ${lab.nat('c').publicAddress.replace(/\./g, '\\.')}:4500 in [\\d.]+ ms$`, 'm'));
    process.stderr.write(`# ping s1 -> bob: ${got.length} ping(s) to the first direct pong; then: ${text.stdout.trim().split('\n')[0]}\n`);
  });

  it('by NodeID and by overlay IPv6 to a peer only a relay can reach: "via peer relay", and --until-direct exits 1', async () => {
    const r = await ping('s1', [A('s2').id.nodeId, '-c', '3', '--until-direct']);
    assert.equal(r.code, 1, `${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /^pong from [0-9a-f]{12} \(100\.[\d.]+\) via peer relay [\d.]+:4500 in [\d.]+ ms$/m, r.stdout);
    assert.match(r.stderr, /no direct path/);
    const v6 = await ping('s1', [A('s2').id.ipv6, '-c', '1', '--json']);
    assert.equal(v6.code, 0, v6.stderr);
    assert.equal(lines(v6.stdout)[0]!.via, 'peer-relay');
    process.stderr.write(`# ping s1 -> s2: ${r.stdout.trim().split('\n')[0]}\n`);
  });

  it('an unknown name, a non-overlay address and bad flags: one line, non-zero exit', async () => {
    const none = await ping('s1', ['nobody-here', '-c', '1']);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /^idloc-agent: nobody-here not found in the overlay\n$/);
    const lan = await ping('s1', ['10.1.2.3', '-c', '1']);
    assert.equal(lan.code, 1);
    assert.match(lan.stderr, /not an overlay address/);
    const bad = await ping('s1', ['bob', '-c', 'many']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^idloc-agent: --count: "many" is not a whole number/);
  });

  it('--metrics: a scrape in s1 shows each peer with its path, the handshakes and the bytes', async () => {
    const r = await lab.exec('s1', [process.execPath, '-e', 'fetch("http://127.0.0.1:9105/metrics").then(async (r) => { process.stdout.write(String(r.status) + "\\n" + await r.text()); })'], { timeoutMs: 15_000 });
    const [code, ...body] = r.stdout.split('\n');
    assert.equal(code, '200', r.stdout + r.stderr);
    const text = body.join('\n');
    const value = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
    assert.match(text, new RegExp(`^idloc_peer_info\\{node_id="${A('c').id.nodeId}",ipv4="[\\d.]+",path="direct",via="none"\\} 1$`, 'm'), text);
    assert.match(text, new RegExp(`^idloc_peer_info\\{node_id="${A('s2').id.nodeId}",ipv4="[\\d.]+",path="relayed",via="peer-relay"\\} 1$`, 'm'), text);
    assert.ok(value(/^idloc_handshakes_total\{event="completed"\} (\d+)$/m) >= 2, text);
    assert.ok(value(new RegExp(`^idloc_peer_transmit_bytes_total\\{node_id="${A('s2').id.nodeId}"\\} (\\d+)$`, 'm')) > 0, text);
    assert.ok(value(/^idloc_relayed_bytes_total\{via="peer-relay"\} (\d+)$/m) > 0, text);
    assert.ok(value(/^idloc_overlay_lookups_total (\d+)$/m) > 0, text);
  });
});
