// NativeTap against the real kernel. All traffic stays in a network namespace this test creates and
// deletes: the TAP is opened by a child (fixtures/tap-echo.ts) started with `ip netns exec`, which plays
// a neighbour on the link (answers ARP and ping). Needs root, /dev/net/tun and the built addon.

import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadTapAddon } from '../../agent/tap/native-tap.js';
import { labUnavailable, prerequisites } from './prerequisites.js';

const FIXTURE = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'tap-echo.js');
const NS = `idltap${process.pid}`;
const MTU = 1400;

function addonError(): string | false {
  try {
    loadTapAddon();
    return false;
  } catch (err) {
    return (err as Error).message;
  }
}
const addonMissing = addonError();

const addonReason = addonMissing && `the idloc_tap addon does not load (${addonMissing})`;
const skip = prerequisites('NativeTap in a network namespace', labUnavailable(), addonReason);

function sh(args: string[]): string {
  return execFileSync(args[0]!, args.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 20_000 });
}
const inNs = (...args: string[]): string => sh(['ip', 'netns', 'exec', NS, ...args]);

type Msg = Record<string, unknown> & { event: string };

/** A fixture process in the namespace, spoken to in JSON lines. */
class Child {
  readonly proc: ChildProcessWithoutNullStreams;
  private lines: Msg[] = [];
  private waiters: (() => void)[] = [];
  stderr = '';

  constructor(args: string[]) {
    this.proc = spawn('ip', ['netns', 'exec', NS, process.execPath, FIXTURE, ...args]);
    let pending = '';
    this.proc.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      pending += chunk;
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        this.lines.push(JSON.parse(pending.slice(0, nl)) as Msg);
        pending = pending.slice(nl + 1);
      }
      this.waiters.splice(0).forEach((w) => w());
    });
    this.proc.stderr.setEncoding('utf8').on('data', (c: string) => (this.stderr += c));
    this.proc.on('exit', () => this.waiters.splice(0).forEach((w) => w()));
  }

  /** Resolves with (and consumes) the first message with this event. */
  async next(event: string, timeoutMs = 5000): Promise<Msg> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.lines.findIndex((m) => m.event === event);
      if (i >= 0) return this.lines.splice(i, 1)[0]!;
      if (this.proc.exitCode !== null || this.proc.signalCode !== null) {
        throw new Error(`fixture exited (${this.proc.exitCode ?? this.proc.signalCode}) before '${event}': ${this.stderr}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for '${event}' from fixture; stderr: ${this.stderr}`);
      await new Promise<void>((res) => {
        const t = setTimeout(res, left);
        this.waiters.push(() => (clearTimeout(t), res()));
      });
    }
  }

  send(cmd: string): void {
    this.proc.stdin.write(cmd + '\n');
  }

  async stats(): Promise<Msg> {
    this.send('stats');
    return this.next('stats');
  }

  kill(): void {
    if (this.proc.exitCode === null && this.proc.signalCode === null && this.proc.pid) process.kill(this.proc.pid, 'SIGKILL');
  }
}

function linkStats(ifname: string): { rx: number; tx: number; txDropped: number } {
  const [link] = JSON.parse(sh(['ip', '-n', NS, '-s', '-j', 'link', 'show', ifname])) as {
    stats64: { rx: { packets: number }; tx: { packets: number; dropped: number } };
  }[];
  return { rx: link!.stats64.rx.packets, tx: link!.stats64.tx.packets, txDropped: link!.stats64.tx.dropped };
}

