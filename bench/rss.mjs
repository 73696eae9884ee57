#!/usr/bin/env node
/**
 * Memory check: RSS of a bare Node process (`node -e` with a timer) next to the runner
 * (`node dist/cli.js`) in the same run: idle, under 100 % mirroring (C = 32 for a few seconds to
 * a local sink, peak and settled), with 1,000 idle connections (each has served one RPC, as
 * APISIX's keep-alive pool leaves them), and with 10,000 cached route confs (rewrite), then
 * 10,000 more (proxy-mirror, one shared target).
 *
 *   node bench/rss.mjs [--connections 1000] [--confs 10000] [--mirror-seconds 5] [--mirror-threads 2] [--runner dist/cli.js]
 * Prints a markdown table and writes it to .bench-out/rss-latest.md.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadProtocol, REPO_ROOT } from './protocol.mjs';
import { FRAME_TYPE, payloadLength } from './frames.mjs';
import { processRssKiB } from './loadgen.mjs';
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
  },
});
const MIRROR_SECONDS = Number(values['mirror-seconds']);
const CONNECTIONS = Number(values.connections);
const CONFS = Number(values.confs);

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

// Bare Node, same binary, same run: the floor the runner's figures are compared with.
const bare = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
const bareRss = await settledRss(bare.pid);
bare.kill('SIGTERM');
await new Promise((r) => bare.once('exit', r));

rmSync(socketPath, { force: true });
const runnerArgs = [resolve(REPO_ROOT, values.runner), '--log-level', 'warn'];
if (values['mirror-threads'] !== 'default') runnerArgs.push('--mirror-threads', values['mirror-threads']);
const runner = spawn(process.execPath, runnerArgs, {
  cwd: REPO_ROOT,
  env: { ...process.env, APISIX_LISTEN_ADDRESS: `unix:${socketPath}` },
  stdio: ['ignore', 'inherit', 'inherit'],
});
const rows = [['bare Node (`node -e` with a timer)', bareRss]];
const sink = await startNodeServer(SINK_SRC);
try {
  for (let i = 0; i < 200; i++) {
    try { (await client(socketPath)).socket.destroy(); break; } catch { await sleep(50); }
  }
  rows.push(['runner started, no connection (idle)', await settledRss(runner.pid)]);

  const first = await client(socketPath);
  if (MIRROR_SECONDS > 0) {
    // 100 % mirroring: 32 connections calling a proxy-mirror route (sample_ratio 1) to the sink.
    const mtoken = await prepare(first, [{ name: 'proxy-mirror', value: JSON.stringify({ host: sink.url, sample_ratio: 1 }) }], 'route#m#ext-plugin-pre-req#1');
    const { frame: mcall } = frames.httpReqCall(mtoken);
    const loaders = [];
    for (let i = 0; i < 32; i++) loaders.push(await client(socketPath));
    let stop = false;
    let calls = 0;
    let peak = 0;
    const sampler = setInterval(() => { peak = Math.max(peak, processRssKiB(runner.pid) ?? 0); }, 200);
    const until = Date.now() + MIRROR_SECONDS * 1000;
    await Promise.all(loaders.map(async (c) => {
      while (Date.now() < until) {
        await c.call(mcall);
        calls++;
      }
    }));
    stop = true;
    clearInterval(sampler);
    rows.push([`100 % mirroring, C = 32, ${MIRROR_SECONDS} s (${calls.toLocaleString('en-US')} copies; peak)`, peak || undefined]);
    rows.push(['after mirroring, settled', await settledRss(runner.pid)]);
    for (const c of loaders) c.socket.destroy();
    void stop;
  }
  const token = await prepare(first, [{ name: 'say', value: '{"body":"hi"}' }], 'route#0#ext-plugin-pre-req#1');
  const { frame: call } = frames.httpReqCall(token);
  const conns = [first];
  for (let i = 1; i < CONNECTIONS; i++) conns.push(await client(socketPath));
  // One RPC each so every connection holds the state a served connection holds.
  await Promise.all(conns.map((c) => c.call(call)));
  rows.push([`${CONNECTIONS} idle connections (one RPC served each)`, await settledRss(runner.pid)]);

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
  rows.push([`+ ${CONFS} cached confs (rewrite, distinct)`, await settledRss(runner.pid)]);
  await fill((i) => [{ name: 'proxy-mirror', value: JSON.stringify({ host: 'http://127.0.0.1:9', sample_ratio: 0.001, path: `/m/${i}` }) }], 'pm');
  rows.push([`+ ${CONFS} cached confs (proxy-mirror, one target)`, await settledRss(runner.pid)]);
  for (const c of conns) c.socket.destroy();
  rows.push(['connections closed (confs still cached)', await settledRss(runner.pid)]);
} finally {
  await stopChild(sink.child);
  runner.kill('SIGTERM');
  await new Promise((r) => runner.once('exit', r));
  rmSync(socketPath, { force: true });
}

const table = [
  `RSS of \`node ${values.runner}\` (node ${process.version}, ${os.cpus()[0]?.model ?? ''}); command: \`node bench/rss.mjs --connections ${CONNECTIONS} --confs ${CONFS} --mirror-seconds ${MIRROR_SECONDS} --mirror-threads ${values['mirror-threads']}\``,
  '',
  '| state | RSS MiB | Δ vs previous | Δ vs bare Node |',
  '|---|--:|--:|--:|',
  ...rows.map(([label, kib], i) => {
    const prev = i > 0 ? rows[i - 1][1] : undefined;
    const delta = prev !== undefined && kib !== undefined ? `${((kib - prev) / 1024).toFixed(1)}` : '';
    const vsBare = i > 0 && kib !== undefined && bareRss !== undefined ? `+${((kib - bareRss) / 1024).toFixed(1)}` : '';
    return `| ${label} | ${kib === undefined ? 'n/a' : (kib / 1024).toFixed(1)} | ${delta} | ${vsBare} |`;
  }),
].join('\n');
process.stdout.write(`${table}\n`);
mkdirSync(resolve(REPO_ROOT, '.bench-out'), { recursive: true });
writeFileSync(resolve(REPO_ROOT, '.bench-out/rss-latest.md'), `${table}\n`);
