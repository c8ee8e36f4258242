// A k-bucket of the routing table (routing-table.ts): the contacts at one distance from us, and the
// selection of the closest contacts across buckets.
//
//   contacts[0 .. k)   least-recently-seen first (LRU order)
//   replacements[]     newest last; fill holes left by dead contacts
//   pinging            at most one liveness check at a time
//   lastLookup         for refresh bookkeeping
import { bytesEqual } from '../base/bytes.js';
import type { Endpoint } from '../conn/socket.js';
import { compareDistance, idPrefix24 } from './xor-metric.js';

/** What peers tell each other about a node. */
export interface ContactInfo {
  readonly nodeId: Uint8Array;
  publicKey: Uint8Array;
  endpoint: Endpoint;
}

export interface Contact extends ContactInfo {
  /** Scheduler time of the last message from it. */
  lastSeen: number;
  /** Consecutive failed RPCs. */
  failures: number;
  /** NodeID bits 0-23 and 24-47 as numbers: closest() orders by them without touching the id bytes
   *  (one cache line per contact instead of three, which is what dominates a 10,000-node simulation). */
  readonly p0: number;
  readonly p1: number;
}

export function newContact(info: ContactInfo, now: number): Contact {
  const [p0, p1] = idPrefix24(info.nodeId);
  return { nodeId: info.nodeId, publicKey: info.publicKey, endpoint: info.endpoint, lastSeen: now, failures: 0, p0, p1 };
}

export class Bucket {
  readonly contacts: Contact[] = [];
  readonly replacements: ContactInfo[] = [];
  pinging = false;
  constructor(public lastLookup: number) {}

  find(id: Uint8Array): Contact | undefined {
    return this.contacts.find((c) => bytesEqual(c.nodeId, id));
  }

  indexOf(id: Uint8Array): number {
    return this.contacts.findIndex((c) => bytesEqual(c.nodeId, id));
  }

  /** Queue a contact for a hole, newest last, at most `max` (the oldest goes). */
  addReplacement(info: ContactInfo, max: number): void {
    this.dropReplacement(info.nodeId);
    this.replacements.push(info);
    if (this.replacements.length > max) this.replacements.shift();
  }

  dropReplacement(id: Uint8Array): boolean {
    const at = this.replacements.findIndex((r) => bytesEqual(r.nodeId, id));
    if (at < 0) return false;
    this.replacements.splice(at, 1);
    return true;
  }
}

const selKeys: number[] = [];
const selPicks: Contact[] = [];

/** Append to `out` the (n - out.length) contacts of buckets [from, to) closest to target, closest first:
 *  a bounded insertion selection (most candidates are rejected by one comparison with the current worst),
 *  no sort of the whole group. */
export function selectClosest(
  buckets: (Bucket | undefined)[], from: number, to: number, target: Uint8Array, n: number,
  filter: ((c: Contact) => boolean) | undefined, out: Contact[],
): void {
  const need = n - out.length;
  const [t0, t1] = idPrefix24(target);
  const keys = selKeys;
  const picks = selPicks;
  keys.length = 0;
  picks.length = 0;
  for (let i = from; i < to; i++) {
    const bucket = buckets[i];
    if (!bucket) continue;
    for (const c of bucket.contacts) {
      if (filter && !filter(c)) continue;
      // first 48 bits of the XOR distance, exact in a double; ties fall back to the full compare
      const key = (c.p0 ^ t0) * 0x1000000 + (c.p1 ^ t1);
      let at = picks.length;
      if (at === need) {
        const worst = keys[at - 1]!;
        if (key > worst || (key === worst && compareDistance(c.nodeId, picks[at - 1]!.nodeId, target) >= 0)) continue;
      }
      while (at > 0 && (keys[at - 1]! > key || (keys[at - 1] === key && compareDistance(picks[at - 1]!.nodeId, c.nodeId, target) > 0))) at--;
      const len = picks.length < need ? picks.length + 1 : need;
      for (let j = len - 1; j > at; j--) { keys[j] = keys[j - 1]!; picks[j] = picks[j - 1]!; }
      keys[at] = key;
      picks[at] = c;
    }
  }
  for (const c of picks) out.push(c);
  picks.length = 0;
}
