// Files in the state dir (identity.json, names.json): written so that a crash or a power cut at any
// moment leaves either the old file or the new one, never a torn or empty one; read so that a damaged
// or exposed file stops the agent with one line naming the file and the fix, never a silent new key.
//
// A write, as ext4/XFS need it to survive a power cut (the rename alone can reach the disk before the
// data does, leaving a zero-length file):
//   open NAME.PID.tmp (O_CREAT|O_EXCL, mode 0600) -> write -> fsync -> close
//   -> rename(tmp, NAME)   (or link(tmp, NAME) for create-only: fails if NAME appeared meanwhile)
//   -> fsync(the directory) so the new directory entry is durable too
import * as nodeFs from 'node:fs';
import { basename, dirname } from 'node:path';

/** The few fs calls a state file needs: the real node:fs, or a test's twin that fails or crashes. */
export interface StateFs {
  openSync(path: string, flags: string | number, mode?: number): number;
  writeSync(fd: number, data: Uint8Array): number;
  fsyncSync(fd: number): void;
  closeSync(fd: number): void;
  renameSync(from: string, to: string): void;
  linkSync(existing: string, link: string): void;
  unlinkSync(path: string): void;
  readFileSync(path: string, encoding: 'utf8'): string;
  statSync(path: string): { mode: number; uid: number; isDirectory(): boolean };
}

export const realStateFs: StateFs = nodeFs;

/** A state file that cannot be read, written or trusted; the message is the one line the CLI prints. */
export class StateFileError extends Error {}

/** Write `body` to `path` atomically and durably with `mode`. createOnly: keep an existing file and
 *  return false (another process created it first); otherwise replace it and return true. */
export function writeStateFile(path: string, body: string, opts: { mode?: number; createOnly?: boolean; fs?: StateFs } = {}): boolean {
  const fs = opts.fs ?? realStateFs;
  const tmp = `${path}.${process.pid}.tmp`;
  let linked = true;
  try {
    const fd = openExclusive(fs, tmp, opts.mode ?? 0o600);
    try {
      const data = Buffer.from(body, 'utf8');
      for (let off = 0; off < data.length;) off += fs.writeSync(fd, data.subarray(off));
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    if (opts.createOnly) {
      try { fs.linkSync(tmp, path); } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        linked = false;
      }
      fs.unlinkSync(tmp);
    } else {
      fs.renameSync(tmp, path);
    }
    syncDir(fs, dirname(path));
  } catch (e) {
    try { fs.unlinkSync(tmp); } catch { /* never created, or already renamed */ }
    throw new StateFileError(`cannot write ${path}: ${(e as Error).message}`);
  }
  return linked;
}

/** O_EXCL, so a link planted under the tmp name is never written through; a tmp left by a crashed
 *  process that had our pid is removed first. */
function openExclusive(fs: StateFs, tmp: string, mode: number): number {
  try {
    return fs.openSync(tmp, 'wx', mode);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    fs.unlinkSync(tmp);
    return fs.openSync(tmp, 'wx', mode);
  }
}

function syncDir(fs: StateFs, dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try { fs.fsyncSync(fd); } finally { fs.closeSync(fd); }
}

/** The text of a state file, or undefined if there is none yet. */
export function readStateFile(path: string, fs: StateFs = realStateFs): string | undefined {
  try {
    return fs.readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new StateFileError(`cannot read ${path}: ${(e as Error).message}`);
  }
}

/** JSON.parse, or the one-line "corrupt" error naming the file, what is wrong with it and `fix`. */
export function parseStateJson(path: string, text: string, fix: string): Record<string, unknown> {
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (e) {
    const why = text.trim().length === 0 ? `empty (${text.length} bytes)`
      : /end of (JSON )?input|Unterminated/i.test((e as Error).message) ? 'truncated JSON' : 'not JSON';
    throw corruptStateFile(path, why, fix);
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw corruptStateFile(path, 'not a JSON object', fix);
  return obj as Record<string, unknown>;
}

export function corruptStateFile(path: string, why: string, fix: string): StateFileError {
  return new StateFileError(`${basename(path)} in ${dirname(path)} is corrupt (${why}); ${fix}`);
}

/** Refuse a state dir or state file that a user other than its owner could read or write (group or
 *  other bits), or that belongs to someone other than root or us: either would let a local user read
 *  the key or plant one. */
export function checkPrivate(path: string, fs: StateFs = realStateFs): void {
  const st = fs.statSync(path);
  const dir = st.isDirectory();
  const where = dir ? `state dir ${path}` : `${basename(path)} in ${dirname(path)}`;
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== 0 && st.uid !== uid) {
    throw new StateFileError(`${where} belongs to uid ${st.uid}, not to root or to this user (uid ${uid}); run chown ${uid} ${path}`);
  }
  const loose = st.mode & 0o077;
  if (loose !== 0) {
    const how = loose & 0o022 ? 'writable' : 'readable';
    const mode = (st.mode & 0o777).toString(8).padStart(3, '0');
    throw new StateFileError(`${where} is ${how} by other users (mode ${mode}); run chmod ${dir ? 700 : 600} ${path}`);
  }
}
