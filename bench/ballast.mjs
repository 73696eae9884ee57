#!/usr/bin/env node
/**
 * A CPU ballast: keeps its core busy for `--share` of every `--period-ms` (busy, then asleep
 * for the rest of the period), for `--seconds` at most, then exits; SIGTERM stops it at once.
 *
 *   node bench/ballast.mjs --share 0.2 [--period-ms 1] [--seconds 30]
 *
 * bench/run.mjs's RPC-core pairs (issue 13) run it on the load generator's core beside one of
 * the decision-only cells, as busy as the mirrored cell's worker thread and sink made that core:
 * a control. The 2-thread p99 pairs run it the same way (their control). On this project's 2-core VM, load on the other core alone (nothing of the runner's)
 * made the decision-only RPC thread 2-3 µs per RPC dearer at 8,000 RPC/s in runs one after the
 * other, and 0.90-1.18× as dear interleaved (docs/performance.md, "Mirror dispatch, eighth
 * pass"). It prints one JSON line on exit: the share of a core it used.
 */
import { parseArgs } from 'node:util';

const USAGE = 'usage: node bench/ballast.mjs [--share 0..1] [--period-ms n] [--seconds n]';
let values;
try {
  ({ values } = parseArgs({
    options: {
      share: { type: 'string', default: '0.2' },
      'period-ms': { type: 'string', default: '1' },
      seconds: { type: 'string', default: '30' },
    },
  }));
} catch (err) {
  process.stderr.write(`ballast: ${err.message}\n${USAGE}\n`);
  process.exit(2);
}

const share = Number(values.share);
const periodMs = Number(values['period-ms']);
const seconds = Number(values.seconds);
if (!(share >= 0 && share <= 1) || !(periodMs > 0) || !(seconds > 0)) {
  process.stderr.write('ballast: --share must be in [0, 1], --period-ms and --seconds > 0\n');
  process.exit(2);
}

const nap = new Int32Array(new SharedArrayBuffer(4));
const started = process.hrtime.bigint();
const end = started + BigInt(Math.round(seconds * 1e9));
// Busy for CPU time, not wall time: preempted by the other processes on its core (the load
// generator), the ballast still adds `share` of a core.
const busyUs = share * periodMs * 1000;
const cpuUs = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};
const cpuStart = cpuUs();
let stop = false;
process.once('SIGTERM', () => { stop = true; });

function report() {
  const elapsedUs = Number(process.hrtime.bigint() - started) / 1000;
  process.stdout.write(`${JSON.stringify({ share, cpuShare: elapsedUs > 0 ? (cpuUs() - cpuStart) / elapsedUs : 0 })}\n`);
}

// Periods run in slices between event-loop turns (setImmediate), so SIGTERM is seen promptly.
function slice() {
  for (let k = 0; k < 20 && !stop; k++) {
    const t0 = process.hrtime.bigint();
    if (t0 >= end) {
      stop = true;
      break;
    }
    if (busyUs > 0) {
      const c0 = cpuUs();
      while (cpuUs() - c0 < busyUs);
    }
    const restMs = periodMs - Number(process.hrtime.bigint() - t0) / 1e6;
    if (restMs > 0) Atomics.wait(nap, 0, 0, restMs);
  }
  if (stop) {
    report();
    process.exit(0);
  }
  setImmediate(slice);
}
slice();
