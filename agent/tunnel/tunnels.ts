// Per-peer tunnel state machine: WireGuard's rules (paper sections 5-6) on our one socket.
//
//   datagram --> handleDatagram --+-- 0xC1 init  --> mac1, Noise IK read, known static?, TAI64N newer?
//                                 |                    --> response 0xC2, session as `next` (unconfirmed)
//                                 +-- 0xC2 resp  --> pending handshake by receiver index
//                                 |                    --> session as `current`, flush queue / keepalive
//                                 +-- 0xC4 data  --> session by receiver index, decrypt, replay window
//                                                      --> `next` confirmed on first data; onPacket()
//
// Per peer: sessions current (send + receive), previous (receive only, so packets in flight across a
// rekey still decrypt) and next (responder side: usable once the initiator proves it has the keys by
// sending on it). Initiator state lives apart from the responder path, so when both sides initiate at
// once each answers the other and both handshakes complete: the two sides may end up sending on
// different sessions, but each holds both, and traffic flows after one round trip.
// Roaming: any authenticated packet from a new address moves the peer's endpoint at once.
// Timers: one unref'd tick (TUNNEL_TICK_MS) drives retries, give-ups, keepalives and expiry against
// `now()`, so tests with a fake clock call tick() themselves. Bad input is counted, never thrown.

import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { ed25519 } from '@noble/curves/ed25519.js';
import {
  HANDSHAKE_INIT_RATE_MS, HANDSHAKE_RELOCATE_AFTER_TRIES, KEEPALIVE_INTERVAL_MS, PEER_SILENT_MS, MAX_QUEUED_PACKETS_PER_PEER, REJECT_AFTER_TIME_MS,
  REKEY_ATTEMPT_TIME_MS, REKEY_TIMEOUT_JITTER_MS, REKEY_TIMEOUT_MS, TUNNEL_TICK_MS, HANDSHAKE_RETRY_INITIAL_MS, ROAM_DIRECT_HOLD_MS,
} from '../base/constants.js';
import { endpointKey, type DatagramSocket, type Endpoint } from '../conn/socket.js';
import { HandshakeState, keyPairFromPrivate, type KeyPair } from './noise.js';
import {
  INIT_NOISE_END, INIT_NOISE_OFF, MSG_HANDSHAKE_INIT, MSG_HANDSHAKE_RESP, MSG_TRANSPORT, RESP_NOISE_END,
  RESP_NOISE_OFF, TAI64N_LEN, INIT_PAYLOAD_LEN, compareTai64n, mac1Key, marshalHandshakeInit, marshalHandshakeResp,
  parseHandshakeInit, parseHandshakeResp, parseTransport, tai64n, verifyMac1, type Transport,
} from './messages.js';
import { Session } from './session.js';
import { PeerState, newTunnelStats, type TunnelPeer, type TunnelPeerStatus, type TunnelStats } from './tunnel-peer.js';

/** Domain separation: a Noise handshake for another protocol on the same keys cannot be replayed here. */
const PROLOGUE = new TextEncoder().encode('idloc tunnel v1');
const EMPTY = new Uint8Array(0);

export interface TunnelsOptions {
  privateKey: Uint8Array;
  socket: DatagramSocket;
  logger: Logger;
  /** `packet` is valid only during the call (it lives in a scratch buffer): copy it to keep it. */
  onPacket: (peer: TunnelPeer, packet: Buffer) => void;
  /** A handshake from a key we have not added authenticated (the key converts to the Noise static that
   *  the initiation proved). Return true after addPeer()ing it to answer; false (or absent) refuses. */
  acceptUnknown?: (publicKey: Uint8Array, puzzleNonce: bigint, from: Endpoint) => boolean;
  /** HANDSHAKE_RELOCATE_AFTER_TRIES initiations went unanswered: the peer may have moved; the owner may
   *  look it up and setEndpoint(). */
  onHandshakeUnanswered?: (peer: TunnelPeer) => void;
  /** The NodeID puzzle nonce of our key, sent in every initiation so strangers can admit us. */
  puzzleNonce?: bigint;
  /** Is this endpoint a relay's (TURN, peer relay)? A packet arriving through a relay does not move a
   *  tunnel off a direct endpoint heard from within ROAM_DIRECT_HOLD_MS (see roam()). */
  isRelayed?: (e: Endpoint) => boolean;
  now?: () => number;
}

export type { TunnelPeer, TunnelPeerStatus, TunnelStats } from './tunnel-peer.js';

