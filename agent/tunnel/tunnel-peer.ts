// Per-peer state of the tunnel layer and its public shapes.
// One PeerState per added peer; Tunnels and its Handshakes own all mutation.

import { endpointKey, type Endpoint } from '../conn/socket.js';
import { CatchUp } from './catch-up.js';
import type { HandshakeState } from './noise.js';
import type { Session } from './session.js';

export interface TunnelPeer {
  readonly publicKey: Uint8Array;
  readonly publicKeyHex: string;
  endpoint: Endpoint | undefined;
  /** Last inner packet (not a keepalive) received from or sent to the peer; -Infinity if none yet. */
  readonly lastDataAt: number;
  /** Last authenticated datagram from the peer (handshake, data or keepalive); -Infinity if none yet. */
  readonly lastReceivedAt: number;
}

/** Plaintexts whose first byte is below this are control messages (an IP packet starts with 0x4_ or 0x6_). */
export const CONTROL_BELOW = 0x10;
/** The tunnel's own control message (tunnels.ts bridge): "answer me on the path this came by". 0x05 is
 *  catch-up.ts's CATCH_ME_UP; 0x01-0x03 are nat/standby-wire.ts's. */
export const CTRL_FOLLOW_ME = 0x04;
export const FOLLOW_ME_BYTES = 8;

/** A control message from the peer (valid only during the call), and where it came from. */
export type ControlReceiver = (peer: TunnelPeer, message: Buffer, from: Endpoint) => void;

export function endpointOf(address: string, port: number, via: number | undefined): Endpoint {
  return via === undefined ? { address, port } : { address, port, via };
}

/** Where decrypted packets go (idloc/outside.ts). `packet` lives in a scratch buffer: copy it to keep it. */
export interface PacketReceiver {
  handlePacket(peer: TunnelPeer, packet: Buffer): void;
}

/** Who decides about strangers and lost peers (the agent's peers.ts). */
export interface TunnelAdmission {
  /** A handshake from a key we have not added authenticated (the key converts to the Noise static that
   *  the initiation proved). Return true after addPeer()ing it to answer; false refuses. */
  acceptUnknown(publicKey: Uint8Array, puzzleNonce: bigint, from: Endpoint): boolean;
  /** HANDSHAKE_RELOCATE_AFTER_TRIES initiations went unanswered: the peer may have moved; look it up and
   *  setEndpoint(). */
  handshakeUnanswered(peer: TunnelPeer): void;
  /** 'sending': data went out for PATH_SILENT_MS with nothing heard back, the path broke silently (a NAT
   *  forgot or changed our mapping). 'receiving': a flow of data towards us stopped for RECEIVE_SILENT_MS
   *  (it may have ended; our NAT may have forgotten us). Told once per silence. */
  pathSilent?(peer: TunnelPeer, side: 'sending' | 'receiving'): void;
}

/** Which endpoints are a relay's (TURN, peer relay): the underlay knows. */
export interface RelayedPaths {
  isRelayed(e: Endpoint): boolean;
}

export interface TunnelPeerStatus {
  publicKey: string;
  endpoint: string | null;
  lastHandshake: number | null;
  /** Round trip of our last completed handshake (ms), null if the peer initiated them all. */
  rttMs: number | null;
  /** Bytes of authenticated datagrams from / to the peer (handshakes and data, as on the wire). */
  rxBytes: number;
  txBytes: number;
  /** The relay datagrams are also copied to while the direct path is in doubt (Tunnels.bridge), else null. */
  bridge: string | null;
  state: 'none' | 'handshaking' | 'established';
}

export interface TunnelStats {
  rxPackets: number; txPackets: number; // inner packets delivered / sent (keepalives excluded)
  rxKeepalive: number; txKeepalive: number;
  /** Control messages (nat/standby-wire.ts) received and sent. */
  rxControl: number; txControl: number;
  rxInvalid: number; // malformed: wrong length, reserved bits, bad payload size, unknown type
  rxBadMac: number; // mac1 did not verify: random or misdirected handshake datagrams
  rxDecryptFailed: number; rxReplayed: number; rxUnknownPeer: number; rxUnknownIndex: number;
  rxExpired: number; // data on a session past REJECT_AFTER_TIME
  handshakeInitSent: number; handshakeInitRecv: number; handshakeRespSent: number; handshakeRespRecv: number;
  handshakeRejected: number; // replayed/old timestamp or over HANDSHAKE_INIT_RATE_MS
  handshakeCompleted: number; handshakeGaveUp: number;
  /** Under load (handshake-gate.ts): initiations answered with a cookie reply, or left unanswered past
   *  COOKIE_REPLIES_PER_SECOND, turned away by their source's limit, or dropped with the queue full;
   *  cookie replies to our initiations taken. */
  cookieReplySent: number; cookieReplySkipped: number; handshakeRateLimited: number; handshakeQueueDropped: number;
  cookieReplyRecv: number;
  queueDropped: number; txNoEndpoint: number; roamed: number; callbackErrors: number;
  /** Relayed packets that did not move a tunnel off a fresh direct endpoint (Tunnels.roam). */
  roamHeld: number;
  /** Silences reported to the admission (pathSilent): data sent for PATH_SILENT_MS, nothing heard. */
  pathSilent: number;
  /** Keepalives sent because a flow of data towards us stopped for RECEIVE_SILENT_MS. */
  rxSilentKeepalive: number;
  /** Keepalives answering a one-way flow towards us (FLOW_ACK_MS). */
  flowAcks: number;
  /** Bridges started (Tunnels.bridge), and datagrams copied onto them; FOLLOW_MEs that moved us. */
  bridged: number; bridgeCopies: number; followed: number;
  /** Datagrams sent again on the path that replaced a silent one (catch-up.ts). */
  caughtUp: number;
}

