// The agent's TURN relay: one allocation on a TURN server, its relayed addresses (one per address family
// the server gave: turn-client.ts asks for both) offered as relayed ICE candidates, and the routing that
// goes with it. With both families, a peer that shares none with us (an IPv6-only host, us on IPv4 only)
// still reaches us through the relay: its checks go to our IPv6 relayed address, and the relay carries
// them to us over the IPv4 we reach it by. The relay carries tunnel datagrams, which are already end-to-end
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
//
//   Which server, which credentials: --turn names both (long-term credentials, RFC 8489). Or --turn-secret:
//   servers come from the overlay's "turn" service records (published by agents started with --offer-turn,
//   e.g. the one on the TURN host), and credentials are minted for each allocation from the shared secret
//   as coturn's use-auth-secret expects (the TURN REST API: username "<expiry>:<our NodeID>", password
//   base64(HMAC-SHA1(secret, username))), so no credential is ever published.

import { every, realScheduler, type Scheduler, type TimerHandle } from '../base/scheduler.js';
import { createHmac } from 'node:crypto';
import type { Logger } from 'pino';
import { TURN_CREDENTIAL_LIFETIME_S, TURN_DIRECT_PEERS_MAX, TURN_KEEPALIVE_MS, TURN_REALLOCATE_RETRY_MS } from '../base/constants.js';
import { candidatePriority, IceCandidateType, type IceCandidate } from './attach.js';
import { endpointKey, endpointKeyOf, type DatagramSocket, type Endpoint } from '../conn/socket.js';
import { TurnClient, canonicalEndpoint, type TurnAllocation } from './turn-client.js';
import type { AddressError } from './turn-wire.js';

/** --turn: a server and its long-term credentials. */
export interface TurnConfig { server: Endpoint; username: string; password: string }
/** --turn-secret: servers found in the overlay, credentials minted from the secret for `user`. */
export interface TurnSecret { secret: string; user: string }

/** TURN REST API credentials (coturn's use-auth-secret): valid until now + lifetimeS. */
export function restCredentials(secret: string, user: string, nowMs: number, lifetimeS = TURN_CREDENTIAL_LIFETIME_S): { username: string; password: string } {
  const username = `${Math.floor(nowMs / 1000) + lifetimeS}:${user}`;
  return { username, password: createHmac('sha1', secret).update(username).digest('base64') };
}

export interface TurnRelayStatus {
  /** null: --turn-secret and no "turn" service record found yet. */
  server: string | null;
  /** The first relayed address (IPv4 if there is one); relayedAll has every family's. */
  relayed: string | null;
  relayedAll: string[];
  /** The family a dual allocation did not get, and why (the server's ADDRESS-ERROR-CODE). */
  familyError: string | null;
  error: string | null;
  peersViaRelay: number;
  stats: TurnClient['stats'] | null;
}

export class TurnRelay {
  private client: TurnClient | undefined;
  private server: Endpoint | undefined;
  private readonly viaRelay = new Set<string>();
  /** Addresses heard from directly (STUN or handshakes on our own socket): never routed via the relay. */
  private readonly direct = new Set<string>();
  private readonly binding = new Set<string>();
  private allocation: TurnAllocation | undefined;
  private error: string | null = null;
  private retry: TimerHandle | undefined;
  private readonly keepalive: TimerHandle;
  private closed = false;
  /** The allocation came (true) or was lost (false): peers' paths may move (path-keeper.ts). */
  onChange: (allocated: boolean) => void = () => {};

  constructor(private readonly source: TurnConfig | TurnSecret, private readonly socket: DatagramSocket, private readonly log: Logger,
    private readonly deliver: (msg: Buffer, from: Endpoint) => void, private readonly clock: Scheduler = realScheduler) {
    if ('server' in source) this.server = canonicalEndpoint(source.server);
    this.keepalive = every(clock, TURN_KEEPALIVE_MS, () => this.client?.probe());
  }

  /** Servers come from the overlay (--turn-secret) rather than the command line. */
  get discovers(): boolean { return !('server' in this.source); }

  /** A server found in the overlay (--turn-secret): allocate there, leaving the current one if it differs. */
  setServer(found: Endpoint): void {
    if (!this.discovers || this.closed) return;
    const server = canonicalEndpoint(found);
    if (this.server && endpointKey(this.server) === endpointKey(server)) return;
    this.log.info({ server: endpointKey(server), was: this.server && endpointKey(this.server) }, 'TURN server found in the overlay');
    const had = this.allocation !== undefined;
    void this.client?.close().catch(() => undefined);
    this.client = undefined;
    this.allocation = undefined;
    this.server = server;
    if (had) { this.onChange(false); this.viaRelay.clear(); }
    void this.start();
  }

