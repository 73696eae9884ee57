/**
 * Rate-limits problem logs: at most one line per key (target + kind) per interval, and the
 * next line says how many were suppressed. A dead target under load would otherwise write
 * one line per request into APISIX's error log (the runner's output lands there).
 */
import type { Logger } from '../../plugin-api/index.js';

interface Slot {
  nextAt: number;
  suppressed: number;
}

/** Keeps one slot per key; keys are bounded by configured targets × problem kinds. */
export class LogLimiter {
  private readonly slots = new Map<string, Slot>();

  constructor(
    private readonly logger: Logger,
    private readonly intervalMs: number,
    private readonly now: () => number,
    /** Hard bound on distinct keys, in case a caller builds keys from request data. */
    private readonly maxKeys = 1024,
  ) {}

  /** Logs at warn level unless this key logged less than `intervalMs` ago. Returns whether it logged. */
  warn(key: string, obj: Record<string, unknown>, msg: string): boolean {
    const t = this.now();
    let slot = this.slots.get(key);
    if (!slot) {
      if (this.slots.size >= this.maxKeys) this.slots.clear();
      slot = { nextAt: 0, suppressed: 0 };
      this.slots.set(key, slot);
    }
    if (t < slot.nextAt) {
      slot.suppressed++;
      return false;
    }
    const suppressed = slot.suppressed;
    slot.suppressed = 0;
    slot.nextAt = t + this.intervalMs;
    this.logger.warn(suppressed > 0 ? { ...obj, suppressed } : obj, msg);
    return true;
  }
}
