// `idloc-agent ping`: a ping inside the tunnel, answered by the peer's agent itself (not its kernel's
// ICMP through the TAP), so it tells the path and its round trip as the tunnel sees them, the way
// tailscale's disco ping does. Both are tunnel control messages (the plaintext of a 0xC4 data message
// whose first byte is below 0x10, tunnels.ts): only the peer can send one, none can be replayed, and
// neither moves the endpoint. A pong goes back to where its ping came from, and is no larger than it.
//
// 0x06 tunnel ping, 0x07 tunnel pong (8 bytes); the pong echoes the ping's id.
//    0      1      2      3      4
//   +------+------+------+------+--------------------+
//   | type | 0    | 0    | 0    | ping id (u32 LE)   |
//   +------+------+------+------+--------------------+
import type { Endpoint } from '../conn/socket.js';
import { TUNNEL_PINGS_PENDING_MAX } from '../base/constants.js';
import type { ControlReceiver, TunnelPeer } from './tunnel-peer.js';

export const CTRL_TUNNEL_PING = 0x06;
export const CTRL_TUNNEL_PONG = 0x07;
export const TUNNEL_PING_BYTES = 8;

export function marshalTunnelPing(type: typeof CTRL_TUNNEL_PING | typeof CTRL_TUNNEL_PONG, id: number): Uint8Array {
  const b = new Uint8Array(TUNNEL_PING_BYTES);
  b[0] = type;
  new DataView(b.buffer).setUint32(4, id >>> 0, true);
  return b;
}

/** undefined: not a tunnel ping or pong (another control message, or malformed). */
export function parseTunnelPing(b: Uint8Array): { type: typeof CTRL_TUNNEL_PING | typeof CTRL_TUNNEL_PONG; id: number } | undefined {
  if (b.length !== TUNNEL_PING_BYTES || (b[0] !== CTRL_TUNNEL_PING && b[0] !== CTRL_TUNNEL_PONG) || b[1] !== 0 || b[2] !== 0 || b[3] !== 0) return undefined;
  return { type: b[0] as typeof CTRL_TUNNEL_PING, id: new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(4, true) };
}

/** What TunnelPing needs of Tunnels. */
export interface PingTunnels {
  sendControl(peer: TunnelPeer, message: Uint8Array, to?: Endpoint): boolean;
  onControl(handler: ControlReceiver): void;
}

export interface TunnelPong { rttMs: number; from: Endpoint }

export class TunnelPing {
  readonly stats = { pingsSent: 0, pingsAnswered: 0, pongs: 0, pongsUnexpected: 0, pendingFull: 0 };
  private readonly pending = new Map<number, { peer: TunnelPeer; sentAt: number; done: (p: TunnelPong) => void }>();
  private nextId = 1;

  /** `now`: a clock finer than the scheduler's milliseconds, for the round trip (default performance.now). */
  constructor(private readonly tunnels: PingTunnels, private readonly now: () => number = () => performance.now()) {
    tunnels.onControl((peer, msg, from) => this.onControl(peer, msg, from));
  }

  /** Send one ping on the peer's current session; false if there is none yet (no handshake) or too many
   *  pings wait. `onPong` is called once, when the pong comes; drop the wait with the returned cancel. */
  ping(peer: TunnelPeer, onPong: (p: TunnelPong) => void): (() => void) | false {
    if (this.pending.size >= TUNNEL_PINGS_PENDING_MAX) { this.stats.pendingFull++; return false; }
    const id = this.nextId;
    this.nextId = (this.nextId % 0xffffffff) + 1;
    if (!this.tunnels.sendControl(peer, marshalTunnelPing(CTRL_TUNNEL_PING, id))) return false;
    this.stats.pingsSent++;
    this.pending.set(id, { peer, sentAt: this.now(), done: onPong });
    return () => { this.pending.delete(id); };
  }

  private onControl(peer: TunnelPeer, msg: Buffer, from: Endpoint): void {
    const m = parseTunnelPing(msg);
    if (!m) return;
    if (m.type === CTRL_TUNNEL_PING) {
      if (this.tunnels.sendControl(peer, marshalTunnelPing(CTRL_TUNNEL_PONG, m.id), from)) this.stats.pingsAnswered++;
      return;
    }
    const w = this.pending.get(m.id);
    if (!w || w.peer !== peer) { this.stats.pongsUnexpected++; return; }
    this.pending.delete(m.id);
    this.stats.pongs++;
    w.done({ rttMs: this.now() - w.sentAt, from: { ...from } });
  }
}
