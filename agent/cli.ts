#!/usr/bin/env node
// idloc-agent: the command line. Bad flags and config files give one line on stderr and exit 2;
// a missing privilege or agent, a corrupt or exposed state file, or a refused control request gives
// one line and exit 1. Logs go to stderr (readable on a terminal, pino JSON otherwise: logging.ts); the
// answers of id/status go to stdout, so `--json` output can be piped.
import { Command, CommanderError, Option } from 'commander';
import { ConfigError, loadConfig, LOG_FORMATS, LOG_LEVELS, type RawOptions } from './config.js';
import { agentLogger } from './logging.js';
import { DEFAULT_STATE_DIR, NAMES_MAX_KEPT } from './base/constants.js';
import { StateFileError } from './base/state-file.js';
import { generateSecretFile } from './base/overlay-secret.js';
import { IdentityError, identityToJson, loadOrCreateIdentity } from './idloc/identity.js';
import { ControlError, request } from './control.js';
import { PrivilegeError } from './host.js';
import type { AgentStatus } from './daemon.js';
import type { RegisterOutcome, ResolveResult } from './agent-overlay.js';
import { formatStatus } from './status-format.js';
import { parseEndpoint } from './conn/socket.js';
import { formatNetcheck } from './netcheck-format.js';
import type { NetcheckReport } from './nat/netcheck.js';
import { formatPong, type PingReply } from './ping.js';
import { registerCaCommands } from './ca-cli.js';

const EXIT_USAGE = 2;
const EXIT_FAILURE = 1;

function fail(code: number, message: string): never {
  process.stderr.write(`idloc-agent: ${message}\n`);
  process.exit(code);
}

const program = new Command('idloc-agent')
  .description('ID/locator VPN agent: reach peers by identifier, across NATs and network changes')
  .exitOverride()
  .configureOutput({ writeErr: () => {}, outputError: () => {} })
  .showHelpAfterError(false);

const stateDirOption = () => new Option('--state-dir <dir>', 'where the identity and control socket live').default(DEFAULT_STATE_DIR);

program.command('up')
  .description('run the agent in the foreground until SIGINT/SIGTERM')
  .addOption(new Option('--state-dir <dir>', `where the identity and control socket live (default ${DEFAULT_STATE_DIR})`))
  .option('--tap <name>', 'TAP device name (default idloc0)')
  .option('--listen <port>', 'UDP port for tunnels and the overlay (default 4500)')
  .option('--mtu <bytes>', 'TAP MTU (default 1420, so a tunnelled packet fits a 1500-byte path)')
  .option('--peer <pubkey@host:port>', 'a static peer (repeatable)', (v: string, acc: string[] = []) => [...acc, v])
  .option('--bootstrap <host:port>', 'an overlay node to join through (repeatable); none: start a new overlay',
    (v: string, acc: string[] = []) => [...acc, v])
  .addOption(new Option('--allow <who>', 'who may open a tunnel to this agent: any overlay member (default) or only --peer keys')
    .choices(['overlay', 'static']))
  .option('--stun <host:port>', 'a STUN server for finding this host\'s public address (repeatable); overlay members are asked too',
    (v: string, acc: string[] = []) => [...acc, v])
  .option('--turn <turn:user:pass@host:port>', 'a TURN server to relay through when no direct path exists')
  .option('--turn-secret <secret>', 'relay through the TURN servers the overlay advertises, with credentials from this shared secret (coturn use-auth-secret)')
  .option('--offer-turn <host:port>', 'advertise this TURN server to the overlay (run on or next to the TURN server)')
  .option('--no-peer-relay', 'do not relay for overlay members behind NATs that keep this agent as a rendezvous node')
  .option('--no-port-probing', 'no birthday probing (many sockets, or checks to many ports) for NATs that pick ports at random')
  .option('--dns', 'answer DNS for NAME.idloc and NODEID.idloc on this host\'s overlay addresses (port 53), forwarding other names to the resolvers in /etc/resolv.conf; split DNS through systemd-resolved where it runs')
  .option('--puzzle-difficulty <bits>', 'NodeID puzzle every key of this overlay must solve; all nodes must agree (default 16)')
  .option('--config <file>', 'JSON config file; flags override it')
  .addOption(new Option('--log-level <level>', 'log level').choices(LOG_LEVELS as unknown as string[]))
  .addOption(new Option('--log-format <format>', 'auto: readable lines on a terminal, JSON otherwise (default auto)').choices(LOG_FORMATS as unknown as string[]))
  .option('--metrics <host:port>', 'serve Prometheus metrics at http://HOST:PORT/metrics')
  .option('--overlay-secret <file>', 'a private overlay: only holders of this shared secret may join or get any answer (twice while rotating: the one to send with first); SIGHUP re-reads it',
    (v: string, acc: string[] = []) => [...acc, v])
  .option('--firewall <file>', 'inbound rules by identity (JSON), e.g. [{"from":"group:build","proto":"tcp","port":22},{"from":"*","proto":"icmp"}]; whatever no rule allows is dropped')
  .action(async (opts: RawOptions) => {
    const config = loadConfig(opts);
    const logger = agentLogger(config.logLevel, config.logFormat);
    const { runAgent } = await import('./host.js');
    const code = await runAgent(config, logger, () => loadConfig(opts));
    logger.flush();
    process.exit(code);
  });

