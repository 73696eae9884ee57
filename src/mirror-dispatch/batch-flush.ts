/**
 * Hands a batch of copies on (a write to a connection, a postMessage to a worker thread) once
 * per event-loop turn: the copies of every reply written in that turn share it. Waiting a
 * millisecond longer for the copies of later turns was measured and not kept: it saved
 * nothing at 5,000 RPC/s and cost RPC p99 (docs/performance.md, "Mirror dispatch, final pass").
 */
export class BatchFlush {
  private immediate: NodeJS.Immediate | undefined;

  constructor(private readonly flush: () => void) {}

  /** True while a hand-over is scheduled (more copies may join it). */
  get pending(): boolean {
    return this.immediate !== undefined;
  }

  /** Call after adding a copy: the batch goes at the end of this turn. */
  added(): void {
    this.immediate ??= setImmediate(this.run);
  }

  /** Hands the batch on now (shutdown, connect done). */
  now(): void {
    this.cancel();
    this.flush();
  }

  cancel(): void {
    if (this.immediate) clearImmediate(this.immediate);
    this.immediate = undefined;
  }

  private readonly run = (): void => {
    this.immediate = undefined;
    this.flush();
  };
}
