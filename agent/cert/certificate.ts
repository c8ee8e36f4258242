// Certificates for private overlays (RELOAD's enrollment server, Nebula's CA): a CA key signs that a
// member's Ed25519 key belongs to the overlay under a name and a few groups, for a time. A member shows
// its certificate; anyone holding the CA's public key checks it offline. Network byte order.
//
//    0      1      2      3                    35                   67                  87
//   +------+------+------+--------------------+--------------------+-------------------+
//   | 0xCE | ver  | kind | CA public key (32) | subject key (32)   | subject NodeID(20)|   ver = 1
//   +------+------+------+--------------------+--------------------+-------------------+
//    87                  95                  103
//   +-------------------+-------------------+-------+-----------+-------+------+--------+-- --+-----------+
//   | notBefore (u64 s) | notAfter (u64 s)  | nlen  | name      | ngrp  | glen | group  | ... | sig (64)  |
//   +-------------------+-------------------+-------+-----------+-------+------+--------+-- --+-----------+
//
// kind: 1 = CA (self-signed: CA key == subject key), 2 = member. Times are whole seconds since the Unix
// epoch, the validity [notBefore, notAfter] inclusive. name: the rule of overlay names (overlay/names.ts:
// 1..NAME_MAX_LEN of a-z 0-9 '-', no '-' at either end, not 40 hex digits), restated here because cert/
// sits below overlay/. groups: at most CERT_MAX_GROUPS, each a label of 1..CERT_GROUP_MAX_LEN, strictly
// ascending (sorted, no repeats), so one set of groups has exactly one encoding and one fingerprint.
// sig: Ed25519 by the CA key over "idloc certificate v1" || every byte before sig; the domain string
// keeps it from reading as an overlay message's, a record's or a revocation list's signature.
//
// The NodeID: cert/ cannot import idloc/addresses.ts (a higher floor), so signing and verifying take a
// `nodeIdOf(key)` function (the caller passes nodeIdFromPublicKey). Signing computes the NodeID with it,
// so no caller can issue a certificate naming another key's NodeID; verifying recomputes and compares, so
// a forged or stale NodeID is 'wrong-node-id' even under a good signature.
//
// Parsing never throws and returns undefined for anything malformed (wrong magic, version or kind, any
// field short or invalid, trailing bytes, over CERT_MAX_BYTES); it does not check the signature, which
// verifyCertificate does. Signing throws RangeError on the caller's bugs.
import { sha256 } from '@noble/hashes/sha2.js';
import { Reader, Writer } from '../base/binary.js';
import {
  CERT_GROUP_MAX_LEN, CERT_MAX_BYTES, CERT_MAX_GROUPS, NAME_MAX_LEN, NODE_ID_BYTES,
} from '../base/constants.js';
import { ED25519_SIGNATURE_BYTES, ed25519Signer, ed25519Verify } from '../base/ed25519.js';
import { bytesEqual, hex } from '../base/bytes.js';
import { PUBLIC_KEY_BYTES, armor, dearmor, domainInput, isLabel, readLabel, writeLabel } from './wire.js';

export const CERT_MAGIC = 0xce;
export const CERT_VERSION = 1;
const KIND_CA = 1;
const KIND_MEMBER = 2;
const DOMAIN = new TextEncoder().encode('idloc certificate v1');
const NODE_ID_HEX_RE = /^[0-9a-f]{40}$/;
export const CERT_PEM_LABEL = 'IDLOC CERTIFICATE';

export type CertificateKind = 'ca' | 'member';

/** What the CA signs. */
export interface CertificateFields {
  kind: CertificateKind;
  caPublicKey: Uint8Array;
  subjectPublicKey: Uint8Array;
  nodeId: Uint8Array;
  name: string;
  groups: string[];
  /** Seconds since the Unix epoch, inclusive at both ends. */
  notBefore: number;
  notAfter: number;
}

export interface Certificate extends CertificateFields {
  signature: Uint8Array;
}

/** The NodeID of a public key (idloc/addresses.ts nodeIdFromPublicKey, passed in from a higher floor). */
export type NodeIdOf = (publicKey: Uint8Array) => Uint8Array;

/** True for a name a certificate may carry (the rule at the top). */
export function isValidCertName(name: string): boolean {
  return isLabel(name, NAME_MAX_LEN) && !NODE_ID_HEX_RE.test(name);
}

