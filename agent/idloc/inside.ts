// Inside: frames the kernel wrote into the TAP, on their way out to peers.
//
// Pipeline, per frame of a batch:
//   1. Ethernet: runts and unknown EtherTypes are counted and dropped.
//   2. ARP requests for overlay IPv4 addresses (not our own) are answered with the virtual MAC;
//      IPv6 neighbour solicitations likewise. Nothing leaves the host for either.
//   3. IPv4/IPv6 packets: trimmed to the IP length (Ethernet pads short frames), multicast and
//      non-overlay destinations dropped and counted.
//   4. The destination address picks the peer (PeerMap). Unknown peer: the packet is offered to the
//      unknown-peer handler (discovery.ts queues it, looks the peer up and later calls forward() or
//      unreachable()); refused, or no handler connected -> ICMP unreachable to the app.
//   5. Oversize packets -> ICMP fragmentation-needed / packet-too-big back into the TAP.
//   6. TCP SYNs get their MSS clamped so the far side never sends segments the tunnel can't carry.
//   7. With a firewall, the flow is noted (firewall/flows.ts) so the peer's replies to it pass inbound.
//   8. The packet goes to the peer's tunnel (tunnel/tunnels.ts send(): encrypts and hands it to the
//      underlay, or queues it while handshaking).
import type { Firewall } from '../firewall/firewall.js';
import type { FrameBatch } from '../tap/device.js';
import type { FrameWriter } from '../tap/frame-writer.js';
import { answerArp } from './arp.js';
import { answerNeighborSolicitation } from './ndp.js';
import { ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6 } from '../tap/ethernet.js';
import { VIRTUAL_MAC } from '../base/constants.js';
import { clampMss, mssForMtu } from './mss.js';
import { icmpv4Unreachable, icmpv6Unreachable, icmpv4FragNeeded, icmpv6PacketTooBig } from './icmp.js';
import { ipv6Equals, isOverlayIpv4, isOverlayIpv6 } from './ip.js';
import type { OverlayPeer, PeerMap } from './peer-map.js';
import type { TunnelPeer, Tunnels } from '../tunnel/tunnels.js';

export interface InsideStats {
  framesIn: number;
  runts: number;
  arpAnswered: number;
  ndAnswered: number;
  /** ARP/ND/IP frames not meant for the overlay (other EtherTypes, multicast, foreign destinations). */
  notForOverlay: number;
  malformed: number;
  noPeer: number;
  /** Packets for unknown peers handed to the overlay lookup instead of refused. */
  lookedUp: number;
  tooBig: number;
  mssClamped: number;
  packetsOut: number;
}

export interface InsideOptions {
  selfIpv4: number;
  selfIpv6: Uint8Array;
  mtu: number;
  peers: PeerMap<TunnelPeer>;
  writer: FrameWriter;
  /** Where packets go next (step 7). The packet is a view into the TAP's read buffer: it copies to keep. */
  tunnels: Pick<Tunnels, 'send'>;
  /** Inbound rules by identity: our outbound flows are noted so their replies pass. */
  firewall?: Firewall;
}

/** Takes a packet for an overlay address no peer has (a view: copy to keep); true = taken (being looked up). */
export interface UnknownPeerHandler {
  onUnknownPeer(packet: Buffer, version: 4 | 6): boolean;
}

export class Inside {
  readonly stats: InsideStats = {
    framesIn: 0, runts: 0, arpAnswered: 0, ndAnswered: 0, notForOverlay: 0, malformed: 0,
    noPeer: 0, lookedUp: 0, tooBig: 0, mssClamped: 0, packetsOut: 0,
  };
  private readonly mssV4: number;
  private readonly mssV6: number;
  private selfIpv4: number;
  private unknown: UnknownPeerHandler | undefined;
  private readonly answerV4 = (ip: number): boolean => isOverlayIpv4(ip) && ip !== this.selfIpv4;
  private readonly answerV6 = (t: Uint8Array): boolean => isOverlayIpv6(t, 0) && !ipv6Equals(this.o.selfIpv6, 0, t, 0);

  constructor(private readonly o: InsideOptions) {
    this.mssV4 = mssForMtu(o.mtu, 4);
    this.mssV6 = mssForMtu(o.mtu, 6);
    this.selfIpv4 = o.selfIpv4;
  }

  /** The overlay's IPv4 claim settled on another address for us. */
  setSelfIpv4(ipv4: number): void { this.selfIpv4 = ipv4; }

  /** Connect the handler that looks unknown destinations up (step 4). */
  lookUpUnknownWith(h: UnknownPeerHandler): void { this.unknown = h; }

  /** A whole IP packet that waited for its peer (overlay lookup done): route it as if just read. */
  forward(packet: Buffer): void {
    if (packet.length >= 20 && packet[0]! >> 4 === 4) {
      const peer = this.o.peers.getIpv4(packet.readUInt32BE(16));
      if (peer) this.toPeer(peer, packet, 4); else this.unreachable(packet);
    } else if (packet.length >= 40 && packet[0]! >> 4 === 6) {
      const peer = this.o.peers.getIpv6(packet, 24);
      if (peer) this.toPeer(peer, packet, 6); else this.unreachable(packet);
    }
    this.o.writer.flush();
  }

