// Tunnels: WireGuard's rules (paper sections 5-6) for every peer, on the underlay socket.
//
// Outbound (idloc/inside.ts hands each IP packet to send()):
//   1. The peer's current session can send and an endpoint is known: encrypt into a data message
//      (0xC4: receiver index, counter, ciphertext; tunnel/messages.ts) and hand it to the socket, which is
//      the underlay (nat/underlay.ts: straight out, or through a TURN relay, a peer relay or a probe socket).
//   2. Otherwise the packet is copied into the peer's queue (MAX_QUEUED_PACKETS_PER_PEER, oldest dropped)
//      and a handshake starts (tunnel/handshake.ts); the queue goes out on the new session.
//   3. A session due for rekeying (time or messages) starts the next handshake while it keeps sending.
//
// Inbound (the underlay hands every tunnel datagram, first byte 0xC1-0xC4, to handleDatagram()):
//   1. Handshake messages go through the gate (tunnel/handshake-gate.ts: mac1, cookies under load, a
//      bounded queue drained a few per event-loop turn) to the handshakes (tunnel/handshake.ts); cookie
//      replies go to the handshakes at once (they cost no X25519).
//   2. Data: the receiver index picks the session; it must still receive; decrypt, then the replay window.
//      Anything that fails is counted and dropped.
//   3. Roaming: the authenticated packet's source becomes the peer's endpoint (tunnel/roaming.ts, which
//      also has the bridges and FOLLOW_ME).
//   4. A responder session is confirmed by its first data; keepalives end here, packets go to the
//      receiver (idloc/outside.ts), valid only during the call. A plaintext whose first byte is below
//      0x10 is no IP packet but a control message (nat/standby-wire.ts): it goes to onControl() instead,
//      without roaming and without counting as hearing from the peer (it may come along another path);
//      FOLLOW_ME (roaming.ts) moves the endpoint and counts as hearing.
//
// Silent paths: a peer receiving a one-way flow answers it with a keepalive every FLOW_ACK_MS. Data sent
// for PATH_SILENT_MS with nothing at all received (a NAT on the way forgot or changed our mapping) is told
// to the admission once per silence (pathSilent), so the path keeper restarts ICE in about a second. A
// flow towards us that stops for RECEIVE_SILENT_MS gets one keepalive back (it re-creates a mapping our
// NAT forgot) and a CATCH_ME_UP: what went into a silence is sent again once (catch-up.ts).
//
// Per peer: sessions current (send + receive), previous (receive only, so packets in flight across a
// rekey still decrypt) and next (responder side: usable once the initiator proves it has the keys by
// sending on it). Timers: one tick every TUNNEL_TICK_MS on the clock (base/scheduler.ts) drives retries,
// give-ups, keepalives and expiry; tests on a twin clock call tick() themselves. Bad input is counted,
// never thrown.

import { hex } from '../base/bytes.js';
import type { Logger } from 'pino';
import { ed25519 } from '@noble/curves/ed25519.js';
import {
  FLOW_ACK_MS, KEEPALIVE_INTERVAL_MS, MAX_QUEUED_PACKETS_PER_PEER, PATH_SILENT_MS, PEER_SILENT_MS, RECEIVE_SILENT_MS, REJECT_AFTER_TIME_MS, REKEY_ATTEMPT_TIME_MS,
  REKEY_TIMEOUT_MS, TUNNEL_TICK_MS } from '../base/constants.js';
import { every, realScheduler, type Scheduler, type TimerHandle } from '../base/scheduler.js';
import type { DatagramSocket, Endpoint } from '../conn/socket.js';
import { keyPairFromPrivate } from './noise.js';
import { MSG_COOKIE_REPLY, MSG_HANDSHAKE_INIT, MSG_HANDSHAKE_RESP, MSG_TRANSPORT, cookieKey, mac1Key, parseTransport, type Transport } from './messages.js';
import type { Session } from './session.js';
import { marshalCatchMeUp, parseCatchMeUp } from './catch-up.js';
import { FOLLOW_ME, bridgeFor, bridgeUnanswered, follow, isFollowMe, roam as roamTo, startBridge } from './roaming.js';
import { Handshakes, type HandshakeTable } from './handshake.js';
import { HandshakeGate } from './handshake-gate.js';
import {
  CONTROL_BELOW, PeerState, peerStatus, endpointOf, newTunnelStats, type ControlReceiver, type PacketReceiver, type RelayedPaths, type TunnelAdmission, type TunnelPeer, type TunnelPeerStatus,
  type TunnelStats,
} from './tunnel-peer.js';
import { HandshakeKeys, type OverlaySecrets } from './psk-keys.js';

