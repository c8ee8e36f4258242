// The firewall's rule parser (strict, one FirewallRuleError per bad rule) and per-peer compilation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  FirewallRuleError, parseFirewallRules, parseFirewallText, ruleToJson, type FirewallRule,
} from '../../agent/firewall/rules.js';
import { compileInto, inRanges, mergeRanges, PeerPolicy, type PeerIdentity } from '../../agent/firewall/policy.js';
import { Firewall } from '../../agent/firewall/firewall.js';
import { FW_MAX_RULES } from '../../agent/base/constants.js';

const KEY = 'ab'.repeat(32);
const NODE = 'cd'.repeat(20);

test('reads the issue\'s examples, in both shapes', () => {
  const list = [{ from: 'group:build', proto: 'tcp', port: 22 }, { from: '*', proto: 'icmp' }];
  const want: FirewallRule[] = [
    { from: { kind: 'group', value: 'build' }, proto: 'tcp', ports: { lo: 22, hi: 22 } },
    { from: { kind: 'all' }, proto: 'icmp' },
  ];
  assert.deepEqual(parseFirewallRules(list), want);
  assert.deepEqual(parseFirewallRules({ inbound: list }), want);
  assert.deepEqual(parseFirewallText(JSON.stringify({ inbound: list })), want);
  assert.deepEqual(parseFirewallRules([]), []);
});

test('"from" forms: prefixed and bare keys, NodeIDs and names; any case; ".idloc" dropped', () => {
  const from = (f: string) => parseFirewallRules([{ from: f }])[0]!.from;
  assert.deepEqual(from(`key:${KEY.toUpperCase()}`), { kind: 'key', value: KEY });
  assert.deepEqual(from(KEY), { kind: 'key', value: KEY });
  assert.deepEqual(from(`node:${NODE}`), { kind: 'node', value: NODE });
  assert.deepEqual(from(NODE.toUpperCase()), { kind: 'node', value: NODE });
  assert.deepEqual(from('Alice.idloc'), { kind: 'name', value: 'alice' });
  assert.deepEqual(from('name:build-box.'), { kind: 'name', value: 'build-box' });
  assert.deepEqual(from('ab12'), { kind: 'name', value: 'ab12' }, 'short hex is a name');
  assert.deepEqual(parseFirewallRules([{ from: '*' }])[0], { from: { kind: 'all' }, proto: 'any' }, 'proto defaults to any');
});

test('port forms: a number, "N", "A-B"', () => {
  const ports = (p: unknown) => parseFirewallRules([{ from: '*', proto: 'udp', port: p }])[0]!.ports;
  assert.deepEqual(ports(53), { lo: 53, hi: 53 });
  assert.deepEqual(ports('8080'), { lo: 8080, hi: 8080 });
  assert.deepEqual(ports('60000-61000'), { lo: 60000, hi: 61000 });
  assert.deepEqual(ports('1-65535'), { lo: 1, hi: 65535 });
});

