// Flags and the config file become one validated Config. Flags win over the file; both go through
// the same checks, so they can never disagree about what is valid. Every problem is a ConfigError
// whose message is the one line the CLI prints (exit code 2).
//
// Config file (JSON):
//   { "stateDir": "/var/lib/idloc", "tap": "idloc0", "listen": 4500, "mtu": 1420,
//     "peers": ["<ed25519 public key hex>@198.51.100.7:4500"], "bootstrap": ["198.51.100.7:4500"],
//     "allow": "overlay", "puzzleDifficulty": 16, "turn": "turn:user:pass@203.0.113.5:3478", "peerRelay": true, "portProbing": true,
//     "dns": true, "logLevel": "info", "logFormat": "auto", "metrics": "127.0.0.1:9105" }
// Instead of "turn": "turnSecret": "<coturn static-auth-secret>" (servers from the overlay); and on the
// TURN host's agent "offerTurn": "203.0.113.5:3478" to advertise it.
// No bootstrap: this agent starts a new overlay (others join through it).
// A private overlay: "overlaySecret": "/etc/idloc/overlay.secret" (or a list of two during a rotation,
// the one to send with first); SIGHUP re-reads the list.
// Inbound rules by identity: "firewall": [{"from": "group:build", "proto": "tcp", "port": 22},
// {"from": "*", "proto": "icmp"}] (or --firewall FILE holding that list or {"inbound": [...]}); no rules:
// every member reaches every port.
import { readFileSync } from 'node:fs';
import {
  DEFAULT_LISTEN_PORT, DEFAULT_STATE_DIR, DEFAULT_TAP_MTU, DEFAULT_TAP_NAME, PUZZLE_DEFAULT_DIFFICULTY, PUZZLE_MAX_DIFFICULTY,
  OVERLAY_SECRETS_MAX, TURN_DEFAULT_PORT,
} from './base/constants.js';
import { parseEndpoint as parseHostPort, type Endpoint } from './conn/socket.js';
import type { PeerSpec } from './daemon.js';
import type { TurnConfig } from './nat/turn-relay.js';
import { fromHex, hex } from './base/bytes.js';
import { FirewallRuleError, parseFirewallRules, parseFirewallText, type FirewallRule } from './firewall/rules.js';

export class ConfigError extends Error {}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
/** auto: readable lines when stderr is a terminal, pino JSON otherwise. */
export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export interface Config {
  stateDir: string;
  tap: string;
  listen: number;
  mtu: number;
  peers: PeerSpec[];
  /** Overlay nodes to join through; empty: start a new overlay. */
  bootstrap: Endpoint[];
  /** Who may open a tunnel to us: any overlay member (with a valid NodeID puzzle), or only `peers`. */
  allow: 'overlay' | 'static';
  /** STUN servers for the agent's own netcheck, besides overlay members (which all answer STUN). */
  stun: Endpoint[];
  /** A TURN server to relay through when no direct path exists (--turn turn:USER:PASS@HOST:PORT). */
  turn: TurnConfig | undefined;
  /** Or: TURN servers from the overlay's "turn" service records, credentials minted from this shared
   *  secret (coturn's use-auth-secret). */
  turnSecret: string | undefined;
  /** A TURN server to advertise in the overlay (the agent on the TURN host, say). */
  offerTurn: Endpoint | undefined;
  /** Leading zero bits of the NodeID puzzle this overlay asks of every key (all its nodes must agree). */
  puzzleDifficulty: number;
  /** Relay tunnel datagrams for overlay members that keep us as a rendezvous node (--no-peer-relay: off). */
  peerRelay: boolean;
  /** Behind a NAT that maps each destination to a random port: birthday probing from many sockets, and
   *  spraying ports for peers behind one (--no-port-probing: off; such peers are then relayed). */
  portProbing: boolean;
  /** Answer DNS for NAME.idloc and <nodeid>.idloc on the overlay addresses, forwarding the rest (--dns). */
  dns: boolean;
  logLevel: LogLevel;
  logFormat: LogFormat;
  /** Serve Prometheus metrics at http://HOST:PORT/metrics (--metrics). */
  metrics: Endpoint | undefined;
  /** Files holding the private overlay's shared secrets, the one to send with first (empty: an open overlay). */
  overlaySecret: string[];
  /** Inbound firewall rules (empty: no firewall). */
  firewall: FirewallRule[];
}