const EMPTY = new Uint8Array(0);

export interface TunnelsOptions {
  privateKey: Uint8Array;
  /** The underlay: sends each datagram the way its endpoint is reached. */
  socket: DatagramSocket;
  logger: Logger;
  receiver: PacketReceiver;
  admission?: TunnelAdmission;
  /** The NodeID puzzle nonce of our key, sent in every initiation so strangers can admit us. */
  puzzleNonce?: bigint;
  /** A packet arriving through a relay does not move a tunnel off a direct endpoint heard from within
   *  ROAM_DIRECT_HOLD_MS (roaming.ts). Absent: every endpoint counts as direct. */
  paths?: RelayedPaths;
  clock?: Scheduler;
  /** A private overlay's secrets: handshakes are IKpsk2 and strangers' initiations go unanswered. */
  secrets?: OverlaySecrets;
}

export type { ControlReceiver, PacketReceiver, RelayedPaths, TunnelAdmission, TunnelPeer, TunnelPeerStatus, TunnelStats } from './tunnel-peer.js';

export class Tunnels implements HandshakeTable {
  readonly stats: TunnelStats = newTunnelStats();
  readonly socket: DatagramSocket;
  readonly log: Logger;
  readonly byStatic = new Map<string, PeerState>(); // X25519 hex
  readonly sessions = new Map<number, { peer: PeerState; session: Session }>();
  readonly pendings = new Map<number, PeerState>();
  private readonly staticXHex: string;
  private readonly handshakes: Handshakes;
  private readonly gate: HandshakeGate;
  private readonly receiver: PacketReceiver;
  private admit: TunnelAdmission | undefined;
  private readonly paths: RelayedPaths | undefined;
  private readonly clock: Scheduler;
  private readonly byKey = new Map<string, PeerState>(); // Ed25519 hex
  private readonly scratch = {} as Transport; // reused by parseTransport on the hot path
  private readonly timer: TimerHandle;
  /** Peers whose current silence was reported, as a sender and as a receiver (at most one entry per peer
   *  in each; cleared when they speak). */
  private readonly silentTx = new Set<PeerState>();
  private readonly silentRx = new Set<PeerState>();
  private readonly controls: ControlReceiver[] = [];
  private closed = false;

  constructor(opts: TunnelsOptions) {
    if (opts.privateKey.length !== 32) throw new Error('privateKey must be a 32-byte Ed25519 secret');
    const keys = keyPairFromPrivate(ed25519.utils.toMontgomerySecret(opts.privateKey));
    this.staticXHex = hex(keys.publicKey);
    const handshakeKeys = new HandshakeKeys(keys.publicKey, opts.secrets);
    this.handshakes = new Handshakes(this, keys, ed25519.getPublicKey(opts.privateKey), opts.puzzleNonce ?? 0n, handshakeKeys);
    this.admit = opts.admission;
    this.paths = opts.paths;
    this.socket = opts.socket;
    this.log = opts.logger;
    this.receiver = opts.receiver;
    this.clock = opts.clock ?? realScheduler;
    this.gate = new HandshakeGate(this, this.handshakes, handshakeKeys, keys.publicKey);
    this.timer = every(this.clock, TUNNEL_TICK_MS, () => this.tick());
  }

  /** Connect the admission once it exists (it adds peers here, so it is built after the tunnels). */
  admitWith(admission: TunnelAdmission): void { this.admit = admission; }

