// Overlay names and the resource ids records are stored under (records.ts draws the records).
//
// Name rules (names and service names): lowercase ASCII letters, digits and '-', 1..63 characters
// (1..32 for services), neither starting nor ending with '-', so `<name>.idloc` is a valid DNS label.
// A name of exactly 40 hex digits is refused: `resolve` reads that as a NodeID. normalizeName() maps user
// input (any case, optional trailing ".idloc" or ".") to this form; records carry only normalized names.
//
// Resource ids, 20 bytes (NODE_ID_BYTES), one per record kind:
//   LOCATOR     the owner's NodeID
//   IPV4_CLAIM  SHA-256("idloc ipv4" || IPv4 u32)[0..20)
//   NAME        SHA-256("idloc name" || name)[0..20)          (P2PNS)
//   SERVICE     SHA-256("idloc service" || service name)[0..20)
import { sha256 } from '@noble/hashes/sha2.js';
import { setU32 } from '../base/binary.js';
import { NAME_MAX_LEN, NODE_ID_BYTES, SERVICE_NAME_MAX_LEN } from '../base/constants.js';
import { nodeIdFromPublicKey } from '../idloc/addresses.js';

const enc = new TextEncoder();
const IPV4_RES_TAG = enc.encode('idloc ipv4');
const NAME_RES_TAG = enc.encode('idloc name');
const SERVICE_RES_TAG = enc.encode('idloc service');

const LABEL_RE = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/;
const NODE_ID_HEX_RE = /^[0-9a-f]{40}$/;

/** True for a normalized overlay name (rules at the top). */
export function isValidName(name: string): boolean {
  return name.length >= 1 && name.length <= NAME_MAX_LEN && LABEL_RE.test(name) && !NODE_ID_HEX_RE.test(name);
}

export function isValidServiceName(s: string): boolean {
  return s.length >= 1 && s.length <= SERVICE_NAME_MAX_LEN && LABEL_RE.test(s);
}

/** User input → normalized name, or undefined if it breaks the rules. Lowercases, drops a trailing
 *  "." and ".idloc". Only ASCII is accepted: no Unicode case folding, so no look-alike names. */
export function normalizeName(input: string): string | undefined {
  let s = input.trim();
  if (!/^[\x21-\x7e]+$/.test(s)) return undefined;
  s = s.toLowerCase();
  if (s.endsWith('.')) s = s.slice(0, -1);
  if (s.endsWith('.idloc')) s = s.slice(0, -'.idloc'.length);
  return isValidName(s) ? s : undefined;
}

function taggedId(tag: Uint8Array, data: Uint8Array): Uint8Array {
  const input = new Uint8Array(tag.length + data.length);
  input.set(tag);
  input.set(data, tag.length);
  return sha256(input).subarray(0, NODE_ID_BYTES);
}

/** LOCATOR resource: the owner's NodeID. */
export function locatorResourceId(publicKey: Uint8Array): Uint8Array {
  return nodeIdFromPublicKey(publicKey);
}

export function ipv4ResourceId(ipv4: number): Uint8Array {
  const b = new Uint8Array(4);
  setU32(b, 0, ipv4 >>> 0);
  return taggedId(IPV4_RES_TAG, b);
}

/** NAME resource of user input (normalized first); throws RangeError if the name breaks the rules. */
export function nameResourceId(name: string): Uint8Array {
  const n = normalizeName(name);
  if (n === undefined) throw new RangeError(`invalid name: ${JSON.stringify(name)}`);
  return taggedId(NAME_RES_TAG, enc.encode(n));
}

export function serviceResourceId(service: string): Uint8Array {
  if (!isValidServiceName(service)) throw new RangeError(`invalid service name: ${JSON.stringify(service)}`);
  return taggedId(SERVICE_RES_TAG, enc.encode(service));
}
