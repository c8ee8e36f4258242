// The control socket: a Unix stream socket in the state dir that `status` and later commands use. Only
// root and the owner of the state dir may ask, enforced twice: the socket is created mode 0600 (the umask
// is 0177 while it is bound, so there is no moment with a looser mode) inside the 0700 state dir, and
// each connection's peer uid is asked of the kernel (SO_PEERCRED) and refused unless permitted.
// One JSON line per request and answer:
//   -> {"cmd":"status"}
//   <- {"ok":true,"result":{...}}  |  {"ok":false,"error":"..."}
import { createConnection, createServer, type Server } from 'node:net';
import { statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { CONTROL_MAX_REQUEST_BYTES, CONTROL_SOCKET_NAME, CONTROL_TIMEOUT_MS } from './base/constants.js';
import { peerCredAvailable, peerUidOf } from './peer-cred.js';

export type ControlHandler = (cmd: string, args: Record<string, unknown>) => unknown | Promise<unknown>;

export class ControlError extends Error {}

export function controlPath(stateDir: string): string {
  return join(stateDir, CONTROL_SOCKET_NAME);
}

export interface ControlServeOptions {
  /** A connection from a user who may not ask was refused (for the log and the counters). */
  onRefused?: (uid: number | undefined) => void;
}

/** The uids that may ask: root, the owner of the state dir, and the agent's own. */
export function permittedUids(stateDir: string): Set<number> {
  const uids = new Set<number>([0, statSync(stateDir).uid]);
  const self = process.getuid?.();
  if (self !== undefined) uids.add(self);
  return uids;
}

/** Start serving; refuses if another agent already answers on this state dir. */
export async function serveControl(stateDir: string, handler: ControlHandler, opts: ControlServeOptions = {}): Promise<Server> {
  const path = controlPath(stateDir);
  const alive = await request(stateDir, 'ping').then(() => true, () => false);
  if (alive) throw new ControlError(`another agent is already running with state dir ${stateDir}`);
  try { unlinkSync(path); } catch { /* no stale socket */ }
  const permitted = permittedUids(stateDir);
  // Without the addon (not Linux, not built) the socket's mode is the only gate.
  const checkPeers = peerCredAvailable();
  const server = createServer((conn) => {
    conn.on('error', () => conn.destroy());
    const uid = checkPeers ? peerUidOf(conn) : undefined;
    // A refused user still gets its answer after its request line, so it reads the refusal rather than a
    // connection reset; its request is never looked at.
    let refusal: string | undefined;
    if (checkPeers && (uid === undefined || !permitted.has(uid))) {
      opts.onRefused?.(uid);
      const who = uid === undefined ? 'a user the kernel would not name' : `uid ${uid}`;
      const allowed = [...permitted].sort((a, b) => a - b).join(', ');
      refusal = `permission denied: ${who} may not use the agent's control socket ${path}; only root and the owner of ${stateDir} may (uid ${allowed})`;
      conn.setTimeout(CONTROL_TIMEOUT_MS, () => conn.destroy()); // nor may it hold the connection open
    }
    let buf = '';
    conn.setEncoding('utf8');
    conn.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > CONTROL_MAX_REQUEST_BYTES) { conn.destroy(); return; }
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      const line = buf.slice(0, nl);
      buf = '';
      if (refusal !== undefined) { conn.end(JSON.stringify({ ok: false, error: refusal }) + '\n'); return; }
      void answer(line, handler).then((reply) => conn.end(JSON.stringify(reply) + '\n'));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // listen() binds the path synchronously: the umask around it gives the socket 0600 from its first moment
    const umask = process.umask(0o177);
    try {
      server.listen(path, () => { server.off('error', reject); resolve(); });
    } finally {
      process.umask(umask);
    }
  });
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
      const why = e.code === 'ENOENT' || e.code === 'ECONNREFUSED' ? 'no agent is running' : e.code === 'EACCES' || e.code === 'EPERM'
        ? `permission denied: only root and the owner of ${stateDir} may use the agent's control socket` : e.message;
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