test('every bad rule is refused with one message naming it', () => {
  const bad: [unknown, RegExp][] = [
    [{ from: '*', proto: 'tcpp' }, /^firewall rule 2: unknown proto "tcpp"/],
    [{ from: '*', proto: 'tcp', port: 0 }, /rule 2: "port" must be within 1\.\.65535/],
    [{ from: '*', proto: 'tcp', port: 65536 }, /within 1\.\.65535/],
    [{ from: '*', proto: 'tcp', port: 22.5 }, /within 1\.\.65535/],
    [{ from: '*', proto: 'tcp', port: '30-20' }, /runs backwards/],
    [{ from: '*', proto: 'tcp', port: '20-' }, /number or "A-B"/],
    [{ from: '*', proto: 'tcp', port: [22] }, /number or "A-B"/],
    [{ from: '*', proto: 'icmp', port: 1 }, /"port" needs proto tcp or udp, not "icmp"/],
    [{ from: '*', port: 1 }, /needs proto tcp or udp, not "any"/],
    [{ from: '*', proto: 'tcp', ports: 22 }, /unknown key "ports"/],
    [{ proto: 'tcp' }, /"from" is missing/],
    [{ from: 7 }, /"from" must be a string/],
    [{ from: `key:${KEY}0` }, /key must be 64 hex digits/],
    [{ from: `node:${NODE.slice(2)}` }, /NodeID must be 40 hex digits/],
    [{ from: 'group:Build' }, /group must be a lowercase label/],
    [{ from: `group:${'g'.repeat(33)}` }, /group must be a lowercase label/],
    [{ from: 'name:' + NODE }, /not a valid overlay name/],
    [{ from: 'name:-x' }, /not a valid overlay name/],
    [{ from: 'host:alice' }, /unknown prefix "host:"/],
    [{ from: 'al ice' }, /must be "\*", a key, a NodeID, a name/],
    [{ from: 'g'.repeat(64) }, /must be "\*", a key/],
    [{ from: '*', comment: 1 }, /"comment" must be a string/],
    ['tcp 22', /rule 2: must be an object/],
    [null, /rule 2: must be an object/],
  ];
  for (const [rule, re] of bad) {
    assert.throws(() => parseFirewallRules([{ from: '*' }, rule]), (e: unknown) => e instanceof FirewallRuleError && e.rule === 2 && re.test(e.message), JSON.stringify(rule));
  }
  const whole: [unknown, RegExp][] = [
    [{ inbound: [], outbound: [] }, /^firewall: unknown key "outbound"/],
    [{}, /"inbound" is missing/],
    [{ inbound: 3 }, /must be a list/],
    ['x', /must be a list/],
    [Array(FW_MAX_RULES + 1).fill({ from: '*' }), new RegExp(`at most ${FW_MAX_RULES}`)],
  ];
  for (const [v, re] of whole) assert.throws(() => parseFirewallRules(v), (e: unknown) => e instanceof FirewallRuleError && e.rule === undefined && re.test(e.message));
  assert.throws(() => parseFirewallText('[{"from": "*",]'), (e: unknown) => e instanceof FirewallRuleError && /not JSON/.test(e.message));
  assert.equal(parseFirewallRules(Array(FW_MAX_RULES).fill({ from: '*' })).length, FW_MAX_RULES);
});

const labelArb = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?$/);
const ruleArb: fc.Arbitrary<FirewallRule> = fc.record({
  from: fc.oneof(
    fc.constant({ kind: 'all' as const }),
    fc.stringMatching(/^[0-9a-f]{64}$/).map((value) => ({ kind: 'key' as const, value })),
    fc.stringMatching(/^[0-9a-f]{40}$/).map((value) => ({ kind: 'node' as const, value })),
    labelArb.filter((s) => !/^[0-9a-f]{40}$/.test(s)).map((value) => ({ kind: 'name' as const, value })),
    labelArb.map((value) => ({ kind: 'group' as const, value })),
  ),
  proto: fc.constantFrom('tcp' as const, 'udp' as const, 'icmp' as const, 'any' as const),
  lo: fc.integer({ min: 1, max: 65535 }),
  span: fc.option(fc.integer({ min: 0, max: 1000 })),
  comment: fc.option(fc.string()),
}).map(({ from, proto, lo, span, comment }) => {
  const r: FirewallRule = { from, proto };
  if (span !== null && (proto === 'tcp' || proto === 'udp')) r.ports = { lo, hi: Math.min(65535, lo + span) };
  if (comment !== null) r.comment = comment;
  return r;
});

test('round trip: a rule written back as JSON reads as the same rule', () => {
  fc.assert(fc.property(fc.array(ruleArb, { maxLength: 8 }), (rules) => {
    const text = JSON.stringify({ inbound: rules.map(ruleToJson) });
    assert.deepEqual(parseFirewallText(text), rules);
  }));
});

const onlyRuleErrors = (f: () => unknown): void => {
  try { f(); } catch (e) { if (!(e instanceof FirewallRuleError)) throw e; }
};

