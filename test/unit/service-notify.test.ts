// READY=1 for a Type=notify unit, with a fake notifier: nothing outside systemd, systemd-notify --ready
// under it, and a notifier that fails is logged, never thrown. test/integration/service-unit.test.ts
// sends through the real systemd-notify, from a real agent, to a stand-in for systemd.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { notifyReady, type NotifyRunner } from '../../agent/service-notify.js';

function recordingLogger() {
  const lines: { level: 'info' | 'warn'; obj: unknown; msg: string }[] = [];
  return {
    lines,
    info: (obj: unknown, msg: string) => { lines.push({ level: 'info', obj, msg }); },
    warn: (obj: unknown, msg: string) => { lines.push({ level: 'warn', obj, msg }); },
  } as unknown as Parameters<typeof notifyReady>[0] & { lines: typeof lines };
}

function fakeRunner(fail?: Error) {
  const calls: { file: string; args: readonly string[]; env: NodeJS.ProcessEnv }[] = [];
  const run: NotifyRunner = async (file, args, env) => {
    calls.push({ file, args, env });
    if (fail) throw fail;
  };
  return { calls, run };
}

test('no NOTIFY_SOCKET (not started by systemd): no notifier runs, nothing is logged', async () => {
  const log = recordingLogger();
  const { calls, run } = fakeRunner();
  assert.equal(await notifyReady(log, { env: { PATH: '/usr/bin' }, run }), 'not-under-systemd');
  assert.equal(await notifyReady(log, { env: { NOTIFY_SOCKET: '' }, run }), 'not-under-systemd');
  assert.equal(calls.length, 0);
  assert.equal(log.lines.length, 0);
});

test('under systemd: systemd-notify --ready with the status, given the socket in its environment', async () => {
  const log = recordingLogger();
  const { calls, run } = fakeRunner();
  const env = { NOTIFY_SOCKET: '/run/systemd/notify', PATH: '/usr/bin' };
  assert.equal(await notifyReady(log, { env, run, status: 'TAP idloc0 up, UDP port 4500' }), 'sent');
  assert.equal(calls.length, 1);
  assert.equal(calls[0]!.file, 'systemd-notify');
  assert.deepEqual(calls[0]!.args, ['--ready', '--status=TAP idloc0 up, UDP port 4500']);
  assert.equal(calls[0]!.env['NOTIFY_SOCKET'], '/run/systemd/notify');
  assert.deepEqual(log.lines.map((l) => l.level), ['info']);
});

test('a notifier that fails (missing, refused, timed out) is a warning naming the socket, not an error', async () => {
  const log = recordingLogger();
  const { calls, run } = fakeRunner(new Error('spawn systemd-notify ENOENT'));
  const outcome = await notifyReady(log, { env: { NOTIFY_SOCKET: '@/org/freedesktop/systemd1/notify' }, run });
  assert.equal(outcome, 'failed');
  assert.equal(calls.length, 1);
  assert.equal(log.lines.length, 1);
  assert.equal(log.lines[0]!.level, 'warn');
  assert.match(log.lines[0]!.msg, /systemd-notify --ready failed/);
  assert.deepEqual(log.lines[0]!.obj, { notifySocket: '@/org/freedesktop/systemd1/notify', err: 'spawn systemd-notify ENOENT' });
});
