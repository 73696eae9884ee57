#!/usr/bin/env node
/**
 * RPC benchmark matrix (`npm run bench`): starts the runner (`node dist/cli.js`) as a child
 * process pinned to core 0, drives it from bench/loadgen.mjs pinned to core 1, for each
 * conf × connection count, and compares every cell with the framing-only floor server
 * measured in the same run. Prints a markdown table and writes it (plus raw JSON) to
 * .bench-out/.
 *
 * Flags (env in brackets):
 *   --quick                 ~1 min run: 1 s per cell, 0.5 s warm-up
 *   --duration <s>          seconds measured per cell [BENCH_DURATION] (default 3)
 *   --warmup <s>            seconds of load before measuring [BENCH_WARMUP] (default 1)
 *   --connections <list>    e.g. 1,4,32 [BENCH_CONNECTIONS] (default 1,4,32)
 *   --only <list>           case ids to run, e.g. floor,none,say (default all)
 *   --no-pin                do not use taskset even when available
 *   --runner <path>         runner entry (default dist/cli.js)
 *   --max-tries <n>         run a cell again (up to n times in all, keeping the quietest try) when
 *                           other processes used more than 20% of a core during it [BENCH_MAX_TRIES] (default 3)
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync, createWriteStream } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { REPO_ROOT } from './protocol.mjs';

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
  },
});

const DURATION_S = Number(flags.duration ?? process.env.BENCH_DURATION ?? (flags.quick ? 1 : 3));
const WARMUP_S = Number(flags.warmup ?? process.env.BENCH_WARMUP ?? (flags.quick ? 0.5 : 1));
const CONNECTIONS = (flags.connections ?? process.env.BENCH_CONNECTIONS ?? '1,4,32').split(',').map(Number);
const ONLY = flags.only ? new Set(flags.only.split(',')) : undefined;
const RUNNER_ENTRY = resolve(REPO_ROOT, flags.runner ?? 'dist/cli.js');
const OUT_DIR = resolve(REPO_ROOT, '.bench-out');
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
const mirror = (port, ratio, extra = {}) => ({
  name: 'proxy-mirror',
  value: JSON.stringify({ host: `http://127.0.0.1:${port}`, sample_ratio: ratio, ...extra }),
});

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
  { id: 'mirror-decide', label: 'proxy-mirror 0.00001 (decision)', conf: (p) => [mirror(p, 0.00001)], floor: 'floor', sink: true },
  { id: 'mirror-all', label: 'proxy-mirror 1 → sink', conf: (p) => [mirror(p, 1)], floor: 'floor', sink: true, args: ['--mirror-threads', '1'] },
  // Copies from a worker thread; the runner may use both cores (the second is shared with the
  // load generator and the sink), as "when a second core is available" asks.
  { id: 'mirror-all-thr', label: 'proxy-mirror 1 → sink, 2 threads', conf: (p) => [mirror(p, 1)], floor: 'floor', sink: true, args: ['--mirror-threads', '2'], cores: '0,1' },
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

/** Stops a child we started: SIGTERM, then SIGKILL after `graceMs`. */
async function stopChild(child, graceMs = 5000) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** Starts the server of a case pinned to core 0; returns { child, socketPath }. */
async function startServer(c, logName) {
  const socketPath = socketPathFor(c.id);
  const entry = c.server === 'floor' ? [resolve(REPO_ROOT, 'bench/floor-server.mjs')] : [RUNNER_ENTRY];
  const args = [...(c.plugin ? ['--plugin', c.plugin] : []), ...(c.args ?? [])];
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
  await waitForSocket(socketPath, child);
  return { child, socketPath };
}

