#!/usr/bin/env node
/**
 * CPU profile of the runner under load: starts `node --cpu-prof dist/cli.js` pinned to core 0,
 * drives it with bench/loadgen.mjs on core 1, stops it with SIGTERM (the profile is written
 * on exit) and prints the top self-time and inclusive-time functions.
 *
 *   node bench/profile.mjs [--case none|say|rewrite|mirror-decide|mirror-all] [--connections 32] [--duration 10]
 *                          [--rate R: paced, R calls/s in all] [--mirror-threads N]   (N > 1: the worker threads are moved to core 1 and profiled too)
 *   node bench/profile.mjs --analyze <file.cpuprofile>
 *   node bench/profile.mjs --perf ...    Linux `perf record` of the RPC thread instead (kernel time
 *                          included, which a V8 profile shows as idle or inside the native
 *                          function that made the syscall); JIT frames named by --perf-basic-prof.
 *                          Needs `perf` and perf_event_paranoid ≤ 1 (or root).
 *   node bench/profile.mjs --perf --perf-worker --mirror-threads 2 ...   the busiest mirror
 *                          worker thread instead of the RPC thread (per RPC, as for the RPC thread).
 * Output: .bench-out/prof/*.cpuprofile (open in Chrome DevTools) and .bench-out/profile-<case>.md.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { REPO_ROOT } from './protocol.mjs';
import { threadIds } from './children.mjs';
import { threadCpuMicros } from './loadgen.mjs';

const { values } = parseArgs({
  options: {
    case: { type: 'string', default: 'none' },
    connections: { type: 'string', default: '32' },
    duration: { type: 'string', default: '10' },
    analyze: { type: 'string' },
    top: { type: 'string', default: '25' },
    runner: { type: 'string', default: 'dist/cli.js' },
    'mirror-threads': { type: 'string', default: '1' },
    rate: { type: 'string' },
    perf: { type: 'boolean', default: false },
    'perf-worker': { type: 'boolean', default: false },
  },
});

const CONFS = {
  none: [],
  say: [{ name: 'say', value: JSON.stringify({ body: 'hello' }) }],
  rewrite: [{ name: 'rewrite', value: JSON.stringify({ path: '/anything', headers: { set: { 'x-bench': '1' } } }) }],
  'mirror-decide': [{ name: 'proxy-mirror', value: JSON.stringify({ host: 'http://127.0.0.1:9', sample_ratio: 0.00001 }) }],
  // SINK_PORT is replaced by the port of bench/sink-server.mjs, started for this case.
  // max_concurrency as in bench/run.mjs's mirror cells: no copy dropped at C = 32.
  'mirror-all': [{ name: 'proxy-mirror', value: JSON.stringify({ host: 'http://127.0.0.1:SINK_PORT', sample_ratio: 1, max_concurrency: 1024 }) }],
};

/** Starts bench/sink-server.mjs (core 1 when pinning works) and resolves { child, port }. */
function startSink(p) {
  const argv = p(1, [process.execPath, resolve(REPO_ROOT, 'bench/sink-server.mjs')]);
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((res, rej) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = /sink listening on (\d+)/.exec(out);
      if (m) res({ child, port: m[1] });
    });
    child.once('exit', (code) => rej(new Error(`sink exited with ${code}`)));
  });
}

/** Short name of a profile node's location. */
function where(cf) {
  let url = cf.url || '';
  if (url.startsWith('file://')) url = relative(REPO_ROOT, new URL(url).pathname);
  if (!url) return '(native)';
  return `${url}:${cf.lineNumber + 1}`;
}

