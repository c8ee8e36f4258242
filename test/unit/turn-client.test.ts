// TurnClient against a tiny fake TURN server on the in-memory network. The fake decodes requests and checks
// MESSAGE-INTEGRITY with the `stun` package and builds its answers with it, so client and server share no
// parsing code; it relays between a relay socket per allocation and its client (ChannelData when a
// channel is bound, Data indications otherwise), as RFC 8656 servers do.
import { afterEach, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MemoryNetwork, type MemorySocket } from '../../agent/conn/memory-socket.js';
import { classifyDatagram } from '../../agent/nat/demux.js';
import { endpointKey, type Endpoint } from '../../agent/conn/socket.js';
import { TurnClient, TurnError, type TurnClientOptions } from '../../agent/nat/turn-client.js';
import {
  ATTR_CHANNEL_NUMBER, ATTR_DATA, ATTR_ERROR_CODE, ATTR_LIFETIME, ATTR_MESSAGE_INTEGRITY, ATTR_NONCE, ATTR_REALM,
  ATTR_USERNAME, ATTR_XOR_MAPPED_ADDRESS, ATTR_XOR_PEER_ADDRESS, ATTR_XOR_RELAYED_ADDRESS, TURN_METHOD_ALLOCATE,
  TURN_METHOD_CHANNEL_BIND, TURN_METHOD_CREATE_PERMISSION, TURN_METHOD_DATA, TURN_METHOD_REFRESH, TURN_METHOD_SEND,
  encodeChannelData, longTermKey,
} from '../../agent/nat/turn-wire.js';
import { STUN_CLASS_ERROR, STUN_CLASS_INDICATION, STUN_CLASS_REQUEST, STUN_CLASS_SUCCESS, stunType } from '../../agent/nat/stun-wire.js';
import { integrityHolds, stunPackage, type StunDecoded } from './stun-package.js';

const SERVER: Endpoint = { address: '192.0.2.1', port: 3478 };
const REALM = 'fake.realm';
const USER = 'alice';
const PASS = 's3cret';
const methodOf = (t: number): number => (t & 0x000f) | ((t & 0x00e0) >> 1) | ((t & 0x3e00) >> 2);
const classOf = (t: number): number => ((t & 0x0010) >> 4) | ((t & 0x0100) >> 7);
const tick = (ms = 0): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface FakeAllocation {
  client: Endpoint;
  relay: MemorySocket;
  perms: Set<string>;
  channels: Map<number, Endpoint>;
  channelOfPeer: Map<string, number>;
  lifetimeS: number;
}

class FakeTurnServer {
  readonly socket: MemorySocket;
  nonce = 'nonce-1';
  lifetimeS = 600;
  /** Drop this many requests before answering (retransmission tests). */
  dropRequests = 0;
  /** Sign success answers with a wrong key. */
  forgeIntegrity = false;
  readonly log: { method: number; authed: boolean; lifetime?: number }[] = [];
  readonly allocations = new Map<string, FakeAllocation>();
  private nextRelayPort = 50_000;

  constructor(private readonly net: MemoryNetwork, private readonly users = new Map([[USER, PASS]])) {
    this.socket = net.socket(SERVER.address, SERVER.port);
    this.socket.onMessage((msg, from) => this.onMessage(Buffer.from(msg), from));
  }

  count(method: number): number {
    return this.log.filter((l) => l.method === method && l.authed).length;
  }

  /** Forget an allocation without telling the client (a server restart). */
  forget(client: Endpoint): void {
    const a = this.allocations.get(endpointKey(client));
    if (a) { void a.relay.close(); this.allocations.delete(endpointKey(client)); }
  }

