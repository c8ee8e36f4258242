// TurnClient and address families, against a fake TURN server on the in-memory network that speaks what
// the servers out there do: RFC 8656 dual allocation (ADDITIONAL-ADDRESS-FAMILY at 0x8000), coturn's (at
// 0x8032, a failed family written as the unspecified address plus ADDRESS-ERROR-CODE at 0x8033), a server
// from before RFC 8656 (ignores both), coturn with external-ip (440 to a dual request), and an IPv6-only
// relay (440 to anything but REQUESTED-ADDRESS-FAMILY IPv6). Requests are read with the `stun` package,
// answers written out here byte by byte (the package writes one XOR-RELAYED-ADDRESS at most), so the
// client's codec is checked against neither of its own halves. No credentials: the fake never challenges.
import { afterEach, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MemoryNetwork, type MemorySocket } from '../../agent/conn/memory-socket.js';
import { classifyDatagram } from '../../agent/nat/demux.js';
import { endpointKey, type Endpoint } from '../../agent/conn/socket.js';
import { TurnClient, TurnError } from '../../agent/nat/turn-client.js';
import { parseIpv4, parseIpv6 } from '../../agent/idloc/addresses.js';
import { stunPackage } from './stun-package.js';

const tick = (ms = 0): Promise<void> => new Promise((r) => setTimeout(r, ms));
const RELAY4 = '192.0.2.1', RELAY6 = '2001:db8::1';

interface Policy {
  /** Families it has relay addresses of. */
  relays: readonly (4 | 6)[];
  /** Where it reads ADDITIONAL-ADDRESS-FAMILY (none: a server from before RFC 8656). */
  dualAt: readonly number[];
  /** 440 to every dual request (coturn with external-ip). */
  refuseDual?: boolean;
  /** Where a dual allocation's failed family is said (ADDRESS-ERROR-CODE). */
  addressErrorAt?: number;
  /** With no IPv4 relay, 440 to every request but one for IPv6 alone (as RFC 8656 reads), rather than
   *  a dual allocation of IPv6 only (as coturn does). */
  strictIpv4?: boolean;
}

/** XOR-*-ADDRESS value, by the RFC 8489 section 14.2 recipe. */
function xorAddress(e: Endpoint, id: Buffer): Buffer {
  const v4 = parseIpv4(e.address);
  const raw = v4 !== undefined ? Buffer.alloc(4) : Buffer.from(parseIpv6(e.address)!);
  if (v4 !== undefined) raw.writeUInt32BE(v4, 0);
  const key = Buffer.concat([Buffer.from('2112a442', 'hex'), id]);
  const out = Buffer.alloc(4 + raw.length);
  out[1] = v4 !== undefined ? 1 : 2;
  out.writeUInt16BE(e.port ^ 0x2112, 2);
  for (let i = 0; i < raw.length; i++) out[4 + i] = raw[i]! ^ key[i]!;
  return out;
}

function message(type: number, id: Buffer, attrs: readonly (readonly [number, Buffer])[]): Buffer {
  const body = Buffer.concat(attrs.map(([t, v]) => {
    const a = Buffer.alloc(4 + ((v.length + 3) & ~3));
    a.writeUInt16BE(t, 0); a.writeUInt16BE(v.length, 2); v.copy(a, 4);
    return a;
  }));
  const head = Buffer.alloc(20);
  head.writeUInt16BE(type, 0); head.writeUInt16BE(body.length, 2); head.writeUInt32BE(0x2112a442, 4); id.copy(head, 8);
  return Buffer.concat([head, body]);
}

const u32 = (n: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32BE(n >>> 0, 0); return b; };
const errorCode = (code: number, reason: string, family?: number): Buffer =>
  Buffer.concat([Buffer.from([family ?? 0, 0, Math.floor(code / 100), code % 100]), Buffer.from(reason)]);

class FamilyServer {
  /** Servers made in this test: the n-th relays from ports 50000 + 10 n + family. */
  static made = 0;
  readonly socket: MemorySocket;
  /** Per Allocate: the family attributes it carried (type -> family byte). */
  readonly allocates: Record<number, number>[] = [];
  readonly requests: number[] = [];
  /** Replace an Allocate success with this (fuzzing). */
  allocateAnswer: ((id: Buffer) => Buffer) | undefined;
  private relays = new Map<4 | 6, MemorySocket>();
  private client: Endpoint | undefined;
  private readonly perms = new Set<string>();
  private readonly channels = new Map<number, Endpoint>();

  private readonly portBase = 50_000 + 10 * FamilyServer.made++;

  constructor(private readonly net: MemoryNetwork, readonly endpoint: Endpoint, private readonly policy: Policy) {
    this.socket = net.socket(endpoint.address, endpoint.port);
    this.socket.onMessage((m, from) => this.onMessage(Buffer.from(m), from));
  }

