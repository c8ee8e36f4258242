// The NAT routers of the netns lab, proved with plain UDP sockets (python3), no agent: mapping and
// filtering of each NAT type, the stateful firewall, UDP blocking, CGNAT, and which pairs of NAT types
// can hole-punch at the kernel level. The NAT-traversal tests build on these facts; if one changes
// (a new kernel, other iptables rules), this file says which.
//
// Facts measured here (Linux conntrack + iptables-nft, kernel 6.x):
// - mapping: cone (MASQUERADE) and both CGNAT layers keep the private source port when free, so one
//   socket has one public IP:port towards every destination; symmetric (--random-fully) gives every
//   destination (even another port of the same host) a new random port.
// - filtering: address-and-port-dependent for every NAT type, with or without dropUnsolicited: only the
//   exact remote IP:port a mapping was made for gets in (Linux MASQUERADE is never full cone).
// - dropUnsolicited matters for hole punching: on a bare router a peer's early packet leaves a conntrack
//   entry, the router then maps our own packet to that peer to a new port, and the punch fails (the
//   side whose packet arrives first breaks it); with the firewall the early packet leaves nothing.
//   It also keeps a neighbour that routes 10.x via the router out of the LAN (FORWARD).
// - hole punching (both send to each other's STUN-seen mapping, learning sources as ICE does): works for
//   none-any, cone-cone, cone-cgnat, cgnat-cgnat; fails for cone-symmetric, symmetric-symmetric,
//   symmetric-cgnat, and bare cone-cone; bare cone vs firewalled cone works only if the bare side sends first.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { INTERNET_PREFIX, Lab, type LabProcess } from './lab.js';
import { labUnavailable, prerequisites } from './prerequisites.js';

// UDP probes; see the usage below. One JSON line on stdout, except `echo`, which logs as it goes.
const UDP_PY = String.raw`
#   echo PORT...                   reply to every datagram with "mapped IP:PORT <payload>" from the same
#                                  socket; a payload starting with "later" gets a second reply 0.8 s on.
#   probe PORT WAIT_MS TAG DEST... from local PORT send "TAG <i>" to the i-th DEST (IP:PORT), then collect
#                                  everything that arrives until WAIT_MS: {"rx": [[src, payload], ...]}
#   send PORT DEST PAYLOAD         one datagram from local PORT
#   punch PORT DELAY_MS MS DEST    after DELAY_MS, every 20 ms send to DEST and to every source heard from
#                                  (peer-reflexive learning, as ICE does) for MS: {"rx": [src, ...], "sent": n}
import json, select, socket, sys, threading, time

def sock(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(('0.0.0.0', port))
    return s

def addr(a):
    h, p = a.rsplit(':', 1)
    return (h, int(p))

def fmt(a):
    return '%s:%d' % a

cmd, args = sys.argv[1], sys.argv[2:]
if cmd == 'echo':
    socks = [sock(int(p)) for p in args]
    print('listening', flush=True)
    while True:
        for s in select.select(socks, [], [])[0]:
            data, src = s.recvfrom(2048)
            text = data.decode(errors='replace')
            print('RX %d %s %s' % (s.getsockname()[1], fmt(src), text), flush=True)
            reply = ('mapped %s %s' % (fmt(src), text)).encode()
            s.sendto(reply, src)
            if text.startswith('later'):
                threading.Timer(0.8, s.sendto, (b'later-' + reply, src)).start()
elif cmd == 'probe':
    s = sock(int(args[0]))
    deadline = time.time() + int(args[1]) / 1000
    for i, d in enumerate(args[3:]):
        s.sendto(('%s %d' % (args[2], i)).encode(), addr(d))
    rx = []
    while True:
        left = deadline - time.time()
        if left <= 0: break
        if select.select([s], [], [], left)[0]:
            data, src = s.recvfrom(2048)
            rx.append([fmt(src), data.decode(errors='replace')])
    print(json.dumps({'rx': rx}))
elif cmd == 'send':
    s = sock(int(args[0]))
    s.sendto(args[2].encode(), addr(args[1]))
    print(json.dumps({'sent': 1}))
elif cmd == 'punch':
    s = sock(int(args[0]))
    time.sleep(int(args[1]) / 1000)
    end = time.time() + int(args[2]) / 1000
    targets, heard, sent, nxt = [addr(args[3])], [], 0, 0.0
    while True:
        now = time.time()
        if now >= end: break
        if now >= nxt:
            for t in targets:
                try:
                    s.sendto(b'punch', t); sent += 1
                except OSError:
                    pass  # a queued ICMP error (port unreachable) surfaces on the next send
            nxt = now + 0.02
        if select.select([s], [], [], max(0.0, min(nxt, end) - time.time()))[0]:
            try:
                data, src = s.recvfrom(2048)
            except OSError:
                continue
            if src not in heard: heard.append(src)
            if src not in targets: targets.append(src)
    print(json.dumps({'rx': [fmt(h) for h in heard], 'sent': sent}))
`;

