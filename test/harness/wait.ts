/**
 * The one bounded wait of the test suite: polls a condition until it holds, and fails with the
 * condition's name when the bound runs out. The bound is a safety net, never a timing assertion:
 * a test asserts what happened, and waits only so that it can happen.
 */

export class WaitTimeoutError extends Error {
  readonly code = 'TEST_WAIT_TIMEOUT';
}

export interface WaitOptions {
  /** Give up after this long (ms). Generous: the machine may be loaded. */
  readonly limitMs?: number;
  /** Pause between two checks (ms). */
  readonly intervalMs?: number;
}

/** Resolves once `cond` is true; throws WaitTimeoutError naming `what` when `limitMs` runs out. */
export async function waitUntil(cond: () => boolean | Promise<boolean>, what: string, options: WaitOptions = {}): Promise<void> {
  const limitMs = options.limitMs ?? 10_000;
  const intervalMs = options.intervalMs ?? 10;
  const deadline = Date.now() + limitMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new WaitTimeoutError(`gave up after ${limitMs} ms waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
