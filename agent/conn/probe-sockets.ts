// Many sockets for one hole punch: the hard side of "birthday" probing against a NAT that maps every
// destination to a new, random port (endpoint-dependent mapping that port prediction cannot follow).
//
//   hard side (us, behind such a NAT)              easy side (the peer: one public port for everything)
//   open(peer's srflx E, N):
//     N fresh sockets, each sends a check to E ─> our NAT maps each to a random public port H:P1..PN
//     (the peer's NAT drops them: it has sent nothing to H:Pi yet)
//                                                  sprays checks from E to random ports of H (ice.ts probe)
//     a probe to H:Pi ─> our NAT lets it in (it matches the mapping Pi made) ─> socket i answers, and
//     ICE's triggered check from socket i reaches E through the peer's NAT, which now has H:Pi open
//   With N = 256 sockets and 2048 probes over 64 Ki ports, a probe lands with probability 1-e^(-8) (RFC
//   4787 section 4.1's "endpoint-dependent" case; the numbers are Tailscale's "How NAT traversal works").
//
// Each socket gets a virtual endpoint [100::1:X]:2 (RFC 6666's discard-only prefix, port 2; peer relay's
// are port 1), so ICE, the handshake and the tunnel use it like any other endpoint: send(bytes, virtual)
// goes out socket X to E, and what socket X receives is delivered as if the virtual endpoint sent it.
// Sockets that received nothing are closed PROBE_SOCKETS_LINGER_MS after opening; one that did (the hit,
// which the tunnel then uses) is closed once nothing arrives on it for PROBE_SOCKET_IDLE_MS (the tunnel's
// keepalives arrive far more often while it is in use). Probe sockets are cheap ones (node:dgram: 256 open
// in ~30 ms); at the first sweep after a hit (PROBE_SOCKETS_SWEEP_MS) the one in use is reopened on the same port as a fast one (reopen, the
// batched native socket), which the NAT cannot tell apart: its mapping belongs to the port, and the
// datagrams of the millisecond in between are lost as on any path.
import { every, realScheduler, type Scheduler, type TimerHandle } from '../base/scheduler.js';
import { PROBE_SOCKET_IDLE_MS, PROBE_SOCKETS_LINGER_MS, PROBE_SOCKETS_MAX, PROBE_SOCKETS_SWEEP_MS } from '../base/constants.js';
import { endpointKey, endpointKeyOf, type DatagramSocket, type Endpoint } from './socket.js';

const VIRTUAL_PORT = 2;
const VIRTUAL_PREFIX = '100::1:';

interface Probe {
  virtual: Endpoint;
  key: string;
  socket: DatagramSocket;
  /** Reopened as a fast socket (or being reopened: then datagrams to it are dropped). */
  reopened: boolean;
  swapping: boolean;
  remote: Endpoint;
  openedAt: number;
  /** When the last datagram arrived on it; undefined: none yet. */
  lastReceived: number | undefined;
}

export interface ProbeSocketsStats {
  /** Sockets opened, and how many are open now. */
  opened: number;
  open: number;
  /** Sockets that could not be opened (EMFILE, ...), or reopened. */
  failed: number;
  /** Sockets in use reopened as fast ones. */
  reopened: number;
  /** Datagrams received on probe sockets. */
  received: number;
  sent: number;
}

export interface ProbeSocketsOptions {
  /** A fresh socket on any free port, on the same host as the agent's. */
  open: () => Promise<DatagramSocket>;
  /** Hand a datagram to the agent's demux as if `from` (the virtual endpoint) sent it. */
  deliver: (msg: Buffer, from: Endpoint) => void;
  /** A fast socket bound to this port, for the probe socket a tunnel uses (absent: it stays as opened). */
  reopen?: (port: number) => DatagramSocket;
  /** Time for the sweep (a twin in tests). */
  clock?: Scheduler;
}

export class ProbeSockets {
  readonly stats: ProbeSocketsStats = { opened: 0, open: 0, failed: 0, reopened: 0, received: 0, sent: 0 };
  private readonly byVirtual = new Map<string, Probe>();
  private next = 1;
  private sweeper: TimerHandle | undefined;
  private closed = false;
  private readonly clock: Scheduler;

  constructor(private readonly o: ProbeSocketsOptions) {
    this.clock = o.clock ?? realScheduler;
  }

  private now(): number { return this.clock.now(); }

  /** Is this one of the virtual endpoints probe sockets get? */
  static isVirtual(e: Endpoint): boolean {
    return e.port === VIRTUAL_PORT && e.address.startsWith(VIRTUAL_PREFIX);
  }