  private onMessage(msg: Buffer, from: Endpoint): void {
    const alloc = this.allocations.get(endpointKey(from));
    if (classifyDatagram(msg[0]) === 'turn-channel') {
      const peer = alloc?.channels.get(msg.readUInt16BE(0));
      if (alloc && peer) alloc.relay.send(msg.subarray(4, 4 + msg.readUInt16BE(2)), peer);
      return;
    }
    let m: StunDecoded;
    try { m = stunPackage.decode(msg); } catch { return; }
    if (classOf(m.type) === STUN_CLASS_INDICATION && methodOf(m.type) === TURN_METHOD_SEND) {
      const peer = m.getAttribute(ATTR_XOR_PEER_ADDRESS)?.value as Endpoint | undefined;
      const data = m.getAttribute(ATTR_DATA)?.value as Buffer | undefined;
      if (alloc && peer && data && alloc.perms.has(peer.address)) alloc.relay.send(data, { address: peer.address, port: peer.port });
      return;
    }
    if (classOf(m.type) !== STUN_CLASS_REQUEST) return;
    const method = methodOf(m.type);
    const user = m.getAttribute(ATTR_USERNAME)?.value as Buffer | undefined;
    const nonce = m.getAttribute(ATTR_NONCE)?.value as Buffer | undefined;
    const lt = m.getAttribute(ATTR_LIFETIME)?.value as number | undefined;
    this.log.push({ method, authed: user !== undefined, ...(lt !== undefined ? { lifetime: lt } : {}) });
    if (this.dropRequests > 0) { this.dropRequests--; return; }
    const reply = (cls: number, fill: (r: ReturnType<typeof stunPackage.createMessage>) => void, key?: Buffer): void => {
      const r = stunPackage.createMessage(stunType(method, cls), m.transactionId);
      fill(r);
      if (key) r.addMessageIntegrity(this.forgeIntegrity ? longTermKey(USER, REALM, 'forged') : key);
      this.socket.send(r.toBuffer(), from);
    };
    const error = (code: number, reason: string, extra?: (r: ReturnType<typeof stunPackage.createMessage>) => void): void =>
      reply(STUN_CLASS_ERROR, (r) => { r.addAttribute(ATTR_ERROR_CODE, code, reason); extra?.(r); });
    const challenge = (r: ReturnType<typeof stunPackage.createMessage>): void => {
      r.addAttribute(ATTR_REALM, REALM);
      r.addAttribute(ATTR_NONCE, this.nonce);
    };
    // Long-term credentials (RFC 8489 9.2.4).
    const password = user && this.users.get(user.toString());
    if (!user || !m.getAttribute(ATTR_MESSAGE_INTEGRITY)) { error(401, 'Unauthorized', challenge); return; }
    const key = longTermKey(user.toString(), REALM, password ?? '');
    if (password === undefined || !integrityHolds(msg, key)) { error(401, 'Unauthorized', challenge); return; }
    if (nonce?.toString() !== this.nonce) { error(438, 'Stale Nonce', challenge); return; }

    const k = endpointKey(from);
    switch (method) {
      case TURN_METHOD_ALLOCATE: {
        if (alloc) { error(437, 'Allocation Mismatch'); return; }
        const relay = this.net.socket(SERVER.address, this.nextRelayPort++);
        const a: FakeAllocation = { client: from, relay, perms: new Set(), channels: new Map(), channelOfPeer: new Map(), lifetimeS: this.lifetimeS };
        relay.onMessage((data, peer) => this.fromPeer(a, Buffer.from(data), peer));
        this.allocations.set(k, a);
        reply(STUN_CLASS_SUCCESS, (r) => {
          r.addAttribute(ATTR_XOR_RELAYED_ADDRESS, relay.local.address, relay.local.port);
          r.addAttribute(ATTR_XOR_MAPPED_ADDRESS, from.address, from.port);
          r.addAttribute(ATTR_LIFETIME, this.lifetimeS);
        }, key);
        return;
      }
      case TURN_METHOD_REFRESH: {
        if (!alloc) { error(437, 'Allocation Mismatch'); return; }
        if (lt === 0) this.forget(from);
        reply(STUN_CLASS_SUCCESS, (r) => r.addAttribute(ATTR_LIFETIME, lt === 0 ? 0 : this.lifetimeS), key);
        return;
      }
      case TURN_METHOD_CREATE_PERMISSION: {
        const peer = m.getAttribute(ATTR_XOR_PEER_ADDRESS)?.value as Endpoint | undefined;
        if (!alloc) { error(437, 'Allocation Mismatch'); return; }
        if (!peer) { error(400, 'Bad Request'); return; }
        alloc.perms.add(peer.address);
        reply(STUN_CLASS_SUCCESS, () => {}, key);
        return;
      }
      case TURN_METHOD_CHANNEL_BIND: {
        const peer = m.getAttribute(ATTR_XOR_PEER_ADDRESS)?.value as Endpoint | undefined;
        const num = (m.getAttribute(ATTR_CHANNEL_NUMBER)?.value as number | undefined ?? 0) >>> 16;
        if (!alloc) { error(437, 'Allocation Mismatch'); return; }
        if (!peer || num < 0x4000 || num > 0x4fff) { error(400, 'Bad Request'); return; }
        const p = { address: peer.address, port: peer.port };
        alloc.channels.set(num, p);
        alloc.channelOfPeer.set(endpointKey(p), num);
        alloc.perms.add(p.address);
        reply(STUN_CLASS_SUCCESS, () => {}, key);
        return;
      }
      default:
        error(400, 'Bad Request');
    }
  }

