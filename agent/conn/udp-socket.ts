// The real datagram socket: node:dgram under the DatagramSocket interface (socket.ts).
//
// Why these settings: 4 MiB kernel buffers so a burst from the TAP side or the network is queued
// rather than dropped while the event loop is busy (the default ~200 KiB holds ~150 full packets);
// failure to raise them (unprivileged, net.core.rmem_max) is ignored because it only costs headroom.
// Send and socket errors (ICMP unreachable, no route, EPERM) are counted, never thrown: one bad
// peer address must not take the agent's only socket down.

import dgram from 'node:dgram';
import type { DatagramSocket, Endpoint } from './socket.js';

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

  private constructor(private readonly sock: dgram.Socket, readonly local: Endpoint) {
    sock.on('message', (msg, rinfo) => {
      this.stats.received++;
      this.handler?.(msg, { address: rinfo.address, port: rinfo.port });
    });
    sock.on('error', () => {
      this.stats.socketErrors++;
    });
  }

  /** Bind a UDP socket; `host` decides the family ('udp6' if it contains ':'), default 0.0.0.0.
   *  Pass `type: 'udp6'` to get a dual-stack socket on '::'. */
  static async bind(port: number, host?: string, type?: 'udp4' | 'udp6'): Promise<UdpSocket> {
    const family = type ?? (host?.includes(':') ? 'udp6' : 'udp4');
    const sock = dgram.createSocket({ type: family });
    await new Promise<void>((resolve, reject) => {
      const onError = (e: Error) => reject(e);
      sock.once('error', onError);
      sock.bind(port, host ?? (family === 'udp6' ? '::' : '0.0.0.0'), () => {
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
      this.sock.send(msg, to.port, to.address, this.onSent);
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
