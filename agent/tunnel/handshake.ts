// Handshakes: Noise IK initiations and responses for the tunnel table (WireGuard paper section 5.4).
//
//   initiator: startHandshake -> sendInitiation (0xC1: ephemeral, our static, TAI64N + our Ed25519 key +
//     puzzle nonce; retried from HANDSHAKE_RETRY_INITIAL_MS doubling to REKEY_TIMEOUT_MS) -> onResp (0xC2
//     for our pending index) -> session `current`, queued packets flushed (or a keepalive: our first
//     packet on the session is what lets the responder use it)
//   responder: (handshake-gate.ts: mac1, and under load mac2 or a cookie reply, the source's limit, the
//     queue) onInit -> Noise read, a known static (or a stranger the admission lets in), a TAI64N
//     newer than the last, not faster than HANDSHAKE_INIT_RATE_MS -> response 0xC2, session `next`,
//     confirmed by the initiator's first data (confirmNext)
//   cookie reply (0xC3) to our pending initiation: its cookie makes the next initiation's mac2 (cookie.ts);
//     we do not resend at once (nor let anyone make us): the next retry carries it.
//   Both sides initiating at once each answer the other; the first data on a new session makes the
//   other, moot handshake stop (wireguard-go's timersHandshakeComplete).
// Wire layouts: agent/tunnel/messages.ts.

import { hex } from '../base/bytes.js';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { ed25519 } from '@noble/curves/ed25519.js';
import {
  COOKIE_REFRESH_MS, HANDSHAKE_INIT_RATE_MS, HANDSHAKE_RELOCATE_AFTER_TRIES, HANDSHAKE_RETRY_INITIAL_MS, REKEY_TIMEOUT_JITTER_MS,
  REKEY_TIMEOUT_MS,
} from '../base/constants.js';
import { endpointKey, type DatagramSocket, type Endpoint } from '../conn/socket.js';
import { HandshakeState, type KeyPair } from './noise.js';
import {
  INIT_MAC1_OFF, INIT_MAC2_OFF, INIT_NOISE_END, INIT_NOISE_OFF, INIT_PAYLOAD_LEN, RESP_NOISE_END, RESP_NOISE_OFF, TAI64N_LEN,
  compareTai64n, marshalHandshakeInit, marshalHandshakeResp, parseCookieReply, parseHandshakeInit, parseHandshakeResp, tai64n,
} from './messages.js';
import { openCookieReply } from './cookie.js';
import { Session } from './session.js';
import type { PeerState, TunnelAdmission, TunnelStats } from './tunnel-peer.js';
import type { HandshakeKeys } from './psk-keys.js';
import type { SecretKeys } from '../base/overlay-secret.js';

/** Domain separation: a Noise handshake for another protocol on the same keys cannot be replayed here. */
const PROLOGUE = new TextEncoder().encode('idloc tunnel v1');
const EMPTY = new Uint8Array(0);

/** The tunnel table's parts a handshake reads and changes, and its data path (for the first packets). */
export interface HandshakeTable {
  readonly stats: TunnelStats;
  readonly socket: DatagramSocket;
  readonly log: Logger;
  readonly byStatic: Map<string, PeerState>;
  readonly sessions: Map<number, { peer: PeerState; session: Session }>;
  readonly pendings: Map<number, PeerState>;
  now(): number;
  admission(): TunnelAdmission | undefined;
  transmit(p: PeerState, s: Session, payload: Uint8Array, now: number): void;
  /** Send the peer's queue on `s`; false if nothing was queued. */
  flush(p: PeerState, s: Session, now: number): boolean;
  roam(p: PeerState, from: Endpoint, now: number): void;
  drop(s: Session): undefined;
}

export class Handshakes {
  private lastTsNs = 0n;

