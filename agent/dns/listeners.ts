// The responder's sockets: UDP and TCP on each of the host's overlay addresses (port 53), moved when an
// address changes (the IPv4 claim re-derived). Bounds: DNS_TCP_CONNECTIONS_MAX connections over all
// addresses, each closed after DNS_TCP_IDLE_MS without a query, at most DNS_TCP_PIPELINE_MAX queries
// unanswered per connection, and a query over TCP no longer than a UDP one (tcp-frames.ts cuts the
// stream). What is turned away is counted.
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import { DNS_QUERY_MAX_BYTES, DNS_TCP_CONNECTIONS_MAX, DNS_TCP_IDLE_MS, DNS_TCP_PIPELINE_MAX } from '../base/constants.js';
import { familyOf } from '../base/ip-text.js';
import type { Transport } from './forwarder.js';
import { TcpFrames, frame } from './tcp-frames.js';

/** Answers one message from a client (never rejects); undefined: no answer. */
export type DnsHandler = (msg: Buffer, client: { address: string; over: Transport }) => Promise<Buffer | undefined>;

export interface ListenerStats {
  tcpConnections: number;
  /** Connections closed at once: DNS_TCP_CONNECTIONS_MAX were open. */
  tcpRefused: number;
  tcpIdleClosed: number;
  /** Connections closed for a length of 0 or over DNS_QUERY_MAX_BYTES (the stream cannot be read on). */
  tcpBadFrame: number;
  /** Queries dropped: DNS_TCP_PIPELINE_MAX were unanswered on their connection. */
  tcpPipelineFull: number;
  sendFailed: number;
}

interface Bound { udp: UdpSocket; tcp: Server }

/** "100.87.12.9:53", "[fd1d:10c0::1]:53". */
export function hostPort(address: string, port: number): string {
  return familyOf(address) === 6 ? `[${address}]:${port}` : `${address}:${port}`;
}

export class DnsListeners {
  private readonly bound = new Map<string, Bound>();
  private readonly conns = new Set<Socket>();
  readonly stats: ListenerStats = { tcpConnections: 0, tcpRefused: 0, tcpIdleClosed: 0, tcpBadFrame: 0, tcpPipelineFull: 0, sendFailed: 0 };

  constructor(private readonly o: { port: number; handle: DnsHandler; logger: Logger }) {}

  /** The addresses served now. */
  get addresses(): string[] { return [...this.bound.keys()]; }

  /** The port served (the one asked for, or the one the kernel chose for port 0, as tests use). */
  get port(): number {
    const first = this.bound.values().next().value as Bound | undefined;
    return first ? first.udp.address().port : this.o.port;
  }

  /** Serve exactly `addresses`: stop on the others, start on the new ones. Throws, naming the address and
   *  the kernel's reason, when one cannot be bound (what was bound before stays). */
  async serve(addresses: readonly string[]): Promise<void> {
    for (const [a, b] of [...this.bound]) {
      if (addresses.includes(a)) continue;
      this.bound.delete(a);
      await closeBound(b);
    }
    for (const a of addresses) {
      if (this.bound.has(a)) continue;
      this.bound.set(a, await this.bind(a));
    }
  }

  private async bind(address: string): Promise<Bound> {
    const port = this.o.port === 0 && this.bound.size > 0 ? this.port : this.o.port;
    const udp = createSocket({ type: familyOf(address) === 6 ? 'udp6' : 'udp4', ipv6Only: familyOf(address) === 6 });
    const tcp = createServer((c) => this.accept(c));
    try {
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind(port, address, () => { udp.off('error', reject); resolve(); });
      });
      const bound = udp.address().port;
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen({ host: address, port: bound }, () => { tcp.off('error', reject); resolve(); });
      });
    } catch (e) {
      await closeBound({ udp, tcp });
      const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
      const why = code === 'EADDRINUSE' ? ' (another DNS server on this port, bound to every address?)' : code === 'EACCES' ? ' (port 53 needs root)' : '';
      throw new Error(`cannot serve DNS on ${hostPort(address, port)}: ${code}${why}`);
    }
    udp.on('error', (e) => this.o.logger.warn({ address, err: e.message }, 'dns: UDP socket error'));
    udp.on('message', (msg, from) => {
      void this.o.handle(msg, { address: from.address, over: 'udp' }).then((reply) => {
        if (reply) udp.send(reply, from.port, from.address, (err) => { if (err) this.stats.sendFailed++; });
      }, () => undefined);
    });
    tcp.on('error', (e) => this.o.logger.warn({ address, err: e.message }, 'dns: TCP listener error'));
    return { udp, tcp };
  }

  private accept(conn: Socket): void {
    if (this.conns.size >= DNS_TCP_CONNECTIONS_MAX) { this.stats.tcpRefused++; conn.destroy(); return; }
    this.conns.add(conn);
    this.stats.tcpConnections = this.conns.size;
    conn.on('close', () => { this.conns.delete(conn); this.stats.tcpConnections = this.conns.size; });
    conn.on('error', () => conn.destroy());
    conn.setNoDelay(true);
    const frames = new TcpFrames(DNS_QUERY_MAX_BYTES);
    let unanswered = 0;
    // Idle: no query and nothing unanswered (a slow overlay lookup keeps it open until its answer).
    conn.setTimeout(DNS_TCP_IDLE_MS, () => {
      if (unanswered > 0) { conn.setTimeout(DNS_TCP_IDLE_MS); return; }
      this.stats.tcpIdleClosed++;
      conn.destroy();
    });
    const address = conn.remoteAddress ?? '';
    conn.on('data', (chunk: Buffer) => {
      const msgs = frames.push(chunk);
      if (msgs === 'bad') { this.stats.tcpBadFrame++; conn.destroy(); return; }
      for (const m of msgs) {
        if (unanswered >= DNS_TCP_PIPELINE_MAX) { this.stats.tcpPipelineFull++; continue; }
        unanswered++;
        void this.o.handle(m, { address, over: 'tcp' }).then((reply) => {
          unanswered--;
          const framed = reply && frame(reply);
          if (framed && !conn.destroyed) conn.write(framed);
        }, () => { unanswered--; });
      }
    });
  }

  async close(): Promise<void> {
    for (const c of this.conns) c.destroy();
    this.conns.clear();
    const all = [...this.bound.values()];
    this.bound.clear();
    await Promise.all(all.map(closeBound));
  }
}

async function closeBound(b: Bound): Promise<void> {
  try { b.udp.close(); } catch { /* never bound, or closed */ }
  await new Promise<void>((r) => b.tcp.close(() => r()));
}
