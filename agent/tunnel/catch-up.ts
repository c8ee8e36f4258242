// Catch-up: the data datagrams sent into a path that had gone silent are sent again, once, on the path
// that replaces it.
//
// A path breaks (a NAT forgets us, an uplink goes quiet, the peer moves). Until one side notices and a
// new endpoint is found, everything sent is lost, and a TCP sender behind us backs off: its
// retransmissions come ~0.2, 0.6, 1.4, 3 s after the loss, so a path repaired at 0.7 s costs a stall of
// 1.4 s, not 0.7 s. So each peer keeps references to its last CATCH_UP_PACKETS_MAX data datagrams (the
// ciphertexts that went out; the encryption made a fresh buffer for each, so nothing is copied), and
// when the endpoint moves (roam, FOLLOW_ME, a new pair, a standby failover) or a bridge starts after at
// least CATCH_UP_SILENCE_MS with nothing heard from the peer, the ones sent since we last heard go
// again to the new place. The peer's replay window drops any it already has, and the rest reach its
// TCP at once, whose ACKs end our sender's backoff. The same ciphertext: no new counter, nothing a
// replay could use; only an endpoint that an authenticated packet named, or the path keeper chose, is
// sent to.
//
// A path can also come back at the same endpoint (our NAT forgot its mapping, a port-preserving one gave
// it back when we sent again): nothing moves, so the receiver asks. When a flow towards it stops
// (tunnels.ts, RECEIVE_SILENT_MS) it sends CATCH_ME_UP, a tunnel control message naming its session and
// the highest counter it has had on it; the sender resends, to its endpoint, the held datagrams of that
// session with a higher counter, each at most once. An authenticated peer can ask for no more than what
// was sent to it and is still held.
//
// CATCH_ME_UP (16 bytes of plaintext in a 0xC4 data message):
//    0      1      2      3      4                       8                                      16
//   +------+------+------+------+-----------------------+--------------------------------------+
//   | 0x05 | 0    | 0    | 0    | receiver index (u32 LE) | highest counter received (u64 LE)  |
//   +------+------+------+------+-----------------------+--------------------------------------+
// The receiver index is the one the sender's datagrams carry (the asker's own index for the session).
import { CATCH_UP_PACKETS_MAX, CATCH_UP_SILENCE_MS } from '../base/constants.js';
import type { DatagramSocket, Endpoint } from '../conn/socket.js';

export const CTRL_CATCH_ME_UP = 0x05;
export const CATCH_ME_UP_BYTES = 16;

export interface CatchMeUp { receiverIndex: number; highest: number }

export function marshalCatchMeUp(m: CatchMeUp): Uint8Array {
  const b = new Uint8Array(CATCH_ME_UP_BYTES);
  b[0] = CTRL_CATCH_ME_UP;
  setU32LE(b, 4, m.receiverIndex);
  setU32LE(b, 8, m.highest >>> 0);
  setU32LE(b, 12, Math.floor(m.highest / 0x100000000) >>> 0);
  return b;
}

/** A CATCH_ME_UP, or undefined for any other plaintext (or a malformed one). */
export function parseCatchMeUp(pt: Uint8Array): CatchMeUp | undefined {
  if (pt.length !== CATCH_ME_UP_BYTES || pt[0] !== CTRL_CATCH_ME_UP || pt[1] !== 0 || pt[2] !== 0 || pt[3] !== 0) return undefined;
  const hi = getU32LE(pt, 12);
  if (hi >= 0x200000) return undefined; // beyond 2^53: no counter of ours gets there (REJECT_AFTER_COUNTER)
  return { receiverIndex: getU32LE(pt, 4), highest: hi * 0x100000000 + getU32LE(pt, 8) };
}

function getU32LE(b: Uint8Array, off: number): number {
  return (b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16) | (b[off + 3]! << 24)) >>> 0;
}

function setU32LE(b: Uint8Array, off: number, v: number): void {
  b[off] = v & 0xff; b[off + 1] = (v >>> 8) & 0xff; b[off + 2] = (v >>> 16) & 0xff; b[off + 3] = (v >>> 24) & 0xff;
}

const MASK = CATCH_UP_PACKETS_MAX - 1;
if ((CATCH_UP_PACKETS_MAX & MASK) !== 0) throw new Error('CATCH_UP_PACKETS_MAX must be a power of two');

/** A peer's last data datagrams, newest last (a ring). */
export class CatchUp {
  private readonly sent: (Uint8Array | undefined)[] = new Array(CATCH_UP_PACKETS_MAX);
  private readonly sentAt = new Float64Array(CATCH_UP_PACKETS_MAX).fill(-Infinity);
  private next = 0;

  /** Per data datagram sent (the hot path: two stores). */
  record(datagram: Uint8Array, now: number): void {
    const i = this.next;
    this.sent[i] = datagram;
    this.sentAt[i] = now;
    this.next = (i + 1) & MASK;
  }

  /** Send, oldest first, what went out since `heardAt` (the last thing heard from the peer) to `to`, if
   *  the peer has been silent for CATCH_UP_SILENCE_MS; each datagram at most once. Returns how many. */
  resend(socket: DatagramSocket, to: Endpoint, heardAt: number, now: number): number {
    if (now - heardAt < CATCH_UP_SILENCE_MS) return 0;
    let n = 0;
    for (let k = 0; k < CATCH_UP_PACKETS_MAX; k++) {
      const i = (this.next + k) & MASK;
      const d = this.sent[i];
      if (d === undefined) continue;
      if (this.sentAt[i]! >= heardAt) { socket.send(d, to); n++; } // same ms: may be after it
      this.sent[i] = undefined; // once: a second move does not repeat them, and the buffers are freed
      this.sentAt[i] = -Infinity;
    }
    return n;
  }

  /** The peer's CATCH_ME_UP: send to `to`, oldest first, the held datagrams of its session (the receiver
   *  index they carry) with a counter above what it has had; each at most once. Returns how many. */
  resendAfter(socket: DatagramSocket, to: Endpoint, m: CatchMeUp): number {
    let n = 0;
    for (let k = 0; k < CATCH_UP_PACKETS_MAX; k++) {
      const i = (this.next + k) & MASK;
      const d = this.sent[i];
      if (d === undefined || getU32LE(d, 4) !== m.receiverIndex) continue;
      if (getU32LE(d, 12) * 0x100000000 + getU32LE(d, 8) <= m.highest) continue;
      socket.send(d, to);
      n++;
      this.sent[i] = undefined;
      this.sentAt[i] = -Infinity;
    }
    return n;
  }

  /** Held datagrams (tests, status). */
  get held(): number { return this.sent.reduce((n, d) => n + (d ? 1 : 0), 0); }

  clear(): void {
    this.sent.fill(undefined);
    this.sentAt.fill(-Infinity);
  }
}
