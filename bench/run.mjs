#!/usr/bin/env node
/**
 * RPC benchmark matrix (`npm run bench`): starts the runner (`node dist/cli.js`) as a child
 * process pinned to core 0, drives it from bench/loadgen.mjs pinned to core 1, for each
 * conf × connection count, and compares every cell with the framing-only floor server
 * measured in the same run. Prints a markdown table and writes it (plus raw JSON) to
 * .bench-out/ (env BENCH_OUT_DIR: another directory).
 *
 * Flags (env in brackets):
 *   --quick                 ~1 min run: 1 s per cell, 0.5 s warm-up
 *   --duration <s>          seconds measured per cell [BENCH_DURATION] (default 3)
 *   --warmup <s>            seconds of load before measuring [BENCH_WARMUP] (default 1)
 *   --connections <list>    e.g. 1,4,32 [BENCH_CONNECTIONS] (default 1,4,32)
 *   --only <list>           case ids to run, e.g. floor,none,say (default all)
 *   --no-pin                do not use taskset even when available
 *   --runner <path>         runner entry (default dist/cli.js)
 *   --max-tries <n>         run a cell, a paced pair or an RPC-core pair again (up to n times in all,
 *                           keeping the quietest try) when other processes used more than 20% of a core
 *                           during it [BENCH_MAX_TRIES] (default 3)
 *   --no-metrics            do not start the runner's metrics endpoint (then no copies sent/dropped column)
 *   --rate <n>              also run paced A/B pairs (issue 13: p99 at the same offered load), n RPC/s in all
 *   --pairs <n>             pairs per comparison in paced mode (default 5)
 *   --pair-connections <n>  connections of the paced cells (default 16)
 *   --pair-duration <s>     seconds measured per paced cell (default 2; warm-up --warmup)
 *   --no-pair-freeze        keep the runners of the pairs running while the other side is measured
 *                           (default: SIGSTOP them, so their GC after a load does not land on core 0)
 *   --cpu-rate <n>          each case also runs one paced cell at n RPC/s on the largest C: CPU per
 *                           mirrored request at a load whose copies can all be sent (none dropped)
 *   --targets               issue 13's cells at C = 32 (and paced at --cpu-rate, default 8000),
 *                           paced pairs (rate 5000 unless --rate) and
 *                           the sink calibration, then a report of each target: same-run ratio, met or missed
 *   --core-rates <list>     RPC-core pairs (issue 13) paced at each rate, e.g. 8000,16000 (default with
 *                           --targets: --cpu-rate and 16000): per pair the mirrored 2-thread cell, the
 *                           decision-only cell, and the decision-only cell beside a ballast on the load
 *                           generator's core as busy as the mirrored cell's worker and sink made it
 *                           (bench/ballast.mjs); medians of the RPC-thread µs ratios
 *   --sink-calibration      CPU per request of the fast and the node:http sink, alone (no runner),
 *                           one request per connection at a time and 16 pipelined
 *   --busy-us <n>           every runner cell's route starts with bench/plugins/busy.mjs spinning n µs
 *                           per call: the runner becomes the busier side and the load generator waits
 *                           for it (default 0: no such plugin)
 *   --cpu-rounds <n>        CPU rounds (issue 13's CPU target): after the matrix, n rounds of the
 *                           closed-loop cells at the largest C of the decision-only and mirrored cases
 *                           selected, interleaved in a rotating order on the runners kept from the
 *                           matrix; the target is read from the medians (default 5 with --targets, else 0)
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync, createWriteStream } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { REPO_ROOT } from './protocol.mjs';
import { findWorkerThreads, mirrorCounters, pinThread, threadAffinity, threadIds } from './children.mjs';
import { startSinkProcess } from './sink-server.mjs';

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    connections: { type: 'string' },
    only: { type: 'string' },
    'no-pin': { type: 'boolean', default: false },
    runner: { type: 'string' },
    'max-tries': { type: 'string' },
    'no-metrics': { type: 'boolean', default: false },
    rate: { type: 'string' },
    pairs: { type: 'string' },
    'pair-connections': { type: 'string' },
    'pair-duration': { type: 'string' },
    targets: { type: 'boolean', default: false },
    'sink-calibration': { type: 'boolean', default: false },
    'cpu-rate': { type: 'string' },
    'no-pair-freeze': { type: 'boolean', default: false },
    'core-rates': { type: 'string' },
    'cpu-rounds': { type: 'string' },
    'busy-us': { type: 'string' },
  },
});

const DURATION_S = Number(flags.duration ?? process.env.BENCH_DURATION ?? (flags.quick ? 1 : 3));
const WARMUP_S = Number(flags.warmup ?? process.env.BENCH_WARMUP ?? (flags.quick ? 0.5 : 1));
const CONNECTIONS = (flags.connections ?? process.env.BENCH_CONNECTIONS ?? (flags.targets ? '32' : '1,4,32')).split(',').map(Number);
/** Cells of issue 13's targets (`--targets`). */
const TARGET_CELLS = ['mirror-decide', 'mirror-all', 'mirror-all-thr', 'mirror-all-http', 'mirror-dead', 'mirror-unsampled'];
const ONLY = flags.only ? new Set(flags.only.split(',')) : flags.targets ? new Set(TARGET_CELLS) : undefined;
const RATE = flags.rate !== undefined ? Number(flags.rate) : flags.targets ? 5000 : undefined;
const PAIRS = Number(flags.pairs ?? 5);
const PAIR_CONNECTIONS = Number(flags['pair-connections'] ?? 16);
const PAIR_DURATION_S = Number(flags['pair-duration'] ?? 2);
const METRICS = !flags['no-metrics'];
const PAIR_FREEZE = !flags['no-pair-freeze'];
const CPU_RATE = flags['cpu-rate'] !== undefined ? Number(flags['cpu-rate']) : flags.targets ? 8000 : undefined;
const CORE_RATES = flags['core-rates'] !== undefined
  ? flags['core-rates'].split(',').map(Number)
  : flags.targets ? [...new Set([CPU_RATE, 16000])] : [];
const CPU_ROUNDS = Number(flags['cpu-rounds'] ?? (flags.targets ? 5 : 0));
if (!Number.isInteger(CPU_ROUNDS) || CPU_ROUNDS < 0) throw new Error(`--cpu-rounds must be a whole number ≥ 0, got ${flags['cpu-rounds']}`);
const BUSY_US = Number(flags['busy-us'] ?? 0);
if (!(BUSY_US >= 0 && BUSY_US <= 1000)) throw new Error(`--busy-us must be 0-1000, got ${flags['busy-us']}`);
/** The cells of the CPU rounds, decision-only first (the others are compared with it). */
const CPU_ROUND_CELLS = ['mirror-decide', 'mirror-all', 'mirror-all-thr'];
if (CORE_RATES.some((r) => !(r > 0))) throw new Error(`--core-rates must list positive rates, got ${flags['core-rates']}`);
for (const [name, v] of [['--cpu-rate', CPU_RATE], ['--rate', RATE], ['--pairs', PAIRS], ['--pair-connections', PAIR_CONNECTIONS], ['--pair-duration', PAIR_DURATION_S]]) {
  if (v !== undefined && !(v > 0)) throw new Error(`${name} must be a positive number`);
}
const RUNNER_ENTRY = resolve(REPO_ROOT, flags.runner ?? 'dist/cli.js');
/** Where the report, raw JSON and server logs go (BENCH_OUT_DIR, e.g. a test's temporary directory). */
const OUT_DIR = resolve(REPO_ROOT, process.env.BENCH_OUT_DIR ?? '.bench-out');
const BODY_BYTES = 1024;
const MAX_TRIES = Number(flags['max-tries'] ?? process.env.BENCH_MAX_TRIES ?? 3);
/** Share of a core used by other processes during a cell above which the cell is run again. */
const NOISE_LIMIT = 0.2;

// ---- pinning ---------------------------------------------------------------------------
const cpuCount = os.availableParallelism?.() ?? os.cpus().length;
const tasksetWorks = !flags['no-pin'] && cpuCount >= 2 && spawnSync('taskset', ['-c', '0', 'true']).status === 0;
const pinNote = tasksetWorks
  ? 'runner (and floor) pinned to core 0 with `taskset -c 0`; load generator and mirror sink on core 1'
  : flags['no-pin']
    ? 'pinning disabled (--no-pin): runner and load generator share the cores as the OS schedules them'
    : `taskset unavailable or fewer than 2 cores (${cpuCount}): processes are NOT pinned, numbers mix runner and load generator CPU contention`;

/** argv prefixed with `taskset -c <core>` when pinning works. */
function pinned(core, argv) {
  return tasksetWorks ? ['taskset', '-c', String(core), ...argv] : argv;
}

// ---- the cases -------------------------------------------------------------------------
const say = { name: 'say', value: JSON.stringify({ body: 'hello' }) };
const rewrite = {
  name: 'rewrite',
  value: JSON.stringify({ path: '/anything', headers: { set: { 'x-bench': '1' } } }),
};
/** A 127.0.0.1 port with nobody listening (checked at start). */
const DEAD_PORT = 9;
/** In-flight copies allowed in the sampled cells (see the cases). */
const DEEP = { max_concurrency: 1024 };
const mirror = (port, ratio, extra = {}) => ({
  name: 'proxy-mirror',
  value: JSON.stringify({ host: `http://127.0.0.1:${port}`, sample_ratio: ratio, ...extra }),
});

/** bench/plugins/busy.mjs, first in every runner cell's route with --busy-us. */
const busy = { name: 'bench-busy', value: JSON.stringify({ us: BUSY_US }) };
/** The route conf of a runner cell (the busy plugin first with --busy-us). */
function confOf(c, sinkPort) {
  const own = c.conf ? c.conf(sinkPort) : [];
  return BUSY_US > 0 && c.server !== 'floor' ? [busy, ...own] : own;
}

/**
 * Each case: how to start the server under test, the conf it gets, and which floor it is
 * compared with. `conf` may be a function of the sink port.
 */
