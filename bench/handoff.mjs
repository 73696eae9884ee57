#!/usr/bin/env node
/**
 * What handing work to a worker thread costs the sender per event-loop turn, one small record
 * per turn (the runner's case at moderate load): a postMessage, or a record written to a
 * ByteRing (src/mirror-dispatch/shm-ring.ts) plus a wake-up when the worker sleeps. Reports
 * the sender thread's CPU per turn (/proc/thread-self, 10 ms ticks, so many turns) against
 * turns that hand nothing over. Rounds alternate.
 *
 *   npm run build && node bench/handoff.mjs [--turns 100000] [--rounds 3]
 */
import { existsSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';

const { values } = parseArgs({ options: { turns: { type: 'string', default: '100000' }, rounds: { type: 'string', default: '3' } } });
const ringUrl = new URL('../dist/mirror-dispatch/shm-ring.js', import.meta.url);
if (!existsSync(ringUrl)) throw new Error('dist/ is missing: run `npm run build` first');
const { ByteRing } = await import(ringUrl.href);
const N = Number(values.turns);

/** CPU µs of this thread so far. */
function threadCpuUs() {
  const stat = readFileSync('/proc/thread-self/stat', 'latin1');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * 10_000;
}

const ring = ByteRing.create(1 << 20);
// The worker drains the ring and sleeps on it when empty, as thread-worker.ts does, and
// counts the messages it gets; it answers 'sync' with what it saw.
const worker = new Worker(`
  const { parentPort, workerData } = require('node:worker_threads');
  import(workerData.url).then(({ ByteRing }) => {
    const ring = new ByteRing(workerData.shared);
    let records = 0; let messages = 0;
    const loop = () => { if (ring.drain(() => { records++; }) === 0) ring.sleep().then(loop); else setImmediate(loop); };
    loop();
    parentPort.on('message', (m) => { if (m === 'sync') { ring.drain(() => { records++; }); parentPort.postMessage({ records, messages }); } else messages++; });
    parentPort.postMessage('ready');
  });
`, { eval: true, workerData: { url: ringUrl.href, shared: ring.shared } });
await new Promise((r) => worker.once('message', r));

const turn = () => new Promise((r) => setImmediate(r));
const record = Buffer.alloc(600, 120);

async function measure(kind) {
  const c0 = threadCpuUs();
  for (let i = 0; i < N; i++) {
    if (kind === 'message') worker.postMessage({ t: 'send', head: record.toString('latin1') });
    else if (kind === 'ring') {
      const at = ring.reserve(record.length);
      if (at >= 0) {
        ring.bytes.set(record, at);
        ring.commit(at, record.length);
      }
      ring.wake();
    }
    await turn();
  }
  const us = (threadCpuUs() - c0) / N;
  await new Promise((r) => { worker.once('message', r); worker.postMessage('sync'); });
  return us;
}

console.log('| round | bare turn µs | postMessage turn µs | ring turn µs |\n|--:|--:|--:|--:|');
for (let r = 1; r <= Number(values.rounds); r++) {
  const bare = await measure('none');
  const msg = await measure('message');
  const rng = await measure('ring');
  console.log(`| ${r} | ${bare.toFixed(2)} | ${msg.toFixed(2)} | ${rng.toFixed(2)} |`);
}
await worker.terminate();
