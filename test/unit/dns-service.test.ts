// The DNS service on real sockets (loopback, a port the kernel picks): UDP and TCP with length framing
// and pipelining, forwarding through the real upstream exchange to a small resolver on loopback, moving
// to a new address, the TCP bounds; and the systemd-resolved integration's commands read from a twin,
// never run.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect, createServer, type Server } from 'node:net';
import { Writable } from 'node:stream';
import dnsPacket from 'dns-packet';
import { pino } from 'pino';
import { DNS_QUERY_MAX_BYTES, DNS_TCP_CONNECTIONS_MAX } from '../../agent/base/constants.js';
import { DnsService } from '../../agent/dns/service.js';
import { NetExchange } from '../../agent/dns/upstream-net.js';
import { ResolvedLink, howToUse, type CommandRunner, type RunResult } from '../../agent/dns/resolved.js';
import { TcpFrames, frame } from '../../agent/dns/tcp-frames.js';
import { BOB, NamesTwin, dataOf, decode, defaultUpstream, query } from './dns-helpers.js';

const silent = pino({ level: 'silent' });

/** A resolver on loopback (UDP and TCP on one port) answering as defaultUpstream does. */
let upUdp: UdpSocket;
let upTcp: Server;
let upPort = 0;
const upSeen: string[] = [];
before(async () => {
  upUdp = createSocket('udp4');
  await new Promise<void>((r) => upUdp.bind(0, '127.0.0.1', () => r()));
  upPort = upUdp.address().port;
  upUdp.on('message', (m, from) => {
    const q = dnsPacket.decode(m);
    upSeen.push(`udp ${q.id}`);
    upUdp.send(dnsPacket.encode(defaultUpstream(q)), from.port, from.address);
  });
  upTcp = createServer((c) => {
    const frames = new TcpFrames(65_535);
    c.on('data', (d) => {
      for (const m of frames.push(d) as Buffer[]) {
        const q = dnsPacket.decode(m);
        upSeen.push(`tcp ${q.id}`);
        c.write(frame(dnsPacket.encode(defaultUpstream(q)))!);
      }
    });
  });
  await new Promise<void>((r) => upTcp.listen(upPort, '127.0.0.1', () => r()));
});
after(() => { upUdp.close(); upTcp.close(); });

/** The service on 127.0.0.1 and ::1; resolv.conf names us and "127.0.0.2", which the exchange sends to
 *  the loopback resolver's port. */
async function service(o: { resolved?: ResolvedLink; logger?: typeof silent } = {}) {
  const net = new NetExchange();
  const sentTo: string[] = [];
  const names = new NamesTwin();
  const dns = await DnsService.start({
    names, resolvConf: 'nameserver 127.0.0.1\nnameserver 127.0.0.2\n', addresses: { ipv4: '127.0.0.1', ipv6: '::1' }, port: 0,
    logger: o.logger ?? silent, resolved: o.resolved,
    exchange: { exchange: (s, q, over, ok, t) => { sentTo.push(s.address); return net.exchange({ address: '127.0.0.1', port: upPort }, q, over, ok, t); } },
  });
  return { dns, names, sentTo };
}

function udpAsk(address: string, port: number, msg: Buffer): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const s = createSocket(address.includes(':') ? 'udp6' : 'udp4');
    const t = setTimeout(() => { s.close(); resolve(undefined); }, 1_000);
    s.on('message', (m) => { clearTimeout(t); s.close(); resolve(m); });
    s.send(msg, port, address);
  });
}

/** Writes `bytes` to a TCP connection in `pieces`, collects `count` framed answers. */
function tcpAsk(address: string, port: number, bytes: Buffer, count: number, pieces = 1): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const c = connect({ host: address, port });
    const frames = new TcpFrames(65_535);
    const got: Buffer[] = [];
    c.on('error', reject);
    c.on('connect', () => {
      const step = Math.ceil(bytes.length / pieces);
      for (let i = 0; i < bytes.length; i += step) c.write(bytes.subarray(i, i + step));
    });
    c.on('data', (d) => {
      got.push(...(frames.push(d) as Buffer[]));
      if (got.length >= count) { c.destroy(); resolve(got); }
    });
    c.on('close', () => resolve(got));
  });
}