const CASES = [
  { id: 'floor', label: 'floor (framing only)', server: 'floor' },
  { id: 'floor-body', label: 'floor + 1 KiB ReqBody', server: 'floor', env: { FLOOR_ASK_BODY: '1' }, bodySize: BODY_BYTES },
  { id: 'none', label: 'no plugin', conf: () => [], floor: 'floor' },
  { id: 'say', label: 'say (Stop)', conf: () => [say], floor: 'floor' },
  { id: 'rewrite', label: 'rewrite', conf: () => [rewrite], floor: 'floor' },
  // The sampled cells allow 1,024 copies in flight (`max_concurrency`, default 32): the sink
  // shares core 1 with the load generator, so in the closed loop each answer waits for a time
  // slice and 32 in flight capped the copies well below the RPC rate (45 % dropped at C = 32).
  // A dropped copy costs almost nothing, so CPU per mirrored request is only fair with none
  // dropped. The decision cell has the same conf, so only the ratio differs.
  { id: 'mirror-decide', label: 'proxy-mirror 0.00001 (decision)', conf: (p) => [mirror(p, 0.00001, DEEP)], floor: 'floor', sink: true, args: ['--mirror-threads', '1'] },
  { id: 'mirror-all', label: 'proxy-mirror 1 → sink', conf: (p) => [mirror(p, 1, DEEP)], floor: 'floor', sink: true, args: ['--mirror-threads', '1'] },
  // Copies from a worker thread: the runner starts on core 0 and its worker thread is then
  // moved to core 1 (shared with the load generator and the sink), as "when a second core is
  // available" asks; the RPC thread stays alone on core 0.
  { id: 'mirror-all-thr', label: 'proxy-mirror 1 → sink, 2 threads', conf: (p) => [mirror(p, 1, DEEP)], floor: 'floor', sink: true, args: ['--mirror-threads', '2'], workerCore: 1 },
  // The same to the node:http sink: what the sink costs per copy, next to the fast sink's.
  { id: 'mirror-all-http', label: 'proxy-mirror 1 → node:http sink, 2 threads', conf: (p) => [mirror(p, 1, DEEP)], floor: 'floor', sink: true, sinkMode: 'http', args: ['--mirror-threads', '2'], workerCore: 1 },
  // Shadow comparison (docs/compare.md): the same proxy-mirror conf in ext-plugin-pre-req and
  // ext-plugin-post-resp; each request is an HTTPReqCall then an HTTPRespCall (`respConf`), so
  // "RPC/s" and "CPU µs/RPC" are per request (two RPCs) in these rows. The sink's answer
  // (200, empty body) and the loadgen's real answer (200, empty body) compare equal.
  // The same two RPCs per request without `compare`: what the post-resp call itself costs
  // (proxy-mirror answers it at once, no ExtraInfo), apart from the comparison.
  { id: 'mirror-postresp', label: 'proxy-mirror 1 → sink, no compare (per request: pre-req + post-resp)', conf: (p) => [mirror(p, 1)], respConf: (p) => [mirror(p, 1)], floor: 'floor', sink: true, args: ['--mirror-threads', '1'] },
  { id: 'compare-head', label: 'proxy-mirror 1 → sink, compare status+headers (per request: pre-req + post-resp)', conf: (p) => [mirror(p, 1, { compare: { body: false } })], respConf: (p) => [mirror(p, 1, { compare: { body: false } })], floor: 'floor', sink: true, args: ['--mirror-threads', '1'] },
  { id: 'compare-body', label: 'proxy-mirror 1 → sink, compare with bodies (per request: pre-req + post-resp)', conf: (p) => [mirror(p, 1, { compare: {} })], respConf: (p) => [mirror(p, 1, { compare: {} })], floor: 'floor', sink: true, args: ['--mirror-threads', '1'] },
  // A target that refuses connections (port 9, discard, closed here): the breaker opens after
  // three refused connects and the rest of the copies are skipped (target_down).
  { id: 'mirror-dead', label: 'proxy-mirror 1 → refused port', conf: () => [mirror(DEAD_PORT, 1)], floor: 'floor', args: ['--mirror-threads', '1'] },
  // The same route, unsampled: what the dead target is compared with.
  { id: 'mirror-unsampled', label: 'proxy-mirror 0.00001 → refused port (unsampled)', conf: () => [mirror(DEAD_PORT, 0.00001)], floor: 'floor', args: ['--mirror-threads', '1'] },
  {
    id: 'body',
    label: '1 KiB body via ExtraInfo',
    conf: () => [{ name: 'bench-body-reader', value: '' }],
    plugin: resolve(REPO_ROOT, 'bench/plugins/body-reader.mjs'),
    bodySize: BODY_BYTES,
    floor: 'floor-body',
  },
];

