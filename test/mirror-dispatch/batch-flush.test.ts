/** A batch of copies is handed on once per event-loop turn, however many copies joined it. */
import { describe, it, expect } from 'vitest';
import { BatchFlush } from '../../src/mirror-dispatch/batch-flush.js';

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('BatchFlush', () => {
  it('hands the copies of one turn on once, at the end of that turn', async () => {
    let flushed = 0;
    const f = new BatchFlush(() => { flushed++; });
    f.added();
    f.added();
    f.added();
    expect(f.pending).toBe(true);
    expect(flushed).toBe(0);
    await turn();
    expect(flushed).toBe(1);
    expect(f.pending).toBe(false);
    f.added();
    await turn();
    expect(flushed).toBe(2);
  });

  it('now() hands the batch on at once and cancel() drops the schedule', async () => {
    let flushed = 0;
    const f = new BatchFlush(() => { flushed++; });
    f.added();
    f.now();
    expect(flushed).toBe(1);
    await turn();
    expect(flushed).toBe(1);
    f.added();
    f.cancel();
    await turn();
    expect(flushed).toBe(1);
  });
});
