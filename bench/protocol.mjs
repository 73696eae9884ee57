/**
 * Loads the project's compiled protocol code for the benchmark processes. The benchmark runs
 * against the build (`npm run bench` builds first); BENCH_DIST points elsewhere, e.g. at a
 * scratch build while the tree does not compile as a whole.
 */
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as flatbuffers from 'flatbuffers';
import { createBenchFrames } from './frames.mjs';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Directory of the compiled project (dist/ unless BENCH_DIST says otherwise). */
export function distDir() {
  return resolve(REPO_ROOT, process.env.BENCH_DIST ?? 'dist');
}

/** Imports the generated code and the frame decoder from the build and returns the bench frame factory. */
export async function loadProtocol() {
  const dir = distDir();
  const a6Path = resolve(dir, 'protocol/generated/a6.js');
  if (!existsSync(a6Path)) {
    throw new Error(`${a6Path} is missing: run \`npm run build\` first (or set BENCH_DIST)`);
  }
  const a6 = await import(pathToFileURL(a6Path).href);
  const { FrameDecoder } = await import(pathToFileURL(resolve(dir, 'protocol/frame.js')).href);
  return { frames: createBenchFrames(a6, flatbuffers), FrameDecoder };
}
