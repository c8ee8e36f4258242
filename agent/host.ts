// The agent on a real host: the native TAP, the kernel's addresses and routes, the UDP socket, the
// control socket and the signals. Everything per packet lives in Agent (daemon.ts); this file only
// sets the stage and takes it down again, in reverse order, on SIGINT/SIGTERM or a fatal error.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Logger } from 'pino';
import { loadSecrets, OverlaySecrets } from './base/overlay-secret.js';
import type { Server } from 'node:net';
import { Agent } from './daemon.js';
import type { Config } from './config.js';
import { readUplinks } from './conn/uplinks.js';
import { loadOrCreateIdentity, saveIpv4Attempt, type Identity } from './idloc/identity.js';
import { formatIpv4, formatIpv6 } from './idloc/addresses.js';
import { OVERLAY_IPV4_PREFIX_LEN, OVERLAY_IPV6_PREFIX_LEN } from './base/constants.js';
import { NativeTap } from './tap/native-tap.js';
import { UdpSocket } from './conn/udp-socket.js';
import { NativeUdpSocket } from './conn/native-udp-socket.js';
import { serveControl } from './control.js';
import { NamesState } from './names-state.js';
import { endpointKey, parseEndpoint, type Endpoint } from './conn/socket.js';
import { serveMetrics } from './metrics.js';
import { loadPuzzleNonce } from './puzzle-state.js';
import { watchAddresses } from './conn/address-watch.js';
import { hostEndpoints } from './conn/host-addresses.js';
import { notifyReady } from './service-notify.js';
import { startHostDns } from './dns/host-dns.js';
import type { DnsService, OverlayAddresses } from './dns/service.js';

const run = promisify(execFile);

export class PrivilegeError extends Error {}

/** The TAP device and its addresses need CAP_NET_ADMIN; say so before anything half-happens. */
export function checkPrivileges(): void {
  if (process.getuid?.() === 0) return;
  throw new PrivilegeError('idloc-agent up needs root (CAP_NET_ADMIN to create the TAP device and assign its overlay addresses): run it with sudo');
}

async function ip(args: string[]): Promise<void> {
  try {
    await run('ip', args);
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`ip ${args.join(' ')}: ${(err.stderr ?? err.message).trim()}`);
  }
}

async function assignAddresses(tap: string, id: Identity): Promise<void> {
  await ip(['addr', 'add', `${formatIpv4(id.ipv4)}/${OVERLAY_IPV4_PREFIX_LEN}`, 'dev', tap]);
  // nodad: nobody else can own our key-derived address, and DAD would only delay the first packet.
  await ip(['-6', 'addr', 'add', `${formatIpv6(id.ipv6)}/${OVERLAY_IPV6_PREFIX_LEN}`, 'dev', tap, 'nodad']);
}

function overlayAddresses(id: Identity): OverlayAddresses {
  return { ipv4: formatIpv4(id.ipv4), ipv6: formatIpv6(id.ipv6) };
}

/** The control request's STUN server list ("HOST:PORT" strings, checked by the CLI already). */
function parseServers(v: unknown): Endpoint[] {
  if (!Array.isArray(v)) return [];
  return v.map((x) => parseEndpoint(String(x))).filter((e): e is Endpoint => e !== undefined);
}

/** Turn the errno of a failed setup step into a sentence that says what to do. */
function explain<T>(step: () => T, byCode: Record<string, string>): T {
  try {
    return step();
  } catch (e) {
    const why = byCode[(e as NodeJS.ErrnoException).code ?? ''];
    throw why ? new Error(why) : e;
  }
}

