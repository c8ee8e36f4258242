// TURN servers found through the overlay: the agent on the TURN host advertises coturn with --offer-turn
// and the server's secret (a "turn" service record: the server's address and a vouch made with the secret,
// never a credential); two agents behind symmetric NATs know only --bootstrap and the coturn's shared
// secret (--turn-secret), find the server in the overlay, check the vouch, allocate with credentials
// minted from the secret (coturn's use-auth-secret, the TURN REST API), and relay through it: ping both
// ways, status says via TURN and which server. A wrong secret finds no vouch it can verify: it never sends
// the server a request.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Lab } from './lab.js';
import { coturnMissing, startCoturn, type Coturn } from './coturn.js';
import {
  agentStatus, cliMissing, createAgent, labUnavailable, logTails, startOverlayAgent, stopAgent, waitOverlayReady, type TestAgent, waitUntil,
} from './agents.js';
import { prerequisites } from './prerequisites.js';

const skip = prerequisites('TURN servers found through the overlay', labUnavailable(), cliMissing(), coturnMissing());
const SECRET = 'overlay-turn-secret';

describe('TURN servers found through the overlay (--offer-turn, --turn-secret)', { skip, timeout: 90_000 }, () => {
  let lab: Lab;
  let coturn: Coturn;
  const agents = new Map<string, TestAgent>();
  const A = (h: string) => agents.get(h)!;
  const evidence = () => '\n' + logTails([...agents.values()], 25);

  before(async () => {
    lab = await Lab.create({ hosts: ['pub', 'turn'], natHosts: [{ name: 'sym1', nat: 'symmetric' }, { name: 'sym2', nat: 'symmetric' }, { name: 'sym3', nat: 'symmetric' }] });
    coturn = await startCoturn(lab, 'turn', { username: 'unused', password: 'unused', realm: 'idloc.test', authSecret: SECRET });
    for (const h of ['pub', 'turn', 'sym1', 'sym2', 'sym3']) agents.set(h, await createAgent(lab, h));
    // Public agents relay for peers by default: switched off, so that only TURN can carry sym1 <-> sym2.
    startOverlayAgent(lab, A('pub'), [], ['--no-peer-relay']);
    await waitOverlayReady(lab, A('pub'));
    startOverlayAgent(lab, A('turn'), [A('pub')], ['--offer-turn', `${coturn.endpoint.address}:${coturn.endpoint.port}`, '--turn-secret', SECRET, '--no-peer-relay']);
    await waitOverlayReady(lab, A('turn'));
    for (const h of ['sym1', 'sym2']) startOverlayAgent(lab, A(h), [A('pub')], ['--turn-secret', SECRET]);
    startOverlayAgent(lab, A('sym3'), [A('pub')], ['--turn-secret', 'not-the-secret']);
    await Promise.all(['sym1', 'sym2', 'sym3'].map((h) => waitOverlayReady(lab, A(h))));
  });

  after(async () => {
    await Promise.all([...agents.values()].map((a) => (lab ? stopAgent(lab, a) : undefined)));
    if (coturn) await lab.stopProcess(coturn.proc);
    await lab?.destroy();
  });

  it('both symmetric hosts allocate on the advertised server with minted credentials and relay through it', async () => {
    const server = `${coturn.endpoint.address}:${coturn.endpoint.port}`;
    for (const h of ['sym1', 'sym2']) {
      await waitUntil(async () => (await agentStatus(lab, A(h))).relay?.relayed, 30_000, `${h} allocated on the server the overlay advertises${evidence()}`);
      assert.equal((await agentStatus(lab, A(h))).relay?.server, server);
    }
    const ipv4 = async (h: string) => (await agentStatus(lab, A(h))).identity.ipv4;
    for (const [x, y] of [['sym1', 'sym2'], ['sym2', 'sym1']] as const) {
      const r = await lab.exec(x, ['ping', '-c', '3', '-i', '0.2', '-W', '3', await ipv4(y)], { allowFail: true, timeoutMs: 20_000 });
      assert.equal(r.code, 0, `${x} -> ${y} failed:\n${r.stdout}${r.stderr}${evidence()}`);
    }
    const p = (await agentStatus(lab, A('sym1'))).peers.find((q) => q.publicKey === A('sym2').id.publicKey);
    assert.equal(p?.path, 'relayed', JSON.stringify(p));
    assert.equal(p?.via, 'turn', JSON.stringify(p));
    process.stderr.write(`# sym1 -> sym2: ${p?.pair}: ${p?.pathReason}\n`);
    assert.match(coturn.log(), /:[0-9a-f]{40}/, 'coturn saw a REST-API username (expiry:NodeID)');
  });

  it('a wrong secret: no vouch verifies, so the server is never asked (no credential to guess the secret from)', async () => {
    await waitUntil(async () => (await agentStatus(lab, A('sym1'))).relay?.relayed, 30_000, `sym1 allocated${evidence()}`);
    const r = (await agentStatus(lab, A('sym3'))).relay;
    assert.equal(r?.server, null, JSON.stringify(r));
    assert.equal(r?.relayed, null, JSON.stringify(r));
    assert.equal(r?.stats, null, 'no TURN client was ever made');
  });
});
