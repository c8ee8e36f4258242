// Who is at the other end of a control-socket connection: the kernel's SO_PEERCRED answer, through the
// idloc_cred addon (native-helpers/peercred.c). Linux only; undefined elsewhere or when it is not built,
// and then the socket's mode (0600 in a 0700 state dir) is the only gate.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Socket } from 'node:net';

const ADDON_REL = join('native-helpers', 'build', 'Release', 'idloc_cred.node');

interface CredAddon { peerUid(fd: number): number }

let cached: CredAddon | null | undefined;

function addon(): CredAddon | undefined {
  if (cached === undefined) {
    cached = null;
    // from dist/agent (compiled) or agent/ (source): the package root is a few levels up
    for (let dir = dirname(fileURLToPath(import.meta.url)), i = 0; i < 4 && !cached; i++, dir = dirname(dir)) {
      const candidate = join(dir, ADDON_REL);
      if (existsSync(candidate)) cached = createRequire(import.meta.url)(candidate) as CredAddon;
    }
  }
  return cached ?? undefined;
}

/** Whether peerUidOf can answer on this system. */
export function peerCredAvailable(): boolean {
  return addon() !== undefined;
}

/** The uid of the process that connected `conn` (a Unix stream socket), or undefined if it cannot be told. */
export function peerUidOf(conn: Socket): number | undefined {
  const fd = (conn as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  const a = addon();
  if (!a || typeof fd !== 'number' || fd < 0) return undefined;
  try { return a.peerUid(fd); } catch { return undefined; }
}