test('UDP on both addresses; TCP answers pipelined queries written in pieces, each framed', async () => {
  const { dns } = await service();
  try {
    const port = dns.port;
    assert.deepEqual(dns.status().listening, [`127.0.0.1:${port}`, `[::1]:${port}`]);
    assert.deepEqual(dataOf(decode(await udpAsk('127.0.0.1', port, query('bob.idloc'))), 'A'), [BOB.ipv4]);
    assert.deepEqual(dataOf(decode(await udpAsk('::1', port, query('bob.idloc', 'AAAA'))), 'AAAA'), [BOB.ipv6]);
    const two = Buffer.concat([frame(query('bob.idloc', 'A', { id: 1 }))!, frame(query('nobody.idloc', 'A', { id: 2 }))!]);
    const answers = (await tcpAsk('::1', port, two, 2, 7)).map(decode).sort((a, b) => a.id! - b.id!);
    assert.deepEqual(answers.map((a) => [a.id, a.rcode]), [[1, 'NOERROR'], [2, 'NXDOMAIN']]);
  } finally {
    await dns.close();
  }
});

test('forwarding over the real network: UDP and TCP, our own address never asked, the client\'s id back, TC then TCP', async () => {
  const { dns, sentTo } = await service();
  try {
    const port = dns.port;
    upSeen.length = 0;
    const r = decode(await udpAsk('127.0.0.1', port, query('www.example.test', 'A', { id: 4321 })));
    assert.equal(r.id, 4321);
    assert.deepEqual(dataOf(r, 'A'), ['192.0.2.1']);
    assert.deepEqual(sentTo, ['127.0.0.2'], 'resolv.conf\'s first nameserver is ours: left out');
    assert.deepEqual(dns.status().upstreams, ['127.0.0.2:53']);
    const big = decode(await udpAsk('127.0.0.1', port, query('big.example.test', 'A', { id: 77 })));
    assert.ok(big.flag_tc && big.answers!.length === 0, 'over 512 bytes without EDNS: truncated');
    const [overTcp] = await tcpAsk('127.0.0.1', port, frame(query('big.example.test', 'A', { id: 78 }))!, 1);
    assert.equal(decode(overTcp).answers!.length, 30, 'the client asks again over TCP and gets it all');
    assert.deepEqual(upSeen.map((s) => s.split(' ')[0]), ['udp', 'udp', 'tcp']);
    const c = dns.status().counters;
    assert.equal(c.forwarded, 3);
    assert.equal(c.truncated, 1);
  } finally {
    await dns.close();
  }
});

test('moving to a new IPv4 address: served there, no longer at the old one, resolved told again', async () => {
  const runner = new RunnerTwin();
  const { dns } = await service({ resolved: new ResolvedLink(runner, 'idloc0') });
  try {
    const port = dns.port;
    await dns.moveTo({ ipv4: '127.0.0.3', ipv6: '::1' });
    assert.deepEqual(dns.status().listening, [`[::1]:${port}`, `127.0.0.3:${port}`]);
    assert.deepEqual(dataOf(decode(await udpAsk('127.0.0.3', port, query('bob.idloc'))), 'A'), [BOB.ipv4]);
    assert.equal(await udpAsk('127.0.0.1', port, query('bob.idloc')), undefined);
    assert.deepEqual(runner.ran.filter((a) => a[1] === 'dns'), [
      ['resolvectl', 'dns', 'idloc0', '127.0.0.1', '::1'], ['resolvectl', 'dns', 'idloc0', '127.0.0.3', '::1'],
    ]);
  } finally {
    await dns.close();
  }
});

test('TCP: connections over the bound are closed at once, a bad length closes its connection; both counted', async () => {
  const { dns } = await service();
  const open: import('node:net').Socket[] = [];
  try {
    const port = dns.port;
    for (let i = 0; i < DNS_TCP_CONNECTIONS_MAX; i++) {
      const c = connect({ host: '127.0.0.1', port });
      c.on('error', () => {});
      open.push(c);
      await new Promise((r) => c.once('connect', r));
    }
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(await tcpAsk('127.0.0.1', port, frame(query('bob.idloc'))!, 1), []);
    assert.equal(dns.status().counters.tcpRefused, 1);
    for (const c of open) c.destroy();
    await new Promise((r) => setTimeout(r, 50));
    const tooLong = Buffer.alloc(2); tooLong.writeUInt16BE(DNS_QUERY_MAX_BYTES + 1);
    assert.deepEqual(await tcpAsk('127.0.0.1', port, Buffer.concat([tooLong, Buffer.alloc(10)]), 1), []);
    assert.equal(dns.status().counters.tcpBadFrame, 1);
  } finally {
    for (const c of open) c.destroy();
    await dns.close();
  }
});

