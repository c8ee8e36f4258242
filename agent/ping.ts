// `idloc-agent ping PEER`, the agent's side: one tunnel ping (tunnel/ping.ts) to the peer a name, NodeID or
// overlay address names, and where its pong came back from, the way `tailscale ping` says "via DERP" and
// then "via ip:port".
//
//   1. the target: an overlay IPv4 or IPv6 address as it is; a name or NodeID resolved through the overlay
//      (the same ownership checks as `resolve`) to the IPv6 address its key owns
//   2. the peer: already ours, or looked up as a first packet to that address would be (discovery.ts find),
//      which also sets up its path (the path keeper traverses, the tunnel handshakes)
//   3. pings on the peer's session, one at a time, until a pong comes or the time is up (a peer found just
//      now has no session until its handshake completes)
//   4. the pong's source says the path: a relay's virtual endpoint (peer relay, TURN), a probe socket's
//      (birthday probing: the peer's real address is shown), or the peer's own endpoint (direct)
import { formatIpv4, formatIpv6, parseIpv4, parseIpv6 } from './base/ip-text.js';
import { isOverlayIpv4, isOverlayIpv6 } from './idloc/ip.js';
import { endpointKey, type Endpoint } from './conn/socket.js';
import type { OverlayPeer, PeerMap } from './idloc/peer-map.js';
import type { TunnelPeer } from './tunnel/tunnel-peer.js';
import type { TunnelPing } from './tunnel/ping.js';
import type { RelayRoute } from './nat/underlay.js';
import type { Scheduler } from './base/scheduler.js';
import { TUNNEL_PING_RETRY_MS } from './base/constants.js';

export interface PingReply {
  query: string;
  name?: string;
  nodeId: string;
  ipv4: string | null;
  ipv6: string;
  /** Round trip in ms, null when no pong came in time. */
  rttMs: number | null;
  path: 'direct' | 'relayed' | null;
  via: 'turn' | 'peer-relay' | null;
  /** Where the pong came from: the peer's address, or the relay's. */
  endpoint: string | null;
  /** Why there is no pong. */
  error?: string;
}

export interface PingDeps {
  resolve(query: string): Promise<{ name?: string; ipv6: string } | undefined>;
  map: PeerMap<TunnelPeer>;
  find?: (dst: number | Uint8Array) => Promise<OverlayPeer<unknown> | undefined>;
  pinger: TunnelPing;
  relayRoute(e: Endpoint): RelayRoute | undefined;
  probeRoute(e: Endpoint): { remote: Endpoint } | undefined;
  clock: Scheduler;
}

export async function pingPeer(d: PingDeps, query: string, timeoutMs: number): Promise<PingReply | { query: string; error: string }> {
  // 1. the target
  let dst: number | Uint8Array | undefined;
  let name: string | undefined;
  const v4 = parseIpv4(query), v6 = query.includes(':') ? parseIpv6(query) : undefined;
  if (v4 !== undefined && isOverlayIpv4(v4)) dst = v4;
  else if (v6 && isOverlayIpv6(v6)) dst = v6;
  else if (v4 === undefined && !v6) {
    const r = await d.resolve(query).catch(() => undefined);
    if (r) { dst = parseIpv6(r.ipv6); name = r.name; }
  }
  if (dst === undefined) return { query, error: v4 !== undefined || v6 ? `${query} is not an overlay address` : `${query} not found in the overlay` };
  // 2. the peer
  let peer = typeof dst === 'number' ? d.map.getIpv4(dst) : d.map.getIpv6(dst, 0);
  if (!peer && d.find) {
    const found = await d.find(dst);
    peer = found ? d.map.getByKey(found.publicKeyHex) : undefined;
  }
  if (!peer) return { query, error: `no peer at ${query}: the overlay lookup found nobody who owns it` };
  const base = {
    query, ...(name ? { name } : {}), nodeId: peer.nodeIdHex, ipv4: peer.ipv4 ? formatIpv4(peer.ipv4) : null, ipv6: formatIpv6(peer.ipv6),
  };
  // 3. pings until a pong or the deadline
  const pong = await new Promise<{ rttMs: number; from: Endpoint } | undefined>((resolve) => {
    const deadline = d.clock.now() + timeoutMs;
    let cancel: (() => void) | undefined;
    const attempt = () => {
      const c = d.pinger.ping(peer.link, (p) => { timer.cancel(); resolve(p); });
      if (c) { cancel = c; return; }
      if (d.clock.now() + TUNNEL_PING_RETRY_MS < deadline) retry = d.clock.setTimer(TUNNEL_PING_RETRY_MS, attempt);
    };
    let retry: ReturnType<Scheduler['setTimer']> | undefined;
    const timer = d.clock.setTimer(timeoutMs, () => { retry?.cancel(); cancel?.(); resolve(undefined); });
    attempt();
  });
  if (!pong) return { ...base, rttMs: null, path: null, via: null, endpoint: null, error: `no pong within ${timeoutMs} ms` };
  // 4. the path
  const route = d.relayRoute(pong.from);
  const probe = d.probeRoute(pong.from);
  return {
    ...base, rttMs: Math.round(pong.rttMs * 1000) / 1000, path: route ? 'relayed' : 'direct', via: route?.via ?? null,
    endpoint: route ? route.relay : endpointKey(probe?.remote ?? pong.from),
  };
}

/** One line, as `idloc-agent ping` prints it. */
export function formatPong(r: PingReply): string {
  const who = `${r.name ?? r.nodeId.slice(0, 12)} (${r.ipv4 ?? r.ipv6})`;
  if (r.rttMs === null) return `no pong from ${who}: ${r.error ?? 'timed out'}`;
  const via = r.via === 'peer-relay' ? `peer relay ${r.endpoint}` : r.via === 'turn' ? `TURN relay ${r.endpoint}` : r.endpoint;
  return `pong from ${who} via ${via} in ${r.rttMs.toFixed(r.rttMs < 10 ? 2 : 1)} ms`;
}
