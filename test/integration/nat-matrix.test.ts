// The NAT matrix: two agents behind each kind of NAT (none, cone, symmetric, CGNAT), every one with
// --bootstrap <a public member> and --turn <coturn> (so a relayed path always exists), and every one of
// the 28 pairs: ping both ways by overlay IPv4, one ssh command one way, and the path each side's
// `status --json` reports. Where a direct path can exist it must be 'direct'; where it cannot, 'relayed'.
//
// What can be direct, as measured in this lab at the kernel level (Linux conntrack filters
// address-and-port-dependently everywhere): a public host ('none') with anything; cone-cone, cone-CGNAT,
// CGNAT-CGNAT by ICE; symmetric-cone and symmetric-CGNAT by birthday probing (the symmetric side's checks
// leave from a fresh random port the other NAT was never told about, so it opens 256 sockets and the
// other side sprays 2048 random ports until one lands: a miss has probability e^-8 per pair). Not
// symmetric-symmetric: neither side's ports can be found.
//
// The matrix runs three times: routers that drop unsolicited inbound packets (home routers, the lab's
// default), the same on the WAN switch (40 ms RTT, 2 ms jitter, 1% loss per crossing between sites; same
// expectations), and bare MASQUERADE routers (dropUnsolicited: false) on the LAN. On a bare router a peer's early packet can leave a
// conntrack entry that makes the host's own later packet to that peer leave from another port (the NAT
// then acts symmetric for that pair), so a cone pair may fail to punch: there every pair must ping and have
// a path, 'relayed' is asserted where no direct path can exist, 'direct' only where it held in every run
// (bareDirectReliable); the rest is reported in the table.
// Finally blk, a cone host whose UDP is blocked to everything but the relay's address, reaches a cone
// peer, relayed, whichever side starts (blk's own Attach goes through its one reachable rendezvous, the
// agent on the relay host, on to the peer's). It joins the overlay through that agent; the agent is in
// every run, so the labs are the same; blk's tests run on the LAN drop run only.
//
// Pairs run 4 at a time, no host in two pairs at once (a round-robin schedule: 7 rounds of 4, the first
// host of each pair sends first), so a result belongs to one pair. Results are collected first and
// printed as a table (stderr); then one test per pair asserts on them, each failure (marked "AGENT
// MISBEHAVES?") with the pings, both sides' status (peer entry, NAT verdict, relay, ICE counters) and
// both agents' last log lines.
import { ICE_DIRECT_RETRY_MS } from '../../agent/base/constants.js';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { INTERNET_PREFIX, Lab, type ExecResult, type NatType, type SshServer, type WanSettings } from './lab.js';
import { coturnMissing, startCoturn, type Coturn } from './coturn.js';
import {
  agentStatus, cliMissing, createAgent, labUnavailable, logTails, startOverlayAgent, stopAgent, waitOverlayReady,
  type AgentStatus, type PeerStatus, type TestAgent, waitUntil,
} from './agents.js';
import { WAN_40MS } from './mobility-lab.js';
import { prerequisites } from './prerequisites.js';

const skip = prerequisites('NAT matrix', labUnavailable(), cliMissing(), coturnMissing());

const TYPES: readonly NatType[] = ['none', 'cone', 'symmetric', 'cgnat'];
const SHORT: Record<NatType, string> = { none: 'n', cone: 'c', symmetric: 's', cgnat: 'g' };
/** n1 n2 c1 c2 s1 s2 g1 g2: two hosts of each kind. */
const MATRIX = TYPES.flatMap((nat) => [1, 2].map((i) => ({ name: `${SHORT[nat]}${i}`, nat })));
const natOf = (h: string): NatType => [...MATRIX, BLK].find((m) => m.name === h)!.nat;
/** Lab.create puts hosts[i] at 198.51.100.(10+i): the relay's address is known before the lab exists. */
const PUBLIC_HOSTS = ['pub', 'turn'];
const TURN_ADDRESS = `${INTERNET_PREFIX}11`;
const TURN_USER = 'idloc';
const TURN_PASS = 'relay-me-please';
/** blk: behind a cone NAT, its UDP blocked to everything but the relay (the drop run only). */
const BLK = { name: 'blk', nat: 'cone' as NatType, udpBlockedExcept: [TURN_ADDRESS] };

