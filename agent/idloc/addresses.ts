// Overlay addresses, derived from the NodeID so that anyone holding a peer's public key can check
// that the key owns the address (as HIP ORCHIDs and cjdns do):
//
//   NodeID  = SHA-256("idloc node id v1" || Ed25519 public key)[0..20)          160 bits (Kademlia id)
//   IPv6    = fd1d:10c0 (32-bit prefix) || NodeID[0..12)                          96 NodeID bits
//   IPv4    = 100.64.0.0/10 | low 22 bits of SHA-256("idloc ipv4 v1" || NodeID || attempt)
//
// The IPv4 space is small (4M), so its uniqueness cannot come from the hash alone: the overlay's
// first-come claim record (a later layer) makes it unique, and `attempt` is the re-derivation
// counter a newcomer bumps on collision. Network (x.0.0.0) and broadcast forms are skipped.
import { sha256 } from '@noble/hashes/sha2.js';
import { NODE_ID_BYTES, OVERLAY_IPV4_NET, OVERLAY_IPV4_PREFIX_LEN, OVERLAY_IPV6_PREFIX } from '../base/constants.js';

const NODE_ID_TAG = new TextEncoder().encode('idloc node id v1');
const IPV4_TAG = new TextEncoder().encode('idloc ipv4 v1');
const IPV4_HOST_MASK = (1 << (32 - OVERLAY_IPV4_PREFIX_LEN)) - 1;

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) { out.set(p, off); off += p.length; }
  return out;
}

export function nodeIdFromPublicKey(publicKey: Uint8Array): Uint8Array {
  if (publicKey.length !== 32) throw new Error('Ed25519 public key must be 32 bytes');
  return sha256(concat(NODE_ID_TAG, publicKey)).subarray(0, NODE_ID_BYTES);
}

export function ipv6FromNodeId(nodeId: Uint8Array): Uint8Array {
  const out = new Uint8Array(16);
  out.set(OVERLAY_IPV6_PREFIX, 0);
  out.set(nodeId.subarray(0, 16 - OVERLAY_IPV6_PREFIX.length), OVERLAY_IPV6_PREFIX.length);
  return out;
}

/** IPv4 overlay address as an unsigned 32-bit integer. */
export function ipv4FromNodeId(nodeId: Uint8Array, attempt = 0): number {
  for (let a = attempt; ; a++) {
    const ctr = Uint8Array.of(a >>> 24, (a >>> 16) & 0xff, (a >>> 8) & 0xff, a & 0xff);
    const h = sha256(concat(IPV4_TAG, nodeId, ctr));
    const host = (((h[0]! << 24) | (h[1]! << 16) | (h[2]! << 8) | h[3]!) >>> 0) & IPV4_HOST_MASK;
    if (host !== 0 && host !== IPV4_HOST_MASK) return (OVERLAY_IPV4_NET | host) >>> 0;
  }
}

/** True when the 16-byte address is the overlay IPv6 address of this public key. */
export function publicKeyOwnsIpv6(publicKey: Uint8Array, addr: Uint8Array): boolean {
  if (addr.length !== 16) return false;
  const expected = ipv6FromNodeId(nodeIdFromPublicKey(publicKey));
  for (let i = 0; i < 16; i++) if (expected[i] !== addr[i]) return false;
  return true;
}

// The text forms live in base/ (the sockets below this floor need them too).
export { formatIpv4, formatIpv6, parseIpv4, parseIpv6 } from '../base/ip-text.js';