  private relayFor(address: string): MemorySocket | undefined {
    return this.relays.get(address.includes(':') ? 6 : 4);
  }

  private onMessage(msg: Buffer, from: Endpoint): void {
    if (classifyDatagram(msg[0]) === 'turn-channel') {
      const peer = this.channels.get(msg.readUInt16BE(0));
      if (peer) this.relayFor(peer.address)?.send(msg.subarray(4, 4 + msg.readUInt16BE(2)), peer);
      return;
    }
    const d = stunPackage.decode(msg);
    const id = d.transactionId;
    const method = (d.type & 0xf) | ((d.type >> 1) & 0x70);
    const peer = d.getAttribute(0x0012)?.value as Endpoint | undefined;
    if (d.type === 0x0016) { // Send indication
      const data = d.getAttribute(0x0013)?.value as Buffer | undefined;
      if (peer && data && this.perms.has(peer.address)) this.relayFor(peer.address)?.send(data, { address: peer.address, port: peer.port });
      return;
    }
    this.requests.push(method);
    const ok = (attrs: (readonly [number, Buffer])[]): void => this.socket.send(message(0x0100 | d.type, id, attrs), from);
    const fail = (code: number, reason: string): void => this.socket.send(message(0x0110 | d.type, id, [[0x0009, errorCode(code, reason)]]), from);
    if (method === 3) {
      const fam = (t: number): number | undefined => (d.getAttribute(t)?.value as Buffer | undefined)?.[0];
      const seen: Record<number, number> = {};
      for (const t of [0x0017, 0x8000, 0x8032]) if (fam(t) !== undefined) seen[t] = fam(t)!;
      this.allocates.push(seen);
      if (this.allocateAnswer) { this.socket.send(this.allocateAnswer(id), from); return; }
      const dual = this.policy.dualAt.some((t) => fam(t) === 2);
      if (dual && this.policy.refuseDual) { fail(440, 'Dual allocation cannot be supported in the current server configuration'); return; }
      const want: (4 | 6)[] = dual ? [4, 6] : fam(0x0017) === 2 ? [6] : [4];
      const got = want.filter((f) => this.policy.relays.includes(f));
      if (got.length === 0 || (this.policy.strictIpv4 && want.includes(4) && !got.includes(4))) { fail(440, 'Address Family not Supported'); return; }
      this.client = from;
      const attrs: (readonly [number, Buffer])[] = [];
      for (const f of want) {
        if (got.includes(f)) {
          const s = this.net.socket(f === 4 ? RELAY4 : RELAY6, this.portBase + f);
          s.onMessage((data, p) => this.fromPeer(Buffer.from(data), p));
          this.relays.set(f, s);
          attrs.push([0x0016, xorAddress(s.local, id)]);
        } else {
          attrs.push([0x0016, xorAddress({ address: f === 4 ? '0.0.0.0' : '::', port: 0 }, id)]);
          if (this.policy.addressErrorAt) attrs.push([this.policy.addressErrorAt, errorCode(440, 'Address Family not Supported', f === 4 ? 1 : 2)]);
        }
      }
      ok([...attrs, [0x0020, xorAddress(from, id)], [0x000d, u32(600)]]);
      return;
    }
    if ((method === 8 || method === 9) && peer) {
      if (!this.relayFor(peer.address)) { fail(443, 'Peer Address Family Mismatch'); return; }
      this.perms.add(peer.address);
      if (method === 9) this.channels.set((d.getAttribute(0x000c)!.value as number) >>> 16, { address: peer.address, port: peer.port });
      ok([]);
      return;
    }
    if (method === 4) { ok([[0x000d, u32(600)]]); return; }
    fail(400, 'Bad Request');
  }

  private fromPeer(data: Buffer, peer: Endpoint): void {
    if (!this.client || !this.perms.has(peer.address)) return;
    for (const [n, p] of this.channels) {
      if (p.address === peer.address && p.port === peer.port) {
        const h = Buffer.alloc(4); h.writeUInt16BE(n, 0); h.writeUInt16BE(data.length, 2);
        this.socket.send(Buffer.concat([h, data]), this.client);
        return;
      }
    }
    this.socket.send(message(0x0017, Buffer.alloc(12, 5), [[0x0012, xorAddress(peer, Buffer.alloc(12, 5))], [0x0013, data]]), this.client);
  }
}

