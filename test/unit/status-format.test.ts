// The human form of `status`: the overlay summary and, per peer, where it came from and why its path is
// what it is — and a peer whose IPv4 claim is still being looked up does not show as 0.0.0.0.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatStatus } from '../../agent/status-format.js';
import type { AgentStatus } from '../../agent/daemon.js';

const NOW = Date.parse('2026-11-29T12:00:00Z');

function status(overlay: Partial<NonNullable<AgentStatus['overlay']>> | null): AgentStatus {
  const discovery = {
    lookups: 3, found: 2, notFound: 1, timedOut: 0, wrongOwner: 0, queued: 4, queueDropped: 0, busy: 0,
    negativeCached: 0, ipv4Mapped: 1, ipv4Unresolved: 0, ipv4HeldDropped: 0, ipv4LookupsDropped: 0, p50LatencyMs: 4, p90LatencyMs: 9,
  };
  return {
    identity: { nodeId: 'ab'.repeat(20), publicKey: 'cd'.repeat(32), ipv4: '100.64.1.2', ipv6: 'fd1d:10c0::1' },
    tap: { name: 'idloc0', mtu: 1420 }, listen: '[::]:4500', candidates: ['host [2001:db8:a::2]:4500', 'host 10.1.0.2:4500', 'srflx 203.0.113.7:4500'],
    peers: [
      { nodeId: '12'.repeat(20), publicKey: '34'.repeat(32), ipv4: '100.70.0.9', ipv6: 'fd1d:10c0::9', endpoint: '198.51.100.11:4500',
        source: 'overlay', path: 'direct', via: null, relay: null, rttMs: 1.4, pair: 'host 10.1.0.2:4500 -> srflx 198.51.100.11:4500', pathReason: 'handshake completed with the peer\'s endpoint', state: 'established',
        lastHandshake: new Date(NOW - 5000).toISOString(), rxBytes: 2048, txBytes: 100,
        standby: { ours: [{ uplink: 'eth1', mapped: '203.0.113.7:4500', answeredAgoMs: 3_200 }], theirs: null, pinned: null }, bridge: '198.51.100.10:4500' },
      { nodeId: '9a'.repeat(20), publicKey: 'bc'.repeat(32), ipv4: '100.70.0.3', ipv6: 'fd1d:10c0::3', endpoint: '[100::0:1]:1',
        source: 'overlay', path: 'relayed', via: 'peer-relay', relay: '203.0.113.1:4500', rttMs: 3, pair: 'host 10.1.0.2:4500 -> peer relay 203.0.113.1:4500',
        pathReason: 'via peer relay 203.0.113.1:4500 (the peer\'s rendezvous node): no direct path', state: 'established',
        lastHandshake: new Date(NOW - 1000).toISOString(), rxBytes: 10, txBytes: 10, standby: null, bridge: null },
      { nodeId: '56'.repeat(20), publicKey: '78'.repeat(32), ipv4: '0.0.0.0', ipv6: 'fd1d:10c0::7', endpoint: '198.51.100.12:4500',
        source: 'overlay', path: 'none', via: null, relay: null, rttMs: null, pair: null, pathReason: 'handshake in progress', state: 'handshaking', lastHandshake: null, rxBytes: 0, txBytes: 0,
        standby: { ours: [], theirs: { endpoint: '198.51.100.20:61000', heardAgoMs: 900 }, pinned: 'eth1' }, bridge: null },
    ],
    overlay: overlay === null ? null : {
      joined: true, ipv4Claimed: true, bootstraps: ['198.51.100.10:4500'], routingTableSize: 7, storedRecords: 12, ownRecords: 2,
      lookups: { count: 9, empty: 1, p50LatencyMs: 3, p90LatencyMs: 8 }, rendezvous: [], datagrams: 100, malformed: 0, rejected: {},
      discovery, ...overlay,
    },
    nat: null, relay: null,
    counters: {} as AgentStatus['counters'],
    refused: {},
    access: { admission: "open overlay: any key that solves the NodeID puzzle may join", counters: null, firewall: 'no inbound rules: every member may reach every port', firewallCounters: null },
  };
}

