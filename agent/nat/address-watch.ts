// Notices when this host's own addresses change — a laptop joining another network, a DHCP renewal,
// a VM moved — from the kernel's netlink notifications, read through `ip -o monitor address` (iproute2
// is on every host that runs the agent; this keeps netlink parsing out of the agent).
//
// Why it matters: a peer moves its endpoint for us only when an authenticated packet arrives from our
// new address (roaming). If we happen to be the silent side — receiving a download, say — the peer keeps
// sending into the void and TCP backs off for as long as our next keepalive is away (up to 15 s). So on
// a change we speak first, at once.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Logger } from 'pino';
import { ADDRESS_CHANGE_SETTLE_MS } from '../constants.js';

export interface AddressWatch { close(): void }

export function watchAddresses(opts: { ignoreInterface: string; onChange: () => void; logger: Logger }): AddressWatch {
  let child: ChildProcess | undefined;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const fire = () => {
    timer = undefined;
    if (!closed) opts.onChange();
  };
  try {
    child = spawn('ip', ['-o', 'monitor', 'address'], { stdio: ['ignore', 'pipe', 'ignore'] });
  } catch (e) {
    opts.logger.warn({ err: (e as Error).message }, 'cannot watch address changes; roaming waits for keepalives');
    return { close() {} };
  }
  child.on('error', (e) => opts.logger.warn({ err: e.message }, 'cannot watch address changes; roaming waits for keepalives'));
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    // One line per change: "3: eth0    inet 198.51.100.5/24 ..." or "Deleted 3: eth0 ...". Our own
    // TAP's addresses are the overlay's, not a locator.
    const relevant = chunk.split('\n').some((l) => l.trim() && !new RegExp(`^(Deleted )?\\d+: ${opts.ignoreInterface}\\s`).test(l));
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
