import { atEndOfTurn } from '../end-of-turn.js';

/**
 * Hands a batch of copies on (a write to a connection, a postMessage to a worker thread) once
 * per event-loop turn: the copies of every reply written in that turn share it. Waiting a
 * millisecond longer for the copies of later turns was measured and not kept: it saved
 * nothing at 5,000 RPC/s and cost RPC p99 (docs/performance.md, "Mirror dispatch, final pass").
 *
 * The turn's end is the runner's shared one (end-of-turn.ts): the replies to APISIX are written
 * there first, then the calls' afterReply tasks add their copies, and the batch leaves in the
 * same check phase.
 */
export class BatchFlush {
  private scheduled = false;

  constructor(private readonly flush: () => void) {}

  /** True while a hand-over is scheduled (more copies may join it). */
  get pending(): boolean {
    return this.scheduled;
  }

  /** Call after adding a copy: the batch goes at the end of this turn. */
  added(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    atEndOfTurn(this.run);
  }

  /** Hands the batch on now (shutdown, connect done). */
  now(): void {
    this.scheduled = false;
    this.flush();
  }

  cancel(): void {
    this.scheduled = false;
  }

  private readonly run = (): void => {
    if (!this.scheduled) return;
    this.scheduled = false;
    this.flush();
  };
}