test('status shows how the overlay was joined, its size and lookups, and each peer\'s source', () => {
  const text = formatStatus(status({}), NOW);
  assert.match(text, /listening on udp \[::\]:4500\nlocators host \[2001:db8:a::2\]:4500, host 10\.1\.0\.2:4500, srflx 203\.0\.113\.7:4500\n/);
  assert.match(text, /overlay {2}joined via 198\.51\.100\.10:4500; 7 contacts, 12 records stored, IPv4 claimed/);
  assert.match(text, /lookups {2}9 \(p50 3 ms, p90 8 ms\); peers found 2, not found 1/);
  const rows = text.split('\n').filter((l) => l.startsWith('1212') || l.startsWith('5656') || l.startsWith('9a9a'));
  assert.equal(rows.length, 3);
  assert.match(rows[0]!, /100\.70\.0\.9 .* overlay {2}host 10\.1\.0\.2:4500 -> srflx 198\.51\.100\.11:4500 .* direct .* 1\.4 ms .* 5s ago/);
  assert.match(rows[1]!, /peer relay 203\.0\.113\.1:4500 .* 3\.0 ms .* 1s ago .*\(the peer's rendezvous node\)/);
  assert.match(rows[2]!, /\(looking up\) .* overlay {2}198\.51\.100\.12:4500 .* none .* - .* never .* handshake in progress/);
  // Standby paths: ours on a second uplink, and one a peer keeps towards us, and a failover.
  assert.match(text, /standby {2}121212121212: via eth1 \(mapped 203\.0\.113\.7:4500\) answered 3 s ago\n/);
  assert.match(text, /standby {2}565656565656: the peer's other uplink 198\.51\.100\.20:61000, heard 1 s ago; traffic moved to eth1/);
  assert.doesNotMatch(text, /standby {2}9a9a/);
  // A bridge while the direct path is in doubt, on that peer only.
  assert.match(text, /bridge {3}121212121212: every packet also through peer relay 198\.51\.100\.10:4500 until the peer answers on a direct path\n/);
  assert.equal(text.match(/^bridge /gm)?.length, 1);
});

test('status says when the overlay was started here, is still joining, or is off', () => {
  assert.match(formatStatus(status({ bootstraps: [] }), NOW), /overlay {2}started a new overlay/);
  assert.match(formatStatus(status({ joined: false, ipv4Claimed: false }), NOW), /joining via 198\.51\.100\.10:4500 \(no answer yet\).*IPv4 not claimed yet/);
  assert.match(formatStatus(status(null), NOW), /overlay {2}off/);
});

test('status lists what was refused, by layer and kind, and nothing when nothing was', async () => {
  const { refusedOf } = await import('../../agent/status-refused.js');
  const quiet = formatStatus(status({}), NOW);
  assert.doesNotMatch(quiet, /refused/);
  const counters = {
    tunnels: { rxBadMac: 4, cookieReplySent: 9, rxPackets: 100 }, overlayPeers: { evictedNoData: 2, admitted: 5 },
    stun: { unpadded: 3, answered: 7 }, ice: { checksUnaimed: 1 }, traversal: { attachGuard: { replay: 2, 'spray-unaimed': 0 } },
    peerRelay: { client: {}, server: { unknownClient: 6, toClient: 8 } },
  } as unknown as AgentStatus['counters'];
  const refused = refusedOf({ ...status({}), counters }, {
    overlay: { rejected: { 'cookie-missing': 5, 'bad-signature': 1 }, route: { unproven: 2, forwarded: 9 }, store: { forged: 1 }, wrongSource: 0 },
  });
  assert.deepEqual(refused, {
    overlay: { 'cookie-missing': 5, 'bad-signature': 1 }, forwarding: { unproven: 2 }, store: { forged: 1 },
    tunnel: { rxBadMac: 4, cookieReplySent: 9 }, peers: { evictedNoData: 2 }, stun: { unpadded: 3 }, ice: { checksUnaimed: 1 },
    attach: { replay: 2 }, 'peer-relay': { unknownClient: 6 },
  });
  const text = formatStatus({ ...status({}), refused }, NOW);
  assert.match(text, /refused {2}overlay: cookie-missing 5, bad-signature 1\n {9}forwarding: unproven 2\n/);
  assert.match(text, /tunnel: rxBadMac 4, cookieReplySent 9/);
});

test('status names every relayed address of a dual allocation, and why a family is missing', () => {
  const relay = (relayedAll: string[], familyError: string | null): NonNullable<AgentStatus['relay']> => ({
    server: '[2001:db8::11]:3478', relayed: relayedAll[0] ?? null, relayedAll, familyError, error: null, peersViaRelay: 0, stats: null,
  });
  const text = (r: AgentStatus['relay']) => formatStatus({ ...status(null), relay: r }, NOW);
  assert.match(text(relay(['198.51.100.11:49152', '[2001:db8::11]:49153'], null)),
    /\nrelay {4}TURN \[2001:db8::11\]:3478: relayed addresses 198\.51\.100\.11:49152, \[2001:db8::11\]:49153\n/);
  assert.match(text(relay(['198.51.100.11:49152'], 'no IPv6 relayed address: 440 Address Family not Supported')),
    /: relayed address 198\.51\.100\.11:49152 \(no IPv6 relayed address: 440 Address Family not Supported\)\n/);
  assert.match(text({ ...relay([], null), error: 'TURN Allocate: no answer' }), /: not allocated \(TURN Allocate: no answer\)\n/);
  assert.match(text({ ...relay([], null), server: null }), /\nrelay {4}TURN \(no "turn" service record found in the overlay yet\)\n/);
});

test('status shows the DNS responder: where it listens, its upstreams, how the host uses it, its counts and drops', () => {
  const counters = {
    queries: 12, fromOverlay: 5, noData: 1, nxdomain: 2, servfail: 0, refused: 0, forwarded: 3, cacheHits: 4, truncated: 1,
    dropped: { tooLarge: 0, malformed: 1, notQuery: 0, badQuestion: 0, opcode: 0, forwardBusy: 0, remoteForward: 0, internal: 0 },
    lookups: 3, lookupsBusy: 0, lookupsTimedOut: 0, lookupsFailed: 0, upstreamQueries: 3, upstreamNoAnswer: 0, upstreamMismatched: 0,
    unanswered: 0, tcpConnections: 0, tcpRefused: 0, tcpIdleClosed: 2, tcpBadFrame: 0, tcpPipelineFull: 0, sendFailed: 0,
  };
  const dns = { listening: ['100.64.1.2:53', '[fd1d:10c0::1]:53'], upstreams: ['10.255.255.53:53'], integration: 'split DNS on idloc0 for ~idloc through systemd-resolved', cacheEntries: 3, counters };
  const text = formatStatus({ ...status(null), dns }, NOW);
  assert.match(text, /\ndns {6}100\.64\.1\.2:53, \[fd1d:10c0::1\]:53 \(udp, tcp\); forwarding to 10\.255\.255\.53:53; split DNS on idloc0 for ~idloc through systemd-resolved\n/);
  assert.match(text, /\n {9}12 queries: 5 answered from the overlay, 1 no such type, 2 NXDOMAIN \(4 of these from the cache\), 3 forwarded, 0 SERVFAIL, 1 truncated; dropped malformed 1\n/);
  assert.doesNotMatch(formatStatus(status(null), NOW), /\ndns /, 'no line without --dns');
});
