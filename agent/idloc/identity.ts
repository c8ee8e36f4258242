// The host's identity: an Ed25519 key pair created on first start and kept in the state dir
// (directory 0700, file 0600; looser modes are refused, as ssh refuses a private key others can read). Everything else a peer knows about us (NodeID, overlay addresses)
// is derived from the public key, so the key file is the only secret and the only state.
//
// identity.json: {"version":1,"privateKey":"<64 hex>","publicKey":"<64 hex>"[,"ipv4Attempt":N]}
// ipv4Attempt is the derivation the overlay's first-come IPv4 claim settled on (0 unless another key
// held the address first); kept so the host's IPv4 overlay address survives restarts.
import { ed25519 } from '@noble/curves/ed25519.js';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { IDENTITY_FILE_NAME, IPV4_MAX_CLAIM_ATTEMPT } from '../base/constants.js';
import { formatIpv4, formatIpv6, ipv4FromNodeId, ipv6FromNodeId, nodeIdFromPublicKey } from './addresses.js';
import { fromHex, hex } from '../base/bytes.js';
import {
  checkPrivate, corruptStateFile, parseStateJson, readStateFile, StateFileError, writeStateFile,
} from '../base/state-file.js';

export interface Identity {
  readonly privateKey: Uint8Array; // Ed25519 secret key (32-byte seed)
  readonly publicKey: Uint8Array;
  readonly publicKeyHex: string;
  readonly nodeId: Uint8Array;
  readonly nodeIdHex: string;
  readonly ipv4: number;
  /** Which derivation ipv4 is: ipv4FromNodeId(nodeId, ipv4Attempt). */
  readonly ipv4Attempt: number;
  readonly ipv6: Uint8Array;
}

export interface IdentityJson { nodeId: string; publicKey: string; ipv4: string; ipv6: string }

/** A state dir or identity file that cannot be used; the message is the one line the CLI prints. */
export class IdentityError extends StateFileError {}

export function identityFromPrivateKey(privateKey: Uint8Array, ipv4Attempt = 0): Identity {
  const publicKey = ed25519.getPublicKey(privateKey);
  const nodeId = nodeIdFromPublicKey(publicKey);
  return {
    privateKey, publicKey, publicKeyHex: hex(publicKey),
    nodeId, nodeIdHex: hex(nodeId), ipv4: ipv4FromNodeId(nodeId, ipv4Attempt), ipv4Attempt, ipv6: ipv6FromNodeId(nodeId),
  };
}

/** The same identity with the IPv4 address of another claim attempt. */
export function withIpv4Attempt(id: Identity, ipv4Attempt: number): Identity {
  return { ...id, ipv4Attempt, ipv4: ipv4FromNodeId(id.nodeId, ipv4Attempt) };
}

export function generateIdentity(): Identity {
  return identityFromPrivateKey(ed25519.utils.randomSecretKey());
}

export function identityToJson(id: Pick<Identity, 'nodeIdHex' | 'publicKeyHex' | 'ipv4' | 'ipv6'>): IdentityJson {
  return { nodeId: id.nodeIdHex, publicKey: id.publicKeyHex, ipv4: formatIpv4(id.ipv4), ipv6: formatIpv6(id.ipv6) };
}

/** The fix a corrupt identity.json calls for: never a silent new key, since the key is the host's name. */
const IDENTITY_FIX = 'restore it from a backup, or move it away to start with a new identity';

/** Load the identity from stateDir, creating directory and key on first use. Refuses (IdentityError, one
 *  line naming the fix) a state dir or key file other users could read or write, and a corrupt key file. */
export function loadOrCreateIdentity(stateDir: string): Identity {
  const file = join(stateDir, IDENTITY_FILE_NAME);
  try {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new IdentityError(`cannot create state dir ${stateDir}: ${(e as Error).message}`);
  }
  return asIdentityError(() => {
    checkPrivate(stateDir);
    const text = readStateFile(file);
    if (text !== undefined) {
      checkPrivate(file);
      return parseIdentityFile(file, text);
    }
    const id = generateIdentity();
    // create-only: an agent or `id` that got here first keeps its key, and we take that one
    if (writeStateFile(file, identityBody(id), { createOnly: true })) return id;
    return parseIdentityFile(file, readStateFile(file) ?? '');
  });
}

/** Remember the IPv4 claim attempt the overlay settled on (rewrites identity.json atomically). */
export function saveIpv4Attempt(stateDir: string, id: Identity): void {
  asIdentityError(() => writeStateFile(join(stateDir, IDENTITY_FILE_NAME), identityBody(id)));
}

function identityBody(id: Identity): string {
  return JSON.stringify({
    version: 1, privateKey: hex(id.privateKey), publicKey: id.publicKeyHex,
    ...(id.ipv4Attempt ? { ipv4Attempt: id.ipv4Attempt } : {}),
  }) + '\n';
}

function asIdentityError<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw e instanceof StateFileError && !(e instanceof IdentityError) ? new IdentityError(e.message) : e;
  }
}

function parseIdentityFile(file: string, text: string): Identity {
  const o = parseStateJson(file, text, IDENTITY_FIX);
  const priv = typeof o.privateKey === 'string' ? fromHex(o.privateKey, 32) : undefined;
  if (!priv) throw corruptStateFile(file, 'privateKey is not 64 hex characters', IDENTITY_FIX);
  const attempt = o.ipv4Attempt ?? 0;
  if (typeof attempt !== 'number' || !Number.isInteger(attempt) || attempt < 0 || attempt > IPV4_MAX_CLAIM_ATTEMPT) {
    throw corruptStateFile(file, `ipv4Attempt is not an integer 0..${IPV4_MAX_CLAIM_ATTEMPT}`, IDENTITY_FIX);
  }
  const id = identityFromPrivateKey(priv, attempt);
  if (typeof o.publicKey === 'string' && o.publicKey.toLowerCase() !== id.publicKeyHex) {
    throw corruptStateFile(file, 'publicKey does not match privateKey', IDENTITY_FIX);
  }
  return id;
}
