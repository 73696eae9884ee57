// `apisix-ts-plugin-runner init`: what it writes and how it refuses (the full project run is in package.test.ts).
import { afterEach, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { killAllCli, spawnCli } from '../harness/cli-process.js';
import { tempDirs } from '../harness/temp-dir.js';

const dirs = tempDirs();
afterEach(() => {
  killAllCli();
  dirs.removeAll();
});

const tempDir = (): string => dirs.make('a6-init-');

describe('init', () => {
  it('scaffolds a project named after the folder, or after --name, and says what to run next', async () => {
    const dir = tempDir();
    const s = spawnCli(['init', join(dir, 'Rate Limit'), '--name', 'quota']);
    expect(await s.exited).toBe(0);
    expect(s.output()).toContain('with the plugin "quota"');
    expect(s.output()).toContain('npm install');
    const pkg = JSON.parse(readFileSync(join(dir, 'Rate Limit/package.json'), 'utf8')) as { name: string; dependencies: Record<string, string>; scripts: Record<string, string> };
    expect(pkg.name).toBe('rate-limit');
    expect(pkg.dependencies['apisix-ts-plugin-runner']).toMatch(/^\^\d+\.\d+\.\d+/);
    expect(pkg.scripts['start']).toBe('apisix-ts-plugin-runner --plugin dist/quota.js');
    expect(readFileSync(join(dir, 'Rate Limit/src/quota.ts'), 'utf8')).toContain("name: 'quota'");
    const readme = readFileSync(join(dir, 'Rate Limit/README.md'), 'utf8');
    for (const part of ['ext-plugin-pre-req', '/apisix/admin/routes/1', '#END', '--plugin', 'dist/quota.js']) expect(readme).toContain(part);
  });

  it('refuses a folder that is not empty, and a missing folder argument: one line, exit 2', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'keep.txt'), 'x');
    const busy = spawnCli(['init', dir]);
    expect(await busy.exited).toBe(2);
    expect(busy.output().trim()).toBe(`apisix-ts-plugin-runner init: ${dir} exists and is not empty: give a new folder name`);
    const none = spawnCli(['init']);
    expect(await none.exited).toBe(2);
    expect(none.output()).toContain('usage: apisix-ts-plugin-runner init <dir>');
  });
});
