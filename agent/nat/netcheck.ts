// netcheck: what the network between this agent's socket and the internet does to UDP, from STUN Binding
// transactions on that same socket (so the answers describe the mapping tunnels and ICE will use).
//
//   1. A Binding request to every server at once (NETCHECK_MAX_SERVERS at most), each retransmitted as
//      StunEndpoint does. Each answer's XOR-MAPPED-ADDRESS is our server-reflexive address as that server
//      saw it; no answer from anyone means no UDP (blocked, or every server down).
//   2. Behind a NAT at all: a mapped address that is not one of our own addresses (and port, if given).
//   3. Mapping (RFC 4787/5780): different mapped addresses from different servers -> endpoint-dependent
//      (symmetric: hole punching to a new peer needs port prediction or a relay); the same one from servers
//      on two different IP addresses -> endpoint-independent (cone). A server reporting OTHER-ADDRESS
//      on another IP is asked again there (RFC 5780 section 4.3 test II) when no two servers differ.
//      A public agent reports OTHER-ADDRESS on its own IP and another port (its second socket,
//      nat/change-port.ts): with no two server IPs that answered, that port is asked too, and the same
//      mapping from both ports -> endpoint-independent, with mappingTested 'port' (an address-dependent
//      mapping would look the same; the report says so); another one -> endpoint-dependent. One server
//      without a second port, or servers sharing an IP, leave the mapping 'unknown'.
//   4. Filtering (RFC 5780 section 4.4) is only reported when measured: with a server on a second IP
//      address and port that honours CHANGE-REQUEST (coturn with two addresses does), "answer from the
//      other IP and port arrives" -> endpoint-independent, else "from the other port only" ->
//      address-dependent, else address-and-port-dependent. With only a second port (an agent), "the
//      answer from the other port arrives" -> not-port-dependent (endpoint-independent or address-
//      dependent), else address-and-port-dependent. This test runs before anything is sent to that other
//      port (which would open the filter for it), with NETCHECK_PORT_FILTER_TRANSMITS, so behind a NAT
//      that filters by port (most) it holds the whole report back by its timeout: `portFiltering: false`
//      leaves it out where the report is wanted soon (the agent's own netchecks). A missing answer
//      after all retransmissions is read as "filtered" (loss could fake it, as RFC 5780 notes). Servers
//      with one socket answer CHANGE-REQUEST with 420: against them filtering is 'unknown', with the reason.
//   5. Per address family: IPv4 servers and IPv6 servers are checked apart, at once (an IPv4 NAT and an
//      IPv6 firewall are different boxes, and mappings of two families always differ, which would read as
//      symmetric). The report is that of IPv4 if any IPv4 server answered (its NAT is what traversal has
//      to get through), else IPv6's; the other family's report is `other`.
//   Every request is padded (RFC 5780 PADDING) to STUN_PADDED_REQUEST_BYTES: agents answer sources they have
//   not verified with no more bytes than they sent (stun-endpoint.ts). A server that knows no PADDING
//   answers 420; the plain request is then sent again without it.

import { networkInterfaces } from 'node:os';
import { NETCHECK_MAX_SERVERS, NETCHECK_PORT_FILTER_TRANSMITS, STUN_PADDED_REQUEST_BYTES } from '../base/constants.js';
import { endpointKey, type Endpoint } from '../conn/socket.js';
import type { StunEndpoint, StunOutcome, StunTransactionOptions } from './stun-endpoint.js';
import { stunAddress } from './stun-binding.js';
import { familyOf } from '../base/ip-text.js';

/** A padded Binding request; unpadded again if the server refused PADDING (420). */
async function bindingRequest(endpoint: StunEndpoint, server: Endpoint, tx: StunTransactionOptions): Promise<StunOutcome> {
  const o = await endpoint.request(server, { padTo: STUN_PADDED_REQUEST_BYTES }, tx);
  return o.kind === 'error' && o.code === 420 ? endpoint.request(server, {}, tx) : o;
}

/** Our mapping as one server sees it, from one Binding transaction and nothing more (no test of its
 *  other address or port): what an ICE restart offers as its srflx, as soon as the server answers. */
export async function mappedBy(endpoint: StunEndpoint, server: Endpoint, tx: StunTransactionOptions = {}): Promise<Endpoint | undefined> {
  const o = await bindingRequest(endpoint, server, tx);
  return o.kind === 'success' && o.mapped ? { address: stunAddress(o.mapped.address), port: o.mapped.port } : undefined;
}