/** Starts the mirror sink on core 1; returns { child, port }. */
async function startSink() {
  const argv = pinned(1, [process.execPath, resolve(REPO_ROOT, 'bench/sink-server.mjs')]);
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise((res, rej) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = /sink listening on (\d+)/.exec(out);
      if (m) res(Number(m[1]));
    });
    child.once('exit', (code) => rej(new Error(`sink exited with ${code}`)));
  });
  return { child, port };
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
function runLoadgen({ socketPath, connections, conf, key, respConf, bodySize, pid, helperPids }) {
  const argv = pinned(1, [
    process.execPath, resolve(REPO_ROOT, 'bench/loadgen.mjs'),
    '--socket', socketPath,
    '--connections', String(connections),
    '--duration', String(DURATION_S),
    '--warmup', String(WARMUP_S),
    '--conf', JSON.stringify(conf),
    '--key', key,
    '--body-size', String(bodySize ?? 0),
    ...(respConf ? ['--resp-conf', JSON.stringify(respConf), '--resp-key', key.replace('pre-req', 'post-resp')] : []),
    '--pid', String(pid),
    ...(helperPids?.length ? ['--helper-pids', helperPids.join(',')] : []),
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
  ];
}

function renderTable(rows) {
  const lines = [
    '| case | C | RPC/s | p50 µs | p99 µs | runner CPU µs/RPC | runner CPU use | RPC/s vs floor | CPU/RPC vs floor | notes |',
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|---|',
  ];
  for (const r of rows) {
    if (r.error) {
      lines.push(`| ${r.label} | ${r.connections ?? ''} | — | — | — | — | — | — | — | ${r.error} |`);
      continue;
    }
    const s = r.summary;
    lines.push(
      `| ${r.label} | ${s.connections} | ${fmtInt(s.rps)} | ${fmtInt(s.latencyUs.p50)} | ${fmtInt(s.latencyUs.p99)} | ` +
        `${fmt1(s.runnerCpuUsPerRpc)} | ${s.runnerCpuUtilisation === undefined ? 'n/a' : `${Math.round(s.runnerCpuUtilisation * 100)}%`} | ` +
        `${fmtRatio(r.rpsVsFloor)} | ${fmtRatio(r.cpuVsFloor)} | ${r.notes} |`,
    );
  }
  return lines.join('\n');
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
  if (s.otherCpuUtilisation > NOISE_LIMIT) notes.push(`**noisy: other processes used ${Math.round(s.otherCpuUtilisation * 100)}% of a core** (best of ${s.tries} tries)`);
  if (extra) notes.push(extra);
  return notes.join('; ');
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
  let sink;
  const children = new Set();
  const cleanup = async () => {
    for (const c of children) await stopChild(c);
    if (sink) await stopChild(sink.child);
  };
  process.once('SIGINT', () => { cleanup().finally(() => process.exit(130)); });

  try {
    for (const c of CASES) {
      if (ONLY && !ONLY.has(c.id) && !(c.server === 'floor' && [...ONLY].some((id) => CASES.find((x) => x.id === id)?.floor === c.id))) continue;
      if (c.server !== 'floor' && !runnerBuilt) {
        results.push({ label: c.label, error: 'runner not built (dist/cli.js missing)' });
        continue;
      }
      if (c.sink && !sink) sink = await startSink();
      let server;
      try {
        server = await startServer(c, `server-${c.id}.log`);
      } catch (err) {
        results.push({ label: c.label, error: `server failed to start: ${err.message} (see .bench-out/server-${c.id}.log)` });
        continue;
      }
      children.add(server.child);
      let routeVersion = 0;
      for (const C of CONNECTIONS) {
        process.stderr.write(`bench: ${c.label}, C=${C} ...\n`);
        try {
          let summary;
          let mirrored;
          let tries = 0;
          // Other jobs on the machine skew a cell badly: run it again and keep the quietest try.
          while (tries < MAX_TRIES) {
            tries++;
            const b = c.sink ? await sinkCount(sink.port) : undefined;
            const s = await runLoadgen({
              socketPath: server.socketPath,
              connections: C,
              conf: c.conf ? c.conf(sink?.port) : [],
              respConf: c.respConf ? c.respConf(sink?.port) : undefined,
              key: `route#1#ext-plugin-pre-req#${++routeVersion}`,
              bodySize: c.bodySize,
              pid: server.child.pid,
              helperPids: c.sink ? [sink.child.pid] : [],
            });
            const a = c.sink ? await sinkCount(sink.port) : undefined;
            if (!summary || (s.otherCpuUtilisation ?? 0) < (summary.otherCpuUtilisation ?? 0)) {
              summary = s;
              mirrored = b !== undefined && a !== undefined
                ? { requests: a.requests - b.requests, connections: a.connections - b.connections - 1 } // -1: our count request
                : undefined;
            }
            if ((summary.otherCpuUtilisation ?? 0) <= NOISE_LIMIT) break;
            process.stderr.write(`bench:   noisy (other processes used ${Math.round(s.otherCpuUtilisation * 100)}% of a core), trying again\n`);
            await sleep(2000);
          }
          summary.tries = tries;
          if (c.server === 'floor') floors.set(`${c.id}:${C}`, summary);
          const floor = c.floor ? floors.get(`${c.floor}:${C}`) : undefined;
          if (mirrored !== undefined) summary.mirrorsReceived = mirrored;
          results.push({
            id: c.id,
            label: c.label,
            connections: C,
            summary,
            rpsVsFloor: floor ? summary.rps / floor.rps : undefined,
            cpuVsFloor: floor && floor.runnerCpuUsPerRpc ? summary.runnerCpuUsPerRpc / floor.runnerCpuUsPerRpc : undefined,
            notes: notesOf(summary, (c.id.startsWith('mirror-all') || c.id.startsWith('compare-') || c.id === 'mirror-postresp') && mirrored !== undefined ? `sink got ${fmtInt(mirrored.requests)} mirrors on ${fmtInt(mirrored.connections)} new connections (warm-up included)` : undefined),
          });
        } catch (err) {
          results.push({ label: c.label, connections: C, error: err.message.split('\n')[0] });
        }
        if (server.child.exitCode !== null) {
          results.push({ label: c.label, error: `server exited (${server.child.exitCode}); see .bench-out/server-${c.id}.log` });
          break;
        }
      }
      await stopChild(server.child);
      children.delete(server.child);
      rmSync(server.socketPath, { force: true });
    }
  } finally {
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
    '',
  ].join('\n');
  process.stdout.write(`${report}\n`);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  writeFileSync(resolve(OUT_DIR, `bench-${stamp}.md`), report);
  writeFileSync(resolve(OUT_DIR, 'bench-latest.md'), report);
  writeFileSync(resolve(OUT_DIR, `bench-${stamp}.json`), JSON.stringify({ command, machine: machineLines(), results }, null, 2));
  process.stderr.write(`bench: written to .bench-out/bench-${stamp}.md and .json\n`);
}

main().catch((err) => {
  process.stderr.write(`bench: ${err.stack ?? err}\n`);
  process.exit(1);
});
