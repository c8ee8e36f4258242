import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryNetwork, type MemorySocket } from '../../agent/conn/memory-socket.js';
import { generateIdentity, type Identity } from '../../agent/idloc/identity.js';
import { ipv4FromNodeId, ipv6FromNodeId } from '../../agent/idloc/addresses.js';
import { OverlayNode } from '../../agent/overlay/node.js';
import { claimAttemptOrder } from '../../agent/overlay/node-publish.js';
import { solvePuzzle } from '../../agent/overlay/puzzle.js';
import {
  RecordKind, ServiceFlag, createIpv4ClaimRecord, isTombstone, marshalRecord, type LocatorRecord,
} from '../../agent/overlay/records.js';
import { IPV4_MAX_CLAIM_ATTEMPT } from '../../agent/base/constants.js';
import { ipv4ResourceId } from '../../agent/overlay/names.js';

const N = 8;
const K = 4; // records live on a few nodes only, so every answer depends on routing to them
const DIFFICULTY = 4; // cheap puzzle for tests; every node and store uses the same value
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

interface Host {
  identity: Identity;
  socket: MemorySocket;
  node: OverlayNode;
  ipv4: number;
}

describe(`OverlayNode resolution and locator updates, ${N} nodes, k = ${K}`, () => {
  const net = new MemoryNetwork({ latencyMs: 1 });
  const hosts: Host[] = [];
  let next = 1;
  const keepAlive = setInterval(() => undefined, 1000); // network and overlay timers are unref'd

  function makeHost(identity = generateIdentity()): Host {
    const socket = net.socket(`10.5.0.${next++}`, 4500);
    const node = new OverlayNode({ socket, identity, puzzleDifficulty: DIFFICULTY, replicateIntervalMs: 0, k: K });
    socket.onMessage((msg, from) => { if (msg[0] === 0xd2) node.handleDatagram(msg, from); });
    return { identity, socket, node, ipv4: identity.ipv4 };
  }

  async function joinHost(h: Host): Promise<void> {
    await h.node.start([hosts[0]!.socket.local]);
  }

  before(async () => {
    for (let i = 0; i < N; i++) hosts.push(makeHost());
    await hosts[0]!.node.start([]);
    for (const h of hosts.slice(1)) await joinHost(h);
    const published = await Promise.all(hosts.map((h) => h.node.publisher.publishIdentity(h.identity, [h.socket.local], ServiceFlag.Stun)));
    published.forEach((p, i) => {
      assert.ok(p.locator.ok && p.claim?.ok, `identity of node ${i} published`);
      hosts[i]!.ipv4 = p.ipv4!;
    });
  });

  after(async () => {
    for (const h of hosts) { h.node.close(); await h.socket.close(); }
    clearInterval(keepAlive);
  });

  it('resolveIpv6: every overlay IPv6 address leads to its owner\'s locator', async () => {
    for (const a of [hosts[1]!, hosts[6]!]) {
      for (const b of hosts) {
        const loc = await a.node.resolver.resolveIpv6(ipv6FromNodeId(b.identity.nodeId));
        assert.equal(loc && hex(loc.owner), b.identity.publicKeyHex);
        assert.equal(loc?.value?.candidates[0]?.address, b.socket.local.address);
      }
    }
  });

  it('resolveIpv6: undefined for a non-overlay address, and for an overlay address nobody owns', async () => {
    const a = hosts[2]!;
    const ula = ipv6FromNodeId(hosts[3]!.identity.nodeId);
    ula[1] ^= 0xff; // fd1d -> fde2: a ULA, not the overlay prefix
    assert.equal(await a.node.resolver.resolveIpv6(ula), undefined);
    assert.equal(await a.node.resolver.resolveIpv6(new Uint8Array(15)), undefined);
    assert.equal(await a.node.resolver.resolveIpv6(ipv6FromNodeId(generateIdentity().nodeId)), undefined);
    // the same 96 bits with a different key behind them: the owner found does not own this address
    const near = ipv6FromNodeId(hosts[4]!.identity.nodeId);
    near[15] ^= 1;
    assert.equal(await a.node.resolver.resolveIpv6(near), undefined);
  });

  it('resolveIpv6 finds an owner that never answers us (behind a NAT that filters) from the first answer listing its key', async () => {
    const z = makeHost();
    const seed = hosts[0]!;
    z.node.kad.table.observe({ nodeId: seed.identity.nodeId, publicKey: seed.identity.publicKey, endpoint: seed.socket.local });
    const target = hosts.find((h) => h !== seed)!;
    // Everything from z to the target is dropped, as a filtering NAT in front of the target would.
    net.setTranslate((from, to) => (from.address === z.socket.local.address && to.address === target.socket.local.address ? undefined : from));
    try {
      const t0 = Date.now();
      const loc = await z.node.resolver.resolveIpv6(ipv6FromNodeId(target.identity.nodeId));
      assert.equal(loc && hex(loc.owner), target.identity.publicKeyHex);
      assert.ok(Date.now() - t0 < 1_000, `found in ${Date.now() - t0} ms, without waiting out the owner's silence`);
    } finally {
      net.setTranslate(undefined);
    }
    await z.node.membership.whenJoined();
    z.node.close();
    await z.socket.close();
    for (const h of hosts) h.node.kad.table.remove(z.identity.nodeId);
  });

  it('resolveIpv6 finds an owner missing from the routing table by a FIND_NODE lookup', async () => {
    const z = makeHost();
    const seed = hosts[0]!;
    z.node.kad.table.observe({ nodeId: seed.identity.nodeId, publicKey: seed.identity.publicKey, endpoint: seed.socket.local });
    const target = hosts.find((h) => h !== seed)!;
    assert.equal(z.node.kad.table.get(target.identity.nodeId), undefined);
    const before = z.node.stats().lookups.count;
    const loc = await z.node.resolver.resolveIpv6(ipv6FromNodeId(target.identity.nodeId));
    assert.equal(loc && hex(loc.owner), target.identity.publicKeyHex);
    assert.equal(z.node.stats().lookups.count - before, 2, 'one node lookup, one FETCH');
    // z's table grew from empty, so it joins in the background: let that end before z goes. Nodes z met but
    // keeps no room for (k = 4) get no LEAVE: drop z from every table, or later lookups wait for it to time out
    await z.node.membership.whenJoined();
    z.node.close();
    await z.socket.close();
    for (const h of hosts) h.node.kad.table.remove(z.identity.nodeId);
  });

  it('ipv4Of: the address each key holds a claim for; undefined for a key with none', async () => {
    for (const b of hosts) assert.equal(await hosts[5]!.node.resolver.ipv4Of(b.identity.publicKey), b.ipv4);
    assert.equal(await hosts[5]!.node.resolver.ipv4Of(generateIdentity().publicKey), undefined);
    assert.equal(await hosts[5]!.node.resolver.ipv4Of(new Uint8Array(5)), undefined);
  });

  it('publishIdentity tries the preferred attempt first; ipv4Of then finds that address', async () => {
    assert.deepEqual(claimAttemptOrder(6).slice(0, 4), [6, 0, 1, 2]);
    assert.equal(claimAttemptOrder(6).length, IPV4_MAX_CLAIM_ATTEMPT + 1);
    assert.deepEqual(claimAttemptOrder(IPV4_MAX_CLAIM_ATTEMPT + 1), claimAttemptOrder(undefined));
    assert.deepEqual(claimAttemptOrder(1.5), claimAttemptOrder(0));
    const late = makeHost();
    await joinHost(late);
    const p = await late.node.publisher.publishIdentity(late.identity, [late.socket.local], 0, { preferAttempt: 6 });
    assert.equal(p.attempt, 6);
    assert.equal(p.ipv4, ipv4FromNodeId(late.identity.nodeId, 6));
    assert.ok(p.claim?.ok);
    assert.equal(await hosts[3]!.node.resolver.ipv4Of(late.identity.publicKey), p.ipv4);
    const loc = await hosts[3]!.node.resolver.resolveIpv4(p.ipv4!);
    assert.equal(loc && hex(loc.owner), late.identity.publicKeyHex);
    hosts.push(late);
  });

  it('publishIdentity falls back to 0, 1, ... when another key holds the preferred address', async () => {
    // two keys whose derivations meet: (x, ax) and (y, ay) give one IPv4 address (a birthday search over
    // 32 attempts per key in 2^22 addresses: about a hundred keys)
    const seen = new Map<number, { id: Identity; attempt: number }>();
    let pair: [{ id: Identity; attempt: number }, { id: Identity; attempt: number }] | undefined;
    for (let i = 0; i < 5000 && !pair; i++) {
      const id = generateIdentity();
      for (let a = 0; a <= IPV4_MAX_CLAIM_ATTEMPT && !pair; a++) {
        const ip = ipv4FromNodeId(id.nodeId, a);
        const other = seen.get(ip);
        if (other && other.id !== id) pair = [{ id, attempt: a }, other];
        else if (!other) seen.set(ip, { id, attempt: a });
      }
    }
    assert.ok(pair, 'a colliding pair of keys');
    const [x, y] = pair;
    // y holds the address first (its claim stored through any node)
    const ySigner = { privateKey: y.id.privateKey, publicKey: y.id.publicKey, puzzleNonce: solvePuzzle(y.id.publicKey, DIFFICULTY) };
    const yClaim = createIpv4ClaimRecord(ySigner, y.attempt, { now: Date.now() });
    assert.ok((await hosts[2]!.node.publisher.publish(marshalRecord(yClaim), { republish: false })).ok);
    const xh = makeHost(x.id);
    await joinHost(xh);
    const p = await xh.node.publisher.publishIdentity(x.id, [xh.socket.local], 0, { preferAttempt: x.attempt });
    const expected = claimAttemptOrder(x.attempt)[1]!; // 0, or 1 if the preferred one was 0
    assert.equal(p.attempt, expected);
    assert.equal(p.ipv4, ipv4FromNodeId(x.id.nodeId, expected));
    const holder = await hosts[1]!.node.resolver.resolveIpv4Claim(ipv4FromNodeId(x.id.nodeId, x.attempt));
    assert.equal(holder && hex(holder.owner), y.id.publicKeyHex, 'the first claimant keeps the address');
    assert.equal(await hosts[1]!.node.resolver.ipv4Of(x.id.publicKey), p.ipv4);
    hosts.push(xh);
  });

  it('publishIdentity moving to another attempt withdraws the old claim: tombstones at the k closest, ipv4Of gives the new address', async () => {
    const m = makeHost();
    await joinHost(m);
    const first = await m.node.publisher.publishIdentity(m.identity, [m.socket.local], 0);
    assert.equal(first.attempt, 0);
    assert.equal(await hosts[2]!.node.resolver.ipv4Of(m.identity.publicKey), first.ipv4);
    // the key moves to attempt 5 (e.g. identity.json asked for it): attempt 0's claim must not linger an hour
    const second = await m.node.publisher.publishIdentity(m.identity, [m.socket.local], 0, { preferAttempt: 5 });
    assert.equal(second.attempt, 5);
    assert.ok(second.claim?.ok);
    for (const h of [hosts[2]!, hosts[6]!]) {
      assert.equal(await h.node.resolver.resolveIpv4Claim(first.ipv4!), undefined, 'the old claim is no longer fetched');
      assert.equal(await h.node.resolver.ipv4Of(m.identity.publicKey), second.ipv4);
    }
    // the k closest to the old claim's resource hold the tombstone (newer than the claim), not the claim
    // (a node further out may keep a copy the store-on-join hand-off gave it: fetches find the tombstone
    // at the closer holders, and the higher sequence wins)
    const oldResource = ipv4ResourceId(first.ipv4!);
    const dist = (h: Host) => Buffer.from(h.identity.nodeId.map((b, j) => b ^ oldResource[j]!));
    const closest = hosts.concat(m).sort((x, y) => Buffer.compare(dist(x), dist(y))).slice(0, K);
    for (const h of closest) {
      const recs = h.node.store.getAll(oldResource, RecordKind.Ipv4Claim, Date.now());
      assert.equal(recs.length, 1);
      assert.ok(isTombstone(recs[0]!) && hex(recs[0]!.owner) === m.identity.publicKeyHex);
    }
    assert.equal(m.node.stats().ownRecords, 2, 'one locator, one claim: the old claim is no longer republished');
    hosts.push(m);
  });

  it('updateLocator: a freshly signed locator with a higher sequence, stored now; flags kept', async () => {
    const u = hosts[4]!;
    const own = (): LocatorRecord => u.node.store.get(u.identity.nodeId, RecordKind.Locator, Date.now())[0] as LocatorRecord;
    const before = own();
    const r1 = await u.node.publisher.updateLocator([{ address: '192.0.2.77', port: 4600 }, u.socket.local]);
    assert.ok(r1.ok && r1.local === 'stored' && r1.statuses.stored > 0);
    const first = own();
    assert.ok(first.seq > before.seq);
    assert.deepEqual(first.value?.candidates.map((c) => c.address), ['192.0.2.77', u.socket.local.address]);
    // twice within the same millisecond still replaces it
    const [r2, r3] = await Promise.all([
      u.node.publisher.updateLocator([{ address: '192.0.2.78', port: 4600 }]),
      u.node.publisher.updateLocator([{ address: '192.0.2.79', port: 4600 }]),
    ]);
    assert.ok(r2.ok && r3.ok);
    const now = own();
    assert.ok(now.seq > first.seq + 1n, 'the sequence went up with each update');
    assert.equal(now.value?.flags, ServiceFlag.Stun);
    for (const h of [hosts[0]!, hosts[7]!]) {
      const seen = await h.node.resolver.resolveNodeId(u.identity.nodeId);
      assert.equal(seen?.value?.candidates.map((c) => `${c.address}:${c.port}`).join(' '), '192.0.2.79:4600');
      assert.equal(seen?.seq, now.seq);
      const byIp = await h.node.resolver.resolveIpv6(u.identity.ipv6);
      assert.equal(byIp?.value?.candidates[0]?.address, '192.0.2.79');
    }
    assert.equal(u.node.stats().ownRecords, 2, 'one locator, one claim');
  });
});