  addPeer(publicKey: Uint8Array, endpoint?: Endpoint): TunnelPeer {
    if (publicKey.length !== 32) throw new Error('peer public key must be 32 bytes (Ed25519)');
    const keyHex = hex(publicKey);
    if (this.byKey.has(keyHex)) throw new Error(`peer ${keyHex} already added`);
    const x = ed25519.utils.toMontgomery(publicKey); // throws on a non-point: a config error, not input
    const xHex = hex(x);
    if (xHex === this.staticXHex) throw new Error('peer key is our own');
    const p = new PeerState(Uint8Array.from(publicKey), keyHex, x, xHex, mac1Key(x), cookieKey(x), endpoint && { ...endpoint });
    this.byKey.set(keyHex, p);
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
    this.silentTx.delete(p);
    this.silentRx.delete(p);
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
      else if (p.handshaking) { p.initiations = 0; this.handshakes.sendInitiation(p, now); }
    }
  }

  /** Handshake now rather than on the first packet, so the first packet finds a session waiting. */
  connect(peer: TunnelPeer): void {
    const p = this.own(peer);
    if (!p || this.closed || !p.endpoint) return;
    if (!p.current?.canSend(this.now())) this.handshakes.start(p, this.now());
  }

  /** The peer is elsewhere now (the overlay says so): use the new endpoint, and retry a handshake in
   *  progress at once rather than after its backoff. `nudge`: also when the endpoint is the same one
   *  (an ICE restart found the old pair again, now through our new NAT mapping): the keepalive is what
   *  makes the peer roam to that mapping. */
  setEndpoint(peer: TunnelPeer, endpoint: Endpoint, nudge = false): void {
    const p = this.own(peer);
    if (!p || this.closed) return;
    const e = p.endpoint;
    if (e && e.address === endpoint.address && e.port === endpoint.port && e.via === endpoint.via) {
      const now = this.now();
      if (nudge && p.current?.canSend(now)) { this.catchUp(p, e, now); this.transmit(p, p.current, EMPTY, now); }
      return;
    }
    const now = this.now();
    p.endpoint = endpointOf(endpoint.address, endpoint.port, endpoint.via);
    p.endpointFreshAt = now;
    this.catchUp(p, p.endpoint, now);
    // A new direct pair keeps the bridge until the peer is heard on it; a relay needs no copy on a relay.
    if (p.bridge && this.paths?.isRelayed(p.endpoint)) p.bridge = undefined;
    // A new path gets its own HANDSHAKE_RELOCATE_AFTER_TRIES: the tries the old one used up say nothing
    // about it (and must not send us looking for the peer again the moment we found it a better path).
    if (p.handshaking) { p.initiations = 0; this.handshakes.sendInitiation(p, now); }
    // An established session moves at once: our keepalive on the new path is what makes the peer roam
    // to it, instead of answering along the old one until our next packet.
    else if (p.current?.canSend(now)) this.transmit(p, p.current, EMPTY, now);
  }

  /** Bridge the peer's direct path, in doubt, through `via`, a relay (roaming.ts): false without a session,
   *  or when the tunnel is on a relay already. */
  bridge(peer: TunnelPeer, via: Endpoint): boolean {
    const p = this.own(peer);
    const now = this.now();
    const s = p?.current;
    if (!p || this.closed || !s || !s.canSend(now) || !startBridge(p, via, now, this.paths)) return false;
    this.stats.bridged++;
    this.sendFollowMe(s, p.bridge!);
    this.catchUp(p, p.bridge!, now);
    return true;
  }

  private sendFollowMe(s: Session, to: Endpoint): void { this.stats.txControl++; this.socket.send(s.encrypt(FOLLOW_ME), to); }

  established(peer: TunnelPeer): boolean { return this.own(peer)?.current?.canSend(this.now()) === true; }

  peerByKey(publicKeyHex: string): TunnelPeer | undefined {
    return this.byKey.get(publicKeyHex.toLowerCase());
  }

  /** Outbound steps 1-2: encrypt and send, or queue and handshake. */
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
    if (!(p.next && now - p.next.createdAt < REKEY_TIMEOUT_MS)) this.handshakes.start(p, now);
  }

  /** Inbound step 1: by message type. */
  handleDatagram(msg: Buffer, from: Endpoint): void {
    if (this.closed) return;
    try {
      switch (msg[0]) {
        case MSG_TRANSPORT: return this.onTransport(msg, from);
        case MSG_HANDSHAKE_INIT:
        case MSG_HANDSHAKE_RESP: return this.gate.take(msg, from);
        case MSG_COOKIE_REPLY: return this.handshakes.onCookieReply(msg);
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
    return [...this.byKey.values()].map((p) => peerStatus(p, now));
  }

  /** Housekeeping; runs every TUNNEL_TICK_MS, and tests on a twin clock call it directly. */
  tick(): void {
    if (this.closed) return;
    this.gate.resume();
    const now = this.now();
    for (const p of this.byKey.values()) {
      if (p.handshaking) {
        if (now - p.attemptStart >= REKEY_ATTEMPT_TIME_MS) this.handshakes.giveUp(p);
        else if (now >= p.nextRetryAt || (!p.pending && p.endpoint)) this.handshakes.sendInitiation(p, now);
      } else if (p.queue.length > 0 && !p.current?.canSend(now)) {
        if (!(p.next && now - p.next.createdAt < REKEY_TIMEOUT_MS)) this.handshakes.start(p, now);
      }
      if (p.previous && !p.previous.canReceive(now)) p.previous = this.drop(p.previous);
      if (p.next && !p.next.canReceive(now)) p.next = this.drop(p.next);
      if (p.current && !p.current.canReceive(now)) p.current = this.drop(p.current);
      const s = p.current;
      const unanswered = p.bridge !== undefined && s?.canSend(now) ? bridgeUnanswered(p, now) : undefined;
      if (unanswered) this.sendFollowMe(s!, unanswered);
      if (s && p.endpoint && s.canSend(now) && now - p.lastSentAt >= KEEPALIVE_INTERVAL_MS) this.transmit(p, s, EMPTY, now);
      // A one-way flow towards us: answer it now and then, so its sender can tell our silence from a
      // broken path (PATH_SILENT_MS).
      else if (s && p.endpoint && s.canSend(now) && p.lastRxDataAt > p.lastSentAt && now - p.lastSentAt >= FLOW_ACK_MS) {
        this.stats.flowAcks++;
        this.transmit(p, s, EMPTY, now);
      }
      // Both sides send keepalives, so a session that has heard nothing for PEER_SILENT_MS while we sent
      // is dead at the far end (peer restarted, or moved while idle): handshake, which may relocate it.
      if (s && !p.handshaking && now - p.lastReceivedAt > PEER_SILENT_MS && p.lastSentAt > p.lastReceivedAt
        && now - s.createdAt > PEER_SILENT_MS) this.handshakes.start(p, now);
      // Data went out for PATH_SILENT_MS after the last thing we heard (lastDataAt counts both ways, so
      // this reads "we kept sending data"): the path broke under us. Once per silence.
      if (s && p.endpoint && Number.isFinite(p.lastReceivedAt)) {
        if (p.lastDataAt - p.lastReceivedAt >= PATH_SILENT_MS && !this.silentTx.has(p)) {
          this.silentTx.add(p);
          this.stats.pathSilent++;
          this.admit?.pathSilent?.(p, 'sending');
        } else if (p.lastRxDataAt === p.lastReceivedAt && now - p.lastReceivedAt >= RECEIVE_SILENT_MS && s.canSend(now)
          && !this.silentRx.has(p)) {
          // A flow towards us stopped: one keepalive, which re-creates a mapping our NAT forgot (a
          // port-preserving NAT gives the same one back, and the peer's packets get in again).
          this.silentRx.add(p);
          this.stats.rxSilentKeepalive++;
          this.transmit(p, s, EMPTY, now);
          this.sendControl(p, marshalCatchMeUp({ receiverIndex: s.localIndex, highest: s.replay.highest }));
          this.admit?.pathSilent?.(p, 'receiving');
        }
      }
    }
  }

  close(): void {
    this.closed = true;
    this.timer.cancel();
    this.gate.close();
    for (const p of this.byKey.values()) p.queue = [];
  }

  // ---- the table's parts the handshakes use (HandshakeTable) ---------------------------------

  now(): number { return this.clock.now(); }

  admission(): TunnelAdmission | undefined { return this.admit; }

  /** Outbound steps 1 and 3. */
  transmit(p: PeerState, s: Session, payload: Uint8Array, now: number): void {
    const pkt = s.encrypt(payload);
    this.socket.send(pkt, p.endpoint!);
    const bridge = p.bridge !== undefined ? bridgeFor(p, now) : undefined;
    if (bridge) { this.socket.send(pkt, bridge); this.stats.bridgeCopies++; }
    p.txBytes += pkt.length;
    p.lastSentAt = now;
    if (payload.length === 0) this.stats.txKeepalive++;
    else { this.stats.txPackets++; p.lastDataAt = now; p.catchUp.record(pkt, now); }
    if (s.wantsRekey(now)) this.handshakes.start(p, now);
  }

  flush(p: PeerState, s: Session, now: number): boolean {
    if (p.queue.length === 0 || !p.endpoint) return false;
    const q = p.queue;
    p.queue = [];
    for (const pkt of q) this.transmit(p, s, pkt, now);
    return true;
  }

  /** Inbound step 3 (roaming.ts); a path that replaced a silent one gets what went into the silence. */
  roam(p: PeerState, from: Endpoint, now: number): void { if (roamTo(p, from, now, this.paths, this.stats)) this.catchUp(p, p.endpoint!, now); }

  private catchUp(p: PeerState, to: Endpoint, now: number): void { this.stats.caughtUp += p.catchUp.resend(this.socket, to, p.lastReceivedAt, now); }

  drop(s: Session): undefined { this.sessions.delete(s.localIndex); return undefined; }

  // ---- inbound data ----------------------------------------------------------------------------

  /** Inbound steps 2-4. */
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
    const followMe = isFollowMe(pt);
    if (!followMe && pt.length > 0 && pt[0]! < CONTROL_BELOW) { this.onControlMessage(p, pt, from); return; }
    if (followMe) { this.stats.rxControl++; follow(p, from, now, this.stats); this.catchUp(p, p.endpoint!, now); } else this.roam(p, from, now);
    p.lastReceivedAt = now;
    if (this.silentTx.size !== 0) this.silentTx.delete(p);
    if (this.silentRx.size !== 0) this.silentRx.delete(p);
    if (followMe) return;
    p.rxBytes += msg.length;
    if (s === p.next) this.handshakes.confirmNext(p, now);
    if (pt.length === 0) this.stats.rxKeepalive++;
    else {
      this.stats.rxPackets++;
      p.lastDataAt = now;
      p.lastRxDataAt = now;
      try {
        this.receiver.handlePacket(p, pt);
      } catch (e) {
        if (this.stats.callbackErrors++ === 0) this.log.error({ err: e }, 'packet receiver threw (logged once)');
      }
    }
    // WireGuard's receive-side rule: if only the responder talks, the initiator still rekeys in time.
    if (s === p.current && s.isInitiator && now - s.createdAt >= REJECT_AFTER_TIME_MS - KEEPALIVE_INTERVAL_MS - REKEY_TIMEOUT_MS) {
      this.handshakes.start(p, now);
    }
  }

  onControl(handler: ControlReceiver): void { this.controls.push(handler); }

  /** Send a control message (first byte below 0x10) on the current session to `to` (default: the endpoint);
   *  not traffic on the active path (keepalives and silence checks ignore it). False: no session or endpoint. */
  sendControl(peer: TunnelPeer, message: Uint8Array, to?: Endpoint): boolean {
    const p = this.own(peer);
    const now = this.now();
    const s = p?.current;
    const dest = to ?? p?.endpoint;
    if (!p || this.closed || !s || !dest || !s.canSend(now) || message.length === 0 || message[0]! >= CONTROL_BELOW) return false;
    const pkt = s.encrypt(message);
    this.socket.send(pkt, dest);
    p.txBytes += pkt.length;
    this.stats.txControl++;
    if (s.wantsRekey(now)) this.handshakes.start(p, now);
    return true;
  }

  private onControlMessage(p: PeerState, pt: Buffer, from: Endpoint): void {
    this.stats.rxControl++;
    const m = parseCatchMeUp(pt);
    if (m) { if (p.endpoint) this.stats.caughtUp += p.catchUp.resendAfter(this.socket, p.endpoint, m); return; }
    try {
      for (const c of this.controls) c(p, pt, from);
    } catch (e) {
      if (this.stats.callbackErrors++ === 0) this.log.error({ err: e }, 'control receiver threw (logged once)');
    }
  }

  private own(peer: TunnelPeer): PeerState | undefined { return peer instanceof PeerState && this.byKey.get(peer.publicKeyHex) === peer ? peer : undefined; }
}
