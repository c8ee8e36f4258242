// The agent's one UDP socket and the relays layered on it: what goes out where, and which layer gets
// what comes in. The tunnels send on `routed` and receive from here; the daemon only connects them.
//
//   outbound (the `routed` socket that Tunnels, ICE and STUN send on):
//     1. a virtual endpoint [100::1:X]:2 ─> out probe socket X to the peer it was opened for (a hole
//        punched through a hard NAT by birthday probing, nat/probe-sockets.ts: a direct path)
//     2. a virtual endpoint [100::X]:1 ─> a frame to the overlay peer relaying for that path (peer relay)
//     3. an address reached through our TURN allocation ─> ChannelData / Send indication to the server
//     4. anything else ─> straight out the socket
//   inbound (first byte, nat/demux.ts), to the receivers connected with deliverTo():
//     from our TURN server ─> the TURN client (relayed data comes back here as if sent by the peer)
//     0xC1/0xC2/0xC4 tunnel, 0xD2 overlay, STUN ─> their layers (STUN checks and handshakes that reach the
//       socket itself mark their source "heard directly": never routed through the TURN relay)
//     on a probe socket, from the peer it was opened for ─> as if from its virtual endpoint (tunnel, STUN)
//     0xD3 peer relay ─> TO_* frames to the relay server (we relay for our rendezvous clients), FROM_*
//       frames to the client side (payload delivered from the path's virtual endpoint); never nested
//   A private overlay (admission.ts): overlay and relay datagrams leave tagged with the overlay's secret,
//     and arrive here checked before any layer parses them; untagged ones are dropped, unanswered.
//   Overlay messages are not relayed: a relay carries tunnel datagrams and ICE checks, which the tunnel and
//   ICE authenticate end to end.
import type { Logger } from 'pino';
import { classifyDatagram, type DemuxStats } from './demux.js';
import { PeerRelayClient } from './peer-relay-client.js';
import { PeerRelayServer, type PeerRelayServerOptions } from './peer-relay-server.js';
import { PR_TO_CLIENT, PR_TO_PEER } from './peer-relay-wire.js';
import { ProbeSockets, type ProbeSocketsOptions } from '../conn/probe-sockets.js';
import type { DatagramSocket, Endpoint } from '../conn/socket.js';
import { endpointKey } from '../conn/socket.js';
import { PEERS_TURN_RELAYS_MAX } from '../base/constants.js';
import type { Scheduler } from '../base/scheduler.js';
import { TurnRelay, type TurnConfig, type TurnSecret } from './turn-relay.js';
import { isTagged, type DatagramAdmission } from './admission.js';

/** A layer that takes datagrams: the tunnels (0xC1/0xC2/0xC4), the overlay (0xD2), the STUN endpoint. */
export interface DatagramReceiver {
  handleDatagram(msg: Buffer, from: Endpoint): void;
}

export interface UnderlayReceivers {
  tunnel: DatagramReceiver;
  overlay?: DatagramReceiver;
  stun: DatagramReceiver;
}

export interface UnderlayOptions {
  socket: DatagramSocket;
  logger: Logger;
  turn?: TurnConfig | TurnSecret;
  /** Relay for overlay peers (an overlay member; off for static-only agents). */
  peerRelayServer?: Pick<PeerRelayServerOptions, 'rendezvousClientEndpoint' | 'peerVerified' | 'enabled'>;
  /** Fresh sockets for birthday probing (absent: this host never probes a hard NAT from many ports). */
  probeSockets?: Pick<ProbeSocketsOptions, 'open' | 'reopen'>;
  /** Time for the TURN relay, the probe sockets' sweep and the peer relay's handles (a twin in tests). */
  clock?: Scheduler;
  /** A private overlay: tag what leaves, refuse what arrives untagged (admission.ts). */
  admission?: DatagramAdmission;
}

/** How a datagram to an endpoint travels, for status: `text` says it in words. */
export interface RelayRoute { via: 'turn' | 'peer-relay'; relay: string; text: string }

export class Underlay {
  readonly routed: DatagramSocket;
  /** The socket the overlay sends on (its datagrams tagged in a private overlay). */
  readonly socket: DatagramSocket;
  readonly turn: TurnRelay | undefined;
  readonly peerRelay: PeerRelayClient;
  readonly peerRelayServer: PeerRelayServer | undefined;
  readonly probes: ProbeSockets | undefined;
  readonly demux: DemuxStats = { datagrams: 0, unknown: 0, notYetHandled: 0 };
  private receivers: UnderlayReceivers | undefined;
  /** Relayed candidates peers offered us ("host:port"): a tunnel to one goes through the peer's TURN relay. */
  private readonly peersTurnRelays = new Set<string>();

