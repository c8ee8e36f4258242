// Split DNS through systemd-resolved, where it runs: the TAP link gets our addresses as its DNS servers
// and ~idloc as its routing-only domain, so resolved sends .idloc questions to the responder and nothing
// else (a link whose only domains are routing domains is no default route), and the host's other
// resolvers stay as they were. Undone with `resolvectl revert` on exit. /etc/resolv.conf is never
// touched. The commands go through a CommandRunner, so a test reads them without running them.
import { ZONE } from './zone.js';

export interface RunResult { code: number; stdout: string; stderr: string }

/** Runs a program to completion; code -1 when it could not be started (not installed). */
export interface CommandRunner {
  run(argv: readonly string[]): Promise<RunResult>;
}

export class ResolvedLink {
  constructor(private readonly runner: CommandRunner, readonly link: string) {}

  /** Whether systemd-resolved runs here and resolvectl is there to tell it: resolvectl answers, and
   *  systemd says the unit is active, or (no systemd as init: a container) resolved holds its D-Bus name. */
  async available(): Promise<boolean> {
    if ((await this.runner.run(['resolvectl', '--version'])).code !== 0) return false;
    const unit = await this.runner.run(['systemctl', 'is-active', 'systemd-resolved']);
    if (unit.code === 0 && unit.stdout.trim() === 'active') return true;
    return (await this.runner.run(['busctl', 'status', 'org.freedesktop.resolve1'])).code === 0;
  }

  /** Our addresses as the link's DNS servers, ~idloc as its routing domain. Throws with resolvectl's
   *  words when it refuses. */
  async apply(addresses: readonly string[]): Promise<void> {
    await this.must(['resolvectl', 'dns', this.link, ...addresses]);
    await this.must(['resolvectl', 'domain', this.link, `~${ZONE}`]);
  }

  /** Forget what apply() set on the link. */
  async revert(): Promise<void> {
    await this.must(['resolvectl', 'revert', this.link]);
  }

  private async must(argv: readonly string[]): Promise<void> {
    const r = await this.runner.run(argv);
    if (r.code !== 0) throw new Error(`${argv.join(' ')}: ${(r.stderr || r.stdout).trim() || `exit ${r.code}`}`);
  }
}

/** The one line for hosts without systemd-resolved. */
export function howToUse(listening: readonly string[]): string {
  const v4 = listening.find((a) => !a.startsWith('[')) ?? listening[0] ?? '?';
  const address = v4.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return `DNS for .${ZONE} on ${listening.join(' and ')}: add it to your resolver, or use \`dig @${address} bob.${ZONE}\``;
}
