/**
 * Logs a recurring problem at most once per interval per key, counting what it held back,
 * so that a broken route or a dead mirror target cannot flood APISIX's error log.
 */
export class RateLimitedLog {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly intervalMs: number = 10_000,
    private readonly now: () => number = Date.now,
    private readonly maxKeys: number = 10_000,
  ) {}

  /** Calls `emit(suppressedSinceLast)` if `key` was not logged within the interval. */
  maybe(key: string, emit: (suppressed: number) => void): boolean {
    const t = this.now();
    const entry = this.last.get(key);
    if (entry && t - entry.at < this.intervalMs) {
      entry.suppressed++;
      return false;
    }
    if (!entry && this.last.size >= this.maxKeys) {
      // Bounded memory: forget the oldest key.
      const oldest = this.last.keys().next().value;
      if (oldest !== undefined) this.last.delete(oldest);
    }
    const suppressed = entry?.suppressed ?? 0;
    this.last.delete(key);
    this.last.set(key, { at: t, suppressed: 0 });
    emit(suppressed);
    return true;
  }
}
