// The gate in front of the handshakes: what a handshake datagram must pass before it costs an X25519,
// after WireGuard (paper section 5.3; wireguard-go's receive.go, where the handshake queue's length
// decides "under load").
//
//   take(), inline, for each 0xC1/0xC2 datagram as it arrives:
//     1. shape and mac1 (one BLAKE2s): random or misdirected datagrams end here, counted
//     2. 0xC2: it must answer one of our pending initiations, which has not seen HANDSHAKE_RESP_TRIES_MAX
//        forgeries yet (a lookup: off-path forgers never get further)
//     3. 0xC1 under load: no valid mac2 -> a cookie reply (cookie.ts; at most COOKIE_REPLIES_PER_SECOND),
//        nothing more; a valid mac2 -> the source's token bucket (per IPv4 address or IPv6 /64)
//     4. a copy joins the queue (HANDSHAKE_QUEUE_MAX; full: dropped, counted)
//   drain(), on the next event-loop turn: HANDSHAKE_DRAIN_PER_TURN messages get their Noise work
//     (handshake.ts), within HANDSHAKE_MAX_PER_SECOND, then the loop polls the socket again.
//
// Transport datagrams never enter this queue (tunnels.ts handles them inline), so an established tunnel
// keeps its packets flowing while a flood waits here or is turned away at step 1 or 3.
// Under load: the queue holds HANDSHAKE_QUEUE_UNDER_LOAD, or HANDSHAKE_UNDER_LOAD_PER_SECOND messages were
// taken in this second; it lasts HANDSHAKE_UNDER_LOAD_HOLD_MS after the last time that was so.

import {
  COOKIE_REPLIES_PER_SECOND, HANDSHAKE_DRAIN_PER_TURN, HANDSHAKE_MAX_PER_SECOND, HANDSHAKE_QUEUE_MAX, HANDSHAKE_QUEUE_UNDER_LOAD, HANDSHAKE_RESP_TRIES_MAX,
  HANDSHAKE_UNDER_LOAD_HOLD_MS, HANDSHAKE_UNDER_LOAD_PER_SECOND,
} from '../base/constants.js';
import type { DatagramSocket, Endpoint } from '../conn/socket.js';
import { CookieChecker, SourceLimiter } from './cookie.js';
import type { Handshakes } from './handshake.js';
import { HANDSHAKE_INIT_LEN, MSG_HANDSHAKE_INIT, parseHandshakeResp, verifyMac1 } from './messages.js';
import type { SecretKeys } from '../base/overlay-secret.js';
import type { HandshakeKeys } from './psk-keys.js';
import type { PeerState, TunnelStats } from './tunnel-peer.js';

/** The tunnel table's parts the gate reads. */
export interface GateTable {
  readonly stats: TunnelStats;
  readonly socket: DatagramSocket;
  readonly pendings: Map<number, PeerState>;
  now(): number;
}

/** `keys`: the secret the message's mac1 proved (a private overlay), which the answer is made with. */
interface Queued { msg: Buffer; from: Endpoint; keys: SecretKeys | undefined }

export class HandshakeGate {
  private readonly cookies: CookieChecker;
  private readonly sources = new SourceLimiter();
  private queue: Queued[] = [];
  private head = 0;
  private scheduled = false;
  private closed = false;
  private underLoadUntil = -Infinity;
  private windowStart = -Infinity;
  private windowCount = 0;
  private tokens = HANDSHAKE_MAX_PER_SECOND;
  private tokensAt: number;
  private replyTokens = COOKIE_REPLIES_PER_SECOND / 10;
  private replyTokensAt: number;

  constructor(
    private readonly t: GateTable,
    private readonly handshakes: Handshakes,
    private readonly keys: HandshakeKeys,
    ownStaticPublic: Uint8Array,
  ) {
    const now = t.now();
    this.cookies = new CookieChecker(ownStaticPublic, now);
    this.tokensAt = now;
    this.replyTokensAt = now;
  }

  get queued(): number { return this.queue.length - this.head; }

