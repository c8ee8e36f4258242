// The map from overlay address to peer, consulted for every packet in both directions.
// Lookups take the address straight out of the packet buffer: IPv4 by its uint32, IPv6 by the
// last 32 bits as a number (then a full compare), so the hot path builds no strings or keys.
import { formatIpv4, formatIpv6, ipv4FromNodeId, ipv6FromNodeId, nodeIdFromPublicKey } from './addresses.js';
import { getU32 } from '../base/binary.js';
import { hex } from '../base/bytes.js';
import { ipv6Equals } from './ip.js';
import type { PeerPolicy } from '../firewall/policy.js';

export interface OverlayPeer<T = unknown> {
  readonly publicKey: Uint8Array;
  readonly publicKeyHex: string;
  readonly nodeIdHex: string;
  /** 0 (IPV4_UNMAPPED) while a peer met through the overlay has its IPv4 claim looked up; set via PeerMap.setIpv4. */
  ipv4: number;
  readonly ipv6: Uint8Array;
  /** The lower layer's handle for this peer (the tunnel), opaque to this map. */
  readonly link: T;
  /** What this peer may reach here, compiled from the firewall's rules for its identity (none: no firewall). */
  firewall?: PeerPolicy;
}

/** A peer's map entry; ipv4 defaults to the key's first derivation (statically configured peers). */
export function describePeer<T>(publicKey: Uint8Array, link: T, ipv4?: number): OverlayPeer<T> {
  const nodeId = nodeIdFromPublicKey(publicKey);
  return {
    publicKey, publicKeyHex: hex(publicKey), nodeIdHex: hex(nodeId),
    ipv4: ipv4 ?? ipv4FromNodeId(nodeId), ipv6: ipv6FromNodeId(nodeId), link,
  };
}

export class PeerMap<T> {
  private readonly byV4 = new Map<number, OverlayPeer<T>>();
  private readonly byV6Tail = new Map<number, OverlayPeer<T>[]>();
  private readonly byKey = new Map<string, OverlayPeer<T>>();
  private readonly byLink = new Map<T, OverlayPeer<T>>();

  get size(): number { return this.byKey.size; }
  values(): IterableIterator<OverlayPeer<T>> { return this.byKey.values(); }

  add(peer: OverlayPeer<T>): void {
    if (this.byKey.has(peer.publicKeyHex)) throw new Error(`peer ${peer.publicKeyHex} already known`);
    const clash = peer.ipv4 === 0 ? undefined : this.byV4.get(peer.ipv4);
    if (clash) throw new Error(`overlay IPv4 ${formatIpv4(peer.ipv4)} of ${peer.publicKeyHex} is taken by ${clash.publicKeyHex}`);
    if (this.getIpv6(peer.ipv6, 0)) throw new Error(`overlay IPv6 ${formatIpv6(peer.ipv6)} already mapped`);
    this.byKey.set(peer.publicKeyHex, peer);
    this.byLink.set(peer.link, peer);
    if (peer.ipv4 !== 0) this.byV4.set(peer.ipv4, peer);
    const tail = tailOf(peer.ipv6, 0);
    const list = this.byV6Tail.get(tail);
    if (list) list.push(peer); else this.byV6Tail.set(tail, [peer]);
  }

  remove(peer: OverlayPeer<T>): void {
    if (this.byKey.get(peer.publicKeyHex) !== peer) return;
    this.byKey.delete(peer.publicKeyHex);
    this.byLink.delete(peer.link);
    if (this.byV4.get(peer.ipv4) === peer) this.byV4.delete(peer.ipv4);
    const tail = tailOf(peer.ipv6, 0);
    const list = this.byV6Tail.get(tail)?.filter((p) => p !== peer);
    if (list && list.length) this.byV6Tail.set(tail, list); else this.byV6Tail.delete(tail);
  }

  /** Map a peer's IPv4 overlay address (its claim was looked up, or moved). Throws if another peer holds it. */
  setIpv4(peer: OverlayPeer<T>, ipv4: number): void {
    if (this.byKey.get(peer.publicKeyHex) !== peer) throw new Error(`peer ${peer.publicKeyHex} is not in the map`);
    const clash = this.byV4.get(ipv4);
    if (clash && clash !== peer) throw new Error(`overlay IPv4 ${formatIpv4(ipv4)} is taken by ${clash.publicKeyHex}`);
    if (this.byV4.get(peer.ipv4) === peer) this.byV4.delete(peer.ipv4);
    peer.ipv4 = ipv4;
    this.byV4.set(ipv4, peer);
  }

  getByKey(publicKeyHex: string): OverlayPeer<T> | undefined { return this.byKey.get(publicKeyHex); }

  /** The peer a tunnel belongs to: inbound packets arrive with the tunnel's handle. */
  getByLink(link: T): OverlayPeer<T> | undefined { return this.byLink.get(link); }

  getIpv4(addr: number): OverlayPeer<T> | undefined { return this.byV4.get(addr); }

  /** Peer whose IPv6 address is the 16 bytes at buf[off..off+16). */
  getIpv6(buf: Uint8Array, off: number): OverlayPeer<T> | undefined {
    const list = this.byV6Tail.get(tailOf(buf, off));
    if (!list) return undefined;
    for (const p of list) if (ipv6Equals(p.ipv6, 0, buf, off)) return p;
    return undefined;
  }
}

function tailOf(b: Uint8Array, off: number): number {
  return getU32(b, off + 12);
}