export class Tunnels {
  readonly stats: TunnelStats = newTunnelStats();
  private readonly static: KeyPair;
  /** Our Ed25519 public key, sent inside every initiation (messages.ts says why). */
  private readonly ownPublicKey: Uint8Array;
  private readonly acceptUnknown: TunnelsOptions['acceptUnknown'];
  private readonly puzzleNonce: bigint;
  private readonly onHandshakeUnanswered: TunnelsOptions['onHandshakeUnanswered'];
  private readonly isRelayed: TunnelsOptions['isRelayed'];
  private readonly mac1Own: Uint8Array;
  private readonly socket: DatagramSocket;
  private readonly log: Logger;
  private readonly onPacket: TunnelsOptions['onPacket'];
  private readonly now: () => number;
  private readonly byKey = new Map<string, PeerState>(); // Ed25519 hex
  private readonly byStatic = new Map<string, PeerState>(); // X25519 hex
  private readonly sessions = new Map<number, { peer: PeerState; session: Session }>();
  private readonly pendings = new Map<number, PeerState>();
  private readonly scratch = {} as Transport; // reused by parseTransport on the hot path
  private readonly timer: NodeJS.Timeout;
  private lastTsNs = 0n;
  private closed = false;

  constructor(opts: TunnelsOptions) {
    if (opts.privateKey.length !== 32) throw new Error('privateKey must be a 32-byte Ed25519 secret');
    this.static = keyPairFromPrivate(ed25519.utils.toMontgomerySecret(opts.privateKey));
    this.mac1Own = mac1Key(this.static.publicKey);
    this.ownPublicKey = ed25519.getPublicKey(opts.privateKey);
    this.acceptUnknown = opts.acceptUnknown;
    this.puzzleNonce = opts.puzzleNonce ?? 0n;
    this.onHandshakeUnanswered = opts.onHandshakeUnanswered;
    this.isRelayed = opts.isRelayed;
    this.socket = opts.socket;
    this.log = opts.logger;
    this.onPacket = opts.onPacket;
    this.now = opts.now ?? Date.now;
    this.timer = setInterval(() => this.tick(), TUNNEL_TICK_MS);
    this.timer.unref();
  }

  addPeer(publicKey: Uint8Array, endpoint?: Endpoint): TunnelPeer {
    if (publicKey.length !== 32) throw new Error('peer public key must be 32 bytes (Ed25519)');
    const hex = Buffer.from(publicKey).toString('hex');
    if (this.byKey.has(hex)) throw new Error(`peer ${hex} already added`);
    const x = ed25519.utils.toMontgomery(publicKey); // throws on a non-point: a config error, not input
    const xHex = Buffer.from(x).toString('hex');
    if (xHex === Buffer.from(this.static.publicKey).toString('hex')) throw new Error('peer key is our own');
    const p = new PeerState(Uint8Array.from(publicKey), hex, x, xHex, mac1Key(x), endpoint && { ...endpoint });
    this.byKey.set(hex, p);
    this.byStatic.set(xHex, p); // Ed25519 keys P and -P share one X25519 key; the later peer wins
    return p;
  }

  removePeer(peer: TunnelPeer): void {
    const p = this.own(peer);
    if (!p) return;
    for (const s of [p.previous, p.current, p.next]) if (s) this.sessions.delete(s.localIndex);
    if (p.pending) this.pendings.delete(p.pending.localIndex);
    p.previous = p.current = p.next = p.pending = undefined;
    p.handshaking = false;
    p.queue = [];
    this.byKey.delete(p.publicKeyHex);
    if (this.byStatic.get(p.staticXHex) === p) this.byStatic.delete(p.staticXHex);
  }

  /** Our own address changed: tell every peer at once (an authenticated keepalive moves our endpoint
   *  at their end), and retry any handshake in progress now instead of after its backoff. */
  refreshPaths(): void {
    if (this.closed) return;
    const now = this.now();
    for (const p of this.byKey.values()) {
      const s = p.current;
      if (s && p.endpoint && s.canSend(now)) this.transmit(p, s, EMPTY, now);
      else if (p.handshaking) { p.initiations = 0; this.sendInitiation(p, now); }
    }
  }

  /** Handshake now rather than on the first packet, so the first packet finds a session waiting. */
  connect(peer: TunnelPeer): void {
    const p = this.own(peer);
    if (!p || this.closed || !p.endpoint) return;
    if (!p.current?.canSend(this.now())) this.startHandshake(p, this.now());
  }

