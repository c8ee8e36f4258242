// coturn (`turnserver`) in a lab host, for the TURN integration test: UDP only on the host's lab address,
// long-term credentials with one static user, everything it writes (log, pid file, user db) in the lab dir,
// started as a lab process and stopped by its pid.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Endpoint } from '../../agent/conn/socket.js';
import { TURN_DEFAULT_PORT } from '../../agent/base/constants.js';
import type { Lab, LabProcess } from './lab.js';

export interface Coturn {
  proc: LabProcess;
  endpoint: Endpoint;
  realm: string;
  username: string;
  password: string;
  logFile: string;
  /** The log so far (coturn's --log-file, with the process's own output appended). */
  log(): string;
}

/** Path of turnserver, or undefined if coturn is not installed. */
export function turnserverPath(): string | undefined {
  for (const p of ['/usr/bin/turnserver', '/usr/local/bin/turnserver']) {
    try { execFileSync(p, ['--version'], { stdio: 'ignore', timeout: 5_000 }); return p; } catch { /* next */ }
  }
  return undefined;
}

/** For prerequisites(): the suite relays through a real coturn. */
export function coturnMissing(): string | false {
  return !turnserverPath() && "coturn's turnserver is not installed (scripts/install-test-deps.sh, or apt-get install coturn)";
}

/** `authSecret`: coturn's use-auth-secret (TURN REST API credentials minted from it) instead of the user. */
export async function startCoturn(lab: Lab, node: string, opts: { username: string; password: string; realm: string; port?: number; staleNonceS?: number; authSecret?: string }): Promise<Coturn> {
  const bin = turnserverPath();
  if (!bin) throw new Error('turnserver (coturn) not installed');
  const ip = lab.address(node);
  const port = opts.port ?? TURN_DEFAULT_PORT;
  const logFile = join(lab.dir, `coturn-${node}.log`);
  const argv = [
    bin,
    '-n', // no config file: only the flags below
    '--listening-ip', ip, '--relay-ip', ip, '--listening-port', String(port),
    '--min-port', '49152', '--max-port', '49407', // relay ports: 256 is plenty for a test
    ...(opts.authSecret !== undefined
      ? ['--use-auth-secret', `--static-auth-secret=${opts.authSecret}`]
      : ['--lt-cred-mech', '--user', `${opts.username}:${opts.password}`]),
    '--realm', opts.realm,
    '--no-tls', '--no-dtls', '--no-tcp', '--no-cli', '--no-rfc5780',
    '--userdb', join(lab.dir, `coturn-${node}.sqlite`), '--pidfile', join(lab.dir, `coturn-${node}.pid`),
    '--log-file', logFile, '--simple-log', '--verbose',
    // Nonces that go stale within a test (coturn's default is 600 s) exercise the client's 438 handling.
    ...(opts.staleNonceS !== undefined ? [`--stale-nonce=${opts.staleNonceS}`] : []),
  ];
  const proc = lab.spawn(node, argv, { logFile: `${logFile}.out` });
  await lab.waitForPort(node, port, { udp: true, timeoutMs: 10_000 }).catch((e: Error) => {
    throw new Error(`${e.message}; coturn said: ${proc.stderr.slice(-2000)} ${proc.stdout.slice(-2000)}`);
  });
  const read = (f: string): string => { try { return readFileSync(f, 'utf8'); } catch { return ''; } };
  return {
    proc, endpoint: { address: ip, port }, realm: opts.realm, username: opts.username, password: opts.password, logFile,
    log: () => read(logFile) + read(`${logFile}.out`),
  };
}