type Path = 'direct' | 'relayed';

/** A direct path can exist (see the top of the file). */
function directPossible(x: NatType, y: NatType): boolean {
  if (x === 'none' || y === 'none') return true;
  return x !== 'symmetric' || y !== 'symmetric';
}

/** Bare MASQUERADE routers: the pairs whose direct path held in every run we made (4 runs of the bare
 *  half, with --turn everywhere): every pair with a public ('none') host, whichever side starts. Towards
 *  a public host the starter sends its handshake straight to the locator's address (no Attach, no ICE),
 *  and a conntrack clash on its router only changes the public port, which the public host does not
 *  filter; from a public host, ICE's checks towards the NATed peer's candidates are answered (the peer's
 *  own checks towards the public host open its router for them). Every pair of two NATed hosts was
 *  relayed in every run: behind a bare router netcheck sees the host's mapping change per destination
 *  (a peer's early packet leaves a conntrack entry that moves the host's own later packet to another
 *  port) and calls the NAT symmetric, and the ICE checks between two such hosts do not meet. Those pairs
 *  must have a path, direct or relayed, and the table reports which.
 *  `starter` is the side that sends first. */
function bareDirectReliable(starter: NatType, other: NatType): boolean {
  return starter === 'none' || other === 'none';
}

/** Round-robin (circle method): n-1 rounds of n/2 pairs, every pair once, no host twice in a round. The
 *  first of each pair starts the traffic (it looks the other up); which side that is alternates. */
function rounds(hosts: readonly string[]): [string, string][][] {
  const n = hosts.length;
  const rest = hosts.slice(1);
  const out: [string, string][][] = [];
  for (let r = 0; r < n - 1; r++) {
    const ring = [hosts[0]!, ...rest.slice(r), ...rest.slice(0, r)];
    const round: [string, string][] = [];
    for (let i = 0; i < n / 2; i++) {
      const [x, y] = [ring[i]!, ring[n - 1 - i]!];
      round.push((r + i) % 2 === 0 ? [x, y] : [y, x]);
    }
    out.push(round);
  }
  return out;
}
const SCHEDULE = rounds(MATRIX.map((m) => m.name));

interface PairResult {
  a: string;
  b: string;
  /** What must hold: 'direct' or 'relayed', or 'any' path (bare routers, pairs that are not reliably direct). */
  expect: Path | 'any';
  pingAB: ExecResult;
  pingBA: ExecResult;
  ssh: { ok: boolean; detail: string };
  /** a's view of b, b's view of a, as `status --json` had them last. */
  viewA: PeerStatus | undefined;
  viewB: PeerStatus | undefined;
  ms: number;
  /** Both statuses and both log tails, kept when anything about the pair is off. */
  evidence?: string;
}

const pathOf = (p: PeerStatus | undefined): string => p?.path ?? 'absent';
const letter = (p: PeerStatus | undefined): string => ({ direct: 'D', relayed: 'R', none: '-' } as Record<string, string>)[pathOf(p)] ?? '?';

function pairOk(r: PairResult): boolean {
  if (r.pingAB.code !== 0 || r.pingBA.code !== 0 || !r.ssh.ok) return false;
  const [pa, pb] = [pathOf(r.viewA), pathOf(r.viewB)];
  if (r.expect === 'any') return (pa === 'direct' || pa === 'relayed') && (pb === 'direct' || pb === 'relayed');
  return pa === r.expect && pb === r.expect;
}