// ---- process helpers ---------------------------------------------------------------------
let socketSeq = 0;
function socketPathFor(id) {
  return resolve(os.tmpdir(), `a6bench-${process.pid}-${socketSeq++}-${id}.sock`.slice(0, 60));
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** Resolves once the Unix socket accepts a connection; rejects if `child` exits first or after `ms`. */
async function waitForSocket(path, child, ms = 15_000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`server exited with code ${child.exitCode} before listening`);
    const ok = await new Promise((r) => {
      const s = net.connect(path);
      s.once('connect', () => { s.destroy(); r(true); });
      s.once('error', () => r(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`server did not listen on ${path} within ${ms} ms`);
}

/**
 * The metrics URL from the runner's "runner listening" log line (JSON on stdout), which is
 * written once the socket and the metrics listener are both bound; rejects if the child exits
 * first or after `ms`.
 */
function loggedMetricsUrl(child, ms = 15_000) {
  return new Promise((resolvePromise, reject) => {
    let buf = '';
    const done = (fn, v) => {
      clearTimeout(timer);
      child.stdout.off('data', onData);
      child.off('exit', onExit);
      fn(v);
    };
    const onData = (d) => {
      buf += d;
      const m = /"metrics":"(http:[^"]+)"[^\n]*"msg":"runner listening"/.exec(buf);
      if (m) done(resolvePromise, m[1]);
      else if (buf.length > 1 << 20) buf = buf.slice(-4096);
    };
    const onExit = (code) => done(reject, new Error(`runner exited with code ${code} before logging its metrics URL`));
    const timer = setTimeout(() => done(reject, new Error(`runner did not log "runner listening" with a metrics URL within ${ms} ms`)), ms);
    child.stdout.on('data', onData);
    child.once('exit', onExit);
  });
}

/** Stops a child we started: SIGTERM, then SIGKILL after `graceMs`. */
async function stopChild(child, graceMs = 5000) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/**
 * Starts the server of a case pinned to core 0 (or `c.cores`); returns { child, socketPath,
 * metricsUrl, baselineTids }. The runner serves its metrics (for the copies sent/dropped
 * columns) unless --no-metrics; every runner cell has them, so the ratios stay fair.
 */
async function startServer(c, logName) {
  const socketPath = socketPathFor(c.id);
  const isFloor = c.server === 'floor';
  const entry = isFloor ? [resolve(REPO_ROOT, 'bench/floor-server.mjs')] : [RUNNER_ENTRY];
  // Port 0: the runner binds a port of its own and logs its URL, so no other process can take
  // the port between our choice and its bind (a port picked here and released could be).
  const withMetrics = !isFloor && METRICS;
  const args = [
    ...(c.plugin ? ['--plugin', c.plugin] : []),
    ...(BUSY_US > 0 && !isFloor ? ['--plugin', resolve(REPO_ROOT, 'bench/plugins/busy.mjs')] : []),
    ...(c.args ?? []),
    ...(withMetrics ? ['--metrics-address', '127.0.0.1:0'] : []),
  ];
  const argv = pinned(c.cores ?? 0, [process.execPath, ...(c.nodeFlags ?? []), ...entry, ...args]);
  const log = createWriteStream(resolve(OUT_DIR, logName));
  const child = spawn(argv[0], argv.slice(1), {
    cwd: REPO_ROOT,
    env: { ...process.env, ...c.env, APISIX_LISTEN_ADDRESS: `unix:${socketPath}`, APISIX_CONF_EXPIRE_TIME: '3600' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.pipe(log, { end: false });
  child.stderr.pipe(log, { end: false });
  child.once('exit', () => log.end());
  const metricsUrl = withMetrics ? await loggedMetricsUrl(child) : undefined;
  await waitForSocket(socketPath, child);
  // Threads of the listening runner before any conf: the mirror workers start later.
  const baselineTids = new Set(threadIds(child.pid));
  return { child, socketPath, metricsUrl, baselineTids };
}

/**
 * For a case with `workerCore`: drives a short burst of its mirrored load so that the dispatch
 * engine starts its worker thread(s), finds them (children.mjs `findWorkerThreads`: new since
 * the runner listened, busiest first) and moves them to `workerCore` with `taskset -p`.
 * Returns a note for the table saying what was done.
 */
async function pinWorkers(c, server, conf) {
  const at = c.args?.indexOf('--mirror-threads') ?? -1;
  const workers = at >= 0 ? Number(c.args[at + 1]) - 1 : 0;
  if (!tasksetWorks || !c.workerCore || workers < 1) return undefined;
  await runLoadgen({ socketPath: server.socketPath, connections: 4, conf, key: `route#prime#ext-plugin-pre-req#1`, pid: server.child.pid, durationS: 0.3, warmupS: 0.2 });
  const found = findWorkerThreads(server.child.pid, server.baselineTids, workers);
  const moved = found.filter((t) => pinThread(t.tid, c.workerCore));
  const where = moved.map((t) => `${t.tid} (${Math.round(t.cpuUs / 1000)} ms CPU in priming, now on core ${threadAffinity(t.tid) ?? '?'})`);
  return moved.length === workers
    ? `worker thread ${where.join(', ')} moved with taskset -p; RPC thread on core 0`
    : `**worker pinning failed**: expected ${workers} new busy thread(s), moved ${moved.length}`;
}

/** Starts a mirror sink (fast or node:http) on core 1; returns { child, port, mode }. */
async function startSink(mode = 'fast') {
  const { child, port } = await startSinkProcess(mode, pinned(1, []));
  return { child, port, mode };
}

async function sinkCount(port) {
  // A fresh connection each time (agent: false), so exactly one sink connection is ours.
  return new Promise((res) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/__bench/count', agent: false }, (r) => {
      let body = '';
      r.on('data', (d) => { body += d; });
      r.on('end', () => { try { res(JSON.parse(body)); } catch { res(undefined); } });
    });
    req.on('error', () => res(undefined));
  });
}

/** Runs the load generator (pinned to core 1) for one cell and returns its JSON summary. */
function runLoadgen({ socketPath, connections, conf, key, respConf, bodySize, pid, helperPids, rate, durationS, warmupS, sinkPort }) {
  const argv = pinned(1, [
    process.execPath, resolve(REPO_ROOT, 'bench/loadgen.mjs'),
    '--socket', socketPath,
    '--connections', String(connections),
    '--duration', String(durationS ?? DURATION_S),
    '--warmup', String(warmupS ?? WARMUP_S),
    '--conf', JSON.stringify(conf),
    '--key', key,
    '--body-size', String(bodySize ?? 0),
    ...(respConf ? ['--resp-conf', JSON.stringify(respConf), '--resp-key', key.replace('pre-req', 'post-resp')] : []),
    '--pid', String(pid),
    ...(helperPids?.length ? ['--helper-pids', helperPids.join(',')] : []),
    ...(rate ? ['--rate', String(rate)] : []),
    ...(sinkPort ? ['--sink-port', String(sinkPort)] : []),
  ]);
  return new Promise((res, rej) => {
    const child = spawn(argv[0], argv.slice(1), { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    child.once('exit', (code) => {
      if (code !== 0) return rej(new Error(`loadgen failed (${code}): ${err.trim()}`));
      try { res(JSON.parse(out)); } catch { rej(new Error(`loadgen printed no JSON: ${out}${err}`)); }
    });
  });
}

/** The mirror target (`host`) of a conf, as the runner labels its metrics, or undefined. */
function mirrorTargetOf(conf) {
  const m = conf.find((p) => p.name === 'proxy-mirror');
  return m ? JSON.parse(m.value).host : undefined;
}

/**
 * Runs one cell once: the load generator, with the sink's count and the runner's copy
 * counters read before and after (so they include the warm-up). Returns the summary with
 * `mirrorsReceived` and `copies` (deltas) attached.
 */
async function runOnce(c, server, sink, { connections, key, rate, durationS, warmupS, helpers = [] }) {
  const conf = confOf(c, sink?.port);
  const target = mirrorTargetOf(conf);
  const counters = () => (server.metricsUrl && target ? mirrorCounters(server.metricsUrl, target) : undefined);
  const b = sink ? await sinkCount(sink.port) : undefined;
  const cb = await counters();
  const s = await runLoadgen({
    socketPath: server.socketPath,
    connections,
    conf,
    respConf: c.respConf ? c.respConf(sink?.port) : undefined,
    key,
    bodySize: c.bodySize,
    pid: server.child.pid,
    helperPids: [...(sink ? [sink.child.pid] : []), ...helpers],
    sinkPort: sink?.port,
    rate,
    durationS,
    warmupS,
  });
  // Copies still in flight or queued when the load stops finish within a moment.
  if (target) await sleep(200);
  const a = sink ? await sinkCount(sink.port) : undefined;
  const ca = await counters();
  if (b && a) {
    // -1: our count request. `reads` (fast sink only): the read batches the copies came in,
    // so requests ÷ reads is how many copies the runner put in one write, roughly.
    s.mirrorsReceived = { requests: a.requests - b.requests, connections: a.connections - b.connections - 1, reads: (a.reads ?? 0) - (b.reads ?? 0) };
  }
  if (cb && ca) s.copies = Object.fromEntries(Object.keys(ca).map((k) => [k, ca[k] - cb[k]]));
  else if (target && server.metricsUrl) s.copiesUnread = `${server.metricsUrl} could not be read ${cb ? 'after' : 'before'} the cell`;
  return s;
}

// ---- formatting --------------------------------------------------------------------------
const fmtInt = (n) => (n === undefined || Number.isNaN(n) ? 'n/a' : Math.round(n).toLocaleString('en-US'));
const fmt1 = (n) => (n === undefined || Number.isNaN(n) ? 'n/a' : n.toFixed(1));
const fmtRatio = (n) => (n === undefined || !Number.isFinite(n) ? '—' : `${n.toFixed(2)}×`);

function machineLines() {
  const cpus = os.cpus();
  return [
    `- machine: ${cpus[0]?.model ?? 'unknown CPU'}, ${cpuCount} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM, ${os.type()} ${os.release()}`,
    `- node ${process.version}; ${pinNote}`,
    `- each cell: ${WARMUP_S} s warm-up then ${DURATION_S} s measured; one RPC in flight per connection; HTTPReqCall frame ~918 bytes (GET /get?x=1, 12 headers)`,
    ...(BUSY_US > 0 ? [`- --busy-us ${BUSY_US}: every runner cell's route starts with bench-busy (bench/plugins/busy.mjs), ${BUSY_US} µs of CPU per call; the floor has none`] : []),
  ];
}

function renderTable(rows) {
  const lines = [
    '| case | C | RPC/s | p50 µs | p99 µs | runner CPU µs/RPC | RPC thread µs/RPC | other threads µs/RPC | RPC-core capacity RPC/s | runner CPU use | copies sent / sink got / dropped | sink µs/copy | RPC/s vs floor | CPU/RPC vs floor | notes |',
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|',
  ];
  for (const r of rows) {
    if (r.error) {
      lines.push(`| ${r.label} | ${r.connections ?? ''} | — | — | — | — | — | — | — | — | — | — | — | — | ${r.error} |`);
      continue;
    }
    const s = r.summary;
    lines.push(
      `| ${r.label} | ${s.connections}${r.rate ? ` paced ${fmtInt(r.rate)}/s` : ''} | ${fmtInt(s.rps)} | ${fmtInt(s.latencyUs.p50)} | ${fmtInt(s.latencyUs.p99)} | ` +
        `${fmt1(s.runnerCpuUsPerRpc)} | ${fmt1(s.rpcThreadUsPerRpc)} | ${fmt1(s.otherThreadsUsPerRpc)} | ${fmtInt(rpcCoreCapacity(s))} | ` +
        `${s.runnerCpuUtilisation === undefined ? 'n/a' : `${Math.round(s.runnerCpuUtilisation * 100)}%`} | ${copiesCell(s)} | ${fmt1(s.sinkCpuUsPerCopy)} | ` +
        `${fmtRatio(r.rpsVsFloor)} | ${fmtRatio(r.cpuVsFloor)} | ${r.notes} |`,
    );
  }
  return lines.join('\n');
}

/**
 * RPCs per second the RPC thread could answer if it had its core to itself: 1e6 / its CPU µs
 * per RPC. CPU time moves far less with machine noise than throughput does, so the ratio of
 * two cells' capacities is the steadier reading of "RPC throughput on the RPC core".
 */
function rpcCoreCapacity(s) {
  return s.rpcThreadUsPerRpc > 0 ? 1e6 / s.rpcThreadUsPerRpc : undefined;
}

/** Copies the runner sent / the sink received / the runner dropped (whole cell, warm-up included). */
function copiesCell(s) {
  if (!s.copies) return s.mirrorsReceived ? `— / ${fmtInt(s.mirrorsReceived.requests)} / —` : '—';
  const got = s.mirrorsReceived ? fmtInt(s.mirrorsReceived.requests) : '—';
  return `${fmtInt(s.copies.sent)} / ${got} / ${fmtInt(s.copies.dropped)}`;
}

/** Share of the copies the runner gave up on (dropped at a full queue) among those it meant to send. */
function droppedShare(s) {
  if (!s.copies) return undefined;
  const meant = s.copies.sent + s.copies.dropped;
  return meant > 0 ? s.copies.dropped / meant : 0;
}

function notesOf(s, extra) {
  const notes = [];
  const acts = Object.entries(s.sampledActions).filter(([, n]) => n > 0).map(([a]) => a);
  if (acts.length) notes.push(`reply: ${acts.join('/')}`);
  const per = s.twoPhase ? 'request' : 'RPC';
  const ei = Object.entries(s.extraInfo).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${(n / Math.max(1, s.completed)).toFixed(2)}/${per}`);
  if (ei.length) notes.push(`ExtraInfo ${s.twoPhase ? 'in pre-req ' : ''}${ei.join(', ')}`);
  if (s.twoPhase) {
    const post = Object.entries(s.extraInfoPostResp).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${(n / Math.max(1, s.completed)).toFixed(2)}/request`);
    notes.push(`ExtraInfo in post-resp ${post.length ? post.join(', ') : 'none'}`);
    if (s.respErrors) notes.push(`**${s.respErrors} post-resp errors**`);
  }
  if (s.errors) notes.push(`**${s.errors} errors** ${JSON.stringify(s.errorCodes)}`);
  if (s.reconnects) notes.push(`${s.reconnects} reconnects`);
  if (s.loadgenCpuUtilisation > 0.9) notes.push('load generator saturated');
  const dropped = droppedShare(s);
  if (dropped > 0.01) notes.push(`**${Math.round(dropped * 100)}% of copies dropped**: the sink or the runner's sender did not keep up, CPU per RPC understates a copy`);
  if (s.paced) {
    const late = s.paced.lateStarts / Math.max(1, s.completed);
    if (late > 0.01) notes.push(`**${(late * 100).toFixed(0)}% late starts**`);
    if (s.paced.pacerStalls) notes.push(`load generator stalled ${s.paced.pacerStalls}× (longest ${s.paced.maxTickGapMs.toFixed(0)} ms)`);
  }
  if (s.copiesUnread) notes.push(`**copies not counted: ${s.copiesUnread}**`);
  if (s.copies?.targetDown) notes.push(`${fmtInt(s.copies.targetDown)} skipped target_down`);
  if (s.copies?.error) notes.push(`${fmtInt(s.copies.error)} copy errors`);
  if (s.otherCpuUtilisation > NOISE_LIMIT) notes.push(`**noisy: other processes used ${Math.round(s.otherCpuUtilisation * 100)}% of a core** (best of ${s.tries} tries)`);
  if (extra) notes.push(extra);
  return notes.join('; ');
}

// ---- paced A/B pairs (issue 13's p99 targets) ------------------------------------------------
/**
 * Each comparison runs its two cells paced at the same offered load (--rate), interleaved
 * A, B, A, B… on two runners started once, and reports the median of the per-pair p99 ratios
 * B ÷ A: noise that hits one pair hits both sides of it.
 */
const COMPARISONS = [
  // control: each pair also runs A beside a ballast on core 1 as busy as B's worker and sink
  // made it (bench/ballast.mjs): what load on the load generator's core alone does to A's p99.
  { id: 'p99-mirror-thr', a: 'mirror-decide', b: 'mirror-all-thr', what: 'RPC p99, 100 % mirroring (2 threads) ÷ decision only', control: true },
  { id: 'p99-mirror-1', a: 'mirror-decide', b: 'mirror-all', what: 'RPC p99, 100 % mirroring (1 thread) ÷ decision only' },
  { id: 'p99-dead', a: 'mirror-unsampled', b: 'mirror-dead', what: 'RPC p99, refused-port target ÷ the same route unsampled' },
];

/**
 * Stops (SIGSTOP) or resumes (SIGCONT) a runner kept for the pairs: while another cell runs, a
 * kept runner must not use core 0 (V8 collects garbage a few seconds after a load stops).
 * Unless --no-pair-freeze.
 */
function freeze(server, stopped) {
  if (!PAIR_FREEZE || server.child.exitCode !== null || server.child.signalCode !== null) return;
  try {
    process.kill(server.child.pid, stopped ? 'SIGSTOP' : 'SIGCONT');
  } catch {
    // already gone: its cells report the exit
  }
}

function median(values) {
  const v = values.filter((x) => Number.isFinite(x)).sort((x, y) => x - y);
  if (v.length === 0) return undefined;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/**
 * Other jobs on the machine skew a measurement badly: runs `attempt()` again, up to MAX_TRIES
 * times in all, until one has noise (other processes' share of a core) at most NOISE_LIMIT,
 * and resolves the quietest with `tries` (how many were made). `onNoisy(noise, tries)` runs
 * before each retry.
 */
async function quietest(attempt, noiseOf, onNoisy) {
  let kept;
  let tries = 0;
  while (tries < MAX_TRIES) {
    tries++;
    const got = await attempt(tries);
    if (!kept || noiseOf(got) < noiseOf(kept)) kept = got;
    if (noiseOf(kept) <= NOISE_LIMIT) break;
    if (tries < MAX_TRIES) await onNoisy?.(noiseOf(got), tries);
  }
  return { ...kept, tries };
}

async function runPairs(cmp, servers, sinkFor, nextKey) {
  const ca = CASES.find((x) => x.id === cmp.a);
  const cb = CASES.find((x) => x.id === cmp.b);
  const pairs = [];
  const side = async (c, helpers = []) => {
    // Only the runner measured runs: the others are stopped (SIGSTOP), so that the other side's
    // leftovers (copies in flight, the GC after its load) do not land on core 0 in this cell.
    for (const [id, server] of servers) freeze(server, id !== c.id);
    return runOnce(c, servers.get(c.id), sinkFor(c), {
      connections: PAIR_CONNECTIONS, key: nextKey(), rate: RATE, durationS: PAIR_DURATION_S, warmupS: WARMUP_S, helpers,
    });
  };
  // The control side: A beside a ballast on core 1 as busy as B's worker thread and sink kept it.
  const loaded = (share) => besideBallast(share, (helpers) => side(ca, helpers));
  const noiseOf = (p) => Math.max(p.a.otherCpuUtilisation ?? 0, p.b.otherCpuUtilisation ?? 0, p.al?.otherCpuUtilisation ?? 0);
  for (let i = 0; i < PAIRS; i++) {
    // A pair with a side disturbed by other processes runs again; the quietest try is kept.
    pairs.push(await quietest(async (tries) => {
      process.stderr.write(`bench: pair ${i + 1}/${PAIRS} ${cmp.a} vs ${cmp.b}${cmp.control ? ' (+ control)' : ''} at ${RATE} RPC/s${tries > 1 ? ` (try ${tries}: noisy)` : ''} ...\n`);
      const A = await side(ca);
      const B = await side(cb);
      const share = cmp.control ? copyCoreShare(B, servers.get(cb.id).child.pid) : undefined;
      const AL = share === undefined ? undefined : await loaded(share);
      return {
        a: A, b: B, al: AL, share, p99Ratio: B.latencyUs.p99 / A.latencyUs.p99, p50Ratio: B.latencyUs.p50 / A.latencyUs.p50,
        // Counted from the due time: a side that made calls wait for a connection pays for it.
        dueP99Ratio: B.paced.fromDueUs.p99 / A.paced.fromDueUs.p99,
      };
    }, noiseOf));
  }
  const withControl = pairs.filter((p) => p.al !== undefined);
  const control = withControl.length === 0 ? undefined : {
    // What the ballast alone did to A's p99, and B against A with the ballast.
    medianBallastP99Ratio: median(withControl.map((p) => p.al.latencyUs.p99 / p.a.latencyUs.p99)),
    medianP99RatioToLoaded: median(withControl.map((p) => p.b.latencyUs.p99 / p.al.latencyUs.p99)),
    medianLoadedP99: median(withControl.map((p) => p.al.latencyUs.p99)),
    medianShare: median(withControl.map((p) => p.share)),
    medianBallastShare: median(withControl.map((p) => p.al.ballastShare)),
  };
  const lateShare = (s) => s.paced.lateStarts / Math.max(1, s.completed);
  return {
    ...cmp,
    rate: RATE,
    connections: PAIR_CONNECTIONS,
    pairs: pairs.map((p) => ({
      p99: [p.a.latencyUs.p99, p.b.latencyUs.p99], p50: [p.a.latencyUs.p50, p.b.latencyUs.p50], p99Ratio: p.p99Ratio,
      dueP99: [p.a.paced.fromDueUs.p99, p.b.paced.fromDueUs.p99], dueP99Ratio: p.dueP99Ratio,
      lateStarts: [p.a.paced.lateStarts, p.b.paced.lateStarts], rps: [p.a.rps, p.b.rps],
      rpcThreadUsPerRpc: [p.a.rpcThreadUsPerRpc, p.b.rpcThreadUsPerRpc], otherCpu: [p.a.otherCpuUtilisation, p.b.otherCpuUtilisation],
      copies: [p.a.copies, p.b.copies], tries: p.tries,
      ...(p.al ? { control: { p99: p.al.latencyUs.p99, copyCoreShare: p.share, ballastShare: p.al.ballastShare, otherCpu: p.al.otherCpuUtilisation } } : {}),
    })),
    control,
    medianP99Ratio: median(pairs.map((p) => p.p99Ratio)),
    // Pairs whose both sides were quiet (other processes under NOISE_LIMIT of a core).
    quietPairs: pairs.filter((p) => (p.a.otherCpuUtilisation ?? 0) <= NOISE_LIMIT && (p.b.otherCpuUtilisation ?? 0) <= NOISE_LIMIT).length,
    quietMedianP99Ratio: median(pairs.filter((p) => (p.a.otherCpuUtilisation ?? 0) <= NOISE_LIMIT && (p.b.otherCpuUtilisation ?? 0) <= NOISE_LIMIT).map((p) => p.p99Ratio)),
    medianP50Ratio: median(pairs.map((p) => p.p50Ratio)),
    medianDueP99Ratio: median(pairs.map((p) => p.dueP99Ratio)),
    minP99Ratio: Math.min(...pairs.map((p) => p.p99Ratio)),
    maxP99Ratio: Math.max(...pairs.map((p) => p.p99Ratio)),
    medianP99: [median(pairs.map((p) => p.a.latencyUs.p99)), median(pairs.map((p) => p.b.latencyUs.p99))],
    maxLateShare: Math.max(...pairs.flatMap((p) => [lateShare(p.a), lateShare(p.b)])),
    maxOtherCpu: Math.max(...pairs.flatMap((p) => [p.a.otherCpuUtilisation ?? 0, p.b.otherCpuUtilisation ?? 0])),
    // CPU per RPC, all threads (schedstat: a paced cell is too short for 10 ms ticks), and the RPC thread's.
    medianCpu: [median(pairs.map((p) => p.a.threadsCpuUsPerRpc)), median(pairs.map((p) => p.b.threadsCpuUsPerRpc))],
    medianRpcThread: [median(pairs.map((p) => p.a.rpcThreadUsPerRpc)), median(pairs.map((p) => p.b.rpcThreadUsPerRpc))],
    maxDroppedShare: Math.max(...pairs.map((p) => droppedShare(p.b) ?? 0)),
  };
}

// ---- RPC-core pairs (issue 13's "RPC throughput on the RPC core") -------------------------
/**
 * Starts bench/ballast.mjs on the load generator's core, busy `share` of each millisecond
 * (counted by the load generator as a helper process: its CPU is not noise); `stop()` ends it.
 */
function startBallast(share, seconds) {
  const argv = pinned(1, [process.execPath, resolve(REPO_ROOT, 'bench/ballast.mjs'), '--share', share.toFixed(4), '--seconds', String(seconds)]);
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'inherit'] });
  const exited = new Promise((res) => child.once('exit', res));
  return {
    pid: child.pid,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/**
 * Runs a cell (`measure`, given the helper pids to count) beside a ballast busy `share` of core 1,
 * and adds the share of a core the ballast used over the measured window (`ballastShare`).
 */
async function besideBallast(share, measure) {
  const ballast = startBallast(share, WARMUP_S + PAIR_DURATION_S + 10);
  try {
    const s = await measure([ballast.pid]);
    // The ballast's own CPU over the measured window, from /proc (the sink is a helper too).
    const us = s.helperCpuUs?.[ballast.pid];
    return { ...s, ballastShare: us === undefined ? undefined : us / (s.seconds * 1e6) };
  } finally {
    await ballast.stop();
  }
}

/**
 * The share of a core that the mirrored cell's copies kept busy beside the RPC thread: its
 * busiest other thread (the mirror worker, moved to the load generator's core) and the sink.
 */
function copyCoreShare(s, rpcTid) {
  const worker = s.threads?.filter((t) => t.tid !== rpcTid).reduce((max, t) => Math.max(max, t.cpuUs), 0) ?? 0;
  return Math.min(1, worker / (s.seconds * 1e6) + (s.helperCpuUtilisation ?? 0));
}

/**
 * Issue 13's "RPC throughput on the RPC core ≥ 0.8× decision-only", as interleaved paced
 * pairs at `rate`: per pair the mirrored 2-thread cell (B), then the decision-only cell with
 * and without a ballast on core 1 as busy as B's worker and sink made it (in turn, first one
 * then the other). Capacity is 1e6 ÷ RPC-thread µs per RPC; the ratios are per pair, A ÷ B.
 * The ratio as measured is the target's. The ballast is a control: the RPC thread's replies
 * wake the load generator on core 1, and in runs one after the other load there alone (nothing
 * of the runner's) made the decision-only RPC thread dearer; with the ballast, core 1 is about
 * as busy in both cells (docs/performance.md, "Mirror dispatch, eighth pass": interleaved, its
 * effect was small).
 */
async function runCorePairs(rate, servers, sinkFor, nextKey) {
  const cd = CASES.find((x) => x.id === 'mirror-decide');
  const cm = CASES.find((x) => x.id === 'mirror-all-thr');
  const connections = Math.max(...CONNECTIONS);
  const pairs = [];
  const side = async (c, helpers) => {
    for (const [id, server] of servers) freeze(server, id !== c.id);
    return runOnce(c, servers.get(c.id), sinkFor(c), { connections, key: nextKey(), rate, durationS: PAIR_DURATION_S, warmupS: WARMUP_S, helpers });
  };
  const noiseOf = (p) => Math.max(...[p.A, p.AL, p.B].map((x) => x.otherCpuUtilisation ?? 0));
  for (let i = 0; i < PAIRS; i++) {
    // A pair with a cell disturbed by other processes runs again; the quietest try is kept.
    pairs.push(await quietest(async (tries) => {
      process.stderr.write(`bench: RPC-core pair ${i + 1}/${PAIRS} at ${rate} RPC/s${tries > 1 ? ` (try ${tries}: noisy)` : ''} ...\n`);
      const B = await side(cm, []);
      const share = copyCoreShare(B, servers.get(cm.id).child.pid);
      const loaded = () => besideBallast(share, (helpers) => side(cd, helpers));
      let A;
      let AL;
      if (i % 2 === 0) {
        AL = await loaded();
        A = await side(cd, []);
      } else {
        A = await side(cd, []);
        AL = await loaded();
      }
      return { A, AL, B, share };
    }, noiseOf));
  }
  const rpc = (s) => s.rpcThreadUsPerRpc;
  const lateShare = (s) => s.paced.lateStarts / Math.max(1, s.completed);
  return {
    rate,
    connections,
    pairs: pairs.map((p) => ({
      rpcThreadUsPerRpc: { decision: rpc(p.A), decisionLoaded: rpc(p.AL), mirrored: rpc(p.B) },
      copyCoreShare: p.share, ballastShare: p.AL.ballastShare,
      lateStarts: [p.A.paced.lateStarts, p.AL.paced.lateStarts, p.B.paced.lateStarts],
      otherCpu: [p.A.otherCpuUtilisation, p.AL.otherCpuUtilisation, p.B.otherCpuUtilisation],
      copies: p.B.copies, tries: p.tries,
    })),
    quietPairs: pairs.filter((p) => noiseOf(p) <= NOISE_LIMIT).length,
    medianRatio: median(pairs.map((p) => rpc(p.A) / rpc(p.B))),
    medianLoadedRatio: median(pairs.map((p) => rpc(p.AL) / rpc(p.B))),
    // What the ballast alone did to the decision-only RPC thread.
    medianBallastEffect: median(pairs.map((p) => rpc(p.AL) / rpc(p.A))),
    minLoadedRatio: Math.min(...pairs.map((p) => rpc(p.AL) / rpc(p.B))),
    maxLoadedRatio: Math.max(...pairs.map((p) => rpc(p.AL) / rpc(p.B))),
    medianRpc: ['A', 'AL', 'B'].map((k) => median(pairs.map((p) => rpc(p[k])))),
    medianShare: median(pairs.map((p) => p.share)),
    medianBallastShare: median(pairs.map((p) => p.AL.ballastShare)),
    maxLateShare: Math.max(...pairs.flatMap((p) => [lateShare(p.A), lateShare(p.AL), lateShare(p.B)])),
    maxDroppedShare: Math.max(...pairs.map((p) => droppedShare(p.B) ?? 0)),
    maxOtherCpu: Math.max(...pairs.flatMap((p) => [p.A.otherCpuUtilisation ?? 0, p.AL.otherCpuUtilisation ?? 0, p.B.otherCpuUtilisation ?? 0])),
  };
}

function renderCorePairs(done) {
  const lines = [
    `RPC-core pairs: paced on ${Math.max(...CONNECTIONS)} connections, ${WARMUP_S} s warm-up + ${PAIR_DURATION_S} s per cell, ${PAIRS} pairs; per pair the mirrored 2-thread cell, then the decision-only cell with and without a ballast on core 1 (in turn); a pair with a cell where other processes used more than ${NOISE_LIMIT * 100}% of a core runs again (up to --max-tries in all, the quietest kept).`,
    '',
    '| rate RPC/s | RPC thread µs/RPC: decision / decision + ballast / mirrored (medians) | capacity ratio decision ÷ mirrored (median) | with the ballast (median, min–max) | ballast effect on decision-only | core 1 share of worker + sink / ballast achieved | copies dropped (max) | late starts (max share) | quiet pairs | noise (max other CPU) |',
    '|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
  ];
  for (const d of done) {
    lines.push(`| ${fmtInt(d.rate)} | ${d.medianRpc.map(fmt1).join(' / ')} | ${fmtRatio(d.medianRatio)} | ${fmtRatio(d.medianLoadedRatio)} (${fmtRatio(d.minLoadedRatio)}–${fmtRatio(d.maxLoadedRatio)}) | ${fmtRatio(d.medianBallastEffect)} | ` +
      `${(d.medianShare * 100).toFixed(1)}% / ${d.medianBallastShare === undefined ? 'n/a' : `${(d.medianBallastShare * 100).toFixed(1)}%`} | ${(d.maxDroppedShare * 100).toFixed(1)}% | ${(d.maxLateShare * 100).toFixed(1)}% | ${d.quietPairs} of ${d.pairs.length} | ${Math.round(d.maxOtherCpu * 100)}% of a core |`);
  }
  lines.push('', 'Capacity is 1e6 ÷ the RPC thread\'s µs per RPC. The ballast (bench/ballast.mjs) keeps the load generator\'s core about as busy as the mirrored cell\'s worker thread and sink kept it, in 1 ms periods, beside one of the two decision-only cells: a control for what load on the other core alone costs the RPC thread ("ballast effect": decision + ballast ÷ decision). The target is read from the ratio as measured.');
  return lines.join('\n');
}

// ---- CPU rounds (issue 13's CPU target) -----------------------------------------------------
/**
 * Issue 13's "runner CPU per mirrored request", as `CPU_ROUNDS` rounds of the closed-loop cells
 * at the largest C, interleaved on the runners kept from the matrix: one cell alone is read in a
 * single window of this VM, and the same build read 17 and 29 µs per RPC in the decision-only
 * cell minutes apart (docs/performance.md, "Mirror dispatch, eleventh pass"). Each round runs
 * every cell once, in an order rotated by one per round so that no cell always goes first or
 * last; "the copy adds" is mirrored − decision-only within a round. The target is read from the
 * medians over rounds; every round is reported.
 *
 * `gauge` (the floor server's id, when it ran): measured in each round beside the runner's
 * cells. The floor does the same kernel work per call as the runner (one read, one write) and
 * nothing else, so its CPU per call moves only with the machine: this VM has slow spells in
 * which every cell, the floor included, costs more per call (its steal time is not reported),
 * and the gauge shows which rounds fell in one.
 */
async function runCpuRounds(ids, servers, sinkFor, nextKey, gauge = undefined) {
  const connections = Math.max(...CONNECTIONS);
  const cases = [...ids, ...(gauge ? [gauge] : [])].map((id) => CASES.find((x) => x.id === id));
  const rounds = [];
  for (let r = 0; r < CPU_ROUNDS; r++) {
    const order = cases.map((_, i) => cases[(i + r) % cases.length]);
    const cells = {};
    for (const c of order) {
      for (const [id, server] of servers) freeze(server, id !== c.id);
      cells[c.id] = await quietest(async (tries) => {
        process.stderr.write(`bench: CPU round ${r + 1}/${CPU_ROUNDS} ${c.label}, C=${connections}${tries > 1 ? ` (try ${tries}: noisy)` : ''} ...\n`);
        return runOnce(c, servers.get(c.id), sinkFor(c), { connections, key: nextKey() });
      }, (s) => s.otherCpuUtilisation ?? 0);
    }
    rounds.push({ order: order.map((c) => c.id), cells });
  }
  const cpu = (s) => s.runnerCpuUsPerRpc;
  const decide = ids[0];
  const gaugeCpu = gauge ? rounds.map((r) => cpu(r.cells[gauge])) : undefined;
  const byCell = Object.fromEntries(ids.map((id) => {
    const all = rounds.map((r) => r.cells[id]);
    return [id, {
      cpu: all.map(cpu),
      rpcThread: all.map((s) => s.rpcThreadUsPerRpc),
      others: all.map((s) => s.otherThreadsUsPerRpc),
      dropped: all.map((s) => droppedShare(s) ?? 0),
      noise: all.map((s) => s.otherCpuUtilisation ?? 0),
      tries: all.map((s) => s.tries),
      medianCpu: median(all.map(cpu)),
      medianRpcThread: median(all.map((s) => s.rpcThreadUsPerRpc)),
      medianOthers: median(all.map((s) => s.otherThreadsUsPerRpc)),
      // Mirrored − decision-only in the same round.
      medianCopyAdds: id === decide ? undefined : median(rounds.map((r) => cpu(r.cells[id]) - cpu(r.cells[decide]))),
      maxDroppedShare: Math.max(...all.map((s) => droppedShare(s) ?? 0)),
      // This cell ÷ the floor in the same round: a reading the machine's slow spells move less.
      medianVsGauge: gaugeCpu ? median(rounds.map((r, i) => cpu(r.cells[id]) / gaugeCpu[i])) : undefined,
    }];
  }));
  // What each cell's RPC thread did in the kernel per RPC, and how many copies the sink read at once.
  const kernelOf = (s) => ({
    ...(s.rpcThreadKernelPerRpc ?? {}),
    loadgenWakes: s.loadgenWakesPerRpc,
    copiesPerSinkRead: s.mirrorsReceived?.reads > 0 && s.mirrorsReceived.requests > 0 ? s.mirrorsReceived.requests / s.mirrorsReceived.reads : undefined,
  });
  return {
    connections,
    rounds: rounds.map((r) => ({
      order: r.order,
      cpu: Object.fromEntries(ids.map((id) => [id, cpu(r.cells[id])])),
      kernel: Object.fromEntries(ids.map((id) => [id, kernelOf(r.cells[id])])),
    })),
    cells: byCell,
    gauge: gauge ? { id: gauge, cpu: gaugeCpu, medianCpu: median(gaugeCpu), minCpu: Math.min(...gaugeCpu), maxCpu: Math.max(...gaugeCpu) } : undefined,
  };
}

function renderCpuRounds(d) {
  const ids = Object.keys(d.cells);
  const g = d.gauge;
  const label = (id) => CASES.find((x) => x.id === id).label;
  const lines = [
    `CPU rounds: ${d.rounds.length} rounds of the closed-loop cells at C = ${d.connections}, ${WARMUP_S} s warm-up + ${DURATION_S} s each, interleaved (order rotated each round); runner CPU µs per RPC, all threads. A cell where other processes used more than ${NOISE_LIMIT * 100}% of a core runs again (up to --max-tries in all, the quietest kept).`,
    '',
    `| round (order) | ${ids.map(label).join(' | ')}${g ? ` | ${label(g.id)}: the gauge |` : ' |'}`,
    `|---|${ids.map(() => '--:').join('|')}${g ? '|--:' : ''}|`,
    ...d.rounds.map((r, i) => `| ${i + 1} (${r.order.map((id) => (g && id === g.id ? ids.length + 1 : ids.indexOf(id) + 1)).join(', ')}) | ${ids.map((id) => fmt1(r.cpu[id])).join(' | ')}${g ? ` | ${fmt1(g.cpu[i])}` : ''} |`),
    `| **median** | ${ids.map((id) => `**${fmt1(d.cells[id].medianCpu)}** (RPC thread ${fmt1(d.cells[id].medianRpcThread)} + others ${fmt1(d.cells[id].medianOthers)})`).join(' | ')}${g ? ` | **${fmt1(g.medianCpu)}**` : ''} |`,
    `| the copy adds (median of mirrored − decision per round) | ${ids.map((id) => (d.cells[id].medianCopyAdds === undefined ? '—' : fmt1(d.cells[id].medianCopyAdds))).join(' | ')}${g ? ' | —' : ''} |`,
    ...(g ? [`| ÷ the gauge (median of the rounds' ratios) | ${ids.map((id) => fmtRatio(d.cells[id].medianVsGauge)).join(' | ')} | — |`] : []),
    `| copies dropped (max) | ${ids.map((id) => `${(d.cells[id].maxDroppedShare * 100).toFixed(1)}%`).join(' | ')}${g ? ' | —' : ''} |`,
  ];
  lines.push('', 'The order column numbers the cells as the table\'s columns do.');
  if (g) {
    lines.push('', `The gauge is the framing-only floor server measured in the same rounds: one read and one write per call, as the runner, and nothing else, so its CPU per call moves only with the machine. This VM has slow spells (its steal time is not reported) in which every cell costs more per call; a round whose gauge is well above its fastest (${fmt1(g.minCpu)} µs here) fell in one.`);
  }
  if (d.rounds.some((r) => Object.values(r.kernel ?? {}).some((k) => k.reads !== undefined))) {
    const k = (x) => (x?.reads === undefined ? 'n/a' : `${x.reads.toFixed(2)} / ${x.writes.toFixed(2)} / ${x.wakes.toFixed(2)}${x.loadgenWakes === undefined ? '' : `; load generator woken ${x.loadgenWakes.toFixed(2)}`}${x.copiesPerSinkRead === undefined ? '' : ` (${x.copiesPerSinkRead.toFixed(1)})`}`);
    lines.push(
      '',
      'The RPC thread in the kernel, per RPC: read system calls / write system calls / wake-ups (voluntary context switches); how often the load generator slept and was woken per RPC (each such wake-up costs the runner’s write a cross-core wake-up); and in brackets the copies the sink read at once. Fewer per RPC is more calls served per kernel entry.',
      '',
      `| round | ${ids.map(label).join(' | ')} |`,
      `|---|${ids.map(() => '--:').join('|')}|`,
      ...d.rounds.map((r, i) => `| ${i + 1} | ${ids.map((id) => k(r.kernel?.[id])).join(' | ')} |`),
    );
  }
  return lines.join('\n');
}

function renderPairs(done) {
  const pct = (x) => (x === undefined ? 'n/a' : `${(x * 100).toFixed(1)}%`);
  const lines = [
    `Paced pairs: ${RATE} RPC/s offered in all on ${PAIR_CONNECTIONS} connections, ${WARMUP_S} s warm-up + ${PAIR_DURATION_S} s per cell, ${PAIRS} pairs A, B interleaved.`,
    '',
    '| comparison (B ÷ A) | median p99 A µs | median p99 B µs | median of p99 ratios | min–max ratio | quiet pairs: n, median ratio | median of p99 ratios from due time | median of p50 ratios | CPU µs/RPC A / B (all threads) | RPC thread µs/RPC A / B | copies dropped (B, max) | late starts (max share) | noise (max other CPU) |',
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
  ];
  for (const d of done) {
    lines.push(`| ${d.what} | ${fmtInt(d.medianP99[0])} | ${fmtInt(d.medianP99[1])} | ${fmtRatio(d.medianP99Ratio)} | ${fmtRatio(d.minP99Ratio)}–${fmtRatio(d.maxP99Ratio)} | ${d.quietPairs}, ${fmtRatio(d.quietMedianP99Ratio)} | ${fmtRatio(d.medianDueP99Ratio)} | ${fmtRatio(d.medianP50Ratio)} | ` +
      `${fmt1(d.medianCpu[0])} / ${fmt1(d.medianCpu[1])} | ${fmt1(d.medianRpcThread[0])} / ${fmt1(d.medianRpcThread[1])} | ${(d.maxDroppedShare * 100).toFixed(1)}% | ${(d.maxLateShare * 100).toFixed(1)}% | ${Math.round(d.maxOtherCpu * 100)}% of a core |`);
  }
  for (const d of done.filter((x) => x.control)) {
    const c = d.control;
    lines.push('', `Control for "${d.what}": in each pair, A ran a third time beside a ballast on core 1 (bench/ballast.mjs) as busy as B's worker thread and sink kept that core (${pct(c.medianShare)}; the ballast achieved ${c.medianBallastShare === undefined ? 'n/a' : pct(c.medianBallastShare)}). ` +
      `A's p99 with the ballast ÷ without: ${fmtRatio(c.medianBallastP99Ratio)} (median p99 ${fmtInt(c.medianLoadedP99)} µs); B ÷ A with the ballast: ${fmtRatio(c.medianP99RatioToLoaded)}. ` +
      'Nothing of the runner\'s runs in the ballast: the first ratio is what load on the load generator\'s core alone does to the p99 on this machine. The target is read from the ratio as measured.');
  }
  lines.push('', `Quiet pairs: both sides with other processes under ${NOISE_LIMIT * 100}% of a core (a pair that was not runs again, up to --max-tries in all, and the quietest try is kept). ${PAIR_FREEZE ? 'The runner not being measured is stopped (SIGSTOP) during each cell.' : 'Both runners ran during every cell (--no-pair-freeze).'}`);
  lines.push('', 'Late starts: calls that found all connections busy when due (the offered load was not sustained, or the load generator\'s timer fired late in a burst); above ~1 % the p99 from the write leaves out the wait. The p99 from the due time includes it, but also the pacer\'s own lag (1 ms timer, the load generator\'s pauses), the same on both sides, which pulls that ratio toward 1: read the two together.');
  return lines.join('\n');
}

// ---- sink calibration ---------------------------------------------------------------------
/** Each sink mode alone, driven by bench/sink-server.mjs --calibrate (client on core 0, sink on core 1). */
async function calibrateSinks() {
  const rows = [];
  for (const [connections, batch] of [[32, 1], [8, 16]]) {
    for (const mode of ['fast', 'http']) {
      process.stderr.write(`bench: sink calibration ${mode}, ${connections} connections × ${batch} pipelined ...\n`);
      const argv = pinned(0, [process.execPath, resolve(REPO_ROOT, 'bench/sink-server.mjs'), '--calibrate', '--mode', mode,
        '--connections', String(connections), '--batch', String(batch), '--seconds', String(DURATION_S), ...(tasksetWorks ? ['--sink-core', '1'] : [])]);
      const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8' });
      try {
        rows.push(JSON.parse(r.stdout));
      } catch {
        rows.push({ mode, connections, batch, error: (r.stderr || 'no output').trim().split('\n')[0] });
      }
    }
  }
  return rows;
}

function renderCalibration(rows) {
  const lines = [
    'Mirror sinks alone (`node bench/sink-server.mjs --calibrate`): the bench\'s GET with 12 headers on raw keep-alive connections, client on core 0, sink on core 1.',
    '',
    '| sink | connections × pipelined | requests/s | sink CPU µs/request | sink CPU use |',
    '|---|--:|--:|--:|--:|',
  ];
  for (const r of rows) {
    if (r.error) lines.push(`| ${r.mode} | ${r.connections} × ${r.batch} | — | — | ${r.error} |`);
    else lines.push(`| ${r.mode === 'fast' ? 'fast (raw net)' : 'node:http'} | ${r.connections} × ${r.batch} | ${fmtInt(r.requestsPerSecond)} | ${fmt1(r.sinkCpuUsPerRequest)} | ${Math.round(r.sinkCpuUtilisation * 100)}% |`);
  }
  return lines.join('\n');
}

// ---- issue 13 target report ----------------------------------------------------------------
/** Issue 13's targets against this run's cells (the largest C measured, closed loop and --cpu-rate) and paced pairs. */
function renderTargets(results, pairsDone, coreDone = [], cpuDone = undefined) {
  const maxC = Math.max(...CONNECTIONS);
  const cell = (id) => results.find((r) => r.id === id && r.connections === maxC && !r.rate && r.summary)?.summary;
  const pacedCell = (id) => (CPU_RATE ? results.find((r) => r.id === id && r.rate === CPU_RATE && r.summary)?.summary : undefined);
  const pair = (id) => pairsDone.find((d) => d.id === id);
  const status = (ok, fair = true) => (ok === undefined ? 'not measured' : !fair ? (ok ? 'met, **not measured fairly**' : '**missed**, not measured fairly') : ok ? 'met' : '**missed**');
  const pct = (x) => (x === undefined ? 'n/a' : `${(x * 100).toFixed(1)}%`);
  const lateShare = (s) => (s?.paced ? s.paced.lateStarts / Math.max(1, s.completed) : 0);
  const fairCell = (s) => !(droppedShare(s) > 0.01) && lateShare(s) <= 0.01;
  // With copies dropped, an estimate of the figure had every copy been sent: the decision's
  // cost plus what the sent copies added, scaled up to all requests (a dropped copy taken as free).
  const ifAllSent = (s, decide) => {
    const dropped = droppedShare(s);
    if (!decide || !(dropped > 0.01) || dropped >= 1) return '';
    return `; if every copy were sent ≈ ${fmt1(decide.runnerCpuUsPerRpc + (s.runnerCpuUsPerRpc - decide.runnerCpuUsPerRpc) / (1 - dropped))} µs`;
  };
  const rows = [];
  // 1. CPU per mirrored request: closed loop at C = maxC (as the issue words it) and paced at
  // --cpu-rate, where all copies can be sent; "the copy adds" is mirror − decision at that load.
  // With CPU rounds, the closed loop is read from their medians (the matrix's single cell is
  // given beside them).
  for (const [id, threads] of [['mirror-all', 1], ['mirror-all-thr', 2]]) {
    const r = cpuDone?.cells[id];
    if (!r) continue;
    const d = cpuDone.cells['mirror-decide'];
    const s = cell(id);
    rows.push([
      `Runner CPU per mirrored request (RPC + copy, all threads, fast sink, C = ${cpuDone.connections}, ${threads} thread${threads > 1 ? 's' : ''}) ≤ 25 µs`,
      `median of ${cpuDone.rounds.length} interleaved rounds ${fmt1(r.medianCpu)} µs (RPC thread ${fmt1(r.medianRpcThread)} + others ${fmt1(r.medianOthers)}; rounds ${r.cpu.map(fmt1).join(', ')}); decision ${fmt1(d.medianCpu)} µs, the copy adds ${fmt1(r.medianCopyAdds)}, ${fmtRatio(r.medianCpu / d.medianCpu)} decision-only's; copies dropped ≤ ${pct(r.maxDroppedShare)}${s ? `; the matrix's cell: ${fmt1(s.runnerCpuUsPerRpc)} µs` : ''}${cpuDone.gauge ? `; the gauge (framing-only floor, same rounds) ${fmt1(cpuDone.gauge.medianCpu)} µs (${fmt1(cpuDone.gauge.minCpu)}–${fmt1(cpuDone.gauge.maxCpu)}), this cell ${fmtRatio(r.medianVsGauge)} the gauge` : ''}`,
      status(r.medianCpu <= 25, r.maxDroppedShare <= 0.01),
    ]);
  }
  const closedCpu = cpuDone ? [] : [[`C = ${maxC}`, cell]];
  for (const [load, get] of [...closedCpu, ...(CPU_RATE ? [[`C = ${maxC} paced at ${fmtInt(CPU_RATE)} RPC/s`, pacedCell]] : [])]) {
    const decide = get('mirror-decide');
    for (const [id, threads] of [['mirror-all', 1], ['mirror-all-thr', 2]]) {
      const s = get(id);
      rows.push([
        `Runner CPU per mirrored request (RPC + copy, all threads, fast sink, ${load}, ${threads} thread${threads > 1 ? 's' : ''}) ≤ 25 µs`,
        s ? `${fmt1(s.runnerCpuUsPerRpc)} µs (RPC thread ${fmt1(s.rpcThreadUsPerRpc)} + others ${fmt1(s.otherThreadsUsPerRpc)}); decision ${fmt1(decide?.runnerCpuUsPerRpc)} µs, the copy adds ${fmt1(decide ? s.runnerCpuUsPerRpc - decide.runnerCpuUsPerRpc : undefined)}; copies dropped ${pct(droppedShare(s))}${s.paced ? `, late starts ${pct(lateShare(s))}` : ''}${ifAllSent(s, decide)}` : '—',
        status(s ? s.runnerCpuUsPerRpc <= 25 : undefined, s ? fairCell(s) : true),
      ]);
    }
  }
  // 2. p99 at the same offered load, paced pairs.
  const late = (d) => d && d.maxLateShare > 0.01;
  const p2 = pair('p99-mirror-thr');
  rows.push([
    'RPC p99 at 100 % mirroring (2 threads) ≤ 1.5× decision-only p99 (paced pairs, same offered load)',
    p2 ? `median of ${PAIRS} pair ratios ${fmtRatio(p2.medianP99Ratio)} (${fmtInt(p2.medianP99[1])} vs ${fmtInt(p2.medianP99[0])} µs at ${fmtInt(RATE)} RPC/s; ${p2.quietPairs} quiet pairs: ${fmtRatio(p2.quietMedianP99Ratio)}; from the due time: ${fmtRatio(p2.medianDueP99Ratio)}); copies dropped ≤ ${pct(p2.maxDroppedShare)}` +
      (p2.control ? `; control: decision-only beside a ballast on core 1 as busy as the worker and sink made it ${fmtRatio(p2.control.medianBallastP99Ratio)} of decision-only, mirrored ÷ that ${fmtRatio(p2.control.medianP99RatioToLoaded)}` : '') : 'run with --rate or --targets',
    status(p2 ? p2.medianP99Ratio <= 1.5 : undefined, p2 ? !late(p2) && p2.maxDroppedShare <= 0.01 : true),
  ]);
  // 3. RPC throughput on the RPC core, as capacity from the RPC thread's CPU per RPC. In the
  // closed loop that is a throughput ratio only when the RPC thread limits both cells: when the
  // mirrored cell's RPC thread idles (the load generator's core, shared with the worker and the
  // sink, is the limit), each of its wake-ups serves fewer calls than a saturated thread's would.
  const busy = (s) => (s ? (s.rps * s.rpcThreadUsPerRpc) / 1e6 : undefined);
  // The paced single cells when no RPC-core pairs ran (the pairs measure the same, interleaved).
  const pacedCore = CPU_RATE && coreDone.length === 0 ? [[`paced at ${fmtInt(CPU_RATE)} RPC/s`, pacedCell, false]] : [];
  for (const [load, get, closed] of [[`C = ${maxC}`, cell, true], ...pacedCore]) {
    const thr = get('mirror-all-thr');
    const decide = get('mirror-decide');
    const capRatio = thr && decide ? decide.rpcThreadUsPerRpc / thr.rpcThreadUsPerRpc : undefined;
    const idle = closed && thr && decide && busy(thr) < 0.8;
    rows.push([
      `RPC throughput on the RPC core at 100 % mirroring (2 threads) ≥ 0.8× decision-only (${load})`,
      capRatio !== undefined
        ? `capacity 1e6 ÷ RPC-thread µs/RPC: ${fmtInt(rpcCoreCapacity(thr))} vs ${fmtInt(rpcCoreCapacity(decide))} = ${fmtRatio(capRatio)} (measured RPC/s ${fmtInt(thr.rps)} vs ${fmtInt(decide.rps)}; RPC thread busy ${pct(busy(thr))} vs ${pct(busy(decide))}); copies dropped ${pct(droppedShare(thr))}${idle ? '; the mirrored cell\'s RPC thread was not its limit' : ''}`
        : '—',
      status(capRatio !== undefined ? capRatio >= 0.8 : undefined, thr ? fairCell(thr) && !idle : true),
    ]);
  }
  // The RPC-core pairs: the ratio as measured decides; the ballast's ratio is the control
  // (decision-only with core 1 as busy as the copies made it), given beside it.
  for (const d of coreDone) {
    const fair = d.maxLateShare <= 0.01 && d.maxDroppedShare <= 0.01;
    rows.push([
      `RPC throughput on the RPC core at 100 % mirroring (2 threads) ≥ 0.8× decision-only (paced pairs at ${fmtInt(d.rate)} RPC/s)`,
      `median of ${d.pairs.length} pair ratios ${fmtRatio(d.medianRatio)} (${d.quietPairs} quiet); RPC thread ${d.medianRpc.map(fmt1).join(' / ')} µs/RPC (decision / decision + ballast / mirrored); ` +
        `with the ballast on core 1 (${d.medianBallastShare === undefined ? 'n/a' : pct(d.medianBallastShare)} for the copies' ${pct(d.medianShare)}): ${fmtRatio(d.medianLoadedRatio)} (${fmtRatio(d.minLoadedRatio)}–${fmtRatio(d.maxLoadedRatio)}), the ballast alone ${fmtRatio(d.medianBallastEffect)}; ` +
        `copies dropped ≤ ${pct(d.maxDroppedShare)}, late starts ≤ ${pct(d.maxLateShare)}`,
      status(d.medianRatio >= 0.8, fair),
    ]);
  }
  // 4. Dead target.
  const pd = pair('p99-dead');
  rows.push([
    'RPC p99 with a dead (refused) target ≤ 1.5× the unsampled route\'s (paced pairs)',
    pd ? `median of ${PAIRS} pair ratios ${fmtRatio(pd.medianP99Ratio)} (${fmtInt(pd.medianP99[1])} vs ${fmtInt(pd.medianP99[0])} µs at ${fmtInt(RATE)} RPC/s; ${pd.quietPairs} quiet pairs: ${fmtRatio(pd.quietMedianP99Ratio)}; from the due time: ${fmtRatio(pd.medianDueP99Ratio)})` : 'run with --rate or --targets',
    status(pd ? pd.medianP99Ratio <= 1.5 : undefined, !late(pd)),
  ]);
  // 5. ExtraInfo.
  const mirrored = ['mirror-all', 'mirror-all-thr'].map(cell).filter(Boolean);
  const varPerRpc = mirrored.length ? Math.max(...mirrored.map((s) => s.extraInfo.var / Math.max(1, s.completed))) : undefined;
  rows.push([
    'No ExtraInfo round trip per copy for `GET /get?x=1` (query rebuilt from the args)',
    varPerRpc !== undefined ? `ExtraInfo var ${varPerRpc.toFixed(2)} per RPC` : '—',
    status(varPerRpc !== undefined ? varPerRpc === 0 : undefined),
  ]);
  const lines = [
    '| issue 13 target | this run | status |',
    '|---|---|---|',
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ];
  const fast = cell('mirror-all-thr');
  const slow = cell('mirror-all-http');
  if (fast?.sinkCpuUsPerCopy && slow?.sinkCpuUsPerCopy) {
    lines.push('', `Sink CPU per copy received in the mirrored cells (2 threads, C = ${maxC}): fast sink ${fmt1(fast.sinkCpuUsPerCopy)} µs, node:http sink ${fmt1(slow.sinkCpuUsPerCopy)} µs (${fmtRatio(slow.sinkCpuUsPerCopy / fast.sinkCpuUsPerCopy)}).`);
  }
  lines.push('', '"not measured fairly": more than 1 % of the copies were dropped (the CPU per request then leaves out their sending, and the RPC thread may have skipped work for them), or more than 1 % of the paced calls started late (the offered load was not sustained), or (closed-loop throughput) the mirrored cell\'s RPC thread was busy less than 80 % of the time: another core limited that cell, and its RPC thread served fewer calls per wake-up than a saturated one would.');
  return lines.join('\n');
}

// ---- main ----------------------------------------------------------------------------------
async function main() {
  mkdirSync(OUT_DIR, { recursive: true });
  const runnerBuilt = existsSync(RUNNER_ENTRY);
  if (!existsSync(resolve(REPO_ROOT, process.env.BENCH_DIST ?? 'dist', 'protocol/generated/a6.js'))) {
    throw new Error('the project is not built: run `npm run build` (npm run bench does it)');
  }
  process.stderr.write(`bench: ${pinNote}\n`);
  if (!runnerBuilt) process.stderr.write(`bench: ${RUNNER_ENTRY} not found: only the floor is measured\n`);

  const results = [];
  const floors = new Map(); // `${caseId}:${C}` -> summary
  const sinks = new Map(); // mode -> sink
  const children = new Set();
  // Runners kept for the paced pairs once their matrix cells are done.
  const kept = new Map(); // case id -> server
  const pairIds = RATE ? new Set(COMPARISONS.filter((x) => !ONLY || (ONLY.has(x.a) && ONLY.has(x.b))).flatMap((x) => [x.a, x.b])) : new Set();
  const corePairs = CORE_RATES.length > 0 && (!ONLY || (ONLY.has('mirror-decide') && ONLY.has('mirror-all-thr')));
  if (corePairs) for (const id of ['mirror-decide', 'mirror-all-thr']) pairIds.add(id);
  const coreDone = [];
  // CPU rounds need the decision-only cell and at least one mirrored cell.
  const cpuRoundIds = CPU_ROUNDS > 0 ? CPU_ROUND_CELLS.filter((id) => !ONLY || ONLY.has(id)) : [];
  const cpuRounds = cpuRoundIds[0] === 'mirror-decide' && cpuRoundIds.length >= 2;
  if (cpuRounds) for (const id of cpuRoundIds) pairIds.add(id);
  // The floor runs in each CPU round too, as the machine's gauge (see runCpuRounds).
  if (cpuRounds) pairIds.add('floor');
  let cpuDone;
  const pinNotes = new Map(); // case id -> note
  const cleanup = async () => {
    for (const server of kept.values()) freeze(server, false);
    for (const c of children) await stopChild(c);
    for (const s of sinks.values()) await stopChild(s.child);
  };
  process.once('SIGINT', () => { cleanup().finally(() => process.exit(130)); });
  const sinkFor = (c) => (c.sink ? sinks.get(c.sinkMode ?? 'fast') : undefined);
  let routeVersion = 0;
  const nextKey = () => `route#1#ext-plugin-pre-req#${++routeVersion}`;
  const pairsDone = [];
  const calibration = flags.targets || flags['sink-calibration'] ? await calibrateSinks() : undefined;

  try {
    for (const c of CASES) {
      if (ONLY && !ONLY.has(c.id) && !(c.server === 'floor' && [...ONLY].some((id) => CASES.find((x) => x.id === id)?.floor === c.id))) continue;
      if (c.server !== 'floor' && !runnerBuilt) {
        results.push({ label: c.label, error: 'runner not built (dist/cli.js missing)' });
        continue;
      }
      if (c.sink && !sinks.has(c.sinkMode ?? 'fast')) sinks.set(c.sinkMode ?? 'fast', await startSink(c.sinkMode ?? 'fast'));
      const sink = sinkFor(c);
      let server;
      try {
        server = await startServer(c, `server-${c.id}.log`);
      } catch (err) {
        results.push({ label: c.label, error: `server failed to start: ${err.message} (see ${resolve(OUT_DIR, `server-${c.id}.log`)})` });
        continue;
      }
      children.add(server.child);
      try {
        const note = await pinWorkers(c, server, confOf(c, sink?.port));
        if (note) pinNotes.set(c.id, note);
      } catch (err) {
        pinNotes.set(c.id, `**worker pinning failed**: ${err.message.split('\n')[0]}`);
      }
      // The closed-loop cells, then (with --cpu-rate) one paced cell at the largest C.
      const variants = [...CONNECTIONS.map((C) => ({ C })), ...(CPU_RATE ? [{ C: Math.max(...CONNECTIONS), rate: CPU_RATE }] : [])];
      for (const { C, rate } of variants) {
        process.stderr.write(`bench: ${c.label}, C=${C}${rate ? ` paced at ${rate} RPC/s` : ''} ...\n`);
        try {
          const summary = await quietest(
            () => runOnce(c, server, sink, { connections: C, key: nextKey(), rate }),
            (s) => s.otherCpuUtilisation ?? 0,
            async (noise) => {
              process.stderr.write(`bench:   noisy (other processes used ${Math.round(noise * 100)}% of a core), trying again\n`);
              await sleep(2000);
            },
          );
          const variant = rate ? `${C}@${rate}` : `${C}`;
          if (c.server === 'floor') floors.set(`${c.id}:${variant}`, summary);
          const floor = c.floor ? floors.get(`${c.floor}:${variant}`) : undefined;
          const mirrored = summary.mirrorsReceived;
          const extra = [
            (c.id.startsWith('mirror-all') || c.id.startsWith('compare-') || c.id === 'mirror-postresp') && mirrored !== undefined ? `sink got ${fmtInt(mirrored.requests)} mirrors on ${fmtInt(mirrored.connections)} new connections${mirrored.reads > 0 ? `, ${fmt1(mirrored.requests / mirrored.reads)} per read` : ''} (warm-up included)` : undefined,
            pinNotes.get(c.id),
          ].filter(Boolean).join('; ');
          results.push({
            id: c.id,
            label: c.label,
            connections: C,
            rate,
            summary,
            rpsVsFloor: floor ? summary.rps / floor.rps : undefined,
            cpuVsFloor: floor && floor.runnerCpuUsPerRpc ? summary.runnerCpuUsPerRpc / floor.runnerCpuUsPerRpc : undefined,
            notes: notesOf(summary, extra || undefined),
          });
        } catch (err) {
          results.push({ label: c.label, connections: C, error: err.message.split('\n')[0] });
        }
        if (server.child.exitCode !== null) {
          results.push({ label: c.label, error: `server exited (${server.child.exitCode}); see ${resolve(OUT_DIR, `server-${c.id}.log`)}` });
          break;
        }
      }
      if (pairIds.has(c.id) && server.child.exitCode === null) {
        kept.set(c.id, server);
        freeze(server, true);
        continue;
      }
      await stopChild(server.child);
      children.delete(server.child);
      rmSync(server.socketPath, { force: true });
    }

    if (cpuRounds) {
      const missing = cpuRoundIds.filter((id) => !kept.has(id));
      if (missing.length > 0) {
        // A runner that exited in the matrix: the target is read from the matrix's cells.
        process.stderr.write(`bench: CPU rounds skipped: no runner left for ${missing.join(', ')} (see its row)\n`);
      } else {
        try {
          cpuDone = await runCpuRounds(cpuRoundIds, kept, sinkFor, nextKey, kept.has('floor') ? 'floor' : undefined);
        } catch (err) {
          process.stderr.write(`bench: CPU rounds failed: ${err.message.split('\n')[0]}\n`);
        }
      }
    }
    if (corePairs) {
      for (const rate of CORE_RATES) {
        if (!kept.has('mirror-decide') || !kept.has('mirror-all-thr')) break;
        try {
          coreDone.push(await runCorePairs(rate, kept, sinkFor, nextKey));
        } catch (err) {
          process.stderr.write(`bench: RPC-core pairs at ${rate} RPC/s failed: ${err.message.split('\n')[0]}\n`);
        }
      }
    }
    if (RATE) {
      for (const cmp of COMPARISONS) {
        if (!kept.has(cmp.a) || !kept.has(cmp.b)) continue;
        try {
          pairsDone.push(await runPairs(cmp, kept, sinkFor, nextKey));
        } catch (err) {
          process.stderr.write(`bench: pairs ${cmp.id} failed: ${err.message.split('\n')[0]}\n`);
        }
      }
    }
  } finally {
    for (const server of kept.values()) {
      freeze(server, false);
      rmSync(server.socketPath, { force: true });
    }
    await cleanup();
  }

  const command = `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
  const report = [
    `## RPC benchmark (${new Date().toISOString()})`,
    '',
    `Command: \`${command}\``,
    '',
    ...machineLines(),
    '',
    renderTable(results),
    '',
    '"vs floor": the same column of the framing-only floor server at the same C in this run (RPC/s ratio: higher is better; CPU ratio: lower is better). The 1 KiB body row is compared with the floor that also asks for the body.',
    '"RPC thread" is the runner\'s main thread (tid = pid), "other threads" all the others (mirror workers, GC and compiler helpers, libuv pool), from /proc/<pid>/task/*/schedstat over the measured window; "runner CPU" is the process total from /proc/<pid>/stat. "RPC-core capacity" is 1e6 ÷ RPC-thread µs per RPC. Copies are counted over the whole cell (warm-up included) from the runner\'s metrics and the sink; "sink µs/copy" is the sink process\'s CPU per copy received in the measured window.',
    '',
    ...(pairsDone.length ? [renderPairs(pairsDone), ''] : []),
    ...(cpuDone ? [renderCpuRounds(cpuDone), ''] : []),
    ...(coreDone.length ? [renderCorePairs(coreDone), ''] : []),
    ...(calibration ? [renderCalibration(calibration), ''] : []),
    ...(flags.targets ? ['### Issue 13 targets', '', renderTargets(results, pairsDone, coreDone, cpuDone), ''] : []),
  ].join('\n');
  process.stdout.write(`${report}\n`);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  writeFileSync(resolve(OUT_DIR, `bench-${stamp}.md`), report);
  writeFileSync(resolve(OUT_DIR, 'bench-latest.md'), report);
  writeFileSync(resolve(OUT_DIR, `bench-${stamp}.json`), JSON.stringify({ command, machine: machineLines(), results, pairs: pairsDone, corePairs: coreDone, cpuRounds: cpuDone, sinkCalibration: calibration }, null, 2));
  process.stderr.write(`bench: written to ${resolve(OUT_DIR, `bench-${stamp}`)}.md and .json\n`);
}

main().catch((err) => {
  process.stderr.write(`bench: ${err.stack ?? err}\n`);
  process.exit(1);
});
