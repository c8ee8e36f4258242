// Installing as a host does (README quick start): `npm pack` builds dist/ (prepack) into a tarball that
// holds the JavaScript, the addon's sources and the unit, and `npm install -g` of that tarball builds the
// addon (the install script) and puts idloc-agent on PATH; `npm install -g .` from a checkout that has
// never been installed (only the symlink npm makes, so prepare installs and builds the checkout) does too.
// Each install goes into a temporary prefix, and the command it installed runs `id --json` and `up` in a
// lab namespace. The checkout is copied first (its git file list, as a fresh clone would have it) so
// that nothing here rewrites the dist/ this test runs from.
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, realpathSync, statSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lab, waitFor } from './lab.js';
import { canonicalIpv6, TAP_NAME, type AgentIdentity } from './agents.js';
import { labUnavailable, prerequisites } from './prerequisites.js';

/** The checkout: dist/test/integration -> the repository root. */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const SUITE = 'npm pack and npm install -g';
const NPM_TIMEOUT_MS = 180_000;

function toolMissing(): string | false {
  try { execFileSync('npm', ['--version'], { stdio: 'ignore' }); } catch { return 'npm is not on PATH'; }
  try { execFileSync('git', ['-C', ROOT, 'rev-parse', '--git-dir'], { stdio: 'ignore' }); } catch {
    return `${ROOT} is not a git checkout (the test copies the checkout's files as git lists them)`;
  }
  if (!existsSync(join(ROOT, 'node_modules', 'typescript'))) return 'the checkout has no node_modules/typescript (npm install): npm pack builds dist/ with it';
  if (!existsSync(join(ROOT, 'native-helpers', 'build', 'Release', 'idloc_tap.node'))) {
    return 'the native TAP helper is not built in this checkout (npm install), so node-gyp cannot be expected to build it from the tarball';
  }
  return false;
}

const skip = prerequisites(SUITE, labUnavailable(), toolMissing());

/** npm's own variables from the `npm test` around us would point the child npm at this checkout;
 *  where the cache and registry are stays. */
function npmEnv(): NodeJS.ProcessEnv {
  const keep = /^npm_config_(cache|registry|userconfig|offline|prefer_offline)$/i;
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k) || keep.test(k)));
  return { ...env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' };
}

interface Run { code: number; stdout: string; stderr: string }
function npm(args: string[], cwd: string): Promise<Run> {
  return new Promise((resolve) => {
    execFile('npm', args, { cwd, env: npmEnv(), timeout: NPM_TIMEOUT_MS, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr: err && err.killed ? `${stderr}\n(killed after ${NPM_TIMEOUT_MS} ms)` : stderr });
    });
  });
}

/** The checkout's files as git lists them (tracked and untracked, not ignored), copied to `dest`. */
function copyCheckout(dest: string): void {
  const files = execFileSync('git', ['-C', ROOT, 'ls-files', '-z', '--cached', '--others', '--exclude-standard'], { encoding: 'utf8' })
    .split('\0').filter((f) => f !== '' && existsSync(join(ROOT, f)) && statSync(join(ROOT, f)).isFile());
  for (const f of files) {
    mkdirSync(dirname(join(dest, f)), { recursive: true });
    copyFileSync(join(ROOT, f), join(dest, f));
  }
}

/** An npm failure that means "no registry and nothing cached" is the machine's, not the package's. */
const OFFLINE = /ENOTCACHED|ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|network/;
function npmOk(t: TestContext, what: string, r: Run): boolean {
  if (r.code === 0) return true;
  if (OFFLINE.test(r.stderr) && process.env['CI'] !== 'true') {
    t.skip(`${what}: the runtime dependencies are neither in npm's cache nor reachable (${r.stderr.match(OFFLINE)![0]}); under CI=true this fails`);
    return false;
  }
  assert.fail(`${what} exited ${r.code}:\n${r.stderr.slice(-4000)}`);
}

