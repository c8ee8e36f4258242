// The daemon's side of DNS, with two whole agents on the in-memory network: dnsNames() answers a name
// another agent registered, and its NodeID, with the addresses `resolve` gives and a lifetime taken from
// the records; a name nobody holds is 'absent'; and the responder built on it answers bob.idloc.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { LOCATOR_LIFETIME_S } from '../../agent/base/constants.js';
import { SimScheduler } from '../../agent/base/scheduler.js';
import { Agent } from '../../agent/daemon.js';
import { MemoryTap } from '../../agent/tap/memory-tap.js';
import { MemoryNetwork } from '../../agent/conn/memory-socket.js';
import { generateIdentity } from '../../agent/idloc/identity.js';
import { Zone, type NameAnswer } from '../../agent/dns/zone.js';
import { Forwarder } from '../../agent/dns/forwarder.js';
import { Responder } from '../../agent/dns/responder.js';
import { UpstreamTwin, dataOf, decode, query } from './dns-helpers.js';
import { eventually, memoryAgent } from './memory-agent.js';

test('dnsNames(): a registered name and a NodeID resolve to the owner\'s overlay addresses, with the records\' lifetime', async () => {
  const net = new MemoryNetwork();
  const a = memoryAgent(net.socket('198.51.100.10', 4500), 0, { macByte: 0x0d });
  const b = memoryAgent(net.socket('198.51.100.11', 4500), 1, { macByte: 0x0d, bootstrap: '198.51.100.10' });
  try {
    await eventually(async () => { const r = await b.register('bob'); return r.ok ? r : undefined; }, 5000, 'register bob');
    const names = a.dnsNames();
    // b's IPv4 claim may be stored a moment after its name: until then the answer has AAAA only
    const bob = await eventually(async () => { const r = await names.lookUp('bob'); return typeof r === 'object' && r.ipv4 ? r : undefined; }, 5000, 'bob with IPv4 in DNS');
    const resolved = (await a.resolve('bob'))!;
    assert.deepEqual({ ipv4: bob.ipv4, ipv6: bob.ipv6 }, { ipv4: resolved.ipv4, ipv6: resolved.ipv6 });
    assert.equal(bob.ipv4, b.status().identity.ipv4);
    assert.ok(bob.ttlS > LOCATOR_LIFETIME_S - 60 && bob.ttlS <= LOCATOR_LIFETIME_S, `lifetime ${bob.ttlS} s: the locator's, the shorter one`);
    const byId = await names.lookUp(b.currentIdentity.nodeIdHex) as NameAnswer;
    assert.equal(byId.ipv6, bob.ipv6);
    assert.equal(await names.lookUp('nobody'), 'absent');

    const responder = new Responder({
      zone: new Zone(names, new SimScheduler()), isLocal: () => true,
      forwarder: new Forwarder({ upstreams: () => [], exchange: new UpstreamTwin() }),
    });
    const answer = decode(await responder.handle(query('bob.idloc', 'AAAA'), { address: '127.0.0.1', over: 'udp' }));
    assert.deepEqual(dataOf(answer, 'AAAA'), [bob.ipv6]);
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

test('dnsNames() of an agent without an overlay: unavailable (SERVFAIL), never "no such name"', async () => {
  const net = new MemoryNetwork();
  const tap = new MemoryTap({ name: 'mem9', mac: Uint8Array.of(2, 0, 0, 0, 0, 9) });
  const solo = new Agent({ identity: generateIdentity(), tap, socket: net.socket('198.51.100.9', 4500), logger: pino({ level: 'silent' }), peers: [] });
  try {
    assert.equal(await solo.dnsNames().lookUp('bob'), 'unavailable');
  } finally {
    await solo.close();
  }
});