function namespaces(): string[] {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0]!).filter(Boolean);
}

// Debian's python3 (installed by scripts/install-test-deps.sh) starts in ~20 ms; a pyenv shim first on
// PATH takes ~0.5 s, too slow for timed punching.
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const P1 = `${INTERNET_PREFIX}10`; // hosts[0], known before the lab exists (udpBlockedExcept)

const skip = prerequisites('netns lab: NAT routers', labUnavailable({ tap: false }));

describe('netns lab: NAT routers', { skip }, () => {
  let lab: Lab;
  let py: string;
  let echo1: LabProcess;
  const udp = async (node: string, ...args: (string | number)[]) =>
    JSON.parse((await lab.exec(node, [PYTHON, py, ...args.map(String)], { timeoutMs: 10_000 })).stdout) as { rx: any[]; sent?: number };
  /** Ports of the "mapped IP:PORT" replies, by replying server. */
  const kind = (h: string) => `${lab.nat(h).nat}${lab.nat(h).dropUnsolicited || lab.nat(h).nat === 'none' ? '' : '(bare)'}`;
  const mapped = (rx: [string, string][]) => rx.filter(([, d]) => d.startsWith('mapped ')).map(([from, d]) => ({ from, ip: d.split(' ')[1]!.split(':')[0]!, port: Number(d.split(' ')[1]!.split(':')[1]) }));

  before(async () => {
    lab = await Lab.create({
      hosts: ['p1', 'p2'],
      natHosts: [
        { name: 'n1', nat: 'none' }, { name: 'n2', nat: 'none' },
        { name: 'c1', nat: 'cone' }, { name: 'c2', nat: 'cone' },
        { name: 'y1', nat: 'symmetric' }, { name: 'y2', nat: 'symmetric' },
        { name: 'g1', nat: 'cgnat' }, { name: 'g2', nat: 'cgnat' },
        { name: 'b1', nat: 'cone', dropUnsolicited: false }, { name: 'b2', nat: 'cone', dropUnsolicited: false },
      ],
    });
    assert.equal(lab.address('p1'), P1);
    lab.addNatHost({ name: 'u1', nat: 'cone', udpBlockedExcept: [P1] }); // after create(): the method works too
    py = join(lab.dir, 'udp.py');
    writeFileSync(py, UDP_PY);
    echo1 = lab.spawn('p1', [PYTHON, py, 'echo', '7000', '7001']);
    const echo2 = lab.spawn('p2', [PYTHON, py, 'echo', '7000']);
    await Promise.all([echo1.waitForOutput(/listening/), echo2.waitForOutput(/listening/)]);
  });
  after(async () => { await lab?.destroy(); });

  it('puts NAT hosts on a private 10.x LAN with the router as default gateway; routers on 203.0.113.0/24', async () => {
    assert.deepEqual(lab.hosts, ['p1', 'p2', 'n1', 'n2', 'c1', 'c2', 'y1', 'y2', 'g1', 'g2', 'b1', 'b2', 'u1']);
    assert.equal(lab.address('n1'), `${INTERNET_PREFIX}12`);
    assert.equal(lab.publicAddress('n1'), lab.address('n1'));
    assert.equal(lab.publicAddress('p1'), P1);
    assert.deepEqual(lab.nat('g1').routers, ['r-g1', 'c-g1']);
    assert.deepEqual(lab.nat('c1').routers, ['r-c1']);
    for (const h of ['c1', 'y1', 'g1', 'b1', 'u1']) {
      const priv = lab.address(h);
      assert.match(priv, /^10\.\d+\.0\.2$/);
      assert.match(lab.publicAddress(h), /^203\.0\.113\.\d+$/);
      const addrs = await lab.exec(h, ['ip', '-4', '-o', 'addr', 'show']);
      assert.deepEqual(addrs.stdout.match(/inet \S+/g), ['inet 127.0.0.1/8', `inet ${priv}/24`]);
      const route = await lab.exec(h, ['ip', '-4', 'route', 'show', 'default']);
      assert.match(route.stdout, new RegExp(`default via ${priv.replace(/\.2$/, '.1').replace(/\./g, '\\.')} dev eth0`));
    }
    assert.equal(lab.address('r-g1'), lab.address('g1').replace(/\.0\.2$/, '.100.2')); // home router's WAN: carrier-side 10.x
    assert.equal(lab.address('c-g1'), lab.publicAddress('g1'));
    // Public hosts and routers reach each other across the two subnets on the one bridge.
    await lab.exec('r-c1', ['ping', '-c', '1', '-W', '2', P1]);
  });

  it('maps: everyone is seen at its public address; cone/cgnat keep one port per socket, symmetric does not', async (t) => {
    const facts: string[] = [];
    await Promise.all(['n1', 'c1', 'y1', 'g1', 'b1'].map(async (h) => {
      const r = await udp(h, 'probe', 20000, 600, 'map', `${P1}:7000`, `${lab.address('p2')}:7000`, `${P1}:7001`);
      const m = mapped(r.rx);
      assert.equal(m.length, 3, `${h}: ${JSON.stringify(r.rx)}`);
      for (const x of m) assert.equal(x.ip, lab.publicAddress(h), `${h} seen at ${x.ip}`); // (1); cgnat: the carrier (5)
      const ports = [...new Set(m.map((x) => x.port))];
      if (lab.nat(h).nat === 'symmetric') assert.ok(ports.length >= 2, `${h}: ports ${ports}`);
      else assert.deepEqual(ports, [20000], `${h}: ports ${ports}`); // endpoint-independent, and port-preserving
      facts.push(`${kind(h)} ${h}: seen as ${lab.publicAddress(h)} ports ${m.map((x) => x.port).join('/')} from private ${lab.address(h)}:20000`);
    }));
    for (const f of facts.sort()) t.diagnostic(f);
  });

  it('filters: only the contacted IP:port gets back in, for every NAT type, firewall or not', async (t) => {
    // (3) the host talks to p1:7000; then p1 from another port and p2 send to its mapping; p1:7000 replies
    // at once and again 0.8 s later (the mapping stays open).
    const facts = await Promise.all(['c1', 'y1', 'g1', 'b1', 'n1'].map(async (h, i) => {
      const probe = udp(h, 'probe', 20100 + i, 1500, `later-${h}`, `${P1}:7000`);
      const rxRe = new RegExp(`RX 7000 (\\S+) later-${h} 0`);
      await echo1.waitForOutput(rxRe, 5000);
      const mapping = rxRe.exec(echo1.stdout)![1]!;
      await Promise.all([
        udp('p1', 'send', 7003 + i, mapping, 'other-port'),
        udp('p2', 'send', 7003 + i, mapping, 'other-addr'),
      ]);
      const got = (await probe).rx as [string, string][];
      const payloads = got.map(([from, d]) => `${from} ${d.split(' ')[0]}`);
      assert.ok(payloads.includes(`${P1}:7000 mapped`) && payloads.includes(`${P1}:7000 later-mapped`), `${h}: ${payloads}`);
      const unsolicited = got.filter(([, d]) => d.startsWith('other')).map(([, d]) => d);
      if (lab.nat(h).nat === 'none') assert.deepEqual(unsolicited.sort(), ['other-addr', 'other-port']);
      else assert.deepEqual(unsolicited, [], `${h} let in ${unsolicited}`);
      return `${kind(h)} ${h}: mapping ${mapping}; let in: contacted p1:7000${unsolicited.length ? `, ${unsolicited.join(', ')}` : ' only'}`;
    }));
    for (const f of facts) t.diagnostic(f);
  });

  it('firewall: a neighbour routing 10.x via the router reaches the LAN only through a bare router', async () => {
    const lanOf = (h: string) => lab.address(h).replace(/\.2$/, '.0/24');
    try {
      for (const h of ['c1', 'b1']) await lab.exec('p2', ['ip', 'route', 'add', lanOf(h), 'via', lab.publicAddress(h)]);
      const toCone = await lab.exec('p2', ['ping', '-c', '1', '-W', '1', lab.address('c1')], { allowFail: true });
      assert.notEqual(toCone.code, 0, 'the firewalled router forwarded an unsolicited ping into its LAN');
      await lab.exec('p2', ['ping', '-c', '1', '-W', '2', lab.address('b1')]);
    } finally {
      for (const h of ['c1', 'b1']) await lab.exec('p2', ['ip', 'route', 'del', lanOf(h)], { allowFail: true });
    }
  });

  it('hole-punches between some pairs of NAT types (both send to each other\'s STUN-seen mapping)', async (t) => {
    // [first, second, expected]: `first` starts sending 100 ms before `second` (real peers never start
    // in the same microsecond; on bare routers who starts first decides).
    const pairs: [string, string, boolean][] = [
      ['n1', 'n2', true], ['n1', 'c1', true], ['n1', 'y1', true], ['n1', 'g1', true],
      ['c1', 'c2', true], ['c1', 'y1', false], ['y1', 'c1', false], ['c1', 'g1', true], ['g1', 'c1', true],
      ['y1', 'y2', false], ['y1', 'g1', false], ['g1', 'g2', true],
      ['b1', 'b2', false], ['b1', 'c1', true], ['c1', 'b1', false],
    ];
    const results = await Promise.all(pairs.map(async ([a, b, expected], k) => {
      const port = 22000 + 10 * k;
      const stun = async (h: string) => mapped((await udp(h, 'probe', port, 300, 'stun', `${P1}:7000`)).rx as [string, string][])[0];
      const [ma, mb] = await Promise.all([stun(a), stun(b)]);
      assert.ok(ma && mb, `${a}/${b}: no STUN answer`);
      const [ra, rb] = await Promise.all([
        udp(a, 'punch', port, 0, 1000, `${mb.ip}:${mb.port}`),
        udp(b, 'punch', port, 100, 1000, `${ma.ip}:${ma.port}`),
      ]);
      const aHeard = (ra.rx as string[]).filter((s) => s.startsWith(`${lab.publicAddress(b)}:`));
      const bHeard = (rb.rx as string[]).filter((s) => s.startsWith(`${lab.publicAddress(a)}:`));
      const works = aHeard.length > 0 && bHeard.length > 0;
      return { line: `${kind(a)} -> ${kind(b)} (${a} first): ${works ? 'punched' : 'FAILED'} (${a} heard ${aHeard.join(',') || '-'}; ${b} heard ${bHeard.join(',') || '-'})`, works, expected };
    }));
    for (const r of results) t.diagnostic(r.line);
    assert.deepEqual(results.map((r) => r.works), results.map((r) => r.expected), results.map((r) => r.line).join('\n'));
  });

  it('udpBlockedExcept: UDP reaches only the listed address; TCP/ICMP elsewhere still pass', async () => {
    const r = await udp('u1', 'probe', 20300, 600, 'ub', `${P1}:7000`, `${lab.address('p2')}:7000`);
    assert.deepEqual(mapped(r.rx as [string, string][]).map((x) => x.from), [`${P1}:7000`]);
    await lab.exec('u1', ['ping', '-c', '1', '-W', '2', lab.address('p2')]);
  });
});