function table(title: string, results: readonly PairResult[]): string {
  const hosts = MATRIX.map((m) => m.name);
  const cell = (x: string, y: string): string => {
    if (x === y) return '  .';
    const r = results.find((q) => (q.a === x && q.b === y) || (q.a === y && q.b === x));
    if (!r) return '  ?';
    const v = r.a === x ? r.viewA : r.viewB;
    return ` ${letter(v)}${pairOk(r) ? ' ' : '!'}`.padStart(3);
  };
  const lines = [`# ${title}  (row's view of column: D direct, R relayed, - none; ! = pair failed its assertion)`];
  lines.push('#      ' + hosts.map((h) => h.padStart(3)).join(''));
  for (const x of hosts) lines.push(`# ${x.padEnd(4)} ${hosts.map((y) => cell(x, y)).join('')}`);
  for (const r of results) {
    const ping = `${r.pingAB.code === 0 ? 'ok' : 'FAIL'}/${r.pingBA.code === 0 ? 'ok' : 'FAIL'}`;
    lines.push(`# ${`${r.a}->${r.b}`.padEnd(7)} ${natOf(r.a).padEnd(9)} x ${natOf(r.b).padEnd(9)} path ${pathOf(r.viewA)}/${pathOf(r.viewB)}`
      + ` (want ${r.expect}) ping ${ping} ssh ${r.ssh.ok ? 'ok' : 'FAIL'} ${(r.ms / 1000).toFixed(1)}s${pairOk(r) ? '' : '  <-- FAILED'}`
      + `  [${r.a}: ${r.viewA?.endpoint ?? '-'} ${String(r.viewA?.pathReason ?? '')}]`);
  }
  return lines.join('\n') + '\n';
}

/** The parts of a status that explain a path: the peer's entry, our NAT verdict, our relay. */
function statusEvidence(host: string, s: AgentStatus | undefined, peer: PeerStatus | undefined): string {
  if (!s) return `--- ${host}: no status ---`;
  const x = s as AgentStatus & { nat?: unknown; relay?: unknown };
  return `--- ${host} status: peer ${JSON.stringify(peer ?? null)}\n    nat ${JSON.stringify(x.nat ?? null)} relay ${JSON.stringify(x.relay ?? null)}`
    + ` rendezvous ${JSON.stringify(x.overlay?.['rendezvous'] ?? null)} ice ${JSON.stringify(s.counters['ice'] ?? null)}`;
}

/** One lab with the 8 matrix hosts (and `extra` NAT hosts), a bootstrap agent, coturn, sshd everywhere. */
class MatrixLab {
  lab!: Lab;
  coturn: Coturn | undefined;
  readonly agents = new Map<string, TestAgent>();
  readonly servers = new Map<string, SshServer>();
  readonly ipv4 = new Map<string, string>();

  A(h: string): TestAgent { return this.agents.get(h)!; }

  async setup(drop: boolean, extra: { name: string; nat: NatType; udpBlockedExcept?: string[] }[], wan?: WanSettings): Promise<void> {
    this.lab = await Lab.create({
      hosts: PUBLIC_HOSTS,
      natHosts: [
        ...MATRIX.map((m) => ({ name: m.name, nat: m.nat, ...(drop ? {} : { dropUnsolicited: false }) })),
        ...extra.map((e) => ({ ...e, ...(drop ? {} : { dropUnsolicited: false }) })),
      ],
      ...(wan ? { wan } : {}),
    });
    const lab = this.lab;
    assert.equal(lab.address('turn'), TURN_ADDRESS, 'the relay host is not where udpBlockedExcept expects it');
    this.coturn = await startCoturn(lab, 'turn', { username: TURN_USER, password: TURN_PASS, realm: 'idloc.test' });
    const turnArg = ['--turn', `turn:${TURN_USER}:${TURN_PASS}@${this.coturn.endpoint.address}:${this.coturn.endpoint.port}`];
    const hosts = ['pub', 'turn', ...MATRIX.map((m) => m.name)];
    await Promise.all(hosts.map(async (h) => this.agents.set(h, await createAgent(lab, h))));
    startOverlayAgent(lab, this.A('pub'), []);
    await waitOverlayReady(lab, this.A('pub'));
    // The relay host is an overlay member too: the one a host whose UDP reaches only the relay's address
    // can join through (a TURN relay carries the tunnel, not the overlay's own messages).
    startOverlayAgent(lab, this.A('turn'), [this.A('pub')]);
    for (const m of MATRIX) startOverlayAgent(lab, this.A(m.name), [this.A('pub')], turnArg);
    // sshd in every matrix host while the agents join (ssh-keygen takes a moment each).
    for (const m of MATRIX) this.servers.set(m.name, await lab.startSshd(m.name));
    await waitOverlayReady(lab, this.A('turn'), 30_000);
    const st = await Promise.all(MATRIX.map(async (m) => [m.name, await waitOverlayReady(lab, this.A(m.name), 30_000)] as const));
    for (const [h, s] of st) this.ipv4.set(h, s.identity.ipv4);
    // Behind a NAT: netcheck done, rendezvous kept (so Attach reaches it), relay allocated (so the relayed
    // candidate is offered). A public host needs neither; its relay is allocated all the same.
    await Promise.all(MATRIX.map((m) => this.waitTraversalReady(m.name, m.nat !== 'none')));
  }

