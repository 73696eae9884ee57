/** The one "which ConfError does this throw" helper of the proxy-mirror conf tests. */
import { ConfError } from '../../../src/plugin-api/index.js';

/** The ConfError a call throws (fails the test when it throws nothing or something else). */
export function confError(fn: () => unknown): ConfError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfError) return err;
    throw err;
  }
  throw new Error('expected a ConfError, nothing was thrown');
}
