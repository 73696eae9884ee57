// Plugins in their own folder (outside the repository), loaded by a real runner process with
// --plugin, get the runner's own package: ConfError from the plugin is the runner's ConfError,
// so the log names the JSON pointer of the bad field, with or without a stale copy installed.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startRunnerProcess, RunnerStartError, type RunnerProcess } from 'apisix-ts-plugin-runner/testing';
import { buildPackage, type BuiltPackage } from './built-package.js';
import { tempDirs } from '../harness/temp-dir.js';

// The compiled runner, as installed: under tsx a CommonJS require of the TypeScript source
// would compile a second copy, which says nothing about what users run.
let built: BuiltPackage;
beforeAll(() => {
  built = buildPackage();
}, 120_000);
afterAll(() => built.remove());

const ESM_PLUGIN = `
import { ConfError, definePlugin } from 'apisix-ts-plugin-runner';
import { runRequest } from 'apisix-ts-plugin-runner/testing';
export default definePlugin({
  name: 'limit-esm',
  parseConf(value) {
    if (value.limit < 1) throw new ConfError('/limit', 'must be at least 1');
    return value;
  },
  onRequest(conf, req) { req.stop({ status: 200, body: typeof runRequest + ':' + conf.limit }); },
});
`;

const CJS_PLUGIN = `
const { ConfError, definePlugin } = require('apisix-ts-plugin-runner');
module.exports = definePlugin({
  name: 'limit-cjs',
  parseConf(value) {
    if (value.limit < 1) throw new ConfError('/limit', 'must be at least 1');
    return value;
  },
  onRequest(conf, req) { req.stop({ status: 200, body: 'cjs:' + conf.limit }); },
});
`;

/** An old copy of the package, as \`npm install apisix-ts-plugin-runner\` next to a plugin leaves it: its ConfError is another class. */
function installStaleCopy(dir: string): void {
  const pkg = join(dir, 'node_modules', 'apisix-ts-plugin-runner');
  mkdirSync(join(pkg, 'testing'), { recursive: true });
  writeFileSync(join(pkg, 'package.json'), JSON.stringify({
    name: 'apisix-ts-plugin-runner', version: '0.0.1', type: 'module',
    exports: { '.': { import: './index.js', require: './index.cjs' }, './testing': './testing/index.js' },
  }));
  writeFileSync(join(pkg, 'index.js'), 'export class ConfError extends Error { constructor(f, m) { super(m); this.field = f; } }\nexport const definePlugin = (p) => p;\n');
  writeFileSync(join(pkg, 'index.cjs'), 'class ConfError extends Error { constructor(f, m) { super(m); this.field = f; } }\nmodule.exports = { ConfError, definePlugin: (p) => p };\n');
  writeFileSync(join(pkg, 'testing', 'index.js'), 'export const runRequest = "stale";\n');
}

const dirs = tempDirs();
const runners: RunnerProcess[] = [];
afterEach(async () => {
  for (const r of runners.splice(0)) await r.stop();
  dirs.removeAll();
});

function pluginFolder(): string {
  const dir = dirs.make('a6-plugins-');
  writeFileSync(join(dir, 'limit.mjs'), ESM_PLUGIN);
  writeFileSync(join(dir, 'limit.cjs'), CJS_PLUGIN);
  return dir;
}

async function expectSharedPackage(dir: string): Promise<void> {
  const runner = await startRunnerProcess({ cli: built.cli, plugins: [join(dir, 'limit.mjs'), join(dir, 'limit.cjs')] });
  runners.push(runner);
  for (const name of ['limit-esm', 'limit-cjs']) {
    const ok = await runner.client.request([{ name, conf: { limit: 5 } }]);
    expect(ok).toMatchObject({ kind: 'stop', status: 200 });
    if (ok.kind === 'stop') expect(ok.body?.toString()).toBe(name === 'limit-esm' ? 'function:5' : 'cjs:5');

    const bad = await runner.client.request([{ name, conf: { limit: 0 } }], {}, { routeKey: `route#1#${name}#bad` });
    expect(bad).toMatchObject({ kind: 'error', code: 'BAD_REQUEST' });
    const line = runner.logs().find((l) => l['plugin'] === name && String(l['msg']).startsWith('invalid conf'));
    // The runner recognised the plugin's ConfError: the field is the JSON pointer, not "".
    expect(line).toMatchObject({ field: '/limit', route: `route#1#${name}#bad` });
    expect(String(line?.['msg'])).toContain('/limit: must be at least 1');
  }
}

describe('user plugin modules outside the repository', () => {
  it('ESM and CommonJS plugins with no copy of the package installed use the runner\'s own', async () => {
    await expectSharedPackage(pluginFolder());
  });

  it('a stale copy installed beside the plugins is ignored: they still get the runner\'s package', async () => {
    const dir = pluginFolder();
    installStaleCopy(dir);
    await expectSharedPackage(dir);
  });

  it('a plugin whose own dependency is missing stops the start: one plain line naming the module and the fix, exit 2', async () => {
    const dir = pluginFolder();
    writeFileSync(join(dir, 'needs-dep.mjs'), "import 'some-dependency-not-installed';\nexport default { name: 'x' };\n");
    const err = await startRunnerProcess({ cli: built.cli, plugins: [join(dir, 'needs-dep.mjs')] }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(RunnerStartError);
    const { exitCode, output } = err as RunnerStartError;
    expect(exitCode).toBe(2);
    const lines = output.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^apisix-ts-plugin-runner: cannot start: cannot load plugin module .*needs-dep\.mjs: Cannot find package 'some-dependency-not-installed'/);
    expect(lines[0]).toContain('npm install in its folder');
  });

  it('a CommonJS plugin on a Node without require(esm) gets one line saying what to change, exit 2', async () => {
    const dir = pluginFolder();
    // The flag turns off require() of ES modules, as on Node < 20.19 / 22.12.
    const err = await startRunnerProcess({ cli: built.cli, plugins: [join(dir, 'limit.cjs')], env: { NODE_OPTIONS: '--no-experimental-require-module' } }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(RunnerStartError);
    const { exitCode, output } = err as RunnerStartError;
    expect(exitCode).toBe(2);
    const lines = output.trim().split('\n').filter((l) => !l.includes('ExperimentalWarning') && !l.includes('--trace-warnings'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/limit\.cjs: .*The plugin is CommonJS and requires an ES module \(apisix-ts-plugin-runner is one\): run the runner on Node\.js >= 20\.19 or >= 22\.12.*or make the plugin an ES module/);
  });
});
