/**
 * How bench/run.mjs finds a runner's mirror worker thread to pin it (bench/children.mjs
 * `findWorkerThreads`): on a real child process with a real worker thread and libuv pool
 * threads, checked against the tid the worker reads for itself from /proc/thread-self.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));
const hasProcTasks = existsSync(`/proc/${process.pid}/task`);
const hasTaskset = spawnSync('taskset', ['-p', String(process.pid)]).status === 0;

interface Found { found: { tid: number; cpuUs: number }[]; pinned: boolean[]; affinity: (string | null)[] }

/** Resolves with the first stdout line of `child` that matches `re`, or rejects after `ms`. */
function lineMatching(child: ChildProcess, re: RegExp, ms = 20_000): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`no line matching ${re} within ${ms} ms: ${out}`)), ms);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = re.exec(out);
      if (m) { clearTimeout(timer); resolve(m); }
    });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`child exited (${code}): ${out}`)); });
  });
}

function find(pid: number, baseline: number[], count: number, core?: number): Found {
  const args = [FIXTURES + 'find-workers.mjs', String(pid), baseline.join(','), String(count), ...(core === undefined ? [] : [String(core)])];
  const r = spawnSync(process.execPath, args, { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Found;
}

describe.skipIf(!hasProcTasks)('finding a runner\'s mirror worker thread', () => {
  let child: ChildProcess | undefined;
  afterEach(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      const c = child;
      await new Promise<void>((r) => { c.once('exit', () => r()); c.kill('SIGTERM'); });
    }
    child = undefined;
  });

  /** Starts the fixture, lists its threads, then has it start its worker; returns the ground truth. */
  async function startBusyWorker(): Promise<{ pid: number; baseline: number[]; workerTid: number }> {
    const c = spawn(process.execPath, [FIXTURES + 'busy-worker.mjs'], { stdio: ['pipe', 'pipe', 'inherit'] });
    child = c;
    await lineMatching(c, /ready\n/);
    const pid = c.pid!;
    const baseline = readdirSync(`/proc/${pid}/task`).map(Number);
    const workerLine = lineMatching(c, /worker (\d+)\n/);
    c.stdin!.write('start\n');
    return { pid, baseline, workerTid: Number((await workerLine)[1]) };
  }

  it('picks the new busy thread (the worker), not the threads that existed before nor the idle pool threads', async () => {
    const { pid, baseline, workerTid } = await startBusyWorker();
    expect(baseline).not.toContain(workerTid);

    const { found } = find(pid, baseline, 1);
    expect(found.map((t) => t.tid)).toEqual([workerTid]);
    // Nothing that existed before the workers started is ever a candidate.
    const all = find(pid, baseline, 64).found.map((t) => t.tid);
    expect(all).toContain(workerTid);
    for (const tid of all) expect(baseline).not.toContain(tid);
  });

  it.skipIf(!hasTaskset)('moves the thread it found to the given core, and only that thread', async () => {
    const { pid, baseline, workerTid } = await startBusyWorker();
    const mainBefore = spawnSync('taskset', ['-p', '-c', String(pid)], { encoding: 'utf8' }).stdout;

    const r = find(pid, baseline, 1, 0);
    expect(r.found.map((t) => t.tid)).toEqual([workerTid]);
    expect(r.pinned).toEqual([true]);
    expect(r.affinity).toEqual(['0']);
    // The process's main thread keeps its own affinity.
    expect(spawnSync('taskset', ['-p', '-c', String(pid)], { encoding: 'utf8' }).stdout).toBe(mainBefore);
  });
});
