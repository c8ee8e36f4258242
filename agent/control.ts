// The control socket: a Unix stream socket in the state dir (mode 0600, so only root and the owner of
// the state dir can ask) that `status` and later commands use. One JSON line per request and answer:
//   -> {"cmd":"status"}
//   <- {"ok":true,"result":{...}}  |  {"ok":false,"error":"..."}
import { createConnection, createServer, type Server } from 'node:net';
import { chmodSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { CONTROL_SOCKET_NAME, CONTROL_TIMEOUT_MS } from './base/constants.js';

export type ControlHandler = (cmd: string, args: Record<string, unknown>) => unknown | Promise<unknown>;

export class ControlError extends Error {}

export function controlPath(stateDir: string): string {
  return join(stateDir, CONTROL_SOCKET_NAME);
}

/** Start serving; refuses if another agent already answers on this state dir. */
export async function serveControl(stateDir: string, handler: ControlHandler): Promise<Server> {
  const path = controlPath(stateDir);
  const alive = await request(stateDir, 'ping').then(() => true, () => false);
  if (alive) throw new ControlError(`another agent is already running with state dir ${stateDir}`);
  try { unlinkSync(path); } catch { /* no stale socket */ }
  const server = createServer((conn) => {
    let buf = '';
    conn.setEncoding('utf8');
    conn.on('error', () => conn.destroy());
    conn.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > 65536) { conn.destroy(); return; }
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      const line = buf.slice(0, nl);
      buf = '';
      void answer(line, handler).then((reply) => conn.end(JSON.stringify(reply) + '\n'));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => { server.off('error', reject); resolve(); });
  });
  chmodSync(path, 0o600);
  return server;
}

async function answer(line: string, handler: ControlHandler): Promise<object> {
  try {
    const req = JSON.parse(line) as { cmd?: unknown; args?: unknown };
    if (typeof req.cmd !== 'string') return { ok: false, error: 'request needs a "cmd" string' };
    if (req.cmd === 'ping') return { ok: true, result: 'pong' };
    const args = (typeof req.args === 'object' && req.args !== null ? req.args : {}) as Record<string, unknown>;
    return { ok: true, result: await handler(req.cmd, args) };
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  }
}

/** Ask the agent running on stateDir; rejects with a ControlError that reads well as one line. */
export function request(stateDir: string, cmd: string, args: Record<string, unknown> = {}): Promise<unknown> {
  const path = controlPath(stateDir);
  return new Promise((resolve, reject) => {
    const sock = createConnection(path);
    let buf = '';
    const timer = setTimeout(() => { sock.destroy(); reject(new ControlError(`the agent at ${path} did not answer within ${CONTROL_TIMEOUT_MS} ms`)); }, CONTROL_TIMEOUT_MS);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(JSON.stringify({ cmd, args }) + '\n'));
    sock.on('data', (c: string) => { buf += c; });
    sock.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const why = e.code === 'ENOENT' || e.code === 'ECONNREFUSED' ? 'no agent is running' : e.code === 'EACCES' ? 'permission denied (run as root?)' : e.message;
      reject(new ControlError(`${why} (control socket ${path})`));
    });
    sock.on('end', () => {
      clearTimeout(timer);
      try {
        const reply = JSON.parse(buf) as { ok: boolean; result?: unknown; error?: string };
        if (reply.ok) resolve(reply.result); else reject(new ControlError(reply.error ?? 'agent refused the request'));
      } catch {
        reject(new ControlError(`the agent at ${path} sent an unreadable answer`));
      }
    });
  });
}
