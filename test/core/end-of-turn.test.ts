/** Work deferred to the end of the event-loop turn (src/end-of-turn.ts). */
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { atEndOfTurn } from '../../src/end-of-turn.js';

const nextTurn = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('atEndOfTurn', () => {
  it('runs nothing at once, then everything asked for in this turn, in order', async () => {
    const ran: string[] = [];
    atEndOfTurn(() => ran.push('a'));
    atEndOfTurn(() => ran.push('b'));
    atEndOfTurn(() => ran.push('c'));
    expect(ran).toEqual([]);
    await nextTurn();
    expect(ran).toEqual(['a', 'b', 'c']);
  });

  it('work asked for while the list runs joins this check phase, ahead of an immediate set before it', async () => {
    const ran: string[] = [];
    atEndOfTurn(() => {
      ran.push('a');
      // A bare setImmediate from here waits for the next turn (behind a poll);
      // atEndOfTurn's work runs in this one, so it comes first although asked for later.
      setImmediate(() => ran.push('immediate'));
      atEndOfTurn(() => ran.push('joined'));
    });
    atEndOfTurn(() => ran.push('b'));
    await new Promise<void>((r) => setTimeout(r, 5));
    expect(ran).toEqual(['a', 'b', 'joined', 'immediate']);
  });

  it('a throwing callback propagates as from setImmediate, and the rest still runs, in the next turn', () => {
    // In a child process: the error is uncaught there by design.
    const module = resolve(import.meta.dirname, '../../src/end-of-turn.ts');
    const script = `
      const { atEndOfTurn } = await import(${JSON.stringify(module)});
      const ran = [];
      process.on('uncaughtException', (err) => ran.push('uncaught:' + err.message));
      atEndOfTurn(() => ran.push('a'));
      atEndOfTurn(() => { throw new Error('boom'); });
      atEndOfTurn(() => ran.push('c'));
      atEndOfTurn(() => ran.push('d'));
      setTimeout(() => {
        atEndOfTurn(() => ran.push('later'));
        setTimeout(() => console.log(JSON.stringify(ran)), 5);
      }, 5);
    `;
    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
    expect(child.stderr).toBe('');
    expect(JSON.parse(child.stdout)).toEqual(['a', 'uncaught:boom', 'c', 'd', 'later']);
  });
});
