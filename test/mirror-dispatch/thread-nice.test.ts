/**
 * Mirror worker threads run below the RPC thread's priority on Linux (mirror_thread_nice): each
 * real worker thread sets its own nice value, read back from /proc, and the RPC thread's is left
 * alone. Other platforms set nothing (a nice value there is the whole process's).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CircuitBreaker } from '../../src/mirror-dispatch/circuit-breaker.js';
import { DispatchThreads } from '../../src/mirror-dispatch/thread-pool.js';
import { localTargetSpec } from './target-spec.js';
import { RecordingTarget, call, expectOk, mirrorRoute, startMirrorRunner } from '../plugins/proxy-mirror/fixtures.js';

/** Nice value of each thread of this process, by thread id (field 19 of /proc/<pid>/task/<tid>/stat). */
function niceByThread(): Map<number, number> {
  const out = new Map<number, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    } catch {
      continue; // the thread ended meanwhile
    }
    // After "pid (comm) ": field 3 (state) onwards; the comm may hold spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    out.set(Number(tid), Number(fields[19 - 3]));
  }
  return out;
}

/**
 * Starts a pool's worker (workers start with the first node) and waits for a copy's outcome
 * from it (a refused port): the worker's module, which sets the nice value first, has run.
 * Returns the threads that appeared with it.
 */
async function startPool(nice: number): Promise<{ threads: DispatchThreads; fresh: Map<number, number> }> {
  const before = new Set(niceByThread().keys());
  const threads = new DispatchThreads(1, () => undefined, undefined, nice);
  const spec = localTargetSpec(9);
  const node = threads.createNode(spec.nodes[0]!, spec, new CircuitBreaker(spec.breaker, () => performance.now(), Math.random), undefined);
  const outcome = await new Promise<string>((r) => node.send({ method: 'GET', uri: '/', headers: [['host', 'h']], body: undefined, sizeBytes: 0 }, undefined, (o) => r(o)));
  expect(outcome).toBe('error');
  const fresh = new Map([...niceByThread()].filter(([tid]) => !before.has(tid)));
  return { threads, fresh };
}

describe.skipIf(process.platform !== 'linux')('mirror worker thread priority (Linux: nice values are per thread)', () => {
  it('a worker started with nice 10 runs at nice 10; the RPC thread stays at its own', async () => {
    const own = niceByThread().get(process.pid)!;
    const { threads, fresh } = await startPool(10);
    try {
      // Exactly one thread of this process lowered itself: the worker (it has one thread).
      const niced = [...fresh].filter(([, n]) => n === 10).map(([tid]) => tid);
      expect(niced).toHaveLength(1);
      expect(niced[0]).not.toBe(process.pid);
      expect(niceByThread().get(process.pid)).toBe(own);
    } finally {
      await threads.close();
    }
  });

  it('a worker started with nice 0 keeps the process\'s priority', async () => {
    const own = niceByThread().get(process.pid)!;
    const { threads, fresh } = await startPool(0);
    try {
      expect(fresh.size).toBeGreaterThan(0);
      expect([...fresh.values()].every((n) => n === own)).toBe(true);
    } finally {
      await threads.close();
    }
  });

  it('the runner setting reaches the workers: mirror_thread_nice 7 with mirror_threads 2', async () => {
    const before = new Set(niceByThread().keys());
    const target = await RecordingTarget.start('ok');
    const mr = await startMirrorRunner({ now: () => 0, settings: { mirror_threads: 2, mirror_thread_nice: 7 } });
    try {
      expectOk(await mr.client.httpReqCall(mirrorRoute('route#nice#x#1', { host: target.url }), call()));
      // The copy arrived: the worker that sent it has run its module.
      await target.waitFor(1);
      const fresh = [...niceByThread()].filter(([tid]) => !before.has(tid));
      expect(fresh.filter(([, n]) => n === 7)).toHaveLength(1);
    } finally {
      await mr.close();
      await target.close();
    }
  });
});