/** What the CLI flags carry: all optional strings, as the user typed them. */
export interface RawOptions {
  stateDir?: string | undefined;
  tap?: string | undefined;
  listen?: string | number | undefined;
  mtu?: string | number | undefined;
  peer?: string[] | undefined;
  bootstrap?: string[] | undefined;
  allow?: string | undefined;
  puzzleDifficulty?: string | number | undefined;
  turn?: string | undefined;
  turnSecret?: string | undefined;
  offerTurn?: string | undefined;
  stun?: string[] | undefined;
  /** commander's --no-peer-relay: false when given, undefined (or true) otherwise. */
  peerRelay?: boolean | undefined;
  /** commander's --no-port-probing. */
  portProbing?: boolean | undefined;
  /** commander's --dns: true when given. */
  dns?: boolean | undefined;
  logLevel?: string | undefined;
  logFormat?: string | undefined;
  metrics?: string | undefined;
  /** --overlay-secret FILE, repeatable. */
  overlaySecret?: string[] | undefined;
  /** --firewall FILE: the rules as JSON. */
  firewall?: string | undefined;
  config?: string | undefined;
}

const FILE_KEYS = new Set(['stateDir', 'tap', 'listen', 'mtu', 'peers', 'bootstrap', 'allow', 'puzzleDifficulty', 'turn', 'turnSecret', 'offerTurn', 'stun', 'peerRelay', 'portProbing', 'dns', 'logLevel', 'logFormat', 'metrics', 'overlaySecret', 'firewall']);

