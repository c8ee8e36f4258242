// Which resources this node stores records for: the "am I among the k closest" rule, judged from our own
// routing table, with slack.
//
//   responsible(resource) = fewer than RESPONSIBILITY_SLACK·k known contacts are closer to it than we are
//
// Why from our own view, with slack: records belong on the k nodes closest to their resource, and the
// publisher finds those by a lookup; a node cannot ask the whole overlay before each STORE, but it does
// know its own neighbourhood well (Kademlia's deepest buckets hold every node near its NodeID). A
// resource far from us has a full bucket of contacts nearer to it than we are, so we refuse it; one near
// us is in reach of our neighbours, so we accept it even if our view is off by a few contacts (churn, a
// contact not yet learned). A table that holds fewer than slack·k contacts cannot tell: it accepts, so a
// small overlay, or one that is just forming, still keeps every record.
//
// Refusing what we are not responsible for is what makes the k closest the only place a record counts:
// a node elsewhere cannot be talked into holding a claim that a quorum read would then not see, and a
// store flood has to aim at one neighbourhood instead of any node.
import { RESPONSIBILITY_SLACK } from '../base/constants.js';
import { compareDistance } from './xor-metric.js';
import type { ContactInfo } from './bucket.js';

/** What the rule reads of a routing table: its n contacts closest to a target, closest first. */
export interface ClosestSource {
  closest(target: Uint8Array, n: number): ContactInfo[];
}

/** Pure rule: `nearest` are our known contacts closest to `resourceId`, closest first (at least
 *  slack·k of them if we know that many). True if fewer than slack·k of them are closer than `selfId`. */
export function isResponsible(selfId: Uint8Array, resourceId: Uint8Array, nearest: readonly ContactInfo[], k: number,
  slack: number = RESPONSIBILITY_SLACK): boolean {
  const limit = Math.max(1, Math.ceil(slack * k));
  if (nearest.length < limit) return true; // too few contacts to tell
  return compareDistance(selfId, nearest[limit - 1]!.nodeId, resourceId) < 0;
}

/** The rule over a routing table: a predicate for the store (store.ts PutOptions.responsible). */
export function responsibility(table: ClosestSource, selfId: Uint8Array, k: number,
  slack: number = RESPONSIBILITY_SLACK): (resourceId: Uint8Array) => boolean {
  const limit = Math.max(1, Math.ceil(slack * k));
  return (resourceId) => isResponsible(selfId, resourceId, table.closest(resourceId, limit), k, slack);
}