  constructor(private readonly o: UnderlayOptions) {
    const socket = o.admission ? o.admission.wrap(o.socket) : o.socket;
    this.socket = socket;
    const deliver = (msg: Buffer, from: Endpoint): void => this.dispatch(msg, from);
    const turn = o.turn ? new TurnRelay(o.turn, socket, o.logger.child({ layer: 'turn' }), deliver, o.clock) : undefined;
    this.turn = turn;
    const peerRelay = new PeerRelayClient((b, to) => socket.send(b, to), deliver);
    this.peerRelay = peerRelay;
    if (o.peerRelayServer) this.peerRelayServer = new PeerRelayServer({ ...o.peerRelayServer, send: (b, to) => socket.send(b, to), ...(o.clock ? { clock: o.clock } : {}) });
    const probes = o.probeSockets ? new ProbeSockets({ ...o.probeSockets, deliver, ...(o.clock ? { clock: o.clock } : {}) }) : undefined;
    this.probes = probes;
    this.routed = {
      get local() { return socket.local; },
      onMessage: (h) => socket.onMessage(h),
      send: (bytes, to) => {
        if (!probes?.send(bytes, to) && !peerRelay.send(bytes, to) && !turn?.send(bytes, to)) socket.send(bytes, to);
      },
      close: () => socket.close(),
      ...(socket.flush ? { flush: () => socket.flush!() } : {}),
    };
  }

  /** Connect the layers that take what arrives (once, before start). */
  deliverTo(receivers: UnderlayReceivers): void { this.receivers = receivers; }

  start(): void {
    this.o.socket.onMessage((msg, from) => this.onDatagram(msg, from));
    void this.turn?.start();
  }

  /** A peer offered this relayed candidate (its TURN allocation): a tunnel to it is relayed. */
  notePeersTurnRelay(e: Endpoint): void {
    if (this.peersTurnRelays.size < PEERS_TURN_RELAYS_MAX) this.peersTurnRelays.add(endpointKey(e));
  }

  /** Is this endpoint reached through a relay (ours, a peer's TURN allocation, a peer relay)? The tunnels
   *  ask on roaming (not per packet). */
  isRelayed(e: Endpoint): boolean {
    return this.relayRoute(e) !== undefined;
  }

  /** Is this endpoint reached through a relay, and which? */
  relayRoute(endpoint: Endpoint): RelayRoute | undefined {
    const peer = this.peerRelay.relayOf(endpoint);
    if (peer) return { via: 'peer-relay', relay: peer, text: `peer relay ${peer}` };
    if (this.turn?.relays(endpoint)) return { via: 'turn', relay: this.turn.serverKey, text: `our TURN relay ${this.turn.serverKey}` };
    if (this.peersTurnRelays.size > 0) {
      const key = endpointKey(endpoint);
      if (this.peersTurnRelays.has(key)) return { via: 'turn', relay: key, text: `the peer's TURN relay (${key})` };
    }
    return undefined;
  }

  /** The real path behind a probe socket's virtual endpoint (a direct one), for status. */
  probeRoute(endpoint: Endpoint): { local: Endpoint; remote: Endpoint } | undefined {
    return this.probes?.route(endpoint);
  }

  async close(): Promise<void> {
    await Promise.all([this.turn?.close(), this.probes?.close()]);
  }

  private onDatagram(msg: Buffer, from: Endpoint): void {
    this.demux.datagrams++;
    const turn = this.turn;
    if (turn) {
      if (turn.fromServer(from)) { turn.handleDatagram(msg, from); return; }
      // STUN checks and handshakes that reach the socket itself prove a direct path (not per data packet).
      const b = msg[0];
      if (b !== undefined && (b < 4 || b === 0xc1 || b === 0xc2)) turn.noteDirect(from);
    }
    this.dispatch(msg, from);
  }

  /** A datagram from `from`: straight off the socket, or unwrapped by a relay (then `from` is the peer). */
  private dispatch(msg: Buffer, from: Endpoint): void {
    const h = this.receivers;
    if (msg.length === 0 || !h) { this.demux.unknown++; return; }
    const admission = this.o.admission;
    if (admission && isTagged(msg[0])) {
      const n = admission.open(msg);
      if (n < 0) return;
      msg = msg.subarray(0, n);
    }
    switch (classifyDatagram(msg[0]!)) {
      case 'tunnel': h.tunnel.handleDatagram(msg, from); break;
      case 'overlay':
        if (h.overlay && !isVirtual(from)) h.overlay.handleDatagram(msg, from);
        else this.demux.notYetHandled++;
        break;
      case 'stun': h.stun.handleDatagram(msg, from); break;
      case 'peer-relay': this.peerRelayFrame(msg, from); break;
      case 'unknown': this.demux.unknown++; break;
      default: this.demux.notYetHandled++; // TURN channel data from anyone but our TURN server
    }
  }

  private peerRelayFrame(msg: Buffer, from: Endpoint): void {
    // Relayed frames inside relayed frames are not a thing: a relay path is one hop.
    if (isVirtual(from) || (this.turn?.relays(from) ?? false)) { this.demux.notYetHandled++; return; }
    const kind = msg[1];
    if (kind === PR_TO_CLIENT || kind === PR_TO_PEER) {
      if (this.peerRelayServer) this.peerRelayServer.handleDatagram(msg, from);
      else this.demux.notYetHandled++;
    } else {
      this.peerRelay.handleDatagram(msg, from);
    }
  }
}

/** A path's virtual endpoint (peer relay, probe socket), not an address on the wire: overlay messages
 *  and relay frames never come from one. */
function isVirtual(e: Endpoint): boolean {
  return PeerRelayClient.isVirtual(e) || ProbeSockets.isVirtual(e);
}
