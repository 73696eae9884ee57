#!/usr/bin/env node
/**
 * What proxy-mirror costs the real request. Runs the runner from dist/ (as APISIX would: a
 * child process on a Unix socket) and plays APISIX's side with bench/loadgen.mjs
 * (`GET /get?x=1`, one RPC in flight per connection). Three cells, one run:
 *   1. no mirror        — the route has no plugin (the baseline);
 *   2. mirror → fast    — proxy-mirror sample_ratio 1 to a local target answering at once
 *                         (the bench's fast sink);
 *   3. mirror → 2 s     — proxy-mirror sample_ratio 1 to a local target answering after 2 s.
 * Prints a markdown table: throughput and HTTPReqCall latency p50/p99, each also as a ratio
 * to the no-mirror cell, plus the mirror outcomes scraped from the runner's /metrics.
 *
 *   npm run bench:mirror                   (builds first)
 *   BENCH_SECONDS=5 BENCH_CONNECTIONS=8 node bench/mirror.mjs
 *   BENCH_MIRROR_THREADS=1 node bench/mirror.mjs   (copies from the RPC thread)
 *   BENCH_SINK_MODE=http node bench/mirror.mjs      (the fast target served by node:http, as before)
 * The fast target is bench/sink-server.mjs (raw `net`, answers 200 with an empty body).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { runLoad } from './loadgen.mjs';
import { scrape, startNodeServer, startWithMetricsPort, stopChild } from './children.mjs';
import { startSinkProcess } from './sink-server.mjs';
import { REPO_ROOT, distDir } from './protocol.mjs';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP ?? 1.5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 4);
const SLOW_MS = 2000;

// A mirror target in its own process, so its work does not disturb the load generator's clock.
const TARGET_SRC = `
const http = require('node:http');
const delay = Number(process.env.DELAY_MS);
const s = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    const answer = () => { res.writeHead(200, { 'content-length': '2' }); res.end('ok'); };
    if (delay > 0) setTimeout(answer, delay); else answer();
  });
});
s.keepAliveTimeout = 60000;
s.listen(0, '127.0.0.1', () => process.stdout.write('port ' + s.address().port + '\\n'));
process.on('SIGTERM', () => process.exit(0));
`;

/** A mirror target that answers after `delayMs`. */
function startTarget(delayMs) {
  return startNodeServer(TARGET_SRC, { DELAY_MS: String(delayMs) });
}

/**
 * The fast target: bench/sink-server.mjs in its raw `net` mode (BENCH_SINK_MODE=http for the
 * node:http one), which keeps up with the copies where a node:http server on a shared core did
 * not (the cell then measured the target more than the runner).
 */
async function startFastTarget() {
  const { child, port } = await startSinkProcess(process.env.BENCH_SINK_MODE ?? 'fast');
  return { child, url: `http://127.0.0.1:${port}` };
}

async function main() {
  const cli = path.join(distDir(), 'cli.js');
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run \`npm run build\` first`);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bm-'));
  const socketPath = path.join(dir, 'r.sock');
  const configPath = path.join(dir, 'runner.json');
  const fast = await startFastTarget();
  const slow = await startTarget(SLOW_MS);
  const { runner, metricsPort } = await startWithMetricsPort((metricsPort) => {
    writeFileSync(configPath, JSON.stringify({
      logLevel: 'error',
      metricsAddress: `127.0.0.1:${metricsPort}`,
      // Like APISIX's plugin_attr.proxy-mirror.timeout; the slow target answers within them.
      plugin_attr: {
        'proxy-mirror': {
          timeout: { connect: '1s', send: '5s', read: '5s' },
          // Threads that send copies (1: the RPC thread); unset: the runner's default.
          ...(process.env.BENCH_MIRROR_THREADS ? { mirror_threads: Number(process.env.BENCH_MIRROR_THREADS) } : {}),
        },
      },
    }));
    return spawn(process.execPath, [cli, '--config', configPath], {
      cwd: REPO_ROOT,
      env: { ...process.env, APISIX_LISTEN_ADDRESS: `unix:${socketPath}` },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
  }, socketPath).catch(async (err) => {
    await stopChild(fast.child);
    await stopChild(slow.child);
    throw err;
  });
  try {
    const mirror = (host) => [{ name: 'proxy-mirror', value: JSON.stringify({ host, sample_ratio: 1 }) }];
    const cells = [
      { id: 'none', label: 'no mirror', conf: [] },
      { id: 'fast', label: 'mirror, sample_ratio 1 → fast target', conf: mirror(fast.url), target: fast.url },
      { id: 'slow', label: `mirror, sample_ratio 1 → ${SLOW_MS / 1000} s target`, conf: mirror(slow.url), target: slow.url },
    ];
    const results = [];
    for (const cell of cells) {
      process.stderr.write(`cell ${cell.id}: ${WARMUP_SECONDS + SECONDS} s\n`);
      const summary = await runLoad({
        socketPath,
        connections: CONNECTIONS,
        durationMs: SECONDS * 1000,
        warmupMs: WARMUP_SECONDS * 1000,
        conf: cell.conf,
        key: `route#bench-${cell.id}#ext-plugin-pre-req#1`,
        pid: runner.pid,
      });
      results.push({ cell, summary });
    }
    await sleep(300);
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();

    const base = results[0].summary;
    const ratio = (v, b) => (b > 0 ? (v / b).toFixed(2) : 'n/a');
    const lines = [
      `proxy-mirror overhead: ${CONNECTIONS} connections, ${SECONDS} s per cell (after ${WARMUP_SECONDS} s warm-up), node ${process.version}, ${os.cpus().length} cores`,
      '',
      '| cell | RPC/s | p50 µs | p99 µs | RPC/s ÷ none | p50 ÷ none | p99 ÷ none | errors | mirror outcomes |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---|',
    ];
    for (const { cell, summary: s } of results) {
      let outcomes = '—';
      if (cell.target) {
        const o = (outcome) => scrape(metrics, 'apisix_runner_mirror_requests_total', { target: cell.target, outcome });
        outcomes = `sent ${o('sent')}, 2xx ${o('2xx')}, timeout ${o('timeout')}, error ${o('error')}, dropped ${o('dropped')}`;
      }
      lines.push(`| ${cell.label} | ${Math.round(s.rps)} | ${s.latencyUs.p50} | ${s.latencyUs.p99} | ${ratio(s.rps, base.rps)} | ${ratio(s.latencyUs.p50, base.latencyUs.p50)} | ${ratio(s.latencyUs.p99, base.latencyUs.p99)} | ${s.errors} | ${outcomes} |`);
    }
    lines.push('', 'The query of `GET /get?x=1` is rebuilt from the args (no ExtraInfo round trip); copies are sent after the reply.',
      'Against the 2 s target the in-flight cap (max_concurrency) and bounded queue fill up and the rest is dropped and counted.');
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await stopChild(runner);
    await stopChild(fast.child);
    await stopChild(slow.child);
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`${err.stack ?? err}\n`);
  process.exit(1);
});
