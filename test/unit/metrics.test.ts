// --metrics: the Prometheus text a scrape gets (metrics.ts), from a status twin; the listener answers
// GET /metrics only; and the readable logs (logging.ts) next to the JSON ones.
import test from 'node:test';
import assert from 'node:assert/strict';
import { get } from 'node:http';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import { metricsRegistry, serveMetrics } from '../../agent/metrics.js';
import type { AgentStatus } from '../../agent/status.js';

const peer = (nodeId: string, path: string, via: string | null, rx: number, tx: number) =>
  ({ nodeId, ipv4: '100.64.0.9', path, via, rxBytes: rx, txBytes: tx }) as unknown as AgentStatus['peers'][number];

function status(scrapes: { n: number }): AgentStatus {
  scrapes.n++;
  return {
    peers: [peer('aa', 'direct', null, 100, 200), peer('bb', 'relayed', 'peer-relay', 1_000, 3_000)],
    counters: {
      tunnels: { rxPackets: 5, txPackets: 7, handshakeInitSent: 2, handshakeInitRecv: 1, handshakeRespSent: 1, handshakeRespRecv: 2, handshakeCompleted: 3, handshakeGaveUp: 0, handshakeRejected: 4 },
      peerRelay: { server: { bytes: 4_096 } },
    },
    refused: { tunnel: { rxReplayed: 9 }, stun: { overBudget: 2 } },
    overlay: { lookups: { count: 12, p50LatencyMs: 3, p90LatencyMs: 8 }, discovery: { found: 2, notFound: 1, timedOut: 0, wrongOwner: 0 } },
  } as unknown as AgentStatus;
}

test('a scrape: per-peer bytes and path, handshakes, drops by reason, lookups, relay bytes; one status per scrape', async () => {
  const scrapes = { n: 0 };
  const text = await metricsRegistry(() => status(scrapes)).metrics();
  assert.equal(scrapes.n, 1, 'every metric read the same status');
  for (const line of [
    'idloc_peers 2',
    'idloc_peer_info{node_id="bb",ipv4="100.64.0.9",path="relayed",via="peer-relay"} 1',
    'idloc_peer_receive_bytes_total{node_id="aa"} 100',
    'idloc_peer_transmit_bytes_total{node_id="bb"} 3000',
    'idloc_handshakes_total{event="completed"} 3',
    'idloc_dropped_total{layer="tunnel",reason="rxReplayed"} 9',
    'idloc_dropped_total{layer="stun",reason="overBudget"} 2',
    'idloc_overlay_lookups_total 12',
    'idloc_overlay_lookup_latency_ms{quantile="0.9"} 8',
    'idloc_discovery_lookups_total{result="not_found"} 1',
    'idloc_relayed_bytes_total{via="peer-relay"} 4000',
    'idloc_relay_served_bytes_total 4096',
    '# TYPE idloc_handshakes_total counter',
  ]) assert.ok(text.split('\n').includes(line), `missing: ${line}\n${text}`);
  // the next scrape reads a fresh status
  await metricsRegistry(() => status(scrapes)).metrics();
  assert.equal(scrapes.n, 2);
});

test('the listener: GET /metrics in the text format, 404 for anything else', async () => {
  const server = await serveMetrics({ address: '127.0.0.1', port: 0 }, () => status({ n: 0 }));
  const port = (server.address() as AddressInfo).port;
  const fetch = (path: string, method = 'GET') => new Promise<{ code: number; type: string; body: string }>((resolve, reject) => {
    const req = get({ host: '127.0.0.1', port, path, method }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c)).on('end', () => resolve({ code: res.statusCode!, type: String(res.headers['content-type']), body }));
    });
    req.on('error', reject);
  });
  try {
    const ok = await fetch('/metrics');
    assert.equal(ok.code, 200);
    assert.match(ok.type, /^text\/plain; version=0\.0\.4/);
    assert.match(ok.body, /^idloc_peers 2$/m);
    assert.equal((await fetch('/')).code, 404);
    assert.equal((await fetch('/metrics', 'POST')).code, 404);
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
});

test('logs: readable lines with --log-format pretty (or on a terminal), pino JSON otherwise', () => {
  const mod = fileURLToPath(new URL('../../agent/logging.js', import.meta.url));
  const run = (format: string) => spawnSync(process.execPath, ['--input-type=module', '-e',
    `const { agentLogger } = await import(${JSON.stringify(mod)}); agentLogger('info', '${format}').info({ peer: 'ab12' }, 'path to peer');`], { encoding: 'utf8' }).stderr;
  const pretty = run('pretty');
  assert.match(pretty, /INFO.*path to peer/);
  assert.match(pretty, /peer: "ab12"/);
  assert.doesNotMatch(pretty, /"level":30/);
  const json = JSON.parse(run('auto').trim()) as { level: number; msg: string; peer: string };
  assert.deepEqual([json.level, json.msg, json.peer], [30, 'path to peer', 'ab12'], 'stderr is a pipe here: JSON');
});