export function loadConfig(flags: RawOptions): Config {
  const file = flags.config !== undefined ? readConfigFile(flags.config) : {};
  const where = (key: string, flagName: string) =>
    (flags as Record<string, unknown>)[key] !== undefined ? `--${flagName}` : `${flags.config}: "${key}"`;
  const config: Config = {
    stateDir: checkStateDir(flags.stateDir ?? str(file.stateDir, 'stateDir', flags.config) ?? DEFAULT_STATE_DIR),
    tap: checkTapName(flags.tap ?? str(file.tap, 'tap', flags.config) ?? DEFAULT_TAP_NAME, where('tap', 'tap')),
    listen: checkInt(flags.listen ?? file.listen ?? DEFAULT_LISTEN_PORT, 0, 65535, where('listen', 'listen'), 'a UDP port (0-65535)'),
    mtu: checkInt(flags.mtu ?? file.mtu ?? DEFAULT_TAP_MTU, 1280, 65000, where('mtu', 'mtu'), 'an MTU between 1280 and 65000'),
    peers: checkPeers(flags.peer?.length ? flags.peer : peersOf(file.peers, flags.config), flags.peer?.length ? '--peer' : `${flags.config}: "peers"`),
    bootstrap: checkBootstraps(flags.bootstrap?.length ? flags.bootstrap : stringsOf(file.bootstrap, 'bootstrap', 'HOST:PORT', flags.config),
      flags.bootstrap?.length ? '--bootstrap' : `${flags.config}: "bootstrap"`),
    allow: checkAllow(flags.allow ?? str(file.allow, 'allow', flags.config) ?? 'overlay', where('allow', 'allow')),
    stun: checkBootstraps(flags.stun?.length ? flags.stun : stringsOf(file.stun, 'stun', 'HOST:PORT', flags.config),
      flags.stun?.length ? '--stun' : `${flags.config}: "stun"`),
    turn: parseTurn(flags.turn ?? str(file.turn, 'turn', flags.config), where('turn', 'turn')),
    turnSecret: checkTurnSecret(flags.turnSecret ?? str(file.turnSecret, 'turnSecret', flags.config), where('turnSecret', 'turn-secret'),
      flags.turn ?? file.turn),
    offerTurn: checkEndpoint(flags.offerTurn ?? str(file.offerTurn, 'offerTurn', flags.config), where('offerTurn', 'offer-turn')),
    puzzleDifficulty: checkInt(flags.puzzleDifficulty ?? file.puzzleDifficulty ?? PUZZLE_DEFAULT_DIFFICULTY, 0, PUZZLE_MAX_DIFFICULTY,
      where('puzzleDifficulty', 'puzzle-difficulty'), `a puzzle difficulty in bits (0-${PUZZLE_MAX_DIFFICULTY})`),
    peerRelay: flags.peerRelay === false ? false : bool(file.peerRelay, 'peerRelay', flags.config) ?? true,
    portProbing: flags.portProbing === false ? false : bool(file.portProbing, 'portProbing', flags.config) ?? true,
    dns: flags.dns === true ? true : bool(file.dns, 'dns', flags.config) ?? false,
    logLevel: checkLogLevel(flags.logLevel ?? str(file.logLevel, 'logLevel', flags.config) ?? 'info', where('logLevel', 'log-level')),
    logFormat: checkLogFormat(flags.logFormat ?? str(file.logFormat, 'logFormat', flags.config) ?? 'auto', where('logFormat', 'log-format')),
    metrics: checkEndpoint(flags.metrics ?? str(file.metrics, 'metrics', flags.config), where('metrics', 'metrics')),
    overlaySecret: checkSecretFiles(flags.overlaySecret?.length ? flags.overlaySecret
      : typeof file.overlaySecret === 'string' ? [file.overlaySecret] : stringsOf(file.overlaySecret, 'overlaySecret', 'FILE', flags.config),
    flags.overlaySecret?.length ? '--overlay-secret' : `${flags.config}: "overlaySecret"`),
    firewall: flags.firewall !== undefined ? firewallFile(flags.firewall)
      : file.firewall !== undefined ? rulesOrConfigError(() => parseFirewallRules(file.firewall), `${flags.config}: "firewall"`) : [],
  };
  // the record vouches for the server with a proof made from the secret: without it, clients refuse it
  if (config.offerTurn && !config.turnSecret) {
    throw new ConfigError(`${where('offerTurn', 'offer-turn')} needs --turn-secret (the TURN server's static-auth-secret): clients use only a server whose record is vouched for with it`);
  }
  return config;
}

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read config file ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`config file ${path} is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw new ConfigError(`config file ${path} must hold a JSON object`);
  for (const k of Object.keys(obj)) {
    if (!FILE_KEYS.has(k)) throw new ConfigError(`config file ${path}: unknown key "${k}" (known: ${[...FILE_KEYS].join(', ')})`);
  }
  return obj as Record<string, unknown>;
}

function str(v: unknown, key: string, file?: string): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new ConfigError(`${file}: "${key}" must be a string`);
  return v;
}

function peersOf(v: unknown, file?: string): string[] {
  return stringsOf(v, 'peers', 'PUBKEY@HOST:PORT', file);
}

function stringsOf(v: unknown, key: string, form: string, file?: string): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.some((p) => typeof p !== 'string')) throw new ConfigError(`${file}: "${key}" must be an array of "${form}" strings`);
  return v as string[];
}

function firewallFile(path: string): FirewallRule[] {
  let text: string;
  try { text = readFileSync(path, 'utf8'); } catch (e) {
    throw new ConfigError(`--firewall: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return rulesOrConfigError(() => parseFirewallText(text), `--firewall ${path}`);
}

function rulesOrConfigError(parse: () => FirewallRule[], where: string): FirewallRule[] {
  try { return parse(); } catch (e) {
    if (e instanceof FirewallRuleError) throw new ConfigError(`${where}: ${e.message}`);
    throw e;
  }
}

function checkSecretFiles(list: string[], where: string): string[] {
  if (list.length > OVERLAY_SECRETS_MAX) throw new ConfigError(`${where}: at most ${OVERLAY_SECRETS_MAX} secrets at once (the one to send with, and the one being rotated)`);
  if (list.some((f) => f.length === 0)) throw new ConfigError(`${where}: an empty file name`);
  if (new Set(list).size !== list.length) throw new ConfigError(`${where}: the same file twice`);
  return list;
}

function checkBootstraps(list: string[], where: string): Endpoint[] {
  return list.map((b) => {
    const e = parseHostPort(b);
    if (!e || e.port === 0) throw new ConfigError(`${where}: "${b}" is not HOST:PORT (an IPv4 address and a port)`);
    return e;
  });
}