export type MappingBehaviour = 'no-nat' | 'endpoint-independent' | 'endpoint-dependent' | 'unknown';
/** not-port-dependent: an answer from the server's other port came through, from its other IP was not
 *  tested (the server has one): endpoint-independent or address-dependent. */
export type FilteringBehaviour = 'endpoint-independent' | 'not-port-dependent' | 'address-dependent' | 'address-and-port-dependent' | 'unknown';

export interface NetcheckServerResult {
  server: Endpoint;
  /** Our address as this server saw it. */
  mapped?: Endpoint;
  /** From the first transmission (an upper bound when transmits > 1). */
  rttMs?: number;
  transmits: number;
  /** RFC 5780 OTHER-ADDRESS the server reported. */
  otherAddress?: Endpoint;
  /** Why there is no mapping. */
  error?: string;
  /** This probe went to the other IP address, or the other port, of a server that reported OTHER-ADDRESS. */
  probe?: 'other-address' | 'other-port';
}

export interface NetcheckReport {
  /** Some server answered over UDP. */
  udp: boolean;
  servers: NetcheckServerResult[];
  /** Our server-reflexive address (what the first answering server saw): the srflx ICE candidate. */
  publicEndpoint?: Endpoint;
  /** Every distinct mapped address seen. */
  publicEndpoints: Endpoint[];
  /** undefined: no answer, or no local addresses to compare with. */
  behindNat: boolean | undefined;
  mapping: MappingBehaviour;
  mappingReason: string;
  /** What the mapping verdict compared: destinations on different IP addresses, or only two ports of one
   *  server (then an address-dependent mapping would read as endpoint-independent). */
  mappingTested?: 'address' | 'port';
  filtering: FilteringBehaviour;
  filteringReason: string;
  /** Behind a NAT, the mapped port is our socket's port (needs opts.localPort). */
  portPreserved?: boolean;
  /** Smallest round-trip time of any answer. */
  rttMs?: number;
  durationMs: number;
  /** The address family its servers are of. */
  family?: 4 | 6;
  /** The other family's report, when servers of both families were asked and some of them answered. */
  other?: NetcheckReport;
}

export interface NetcheckOptions {
  /** This host's addresses; default: every interface address (os.networkInterfaces()). */
  localAddresses?: string[];
  /** The socket's bound port: a mapping that keeps it is no NAT (with a local IP) or port-preserving. */
  localPort?: number;
  /** Retransmission settings for every request. */
  transaction?: StunTransactionOptions;
  /** Run the RFC 5780 filtering tests when a server offers them (default true). */
  filtering?: boolean;
  /** Run the change-port filtering test against a server with a second port (default: as `filtering`).
   *  It must end before the mapping test to that port starts, so it delays the report (our mapping
   *  included) by NETCHECK_PORT_FILTER_TRANSMITS' timeout behind every NAT that filters by port. */
  portFiltering?: boolean;
}

function hostAddresses(): string[] {
  const out: string[] = [];
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) out.push(a.address);
  return out;
}

function describe(o: StunOutcome): string {
  switch (o.kind) {
    case 'timeout': return `no answer after ${o.transmits} transmissions`;
    case 'error': return `error ${o.code}${o.reason ? ` ${o.reason}` : ''}`;
    case 'failed': return o.reason;
    default: return o.mapped ? 'ok' : 'success without XOR-MAPPED-ADDRESS';
  }
}

function toResult(server: Endpoint, o: StunOutcome): NetcheckServerResult {
  const r: NetcheckServerResult = { server, transmits: o.kind === 'failed' ? 0 : o.transmits };
  if (o.kind === 'success' && o.mapped) {
    r.mapped = { address: stunAddress(o.mapped.address), port: o.mapped.port };
    r.rttMs = o.rttMs;
    // An OTHER-ADDRESS of another family than the server's would compare mappings of two families.
    if (o.otherAddress && familyOf(stunAddress(o.otherAddress.address)) === familyOf(stunAddress(server.address))) r.otherAddress = o.otherAddress;
  } else {
    r.error = describe(o);
  }
  return r;
}

/** Both families at once (step 5), or the one the servers are of. */
export async function netcheck(endpoint: StunEndpoint, servers: Endpoint[], opts: NetcheckOptions = {}): Promise<NetcheckReport> {
  const of = (f: 4 | 6) => servers.filter((s) => familyOf(stunAddress(s.address)) === f);
  const v4 = of(4), v6 = of(6);
  if (v4.length === 0 || v6.length === 0) return { ...await netcheckFamily(endpoint, servers, opts), family: v6.length > 0 ? 6 : 4 };
  const [a, b] = await Promise.all([netcheckFamily(endpoint, v4, opts), netcheckFamily(endpoint, v6, opts)]);
  const [primary, other] = a.udp || !b.udp ? [{ ...a, family: 4 as const }, { ...b, family: 6 as const }] : [{ ...b, family: 6 as const }, { ...a, family: 4 as const }];
  return {
    ...primary, udp: a.udp || b.udp, servers: [...a.servers, ...b.servers], durationMs: Math.max(a.durationMs, b.durationMs),
    ...(other.udp ? { other } : {}),
  };
}

