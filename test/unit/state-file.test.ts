// State files (base/state-file.ts): a crash at any step leaves the old file or the new one, the data
// and the directory entry are fsynced before a write counts as done, and a damaged or exposed file is
// one clear line naming the file and the fix.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  checkPrivate, parseStateJson, realStateFs, StateFileError, writeStateFile, type StateFs,
} from '../../agent/base/state-file.js';

function scratch(): string {
  const dir = mkdtempSync(join(tmpdir(), 'idloc-state-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The real fs, with every call recorded (name and path or fd) and one step made to crash. */
function recordingFs(crashAt?: keyof StateFs): { fs: StateFs; calls: string[] } {
  const calls: string[] = [];
  const paths = new Map<number, string>();
  const wrap = <K extends keyof StateFs>(name: K, f: (...a: any[]) => any) => (...a: any[]) => {
    const what = typeof a[0] === 'number' ? `fd:${paths.get(a[0]) ?? a[0]}` : String(a[0]);
    calls.push(`${name} ${what}`);
    if (name === crashAt) throw Object.assign(new Error(`simulated crash in ${name}`), { code: 'EIO' });
    const r = f(...a);
    if (name === 'openSync') paths.set(r as number, String(a[0]));
    return r;
  };
  const out = {} as Record<string, unknown>;
  for (const k of Object.keys(realStateFs) as (keyof StateFs)[]) {
    if (typeof (realStateFs as any)[k] === 'function') out[k] = wrap(k, ((fs as any)[k] as Function).bind(fs));
  }
  return { fs: out as unknown as StateFs, calls };
}

test('a write fsyncs the data before the rename and the directory after it; mode 0600', () => {
  const dir = scratch();
  const file = join(dir, 'identity.json');
  const { fs: rec, calls } = recordingFs();
  writeStateFile(file, '{"v":1}\n', { fs: rec });
  assert.equal(readFileSync(file, 'utf8'), '{"v":1}\n');
  assert.equal(statSync(file).mode & 0o777, 0o600);
  const i = (re: RegExp) => calls.findIndex((c) => re.test(c));
  const fsyncData = i(/^fsyncSync fd:.*identity\.json\.\d+\.tmp$/);
  const rename = i(/^renameSync /);
  const fsyncDir = calls.findIndex((c, n) => n > rename && c === `fsyncSync fd:${dir}`);
  assert.ok(fsyncData >= 0 && rename > fsyncData && fsyncDir > rename, calls.join('\n'));
  assert.deepEqual(readdirSync(dir), ['identity.json'], 'no temporary file left behind');
});

test('a crash between write and rename, or in any step before it, leaves the old file intact', () => {
  const dir = scratch();
  const file = join(dir, 'names.json');
  writeFileSync(file, 'old\n', { mode: 0o600 });
  let crashes = 0;
  for (const step of ['writeSync', 'fsyncSync', 'closeSync', 'renameSync'] as const) {
    const { fs: rec } = recordingFs(step);
    assert.throws(() => writeStateFile(file, 'new contents\n', { fs: rec }),
      (e: unknown) => e instanceof StateFileError && e.message.includes(file) && e.message.includes(`simulated crash in ${step}`));
    crashes++;
    assert.equal(readFileSync(file, 'utf8'), 'old\n', `after a crash in ${step}`);
    assert.deepEqual(readdirSync(dir), ['names.json'], `temporary file removed after a crash in ${step}`);
  }
  // A hard crash (the process dies) after the write: a leftover temporary file (here under our pid, as
  // after pid reuse) and the old file untouched; the next write replaces both.
  writeFileSync(`${file}.${process.pid}.tmp`, 'half');
  assert.equal(readFileSync(file, 'utf8'), 'old\n');
  writeStateFile(file, 'new\n');
  assert.equal(readFileSync(file, 'utf8'), 'new\n');
  assert.deepEqual(readdirSync(dir), ['names.json']);
  console.log(`state-file: ${crashes} simulated crashes, old file intact after each`);
});

test('createOnly keeps a file that is already there (another process created it first)', () => {
  const dir = scratch();
  const file = join(dir, 'identity.json');
  assert.equal(writeStateFile(file, 'first\n', { createOnly: true }), true);
  assert.equal(writeStateFile(file, 'second\n', { createOnly: true }), false);
  assert.equal(readFileSync(file, 'utf8'), 'first\n');
  assert.deepEqual(readdirSync(dir), ['identity.json']);
});

test('a corrupt file is one line naming the file, what is wrong and the fix', () => {
  const fix = 'restore it from a backup';
  const cases: [string, RegExp][] = [
    ['{"version":1,"privateKey":"ab', /truncated JSON/],
    ['', /empty \(0 bytes\)/],
    ['\n\n', /empty \(2 bytes\)/],
    ['not json at all', /not JSON/],
    ['[1,2]', /not a JSON object/],
  ];
  for (const [text, why] of cases) {
    assert.throws(() => parseStateJson('/var/lib/idloc/identity.json', text, fix), (e: unknown) => {
      const m = (e as Error).message;
      return e instanceof StateFileError && !m.includes('\n') && why.test(m)
        && m.startsWith('identity.json in /var/lib/idloc is corrupt (') && m.endsWith(`); ${fix}`);
    }, JSON.stringify(text));
  }
  assert.deepEqual(parseStateJson('/x/a.json', '{"a":1}', fix), { a: 1 });
});

test('a state dir or file other users can read or write is refused with the chmod that fixes it', () => {
  const dir = scratch();
  const file = join(dir, 'identity.json');
  writeFileSync(file, '{}', { mode: 0o600 });
  chmodSync(dir, 0o700);
  checkPrivate(dir);
  checkPrivate(file);
  let refused = 0;
  for (const [mode, how] of [[0o777, 'writable'], [0o755, 'readable'], [0o750, 'readable'], [0o720, 'writable']] as const) {
    chmodSync(dir, mode);
    assert.throws(() => checkPrivate(dir), new RegExp(`state dir ${dir} is ${how} by other users \\(mode ${mode.toString(8)}\\); run chmod 700 ${dir}$`));
    refused++;
  }
  chmodSync(dir, 0o700);
  for (const mode of [0o644, 0o666, 0o640, 0o604]) {
    chmodSync(file, mode);
    assert.throws(() => checkPrivate(file), new RegExp(`identity\\.json in ${dir} is (readable|writable) by other users .*; run chmod 600 ${file}$`));
    refused++;
  }
  console.log(`state-file: ${refused} exposed modes tried, every one refused`);
});
