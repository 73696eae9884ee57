import { describe, expect, it } from 'vitest';
import { PendingPairs, type DropReason } from '../../src/mirror-compare/pending-pairs.js';
import { NoiseLearner } from '../../src/mirror-compare/noise-learner.js';
import { fieldPattern, pathPattern } from '../../src/mirror-compare/path-pattern.js';

function store(limits: { maxCount: number; maxBytes: number; maxAgeMs: number }) {
  let now = 0;
  const dropped: [string, DropReason][] = [];
  const s = new PendingPairs<string>(limits, () => now, (k, _v, r) => dropped.push([k, r]));
  return { s, dropped, advance: (ms: number) => (now += ms) };
}

describe('PendingPairs', () => {
  it('entries expire at max age, lazily on lookup and add, and on sweep', () => {
    const { s, dropped, advance } = store({ maxCount: 10, maxBytes: 1e6, maxAgeMs: 100 });
    s.add('a', 'A', 10);
    advance(50);
    s.add('b', 'B', 10);
    advance(49);
    expect(s.get('a')).toBe('A');
    advance(1);
    expect(s.get('a')).toBeUndefined();
    expect(dropped).toEqual([['a', 'expired']]);
    expect(s.get('b')).toBe('B');
    advance(50);
    expect(s.sweep()).toBe(1);
    expect(dropped).toEqual([['a', 'expired'], ['b', 'expired']]);
    expect([s.size, s.bytes]).toEqual([0, 0]);
  });

  it('the oldest entries give way to the count cap and the byte cap', () => {
    const { s, dropped } = store({ maxCount: 3, maxBytes: 100, maxAgeMs: 1e9 });
    for (const k of ['a', 'b', 'c', 'd']) s.add(k, k, 10);
    expect(dropped).toEqual([['a', 'evicted']]);
    s.resize('c', 85);
    expect(dropped).toEqual([['a', 'evicted'], ['b', 'evicted']]);
    expect([s.size, s.bytes]).toEqual([2, 95]);
    s.add('big', 'x', 500);
    expect(dropped.slice(-3)).toEqual([['c', 'evicted'], ['d', 'evicted'], ['big', 'evicted']]);
    expect([s.size, s.bytes]).toEqual([0, 0]);
  });

  it('delete removes without the drop callback and frees its bytes', () => {
    const { s, dropped } = store({ maxCount: 3, maxBytes: 100, maxAgeMs: 1e9 });
    s.add('a', 'A', 40);
    expect(s.delete('a')).toBe('A');
    expect([s.size, s.bytes, dropped.length]).toEqual([0, 0, 0]);
    expect(() => {
      s.add('b', 'B', 1);
      s.add('b', 'B', 1);
    }).toThrow(/already present/);
  });
});

describe('path and field patterns', () => {
  it('collapses id-like segments and drops the query', () => {
    expect(pathPattern('/users/42/orders/7?x=1')).toBe('/users/:id/orders/:id');
    expect(pathPattern('/u/3f2a1b2c-1d2e-4f5a-8b9c-0d1e2f3a4b5c')).toBe('/u/:id');
    expect(pathPattern('/blob/0123456789abcdef0123')).toBe('/blob/:id');
    expect(pathPattern('/t/AbCdEfGhIjKlMnOpQr5tUv')).toBe('/t/:id');
    expect(pathPattern('/api/v2/status')).toBe('/api/v2/status');
    expect(pathPattern('/' + 'a'.repeat(400)).length).toBeLessThanOrEqual(257);
  });
  it('array positions in JSON fields become *', () => {
    expect(fieldPattern('body:/items/3/ts')).toBe('body:/items/*/ts');
    expect(fieldPattern('body:/10')).toBe('body:/*');
    expect(fieldPattern('header:x-1')).toBe('header:x-1');
  });
});

describe('NoiseLearner', () => {
  it('trusts a field only after the minimum sample and at the minimum rate', () => {
    const n = new NoiseLearner();
    for (let i = 0; i < 9; i++) n.observe('r', 'GET /a', ['body:/ts']);
    expect(n.isNoise('r', 'GET /a', 'body:/ts', 10, 0.5)).toBe(false);
    n.observe('r', 'GET /a', []);
    expect(n.isNoise('r', 'GET /a', 'body:/ts', 10, 0.5)).toBe(true);
    expect(n.isNoise('r', 'GET /a', 'body:/ts', 10, 0.95)).toBe(false);
    expect(n.isNoise('r', 'GET /b', 'body:/ts', 10, 0.5)).toBe(false);
    expect(n.isNoise('other', 'GET /a', 'body:/ts', 10, 0.5)).toBe(false);
    expect(n.fieldsOf('r', 10, 0.5)).toEqual([{ route: 'r', pattern: 'GET /a', field: 'body:/ts', differed: 9, samples: 10, trusted: true }]);
  });

  it('learns array fields by pattern and stays bounded in patterns and fields', () => {
    const n = new NoiseLearner(2, 3);
    n.observe('r', 'p1', ['body:/items/0/ts', 'body:/items/1/ts']);
    expect(n.isNoise('r', 'p1', 'body:/items/7/ts', 1, 1)).toBe(true);
    n.observe('r', 'p1', ['f1', 'f2', 'f3', 'f4']);
    expect(n.fieldsOf('r', 1, 0.1).map((f) => f.field).sort()).toEqual(['body:/items/*/ts', 'f1', 'f2']);
    n.observe('r', 'p2', []);
    n.observe('r', 'p3', ['x']);
    expect(n.fieldsOf('r', 1, 0.1).some((f) => f.pattern === 'p3')).toBe(false);
  });
});
