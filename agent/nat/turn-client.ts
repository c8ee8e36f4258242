// TURN client (RFC 8656, UDP transport to the server) on the agent's one shared UDP socket.
//
//   agent socket --first byte 0-3 (STUN) or 0x40-0x4F (ChannelData), from the server--> handleDatagram()
//   allocate / permit / bindChannel / refresh / close --> STUN requests --> opts.send(bytes, server)
//   sendTo(peer, bytes) --> ChannelData if a channel to `peer` is bound, else a Send indication
//   relayed datagrams from peers (ChannelData or Data indications) --> onData(peer, bytes)
//
// This file holds the allocation's life and the data path. Requests, their retransmission and the
// credential dance are in turn-transactions.ts; permissions and channels in turn-permissions.ts; the wire
// formats in turn-wire.ts on the STUN codec of stun-wire.ts.
//
// Address families: the server is reached over IPv4 or IPv6 (the endpoint's family), and the Allocate
// asks for relayed addresses of both (a dual allocation, ADDITIONAL-ADDRESS-FAMILY IPv6) so that peers of
// either family reach us however we reach the server. A server that cannot says 400 or 440 (coturn with
// external-ip), or ignores the attribute (before RFC 8656): then the plain, IPv4 allocation, and on 440
// to that (no IPv4 relay) an IPv6 one (REQUESTED-ADDRESS-FAMILY). Why a dual allocation got one family
// only is kept (`familyError`). Permissions, channels and Send indications for a peer of a family the
// allocation lacks are refused here (443, counted), not by the server a round trip later.
//
// 437 to an Allocate (the server still holds an allocation for our 5-tuple, e.g. our previous run's):
// free it with Refresh(0) and allocate again. The allocation is refreshed TURN_REFRESH_MARGIN_S before
// it expires; a failed refresh is retried every TURN_REFRESH_RETRY_MS until it expires, then the
// allocation is lost (onLost). close() sends Refresh with LIFETIME 0.

import { realScheduler, type Scheduler, type TimerHandle } from '../base/scheduler.js';
import { randomBytes } from 'node:crypto';
import {
  TURN_CLOSE_TIMEOUT_MS, TURN_PERMISSION_REFRESH_MS, TURN_REFRESH_MARGIN_S, TURN_REFRESH_RETRY_MS, TURN_RTO_INITIAL_MS,
} from '../base/constants.js';
import { endpointKey, type Endpoint } from '../conn/socket.js';
import { canonicalAddress } from '../base/ip-text.js';
import {
  ATTR, STUN_CLASS_ERROR, STUN_CLASS_INDICATION, STUN_CLASS_SUCCESS, parseStunMessage, parseXorAddress, readU32Attr,
  stunAttribute, type ParsedStun, type StunAttr,
} from './stun-wire.js';
import {
  ADDRESS_FAMILY_IPV6, ATTR_ADDITIONAL_ADDRESS_FAMILY, ATTR_ADDITIONAL_ADDRESS_FAMILY_COTURN, ATTR_DATA, ATTR_LIFETIME,
  ATTR_REQUESTED_ADDRESS_FAMILY, ATTR_REQUESTED_TRANSPORT, ATTR_XOR_PEER_ADDRESS, CHANNEL_HEADER_LEN, CHANNEL_MIN,
  ERROR_ADDRESS_FAMILY_NOT_SUPPORTED, ERROR_ALLOCATION_MISMATCH, ERROR_PEER_ADDRESS_FAMILY_MISMATCH, TRANSPORT_UDP,
  TURN_MAX_PAYLOAD, TURN_METHOD_ALLOCATE, TURN_METHOD_DATA, TURN_METHOD_REFRESH, addressError, addressFamilyValue,
  encodeSendIndication, relayedAddresses, writeChannelHeader, type AddressError,
} from './turn-wire.js';
import { TurnPermissions } from './turn-permissions.js';
import { TurnError, TurnTransactions, type TurnClientStats } from './turn-transactions.js';

export { TurnError, type TurnClientStats };

export interface TurnAllocation {
  /** Our address on the relay: peers send here. The IPv4 one if there is one (the family a TURN server
   *  allocates unless asked for another). */
  relayed: Endpoint;
  /** Every relayed address, one per family, IPv4 first (`relayed` is the first). */
  relayedAll: readonly Endpoint[];
  /** The family a dual allocation asked for and did not get, and the server's reason. */
  familyError: AddressError | undefined;
  /** Our address as the server sees it (server-reflexive). */
  mapped: Endpoint;
  lifetimeS: number;
}

