/**
 * Rate-limits the mirror's problem logs: at most one line per key (target + kind) per
 * interval, and the next line says how many were suppressed. A dead target under load would
 * otherwise write one line per request into APISIX's error log (the runner's output lands there).
 */
import type { Logger } from '../../plugin-api/index.js';
import { RateLimitedLog } from '../../observability/rate-limited-log.js';

/** A warn-level logger bound to the runner's RateLimitedLog policy. */
export class LogLimiter {
  private readonly limit: RateLimitedLog;

  constructor(private readonly logger: Logger, intervalMs: number, now: () => number, maxKeys = 1024) {
    this.limit = new RateLimitedLog(intervalMs, now, maxKeys);
  }

  /**
   * Logs at warn level unless this key logged less than the interval ago. Returns whether it
   * logged. Pass a function to build the fields only when the line is written (hot paths).
   */
  warn(key: string, fields: Record<string, unknown> | (() => Record<string, unknown>), msg: string): boolean {
    return this.limit.maybe(key, (suppressed) => {
      const obj = typeof fields === 'function' ? fields() : fields;
      this.logger.warn(suppressed > 0 ? { ...obj, suppressed } : obj, msg);
    });
  }
}