export interface Pending {
  hs: HandshakeState;
  localIndex: number;
  sentAt: number;
  /** The initiation's mac1: a cookie reply to it is sealed with it as associated data. */
  mac1: Uint8Array;
  /** A cookie reply was taken for it (one is all an initiation can be answered with). */
  cookieTaken: boolean;
  /** Responses to it that did not decrypt (handshake-gate.ts stops looking at HANDSHAKE_RESP_TRIES_MAX). */
  badResponses: number;
}

export class PeerState implements TunnelPeer {
  endpoint: Endpoint | undefined;
  current: Session | undefined;
  previous: Session | undefined;
  next: Session | undefined;
  /** Wanting a handshake: since when (REKEY_ATTEMPT_TIME), next retry, the last initiation sent. */
  handshaking = false;
  attemptStart = 0;
  nextRetryAt = 0;
  /** Initiations sent in this attempt: the retry delay doubles with each, from HANDSHAKE_RETRY_INITIAL_MS. */
  initiations = 0;
  pending: Pending | undefined;
  lastInitTimestamp: Uint8Array | undefined;
  lastInitAt = -Infinity;
  lastSentAt = -Infinity;
  /** Last authenticated packet (transport or handshake) from the peer. */
  lastReceivedAt = -Infinity;
  lastDataAt = -Infinity;
  /** Last inner packet received (not a keepalive): a flow towards us that stops is noticed (Tunnels.tick). */
  lastRxDataAt = -Infinity;
  /** The last cookie the peer answered one of our initiations with (cookie.ts), and when. */
  cookie: Uint8Array | undefined;
  cookieAt = -Infinity;
  /** When `endpoint` was last set, or heard from: roaming away from a direct one waits (Tunnels.roam). */
  endpointFreshAt = -Infinity;
  /** A relay every datagram is copied to while the direct path is in doubt, until bridgeUntil (Tunnels.bridge). */
  bridge: Endpoint | undefined;
  bridgeSince = -Infinity;
  bridgeUntil = -Infinity;
  lastHandshake: number | null = null;
  /** Initiation to response of our last completed handshake: the path's round trip, whatever carries it. */
  handshakeRttMs: number | null = null;
  rxBytes = 0;
  txBytes = 0;
  queue: Buffer[] = [];
  /** The last data datagrams sent, to go again on a path that replaces a silent one (catch-up.ts). */
  readonly catchUp = new CatchUp();
  constructor(
    readonly publicKey: Uint8Array,
    readonly publicKeyHex: string,
    readonly staticX: Uint8Array,
    readonly staticXHex: string,
    readonly mac1To: Uint8Array,
    /** Seals the peer's cookie replies to us (messages.ts cookieKey of its static). */
    readonly cookieKeyTo: Uint8Array,
    endpoint: Endpoint | undefined,
  ) {
    this.endpoint = endpoint;
  }
}

export function newTunnelStats(): TunnelStats {
  return {
    rxPackets: 0, txPackets: 0, rxKeepalive: 0, txKeepalive: 0, rxControl: 0, txControl: 0, rxInvalid: 0, rxBadMac: 0, rxDecryptFailed: 0,
    rxReplayed: 0, rxUnknownPeer: 0, rxUnknownIndex: 0, rxExpired: 0, handshakeInitSent: 0, handshakeInitRecv: 0,
    handshakeRespSent: 0, handshakeRespRecv: 0, handshakeRejected: 0, handshakeCompleted: 0, handshakeGaveUp: 0,
    queueDropped: 0, txNoEndpoint: 0, roamed: 0, callbackErrors: 0, roamHeld: 0, pathSilent: 0, rxSilentKeepalive: 0, flowAcks: 0, bridged: 0, bridgeCopies: 0, followed: 0, caughtUp: 0, cookieReplySent: 0, cookieReplySkipped: 0, handshakeRateLimited: 0,
    handshakeQueueDropped: 0, cookieReplyRecv: 0,
  };
}

/** One peer as Tunnels.status() reports it. */
export function peerStatus(p: PeerState, now: number): TunnelPeerStatus {
  return {
    publicKey: p.publicKeyHex,
    endpoint: p.endpoint ? endpointKey(p.endpoint) : null,
    lastHandshake: p.lastHandshake,
    rttMs: p.handshakeRttMs,
    rxBytes: p.rxBytes,
    txBytes: p.txBytes,
    bridge: p.bridge && now < p.bridgeUntil ? endpointKey(p.bridge) : null,
    state: p.current?.canSend(now) ? 'established' : p.handshaking || p.next ? 'handshaking' : 'none',
  };
}
