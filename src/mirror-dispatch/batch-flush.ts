/**
 * When a batch of copies is handed on (written to a connection, posted to a worker thread).
 * Copies are fire-and-forget, so a millisecond of waiting costs nobody anything, while every
 * hand-over has a fixed cost (a write syscall, a postMessage and the wake-ups on both sides).
 * Under load many copies arrive in one event-loop turn and a full batch goes at the end of
 * that turn; at a moderate rate (a copy or two per turn) the copies of the next `delayMs`
 * join the same hand-over instead of paying one each.
 */
export class BatchFlush {
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;

  constructor(
    private readonly flush: () => void,
    /** How long a batch that is not full waits for more; 0: the end of this turn. */
    private readonly delayMs: number,
    /** A batch this size goes at the end of this turn. */
    private readonly full: number,
  ) {}

  /** True while a hand-over is scheduled (more copies may join it). */
  get pending(): boolean {
    return this.timer !== undefined || this.immediate !== undefined;
  }

  /** Call after adding a copy; `waiting` copies are in the batch now. */
  added(waiting: number): void {
    if (this.immediate) return;
    if (waiting >= this.full || this.delayMs <= 0) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      this.immediate = setImmediate(this.run);
      return;
    }
    if (!this.timer) {
      this.timer = setTimeout(this.run, this.delayMs);
      // The socket or worker that will carry the batch keeps the process alive, not this timer.
      this.timer.unref();
    }
  }

  /** Hands the batch on now (shutdown, connect done). */
  now(): void {
    this.cancel();
    this.flush();
  }

  cancel(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.immediate) clearImmediate(this.immediate);
    this.timer = undefined;
    this.immediate = undefined;
  }

  private readonly run = (): void => {
    this.timer = undefined;
    this.immediate = undefined;
    this.flush();
  };
}