function checkStateDir(dir: string): string {
  if (dir.length === 0) throw new ConfigError('--state-dir must not be empty');
  return dir;
}

function checkTapName(name: string, where: string): string {
  // IFNAMSIZ is 16 including the NUL; the kernel refuses '/' and whitespace.
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(name)) throw new ConfigError(`${where}: "${name}" is not a valid interface name (1-15 of A-Z a-z 0-9 _ . -)`);
  return name;
}

function checkInt(v: unknown, min: number, max: number, where: string, what: string): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < min || n > max) throw new ConfigError(`${where}: ${JSON.stringify(v)} is not ${what}`);
  return n;
}

function checkTurnSecret(v: string | undefined, where: string, turn: unknown): string | undefined {
  if (v === undefined) return undefined;
  if (v.length === 0) throw new ConfigError(`${where}: the TURN secret is empty`);
  if (turn !== undefined) throw new ConfigError(`${where}: give a TURN server (--turn) or a secret for the overlay's TURN servers (--turn-secret), not both`);
  return v;
}

function checkEndpoint(v: string | undefined, where: string): Endpoint | undefined {
  if (v === undefined) return undefined;
  const e = parseHostPort(v);
  if (!e) throw new ConfigError(`${where}: "${v}" is not HOST:PORT`);
  return e;
}

function checkLogFormat(v: string, where: string): LogFormat {
  if (!(LOG_FORMATS as readonly string[]).includes(v)) throw new ConfigError(`${where}: "${v}" is not a log format (${LOG_FORMATS.join(', ')})`);
  return v as LogFormat;
}

function bool(v: unknown, key: string, file: string | undefined): boolean | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw new ConfigError(`${file}: "${key}" must be true or false`);
  return v;
}

/** "turn:USER:PASS@HOST:PORT" (the "turn:" is optional; PORT defaults to 3478). */
export function parseTurn(v: string | undefined, where = '--turn'): TurnConfig | undefined {
  if (v === undefined) return undefined;
  const m = /^(?:turn:)?([^:@]+):([^@]+)@(.+)$/.exec(v);
  const hostPort = m?.[3] && (/:\d+$/.test(m[3]) ? m[3] : `${m[3]}:${TURN_DEFAULT_PORT}`);
  const server = hostPort ? parseHostPort(hostPort) : undefined;
  if (!m || !server || server.port === 0) throw new ConfigError(`${where}: "${v.replace(/:[^:@]*@/, ':***@')}" is not turn:USER:PASS@HOST[:PORT]`);
  return { server, username: m[1]!, password: m[2]! };
}

function checkAllow(v: string, where: string): 'overlay' | 'static' {
  if (v !== 'overlay' && v !== 'static') throw new ConfigError(`${where}: "${v}" is not overlay or static`);
  return v;
}

function checkLogLevel(v: string, where: string): LogLevel {
  if (!(LOG_LEVELS as readonly string[]).includes(v)) throw new ConfigError(`${where}: "${v}" is not a log level (${LOG_LEVELS.join(', ')})`);
  return v as LogLevel;
}

/** "PUBKEY@HOST:PORT" where PUBKEY is the peer's Ed25519 public key in hex (as `idloc-agent id` prints). */
export function parsePeer(s: string, where = '--peer'): PeerSpec {
  const at = s.indexOf('@');
  const keyText = at < 0 ? s : s.slice(0, at);
  const publicKey = fromHex(keyText, 32);
  if (!publicKey) throw new ConfigError(`${where}: "${s}" must be PUBKEY@HOST:PORT with a 64-hex-digit public key`);
  if (at < 0) return { publicKey };
  const endpoint = parseHostPort(s.slice(at + 1));
  if (!endpoint) throw new ConfigError(`${where}: "${s}": "${s.slice(at + 1)}" is not HOST:PORT`);
  return { publicKey, endpoint };
}

function checkPeers(list: string[], where: string): PeerSpec[] {
  const peers = list.map((p) => parsePeer(p, where));
  const seen = new Set<string>();
  for (const p of peers) {
    const k = hex(p.publicKey);
    if (seen.has(k)) throw new ConfigError(`${where}: peer ${k} given twice`);
    seen.add(k);
  }
  return peers;
}
