// A whole agent on the in-memory twins (a MemoryTap and a socket of a MemoryNetwork or MemoryNat), for unit
// tests that need the daemon's wiring rather than one layer: joined to `bootstrap` (an address at port 4500)
// or the first node of a new overlay, with a cheap NodeID puzzle.
import { after } from 'node:test';
import { pino } from 'pino';
import { Agent, type AgentOptions } from '../../agent/daemon.js';
import type { MemorySocket } from '../../agent/conn/memory-socket.js';
import { MemoryTap } from '../../agent/tap/memory-tap.js';
import { generateIdentity } from '../../agent/idloc/identity.js';

const silent = pino({ level: 'silent' });

/** The overlay's and the memory network's timers are unref'd: keep the event loop alive while a file's
 *  tests wait on them. Call once per test file. */
export function keepEventLoopAlive(): void {
  const keepAlive = setInterval(() => undefined, 1000);
  after(() => clearInterval(keepAlive));
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** f() every 50 ms until it gives something, at most `ms`; then fail naming `what`. */
export async function eventually<T>(f: () => Promise<T | undefined>, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Agent `i` (its TAP MAC 02:00:00:00:`macByte`:`i`), started. */
export function memoryAgent(socket: MemorySocket, i: number, o: {
  bootstrap?: string | undefined; macByte: number; overlay?: Partial<NonNullable<AgentOptions['overlay']>>;
}): Agent {
  const tap = new MemoryTap({ name: `mem${i}`, mac: Uint8Array.of(2, 0, 0, 0, o.macByte, i) });
  const agent = new Agent({
    identity: generateIdentity(), tap, socket, peers: [], logger: silent,
    overlay: { bootstraps: o.bootstrap ? [{ address: o.bootstrap, port: 4500 }] : [], puzzleDifficulty: 4, ...o.overlay },
  });
  agent.start();
  return agent;
}
