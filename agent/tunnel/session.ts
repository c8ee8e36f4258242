// One transport session: the pair of keys a completed handshake's Split() produced, plus what the
// data path needs per packet. Packet layout (messages.ts, 0xC4):
//
//   | C4 00 00 00 | receiver idx u32 | counter u64 LE | ChaCha20-Poly1305(payload) | tag (16) |
//
// The AEAD nonce is 4 zero bytes || the counter as 8 bytes little-endian (Noise's nonce for
// ChaChaPoly), so on receive the counter parsed from the header is the nonce, passed as a number.
// No associated data (see messages.ts for why the header needs none).
//
// Lean by design: each direction keys one Aead context (aead.ts: native when the addon is built) once
// per session; per packet the only allocation is the outgoing datagram (the socket may keep it until
// sent), and decryption writes into a shared scratch buffer, so a received packet allocates one view.
// Limits (WireGuard paper 6.1): the sender stops at REJECT_AFTER_MESSAGES (capped at 2^53, where JS
// numbers stop being exact) and everything stops REJECT_AFTER_TIME after creation.

import { Aead } from './aead.js';
import { REJECT_AFTER_MESSAGES, REJECT_AFTER_TIME_MS, REKEY_AFTER_MESSAGES, REKEY_AFTER_TIME_MS } from '../base/constants.js';
import { AEAD_TAG_LEN, MAX_COUNTER, TRANSPORT_HEADER_LEN, writeTransportHeader } from './messages.js';
import { ReplayWindow } from './replay-window.js';

/** Where decrypt() puts plaintext unless told otherwise: one per process, big enough for any datagram.
 *  Safe to share because nothing decrypts again before the previous result has been consumed. */
const SCRATCH = Buffer.allocUnsafeSlow(65536);

/** Counter limits as numbers (the bigint constants are beyond 2^53; see replay-window.ts). */
export const REKEY_AFTER_COUNTER = Math.min(Number(REKEY_AFTER_MESSAGES), MAX_COUNTER);
export const REJECT_AFTER_COUNTER = Math.min(Number(REJECT_AFTER_MESSAGES), MAX_COUNTER);

export interface SessionKeys {
  send: Uint8Array;
  recv: Uint8Array;
}

export class Session {
  readonly localIndex: number;
  readonly remoteIndex: number;
  /** Whether we initiated the handshake: only the initiator rekeys on age (avoids both sides racing). */
  readonly isInitiator: boolean;
  readonly createdAt: number;
  /** Next counter to send. */
  sendCounter = 0;
  /** Authenticated packets received (including keepalives). */
  rxMessages = 0;
  readonly replay = new ReplayWindow();
  private readonly sendAead: Aead;
  private readonly recvAead: Aead;

  constructor(keys: SessionKeys, localIndex: number, remoteIndex: number, isInitiator: boolean, createdAt: number) {
    this.sendAead = new Aead(keys.send);
    this.recvAead = new Aead(keys.recv);
    this.localIndex = localIndex;
    this.remoteIndex = remoteIndex;
    this.isInitiator = isInitiator;
    this.createdAt = createdAt;
  }

  /** May this session still encrypt? */
  canSend(now: number): boolean {
    return this.sendCounter < REJECT_AFTER_COUNTER && now - this.createdAt < REJECT_AFTER_TIME_MS;
  }

  /** May this session still decrypt? */
  canReceive(now: number): boolean {
    return now - this.createdAt < REJECT_AFTER_TIME_MS;
  }

  /** Old or used enough that its initiator should start a new handshake (it keeps working meanwhile). */
  wantsRekey(now: number): boolean {
    return this.sendCounter >= REKEY_AFTER_COUNTER || (this.isInitiator && now - this.createdAt >= REKEY_AFTER_TIME_MS);
  }

  /** Encrypt one payload (empty = keepalive) into a complete 0xC4 datagram. Caller checks canSend(). */
  encrypt(plaintext: Uint8Array): Buffer {
    const counter = this.sendCounter++;
    const out = Buffer.allocUnsafe(TRANSPORT_HEADER_LEN + plaintext.length + AEAD_TAG_LEN);
    writeTransportHeader(out, this.remoteIndex, counter);
    // The counter is the nonce (4 zero bytes || counter LE): exactly the header's counter field.
    this.sendAead.seal(counter, plaintext, out, TRANSPORT_HEADER_LEN);
    return out;
  }

  /** Decrypt a 0xC4 datagram whose header parsed to `counter`. Returns the plaintext (possibly empty),
   *  'replay' if the counter was seen or is too old, or undefined if it does not authenticate.
   *  The replay window only moves after authentication, so forgeries cannot shift it.
   *  The plaintext is a view into `out` (default: a scratch buffer shared by all sessions), so it is
   *  valid only until the next decrypt: consume or copy it first. `out` may be `packet` itself with
   *  outOffset TRANSPORT_HEADER_LEN (in place). */
  decrypt(packet: Uint8Array, counter: number, out: Buffer = SCRATCH, outOffset = 0): Buffer | 'replay' | undefined {
    if (!this.replay.check(counter)) return 'replay';
    // The header's counter is the nonce, and parseTransport already read it: pass the number.
    const n = this.recvAead.open(counter, packet.subarray(TRANSPORT_HEADER_LEN), out, outOffset);
    if (n < 0) return undefined;
    this.replay.update(counter);
    this.rxMessages++;
    return out.subarray(outOffset, outOffset + n);
  }
}