export interface TurnClientOptions {
  server: Endpoint;
  username: string;
  password: string;
  /** Send a datagram from the agent's shared socket. */
  send: (bytes: Uint8Array, to: Endpoint) => void;
  /** Time for expiry, refreshes and retransmissions (a twin in tests). */
  clock?: Scheduler;
  /** Set when `send` copies the bytes before returning (NativeUdpSocket, MemorySocket do; node:dgram does
   *  not): ChannelData is then built in one preallocated buffer instead of one per packet. */
  sendCopies?: boolean;
  /** Allocation lifetime to ask for (s); the server's default (600 s) if absent. */
  lifetimeS?: number;
  /** Overrides of TURN_RTO_INITIAL_MS and TURN_PERMISSION_REFRESH_MS, for tests. */
  rtoMs?: number;
  permissionRefreshMs?: number;
}

type State = 'idle' | 'allocated' | 'lost' | 'closed';

const ipv6Family = addressFamilyValue(ADDRESS_FAMILY_IPV6);
/** What successive Allocates ask for (see the top): dual, plain (IPv4), IPv6. */
const FAMILY_ATTEMPTS: readonly (readonly StunAttr[])[] = [
  [[ATTR_ADDITIONAL_ADDRESS_FAMILY, ipv6Family], [ATTR_ADDITIONAL_ADDRESS_FAMILY_COTURN, ipv6Family]],
  [],
  [[ATTR_REQUESTED_ADDRESS_FAMILY, ipv6Family]],
];

/** The server in the spelling the socket reports its answers from, however it was given. */
export const canonicalEndpoint = (e: Endpoint): Endpoint => ({ address: canonicalAddress(e.address), port: e.port });

export class TurnClient {
  /** Relayed datagrams from peers. `bytes` is a view into the received datagram: copy it to keep it. A Buffer
   *  (so it can go straight on to Tunnels.handleDatagram); a handler taking Uint8Array fits too. */
  onData: (from: Endpoint, bytes: Buffer) => void = () => {};
  /** The allocation is gone (a refresh failed until it expired, or the server no longer knows it). */
  onLost: (err: TurnError) => void = () => {};
  readonly stats: TurnClientStats = {
    channelDataIn: 0, dataIndicationsIn: 0, channelDataOut: 0, sendIndicationsOut: 0, sendDropped: 0,
    malformed: 0, notFromServer: 0, unknownChannel: 0, unknownTransaction: 0, badIntegrity: 0,
    retransmits: 0, staleNonceRetries: 0, refreshes: 0, refreshFailures: 0, callbackErrors: 0,
    familyFallbacks: 0, peerFamilyMismatch: 0,
  };

  private readonly server: Endpoint;
  private readonly serverName: string;
  private readonly sendRaw: (bytes: Uint8Array, to: Endpoint) => void;
  private readonly clock: Scheduler;
  private readonly requestedLifetimeS: number | undefined;
  private readonly scratch: Buffer | undefined;
  private readonly transactions: TurnTransactions;
  private readonly peers: TurnPermissions;

  private state: State = 'idle';
  private alloc: TurnAllocation | undefined;
  private allocating: Promise<TurnAllocation> | undefined;
  private allocExpiresAt = 0;
  private allocTimer: TimerHandle | undefined;
  /** The allocation has a relayed address of this family (peers of the other are refused here). */
  private hasV4 = false;
  private hasV6 = false;
  /** Send indications: a random 8-byte prefix and a counter, as they are never matched to anything. */
  private readonly indicationId = randomBytes(12);
  private indicationSeq = 0;

  constructor(opts: TurnClientOptions) {
    this.server = canonicalEndpoint(opts.server);
    this.serverName = endpointKey(this.server);
    this.sendRaw = opts.send;
    this.clock = opts.clock ?? realScheduler;
    this.requestedLifetimeS = opts.lifetimeS;
    this.scratch = opts.sendCopies ? Buffer.allocUnsafeSlow(CHANNEL_HEADER_LEN + TURN_MAX_PAYLOAD) : undefined;
    this.transactions = new TurnTransactions({
      server: this.server, serverName: this.serverName, username: opts.username, password: opts.password,
      send: opts.send, rtoMs: opts.rtoMs ?? TURN_RTO_INITIAL_MS, stats: this.stats, clock: this.clock,
    });
    this.peers = new TurnPermissions({
      request: this.transactions.request, allocated: () => this.state === 'allocated', clock: this.clock,
      permissionRefreshMs: opts.permissionRefreshMs ?? TURN_PERMISSION_REFRESH_MS, stats: this.stats,
    });
  }

