// `idloc-agent ca`: run a private overlay's CA from the command line (agent/cert/ca.ts keeps its files).
//
//   ca init   --ca-dir DIR [--name NAME] [--valid DURATION]          the CA key (0600) and ca.crt (0644)
//   ca sign   --ca-dir DIR --public-key KEY --name NAME [--groups a,b] [--valid DURATION] [--out FILE|-]
//   ca revoke --ca-dir DIR --public-key KEY | --list [--json]         DIR/revoked.crl, signed
//   ca show   FILE [--json]                                           a certificate or list, decoded
//
// KEY is a host's Ed25519 public key, 64 hex digits, as `idloc-agent id` prints it ("public key" line, or
// publicKey of `id --json`). DURATION is a whole number and a unit: 30m, 12h, 90d, 1y (365 days). `sign`
// writes NAME.crt in the current directory unless --out names a file, or - for stdout. Bad flags give one
// line and exit 2 (the caller's `fail`); a CA dir that cannot be used throws CaError, one line and exit 1.
import { ed25519 } from '@noble/curves/ed25519.js';
import { readFileSync } from 'node:fs';
import { type Command, Option } from 'commander';
import { fromHex, hex } from './base/bytes.js';
import {
  CERT_CA_DEFAULT_VALIDITY_S, CERT_DEFAULT_VALIDITY_S, CERT_EXPIRY_WARNING_S, CERT_MAX_GROUPS, CERT_MAX_VALIDITY_S,
  CERT_MIN_VALIDITY_S,
} from './base/constants.js';
import { CaError, initCa, issueMemberCertificate, loadCa, loadRevocationList, revokeKey } from './cert/ca.js';
import {
  certificateFromText, certificateToText, isValidGroup, isoSeconds, type Certificate,
} from './cert/certificate.js';
import { revocationListFromText, type RevocationList } from './cert/revocation.js';
import { writeStateFile } from './base/state-file.js';
import { nodeIdFromPublicKey } from './idloc/addresses.js';
import { normalizeName } from './overlay/names.js';

const EXIT_USAGE = 2;
type Fail = (code: number, message: string) => never;

const UNIT_S: Record<string, number> = { m: 60, h: 3_600, d: 86_400, y: 365 * 86_400 };

/** Seconds of a DURATION (30m, 12h, 90d, 1y), or undefined if it is not one or is outside the bounds. */
export function parseDuration(s: string): number | undefined {
  const m = /^([0-9]{1,6})([mhdy])$/.exec(s.trim());
  if (!m) return undefined;
  const v = Number(m[1]) * UNIT_S[m[2]!]!;
  return v >= CERT_MIN_VALIDITY_S && v <= CERT_MAX_VALIDITY_S ? v : undefined;
}

const nowS = () => Math.floor(Date.now() / 1000);

function duration(fail: Fail, s: string | undefined, dflt: number): number {
  if (s === undefined) return dflt;
  const v = parseDuration(s);
  if (v === undefined) {
    fail(EXIT_USAGE, `--valid: "${s}" is not a duration from ${CERT_MIN_VALIDITY_S / 60}m to ${CERT_MAX_VALIDITY_S / UNIT_S.y!}y (a number and m, h, d or y: 90d)`);
  }
  return v;
}

function publicKey(fail: Fail, s: string): Uint8Array {
  const k = fromHex(s.trim(), 32);
  let point = false;
  try { point = k !== undefined && (ed25519.Point.fromBytes(k), true); } catch { /* not on the curve */ }
  if (!k || !point) fail(EXIT_USAGE, `--public-key: "${s}" is not an Ed25519 public key (64 hex digits, as idloc-agent id prints it)`);
  return k;
}

function name(fail: Fail, s: string): string {
  const n = normalizeName(s);
  if (n === undefined) fail(EXIT_USAGE, `--name: "${s}" is not a valid name (1-63 of a-z 0-9 -, not 40 hex digits)`);
  return n;
}

function groups(fail: Fail, s: string | undefined): string[] {
  const gs = [...new Set((s ?? '').split(',').map((g) => g.trim().toLowerCase()).filter((g) => g !== ''))];
  const bad = gs.find((g) => !isValidGroup(g));
  if (bad !== undefined) fail(EXIT_USAGE, `--groups: "${bad}" is not a valid group (1-32 of a-z 0-9 -)`);
  if (gs.length > CERT_MAX_GROUPS) fail(EXIT_USAGE, `--groups: ${gs.length} groups, at most ${CERT_MAX_GROUPS}`);
  return gs.sort();
}

function certJson(c: Certificate) {
  return {
    kind: c.kind, name: c.name, groups: c.groups, publicKey: hex(c.subjectPublicKey), nodeId: hex(c.nodeId),
    caPublicKey: hex(c.caPublicKey), notBefore: isoSeconds(c.notBefore), notAfter: isoSeconds(c.notAfter),
  };
}

function listJson(l: RevocationList) {
  return { caPublicKey: hex(l.caPublicKey), sequence: l.sequence, issuedAt: isoSeconds(l.issuedAt), revoked: l.revoked.map(hex) };
}

function warnIfExpiring(what: string, notAfter: number, now: number): void {
  if (notAfter - now <= CERT_EXPIRY_WARNING_S) process.stderr.write(`idloc-agent: warning: ${what} expires at ${isoSeconds(notAfter)}, within ${CERT_EXPIRY_WARNING_S / 86_400} days\n`);
}

const caDirOption = () => new Option('--ca-dir <dir>', 'the CA\'s directory (its key, ca.crt, revoked.crl)').makeOptionMandatory();