  /** Open up to `count` sockets towards `remote` (fewer if PROBE_SOCKETS_MAX are open, or opening fails)
   *  and return their virtual endpoints. Nothing is sent yet: ICE sends the first checks through them. */
  async open(remote: Endpoint, count: number): Promise<Endpoint[]> {
    const n = Math.max(0, Math.min(count, PROBE_SOCKETS_MAX - this.byVirtual.size));
    const opened = await Promise.allSettled(Array.from({ length: n }, () => this.o.open()));
    const out: Endpoint[] = [];
    for (const r of opened) {
      if (r.status === 'rejected') { this.stats.failed++; continue; }
      if (this.closed) { void r.value.close(); continue; }
      out.push(this.add(r.value, remote));
    }
    if (out.length > 0 && !this.sweeper) this.sweeper = every(this.clock, PROBE_SOCKETS_SWEEP_MS, () => this.sweep());
    return out;
  }

  /** Send through the probe socket if `to` is one of ours (true); else leave it to the caller (false). */
  send(bytes: Uint8Array, to: Endpoint): boolean {
    if (!ProbeSockets.isVirtual(to)) return false;
    const p = this.byVirtual.get(endpointKeyOf(to));
    if (p && !p.swapping) { this.stats.sent++; p.socket.send(bytes, p.remote); }
    return true; // a closed probe socket's endpoint goes nowhere, never out the main socket
  }

  /** The real path behind a virtual endpoint, for status. */
  route(e: Endpoint): { local: Endpoint; remote: Endpoint } | undefined {
    const p = ProbeSockets.isVirtual(e) ? this.byVirtual.get(endpointKey(e)) : undefined;
    return p && { local: p.socket.local, remote: p.remote };
  }

  get count(): number { return this.byVirtual.size; }

  async close(): Promise<void> {
    this.closed = true;
    this.sweeper?.cancel();
    const all = [...this.byVirtual.values()];
    this.byVirtual.clear();
    this.stats.open = 0;
    await Promise.all(all.map((p) => p.socket.close().catch(() => undefined)));
  }

  private add(socket: DatagramSocket, remote: Endpoint): Endpoint {
    const n = this.next++ & 0xffffffff;
    const virtual = { address: `${VIRTUAL_PREFIX}${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`, port: VIRTUAL_PORT };
    const p: Probe = {
      virtual, key: endpointKey(virtual), socket, reopened: false, swapping: false, remote: { ...remote }, openedAt: this.now(), lastReceived: undefined,
    };
    this.byVirtual.set(p.key, p);
    this.stats.opened++;
    this.stats.open = this.byVirtual.size;
    this.listen(p, socket);
    return virtual;
  }

  private listen(p: Probe, socket: DatagramSocket): void {
    socket.onMessage((msg, from) => {
      // Only the peer we opened it for: anyone else reaching this port is noise.
      if (from.port !== p.remote.port || from.address !== p.remote.address) return;
      p.lastReceived = this.now();
      this.stats.received++;
      this.o.deliver(msg, p.virtual);
    });
  }

  /** Close the probe socket and bind a fast one to its port (see the top of the file). */
  private async reopen(p: Probe): Promise<void> {
    const reopen = this.o.reopen;
    if (!reopen || p.reopened) return;
    p.reopened = p.swapping = true;
    const port = p.socket.local.port;
    await p.socket.close().catch(() => undefined);
    if (this.closed || this.byVirtual.get(p.key) !== p) return;
    try {
      p.socket = reopen(port);
      this.listen(p, p.socket);
      this.stats.reopened++;
    } catch {
      // The port went to someone else in between: this path is gone; the tunnel notices the silence.
      this.byVirtual.delete(p.key);
      this.stats.failed++;
      this.stats.open = this.byVirtual.size;
    }
    p.swapping = false;
  }

  /** Close the sockets past their time, reopen the ones in use (its own timer: every PROBE_SOCKETS_SWEEP_MS). */
  sweep(): void {
    const now = this.now();
    for (const p of [...this.byVirtual.values()]) {
      const idleSince = p.lastReceived ?? p.openedAt;
      const limit = p.lastReceived === undefined ? PROBE_SOCKETS_LINGER_MS : PROBE_SOCKET_IDLE_MS;
      if (now - idleSince < limit) {
        if (p.lastReceived !== undefined) void this.reopen(p);
        continue;
      }
      this.byVirtual.delete(p.key);
      void p.socket.close().catch(() => undefined);
    }
    this.stats.open = this.byVirtual.size;
    if (this.byVirtual.size === 0) { this.sweeper?.cancel(); this.sweeper = undefined; }
  }
}
