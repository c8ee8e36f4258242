// In-memory twin of the UDP socket, for tests that run several agents in one process.
//
//   socket A.send(msg, to) --copy--> [translate(from, to)] --> [loss? seeded RNG] --> [latency] --> B's handler
//
// Why each knob: latency shows timer behaviour (retries, keepalives) without real waits when 0;
// loss (from a seeded RNG, so a failing run replays exactly) exercises handshake retries; translate
// rewrites the source address the receiver sees, which is what a NAT does to an outgoing packet and
// what a host moving to a new network looks like from the far side (roaming). rebind() moves one
// socket to a new address outright. Delivery is always asynchronous (as with a real socket) and
// copies the bytes, so a sender reusing its buffer cannot corrupt a datagram in flight.

import { endpointKey, type DatagramSocket, type Endpoint } from './socket.js';

export interface MemoryNetworkOptions {
  /** One-way latency in ms; 0 delivers on the microtask queue. */
  latencyMs?: number;
  /** Probability in [0, 1) that a datagram is lost. */
  loss?: number;
  /** Seed of the loss RNG (mulberry32). */
  seed?: number;
}

/** Rewrite the source (from) of a datagram on its way to `to`; return undefined to drop it. */
export type Translate = (from: Endpoint, to: Endpoint) => Endpoint | undefined;

export interface MemoryNetworkStats {
  sent: number;
  delivered: number;
  lost: number;
  noListener: number;
  dropped: number; // by translate
}

export class MemoryNetwork {
  latencyMs: number;
  loss: number;
  readonly stats: MemoryNetworkStats = { sent: 0, delivered: 0, lost: 0, noListener: 0, dropped: 0 };
  private readonly sockets = new Map<string, MemorySocket>();
  private translate: Translate | undefined;
  private rng: number;

  constructor(opts: MemoryNetworkOptions = {}) {
    this.latencyMs = opts.latencyMs ?? 0;
    this.loss = opts.loss ?? 0;
    this.rng = (opts.seed ?? 1) >>> 0;
  }

  socket(address: string, port: number): MemorySocket {
    const s = new MemorySocket(this, { address, port });
    this.attach(s);
    return s;
  }

  setTranslate(fn: Translate | undefined): void {
    this.translate = fn;
  }

  /** @internal */
  attach(s: MemorySocket): void {
    const k = endpointKey(s.local);
    if (this.sockets.has(k)) throw new Error(`address in use: ${k}`);
    this.sockets.set(k, s);
  }

  /** @internal */
  detach(s: MemorySocket): void {
    const k = endpointKey(s.local);
    if (this.sockets.get(k) === s) this.sockets.delete(k);
  }

  /** @internal */
  deliver(src: MemorySocket, msg: Uint8Array, to: Endpoint): void {
    this.stats.sent++;
    let from: Endpoint | undefined = { address: src.local.address, port: src.local.port };
    if (this.translate) {
      from = this.translate(from, to);
      if (!from) { this.stats.dropped++; return; }
    }
    if (this.loss > 0 && this.random() < this.loss) { this.stats.lost++; return; }
    const copy = Buffer.from(msg);
    const f = from;
    const run = () => {
      const dst = this.sockets.get(endpointKey(to));
      if (!dst || !dst.handler) { this.stats.noListener++; return; }
      this.stats.delivered++;
      dst.handler(copy, { address: f.address, port: f.port });
    };
    if (this.latencyMs > 0) setTimeout(run, this.latencyMs).unref();
    else queueMicrotask(run);
  }

  /** mulberry32: tiny, seeded, good enough to pick which packets to lose. */
  private random(): number {
    let t = (this.rng = (this.rng + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}

export class MemorySocket implements DatagramSocket {
  local: Endpoint;
  /** @internal */
  handler: ((msg: Buffer, from: Endpoint) => void) | undefined;
  private closed = false;

  constructor(private readonly net: MemoryNetwork, local: Endpoint) {
    this.local = local;
  }

  onMessage(handler: (msg: Buffer, from: Endpoint) => void): void {
    this.handler = handler;
  }

  send(msg: Uint8Array, to: Endpoint): void {
    if (this.closed) return;
    this.net.deliver(this, msg, to);
  }

  /** Move this socket to a new address (a host changing networks); datagrams to the old one are lost. */
  rebind(address: string, port = this.local.port): void {
    this.net.detach(this);
    this.local = { address, port };
    this.net.attach(this);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.handler = undefined;
    this.net.detach(this);
  }
}