/** Self and inclusive time per function of a .cpuprofile, as markdown. */
export function analyzeProfile(path, top) {
  const prof = JSON.parse(readFileSync(path, 'utf8'));
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const key = (n) => `${n.callFrame.functionName || '(anonymous)'}\t${where(n.callFrame)}`;
  const self = new Map();
  const incl = new Map();
  const byFile = new Map();
  let total = 0;
  let idle = 0;
  for (let i = 0; i < prof.samples.length; i++) {
    const dt = prof.timeDeltas[i + 1] ?? prof.timeDeltas[i] ?? 0;
    const node = byId.get(prof.samples[i]);
    if (!node) continue;
    total += dt;
    const name = node.callFrame.functionName;
    if (name === '(idle)') { idle += dt; continue; }
    const k = key(node);
    self.set(k, (self.get(k) ?? 0) + dt);
    const file = node.callFrame.url ? where({ ...node.callFrame, lineNumber: -1 }).replace(/:0$/, '') : `(${name || 'native'})`;
    byFile.set(file, (byFile.get(file) ?? 0) + dt);
    const seen = new Set();
    for (let id = node.id; id !== undefined; id = parent.get(id)) {
      const kk = key(byId.get(id));
      if (seen.has(kk)) continue;
      seen.add(kk);
      incl.set(kk, (incl.get(kk) ?? 0) + dt);
    }
  }
  const busy = total - idle;
  const pct = (t) => `${((100 * t) / busy).toFixed(1)}%`;
  const sorted = (m) => [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, top);
  const lines = [
    `Profile ${relative(REPO_ROOT, path)}: ${(total / 1e6).toFixed(1)} s sampled, ${(idle / 1e6).toFixed(1)} s idle; percentages are of the ${(busy / 1e6).toFixed(1)} s busy.`,
    '',
    '### Self time (top functions)',
    '| self | function | where |',
    '|--:|---|---|',
    ...sorted(self).map(([k, t]) => { const [fn, w] = k.split('\t'); return `| ${pct(t)} | \`${fn}\` | ${w} |`; }),
    '',
    '### Self time by file',
    '| self | file |',
    '|--:|---|',
    ...sorted(byFile).map(([f, t]) => `| ${pct(t)} | ${f} |`),
    '',
    '### Inclusive time (project code: src/ → dist/)',
    '| inclusive | function | where |',
    '|--:|---|---|',
    ...sorted(new Map([...incl].filter(([k]) => k.includes('dist/') || k.includes('bench/')))).map(([k, t]) => {
      const [fn, w] = k.split('\t');
      return `| ${pct(t)} | \`${fn}\` | ${w} |`;
    }),
  ];
  return lines.join('\n');
}

