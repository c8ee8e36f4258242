// Discrete-event simulation of the overlay: N KademliaNodes (the agent's own routing table, RPC and lookup
// code) on an in-memory network with per-link latency and loss, on a simulated clock (SimScheduler), so
// 10,000 nodes run in seconds-to-minutes of wall time on 2 cores.
//
//   1. form:   node 0 starts the overlay; every joinIntervalMs another node joins through node 0
//              (PING, lookup of its own id, refresh of far buckets); wait settleMs
//   2. churn:  a fraction of the nodes (any of them, the bootstrap included) vanish at once, with no LEAVE;
//              if `replace`, as many new nodes join through random survivors while the lookups run
//   3. lookup: `lookups` FIND_NODEs from random live nodes for random live, joined NodeIDs, started
//              lookupIntervalMs apart; success = the target itself answered (the lookup stops there, as the
//              first packet to a peer would: the target is `sought`, as in resolveIpv6)
//
// Network model: one-way latency fixed per link, a whole number of ms uniform in [minLatencyMs,
// maxLatencyMs] (a hash of the two endpoints, so it is symmetric and stable); every datagram lost with
// probability `loss`; no reordering beyond what latencies give; no processing delay. Messages are objects
// passed by reference (the codec is not simulated). Everything random comes from `seed`.

import type { Endpoint } from '../conn/socket.js';
import { KademliaNode, type DhtRequest, type DhtResponse } from './kademlia.js';
import type { Decoded, RpcCodec } from './rpc.js';
import { SimScheduler } from '../base/scheduler.js';
import { bytesEqual } from '../base/bytes.js';

export interface SimOptions {
  nodes: number;
  /** Fraction of nodes that leave abruptly after formation (0.3 = 30%). */
  churn?: number;
  /** Per-datagram loss probability. */
  loss?: number;
  lookups?: number;
  seed?: number;
  minLatencyMs?: number;
  maxLatencyMs?: number;
  joinIntervalMs?: number;
  lookupIntervalMs?: number;
  settleMs?: number;
  /** Replace churned nodes with as many new joiners. */
  replace?: boolean;
  /** Join refreshes far buckets (the paper's join); false: only the lookup of the node's own id. */
  joinRefresh?: boolean;
  k?: number;
  alpha?: number;
  onProgress?: (line: string) => void;
}

