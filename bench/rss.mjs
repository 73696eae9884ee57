#!/usr/bin/env node
/**
 * Memory check: RSS of the runner (`node dist/cli.js`) when idle, with 1,000 idle connections
 * (each has served one RPC, as APISIX's keep-alive pool leaves them), and with 10,000 cached
 * route confs (rewrite), then 10,000 more (proxy-mirror, one shared target).
 *
 *   node bench/rss.mjs [--connections 1000] [--confs 10000] [--runner dist/cli.js]
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

const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '1000' },
    confs: { type: 'string', default: '10000' },
    runner: { type: 'string', default: 'dist/cli.js' },
  },
});
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

rmSync(socketPath, { force: true });
const runner = spawn(process.execPath, [resolve(REPO_ROOT, values.runner), '--log-level', 'warn'], {
  cwd: REPO_ROOT,
  env: { ...process.env, APISIX_LISTEN_ADDRESS: `unix:${socketPath}` },
  stdio: ['ignore', 'inherit', 'inherit'],
});
const rows = [];
try {
  for (let i = 0; i < 200; i++) {
    try { (await client(socketPath)).socket.destroy(); break; } catch { await sleep(50); }
  }
  rows.push(['started, no connection', await settledRss(runner.pid)]);

  const first = await client(socketPath);
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
  runner.kill('SIGTERM');
  await new Promise((r) => runner.once('exit', r));
  rmSync(socketPath, { force: true });
}

const table = [
  `RSS of \`node ${values.runner}\` (node ${process.version}, ${os.cpus()[0]?.model ?? ''}); command: \`node bench/rss.mjs --connections ${CONNECTIONS} --confs ${CONFS}\``,
  '',
  '| state | RSS MiB | Δ vs previous |',
  '|---|--:|--:|',
  ...rows.map(([label, kib], i) => {
    const prev = i > 0 ? rows[i - 1][1] : undefined;
    const delta = prev !== undefined && kib !== undefined ? `${((kib - prev) / 1024).toFixed(1)}` : '';
    return `| ${label} | ${kib === undefined ? 'n/a' : (kib / 1024).toFixed(1)} | ${delta} |`;
  }),
].join('\n');
process.stdout.write(`${table}\n`);
mkdirSync(resolve(REPO_ROOT, '.bench-out'), { recursive: true });
writeFileSync(resolve(REPO_ROOT, '.bench-out/rss-latest.md'), `${table}\n`);