/** True for a group name a certificate may carry. */
export function isValidGroup(group: string): boolean {
  return isLabel(group, CERT_GROUP_MAX_LEN);
}

function groupsInOrder(groups: readonly string[]): boolean {
  for (let i = 1; i < groups.length; i++) if (!(groups[i - 1]! < groups[i]!)) return false;
  return true;
}

function writeFields(c: CertificateFields): Writer {
  if (c.kind === 'ca' && !bytesEqual(c.caPublicKey, c.subjectPublicKey)) throw new RangeError('a CA certificate is self-signed');
  if (!isValidCertName(c.name)) throw new RangeError(`invalid certificate name: ${JSON.stringify(c.name)}`);
  if (c.groups.length > CERT_MAX_GROUPS || !c.groups.every(isValidGroup) || !groupsInOrder(c.groups)) {
    throw new RangeError(`groups must be at most ${CERT_MAX_GROUPS} valid labels, sorted, no repeats`);
  }
  if (!(c.notBefore <= c.notAfter)) throw new RangeError('notBefore is after notAfter');
  const w = new Writer(CERT_MAX_BYTES);
  w.u8(CERT_MAGIC);
  w.u8(CERT_VERSION);
  w.u8(c.kind === 'ca' ? KIND_CA : KIND_MEMBER);
  w.bytes(c.caPublicKey, PUBLIC_KEY_BYTES);
  w.bytes(c.subjectPublicKey, PUBLIC_KEY_BYTES);
  w.bytes(c.nodeId, NODE_ID_BYTES);
  w.u64(BigInt(c.notBefore));
  w.u64(BigInt(c.notAfter));
  writeLabel(w, c.name);
  w.u8(c.groups.length);
  for (const g of c.groups) writeLabel(w, g);
  return w;
}

/** The fields as the CA signs them: kind, keys, name, groups (sorted and deduplicated here), validity. The
 *  NodeID comes from nodeIdOf(subject key); caSeed is the CA's 32-byte Ed25519 secret. */
export function signCertificate(
  fields: Omit<CertificateFields, 'nodeId'>, caSeed: Uint8Array, nodeIdOf: NodeIdOf,
): Certificate {
  if (fields.subjectPublicKey.length !== PUBLIC_KEY_BYTES) throw new RangeError(`a subject key is ${PUBLIC_KEY_BYTES} bytes`);
  const c: CertificateFields = {
    ...fields, groups: [...new Set(fields.groups)].sort(), nodeId: nodeIdOf(fields.subjectPublicKey),
  };
  const body = writeFields(c).done();
  return { ...c, signature: ed25519Signer(caSeed)(domainInput(DOMAIN, body)) };
}

/** The certificate's bytes (layout at the top). Throws RangeError on fields the rules refuse. */
export function marshalCertificate(c: Certificate): Uint8Array {
  const w = writeFields(c);
  w.bytes(c.signature, ED25519_SIGNATURE_BYTES);
  if (w.length > CERT_MAX_BYTES) throw new RangeError(`certificate over ${CERT_MAX_BYTES} bytes`);
  return w.done();
}

