// The CA's directory and what `idloc-agent ca` does with it: create the CA, issue member certificates,
// keep the revocation list. The directory holds three files:
//
//   ca.key       0600  {"version":1,"privateKey":"<64 hex>","publicKey":"<64 hex>"}, identity.json's form
//   ca.crt       0644  the CA's self-signed certificate (certificate.ts text form): what every member needs
//   revoked.crl  0644  the newest signed revocation list (revocation.ts text form), once a key is revoked
//
// revoked.crl is its own state: `revoke` reads it, checks the CA signed it, adds the key and writes the
// next sequence, so there is no second file to drift from the published one. Every write is atomic and
// durable (base/state-file.ts). The secret key is read as identity.json is: a directory or key file other
// users could read or write, and a corrupt or mismatched file, stop the command with one line naming the
// fix; nothing here ever makes a new CA in place of one it cannot read (its members would all be lost).
import { ed25519 } from '@noble/curves/ed25519.js';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { bytesEqual, fromHex, hex } from '../base/bytes.js';
import {
  CA_CERT_FILE_NAME, CA_KEY_FILE_NAME, CA_REVOCATION_FILE_NAME, CERT_BACKDATE_S, CERT_MAX_REVOKED,
} from '../base/constants.js';
import {
  checkPrivate, corruptStateFile, parseStateJson, readStateFile, StateFileError, writeStateFile,
} from '../base/state-file.js';
import {
  certificateFromText, certificateSignatureValid, certificateToText, isoSeconds, signCertificate,
  type Certificate, type NodeIdOf,
} from './certificate.js';
import {
  isRevoked, revocationListFromText, revocationListToText, signRevocationList, verifyRevocationList,
  type RevocationList,
} from './revocation.js';

/** A CA directory that cannot be used as asked; the message is the one line the CLI prints (exit 1). The
 *  functions here throw it, or base/state-file.ts's StateFileError (its parent) for an unreadable, exposed or
 *  corrupt file: callers catch StateFileError for both. */
export class CaError extends StateFileError {}

export interface Ca {
  readonly dir: string;
  readonly seed: Uint8Array;
  readonly publicKey: Uint8Array;
  readonly cert: Certificate;
}

const KEY_FIX = 'restore the CA directory from a backup; a new CA (ca init elsewhere) means re-issuing every member';

function paths(dir: string) {
  return { key: join(dir, CA_KEY_FILE_NAME), cert: join(dir, CA_CERT_FILE_NAME), crl: join(dir, CA_REVOCATION_FILE_NAME) };
}

/** Create a CA in `dir` (made 0700 if missing): its key and its self-signed certificate named `name`,
 *  valid from now for validityS seconds. Refuses a directory that already holds a CA's files. */
export function initCa(dir: string, o: { name: string; validityS: number; now: number; nodeIdOf: NodeIdOf }): Ca {
  const p = paths(dir);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new CaError(`cannot create CA dir ${dir}: ${(e as Error).message}`);
  }
  checkPrivate(dir);
  for (const f of [p.key, p.cert]) {
    if (existsSync(f)) throw new CaError(`${dir} already holds a CA (${f} exists); ca init never replaces one: choose another --ca-dir`);
  }
  const seed = ed25519.utils.randomSecretKey();
  const publicKey = ed25519.getPublicKey(seed);
  const body = JSON.stringify({ version: 1, privateKey: hex(seed), publicKey: hex(publicKey) }) + '\n';
  if (!writeStateFile(p.key, body, { createOnly: true })) {
    throw new CaError(`${dir} already holds a CA (${p.key} appeared meanwhile); ca init never replaces one`);
  }
  const cert = signCertificate({
    kind: 'ca', caPublicKey: publicKey, subjectPublicKey: publicKey, name: o.name, groups: [],
    notBefore: o.now - CERT_BACKDATE_S, notAfter: o.now + o.validityS,
  }, seed, o.nodeIdOf);
  writeStateFile(p.cert, certificateToText(cert), { mode: 0o644 });
  return { dir, seed, publicKey, cert };
}