/** Adds `ca` and its subcommands to the program; `fail` prints one line and exits (2 for bad flags). */
export function registerCaCommands(program: Command, fail: Fail): void {
  const ca = program.command('ca').description('run a private overlay\'s certificate authority: issue and revoke member certificates');

  ca.command('init')
    .description('create a CA: its secret key (ca.key, 0600) and its public certificate (ca.crt) in --ca-dir')
    .addOption(caDirOption())
    .option('--name <name>', 'the CA\'s name, printed in every certificate it issues', 'idloc-ca')
    .option('--valid <duration>', `how long the CA is valid (default ${CERT_CA_DEFAULT_VALIDITY_S / UNIT_S.y!}y)`)
    .action((o: { caDir: string; name: string; valid?: string }) => {
      const validityS = duration(fail, o.valid, CERT_CA_DEFAULT_VALIDITY_S);
      const c = initCa(o.caDir, { name: name(fail, o.name), validityS, now: nowS(), nodeIdOf: nodeIdFromPublicKey });
      process.stdout.write([
        `CA "${c.cert.name}" created in ${o.caDir}`,
        `key          ${o.caDir}/ca.key (secret: keep it 0600 and keep a backup)`,
        `certificate  ${o.caDir}/ca.crt (give it to every member)`,
        `public key   ${hex(c.publicKey)}`,
        `valid until  ${isoSeconds(c.cert.notAfter)}`,
      ].join('\n') + '\n');
    });

  ca.command('sign')
    .description('issue a member certificate for a host\'s public key')
    .addOption(caDirOption())
    .requiredOption('--public-key <key>', 'the host\'s Ed25519 public key: 64 hex, as idloc-agent id prints it')
    .requiredOption('--name <name>', 'the member\'s name: 1-63 of a-z 0-9 -')
    .option('--groups <a,b>', `groups the member is in: up to ${CERT_MAX_GROUPS}, comma-separated`)
    .option('--valid <duration>', `how long the certificate is valid: 30m, 12h, 90d, 1y (default ${CERT_DEFAULT_VALIDITY_S / 86_400}d)`)
    .option('--out <file>', 'where to write it (default NAME.crt here; - for stdout)')
    .action((o: { caDir: string; publicKey: string; name: string; groups?: string; valid?: string; out?: string }) => {
      const req = {
        subjectPublicKey: publicKey(fail, o.publicKey), name: name(fail, o.name), groups: groups(fail, o.groups),
        validityS: duration(fail, o.valid, CERT_DEFAULT_VALIDITY_S), now: nowS(),
      };
      const authority = loadCa(o.caDir);
      const cert = issueMemberCertificate(authority, req, nodeIdFromPublicKey);
      warnIfExpiring(`the CA in ${o.caDir}`, authority.cert.notAfter, req.now);
      warnIfExpiring('this certificate', cert.notAfter, req.now);
      const text = certificateToText(cert);
      if (o.out === '-') { process.stdout.write(text); return; }
      const out = o.out ?? `${cert.name}.crt`;
      writeStateFile(out, text, { mode: 0o644 });
      process.stdout.write(`${out}: member "${cert.name}"${cert.groups.length ? ` groups ${cert.groups.join(',')}` : ''}, key ${hex(cert.subjectPublicKey)}, valid until ${isoSeconds(cert.notAfter)}\n`);
    });

  ca.command('revoke')
    .description('revoke a host\'s key: every certificate for it stops counting once the list reaches the overlay')
    .addOption(caDirOption())
    .option('--public-key <key>', 'the key to revoke: 64 hex')
    .option('--list', 'print the revoked keys instead, one a line')
    .option('--json', 'with --list: print the list as JSON')
    .action((o: { caDir: string; publicKey?: string; list?: boolean; json?: boolean }) => {
      if ((o.list === true) === (o.publicKey !== undefined)) fail(EXIT_USAGE, 'ca revoke takes either --public-key KEY or --list');
      if (o.list) {
        const l = loadRevocationList(loadCa(o.caDir));
        if (o.json) process.stdout.write(JSON.stringify(l ? listJson(l) : { sequence: 0, revoked: [] }) + '\n');
        else process.stdout.write(l?.revoked.map((k) => hex(k) + '\n').join('') ?? '');
        return;
      }
      const key = publicKey(fail, o.publicKey!);
      const r = revokeKey(loadCa(o.caDir), key, nowS());
      process.stdout.write(r.added
        ? `${r.file}: revoked ${hex(key)} (list ${r.list.sequence}, ${r.list.revoked.length} key${r.list.revoked.length === 1 ? '' : 's'}); publish it to the overlay\n`
        : `${r.file}: ${hex(key)} was revoked already (list ${r.list.sequence} unchanged)\n`);
    });

  ca.command('show')
    .description('print what a certificate or revocation list file holds (its signature is not checked here)')
    .argument('<file>', 'a .crt or .crl file')
    .option('--json', 'print JSON')
    .action((file: string, o: { json?: boolean }) => {
      let text: string;
      try { text = readFileSync(file, 'utf8'); } catch (e) { throw new CaError(`cannot read ${file}: ${(e as Error).message}`); }
      const c = certificateFromText(text);
      const l = c ? undefined : revocationListFromText(text);
      if (!c && !l) throw new CaError(`${file} holds no valid idloc certificate or revocation list`);
      const j = c ? certJson(c) : listJson(l!);
      if (o.json) { process.stdout.write(JSON.stringify(j) + '\n'); return; }
      const rows = Object.entries(j).map(([k, v]) => `${k.padEnd(12)}${Array.isArray(v) ? v.join(k === 'revoked' ? '\n            ' : ',') || '-' : v}`);
      process.stdout.write(rows.join('\n') + '\n');
    });
}