/** A certificate from its bytes, or undefined if they break any rule at the top (signature unchecked). */
export function parseCertificate(b: Uint8Array): Certificate | undefined {
  if (b.length > CERT_MAX_BYTES) return undefined;
  const r = new Reader(b);
  if (r.u8() !== CERT_MAGIC || r.u8() !== CERT_VERSION) return undefined;
  const k = r.u8();
  if (k !== KIND_CA && k !== KIND_MEMBER) return undefined;
  const caPublicKey = r.copy(PUBLIC_KEY_BYTES);
  const subjectPublicKey = r.copy(PUBLIC_KEY_BYTES);
  const nodeId = r.copy(NODE_ID_BYTES);
  const nb = r.u64(), na = r.u64();
  const name = readLabel(r, isValidCertName);
  const n = r.u8();
  if (name === undefined || n > CERT_MAX_GROUPS || r.bad) return undefined;
  const groups: string[] = [];
  for (let i = 0; i < n; i++) {
    const g = readLabel(r, isValidGroup);
    if (g === undefined) return undefined;
    groups.push(g);
  }
  const signature = r.copy(ED25519_SIGNATURE_BYTES);
  if (!r.done() || !groupsInOrder(groups) || nb > na || na > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
  const kind: CertificateKind = k === KIND_CA ? 'ca' : 'member';
  if (kind === 'ca' && !bytesEqual(caPublicKey, subjectPublicKey)) return undefined;
  return {
    kind, caPublicKey, subjectPublicKey, nodeId, name, groups, notBefore: Number(nb), notAfter: Number(na), signature,
  };
}

/** SHA-256 of the certificate's bytes: a cache key for certificates already verified. Two certificates with
 *  one fingerprint are the same bytes, signature included. */
export function certificateFingerprint(c: Certificate | Uint8Array): Uint8Array {
  return sha256(c instanceof Uint8Array ? c : marshalCertificate(c));
}

/** True if the CA key the certificate names signed it (nothing else checked: verifyCertificate does). */
export function certificateSignatureValid(c: Certificate): boolean {
  let body: Uint8Array;
  try { body = writeFields(c).done(); } catch { return false; }
  return ed25519Verify(c.caPublicKey, domainInput(DOMAIN, body), c.signature);
}

export type VerifyFailure =
  | 'wrong-kind' | 'wrong-ca' | 'bad-signature' | 'wrong-node-id' | 'not-yet-valid' | 'expired' | 'wrong-key' | 'revoked';

export type VerifyResult = { ok: true } | { ok: false; reason: VerifyFailure };

export interface VerifyOptions {
  /** The CA keys this overlay trusts (from their ca.crt files). */
  caPublicKeys: readonly Uint8Array[];
  /** Seconds since the Unix epoch. */
  now: number;
  nodeIdOf: NodeIdOf;
  /** The key the peer proved it holds (its handshake's static): the certificate must be for that key. */
  expectSubjectKey?: Uint8Array;
  /** 'member' unless told: a CA certificate is an anchor, not a member's credential. */
  kind?: CertificateKind;
  /** True for a subject key the CA has revoked (revocation.ts isRevoked on a verified list). */
  isRevoked?: (subjectPublicKey: Uint8Array) => boolean;
}

/** Whether `c` is a valid certificate of one of the trusted CAs, now, for the expected key; the checks run
 *  cheapest first, the signature last but one (a revocation lookup is cheaper, but only a signed
 *  certificate's key is worth looking up). */
export function verifyCertificate(c: Certificate, o: VerifyOptions): VerifyResult {
  const fail = (reason: VerifyFailure): VerifyResult => ({ ok: false, reason });
  if (c.kind !== (o.kind ?? 'member')) return fail('wrong-kind');
  if (!o.caPublicKeys.some((k) => bytesEqual(k, c.caPublicKey))) return fail('wrong-ca');
  if (o.expectSubjectKey && !bytesEqual(o.expectSubjectKey, c.subjectPublicKey)) return fail('wrong-key');
  if (o.now < c.notBefore) return fail('not-yet-valid');
  if (o.now > c.notAfter) return fail('expired');
  if (!certificateSignatureValid(c)) return fail('bad-signature');
  if (!bytesEqual(o.nodeIdOf(c.subjectPublicKey), c.nodeId)) return fail('wrong-node-id');
  if (o.isRevoked?.(c.subjectPublicKey)) return fail('revoked');
  return { ok: true };
}

/** A UTC time of u64 seconds as ISO 8601 without milliseconds. */
export function isoSeconds(s: number): string {
  return new Date(s * 1000).toISOString().replace('.000Z', 'Z');
}

/** The file form (wire.ts): the armoured bytes after comment lines a person can read. */
export function certificateToText(c: Certificate): string {
  return armor(CERT_PEM_LABEL, marshalCertificate(c), [
    `idloc ${c.kind === 'ca' ? 'CA' : 'member'} certificate "${c.name}"${c.groups.length ? ` groups ${c.groups.join(',')}` : ''}`,
    `subject key ${hex(c.subjectPublicKey)}`,
    `node id     ${hex(c.nodeId)}`,
    `CA key      ${hex(c.caPublicKey)}`,
    `valid       ${isoSeconds(c.notBefore)} .. ${isoSeconds(c.notAfter)}`,
  ]);
}

/** The certificate in a file's text, or undefined if it holds none or a malformed one. */
export function certificateFromText(text: string): Certificate | undefined {
  const b = dearmor(CERT_PEM_LABEL, text, CERT_MAX_BYTES);
  return b && parseCertificate(b);
}
