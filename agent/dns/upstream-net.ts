// Asking an upstream resolver over the real network: a fresh UDP socket per query (a random source port,
// so an off-path forger has to guess port and id), or one TCP connection per query, closed once it is
// answered. Only messages from the server's own address and port are looked at.
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { DNS_TCP_MESSAGE_MAX } from '../base/constants.js';
import { canonicalAddress, familyOf } from '../base/ip-text.js';
import { realScheduler, type Scheduler } from '../base/scheduler.js';
import type { Transport, Upstream, UpstreamExchange } from './forwarder.js';
import { TcpFrames, frame } from './tcp-frames.js';

/** "fe80::1%eth0" and a socket's report of it compare equal; IPv4-mapped reports as IPv4. */
function sameHost(reported: string, server: string): boolean {
  return canonicalAddress(reported.split('%')[0]!) === canonicalAddress(server.split('%')[0]!);
}

export class NetExchange implements UpstreamExchange {
  constructor(private readonly clock: Scheduler = realScheduler) {}

  exchange(server: Upstream, query: Buffer, over: Transport, accepts: (reply: Buffer) => boolean, timeoutMs: number): Promise<Buffer | undefined> {
    return over === 'udp' ? this.udp(server, query, accepts, timeoutMs) : this.tcp(server, query, accepts, timeoutMs);
  }

  private udp(server: Upstream, query: Buffer, accepts: (reply: Buffer) => boolean, timeoutMs: number): Promise<Buffer | undefined> {
    return new Promise((resolve) => {
      const sock = createSocket(familyOf(server.address) === 6 ? 'udp6' : 'udp4');
      let done = false;
      const finish = (r: Buffer | undefined) => {
        if (done) return;
        done = true;
        timer.cancel();
        try { sock.close(); } catch { /* closed already */ }
        resolve(r);
      };
      const timer = this.clock.setTimer(timeoutMs, () => finish(undefined));
      sock.on('error', () => finish(undefined));
      sock.on('message', (msg, from) => {
        if (from.port === server.port && sameHost(from.address, server.address) && accepts(msg)) finish(msg);
      });
      sock.send(query, server.port, server.address, (err) => { if (err) finish(undefined); });
    });
  }

  private tcp(server: Upstream, query: Buffer, accepts: (reply: Buffer) => boolean, timeoutMs: number): Promise<Buffer | undefined> {
    return new Promise((resolve) => {
      const framed = frame(query);
      if (!framed) { resolve(undefined); return; }
      const conn = connect({ host: server.address, port: server.port });
      const frames = new TcpFrames(DNS_TCP_MESSAGE_MAX);
      let done = false;
      const finish = (r: Buffer | undefined) => {
        if (done) return;
        done = true;
        timer.cancel();
        conn.destroy();
        resolve(r);
      };
      const timer = this.clock.setTimer(timeoutMs, () => finish(undefined));
      conn.on('error', () => finish(undefined));
      conn.on('close', () => finish(undefined));
      conn.on('connect', () => conn.write(framed));
      conn.on('data', (chunk: Buffer) => {
        const msgs = frames.push(chunk);
        if (msgs === 'bad') { finish(undefined); return; }
        const hit = msgs.find((m) => accepts(m));
        if (hit) finish(hit);
      });
    });
  }
}
