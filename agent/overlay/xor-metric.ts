// The XOR metric over NodeIDs (Kademlia): distance, shared prefix, and the cheap forms the routing table
// and lookups compare by. Distances are compared byte by byte (a[i] ^ t[i] vs b[i] ^ t[i]); no BigInt on
// the hot path.
import { NODE_ID_BYTES } from '../base/constants.js';

export const ID_BITS = NODE_ID_BYTES * 8;

/** Bits 0-23 and 24-47 of an id. */
export function idPrefix24(id: Uint8Array): [number, number] {
  return [(id[0]! << 16) | (id[1]! << 8) | id[2]!, (id[3]! << 16) | (id[4]! << 8) | id[5]!];
}

export function xorDistance(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}

/** Sign of d(a, target) - d(b, target): negative when a is closer. */
export function compareDistance(a: Uint8Array, b: Uint8Array, target: Uint8Array): number {
  for (let i = 0; i < target.length; i++) {
    const t = target[i]!;
    const da = a[i]! ^ t;
    const db = b[i]! ^ t;
    if (da !== db) return da - db;
  }
  return 0;
}

/** Leading bits a and b have in common (ID_BITS when equal). */
export function commonPrefixLength(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length; i++) {
    const x = a[i]! ^ b[i]!;
    if (x !== 0) return i * 8 + Math.clz32(x) - 24;
  }
  return a.length * 8;
}

/** A cheap Map key for an id (one char per byte). */
export function idKey(id: Uint8Array): string {
  return String.fromCharCode.apply(null, id as unknown as number[]);
}
