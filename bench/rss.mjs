#!/usr/bin/env node
/**
 * Memory check: RSS of a bare Node process (`node -e` with a timer) next to the runner
 * (`node dist/cli.js`) in the same run: idle (1.5 s after start, and again after --idle-wait
 * seconds, both for bare Node and the runner, which run side by side: V8's memory reducer gives
 * back the young generation that start-up grew only after several idle seconds), under 100 %
 * mirroring (C = 32 for a few seconds to a local sink: median of the second half of the window,
 * and peak), with 1,000 idle connections (each has served one RPC, as APISIX's keep-alive pool
 * leaves them), and with 10,000 cached route confs (rewrite), then 10,000 more (proxy-mirror,
 * one shared target).
 *
 *   node bench/rss.mjs [--connections 1000] [--confs 10000] [--mirror-seconds 5] [--mirror-threads 2]
 *                      [--idle-wait 30] [--breakdown] [--runner dist/cli.js] [--node-flags="--max-semi-space-size=1"]
 *
 * --node-flags passes V8/Node flags to the runner only (not to bare Node nor to this load
 * generator, as NODE_OPTIONS would). The mirroring window also reports the runner's CPU time
 * (all threads, /proc) per mirrored RPC.
 * --breakdown preloads bench/memory-probe.mjs into the runner and prints, for the mirroring
 * window, how the main thread's memory splits into V8 heap, external/array buffers and the rest.
 * Prints a markdown table and writes it to .bench-out/rss-latest.md.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadProtocol, REPO_ROOT } from './protocol.mjs';
import { FRAME_TYPE, payloadLength } from './frames.mjs';
import { processCpuMicros, processRssKiB } from './loadgen.mjs';
import { startNodeServer, stopChild } from './children.mjs';

const SINK_SRC = `
const http = require('node:http');
const s = http.createServer((req, res) => { req.resume(); req.on('end', () => res.end('ok')); });
s.keepAliveTimeout = 60000;
s.listen(0, '127.0.0.1', () => process.stdout.write('port ' + s.address().port + '\\n'));
process.on('SIGTERM', () => process.exit(0));
`;

const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '1000' },
    confs: { type: 'string', default: '10000' },
    runner: { type: 'string', default: 'dist/cli.js' },
    'mirror-seconds': { type: 'string', default: '5' },
    'mirror-threads': { type: 'string', default: '2' },
    'idle-wait': { type: 'string', default: '30' },
    breakdown: { type: 'boolean', default: false },
    'node-flags': { type: 'string', default: '' },
  },
});
const MIRROR_SECONDS = Number(values['mirror-seconds']);
const CONNECTIONS = Number(values.connections);
const CONFS = Number(values.confs);
const IDLE_WAIT_MS = Number(values['idle-wait']) * 1000;
const probeFile = resolve(os.tmpdir(), `a6rss-probe-${process.pid}.jsonl`);

const { frames } = await loadProtocol();
const socketPath = resolve(os.tmpdir(), `a6rss-${process.pid}.sock`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A connection that sends one frame at a time and resolves each reply (ExtraInfo is not expected here). */
function client(path) {
  return new Promise((res, rej) => {
    const s = net.connect(path);
    let pending = Buffer.alloc(0);
    let waiter = null;
    s.on('data', (chunk) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 4 && pending.length >= 4 + payloadLength(pending, 0)) {
        const len = payloadLength(pending, 0);
        const frame = { type: pending[0], payload: pending.subarray(4, 4 + len) };
        pending = pending.subarray(4 + len);
        const w = waiter;
        waiter = null;
        w?.(frame);
      }
    });
    s.once('error', rej);
    s.once('connect', () =>
      res({
        socket: s,
        call(frame) {
          return new Promise((r) => { waiter = r; s.write(frame); });
        },
      }),
    );
  });
}

async function prepare(c, conf, key) {
  const reply = await c.call(frames.prepareConf(conf, key));
  if (reply.type !== FRAME_TYPE.prepareConf) throw new Error(`PrepareConf ${key} failed (type ${reply.type})`);
  return frames.readConfToken(reply.payload);
}

async function settledRss(pid) {
  await sleep(1500); // let allocation settle and idle GC run
  return processRssKiB(pid);
}

/** Median of the RSS samples (KiB). */
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const mib = (bytes) => (bytes / 1048576).toFixed(1);

// Bare Node, same binary, same run, started next to the runner and measured at the same
// moments: the floor the runner's figures are compared with.
const bare = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
const startedAt = Date.now();

