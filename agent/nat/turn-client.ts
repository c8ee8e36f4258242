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
// 437 Allocation Mismatch to an Allocate (the server still holds an allocation for our 5-tuple, e.g. from
// our previous run): free it with Refresh(0) and allocate again. Lifetimes: the allocation is refreshed
// TURN_REFRESH_MARGIN_S before it expires; a failed refresh is retried every TURN_REFRESH_RETRY_MS until
// it expires, then the allocation is lost (onLost). close() sends Refresh with LIFETIME 0.

import { realScheduler, type Scheduler, type TimerHandle } from '../base/scheduler.js';
import { randomBytes } from 'node:crypto';
import {
  TURN_CLOSE_TIMEOUT_MS, TURN_PERMISSION_REFRESH_MS, TURN_REFRESH_MARGIN_S, TURN_REFRESH_RETRY_MS, TURN_RTO_INITIAL_MS,
} from '../base/constants.js';
import { endpointKey, type Endpoint } from '../conn/socket.js';
import {
  ATTR, STUN_CLASS_ERROR, STUN_CLASS_INDICATION, STUN_CLASS_SUCCESS, parseStunMessage, parseXorAddress, readU32Attr,
  stunAttribute, type ParsedStun, type StunAttr,
} from './stun-wire.js';
import {
  ATTR_DATA, ATTR_LIFETIME, ATTR_REQUESTED_TRANSPORT, ATTR_XOR_PEER_ADDRESS, ATTR_XOR_RELAYED_ADDRESS, CHANNEL_HEADER_LEN,
  CHANNEL_MIN, TRANSPORT_UDP, TURN_MAX_PAYLOAD, TURN_METHOD_ALLOCATE, TURN_METHOD_DATA, TURN_METHOD_REFRESH, encodeSendIndication,
  writeChannelHeader,
} from './turn-wire.js';
import { TurnPermissions } from './turn-permissions.js';
import { TurnError, TurnTransactions, type TurnClientStats } from './turn-transactions.js';

export { TurnError, type TurnClientStats };

export interface TurnAllocation {
  /** Our address on the relay: peers send here. */
  relayed: Endpoint;
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
  /** Send indications: a random 8-byte prefix and a counter, as they are never matched to anything. */
  private readonly indicationId = randomBytes(12);
  private indicationSeq = 0;

  constructor(opts: TurnClientOptions) {
    this.server = { address: opts.server.address, port: opts.server.port };
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
    if (this.state !== 'allocated') return Promise.reject(new TurnError('TURN permit: no allocation'));
    return this.peers.permit(peer);
  }

  /** Bind a channel to `peer` (ChannelBind; also installs its permission); from then on sendTo(peer)
   *  sends 4-byte-header ChannelData. Resolves with the channel number; kept refreshed until close. */
  bindChannel(peer: Endpoint): Promise<number> {
    if (this.state !== 'allocated') return Promise.reject(new TurnError('TURN bindChannel: no allocation'));
    return this.peers.bindChannel(peer);
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
    const attrs: StunAttr[] = [[ATTR_REQUESTED_TRANSPORT, TRANSPORT_UDP]];
    if (this.requestedLifetimeS !== undefined) attrs.push([ATTR_LIFETIME, this.requestedLifetimeS]);
    let ans: ParsedStun;
    try {
      ans = await this.transactions.request(TURN_METHOD_ALLOCATE, 'Allocate', attrs);
    } catch (e) {
      if (!(e instanceof TurnError) || e.code !== 437 || this.state === 'closed') throw e;
      // The server still holds an allocation for this 5-tuple (our previous run): free it, try once more.
      await this.refresh(0).catch(() => undefined);
      ans = await this.transactions.request(TURN_METHOD_ALLOCATE, 'Allocate', attrs);
    }
    const tid = ans.transactionId;
    const relayedAttr = stunAttribute(ans, ATTR_XOR_RELAYED_ADDRESS);
    const mappedAttr = stunAttribute(ans, ATTR.XOR_MAPPED_ADDRESS);
    const relayed = relayedAttr && parseXorAddress(relayedAttr, tid);
    const mapped = mappedAttr && parseXorAddress(mappedAttr, tid);
    const lifetimeS = readU32Attr(ans, ATTR_LIFETIME);
    if (!relayed || !mapped || lifetimeS === undefined) {
      throw new TurnError(`TURN Allocate: ${this.serverName} answered without XOR-RELAYED-ADDRESS, XOR-MAPPED-ADDRESS or LIFETIME`);
    }
    if (this.state === 'closed') throw new TurnError('TURN client closed');
    this.alloc = { relayed, mapped, lifetimeS };
    this.state = 'allocated';
    this.scheduleAllocationRefresh(lifetimeS);
    return this.alloc;
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
      if (probe || e.code === 437 || left <= 0) { this.lose(e); return; }
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