class RunnerTwin implements CommandRunner {
  readonly ran: string[][] = [];
  constructor(private readonly answer: (argv: readonly string[]) => RunResult = (a) =>
    ({ code: 0, stdout: a[0] === 'systemctl' ? 'active\n' : '', stderr: '' })) {}
  run(argv: readonly string[]): Promise<RunResult> {
    this.ran.push([...argv]);
    return Promise.resolve(this.answer(argv));
  }
}

test('systemd-resolved running: split DNS set on the TAP link at start (resolvectl dns, domain ~idloc), reverted on close', async () => {
  const runner = new RunnerTwin();
  const { dns } = await service({ resolved: new ResolvedLink(runner, 'idloc0') });
  assert.match(dns.status().integration, /split DNS on idloc0 for ~idloc through systemd-resolved/);
  await dns.close();
  assert.deepEqual(runner.ran, [
    ['resolvectl', '--version'], ['systemctl', 'is-active', 'systemd-resolved'],
    ['resolvectl', 'dns', 'idloc0', '127.0.0.1', '::1'], ['resolvectl', 'domain', 'idloc0', '~idloc'],
    ['resolvectl', 'revert', 'idloc0'],
  ]);
});

test('resolved found by its D-Bus name where systemd is not init; no resolvectl or no resolved: nothing run but the checks, one line on how to use it', async () => {
  const dbus = new RunnerTwin((a) => ({ code: a[0] === 'systemctl' ? 1 : 0, stdout: a[0] === 'systemctl' ? 'offline\n' : '', stderr: '' }));
  assert.equal(await new ResolvedLink(dbus, 'idloc0').available(), true);
  assert.deepEqual(dbus.ran.at(-1), ['busctl', 'status', 'org.freedesktop.resolve1']);
  const missing = new RunnerTwin(() => ({ code: -1, stdout: '', stderr: 'spawn resolvectl ENOENT' }));
  const lines: string[] = [];
  const logger = pino({ level: 'info' }, new Writable({ write(c, _e, cb) { lines.push(String(c)); cb(); } }));
  const { dns } = await service({ resolved: new ResolvedLink(missing, 'idloc0'), logger });
  const port = dns.port;
  await dns.close();
  assert.deepEqual(missing.ran, [['resolvectl', '--version']]);
  const how = lines.map((l) => JSON.parse(l) as { msg: string }).find((l) => l.msg.startsWith('DNS for .idloc'));
  assert.equal(how?.msg, `DNS for .idloc on 127.0.0.1:${port} and [::1]:${port}: add it to your resolver, or use \`dig @127.0.0.1 bob.idloc\``);
  assert.equal(howToUse(['[fd1d:10c0::1]:53']), 'DNS for .idloc on [fd1d:10c0::1]:53: add it to your resolver, or use `dig @fd1d:10c0::1 bob.idloc`');
  const refusing = new RunnerTwin((a) => ({ code: a[1] === 'dns' ? 1 : 0, stdout: a[0] === 'systemctl' ? 'active' : '', stderr: 'Failed to set DNS configuration: Link idloc0 not known' }));
  const r = await service({ resolved: new ResolvedLink(refusing, 'idloc0') });
  assert.match(r.dns.status().integration, /no systemd-resolved/);
  await r.dns.close();
  assert.ok(!refusing.ran.some((a) => a[1] === 'revert'), 'nothing to revert when nothing was set');
});

test('TCP framing: pieces, several messages at once, and a length of 0 or over the bound', () => {
  const f = new TcpFrames(100);
  const m1 = Buffer.from('hello'), m2 = Buffer.alloc(100, 7);
  const stream = Buffer.concat([frame(m1)!, frame(m2)!, frame(m1)!]);
  const got: Buffer[] = [];
  for (let i = 0; i < stream.length; i += 3) got.push(...(f.push(stream.subarray(i, i + 3)) as Buffer[]));
  assert.deepEqual(got, [m1, m2, m1]);
  assert.equal(f.buffered, 0);
  assert.deepEqual(f.push(Uint8Array.of(0)), []);
  assert.equal(f.buffered, 1);
  assert.equal(f.push(Uint8Array.of(101)), 'bad');
  assert.equal(new TcpFrames(100).push(Uint8Array.of(0, 0)), 'bad');
  assert.equal(frame(Buffer.alloc(65_536)), undefined);
});