  /** Allocate (again after TURN_REALLOCATE_RETRY_MS if it fails). Never rejects. */
  async start(): Promise<void> {
    if (this.closed || !this.server) return;
    const server = this.server;
    const client = this.client && this.client.allocation === undefined && !this.discovers ? this.client : this.newClient(server);
    try {
      this.allocation = await client.allocate();
      if (this.client !== client) return; // replaced meanwhile (another server)
      this.error = null;
      const { relayedAll, familyError } = this.allocation;
      this.log.info({
        server: endpointKey(server), relayed: relayedAll.map(endpointKey), ...(familyError ? { familyError: familyText(familyError) } : {}),
      }, 'TURN relay allocated');
      this.onChange(true);
    } catch (e) {
      if (this.client !== client) return;
      this.error = (e as Error).message;
      this.log.warn({ server: endpointKey(server), err: this.error }, 'TURN allocation failed; will retry');
      this.schedule();
    }
  }

  /** A client for `server` with the configured credentials, or fresh ones minted from the secret. */
  private newClient(server: Endpoint): TurnClient {
    if (this.client) void this.client.close().catch(() => undefined);
    const creds = 'server' in this.source ? this.source : restCredentials(this.source.secret, this.source.user, this.clock.now());
    const client = new TurnClient({ server, username: creds.username, password: creds.password, send: (b, to) => this.socket.send(b, to), clock: this.clock });
    client.onData = (from, bytes) => {
      if (this.viaRelay.size >= TURN_DIRECT_PEERS_MAX) this.viaRelay.clear();
      this.viaRelay.add(endpointKey(from));
      this.deliver(bytes, from);
    };
    client.onLost = (err) => {
      if (this.client !== client) return;
      this.allocation = undefined;
      this.error = err.message;
      this.log.warn({ err: err.message }, 'TURN allocation lost; allocating again');
      this.schedule();
      this.onChange(false); // while relays() still says which peers it carried
      this.viaRelay.clear();
    };
    this.client = client;
    return client;
  }

  /** The datagram came from our TURN server (its answers and relayed data are the client's to read). */
  fromServer(from: Endpoint): boolean {
    const s = this.server;
    return s !== undefined && from.port === s.port && from.address === s.address;
  }

  handleDatagram(msg: Uint8Array, from: Endpoint): void {
    this.client?.handleDatagram(msg, from);
  }

  /** Is traffic to this address going through the relay? */
  relays(to: Endpoint): boolean {
    const key = endpointKey(to);
    return this.viaRelay.has(key) && !this.direct.has(key);
  }

  /** A STUN message or handshake from `from` reached our socket without the relay. */
  noteDirect(from: Endpoint): void {
    if (this.direct.size >= TURN_DIRECT_PEERS_MAX) this.direct.clear();
    this.direct.add(endpointKey(from));
  }

  /** Send through the relay if `to` is reached that way; false: send it directly. Per datagram: nothing
   *  relayed (the usual case) costs one size check, else one cached key lookup. */
  send(bytes: Uint8Array, to: Endpoint): boolean {
    const client = this.client;
    if (!client || this.viaRelay.size === 0) return false;
    const key = endpointKeyOf(to);
    if (!this.viaRelay.has(key) || this.direct.has(key)) return false;
    client.sendTo(to, bytes);
    // A channel makes every later datagram 4 bytes of header instead of a 36-byte Send indication.
    if (client.channelOf(to) === undefined && !this.binding.has(key)) {
      this.binding.add(key);
      void client.bindChannel(to).catch(() => undefined).finally(() => this.binding.delete(key));
    }
    return true;
  }

  /** Let these peer addresses send to our relayed addresses (TURN permissions are per IP, each for the
   *  relayed address of its family: one we have no relayed address of is left out). */
  async permit(addresses: string[]): Promise<void> {
    const client = this.client;
    if (!this.allocation || !client) return;
    const distinct = [...new Set(addresses)].filter((a) => client.reaches(a));
    await Promise.all(distinct.map((a) => client.permit({ address: a, port: 0 }).catch(() => undefined)));
  }

  /** Our first relayed candidate (IPv4 if the server gave one), while allocated. */
  candidate(): IceCandidate | undefined {
    return this.candidates()[0];
  }

  /** Every relayed candidate, one per address family, IPv4 first, while allocated. */
  candidates(): IceCandidate[] {
    return (this.allocation?.relayedAll ?? []).map((r, i) => ({
      address: r.address, port: r.port, type: IceCandidateType.Relay, priority: candidatePriority(IceCandidateType.Relay, i),
    }));
  }

  get serverKey(): string { return this.server ? endpointKey(this.server) : '(none found yet)'; }

  status(): TurnRelayStatus {
    const a = this.allocation;
    return {
      server: this.server ? endpointKey(this.server) : null, relayed: a ? endpointKey(a.relayed) : null,
      relayedAll: a ? a.relayedAll.map(endpointKey) : [], familyError: a?.familyError ? familyText(a.familyError) : null,
      error: this.error, peersViaRelay: this.viaRelay.size, stats: this.client ? { ...this.client.stats } : null,
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.retry?.cancel();
    this.keepalive.cancel();
    await this.client?.close().catch(() => undefined);
  }

  private schedule(): void {
    if (this.closed) return;
    this.retry?.cancel();
    this.retry = this.clock.setTimer(TURN_REALLOCATE_RETRY_MS, () => void this.start());
  }
}

function familyText(e: AddressError): string {
  return `no IPv${e.family === 1 ? 4 : 6} relayed address: ${e.code} ${e.reason}`.trimEnd();
}
