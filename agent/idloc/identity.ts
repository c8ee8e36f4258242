// The host's identity: an Ed25519 key pair created on first start and kept in the state dir
// (directory 0700, file 0600). Everything else a peer knows about us (NodeID, overlay addresses)
// is derived from the public key, so the key file is the only secret and the only state.
//
// identity.json: {"version":1,"privateKey":"<64 hex>","publicKey":"<64 hex>"[,"ipv4Attempt":N]}
// ipv4Attempt is the derivation the overlay's first-come IPv4 claim settled on (0 unless another key
// held the address first); kept so the host's IPv4 overlay address survives restarts.
import { ed25519 } from '@noble/curves/ed25519.js';
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { IDENTITY_FILE_NAME, IPV4_MAX_CLAIM_ATTEMPT } from '../base/constants.js';
import { formatIpv4, formatIpv6, ipv4FromNodeId, ipv6FromNodeId, nodeIdFromPublicKey } from './addresses.js';
import { fromHex, hex } from '../base/bytes.js';

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

export class IdentityError extends Error {}

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

/** Load the identity from stateDir, creating directory and key on first use. */
export function loadOrCreateIdentity(stateDir: string): Identity {
  const file = join(stateDir, IDENTITY_FILE_NAME);
  let text: string | undefined;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new IdentityError(`cannot read ${file}: ${(e as Error).message}`);
  }
  if (text !== undefined) return parseIdentityFile(file, text);
  try {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new IdentityError(`cannot create state dir ${stateDir}: ${(e as Error).message}`);
  }
  const id = generateIdentity();
  writeIdentityFile(file, id);
  return id;
}

/** Remember the IPv4 claim attempt the overlay settled on (rewrites identity.json). */
export function saveIpv4Attempt(stateDir: string, id: Identity): void {
  writeIdentityFile(join(stateDir, IDENTITY_FILE_NAME), id);
}

function writeIdentityFile(file: string, id: Identity): void {
  const body = JSON.stringify({
    version: 1, privateKey: hex(id.privateKey), publicKey: id.publicKeyHex,
    ...(id.ipv4Attempt ? { ipv4Attempt: id.ipv4Attempt } : {}),
  }) + '\n';
  // Write-then-rename so a crash never leaves a half-written key; mode 0600 from the start.
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, body, { mode: 0o600 });
    chmodSync(tmp, 0o600);
    renameSync(tmp, file);
  } catch (e) {
    throw new IdentityError(`cannot write ${file}: ${(e as Error).message}`);
  }
}

function parseIdentityFile(file: string, text: string): Identity {
  let obj: unknown;
  try { obj = JSON.parse(text); } catch { throw new IdentityError(`${file} is not valid JSON`); }
  const o = obj as Record<string, unknown>;
  const priv = typeof o?.privateKey === 'string' ? fromHex(o.privateKey, 32) : undefined;
  if (!priv) throw new IdentityError(`${file}: privateKey must be 64 hex characters`);
  const attempt = o.ipv4Attempt ?? 0;
  if (typeof attempt !== 'number' || !Number.isInteger(attempt) || attempt < 0 || attempt > IPV4_MAX_CLAIM_ATTEMPT) {
    throw new IdentityError(`${file}: ipv4Attempt must be an integer 0..${IPV4_MAX_CLAIM_ATTEMPT}`);
  }
  const id = identityFromPrivateKey(priv, attempt);
  if (typeof o.publicKey === 'string' && o.publicKey.toLowerCase() !== id.publicKeyHex) {
    throw new IdentityError(`${file}: publicKey does not match privateKey`);
  }
  return id;
}
