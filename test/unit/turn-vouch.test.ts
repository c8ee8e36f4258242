// Service records are a hint, not trust (issue 9). A stranger signs "turn" records naming its own (rogue)
// servers, with no vouch or a forged one, advertises them in the overlay and STOREs them straight into the
// victim's local store; an agent with --turn-secret must send those servers nothing (a single Allocate
// would hand over a MESSAGE-INTEGRITY to guess the secret from), and must use the server the holder of
// the secret vouches for. Whole agents over the in-memory network; the TURN servers are counting sockets.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { Agent } from '../../agent/daemon.js';
import { MemoryTap } from '../../agent/tap/memory-tap.js';
import { MemoryNetwork, type MemorySocket } from '../../agent/conn/memory-socket.js';
import { generateIdentity } from '../../agent/idloc/identity.js';
import { formatIpv6 } from '../../agent/idloc/addresses.js';
import type { AgentOverlay } from '../../agent/agent-overlay.js';
import { TurnVouch } from '../../agent/nat/service-proof.js';
import { RecordKind, createServiceRecord, marshalRecord, type Candidate } from '../../agent/overlay/records.js';
import type { TurnSecret } from '../../agent/nat/turn-relay.js';
import { serviceResourceId } from '../../agent/overlay/names.js';
import type { Endpoint } from '../../agent/conn/socket.js';

const silent = pino({ level: 'silent' });
const keepAlive = setInterval(() => undefined, 1000);
after(() => clearInterval(keepAlive));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const SECRET = 'the coturn static-auth-secret';

function agent(sock: MemorySocket, i: number, o: { bootstrap?: string; turn?: TurnSecret; offerTurn?: Endpoint } = {}): Agent {
  const tap = new MemoryTap({ name: `mem${i}`, mac: Uint8Array.of(2, 0, 0, 0, 7, i) });
  const identity = generateIdentity();
  const a = new Agent({
    identity, tap, socket: sock, peers: [], logger: silent,
    ...(o.turn ? { turn: { ...o.turn, user: identity.nodeIdHex } } : {}), ...(o.offerTurn ? { offerTurn: o.offerTurn } : {}),
    overlay: { bootstraps: o.bootstrap ? [{ address: o.bootstrap, port: 4500 }] : [], puzzleDifficulty: 4 },
  });
  a.start();
  return a;
}
const overlayOf = (a: Agent) => (a as unknown as { overlay: AgentOverlay }).overlay;

/** A socket that only counts what reaches it (a TURN server that never answers). */
function server(net: MemoryNetwork, address: string): { sock: MemorySocket; from: string[] } {
  const sock = net.socket(address, 3478);
  const from: string[] = [];
  sock.onMessage((_m, f) => from.push(f.address));
  return { sock, from };
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

test('a vouch verifies only for its provider key, server and secret', () => {
  const v = new TurnVouch(SECRET);
  const key = generateIdentity().publicKey;
  const s = { address: '203.0.113.5', port: 3478 };
  const c = v.candidates(key, s);
  assert.deepEqual(v.vouched(key, c), [s]);
  assert.deepEqual(v.vouched(generateIdentity().publicKey, c), [], 'another key cannot reuse the vouch');
  assert.deepEqual(v.vouched(key, [{ ...c[0]!, port: 3479 }, c[1]!]), [], 'nor another server');
  assert.deepEqual(new TurnVouch('a guess').vouched(key, c), [], 'nor a wrong secret');
  assert.deepEqual(v.vouched(key, [c[0]!]), [], 'no vouch, no server');
  assert.equal(v.stats.refused, 3, 'each refusal counted (the wrong secret on its own instance)');
});

test('a rogue "turn" record (a stranger\'s valid signature, no or a forged vouch) is never used; a vouched one is', async (t) => {
  const net = new MemoryNetwork({ latencyMs: 1 });
  const rogue1 = server(net, '192.0.2.66');
  const rogue2 = server(net, '192.0.2.67');
  const good = server(net, '203.0.113.5');
  const S = agent(net.socket('203.0.113.1', 4500), 1);
  const X = agent(net.socket('203.0.113.9', 4500), 2, { bootstrap: '203.0.113.1' });
  // The genuine provider holds the secret and vouches for its server.
  const P = agent(net.socket('203.0.113.4', 4500), 3, { bootstrap: '203.0.113.1', turn: { secret: SECRET, user: '' }, offerTurn: good.sock.local });
  const victimSock = net.socket('203.0.113.20', 4500);
  let V: Agent | undefined;
  try {
    await until(() => (X.status().overlay?.routingTableSize ?? 0) > 0 && (P.status().overlay?.routingTableSize ?? 0) > 0, 8000, 'X and P to join');
    // The stranger's record: rogue1 with no vouch, rogue2 with a made-up one (valid signature, valid puzzle).
    const forged: Candidate = { address: formatIpv6(randomBytes(16)), port: 0, type: 0, priority: 12345 };
    const cands: Candidate[] = [
      { address: rogue1.sock.local.address, port: 3478, type: 0, priority: 0 },
      { address: rogue2.sock.local.address, port: 3478, type: 0, priority: 0 }, forged,
    ];
    const xo = overlayOf(X);
    assert.ok(await xo.advertise('turn', cands), 'the overlay stores the stranger\'s record');
    const rec = marshalRecord(createServiceRecord(xo.node.signer, 'turn', cands, { now: Date.now() }));
    // Wait for P's vouched record, so that the victim's first look finds both.
    await until(() => good.from.length > 0, 8000, 'P to use its own server');
    V = agent(victimSock, 4, { bootstrap: '203.0.113.1', turn: { secret: SECRET, user: '' } });
    // ... and straight into the victim's own store, before its first look.
    await xo.node.storeAt(victimSock.local, [rec]);
    const vo = overlayOf(V);
    const planted = vo.node.store.getAll(serviceResourceId('turn'), RecordKind.Service, Date.now());
    await until(() => good.from.includes('203.0.113.20'), 15_000, 'the victim to allocate at the vouched server');
    await sleep(300);
    const pk = (V as unknown as { pathKeeper: { providersRefused: Record<string, number> } }).pathKeeper.providersRefused;
    t.diagnostic(`rogue servers in a stranger's signed record: 2 (no vouch, forged vouch), planted in the victim's store: ${planted.length > 0}; `
      + `requests that reached them: ${rogue1.from.length + rogue2.from.length}; refused provider endpoints: ${JSON.stringify(pk)}; `
      + `requests from the victim at the vouched server: ${good.from.filter((a) => a === '203.0.113.20').length}`);
    assert.equal(rogue1.from.length + rogue2.from.length, 0, 'not one request (no Allocate, no MESSAGE-INTEGRITY) reached a rogue server');
    assert.ok(pk.turn >= 2, 'the rogue servers were refused and counted');
  } finally {
    await Promise.all([S.close(), X.close(), P.close(), V?.close()]);
  }
});
