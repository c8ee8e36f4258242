// The standby path's messages (standby.ts), carried as tunnel control messages: the plaintext of a 0xC4
// data message whose first byte is below 0x10 (tunnel/tunnels.ts sendControl/onControl). Every inner IP
// packet starts with its version (4 or 6), so the two never mix up; control messages share the session's
// keys, counter and replay window with data, so only the peer can send one and none can be replayed. They
// never move the tunnel's endpoint (an offer or a probe names a path to test, not the one in use: HIP's
// rule of verifying a locator before moving to it, RFC 8046) and do not count as hearing from the peer on
// the active path.
//
// 0x01 standby probe, 0x02 standby answer (8 bytes): sent on a standby path, the answer echoes the id.
//    0      1      2      3      4
//   +------+------+------+------+--------------------+
//   | type | 0    | 0    | 0    | probe id (u32 LE)  |
//   +------+------+------+------+--------------------+
//
// 0x03 standby offer (12 or 24 bytes), sent on the active path: "my other uplink is seen at ADDRESS:PORT;
// send there now and then" (the peer's packets open its own NAT's filter towards that mapping).
//    0      1        2              4                    8
//   +------+--------+--------------+--------------------+--------------------------------+
//   | 0x03 | family | port (u16 LE)| probe id (u32 LE)  | address (4 for IPv4, 16 for 6)  |
//   +------+--------+--------------+--------------------+--------------------------------+
import type { Endpoint } from '../conn/socket.js';
import { formatIpv4, formatIpv6, parseIpv4, parseIpv6 } from '../idloc/addresses.js';

export const CTRL_STANDBY_PROBE = 0x01;
export const CTRL_STANDBY_ANSWER = 0x02;
export const CTRL_STANDBY_OFFER = 0x03;

const PROBE_BYTES = 8;
const OFFER_V4_BYTES = 12;
const OFFER_V6_BYTES = 24;

export type ControlMessage =
  | { type: typeof CTRL_STANDBY_PROBE | typeof CTRL_STANDBY_ANSWER; id: number }
  | { type: typeof CTRL_STANDBY_OFFER; id: number; endpoint: Endpoint };

export function marshalControl(m: ControlMessage): Uint8Array {
  if (m.type !== CTRL_STANDBY_OFFER) {
    const b = new Uint8Array(PROBE_BYTES);
    b[0] = m.type;
    new DataView(b.buffer).setUint32(4, m.id >>> 0, true);
    return b;
  }
  const v4 = parseIpv4(m.endpoint.address);
  const v6 = v4 === undefined ? parseIpv6(m.endpoint.address) : undefined;
  if (v4 === undefined && v6 === undefined) throw new Error(`not an IP address: ${m.endpoint.address}`);
  const b = new Uint8Array(v4 !== undefined ? OFFER_V4_BYTES : OFFER_V6_BYTES);
  const dv = new DataView(b.buffer);
  b[0] = CTRL_STANDBY_OFFER;
  b[1] = v4 !== undefined ? 4 : 6;
  dv.setUint16(2, m.endpoint.port, true);
  dv.setUint32(4, m.id >>> 0, true);
  if (v4 !== undefined) dv.setUint32(8, v4 >>> 0, false);
  else b.set(v6!, 8);
  return b;
}

/** undefined: not a control message this version knows, or malformed (the caller counts it). */
export function parseControl(b: Uint8Array): ControlMessage | undefined {
  if (b.length < PROBE_BYTES) return undefined;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const id = dv.getUint32(4, true);
  switch (b[0]) {
    case CTRL_STANDBY_PROBE:
    case CTRL_STANDBY_ANSWER:
      if (b.length !== PROBE_BYTES || b[1] !== 0 || b[2] !== 0 || b[3] !== 0) return undefined;
      return { type: b[0], id };
    case CTRL_STANDBY_OFFER: {
      const port = dv.getUint16(2, true);
      if (port === 0) return undefined;
      if (b[1] === 4 && b.length === OFFER_V4_BYTES) return { type: CTRL_STANDBY_OFFER, id, endpoint: { address: formatIpv4(dv.getUint32(8, false)), port } };
      if (b[1] === 6 && b.length === OFFER_V6_BYTES) return { type: CTRL_STANDBY_OFFER, id, endpoint: { address: formatIpv6(b.subarray(8, 24)), port } };
      return undefined;
    }
    default: return undefined;
  }
}