  /** Behind a NAT: netcheck done and rendezvous kept (so Attach reaches it); the TURN allocation made (so
   *  its relayed candidate is offered). */
  async waitTraversalReady(host: string, behindNat: boolean): Promise<AgentStatus> {
    let last: AgentStatus | undefined;
    await waitUntil(async () => {
      const s = (await agentStatus(this.lab, this.A(host))) as AgentStatus & { relay?: { relayed?: string | null } };
      last = s;
      return (!behindNat || this.rendezvous(s).length > 0) && s.relay?.relayed;
    }, 20_000, `${host} keeps rendezvous and has its TURN allocation`);
    return last!;
  }

  rendezvous(s: AgentStatus): string[] {
    return (s.overlay?.['rendezvous'] as string[] | undefined) ?? [];
  }

  async teardown(): Promise<void> {
    const lab = this.lab;
    if (!lab) return;
    await Promise.all([...this.agents.values()].map((a) => stopAgent(lab, a).catch(() => undefined)));
    for (const s of this.servers.values()) await lab.stopProcess(s.proc).catch(() => undefined);
    if (this.coturn) await lab.stopProcess(this.coturn.proc).catch(() => undefined);
    await lab.destroy();
  }

  async peerViews(a: string, b: string): Promise<{ sa?: AgentStatus; sb?: AgentStatus; va?: PeerStatus; vb?: PeerStatus }> {
    const [sa, sb] = await Promise.all([agentStatus(this.lab, this.A(a)).catch(() => undefined), agentStatus(this.lab, this.A(b)).catch(() => undefined)]);
    return {
      ...(sa ? { sa } : {}), ...(sb ? { sb } : {}),
      ...(sa?.peers.find((p) => p.publicKey === this.A(b).id.publicKey) ? { va: sa.peers.find((p) => p.publicKey === this.A(b).id.publicKey)! } : {}),
      ...(sb?.peers.find((p) => p.publicKey === this.A(a).id.publicKey) ? { vb: sb.peers.find((p) => p.publicKey === this.A(a).id.publicKey)! } : {}),
    };
  }

  ping(from: string, to: string): Promise<ExecResult> {
    return this.lab.exec(from, ['ping', '-n', '-c', '3', '-i', '0.2', '-W', '4', this.ipv4.get(to)!], { allowFail: true, timeoutMs: 25_000 });
  }

