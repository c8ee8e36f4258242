// Inbound firewall rules: the JSON a user writes, checked strictly, as plain data the policy compiler reads.
//
// Shapes accepted (the config file's "firewall" key, or a --firewall FILE):
//   [ rule, ... ]                      or   {"inbound": [ rule, ... ]}
//   rule = {"from": FROM, "proto": "tcp"|"udp"|"icmp"|"any", "port": PORT, "comment": "..."}
// Only "from" is required; "proto" defaults to "any"; "port" only with tcp/udp (none = every port).
//   FROM  "*"                 every member of the overlay
//         "key:HEX" | HEX     a 64-hex-digit Ed25519 public key
//         "node:HEX" | HEX    a 40-hex-digit NodeID (a bare 40-hex string is never a name: the name rules
//                             refuse it, so it reads as a NodeID, as `resolve` does)
//         "group:G"           a certificate group: a lowercase label of 1..SERVICE_NAME_MAX_LEN
//         "name:N" | N        an overlay name (any case, an optional trailing ".idloc"), normalized like
//                             overlay/names.ts normalizeName: a lowercase label of 1..NAME_MAX_LEN
//   PORT  1..65535, or "A-B" with 1 <= A <= B <= 65535 ("22" as a string is port 22)
// "icmp" is ICMPv4 and ICMPv6 alike (echo, errors: every type; ND never crosses a tunnel).
// Anything else (unknown keys or protos, bad syntax, more than FW_MAX_RULES rules) throws one
// FirewallRuleError naming the rule (numbered from 1), which the CLI prints as one line.
import { FW_MAX_RULES, NAME_MAX_LEN, NODE_ID_BYTES, SERVICE_NAME_MAX_LEN } from '../base/constants.js';

export type FirewallProto = 'tcp' | 'udp' | 'icmp' | 'any';

/** Who a rule admits: everyone, or one key, NodeID, name or group (hex and names lowercase). */
export type FirewallFrom =
  | { kind: 'all' }
  | { kind: 'key'; value: string }
  | { kind: 'node'; value: string }
  | { kind: 'name'; value: string }
  | { kind: 'group'; value: string };

export interface FirewallRule {
  from: FirewallFrom;
  proto: FirewallProto;
  /** Inclusive port range (tcp/udp only); undefined = every port. */
  ports?: { lo: number; hi: number };
  comment?: string;
}

/** A rule the parser refused; `rule` is its 1-based position, undefined for the file as a whole. */
export class FirewallRuleError extends Error {
  constructor(message: string, readonly rule?: number) {
    super(rule === undefined ? `firewall: ${message}` : `firewall rule ${rule}: ${message}`);
    this.name = 'FirewallRuleError';
  }
}

const PROTOS: readonly FirewallProto[] = ['tcp', 'udp', 'icmp', 'any'];
const RULE_KEYS = new Set(['from', 'proto', 'port', 'comment']);
// The overlay's name rule (overlay/names.ts, above this floor) and the certificate's group rule, restated.
const LABEL_RE = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/;
const KEY_HEX_RE = /^[0-9a-f]{64}$/;
const NODE_HEX_RE = new RegExp(`^[0-9a-f]{${NODE_ID_BYTES * 2}}$`);
const PORT_RE = /^(\d{1,5})(?:-(\d{1,5}))?$/;

const show = (v: unknown): string => {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 80 ? `${s.slice(0, 77)}...` : s;
};

function parseFrom(v: unknown, n: number): FirewallFrom {
  if (typeof v !== 'string') throw new FirewallRuleError(`"from" must be a string, not ${show(v)}`, n);
  if (v === '*') return { kind: 'all' };
  const colon = v.indexOf(':');
  const prefix = colon < 0 ? '' : v.slice(0, colon);
  const body = colon < 0 ? v : v.slice(colon + 1);
  const lower = body.toLowerCase();
  switch (prefix) {
    case 'key':
      if (!KEY_HEX_RE.test(lower)) throw new FirewallRuleError(`"from" key must be 64 hex digits: ${show(v)}`, n);
      return { kind: 'key', value: lower };
    case 'node':
      if (!NODE_HEX_RE.test(lower)) throw new FirewallRuleError(`"from" NodeID must be ${NODE_ID_BYTES * 2} hex digits: ${show(v)}`, n);
      return { kind: 'node', value: lower };
    case 'group':
      if (body.length > SERVICE_NAME_MAX_LEN || !LABEL_RE.test(body)) {
        throw new FirewallRuleError(`"from" group must be a lowercase label of 1..${SERVICE_NAME_MAX_LEN} (a-z, 0-9, '-'): ${show(v)}`, n);
      }
      return { kind: 'group', value: body };
    case 'name': {
      const name = normalizeName(body);
      if (name === undefined) throw new FirewallRuleError(`"from" is not a valid overlay name: ${show(v)}`, n);
      return { kind: 'name', value: name };
    }
    case '':
      if (KEY_HEX_RE.test(lower)) return { kind: 'key', value: lower };
      if (NODE_HEX_RE.test(lower)) return { kind: 'node', value: lower };
      {
        const name = normalizeName(body);
        if (name !== undefined) return { kind: 'name', value: name };
      }
      throw new FirewallRuleError(`"from" must be "*", a key, a NodeID, a name or "group:G": ${show(v)}`, n);
    default:
      throw new FirewallRuleError(`"from" has an unknown prefix "${prefix.slice(0, 20)}:" (key:, node:, name:, group:)`, n);
  }
}

