// TurnClient against real coturn in the netns lab: coturn on host "turn", a TurnClient on host "a"
// (fixtures/turn-driver.js on a real UDP socket), a plain UDP peer on host "b". A allocates, permits or
// binds B, and datagrams go both ways through the relay, as Send/Data indications and as ChannelData.
// Needs root, network namespaces and coturn's turnserver (apt-get install coturn): see prerequisites.ts.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lab } from './lab.js';
import { coturnMissing, startCoturn, type Coturn } from './coturn.js';
import { labUnavailable, prerequisites } from './prerequisites.js';
import type { Endpoint } from '../../agent/conn/socket.js';

const DRIVER = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'turn-driver.js');
const USER = 'idloc';
const PASS = 'relay-me-please';
const REALM = 'idloc.test';
const STALE_NONCE_S = 2;

type Line = Record<string, unknown>;

/** A turn-driver child in a lab host: JSON commands in, JSON lines out. Stopped by its pid. */
class Driver {
  private buf = '';
  private readonly lines: Line[] = [];
  private wake: (() => void) | undefined;
  private seq = 0;
  private exited = false;
  local!: Endpoint;

  private constructor(readonly child: ChildProcessWithoutNullStreams, readonly name: string) {
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (s: string) => {
      this.buf += s;
      let i;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        const l = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 1);
        try { this.lines.push(JSON.parse(l) as Line); } catch { /* not ours */ }
      }
      this.wake?.();
    });
    let err = '';
    child.stderr.on('data', (b: Buffer) => { err = (err + b.toString()).slice(-4000); });
    child.on('close', () => { this.exited = true; this.wake?.(); if (err) process.stderr.write(`[${name}] ${err}\n`); });
  }

  static async start(lab: Lab, node: string, args: string[]): Promise<Driver> {
    const child = spawn('ip', ['netns', 'exec', lab.ns(node), process.execPath, DRIVER, ...args], { detached: true, stdio: 'pipe' });
    const d = new Driver(child, `${node}:${args[0]}`);
    const ready = await d.next((l) => l['ev'] === 'ready' || l['ev'] === 'fatal');
    if (ready['ev'] === 'fatal') throw new Error(`${d.name}: ${String(ready['message'])}`);
    d.local = ready['local'] as Endpoint;
    return d;
  }

  /** Wait for (and consume) the first line matching `pred`. */
  async next(pred: (l: Line) => boolean, timeoutMs = 15_000): Promise<Line> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.lines.findIndex(pred);
      if (i >= 0) return this.lines.splice(i, 1)[0]!;
      if (this.exited) throw new Error(`${this.name} exited`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.name}: timed out; unconsumed: ${JSON.stringify(this.lines).slice(0, 2000)}`);
      await new Promise<void>((r) => { const t = setTimeout(r, left); this.wake = () => { clearTimeout(t); r(); }; });
    }
  }

  async call(cmd: string, args: Line = {}, timeoutMs = 15_000): Promise<Line> {
    const id = ++this.seq;
    this.child.stdin.write(JSON.stringify({ id, cmd, ...args }) + '\n');
    return this.next((l) => l['id'] === id, timeoutMs);
  }

  async ok(cmd: string, args: Line = {}, timeoutMs?: number): Promise<Line> {
    const r = await this.call(cmd, args, timeoutMs);
    assert.equal(r['ok'], true, `${this.name} ${cmd}: ${String(r['message'])}`);
    return r;
  }

  data(from: Endpoint, timeoutMs?: number): Promise<Line> {
    return this.next((l) => l['ev'] === 'data' && (l['from'] as Endpoint).address === from.address && (l['from'] as Endpoint).port === from.port, timeoutMs);
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    const done = new Promise((r) => this.child.once('close', r));
    try { process.kill(-this.child.pid!, 'SIGTERM'); } catch { /* gone */ }
    const t = setTimeout(() => { try { process.kill(-this.child.pid!, 'SIGKILL'); } catch { /* gone */ } }, 3000);
    await done;
    clearTimeout(t);
  }
}

const skip = prerequisites('TURN client through real coturn', labUnavailable({ tap: false }), coturnMissing());

describe('TURN client through real coturn in the lab', { skip, timeout: 120_000 }, () => {
  let lab: Lab;
  let coturn: Coturn;
  let a: Driver;
  let b: Driver;
  const drivers: Driver[] = [];
  let relayed: Endpoint;

  before(async () => {
    lab = await Lab.create({ hosts: ['turn', 'a', 'b'] });
    coturn = await startCoturn(lab, 'turn', { username: USER, password: PASS, realm: REALM, staleNonceS: STALE_NONCE_S });
    a = await Driver.start(lab, 'a', ['turn', lab.address('a'), `${coturn.endpoint.address}:${coturn.endpoint.port}`, USER, PASS]);
    b = await Driver.start(lab, 'b', ['udp', lab.address('b'), '7000']);
    drivers.push(a, b);
  });
  after(async () => {
    await Promise.all(drivers.map((d) => d.stop()));
    if (coturn) await lab.stopProcess(coturn.proc);
    await lab?.destroy();
  });

  it('allocates a relayed address with the long-term credential mechanism', async () => {
    const r = await a.ok('allocate');
    const al = r['allocation'] as { relayed: Endpoint; relayedAll: Endpoint[]; familyError?: { family: number; code: number }; mapped: Endpoint; lifetimeS: number };
    relayed = al.relayed;
    // The client asks for an IPv6 relayed address too (dual allocation); this coturn relays on IPv4 only and says so.
    assert.deepEqual(al.relayedAll, [al.relayed]);
    assert.equal(al.familyError?.family, 2, JSON.stringify(al));
    assert.equal(al.relayed.address, coturn.endpoint.address);
    assert.ok(al.relayed.port >= 49152 && al.relayed.port <= 49407, `relayed port ${al.relayed.port}`);
    assert.deepEqual(al.mapped, a.local);
    assert.ok(al.lifetimeS > 0);
  });

  it('relays both ways as Send/Data indications after CreatePermission, bytes intact', async () => {
    await a.ok('permit', { peer: b.local });
    for (const size of [1, 3, 100, 1200]) {
      const out = randomBytes(size).toString('hex');
      const s = await a.ok('send', { peer: b.local, hex: out });
      assert.equal(s['how'], 'indication');
      assert.equal((await b.data(relayed))['hex'], out);
      const back = randomBytes(size).toString('hex');
      await b.ok('send', { to: relayed, hex: back });
      assert.equal((await a.data(b.local))['hex'], back);
    }
    const st = (await a.ok('stats'))['stats'] as Record<string, number>;
    assert.equal(st['sendIndicationsOut'], 4);
    assert.equal(st['dataIndicationsIn'], 4);
  });

  it('relays both ways as ChannelData after ChannelBind, bytes intact', async () => {
    const ch = (await a.ok('bind', { peer: b.local }))['channel'] as number;
    assert.ok(ch >= 0x4000 && ch <= 0x4fff);
    for (const size of [0, 1, 3, 100, 1200, 8000]) {
      const out = randomBytes(size).toString('hex');
      const s = await a.ok('send', { peer: b.local, hex: out });
      assert.equal(s['how'], 'channel');
      assert.equal((await b.data(relayed))['hex'], out);
      const back = randomBytes(size).toString('hex');
      await b.ok('send', { to: relayed, hex: back });
      assert.equal((await a.data(b.local))['hex'], back);
    }
    const st = (await a.ok('stats'))['stats'] as Record<string, number>;
    assert.equal(st['channelDataOut'], 6);
    assert.equal(st['channelDataIn'], 6);
    assert.equal(st['malformed'], 0);
    assert.equal(st['badIntegrity'], 0);
  });

  it('measures the relay round trip (ChannelData both ways, peer echoes)', async (t) => {
    await b.ok('echo', { on: true });
    const samples = ((await a.ok('ping', { peer: b.local, count: 300, size: 100 }, 60_000))['samplesMs'] as number[]).slice(20);
    await b.ok('echo', { on: false });
    samples.sort((x, y) => x - y);
    const q = (p: number): number => samples[Math.min(samples.length - 1, Math.floor(p * samples.length))]!;
    const direct = await lab.exec('a', ['ping', '-c', '20', '-i', '0.01', '-q', lab.address('turn')]);
    t.diagnostic(`relay RTT (a -> coturn -> b -> coturn -> a, 100 B) ms: min ${q(0).toFixed(3)} median ${q(0.5).toFixed(3)} p90 ${q(0.9).toFixed(3)}; ` +
      `ICMP a -> coturn host: ${/= ([\d./]+)/.exec(direct.stdout)?.[1] ?? '?'} (min/avg/max/mdev)`);
    assert.ok(q(0.5) < 50, `median relay RTT ${q(0.5)} ms`);
  });

  it('answers 438 Stale Nonce with the fresh nonce and carries on (the client counts one 438 retried)', async () => {
    const stale = async (): Promise<number> => ((await a.ok('stats'))['stats'] as Record<string, number>)['staleNonceRetries']!;
    const before = await stale();
    await new Promise((r) => setTimeout(r, STALE_NONCE_S * 1000 + 500));
    await a.ok('permit', { peer: { address: '198.51.100.99', port: 9 } });
    // The one request after the nonce went stale drew a 438, which the client took the fresh nonce from
    // and retried: the permit above succeeded only through that retry.
    assert.equal(await stale() - before, 1, `the client saw no 438 (or retried more than once); coturn's log:\n${coturn.log().slice(-3000)}`);
    assert.match(coturn.log(), /438/, 'coturn never said 438');
    const out = randomBytes(64).toString('hex');
    await a.ok('send', { peer: b.local, hex: out });
    assert.equal((await b.data(relayed))['hex'], out);
  });

  it('fails with a clear error on a wrong password', async () => {
    const bad = await Driver.start(lab, 'b', ['turn', lab.address('b'), `${coturn.endpoint.address}:${coturn.endpoint.port}`, USER, 'not-the-password']);
    drivers.push(bad);
    const r = await bad.call('allocate');
    assert.equal(r['ok'], false);
    assert.equal(r['code'], 401);
    assert.match(String(r['message']), /TURN Allocate refused by 198\.51\.100\.10:3478: 401 Unauthorized.*wrong username or password for realm "idloc\.test"/);
  });

  it('close() frees the allocation on the server (Refresh with LIFETIME 0)', async () => {
    const port = relayed.port;
    const open = await lab.exec('turn', ['ss', '-Hlun', `sport = :${port}`]);
    assert.notEqual(open.stdout.trim(), '', `relay port ${port} not open before close`);
    await a.ok('close');
    // coturn closes the relay socket once the allocation is deleted.
    const deadline = Date.now() + 5000;
    for (;;) {
      const r = await lab.exec('turn', ['ss', '-Hlun', `sport = :${port}`]);
      if (r.stdout.trim() === '') break;
      assert.ok(Date.now() < deadline, `relay port ${port} still open after close: ${r.stdout}\n${coturn.log().slice(-3000)}`);
      await new Promise((res) => setTimeout(res, 100));
    }
  });
});
