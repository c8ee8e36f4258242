// A public agent's second STUN port: a UDP socket on its listen port + STUN_CHANGE_PORT_OFFSET, open while
// its own netcheck says it is reachable as it is (no NAT), so that one agent is enough for a client to
// tell its NAT apart (RFC 5780 with a changed port; nat/netcheck.ts). It is also open from the start until
// a first netcheck says otherwise: the first node of an overlay is alone, with nobody to netcheck against,
// and it is exactly the one public member the first hosts to join ask; it names its interface address
// until a netcheck tells the public one. A netcheck that says "behind a NAT" closes it.
//
//   client --Binding-------------------> P     answered from P: XOR-MAPPED-ADDRESS M1,
//                                               RESPONSE-ORIGIN ip:P, OTHER-ADDRESS ip:P+1
//   client --Binding, CHANGE-REQUEST port--> P  answered from P+1: arrives -> the NAT does not filter by port
//   client --Binding-------------------> P+1   answered from P+1: M2 == M1 -> mapping independent of the port
//
// The STUN endpoint (stun-endpoint.ts) does the answering, with the same size rule and per-address byte
// budget as on the main socket; this file opens and closes the socket as the netcheck verdict changes and
// hands it datagrams whose first byte says STUN (anything else is counted and dropped). A port that is
// taken, or a host behind a NAT (where a second port would be reachable only by accident), just means no
// second port: the agent answers CHANGE-REQUEST with 420 as any single-port server does.
import type { Logger } from 'pino';
import { STUN_CHANGE_PORT_OFFSET } from '../base/constants.js';
import type { DatagramSocket } from '../conn/socket.js';
import { reachableUnsolicited, type NetcheckReport } from './netcheck.js';
import { isGlobalUnicast } from './attach-guard.js';
import type { ChangedPort, StunEndpoint } from './stun-endpoint.js';

export interface ChangePortOptions {
  stun: StunEndpoint;
  /** The main socket's port (the second one is this + STUN_CHANGE_PORT_OFFSET). */
  mainPort: () => number;
  /** Bind a UDP socket on this port (every address, as the main socket). */
  open: (port: number) => Promise<DatagramSocket>;
  /** Our address as others reach it before a netcheck tells (an interface address), if known. */
  hostAddress: () => string | undefined;
  /** Our interface addresses: a global one of the other family than the netcheck's is named to clients of
   *  that family (ChangedPort.otherFamily). */
  hostAddresses?: () => string[];
  logger?: Pick<Logger, 'info' | 'warn'>;
}

export interface ChangePortStats {
  opened: number;
  /** Binds that failed (port taken, no permission). */
  openFailed: number;
  /** Datagrams at the second port that were not STUN. */
  notStun: number;
}

export class ChangePortServer {
  readonly stats: ChangePortStats = { opened: 0, openFailed: 0, notStun: 0 };
  private socket: DatagramSocket | undefined;
  private opening: Promise<void> | undefined;
  private closed = false;
  /** The last netcheck said: behind a NAT (an open still under way is closed when it completes). */
  private behind = false;
  private address = '';

  constructor(private readonly o: ChangePortOptions) {}

  /** The second socket's port while it is open. */
  get port(): number | undefined { return this.socket?.local.port; }

  /** Open before any netcheck, naming the interface address (see the top of the file). */
  start(): void {
    const a = this.o.hostAddress();
    if (a && a !== '0.0.0.0' && a !== '::') this.openAt(a);
  }

  /** Follow our own netcheck: open while public, close once behind a NAT; no verdict (nobody answered)
   *  changes nothing. */
  follow(r: NetcheckReport): void {
    // Behind a NAT or a firewall that filters: nobody could reach the second port anyway.
    if (r.behindNat === true || (r.behindNat === false && !reachableUnsolicited(r))) { this.behind = true; void this.shut(); return; }
    if (r.behindNat === false && r.publicEndpoint) { this.behind = false; this.openAt(r.publicEndpoint.address); }
  }

  private openAt(address: string): void {
    this.address = address;
    const port = this.o.mainPort() + STUN_CHANGE_PORT_OFFSET;
    if (this.socket) { this.o.stun.setChangedPort(this.changed(this.socket)); return; }
    if (this.opening || this.closed || port > 65535 || port === STUN_CHANGE_PORT_OFFSET) return;
    this.opening = this.o.open(port).then((s) => {
      if (this.closed || this.behind) { void s.close(); return; }
      this.socket = s;
      this.stats.opened++;
      s.onMessage((msg, from) => {
        if (msg.length > 0 && msg[0]! <= 3) this.o.stun.handleDatagram(msg, from, true);
        else this.stats.notStun++;
      });
      this.o.stun.setChangedPort(this.changed(s));
      this.o.logger?.info({ port }, 'answering STUN from a second port too (RFC 5780 change-port tests)');
    }, (e: unknown) => {
      if (this.stats.openFailed++ === 0) this.o.logger?.warn({ port, err: (e as Error).message }, 'no second STUN port: CHANGE-REQUEST is answered with 420');
    }).finally(() => { this.opening = undefined; });
  }

  /** Both our ports at the address last known (an open may complete after a netcheck named another). */
  private changed(s: DatagramSocket): ChangedPort {
    const main = { address: this.address, port: this.o.mainPort() };
    const v6 = this.address.includes(':');
    const otherFamily = this.o.hostAddresses?.().find((a) => a.includes(':') !== v6 && isGlobalUnicast(a));
    return {
      send: (bytes, to) => s.send(bytes, to), main, other: { address: this.address, port: main.port + STUN_CHANGE_PORT_OFFSET },
      ...(otherFamily ? { otherFamily } : {}),
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.opening;
    await this.shut();
  }

  private async shut(): Promise<void> {
    const s = this.socket;
    if (!s) return;
    this.socket = undefined;
    this.o.stun.setChangedPort(undefined);
    await s.close().catch(() => undefined);
  }
}