  constructor(
    private readonly t: HandshakeTable,
    private readonly keys: KeyPair,
    /** Our Ed25519 public key, sent inside every initiation (messages.ts says why). */
    private readonly ownPublicKey: Uint8Array,
    /** The NodeID puzzle nonce of our key, so strangers can admit us. */
    private readonly puzzleNonce: bigint,
    /** mac1 and psk under a private overlay's secret (psk-keys.ts). */
    private readonly secretKeys: HandshakeKeys,
  ) {}

  start(p: PeerState, now: number): void {
    if (p.handshaking) return;
    p.handshaking = true;
    p.attemptStart = now;
    p.initiations = 0;
    this.sendInitiation(p, now);
  }

  sendInitiation(p: PeerState, now: number): void {
    const t = this.t;
    if (p.pending) t.pendings.delete(p.pending.localIndex); // a response to an older try is void
    p.pending = undefined;
    // Back off from HANDSHAKE_RETRY_INITIAL_MS to REKEY_TIMEOUT: a first initiation lost because the
    // peer was still starting costs a fraction of a second, not WireGuard's fixed 5 s.
    const delay = Math.min(REKEY_TIMEOUT_MS, HANDSHAKE_RETRY_INITIAL_MS * 2 ** p.initiations++);
    if (p.initiations === HANDSHAKE_RELOCATE_AFTER_TRIES + 1) this.callOwner(() => t.admission()?.handshakeUnanswered(p));
    p.nextRetryAt = now + delay + Math.random() * REKEY_TIMEOUT_JITTER_MS;
    if (!p.endpoint) { t.stats.txNoEndpoint++; return; }
    const secret = this.secretKeys.current();
    const hs = new HandshakeState({ initiator: true, prologue: PROLOGUE, s: this.keys, rs: p.staticX, ...(secret ? { psk: secret.psk } : {}) });
    const payload = new Uint8Array(INIT_PAYLOAD_LEN);
    payload.set(this.timestamp(now), 0);
    payload.set(this.ownPublicKey, TAI64N_LEN);
    new DataView(payload.buffer).setBigUint64(TAI64N_LEN + 32, this.puzzleNonce);
    const noise = hs.writeMessage(payload);
    if (!noise) { this.giveUp(p); return; } // only a small-order peer key gets here
    const localIndex = this.newIndex();
    const pkt = marshalHandshakeInit(
      { senderIndex: localIndex, ephemeral: noise.subarray(0, 32), encryptedStatic: noise.subarray(32, 80), encryptedPayload: noise.subarray(80, 148), mac1: EMPTY },
      this.secretKeys.mac1To(p.mac1To, secret), p.cookie && now - p.cookieAt < COOKIE_REFRESH_MS ? p.cookie : undefined,
    );
    const mac1 = Uint8Array.from(pkt.subarray(INIT_MAC1_OFF, INIT_MAC2_OFF));
    p.pending = { hs, localIndex, sentAt: now, mac1, cookieTaken: false, badResponses: 0 };
    t.pendings.set(localIndex, p);
    t.socket.send(pkt, p.endpoint);
    p.txBytes += pkt.length;
    t.stats.handshakeInitSent++;
    t.log.debug({ peer: p.publicKeyHex, to: endpointKey(p.endpoint) }, 'handshake initiation sent');
  }