  /** The peer is elsewhere now (the overlay says so): use the new endpoint, and retry a handshake in
   *  progress at once rather than after its backoff. */
  setEndpoint(peer: TunnelPeer, endpoint: Endpoint): void {
    const p = this.own(peer);
    if (!p || this.closed) return;
    const e = p.endpoint;
    if (e && e.address === endpoint.address && e.port === endpoint.port) return;
    const now = this.now();
    p.endpoint = { address: endpoint.address, port: endpoint.port };
    p.endpointFreshAt = now;
    // A new path gets its own HANDSHAKE_RELOCATE_AFTER_TRIES: the tries the old one used up say nothing
    // about it (and must not send us looking for the peer again the moment we found it a better path).
    if (p.handshaking) { p.initiations = 0; this.sendInitiation(p, now); }
    // An established session moves at once: our keepalive on the new path is what makes the peer roam
    // to it, instead of answering along the old one until our next packet.
    else if (p.current?.canSend(now)) this.transmit(p, p.current, EMPTY, now);
  }

  peerByKey(publicKeyHex: string): TunnelPeer | undefined {
    return this.byKey.get(publicKeyHex.toLowerCase());
  }

  send(peer: TunnelPeer, packet: Uint8Array): void {
    const p = this.own(peer);
    if (!p || this.closed) return;
    const now = this.now();
    const s = p.current;
    if (s && p.endpoint && s.canSend(now)) {
      this.transmit(p, s, packet, now);
      return;
    }
    if (p.queue.length >= MAX_QUEUED_PACKETS_PER_PEER) {
      p.queue.shift();
      this.stats.queueDropped++;
    }
    p.queue.push(Buffer.from(packet)); // the caller may reuse its buffer
    // A fresh responder session will be confirmed by the initiator's first packet; don't race it.
    if (!(p.next && now - p.next.createdAt < REKEY_TIMEOUT_MS)) this.startHandshake(p, now);
  }

  handleDatagram(msg: Buffer, from: Endpoint): void {
    if (this.closed) return;
    try {
      switch (msg[0]) {
        case MSG_TRANSPORT: return this.onTransport(msg, from);
        case MSG_HANDSHAKE_INIT: return this.onInit(msg, from);
        case MSG_HANDSHAKE_RESP: return this.onResp(msg, from);
        default: this.stats.rxInvalid++;
      }
    } catch (e) {
      // Nothing above should throw on input; if something does, count it rather than crash the agent.
      this.stats.rxInvalid++;
      this.log.debug({ err: e }, 'tunnel datagram handling threw');
    }
  }

  status(): TunnelPeerStatus[] {
    const now = this.now();
    return [...this.byKey.values()].map((p) => ({
      publicKey: p.publicKeyHex,
      endpoint: p.endpoint ? endpointKey(p.endpoint) : null,
      lastHandshake: p.lastHandshake,
      rttMs: p.handshakeRttMs,
      rxBytes: p.rxBytes,
      txBytes: p.txBytes,
      state: p.current?.canSend(now) ? 'established' : p.handshaking || p.next ? 'handshaking' : 'none',
    }));
  }

  /** Housekeeping; runs every TUNNEL_TICK_MS, and tests with a fake clock call it directly. */
  tick(): void {
    if (this.closed) return;
    const now = this.now();
    for (const p of this.byKey.values()) {
      if (p.handshaking) {
        if (now - p.attemptStart >= REKEY_ATTEMPT_TIME_MS) this.giveUp(p);
        else if (now >= p.nextRetryAt || (!p.pending && p.endpoint)) this.sendInitiation(p, now);
      } else if (p.queue.length > 0 && !p.current?.canSend(now)) {
        if (!(p.next && now - p.next.createdAt < REKEY_TIMEOUT_MS)) this.startHandshake(p, now);
      }
      if (p.previous && !p.previous.canReceive(now)) p.previous = this.drop(p.previous);
      if (p.next && !p.next.canReceive(now)) p.next = this.drop(p.next);
      if (p.current && !p.current.canReceive(now)) p.current = this.drop(p.current);
      const s = p.current;
      if (s && p.endpoint && s.canSend(now) && now - p.lastSentAt >= KEEPALIVE_INTERVAL_MS) this.transmit(p, s, EMPTY, now);
      // Both sides send keepalives, so a session that has heard nothing for PEER_SILENT_MS while we sent
      // is dead at the far end (peer restarted, or moved while idle): handshake, which may relocate it.
      if (s && !p.handshaking && now - p.lastReceivedAt > PEER_SILENT_MS && p.lastSentAt > p.lastReceivedAt
        && now - s.createdAt > PEER_SILENT_MS) this.startHandshake(p, now);
    }
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    for (const p of this.byKey.values()) p.queue = [];
  }

