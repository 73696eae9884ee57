/**
 * Case counts of the property tests. CI keeps them modest; a long campaign raises them:
 *   FC_RUNS=250000 npx vitest run test/reliability/message-properties.test.ts
 * FC_SEED replays a failing run (fast-check prints the seed and path of a counterexample).
 */

function positiveInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer, got "${raw}"`);
  return n;
}

/** Cases per in-process property (frame decoder, message decoders). */
export const FC_RUNS = positiveInt('FC_RUNS', 400);

/** Cases per property that goes through a real runner's socket (each case is a few socket round trips). */
export const FC_SOCKET_RUNS = positiveInt('FC_SOCKET_RUNS', 150);

/** fast-check parameters: run count plus a fixed seed when FC_SEED is set. */
export function fcParams(numRuns: number): { numRuns: number; seed?: number } {
  const seed = process.env['FC_SEED'];
  return seed ? { numRuns, seed: Number(seed) } : { numRuns };
}

/** Test timeout for a property of `runs` cases at about `msPerRun` each: CI's 30 s, more for a long campaign. */
export function timeoutFor(runs: number, msPerRun: number): number {
  return Math.max(30_000, Math.ceil(runs * msPerRun * 3));
}
