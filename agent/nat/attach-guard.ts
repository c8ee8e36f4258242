// What an Attach may make this agent do. An Attach is the word of whoever signed it: the key is real (the
// signature and the puzzle hold), its candidates and NAT hint are claims. So that nobody can aim our
// connectivity checks or birthday probing at an address that is not theirs, or replay an offer to start
// them again:
//
//   replay    a blob we acted on is remembered by (sender key, tie-breaker) until its `created` leaves the
//             ATTACH_MAX_AGE_MS window; the same blob under a new overlay transaction id is refused. The
//             key is read from the raw bytes (replayKey), so a replay is refused before its signature costs
//             anything, and remembered only once the signature held.
//   rate      offers per sender key: a token bucket (ATTACH_OFFERS_PEER_*), after the signature held (a
//             forger cannot spend a genuine peer's budget).
//   aim       `observed` is where the Attach's path saw the sender: the first forwarder's report (the
//             rendezvous node it came in through) for a relayed one; for a direct one the datagram's
//             source, but only if our routing table has that node at that address (a source can be
//             spoofed; a legitimate direct Attach comes from a contact, such as our rendezvous node),
//             else counted 'direct-unverified'; with no report, the routing table's address for the node.
//             Checked are only offered candidates
//               - at the observed address (its host address if public, its srflx and predicted ports), or
//               - private host addresses in one of our own subnets, when it is behind the same NAT as we
//                 are (observed = our public address) or came to us across the LAN, or
//               - at most ATTACH_MAX_RELAY_CANDIDATES relayed candidate per address family (its TURN
//                 server's addresses: an RFC 8656 allocation may have one of each), and
//               - at most ATTACH_MAX_OTHER_FAMILY_CANDIDATES public host or srflx candidates of the other
//                 address family than the observed one (a dual-stack peer is observed at one family only).
//             No observation: nothing is checked, unless the caller trusts the claim (trustClaim: an
//             overlay whose forwarders do not report originObserved), when the offer's own public address
//             (its first srflx, else a public host candidate) stands in for it, counted 'unobserved'.
//             Birthday probing goes only to the srflx at the observed address; an offer whose srflx is
//             elsewhere gets none (counted spray-unaimed).
//   probing   once per peer and per address every HARD_NAT_SPRAY_PEER_INTERVAL_MS, and a token bucket
//             overall (HARD_NAT_SPRAYS_*).
// Every refusal is counted by kind in `refused`.
import {
  ATTACH_GUARD_MAX_PEERS, ATTACH_MAX_AGE_MS, ATTACH_MAX_OTHER_FAMILY_CANDIDATES, ATTACH_MAX_RELAY_CANDIDATES, ATTACH_OFFERS_PEER_BURST,
  ATTACH_OFFERS_PEER_PER_S, ATTACH_REPLAY_CACHE_MAX, HARD_NAT_SPRAY_PEER_INTERVAL_MS, HARD_NAT_SPRAYS_BURST,
  HARD_NAT_SPRAYS_PER_MIN,
} from '../base/constants.js';
import { PerSourceRateLimit } from '../conn/rate-limit.js';
import type { Endpoint } from '../conn/socket.js';
import { parseIpv4, parseIpv6 } from '../idloc/addresses.js';
import { IceCandidateType, type AttachParams, type IceCandidate } from './attach.js';

export type AttachGuardRefusal =
  | 'replay' | 'rate-limited' | 'direct-unverified' | 'unobserved' | 'candidate-unaimed' | 'spray-unaimed' | 'spray-limited';

/** Where an Attach lets us send. */
export interface Aim {
  /** The offered candidates we may check. */
  candidates: IceCandidate[];
  /** The addresses (normalised) checks and probes may go to. */
  addresses: ReadonlySet<string>;
  /** The srflx candidate at the observed address: what birthday probing may aim at. */
  srflx: IceCandidate | undefined;
}

/** The blob's (sender key, tie-breaker) from its raw bytes (attach.ts layout: key 2..34, tie-breaker
 *  62..70); undefined if too short. */
