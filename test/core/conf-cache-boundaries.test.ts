/**
 * ConfCache at its boundaries: expiry at exactly the TTL, refresh of an expired entry that no
 * sweep removed yet, token wrap-around at 2^32 - 1 (never 0), and keyless confs (each in its
 * own slot for expiry, eviction and clearing). Found untested by mutation testing.
 */
import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { ConfCache } from '../../src/conf-cache.js';
import type { CompiledChain } from '../../src/plugin-registry.js';

const logger = pino({ level: 'silent' });
const chain = (routeKey = 'k'): CompiledChain => ({
  entries: [],
  skipped: [],
  fatal: undefined,
  hasRequestPlugins: false,
  hasResponsePlugins: false,
  context: { routeKey, logger },
});

function cacheAt(opts: { ttlMs?: number; maxEntries?: number; firstToken?: number } = {}) {
  const clock = { now: 0 };
  const evicted: string[] = [];
  const cache = new ConfCache({
    ttlMs: opts.ttlMs ?? 1000,
    maxEntries: opts.maxEntries ?? 100,
    now: () => clock.now,
    onEvict: (c, key) => evicted.push(key === '' ? `(keyless ${c.context.routeKey})` : key),
    ...(opts.firstToken === undefined ? {} : { firstToken: opts.firstToken }),
  });
  return { cache, clock, evicted };
}

describe('ConfCache expiry at exactly the TTL', () => {
  it('an entry lives until ttl - 1 and is gone at ttl (get)', () => {
    const { cache, clock, evicted } = cacheAt();
    const a = cache.put('a', chain());
    clock.now = 999;
    expect(cache.get(a.token)?.key).toBe('a');
    clock.now = 1000;
    expect(cache.get(a.token)).toBeUndefined();
    expect(cache.size).toBe(0);
    expect(evicted).toEqual(['a']);
  });

  it('refresh at exactly the TTL does not revive the entry: it is removed and its token unknown', () => {
    const { cache, clock, evicted } = cacheAt();
    const a = cache.put('a', chain());
    clock.now = 1000;
    expect(cache.refresh('a')).toBeUndefined();
    expect(evicted).toEqual(['a']);
    expect(cache.size).toBe(0);
    clock.now = 1001;
    expect(cache.get(a.token)).toBeUndefined();
  });

  it('refresh one ms before the TTL extends it by a full TTL from now, and moves it last in expiry order', () => {
    const { cache, clock, evicted } = cacheAt();
    const a = cache.put('a', chain());
    clock.now = 10;
    const b = cache.put('b', chain());
    clock.now = 999;
    expect(cache.refresh('a')?.token).toBe(a.token);
    clock.now = 1998;
    // b expired at 1010; a lives until 1999. The sweep goes in expiry order: b first, then stops at a.
    expect(cache.sweep()).toBe(1);
    expect(evicted).toEqual(['b']);
    expect(cache.get(b.token)).toBeUndefined();
    expect(cache.get(a.token)?.expiresAt).toBe(1999);
    clock.now = 1999;
    expect(cache.get(a.token)).toBeUndefined();
  });

  it('sweep removes an entry at exactly its expiry and counts only what it removed', () => {
    const { cache, clock } = cacheAt({ ttlMs: 100 });
    cache.put('a', chain());
    clock.now = 1;
    cache.put('b', chain());
    clock.now = 100;
    expect(cache.sweep()).toBe(1);
    expect(cache.size).toBe(1);
    expect(cache.sweep()).toBe(0);
    clock.now = 101;
    expect(cache.sweep()).toBe(1);
    expect(cache.size).toBe(0);
  });

  it('put sweeps expired entries first, so they do not count against maxEntries', () => {
    const { cache, clock, evicted } = cacheAt({ ttlMs: 100, maxEntries: 2 });
    cache.put('old1', chain());
    cache.put('old2', chain());
    clock.now = 100;
    const fresh = cache.put('fresh', chain());
    expect(evicted).toEqual(['old1', 'old2']);
    expect(cache.size).toBe(1);
    expect(cache.get(fresh.token)?.key).toBe('fresh');
  });

  it('re-putting a live key replaces its entry: the old token is unknown at once', () => {
    const { cache, evicted } = cacheAt();
    const a1 = cache.put('a', chain());
    const a2 = cache.put('a', chain());
    expect(a2.token).not.toBe(a1.token);
    expect(cache.get(a1.token)).toBeUndefined();
    expect(cache.get(a2.token)?.key).toBe('a');
    expect(cache.size).toBe(1);
    expect(evicted).toEqual(['a']);
  });
});

