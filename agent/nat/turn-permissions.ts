// What the TURN client's allocation lets through (RFC 8656 sections 9 and 12): permissions, by peer
// address (CreatePermission, 5 min), and channels, by peer address and port (ChannelBind, 10 min, which
// also installs the permission). Both are refreshed every TURN_PERMISSION_REFRESH_MS until the
// allocation goes; a failed refresh is retried every TURN_REFRESH_RETRY_MS until it expires.
//
// Channels are kept by number - CHANNEL_MIN (an array: the receive hot path, turn-client.ts reading a
// ChannelData header) and by address then port (the send path), numbers handed out round-robin.

import type { Scheduler, TimerHandle } from '../base/scheduler.js';
import { TURN_CHANNEL_LIFETIME_MS, TURN_PERMISSION_LIFETIME_MS, TURN_REFRESH_RETRY_MS } from '../base/constants.js';
import type { Endpoint } from '../conn/socket.js';
import type { ParsedStun } from './stun-wire.js';
import {
  ATTR_CHANNEL_NUMBER, ATTR_XOR_PEER_ADDRESS, CHANNEL_MAX, CHANNEL_MIN, TURN_METHOD_CHANNEL_BIND, TURN_METHOD_CREATE_PERMISSION,
  channelNumberValue,
} from './turn-wire.js';
import { TurnError, type TurnClientStats, type TurnRequest } from './turn-transactions.js';

interface Permission {
  address: string;
  port: number;
  expiresAt: number;
  timer: TimerHandle | undefined;
  pending: Promise<void> | undefined;
}

export interface TurnChannel {
  number: number;
  peer: Endpoint;
  active: boolean;
  expiresAt: number;
  timer: TimerHandle | undefined;
  pending: Promise<number> | undefined;
}

export interface TurnPermissionsOptions {
  request: TurnRequest;
  /** The allocation is still there (refreshes stop when it is not). */
  allocated: () => boolean;
  clock: Scheduler;
  permissionRefreshMs: number;
  stats: TurnClientStats;
}

export class TurnPermissions {
  /** Channels by number - CHANNEL_MIN. */
  readonly byNumber: (TurnChannel | undefined)[] = [];
  private readonly byPeer = new Map<string, Map<number, TurnChannel>>();
  private readonly permissions = new Map<string, Permission>();
  private nextChannel = CHANNEL_MIN;

  constructor(private readonly o: TurnPermissionsOptions) {}

  /** The channel to `peer` if its ChannelBind succeeded. */
  activeChannel(peer: Endpoint): TurnChannel | undefined {
    const c = this.byPeer.get(peer.address)?.get(peer.port);
    return c?.active ? c : undefined;
  }

  hasPermission(address: string): boolean {
    const now = this.o.clock.now();
    const p = this.permissions.get(address);
    if (p && p.expiresAt > now) return true;
    for (const c of this.byPeer.get(address)?.values() ?? []) if (c.active && c.expiresAt > now) return true;
    return false;
  }

  /** Stop every refresh and forget everything (the allocation is gone). */
  clear(): void {
    for (const p of this.permissions.values()) p.timer?.cancel();
    this.permissions.clear();
    for (const c of this.byNumber) if (c) c.timer?.cancel();
    this.byNumber.length = 0;
    this.byPeer.clear();
  }

  // ---- permissions ----

