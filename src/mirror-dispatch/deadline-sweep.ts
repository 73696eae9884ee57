/**
 * Overall deadlines of requests in flight, enforced by one coarse interval for the whole engine
 * instead of a timer (or AbortSignal.timeout) per request. The interval runs only while
 * something is tracked. undici has connect, headers and body timeouts but none for a write that
 * stalls or an answer that trickles forever; this bounds both.
 */
export interface Deadline {
  readonly at: number;
  /** Called once when the deadline passes. */
  readonly expire: () => void;
}

export class DeadlineSweep {
  private readonly tracked = new Set<Deadline>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly now: () => number, private readonly everyMs: number) {}

  add(d: Deadline): void {
    this.tracked.add(d);
    if (!this.timer) {
      this.timer = setInterval(() => this.sweep(), this.everyMs);
      this.timer.unref();
    }
  }

  delete(d: Deadline): void {
    this.tracked.delete(d);
  }

  get size(): number {
    return this.tracked.size;
  }

  private sweep(): void {
    const t = this.now();
    for (const d of this.tracked) {
      if (d.at <= t) {
        this.tracked.delete(d);
        d.expire();
      }
    }
    if (this.tracked.size === 0) this.stop();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
