// TURN client (RFC 8656, UDP transport to the server) on the agent's one shared UDP socket.
//
//   agent socket --first byte 0-3 (STUN) or 0x40-0x4F (ChannelData), from the server--> handleDatagram()
//   allocate / permit / bindChannel / refresh / close --> STUN requests --> opts.send(bytes, server)
//   sendTo(peer, bytes) --> ChannelData if a channel to `peer` is bound, else a Send indication
//   relayed datagrams from peers (ChannelData or Data indications) --> onData(peer, bytes)
//
// The wire formats, their parsing and encoding are in agent/nat/turn-wire.ts.
//
// Long-term credentials (RFC 8489 section 9.2): the first Allocate goes without them, the server answers
// 401 with REALM and NONCE, and from then on every request carries USERNAME, REALM, NONCE and
// MESSAGE-INTEGRITY; a success answer to such a request must carry a valid MESSAGE-INTEGRITY or it is
// ignored (counted). 438 Stale Nonce: retry with the new nonce. 401 to a request that carried
// credentials: wrong username or password. 437 Allocation Mismatch to an Allocate (the server still holds
// an allocation for our 5-tuple, e.g. from our previous run): free it with Refresh(0) and allocate again.
//
// Lifetimes: the allocation is refreshed TURN_REFRESH_MARGIN_S before it expires; permissions (5 min) and
// channels (10 min) every TURN_PERMISSION_REFRESH_MS. close() sends Refresh with LIFETIME 0.

import { randomBytes } from 'node:crypto';
import {
  TURN_CHANNEL_LIFETIME_MS, TURN_CLOSE_TIMEOUT_MS, TURN_MAX_TRANSMISSIONS, TURN_PERMISSION_LIFETIME_MS,
  TURN_PERMISSION_REFRESH_MS, TURN_REFRESH_MARGIN_S, TURN_REFRESH_RETRY_MS, TURN_RTO_INITIAL_MS, TURN_STALE_NONCE_RETRIES,
} from '../base/constants.js';
import { endpointKey, type Endpoint } from '../conn/socket.js';
import {
  ATTR_CHANNEL_NUMBER, ATTR_DATA, ATTR_ERROR_CODE, ATTR_LIFETIME, ATTR_NONCE, ATTR_REALM, ATTR_REQUESTED_TRANSPORT,
  ATTR_USERNAME, ATTR_XOR_MAPPED_ADDRESS, ATTR_XOR_PEER_ADDRESS, ATTR_XOR_RELAYED_ADDRESS, CHANNEL_HEADER_LEN, CHANNEL_MAX,
  CHANNEL_MIN, STUN_CLASS_ERROR, STUN_CLASS_INDICATION, STUN_CLASS_REQUEST, STUN_CLASS_SUCCESS, TRANSPORT_UDP,
  TURN_MAX_PAYLOAD, TURN_METHOD_ALLOCATE, TURN_METHOD_CHANNEL_BIND, TURN_METHOD_CREATE_PERMISSION, TURN_METHOD_DATA,
  TURN_METHOD_REFRESH, encodeSendIndication, longTermKey, parseErrorCode, parseStunMessage, parseXorAddress, readU32Attr,
  stunAttribute, stunPackage, stunType, textAttr, verifyMessageIntegrity, writeChannelHeader, type ParsedStun,
  type StunOutgoing,
} from './turn-wire.js';

// ---- the client --------------------------------------------------------------------------------------

export class TurnError extends Error {
  /** STUN error code (401, 437, 438, 441, 486, 508, ...) when the server answered with one. */
  readonly code: number | undefined;
  constructor(message: string, code?: number) {
    super(message);
    this.name = 'TurnError';
    this.code = code;
  }
}

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
  /** Clock for expiry bookkeeping (ms); Date.now by default. */
  now?: () => number;
  /** Set when `send` copies the bytes before returning (NativeUdpSocket, MemorySocket do; node:dgram does
   *  not): ChannelData is then built in one preallocated buffer instead of one per packet. */
  sendCopies?: boolean;
  /** Allocation lifetime to ask for (s); the server's default (600 s) if absent. */
  lifetimeS?: number;
  /** Overrides of TURN_RTO_INITIAL_MS and TURN_PERMISSION_REFRESH_MS, for tests. */
  rtoMs?: number;
  permissionRefreshMs?: number;
}

