// The agent's TURN relay (--turn): one allocation on a TURN server, offered as the relayed ICE candidate,
// and the routing that goes with it. The relay carries tunnel datagrams, which are already end-to-end
// encrypted, and ICE's STUN checks: it sees only ciphertext and check traffic.
//
//   inbound:  datagrams from the TURN server -> TurnClient (responses, Data indications, ChannelData);
//             relayed data from peer P -> P's address is marked "via the relay" -> delivered as if P had
//             sent it to our socket (demux by first byte, as any datagram).
//   outbound: a datagram for an address marked "via the relay" goes through the relay (ChannelData once
//             a channel is bound, Send indications before); everything else goes straight out the socket.
//   Marking by arrival is what makes ICE work through the relay: the other side's checks to our relayed
//   candidate arrive through it, our answers and triggered checks go back through it, and the pair ICE
//   selects then carries the tunnel the same way. But an address we also hear from directly (its STUN
//   checks or handshakes reach our socket without the relay) is reached directly: behind a cone NAT the
//   peer's checks to our relayed candidate come from the same public mapping as its direct ones, and a
//   direct path must never be carried by the relay just because the relay also works.
import type { Logger } from 'pino';
import { TURN_KEEPALIVE_MS, TURN_REALLOCATE_RETRY_MS } from './constants.js';

/** Addresses remembered as directly reachable; on overflow the set starts over (they are re-learnt from
 *  the next check or handshake), which bounds memory against a flood of spoofed sources. */
const RELAY_DIRECT_MAX = 4096;
import { candidatePriority, IceCandidateType, type IceCandidate } from './nat/attach.js';
import { endpointKey, type DatagramSocket, type Endpoint } from './nat/socket.js';
import { TurnClient, type TurnAllocation } from './nat/turn-client.js';

export interface TurnConfig { server: Endpoint; username: string; password: string }

export interface RelayStatus {
  server: string;
  relayed: string | null;
  error: string | null;
  peersViaRelay: number;
  stats: TurnClient['stats'];
}

export class TurnRelay {
  readonly client: TurnClient;
  private readonly viaRelay = new Set<string>();
  /** Addresses heard from directly (STUN or handshakes on our own socket): never routed via the relay. */
  private readonly direct = new Set<string>();
  private readonly binding = new Set<string>();
  private allocation: TurnAllocation | undefined;
  private error: string | null = null;
  private retry: NodeJS.Timeout | undefined;
  private readonly keepalive: NodeJS.Timeout;
  private closed = false;
  /** The allocation came (true) or was lost (false): peers' paths may move (path-keeper.ts). */
  onChange: (allocated: boolean) => void = () => {};

  constructor(private readonly cfg: TurnConfig, socket: DatagramSocket, private readonly log: Logger,
    deliver: (msg: Buffer, from: Endpoint) => void) {
    this.client = new TurnClient({
      server: cfg.server, username: cfg.username, password: cfg.password,
      send: (b, to) => socket.send(b, to),
    });
    this.client.onData = (from, bytes) => {
      if (this.viaRelay.size >= RELAY_DIRECT_MAX) this.viaRelay.clear();
      this.viaRelay.add(endpointKey(from));
      deliver(bytes, from);
    };
    this.client.onLost = (err) => {
      this.allocation = undefined;
      this.error = err.message;
      this.log.warn({ err: err.message }, 'TURN allocation lost; allocating again');
      this.schedule();
      this.onChange(false); // while relays() still says which peers it carried
      this.viaRelay.clear();
    };
    this.keepalive = setInterval(() => this.client.probe(), TURN_KEEPALIVE_MS);
    this.keepalive.unref?.();
  }

  /** Allocate (again after TURN_REALLOCATE_RETRY_MS if it fails). Never rejects. */
  async start(): Promise<void> {
    if (this.closed) return;
    try {
      this.allocation = await this.client.allocate();
      this.error = null;
      this.log.info({ server: endpointKey(this.cfg.server), relayed: endpointKey(this.allocation.relayed) }, 'TURN relay allocated');
      this.onChange(true);
    } catch (e) {
      this.error = (e as Error).message;
      this.log.warn({ server: endpointKey(this.cfg.server), err: this.error }, 'TURN allocation failed; will retry');
      this.schedule();
    }
  }

  /** The datagram came from our TURN server (its answers and relayed data are the client's to read). */
  fromServer(from: Endpoint): boolean {
    return from.port === this.cfg.server.port && from.address === this.cfg.server.address;
  }

  handleDatagram(msg: Uint8Array, from: Endpoint): void {
    this.client.handleDatagram(msg, from);
  }

  /** Is traffic to this address going through the relay? */
  relays(to: Endpoint): boolean {
    const key = endpointKey(to);
    return this.viaRelay.has(key) && !this.direct.has(key);
  }

  /** A STUN message or handshake from `from` reached our socket without the relay. */
  noteDirect(from: Endpoint): void {
    if (this.direct.size >= RELAY_DIRECT_MAX) this.direct.clear();
    this.direct.add(endpointKey(from));
  }

  /** Send through the relay if `to` is reached that way; false: send it directly. */
  send(bytes: Uint8Array, to: Endpoint): boolean {
    const key = endpointKey(to);
    if (!this.viaRelay.has(key) || this.direct.has(key)) return false;
    this.client.sendTo(to, bytes);
    // A channel makes every later datagram 4 bytes of header instead of a 36-byte Send indication.
    if (this.client.channelOf(to) === undefined && !this.binding.has(key)) {
      this.binding.add(key);
      void this.client.bindChannel(to).catch(() => undefined).finally(() => this.binding.delete(key));
    }
    return true;
  }

  /** Let these peer addresses send to our relayed address (TURN permissions are per IP). */
  async permit(addresses: string[]): Promise<void> {
    if (!this.allocation) return;
    const distinct = [...new Set(addresses)];
    await Promise.all(distinct.map((a) => this.client.permit({ address: a, port: 0 }).catch(() => undefined)));
  }

  /** Our relayed candidate, while allocated. */
  candidate(): IceCandidate | undefined {
    const r = this.allocation?.relayed;
    return r ? { address: r.address, port: r.port, type: IceCandidateType.Relay, priority: candidatePriority(IceCandidateType.Relay) } : undefined;
  }

  get serverKey(): string { return endpointKey(this.cfg.server); }

  status(): RelayStatus {
    return {
      server: endpointKey(this.cfg.server), relayed: this.allocation ? endpointKey(this.allocation.relayed) : null,
      error: this.error, peersViaRelay: this.viaRelay.size, stats: { ...this.client.stats },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retry);
    clearInterval(this.keepalive);
    await this.client.close().catch(() => undefined);
  }

  private schedule(): void {
    if (this.closed) return;
    clearTimeout(this.retry);
    this.retry = setTimeout(() => void this.start(), TURN_REALLOCATE_RETRY_MS);
    this.retry.unref?.();
  }
}
