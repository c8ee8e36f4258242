// The human form of `idloc-agent status`: identity first, then one row per peer saying where it is
// and whether and why the path is direct, because that is what users ask first.
import { formatRefused } from './status-refused.js';
import type { AgentStatus } from './daemon.js';

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024, i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(1)} ${units[i]}`;
}

function ago(iso: string | null, now: number): string {
  if (!iso) return 'never';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  return s < 60 ? `${s}s ago` : s < 3600 ? `${Math.floor(s / 60)}m ago` : `${Math.floor(s / 3600)}h ago`;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd()).join('\n') + '\n';
}

export function formatStatus(s: AgentStatus, now = Date.now()): string {
  const head =
    `node     ${s.identity.nodeId}\n` +
    `key      ${s.identity.publicKey}\n` +
    `address  ${s.identity.ipv4}  ${s.identity.ipv6}\n` +
    `tap      ${s.tap.name} (mtu ${s.tap.mtu})   listening on udp ${s.listen}\n` +
    (s.candidates.length ? `locators ${s.candidates.join(', ')}\n` : '') + overlayLines(s) +
    (s.nat ? `nat      ${s.nat.summary}${s.overlay?.rendezvous.length ? `; rendezvous ${s.overlay.rendezvous.join(', ')}` : ''}\n` : '') +
    (s.relay ? relayLine(s.relay) : '') + (s.dns ? dnsLines(s.dns) : '') +
    (s.access ? `access   ${s.access.admission}\nfirewall ${s.access.firewall}\n` : '') +
    formatRefused(s.refused) + '\n';
  if (s.peers.length === 0) return head + 'no peers\n';
  const rows = [['PEER', 'IPV4', 'IPV6', 'FROM', 'PAIR (ours -> peer)', 'PATH', 'RTT', 'HANDSHAKE', 'RX', 'TX', 'WHY']];
  for (const p of s.peers) {
    rows.push([p.nodeId.slice(0, 12), p.ipv4 === '0.0.0.0' ? '(looking up)' : p.ipv4, p.ipv6, p.source, p.pair ?? p.endpoint ?? '-', pathWords(p),
      p.rttMs === null ? '-' : `${p.rttMs.toFixed(1)} ms`, ago(p.lastHandshake, now), bytes(p.rxBytes), bytes(p.txBytes), p.pathReason]);
  }
  return head + table(rows) + standbyLines(s);
}

/** "standby  PEER: via eth1 (mapped 203.0.113.7:4500) answered 3 s ago; traffic moved to eth1". */
function standbyLines(s: AgentStatus): string {
  let out = '';
  for (const p of s.peers) {
    const sb = p.standby;
    if (!sb) continue;
    const parts = sb.ours.map((o) => `via ${o.uplink}${o.mapped ? ` (mapped ${o.mapped})` : ' (no mapping yet)'} ${o.answeredAgoMs === null ? 'not answered yet' : `answered ${Math.round(o.answeredAgoMs / 1000)} s ago`}`);
    if (sb.theirs) parts.push(`the peer's other uplink ${sb.theirs.endpoint}, heard ${Math.round(sb.theirs.heardAgoMs / 1000)} s ago`);
    if (sb.pinned) parts.push(`traffic moved to ${sb.pinned} (the preferred uplink failed)`);
    out += `standby  ${p.nodeId.slice(0, 12)}: ${parts.join('; ')}\n`;
  }
  for (const p of s.peers) {
    if (p.bridge) out += `bridge   ${p.nodeId.slice(0, 12)}: every packet also through peer relay ${p.bridge} until the peer answers on a direct path\n`;
  }
  return out;
}

/** "relay    TURN 198.51.100.12:3478: relayed addresses 198.51.100.12:49152, [2001:db8::12]:49153". */
function relayLine(r: NonNullable<AgentStatus['relay']>): string {
  if (!r.server) return 'relay    TURN (no "turn" service record found in the overlay yet)\n';
  const all = r.relayedAll;
  const what = all.length === 0 ? `not allocated (${r.error ?? 'allocating'})`
    : `relayed address${all.length > 1 ? 'es' : ''} ${all.join(', ')}${r.familyError ? ` (${r.familyError})` : ''}`;
  return `relay    TURN ${r.server}: ${what}\n`;
}

/** "dns      100.87.12.9:53, [fd1d:10c0::9]:53 (udp, tcp); forwarding to 10.0.0.53:53; split DNS on ..."
 *  and a line of counts, drops by reason only where there were any. */
function dnsLines(d: NonNullable<AgentStatus['dns']>): string {
  const c = d.counters;
  const dropped = Object.entries({ ...c.dropped, lookupsBusy: c.lookupsBusy, tcpRefused: c.tcpRefused, tcpBadFrame: c.tcpBadFrame, tcpPipelineFull: c.tcpPipelineFull })
    .filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`);
  return `dns      ${d.listening.join(', ') || 'not listening'} (udp, tcp); forwarding to ${d.upstreams.join(', ') || 'nobody (SERVFAIL)'}; ${d.integration}\n` +
    `         ${c.queries} queries: ${c.fromOverlay} answered from the overlay, ${c.noData} no such type, ${c.nxdomain} NXDOMAIN ` +
    `(${c.cacheHits} of these from the cache), ${c.forwarded} forwarded, ${c.servfail} SERVFAIL, ${c.truncated} truncated; ` +
    `dropped ${dropped.length ? dropped.join(', ') : 'none'}\n`;
}

/** "direct", "TURN 203.0.113.9:3478", "peer relay 203.0.113.1:4500", "none". */
function pathWords(p: AgentStatus['peers'][number]): string {
  if (p.path !== 'relayed') return p.path;
  return `${p.via === 'peer-relay' ? 'peer relay' : 'TURN'} ${p.relay ?? '?'}`;
}

function overlayLines(s: AgentStatus): string {
  const o = s.overlay;
  if (!o) return 'overlay  off\n';
  const joined = o.bootstraps.length === 0 ? 'started a new overlay' : o.joined ? `joined via ${o.bootstraps.join(', ')}` : `joining via ${o.bootstraps.join(', ')} (no answer yet)`;
  const d = o.discovery;
  return `overlay  ${joined}; ${o.routingTableSize} contacts, ${o.storedRecords} records stored, IPv4 ${o.ipv4Claimed ? 'claimed' : 'not claimed yet'}\n` +
    `lookups  ${o.lookups.count} (p50 ${o.lookups.p50LatencyMs} ms, p90 ${o.lookups.p90LatencyMs} ms); peers found ${d.found}, ` +
    `not found ${d.notFound + d.timedOut}\n`;
}
