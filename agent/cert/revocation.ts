// The CA's revocation list: the subject keys whose certificates no longer count, signed by the CA.
// Network byte order.
//
//    0      1      2                    34                   42                   50           52
//   +------+------+--------------------+--------------------+--------------------+------------+
//   | 0xCF | ver  | CA public key (32) | sequence (u64)     | issuedAt (u64 s)   | count (u16)|    ver = 1
//   +------+------+--------------------+--------------------+--------------------+------------+
//    52
//   +--------------------+--------------------+-- --+-----------+
//   | revoked key (32)   | revoked key (32)   | ... | sig (64)  |      count <= CERT_MAX_REVOKED
//   +--------------------+--------------------+-- --+-----------+
//
// Keys, not certificate fingerprints: revoking a key revokes every certificate the CA ever issued for it,
// including one a host renewed or a copy the CA never saw, and a handshake knows the peer's key before any
// certificate. The keys are strictly ascending (sorted, no repeats): one set, one encoding, and a binary
// search to look one up. sequence: the CA increments it with every list it signs; a holder replaces its
// list only with a verified one of a higher sequence (supersedes), so an old list replayed cannot
// un-revoke a key. issuedAt: seconds since the Unix epoch, for people and logs; the order is the
// sequence's, never the clock's. sig: Ed25519 by the CA key over "idloc revocation list v1" || every byte
// before sig.
//
// Parsing never throws and returns undefined for anything malformed (wrong magic or version, short or
// trailing bytes, a count over CERT_MAX_REVOKED, keys out of order); verifyRevocationList checks the
// signature. Signing throws RangeError on the caller's bugs (over CERT_MAX_REVOKED keys).
import { Reader, Writer } from '../base/binary.js';
import { bytesEqual, hex } from '../base/bytes.js';
import { CERT_MAX_REVOKED } from '../base/constants.js';
import { ED25519_SIGNATURE_BYTES, ed25519Signer, ed25519Verify } from '../base/ed25519.js';
import { isoSeconds } from './certificate.js';
import { PUBLIC_KEY_BYTES, armor, dearmor, domainInput } from './wire.js';

export const CRL_MAGIC = 0xcf;
export const CRL_VERSION = 1;
export const CRL_PEM_LABEL = 'IDLOC REVOCATION LIST';
const DOMAIN = new TextEncoder().encode('idloc revocation list v1');
const HEADER_BYTES = 52;
/** The largest list: the header, every key, the signature. */
export const CRL_MAX_BYTES = HEADER_BYTES + CERT_MAX_REVOKED * PUBLIC_KEY_BYTES + ED25519_SIGNATURE_BYTES;

export interface RevocationList {
  caPublicKey: Uint8Array;
  /** Higher replaces lower (u64 on the wire; safe integers here). */
  sequence: number;
  /** Seconds since the Unix epoch. */
  issuedAt: number;
  /** Strictly ascending. */
  revoked: Uint8Array[];
  signature: Uint8Array;
}

/** Byte order of two keys, for sorting and the binary search. */
function compareKeys(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < PUBLIC_KEY_BYTES; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
}

function writeBody(l: Omit<RevocationList, 'signature'>): Writer {
  if (l.revoked.length > CERT_MAX_REVOKED) throw new RangeError(`a revocation list holds at most ${CERT_MAX_REVOKED} keys`);
  for (let i = 1; i < l.revoked.length; i++) {
    if (compareKeys(l.revoked[i - 1]!, l.revoked[i]!) >= 0) throw new RangeError('revoked keys must be sorted, no repeats');
  }
  const w = new Writer(HEADER_BYTES + l.revoked.length * PUBLIC_KEY_BYTES + ED25519_SIGNATURE_BYTES);
  w.u8(CRL_MAGIC);
  w.u8(CRL_VERSION);
  w.bytes(l.caPublicKey, PUBLIC_KEY_BYTES);
  w.u64(BigInt(l.sequence));
  w.u64(BigInt(l.issuedAt));
  w.u16(l.revoked.length);
  for (const k of l.revoked) w.bytes(k, PUBLIC_KEY_BYTES);
  return w;
}

