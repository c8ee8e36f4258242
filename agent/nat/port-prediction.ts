// Port prediction for symmetric NATs (endpoint-dependent mapping) that hand out ports in order.
//
// Such a NAT gives every new destination the next port (or one a few further on): netcheck's answers
// come back mapped to ports like 40000, 40002, and the ports between and after them belong to other
// destinations, or are still free. An Attach then offers, as extra server-reflexive candidates, the ports
// in the gaps (a mapping made earlier towards a destination that did not answer the netcheck, such as the
// peer itself) and the next ones after the last seen (our checks to the peer, sent next, get one of them
// if few new destinations were contacted since). The peer (a cone NAT, whose mapping does not depend on
// where it sends) checks those ports, which opens its NAT for our checks from the port we really have;
// the first check to cross makes the pair. A NAT that picks ports at random (Linux --random-fully) shows
// no order: nothing is predicted and the pair falls back to a relay. Asking a server again right before
// the Attach would not help: a server already asked keeps its old mapping; only a new destination shows
// a new port. Against one that picks at random, the hard side opens many sockets instead and the easy
// side sends to random ports (sprayPorts; nat/probe-sockets.ts has the arithmetic).
import { randomBytes } from 'node:crypto';
import type { NetcheckReport } from './netcheck.js';
import type { Endpoint } from '../conn/socket.js';
import { PORT_PREDICTION_MAX_STEP } from '../base/constants.js';


export interface AllocationOrder {
  address: string;
  /** +1: ports go up; -1: down. */
  direction: 1 | -1;
  /** The mapped ports the netcheck saw, in allocation order. */
  seen: number[];
}

/** The NAT's order as the netcheck saw it, or undefined: not symmetric, fewer than two mappings on the
 *  public address, or gaps that are not all small and the same way (random allocation). */
export function allocationOrder(r: Pick<NetcheckReport, 'mapping' | 'servers' | 'publicEndpoint'>): AllocationOrder | undefined {
  if (r.mapping !== 'endpoint-dependent' || !r.publicEndpoint) return undefined;
  const address = r.publicEndpoint.address;
  const ports = [...new Set(r.servers.flatMap((s) => (s.mapped && s.mapped.address === address ? [s.mapped.port] : [])))];
  if (ports.length < 2) return undefined;
  ports.sort((a, b) => a - b);
  for (let i = 1; i < ports.length; i++) if (ports[i]! - ports[i - 1]! > PORT_PREDICTION_MAX_STEP) return undefined;
  // Which way: the first server asked got the first port (requests go out in list order).
  const first = r.servers.find((s) => s.mapped?.address === address)!.mapped!.port;
  const direction = first === ports[0] ? 1 : first === ports[ports.length - 1] ? -1 : undefined;
  if (direction === undefined) return undefined;
  return { address, direction, seen: direction === 1 ? ports : ports.reverse() };
}

/** Up to `count` ports to offer: the gaps between seen ports first, then the next ones after the last,
 *  within 1024-65535. */
export function predictPorts(o: AllocationOrder, count: number): Endpoint[] {
  const out: Endpoint[] = [];
  const seen = new Set(o.seen);
  const d = o.direction;
  const add = (port: number): boolean => {
    if (out.length >= count) return false;
    if (port >= 1024 && port <= 65535 && !seen.has(port)) out.push({ address: o.address, port });
    return true;
  };
  const first = o.seen[0]!;
  const last = o.seen[o.seen.length - 1]!;
  for (let p = first + d; p !== last && add(p); p += d);
  for (let p = last + d; out.length < count && p >= 1024 && p <= 65535; p += d) add(p);
  return out;
}

/** `count` distinct random ports of `address` in 1024..65535 (where NATs allocate), none in `exclude`. */
export function sprayPorts(address: string, count: number, exclude: readonly number[] = []): Endpoint[] {
  const taken = new Set(exclude);
  const out: Endpoint[] = [];
  const want = Math.min(count, 65536 - 1024 - taken.size);
  while (out.length < want) {
    const r = randomBytes(2 * (want - out.length));
    for (let i = 0; i < r.length && out.length < want; i += 2) {
      const port = r.readUInt16BE(i);
      if (port < 1024 || taken.has(port)) continue;
      taken.add(port);
      out.push({ address, port });
    }
  }
  return out;
}
