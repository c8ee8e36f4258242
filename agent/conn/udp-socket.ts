// The real datagram socket: node:dgram under the DatagramSocket interface (socket.ts).
//
// Why these settings: 4 MiB kernel buffers so a burst from the TAP side or the network is queued
// rather than dropped while the event loop is busy (the default ~200 KiB holds ~150 full packets);
// failure to raise them (unprivileged, net.core.rmem_max) is ignored because it only costs headroom.
// Send and socket errors (ICMP unreachable, no route, EPERM) are counted, never thrown: one bad
// peer address must not take the agent's only socket down.

// Dual-stack like NativeUdpSocket: bound to "::" by default (0.0.0.0 where the host has no IPv6); IPv4
// peers are reported as IPv4 (node gives ::ffff:a.b.c.d) and sent to as ::ffff:-mapped.

import dgram from 'node:dgram';
import type { DatagramSocket, Endpoint } from './socket.js';
import { unmapIpv4 } from '../base/ip-text.js';

import { UDP_KERNEL_BUFFER_BYTES } from '../base/constants.js';

export interface UdpSocketStats {
  sendErrors: number;
  socketErrors: number;
  received: number;
  sent: number;
}

export class UdpSocket implements DatagramSocket {
  readonly stats: UdpSocketStats = { sendErrors: 0, socketErrors: 0, received: 0, sent: 0 };
  private handler: ((msg: Buffer, from: Endpoint) => void) | undefined;
  private readonly onSent = (err: Error | null): void => {
    if (err) this.stats.sendErrors++;
  };

  /** IPv4 destinations are written ::ffff:a.b.c.d on a dual-stack socket. */
  private readonly dual: boolean;

  private constructor(private readonly sock: dgram.Socket, readonly local: Endpoint) {
    this.dual = local.address.includes(':');
    sock.on('message', (msg, rinfo) => {
      this.stats.received++;
      this.handler?.(msg, { address: this.dual ? unmapIpv4(rinfo.address) : rinfo.address, port: rinfo.port });
    });
    sock.on('error', () => {
      this.stats.socketErrors++;
    });
  }

  /** Bind a UDP socket: dual-stack on '::' by default (0.0.0.0 where the host has no IPv6), or on the
   *  family of `host`. */
  static async bind(port: number, host?: string): Promise<UdpSocket> {
    if (host !== undefined) return UdpSocket.bindOn(port, host);
    try {
      return await UdpSocket.bindOn(port, '::');
    } catch (e) {
      if (!/EAFNOSUPPORT|EADDRNOTAVAIL/.test((e as NodeJS.ErrnoException).code ?? '')) throw e;
      return UdpSocket.bindOn(port, '0.0.0.0');
    }
  }

  private static async bindOn(port: number, host: string): Promise<UdpSocket> {
    const family = host.includes(':') ? 'udp6' : 'udp4';
    const sock = dgram.createSocket({ type: family, ipv6Only: false });
    await new Promise<void>((resolve, reject) => {
      const onError = (e: Error) => reject(e);
      sock.once('error', onError);
      sock.bind(port, host, () => {
        sock.off('error', onError);
        resolve();
      });
    });
    try { sock.setRecvBufferSize(UDP_KERNEL_BUFFER_BYTES); } catch { /* headroom only */ }
    try { sock.setSendBufferSize(UDP_KERNEL_BUFFER_BYTES); } catch { /* headroom only */ }
    const a = sock.address();
    return new UdpSocket(sock, { address: a.address, port: a.port });
  }

  onMessage(handler: (msg: Buffer, from: Endpoint) => void): void {
    this.handler = handler;
  }

  send(msg: Uint8Array, to: Endpoint): void {
    try {
      const v4 = to.address.indexOf(':') < 0;
      if (v4 && this.dual) this.sock.send(msg, to.port, `::ffff:${to.address}`, this.onSent);
      else if (!v4 && !this.dual) this.stats.sendErrors++;
      else this.sock.send(msg, to.port, to.address, this.onSent);
      this.stats.sent++;
    } catch {
      this.stats.sendErrors++; // synchronous throws: bad port, socket closed
    }
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      try {
        this.sock.close(() => resolve());
      } catch {
        resolve(); // already closed
      }
    });
  }
}
