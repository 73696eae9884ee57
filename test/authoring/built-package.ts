/** This package built into a temporary folder, as an installed copy would run (dist/ + package.json + dependencies). */
import { execFileSync } from 'node:child_process';
import { copyFileSync, symlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createTempDir } from '../harness/temp-dir.js';

export const ROOT = resolve(import.meta.dirname, '../..');

export interface BuiltPackage {
  readonly dir: string;
  readonly cli: string;
  remove(): void;
}

/** Compiles src/ with the build config into a temp folder; its node_modules is the repository's. */
export function buildPackage(): BuiltPackage {
  const temp = createTempDir('a6-built-');
  const dir = temp.path;
  execFileSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', join(dir, 'dist')], { cwd: ROOT, stdio: 'pipe' });
  copyFileSync(join(ROOT, 'package.json'), join(dir, 'package.json'));
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
  return { dir, cli: join(dir, 'dist/cli.js'), remove: temp.remove };
}