/** Run until a signal; resolves with the exit code. `reload`: the config as it stands now (SIGHUP). */
export async function runAgent(config: Config, logger: Logger, reload?: () => Config): Promise<number> {
  checkPrivileges();
  const identity = loadOrCreateIdentity(config.stateDir);
  const secrets = config.overlaySecret.length ? new OverlaySecrets(loadSecrets(config.overlaySecret)) : undefined;
  const keptNames = NamesState.load(config.stateDir);
  const cleanups: (() => void | Promise<void>)[] = [];
  const cleanup = async () => {
    for (const c of cleanups.reverse()) {
      try { await c(); } catch (e) { logger.warn({ err: (e as Error).message }, 'cleanup step failed'); }
    }
    cleanups.length = 0;
  };
  // A TAP that dies under us (deleted from outside, kernel error) ends the agent: without it
  // there is nothing left to do, and a supervisor restarts us cleanly.
  let fatal: ((err: Error) => void) | undefined;
  try {
    const tap = explain(() => NativeTap.open({ name: config.tap, mtu: config.mtu, onError: (err) => fatal?.(err) }),
      { EBUSY: `TAP device ${config.tap} is in use (another agent running?); choose another with --tap` });
    cleanups.push(() => tap.close());
    await assignAddresses(tap.name, identity);
    // The batched native socket when the addon is built; node:dgram otherwise. Dual-stack either way.
    const inUse = { EADDRINUSE: `UDP port ${config.listen} is in use; choose another with --listen` };
    const socket = NativeUdpSocket.available()
      ? explain(() => NativeUdpSocket.bind(config.listen), inUse)
      : await UdpSocket.bind(config.listen).catch((e: unknown) => explain(() => { throw e; }, inUse));
    cleanups.push(() => socket.close());
    let current = identity;
    let dns: DnsService | undefined;
    const agent = new Agent({
      identity, tap, socket, peers: config.peers, logger, allow: config.allow, stunServers: config.stun, keptNames,
      ...(secrets ? { secrets } : {}), firewall: config.firewall,
      // node:dgram: a few STUN answers a second, no batching needed.
      changePortSocket: (port) => UdpSocket.bind(port),
      ...(config.turn ? { turn: config.turn } : config.turnSecret ? { turn: { secret: config.turnSecret, user: identity.nodeIdHex } } : {}),
      ...(config.offerTurn ? { offerTurn: config.offerTurn } : {}),
      // Standby paths need sends pinned to an interface, which only the native socket does.
      ...(socket instanceof NativeUdpSocket ? { uplinks: readUplinks } : {}),
      // Birthday probing opens 256 cheap sockets (node:dgram); the one a tunnel ends up using is reopened
      // on its port as the batched native one when the addon is built.
      ...(config.portProbing ? {
        probeSockets: {
          open: () => UdpSocket.bind(0),
          ...(NativeUdpSocket.available() ? { reopen: (port: number) => NativeUdpSocket.bind(port) } : {}),
        },
      } : {}),
      overlay: {
        bootstraps: config.bootstrap, puzzleDifficulty: config.puzzleDifficulty, offerPeerRelay: config.peerRelay,
        puzzleNonce: loadPuzzleNonce(config.stateDir, identity.publicKey, config.puzzleDifficulty, logger),
        candidates: () => hostEndpoints(tap.name, socket.local.port),
      },
      onIdentityChanged: async (id) => {
        // The overlay gave us another IPv4 address (ours was claimed first by another key): keep it for
        // the next start and move the TAP's address.
        saveIpv4Attempt(config.stateDir, id);
        await ip(['addr', 'del', `${formatIpv4(current.ipv4)}/${OVERLAY_IPV4_PREFIX_LEN}`, 'dev', tap.name]).catch(() => undefined);
        await ip(['addr', 'add', `${formatIpv4(id.ipv4)}/${OVERLAY_IPV4_PREFIX_LEN}`, 'dev', tap.name]);
        current = id;
        await dns?.moveTo(overlayAddresses(id));
      },
    });
    cleanups.splice(0, cleanups.length, () => agent.close()); // agent.close() closes tap and socket
    if (config.dns) {
      dns = await startHostDns({ link: tap.name, addresses: overlayAddresses(identity), names: agent.dnsNames(), logger: logger.child({ layer: 'dns' }) });
      cleanups.push(() => dns?.close()); // before the TAP goes: resolved's settings are reverted first
    }
    const control: Server = await serveControl(config.stateDir, (cmd, args) => {
      if (cmd === 'status') return { ...agent.status(), dns: dns?.status() ?? null };
      if (cmd === 'register') return agent.register(String(args.name ?? ''));
      if (cmd === 'resolve') return agent.resolve(String(args.query ?? '')).then((r) => r ?? null);
      if (cmd === 'netcheck') return agent.netcheck(parseServers(args.servers));
      if (cmd === 'ping-peer') return agent.ping(String(args.query ?? ''), Math.min(30_000, Math.max(100, Number(args.timeoutMs) || 2_000)));
      throw new Error(`unknown command "${cmd}"`);
    }, { onRefused: (uid) => logger.warn({ uid }, 'control socket: refused a user who may not ask') });
    cleanups.push(() => new Promise<void>((r) => control.close(() => r())));
    if (config.metrics) {
      const m = await serveMetrics(config.metrics, () => agent.status());
      cleanups.push(() => new Promise<void>((r) => m.close(() => r())));
      logger.info({ metrics: `http://${endpointKey(config.metrics)}/metrics` }, 'serving metrics');
    }
    agent.start();
    const watch = watchAddresses({ ignoreInterface: tap.name, onChange: () => agent.addressesChanged(), logger });
    cleanups.push(() => watch.close());
    void notifyReady(logger, { status: `TAP ${tap.name} up, UDP port ${socket.local.port}` });
  } catch (e) {
    await cleanup();
    throw e;
  }
  return new Promise<number>((resolve) => {
    let done = false;
    const finish = (code: number) => {
      if (done) return;
      done = true;
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      process.off('SIGHUP', hup);
      void cleanup().then(() => resolve(code));
    };
    const stop = (sig: NodeJS.Signals) => { logger.info({ signal: sig }, 'stopping'); finish(0); };
    fatal = (err) => { logger.fatal({ err: err.message }, 'TAP device failed; stopping'); finish(1); };
    const hup = () => rotateSecrets(secrets, reload, logger);
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    process.on('SIGHUP', hup);
  });
}

/** SIGHUP: read the overlay secrets again (a rotation step). Everything else needs a restart; a bad file
 *  leaves the secrets as they were, with one line in the log. */
function rotateSecrets(secrets: OverlaySecrets | undefined, reload: (() => Config) | undefined, logger: Logger): void {
  try {
    const files = reload ? reload().overlaySecret : [];
    if (!secrets) {
      if (files.length) logger.error('SIGHUP: an open overlay cannot become private while running; restart the agent with --overlay-secret');
      return;
    }
    if (!files.length) { logger.error('SIGHUP: the config has no overlay secret now; a private overlay cannot open while running, secrets kept'); return; }
    secrets.replace(loadSecrets(files));
    logger.info({ admission: secrets.describe() }, 'SIGHUP: overlay secrets re-read');
  } catch (e) {
    logger.error({ err: (e as Error).message }, 'SIGHUP: overlay secrets not changed');
  }
}
