import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryNetwork, type MemorySocket } from '../../agent/conn/memory-socket.js';
import { generateIdentity, type Identity } from '../../agent/idloc/identity.js';
import { OverlayNode, hostCandidates } from '../../agent/overlay/node.js';
import { marshalOverlayMessage } from '../../agent/overlay/codec.js';
import { RecordKind, createLocatorRecord, createNameRecord, marshalRecord, signRecord, type LocatorRecord } from '../../agent/overlay/records.js';
import { OVERLAY_DEFAULT_TTL } from '../../agent/base/constants.js';

const N = 15;
const DIFFICULTY = 4; // cheap puzzle for tests; every node and store uses the same value

interface Host {
  identity: Identity;
  socket: MemorySocket;
  node: OverlayNode;
  ipv4: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

function makeHost(net: MemoryNetwork, i: number, k: number): Host {
  const identity = generateIdentity();
  const socket = net.socket(`10.0.0.${i + 1}`, 4500);
  const node = new OverlayNode({ socket, identity, puzzleDifficulty: DIFFICULTY, replicateIntervalMs: 0, k });
  socket.onMessage((msg, from) => { if (msg[0] === 0xd2) node.handleDatagram(msg, from); });
  return { identity, socket, node, ipv4: identity.ipv4 };
}

// k = 20 (the real replication factor: every node holds every record here) and k = 4 (records live on a
// few nodes only, so resolution depends on routing to them)
for (const k of [20, 4]) describe(`OverlayNode on a MemoryNetwork, ${N} nodes, k = ${k}`, () => {
  const net = new MemoryNetwork({ latencyMs: 2 });
  const hosts: Host[] = [];
  let boot!: Host;
  // MemoryNetwork latency timers and the overlay's timers are unref'd: keep the event loop alive meanwhile
  const keepAlive = setInterval(() => undefined, 1000);

  before(async () => {
    for (let i = 0; i < N; i++) hosts.push(makeHost(net, i, k));
    boot = hosts[0]!;
    const first = await boot.node.membership.join([]);
    assert.equal(first.ok, false); // nothing to join: this node starts the overlay
    for (const h of hosts.slice(1)) {
      const r = await h.node.membership.join([boot.socket.local]);
      assert.ok(r.ok, 'join through the bootstrap');
    }
    const published = await Promise.all(hosts.map((h) => h.node.publisher.publishIdentity(h.identity, [h.socket.local])));
    published.forEach((p, i) => {
      assert.ok(p.locator.ok, `locator of node ${i} stored`);
      assert.ok(p.ipv4 !== undefined && p.claim?.ok, `IPv4 of node ${i} claimed`);
      hosts[i]!.ipv4 = p.ipv4!;
    });
  });

  /** A node (not `not`) whose store holds a live record at (resource, kind): a real replica. */
  const holderOf = (resource: Uint8Array, kind: RecordKind, not: Host): Host => {
    const h = hosts.find((x) => x !== not && x.node.store.get(resource, kind, Date.now()).length > 0);
    assert.ok(h, 'some node holds the record');
    return h;
  };

  after(async () => {
    for (const h of hosts) { h.node.close(); await h.socket.close(); }
    clearInterval(keepAlive);
  });

  it('every node knows others; the bootstrap knows everyone', () => {
    if (k >= N) assert.equal(boot.node.stats().routingTableSize, N - 1);
    for (const h of hosts) assert.ok(h.node.stats().routingTableSize >= Math.min(k, 3), 'routing table filled');
  });

  it('every node resolves every other by NodeID and by IPv4', async () => {
    const checks: Promise<void>[] = [];
    for (const a of hosts) {
      for (const b of hosts) {
        if (a === b) continue;
        checks.push((async () => {
          const byId = await a.node.resolver.resolveNodeId(b.identity.nodeId);
          assert.ok(byId, 'locator by NodeID');
          assert.equal(hex(byId.owner), b.identity.publicKeyHex);
          assert.deepEqual(byId.value?.candidates.map((c) => `${c.address}:${c.port}`), [`${b.socket.local.address}:4500`]);
          const byIp = await a.node.resolver.resolveIpv4(b.ipv4);
          assert.ok(byIp, 'locator by IPv4');
          assert.equal(hex(byIp.owner), b.identity.publicKeyHex);
        })());
      }
    }
    await Promise.all(checks);
    const s = hosts[3]!.node.stats();
    assert.ok(s.lookups.count >= 2 * (N - 1));
    if (k >= N) assert.ok(s.storedRecords >= 2 * N, 'every node holds every record');
    assert.ok(s.rpc.requestsSent > 0 && s.lookups.p50LatencyMs > 0);
  });

  it('names register and resolve across nodes; a taken name is refused and the original still resolves', async () => {
    const alice = hosts[1]!;
    const r = await alice.node.publisher.registerName('Alice.idloc');
    assert.ok(r.ok);
    const seen = await hosts[9]!.node.resolver.resolveName('alice');
    assert.ok(seen?.value);
    assert.equal(hex(seen.value.nodeId), alice.identity.nodeIdHex);

    const other = hosts[2]!;
    const second = await other.node.publisher.registerName('alice');
    assert.equal(second.ok, false);
    assert.equal(second.ok === false && second.reason, 'taken');

    // bypassing the resolve-first check: a storer still refuses the second key (first-come)
    const sneaky = createNameRecord(other.node.signer, 'alice', { now: Date.now() });
    const replica = holderOf(sneaky.resourceId, RecordKind.Name, other);
    const statuses = await other.node.storeAt(replica.socket.local, [marshalRecord(sneaky)]);
    assert.deepEqual(statuses, ['taken']);

    for (const h of [hosts[4]!, hosts[12]!, other]) {
      const rec = await h.node.resolver.resolveName('alice');
      assert.equal(rec && hex(rec.value!.nodeId), alice.identity.nodeIdHex);
    }
    assert.equal(await hosts[5]!.node.resolver.resolveName('nobody-has-this'), undefined);
  });

  it('a forged record sent in a STORE is rejected and counted', async () => {
    const victim = hosts[3]!;
    const mallory = hosts[5]!;
    const storer = hosts[6]!;
    const real = await storer.node.resolver.resolveNodeId(victim.identity.nodeId);
    assert.ok(real?.value);
    // the victim's locator, pointed at mallory's address and signed with mallory's key
    const forged = signRecord({ ...real, seq: real.seq + 1000n, value: { ...real.value, candidates: hostCandidates([mallory.socket.local]) } },
      mallory.identity.privateKey) as LocatorRecord;
    const before = storer.node.stats();
    const statuses = await mallory.node.storeAt(storer.socket.local, [marshalRecord(forged)]);
    assert.deepEqual(statuses, ['forged']);
    const after = storer.node.stats();
    assert.equal((after.rejected['store-forged'] ?? 0) - (before.rejected['store-forged'] ?? 0), 1);
    assert.equal(after.store.rejected.forged - before.store.rejected.forged, 1);
    // a locator for the victim's NodeID by mallory's own key: the key does not own the resource
    const own = createLocatorRecord(mallory.node.signer, { flags: 0, candidates: [], rendezvous: [] }, { now: Date.now() });
    const wrongOwner = signRecord({ ...own, resourceId: victim.identity.nodeId }, mallory.identity.privateKey);
    assert.deepEqual(await mallory.node.storeAt(storer.socket.local, [marshalRecord(wrongOwner)]), ['forged']);

    const still = await storer.node.resolver.resolveNodeId(victim.identity.nodeId);
    assert.equal(still?.value?.candidates[0]?.address, victim.socket.local.address);
  });

  it('a stale sequence is refused', async () => {
    const owner = hosts[8]!;
    const storer = holderOf(owner.identity.nodeId, RecordKind.Locator, owner);
    const old = createLocatorRecord(owner.node.signer, { flags: 0, candidates: hostCandidates([{ address: '192.0.2.1', port: 9 }]), rendezvous: [] },
      { now: Date.now(), seq: 1n });
    const before = storer.node.stats();
    assert.deepEqual(await owner.node.storeAt(storer.socket.local, [marshalRecord(old)]), ['stale']);
    assert.equal(storer.node.stats().store.rejected.stale - before.store.rejected.stale, 1);
    const r = await hosts[11]!.node.resolver.resolveNodeId(owner.identity.nodeId);
    assert.equal(r?.value?.candidates[0]?.address, owner.socket.local.address);
  });

  it('garbage datagrams with first byte 0xD2 and senders whose NodeID is not their key are counted, never thrown', async () => {
    // a node of its own that never joined: no background overlay traffic can reach it and skew the counts
    const target = makeHost(net, 200, k);
    const raw = net.socket('10.0.9.9', 4500);
    const before = target.node.stats();
    raw.send(Uint8Array.of(0xd2), target.socket.local);
    raw.send(Uint8Array.of(0xd2, 0x49, 0x44, 0x4c, 1, 8, 0, 0, 1), target.socket.local);
    const junk = new Uint8Array(300);
    for (let i = 0; i < junk.length; i++) junk[i] = (i * 151 + 7) & 0xff;
    junk[0] = 0xd2;
    raw.send(junk, target.socket.local);
    const ping = marshalOverlayMessage({
      kind: 'ping', ttl: OVERLAY_DEFAULT_TTL, txid: 42n, via: [], dest: [],
      sender: { nodeId: new Uint8Array(20).fill(7), publicKey: hosts[2]!.identity.publicKey },
    });
    raw.send(ping, target.socket.local);
    raw.send(ping.subarray(0, ping.length - 3), target.socket.local); // truncated
    await sleep(50);
    const after = target.node.stats();
    assert.equal(after.malformed - before.malformed, 4);
    assert.equal((after.rejected['sender-id-mismatch'] ?? 0) - (before.rejected['sender-id-mismatch'] ?? 0), 1);
    assert.equal(after.datagrams - before.datagrams, 5);
    await raw.close();
    target.node.close();
    await target.socket.close();
  });

  it('LEAVE removes the leaving node from its neighbours\' tables', async () => {
    const leaver = hosts[N - 1]!;
    // a LEAVE naming the leaver but sent from elsewhere, unsigned, removes nothing: it is not even answered
    // in full (no cookie: only the cookie answer, which would be larger than it, so nothing)
    const neighbour = hosts.find((h) => h !== leaver && h.node.kad.table.get(leaver.identity.nodeId))!;
    const spoofer = net.socket('10.0.9.8', 4500);
    const r0 = neighbour.node.stats().rejected;
    spoofer.send(marshalOverlayMessage({
      kind: 'leave', ttl: OVERLAY_DEFAULT_TTL, txid: 7n, via: [], dest: [],
      sender: { nodeId: leaver.identity.nodeId, publicKey: leaver.identity.publicKey },
    }), neighbour.socket.local);
    await sleep(30);
    assert.ok(neighbour.node.kad.table.get(leaver.identity.nodeId), 'spoofed LEAVE ignored');
    const r1 = neighbour.node.stats().rejected;
    assert.equal((r1['cookie-missing'] ?? 0) - (r0['cookie-missing'] ?? 0), 1);
    assert.equal((r1['cookie-answer-too-large'] ?? 0) - (r0['cookie-answer-too-large'] ?? 0), 1);
    await spoofer.close();
    // tables are not symmetric: the LEAVE goes to the leaver's own contacts, and those drop it
    const told = new Set(leaver.node.kad.table.all().map((c) => hex(c.nodeId)));
    const acks = await leaver.node.leave();
    assert.equal(acks, told.size);
    leaver.node.close();
    await leaver.socket.close();
    for (const h of hosts.slice(0, N - 1)) {
      if (told.has(h.identity.nodeIdHex)) assert.equal(h.node.kad.table.get(leaver.identity.nodeId), undefined);
    }
  });

  it('after the bootstrap node closes, the remaining nodes still resolve each other', async () => {
    boot.node.close();
    await boot.socket.close();
    const rest = hosts.slice(1, N - 1);
    const checks: Promise<void>[] = [];
    for (const a of rest) {
      for (const b of rest) {
        if (a === b) continue;
        checks.push((async () => {
          const r = await a.node.resolver.resolveNodeId(b.identity.nodeId);
          assert.equal(r && hex(r.owner), b.identity.publicKeyHex);
        })());
      }
    }
    await Promise.all(checks);
    const a = rest[0]!;
    const b = rest[rest.length - 1]!;
    const byIp = await a.node.resolver.resolveIpv4(b.ipv4);
    assert.equal(byIp && hex(byIp.owner), b.identity.publicKeyHex);
    const name = await rest[5]!.node.resolver.resolveName('alice');
    assert.equal(name && hex(name.value!.nodeId), hosts[1]!.identity.nodeIdHex);
  });
});