/** overlay/names.ts normalizeName's rule: ASCII only, any case, optional trailing "." and ".idloc". */
function normalizeName(input: string): string | undefined {
  if (!/^[\x21-\x7e]+$/.test(input)) return undefined;
  let s = input.toLowerCase();
  if (s.endsWith('.')) s = s.slice(0, -1);
  if (s.endsWith('.idloc')) s = s.slice(0, -'.idloc'.length);
  return s.length <= NAME_MAX_LEN && LABEL_RE.test(s) && !NODE_HEX_RE.test(s) ? s : undefined;
}

function parsePort(v: unknown, n: number): { lo: number; hi: number } {
  let lo: number, hi: number;
  if (typeof v === 'number') {
    lo = hi = v;
  } else if (typeof v === 'string') {
    const m = PORT_RE.exec(v);
    if (!m) throw new FirewallRuleError(`"port" must be a number or "A-B": ${show(v)}`, n);
    lo = Number(m[1]);
    hi = m[2] === undefined ? lo : Number(m[2]);
  } else {
    throw new FirewallRuleError(`"port" must be a number or "A-B": ${show(v)}`, n);
  }
  if (!Number.isInteger(lo) || lo < 1 || lo > 65535 || !Number.isInteger(hi) || hi < 1 || hi > 65535) {
    throw new FirewallRuleError(`"port" must be within 1..65535: ${show(v)}`, n);
  }
  if (lo > hi) throw new FirewallRuleError(`"port" range runs backwards: ${show(v)}`, n);
  return { lo, hi };
}

function parseRule(v: unknown, n: number): FirewallRule {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new FirewallRuleError(`must be an object, not ${show(v)}`, n);
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!RULE_KEYS.has(k)) throw new FirewallRuleError(`unknown key ${show(k)} (from, proto, port, comment)`, n);
  }
  if (!('from' in o)) throw new FirewallRuleError('"from" is missing', n);
  const from = parseFrom(o.from, n);
  let proto: FirewallProto = 'any';
  if (o.proto !== undefined) {
    if (typeof o.proto !== 'string' || !PROTOS.includes(o.proto as FirewallProto)) {
      throw new FirewallRuleError(`unknown proto ${show(o.proto)} (tcp, udp, icmp, any)`, n);
    }
    proto = o.proto as FirewallProto;
  }
  const rule: FirewallRule = { from, proto };
  if (o.port !== undefined) {
    if (proto !== 'tcp' && proto !== 'udp') throw new FirewallRuleError(`"port" needs proto tcp or udp, not ${show(proto)}`, n);
    rule.ports = parsePort(o.port, n);
  }
  if (o.comment !== undefined) {
    if (typeof o.comment !== 'string') throw new FirewallRuleError(`"comment" must be a string`, n);
    rule.comment = o.comment;
  }
  return rule;
}

/** The rules of a parsed JSON value: an array of rules, or {"inbound": [...]}. Throws FirewallRuleError. */
export function parseFirewallRules(value: unknown): FirewallRule[] {
  let list: unknown = value;
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const o = value as Record<string, unknown>;
    for (const k of Object.keys(o)) if (k !== 'inbound') throw new FirewallRuleError(`unknown key ${show(k)} (only "inbound")`);
    if (!('inbound' in o)) throw new FirewallRuleError('"inbound" is missing');
    list = o.inbound;
  }
  if (!Array.isArray(list)) throw new FirewallRuleError(`rules must be a list (or {"inbound": [...]}), not ${show(list)}`);
  if (list.length > FW_MAX_RULES) throw new FirewallRuleError(`${list.length} rules, at most ${FW_MAX_RULES}`);
  return list.map((r, i) => parseRule(r, i + 1));
}

/** A --firewall FILE's text. Throws FirewallRuleError, also for text that is not JSON. */
export function parseFirewallText(text: string): FirewallRule[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new FirewallRuleError(`not JSON: ${(e as Error).message}`);
  }
  return parseFirewallRules(value);
}

/** A rule's "from" as written back (prefixed, so it reads again unambiguously). */
export function formatFrom(f: FirewallFrom): string {
  return f.kind === 'all' ? '*' : `${f.kind}:${f.value}`;
}

/** The JSON form of a rule, which parseFirewallRules reads back to an equal rule. */
export function ruleToJson(r: FirewallRule): Record<string, unknown> {
  const o: Record<string, unknown> = { from: formatFrom(r.from), proto: r.proto };
  if (r.ports) o.port = r.ports.lo === r.ports.hi ? r.ports.lo : `${r.ports.lo}-${r.ports.hi}`;
  if (r.comment !== undefined) o.comment = r.comment;
  return o;
}
