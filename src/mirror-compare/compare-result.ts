/** The outcome of one compared request for one target (the `result` label of the metric). */
import type { DiffResult } from './answer-diff.js';

export type CompareResult = DiffResult | 'mirror_timeout' | 'mirror_error' | 'primary_only' | 'skipped';

export const COMPARE_RESULTS: readonly CompareResult[] = [
  'equal', 'differ_status', 'differ_headers', 'differ_body', 'mirror_timeout', 'mirror_error', 'primary_only', 'skipped',
];

/** Why a pair was counted as `skipped`. */
export type SkipReason =
  /** The real answer never came within max_age (no ext-plugin-post-resp on the route, or APISIX failed the request first). */
  | 'no_primary'
  /** The pending store was full (count or bytes) and this, the oldest pair, gave way. */
  | 'evicted'
  /** The diff itself failed (a bug or a body it cannot handle); reported through onError. */
  | 'compare_error';

/** True for the results that mean both answers were compared. */
export function isCompared(r: CompareResult): boolean {
  return r === 'equal' || r === 'differ_status' || r === 'differ_headers' || r === 'differ_body';
}