  /** An initiation that passed the gate (handshake-gate.ts: shape, mac1, load); `secret`: the one its mac1
   *  proved, which our response is made with. */
  onInit(msg: Buffer, from: Endpoint, secret?: SecretKeys): void {
    const t = this.t;
    const m = parseHandshakeInit(msg);
    if (!m) { t.stats.rxInvalid++; return; }
    if (this.secretKeys.private && !secret) { t.stats.rxBadMac++; return; }
    const hs = new HandshakeState({ initiator: false, prologue: PROLOGUE, s: this.keys, ...(secret ? { psk: secret.psk } : {}) });
    const payload = hs.readMessage(msg.subarray(INIT_NOISE_OFF, INIT_NOISE_END));
    if (!payload) { t.stats.rxDecryptFailed++; return; }
    if (payload.length !== INIT_PAYLOAD_LEN) { t.stats.rxInvalid++; return; }
    const ts = payload.subarray(0, TAI64N_LEN);
    const staticHex = hex(hs.remoteStatic!);
    const p = t.byStatic.get(staticHex) ?? this.admit(payload, staticHex, from);
    if (!p) {
      t.stats.rxUnknownPeer++;
      t.log.debug({ from: endpointKey(from) }, 'handshake from unknown static key refused');
      return;
    }
    const now = t.now();
    if (p.lastInitTimestamp && compareTai64n(ts, p.lastInitTimestamp) <= 0) {
      t.stats.rxReplayed++;
      t.stats.handshakeRejected++;
      return;
    }
    if (now - p.lastInitAt < HANDSHAKE_INIT_RATE_MS) { t.stats.handshakeRejected++; return; }
    p.lastInitTimestamp = Uint8Array.from(ts);
    p.lastInitAt = now;
    const noise = hs.writeMessage(EMPTY);
    if (!noise) { t.stats.rxDecryptFailed++; return; }
    const localIndex = this.newIndex();
    const session = new Session(hs.split(), localIndex, m.senderIndex, false, now);
    if (p.next) t.drop(p.next);
    p.next = session;
    t.sessions.set(localIndex, { peer: p, session });
    t.roam(p, from, now);
    const pkt = marshalHandshakeResp(
      { senderIndex: localIndex, receiverIndex: m.senderIndex, ephemeral: noise.subarray(0, 32), encryptedNothing: noise.subarray(32, 48), mac1: EMPTY },
      this.secretKeys.mac1To(p.mac1To, secret),
    );
    t.socket.send(pkt, from);
    p.rxBytes += msg.length;
    p.txBytes += pkt.length;
    p.lastHandshake = now;
    p.lastReceivedAt = now;
    t.stats.handshakeRespSent++;
    t.log.debug({ peer: p.publicKeyHex, from: endpointKey(from) }, 'handshake initiation answered');
  }

  /** A response that passed the gate (shape, mac1, a pending index): it may have been answered meanwhile. */
  onResp(msg: Buffer, from: Endpoint): void {
    const t = this.t;
    const m = parseHandshakeResp(msg);
    if (!m) { t.stats.rxInvalid++; return; }
    const p = t.pendings.get(m.receiverIndex);
    if (!p || !p.pending) { t.stats.rxUnknownIndex++; return; }
    const hs = p.pending.hs.clone(); // a forged response must not spoil the real one still to come
    const payload = hs.readMessage(msg.subarray(RESP_NOISE_OFF, RESP_NOISE_END));
    if (!payload) { p.pending.badResponses++; t.stats.rxDecryptFailed++; return; }
    if (payload.length !== 0) { t.stats.rxInvalid++; return; }
    const now = t.now();
    const { localIndex, sentAt } = p.pending;
    t.pendings.delete(localIndex);
    p.pending = undefined;
    p.handshaking = false;
    const session = new Session(hs.split(), localIndex, m.senderIndex, true, now);
    t.sessions.set(localIndex, { peer: p, session });
    if (p.previous) t.drop(p.previous);
    p.previous = p.current;
    p.current = session;
    p.lastHandshake = now;
    p.handshakeRttMs = Math.max(0, now - sentAt);
    p.lastReceivedAt = now;
    p.rxBytes += msg.length;
    t.roam(p, from, now);
    t.stats.handshakeCompleted++;
    t.log.debug({ peer: p.publicKeyHex, from: endpointKey(from) }, 'handshake complete (initiator)');
    // Our first packet on the new session is what lets the responder start using it.
    if (!t.flush(p, session, now)) t.transmit(p, session, EMPTY, now);
  }

