// A store flood over the wire: an attacker STOREs records for resources one node is responsible for
// (names ground to land next to it) until its store is full; a newcomer that joins next to that node
// still gets its locator stored there. 20 OverlayNodes on a MemoryNetwork, k = 4, the target's store
// scaled to 64 records with the real per-owner bound.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryNetwork, type MemorySocket } from '../../agent/conn/memory-socket.js';
import { generateIdentity, type Identity } from '../../agent/idloc/identity.js';
import { STORE_MAX_RECORDS_PER_OWNER } from '../../agent/base/constants.js';
import { OverlayNode } from '../../agent/overlay/node.js';
import { solvePuzzle } from '../../agent/overlay/puzzle.js';
import { RecordKind, createNameRecord, marshalRecord, type RecordSigner } from '../../agent/overlay/records.js';
import { RecordStore } from '../../agent/overlay/store.js';
import { nameResourceId } from '../../agent/overlay/names.js';
import { responsibility } from '../../agent/overlay/responsibility.js';
import { compareDistance } from '../../agent/overlay/xor-metric.js';

const N = 20;
const K = 4;
const DIFFICULTY = 4;
const TARGET_MAX = 64;

interface Host { identity: Identity; socket: MemorySocket; node: OverlayNode }

describe(`a STORE flood at one node, ${N} nodes, k = ${K}`, () => {
  const net = new MemoryNetwork({ latencyMs: 1 });
  const hosts: Host[] = [];
  let next = 1;
  const keepAlive = setInterval(() => undefined, 1000);

  function makeHost(identity: Identity, store?: RecordStore): Host {
    const socket = net.socket(`10.11.0.${next++}`, 4500);
    const node = new OverlayNode({ socket, identity, puzzleDifficulty: DIFFICULTY, replicateIntervalMs: 0, k: K, ...(store ? { store } : {}) });
    socket.onMessage((msg, from) => { if (msg[0] === 0xd2) node.handleDatagram(msg, from); });
    return { identity, socket, node };
  }

  before(async () => {
    for (let i = 0; i < N; i++) {
      hosts.push(makeHost(generateIdentity(), i === 5 ? new RecordStore({ puzzleDifficulty: DIFFICULTY, maxRecords: TARGET_MAX }) : undefined));
    }
    await hosts[0]!.node.start([]);
    for (const h of hosts.slice(1)) await h.node.start([hosts[0]!.socket.local]);
    await Promise.all(hosts.map((h) => h.node.publisher.publishIdentity(h.identity, [h.socket.local])));
  });

  after(async () => {
    for (const h of hosts) { h.node.close(); await h.socket.close(); }
    clearInterval(keepAlive);
  });

  it("fills the target's store, and a newcomer next to it still gets its locator stored there", async (t) => {
    const target = hosts[5]!;
    const mine = responsibility(target.node.kad.table, target.identity.nodeId, K);
    const attacker = makeHost(generateIdentity()); // never joins: it only sends STOREs
    const keys = 3;
    let sent = 0;
    let stored = 0;
    for (let k = 0; k < keys; k++) {
      const id = generateIdentity();
      const signer: RecordSigner = { privateKey: id.privateKey, publicKey: id.publicKey, puzzleNonce: solvePuzzle(id.publicKey, DIFFICULTY) };
      let n = 0;
      for (let i = 0; n < STORE_MAX_RECORDS_PER_OWNER; i++) {
        const name = `flood-${k}-${i}`;
        if (!mine(nameResourceId(name))) continue; // ground to land where the target is responsible
        n++;
        const st = await attacker.node.storeAt(target.socket.local, [marshalRecord(createNameRecord(signer, name, { now: Date.now() }))]);
        sent++;
        if (st?.[0] === 'stored') stored++;
      }
    }
    assert.equal(target.node.store.size, TARGET_MAX, 'the flood filled the store');
    // a newcomer whose NodeID puts the target among its k closest
    let newcomer: Identity;
    do newcomer = generateIdentity();
    while (hosts.slice().sort((a, b) => compareDistance(a.identity.nodeId, b.identity.nodeId, newcomer.nodeId)).indexOf(target) >= K - 1);
    const h = makeHost(newcomer);
    await h.node.start([hosts[0]!.socket.local]);
    const p = await h.node.publisher.publishIdentity(newcomer, [h.socket.local]);
    assert.ok(p.locator.ok);
    assert.equal(target.node.store.get(newcomer.nodeId, RecordKind.Locator, Date.now()).length, 1, "the newcomer's locator is stored at the target");
    assert.ok(target.node.store.size <= TARGET_MAX);
    const loc = await hosts[9]!.node.resolver.resolveNodeId(newcomer.nodeId);
    assert.equal(loc?.value?.candidates[0]?.address, h.socket.local.address);
    const s = target.node.stats().store;
    t.diagnostic(`flood STOREs: ${sent} from ${keys} keys, stored: ${stored}, evicted to make room: ${s.evicted.largestOwner + s.evicted.notResponsible}; ` +
      `newcomer locator: stored at the target (store ${s.records}/${TARGET_MAX})`);
    hosts.push(h, attacker);
  });
});