/** Fewer than two server addresses, overall or in one of `families` (ours): a mapping cannot be told. */
export function fewServers(servers: readonly Endpoint[], families: Iterable<4 | 6>): boolean {
  const few = (f?: 4 | 6) => new Set(servers.filter((e) => !f || familyOf(stunAddress(e.address)) === f).map((e) => stunAddress(e.address))).size < 2;
  return few() || [...families].some(few);
}

/** The reports of each family in `r`: itself and its `other`. */
export function familyReports(r: NetcheckReport): NetcheckReport[] {
  return r.other ? [r, r.other] : [r];
}

/** Where no NAT was found (a family's report), the change-port filtering test left out of `r`, run now by
 *  `again` against that family's servers and merged in: it tells a host behind a stateful firewall (most
 *  IPv6 hosts) from one anybody can reach, and waits out its timeout only where a firewall filters. */
export async function withFirewallTests(r: NetcheckReport, again: (servers: Endpoint[]) => Promise<NetcheckReport>): Promise<NetcheckReport> {
  const test = async (x: NetcheckReport): Promise<NetcheckReport> => {
    if (x.behindNat !== false || x.filtering !== 'unknown') return x;
    const f = await again(x.servers.filter((s) => !s.probe).map((s) => s.server)).catch(() => undefined);
    return f && f.filtering !== 'unknown' ? { ...x, filtering: f.filtering, filteringReason: f.filteringReason } : x;
  };
  const [primary, other] = await Promise.all([test(r), r.other ? test(r.other) : Promise.resolve(undefined)]);
  return other ? { ...primary, other } : primary;
}

