// The firewall on whole agents (in-memory twins): the host's rules let one peer's key reach TCP port 22
// and everyone ping; another peer's SYN to port 22 never reaches the host's TAP (counted), and a reply to
// the host's own outbound connection passes. No rules on a host: status says every member gets in.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Agent } from '../../agent/daemon.js';
import { MemoryTap } from '../../agent/tap/memory-tap.js';
import { MemoryNetwork } from '../../agent/conn/memory-socket.js';
import { generateIdentity, type Identity } from '../../agent/idloc/identity.js';
import { ETHERTYPE_IPV6 } from '../../agent/tap/ethernet.js';
import { VIRTUAL_MAC } from '../../agent/base/constants.js';
import { parseFirewallRules } from '../../agent/firewall/rules.js';
import { ipv6, tcp } from './packet-helpers.js';
import { eventually, keepEventLoopAlive, sleep } from './memory-agent.js';

keepEventLoopAlive();
const silent = pino({ level: 'silent' });

interface Host { id: Identity; tap: MemoryTap; agent: Agent; addr: string }

function host(net: MemoryNetwork, i: number, bootstrap: string | undefined, rules?: unknown): Host {
  const id = generateIdentity();
  const addr = `198.51.100.${30 + i}`;
  const tap = new MemoryTap({ name: `fw${i}`, mac: Uint8Array.of(2, 0, 0, 0, 0x60, i) });
  const agent = new Agent({
    identity: id, tap, socket: net.socket(addr, 4500), logger: silent, peers: [],
    overlay: { bootstraps: bootstrap ? [{ address: bootstrap, port: 4500 }] : [], puzzleDifficulty: 4 },
    ...(rules ? { firewall: parseFirewallRules(rules) } : {}),
  });
  agent.start();
  return { id, tap, agent, addr };
}

function segment(from: Host, to: Host, srcPort: number, dstPort: number, flags: number): Buffer {
  const t = tcp(flags, new Uint8Array(0));
  t.writeUInt16BE(srcPort, 0);
  t.writeUInt16BE(dstPort, 2);
  const p = ipv6(t, { src: from.id.ipv6, dst: to.id.ipv6, nh: 6 });
  const f = Buffer.alloc(14 + p.length);
  f.set(VIRTUAL_MAC, 0); f.set(from.tap.mac, 6); f.writeUInt16BE(ETHERTYPE_IPV6, 12); f.set(p, 14);
  return f;
}

/** TCP segments `h`'s TAP was given from `src`'s overlay address to `dstPort`. */
function arrived(h: Host, src: Host, dstPort: number): number {
  return h.tap.written.filter((f) => f.readUInt16BE(12) === ETHERTYPE_IPV6 && f[14 + 6] === 6
    && Buffer.compare(f.subarray(14 + 8, 14 + 24), Buffer.from(src.id.ipv6)) === 0 && f.readUInt16BE(14 + 40 + 2) === dstPort).length;
}

describe('firewall by identity, whole agents', () => {
  const net = new MemoryNetwork();
  let a: Host, b: Host, c: Host;
  before(async () => {
    b = host(net, 2, undefined);
    c = host(net, 3, b.addr);
    a = host(net, 1, b.addr, [{ from: `key:${b.id.publicKeyHex}`, proto: 'tcp', port: 22 }, { from: '*', proto: 'icmp' }]);
    await eventually(async () => (a.agent.status().overlay?.joined && c.agent.status().overlay?.joined) || undefined, 5000, 'joined');
  });
  after(async () => { for (const h of [a, b, c]) await h.agent.close(); });

  it('the allowed key reaches port 22; another key does not, and the drop is counted', async () => {
    await eventually(async () => { b.tap.inject([segment(b, a, 40000, 22, 0x02)]); await sleep(100); return arrived(a, b, 22) > 0 || undefined; }, 5000, 'B\'s SYN at A');
    for (let i = 0; i < 10; i++) { c.tap.inject([segment(c, a, 40001, 22, 0x02)]); await sleep(100); }
    assert.equal(arrived(a, c, 22), 0);
    const s = a.agent.status();
    assert.ok((s.refused.firewall?.droppedNoRule ?? 0) > 0, JSON.stringify(s.refused));
    assert.ok(s.counters.outside.firewalled > 0);
    assert.match(s.access.firewall, /^2 inbound rules, default drop/);
    assert.match(c.agent.status().access.firewall, /^no inbound rules/);
  });

  it('a reply to the host\'s own outbound connection passes; an unsolicited segment to that port does not', async () => {
    a.tap.inject([segment(a, c, 50000, 80, 0x02)]); // A connects out to C:80
    await sleep(200);
    c.tap.inject([segment(c, a, 80, 50000, 0x12)]); // C's SYN-ACK back
    await eventually(async () => arrived(a, c, 50000) > 0 || undefined, 3000, 'the SYN-ACK at A');
    c.tap.inject([segment(c, a, 81, 50001, 0x02)]);
    await sleep(300);
    assert.equal(arrived(a, c, 50001), 0);
  });
});
