// Nothing lost across restarts: a name `register`ed before the agents stop is still the same key's after
// they start again two days later (past NAME_LIFETIME_S and IPV4_CLAIM_LIFETIME_S), because the agent
// keeps its names and its IPv4 claim attempt in the state dir and registers them again at start. Every
// overlay store is in memory, so after the restart only the state dirs remember anything.
//
// The days pass for real: the restarted agents run under libfaketime (`faketime -f +2d`), so their
// Date.now(), their records' timestamps and their timers all live two days on.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab } from './lab.js';
import {
  CLI, TAP_NAME, cliMissing, createAgent, labUnavailable, logTails, registerIn, resolveIn, startOverlayAgent, stopAgent,
  waitOverlayReady, type TestAgent,
} from './agents.js';
import { prerequisites } from './prerequisites.js';
import { NAME_LIFETIME_S } from '../../agent/base/constants.js';
import { formatIpv4, ipv4FromNodeId } from '../../agent/idloc/addresses.js';

const DAYS_LATER = 2;
const NAME = 'bob';
const KEPT_ATTEMPT = 2;

function faketimeMissing(): string | false {
  try {
    execFileSync('faketime', ['-f', '+1d', 'true'], { stdio: 'ignore' });
    return false;
  } catch {
    return 'faketime (Debian package faketime) is not installed: restarts days later run under it';
  }
}

const SUITE = 'state dir: names and the IPv4 claim survive a restart days later';
const skip = prerequisites(SUITE, labUnavailable(), cliMissing(), faketimeMissing());

describe(SUITE, { skip, timeout: 120_000 }, () => {
  let lab: Lab;
  let a: TestAgent;
  let b: TestAgent;

  /** `up` as startOverlayAgent does, but under libfaketime, DAYS_LATER days on. */
  const startLater = (agent: TestAgent, bootstraps: TestAgent[]) => {
    agent.proc = lab.spawn(agent.host, [
      'faketime', '-f', `+${DAYS_LATER}d`, process.execPath, CLI, 'up', '--state-dir', agent.stateDir, '--tap', TAP_NAME,
      '--listen', String(agent.port), ...bootstraps.flatMap((x) => ['--bootstrap', `${lab.address(x.host)}:${x.port}`]), '--log-level', 'info',
    ], { logFile: agent.logFile });
  };

  before(async () => {
    lab = await Lab.create({ hosts: ['a', 'b'] });
    a = await createAgent(lab, 'a');
    b = await createAgent(lab, 'b');
    // b held another derivation of its IPv4 address before (a collision long ago): that one is kept
    const file = join(b.stateDir, 'identity.json');
    writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, 'utf8')) as object, ipv4Attempt: KEPT_ATTEMPT }) + '\n', { mode: 0o600 });
  });
  after(async () => { await lab?.destroy(); });

  it(`"${NAME}" resolves to the same key and IPv4 address after both agents restart ${DAYS_LATER} days later`, async () => {
    startOverlayAgent(lab, a, []);
    await waitOverlayReady(lab, a);
    startOverlayAgent(lab, b, [a]);
    const before = await waitOverlayReady(lab, b);
    assert.equal(before.identity.ipv4, formatIpv4(ipv4FromNodeId(Buffer.from(b.id.nodeId, 'hex'), KEPT_ATTEMPT)));
    const reg = await registerIn(lab, b, NAME, true);
    assert.equal(reg.code, 0, `register: ${reg.stderr}\n${logTails([a, b])}`);
    const first = await resolveIn(lab, a, NAME);
    assert.equal(first.answer?.publicKey, b.id.publicKey, first.r.stderr);
    assert.equal(first.answer?.ipv4, before.identity.ipv4);
    const kept = join(b.stateDir, 'names.json');
    assert.deepEqual(JSON.parse(readFileSync(kept, 'utf8')), { version: 1, names: [NAME] });
    assert.equal(statSync(kept).mode & 0o777, 0o600);

    await stopAgent(lab, b);
    await stopAgent(lab, a);
    startLater(a, []);
    await waitOverlayReady(lab, a);
    startLater(b, [a]);
    const later = await waitOverlayReady(lab, b);
    // the restarted agents really live DAYS_LATER days on: their log lines carry their Date.now()
    const lastTime = Math.max(...readFileSync(b.logFile, 'utf8').trim().split('\n')
      .map((l) => { try { return (JSON.parse(l) as { time?: number }).time ?? 0; } catch { return 0; } }));
    assert.ok(lastTime - Date.now() > NAME_LIFETIME_S * 1000, `b's clock is ${((lastTime - Date.now()) / 3.6e6).toFixed(1)} h ahead`);

    assert.equal(later.identity.ipv4, before.identity.ipv4, 'the kept IPv4 claim attempt is claimed again');
    let answer;
    const end = Date.now() + 15_000;
    do {
      answer = (await resolveIn(lab, a, NAME)).answer;
      if (!answer) await new Promise((r) => setTimeout(r, 300));
    } while (!answer && Date.now() < end);
    assert.ok(answer, `"${NAME}" not found after the restart\n${logTails([a, b])}`);
    assert.equal(answer.publicKey, b.id.publicKey, 'the same key holds the name');
    assert.equal(answer.ipv4, before.identity.ipv4, 'and the same IPv4 address');
    const fromB = await resolveIn(lab, b, NAME);
    assert.equal(fromB.answer?.publicKey, b.id.publicKey);
    console.log(`state-restart: ${NAME} and ${before.identity.ipv4} (attempt ${KEPT_ATTEMPT}) kept across a restart ${DAYS_LATER} days on (clock +${((lastTime - Date.now()) / 3.6e6).toFixed(0)} h)`);
  });
});
