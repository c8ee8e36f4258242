// The control socket (agent/control.ts): mode 0600 from the moment it is bound, whatever the umask, and
// every connection's peer uid read from the kernel (SO_PEERCRED through native-helpers/peercred.c).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createConnection, Server } from 'node:net';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { controlPath, permittedUids, request, serveControl } from '../../agent/control.js';
import { peerCredAvailable, peerUidOf } from '../../agent/peer-cred.js';

function scratch(): string {
  const dir = mkdtempSync(join(tmpdir(), 'idloc-ctl-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('the control socket is 0600 from the moment listen() binds it, even with umask 000', async () => {
  const dir = scratch();
  const path = controlPath(dir);
  const seen: number[] = [];
  // Watch the socket file at the first instant it exists: right after bind, before any callback runs.
  const listen = Server.prototype.listen;
  Server.prototype.listen = function (this: Server, ...args: unknown[]) {
    const r = (listen as (...a: unknown[]) => Server).apply(this, args);
    try { seen.push(statSync(path).mode & 0o777); } catch { /* not bound yet */ }
    return r;
  } as typeof listen;
  const old = process.umask(0);
  let server: Server | undefined;
  try {
    server = await serveControl(dir, () => 'ok');
    assert.equal(process.umask(0), 0, 'the umask is given back');
  } finally {
    process.umask(old);
    Server.prototype.listen = listen;
  }
  try {
    assert.deepEqual(seen, [0o600], 'mode at bind time');
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(await request(dir, 'status'), 'ok');
  } finally {
    await new Promise((r) => server!.close(r));
  }
});

test('the kernel names the connecting uid, and root, the state dir owner and the agent itself may ask', { skip: !peerCredAvailable() && 'idloc_cred addon not built' }, async () => {
  const dir = scratch();
  const permitted = permittedUids(dir);
  assert.ok(permitted.has(0) && permitted.has(statSync(dir).uid) && permitted.has(process.getuid!()));
  const uids: (number | undefined)[] = [];
  const server = await new Promise<Server>((resolve) => {
    const s = new Server((conn) => { uids.push(peerUidOf(conn)); conn.end(); });
    s.listen(join(dir, 'probe.sock'), () => resolve(s));
  });
  try {
    await new Promise<void>((resolve, reject) => {
      const c = createConnection(join(dir, 'probe.sock'));
      c.on('error', reject);
      c.on('close', () => resolve());
      c.resume();
    });
    assert.deepEqual(uids, [process.getuid!()]);
  } finally {
    await new Promise((r) => server.close(r));
  }
});
