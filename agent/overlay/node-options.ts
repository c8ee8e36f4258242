// OverlayNode's options and statistics (the node itself is node.ts; split off to keep each file short).

import type { Identity } from '../idloc/identity.js';
import type { DatagramSocket, Endpoint } from '../conn/socket.js';
import type { AttachHandler, AttachStats } from './node-attach.js';
import type { LookupStats } from './node-resolve.js';
import type { RouteStats } from './node-route.js';
import type { RpcStats } from './rpc.js';
import type { Scheduler } from '../base/scheduler.js';
import type { RecordStore, StoreStats } from './store.js';
import type { ContactInfo } from './bucket.js';

export interface OverlayNodeOptions {
  socket: DatagramSocket;
  identity: Identity;
  /** Proof of work for identity's key; solved at construction (synchronously) when absent. */
  puzzleNonce?: bigint;
  /** Bits every node of this overlay requires (records from keys without a proof are refused). */
  puzzleDifficulty?: number;
  scheduler?: Scheduler;
  /** Wall clock for records (Unix ms); the scheduler's clock is only for timeouts. */
  now?: () => number;
  k?: number;
  alpha?: number;
  /** FETCH lookups go on until this many nodes returned records (or the lookup converged). */
  fetchQuorum?: number;
  republishIntervalMs?: number;
  /** Storers re-send held records to the current k closest this often; 0 disables. */
  replicateIntervalMs?: number;
  /** How often idle buckets are looked for (each is refreshed after BUCKET_REFRESH_INTERVAL_MS idle). */
  refreshCheckIntervalMs?: number;
  /** Join retry backoff (OVERLAY_JOIN_RETRY_INITIAL_MS / _MAX_MS by default). */
  joinRetryInitialMs?: number;
  joinRetryMaxMs?: number;
  /** Wait before handing newcomers their records (DHT_HANDOFF_DELAY_MS by default). */
  handoffDelayMs?: number;
  /** Called each time the node becomes joined (see node-membership.ts), after its own lookup. */
  onJoined?: () => void;
  store?: RecordStore;
  /** Rendezvous nodes to keep keepalives to (node-rendezvous.ts), for a host behind a NAT; 0 (the default)
   *  keeps none. At most LOCATOR_MAX_RENDEZVOUS. rendezvous.setCount() changes it later. */
  rendezvousCount?: number;
  /** Their keepalive PING interval (RENDEZVOUS_KEEPALIVE_MS by default). */
  rendezvousKeepaliveMs?: number;
  /** The rendezvous set changed (our own locator is re-stored with it by the node itself). */
  onRendezvousChanged?: (current: ContactInfo[]) => void;
  /** An ATTACH addressed to us (node-attach.ts): the blob to answer with, or undefined to refuse. */
  onAttach?: AttachHandler;
  /** Underlay endpoints we can send to (our address families): a lookup queries no contact elsewhere (an
   *  IPv6-only host told of a dual-stack member at its IPv4 address waits for one at its IPv6 address). */
  reachable?: (e: Endpoint) => boolean;
  /** Routing-table contacts per bucket sharing one IP / one public /24 or /64 (ROUTING_MAX_PER_IP,
   *  ROUTING_MAX_PER_SUBNET by default; 0 for no limit). */
  maxContactsPerIp?: number;
  maxContactsPerSubnet?: number;
}

export interface OverlayNodeStats {
  routingTableSize: number;
  /** In an overlay: started one (no bootstraps) or has contacts. */
  joined: boolean;
  /** Configured by start()/join(), our own address left out. */
  bootstraps: Endpoint[];
  /** Join attempts through the bootstraps so far (retries included). */
  joinAttempts: number;
  storedRecords: number;
  store: StoreStats;
  ownRecords: number;
  lookups: LookupStats;
  /** Datagrams handed to handleDatagram, and those that did not parse. */
  datagrams: number;
  malformed: number;
  /** Messages, contacts and records refused, by reason (see `reject` calls in node*.ts). */
  rejected: Record<string, number>;
  rpc: RpcStats;
  storeRpc: RpcStats;
  /** Our address as the last PONG said the other side saw it (NAT mapping), if any. */
  observed: Endpoint | undefined;
  /** Routed messages forwarded and dropped (node-route.ts). */
  route: RouteStats;
  attach: AttachStats;
  /** Rendezvous nodes kept now (of rendezvousCount). */
  rendezvous: number;
}