async function netcheckFamily(endpoint: StunEndpoint, servers: Endpoint[], opts: NetcheckOptions): Promise<NetcheckReport> {
  const started = performance.now();
  const seen = new Set<string>();
  const list = servers.filter((s) => !seen.has(endpointKey(s)) && seen.add(endpointKey(s))).slice(0, NETCHECK_MAX_SERVERS);
  const tx = opts.transaction ?? {};
  const results = await Promise.all(list.map(async (s) => toResult(s, await bindingRequest(endpoint, s, tx))));

  // RFC 5780 mapping test II: no two answering servers on different IPs, but one told us its other IP.
  const ips = (rs: NetcheckServerResult[]): Set<string> => new Set(rs.filter((r) => r.mapped).map((r) => stunAddress(r.server.address)));
  if (ips(results).size < 2) {
    const withOther = results.find((r) => r.mapped && r.otherAddress && stunAddress(r.otherAddress.address) !== stunAddress(r.server.address));
    if (withOther) {
      const probe = { address: withOther.otherAddress!.address, port: withOther.server.port };
      const r = toResult(probe, await bindingRequest(endpoint, probe, tx));
      r.probe = 'other-address';
      results.push(r);
    }
  }

  // A server whose other address is a second port on its own IP (an agent): filtering first (nothing may
  // have gone to that port yet), then the mapping towards that port if no two server IPs answered.
  const sameIp = (a: Endpoint, b: Endpoint): boolean => stunAddress(a.address) === stunAddress(b.address);
  const portServer = results.find((r) => r.mapped && !r.probe && r.otherAddress && sameIp(r.otherAddress, r.server) && r.otherAddress.port !== r.server.port);
  const rfc5780 = results.find((r) => r.mapped && !r.probe && r.otherAddress && !sameIp(r.otherAddress, r.server));
  let portFilter: StunOutcome | undefined;
  if (portServer && !rfc5780 && opts.filtering !== false && opts.portFiltering !== false) {
    portFilter = await endpoint.request(portServer.server, { changePort: true, padTo: STUN_PADDED_REQUEST_BYTES },
      { ...tx, anySource: true, maxTransmits: Math.min(tx.maxTransmits ?? NETCHECK_PORT_FILTER_TRANSMITS, NETCHECK_PORT_FILTER_TRANSMITS) });
  }
  if (portServer && ips(results).size < 2) {
    const probe = { address: portServer.server.address, port: portServer.otherAddress!.port };
    const r = toResult(probe, await bindingRequest(endpoint, probe, tx));
    r.probe = 'other-port';
    results.push(r);
  }

  const answered = results.filter((r) => r.mapped);
  const publicEndpoints: Endpoint[] = [];
  for (const r of answered) {
    if (!publicEndpoints.some((e) => endpointKey(e) === endpointKey(r.mapped!))) publicEndpoints.push(r.mapped!);
  }
  const local = new Set((opts.localAddresses ?? hostAddresses()).map(stunAddress));
  let behindNat: boolean | undefined;
  if (answered.length > 0 && local.size > 0) {
    behindNat = !answered.every((r) => local.has(r.mapped!.address) && (opts.localPort === undefined || r.mapped!.port === opts.localPort));
  }

  let mapping: MappingBehaviour, mappingReason: string, mappingTested: NetcheckReport['mappingTested'];
  const byPort = answered.find((r) => r.probe === 'other-port');
  if (answered.length === 0) {
    mapping = 'unknown';
    mappingReason = list.length === 0 ? 'no STUN servers to ask' : `none of ${list.length} STUN servers answered (UDP blocked, or the servers are down)`;
  } else if (behindNat === false) {
    mapping = 'no-nat';
    mappingReason = `the servers saw our own address ${endpointKey(publicEndpoints[0]!)}`;
  } else if (publicEndpoints.length > 1) {
    mapping = 'endpoint-dependent';
    mappingTested = ips(answered).size >= 2 ? 'address' : 'port';
    const what = mappingTested === 'port' && byPort ? 'two ports of one server' : 'different servers';
    mappingReason = `${what} saw different addresses: ${answered.map((r) => `${endpointKey(r.server)} saw ${endpointKey(r.mapped!)}`).join(', ')}`;
  } else if (ips(answered).size >= 2) {
    mapping = 'endpoint-independent';
    mappingTested = 'address';
    mappingReason = `${answered.length} servers on ${ips(answered).size} IP addresses saw the same ${endpointKey(publicEndpoints[0]!)}`;
  } else if (byPort) {
    mapping = 'endpoint-independent';
    mappingTested = 'port';
    mappingReason = `ports ${portServer!.server.port} and ${byPort.server.port} of ${stunAddress(byPort.server.address)} saw the same `
      + `${endpointKey(publicEndpoints[0]!)}: only a change of destination port was tested (an address-dependent mapping would look the same)`;
  } else {
    mapping = 'unknown';
    const other = portServer ? `; its other port ${portServer.otherAddress!.port} did not answer` : '';
    mappingReason = answered.length === 1
      ? `only one server answered, and it answered from no second port${other}: another server, on another IP address or port, is needed to compare mappings`
      : 'the servers that answered share one IP address: an address-dependent mapping would look the same';
  }

  let filtering: FilteringBehaviour = 'unknown', filteringReason: string;
  if (opts.filtering === false) {
    filteringReason = 'not tested';
  } else if (!rfc5780 && portServer && !portFilter) {
    filteringReason = `not tested: the change-port test against ${endpointKey(portServer.server)} was left out (it would hold this report back)`;
  } else if (!rfc5780 && portFilter && portServer) {
    [filtering, filteringReason] = portFiltering(portFilter, portServer.server, portServer.otherAddress!);
  } else if (!rfc5780) {
    filteringReason = answered.length === 0 ? 'no server answered'
      : 'no server reported OTHER-ADDRESS: telling filtering apart needs an RFC 5780 server that can answer from a second '
        + 'IP address and port, or an agent with a second port; assume address-and-port-dependent when punching';
  } else {
    const s = rfc5780.server;
    const anySource = { ...tx, anySource: true };
    const [both, port] = await Promise.all([
      endpoint.request(s, { changeIp: true, changePort: true, padTo: STUN_PADDED_REQUEST_BYTES }, anySource),
      endpoint.request(s, { changePort: true, padTo: STUN_PADDED_REQUEST_BYTES }, anySource),
    ]);
    const at = endpointKey(s);
    if (both.kind === 'success') {
      if (stunAddress(both.from.address) !== stunAddress(s.address) && both.from.port !== s.port) {
        filtering = 'endpoint-independent';
        filteringReason = `an answer from ${endpointKey(both.from)} (another IP and port than ${at}) came through`;
      } else {
        filteringReason = `${at} answered CHANGE-REQUEST from ${endpointKey(both.from)}, not from its other address`;
      }
    } else if (both.kind !== 'timeout') {
      filteringReason = `${at} did not honour CHANGE-REQUEST: ${describe(both)}`;
    } else if (port.kind === 'success') {
      if (stunAddress(port.from.address) === stunAddress(s.address) && port.from.port !== s.port) {
        filtering = 'address-dependent';
        filteringReason = `an answer from ${at}'s IP on another port came through, one from its other IP did not`;
      } else {
        filteringReason = `${at} answered a change-port request from ${endpointKey(port.from)}`;
      }
    } else if (port.kind === 'timeout') {
      filtering = 'address-and-port-dependent';
      filteringReason = `answers from ${at}'s other IP address and from its other port never came (${both.transmits} and ${port.transmits} transmissions)`;
    } else {
      filteringReason = `${at} did not honour CHANGE-REQUEST (change port): ${describe(port)}`;
    }
  }

  const rtts = answered.map((r) => r.rttMs!);
  const report: NetcheckReport = {
    udp: answered.length > 0, servers: results, publicEndpoints, behindNat,
    mapping, mappingReason, filtering, filteringReason, durationMs: performance.now() - started,
  };
  if (mappingTested && mapping !== 'no-nat') report.mappingTested = mappingTested;
  if (publicEndpoints[0]) report.publicEndpoint = publicEndpoints[0];
  if (rtts.length) report.rttMs = Math.min(...rtts);
  if (behindNat && opts.localPort !== undefined && report.publicEndpoint) report.portPreserved = report.publicEndpoint.port === opts.localPort;
  return report;
}

