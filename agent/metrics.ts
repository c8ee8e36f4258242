// `--metrics HOST:PORT`: the agent's counters in Prometheus text format (prom-client), on a plain HTTP
// listener at /metrics. Every value is read from the agent's status when a scrape comes (collect), so the
// packet path pays nothing. What a scrape shows:
//   idloc_peers, idloc_peer_info{node_id,ipv4,path,via} (1 per peer), idloc_peer_{receive,transmit}_bytes_total
//   idloc_tunnel_packets_total{direction}, idloc_handshakes_total{event}
//   idloc_dropped_total{layer,reason}            everything `status` lists under "refused"
//   idloc_overlay_lookups_total, idloc_overlay_lookup_latency_ms{quantile}, idloc_discovery_lookups_total{result}
//   idloc_relayed_bytes_total{via}               our peers' traffic on relayed paths (TURN, peer relay)
//   idloc_relay_served_bytes_total               what we relay for NATed members (peer relay server)
// Per-peer labels are bounded by the peer table (MAX_OVERLAY_PEERS). The listener takes at most
// METRICS_MAX_CONNECTIONS at once and answers anything but GET /metrics with 404.
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Registry } from 'prom-client';
import type { AgentStatus } from './status.js';
import type { Endpoint } from './conn/socket.js';
import { METRICS_MAX_CONNECTIONS, METRICS_REQUEST_TIMEOUT_MS } from './base/constants.js';

type Status = () => AgentStatus;

/** The registry with every idloc metric, reading `status` at each scrape. */
export function metricsRegistry(status: Status): Registry {
  const registry = new Registry();
  let snap: AgentStatus | undefined;
  // One status per scrape: the first collect() takes it, the rest reuse it.
  const current = (): AgentStatus => (snap ??= status());
  const counter = (name: string, help: string, labelNames: string[], fill: (c: Counter, s: AgentStatus) => void) =>
    new Counter({ name, help, labelNames, registers: [registry], collect() { this.reset(); fill(this, current()); } });
  const gauge = (name: string, help: string, labelNames: string[], fill: (g: Gauge, s: AgentStatus) => void) =>
    new Gauge({ name, help, labelNames, registers: [registry], collect() { this.reset(); fill(this, current()); } });

  gauge('idloc_peers', 'Peers the agent has a tunnel entry for.', [], (g, s) => g.set(s.peers.length));
  gauge('idloc_peer_info', 'One per peer: its overlay address and the kind of path it is on.', ['node_id', 'ipv4', 'path', 'via'], (g, s) => {
    for (const p of s.peers) g.set({ node_id: p.nodeId, ipv4: p.ipv4, path: p.path, via: p.via ?? 'none' }, 1);
  });
  counter('idloc_peer_receive_bytes_total', 'Bytes of authenticated datagrams from the peer.', ['node_id'], (c, s) => {
    for (const p of s.peers) c.inc({ node_id: p.nodeId }, p.rxBytes);
  });
  counter('idloc_peer_transmit_bytes_total', 'Bytes of datagrams sent to the peer.', ['node_id'], (c, s) => {
    for (const p of s.peers) c.inc({ node_id: p.nodeId }, p.txBytes);
  });
  counter('idloc_tunnel_packets_total', 'Inner packets through the tunnels (keepalives excluded).', ['direction'], (c, s) => {
    c.inc({ direction: 'rx' }, s.counters.tunnels.rxPackets);
    c.inc({ direction: 'tx' }, s.counters.tunnels.txPackets);
  });
  counter('idloc_handshakes_total', 'Noise handshakes, by event.', ['event'], (c, s) => {
    const t = s.counters.tunnels;
    const events: Record<string, number> = {
      init_sent: t.handshakeInitSent, init_received: t.handshakeInitRecv, response_sent: t.handshakeRespSent,
      response_received: t.handshakeRespRecv, completed: t.handshakeCompleted, gave_up: t.handshakeGaveUp, rejected: t.handshakeRejected,
    };
    for (const [event, n] of Object.entries(events)) c.inc({ event }, n);
  });
  counter('idloc_dropped_total', 'What was dropped or turned away as possibly hostile, by layer and reason.', ['layer', 'reason'], (c, s) => {
    for (const [layer, reasons] of Object.entries(s.refused)) for (const [reason, n] of Object.entries(reasons)) c.inc({ layer, reason }, n);
  });
  counter('idloc_overlay_lookups_total', 'Overlay lookups run.', [], (c, s) => { if (s.overlay) c.inc(s.overlay.lookups.count); });
  gauge('idloc_overlay_lookup_latency_ms', 'Overlay lookup latency.', ['quantile'], (g, s) => {
    if (!s.overlay) return;
    g.set({ quantile: '0.5' }, s.overlay.lookups.p50LatencyMs);
    g.set({ quantile: '0.9' }, s.overlay.lookups.p90LatencyMs);
  });
  counter('idloc_discovery_lookups_total', 'First-packet lookups of peers, by result.', ['result'], (c, s) => {
    const d = s.overlay?.discovery;
    if (!d) return;
    c.inc({ result: 'found' }, d.found);
    c.inc({ result: 'not_found' }, d.notFound);
    c.inc({ result: 'timed_out' }, d.timedOut);
    c.inc({ result: 'wrong_owner' }, d.wrongOwner);
  });
  counter('idloc_relayed_bytes_total', 'Bytes to and from peers on relayed paths, by relay kind.', ['via'], (c, s) => {
    for (const p of s.peers) if (p.via) c.inc({ via: p.via }, p.rxBytes + p.txBytes);
  });
  counter('idloc_relay_served_bytes_total', 'Bytes this agent relayed for NATed overlay members.', [], (c, s) => {
    const server = s.counters.peerRelay.server;
    if (server) c.inc(server.bytes);
  });
  // The snapshot lives for one scrape.
  const metrics = registry.metrics.bind(registry);
  registry.metrics = async () => { snap = undefined; try { return await metrics(); } finally { snap = undefined; } };
  return registry;
}

/** Serve the registry at http://HOST:PORT/metrics until closed. */
export async function serveMetrics(at: Endpoint, status: Status): Promise<Server> {
  const registry = metricsRegistry(status);
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') { res.writeHead(404).end(); return; }
    registry.metrics().then((body) => {
      res.writeHead(200, { 'content-type': registry.contentType }).end(body);
    }, () => { res.writeHead(500).end(); });
  });
  server.maxConnections = METRICS_MAX_CONNECTIONS;
  server.requestTimeout = METRICS_REQUEST_TIMEOUT_MS;
  server.headersTimeout = METRICS_REQUEST_TIMEOUT_MS;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(at.port, at.address, () => { server.off('error', reject); resolve(); });
  });
  return server;
}