rmSync(socketPath, { force: true });
rmSync(probeFile, { force: true });
const runnerArgs = [resolve(REPO_ROOT, values.runner), '--log-level', 'warn'];
if (values['mirror-threads'] !== 'default') runnerArgs.push('--mirror-threads', values['mirror-threads']);
const nodeFlags = [
  ...values['node-flags'].split(' ').filter(Boolean),
  ...(values.breakdown ? ['--import', resolve(REPO_ROOT, 'bench/memory-probe.mjs')] : []),
];
const runner = spawn(process.execPath, [...nodeFlags, ...runnerArgs], {
  cwd: REPO_ROOT,
  env: { ...process.env, APISIX_LISTEN_ADDRESS: `unix:${socketPath}`, A6_MEMORY_PROBE_FILE: probeFile },
  stdio: ['ignore', 'inherit', 'inherit'],
});
const rows = [];
const breakdown = [];
const notes = [];
const sink = await startNodeServer(SINK_SRC);
try {
  for (let i = 0; i < 200; i++) {
    try { (await client(socketPath)).socket.destroy(); break; } catch { await sleep(50); }
  }
  await sleep(1500);
  const bareStart = processRssKiB(bare.pid);
  rows.push(['bare Node (`node -e` with a timer), 1.5 s after start', bareStart]);
  rows.push(['runner started, no connection, 1.5 s after start', processRssKiB(runner.pid), bareStart]);
  await sleep(Math.max(0, startedAt + IDLE_WAIT_MS - Date.now()));
  const bareIdle = processRssKiB(bare.pid);
  rows.push([`bare Node, ${IDLE_WAIT_MS / 1000} s after start`, bareIdle]);
  rows.push([`runner idle, ${IDLE_WAIT_MS / 1000} s after start (after V8's memory reducer)`, processRssKiB(runner.pid), bareIdle]);
  bare.kill('SIGTERM');
  await new Promise((r) => bare.once('exit', r));

  const first = await client(socketPath);
  if (MIRROR_SECONDS > 0) {
    // 100 % mirroring: 32 connections calling a proxy-mirror route (sample_ratio 1) to the sink.
    const mtoken = await prepare(first, [{ name: 'proxy-mirror', value: JSON.stringify({ host: sink.url, sample_ratio: 1 }) }], 'route#m#ext-plugin-pre-req#1');
    const { frame: mcall } = frames.httpReqCall(mtoken);
    const loaders = [];
    for (let i = 0; i < 32; i++) loaders.push(await client(socketPath));
    let stop = false;
    let calls = 0;
    const samples = [];
    const sampler = setInterval(() => { samples.push({ t: Date.now(), kib: processRssKiB(runner.pid) ?? 0 }); }, 200);
    const from = Date.now();
    const until = from + MIRROR_SECONDS * 1000;
    const cpuFrom = processCpuMicros(runner.pid);
    await Promise.all(loaders.map(async (c) => {
      while (Date.now() < until) {
        await c.call(mcall);
        calls++;
      }
    }));
    stop = true;
    clearInterval(sampler);
    const cpuUsed = (processCpuMicros(runner.pid) ?? NaN) - (cpuFrom ?? NaN);
    notes.push(`Runner CPU during the mirroring window (all threads, /proc): ${(cpuUsed / 1e6).toFixed(2)} s for ${calls.toLocaleString('en-US')} RPCs, **${(cpuUsed / calls).toFixed(1)} µs per mirrored RPC**; ${Math.round(calls / MIRROR_SECONDS).toLocaleString('en-US')} RPC/s.`);
    const secondHalf = samples.filter((x) => x.t >= from + (until - from) / 2).map((x) => x.kib);
    const label = `100 % mirroring, C = 32, ${MIRROR_SECONDS} s (${calls.toLocaleString('en-US')} copies)`;
    rows.push([`${label}: steady state (median of the second half)`, secondHalf.length ? median(secondHalf) : undefined, bareIdle]);
    rows.push([`${label}: peak`, samples.length ? Math.max(...samples.map((x) => x.kib)) : undefined, bareIdle]);
    rows.push(['after mirroring, settled', await settledRss(runner.pid), bareIdle]);
    if (values.breakdown) {
      // The probe's lines from the second half of the window: median of each part.
      const all = readFileSync(probeFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      const lines = all.filter((l) => l.t >= from + (until - from) / 2 && l.t <= until);
      // GC over the whole window: the probe's running totals at its first and last line in it.
      const window = all.filter((l) => l.t >= from && l.t <= until);
      if (window.length >= 2) {
        const [a, b] = [window[0].gc, window.at(-1).gc];
        const ms = b.minorMs - a.minorMs + (b.majorMs - a.majorMs);
        const share = (window.at(-1).t - window[0].t) / (until - from);
        notes.push(`Runner main thread GC during the window (\`gc\` performance entries): ${b.minorCount - a.minorCount} scavenges, ${(b.minorMs - a.minorMs).toFixed(0)} ms; ${b.majorCount - a.majorCount} other (mark-compact, incremental marking), ${(b.majorMs - a.majorMs).toFixed(0)} ms; **${((ms * 1000) / (calls * share)).toFixed(1)} µs of GC per mirrored RPC**.`);
      }
      if (lines.length) {
        const part = (f) => median(lines.map(f));
        breakdown.push(
          ['RSS', part((l) => l.rss)],
          ['V8 heap, physical (all spaces)', part((l) => l.heapPhysical)],
          ['  of which used', part((l) => l.heapUsed)],
          ['  new space (young generation), physical', part((l) => l.spaces.new_space ?? 0)],
          ['  old space, physical', part((l) => l.spaces.old_space ?? 0)],
          ['external (Buffers, ArrayBuffers, native)', part((l) => l.external)],
          ['  of which ArrayBuffers', part((l) => l.arrayBuffers)],
          ['RSS not in the V8 heap nor external (malloc, code, binary, thread stacks)', part((l) => l.rss - l.heapPhysical - l.external)],
        );
      }
    }
    for (const c of loaders) c.socket.destroy();
    void stop;
  }
  const token = await prepare(first, [{ name: 'say', value: '{"body":"hi"}' }], 'route#0#ext-plugin-pre-req#1');
  const { frame: call } = frames.httpReqCall(token);
  const conns = [first];
  for (let i = 1; i < CONNECTIONS; i++) conns.push(await client(socketPath));
  // One RPC each so every connection holds the state a served connection holds.
  await Promise.all(conns.map((c) => c.call(call)));
  rows.push([`${CONNECTIONS} idle connections (one RPC served each)`, await settledRss(runner.pid), bareIdle]);

  const workers = conns.slice(0, 16);
  const fill = async (makeConf, prefix) => {
    let next = 0;
    await Promise.all(
      workers.map(async (c) => {
        while (next < CONFS) {
          const i = next++;
          await prepare(c, makeConf(i), `route#${prefix}${i}#ext-plugin-pre-req#1`);
        }
      }),
    );
  };
  await fill((i) => [{ name: 'rewrite', value: JSON.stringify({ path: `/svc/${i}`, headers: { set: { 'x-route': String(i) } } }) }], 'rw');
  rows.push([`+ ${CONFS} cached confs (rewrite, distinct)`, await settledRss(runner.pid), bareIdle]);
  await fill((i) => [{ name: 'proxy-mirror', value: JSON.stringify({ host: 'http://127.0.0.1:9', sample_ratio: 0.001, path: `/m/${i}` }) }], 'pm');
  rows.push([`+ ${CONFS} cached confs (proxy-mirror, one target)`, await settledRss(runner.pid), bareIdle]);
  for (const c of conns) c.socket.destroy();
  rows.push(['connections closed (confs still cached)', await settledRss(runner.pid), bareIdle]);
} finally {
  if (bare.exitCode === null && bare.signalCode === null) bare.kill('SIGTERM');
  rmSync(probeFile, { force: true });
  await stopChild(sink.child);
  runner.kill('SIGTERM');
  await new Promise((r) => runner.once('exit', r));
  rmSync(socketPath, { force: true });
}

const table = [
  `RSS of \`node ${values['node-flags'] ? `${values['node-flags']} ` : ''}${values.runner}\` (node ${process.version}, ${os.cpus()[0]?.model ?? ''}); command: \`node bench/rss.mjs --connections ${CONNECTIONS} --confs ${CONFS} --mirror-seconds ${MIRROR_SECONDS} --mirror-threads ${values['mirror-threads']} --idle-wait ${IDLE_WAIT_MS / 1000}${values.breakdown ? ' --breakdown' : ''}${values['node-flags'] ? ` --node-flags="${values['node-flags']}"` : ''}\``,
  '',
  '| state | RSS MiB | Δ vs previous | Δ vs bare Node (same moment or idle) |',
  '|---|--:|--:|--:|',
  ...rows.map(([label, kib, bareKib], i) => {
    const prev = i > 0 ? rows[i - 1][1] : undefined;
    const delta = prev !== undefined && kib !== undefined ? `${((kib - prev) / 1024).toFixed(1)}` : '';
    const vsBare = bareKib !== undefined && kib !== undefined ? `+${((kib - bareKib) / 1024).toFixed(1)}` : '';
    return `| ${label} | ${kib === undefined ? 'n/a' : (kib / 1024).toFixed(1)} | ${delta} | ${vsBare} |`;
  }),
  ...(breakdown.length ? [
    '',
    'Runner main thread during the second half of the mirroring window (medians, `process.memoryUsage()` and `v8.getHeapSpaceStatistics()`):',
    '',
    '| part | MiB |',
    '|---|--:|',
    ...breakdown.map(([label, bytes]) => `| ${label} | ${mib(bytes)} |`),
  ] : []),
  ...(notes.length ? ['', ...notes] : []),
].join('\n');
process.stdout.write(`${table}\n`);
mkdirSync(resolve(REPO_ROOT, '.bench-out'), { recursive: true });
writeFileSync(resolve(REPO_ROOT, '.bench-out/rss-latest.md'), `${table}\n`);
