// Notices when this host's own addresses or its default route change — a laptop joining another network, a DHCP renewal,
// a VM moved, an uplink's link going down or up — from the kernel's netlink notifications, read through
// `ip -o monitor address route link` (iproute2
// is on every host that runs the agent; this keeps netlink parsing out of the agent).
//
// Why it matters: a peer moves its endpoint for us only when an authenticated packet arrives from our
// new address (roaming). If we happen to be the silent side — receiving a download, say — the peer keeps
// sending into the void and TCP backs off for as long as our next keepalive is away (up to 15 s). So on
// a change we speak first, at once.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Logger } from 'pino';
import { ADDRESS_CHANGE_SETTLE_MS } from '../base/constants.js';

export interface AddressWatch { close(): void }

/** Whether one `ip -o monitor address` line ("3: eth0    inet 198.51.100.5/24 scope global eth0 ..." or
 *  "Deleted 3: eth0 ...") can change where peers reach us. Not our own TAP (its addresses are the
 *  overlay's, not a locator) and not link-local or host-scope addresses: the kernel adds an IPv6
 *  link-local to every interface a second or so after it comes up (DAD), and re-handshaking every peer
 *  for that would be churn that moves nothing. */
export function isLocatorChange(line: string, ignoreInterface: string): boolean {
  // The default route moved ("default via 10.1.0.1 dev eth1 ...", "Deleted default ..."): our packets
  // leave by another uplink, through another NAT, with no address of ours changing.
  if (/^(?:Deleted )?default\b/.test(line)) return / dev (\S+)/.exec(line)?.[1] !== ignoreInterface;
  // A link went down or came up ("3: eth0@if7: <BROADCAST,MULTICAST> mtu 1500 ... state DOWN"). The kernel
  // drops the IPv4 routes through a link that goes down without a word about them, so this line is the
  // only sign that our packets now leave by another uplink.
  const link = /^(?:Deleted )?\d+: ([^:@\s]+)(?:@\S+)?: </.exec(line);
  if (link) return link[1] !== ignoreInterface;
  const m = /^(?:Deleted )?\d+: (\S+)\s+(.*)$/.exec(line);
  if (!m) return false;
  if (m[1] === ignoreInterface) return false;
  // A line we cannot read the scope of still counts: a missed move costs more than a spare refresh.
  const scope = / scope (\S+)/.exec(m[2]!)?.[1];
  return scope !== 'link' && scope !== 'host';
}

export function watchAddresses(opts: { ignoreInterface: string; onChange: () => void; logger: Logger }): AddressWatch {
  let child: ChildProcess | undefined;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const fire = () => {
    timer = undefined;
    if (!closed) opts.onChange();
  };
  try {
    child = spawn('ip', ['-o', 'monitor', 'address', 'route', 'link'], { stdio: ['ignore', 'pipe', 'ignore'] });
  } catch (e) {
    opts.logger.warn({ err: (e as Error).message }, 'cannot watch address changes; roaming waits for keepalives');
    return { close() {} };
  }
  child.on('error', (e) => opts.logger.warn({ err: e.message }, 'cannot watch address changes; roaming waits for keepalives'));
  child.stdout!.setEncoding('utf8');
  let partial = '';
  child.stdout!.on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? ''; // a read can end mid-line
    const relevant = lines.some((l) => isLocatorChange(l, opts.ignoreInterface));
    // Settle briefly: a move is usually a delete and an add a few ms apart; act once, after both.
    if (relevant && !timer) timer = setTimeout(fire, ADDRESS_CHANGE_SETTLE_MS);
  });
  child.unref();
  return {
    close() {
      closed = true;
      if (timer) clearTimeout(timer);
      child?.kill();
    },
  };
}
