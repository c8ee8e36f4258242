// Outside: packets that arrived through a peer's authenticated tunnel, on their way into the TAP.
//
// Pipeline, per packet (tunnel/tunnels.ts hands each decrypted one to handlePacket()):
//   0. The tunnel names the peer (PeerMap by tunnel handle); a tunnel no peer owns is counted and dropped.
//   1. The IP header must be whole; the packet is trimmed to its IP length.
//   2. Anti-spoofing: the inner source must be the sending peer's own overlay address (the tunnel
//      authenticated the peer's key, and the key owns exactly these addresses); anything else is
//      dropped and counted. The destination must be one of ours. A peer met through the overlay has
//      its IPv6 address from its key at once but its IPv4 address only once its overlay claim is
//      looked up: IPv4 packets from it meanwhile go to the unmapped handler (discovery.ts holds them,
//      and delivers them again once the claim is known), not the TAP.
//   3. The firewall (firewall/firewall.ts), when rules are configured: what the peer's identity may reach
//      here, or a reply to one of our own flows; anything else is dropped and counted.
//   4. TCP SYNs get their MSS clamped (the other side may run a larger MTU).
//   5. The packet is framed (virtual MAC -> TAP MAC) and queued for the next batched TAP write.
import type { FrameWriter } from '../tap/frame-writer.js';
import { ETHERTYPE_IPV4, ETHERTYPE_IPV6 } from '../tap/ethernet.js';
import { clampMss, mssForMtu } from './mss.js';
import { ipv6Equals } from './ip.js';
import type { OverlayPeer, PeerMap } from './peer-map.js';
import type { PacketReceiver, TunnelPeer } from '../tunnel/tunnels.js';
import type { Firewall } from '../firewall/firewall.js';

export interface OutsideStats {
  packetsIn: number;
  malformed: number;
  spoofedSource: number;
  /** IPv4 packets held until the sending peer's IPv4 claim is known. */
  awaitingIpv4: number;
  wrongDestination: number;
  mssClamped: number;
  tooBig: number;
  /** Packets from a tunnel no peer owns any more (removed while its packets were in flight). */
  noPeer: number;
  /** Packets no firewall rule let in (the firewall's own counters say why). */
  firewalled: number;
}

export interface OutsideOptions {
  selfIpv4: number;
  selfIpv6: Uint8Array;
  mtu: number;
  peers: PeerMap<TunnelPeer>;
  writer: FrameWriter;
  /** Inbound rules by identity; absent: every member reaches every port. */
  firewall?: Firewall;
}

/** Holds IPv4 packets from a peer whose IPv4 address is not known yet (the packet is a view: copy to keep). */
export interface UnmappedIpv4Handler {
  onIpv4Unmapped(peer: OverlayPeer<unknown>, packet: Buffer): void;
}

/** OverlayPeer.ipv4 of a peer whose IPv4 claim is still being looked up (0.0.0.0 is never an overlay address). */
export const IPV4_UNMAPPED = 0;

export class Outside implements PacketReceiver {
  readonly stats: OutsideStats = { packetsIn: 0, malformed: 0, spoofedSource: 0, awaitingIpv4: 0, wrongDestination: 0, mssClamped: 0, tooBig: 0, noPeer: 0, firewalled: 0 };
  private unmapped: UnmappedIpv4Handler | undefined;
  private readonly mssV4: number;
  private readonly mssV6: number;
  private selfIpv4: number;

  constructor(private readonly o: OutsideOptions) {
    this.mssV4 = mssForMtu(o.mtu, 4);
    this.mssV6 = mssForMtu(o.mtu, 6);
    this.selfIpv4 = o.selfIpv4;
  }

  /** The overlay's IPv4 claim settled on another address for us. */
  setSelfIpv4(ipv4: number): void { this.selfIpv4 = ipv4; }

  /** Connect the holder of IPv4 packets from peers whose claim is still being looked up. */
  holdUnmappedWith(h: UnmappedIpv4Handler): void { this.unmapped = h; }

  /** Step 0: the tunnel's packet, to its peer. */
  handlePacket(tunnel: TunnelPeer, packet: Buffer): void {
    const peer = this.o.peers.getByLink(tunnel);
    if (peer) this.deliver(peer, packet); else this.stats.noPeer++;
  }

  /** Steps 1-4 for a peer's packet (also a held one, delivered again). */
  deliver(peer: OverlayPeer<unknown>, packet: Buffer): void {
    const s = this.stats;
    const len = packet.length;
    if (len === 0) return; // keepalive
    const version = packet[0]! >> 4;
    let ethertype: number;
    let total: number;
    if (version === 4) {
      if (len < 20) { s.malformed++; return; }
      total = (packet[2]! << 8) | packet[3]!;
      if (total < 20 || total > len) { s.malformed++; return; }
      if (packet.readUInt32BE(12) !== peer.ipv4) {
        if (peer.ipv4 === IPV4_UNMAPPED && this.unmapped) { s.awaitingIpv4++; this.unmapped.onIpv4Unmapped(peer, packet); }
        else s.spoofedSource++;
        return;
      }
      if (packet.readUInt32BE(16) !== this.selfIpv4) { s.wrongDestination++; return; }
      ethertype = ETHERTYPE_IPV4;
    } else if (version === 6) {
      if (len < 40) { s.malformed++; return; }
      total = 40 + ((packet[4]! << 8) | packet[5]!);
      if (total > len) { s.malformed++; return; }
      if (!ipv6Equals(peer.ipv6, 0, packet, 8)) { s.spoofedSource++; return; }
      if (!ipv6Equals(this.o.selfIpv6, 0, packet, 24)) { s.wrongDestination++; return; }
      ethertype = ETHERTYPE_IPV6;
    } else { s.malformed++; return; }
    const ip = total === len ? packet : packet.subarray(0, total);
    const fw = this.o.firewall;
    if (fw && (!peer.firewall || !fw.allowInbound(peer.firewall, ip))) { s.firewalled++; return; }
    if (clampMss(ip, this.mssV4, this.mssV6)) s.mssClamped++;
    if (!this.o.writer.writeIpPacket(ip, ethertype)) { s.tooBig++; return; }
    s.packetsIn++;
  }
}
