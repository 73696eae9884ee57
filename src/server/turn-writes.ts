import { atEndOfTurn } from '../end-of-turn.js';

/** A connection whose frames wait for the end of the turn. */
export interface TurnWriter {
  /** Writes the frames it queued this turn, in order. */
  writeQueued(): void;
  /** Runs a call's afterReply tasks (each guarded: a throwing task is logged, not propagated). */
  runAfterReply(tasks: ReadonlyArray<() => void>): void;
}

/**
 * The frames the runner sends APISIX (answers, errors, ExtraInfo questions) are written at the
 * end of the event-loop turn that made them, every connection's together, and the calls'
 * afterReply tasks run after all of them.
 *
 * Why: when the runner is the busier side, APISIX's worker (or a load generator) sleeps in
 * epoll between answers, and every answer written to a sleeping peer pays a wake-up of the
 * peer's thread inside the runner's `write`: on this project's 2-core VM a cross-core wake-up,
 * an estimated 4-9 µs each (CPU saved ÷ wake-ups saved). Written one by one, as each call finished, a turn of k calls woke the peer up to
 * k times; written together, once. Measured with the load generator waiting on the runner:
 * woken 0.36-0.65 → 0.01-0.04 times per RPC, 2.1-3.0 µs less CPU per RPC (docs/performance.md,
 * "Mirror dispatch, fourteenth pass"). A turn's calls are all handled before its first answer
 * leaves, so an answer waits for the calls read in the same turn; at one call per turn it waits
 * only for the end of the poll phase.
 *
 * afterReply tasks keep their promise (they run once their reply is written) and run after
 * every answer of the turn, so a copy's work never sits between two answers.
 */
export class TurnWrites {
  private writers: TurnWriter[] = [];
  private owners: TurnWriter[] = [];
  private tasks: Array<ReadonlyArray<() => void>> = [];
  private scheduled = false;

  /** `writer` queued its first frame of this turn. */
  queued(writer: TurnWriter): void {
    this.writers.push(writer);
    this.schedule();
  }

  /** `tasks` run once this turn's frames are written. */
  afterWrites(owner: TurnWriter, tasks: ReadonlyArray<() => void>): void {
    this.owners.push(owner);
    this.tasks.push(tasks);
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    atEndOfTurn(this.run);
  }

  private readonly run = (): void => {
    this.scheduled = false;
    const writers = this.writers;
    if (writers.length > 0) {
      this.writers = [];
      for (const w of writers) w.writeQueued();
    }
    const owners = this.owners;
    if (owners.length > 0) {
      const tasks = this.tasks;
      this.owners = [];
      this.tasks = [];
      for (let i = 0; i < owners.length; i++) owners[i]!.runAfterReply(tasks[i]!);
    }
  };
}