export interface TurnClientStats {
  channelDataIn: number;
  dataIndicationsIn: number;
  channelDataOut: number;
  sendIndicationsOut: number;
  /** sendTo() with no allocation, a bad peer or an oversize payload. */
  sendDropped: number;
  malformed: number;
  notFromServer: number;
  unknownChannel: number;
  unknownTransaction: number;
  badIntegrity: number;
  retransmits: number;
  /** 438 Stale Nonce answers retried with the server's fresh nonce. */
  staleNonceRetries: number;
  refreshes: number;
  refreshFailures: number;
  callbackErrors: number;
}

type State = 'idle' | 'allocated' | 'lost' | 'closed';

interface Transaction {
  method: number;
  bytes: Buffer;
  timer: NodeJS.Timeout;
  onAnswer: (m: ParsedStun, raw: Uint8Array) => void;
  fail: (e: Error) => void;
}

interface Permission {
  address: string;
  port: number;
  expiresAt: number;
  timer: NodeJS.Timeout | undefined;
  pending: Promise<void> | undefined;
}

interface Channel {
  number: number;
  peer: Endpoint;
  active: boolean;
  expiresAt: number;
  timer: NodeJS.Timeout | undefined;
  pending: Promise<number> | undefined;
}

const txKey = (id: Uint8Array): string => Buffer.from(id.buffer, id.byteOffset, id.length).toString('latin1');

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
  private readonly username: string;
  private readonly password: string;
  private readonly sendRaw: (bytes: Uint8Array, to: Endpoint) => void;
  private readonly now: () => number;
  private readonly rtoMs: number;
  private readonly permissionRefreshMs: number;
  private readonly requestedLifetimeS: number | undefined;
  private readonly scratch: Buffer | undefined;

  private state: State = 'idle';
  private alloc: TurnAllocation | undefined;
  private allocating: Promise<TurnAllocation> | undefined;
  private allocExpiresAt = 0;
  private allocTimer: NodeJS.Timeout | undefined;
  private realm: string | undefined;
  private nonce: string | undefined;
  private key: Buffer | undefined;
  private readonly transactions = new Map<string, Transaction>();
  private readonly permissions = new Map<string, Permission>();
  /** Channels by number - CHANNEL_MIN (the receive hot path) and by address then port (the send path). */
  private readonly channelByNumber: (Channel | undefined)[] = [];
  private readonly channelByPeer = new Map<string, Map<number, Channel>>();
  private nextChannel = CHANNEL_MIN;
  /** Send indications: a random 8-byte prefix and a counter, as they are never matched to anything. */
  private readonly indicationId = randomBytes(12);
  private indicationSeq = 0;

  constructor(opts: TurnClientOptions) {
    this.server = { address: opts.server.address, port: opts.server.port };
    this.serverName = endpointKey(this.server);
    this.username = opts.username;
    this.password = opts.password;
    this.sendRaw = opts.send;
    this.now = opts.now ?? Date.now;
    this.rtoMs = opts.rtoMs ?? TURN_RTO_INITIAL_MS;
    this.permissionRefreshMs = opts.permissionRefreshMs ?? TURN_PERMISSION_REFRESH_MS;
    this.requestedLifetimeS = opts.lifetimeS;
    this.scratch = opts.sendCopies ? Buffer.allocUnsafeSlow(CHANNEL_HEADER_LEN + TURN_MAX_PAYLOAD) : undefined;
  }

  /** The current allocation, if any. */
  get allocation(): TurnAllocation | undefined {
    return this.state === 'allocated' ? this.alloc : undefined;
  }

  /** The channel bound to `peer`, if its ChannelBind succeeded. */
  channelOf(peer: Endpoint): number | undefined {
    const c = this.channelByPeer.get(peer.address)?.get(peer.port);
    return c?.active ? c.number : undefined;
  }

  hasPermission(address: string): boolean {
    const p = this.permissions.get(address);
    if (p && p.expiresAt > this.now()) return true;
    for (const c of this.channelByPeer.get(address)?.values() ?? []) if (c.active && c.expiresAt > this.now()) return true;
    return false;
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
        const ch = this.channelByNumber[((b0 << 8) | msg[1]!) - CHANNEL_MIN];
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
      const k = txKey(m.transactionId);
      const tx = this.transactions.get(k);
      if (!tx) { this.stats.unknownTransaction++; return; }
      if (tx.method !== m.method) { this.stats.malformed++; return; }
      tx.onAnswer(m, msg);
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
    const ch = this.channelByPeer.get(peer.address)?.get(peer.port);
    if (ch !== undefined && ch.active) {
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
    const ch = this.channelByPeer.get(peer.address)?.get(peer.port);
    if (ch !== undefined && ch.active) {
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

  // ---- requests and the credential dance ----

  private request(method: number, what: string, fill: (m: StunOutgoing) => void): Promise<ParsedStun> {
    return new Promise<ParsedStun>((resolve, reject) => {
      let staleRetries = 0;
      const attempt = (): void => {
        const m = stunPackage.createMessage(stunType(method, STUN_CLASS_REQUEST));
        fill(m);
        const key = this.key;
        const nonce = this.nonce;
        if (key) {
          m.addAttribute(ATTR_USERNAME, this.username);
          m.addAttribute(ATTR_REALM, this.realm);
          m.addAttribute(ATTR_NONCE, nonce);
          m.addMessageIntegrity(key);
        }
        const bytes = m.toBuffer();
        const k = txKey(m.transactionId);
        let rto = this.rtoMs;
        let sent = 1;
        const done = (): void => { clearTimeout(tx.timer); this.transactions.delete(k); };
        const onTimer = (): void => {
          if (sent >= TURN_MAX_TRANSMISSIONS) {
            done();
            reject(new TurnError(`TURN ${what}: no answer from ${this.serverName} after ${sent} tries`));
            return;
          }
          sent++;
          rto *= 2;
          this.stats.retransmits++;
          this.sendRaw(bytes, this.server);
          tx.timer = setTimeout(onTimer, rto).unref();
        };
        const tx: Transaction = {
          method,
          bytes,
          timer: setTimeout(onTimer, rto).unref(),
          fail: (e) => { done(); reject(e); },
          onAnswer: (ans, raw) => {
            if (ans.cls === STUN_CLASS_SUCCESS) {
              // An answer to a request with credentials must prove the server knows them too.
              if (key && !verifyMessageIntegrity(raw, ans, key)) { this.stats.badIntegrity++; return; }
              done();
              resolve(ans);
              return;
            }
            done();
            const ec = parseErrorCode(stunAttribute(ans, ATTR_ERROR_CODE) ?? new Uint8Array(0));
            if (!ec) { reject(new TurnError(`TURN ${what}: ${this.serverName} sent an error answer without a valid ERROR-CODE`)); return; }
            const realm = textAttr(ans, ATTR_REALM);
            const newNonce = textAttr(ans, ATTR_NONCE);
            if (ec.code === 401 && !key && realm !== undefined && newNonce !== undefined) {
              this.realm = realm;
              this.nonce = newNonce;
              this.key = longTermKey(this.username, realm, this.password);
              attempt();
              return;
            }
            if (ec.code === 401 && key && nonce !== this.nonce) {
              attempt(); // another request learned a fresh nonce meanwhile
              return;
            }
            if (ec.code === 438 && newNonce !== undefined && staleRetries < TURN_STALE_NONCE_RETRIES) {
              staleRetries++;
              this.stats.staleNonceRetries++;
              this.nonce = newNonce;
              if (realm !== undefined && realm !== this.realm) {
                this.realm = realm;
                this.key = longTermKey(this.username, realm, this.password);
              }
              attempt();
              return;
            }
            if (ec.code === 401) {
              reject(new TurnError(
                `TURN ${what} refused by ${this.serverName}: 401 ${ec.reason || 'Unauthorized'} ` +
                (key ? `(wrong username or password for realm "${this.realm}")` : '(no REALM/NONCE to answer with)'), 401));
              return;
            }
            reject(new TurnError(`TURN ${what} refused by ${this.serverName}: ${ec.code} ${ec.reason}`.trimEnd(), ec.code));
          },
        };
        this.transactions.set(k, tx);
        this.sendRaw(bytes, this.server);
      };
      attempt();
    });
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

  private async doAllocate(): Promise<TurnAllocation> {
    const fill = (m: StunOutgoing): void => {
      m.addAttribute(ATTR_REQUESTED_TRANSPORT, TRANSPORT_UDP);
      if (this.requestedLifetimeS !== undefined) m.addAttribute(ATTR_LIFETIME, this.requestedLifetimeS);
    };
    let ans: ParsedStun;
    try {
      ans = await this.request(TURN_METHOD_ALLOCATE, 'Allocate', fill);
    } catch (e) {
      if (!(e instanceof TurnError) || e.code !== 437 || this.state === 'closed') throw e;
      // The server still holds an allocation for this 5-tuple (our previous run): free it, try once more.
      await this.request(TURN_METHOD_REFRESH, 'Refresh', (m) => m.addAttribute(ATTR_LIFETIME, 0)).catch(() => undefined);
      ans = await this.request(TURN_METHOD_ALLOCATE, 'Allocate', fill);
    }
    const tid = ans.transactionId;
    const relayedAttr = stunAttribute(ans, ATTR_XOR_RELAYED_ADDRESS);
    const mappedAttr = stunAttribute(ans, ATTR_XOR_MAPPED_ADDRESS);
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
    this.allocExpiresAt = this.now() + lifetimeS * 1000;
    const inS = lifetimeS - Math.min(TURN_REFRESH_MARGIN_S, lifetimeS / 2);
    clearTimeout(this.allocTimer);
    this.allocTimer = setTimeout(() => this.refreshAllocation(), inS * 1000).unref();
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
    this.request(TURN_METHOD_REFRESH, 'Refresh', (m) => {
      if (this.requestedLifetimeS !== undefined) m.addAttribute(ATTR_LIFETIME, this.requestedLifetimeS);
    }).then((ans) => {
      if (this.state !== 'allocated') return;
      const lifetimeS = readU32Attr(ans, ATTR_LIFETIME) ?? this.alloc!.lifetimeS;
      this.alloc!.lifetimeS = lifetimeS;
      this.scheduleAllocationRefresh(lifetimeS);
    }, (e: TurnError) => {
      if (this.state !== 'allocated') return;
      this.stats.refreshFailures++;
      const left = this.allocExpiresAt - this.now();
      if (probe || e.code === 437 || left <= 0) { this.lose(e); return; }
      clearTimeout(this.allocTimer);
      this.allocTimer = setTimeout(() => this.refreshAllocation(), Math.min(TURN_REFRESH_RETRY_MS, left)).unref();
    });
  }

  private lose(e: TurnError): void {
    this.state = 'lost';
    this.clearState();
    this.onLost(new TurnError(`TURN allocation on ${this.serverName} lost: ${e.message}`, e.code));
  }

  private clearState(): void {
    clearTimeout(this.allocTimer);
    this.allocTimer = undefined;
    for (const p of this.permissions.values()) clearTimeout(p.timer);
    this.permissions.clear();
    for (const c of this.channelByNumber) if (c) clearTimeout(c.timer);
    this.channelByNumber.length = 0;
    this.channelByPeer.clear();
  }

  // ---- permissions ----

  /** Install a permission for `peer`'s address (CreatePermission; ports do not matter), refreshed until close. */
  permit(peer: Endpoint): Promise<void> {
    if (this.state !== 'allocated') return Promise.reject(new TurnError('TURN permit: no allocation'));
    let p = this.permissions.get(peer.address);
    if (p?.pending) return p.pending;
    if (p && p.expiresAt > this.now()) return Promise.resolve();
    if (!p) {
      p = { address: peer.address, port: peer.port, expiresAt: 0, timer: undefined, pending: undefined };
      this.permissions.set(peer.address, p);
    }
    const perm = p;
    perm.pending = this.createPermission(peer).then(() => {
      perm.pending = undefined;
      this.permissionGranted(perm);
    }, (e: unknown) => {
      perm.pending = undefined;
      if (perm.expiresAt <= this.now() && this.permissions.get(perm.address) === perm) this.permissions.delete(perm.address);
      throw e;
    });
    return perm.pending;
  }

  private createPermission(peer: Endpoint): Promise<ParsedStun> {
    return this.request(TURN_METHOD_CREATE_PERMISSION, 'CreatePermission', (m) => m.addAttribute(ATTR_XOR_PEER_ADDRESS, peer.address, peer.port));
  }

  private permissionGranted(p: Permission): void {
    if (this.permissions.get(p.address) !== p) return; // cleared meanwhile
    p.expiresAt = this.now() + TURN_PERMISSION_LIFETIME_MS;
    clearTimeout(p.timer);
    p.timer = setTimeout(() => this.refreshPermission(p), this.permissionRefreshMs).unref();
  }

  private refreshPermission(p: Permission): void {
    if (this.state !== 'allocated' || this.permissions.get(p.address) !== p) return;
    this.stats.refreshes++;
    this.createPermission(p).then(() => this.permissionGranted(p), () => {
      this.stats.refreshFailures++;
      const left = p.expiresAt - this.now();
      if (left <= 0) { this.permissions.delete(p.address); return; }
      p.timer = setTimeout(() => this.refreshPermission(p), Math.min(TURN_REFRESH_RETRY_MS, left)).unref();
    });
  }

  // ---- channels ----

  /** Bind a channel to `peer` (ChannelBind; also installs its permission); from then on sendTo(peer)
   *  sends 4-byte-header ChannelData. Resolves with the channel number; kept refreshed until close. */
  bindChannel(peer: Endpoint): Promise<number> {
    if (this.state !== 'allocated') return Promise.reject(new TurnError('TURN bindChannel: no allocation'));
    let byPort = this.channelByPeer.get(peer.address);
    const existing = byPort?.get(peer.port);
    if (existing?.pending) return existing.pending;
    if (existing?.active) return Promise.resolve(existing.number);
    let ch = existing;
    if (!ch) {
      const number = this.freeChannel();
      if (number === undefined) return Promise.reject(new TurnError('TURN bindChannel: all 4096 channels in use'));
      ch = { number, peer: { address: peer.address, port: peer.port }, active: false, expiresAt: 0, timer: undefined, pending: undefined };
      if (!byPort) this.channelByPeer.set(peer.address, (byPort = new Map()));
      byPort.set(peer.port, ch);
      this.channelByNumber[number - CHANNEL_MIN] = ch;
    }
    const c = ch;
    c.pending = this.channelBind(c).then(() => {
      c.pending = undefined;
      this.channelBound(c);
      return c.number;
    }, (e: unknown) => {
      c.pending = undefined;
      if (!c.active) this.dropChannel(c);
      throw e;
    });
    return c.pending;
  }

  private freeChannel(): number | undefined {
    for (let i = 0; i <= CHANNEL_MAX - CHANNEL_MIN; i++) {
      const n = this.nextChannel;
      this.nextChannel = n === CHANNEL_MAX ? CHANNEL_MIN : n + 1;
      if (this.channelByNumber[n - CHANNEL_MIN] === undefined) return n;
    }
    return undefined;
  }

  private channelBind(c: Channel): Promise<ParsedStun> {
    return this.request(TURN_METHOD_CHANNEL_BIND, 'ChannelBind', (m) => {
      m.addAttribute(ATTR_CHANNEL_NUMBER, (c.number << 16) >>> 0);
      m.addAttribute(ATTR_XOR_PEER_ADDRESS, c.peer.address, c.peer.port);
    });
  }

  private channelBound(c: Channel): void {
    if (this.channelByNumber[c.number - CHANNEL_MIN] !== c) return; // cleared meanwhile
    c.active = true;
    // The binding lives 10 min, the permission it installs 5: the permission bounds it.
    c.expiresAt = this.now() + Math.min(TURN_CHANNEL_LIFETIME_MS, TURN_PERMISSION_LIFETIME_MS);
    clearTimeout(c.timer);
    c.timer = setTimeout(() => this.refreshChannel(c), this.permissionRefreshMs).unref();
  }

  private refreshChannel(c: Channel): void {
    if (this.state !== 'allocated' || this.channelByNumber[c.number - CHANNEL_MIN] !== c) return;
    this.stats.refreshes++;
    this.channelBind(c).then(() => this.channelBound(c), () => {
      this.stats.refreshFailures++;
      const left = c.expiresAt - this.now();
      if (left <= 0) { this.dropChannel(c); return; }
      c.timer = setTimeout(() => this.refreshChannel(c), Math.min(TURN_REFRESH_RETRY_MS, left)).unref();
    });
  }

  private dropChannel(c: Channel): void {
    clearTimeout(c.timer);
    if (this.channelByNumber[c.number - CHANNEL_MIN] === c) this.channelByNumber[c.number - CHANNEL_MIN] = undefined;
    const byPort = this.channelByPeer.get(c.peer.address);
    if (byPort?.get(c.peer.port) === c) {
      byPort.delete(c.peer.port);
      if (byPort.size === 0) this.channelByPeer.delete(c.peer.address);
    }
  }

  // ---- closing ----

  /** Stop refreshing, fail pending requests, and free the allocation (Refresh with LIFETIME 0, waited for
   *  at most TURN_CLOSE_TIMEOUT_MS). Never rejects. */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    const had = this.state === 'allocated';
    this.state = 'closed';
    this.clearState();
    for (const tx of [...this.transactions.values()]) tx.fail(new TurnError('TURN client closed'));
    if (!had || !this.key) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.request(TURN_METHOD_REFRESH, 'Refresh', (m) => m.addAttribute(ATTR_LIFETIME, 0)).catch(() => undefined),
      new Promise<void>((r) => { timer = setTimeout(r, TURN_CLOSE_TIMEOUT_MS).unref(); }),
    ]);
    clearTimeout(timer);
    for (const tx of [...this.transactions.values()]) tx.fail(new TurnError('TURN client closed'));
  }
}
