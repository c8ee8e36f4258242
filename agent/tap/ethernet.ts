// Ethernet II framing as the TAP carries it: no preamble, no FCS, no VLAN tags (the kernel's side of
// idloc0 never tags; a tagged frame is counted and dropped by the caller).
//
//   0                   6                   12      14
//  +-------------------+-------------------+-------+----------------
//  | destination MAC   | source MAC        | type  | payload ...
//  +-------------------+-------------------+-------+----------------
//
// Everything here reads straight out of the buffer at an offset, because it runs on every frame of a
// batch that lives in one shared read buffer: slicing a view per frame would be an allocation per packet.

import { equalAt } from '../base/bytes.js';

export const ETH_DST_OFF = 0;
export const ETH_SRC_OFF = 6;
export const ETH_TYPE_OFF = 12;
export const ETH_HEADER_LEN = 14;
export const MAC_LEN = 6;

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_IPV6 = 0x86dd;
/** 802.1Q and 802.1ad (QinQ) tags: we never configure VLANs on the TAP, so these are only counted. */
export const ETHERTYPE_VLAN = 0x8100;
export const ETHERTYPE_QINQ = 0x88a8;

/** The IPv6 all-nodes multicast MAC (33:33 + low 32 bits of ff02::1), destination of NAs answering DAD. */
export const MAC_IPV6_ALL_NODES = Uint8Array.of(0x33, 0x33, 0x00, 0x00, 0x00, 0x01);

/** EtherType of the frame at `off`, or -1 if there are fewer than 14 bytes (a runt). */
export function etherType(frame: Uint8Array, off = 0, end = frame.length): number {
  if (off < 0 || end > frame.length || end - off < ETH_HEADER_LEN) return -1;
  return (frame[off + ETH_TYPE_OFF] << 8) | frame[off + ETH_TYPE_OFF + 1];
}

/** True for a VLAN-tagged EtherType: the caller counts and drops such frames. */
export function isVlanEtherType(type: number): boolean {
  return type === ETHERTYPE_VLAN || type === ETHERTYPE_QINQ;
}

/** Writes dst, src and type at `off`; returns the offset of the payload. Caller ensures 14 bytes of room. */
export function writeEthernetHeader(buf: Uint8Array, off: number, dst: Uint8Array, src: Uint8Array, type: number): number {
  for (let i = 0; i < MAC_LEN; i++) {
    buf[off + ETH_DST_OFF + i] = dst[i];
    buf[off + ETH_SRC_OFF + i] = src[i];
  }
  buf[off + ETH_TYPE_OFF] = type >>> 8;
  buf[off + ETH_TYPE_OFF + 1] = type & 0xff;
  return off + ETH_HEADER_LEN;
}

/** Group bit (I/G, lowest bit of the first octet): set for multicast and broadcast MACs. */
export function isMulticastMac(buf: Uint8Array, off: number): boolean {
  return (buf[off] & 1) === 1;
}

export function isZeroMac(buf: Uint8Array, off: number): boolean {
  return (buf[off] | buf[off + 1] | buf[off + 2] | buf[off + 3] | buf[off + 4] | buf[off + 5]) === 0;
}

/** Compares 6 bytes at two offsets without making views; false if either runs past its array. */
export function macEquals(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number): boolean {
  return equalAt(a, aOff, b, bOff, MAC_LEN);
}

// ---- Not for the hot path (logs, config, tests) ---------------------------------------

export function macToString(buf: Uint8Array, off = 0): string {
  const parts: string[] = [];
  for (let i = 0; i < MAC_LEN; i++) parts.push((buf[off + i] ?? 0).toString(16).padStart(2, '0'));
  return parts.join(':');
}

/** Parses "aa:bb:cc:dd:ee:ff" (or '-' separated); undefined if it is not one. */
export function parseMac(s: string): Uint8Array | undefined {
  const m = /^([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})$/i.exec(s);
  if (!m) return undefined;
  const out = new Uint8Array(MAC_LEN);
  for (let i = 0; i < MAC_LEN; i++) out[i] = parseInt(m[i + 1]!, 16);
  return out;
}
