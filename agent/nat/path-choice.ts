// How a peer's tunnel endpoint was chosen (traversal.ts), how paths rank against each other, and the
// reasons status gives for them that need nothing but the candidates.
import type { Endpoint } from '../conn/socket.js';
import type { IceCandidateType } from './attach.js';
import { familyOf } from '../base/ip-text.js';

/** How the tunnel endpoint of a peer was chosen, for `status`. */
export interface PathChoice {
  how: 'locator' | 'ice' | 'turn' | 'peer-relay' | 'no-direct-path' | 'attach-failed';
  endpoint?: Endpoint;
  type?: IceCandidateType;
  rttMs?: number;
  reason: string;
}

/** Direct paths are best, then a TURN relay (infrastructure meant for it), then relaying through a peer. */
export const DIRECT = 3;
export function rank(c: PathChoice): number {
  switch (c.how) {
    case 'ice': case 'locator': return DIRECT;
    case 'turn': return 2;
    case 'peer-relay': return 1;
    default: return 0;
  }
}

/** Why no pair can be direct when our candidates and the peer's share no address family, else undefined. */
export function noFamilyInCommon(ours: readonly { address: string }[], theirs: readonly { address: string }[]): string | undefined {
  const families = (cs: readonly { address: string }[]) => new Set(cs.map((c) => familyOf(c.address)));
  const mine = families(ours), peer = families(theirs);
  if (theirs.length === 0 || mine.size === 0 || [...peer].some((f) => mine.has(f))) return undefined;
  const name = (fs: Set<number>) => [...fs].map((f) => `IPv${f}`).join(' and ');
  return `no direct path: no address family in common (this host has ${name(mine)} only, the peer ${name(peer)} only)`;
}