describe('ConfCache tokens', () => {
  it('wraps from 2^32 - 1 to 1, never giving 0', () => {
    const { cache } = cacheAt({ firstToken: 0xfffffffe });
    expect([0, 1, 2, 3].map((i) => cache.put(`k${i}`, chain()).token)).toEqual([0xfffffffe, 0xffffffff, 1, 2]);
  });

  it('starts at the injected first token', () => {
    expect(cacheAt({ firstToken: 1 }).cache.put('a', chain()).token).toBe(1);
    expect(cacheAt({ firstToken: 0xffffffff }).cache.put('a', chain()).token).toBe(0xffffffff);
  });

  it('refuses a first token outside [1, 2^32 - 1]', () => {
    for (const bad of [0, -1, 0x1_0000_0000, 1.5, Number.NaN]) {
      expect(() => cacheAt({ firstToken: bad }), String(bad)).toThrow(/firstToken must be an integer in \[1, 4294967295\]/);
    }
  });

  it('a random first token is in [1, 2^32 - 1]', () => {
    for (let i = 0; i < 200; i++) {
      const t = new ConfCache({ ttlMs: 1000, maxEntries: 1 }).put('k', chain()).token;
      expect(t).toBeGreaterThanOrEqual(1);
      expect(t).toBeLessThanOrEqual(0xffffffff);
      expect(Number.isInteger(t)).toBe(true);
    }
  });
});

describe('ConfCache keyless confs (PrepareConf without a key)', () => {
  it('each keyless conf expires on its own, in preparation order', () => {
    const { cache, clock, evicted } = cacheAt({ ttlMs: 100 });
    const a = cache.put('', chain('a'));
    clock.now = 50;
    const b = cache.put('', chain('b'));
    clock.now = 100;
    expect(cache.sweep()).toBe(1);
    expect(evicted).toEqual(['(keyless a)']);
    expect(cache.get(a.token)).toBeUndefined();
    expect(cache.get(b.token)?.chain.context.routeKey).toBe('b');
    clock.now = 150;
    expect(cache.get(b.token)).toBeUndefined();
    expect(cache.size).toBe(0);
    // Nothing stale left behind for a later sweep to count.
    expect(cache.sweep()).toBe(0);
  });

  it('keyless confs are evicted oldest first beyond maxEntries, one at a time', () => {
    const { cache, evicted } = cacheAt({ maxEntries: 2 });
    const a = cache.put('', chain('a'));
    const b = cache.put('', chain('b'));
    const c = cache.put('', chain('c'));
    expect(evicted).toEqual(['(keyless a)']);
    expect(cache.get(a.token)).toBeUndefined();
    expect(cache.get(b.token)).toBeDefined();
    expect(cache.get(c.token)).toBeDefined();
    const d = cache.put('keyed', chain('d'));
    expect(evicted).toEqual(['(keyless a)', '(keyless b)']);
    expect(cache.get(c.token)).toBeDefined();
    expect(cache.get(d.token)).toBeDefined();
  });

  it('an expired keyless conf removed by get leaves no slot behind (eviction still finds the oldest live one)', () => {
    const { cache, clock, evicted } = cacheAt({ ttlMs: 100, maxEntries: 2 });
    const a = cache.put('', chain('a'));
    clock.now = 60;
    cache.put('', chain('b'));
    clock.now = 100;
    expect(cache.get(a.token)).toBeUndefined();
    cache.put('', chain('c'));
    cache.put('', chain('d'));
    expect(evicted).toEqual(['(keyless a)', '(keyless b)']);
    expect(cache.size).toBe(2);
  });

  it('clear removes keyed and keyless confs and reports each once', () => {
    const { cache, evicted } = cacheAt();
    const tokens = [cache.put('', chain('a')).token, cache.put('x', chain('x')).token, cache.put('', chain('b')).token];
    cache.clear();
    expect(evicted.sort()).toEqual(['(keyless a)', '(keyless b)', 'x']);
    expect(cache.size).toBe(0);
    for (const t of tokens) expect(cache.get(t)).toBeUndefined();
    expect(cache.sweep()).toBe(0);
  });

  it('a keyless conf is never found by refresh, and no key from the wire can reach or replace it', () => {
    const { cache, evicted } = cacheAt();
    const a = cache.put('', chain('a'));
    expect(cache.refresh('')).toBeUndefined();
    // Any string, even one that spells the token, is a different key.
    for (const key of [`\u0000${a.token}`, String(a.token)]) {
      expect(cache.refresh(key)).toBeUndefined();
      cache.put(key, chain(key));
    }
    expect(evicted).toEqual([]);
    expect(cache.get(a.token)?.chain.context.routeKey).toBe('a');
    expect(cache.size).toBe(3);
  });
});

describe('ConfCache bound edge', () => {
  it('a bound of 0 still holds the conf just prepared (it acts as 1) and never loops', () => {
    const { cache, evicted } = cacheAt({ maxEntries: 0 });
    const a = cache.put('a', chain());
    expect(cache.get(a.token)?.key).toBe('a');
    const b = cache.put('b', chain());
    expect(evicted).toEqual(['a']);
    expect(cache.get(b.token)?.key).toBe('b');
    expect(cache.size).toBe(1);
  });
});