/** A list signed by the CA (caSeed: its 32-byte Ed25519 secret); the keys are sorted and deduplicated here. */
export function signRevocationList(
  l: Omit<RevocationList, 'signature' | 'revoked'> & { revoked: readonly Uint8Array[] }, caSeed: Uint8Array,
): RevocationList {
  const revoked: Uint8Array[] = [];
  for (const k of [...l.revoked].sort(compareKeys)) {
    if (!revoked.length || !bytesEqual(revoked[revoked.length - 1]!, k)) revoked.push(new Uint8Array(k));
  }
  const body = { ...l, revoked };
  return { ...body, signature: ed25519Signer(caSeed)(domainInput(DOMAIN, writeBody(body).done())) };
}

export function marshalRevocationList(l: RevocationList): Uint8Array {
  const w = writeBody(l);
  w.bytes(l.signature, ED25519_SIGNATURE_BYTES);
  return w.done();
}

/** A list from its bytes, or undefined if they break any rule at the top (signature unchecked). */
export function parseRevocationList(b: Uint8Array): RevocationList | undefined {
  if (b.length > CRL_MAX_BYTES) return undefined;
  const r = new Reader(b);
  if (r.u8() !== CRL_MAGIC || r.u8() !== CRL_VERSION) return undefined;
  const caPublicKey = r.copy(PUBLIC_KEY_BYTES);
  const sequence = r.u64(), issuedAt = r.u64();
  const n = r.u16();
  if (r.bad || n > CERT_MAX_REVOKED || r.remaining !== n * PUBLIC_KEY_BYTES + ED25519_SIGNATURE_BYTES) return undefined;
  const revoked: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const k = r.copy(PUBLIC_KEY_BYTES);
    if (i > 0 && compareKeys(revoked[i - 1]!, k) >= 0) return undefined;
    revoked.push(k);
  }
  const signature = r.copy(ED25519_SIGNATURE_BYTES);
  const max = BigInt(Number.MAX_SAFE_INTEGER);
  if (!r.done() || sequence > max || issuedAt > max) return undefined;
  return { caPublicKey, sequence: Number(sequence), issuedAt: Number(issuedAt), revoked, signature };
}

/** True if `l` is signed by one of the trusted CA keys. */
export function verifyRevocationList(l: RevocationList, caPublicKeys: readonly Uint8Array[]): boolean {
  if (!caPublicKeys.some((k) => bytesEqual(k, l.caPublicKey))) return false;
  let body: Uint8Array;
  try { body = writeBody(l).done(); } catch { return false; }
  return ed25519Verify(l.caPublicKey, domainInput(DOMAIN, body), l.signature);
}

/** Whether `next` (verified) should replace `current` (verified, or none yet): same CA, higher sequence. */
export function supersedes(next: RevocationList, current: RevocationList | undefined): boolean {
  if (!current) return true;
  return bytesEqual(next.caPublicKey, current.caPublicKey) && next.sequence > current.sequence;
}

/** True if `key` is on the list (binary search over the sorted keys). */
export function isRevoked(l: RevocationList, key: Uint8Array): boolean {
  let lo = 0, hi = l.revoked.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const c = compareKeys(l.revoked[mid]!, key);
    if (c === 0) return key.length === PUBLIC_KEY_BYTES;
    if (c < 0) lo = mid + 1; else hi = mid - 1;
  }
  return false;
}

export function revocationListToText(l: RevocationList): string {
  return armor(CRL_PEM_LABEL, marshalRevocationList(l), [
    `idloc revocation list ${l.sequence} of CA ${hex(l.caPublicKey)}`,
    `issued ${isoSeconds(l.issuedAt)}, ${l.revoked.length} revoked key${l.revoked.length === 1 ? '' : 's'}`,
  ]);
}

/** The list in a file's text, or undefined if it holds none or a malformed one. */
export function revocationListFromText(text: string): RevocationList | undefined {
  const b = dearmor(CRL_PEM_LABEL, text, CRL_MAX_BYTES);
  return b && parseRevocationList(b);
}
