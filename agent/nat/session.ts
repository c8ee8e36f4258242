// One transport session: the pair of keys a completed handshake's Split() produced, plus what the
// data path needs per packet. Packet layout (messages.ts, 0xC4):
//
//   | C4 00 00 00 | receiver idx u32 | counter u64 LE | ChaCha20-Poly1305(payload) | tag (16) |
//
// The AEAD nonce is 4 zero bytes || the counter as 8 bytes little-endian (Noise's nonce for
// ChaChaPoly), so on receive the counter bytes of the header are copied into the nonce unchanged.
// No associated data (see messages.ts for why the header needs none).
//
// Lean by design: the two 12-byte nonce buffers are allocated once per session; per packet the only
// allocations are node:crypto's cipher object, its output and tag, and the outgoing datagram.
// Limits (WireGuard paper 6.1): the sender stops at REJECT_AFTER_MESSAGES (capped at 2^53, where JS
// numbers stop being exact) and everything stops REJECT_AFTER_TIME after creation.

import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject } from 'node:crypto';
import { REJECT_AFTER_MESSAGES, REJECT_AFTER_TIME_MS, REKEY_AFTER_MESSAGES, REKEY_AFTER_TIME_MS } from '../constants.js';
import { AEAD_TAG_LEN, MAX_COUNTER, TRANSPORT_HEADER_LEN, writeTransportHeader } from './messages.js';
import { ReplayWindow } from './replay-window.js';

const CIPHER = 'chacha20-poly1305';
const AEAD_OPTS = { authTagLength: AEAD_TAG_LEN } as const;

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
  private readonly sendKey: KeyObject;
  private readonly recvKey: KeyObject;
  private readonly sendNonce = Buffer.alloc(12);
  private readonly recvNonce = Buffer.alloc(12);

  constructor(keys: SessionKeys, localIndex: number, remoteIndex: number, isInitiator: boolean, createdAt: number) {
    this.sendKey = createSecretKey(keys.send);
    this.recvKey = createSecretKey(keys.recv);
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
    const nonce = this.sendNonce;
    // Counter into nonce bytes 4..11, little-endian; high word is 0 for the first 2^32 packets.
    nonce.writeUInt32LE(counter >>> 0, 4);
    nonce.writeUInt32LE(Math.floor(counter / 0x100000000), 8);
    const c = createCipheriv(CIPHER, this.sendKey, nonce, AEAD_OPTS);
    const n = plaintext.length;
    const out = Buffer.allocUnsafe(TRANSPORT_HEADER_LEN + n + AEAD_TAG_LEN);
    writeTransportHeader(out, this.remoteIndex, counter);
    if (n > 0) {
      const ct = c.update(plaintext);
      ct.copy(out, TRANSPORT_HEADER_LEN);
    }
    c.final();
    c.getAuthTag().copy(out, TRANSPORT_HEADER_LEN + n);
    return out;
  }

  /** Decrypt a 0xC4 datagram whose header parsed to `counter`. Returns the plaintext (possibly empty),
   *  'replay' if the counter was seen or is too old, or undefined if it does not authenticate.
   *  The replay window only moves after authentication, so forgeries cannot shift it. */
  decrypt(packet: Uint8Array, counter: number): Buffer | 'replay' | undefined {
    if (!this.replay.check(counter)) return 'replay';
    const nonce = this.recvNonce;
    nonce.set(packet.subarray(8, TRANSPORT_HEADER_LEN), 4);
    const tagAt = packet.length - AEAD_TAG_LEN;
    let pt: Buffer;
    try {
      const d = createDecipheriv(CIPHER, this.recvKey, nonce, AEAD_OPTS);
      d.setAuthTag(packet.subarray(tagAt));
      pt = d.update(packet.subarray(TRANSPORT_HEADER_LEN, tagAt));
      d.final(); // throws when the tag does not verify
    } catch {
      return undefined;
    }
    this.replay.update(counter);
    this.rxMessages++;
    return pt;
  }
}