describe('TurnClient: address families and dual allocation', () => {
  let net: MemoryNetwork;
  let clients: TurnClient[];
  let keepAlive: NodeJS.Timeout;

  /** A client at `local` talking to a server at `at` (given as `spelled`, if it differs) with `policy`. */
  const setup = (policy: Policy, at: Endpoint = { address: RELAY4, port: 3478 }, local: Endpoint = { address: '198.51.100.7', port: 4500 }, spelled?: string) => {
    const server = new FamilyServer(net, at, policy);
    const sock = net.socket(local.address, local.port);
    const t = new TurnClient({ server: { address: spelled ?? at.address, port: at.port }, username: 'u', password: 'p', rtoMs: 20, send: (b, to) => sock.send(b, to) });
    sock.onMessage((m, from) => { const c = classifyDatagram(m[0]); if (c === 'stun' || c === 'turn-channel') t.handleDatagram(m, from); });
    clients.push(t);
    return { server, t };
  };

  beforeEach(() => { keepAlive = setInterval(() => {}, 1000); net = new MemoryNetwork(); clients = []; FamilyServer.made = 0; });
  afterEach(async () => { await Promise.all(clients.map((c) => c.close())); clearInterval(keepAlive); });

  for (const [name, at] of [['RFC 8656', 0x8000], ['coturn', 0x8032]] as const) {
    it(`a ${name} server: one Allocate, relayed addresses of both families, IPv4 first`, async () => {
      const { server, t } = setup({ relays: [4, 6], dualAt: [at] });
      const a = await t.allocate();
      assert.deepEqual(a.relayedAll, [{ address: RELAY4, port: 50_004 }, { address: RELAY6, port: 50_006 }]);
      assert.deepEqual(a.relayed, a.relayedAll[0]);
      assert.equal(a.familyError, undefined);
      assert.deepEqual(server.allocates, [{ 0x8000: 2, 0x8032: 2 }], 'ADDITIONAL-ADDRESS-FAMILY IPv6 at both codepoints');
      assert.equal(t.stats.familyFallbacks, 0);
      assert.ok(t.reaches('2001:db8:5::1') && t.reaches('203.0.113.5'));
    });
  }

  it('relays for peers of both families through one dual allocation: permissions, Send/Data, ChannelData', async () => {
    const { t } = setup({ relays: [4, 6], dualAt: [0x8000] });
    await t.allocate();
    const got: { from: string; data: string }[] = [];
    t.onData = (from, data) => got.push({ from: endpointKey(from), data: data.toString() });
    const peers = [net.socket('203.0.113.9', 7000), net.socket('2001:db8:9::9', 7000)];
    const heard: string[] = [];
    for (const p of peers) p.onMessage((m, from) => heard.push(`${endpointKey(from)} ${Buffer.from(m).toString()}`));
    for (const p of peers) await t.permit(p.local);
    for (const p of peers) t.sendTo(p.local, Buffer.from(`ind to ${p.local.address}`));
    for (const p of peers) p.send(Buffer.from(`ind from ${p.local.address}`), { address: p.local.address.includes(':') ? RELAY6 : RELAY4, port: p.local.address.includes(':') ? 50_006 : 50_004 });
    await tick(5);
    assert.deepEqual(heard.sort(), ['192.0.2.1:50004 ind to 203.0.113.9', '[2001:db8::1]:50006 ind to 2001:db8:9::9']);
    assert.deepEqual(got.map((g) => `${g.from} ${g.data}`).sort(), ['203.0.113.9:7000 ind from 203.0.113.9', '[2001:db8:9::9]:7000 ind from 2001:db8:9::9']);
    const ch = await t.bindChannel(peers[1]!.local);
    assert.equal(t.channelOf(peers[1]!.local), ch);
    t.sendTo(peers[1]!.local, Buffer.from('over a channel'));
    await tick(5);
    assert.ok(heard.includes('[2001:db8::1]:50006 over a channel'), heard.join('\n'));
    assert.equal(t.stats.channelDataOut, 1);
  });

  it('a server from before RFC 8656 ignores the request: IPv4 only, and IPv6 peers are refused here, not by the server', async () => {
    const { server, t } = setup({ relays: [4, 6], dualAt: [] });
    const a = await t.allocate();
    assert.deepEqual(a.relayedAll, [{ address: RELAY4, port: 50_004 }]);
    const before = server.requests.length;
    await assert.rejects(t.permit({ address: '2001:db8:9::9', port: 1 }), (e: TurnError) => e.code === 443 && /no IPv6 relayed address/.test(e.message));
    await assert.rejects(t.bindChannel({ address: '2001:db8:9::9', port: 1 }), (e: TurnError) => e.code === 443);
    assert.equal(t.sendTo({ address: '2001:db8:9::9', port: 1 }, Buffer.from('x')), false);
    assert.equal(server.requests.length, before, 'nothing sent for a peer of a family the allocation lacks');
    assert.equal(t.stats.peerFamilyMismatch, 3);
    await t.permit({ address: '203.0.113.9', port: 1 });
  });

  it('coturn with external-ip (440 to a dual request): the plain allocation next', async () => {
    const { server, t } = setup({ relays: [4, 6], dualAt: [0x8032], refuseDual: true });
    assert.deepEqual((await t.allocate()).relayedAll, [{ address: RELAY4, port: 50_004 }]);
    assert.deepEqual(server.allocates, [{ 0x8000: 2, 0x8032: 2 }, {}]);
    assert.equal(t.stats.familyFallbacks, 1);
  });

  it('an IPv6-only relay, coturn\'s way: the dual request gets the IPv6 address alone', async () => {
    const { server, t } = setup({ relays: [6], dualAt: [0x8032], addressErrorAt: 0x8033 }, { address: RELAY6, port: 3478 }, { address: '2001:db8:7::7', port: 4500 });
    const a = await t.allocate();
    assert.deepEqual(a.relayedAll, [{ address: RELAY6, port: 50_006 }]);
    assert.equal(a.familyError?.family, 1);
    assert.equal(server.allocates.length, 1);
  });

  it('an IPv6-only relay reached over IPv6 (given in another spelling), RFC 8656\'s way: dual, plain, then REQUESTED-ADDRESS-FAMILY IPv6', async () => {
    const at = { address: RELAY6, port: 3478 };
    const { server, t } = setup({ relays: [6], dualAt: [0x8000], strictIpv4: true }, at, { address: '2001:db8:7::7', port: 4500 }, '2001:DB8:0:0::1');
    const a = await t.allocate();
    assert.deepEqual(a.relayedAll, [{ address: RELAY6, port: 50_006 }]);
    assert.deepEqual(a.mapped, { address: '2001:db8:7::7', port: 4500 });
    assert.deepEqual(server.allocates, [{ 0x8000: 2, 0x8032: 2 }, {}, { 0x0017: 2 }]);
    assert.equal(t.stats.familyFallbacks, 2);
    assert.equal(t.stats.notFromServer, 0);
    assert.ok(!t.reaches('203.0.113.9'));
  });

  it('a dual allocation that got IPv4 only: the unspecified stand-in skipped, the reason kept (ADDRESS-ERROR-CODE at either codepoint)', async () => {
    for (const addressErrorAt of [0x8001, 0x8033]) {
      const { t } = setup({ relays: [4], dualAt: [0x8000], addressErrorAt }, { address: RELAY4, port: addressErrorAt }, { address: '198.51.100.7', port: addressErrorAt });
      const a = await t.allocate();
      assert.equal(a.relayedAll.length, 1);
      assert.equal(a.relayedAll[0]!.address, RELAY4);
      assert.deepEqual(a.familyError, { family: 2, code: 440, reason: 'Address Family not Supported' });
      await t.close();
    }
  });

  it('a 400 to the plain request is not retried again', async () => {
    const { server, t } = setup({ relays: [4], dualAt: [] });
    server.allocateAnswer = (id) => message(0x0113, id, [[0x0009, errorCode(400, 'Bad Request')]]);
    await assert.rejects(t.allocate(), (e: TurnError) => e.code === 400);
    assert.equal(server.allocates.length, 2);
  });

  it('never throws on a hostile Allocate success: it allocates sane addresses or fails with a TurnError', async () => {
    const types = fc.constantFrom(0x0016, 0x0016, 0x0020, 0x000d, 0x8001, 0x8033);
    const attrs = fc.array(fc.tuple(types, fc.uint8Array({ maxLength: 24 }).map((b) => Buffer.from(b))), { maxLength: 8 });
    await fc.assert(fc.asyncProperty(attrs, fc.boolean(), async (as, withGood) => {
      const port = 4000 + FamilyServer.made;
      const { server, t } = setup({ relays: [4, 6], dualAt: [0x8000] }, { address: RELAY4, port }, { address: '198.51.100.7', port });
      server.allocateAnswer = (id) => message(0x0103, id, [...as, ...(withGood ? [[0x0016, xorAddress({ address: RELAY6, port: 9 }, id)] as const] : []),
        [0x0020, xorAddress({ address: '198.51.100.7', port }, id)], [0x000d, u32(600)]]);
      try {
        const a = await t.allocate();
        assert.ok(a.relayedAll.length >= 1 && a.relayedAll.length <= 2);
        for (const e of a.relayedAll) assert.ok(e.port > 0 && (parseIpv4(e.address) !== undefined || parseIpv6(e.address) !== undefined));
      } catch (e) {
        assert.ok(e instanceof TurnError, String(e));
      }
      await t.close();
      clients.pop();
    }), { numRuns: 150 });
  });
});