  // ---- data path ------------------------------------------------------------------------

  private transmit(p: PeerState, s: Session, payload: Uint8Array, now: number): void {
    const pkt = s.encrypt(payload);
    this.socket.send(pkt, p.endpoint!);
    p.txBytes += pkt.length;
    p.lastSentAt = now;
    if (payload.length === 0) this.stats.txKeepalive++;
    else this.stats.txPackets++;
    if (s.wantsRekey(now)) this.startHandshake(p, now);
  }

  private onTransport(msg: Buffer, from: Endpoint): void {
    const t = parseTransport(msg, this.scratch);
    if (!t) { this.stats.rxInvalid++; return; }
    const entry = this.sessions.get(t.receiverIndex);
    if (!entry) { this.stats.rxUnknownIndex++; return; }
    const { peer: p, session: s } = entry;
    const now = this.now();
    if (!s.canReceive(now)) { this.stats.rxExpired++; return; }
    const pt = s.decrypt(msg, t.counter);
    if (pt === undefined) { this.stats.rxDecryptFailed++; return; }
    if (pt === 'replay') { this.stats.rxReplayed++; return; }
    this.roam(p, from, now);
    p.lastReceivedAt = now;
    p.rxBytes += msg.length;
    if (s === p.next) this.confirmNext(p, now);
    if (pt.length === 0) this.stats.rxKeepalive++;
    else {
      this.stats.rxPackets++;
      try {
        this.onPacket(p, pt);
      } catch (e) {
        if (this.stats.callbackErrors++ === 0) this.log.error({ err: e }, 'onPacket threw (logged once)');
      }
    }
    // WireGuard's receive-side rule: if only the responder talks, the initiator still rekeys in time.
    if (s === p.current && s.isInitiator && now - s.createdAt >= REJECT_AFTER_TIME_MS - KEEPALIVE_INTERVAL_MS - REKEY_TIMEOUT_MS) {
      this.startHandshake(p, now);
    }
  }

  // ---- handshakes -------------------------------------------------------------------------

  private startHandshake(p: PeerState, now: number): void {
    if (p.handshaking) return;
    p.handshaking = true;
    p.attemptStart = now;
    p.initiations = 0;
    this.sendInitiation(p, now);
  }

  private sendInitiation(p: PeerState, now: number): void {
    if (p.pending) this.pendings.delete(p.pending.localIndex); // a response to an older try is void
    p.pending = undefined;
    // Back off from HANDSHAKE_RETRY_INITIAL_MS to REKEY_TIMEOUT: a first initiation lost because the
    // peer was still starting costs a fraction of a second, not WireGuard's fixed 5 s.
    const delay = Math.min(REKEY_TIMEOUT_MS, HANDSHAKE_RETRY_INITIAL_MS * 2 ** p.initiations++);
    if (p.initiations === HANDSHAKE_RELOCATE_AFTER_TRIES + 1) this.callOwner(() => this.onHandshakeUnanswered?.(p));
    p.nextRetryAt = now + delay + Math.random() * REKEY_TIMEOUT_JITTER_MS;
    if (!p.endpoint) { this.stats.txNoEndpoint++; return; }
    const hs = new HandshakeState({ initiator: true, prologue: PROLOGUE, s: this.static, rs: p.staticX });
    const payload = new Uint8Array(INIT_PAYLOAD_LEN);
    payload.set(this.timestamp(now), 0);
    payload.set(this.ownPublicKey, TAI64N_LEN);
    new DataView(payload.buffer).setBigUint64(TAI64N_LEN + 32, this.puzzleNonce);
    const noise = hs.writeMessage(payload);
    if (!noise) { this.giveUp(p); return; } // only a small-order peer key gets here
    const localIndex = this.newIndex();
    const pkt = marshalHandshakeInit(
      { senderIndex: localIndex, ephemeral: noise.subarray(0, 32), encryptedStatic: noise.subarray(32, 80), encryptedPayload: noise.subarray(80, 148), mac1: EMPTY },
      p.mac1To,
    );
    p.pending = { hs, localIndex, sentAt: now };
    this.pendings.set(localIndex, p);
    this.socket.send(pkt, p.endpoint);
    p.txBytes += pkt.length;
    this.stats.handshakeInitSent++;
    this.log.debug({ peer: p.publicKeyHex, to: endpointKey(p.endpoint) }, 'handshake initiation sent');
  }

