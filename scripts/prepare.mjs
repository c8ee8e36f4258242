#!/usr/bin/env node
// npm's `prepare` in a checkout: it builds dist/ (the addon is the `install` script's, which npm runs
// next to this either way). Two ways get here:
//   - `npm install` in the checkout: npm has installed every dependency, tsc among them;
//   - `npm install -g .`: npm links the checkout into the global prefix and installs none of its
//     dependencies (a linked folder keeps its own node_modules), so they are installed here first, the
//     dev ones too since tsc is one, with scripts off so that this does not run again inside itself.
// Under `npm pack` and `npm publish` it does nothing: `prepack` has just built dist/.
// Plain JavaScript: it runs before anything is compiled.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const env = process.env;
if (env.npm_command === 'pack' || env.npm_command === 'publish') process.exit(0);

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const installed = (name) => existsSync(join(root, 'node_modules', name, 'package.json'));
const npm = env.npm_execpath ? [process.execPath, env.npm_execpath] : ['npm'];

/** Run a command in the checkout, or say which step failed and exit with its status. */
function step(argv, childEnv) {
  const r = spawnSync(argv[0], argv.slice(1), { cwd: root, env: childEnv, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`prepare: ${argv.slice(env.npm_execpath ? 1 : 0).join(' ')} failed (${r.error?.message ?? `exit ${r.status ?? r.signal}`})`);
    process.exit(r.status || 1);
  }
}

// What npm tells its scripts about the global install (prefix, globalconfig, ...) would turn the
// checkout's own install into another global one; cache, registry and --offline stay.
const localEnv = Object.fromEntries(Object.entries(env).filter(([k]) =>
  !/^npm_config_(global|global_prefix|local_prefix|prefix|globalconfig|location|allow_scripts)$/i.test(k)));

const wanted = [...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.devDependencies ?? {})];
const missing = wanted.filter((name) => !installed(name));
if (env.npm_config_global === 'true' && missing.length > 0) {
  console.error(`prepare: installing the checkout's dependencies (${missing.join(', ')} missing) to build it`);
  step([...npm, 'install', '--include=dev', '--ignore-scripts', '--no-save', '--no-audit', '--no-fund'], localEnv);
}

if (!installed('typescript')) {
  // `npm install --omit=dev` in a checkout: keep a dist/ that is there, else say what is needed.
  if (existsSync(join(root, 'dist', 'agent', 'cli.js'))) process.exit(0);
  console.error('prepare: dist/ is built by tsc, a devDependency: run npm install without --omit=dev');
  process.exit(1);
}
step([...npm, 'run', 'build:ts'], localEnv);
