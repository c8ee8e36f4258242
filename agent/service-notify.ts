// Telling systemd the agent is ready, for a Type=notify unit (packaging/idloc-agent.service). systemd
// passes NOTIFY_SOCKET, a unix datagram socket, and waits for READY=1 on it. Node.js sends no unix
// datagrams (node:dgram is UDP only, node:net streams only), so systemd-notify sends it as our child:
// the unit says NotifyAccess=all for systemd to take it from a process other than the main one, and
// systemd-notify waits until systemd has read it, so the message does not outlive its sender unread.
// Outside systemd (no NOTIFY_SOCKET) nothing runs. A failure is logged and never stops the agent:
// systemd then reports the start as timed out, which names the problem better than an exit would.
import { execFile } from 'node:child_process';
import type { Logger } from 'pino';

/** How long systemd-notify may take (systemd answers its barrier in milliseconds). */
export const SERVICE_NOTIFY_TIMEOUT_MS = 5_000;

/** Runs a program to completion; rejects when it cannot start, fails or times out. */
export type NotifyRunner = (file: string, args: readonly string[], env: NodeJS.ProcessEnv) => Promise<void>;

export const runProgram: NotifyRunner = (file, args, env) => new Promise((resolve, reject) => {
  execFile(file, [...args], { env, timeout: SERVICE_NOTIFY_TIMEOUT_MS }, (err, _stdout, stderr) => {
    if (err) reject(new Error(`${err.message.split('\n')[0]}${stderr.trim() ? `: ${stderr.trim()}` : ''}`));
    else resolve();
  });
});

export type NotifyOutcome = 'not-under-systemd' | 'sent' | 'failed';

/** READY=1 to systemd if it is waiting for one; says what happened (also in the log). */
export async function notifyReady(
  logger: Pick<Logger, 'info' | 'warn'>,
  opts: { env?: NodeJS.ProcessEnv; run?: NotifyRunner; status?: string } = {},
): Promise<NotifyOutcome> {
  const env = opts.env ?? process.env;
  const socket = env['NOTIFY_SOCKET'];
  if (!socket) return 'not-under-systemd';
  const args = ['--ready', ...(opts.status ? [`--status=${opts.status}`] : [])];
  try {
    await (opts.run ?? runProgram)('systemd-notify', args, env);
    logger.info({ notifySocket: socket }, 'told systemd: ready');
    return 'sent';
  } catch (e) {
    logger.warn({ notifySocket: socket, err: (e as Error).message },
      'NOTIFY_SOCKET is set but systemd-notify --ready failed: systemd will time out waiting for the agent');
    return 'failed';
  }
}