export function replayKey(b: Uint8Array): string | undefined {
  if (b.length < 70) return undefined;
  return Buffer.from(b.buffer, b.byteOffset + 2, 32).toString('hex') + Buffer.from(b.buffer, b.byteOffset + 62, 8).toString('hex');
}

/** IPv4-mapped IPv6 as IPv4, IPv6 in one spelling. */
export function normalAddress(a: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a);
  return m ? m[1]! : a.toLowerCase();
}

export class AttachGuard {
  readonly refused: Record<AttachGuardRefusal, number> = {
    replay: 0, 'rate-limited': 0, 'direct-unverified': 0, unobserved: 0, 'candidate-unaimed': 0, 'spray-unaimed': 0, 'spray-limited': 0,
  };
  /** replayKey -> when it may be forgotten. Insertion order is expiry order (the window is fixed). */
  private readonly seen = new Map<string, number>();
  private readonly offers: PerSourceRateLimit;
  /** Peer or address -> when it was last probed. */
  private readonly probed = new Map<string, number>();
  private readonly sprays: PerSourceRateLimit;

  constructor(private readonly now: () => number) {
    this.offers = new PerSourceRateLimit({ ratePerSecond: ATTACH_OFFERS_PEER_PER_S, burst: ATTACH_OFFERS_PEER_BURST, maxSources: ATTACH_GUARD_MAX_PEERS, now });
    this.sprays = new PerSourceRateLimit({ ratePerSecond: HARD_NAT_SPRAYS_PER_MIN / 60, burst: HARD_NAT_SPRAYS_BURST, maxSources: 1, now });
  }

  /** Before the signature is checked: false (counted) for a blob already acted on. */
  fresh(key: string | undefined): boolean {
    if (key === undefined) return true; // parseAttach refuses it as malformed
    const until = this.seen.get(key);
    if (until === undefined || until <= this.now()) return true;
    this.refused.replay++;
    return false;
  }

  /** A verified blob we are about to act on: remembered, and charged to its sender's offer budget.
   *  False (counted) if the sender is over its budget. */
  admit(key: string, p: AttachParams): boolean {
    if (!this.offers.allow(Buffer.from(p.sender).toString('hex'))) { this.refused['rate-limited']++; return false; }
    const now = this.now();
    for (const [k, until] of this.seen) {
      if (until > now && this.seen.size < ATTACH_REPLAY_CACHE_MAX) break;
      this.seen.delete(k);
    }
    this.seen.delete(key);
    this.seen.set(key, Math.max(now, p.created) + ATTACH_MAX_AGE_MS);
    return true;
  }

  /** Which of `p`'s candidates we may check, given where its path observed the sender (see the top). */
  aim(p: AttachParams, observed: Endpoint | undefined, ours: { publicAddress?: string | undefined; hosts: readonly Endpoint[] }, trustClaim = false): Aim {
    if (!observed) {
      this.refused.unobserved++;
      observed = trustClaim ? claimedAddress(p) : undefined;
    }
    if (!observed) {
      this.refused['candidate-unaimed'] += p.candidates.length;
      return { candidates: [], addresses: new Set(), srflx: undefined };
    }
    const seen = normalAddress(observed.address);
    const ourPublic = ours.publicAddress !== undefined ? normalAddress(ours.publicAddress) : undefined;
    const lan = ourPublic === seen || (isPrivate(seen) && ours.hosts.some((h) => sameSubnet(h.address, seen)));
    const relays = new Map<boolean, number>(); // per family (IPv6?): an RFC 8656 allocation has one of each
    let otherFamily = 0;
    const seenV6 = seen.includes(':');
    const candidates = p.candidates.filter((c) => {
      const a = normalAddress(c.address);
      if (a === seen) return true;
      if (c.type === IceCandidateType.Relay && (relays.get(a.includes(':')) ?? 0) < ATTACH_MAX_RELAY_CANDIDATES) {
        relays.set(a.includes(':'), (relays.get(a.includes(':')) ?? 0) + 1);
        return true;
      }
      const hostOrSrflx = c.type === IceCandidateType.Host || c.type === IceCandidateType.Srflx;
      if (hostOrSrflx && a.includes(':') !== seenV6 && isGlobalUnicast(a) && otherFamily < ATTACH_MAX_OTHER_FAMILY_CANDIDATES) {
        otherFamily++;
        return true;
      }
      if (c.type === IceCandidateType.Host && lan && isPrivate(a) && ours.hosts.some((h) => sameSubnet(h.address, a))) return true;
      this.refused['candidate-unaimed']++;
      return false;
    });
    const addresses = new Set([seen, ...candidates.map((c) => normalAddress(c.address))]);
    const srflx = candidates.find((c) => c.type === IceCandidateType.Srflx && normalAddress(c.address) === seen);
    return { candidates, addresses, srflx };
  }

