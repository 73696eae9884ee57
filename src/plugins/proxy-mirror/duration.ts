/**
 * Durations as nginx writes them in APISIX's plugin_attr (`2000ms`, `60s`, `1m`): shared by
 * proxy-mirror's conf and settings and by its `compare` block (a leaf module, so the compare
 * schema can be embedded in proxy-mirror's without an import cycle).
 */
import { ConfError } from '../../plugin-api/index.js';

/** A duration as nginx writes it in APISIX's plugin_attr (`2000ms`, `60s`, `1m`). */
export const DURATION_PATTERN = '^[0-9]+(\\.[0-9]+)?(ms|s|m)$';

const durationRe = new RegExp(DURATION_PATTERN);

/** Parses `2000ms`, `60s`, `1m` or a number of milliseconds; throws ConfError naming `field`. */
export function parseDuration(value: unknown, field: string): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value <= 0) throw new ConfError(field, 'must be a positive number of milliseconds');
    return value;
  }
  if (typeof value === 'string' && durationRe.test(value)) {
    const unit = value.endsWith('ms') ? 'ms' : value.slice(-1);
    const n = Number.parseFloat(value);
    const ms = unit === 'ms' ? n : unit === 's' ? n * 1000 : n * 60_000;
    if (ms > 0) return ms;
  }
  throw new ConfError(field, `must be milliseconds or a duration like "2000ms", "60s" (got ${JSON.stringify(value)})`);
}
