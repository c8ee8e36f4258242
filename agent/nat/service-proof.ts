// Service records are a hint, not trust: anyone can sign a "turn", "stun" or "relay" record with a key of
// its own and STORE it anywhere, so a provider is used only when it proves what its record says.
//
//   turn   The provider's agent holds the TURN server's shared secret (coturn's static-auth-secret, the same
//          --turn-secret its clients have) and vouches for its server in its signed record; a client checks
//          the vouch before it sends that server a single credential-bearing request, so a rogue server
//          never collects MESSAGE-INTEGRITY-signed Allocates to guess the secret from.
//            key    = scrypt(secret, "idloc turn vouch v1", N = TURN_VOUCH_SCRYPT_N, r 8, p 1), 32 bytes,
//                     derived once per agent: the vouch is public, so guessing the secret from it costs a
//                     memory-hard derivation per guess (an HMAC-SHA1 per guess is what an Allocate costs)
//            vouch  = HMAC-SHA256(key, "idloc turn vouch v1" ‖ provider public key (32) ‖ family u8 (4|6) ‖
//                     address (4|16) ‖ port u16)[0..20)
//          carried in the record as a pseudo-candidate right after the server's own:
//            | family 6 | type 0 (host) | port 0 | priority u32 = vouch[16..20) | address = vouch[0..16) |
//          Port 0 is no endpoint anyone can send to, so it is never taken for one.
//   stun,  The endpoint must be where the record owner's key lives: the overlay knows the owner at that
//   relay  endpoint, or the owner answers a PING there (the overlay checks the answer's sender, so another
//          node, or nobody, at that address fails it). At most SERVICE_PROVIDERS_CHECKED_MAX are PINGed.
import { createHmac, scryptSync, timingSafeEqual } from 'node:crypto';
import { SERVICE_PROVIDERS_CHECKED_MAX, TURN_VOUCH_BYTES, TURN_VOUCH_SCRYPT_N } from '../base/constants.js';
import type { Endpoint } from '../conn/socket.js';
import { formatIpv6, nodeIdFromPublicKey, parseIpv4, parseIpv6 } from '../idloc/addresses.js';
import { CandidateType, type Candidate } from '../overlay/records.js';
import type { ContactInfo } from '../overlay/bucket.js';

const LABEL = 'idloc turn vouch v1';

/** Which of a record's candidates its owner has shown to be genuine: the endpoints to use. */
export type ProviderCheck = (owner: Uint8Array, candidates: readonly Candidate[]) => Endpoint[] | Promise<Endpoint[]>;

/** A candidate that carries a vouch, not an endpoint. */
export function isProofCandidate(c: Candidate): boolean {
  return c.port === 0;
}

function endpointBytes(e: Endpoint): Buffer | undefined {
  const v4 = parseIpv4(e.address);
  const v6 = v4 === undefined ? parseIpv6(e.address) : undefined;
  if ((v4 === undefined && !v6) || !(e.port > 0 && e.port < 65536)) return undefined;
  const b = Buffer.alloc(v6 ? 19 : 7);
  b[0] = v6 ? 6 : 4;
  if (v6) b.set(v6, 1);
  else b.writeUInt32BE(v4!, 1);
  b.writeUInt16BE(e.port, b.length - 2);
  return b;
}

export interface TurnVouchStats {
  /** Servers in "turn" records whose vouch verified. */
  vouched: number;
  /** Servers in "turn" records with no vouch, or one that does not verify: never sent a request. */
  refused: number;
}

/** Vouches for TURN servers, from the servers' shared secret. */
export class TurnVouch {
  readonly stats: TurnVouchStats = { vouched: 0, refused: 0 };
  private readonly key: Buffer;

  constructor(secret: string) {
    const n = TURN_VOUCH_SCRYPT_N;
    this.key = scryptSync(secret, LABEL, 32, { N: n, r: 8, p: 1, maxmem: 256 * n * 8 });
  }

  private mac(provider: Uint8Array, server: Endpoint): Buffer | undefined {
    const ep = endpointBytes(server);
    if (!ep || provider.length !== 32) return undefined;
    return createHmac('sha256', this.key).update(LABEL).update(provider).update(ep).digest().subarray(0, TURN_VOUCH_BYTES);
  }

  /** The record's candidates for `server`, offered by the holder of `provider` (its public key). */
  candidates(provider: Uint8Array, server: Endpoint): Candidate[] {
    const v = this.mac(provider, server);
    if (!v) throw new Error(`not an IP endpoint: ${server.address}:${server.port}`);
    return [
      { address: server.address, port: server.port, type: CandidateType.Host, priority: 0 },
      { address: formatIpv6(v.subarray(0, 16)), port: 0, type: CandidateType.Host, priority: v.readUInt32BE(16) },
    ];
  }

  /** The servers in a record of `owner` that carry a valid vouch (each followed by its proof candidate). */
  vouched(owner: Uint8Array, candidates: readonly Candidate[]): Endpoint[] {
    const out: Endpoint[] = [];
    for (let i = 0; i < candidates.length; i++) {
      const c = candidates[i]!;
      if (isProofCandidate(c)) continue;
      const proof = candidates[i + 1];
      const want = this.mac(owner, c);
      const got = proof && isProofCandidate(proof) ? proofBytes(proof) : undefined;
      if (want && got && timingSafeEqual(want, got)) {
        this.stats.vouched++;
        out.push({ address: c.address, port: c.port });
      } else {
        this.stats.refused++;
      }
    }
    return out;
  }
}

function proofBytes(c: Candidate): Buffer | undefined {
  const a = parseIpv6(c.address);
  if (!a) return undefined;
  const b = Buffer.alloc(TURN_VOUCH_BYTES);
  b.set(a.subarray(0, 16), 0);
  b.writeUInt32BE(c.priority >>> 0, 16);
  return b;
}

/** What ownerLivesAt asks of the overlay node (an OverlayNode). */
export interface OwnerLookup {
  /** Where the overlay reaches this node (its routing table, or where it last sent from). */
  endpointOfNode(nodeId: Uint8Array): Endpoint | undefined;
  /** ping: a PING to this contact, answered by that very node. */
  readonly kad: { ping(c: ContactInfo): Promise<boolean> };
}

/** The candidates of `owner`'s record at which its key lives (known there, or answering a PING there). */
export async function ownerLivesAt(node: OwnerLookup, owner: Uint8Array, candidates: readonly Candidate[]): Promise<Endpoint[]> {
  const nodeId = nodeIdFromPublicKey(owner);
  const known = node.endpointOfNode(nodeId);
  const out: Endpoint[] = [];
  const unknown: Endpoint[] = [];
  for (const c of candidates) {
    if (isProofCandidate(c)) continue;
    const e = { address: c.address, port: c.port };
    if (known && known.port === e.port && known.address === e.address) out.push(e);
    else if (unknown.length < SERVICE_PROVIDERS_CHECKED_MAX) unknown.push(e);
  }
  const answered = await Promise.all(unknown.map((e) => node.kad.ping({ nodeId, publicKey: owner, endpoint: e }).catch(() => false)));
  unknown.forEach((e, i) => { if (answered[i]) out.push(e); });
  return out;
}
