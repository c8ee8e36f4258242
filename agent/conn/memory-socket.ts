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
//
// NAT routers (MemoryNat, memory-nat.ts) give sockets a realm of their own: a datagram climbs out through
// each NAT between its sender and the public network (source translated, mapping created) until it reaches
// a realm that holds its destination, then descends through the NATs owning that address (filtered,
// destination translated). A realm is its own address space, so two NATs' insides may reuse 192.168.1.2.
// With no NAT in the network the path is the plain one above.

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
  /** Dropped by a MemoryNat: no mapping for the destination port, filtered, hairpinning off. */
  natDropped: number;
}

/** @internal The inside of a NAT router as MemoryNetwork routes through it (implemented by MemoryNat). */
export interface MemoryRealm {
  /** The realm its outside address lives in; undefined: the public network. */
  readonly parent: MemoryRealm | undefined;
  /** Sockets inside, by endpointKey. */
  readonly sockets: Map<string, MemorySocket>;
  /** NATs whose outside address is inside this realm, by that address. */
  readonly nats: Map<string, MemoryRealm>;
  /** A datagram from `from` (inside) leaves for `to`: its translated source, or undefined to drop it. */
  outbound(from: Endpoint, to: Endpoint): Endpoint | undefined;
  /** A datagram from `from` arrives at `to` (this NAT's outside address): the inside destination, or undefined. */
  inbound(from: Endpoint, to: Endpoint): Endpoint | undefined;
}

/** Bound on NAT hops one datagram takes (up and down), against a mis-built topology. */
const MAX_NAT_HOPS = 32;

export class MemoryNetwork {
  latencyMs: number;
  loss: number;
  readonly stats: MemoryNetworkStats = { sent: 0, delivered: 0, lost: 0, noListener: 0, dropped: 0, natDropped: 0 };
  private readonly sockets = new Map<string, MemorySocket>();
  /** @internal NATs whose outside address is on the public network, by that address. */
  readonly nats = new Map<string, MemoryRealm>();
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
    const sockets = s.realm?.sockets ?? this.sockets;
    if (sockets.has(k)) throw new Error(`address in use: ${k}`);
    sockets.set(k, s);
  }

  /** @internal */
  detach(s: MemorySocket): void {
    const k = endpointKey(s.local);
    const sockets = s.realm?.sockets ?? this.sockets;
    if (sockets.get(k) === s) sockets.delete(k);
  }

  /** @internal */
  deliver(src: MemorySocket, msg: Uint8Array, to: Endpoint): void {
    this.stats.sent++;
    let from: Endpoint | undefined = { address: src.local.address, port: src.local.port };
    let realm: MemoryRealm | undefined;
    if (src.realm || this.nats.size > 0) {
      const r = this.route(src.realm, from, to);
      if (!r) { this.stats.natDropped++; return; }
      ({ realm, from, to } = r);
    }
    if (this.translate) {
      from = this.translate(from, to);
      if (!from) { this.stats.dropped++; return; }
    }
    if (this.loss > 0 && this.random() < this.loss) { this.stats.lost++; return; }
    const copy = Buffer.from(msg);
    const f = from, t = to, sockets = realm?.sockets ?? this.sockets;
    const run = () => {
      const dst = sockets.get(endpointKey(t));
      if (!dst || !dst.handler) { this.stats.noListener++; return; }
      this.stats.delivered++;
      dst.handler(copy, { address: f.address, port: f.port });
    };
    if (this.latencyMs > 0) setTimeout(run, this.latencyMs).unref();
    else queueMicrotask(run);
  }

  /** Up out of the sender's NATs until a realm holds `to`, then down through the NATs that own it. */
  private route(realm: MemoryRealm | undefined, from: Endpoint, to: Endpoint):
    { realm: MemoryRealm | undefined; from: Endpoint; to: Endpoint } | undefined {
    let descended = false;
    for (let hops = 0; hops < MAX_NAT_HOPS; hops++) {
      if ((realm?.sockets ?? this.sockets).has(endpointKey(to))) break;
      const nat = (realm?.nats ?? this.nats).get(to.address);
      if (nat) {
        const inside = nat.inbound(from, to);
        if (!inside) return undefined;
        realm = nat; to = inside; descended = true;
      } else if (realm && !descended) {
        const outside = realm.outbound(from, to);
        if (!outside) return undefined;
        from = outside; realm = realm.parent;
      } else {
        break; // nobody there: counted as noListener on delivery, as before
      }
    }
    return { realm, from, to };
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
  /** @internal The NAT this socket sits behind; undefined: the public network. */
  realm: MemoryRealm | undefined;
  private closed = false;

  constructor(private readonly net: MemoryNetwork, local: Endpoint, realm?: MemoryRealm) {
    this.local = local;
    this.realm = realm;
  }

  onMessage(handler: (msg: Buffer, from: Endpoint) => void): void {
    this.handler = handler;
  }

  send(msg: Uint8Array, to: Endpoint): void {
    if (this.closed) return;
    this.net.deliver(this, msg, to);
  }

  /** Move this socket to a new address (a host changing networks); datagrams to the old one are lost.
   *  `realm`: behind which NAT (a MemoryNat) it now sits, null for the public network, omitted to stay. */
  rebind(address: string, port = this.local.port, realm?: MemoryRealm | null): void {
    this.net.detach(this);
    this.local = { address, port };
    if (realm !== undefined) this.realm = realm ?? undefined;
    this.net.attach(this);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.handler = undefined;
    this.net.detach(this);
  }
}
