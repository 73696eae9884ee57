import { describe, expect, it } from 'vitest';
import { ConfCache } from '../../src/conf-cache.js';
import type { CompiledChain } from '../../src/plugin-registry.js';
import pino from 'pino';

const logger = pino({ level: 'silent' });
const chain = (): CompiledChain => ({
  entries: [],
  skipped: [],
  fatal: undefined,
  hasRequestPlugins: false,
  hasResponsePlugins: false,
  context: { routeKey: 'k', logger },
});

describe('ConfCache', () => {
  it('gives the same key the same token while it lives, and a new one after expiry', () => {
    let now = 0;
    const cache = new ConfCache({ ttlMs: 1000, maxEntries: 10, now: () => now });
    const a = cache.put('route#1', chain());
    expect(cache.refresh('route#1')?.token).toBe(a.token);
    now = 999;
    expect(cache.get(a.token)).toBeDefined();
    now = 2000; // refresh at 0 extended to 1000; 999 did not refresh (get does not)
    expect(cache.get(a.token)).toBeUndefined();
    expect(cache.refresh('route#1')).toBeUndefined();
    const b = cache.put('route#1', chain());
    expect(b.token).not.toBe(a.token);
  });

  it('a PrepareConf (refresh) extends the life of a conf', () => {
    let now = 0;
    const cache = new ConfCache({ ttlMs: 1000, maxEntries: 10, now: () => now });
    const a = cache.put('k', chain());
    now = 900;
    cache.refresh('k');
    now = 1500;
    expect(cache.get(a.token)?.key).toBe('k');
  });

  it('never hands out token 0 and gives different keys different tokens', () => {
    const cache = new ConfCache({ ttlMs: 1000, maxEntries: 100 });
    const tokens = new Set<number>();
    for (let i = 0; i < 50; i++) tokens.add(cache.put(`k${i}`, chain()).token);
    expect(tokens.size).toBe(50);
    expect(tokens.has(0)).toBe(false);
  });

  it('starts its tokens at a random point, so a restarted runner does not reuse the old process\'s tokens', () => {
    const firsts = new Set<number>();
    for (let i = 0; i < 5; i++) firsts.add(new ConfCache({ ttlMs: 1000, maxEntries: 10 }).put('k', chain()).token);
    expect(firsts.size).toBeGreaterThan(1);
  });

  it('keyless confs are never shared', () => {
    const cache = new ConfCache({ ttlMs: 1000, maxEntries: 100 });
    expect(cache.put('', chain()).token).not.toBe(cache.put('', chain()).token);
    expect(cache.refresh('')).toBeUndefined();
  });

  it('evicts the least recently prepared conf beyond maxEntries and reports every eviction', () => {
    const evicted: string[] = [];
    const cache = new ConfCache({ ttlMs: 60_000, maxEntries: 3, onEvict: (_c, key) => evicted.push(key) });
    const first = cache.put('a', chain());
    cache.put('b', chain());
    cache.put('c', chain());
    cache.refresh('a');
    cache.put('d', chain());
    expect(evicted).toEqual(['b']);
    expect(cache.size).toBe(3);
    expect(cache.get(first.token)).toBeDefined();
    cache.clear();
    expect(evicted.sort()).toEqual(['a', 'b', 'c', 'd']);
  });

  it('sweep drops expired entries without a lookup', () => {
    let now = 0;
    const evicted: string[] = [];
    const cache = new ConfCache({ ttlMs: 100, maxEntries: 1000, now: () => now, onEvict: (_c, k) => evicted.push(k) });
    for (let i = 0; i < 10; i++) cache.put(`k${i}`, chain());
    now = 50;
    cache.put('late', chain());
    now = 120;
    expect(cache.sweep()).toBe(10);
    expect(cache.size).toBe(1);
    expect(evicted).toHaveLength(10);
  });
});
