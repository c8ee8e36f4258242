// coturn (`turnserver`) in a lab host, for the TURN integration test: UDP only on the host's lab address
// (with `dualStack`, on its IPv4 and IPv6 addresses both, listening and relaying on each, so that one
// allocation can have relayed addresses of both families), long-term credentials with one static user,
// everything it writes (log, pid file, user db) in the lab dir, started as a lab process and stopped by
// its pid.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Endpoint } from '../../agent/conn/socket.js';
import { TURN_DEFAULT_PORT } from '../../agent/base/constants.js';
import { waitFor, type Lab, type LabProcess } from './lab.js';

export interface Coturn {
  proc: LabProcess;
  endpoint: Endpoint;
  /** With `dualStack`: where it listens on IPv6. */
  endpoint6: Endpoint | undefined;
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

export interface CoturnOptions {
  username: string; password: string; realm: string; port?: number; staleNonceS?: number;
  /** coturn's use-auth-secret (TURN REST API credentials minted from it) instead of the user. */
  authSecret?: string;
  /** Listen and relay on the host's IPv6 address too (a host made with ipv6: 'dual'). */
  dualStack?: boolean;
}

export async function startCoturn(lab: Lab, node: string, opts: CoturnOptions): Promise<Coturn> {
  const bin = turnserverPath();
  if (!bin) throw new Error('turnserver (coturn) not installed');
  const ip = lab.address(node);
  const ip6 = opts.dualStack ? lab.address6(node) : undefined;
  if (opts.dualStack && !ip6) throw new Error(`coturn dualStack: lab host ${node} has no IPv6 address (make it with ipv6: 'dual')`);
  const port = opts.port ?? TURN_DEFAULT_PORT;
  const logFile = join(lab.dir, `coturn-${node}.log`);
  const argv = [
    bin,
    '-n', // no config file: only the flags below
    ...[ip, ...(ip6 ? [ip6] : [])].flatMap((a) => ['--listening-ip', a, '--relay-ip', a]), '--listening-port', String(port),
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
  // It binds one listener per address: wait for the IPv6 one too.
  if (ip6) {
    await waitFor(async () => (await lab.exec(node, ['ss', '-Hlun', `sport = :${port}`])).stdout.includes(`[${ip6}]`), 10_000,
      { what: `coturn listening on [${ip6}]:${port}`, intervalMs: 100 });
  }
  const read = (f: string): string => { try { return readFileSync(f, 'utf8'); } catch { return ''; } };
  return {
    proc, endpoint: { address: ip, port }, endpoint6: ip6 ? { address: ip6, port } : undefined, realm: opts.realm, username: opts.username, password: opts.password, logFile,
    log: () => read(logFile) + read(`${logFile}.out`),
  };
}