  /** Birthday probing towards `peer` at `address` (the aimed srflx): false (counted) if it was probed
   *  within HARD_NAT_SPRAY_PEER_INTERVAL_MS or the overall budget is spent. `unaimed`: the peer wanted
   *  probing but its srflx is not where its path observed it. */
  mayProbe(peer: string, address: string | undefined): boolean {
    if (address === undefined) { this.refused['spray-unaimed']++; return false; }
    const now = this.now();
    const a = `ip:${normalAddress(address)}`;
    const recent = (k: string) => { const t = this.probed.get(k); return t !== undefined && now - t < HARD_NAT_SPRAY_PEER_INTERVAL_MS; };
    if (recent(peer) || recent(a) || !this.sprays.allow('')) { this.refused['spray-limited']++; return false; }
    for (const k of [peer, a]) {
      this.probed.delete(k);
      this.probed.set(k, now);
    }
    while (this.probed.size > 2 * ATTACH_GUARD_MAX_PEERS) this.probed.delete(this.probed.keys().next().value!);
    return true;
  }
}

/** Where the offer says its sender is: its first srflx candidate, else its first public host candidate. */
function claimedAddress(p: AttachParams): Endpoint | undefined {
  return p.candidates.find((c) => c.type === IceCandidateType.Srflx)
    ?? p.candidates.find((c) => c.type === IceCandidateType.Host && !isPrivate(c.address));
}

/** RFC 1918, CGNAT's 100.64/10, link-local, IPv6 ULA and link-local. */
export function isPrivate(address: string): boolean {
  const v4 = parseIpv4(address);
  if (v4 !== undefined) {
    const a = v4 >>> 24, b = (v4 >>> 16) & 0xff;
    return a === 10 || (a === 172 && b >= 16 && b < 32) || (a === 192 && b === 168) || (a === 100 && b >= 64 && b < 128) || (a === 169 && b === 254);
  }
  const v6 = parseIpv6(address);
  return v6 !== undefined && ((v6[0]! & 0xfe) === 0xfc || (v6[0] === 0xfe && (v6[1]! & 0xc0) === 0x80));
}

/** An address another host on the internet may have: IPv6 in 2000::/3; IPv4 but private, loopback,
 *  0/8, multicast and reserved (224/3). */
export function isGlobalUnicast(address: string): boolean {
  if (isPrivate(address)) return false;
  const v4 = parseIpv4(address);
  if (v4 !== undefined) {
    const a = v4 >>> 24;
    return a !== 0 && a !== 127 && a < 224;
  }
  const v6 = parseIpv6(address);
  return v6 !== undefined && (v6[0]! & 0xe0) === 0x20;
}

/** Same /24 (IPv4) or /64 (IPv6): a host's own network, as far as an offer can tell. */
function sameSubnet(x: string, y: string): boolean {
  const a = parseIpv4(normalAddress(x)), b = parseIpv4(normalAddress(y));
  if (a !== undefined || b !== undefined) return a !== undefined && b !== undefined && a >>> 8 === b >>> 8;
  const p = parseIpv6(x), q = parseIpv6(y);
  return p !== undefined && q !== undefined && p.subarray(0, 8).every((v, i) => v === q[i]);
}