export interface Percentiles {
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export interface SimResults {
  nodes: number;
  churn: number;
  loss: number;
  replace: boolean;
  lookups: number;
  succeeded: number;
  successRate: number;
  hops: Percentiles;
  latencyMs: Percentiles;
  queriesPerLookup: Percentiles;
  joinsFailed: number;
  nodesLeft: number;
  nodesJoinedAfterChurn: number;
  routingTableSize: Percentiles;
  datagrams: { sent: number; lost: number; toDeadNodes: number };
  rpc: { requests: number; retransmits: number; timeouts: number; duplicateRequests: number };
  simulatedSeconds: number;
  wallSeconds: number;
  events: number;
}

type Wire = Decoded<DhtRequest, DhtResponse<never>>;

/** The codec of the simulation: messages stay objects. */
const objectCodec: RpcCodec<DhtRequest, DhtResponse<never>, Wire> = {
  encodeRequest: (txid, body) => ({ kind: 'request', txid, body }),
  encodeResponse: (txid, body) => ({ kind: 'response', txid, body }),
  decode: (w) => w,
};

/** mulberry32, as memory-socket.ts uses. */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    let t = (s = (s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function percentiles(values: number[]): Percentiles {
  if (values.length === 0) return { mean: 0, p50: 0, p90: 0, p99: 0, max: 0 };
  const v = values.slice().sort((a, b) => a - b);
  const at = (q: number) => v[Math.min(v.length - 1, Math.ceil(q * v.length) - 1)]!;
  const mean = v.reduce((s, x) => s + x, 0) / v.length;
  return { mean: Math.round(mean * 100) / 100, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: v[v.length - 1]! };
}

interface Host {
  index: number;
  id: Uint8Array;
  endpoint: Endpoint;
  node: KademliaNode<never, Wire>;
  alive: boolean;
  joined: boolean;
}

const SHARED_KEY = new Uint8Array(32); // keys are not simulated; one array for all saves memory

export async function runSimulation(opts: SimOptions): Promise<SimResults> {
  const wallStart = performance.now();
  const n = opts.nodes;
  const churn = opts.churn ?? 0;
  const loss = opts.loss ?? 0;
  const nLookups = opts.lookups ?? Math.min(2000, Math.max(200, n));
  const seed = opts.seed ?? 1;
  const minLat = opts.minLatencyMs ?? 10;
  const maxLat = opts.maxLatencyMs ?? 50;
  const joinInterval = opts.joinIntervalMs ?? 10;
  const lookupInterval = opts.lookupIntervalMs ?? 5;
  const settleMs = opts.settleMs ?? 10_000;
  const replace = opts.replace ?? true;
  const joinRefresh = opts.joinRefresh ?? true;
  const progress = opts.onProgress ?? (() => undefined);

  const sched = new SimScheduler();
  const rand = seededRandom(seed);
  const lossRand = seededRandom(seed ^ 0x5bd1e995);
  const hosts: Host[] = [];
  const byAddress = new Map<string, Host>();
  const datagrams = { sent: 0, lost: 0, toDeadNodes: 0 };
  let txidCounter = BigInt(seed) << 40n;

  const latency = (a: number, b: number): number => {
    const lo = Math.min(a, b);
    const hi = Math.max(a, b);
    let h = Math.imul(lo ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(hi + seed, 0xc2b2ae35);
    h ^= h >>> 16;
    h = Math.imul(h, 0x7feb352d);
    h ^= h >>> 15;
    return minLat + ((h >>> 0) % (maxLat - minLat + 1));
  };

  const addHost = (): Host => {
    const index = hosts.length;
    const id = new Uint8Array(20);
    for (let i = 0; i < 20; i++) id[i] = (rand() * 256) | 0;
    const endpoint: Endpoint = { address: `10.${(index >> 16) & 255}.${(index >> 8) & 255}.${index & 255}`, port: 4500 };
    const host: Host = { index, id, endpoint, alive: true, joined: false, node: undefined as unknown as KademliaNode<never, Wire> };
    host.node = new KademliaNode<never, Wire>({
      nodeId: id, publicKey: SHARED_KEY, scheduler: sched, codec: objectCodec, random: rand,
      newTxid: () => ++txidCounter,
      ...(opts.k ? { k: opts.k } : {}), ...(opts.alpha ? { alpha: opts.alpha } : {}),
      send: (wire, to) => {
        datagrams.sent++;
        if (loss > 0 && lossRand() < loss) { datagrams.lost++; return; }
        const dst = byAddress.get(to.address);
        if (!dst) { datagrams.toDeadNodes++; return; }
        sched.setTimer(latency(index, dst.index), () => {
          if (!dst.alive) { datagrams.toDeadNodes++; return; }
          dst.node.onMessage(wire, endpoint);
        });
      },
    });
    hosts.push(host);
    byAddress.set(endpoint.address, host);
    return host;
  };

  let joinsFailed = 0;
  const join = (h: Host, via: Host): void => {
    void h.node.join([via.endpoint], joinRefresh).then((r) => {
      if (r.ok) h.joined = true;
      else joinsFailed++;
    });
  };

  // 1. formation
  const boot = addHost();
  boot.joined = true;
  for (let i = 1; i < n; i++) {
    sched.setTimer(i * joinInterval, () => join(addHost(), boot));
  }
  const formEnd = n * joinInterval + settleMs;
  for (let t = 0; t < formEnd; t += 10_000) {
    await sched.run(Math.min(formEnd, t + 10_000));
    progress(`t=${(sched.now() / 1000).toFixed(0)}s nodes=${hosts.length} joined=${hosts.filter((h) => h.joined).length} events=${sched.eventsRun}`);
  }
  await sched.run(formEnd);

  // 2. churn
  const original = hosts.slice();
  let left = 0;
  let joinedAfter = 0;
  if (churn > 0) {
    const order = original.map((h) => h.index);
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const leaving = order.slice(0, Math.round(churn * n));
    for (const i of leaving) {
      const h = hosts[i]!;
      h.alive = false;
      h.node.close();
      byAddress.delete(h.endpoint.address);
      left++;
    }
    if (replace) {
      const survivors = hosts.filter((h) => h.alive && h.joined);
      for (let i = 0; i < leaving.length; i++) {
        sched.setTimer(i * Math.max(1, Math.round(joinInterval / 4)), () => {
          join(addHost(), survivors[Math.floor(rand() * survivors.length)]!);
          joinedAfter++;
        });
      }
    }
  }

  // 3. lookups
  const hopList: number[] = [];
  const latList: number[] = [];
  const queryList: number[] = [];
  let succeeded = 0;
  let finished = 0;
  const start = sched.now();
  for (let i = 0; i < nLookups; i++) {
    sched.setTimer(i * lookupInterval, () => {
      const live = hosts.filter((h) => h.alive && h.joined);
      const src = live[Math.floor(rand() * live.length)]!;
      let dst = src;
      while (dst === src && live.length > 1) dst = live[Math.floor(rand() * live.length)]!;
      const target = dst.id;
      void src.node.findNode(target, { sought: (c) => bytesEqual(c.nodeId, target) }).then((r) => {
        finished++;
        queryList.push(r.queries);
        if (r.foundAt) {
          succeeded++;
          hopList.push(r.hops);
          latList.push(r.latencyMs);
        }
      });
    });
  }
  while (finished < nLookups && sched.pending > 0) await sched.run(sched.now() + 10_000);
  const end = sched.now();
  progress(`lookups ${succeeded}/${nLookups} in ${((end - start) / 1000).toFixed(1)} simulated s`);

  const rpcTotals = { requests: 0, retransmits: 0, timeouts: 0, duplicateRequests: 0 };
  const sizes: number[] = [];
  for (const h of hosts) {
    const s = h.node.rpc.stats;
    rpcTotals.requests += s.requestsSent;
    rpcTotals.retransmits += s.retransmits;
    rpcTotals.timeouts += s.timeouts;
    rpcTotals.duplicateRequests += s.duplicateRequests;
    if (h.alive) sizes.push(h.node.table.size);
  }
  for (const h of hosts) h.node.close();

  return {
    nodes: n, churn, loss, replace: churn > 0 && replace, lookups: nLookups, succeeded,
    successRate: succeeded / nLookups,
    hops: percentiles(hopList), latencyMs: percentiles(latList), queriesPerLookup: percentiles(queryList),
    joinsFailed, nodesLeft: left, nodesJoinedAfterChurn: joinedAfter, routingTableSize: percentiles(sizes),
    datagrams, rpc: rpcTotals,
    simulatedSeconds: Math.round(end / 100) / 10,
    wallSeconds: Math.round((performance.now() - wallStart) / 100) / 10,
    events: sched.eventsRun,
  };
}
