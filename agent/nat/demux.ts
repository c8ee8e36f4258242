// First-byte demultiplexing of the agent's one UDP socket, after RFC 7983 section 7:
//
//   first byte   class            who handles it
//   0..3         'stun'           ICE connectivity checks / STUN binding (RFC 5389 top bits 00)
//   64..79       'turn-channel'   TURN ChannelData (channel numbers 0x4000-0x4FFF)
//   0xC1 0xC2    'tunnel'         handshake initiation / response (messages.ts)
//   0xC3         'tunnel'         cookie reply to an initiation under load
//   0xC4         'tunnel'         transport data
//   0xD2         'overlay'        RELOAD-style overlay messages
//   0xD3         'peer-relay'     frames relayed through an overlay peer (peer-relay-wire.ts)
//   anything else 'unknown'       counted and dropped by the caller
//
// Why these values: RFC 7983 leaves 128-191 to RTP/RTCP and 20-63 to DTLS; staying in 192-255 keeps
// the socket shareable with a future DTLS/SRTP user, and 0xC1-0xC4 follow WireGuard's message types.

import { MSG_COOKIE_REPLY, MSG_HANDSHAKE_INIT, MSG_HANDSHAKE_RESP, MSG_TRANSPORT } from '../tunnel/messages.js';
import { MSG_PEER_RELAY } from './peer-relay-wire.js';

export const MSG_OVERLAY = 0xd2;

export type DatagramClass = 'stun' | 'turn-channel' | 'tunnel' | 'overlay' | 'peer-relay' | 'unknown';

/** Class of a datagram by its first byte; pass `msg[0]` (undefined for an empty datagram). */
export function classifyDatagram(firstByte: number | undefined): DatagramClass {
  if (firstByte === undefined) return 'unknown';
  if (firstByte <= 3 && firstByte >= 0) return 'stun';
  if (firstByte >= 64 && firstByte <= 79) return 'turn-channel';
  if (firstByte === MSG_TRANSPORT || firstByte === MSG_HANDSHAKE_INIT || firstByte === MSG_HANDSHAKE_RESP
    || firstByte === MSG_COOKIE_REPLY) return 'tunnel';
  if (firstByte === MSG_OVERLAY) return 'overlay';
  if (firstByte === MSG_PEER_RELAY) return 'peer-relay';
  return 'unknown';
}

/** Datagrams the underlay took in, those no layer claims by first byte, and those no layer is ready for yet. */
export interface DemuxStats { datagrams: number; unknown: number; notYetHandled: number }