  permit(peer: Endpoint): Promise<void> {
    let p = this.permissions.get(peer.address);
    if (p?.pending) return p.pending;
    if (p && p.expiresAt > this.o.clock.now()) return Promise.resolve();
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
      if (perm.expiresAt <= this.o.clock.now() && this.permissions.get(perm.address) === perm) this.permissions.delete(perm.address);
      throw e;
    });
    return perm.pending;
  }

  private createPermission(peer: Endpoint): Promise<ParsedStun> {
    return this.o.request(TURN_METHOD_CREATE_PERMISSION, 'CreatePermission',
      [[ATTR_XOR_PEER_ADDRESS, { address: peer.address, port: peer.port }]]);
  }

  private permissionGranted(p: Permission): void {
    if (this.permissions.get(p.address) !== p) return; // cleared meanwhile
    p.expiresAt = this.o.clock.now() + TURN_PERMISSION_LIFETIME_MS;
    p.timer?.cancel();
    p.timer = this.o.clock.setTimer(this.o.permissionRefreshMs, () => this.refreshPermission(p));
  }

  private refreshPermission(p: Permission): void {
    if (!this.o.allocated() || this.permissions.get(p.address) !== p) return;
    this.o.stats.refreshes++;
    this.createPermission(p).then(() => this.permissionGranted(p), () => {
      this.o.stats.refreshFailures++;
      const left = p.expiresAt - this.o.clock.now();
      if (left <= 0) { this.permissions.delete(p.address); return; }
      p.timer = this.o.clock.setTimer(Math.min(TURN_REFRESH_RETRY_MS, left), () => this.refreshPermission(p));
    });
  }

  // ---- channels ----

  bindChannel(peer: Endpoint): Promise<number> {
    let byPort = this.byPeer.get(peer.address);
    const existing = byPort?.get(peer.port);
    if (existing?.pending) return existing.pending;
    if (existing?.active) return Promise.resolve(existing.number);
    let ch = existing;
    if (!ch) {
      const number = this.freeChannel();
      if (number === undefined) return Promise.reject(new TurnError('TURN bindChannel: all 4096 channels in use'));
      ch = { number, peer: { address: peer.address, port: peer.port }, active: false, expiresAt: 0, timer: undefined, pending: undefined };
      if (!byPort) this.byPeer.set(peer.address, (byPort = new Map()));
      byPort.set(peer.port, ch);
      this.byNumber[number - CHANNEL_MIN] = ch;
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
      if (this.byNumber[n - CHANNEL_MIN] === undefined) return n;
    }
    return undefined;
  }

  private channelBind(c: TurnChannel): Promise<ParsedStun> {
    return this.o.request(TURN_METHOD_CHANNEL_BIND, 'ChannelBind',
      [[ATTR_CHANNEL_NUMBER, channelNumberValue(c.number)], [ATTR_XOR_PEER_ADDRESS, c.peer]]);
  }

  private channelBound(c: TurnChannel): void {
    if (this.byNumber[c.number - CHANNEL_MIN] !== c) return; // cleared meanwhile
    c.active = true;
    // The binding lives 10 min, the permission it installs 5: the permission bounds it.
    c.expiresAt = this.o.clock.now() + Math.min(TURN_CHANNEL_LIFETIME_MS, TURN_PERMISSION_LIFETIME_MS);
    c.timer?.cancel();
    c.timer = this.o.clock.setTimer(this.o.permissionRefreshMs, () => this.refreshChannel(c));
  }

  private refreshChannel(c: TurnChannel): void {
    if (!this.o.allocated() || this.byNumber[c.number - CHANNEL_MIN] !== c) return;
    this.o.stats.refreshes++;
    this.channelBind(c).then(() => this.channelBound(c), () => {
      this.o.stats.refreshFailures++;
      const left = c.expiresAt - this.o.clock.now();
      if (left <= 0) { this.dropChannel(c); return; }
      c.timer = this.o.clock.setTimer(Math.min(TURN_REFRESH_RETRY_MS, left), () => this.refreshChannel(c));
    });
  }

  private dropChannel(c: TurnChannel): void {
    c.timer?.cancel();
    if (this.byNumber[c.number - CHANNEL_MIN] === c) this.byNumber[c.number - CHANNEL_MIN] = undefined;
    const byPort = this.byPeer.get(c.peer.address);
    if (byPort?.get(c.peer.port) === c) {
      byPort.delete(c.peer.port);
      if (byPort.size === 0) this.byPeer.delete(c.peer.address);
    }
  }
}
