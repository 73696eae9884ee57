/**
 * The bench scripts import the compiled protocol code from BENCH_DIST (bench/protocol.mjs). For
 * tests, a two-file directory that re-exports the TypeScript sources stands in for a build; the
 * process that imports it runs under tsx (`--import tsx`).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

/** Writes the shim under `dir` and returns its path (the value for BENCH_DIST). */
export function writeDistShim(dir: string): string {
  const shim = path.join(dir, 'dist');
  mkdirSync(path.join(shim, 'protocol/generated'), { recursive: true });
  writeFileSync(path.join(shim, 'protocol/generated/a6.js'), `export * from ${JSON.stringify(path.join(REPO, 'src/protocol/generated/a6.ts'))};\n`);
  writeFileSync(path.join(shim, 'protocol/frame.js'), `export * from ${JSON.stringify(path.join(REPO, 'src/protocol/frame.ts'))};\n`);
  return shim;
}
