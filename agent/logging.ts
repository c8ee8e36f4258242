// The agent's logger: pino JSON on stderr for journald, files and machines; readable lines (pino-pretty,
// synchronous, so nothing is lost on exit) when stderr is a terminal or --log-format pretty asks.
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';
import type { LogFormat, LogLevel } from './config.js';

export function agentLogger(level: LogLevel, format: LogFormat, isTty = process.stderr.isTTY === true): Logger {
  const opts = { level, base: { pid: process.pid } };
  if (format === 'json' || (format === 'auto' && !isTty)) return pino(opts, pino.destination(2));
  return pino(opts, pretty({ destination: 2, sync: true, colorize: isTty, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' }));
}
