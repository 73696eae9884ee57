#!/usr/bin/env node
/**
 * Soak: at least SOAK_CALLS HTTPReqCalls (default 10^6) through the built runner (dist/cli.js,
 * a child process on a Unix socket, as APISIX runs it) with proxy-mirror at sample_ratio 1,
 * once against a healthy local HTTP target and once against a dead one (a closed port).
 * Every SOAK_SAMPLE_S seconds it samples the runner process: V8 heap used after a full GC
 * (bench/soak-gc.mjs makes SIGUSR2 run one; read from the runner's /metrics),
 * RSS and open fds (from /proc/<pid>), and the mirror outcomes so far; then prints a table.
 * The load is bench/loadgen.mjs in segments of SOAK_SAMPLE_S seconds, each on fresh
 * connections (so connection churn is soaked too). Not part of `npm test`.
 *
 *   npm run build && node bench/soak.mjs
 *   SOAK_CALLS=200000 SOAK_TARGETS=dead SOAK_CONNECTIONS=8 node bench/soak.mjs
 *   SOAK_PLUGIN=say node bench/soak.mjs      (no mirror: the runner core alone)
 *   SOAK_JSON=/tmp/soak.json node bench/soak.mjs   (also writes the samples as JSON)
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { runLoad, processRssKiB } from './loadgen.mjs';
import { freePort, scrape, startNodeServer, startWithMetricsPort, stopChild } from './children.mjs';
import { pathToFileURL } from 'node:url';
import { REPO_ROOT, distDir } from './protocol.mjs';

const CALLS = Number(process.env.SOAK_CALLS ?? 1_000_000);
const CONNECTIONS = Number(process.env.SOAK_CONNECTIONS ?? 8);
const SAMPLE_S = Number(process.env.SOAK_SAMPLE_S ?? 5);
const TARGETS = (process.env.SOAK_TARGETS ?? 'healthy,dead').split(',').map((t) => t.trim()).filter(Boolean);
const PLUGIN = process.env.SOAK_PLUGIN ?? 'proxy-mirror';
/** Hard stop per scenario, so a stalled runner cannot make the soak run forever. */
const MAX_SECONDS = Number(process.env.SOAK_MAX_SECONDS ?? 1800);

// The healthy target runs in its own process so its work is not on the load generator's loop.
const TARGET_SRC = `
const http = require('node:http');
let n = 0;
const s = http.createServer((req, res) => {
  if (req.url === '/__soak/count') { res.end(String(n)); return; }
  n++;
  req.resume();
  req.on('end', () => { res.writeHead(200, { 'content-length': '0' }); res.end(); });
});
s.keepAliveTimeout = 60000;
s.listen(0, '127.0.0.1', () => process.stdout.write('port ' + s.address().port + '\\n'));
process.on('SIGTERM', () => { s.closeAllConnections(); s.close(() => process.exit(0)); });
`;

function startTarget() {
  return startNodeServer(TARGET_SRC);
}

/** A port that was free a moment ago and has nobody listening: connections are refused. */
const deadPort = freePort;

function fdCount(pid) {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return undefined;
  }
}

const mib = (bytes) => (bytes === undefined ? 'n/a' : (bytes / 1048576).toFixed(1));

