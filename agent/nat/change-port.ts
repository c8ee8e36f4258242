// A public agent's second STUN port: a UDP socket on its listen port + STUN_CHANGE_PORT_OFFSET, open while
// its own netcheck says it is reachable as it is (no NAT), so that one agent is enough for a client to
// tell its NAT apart (RFC 5780 with a changed port; nat/netcheck.ts). It is also open from the start until
// a first netcheck says otherwise: the first node of an overlay is alone, with nobody to netcheck against,
// and it is exactly the one public member the first hosts to join ask; it names its interface address
// until a netcheck tells the public one. A netcheck that says "behind a NAT" (or a filtering firewall) in
// every address family closes it; a dual-stack host names one address per family.
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
import { familyOpen, familyReports, type NetcheckReport } from './netcheck.js';
import { familyOf } from '../base/ip-text.js';
import { isGlobalUnicast } from './attach-guard.js';
import type { ChangedPort, StunEndpoint } from './stun-endpoint.js';

export interface ChangePortOptions {
  stun: StunEndpoint;
  /** The main socket's port (the second one is this + STUN_CHANGE_PORT_OFFSET). */
  mainPort: () => number;
  /** Bind a UDP socket on this port (every address, as the main socket). */
  open: (port: number) => Promise<DatagramSocket>;
  /** Our addresses as others reach them before a netcheck tells (interface addresses), if known. */
  hostAddresses: () => string[];
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
  /** Our public address per family, as the last netcheck (or the interfaces, before one) told. */
  private addresses = new Map<4 | 6, string>();

  constructor(private readonly o: ChangePortOptions) {}

  /** The second socket's port while it is open. */
  get port(): number | undefined { return this.socket?.local.port; }

  /** Open before any netcheck, naming the interface address (see the top of the file). */
  start(): void {
    const known = this.o.hostAddresses().filter((a) => a !== '0.0.0.0' && a !== '::');
    for (const a of known) if (!this.addresses.has(familyOf(a))) this.addresses.set(familyOf(a), a);
    if (this.addresses.size > 0) this.open();
  }

  /** Follow our own netcheck: open while public, close once behind a NAT; no verdict (nobody answered)
   *  changes nothing. */
  follow(r: NetcheckReport): void {
    const reports = familyReports(r);
    const open = reports.filter((x) => familyOpen(x) && x.publicEndpoint);
    if (open.length > 0) {
      this.behind = false;
      this.addresses = new Map(open.map((x) => [familyOf(x.publicEndpoint!.address), x.publicEndpoint!.address]));
      // A family no server of which was asked: our global interface address in it (no NAT66 as a rule).
      const told = new Set(reports.map((x) => x.family ?? (x.publicEndpoint && familyOf(x.publicEndpoint.address))));
      for (const a of this.o.hostAddresses()) if (!told.has(familyOf(a)) && !this.addresses.has(familyOf(a)) && isGlobalUnicast(a)) this.addresses.set(familyOf(a), a);
      this.open();
      return;
    }
    // Behind a NAT or a firewall that filters, in every family: nobody could reach the second port anyway.
    if (reports.some((x) => x.behindNat !== undefined)) { this.behind = true; void this.shut(); }
  }

  private open(): void {
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

  /** Both our ports at the addresses last known, one pair per family (an open may complete after a
   *  netcheck named others): OTHER-ADDRESS must be of the client's family, or its mapping test compares
   *  an IPv4 mapping with an IPv6 one. */
  private changed(s: DatagramSocket): ChangedPort {
    const port = this.o.mainPort();
    const pair = (address: string) => ({ main: { address, port }, other: { address, port: port + STUN_CHANGE_PORT_OFFSET } });
    const [first, second] = [...this.addresses.values()].map(pair);
    return { send: (bytes, to) => s.send(bytes, to), ...first!, ...(second ? { also: second } : {}) };
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