describe('NativeTap in a network namespace', { skip }, () => {
  const children: Child[] = [];
  let echo: Child;
  let echoMac = '';
  let nsMade = false;

  before(async () => {
    sh(['ip', 'netns', 'add', NS]);
    nsMade = true;
    sh(['ip', '-n', NS, 'link', 'set', 'lo', 'up']);
    echo = new Child(['echo', 'idlt0', String(MTU)]);
    children.push(echo);
    const ready = await echo.next('ready');
    assert.equal(ready.name, 'idlt0');
    echoMac = String(ready.mac);
    sh(['ip', '-n', NS, 'addr', 'add', '10.77.0.1/24', 'dev', 'idlt0']);
  });

  after(() => {
    for (const c of children) c.kill();
    if (nsMade) sh(['ip', 'netns', 'del', NS]);
  });

  it('creates the interface up, with the MTU asked for and the MAC it reports', () => {
    const [link] = JSON.parse(sh(['ip', '-n', NS, '-j', 'link', 'show', 'idlt0'])) as {
      mtu: number; flags: string[]; address: string;
    }[];
    assert.equal(link!.mtu, MTU);
    assert.ok(link!.flags.includes('UP'));
    assert.equal(link!.address.replaceAll(':', ''), echoMac);
  });

  it('reads the kernel\'s frames and writes answers the kernel accepts (ping through the TAP)', async () => {
    const before = linkStats('idlt0');
    const out = inNs('ping', '-c', '3', '-i', '0.2', '-W', '1', '10.77.0.2');
    assert.match(out, /3 received/); // only possible if our ARP and ICMP replies were read by the kernel
    const s = await echo.stats();
    assert.ok((s.arpRequests as number) >= 1, 'saw the ARP request');
    assert.ok((s.icmpEchoes as number) >= 3, 'saw the echo requests');
    assert.ok((s.txFrames as number) >= 4);
    assert.equal(s.txDropped, 0);
    assert.ok(linkStats('idlt0').rx - before.rx >= 4, 'kernel counted our frames as received');
  });

  it('reads a UDP flood in batches (rough rate)', async (t) => {
    const s0 = await echo.stats();
    const k0 = linkStats('idlt0');
    const seconds = 2;
    const t0 = process.hrtime.bigint();
    const flood = new Child(['flood', '10.77.0.2', '9', String(seconds)]);
    children.push(flood);
    const flooded = await flood.next('flooded', (seconds + 10) * 1000);
    await new Promise((r) => setTimeout(r, 200)); // let the reader drain the queue
    const s1 = await echo.stats();
    const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
    const k1 = linkStats('idlt0');
    const frames = (s1.rxFrames as number) - (s0.rxFrames as number);
    const batches = (s1.rxBatches as number) - (s0.rxBatches as number);
    t.diagnostic(
      `sent ${flooded.sent} datagrams in ${seconds}s; TAP read ${frames} frames in ${batches} batches ` +
        `(${(frames / seconds).toFixed(0)} frames/s over the flood, avg ${(frames / Math.max(1, batches)).toFixed(1)}, ` +
        `max ${s1.maxBatch} per batch); kernel tx ${k1.tx - k0.tx}, dropped at the TAP queue ${k1.txDropped - k0.txDropped}; ` +
        `${elapsed.toFixed(2)}s wall`,
    );
    assert.ok(frames > 1000, `read only ${frames} frames`);
    assert.ok((s1.maxBatch as number) > 1, 'frames arrived in batches');
  });

  it('reports a vanished device through onError', async () => {
    const victim = new Child(['echo', 'idlt1', String(MTU)]);
    children.push(victim);
    await victim.next('ready');
    sh(['ip', '-n', NS, 'link', 'del', 'idlt1']);
    const err = await victim.next('error');
    assert.match(String(err.message), /read failed/);
    assert.equal(typeof err.code, 'string');
  });

  it('survives a worker thread that reads a TAP being terminated', async () => {
    const w = new Child(['worker', 'idlt2']);
    children.push(w);
    assert.equal((await w.next('worker-done')).name, 'idlt2');
    const code = await new Promise((res) => (w.proc.exitCode !== null ? res(w.proc.exitCode) : w.proc.once('exit', res)));
    assert.equal(code, 0, w.stderr); // a crash here means the addon's uv handle outlived the addon
    assert.throws(() => sh(['ip', '-n', NS, 'link', 'show', 'idlt2']));
  });

  it('deletes the interface on close(), and close() is idempotent', async () => {
    echo.send('close');
    await echo.next('closed');
    assert.throws(() => sh(['ip', '-n', NS, 'link', 'show', 'idlt0']));
  });
});

describe('idloc_tap addon argument checks', { skip: prerequisites('idloc_tap addon argument checks', addonReason) }, () => {
  it('throws TypeError / RangeError instead of crashing', () => {
    const lib = loadTapAddon() as unknown as Record<string, (...a: unknown[]) => unknown>;
    const cb = (): void => {};
    assert.throws(() => lib.open!(42), TypeError);
    assert.throws(() => lib.open!('x'.repeat(16)), TypeError);
    assert.throws(() => lib.setMtu!('lo'), TypeError);
    assert.throws(() => lib.setMtu!('lo', 1.5), TypeError);
    assert.throws(() => lib.setUp!(null), TypeError);
    assert.throws(() => lib.getMac!(), TypeError);
    assert.throws(() => lib.startReading!(0, 'buf', new Uint32Array(1), new Uint32Array(1), 1, 10, cb), TypeError);
    assert.throws(() => lib.startReading!(0, Buffer.alloc(10), new Uint32Array(1), new Uint32Array(1), 1, 100, cb), RangeError);
    assert.throws(() => lib.startReading!(0, Buffer.alloc(100), new Uint8Array(1), new Uint32Array(1), 1, 100, cb), TypeError);
    assert.throws(() => lib.startReading!(0, Buffer.alloc(100), new Uint32Array(1), new Uint32Array(1), 1, 100, 'cb'), TypeError);
    assert.throws(() => lib.writeFrames!(-1, []), TypeError);
    assert.throws(() => lib.writeFrames!(1, [new Uint16Array(2)]), TypeError);
    assert.throws(() => lib.writeFrames!(1, 'frames'), TypeError);
    assert.throws(() => lib.stopReading!('1'), TypeError);
    assert.throws(() => lib.close!(1e12), TypeError);
    assert.throws(() => lib.getMac!('idloc-none0'), (e: NodeJS.ErrnoException) => e.code === 'ENODEV');
  });
});