  private onInit(msg: Buffer, from: Endpoint): void {
    this.stats.handshakeInitRecv++;
    const m = parseHandshakeInit(msg);
    if (!m) { this.stats.rxInvalid++; return; }
    if (!verifyMac1(this.mac1Own, msg)) { this.stats.rxBadMac++; return; }
    const hs = new HandshakeState({ initiator: false, prologue: PROLOGUE, s: this.static });
    const payload = hs.readMessage(msg.subarray(INIT_NOISE_OFF, INIT_NOISE_END));
    if (!payload) { this.stats.rxDecryptFailed++; return; }
    if (payload.length !== INIT_PAYLOAD_LEN) { this.stats.rxInvalid++; return; }
    const ts = payload.subarray(0, TAI64N_LEN);
    const staticHex = Buffer.from(hs.remoteStatic!).toString('hex');
    const p = this.byStatic.get(staticHex) ?? this.admit(payload, staticHex, from);
    if (!p) {
      this.stats.rxUnknownPeer++;
      this.log.debug({ from: endpointKey(from) }, 'handshake from unknown static key refused');
      return;
    }
    const now = this.now();
    if (p.lastInitTimestamp && compareTai64n(ts, p.lastInitTimestamp) <= 0) {
      this.stats.rxReplayed++;
      this.stats.handshakeRejected++;
      return;
    }
    if (now - p.lastInitAt < HANDSHAKE_INIT_RATE_MS) { this.stats.handshakeRejected++; return; }
    p.lastInitTimestamp = Uint8Array.from(ts);
    p.lastInitAt = now;
    const noise = hs.writeMessage(EMPTY);
    if (!noise) { this.stats.rxDecryptFailed++; return; }
    const localIndex = this.newIndex();
    const session = new Session(hs.split(), localIndex, m.senderIndex, false, now);
    if (p.next) this.drop(p.next);
    p.next = session;
    this.sessions.set(localIndex, { peer: p, session });
    this.roam(p, from, now);
    const pkt = marshalHandshakeResp(
      { senderIndex: localIndex, receiverIndex: m.senderIndex, ephemeral: noise.subarray(0, 32), encryptedNothing: noise.subarray(32, 48), mac1: EMPTY },
      p.mac1To,
    );
    this.socket.send(pkt, from);
    p.rxBytes += msg.length;
    p.txBytes += pkt.length;
    p.lastHandshake = now;
    p.lastReceivedAt = now;
    this.stats.handshakeRespSent++;
    this.log.debug({ peer: p.publicKeyHex, from: endpointKey(from) }, 'handshake initiation answered');
  }

  /** An initiator we have not added: believe its Ed25519 key only if it converts to the static that Noise
   *  authenticated, then let the owner decide (it adds the peer when the overlay admits it). */
  private admit(payload: Uint8Array, staticHex: string, from: Endpoint): PeerState | undefined {
    if (!this.acceptUnknown) return undefined;
    const publicKey = payload.subarray(TAI64N_LEN, TAI64N_LEN + 32);
    const nonce = new DataView(payload.buffer, payload.byteOffset, payload.byteLength).getBigUint64(TAI64N_LEN + 32);
    let x: Uint8Array;
    try { x = ed25519.utils.toMontgomery(publicKey); } catch { return undefined; }
    if (Buffer.from(x).toString('hex') !== staticHex) { this.stats.rxInvalid++; return undefined; }
    if (!this.acceptUnknown(Uint8Array.from(publicKey), nonce, { ...from })) return undefined;
    return this.byStatic.get(staticHex);
  }