test('fuzz: JSON garbage, near-miss rules and random text throw nothing but FirewallRuleError', () => {
  fc.assert(fc.property(fc.jsonValue(), (v) => { onlyRuleErrors(() => parseFirewallRules(v)); onlyRuleErrors(() => parseFirewallRules([v])); }), { numRuns: 500 });
  const near = fc.dictionary(
    fc.constantFrom('from', 'proto', 'port', 'comment', 'ports', '__proto__', 'constructor'),
    fc.oneof(fc.jsonValue(), fc.constantFrom('*', 'tcp', 'udp', 'icmp', 'any', '1-2', '0', 'key:', 'node:', 'group:', 'name:x', KEY, NODE)),
  );
  fc.assert(fc.property(fc.array(near, { maxLength: 4 }), (rules) => onlyRuleErrors(() => parseFirewallRules(rules))), { numRuns: 1000 });
  fc.assert(fc.property(fc.string(), (s) => { onlyRuleErrors(() => parseFirewallText(s)); onlyRuleErrors(() => parseFirewallRules([{ from: s, proto: 'tcp', port: s }])); }));
});

const alice: PeerIdentity = { publicKeyHex: KEY, nodeIdHex: NODE, names: ['alice'], groups: ['build', 'ops'] };
const stranger: PeerIdentity = { publicKeyHex: 'ef'.repeat(32), nodeIdHex: '01'.repeat(20), names: [], groups: [] };

const policyOf = (rules: unknown, who: PeerIdentity): PeerPolicy => {
  const p = new PeerPolicy(1);
  compileInto(p, parseFirewallRules(rules), who);
  return p;
};

test('a rule matches by key, NodeID, name, group or *, and only its peer', () => {
  for (const from of [`key:${KEY}`, NODE, 'alice', 'group:build', 'group:ops', '*']) {
    assert.equal(policyOf([{ from, proto: 'tcp', port: 22 }], alice).tcpPort(22), true, from);
    assert.equal(policyOf([{ from, proto: 'tcp', port: 22 }], stranger).tcpPort(22), from === '*', from);
  }
  assert.equal(policyOf([{ from: 'group:dev', proto: 'tcp' }], alice).rules, 0);
  const p = policyOf([{ from: 'alice', proto: 'icmp' }, { from: 'group:ops', proto: 'udp' }, { from: '*', proto: 'tcp', port: '80-81' }], alice);
  assert.deepEqual({ rules: p.rules, icmp: p.icmp, udpAll: p.udpAll, tcpAll: p.tcpAll, all: p.all }, { rules: 3, icmp: true, udpAll: true, tcpAll: false, all: false });
  assert.equal(p.tcpPort(81), true);
  assert.equal(p.tcpPort(82), false);
  assert.equal(policyOf([{ from: 'alice' }], alice).all, true);
});

test('port ranges merge and bisect like a plain scan', () => {
  fc.assert(fc.property(fc.array(fc.tuple(fc.integer({ min: 1, max: 2000 }), fc.integer({ min: 0, max: 50 })), { maxLength: 20 }), fc.integer({ min: 0, max: 2100 }), (rs, port) => {
    const flat = rs.flatMap(([lo, span]) => [lo, lo + span]);
    const merged = mergeRanges(flat);
    for (let i = 2; i < merged.length; i += 2) assert.ok(merged[i]! > merged[i - 1]! + 1, 'disjoint, not adjacent, sorted');
    assert.equal(inRanges(merged, port), rs.some(([lo, span]) => port >= lo && port <= lo + span));
  }));
});

test('recompiling picks up a name or group that arrived later, and keeps the peer id', () => {
  const fw = new Firewall(parseFirewallRules([{ from: 'group:build', proto: 'tcp', port: 22 }]));
  const who: PeerIdentity = { ...alice, groups: [] };
  const p = fw.compileFor(who);
  assert.equal(p.tcpPort(22), false);
  fw.recompile(p, { ...who, groups: ['build'] });
  assert.equal(p.tcpPort(22), true);
  assert.notEqual(fw.compileFor(who).id, p.id, 'each peer its own id');
});

test('describe(): no rules means open, else the count and default drop', () => {
  assert.equal(new Firewall([]).describe(), 'no inbound rules: every member may reach every port');
  const three = parseFirewallRules([{ from: '*', proto: 'icmp' }, { from: 'a' }, { from: 'b' }]);
  assert.equal(new Firewall(three).describe(), '3 inbound rules, default drop (replies to this host\'s own flows pass)');
  assert.equal(new Firewall([]).compileFor(stranger).all, true);
});
