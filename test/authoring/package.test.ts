// The package as users get it: `npm pack` of this checkout (prepare builds dist/), its
// contents, a project scaffolded by `init` installing the tarball and running its own tests,
// type-check and build, its plugin loaded by the packed runner, a CommonJS plugin project,
// and the example built with the command its comment gives. Slow (npm install): one file.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startRunnerProcess } from 'apisix-ts-plugin-runner/testing';
import { ROOT } from './built-package.js';
import { createTempDir, type TempDir } from '../harness/temp-dir.js';

const run = promisify(execFile);
const TSC = join(ROOT, 'node_modules/typescript/bin/tsc');

/** Runs a command; resolves with its stdout, fails with all its output (bounded: 4 minutes). */
async function sh(cmd: string, args: readonly string[], cwd: string): Promise<string> {
  try {
    const { stdout } = await run(cmd, [...args], { cwd, timeout: 240_000, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false' } });
    return stdout;
  } catch (err) {
    const e = err as Error & { stdout?: string; stderr?: string };
    throw new Error(`${cmd} ${args.join(' ')} (in ${cwd}) failed: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
  }
}

interface PackResult {
  readonly filename: string;
  readonly files: ReadonlyArray<{ readonly path: string }>;
}

let workDir: TempDir | undefined;
let work: string;
let tarball: string;
let packed: Set<string>;

beforeAll(async () => {
  workDir = createTempDir('a6-pack-');
  work = workDir.path;
  const out = await sh('npm', ['pack', '--json', '--pack-destination', work], ROOT);
  // npm prints the prepare script's output before the JSON.
  const result = (JSON.parse(out.slice(out.indexOf('[\n'))) as PackResult[])[0]!;
  tarball = join(work, result.filename);
  packed = new Set(result.files.map((f) => f.path));
}, 300_000);

afterAll(() => {
  workDir?.remove();
  rmSync(join(ROOT, 'examples/request-id/dist'), { recursive: true, force: true });
});

describe('npm pack', () => {
  it('ships the entry points package.json exports, the CLI, LICENSE, README and the guide, and nothing from test/', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { exports: Record<string, string | Record<string, string>>; bin: Record<string, string> };
    const targets = Object.values(pkg.exports).flatMap((t) => (typeof t === 'string' ? [t] : Object.values(t)));
    for (const t of [...targets, ...Object.values(pkg.bin)]) expect(packed, t).toContain(t.replace(/^\.\//, ''));
    for (const f of ['LICENSE', 'README.md', 'docs/plugin-authoring.md', 'dist/testing/index.d.ts', 'dist/plugin-resolve-hooks.js']) expect(packed).toContain(f);
    expect([...packed].filter((f) => f.startsWith('test/'))).toEqual([]);
    expect(readFileSync(join(ROOT, 'LICENSE'), 'utf8')).toContain('Apache License\n                           Version 2.0, January 2004');
  });

  it('every source map points at files the package ships', () => {
    const maps = [...packed].filter((f) => f.endsWith('.map'));
    expect(maps.length).toBeGreaterThan(10);
    for (const map of maps) {
      const { sources } = JSON.parse(readFileSync(join(ROOT, map), 'utf8')) as { sources: string[] };
      // A map whose source is gone is a stale build output left in dist/ (rm -rf dist && npm run build).
      for (const s of sources) expect(packed, `${map} -> ${s} (stale dist/? rm -rf dist && npm run build)`).toContain(join(map, '..', s));
    }
  });
});

describe('a plugin project made by init', () => {
  it('installs the tarball, passes its own tests, type-checks strictly, builds, and its plugin runs in the packed runner', async () => {
    const project = join(work, 'my-plugin');
    const created = await sh(process.execPath, [join(ROOT, 'dist/cli.js'), 'init', project], work);
    expect(created).toContain('npm install');
    // The registry only for the dev tools; --prefer-offline takes them from the npm cache when there.
    await sh('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', tarball], project);
    expect(await sh('npm', ['test'], project)).toMatch(/4 passed/);
    await sh(process.execPath, [join(project, 'node_modules/typescript/bin/tsc')], project);
    await sh('npm', ['run', 'build'], project);

    const runner = await startRunnerProcess({
      cli: join(project, 'node_modules/apisix-ts-plugin-runner/dist/cli.js'),
      plugins: [join(project, 'dist/my-plugin.js')],
    });
    try {
      const conf = [{ name: 'my-plugin', conf: { allow: ['k1'] } }];
      expect(await runner.client.request(conf)).toMatchObject({ kind: 'stop', status: 403 });
      expect(await runner.client.request(conf, { headers: { 'x-api-key': 'k1' }, vars: { request_id: 'r-1' } })).toMatchObject({
        kind: 'rewrite',
        headers: [{ name: 'x-checked-by', value: 'my-plugin/r-1' }],
      });
    } finally {
      await runner.stop();
    }

    // A CommonJS plugin project type-checks against the same install and runs (require of the ES module package).
    const cjs = join(work, 'cjs-plugin');
    mkdirSync(join(cjs, 'src'), { recursive: true });
    symlinkSync(join(project, 'node_modules'), join(cjs, 'node_modules'), 'dir');
    writeFileSync(join(cjs, 'package.json'), JSON.stringify({ name: 'cjs-plugin', type: 'commonjs' }));
    writeFileSync(join(cjs, 'tsconfig.json'), JSON.stringify({ compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', strict: true, skipLibCheck: false, rootDir: 'src', outDir: 'dist' }, include: ['src'] }));
    writeFileSync(join(cjs, 'src/plugin.ts'), [
      "import { definePlugin, ConfError } from 'apisix-ts-plugin-runner';",
      "import type { RequestOutcome } from 'apisix-ts-plugin-runner/testing';",
      "export const example: RequestOutcome['kind'] = 'none';",
      "export default definePlugin<{ n: number }>({ name: 'cjs-plugin', parseConf(v) { const c = v as { n: number }; if (c.n < 0) throw new ConfError('/n', 'negative'); return c; }, onRequest(c, req) { req.stop({ body: String(c.n) }); } });",
    ].join('\n'));
    await sh(process.execPath, [join(project, 'node_modules/typescript/bin/tsc')], cjs);
    expect(readFileSync(join(cjs, 'dist/plugin.js'), 'utf8')).toContain('require("apisix-ts-plugin-runner")');
    const cjsRunner = await startRunnerProcess({ cli: join(project, 'node_modules/apisix-ts-plugin-runner/dist/cli.js'), plugins: [join(cjs, 'dist/plugin.js')] });
    try {
      const ok = await cjsRunner.client.request([{ name: 'cjs-plugin', conf: { n: 7 } }]);
      expect(ok.kind === 'stop' && ok.body?.toString()).toBe('7');
      await cjsRunner.client.request([{ name: 'cjs-plugin', conf: { n: -1 } }]);
      expect(cjsRunner.logs().find((l) => l['plugin'] === 'cjs-plugin' && l['field'] !== undefined)).toMatchObject({ field: '/n' });
    } finally {
      await cjsRunner.stop();
    }
  }, 600_000);
});

describe('examples', () => {
  it('examples/request-id builds with `npx tsc` in its folder, as its comment says, and runs with --plugin', async () => {
    const dir = join(ROOT, 'examples/request-id');
    expect(readFileSync(join(dir, 'plugin.ts'), 'utf8')).toContain('`npx tsc`');
    await sh(process.execPath, [TSC], dir);
    expect(existsSync(join(dir, 'dist/plugin.js'))).toBe(true);
    const runner = await startRunnerProcess({ cli: join(ROOT, 'dist/cli.js'), plugins: [join(dir, 'dist/plugin.js')] });
    try {
      const out = await runner.client.request([{ name: 'request-id' }], { headers: { 'x-request-id': 'given' } });
      expect(out).toMatchObject({ kind: 'rewrite', responseHeaders: [{ name: 'x-request-id', value: 'given' }] });
    } finally {
      await runner.stop();
    }
  }, 120_000);
});