  /** The current allocation, if any. */
  get allocation(): TurnAllocation | undefined {
    return this.state === 'allocated' ? this.alloc : undefined;
  }

  /** The channel bound to `peer`, if its ChannelBind succeeded. */
  channelOf(peer: Endpoint): number | undefined {
    return this.peers.activeChannel(peer)?.number;
  }

  hasPermission(address: string): boolean {
    return this.peers.hasPermission(address);
  }

  /** Install a permission for `peer`'s address (CreatePermission; ports do not matter), refreshed until close. */
  permit(peer: Endpoint): Promise<void> {
    return this.refusal('permit', peer) ?? this.peers.permit(peer);
  }

  /** Bind a channel to `peer` (ChannelBind; also installs its permission); from then on sendTo(peer)
   *  sends 4-byte-header ChannelData. Resolves with the channel number; kept refreshed until close. */
  bindChannel(peer: Endpoint): Promise<number> {
    return this.refusal('bindChannel', peer) ?? this.peers.bindChannel(peer);
  }

  /** Does the allocation have a relayed address of `address`'s family? */
  reaches(address: string): boolean {
    return address.includes(':') ? this.hasV6 : this.hasV4;
  }

  private refusal(what: string, peer: Endpoint): Promise<never> | undefined {
    if (this.state !== 'allocated') return Promise.reject(new TurnError(`TURN ${what}: no allocation`));
    if (this.reaches(peer.address)) return undefined;
    this.stats.peerFamilyMismatch++;
    return Promise.reject(new TurnError(`TURN ${what}: the allocation on ${this.serverName} has no ` +
      `${peer.address.includes(':') ? 'IPv6' : 'IPv4'} relayed address for ${peer.address}`, ERROR_PEER_ADDRESS_FAMILY_MISMATCH));
  }

  // ---- receiving ----

  /** A datagram from the shared socket that demux.ts classed 'stun' or 'turn-channel'. Never throws. */
  handleDatagram(msg: Uint8Array, from: Endpoint): void {
    try {
      if (from.port !== this.server.port || from.address !== this.server.address) {
        this.stats.notFromServer++;
        return;
      }
      const b0 = msg[0];
      if (b0 !== undefined && b0 >= 0x40 && b0 <= 0x4f) {
        // ChannelData hot path: read the header in place.
        if (msg.length < CHANNEL_HEADER_LEN) { this.stats.malformed++; return; }
        const len = (msg[2]! << 8) | msg[3]!;
        const extra = msg.length - CHANNEL_HEADER_LEN - len;
        if (extra < 0 || extra > 3) { this.stats.malformed++; return; }
        const ch = this.peers.byNumber[((b0 << 8) | msg[1]!) - CHANNEL_MIN];
        if (ch === undefined || !ch.active || this.state !== 'allocated') { this.stats.unknownChannel++; return; }
        this.stats.channelDataIn++;
        this.deliver(ch.peer, Buffer.from(msg.buffer, msg.byteOffset + CHANNEL_HEADER_LEN, len));
        return;
      }
      const m = parseStunMessage(msg);
      if (!m) { this.stats.malformed++; return; }
      if (m.cls === STUN_CLASS_INDICATION && m.method === TURN_METHOD_DATA) {
        const peerAttr = stunAttribute(m, ATTR_XOR_PEER_ADDRESS);
        const data = stunAttribute(m, ATTR_DATA);
        const peer = peerAttr && parseXorAddress(peerAttr, m.transactionId);
        if (!peer || !data) { this.stats.malformed++; return; }
        if (this.state !== 'allocated') { this.stats.unknownChannel++; return; }
        this.stats.dataIndicationsIn++;
        this.deliver(peer, Buffer.from(data.buffer, data.byteOffset, data.length));
        return;
      }
      if (m.cls !== STUN_CLASS_SUCCESS && m.cls !== STUN_CLASS_ERROR) { this.stats.malformed++; return; }
      this.transactions.answer(m, msg);
    } catch {
      this.stats.malformed++;
    }
  }

  private deliver(from: Endpoint, bytes: Buffer): void {
    try {
      this.onData(from, bytes);
    } catch {
      this.stats.callbackErrors++;
    }
  }