program.command('id')
  .description("print this host's identity (creating it if missing)")
  .addOption(stateDirOption())
  .option('--json', 'print JSON')
  .action((opts: { stateDir: string; json?: boolean }) => {
    const id = identityToJson(loadOrCreateIdentity(opts.stateDir));
    if (opts.json) process.stdout.write(JSON.stringify(id) + '\n');
    else process.stdout.write(`node id     ${id.nodeId}\npublic key  ${id.publicKey}\nipv4        ${id.ipv4}\nipv6        ${id.ipv6}\n`);
  });

program.command('status')
  .description('ask the running agent for its identity, TAP, and every peer with its path')
  .addOption(stateDirOption())
  .option('--json', 'print JSON')
  .action(async (opts: { stateDir: string; json?: boolean }) => {
    const status = (await request(opts.stateDir, 'status')) as AgentStatus;
    process.stdout.write(opts.json ? JSON.stringify(status, null, 2) + '\n' : formatStatus(status));
  });

program.command('register')
  .description('register NAME in the overlay for this host (first come; only this key may update it)')
  .argument('<name>', 'a name: 1-63 of a-z 0-9 -, case-insensitive')
  .addOption(stateDirOption())
  .option('--json', 'print JSON')
  .action(async (name: string, opts: { stateDir: string; json?: boolean }) => {
    const r = (await request(opts.stateDir, 'register', { name })) as RegisterOutcome;
    if (!r.ok) {
      if (r.reason === 'invalid') fail(EXIT_USAGE, `"${name}" is not a valid name (1-63 of a-z 0-9 -)`);
      if (r.reason === 'taken') fail(EXIT_FAILURE, `name "${name}" is taken by ${r.holder ?? 'another host'}`);
      if (r.reason === 'too-many') fail(EXIT_FAILURE, `this host keeps ${NAMES_MAX_KEPT} names already (the most it registers again at start)`);
      fail(EXIT_FAILURE, `name "${name}" could not be stored: no overlay node answered`);
    }
    process.stdout.write(opts.json ? JSON.stringify({ name: r.name, nodeId: r.nodeId }) + '\n' : `${r.name} -> ${r.nodeId}\n`);
  });

program.command('resolve')
  .description('look up a name, NodeID, or overlay address in the overlay: its key, addresses and locators')
  .argument('<query>', 'NAME | NODEID (40 hex) | overlay IPv4 | overlay IPv6')
  .addOption(stateDirOption())
  .option('--json', 'print JSON')
  .action(async (query: string, opts: { stateDir: string; json?: boolean }) => {
    const r = (await request(opts.stateDir, 'resolve', { query })) as ResolveResult | null;
    if (!r) fail(EXIT_FAILURE, `${query} not found in the overlay`);
    if (opts.json) { process.stdout.write(JSON.stringify(r) + '\n'); return; }
    const lines = [
      ...(r.name ? [`name        ${r.name}`] : []),
      `node id     ${r.nodeId}`, `public key  ${r.publicKey}`, `ipv4        ${r.ipv4 ?? '-'}`, `ipv6        ${r.ipv6}`,
      ...r.candidates.map((c) => `locator     ${c.address}:${c.port}`),
    ];
    process.stdout.write(lines.join('\n') + '\n');
  });

