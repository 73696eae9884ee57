/**
 * The worker pool's table of unanswered requests (pending-table.ts): ids are slots reused once
 * freed, an outcome for a free or unknown id is recognisable, and a crash empties the table
 * with every waiting request handed back once.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { PendingTable } from '../../src/mirror-dispatch/pending-table.js';
import type { DoneCallback } from '../../src/mirror-dispatch/http-node.js';

const noop: DoneCallback = () => undefined;

describe('PendingTable', () => {
  it('gives small ids, knows which wait, reuses a freed id, and never hands out an id still waiting', () => {
    const t = new PendingTable();
    const a = t.add(noop, undefined, 'n1', true);
    const b = t.add(noop, undefined, 'n2', false);
    expect([a, b]).toEqual([0, 1]);
    expect(t.has(a) && t.has(b)).toBe(true);
    expect(t.has(2)).toBe(false);
    expect([t.isRing(a), t.isRing(b), t.node(b)]).toEqual([true, false, 'n2']);
    t.markRing(b);
    expect(t.isRing(b)).toBe(true);
    t.release(a);
    expect(t.has(a)).toBe(false);
    expect(t.size).toBe(1);
    expect(t.add(noop, undefined, 'n3', false)).toBe(a);
    expect(t.node(a)).toBe('n3');
  });

  it('matches a model under any sequence of adds and releases', () => {
    fc.assert(fc.property(fc.array(fc.oneof(fc.constant<'add'>('add'), fc.nat(50)), { maxLength: 300 }), (ops) => {
      const t = new PendingTable();
      const model = new Map<number, string>();
      let n = 0;
      for (const op of ops) {
        if (op === 'add') {
          const label = `n${n++}`;
          const id = t.add(noop, undefined, label, n % 2 === 0);
          expect(model.has(id)).toBe(false);
          model.set(id, label);
        } else if (t.has(op)) {
          expect(model.get(op)).toBe(t.node(op));
          t.release(op);
          model.delete(op);
        } else {
          expect(model.has(op)).toBe(false);
        }
        expect(t.size).toBe(model.size);
      }
      // Ids stay below the most ever waiting at once plus one.
      for (const id of model.keys()) expect(id).toBeLessThanOrEqual(ops.length);
    }));
  });

  it('clear hands back every waiting request once, with its sink, and starts over from id 0', () => {
    const t = new PendingTable();
    const seen: string[] = [];
    const done = (name: string): DoneCallback => () => { seen.push(name); };
    const sink = { maxBodyBytes: 1, onResponse: () => undefined, onFailure: () => undefined };
    t.add(done('a'), undefined, 'n', true);
    const b = t.add(done('b'), sink, 'n', false);
    t.add(done('c'), undefined, 'n', true);
    t.release(b);
    const lost = t.clear();
    for (const p of lost) p.done('error', 'X', 'x');
    expect(seen).toEqual(['a', 'c']);
    expect(lost.map((p) => p.sink)).toEqual([undefined, undefined]);
    expect(t.size).toBe(0);
    expect(t.has(0)).toBe(false);
    expect(t.add(noop, sink, 'n', false)).toBe(0);
    expect(t.sink(0)).toBe(sink);
  });
});
