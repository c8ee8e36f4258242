// The datagram edge of the agent: one UDP socket carries tunnel, overlay and STUN packets,
// told apart by their first byte (RFC 7983 style; see agent/nat/demux.ts).
// NativeUdpSocket (batched, native-helpers/udp.c) and UdpSocket (node:dgram, its fallback) are the real
// ones; MemoryNetwork (memory-socket.ts) is the twin used by in-process tests.

import { formatIpv6, parseIpv6 } from '../base/ip-text.js';

export interface Endpoint {
  address: string;
  port: number;
  /** Send out of this interface (its index), whatever the routing table prefers: a multihomed host's
   *  standby path on its second uplink (nat/standby.ts). Only the native socket honours it; received
   *  endpoints never carry it, and it is not part of the endpoint's key. */
  via?: number;
}

export interface DatagramSocket {
  /** Local address the socket is bound to (as the OS reports it). */
  readonly local: Endpoint;
  /** Register the receiver; one per socket. `msg` is only valid during the call unless copied. */
  onMessage(handler: (msg: Buffer, from: Endpoint) => void): void;
  /** Send one datagram; errors (unreachable, no route) are counted, never thrown. */
  send(msg: Uint8Array, to: Endpoint): void;
  /** Sockets that batch sends (NativeUdpSocket) send what is queued now; others send at once anyway. */
  flush?(): void;
  close(): Promise<void>;
}

export function endpointKey(e: Endpoint): string {
  return e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
}

const keyCache = new WeakMap<Endpoint, { address: string; port: number; key: string }>();

/** endpointKey for the per-packet path: tunnels keep one Endpoint object per peer (replaced, never
 *  mutated, on roaming), so its key is built once, not per datagram; a mutated object is noticed. */
export function endpointKeyOf(e: Endpoint): string {
  const c = keyCache.get(e);
  if (c && c.port === e.port && c.address === e.address) return c.key;
  const key = endpointKey(e);
  keyCache.set(e, { address: e.address, port: e.port, key });
  return key;
}

/** Parse "host:port" / "[v6]:port"; returns undefined on anything else. A bracketed address must be
 *  IPv6 and comes back in RFC 5952 form (so "[2001:DB8:0::1]:1" and "[2001:db8::1]:1" are one endpoint). */
export function parseEndpoint(s: string): Endpoint | undefined {
  const v6 = /^\[([0-9a-fA-F:]+)\]:(\d{1,5})$/.exec(s);
  const m = v6 ?? /^([^:\s[\]]+):(\d{1,5})$/.exec(s);
  if (!m) return undefined;
  const port = Number(m[2]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  if (!v6) return { address: m[1]!, port };
  const b = parseIpv6(m[1]!);
  return b ? { address: formatIpv6(b), port } : undefined;
}