  /** a starts: ping a -> b (a looks b up, Attach + ICE), ping b -> a, ssh a -> b; then both sides' paths. */
  async runPair(a: string, b: string, expect: Path | 'any'): Promise<PairResult> {
    const t0 = Date.now();
    const pingAB = await this.ping(a, b);
    const pingBA = await this.ping(b, a);
    let ssh: PairResult['ssh'];
    try {
      const r = await this.servers.get(b)!.ssh(a, this.ipv4.get(b)!, 'echo $((6*7)) $SSH_CONNECTION', { allowFail: true });
      const [answer, client, , server] = r.stdout.trim().split(' ');
      const ok = r.code === 0 && answer === '42' && client === this.ipv4.get(a) && server === this.ipv4.get(b);
      ssh = { ok, detail: `exit ${r.code}: ${(r.stdout + r.stderr).trim().slice(0, 300)}` };
    } catch (e) {
      ssh = { ok: false, detail: (e as Error).message.slice(0, 500) };
    }
    // The path is chosen by the time the first ping got through, except that birthday probing's direct
    // pair can follow a relayed one by a second (it moves the tunnel as soon as a probe lands). A hole
    // punch whose probes all missed (a loaded 2-core machine runs four at once) is retried by the agent
    // after ICE_DIRECT_RETRY_MS, and the tunnel moves to the direct pair then: where direct is due, wait
    // for that retry too; while a side has no established path yet, wait as well.
    let v = await this.peerViews(a, b);
    const settled = () => [pathOf(v.va), pathOf(v.vb)].every((p) => p === 'direct' || (p === 'relayed' && expect !== 'direct'));
    const end = Date.now() + (expect === 'direct' ? ICE_DIRECT_RETRY_MS + 5_000 : 5_000);
    while (!settled() && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 300));
      v = await this.peerViews(a, b);
    }
    const res: PairResult = { a, b, expect, pingAB, pingBA, ssh, viewA: v.va, viewB: v.vb, ms: Date.now() - t0 };
    if (!pairOk(res)) {
      res.evidence = [
        `ping ${a} -> ${b} (${this.ipv4.get(b)}): exit ${pingAB.code}\n${(pingAB.stdout + pingAB.stderr).trim()}`,
        `ping ${b} -> ${a} (${this.ipv4.get(a)}): exit ${pingBA.code}\n${(pingBA.stdout + pingBA.stderr).trim()}`,
        `ssh ${a} -> ${b}: ${ssh.ok ? 'ok' : ssh.detail}`,
        statusEvidence(a, v.sa, v.va), statusEvidence(b, v.sb, v.vb),
        logTails([this.A(a), this.A(b)], 25),
      ].join('\n');
    }
    return res;
  }

  async runMatrix(expectFor: (a: string, b: string) => Path | 'any'): Promise<PairResult[]> {
    const results: PairResult[] = [];
    for (const round of SCHEDULE) {
      results.push(...await Promise.all(round.map(([a, b]) => this.runPair(a, b, expectFor(a, b)))));
    }
    return results;
  }
}

/** `expectFor(starter, other)`: what must hold for a pair whose first host sends first. */
function matrixTests(title: string, drop: boolean, expectFor: (starter: NatType, other: NatType) => Path | 'any',
  opts: { extraTests?: (m: MatrixLab) => void; wan?: WanSettings } = {}): void {
  const { extraTests, wan } = opts;
  describe(title, { skip, timeout: 240_000 }, () => {
    const m = new MatrixLab();
    let results: PairResult[] = [];

    before(async () => {
      const t0 = Date.now();
      await m.setup(drop, drop ? [BLK] : [], wan);
      process.stderr.write(`# ${title}: lab and ${m.agents.size} agents ready in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
    });
    after(async () => { await m.teardown(); });

    it('runs every pair: ping both ways, ssh one way, path from status (4 pairs at a time)', async () => {
      const t = Date.now();
      results = await m.runMatrix((a, b) => expectFor(natOf(a), natOf(b)));
      process.stderr.write(table(`${title}: 28 pairs in ${((Date.now() - t) / 1000).toFixed(1)} s`, results));
      assert.equal(results.length, 28);
    });

    for (const [i, x] of MATRIX.entries()) {
      for (const y of MATRIX.slice(i + 1)) {
        const [a, b] = SCHEDULE.flat().find(([p, q]) => (p === x.name && q === y.name) || (p === y.name && q === x.name))!;
        const want = expectFor(natOf(a), natOf(b));
        const path = want === 'any' ? 'direct or relayed (not reliably direct here)' : want;
        it(`${a} (${natOf(a)}) starts, ${b} (${natOf(b)}): pings both ways, ssh, path ${path}`, () => {
          const r = results.find((q) => (q.a === x.name && q.b === y.name) || (q.a === y.name && q.b === x.name));
          assert.ok(r, 'the pair did not run (see the first test of this group)');
          const tag = `${r.a} -> ${r.b} (${natOf(r.a)} x ${natOf(r.b)}, ${drop ? 'routers drop unsolicited' : 'bare MASQUERADE'}${wan ? ', WAN' : ''})`;
          const ev = `\n${r.evidence ?? ''}`;
          assert.equal(r.pingAB.code, 0, `AGENT MISBEHAVES? ping ${r.a} -> ${r.b} failed: ${tag}${ev}`);
          assert.equal(r.pingBA.code, 0, `AGENT MISBEHAVES? ping ${r.b} -> ${r.a} failed: ${tag}${ev}`);
          assert.ok(r.ssh.ok, `AGENT MISBEHAVES? ssh ${r.a} -> ${r.b} failed: ${r.ssh.detail} ${tag}${ev}`);
          if (r.expect === 'any') {
            for (const [who, v] of [[r.a, r.viewA], [r.b, r.viewB]] as const) {
              assert.ok(v?.path === 'direct' || v?.path === 'relayed', `AGENT MISBEHAVES? ${who} has no path to its peer: ${tag}${ev}`);
            }
          } else {
            const why = r.expect === 'direct' ? 'a direct path exists here but the agent did not take it' : 'no direct path can exist here, yet status does not say relayed';
            assert.equal(r.viewA?.path, r.expect, `AGENT MISBEHAVES? ${r.a}'s view of ${r.b}: ${why}: ${tag}${ev}`);
            assert.equal(r.viewB?.path, r.expect, `AGENT MISBEHAVES? ${r.b}'s view of ${r.a}: ${why}: ${tag}${ev}`);
          }
        });
      }
    }

    extraTests?.(m);
  });
}

