#!/usr/bin/env -S node --expose-gc
/**
 * Memory held by the conf cache: PrepareConf for N distinct keys over the runner's socket
 * (pipelined on one connection), then the V8 heap used after a full GC, per conf. Runs the
 * built runner (dist/) in this process so that global.gc() sees its heap.
 *
 *   npm run build && node --expose-gc bench/soak-confs.mjs
 *   CONFS=200000 MAX_CONFS=100000 node --expose-gc bench/soak-confs.mjs
 */
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { distDir, loadProtocol } from './protocol.mjs';
import { FRAME_TYPE, payloadLength } from './frames.mjs';

if (typeof global.gc !== 'function') {
  process.stderr.write('run with node --expose-gc bench/soak-confs.mjs\n');
  process.exit(2);
}

const CONFS = Number(process.env.CONFS ?? 100_000);
const MAX_CONFS = Number(process.env.MAX_CONFS ?? 100_000);

const { startRunner } = await import(pathToFileURL(path.join(distDir(), 'runner.js')).href);
const pino = (await import('pino')).default;
const { frames } = await loadProtocol();

function heapAfterGc() {
  for (let i = 0; i < 3; i++) global.gc();
  return process.memoryUsage().heapUsed;
}

/** Pipelines PrepareConf for every key and resolves with the tokens once all replies are in. */
async function prepareAll(socketPath, keys, conf) {
  const socket = net.connect(socketPath);
  await new Promise((r, j) => { socket.once('connect', r); socket.once('error', j); });
  const tokens = [];
  let pending = Buffer.alloc(0);
  const done = new Promise((resolve, reject) => {
    socket.on('data', (chunk) => {
      let data = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      let off = 0;
      while (data.length - off >= 4 && data.length - off >= 4 + payloadLength(data, off)) {
        const len = payloadLength(data, off);
        if (data[off] !== FRAME_TYPE.prepareConf) reject(new Error(`unexpected reply type ${data[off]}`));
        tokens.push(frames.readConfToken(data.subarray(off + 4, off + 4 + len)));
        off += 4 + len;
      }
      pending = Buffer.from(data.subarray(off));
      if (tokens.length === keys.length) resolve(tokens);
    });
    socket.once('error', reject);
  });
  for (let i = 0; i < keys.length; i += 1000) {
    const ok = socket.write(Buffer.concat(keys.slice(i, i + 1000).map((k) => frames.prepareConf(conf, k))));
    if (!ok) await new Promise((r) => socket.once('drain', r));
  }
  await done;
  socket.destroy();
  return tokens;
}

async function cell(label, conf) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sc-'));
  const socketPath = path.join(dir, 'r.sock');
  const runner = await startRunner({ socketPath, logger: pino({ level: 'silent' }), maxConfs: MAX_CONFS });
  const keys = Array.from({ length: CONFS }, (_, i) => `route#${i}#ext-plugin-pre-req#${i % 7}`);
  const before = heapAfterGc();
  const t0 = performance.now();
  await prepareAll(socketPath, keys, conf);
  const seconds = (performance.now() - t0) / 1000;
  const after = heapAfterGc();
  const held = runner.confs.size;
  await runner.close();
  const closed = heapAfterGc();
  rmSync(dir, { recursive: true, force: true });
  return { label, held, seconds, deltaMiB: (after - before) / 1048576, perConfBytes: (after - before) / held, afterCloseMiB: (closed - before) / 1048576 };
}

const rows = [];
rows.push(await cell('say', [{ name: 'say', value: '{"body":"hello","headers":{"x-a":"1"}}' }]));
rows.push(await cell('proxy-mirror (one shared target)', [{ name: 'proxy-mirror', value: '{"host":"http://127.0.0.1:9","sample_ratio":0.5}' }]));
rows.push(await cell('say + rewrite', [{ name: 'rewrite', value: '{"headers":{"set":{"x-b":"2"}}}' }, { name: 'say', value: '{"body":"x"}' }]));

const out = [
  `conf cache: ${CONFS.toLocaleString('en')} distinct keys via PrepareConf (maxConfs ${MAX_CONFS.toLocaleString('en')}), node ${process.version}`,
  '',
  '| conf | held | PrepareConf time s | heap delta MiB | bytes per conf | heap delta after close MiB |',
  '|---|---:|---:|---:|---:|---:|',
  ...rows.map((r) => `| ${r.label} | ${r.held.toLocaleString('en')} | ${r.seconds.toFixed(1)} | ${r.deltaMiB.toFixed(1)} | ${Math.round(r.perConfBytes)} | ${r.afterCloseMiB.toFixed(1)} |`),
];
process.stdout.write(out.join('\n') + '\n');