  /** Tell the app its packet cannot be delivered (no such peer): ICMP unreachable into the TAP. */
  unreachable(packet: Buffer): void {
    this.stats.noPeer++;
    if (packet[0]! >> 4 === 4) this.reply(icmpv4Unreachable(packet), ETHERTYPE_IPV4);
    else this.reply(icmpv6Unreachable(packet), ETHERTYPE_IPV6);
    this.o.writer.flush();
  }

  handleBatch(batch: FrameBatch): void {
    const { buf, offsets, lengths, count } = batch;
    for (let i = 0; i < count; i++) this.handleFrame(buf, offsets[i]!, lengths[i]!);
    this.o.writer.flush();
  }

  private handleFrame(buf: Buffer, off: number, len: number): void {
    const s = this.stats;
    s.framesIn++;
    if (len < 14) { s.runts++; return; }
    const type = (buf[off + 12]! << 8) | buf[off + 13]!;
    if (type === ETHERTYPE_IPV4) this.handleIpv4(buf, off + 14, len - 14);
    else if (type === ETHERTYPE_IPV6) this.handleIpv6(buf, off, len);
    else if (type === ETHERTYPE_ARP) {
      const reply = answerArp(buf.subarray(off, off + len), VIRTUAL_MAC, this.answerV4);
      if (reply) { s.arpAnswered++; this.o.writer.writeFrame(reply); } else s.notForOverlay++;
    } else s.notForOverlay++;
  }

  private handleIpv4(buf: Buffer, ip: number, len: number): void {
    const s = this.stats;
    if (len < 20 || buf[ip]! >> 4 !== 4) { s.malformed++; return; }
    const total = (buf[ip + 2]! << 8) | buf[ip + 3]!;
    if (total < 20 || total > len) { s.malformed++; return; }
    const dst = buf.readUInt32BE(ip + 16);
    if (!isOverlayIpv4(dst)) { s.notForOverlay++; return; }
    const packet = buf.subarray(ip, ip + total);
    const peer = this.o.peers.getIpv4(dst);
    if (peer) this.toPeer(peer, packet, 4);
    else this.noPeer(packet, 4);
  }

  private noPeer(packet: Buffer, version: 4 | 6): void {
    if (this.unknown?.onUnknownPeer(packet, version)) { this.stats.lookedUp++; return; }
    this.stats.noPeer++;
    if (version === 4) this.reply(icmpv4Unreachable(packet), ETHERTYPE_IPV4);
    else this.reply(icmpv6Unreachable(packet), ETHERTYPE_IPV6);
  }

  private toPeer(peer: OverlayPeer<TunnelPeer>, packet: Buffer, version: 4 | 6): void {
    const s = this.stats;
    if (packet.length > this.o.mtu) {
      s.tooBig++;
      if (version === 4) this.reply(icmpv4FragNeeded(packet, this.o.mtu), ETHERTYPE_IPV4);
      else this.reply(icmpv6PacketTooBig(packet, this.o.mtu), ETHERTYPE_IPV6);
      return;
    }
    if (clampMss(packet, this.mssV4, this.mssV6)) s.mssClamped++;
    s.packetsOut++;
    if (peer.firewall) this.o.firewall?.noteOutbound(peer.firewall, packet);
    this.o.tunnels.send(peer.link, packet);
  }

  private handleIpv6(buf: Buffer, frameOff: number, frameLen: number): void {
    const s = this.stats;
    const ip = frameOff + 14, len = frameLen - 14;
    if (len < 40 || buf[ip]! >> 4 !== 6) { s.malformed++; return; }
    const total = 40 + ((buf[ip + 4]! << 8) | buf[ip + 5]!);
    if (total > len) { s.malformed++; return; }
    if (buf[ip + 24] === 0xff) {
      // Multicast: only neighbour solicitations concern us (they ask for a peer's MAC).
      const reply = buf[ip + 6] === 58 ? answerNeighborSolicitation(buf.subarray(frameOff, frameOff + 14 + total), VIRTUAL_MAC, this.answerV6) : undefined;
      if (reply) { s.ndAnswered++; this.o.writer.writeFrame(reply); } else s.notForOverlay++;
      return;
    }
    if (!isOverlayIpv6(buf, ip + 24)) { s.notForOverlay++; return; }
    const packet = buf.subarray(ip, ip + total);
    if (buf[ip + 6] === 58 && buf[ip + 40] === 135) {
      // Unicast NS: the kernel re-checking reachability of a peer's MAC.
      const reply = answerNeighborSolicitation(buf.subarray(frameOff, frameOff + 14 + total), VIRTUAL_MAC, this.answerV6);
      if (reply) { s.ndAnswered++; this.o.writer.writeFrame(reply); } else s.notForOverlay++;
      return;
    }
    const peer = this.o.peers.getIpv6(buf, ip + 24);
    if (peer) this.toPeer(peer, packet, 6);
    else this.noPeer(packet, 6);
  }

  private reply(packet: Uint8Array | undefined, ethertype: number): void {
    if (packet) this.o.writer.writeIpPacket(packet, ethertype);
  }
}
