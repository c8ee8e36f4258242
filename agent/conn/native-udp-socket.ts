// The batched datagram socket: the idloc_net addon (native-helpers/udp.c) owns the fd, reads up to
// UDP_BATCH datagrams per wake-up with recvmmsg and sends a queued batch with one sendmmsg.
//
//   kernel --recvmmsg--> recv arena (slot per datagram) --one callback--> handler(view, endpoint) x n
//   send(msg, to) --copy--> send arena + meta --flush: setImmediate / full / flush()--> sendmmsg
//
// Why: node:dgram pays a syscall, a libuv request, a Buffer and a JS callback per datagram, which
// showed as ~15% of a forwarding agent's CPU. Here a batch costs one N-API call each way.
// Contract differences from UdpSocket, all within DatagramSocket's: a received `msg` is a view into the
// arena, valid only during the handler call; send() copies, so the caller may reuse its buffer; sends
// leave at the end of the event-loop turn (or on flush()), so the agent flushes after each TAP batch.
// Dual-stack by default: bound to "::" the socket carries IPv4 and IPv6 (IPv4 peers are reported as
// IPv4, not ::ffff:-mapped). Bound to an IPv4 address it is IPv4 only, and sends to IPv6 are counted
// as send errors; on a host without IPv6 bind() falls back to 0.0.0.0.
// Same policies as UdpSocket: 4 MiB kernel buffers (failure ignored), errors counted, never thrown;
// additionally EAGAIN on send (kernel queue full) drops the rest of the batch and counts it.

import type { DatagramSocket, Endpoint } from './socket.js';
import { formatIpv6, parseIpv6 } from '../base/ip-text.js';
import { loadNetAddon, type NetAddon } from './native-net.js';
import { UDP_BATCH, UDP_ENDPOINT_CACHE_MAX, UDP_RECV_SLOT_BYTES, UDP_SEND_ARENA_BYTES } from '../base/constants.js';

const STRIDE = 8; // u32 words of meta per received datagram (see udp.c)
const SEND_STRIDE = 9; // and per datagram to send: the last is the interface it must leave through

const enum St { Received, Sent, SendErrors, Dropped, Truncated, RecvErrors, Count }

export interface NativeUdpSocketStats {
  received: number;
  sent: number;
  sendErrors: number;
  /** Datagrams dropped because the kernel's send queue was full (EAGAIN/ENOBUFS). */
  dropped: number;
  /** Received datagrams larger than a slot (cannot happen with 64 KiB slots; kept for smaller ones). */
  truncated: number;
  recvErrors: number;
}

export class NativeUdpSocket implements DatagramSocket {
  readonly local: Endpoint;
  private readonly counters = new Float64Array(St.Count); // written by the addon, and here
  private readonly rbuf = Buffer.allocUnsafeSlow(UDP_BATCH * UDP_RECV_SLOT_BYTES);
  private readonly rmeta = new Uint32Array(UDP_BATCH * STRIDE);
  private readonly sbuf = Buffer.allocUnsafeSlow(UDP_SEND_ARENA_BYTES);
  private readonly smeta = new Uint32Array(UDP_BATCH * SEND_STRIDE);
  private readonly id: number;
  private handler: ((msg: Buffer, from: Endpoint) => void) | undefined;
  private queued = 0;
  private used = 0;
  private scheduled = false;
  private closed = false;
  /** Received-from IPv4 endpoints by (IPv4 << 16 | port): one frozen object per peer address, not per
   *  datagram. */
  private readonly endpoints = new Map<number, Endpoint>();
  /** And IPv6 ones by (low 32 bits of the address << 16 | port), each with its address words to tell a
   *  collision (then the slot is taken over). */
  private readonly endpoints6 = new Map<number, { ep: Endpoint; w: Uint32Array }>();
  /** Destination address text -> IPv4 as u32, or -1 when not IPv4 (then see addresses6). */
  private readonly addresses = new Map<string, number>();
  /** Destination IPv6 text -> its four words, or null when it is no IP address at all. */
  private readonly addresses6 = new Map<string, Uint32Array | null>();
  private readonly flushSoon = (): void => {
    this.scheduled = false;
    this.flush();
  };

  private constructor(private readonly lib: NetAddon, port: number, host: string) {
    const r = lib.udpOpen(host, port, this.rbuf, this.rmeta, UDP_BATCH, UDP_RECV_SLOT_BYTES, this.sbuf, this.smeta, UDP_BATCH,
      this.counters, (count) => this.deliver(count));
    this.id = r.id;
    this.local = { address: r.address, port: r.port };
  }

  /** Whether the addon is built (else use UdpSocket). */
  static available(): boolean {
    return loadNetAddon() !== undefined;
  }

  /** Bind a UDP socket: dual-stack on "::" by default (0.0.0.0 where the host has no IPv6), or on the
   *  given address's family; throws (EADDRINUSE, ...) like UdpSocket.bind, or if the addon is not built.
   *  Synchronous: the addon binds in the call. */
  static bind(port: number, host?: string): NativeUdpSocket {
    const lib = loadNetAddon();
    if (!lib) throw new Error('idloc_net addon not built: run npm run build:native');
    if (host !== undefined) return new NativeUdpSocket(lib, port, host);
    try {
      return new NativeUdpSocket(lib, port, '::');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? String((e as Error).message);
      if (!/EAFNOSUPPORT|EADDRNOTAVAIL/.test(code)) throw e; // IPv6 off in this host: IPv4 only
      return new NativeUdpSocket(lib, port, '0.0.0.0');
    }
  }