program.command('netcheck')
  .description('what NAT is between this host and the internet: public address, mapping and filtering behaviour')
  .addOption(stateDirOption())
  .option('--stun <host:port>', 'a STUN server to ask (repeatable); default: overlay members, which all answer STUN',
    (v: string, acc: string[] = []) => [...acc, v])
  .option('--json', 'print JSON')
  .action(async (opts: { stateDir: string; stun?: string[]; json?: boolean }) => {
    for (const s of opts.stun ?? []) {
      const e = parseEndpoint(s);
      if (!e || e.port === 0) fail(EXIT_USAGE, `--stun: "${s}" is not HOST:PORT`);
    }
    const r = (await request(opts.stateDir, 'netcheck', { servers: opts.stun ?? [] })) as NetcheckReport;
    process.stdout.write(opts.json ? JSON.stringify(r, null, 2) + '\n' : formatNetcheck(r));
  });

program.command('ping')
  .description('ping a peer inside the tunnel: each pong with the path it came back on and its round trip')
  .argument('<peer>', 'NAME | NODEID (40 hex) | overlay IPv4 | overlay IPv6')
  .addOption(stateDirOption())
  .option('-c, --count <n>', 'pings to send, one a second', '10')
  .option('--until-direct', 'stop at the first pong on a direct path; exit 1 if none comes')
  .option('--timeout <seconds>', 'how long each ping waits for its pong', '2')
  .option('--json', 'print one JSON object per ping')
  .action(async (peer: string, opts: { stateDir: string; count: string; untilDirect?: boolean; timeout: string; json?: boolean }) => {
    const count = Number(opts.count), timeoutS = Number(opts.timeout);
    if (!Number.isInteger(count) || count < 1 || count > 10_000) fail(EXIT_USAGE, `--count: "${opts.count}" is not a whole number from 1 to 10000`);
    if (!Number.isFinite(timeoutS) || timeoutS < 0.1 || timeoutS > 30) fail(EXIT_USAGE, `--timeout: "${opts.timeout}" is not a number of seconds from 0.1 to 30`);
    let direct = false, answered = 0;
    for (let i = 0; i < count && !direct; i++) {
      const started = Date.now();
      const r = (await request(opts.stateDir, 'ping-peer', { query: peer, timeoutMs: Math.round(timeoutS * 1000) })) as PingReply | { query: string; error: string; nodeId?: undefined };
      if (r.nodeId === undefined) fail(EXIT_FAILURE, r.error);
      process.stdout.write(opts.json ? JSON.stringify(r) + '\n' : formatPong(r) + '\n');
      if (r.rttMs !== null) answered++;
      direct = opts.untilDirect === true && r.path === 'direct';
      if (!direct && i + 1 < count) await new Promise((res) => setTimeout(res, Math.max(0, 1000 - (Date.now() - started))));
    }
    if (opts.untilDirect && !direct) fail(EXIT_FAILURE, `no direct path to ${peer} after ${count} ping${count === 1 ? '' : 's'}`);
    if (answered === 0) process.exit(EXIT_FAILURE);
  });

program.command('secret')
  .description('the shared secret of a private overlay')
  .command('generate')
  .description('write a new random secret (32 bytes, mode 0600) to FILE; give it to every member with --overlay-secret')
  .argument('<file>', 'where to write it (never overwritten)')
  .action((file: string) => {
    generateSecretFile(file);
    process.stdout.write(`wrote a new overlay secret to ${file}; copy it to every member (mode 0600) and start them with --overlay-secret ${file}\n`);
  });

registerCaCommands(program, fail);

async function main(): Promise<void> {
  try {
    await program.parseAsync(process.argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.exitCode === 0) process.exit(0); // --help, --version
      fail(EXIT_USAGE, e.message.replace(/^error: /, ''));
    }
    if (e instanceof ConfigError) fail(EXIT_USAGE, e.message);
    if (e instanceof PrivilegeError || e instanceof ControlError || e instanceof IdentityError || e instanceof StateFileError) fail(EXIT_FAILURE, e.message);
    fail(EXIT_FAILURE, (e as Error).message ?? String(e));
  }
}

void main();
