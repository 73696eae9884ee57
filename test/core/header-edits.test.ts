/**
 * EntryEdits and its helpers (src/server/header-edits.ts), the bookkeeping behind every
 * plugin's header, arg and response-header edits: case rules, deletion vs no edit, the merged
 * view a later plugin reads, and the wire entries the reply carries.
 */
import { describe, expect, it } from 'vitest';
import { EntryEdits, allValues, firstValue, headerInitEntries, toBytes } from '../../src/server/header-edits.js';

const original = [
  { name: 'Host', value: 'h' },
  { name: 'x-multi', value: 'a' },
  { name: 'X-Multi', value: 'b' },
  { name: 'flag', value: undefined },
  { name: 'keep', value: 'k' },
];

describe('reading original entries', () => {
  it('case-insensitive (headers): first and all values of a name in any case; valueless reads as ""', () => {
    expect(firstValue(original, 'X-MULTI', true)).toBe('a');
    expect(allValues(original, 'x-multi', true)).toEqual(['a', 'b']);
    expect(firstValue(original, 'flag', true)).toBe('');
    expect(allValues(original, 'FLAG', true)).toEqual(['']);
    expect(firstValue(original, 'absent', true)).toBeUndefined();
    expect(allValues(original, 'absent', true)).toEqual([]);
  });

  it('case-sensitive (args): only the exact name matches', () => {
    expect(firstValue(original, 'x-multi', false)).toBe('a');
    expect(allValues(original, 'X-Multi', false)).toEqual(['b']);
    expect(firstValue(original, 'host', false)).toBeUndefined();
    expect(allValues(original, 'HOST', false)).toEqual([]);
  });
});

describe('EntryEdits', () => {
  it('starts empty: no edits, reads fall through to the original, apply returns the original itself', () => {
    const e = new EntryEdits(true);
    expect(e.size).toBe(0);
    expect(e.get('host')).toBeUndefined();
    expect(e.first(original, 'host')).toBe('h');
    expect(e.all(original, 'x-multi')).toEqual(['a', 'b']);
    expect(e.apply(original)).toBe(original);
    expect(e.toEntries()).toEqual([]);
  });

  it('an edit replaces every original value of the name; a deletion (null) hides it', () => {
    const e = new EntryEdits(true);
    e.set('X-Multi', ['z1', 'z2']);
    e.set('host', null);
    expect(e.size).toBe(2);
    expect(e.get('x-multi')).toEqual(['z1', 'z2']);
    expect(e.first(original, 'x-MULTI')).toBe('z1');
    expect(e.all(original, 'x-multi')).toEqual(['z1', 'z2']);
    expect(e.get('HOST')).toBeNull();
    expect(e.first(original, 'host')).toBeUndefined();
    expect(e.all(original, 'Host')).toEqual([]);
    // all() hands out a copy: changing it does not change the edit.
    e.all(original, 'x-multi').push('z3');
    expect(e.get('x-multi')).toEqual(['z1', 'z2']);
  });

  it('apply drops edited names from their original places and appends the edits, in edit order, with the edit\'s spelling', () => {
    const e = new EntryEdits(true);
    e.set('keep', ['k2']);
    e.set('X-Multi', ['z']);
    e.set('host', null);
    e.set('new', []);
    expect(e.apply(original)).toEqual([
      { name: 'flag', value: undefined },
      { name: 'keep', value: 'k2' },
      { name: 'X-Multi', value: 'z' },
    ]);
  });

  it('the last edit of a name wins, whatever its case (headers), and keeps the latest spelling', () => {
    const e = new EntryEdits(true);
    e.set('x-a', ['1']);
    e.set('X-A', ['2']);
    expect(e.size).toBe(1);
    expect(e.toEntries()).toEqual([{ name: 'X-A', value: '2' }]);
  });

  it('case-sensitive edits (args) keep names that differ in case apart', () => {
    const e = new EntryEdits(false);
    e.set('a', ['1']);
    e.set('A', ['2']);
    expect(e.size).toBe(2);
    expect(e.first([], 'a')).toBe('1');
    expect(e.first([{ name: 'b', value: 'x' }], 'B')).toBeUndefined();
    expect(e.apply([{ name: 'a', value: 'old' }, { name: 'A', value: 'OLD' }, { name: 'b', value: 'x' }]))
      .toEqual([{ name: 'b', value: 'x' }, { name: 'a', value: '1' }, { name: 'A', value: '2' }]);
  });

  it('toEntries: one entry per value, and a valueless entry for a deletion (what APISIX reads as "remove")', () => {
    const e = new EntryEdits(true);
    e.set('x-multi', ['1', '2']);
    e.set('gone', null);
    e.set('empty', []);
    expect(e.toEntries()).toEqual([
      { name: 'x-multi', value: '1' }, { name: 'x-multi', value: '2' }, { name: 'gone', value: undefined },
    ]);
  });
});

describe('headerInitEntries and toBytes', () => {
  it('flattens strings and lists into entries, in order; nothing for undefined or {}', () => {
    expect(headerInitEntries({ a: '1', b: ['2', '3'], c: [] })).toEqual([
      { name: 'a', value: '1' }, { name: 'b', value: '2' }, { name: 'b', value: '3' },
    ]);
    expect(headerInitEntries(undefined)).toEqual([]);
    expect(headerInitEntries({})).toEqual([]);
  });

  it('encodes strings as UTF-8 and passes bytes through untouched', () => {
    expect([...toBytes('é')]).toEqual([0xc3, 0xa9]);
    const bytes = new Uint8Array([1, 2]);
    expect(toBytes(bytes)).toBe(bytes);
  });
});