describe('netns lab: NAT teardown', { skip }, () => {
  const ours = () => namespaces().filter((n) => n.startsWith(`idl${process.pid}x`)).sort();

  it('deletes routers and LANs on destroy, and everything made so far when create fails', async () => {
    const before = ours();
    const lab = await Lab.create({ hosts: ['a'], natHosts: [{ name: 'x', nat: 'cgnat' }, { name: 'y', nat: 'symmetric' }] });
    assert.ok(ours().includes(`${lab.prefix}-c-x`));
    await lab.destroy();
    assert.deepEqual(ours(), before);
    await assert.rejects(Lab.create({ hosts: ['a'], natHosts: [{ name: 'x', nat: 'cgnat' }, { name: 'x', nat: 'cone' }] }), /duplicate lab node x/);
    assert.deepEqual(ours(), before);
  });

  it('sweeps routers left behind by a dead run', async () => {
    let dead = 4_000_000;
    for (;;) { try { process.kill(dead, 0); dead--; } catch { break; } }
    const stale = [`idl${dead}x0-r-zz`, `idl${dead}x0-c-zz`];
    for (const n of stale) execFileSync('ip', ['netns', 'add', n]);
    const lab = await Lab.create({ hosts: [] });
    await lab.destroy();
    const left = namespaces().filter((n) => stale.includes(n));
    for (const n of left) execFileSync('ip', ['netns', 'del', n]);
    assert.deepEqual(left, []);
  });
});