/** The CA in `dir`: its key (private files only) and its certificate, which must be the key's own. */
export function loadCa(dir: string): Ca {
  const p = paths(dir);
  if (!existsSync(p.key)) throw new CaError(`${dir} holds no CA (no ${CA_KEY_FILE_NAME}); create one with: idloc-agent ca init --ca-dir ${dir}`);
  checkPrivate(dir);
  checkPrivate(p.key);
  const o = parseStateJson(p.key, readStateFile(p.key) ?? '', KEY_FIX);
  const seed = typeof o.privateKey === 'string' ? fromHex(o.privateKey, 32) : undefined;
  if (!seed) throw corruptStateFile(p.key, 'privateKey is not 64 hex characters', KEY_FIX);
  const publicKey = ed25519.getPublicKey(seed);
  if (typeof o.publicKey === 'string' && o.publicKey.toLowerCase() !== hex(publicKey)) {
    throw corruptStateFile(p.key, 'publicKey does not match privateKey', KEY_FIX);
  }
  const text = readStateFile(p.cert);
  if (text === undefined) throw new CaError(`${p.cert} is missing; restore it from a backup or from any member's copy`);
  const cert = certificateFromText(text);
  const fix = 'restore it from a backup or from any member\'s copy';
  if (!cert) throw corruptStateFile(p.cert, 'not an idloc certificate', fix);
  if (cert.kind !== 'ca' || !bytesEqual(cert.caPublicKey, publicKey) || !certificateSignatureValid(cert)) {
    throw corruptStateFile(p.cert, `not the self-signed certificate of ${CA_KEY_FILE_NAME}'s key`, fix);
  }
  return { dir, seed, publicKey, cert };
}

export interface IssueRequest {
  subjectPublicKey: Uint8Array;
  name: string;
  groups: string[];
  validityS: number;
  /** Seconds since the Unix epoch. */
  now: number;
}

/** A member certificate, valid from a little before now (CERT_BACKDATE_S) for validityS seconds. Refuses a
 *  certificate that would outlive the CA's, or a key the CA revoked or holds itself. */
export function issueMemberCertificate(ca: Ca, r: IssueRequest, nodeIdOf: NodeIdOf): Certificate {
  const notAfter = r.now + r.validityS;
  if (r.now > ca.cert.notAfter) throw new CaError(`the CA in ${ca.dir} expired at ${isoSeconds(ca.cert.notAfter)}`);
  if (notAfter > ca.cert.notAfter) {
    throw new CaError(`a certificate valid until ${isoSeconds(notAfter)} would outlive the CA (valid until ${isoSeconds(ca.cert.notAfter)}); choose a shorter --valid`);
  }
  if (bytesEqual(r.subjectPublicKey, ca.publicKey)) throw new CaError('that is the CA\'s own key; a member needs a key of its own');
  const crl = loadRevocationList(ca);
  if (crl && isRevoked(crl, r.subjectPublicKey)) throw new CaError(`key ${hex(r.subjectPublicKey)} is revoked by this CA`);
  return signCertificate({
    kind: 'member', caPublicKey: ca.publicKey, subjectPublicKey: r.subjectPublicKey, name: r.name, groups: r.groups,
    notBefore: r.now - CERT_BACKDATE_S, notAfter,
  }, ca.seed, nodeIdOf);
}

/** The path of the CA dir's revocation list. */
export function revocationListPath(ca: Ca): string {
  return paths(ca.dir).crl;
}

/** The CA's current revocation list, or undefined if it has revoked nothing yet. */
export function loadRevocationList(ca: Ca): RevocationList | undefined {
  const file = revocationListPath(ca);
  const text = readStateFile(file);
  if (text === undefined) return undefined;
  const l = revocationListFromText(text);
  const fix = 'restore it from a backup or from the copy published in the overlay (a lost list un-revokes its keys)';
  if (!l) throw corruptStateFile(file, 'not an idloc revocation list', fix);
  if (!verifyRevocationList(l, [ca.publicKey])) throw corruptStateFile(file, 'not signed by this CA', fix);
  return l;
}

/** Add `key` to the revocation list and write the next one (sequence + 1). `added` is false, and nothing is
 *  written, when the key was on the list already. */
export function revokeKey(ca: Ca, key: Uint8Array, now: number): { list: RevocationList; added: boolean; file: string } {
  const file = revocationListPath(ca);
  if (bytesEqual(key, ca.publicKey)) throw new CaError('that is the CA\'s own key; to retire the CA, stop distributing its ca.crt');
  const current = loadRevocationList(ca);
  if (current && isRevoked(current, key)) return { list: current, added: false, file };
  const revoked = [...(current?.revoked ?? []), key];
  if (revoked.length > CERT_MAX_REVOKED) {
    throw new CaError(`the revocation list holds ${CERT_MAX_REVOKED} keys, the most it may; re-key the CA (ca init elsewhere) and re-issue the members`);
  }
  const list = signRevocationList({ caPublicKey: ca.publicKey, sequence: (current?.sequence ?? 0) + 1, issuedAt: now, revoked }, ca.seed);
  writeStateFile(file, revocationListToText(list), { mode: 0o644 });
  return { list, added: true, file };
}