  // ---- sending ----

  /** Relay `bytes` to `peer`: ChannelData if a channel is bound, else a Send indication. The peer needs a
   *  permission (permit or bindChannel) or the server drops it. False if not sent (counted). */
  sendTo(peer: Endpoint, bytes: Uint8Array): boolean {
    if (this.state !== 'allocated' || bytes.length > TURN_MAX_PAYLOAD) { this.stats.sendDropped++; return false; }
    const ch = this.peers.activeChannel(peer);
    if (ch !== undefined) {
      const n = CHANNEL_HEADER_LEN + bytes.length;
      const out = this.scratch ?? Buffer.allocUnsafe(n);
      writeChannelHeader(out, 0, ch.number, bytes.length);
      out.set(bytes, CHANNEL_HEADER_LEN);
      this.sendRaw(this.scratch ? out.subarray(0, n) : out, this.server);
      this.stats.channelDataOut++;
      return true;
    }
    return this.sendIndication(peer, bytes);
  }

  /** Zero-copy variant of sendTo: `frame` holds the payload from byte CHANNEL_HEADER_LEN on, and its first 4
   *  bytes are ours to overwrite with the ChannelData header. */
  sendFrame(peer: Endpoint, frame: Uint8Array): boolean {
    const len = frame.length - CHANNEL_HEADER_LEN;
    if (this.state !== 'allocated' || len < 0 || len > TURN_MAX_PAYLOAD) { this.stats.sendDropped++; return false; }
    const ch = this.peers.activeChannel(peer);
    if (ch !== undefined) {
      writeChannelHeader(frame, 0, ch.number, len);
      this.sendRaw(frame, this.server);
      this.stats.channelDataOut++;
      return true;
    }
    return this.sendIndication(peer, frame.subarray(CHANNEL_HEADER_LEN));
  }

  private sendIndication(peer: Endpoint, bytes: Uint8Array): boolean {
    if (!this.reaches(peer.address)) { this.stats.peerFamilyMismatch++; this.stats.sendDropped++; return false; }
    const id = this.indicationId;
    id.writeUInt32BE((this.indicationSeq = (this.indicationSeq + 1) >>> 0), 8);
    const out = encodeSendIndication(peer, bytes, id);
    if (!out) { this.stats.sendDropped++; return false; }
    this.sendRaw(out, this.server);
    this.stats.sendIndicationsOut++;
    return true;
  }

  // ---- allocation ----

  /** Allocate a relayed address (once; later calls get the same allocation or the same pending attempt). */
  allocate(): Promise<TurnAllocation> {
    if (this.state === 'closed') return Promise.reject(new TurnError('TURN client closed'));
    if (this.state === 'allocated' && this.alloc) return Promise.resolve(this.alloc);
    if (!this.allocating) {
      this.allocating = this.doAllocate().finally(() => { this.allocating = undefined; });
    }
    return this.allocating;
  }

  private refresh(lifetimeS: number | undefined): Promise<ParsedStun> {
    const attrs: StunAttr[] = lifetimeS === undefined ? [] : [[ATTR_LIFETIME, lifetimeS]];
    return this.transactions.request(TURN_METHOD_REFRESH, 'Refresh', attrs);
  }

  private async doAllocate(): Promise<TurnAllocation> {
    const base: StunAttr[] = [[ATTR_REQUESTED_TRANSPORT, TRANSPORT_UDP]];
    if (this.requestedLifetimeS !== undefined) base.push([ATTR_LIFETIME, this.requestedLifetimeS]);
    let ans: ParsedStun | undefined;
    for (let i = 0; !ans; i++) {
      try {
        ans = await this.allocateOnce([...base, ...FAMILY_ATTEMPTS[i]!]);
      } catch (e) {
        const code = e instanceof TurnError ? e.code : undefined;
        const next = code === ERROR_ADDRESS_FAMILY_NOT_SUPPORTED || (i === 0 && (code === 400 || code === 420));
        if (!next || i + 1 >= FAMILY_ATTEMPTS.length || this.state === 'closed') throw e;
        this.stats.familyFallbacks++;
      }
    }
    const relayedAll = relayedAddresses(ans);
    const mappedAttr = stunAttribute(ans, ATTR.XOR_MAPPED_ADDRESS);
    const mapped = mappedAttr && parseXorAddress(mappedAttr, ans.transactionId);
    const lifetimeS = readU32Attr(ans, ATTR_LIFETIME);
    if (relayedAll.length === 0 || !mapped || lifetimeS === undefined) {
      throw new TurnError(`TURN Allocate: ${this.serverName} answered without XOR-RELAYED-ADDRESS, XOR-MAPPED-ADDRESS or LIFETIME`);
    }
    if (this.state === 'closed') throw new TurnError('TURN client closed');
    this.alloc = { relayed: relayedAll[0]!, relayedAll, familyError: addressError(ans), mapped, lifetimeS };
    this.hasV4 = relayedAll.some((e) => !e.address.includes(':'));
    this.hasV6 = relayedAll.some((e) => e.address.includes(':'));
    this.state = 'allocated';
    this.scheduleAllocationRefresh(lifetimeS);
    return this.alloc;
  }

