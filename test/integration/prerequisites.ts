// What an integration suite needs from the machine, and what happens when something is missing. Every
// integration file computes its describe()'s skip option with prerequisites():
//
//   const skip = prerequisites('NAT matrix', labUnavailable(), cliMissing(), coturnMissing());
//   describe('NAT matrix', { skip }, ...)
//
// Each check answers false or one sentence naming what is missing and why the suite needs it. When one
// is missing the suite is skipped with those sentences as node:test's skip reason, a test named for the
// suite's prerequisites is reported skipped (so the run's "skipped" tally counts it) and the file prints
// a summary line on stderr as it exits. Under CI=true that test fails instead: a CI run that could not
// build the lab must go red, not green for having run nothing.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import assert from 'node:assert/strict';

const skipped: string[] = [];

/** false when every check passed; otherwise the skip reason (and, under CI=true, a failing test). */
export function prerequisites(suite: string, ...checks: (string | false | undefined)[]): string | false {
  const missing = checks.filter((c): c is string => typeof c === 'string' && c !== '');
  if (missing.length === 0) return false;
  const why = missing.join('; ');
  const ci = process.env['CI'] === 'true';
  if (skipped.length === 0) {
    process.once('exit', () => {
      process.stderr.write(`integration: ${ci ? 'FAILED (CI=true)' : 'SKIPPED'} ${skipped.length} suite(s): ${skipped.join(' | ')}\n`);
    });
  }
  skipped.push(`"${suite}": ${why}`);
  if (ci) {
    test(`prerequisites of "${suite}"`, () => { assert.fail(`CI=true and "${suite}" cannot run: ${why}`); });
  } else {
    test(`prerequisites of "${suite}"`, { skip: `skipped because ${why} (under CI=true this fails)` }, () => {});
  }
  return `skipped because ${why}`;
}

/** Why the netns lab cannot run here, or false when it can. `tap: false` for suites that open no TAP. */
export function labUnavailable(opts: { tap?: boolean } = {}): string | false {
  if (process.platform !== 'linux') return `this is ${process.platform}, not Linux: the lab is built of network namespaces`;
  const uid = process.getuid?.();
  if (uid !== 0) return `not running as root (uid ${String(uid)}): network namespaces, veth pairs and TAP devices need root`;
  const probe = `idlprobe${process.pid}`;
  try {
    execFileSync('ip', ['netns', 'add', probe], { stdio: 'ignore' });
  } catch {
    return '`ip netns add` failed: network namespaces are unavailable here (or iproute2 is missing)';
  }
  try { execFileSync('ip', ['netns', 'del', probe], { stdio: 'ignore' }); } catch { /* best effort */ }
  if ((opts.tap ?? true) && !existsSync('/dev/net/tun')) return '/dev/net/tun is missing: agents cannot open their TAP device';
  return false;
}