/** The change-port filtering test against a server whose other address is `other` (same IP, other port). */
function portFiltering(o: StunOutcome, s: Endpoint, other: Endpoint): [FilteringBehaviour, string] {
  const at = endpointKey(s);
  if (o.kind === 'success') {
    if (stunAddress(o.from.address) === stunAddress(s.address) && o.from.port === other.port) {
      return ['not-port-dependent', `an answer from ${at}'s other port ${other.port} came through: the NAT does not filter by port, `
        + 'unless this socket sent to that port lately (the agent\'s own netchecks ask it), which opened the filter for it; '
        + 'whether it filters by address needs a server with a second IP address'];
    }
    return ['unknown', `${at} answered a change-port request from ${endpointKey(o.from)}, not from its other port ${other.port}`];
  }
  if (o.kind === 'timeout') {
    return ['address-and-port-dependent', `the answer from ${at}'s other port ${other.port} never came (${o.transmits} transmissions): the NAT filters by port`];
  }
  return ['unknown', `${at} did not honour CHANGE-REQUEST (change port): ${describe(o)}`];
}

/** Whether others can reach us without our sending first, in every family that answered: no NAT, and no
 *  stateful firewall seen to drop answers from a server's other port (every IPv6 home router has one).
 *  Undecided counts as reachable: a public host whose filtering nobody could test is taken at its word. */
export function reachableUnsolicited(r: NetcheckReport): boolean {
  return familyReports(r).every(familyOpen);
}

/** The same for one family's report alone (not its `other`). */
export function familyOpen(x: NetcheckReport): boolean {
  return x.behindNat === false && x.filtering !== 'address-dependent' && x.filtering !== 'address-and-port-dependent';
}

/** One line, e.g. "endpoint-independent mapping (cone); public 203.0.113.5:40123; filtering unknown; rtt
 *  12.3 ms", and the other family's after "IPv6: " (or "IPv4: "). */
export function summarizeNetcheck(r: NetcheckReport): string {
  const one = summarizeFamily(r);
  return r.other ? `${one}; IPv${r.other.family}: ${summarizeFamily(r.other)}` : one;
}

function summarizeFamily(r: NetcheckReport): string {
  if (!r.udp) return `no UDP: ${r.mappingReason}`;
  const pub = r.publicEndpoints.map(endpointKey).join(', ');
  const parts: string[] = [];
  switch (r.mapping) {
    case 'no-nat': parts.push(`no NAT; public ${pub}`); break;
    case 'endpoint-independent': parts.push(`endpoint-independent mapping (cone${r.mappingTested === 'port' ? '; only a port change tested' : ''}); public ${pub}`); break;
    case 'endpoint-dependent': parts.push(`endpoint-dependent mapping (symmetric); public ${pub}`); break;
    default: parts.push(`mapping unknown (${r.mappingReason}); public ${pub}`);
  }
  if (r.portPreserved !== undefined) parts.push(r.portPreserved ? 'port preserved' : 'port changed');
  parts.push(`filtering ${r.filtering}`);
  if (r.rttMs !== undefined) parts.push(`rtt ${r.rttMs.toFixed(1)} ms`);
  return parts.join('; ');
}
