// Admission to a private overlay at the socket: every overlay (0xD2) and peer-relay (0xD3) datagram
// carries a tag that only holders of the overlay's secret can make (base/overlay-secret.ts).
//
//   +------+---------------------------------------------+------------------------------------+
//   | 0xD2 | overlay message (overlay/codec.ts), or     |  tag: keyed BLAKE2s-128 of all the |
//   | 0xD3 | a relay frame (nat/peer-relay-wire.ts)      |  bytes before it, under the secret's |
//   |      |                                             |  tag key (ADMISSION_TAG_BYTES)      |
//   +------+---------------------------------------------+------------------------------------+
//
// Outbound, `wrap(socket)` appends the tag of the current secret to those two kinds and passes every
// other datagram through untouched: tunnel messages carry their own proof (mac1 keyed by the secret, the
// IKpsk2 psk, then AEAD), and STUN to public servers and TURN must stay plain STUN. Inbound, the underlay
// asks `open()` before any parser sees the bytes: a datagram no accepted secret tagged is dropped and
// counted, never answered, so to a host without the secret the agent's overlay and relay look closed.
// The tag is per hop: a relay checks the sender's tag and tags what it forwards itself.
//
// No replay protection here, on purpose: the overlay's own messages are signed, carry transaction ids and
// cookies, and relayed payloads are tunnel messages with their own replay window; the tag only says "a
// member sent this", which a replayed member datagram still truthfully says.
import type { DatagramSocket, Endpoint } from '../conn/socket.js';
import { ADMISSION_TAG_BYTES } from '../base/constants.js';
import type { OverlaySecrets } from '../base/overlay-secret.js';
import { Blake2sMac } from '../tunnel/blake2s-mac.js';
import { MSG_OVERLAY } from './demux.js';
import { MSG_PEER_RELAY } from './peer-relay-wire.js';

export interface AdmissionStats {
  /** Datagrams we tagged on the way out. */
  sealed: number;
  /** Tagged datagrams that proved an accepted secret. */
  admitted: number;
  /** Overlay and relay datagrams without a valid tag: strangers, another overlay, garbage. */
  refused: number;
  /** Of those admitted, how many proved a secret other than the current one (a rotation in progress). */
  admittedByOldSecret: number;
}

/** Does a datagram with this first byte carry the tag in a private overlay? */
export function isTagged(firstByte: number | undefined): boolean {
  return firstByte === MSG_OVERLAY || firstByte === MSG_PEER_RELAY;
}

export class DatagramAdmission {
  readonly stats: AdmissionStats = { sealed: 0, admitted: 0, refused: 0, admittedByOldSecret: 0 };
  private macs: Blake2sMac[] = [];
  private version = -1;

  constructor(readonly secrets: OverlaySecrets) {}

  /** msg || tag under the current secret (a new buffer: the caller's stays as it was). */
  seal(msg: Uint8Array): Buffer {
    const macs = this.accepted();
    const out = Buffer.allocUnsafe(msg.length + ADMISSION_TAG_BYTES);
    out.set(msg, 0);
    macs[0]!.macInto(out, msg.length, out, msg.length);
    this.stats.sealed++;
    return out;
  }

  /** The length of the datagram without its tag when an accepted secret tagged it, otherwise -1 (counted). */
  open(msg: Uint8Array): number {
    const at = msg.length - ADMISSION_TAG_BYTES;
    if (at >= 1) {
      const macs = this.accepted();
      for (let i = 0; i < macs.length; i++) {
        if (macs[i]!.verifyAt(msg, at)) {
          this.stats.admitted++;
          if (i > 0) this.stats.admittedByOldSecret++;
          return at;
        }
      }
    }
    this.stats.refused++;
    return -1;
  }

  /** The socket as the overlay and relays see it: their datagrams leave tagged. */
  wrap(socket: DatagramSocket): DatagramSocket {
    return {
      get local() { return socket.local; },
      onMessage: (h) => socket.onMessage(h),
      send: (msg: Uint8Array, to: Endpoint) => socket.send(isTagged(msg[0]) ? this.seal(msg) : msg, to),
      close: () => socket.close(),
      ...(socket.flush ? { flush: () => socket.flush!() } : {}),
    };
  }

  private accepted(): Blake2sMac[] {
    if (this.version !== this.secrets.version) {
      this.version = this.secrets.version;
      this.macs = this.secrets.accepted.map((k) => new Blake2sMac(k.tag));
    }
    return this.macs;
  }
}