describe(SUITE, { skip }, () => {
  let lab: Lab;
  before(async () => { lab = await Lab.create({ hosts: ['h'] }); });
  after(async () => { await lab?.destroy(); }); // stops the agents, deletes the namespaces and lab.dir

  /** `bin` (the installed idloc-agent, whose files are under `installedIn`) runs `id --json`, then `up` until it is ready, then stops cleanly. */
  async function idAndUp(bin: string, installedIn: string, name: string): Promise<void> {
    const real = realpathSync(bin);
    assert.ok(real.startsWith(realpathSync(installedIn) + '/'), `${bin} runs ${real}, not the copy installed in ${installedIn}`);
    const stateDir = join(lab.dir, `state-${name}`);
    const id = JSON.parse((await lab.exec('h', [bin, 'id', '--json', '--state-dir', stateDir])).stdout) as AgentIdentity;
    assert.match(id.nodeId, /^[0-9a-f]{40}$/);
    assert.match(id.publicKey, /^[0-9a-f]{64}$/);
    assert.match(id.ipv4, /^100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\.\d+\.\d+$/, 'an overlay IPv4 in 100.64.0.0/10');
    assert.match(id.ipv6, /^fd1d:10c0:/, 'an overlay IPv6 in fd1d:10c0::/32');

    const proc = lab.spawn('h', [bin, 'up', '--state-dir', stateDir, '--tap', TAP_NAME, '--listen', '4500'], { logFile: join(lab.dir, `agent-${name}.log`) });
    try {
      const outcome = await waitFor(async () => {
        if (!proc.running) return 'exited' as const;
        const status = JSON.parse((await lab.exec('h', [bin, 'status', '--json', '--state-dir', stateDir])).stdout) as { identity: AgentIdentity };
        assert.equal(status.identity.publicKey, id.publicKey);
        const addr = JSON.parse((await lab.exec('h', ['ip', '-j', 'addr', 'show', 'dev', TAP_NAME])).stdout) as { addr_info: { local: string }[] }[];
        const have = (addr[0]?.addr_info ?? []).map((a) => canonicalIpv6(a.local));
        if (!have.includes(id.ipv4) || !have.includes(canonicalIpv6(id.ipv6))) throw new Error(`${TAP_NAME} has ${have.join(', ')}`);
        return 'up' as const;
      }, 20_000, { what: `${name}: the installed agent to be up`, intervalMs: 200 });
      assert.equal(outcome, 'up', `up exited ${JSON.stringify(proc.exitInfo)} before it was ready: ${proc.stderr.slice(-2000)}`);
    } finally {
      const exit = await lab.stopProcess(proc, { signal: 'SIGTERM', timeoutMs: 5_000 });
      assert.deepEqual(exit, { code: 0, signal: null }, `up should stop cleanly on SIGTERM: ${proc.stderr.slice(-2000)}`);
    }
    const gone = await lab.exec('h', ['ip', 'link', 'show', TAP_NAME], { allowFail: true });
    assert.notEqual(gone.code, 0, `${TAP_NAME} is still there after up stopped`);
  }

  it('npm pack ships dist/, the addon sources and the unit; npm install -g of the tarball builds the addon and runs', async (t) => {
    const src = join(lab.dir, 'pack-src');
    copyCheckout(src);
    // The dependencies npm pack's build needs (tsc), without installing them again.
    symlinkSync(realpathSync(join(ROOT, 'node_modules')), join(src, 'node_modules'));
    const out = join(lab.dir, 'tarball');
    mkdirSync(out);
    const packed = await npm(['pack', '--pack-destination', out], src);
    assert.equal(packed.code, 0, `npm pack: ${packed.stderr.slice(-4000)}`);
    const tgz = readdirSync(out).filter((f) => /^idloc-.*\.tgz$/.test(f));
    assert.equal(tgz.length, 1, `one tarball in ${out}: ${tgz.join(', ')}`);

    const files = execFileSync('tar', ['tzf', join(out, tgz[0]!)], { encoding: 'utf8' }).split('\n').filter(Boolean);
    for (const f of ['package/dist/agent/cli.js', 'package/native-helpers/binding.gyp', 'package/native-helpers/tap.c', 'package/packaging/idloc-agent.service']) {
      assert.ok(files.includes(f), `${f} is in the tarball`);
    }
    const stray = files.filter((f) => f.startsWith('package/dist/test/') || f.includes('/build/') || f.endsWith('.map') || f.endsWith('.ts'));
    assert.deepEqual(stray, [], 'no tests, addon builds, source maps or TypeScript in the tarball');

    const prefix = join(lab.dir, 'prefix-tarball');
    const inst = await npm(['install', '-g', '--prefix', prefix, '--prefer-offline', join(out, tgz[0]!)], lab.dir);
    if (!npmOk(t, 'npm install -g of the tarball', inst)) return;
    const pkgDir = join(prefix, 'lib', 'node_modules', 'idloc');
    assert.ok(existsSync(join(pkgDir, 'native-helpers', 'build', 'Release', 'idloc_tap.node')), 'the install script built the addon');
    await idAndUp(join(prefix, 'bin', 'idloc-agent'), prefix, 'tarball');
  });

  it('npm install -g . from a checkout never installed: prepare installs and builds it, and the linked command runs', async (t) => {
    const src = join(lab.dir, 'checkout');
    copyCheckout(src);
    const prefix = join(lab.dir, 'prefix-checkout');
    const inst = await npm(['install', '-g', '--prefix', prefix, '--prefer-offline', '.'], src);
    if (!npmOk(t, 'npm install -g .', inst)) return;
    assert.ok(existsSync(join(src, 'dist', 'agent', 'cli.js')), 'prepare built dist/ in the checkout');
    assert.ok(existsSync(join(src, 'native-helpers', 'build', 'Release', 'idloc_tap.node')), 'the install script built the addon');
    await idAndUp(join(prefix, 'bin', 'idloc-agent'), src, 'checkout');
  });
});
