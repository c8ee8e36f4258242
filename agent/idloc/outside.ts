// Outside: packets that arrived through a peer's authenticated tunnel, on their way into the TAP.
//
// Pipeline, per packet:
//   1. The IP header must be whole; the packet is trimmed to its IP length.
//   2. Anti-spoofing: the inner source must be the sending peer's own overlay address (the tunnel
//      authenticated the peer's key, and the key owns exactly these addresses); anything else is
//      dropped and counted. The destination must be one of ours.
//   3. TCP SYNs get their MSS clamped (the other side may run a larger MTU).
//   4. The packet is framed (virtual MAC -> TAP MAC) and queued for the next batched TAP write.
import type { FrameWriter } from '../tap/frame-writer.js';
import { ETHERTYPE_IPV4, ETHERTYPE_IPV6 } from '../tap/ethernet.js';
import { clampMss, mssForMtu } from './mss.js';
import { equal16, type OverlayPeer } from './peer-map.js';

export interface OutsideStats {
  packetsIn: number;
  malformed: number;
  spoofedSource: number;
  wrongDestination: number;
  mssClamped: number;
  tooBig: number;
}

export interface OutsideOptions {
  selfIpv4: number;
  selfIpv6: Uint8Array;
  mtu: number;
  writer: FrameWriter;
}

export class Outside {
  readonly stats: OutsideStats = { packetsIn: 0, malformed: 0, spoofedSource: 0, wrongDestination: 0, mssClamped: 0, tooBig: 0 };
  private readonly mssV4: number;
  private readonly mssV6: number;

  constructor(private readonly o: OutsideOptions) {
    this.mssV4 = mssForMtu(o.mtu, 4);
    this.mssV6 = mssForMtu(o.mtu, 6);
  }

  handlePacket(peer: OverlayPeer<unknown>, packet: Buffer): void {
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
      if (packet.readUInt32BE(12) !== peer.ipv4) { s.spoofedSource++; return; }
      if (packet.readUInt32BE(16) !== this.o.selfIpv4) { s.wrongDestination++; return; }
      ethertype = ETHERTYPE_IPV4;
    } else if (version === 6) {
      if (len < 40) { s.malformed++; return; }
      total = 40 + ((packet[4]! << 8) | packet[5]!);
      if (total > len) { s.malformed++; return; }
      if (!equal16(peer.ipv6, packet, 8)) { s.spoofedSource++; return; }
      if (!equal16(this.o.selfIpv6, packet, 24)) { s.wrongDestination++; return; }
      ethertype = ETHERTYPE_IPV6;
    } else { s.malformed++; return; }
    const ip = total === len ? packet : packet.subarray(0, total);
    if (clampMss(ip, this.mssV4, this.mssV6)) s.mssClamped++;
    if (!this.o.writer.writeIpPacket(ip, ethertype)) { s.tooBig++; return; }
    s.packetsIn++;
  }
}
