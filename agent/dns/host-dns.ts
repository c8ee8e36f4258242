// The DNS service on a real host: /etc/resolv.conf read once (before anything could point it at us),
// resolvectl run for real, and the host's interface addresses for telling its own clients from others.
// systemd-resolved is told only from the network namespace it serves (PID 1's): an agent in another one
// (a container, the test lab) has links resolved does not know, and resolvectl would name the wrong one.
import { execFile } from 'node:child_process';
import { readFileSync, readlinkSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import type { Logger } from 'pino';
import { DNS_RESOLVECTL_TIMEOUT_MS } from '../base/constants.js';
import { ResolvedLink, type CommandRunner, type RunResult } from './resolved.js';
import { DnsService, type OverlayAddresses, type OverlayNames } from './service.js';

const RESOLV_CONF = '/etc/resolv.conf';

/** Runs programs with a time limit; a program that is not there answers code -1. */
export const execRunner: CommandRunner = {
  run: (argv) => new Promise<RunResult>((resolve) => {
    execFile(argv[0]!, argv.slice(1), { timeout: DNS_RESOLVECTL_TIMEOUT_MS }, (err, stdout, stderr) => {
      const code = !err ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1;
      resolve({ code, stdout: String(stdout), stderr: String(stderr || (err && code === -1 ? err.message : '')) });
    });
  }),
};

/** Whether we share PID 1's network namespace (where systemd-resolved runs); yes when it cannot be told. */
export function inInitNetns(): boolean {
  try {
    return readlinkSync('/proc/self/ns/net') === readlinkSync('/proc/1/ns/net');
  } catch {
    return true;
  }
}

function readResolvConf(logger: Logger): string {
  try {
    return readFileSync(RESOLV_CONF, 'utf8');
  } catch (e) {
    logger.warn({ err: (e as NodeJS.ErrnoException).code }, `dns: cannot read ${RESOLV_CONF}: names outside .idloc get SERVFAIL`);
    return '';
  }
}

export function startHostDns(o: { link: string; addresses: OverlayAddresses; names: OverlayNames; logger: Logger }): Promise<DnsService> {
  return DnsService.start({
    names: o.names, addresses: o.addresses, logger: o.logger, resolvConf: readResolvConf(o.logger),
    resolved: inInitNetns() ? new ResolvedLink(execRunner, o.link) : undefined,
    hostAddresses: () => Object.values(networkInterfaces()).flatMap((l) => (l ?? []).map((i) => i.address)),
  });
}
