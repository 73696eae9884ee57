/** When a batch of copies is handed on: at the end of the turn when full, else after the delay. */
import { describe, it, expect, vi, afterEach } from 'vitest';
import { BatchFlush } from '../../src/mirror-dispatch/batch-flush.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('BatchFlush', () => {
  it('holds a batch that is not full for the delay, then hands it on once', () => {
    vi.useFakeTimers();
    let flushed = 0;
    const f = new BatchFlush(() => { flushed++; }, 5, 8);
    f.added(1);
    f.added(2);
    expect(f.pending).toBe(true);
    vi.advanceTimersByTime(4);
    expect(flushed).toBe(0);
    vi.advanceTimersByTime(1);
    expect(flushed).toBe(1);
    expect(f.pending).toBe(false);
  });

  it('hands a full batch on at the end of the turn, not after the delay', () => {
    vi.useFakeTimers();
    let flushed = 0;
    const f = new BatchFlush(() => { flushed++; }, 1000, 3);
    f.added(1);
    f.added(2);
    f.added(3);
    vi.runAllTicks();
    vi.advanceTimersToNextTimer(); // the immediate
    expect(flushed).toBe(1);
    vi.advanceTimersByTime(2000); // the cleared delay timer does not fire a second time
    expect(flushed).toBe(1);
  });

  it('with no delay, hands every batch on at the end of its turn', () => {
    vi.useFakeTimers();
    let flushed = 0;
    const f = new BatchFlush(() => { flushed++; }, 0, 100);
    f.added(1);
    f.added(2);
    vi.advanceTimersToNextTimer();
    expect(flushed).toBe(1);
  });

  it('now() hands the batch on at once; cancel() drops the schedule', () => {
    vi.useFakeTimers();
    let flushed = 0;
    const f = new BatchFlush(() => { flushed++; }, 5, 8);
    f.added(1);
    f.now();
    expect(flushed).toBe(1);
    vi.advanceTimersByTime(10);
    expect(flushed).toBe(1);
    f.added(1);
    f.cancel();
    vi.advanceTimersByTime(10);
    expect(flushed).toBe(1);
  });
});
