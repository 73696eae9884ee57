/**
 * The rate-limited problem log (README: "at most one every 10 s", "error, rate-limited"),
 * driven by an injected clock: one line per key per interval, the next line carries the count
 * held back, keys are independent, and the number of keys remembered is bounded.
 */
import { describe, expect, it } from 'vitest';
import { RateLimitedLog } from '../../src/observability/rate-limited-log.js';

function logAt(intervalMs = 10_000, maxKeys?: number) {
  const clock = { t: 0 };
  const log = new RateLimitedLog(intervalMs, () => clock.t, maxKeys);
  const emitted: Array<[string, number]> = [];
  const maybe = (key: string): boolean => log.maybe(key, (suppressed) => emitted.push([key, suppressed]));
  return { clock, maybe, emitted };
}

describe('RateLimitedLog', () => {
  it('the default interval is 10 s: one line, then none until exactly 10 s later', () => {
    const clock = { t: 1_000 };
    const log = new RateLimitedLog(undefined, () => clock.t);
    const emitted: number[] = [];
    const maybe = (): boolean => log.maybe('k', (s) => emitted.push(s));
    expect(maybe()).toBe(true);
    clock.t = 10_999;
    expect(maybe()).toBe(false);
    clock.t = 11_000;
    expect(maybe()).toBe(true);
    expect(emitted).toEqual([0, 1]);
  });

  it('the next line says how many were held back, and the count starts again after it', () => {
    const { clock, maybe, emitted } = logAt(1000);
    for (let i = 0; i < 7; i++) maybe('dead-target');
    clock.t = 1000;
    maybe('dead-target');
    clock.t = 1500;
    maybe('dead-target');
    clock.t = 2000;
    maybe('dead-target');
    expect(emitted).toEqual([['dead-target', 0], ['dead-target', 6], ['dead-target', 1]]);
  });

  it('the interval runs from the last line written, not from the last attempt', () => {
    const { clock, maybe, emitted } = logAt(1000);
    maybe('k');
    for (clock.t = 100; clock.t < 1000; clock.t += 100) maybe('k');
    clock.t = 1000;
    expect(maybe('k')).toBe(true);
    expect(emitted).toEqual([['k', 0], ['k', 9]]);
  });

  it('keys are limited independently', () => {
    const { maybe, emitted } = logAt();
    expect([maybe('a'), maybe('b'), maybe('a'), maybe('b'), maybe('c')]).toEqual([true, true, false, false, true]);
    expect(emitted.map(([k]) => k)).toEqual(['a', 'b', 'c']);
  });

  it('remembers at most maxKeys keys, forgetting the least recently logged', () => {
    const { maybe, emitted } = logAt(10_000, 2);
    maybe('a');
    maybe('b');
    maybe('c'); // a third key: a, the oldest, is forgotten
    expect(maybe('b')).toBe(false);
    expect(maybe('a')).toBe(true); // forgotten, so written again; b is now the oldest and forgotten
    expect(maybe('c')).toBe(false);
    expect(maybe('b')).toBe(true);
    expect(emitted.map(([k]) => k)).toEqual(['a', 'b', 'c', 'a', 'b']);
  });
});
