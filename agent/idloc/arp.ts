// ARP (RFC 826) for IPv4 over Ethernet: the kernel asks who has a peer's overlay IPv4 address, and
// the agent answers "the virtual MAC", behind which every overlay peer lives. Nothing goes on the wire.
//
// Frame (42 bytes; the TAP needs no padding to Ethernet's 60-byte minimum):
//   0  dst MAC (6) | 6 src MAC (6) | 12 EtherType 0x0806
//   14 htype = 1 (Ethernet) (2)   | 16 ptype = 0x0800 (2) | 18 hlen = 6 | 19 plen = 4 | 20 oper (2): 1 request, 2 reply
//   22 sender hardware address (6)   SHA
//   28 sender protocol address (4)   SPA
//   32 target hardware address (6)   THA
//   38 target protocol address (4)   TPA
//
// The reply swaps the roles: SHA = virtual MAC, SPA = the asked-for address, THA/TPA = the requester,
// sent by unicast to the requester's SHA (RFC 826: "send the packet to the (new) target hardware address").
import {
  ETH_HEADER_LEN, ETHERTYPE_ARP, ETHERTYPE_IPV4, MAC_LEN, etherType, isMulticastMac, isZeroMac, writeEthernetHeader,
} from '../tap/ethernet.js';
import { getU32 } from '../base/binary.js';

export const ARP_LEN = 28;
export const ARP_FRAME_LEN = ETH_HEADER_LEN + ARP_LEN;
export const ARP_OP_REQUEST = 1;
export const ARP_OP_REPLY = 2;

const A = ETH_HEADER_LEN; // start of the ARP payload
const SHA = A + 8;
const SPA = A + 14;
const THA = A + 18;
const TPA = A + 24;

/** Target IPv4 (uint32) of an ARP request frame for IPv4-over-Ethernet, or -1 if the frame is not one. */
export function arpRequestTarget(frame: Uint8Array): number {
  if (etherType(frame) !== ETHERTYPE_ARP || frame.length < ARP_FRAME_LEN) return -1;
  if (frame[A] !== 0 || frame[A + 1] !== 1) return -1; // htype Ethernet
  if (((frame[A + 2] << 8) | frame[A + 3]) !== ETHERTYPE_IPV4) return -1;
  if (frame[A + 4] !== MAC_LEN || frame[A + 5] !== 4) return -1;
  if (frame[A + 6] !== 0 || frame[A + 7] !== ARP_OP_REQUEST) return -1;
  return getU32(frame, TPA);
}

/**
 * The ARP reply frame to write back into the TAP, or undefined when the frame is not an IPv4 ARP
 * request we should answer:
 *   - not ARP / not Ethernet+IPv4 / not a request (replies, RARP...) -> undefined;
 *   - gratuitous ARP (SPA == TPA: the host announcing itself) -> undefined;
 *   - requester SHA multicast or zero (no one to unicast to) -> undefined;
 *   - TPA 0.0.0.0 or shouldAnswer(TPA) false (an address we don't speak for) -> undefined.
 * The predicate must say false for the host's own overlay address: an RFC 5227 probe (SPA 0.0.0.0)
 * for an address we claim is answered, and that tells the prober the address is taken — true of a
 * peer's address, wrong for the host's own. A probe's reply goes to TPA 0.0.0.0, per the swap above.
 */
export function answerArp(frame: Uint8Array, virtualMac: Uint8Array, shouldAnswer: (ip: number) => boolean): Buffer | undefined {
  if (virtualMac.length !== MAC_LEN) return undefined;
  const target = arpRequestTarget(frame);
  if (target <= 0) return undefined; // -1: not a request; 0: nonsense target
  const sender = getU32(frame, SPA);
  if (sender === target) return undefined;
  if (isMulticastMac(frame, SHA) || isZeroMac(frame, SHA)) return undefined;
  if (!shouldAnswer(target)) return undefined;

  const out = Buffer.allocUnsafe(ARP_FRAME_LEN);
  writeEthernetHeader(out, 0, frame.subarray(SHA, SHA + MAC_LEN), virtualMac, ETHERTYPE_ARP);
  out[A] = 0; out[A + 1] = 1;
  out[A + 2] = ETHERTYPE_IPV4 >>> 8; out[A + 3] = ETHERTYPE_IPV4 & 0xff;
  out[A + 4] = MAC_LEN; out[A + 5] = 4;
  out[A + 6] = 0; out[A + 7] = ARP_OP_REPLY;
  for (let i = 0; i < MAC_LEN; i++) {
    out[SHA + i] = virtualMac[i];
    out[THA + i] = frame[SHA + i];
  }
  for (let i = 0; i < 4; i++) {
    out[SPA + i] = frame[TPA + i];
    out[TPA + i] = frame[SPA + i];
  }
  return out;
}