  /** One Allocate; on 437 free the leftover allocation and try once more. */
  private async allocateOnce(attrs: readonly StunAttr[]): Promise<ParsedStun> {
    try {
      return await this.transactions.request(TURN_METHOD_ALLOCATE, 'Allocate', attrs);
    } catch (e) {
      if (!(e instanceof TurnError) || e.code !== ERROR_ALLOCATION_MISMATCH || this.state === 'closed') throw e;
      await this.refresh(0).catch(() => undefined);
      return this.transactions.request(TURN_METHOD_ALLOCATE, 'Allocate', attrs);
    }
  }

  private scheduleAllocationRefresh(lifetimeS: number): void {
    this.allocExpiresAt = this.clock.now() + lifetimeS * 1000;
    const inS = lifetimeS - Math.min(TURN_REFRESH_MARGIN_S, lifetimeS / 2);
    this.allocTimer?.cancel();
    this.allocTimer = this.clock.setTimer(inS * 1000, () => this.refreshAllocation());
  }

  /** Is the server still there and still holding our allocation? A Refresh (which also renews it): no
   *  answer to any retransmission, or an error, and the allocation is lost (onLost). The agent calls this
   *  every TURN_KEEPALIVE_MS, which also keeps the NAT mapping towards the server open. */
  probe(): void {
    this.refreshAllocation(true);
  }

  /** Renew the allocation; a failed renewal is retried until it expires, a failed probe loses it at once. */
  private refreshAllocation(probe = false): void {
    if (this.state !== 'allocated') return;
    this.stats.refreshes++;
    this.refresh(this.requestedLifetimeS).then((ans) => {
      if (this.state !== 'allocated') return;
      const lifetimeS = readU32Attr(ans, ATTR_LIFETIME) ?? this.alloc!.lifetimeS;
      this.alloc!.lifetimeS = lifetimeS;
      this.scheduleAllocationRefresh(lifetimeS);
    }, (e: TurnError) => {
      if (this.state !== 'allocated') return;
      this.stats.refreshFailures++;
      const left = this.allocExpiresAt - this.clock.now();
      if (probe || e.code === ERROR_ALLOCATION_MISMATCH || left <= 0) { this.lose(e); return; }
      this.allocTimer?.cancel();
      this.allocTimer = this.clock.setTimer(Math.min(TURN_REFRESH_RETRY_MS, left), () => this.refreshAllocation());
    });
  }

  private lose(e: TurnError): void {
    this.state = 'lost';
    this.clearState();
    this.onLost(new TurnError(`TURN allocation on ${this.serverName} lost: ${e.message}`, e.code));
  }

  private clearState(): void {
    this.hasV4 = this.hasV6 = false;
    this.allocTimer?.cancel();
    this.allocTimer = undefined;
    this.peers.clear();
  }

  // ---- closing ----

  /** Stop refreshing, fail pending requests, and free the allocation (Refresh with LIFETIME 0, waited for
   *  at most TURN_CLOSE_TIMEOUT_MS). Never rejects. */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    const had = this.state === 'allocated';
    this.state = 'closed';
    this.clearState();
    this.transactions.failAll(new TurnError('TURN client closed'));
    if (!had || !this.transactions.authenticated) return;
    let timer: TimerHandle | undefined;
    await Promise.race([
      this.refresh(0).catch(() => undefined),
      new Promise<void>((r) => { timer = this.clock.setTimer(TURN_CLOSE_TIMEOUT_MS, r); }),
    ]);
    timer?.cancel();
    this.transactions.failAll(new TurnError('TURN client closed'));
  }
}