  get stats(): NativeUdpSocketStats {
    const c = this.counters;
    return {
      received: c[St.Received]!, sent: c[St.Sent]!, sendErrors: c[St.SendErrors]!, dropped: c[St.Dropped]!,
      truncated: c[St.Truncated]!, recvErrors: c[St.RecvErrors]!,
    };
  }

  onMessage(handler: (msg: Buffer, from: Endpoint) => void): void {
    this.handler = handler;
  }

  send(msg: Uint8Array, to: Endpoint): void {
    const addr = this.ipv4(to.address);
    const words = addr < 0 ? this.ipv6(to.address) : null;
    const len = msg.length;
    if (this.closed || (addr < 0 && !words) || !(to.port >= 1 && to.port <= 65535 && Number.isInteger(to.port)) || len > UDP_SEND_ARENA_BYTES) {
      this.counters[St.SendErrors]!++;
      return;
    }
    if (this.used + len > UDP_SEND_ARENA_BYTES) this.flush();
    const i = this.queued++;
    const off = this.used;
    this.sbuf.set(msg, off);
    this.used = off + len;
    const m = i * SEND_STRIDE, meta = this.smeta;
    meta[m] = off;
    meta[m + 1] = len;
    meta[m + 3] = to.port;
    if (words) {
      meta[m + 2] = 6;
      meta[m + 4] = words[0]!;
      meta[m + 5] = words[1]!;
      meta[m + 6] = words[2]!;
      meta[m + 7] = words[3]!;
    } else {
      meta[m + 2] = 4;
      meta[m + 4] = addr;
    }
    meta[m + 8] = to.via ?? 0;
    if (this.queued === UDP_BATCH) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushSoon);
    }
  }

  /** Send what is queued now (the agent calls this after each TAP batch). */
  flush(): void {
    const n = this.queued;
    if (n === 0 || this.closed) return;
    this.queued = 0;
    this.used = 0;
    this.lib.udpSend(this.id, n);
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.flush(); // what was sent before close() should still leave
      this.closed = true;
      this.lib.udpClose(this.id); // the fd is closed (and the port free) when this returns
    }
    return Promise.resolve();
  }

  private deliver(count: number): void {
    const { rbuf, rmeta } = this;
    for (let i = 0; i < count; i++) {
      const h = this.handler;
      if (!h || this.closed) return; // the handler may close us mid-batch
      const m = i * STRIDE;
      const off = rmeta[m + 3]! * UDP_RECV_SLOT_BYTES;
      const from = rmeta[m + 1] === 6 ? this.endpoint6(rmeta, m) : this.endpoint(rmeta[m + 4]!, rmeta[m + 2]!);
      h(rbuf.subarray(off, off + rmeta[m]!), from);
    }
  }

  private endpoint(addr: number, port: number): Endpoint {
    const key = addr * 65536 + port;
    let e = this.endpoints.get(key);
    if (!e) {
      // Bounded: spoofed sources must not grow it without limit; a reset only costs re-creating objects.
      if (this.endpoints.size >= UDP_ENDPOINT_CACHE_MAX) this.endpoints.clear();
      e = Object.freeze({ address: `${addr >>> 24}.${(addr >>> 16) & 255}.${(addr >>> 8) & 255}.${addr & 255}`, port });
      this.endpoints.set(key, e);
    }
    return e;
  }

  private endpoint6(meta: Uint32Array, m: number): Endpoint {
    const port = meta[m + 2]!;
    const key = meta[m + 7]! * 65536 + port;
    const hit = this.endpoints6.get(key);
    if (hit && hit.w[0] === meta[m + 4] && hit.w[1] === meta[m + 5] && hit.w[2] === meta[m + 6]) return hit.ep;
    if (this.endpoints6.size >= UDP_ENDPOINT_CACHE_MAX) this.endpoints6.clear();
    const w = meta.slice(m + 4, m + 8);
    const b = new Uint8Array(16);
    new DataView(b.buffer).setUint32(0, w[0]!, false);
    new DataView(b.buffer).setUint32(4, w[1]!, false);
    new DataView(b.buffer).setUint32(8, w[2]!, false);
    new DataView(b.buffer).setUint32(12, w[3]!, false);
    const ep = Object.freeze({ address: formatIpv6(b), port });
    this.endpoints6.set(key, { ep, w });
    return ep;
  }

  private ipv6(address: string): Uint32Array | null {
    let w = this.addresses6.get(address);
    if (w === undefined) {
      const b = parseIpv6(address);
      w = null;
      if (b) {
        const dv = new DataView(b.buffer, b.byteOffset, 16);
        w = Uint32Array.of(dv.getUint32(0, false), dv.getUint32(4, false), dv.getUint32(8, false), dv.getUint32(12, false));
      }
      if (this.addresses6.size >= UDP_ENDPOINT_CACHE_MAX) this.addresses6.clear();
      this.addresses6.set(address, w);
    }
    return w;
  }

  private ipv4(address: string): number {
    let a = this.addresses.get(address);
    if (a === undefined) {
      a = parseIpv4(address);
      if (this.addresses.size >= UDP_ENDPOINT_CACHE_MAX) this.addresses.clear();
      this.addresses.set(address, a);
    }
    return a;
  }
}

/** Dotted-quad (or ::ffff:-mapped) IPv4 text to a u32; -1 for anything else. */
export function parseIpv4(s: string): number {
  const m = /^(?:::ffff:)?(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/i.exec(s);
  if (!m) return -1;
  let v = 0;
  for (let i = 1; i <= 4; i++) {
    const part = m[i]!;
    const n = Number(part);
    if (n > 255 || (part.length > 1 && part[0] === '0')) return -1; // no leading zeros (not octal either)
    v = v * 256 + n;
  }
  return v;
}