  private fromPeer(a: FakeAllocation, data: Buffer, peer: Endpoint): void {
    if (!a.perms.has(peer.address)) return;
    const ch = a.channelOfPeer.get(endpointKey(peer));
    if (ch !== undefined) { this.socket.send(encodeChannelData(ch, data), a.client); return; }
    const ind = stunPackage.createMessage(stunType(TURN_METHOD_DATA, STUN_CLASS_INDICATION));
    ind.addAttribute(ATTR_XOR_PEER_ADDRESS, peer.address, peer.port);
    ind.addAttribute(ATTR_DATA, data);
    this.socket.send(ind.toBuffer(), a.client);
  }
}

describe('TurnClient against a fake TURN server (in-memory network)', () => {
  let net: MemoryNetwork;
  let server: FakeTurnServer;
  let sock: MemorySocket;
  let peer: MemorySocket;
  let wire: Buffer[];
  let clients: TurnClient[];
  let keepAlive: NodeJS.Timeout;

  const client = (opts: Partial<TurnClientOptions> = {}, s: MemorySocket = sock): TurnClient => {
    const t = new TurnClient({
      server: SERVER, username: USER, password: PASS, rtoMs: 20,
      send: (b, to) => { wire.push(Buffer.from(b)); s.send(b, to); },
      ...opts,
    });
    // As the agent's demux would: STUN and ChannelData from the socket go to the TURN client.
    s.onMessage((msg, from) => {
      const c = classifyDatagram(msg[0]);
      if (c === 'stun' || c === 'turn-channel') t.handleDatagram(msg, from);
    });
    clients.push(t);
    return t;
  };
  const peerInbox = (): { data: Buffer; from: Endpoint }[] => {
    const got: { data: Buffer; from: Endpoint }[] = [];
    peer.onMessage((data, from) => got.push({ data: Buffer.from(data), from }));
    return got;
  };
  const clientInbox = (t: TurnClient): { data: Buffer; from: Endpoint }[] => {
    const got: { data: Buffer; from: Endpoint }[] = [];
    t.onData = (from, data) => got.push({ data: Buffer.from(data), from });
    return got;
  };

  beforeEach(() => {
    // The client's timers are unref'd (a real socket keeps an agent alive); this keeps the test alive.
    keepAlive = setInterval(() => {}, 1000);
    net = new MemoryNetwork();
    server = new FakeTurnServer(net);
    sock = net.socket('198.51.100.20', 4500);
    peer = net.socket('203.0.113.5', 7000);
    wire = [];
    clients = [];
  });
  afterEach(async () => {
    for (const t of clients) await t.close();
    clearInterval(keepAlive);
  });

  it('allocates after the 401 REALM/NONCE challenge, with MESSAGE-INTEGRITY on the retry', async () => {
    const t = client();
    const a = await t.allocate();
    assert.deepEqual(a.mapped, sock.local);
    assert.equal(a.relayed.address, SERVER.address);
    assert.equal(a.lifetimeS, 600);
    assert.deepEqual(server.log.map((l) => [l.method, l.authed]), [[TURN_METHOD_ALLOCATE, false], [TURN_METHOD_ALLOCATE, true]]);
    assert.deepEqual(t.allocation, a);
    assert.equal(await t.allocate(), a, 'a second allocate() returns the same allocation');
  });

  it('fails with a clear error on a wrong password', async () => {
    const t = client({ password: 'wrong' });
    await assert.rejects(t.allocate(), (e: unknown) => {
      assert.ok(e instanceof TurnError);
      assert.equal(e.code, 401);
      assert.match(e.message, /401 Unauthorized \(wrong username or password for realm "fake\.realm"\)/);
      return true;
    });
    assert.equal(t.allocation, undefined);
  });

  it('retries with the fresh nonce on 438 Stale Nonce', async () => {
    const t = client();
    await t.allocate();
    server.nonce = 'nonce-2';
    await t.permit(peer.local);
    assert.equal(server.log.filter((l) => l.method === TURN_METHOD_CREATE_PERMISSION).length, 2);
    assert.ok(server.allocations.values().next().value!.perms.has(peer.local.address));
  });

  it('relays both ways through Send and Data indications after permit()', async () => {
    const t = client();
    const fromPeer = clientInbox(t);
    const toPeer = peerInbox();
    const a = await t.allocate();
    await t.permit(peer.local);
    const msg = Buffer.from('hello through the relay');
    assert.ok(t.sendTo(peer.local, msg));
    await tick();
    assert.deepEqual(toPeer, [{ data: msg, from: a.relayed }]);
    assert.equal(classifyDatagram(wire.at(-1)![0]), 'stun');
    peer.send(Buffer.from('and back'), a.relayed);
    await tick();
    assert.deepEqual(fromPeer, [{ data: Buffer.from('and back'), from: peer.local }]);
    assert.equal(t.stats.sendIndicationsOut, 1);
    assert.equal(t.stats.dataIndicationsIn, 1);
  });

  it('relays both ways as 4-byte-header ChannelData after bindChannel(), also zero-copy and from a reused buffer', async () => {
    const t = client({ sendCopies: true });
    const fromPeer = clientInbox(t);
    const toPeer = peerInbox();
    const a = await t.allocate();
    const ch = await t.bindChannel(peer.local);
    assert.ok(ch >= 0x4000 && ch <= 0x4fff);
    assert.equal(t.channelOf(peer.local), ch);
    assert.equal(await t.bindChannel(peer.local), ch, 'binding again returns the same channel');
    assert.ok(t.hasPermission(peer.local.address), 'ChannelBind installs the permission');
    const payloads = [Buffer.alloc(0), Buffer.from([1, 2, 3]), Buffer.alloc(1400, 0xab)];
    for (const p of payloads) assert.ok(t.sendTo(peer.local, p));
    const frame = Buffer.concat([Buffer.alloc(4), Buffer.from('framed')]);
    assert.ok(t.sendFrame(peer.local, frame));
    await tick();
    assert.deepEqual(toPeer.map((x) => x.data), [...payloads, Buffer.from('framed')]);
    for (const w of wire.slice(-4)) {
      assert.equal(w.readUInt16BE(0), ch);
      assert.equal(w.length, 4 + w.readUInt16BE(2), 'no padding, exactly 4 bytes of header');
    }
    for (const p of payloads) peer.send(p, a.relayed);
    await tick();
    assert.deepEqual(fromPeer, payloads.map((data) => ({ data, from: peer.local })));
    assert.equal(t.stats.channelDataOut, 4);
    assert.equal(t.stats.channelDataIn, 3);
    assert.equal(t.stats.dataIndicationsIn, 0);
  });

  it('retransmits unanswered requests and gives up after TURN_MAX_TRANSMISSIONS', async () => {
    server.dropRequests = 2;
    const t = client();
    await t.allocate();
    assert.ok(t.stats.retransmits >= 2);
    const lonely = client({ server: { address: '192.0.2.99', port: 3478 }, rtoMs: 5 }, net.socket('198.51.100.21', 4500));
    await assert.rejects(lonely.allocate(), /no answer from 192\.0\.2\.99:3478 after 4 tries/);
  });

  it('ignores a success answer whose MESSAGE-INTEGRITY does not check out', async () => {
    server.forgeIntegrity = true;
    const t = client({ rtoMs: 5 });
    // The fake answers the retransmissions with 437 (it holds the allocation the forged answer carried).
    await assert.rejects(t.allocate(), TurnError);
    assert.ok(t.stats.badIntegrity >= 1);
    assert.equal(t.allocation, undefined);
  });

  it('frees a leftover allocation on 437 Allocation Mismatch and allocates again', async () => {
    const first = client();
    await first.allocate();
    const second = client(); // same socket: same 5-tuple, as after a restart
    const a = await second.allocate();
    assert.ok(a.relayed.port > 0);
    assert.equal(server.log.filter((l) => l.method === TURN_METHOD_REFRESH && l.lifetime === 0).length, 1);
  });

  it('refreshes the allocation before it expires, and permissions and channels on their period', async () => {
    server.lifetimeS = 1; // refresh at half of it: 0.5 s
    const t = client({ permissionRefreshMs: 100 });
    await t.allocate();
    await t.permit({ address: '203.0.113.9', port: 1 });
    await t.bindChannel(peer.local);
    await tick(700);
    assert.ok(server.count(TURN_METHOD_REFRESH) >= 1, 'allocation refreshed');
    assert.ok(server.count(TURN_METHOD_CREATE_PERMISSION) >= 3, 'permission refreshed');
    assert.ok(server.count(TURN_METHOD_CHANNEL_BIND) >= 3, 'channel refreshed');
    assert.equal(t.stats.refreshFailures, 0);
  });

  it('reports the allocation lost when the server no longer knows it', async () => {
    server.lifetimeS = 1;
    const t = client();
    const lost: TurnError[] = [];
    t.onLost = (e) => lost.push(e);
    await t.allocate();
    server.forget(sock.local);
    await tick(700);
    assert.equal(lost.length, 1);
    assert.equal(lost[0]!.code, 437);
    assert.equal(t.allocation, undefined);
    assert.equal(t.sendTo(peer.local, Buffer.from('x')), false);
  });

  it('close() sends Refresh with LIFETIME 0 and stops relaying', async () => {
    const t = client();
    const got = clientInbox(t);
    const a = await t.allocate();
    await t.bindChannel(peer.local);
    await t.close();
    assert.equal(server.allocations.size, 0);
    assert.ok(server.log.some((l) => l.method === TURN_METHOD_REFRESH && l.lifetime === 0));
    assert.equal(t.sendTo(peer.local, Buffer.from('x')), false);
    t.handleDatagram(encodeChannelData(0x4000, Buffer.from('late')), SERVER);
    assert.deepEqual(got, []);
    await assert.rejects(t.allocate(), /closed/);
    void a;
  });

  it('survives malformed, truncated and foreign datagrams: never throws, counts them, delivers nothing', async () => {
    const t = client();
    const got = clientInbox(t);
    await t.allocate();
    const ch = await t.bindChannel(peer.local);
    const before = { ...t.stats };
    // From someone other than the server: ignored whatever it is.
    t.handleDatagram(encodeChannelData(ch, Buffer.from('spoof')), { address: '203.0.113.66', port: 3478 });
    t.handleDatagram(encodeChannelData(ch, Buffer.from('spoof')), { address: SERVER.address, port: 3479 });
    assert.equal(t.stats.notFromServer, before.notFromServer + 2);
    // Truncated / overlong ChannelData, unbound channel, empty datagram.
    const good = encodeChannelData(ch, Buffer.from('payload'));
    t.handleDatagram(good.subarray(0, 3), SERVER);
    t.handleDatagram(good.subarray(0, 8), SERVER);
    t.handleDatagram(Buffer.concat([good, Buffer.alloc(4)]), SERVER);
    t.handleDatagram(new Uint8Array(0), SERVER);
    t.handleDatagram(encodeChannelData(0x4fff, Buffer.from('nobody')), SERVER);
    assert.equal(t.stats.unknownChannel, before.unknownChannel + 1);
    assert.equal(t.stats.malformed, before.malformed + 4);
    // A STUN answer nobody asked for, a Data indication without DATA.
    const stray = stunPackage.createMessage(stunType(TURN_METHOD_ALLOCATE, STUN_CLASS_SUCCESS));
    t.handleDatagram(stray.toBuffer(), SERVER);
    assert.equal(t.stats.unknownTransaction, before.unknownTransaction + 1);
    const noData = stunPackage.createMessage(stunType(TURN_METHOD_DATA, STUN_CLASS_INDICATION));
    noData.addAttribute(ATTR_XOR_PEER_ADDRESS, '203.0.113.5', 7000);
    t.handleDatagram(noData.toBuffer(), SERVER);
    assert.equal(t.stats.malformed, before.malformed + 5);
    // Random bytes, and random bytes behind a ChannelData or STUN first byte.
    fc.assert(fc.property(fc.uint8Array({ maxLength: 100 }), fc.constantFrom(-1, 0x00, 0x01, 0x40, 0x4f), (b, first) => {
      const d = Buffer.from(b);
      if (first >= 0 && d.length > 0) d[0] = first;
      t.handleDatagram(d, SERVER);
    }), { numRuns: 500 });
    // A throwing onData is contained too.
    t.onData = () => { throw new Error('app bug'); };
    t.handleDatagram(good, SERVER);
    assert.equal(t.stats.callbackErrors, 1);
    assert.deepEqual(got, []);
    // Still working afterwards.
    const toPeer = peerInbox();
    t.sendTo(peer.local, Buffer.from('still fine'));
    await tick();
    assert.deepEqual(toPeer.map((x) => x.data.toString()), ['still fine']);
  });

  it('refuses to permit, bind or send without an allocation', async () => {
    const t = client();
    await assert.rejects(t.permit(peer.local), /no allocation/);
    await assert.rejects(t.bindChannel(peer.local), /no allocation/);
    assert.equal(t.sendTo(peer.local, Buffer.from('x')), false);
    assert.equal(t.stats.sendDropped, 1);
  });
});