const dropExpect = (x: NatType, y: NatType): Path => (directPossible(x, y) ? 'direct' : 'relayed');

matrixTests('NAT matrix, routers drop unsolicited inbound', true, dropExpect, { extraTests: (m) => {
  // blk's UDP reaches only the relay's address: it joins the overlay through the relay host's agent, and
  // its only way to a peer is its (or the peer's) TURN allocation.
  it('blk (cone, UDP blocked but to the relay) reaches a cone peer: ping both ways, ssh, path relayed', async () => {
    const lab = m.lab;
    const blk = await createAgent(lab, 'blk');
    m.agents.set('blk', blk);
    startOverlayAgent(lab, blk, [m.A('pub'), m.A('turn')], ['--turn', `turn:${TURN_USER}:${TURN_PASS}@${TURN_ADDRESS}:${m.coturn!.endpoint.port}`]);
    const s = await waitOverlayReady(lab, blk, 30_000);
    m.ipv4.set('blk', s.identity.ipv4);
    m.servers.set('blk', await lab.startSshd('blk'));
    await m.waitTraversalReady('blk', true);
    // c1 starts: it finds blk's locator, whose rendezvous (the relay host's agent) is the one node blk can
    // reach, and Attach + ICE find the relayed pair.
    const r = await m.runPair('c1', 'blk', 'relayed');
    process.stderr.write(table('blk (UDP only to the relay)', [r]).split('\n').filter((l) => l.includes('->')).join('\n') + '\n');
    assert.ok(pairOk(r), `AGENT MISBEHAVES? c1 <-> blk: want ping both ways, ssh and path relayed on both sides\n${r.evidence ?? ''}`);
  });

  it('blk starts towards another cone peer (c2): its Attach goes through its own rendezvous on to c2\'s; relayed', async () => {
    const lab = m.lab;
    const rdv = m.rendezvous(await agentStatus(lab, m.A('c2')));
    const r = await m.runPair('blk', 'c2', 'relayed');
    process.stderr.write(`# blk -> c2 (blk starts; c2's rendezvous ${rdv.join(' ')}): ping ${r.pingAB.code === 0 ? 'ok' : 'FAIL'}/${r.pingBA.code === 0 ? 'ok' : 'FAIL'}`
      + ` path ${pathOf(r.viewA)}/${pathOf(r.viewB)} ${String(r.viewA?.pathReason ?? '')}\n`);
    assert.ok(pairOk(r), `AGENT MISBEHAVES? blk -> c2\n${r.evidence ?? ''}`);
  });
} });

matrixTests('NAT matrix, routers drop unsolicited inbound, WAN 40 ms RTT, 1% loss', true, dropExpect, { wan: WAN_40MS });

matrixTests('NAT matrix, bare MASQUERADE routers (no drop of unsolicited inbound)', false,
  (x, y) => (!directPossible(x, y) ? 'relayed' : bareDirectReliable(x, y) ? 'direct' : 'any'));