  private onResp(msg: Buffer, from: Endpoint): void {
    this.stats.handshakeRespRecv++;
    const m = parseHandshakeResp(msg);
    if (!m) { this.stats.rxInvalid++; return; }
    if (!verifyMac1(this.mac1Own, msg)) { this.stats.rxBadMac++; return; }
    const p = this.pendings.get(m.receiverIndex);
    if (!p || !p.pending) { this.stats.rxUnknownIndex++; return; }
    const hs = p.pending.hs.clone(); // a forged response must not spoil the real one still to come
    const payload = hs.readMessage(msg.subarray(RESP_NOISE_OFF, RESP_NOISE_END));
    if (!payload) { this.stats.rxDecryptFailed++; return; }
    if (payload.length !== 0) { this.stats.rxInvalid++; return; }
    const now = this.now();
    const { localIndex, sentAt } = p.pending;
    this.pendings.delete(localIndex);
    p.pending = undefined;
    p.handshaking = false;
    const session = new Session(hs.split(), localIndex, m.senderIndex, true, now);
    this.sessions.set(localIndex, { peer: p, session });
    if (p.previous) this.drop(p.previous);
    p.previous = p.current;
    p.current = session;
    p.lastHandshake = now;
    p.handshakeRttMs = Math.max(0, now - sentAt);
    p.lastReceivedAt = now;
    p.rxBytes += msg.length;
    this.roam(p, from, now);
    this.stats.handshakeCompleted++;
    this.log.debug({ peer: p.publicKeyHex, from: endpointKey(from) }, 'handshake complete (initiator)');
    // Our first packet on the new session is what lets the responder start using it.
    if (!this.flush(p, session, now)) this.transmit(p, session, EMPTY, now);
  }

  private confirmNext(p: PeerState, now: number): void {
    const s = p.next!;
    p.next = undefined;
    if (p.previous) this.drop(p.previous);
    p.previous = p.current;
    p.current = s;
    this.stats.handshakeCompleted++;
    // Both sides initiated at once and the peer's handshake finished first: ours is moot (wireguard-go's
    // timersHandshakeComplete on the first data of a new keypair). Left running, its retry would make a
    // second handshake a second later for nothing.
    if (p.handshaking) {
      if (p.pending) this.pendings.delete(p.pending.localIndex);
      p.pending = undefined;
      p.handshaking = false;
    }
    this.log.debug({ peer: p.publicKeyHex }, 'handshake complete (responder, confirmed by data)');
    if (s.canSend(now)) this.flush(p, s, now);
  }

  /** Send the queue on `s`; false if there was nothing queued. */
  private flush(p: PeerState, s: Session, now: number): boolean {
    if (p.queue.length === 0 || !p.endpoint) return false;
    const q = p.queue;
    p.queue = [];
    for (const pkt of q) this.transmit(p, s, pkt, now);
    return true;
  }

  private giveUp(p: PeerState): void {
    if (p.pending) this.pendings.delete(p.pending.localIndex);
    p.pending = undefined;
    p.handshaking = false;
    this.stats.queueDropped += p.queue.length;
    p.queue = [];
    this.stats.handshakeGaveUp++;
    this.log.debug({ peer: p.publicKeyHex }, 'handshake attempts given up');
  }

  // ---- helpers ------------------------------------------------------------------------------

  /** WireGuard's roaming: the endpoint follows the last authenticated packet, with one exception. While a
   *  path moves from a relay to a direct pair, the peer's packets still in flight on the relay (or sent
   *  before it heard from us on the new pair) would pull us back; so a relayed source does not replace a
   *  direct endpoint that was set or heard from within ROAM_DIRECT_HOLD_MS. A peer that really left the
   *  direct path goes silent on it, and the next relayed packet after the hold moves us. */
  private roam(p: PeerState, from: Endpoint, now: number): void {
    const e = p.endpoint;
    if (e && e.address === from.address && e.port === from.port) { p.endpointFreshAt = now; return; }
    if (e && this.isRelayed && now - p.endpointFreshAt < ROAM_DIRECT_HOLD_MS && this.isRelayed(from) && !this.isRelayed(e)) {
      this.stats.roamHeld++;
      return;
    }
    if (e) this.stats.roamed++;
    p.endpoint = { address: from.address, port: from.port };
    p.endpointFreshAt = now;
  }

  private callOwner(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      if (this.stats.callbackErrors++ === 0) this.log.error({ err: e }, 'owner callback threw (logged once)');
    }
  }

  private drop(s: Session): undefined {
    this.sessions.delete(s.localIndex);
    return undefined;
  }

  private newIndex(): number {
    for (;;) {
      const i = randomBytes(4).readUInt32LE(0);
      if (!this.sessions.has(i) && !this.pendings.has(i)) return i;
    }
  }

  /** TAI64N from the clock, made strictly increasing so a restart-free burst never repeats one. */
  private timestamp(now: number): Uint8Array {
    let ns = BigInt(Math.floor(now)) * 1_000_000n;
    if (ns <= this.lastTsNs) ns = this.lastTsNs + 1n;
    this.lastTsNs = ns;
    return tai64n(ns);
  }

  private own(peer: TunnelPeer): PeerState | undefined {
    return peer instanceof PeerState && this.byKey.get(peer.publicKeyHex) === peer ? peer : undefined;
  }
}