async function scenario(kind) {
  const cli = path.join(distDir(), 'cli.js');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'soak-'));
  const socketPath = path.join(dir, 'r.sock');
  const target = kind === 'healthy' ? await startTarget() : { child: undefined, url: `http://127.0.0.1:${await deadPort()}` };
  const configPath = path.join(dir, 'runner.json');
  // --expose-gc + a SIGUSR2 handler: each sample follows a full GC (live heap, not garbage).
  const gcPreload = path.join(REPO_ROOT, 'bench/soak-gc.mjs');
  const { runner, metricsPort } = await startWithMetricsPort((metricsPort) => {
    writeFileSync(configPath, JSON.stringify({
      logLevel: 'warn',
      metricsAddress: `127.0.0.1:${metricsPort}`,
      plugin_attr: { 'proxy-mirror': { timeout: { connect: '1s', send: '5s', read: '5s' } } },
    }));
    return spawn(process.execPath, ['--expose-gc', '--import', pathToFileURL(gcPreload).href, cli, '--config', configPath], {
      cwd: REPO_ROOT,
      env: { ...process.env, APISIX_LISTEN_ADDRESS: `unix:${socketPath}` },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
  }, socketPath).catch(async (err) => {
    if (target.child) await stopChild(target.child);
    throw err;
  });
  // Lines written while it started wait in the pipe until the handler below reads them.
  // Count the runner's log lines: a dead target must not produce one line per request.
  let logLines = 0;
  let warnLines = 0;
  let partial = '';
  runner.stdout.on('data', (d) => {
    const text = partial + d.toString();
    const lines = text.split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) {
      if (!l) continue;
      logLines++;
      if (/"level":(40|50|60)/.test(l)) warnLines++;
    }
  });
  const conf = PLUGIN === 'proxy-mirror'
    ? [{ name: 'proxy-mirror', value: JSON.stringify({ host: target.url, sample_ratio: 1 }) }]
    : [{ name: 'say', value: JSON.stringify({ body: 'soak' }) }];
  const samples = [];
  const started = Date.now();
  let completed = 0;
  let errors = 0;
  let reconnects = 0;
  let unexpected = 0;
  try {
    const sample = async (label) => {
      runner.kill('SIGUSR2');
      await sleep(250);
      const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      const s = {
        label,
        seconds: Math.round((Date.now() - started) / 1000),
        calls: completed,
        heapUsed: scrape(text, 'nodejs_heap_size_used_bytes'),
        rssKiB: processRssKiB(runner.pid),
        fds: fdCount(runner.pid),
        connections: scrape(text, 'apisix_runner_connections'),
        mirrorSent: scrape(text, 'apisix_runner_mirror_requests_total', { outcome: 'sent' }),
        mirror2xx: scrape(text, 'apisix_runner_mirror_requests_total', { outcome: '2xx' }),
        mirrorError: scrape(text, 'apisix_runner_mirror_requests_total', { outcome: 'error' }),
        mirrorTimeout: scrape(text, 'apisix_runner_mirror_requests_total', { outcome: 'timeout' }),
        mirrorDropped: scrape(text, 'apisix_runner_mirror_requests_total', { outcome: 'dropped' }),
        inflight: scrape(text, 'apisix_runner_mirror_inflight'),
        queued: scrape(text, 'apisix_runner_mirror_queued'),
        logLines,
        warnLines,
      };
      samples.push(s);
      process.stderr.write(`[${kind}] ${s.seconds}s calls=${s.calls} heap=${mib(s.heapUsed)}MiB rss=${(s.rssKiB / 1024).toFixed(1)}MiB fds=${s.fds} sent=${s.mirrorSent} 2xx=${s.mirror2xx} err=${s.mirrorError} dropped=${s.mirrorDropped} logs=${logLines}\n`);
    };
    await sample('start');
    let first = true;
    while (completed < CALLS && (Date.now() - started) / 1000 < MAX_SECONDS) {
      const r = await runLoad({
        socketPath,
        connections: CONNECTIONS,
        durationMs: SAMPLE_S * 1000,
        warmupMs: first ? 1000 : 0,
        conf,
        key: `route#soak-${kind}#ext-plugin-pre-req#1`,
        pid: runner.pid,
      });
      first = false;
      completed += r.completed;
      errors += r.errors;
      reconnects += r.reconnects;
      unexpected += r.unexpectedFrames;
      await sample('load');
    }
    // Idle: copies in flight finish, connections close; what is left is what leaks.
    await sleep(6000);
    await sample('idle');
    const stopAt = Date.now();
    const exitCode = await stopChild(runner);
    return { kind, samples, completed, errors, reconnects, unexpected, exitCode, stopMs: Date.now() - stopAt, seconds: (Date.now() - started) / 1000, target: target.url };
  } finally {
    await stopChild(runner);
    if (target.child) {
      try {
        const n = await stopChild(target.child);
        void n;
      } catch {
        // already gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

function table(result) {
  const lines = [
    `### ${PLUGIN} → ${result.kind} target (${result.target})`,
    '',
    `${result.completed.toLocaleString('en')} HTTPReqCalls in ${result.seconds.toFixed(0)} s (${Math.round(result.completed / result.seconds).toLocaleString('en')}/s overall), ${CONNECTIONS} connections per segment; errors ${result.errors}, reconnects ${result.reconnects}, unexpected frames ${result.unexpected}; SIGTERM → exit ${result.exitCode} in ${result.stopMs} ms`,
    '',
    '| t (s) | calls | heap after GC MiB | RSS MiB | fds | conns | mirror sent | 2xx | error | timeout | dropped | in flight | queued | log lines (warn+) |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  // Keep the table readable: at most ~16 rows, always the first, last and idle samples.
  const s = result.samples;
  const step = Math.max(1, Math.ceil(s.length / 14));
  const rows = s.filter((_, i) => i === 0 || i >= s.length - 2 || i % step === 0);
  for (const r of rows) {
    lines.push(`| ${r.seconds}${r.label === 'idle' ? ' (idle)' : ''} | ${r.calls.toLocaleString('en')} | ${mib(r.heapUsed)} | ${r.rssKiB === undefined ? 'n/a' : (r.rssKiB / 1024).toFixed(1)} | ${r.fds ?? 'n/a'} | ${r.connections} | ${r.mirrorSent} | ${r.mirror2xx} | ${r.mirrorError} | ${r.mirrorTimeout} | ${r.mirrorDropped} | ${r.inflight} | ${r.queued} | ${r.logLines} (${r.warnLines}) |`);
  }
  // Flatness after warm-up: compare the second quarter with the last quarter of the load samples.
  const load = s.filter((x) => x.label === 'load');
  if (load.length >= 8) {
    const q = Math.floor(load.length / 4);
    const avg = (xs, f) => xs.reduce((a, x) => a + f(x), 0) / xs.length;
    const early = load.slice(q, 2 * q);
    const late = load.slice(-q);
    lines.push('', `heap after GC, 2nd quarter avg ${mib(avg(early, (x) => x.heapUsed))} MiB → last quarter avg ${mib(avg(late, (x) => x.heapUsed))} MiB; RSS ${(avg(early, (x) => x.rssKiB) / 1024).toFixed(1)} → ${(avg(late, (x) => x.rssKiB) / 1024).toFixed(1)} MiB; fds max ${Math.max(...load.map((x) => x.fds ?? 0))}, idle ${s.at(-1).fds}`);
  }
  return lines.join('\n');
}

async function main() {
  const cli = path.join(distDir(), 'cli.js');
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run \`npm run build\` first`);
  process.stderr.write(`soak: ${CALLS} calls per scenario, plugin ${PLUGIN}, targets ${TARGETS.join(', ')}, node ${process.version}, ${os.cpus().length} cores\n`);
  const results = [];
  for (const kind of TARGETS) {
    if (kind !== 'healthy' && kind !== 'dead') throw new Error(`SOAK_TARGETS: unknown target "${kind}" (healthy, dead)`);
    results.push(await scenario(kind));
  }
  const out = results.map(table).join('\n\n');
  process.stdout.write(`${out}\n`);
  if (process.env.SOAK_JSON) writeFileSync(process.env.SOAK_JSON, JSON.stringify(results, null, 2));
}

main().catch((err) => {
  process.stderr.write(`soak: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
