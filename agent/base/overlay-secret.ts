// The shared secret of a private overlay (RELOAD's PSK admission for small overlays, RFC 6940 section
// 13.4; WireGuard's preshared key): 32 random bytes in a file that every member holds, 0600.
//
// Nothing travels under the secret itself. Each use gets its own key, derived with keyed BLAKE2s so that
// a key learned from one use (a leaked tag key, say) tells nothing about the others or the secret:
//
//   tag   = BLAKE2s(key = secret, "idloc overlay tag v1")     16-byte trailer on overlay and relay datagrams
//   psk   = BLAKE2s(key = secret, "idloc tunnel psk v1")      the Noise IKpsk2 pre-shared key of tunnels
//   mac1  = BLAKE2s(key = secret, "idloc mac1 v1")            mixed into a handshake's mac1 key
//
// Rotation: a host holds an ordered list of secrets. It sends with the first and accepts all of them, and
// answers a handshake with the secret its initiation proved. Every host moves through [old] -> [old, new] ->
// [new, old] -> [new], one step on all hosts before the next: at every moment any two hosts accept the
// sending secret of the other. The list is replaced in place (reload), and `version` tells the holders of
// derived state (per-key MAC states) to rebuild it.
import { blake2s } from '@noble/hashes/blake2.js';
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, linkSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { checkPrivate, StateFileError } from './state-file.js';
import { OVERLAY_SECRET_BYTES, OVERLAY_SECRETS_MAX } from './constants.js';

/** Keys derived from one secret. */
export interface SecretKeys {
  /** Keys the 16-byte tag on overlay (0xD2) and peer-relay (0xD3) datagrams. */
  readonly tag: Uint8Array;
  /** The tunnels' Noise IKpsk2 pre-shared key. */
  readonly psk: Uint8Array;
  /** Mixed into the mac1 key of handshake messages: without it an initiation is dropped unanswered. */
  readonly mac1: Uint8Array;
  /** A short, non-secret name for status and logs (the first bytes of a hash of the tag key). */
  readonly id: string;
}

const enc = new TextEncoder();

export function deriveSecretKeys(secret: Uint8Array): SecretKeys {
  if (secret.length !== OVERLAY_SECRET_BYTES) throw new Error(`an overlay secret is ${OVERLAY_SECRET_BYTES} bytes`);
  const derive = (label: string): Uint8Array => blake2s(enc.encode(label), { key: secret });
  const tag = derive('idloc overlay tag v1');
  const id = Buffer.from(blake2s(tag, { dkLen: 4 })).toString('hex');
  return { tag, psk: derive('idloc tunnel psk v1'), mac1: derive('idloc mac1 v1'), id };
}

/** The secrets a host holds: it sends with `current`, accepts every one in `accepted` (current first). */
export class OverlaySecrets {
  private list: SecretKeys[];
  /** Bumped on every change, so per-key derived state (MAC states) is rebuilt lazily, not per packet. */
  version = 0;

  constructor(keys: SecretKeys[]) {
    if (keys.length === 0 || keys.length > OVERLAY_SECRETS_MAX) throw new Error(`between 1 and ${OVERLAY_SECRETS_MAX} overlay secrets`);
    this.list = keys;
  }

  get current(): SecretKeys { return this.list[0]!; }
  get accepted(): readonly SecretKeys[] { return this.list; }

  /** Rotation: the new list takes effect for the next datagram and handshake. Established tunnels keep
   *  their session keys until their next rekey, which uses the new list. */
  replace(keys: SecretKeys[]): void {
    if (keys.length === 0 || keys.length > OVERLAY_SECRETS_MAX) throw new Error(`between 1 and ${OVERLAY_SECRETS_MAX} overlay secrets`);
    this.list = keys;
    this.version++;
  }

  describe(): string {
    const ids = this.list.map((k) => k.id);
    return ids.length === 1 ? `shared secret ${ids[0]}` : `shared secret ${ids[0]} (also accepting ${ids.slice(1).join(', ')}: rotation)`;
  }
}

/** A secret file: exactly OVERLAY_SECRET_BYTES bytes, private to its owner. Throws a StateFileError with
 *  the one line to print: a missing, short, long or exposed file is never silently a different overlay. */
export function readSecretFile(path: string): Uint8Array {
  let bytes: Buffer;
  try {
    checkPrivate(path);
    bytes = readFileSync(path);
  } catch (e) {
    if (e instanceof StateFileError) throw new StateFileError(`overlay secret ${e.message}`);
    const code = (e as NodeJS.ErrnoException).code;
    throw new StateFileError(`overlay secret ${path}: cannot read it (${code ?? (e as Error).message})`);
  }
  if (bytes.length !== OVERLAY_SECRET_BYTES) {
    throw new StateFileError(`overlay secret ${path} holds ${bytes.length} bytes, not ${OVERLAY_SECRET_BYTES}; make one with idloc-agent secret generate`);
  }
  return new Uint8Array(bytes);
}

/** Keys for secret files in order (the first is the one sent with). */
export function loadSecrets(paths: readonly string[]): SecretKeys[] {
  if (paths.length > OVERLAY_SECRETS_MAX) throw new StateFileError(`at most ${OVERLAY_SECRETS_MAX} overlay secrets at once (one to send with, one being rotated out)`);
  return paths.map((p) => deriveSecretKeys(readSecretFile(p)));
}

/** `idloc-agent secret generate FILE`: a fresh secret, written whole or not at all (a temporary file linked
 *  into place), mode 0600, never over an existing file (that would silently split an overlay). */
export function generateSecretFile(path: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, randomBytes(OVERLAY_SECRET_BYTES));
    fsyncSync(fd);
  } finally { closeSync(fd); }
  try {
    linkSync(tmp, path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new StateFileError(code === 'EEXIST' ? `${path} exists; a secret is never overwritten (remove it first if you mean to)` : `cannot write ${path} (${code})`);
  } finally { unlinkSync(tmp); }
}