  /** 0xC3: the peer is under load and sent a cookie for our pending initiation; the next one uses it. */
  onCookieReply(msg: Buffer): void {
    const t = this.t;
    const r = parseCookieReply(msg);
    if (!r) { t.stats.rxInvalid++; return; }
    const p = t.pendings.get(r.receiverIndex);
    const pending = p?.pending;
    if (!p || !pending || pending.cookieTaken) { t.stats.rxUnknownIndex++; return; }
    const cookie = openCookieReply(r, p.cookieKeyTo, pending.mac1);
    if (!cookie) { t.stats.rxDecryptFailed++; return; }
    pending.cookieTaken = true;
    p.cookie = cookie;
    p.cookieAt = t.now();
    t.stats.cookieReplyRecv++;
    t.log.debug({ peer: p.publicKeyHex }, 'cookie reply: the peer is under load; the next initiation carries mac2');
  }

  /** The initiator's first data arrived on the session we answered with: it becomes `current`. */
  confirmNext(p: PeerState, now: number): void {
    const t = this.t;
    const s = p.next!;
    p.next = undefined;
    if (p.previous) t.drop(p.previous);
    p.previous = p.current;
    p.current = s;
    t.stats.handshakeCompleted++;
    // Both sides initiated at once and the peer's handshake finished first: ours is moot (wireguard-go's
    // timersHandshakeComplete on the first data of a new keypair). Left running, its retry would make a
    // second handshake a second later for nothing.
    if (p.handshaking) {
      if (p.pending) t.pendings.delete(p.pending.localIndex);
      p.pending = undefined;
      p.handshaking = false;
    }
    t.log.debug({ peer: p.publicKeyHex }, 'handshake complete (responder, confirmed by data)');
    if (s.canSend(now)) t.flush(p, s, now);
  }

  giveUp(p: PeerState): void {
    const t = this.t;
    if (p.pending) t.pendings.delete(p.pending.localIndex);
    p.pending = undefined;
    p.handshaking = false;
    t.stats.queueDropped += p.queue.length;
    p.queue = [];
    t.stats.handshakeGaveUp++;
    t.log.debug({ peer: p.publicKeyHex }, 'handshake attempts given up');
  }

  /** An initiator we have not added: believe its Ed25519 key only if it converts to the static that Noise
   *  authenticated, then let the admission decide (it adds the peer when the overlay admits it). */
  private admit(payload: Uint8Array, staticHex: string, from: Endpoint): PeerState | undefined {
    const admission = this.t.admission();
    if (!admission) return undefined;
    const publicKey = payload.subarray(TAI64N_LEN, TAI64N_LEN + 32);
    const nonce = new DataView(payload.buffer, payload.byteOffset, payload.byteLength).getBigUint64(TAI64N_LEN + 32);
    let x: Uint8Array;
    try { x = ed25519.utils.toMontgomery(publicKey); } catch { return undefined; }
    if (hex(x) !== staticHex) { this.t.stats.rxInvalid++; return undefined; }
    if (!admission.acceptUnknown(Uint8Array.from(publicKey), nonce, { ...from })) return undefined;
    return this.t.byStatic.get(staticHex);
  }

  private callOwner(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      if (this.t.stats.callbackErrors++ === 0) this.t.log.error({ err: e }, 'owner callback threw (logged once)');
    }
  }

  private newIndex(): number {
    for (;;) {
      const i = randomBytes(4).readUInt32LE(0);
      if (!this.t.sessions.has(i) && !this.t.pendings.has(i)) return i;
    }
  }

  /** TAI64N from the clock, made strictly increasing so a restart-free burst never repeats one. */
  private timestamp(now: number): Uint8Array {
    let ns = BigInt(Math.floor(now)) * 1_000_000n;
    if (ns <= this.lastTsNs) ns = this.lastTsNs + 1n;
    this.lastTsNs = ns;
    return tai64n(ns);
  }
}