async function waitForSocket(path, child) {
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`runner exited (${child.exitCode})`);
    const ok = await new Promise((r) => {
      const s = net.connect(path);
      s.once('connect', () => { s.destroy(); r(true); });
      s.once('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('runner did not listen');
}

/** Moves every thread of pid but the main one (tid = pid) to core 1, as bench/run.mjs does for mirror workers. */
function moveWorkersToCore1(pid) {
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    if (tid !== String(pid)) spawnSync('taskset', ['-p', '-c', '1', tid]);
  }
}

/** The runner's thread, other than its main (RPC) thread, with the most CPU time so far. */
function busiestOtherThread(pid) {
  const others = threadIds(pid).filter((tid) => tid !== pid);
  if (others.length === 0) throw new Error('--perf-worker: the runner has no other thread');
  return others.map((tid) => ({ tid, us: threadCpuMicros(pid, tid) ?? 0 })).sort((a, b) => b.us - a.us)[0].tid;
}

let perfReport;

/** `perf report` of a perf.data: self time by symbol (kernel and JIT included) and by object. */
function perfSummary(data, top) {
  const run = (sort) => spawnSync('perf', ['report', '-i', data, '--no-children', '--sort', sort, '--stdio', '-g', 'none', '--percent-limit', '0.3'], { encoding: 'utf8', maxBuffer: 64 << 20 }).stdout
    .split('\n').filter((l) => /^\s+\d/.test(l)).slice(0, top).join('\n');
  return `perf ${relative(REPO_ROOT, data)} (${values['perf-worker'] ? 'busiest worker thread' : 'RPC thread'}, cpu-clock):\n\nby object:\n${run('dso')}\n\nby symbol:\n${run('dso,sym')}`;
}

async function profileRun() {
  let conf = CONFS[values.case];
  if (!conf) throw new Error(`unknown case ${values.case}; one of ${Object.keys(CONFS).join(', ')}`);
  const dir = resolve(REPO_ROOT, '.bench-out/prof');
  mkdirSync(dir, { recursive: true });
  const pin = spawnSync('taskset', ['-c', '0', 'true']).status === 0;
  const p = (core, argv) => (pin ? ['taskset', '-c', String(core), ...argv] : argv);
  const sink = values.case === 'mirror-all' ? await startSink(p) : undefined;
  if (sink) conf = JSON.parse(JSON.stringify(conf).replace('SINK_PORT', sink.port));
  const socketPath = resolve(os.tmpdir(), `a6prof-${process.pid}.sock`);
  const started = Date.now();
  const nodeFlags = values.perf ? ['--perf-basic-prof'] : ['--cpu-prof', '--cpu-prof-dir', dir];
  const argv = p(0, [process.execPath, ...nodeFlags, resolve(REPO_ROOT, values.runner), '--log-level', 'warn', '--mirror-threads', values['mirror-threads']]);
  const runner = spawn(argv[0], argv.slice(1), {
    cwd: REPO_ROOT,
    env: { ...process.env, APISIX_LISTEN_ADDRESS: `unix:${socketPath}` },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  try {
    await waitForSocket(socketPath, runner);
    if (pin && Number(values['mirror-threads']) > 1) moveWorkersToCore1(runner.pid);
    const lg = p(1, [
      process.execPath, resolve(REPO_ROOT, 'bench/loadgen.mjs'), '--socket', socketPath,
      '--connections', values.connections, '--duration', values.duration, '--warmup', '1',
      '--conf', JSON.stringify(conf), '--pid', String(runner.pid),
      ...(values.rate ? ['--rate', values.rate] : []),
    ]);
    const out = new Promise((res) => {
      const child = spawn(lg[0], lg.slice(1), { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => { stdout += d; });
      child.stderr.on('data', (d) => { stderr += d; });
      child.once('exit', (status) => res({ status, stdout, stderr }));
    });
    // perf: the RPC thread only (tid = pid), after the 1 s warm-up, for all but the last second.
    const perfData = resolve(dir, `perf-${values.case}-${process.pid}.data`);
    if (values.perf) {
      await new Promise((r) => setTimeout(r, 1500));
      // --perf-worker: the thread other than the RPC thread that has used the most CPU so far (the mirror worker).
      const tid = values['perf-worker'] ? busiestOtherThread(runner.pid) : runner.pid;
      const perf = spawnSync('perf', ['record', '-e', 'cpu-clock', '-g', '-t', String(tid), '-o', perfData, '--', 'sleep', String(Math.max(1, Number(values.duration) - 1.5))], { stdio: 'ignore' });
      if (perf.status !== 0) throw new Error(`perf record failed (${perf.error?.message ?? `exit ${perf.status}`}): is perf installed, and perf_event_paranoid ≤ 1 or this user root?`);
    }
    if (values.perf) perfReport = perfData;
    const { status, stdout, stderr } = await out;
    if (status !== 0) throw new Error(`loadgen failed: ${stderr}`);
    const s = JSON.parse(stdout);
    process.stdout.write(`load: ${Math.round(s.rps)} RPC/s, ${s.runnerCpuUsPerRpc?.toFixed(1)} µs CPU/RPC (profiling on), errors ${s.errors}\n`);
  } finally {
    const exited = new Promise((r) => runner.once('exit', r));
    runner.kill('SIGTERM');
    await exited;
    rmSync(socketPath, { force: true });
    if (sink) sink.child.kill('SIGTERM');
  }
  if (values.perf) return undefined;
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => resolve(dir, f))
    .filter((f) => statSync(f).mtimeMs >= started)
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  if (!files[0]) throw new Error('no profile written: does the runner exit cleanly on SIGTERM?');
  // Node names a profile CPU.<date>.<time>.<pid>.<thread id>.<seq>: thread 0 is the RPC thread.
  const thread = (f) => Number(f.split('.').at(-3));
  for (const f of files.filter((f) => thread(f) !== 0)) {
    process.stdout.write(`worker thread ${thread(f)}:\n${analyzeProfile(f, 12)}\n\n`);
  }
  return files.find((f) => thread(f) === 0) ?? files[0];
}

const file = values.analyze ? resolve(values.analyze) : await profileRun();
const report = perfReport ? perfSummary(perfReport, Number(values.top)) : analyzeProfile(file, Number(values.top));
process.stdout.write(`${report}\n`);
writeFileSync(resolve(REPO_ROOT, `.bench-out/profile-${values.analyze ? 'analyzed' : values.case}.md`), `${report}\n`);