  /** Steps 1-4 for one 0xC1 or 0xC2 datagram (`msg` and `from` may be reused by the caller after). */
  take(msg: Buffer, from: Endpoint): void {
    const t = this.t;
    const now = t.now();
    const own = this.keys.ownMacs();
    let keys: SecretKeys | undefined;
    if (msg[0] === MSG_HANDSHAKE_INIT) {
      t.stats.handshakeInitRecv++;
      if (msg.length !== HANDSHAKE_INIT_LEN || msg[1] !== 0 || msg[2] !== 0 || msg[3] !== 0) { t.stats.rxInvalid++; return; }
      let i = 0;
      while (i < own.length && !CookieChecker.mac1(own[i]!.mac, msg)) i++;
      if (i === own.length) { t.stats.rxBadMac++; return; }
      keys = own[i]!.keys;
      if (this.underLoad(now)) {
        if (!this.cookies.mac2Valid(msg, from, now)) {
          if (!this.replyAllowed(now)) { t.stats.cookieReplySkipped++; return; }
          t.socket.send(this.cookies.reply(msg, msg.readUInt32LE(4), from, now), from);
          t.stats.cookieReplySent++;
          return;
        }
        if (!this.sources.allow(from.address, now)) { t.stats.handshakeRateLimited++; return; }
      }
    } else {
      t.stats.handshakeRespRecv++;
      const m = parseHandshakeResp(msg);
      if (!m) { t.stats.rxInvalid++; return; }
      let i = 0;
      while (i < own.length && !verifyMac1(own[i]!.mac, msg)) i++;
      if (i === own.length) { t.stats.rxBadMac++; return; }
      const pending = t.pendings.get(m.receiverIndex)?.pending;
      if (!pending || pending.badResponses >= HANDSHAKE_RESP_TRIES_MAX) { t.stats.rxUnknownIndex++; return; }
    }
    if (this.queued >= HANDSHAKE_QUEUE_MAX) { t.stats.handshakeQueueDropped++; return; }
    this.queue.push({ msg: Buffer.from(msg), from: { address: from.address, port: from.port }, keys });
    this.windowCount++;
    this.schedule();
  }

  /** Whether initiations need a valid mac2 now (and so get a cookie reply without one). */
  underLoad(now: number): boolean {
    if (now - this.windowStart >= 1000) { this.windowStart = now; this.windowCount = 0; }
    if (this.queued >= HANDSHAKE_QUEUE_UNDER_LOAD || this.windowCount >= HANDSHAKE_UNDER_LOAD_PER_SECOND) {
      this.underLoadUntil = now + HANDSHAKE_UNDER_LOAD_HOLD_MS;
    }
    return now < this.underLoadUntil;
  }

  /** COOKIE_REPLIES_PER_SECOND, a tenth of a second of it as burst. */
  private replyAllowed(now: number): boolean {
    const burst = COOKIE_REPLIES_PER_SECOND / 10;
    this.replyTokens = Math.min(burst, this.replyTokens + ((now - this.replyTokensAt) / 1000) * COOKIE_REPLIES_PER_SECOND);
    this.replyTokensAt = now;
    if (this.replyTokens < 1) return false;
    this.replyTokens--;
    return true;
  }

  /** Called from the tunnels' tick: a queue paused for HANDSHAKE_MAX_PER_SECOND goes on. */
  resume(): void {
    if (this.queued > 0) this.schedule();
  }

  close(): void {
    this.closed = true;
    this.queue = [];
    this.head = 0;
  }

  private schedule(): void {
    if (this.scheduled || this.closed) return;
    this.scheduled = true;
    setImmediate(() => this.drain());
  }

  private drain(): void {
    this.scheduled = false;
    if (this.closed) return;
    const now = this.t.now();
    this.tokens = Math.min(HANDSHAKE_MAX_PER_SECOND, this.tokens + ((now - this.tokensAt) / 1000) * HANDSHAKE_MAX_PER_SECOND);
    this.tokensAt = now;
    for (let n = 0; n < HANDSHAKE_DRAIN_PER_TURN && this.head < this.queue.length && this.tokens >= 1; n++) {
      const { msg, from, keys } = this.queue[this.head]!;
      this.queue[this.head++] = undefined as unknown as Queued; // let the copy go
      this.tokens--;
      try {
        if (msg[0] === MSG_HANDSHAKE_INIT) this.handshakes.onInit(msg, from, keys);
        else this.handshakes.onResp(msg, from);
      } catch {
        this.t.stats.rxInvalid++; // nothing there should throw on input; count it rather than stop the queue
      }
    }
    if (this.head === this.queue.length) { this.queue = []; this.head = 0; }
    else if (this.head > HANDSHAKE_QUEUE_MAX) { this.queue = this.queue.slice(this.head); this.head = 0; }
    if (this.queued > 0 && this.tokens >= 1) this.schedule();
  }
}
