/**
 * Helpers shared by the bench scripts that run servers in child processes: start a small
 * Node server from source and learn its port, stop a child, find a free (or dead) port, read a
 * counter from a Prometheus text page, and find and pin a runner's mirror worker threads.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import net from 'node:net';
import { threadCpuMicros } from './loadgen.mjs';

/**
 * Runs `source` with `node -e` and resolves { child, url } once it prints `port N`.
 * The server runs in its own process so its work does not disturb the load generator's clock.
 */
export function startNodeServer(source, env = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', source], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = /port (\d+)/.exec(out);
      if (m) resolve({ child, url: `http://127.0.0.1:${m[1]}` });
    });
    child.once('exit', (code) => reject(new Error(`server child exited with ${code}`)));
  });
}

/**
 * Starts a runner whose metrics listener needs a fixed port (its config file names it). A port
 * that was free a moment ago may be taken by another process before the runner binds it; the
 * runner then serves RPCs without metrics and retries the port (its reload behaviour), and a
 * scrape would reach the other process. So once the socket is up, the port must answer with the
 * runner's metrics; if it does not, the runner is stopped and started on another free port, up
 * to `tries` times. `start(metricsPort)` writes the config and spawns the runner.
 * Resolves { runner, metricsPort }.
 */
export async function startWithMetricsPort(start, socketPath, tries = 3) {
  for (let t = 0; t < tries; t++) {
    const metricsPort = await freePort();
    const runner = start(metricsPort);
    const exited = () => runner.exitCode !== null || runner.signalCode !== null;
    for (let i = 0; i < 200 && !existsSync(socketPath) && !exited(); i++) await new Promise((r) => setTimeout(r, 25));
    if (!existsSync(socketPath) || exited()) {
      await stopChild(runner);
      throw new Error(`the runner did not create its socket (${exited() ? `exit ${runner.exitCode ?? runner.signalCode}` : 'within 5 s'})`);
    }
    if (await servesRunnerMetrics(metricsPort)) return { runner, metricsPort };
    await stopChild(runner);
  }
  throw new Error(`no free metrics port served the runner's metrics in ${tries} tries`);
}

/** Whether 127.0.0.1:port answers /metrics with the runner's metrics (a few tries, 1 s each). */
async function servesRunnerMetrics(port) {
  for (let i = 0; i < 5; i++) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(1000) });
      if ((await res.text()).includes('apisix_runner_')) return true;
    } catch {
      // Not listening yet, or someone else's server: try again.
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return false;
}

/** A port that was free a moment ago and has nobody listening (connections are refused). */
export async function freePort() {
  const s = net.createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

/** SIGTERMs a child and resolves with its exit code (at once when it has already exited). */
export function stopChild(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((r) => {
    child.once('exit', (code) => r(code));
    child.kill('SIGTERM');
  });
}

/** Sums the samples of a metric whose labels include all of `labels`. */
export function scrape(text, name, labels = {}) {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** Thread ids (tids) of a process now, from /proc/<pid>/task (empty when unreadable). */
export function threadIds(pid) {
  try {
    return readdirSync(`/proc/${pid}/task`).map(Number);
  } catch {
    return [];
  }
}

/**
 * The mirror worker threads of a runner, found without help from the runner: Node names every
 * thread `node`, so they are told apart by when they appeared and what they did. `baseline`
 * holds the tids seen once the runner listened (its main thread, V8's platform threads, the
 * inspector and signal threads), before any conf created a mirror target, which is when the
 * dispatch engine starts its workers. After mirrored load, the threads that are new since then
 * and used the most CPU are the workers (libuv's pool threads, if any appear, stay nearly idle).
 * Returns up to `count` of them, busiest first, with their CPU time in µs since they started.
 */
export function findWorkerThreads(pid, baseline, count) {
  const fresh = threadIds(pid).filter((tid) => !baseline.has(tid));
  return fresh
    .map((tid) => ({ tid, cpuUs: threadCpuMicros(pid, tid) ?? 0 }))
    .sort((a, b) => b.cpuUs - a.cpuUs)
    .slice(0, count);
}

/** Moves one thread to a core (`taskset -p -c <core> <tid>`); returns true when taskset succeeded. */
export function pinThread(tid, core) {
  return spawnSync('taskset', ['-p', '-c', String(core), String(tid)], { stdio: 'ignore' }).status === 0;
}

/** The cores a thread may run on, as taskset prints them (e.g. "1"), or undefined. */
export function threadAffinity(tid) {
  const r = spawnSync('taskset', ['-p', '-c', String(tid)], { encoding: 'utf8' });
  const m = /list: (\S+)/.exec(r.stdout ?? '');
  return r.status === 0 && m ? m[1] : undefined;
}

/**
 * The mirror's copy counters of one target from the runner's metrics page: sent, each terminal
 * outcome, and the skips (target_down among them). Undefined when the page cannot be read
 * in three tries.
 */
export async function mirrorCounters(metricsUrl, target) {
  let text;
  // A few tries: one refused or cut connection on a loaded machine must not lose a cell's counts.
  for (let attempt = 0; text === undefined && attempt < 3; attempt++) {
    try {
      const res = await fetch(metricsUrl);
      if (res.ok) text = await res.text();
    } catch {
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  if (text === undefined) return undefined;
  const outcome = (o) => scrape(text, 'apisix_runner_mirror_requests_total', { target, outcome: o });
  const counts = {};
  for (const o of ['sent', '2xx', '4xx', '5xx', 'timeout', 'error', 'dropped', 'skipped']) counts[o] = outcome(o);
  counts.targetDown = scrape(text, 'apisix_runner_mirror_skipped_total', { target, reason: 'target_down' });
  return counts;
}
