#!/usr/bin/env node
/**
 * CPU cost of one copy in the dispatch engine alone (no RPC, no APISIX): sends N requests
 * (GET with the bench's 12 headers) to a local sink in a child process, at most `--window` in
 * flight, and reports per request the process CPU (all threads, `process.cpuUsage`), the RPC
 * thread's own CPU (`/proc/self/task/<pid>/stat`) and its busy time
 * (`performance.eventLoopUtilization`, wall clock), for one thread and for a worker. CPU time
 * moves much less with machine noise than throughput does.
 *
 *   npm run build && node bench/dispatch.mjs [--requests 20000] [--window 32] [--threads 1,2]
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { startNodeServer, stopChild } from './children.mjs';
import { GET_HEADERS } from './frames.mjs';

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '20000' },
    window: { type: 'string', default: '32' },
    threads: { type: 'string', default: '1,2' },
  },
});
const N = Number(values.requests);
/** CPU time (µs) of this process's main thread, from /proc (clock ticks of 10 ms); undefined off Linux. */
function mainThreadCpuUs() {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'latin1');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * 10_000;
  } catch {
    return undefined;
  }
}
const WINDOW = Number(values.window);
const { DispatchEngine } = await import('../dist/mirror-dispatch/index.js');

const SINK = `
const http = require('node:http');
const s = http.createServer((req, res) => { req.resume(); req.on('end', () => res.end('ok')); });
s.keepAliveTimeout = 60000;
s.listen(0, '127.0.0.1', () => process.stdout.write('port ' + s.address().port + '\\n'));
process.on('SIGTERM', () => process.exit(0));
`;

const headers = GET_HEADERS.map(([n, v]) => [n, v]);

async function run(threads, url) {
  let done = 0;
  const outcomes = {};
  let onDone = () => {};
  const noop = () => {};
  const observer = {
    sent: noop, refused: noop, inflight: noop, queued: noop, failed: noop, nodeState: noop, dropped: noop, threadRestarted: noop,
    finished: (_t, _n, outcome) => { outcomes[outcome] = (outcomes[outcome] ?? 0) + 1; done++; onDone(); },
  };
  const engine = new DispatchEngine({ observer, closeGraceMs: 1000, threads });
  const port = Number(new URL(url).port);
  const target = engine.acquire({
    label: url, protocol: 'http', tls: false, tlsVerify: true, tlsCa: undefined,
    nodes: [{ label: url, authority: `127.0.0.1:${port}`, hostname: '127.0.0.1', port, weight: 1 }],
    resolveAll: false, resolveEveryMs: 30_000,
    timeouts: { connectMs: 5000, sendMs: 5000, readMs: 5000 },
    // The window below keeps at most WINDOW outstanding; the queue only absorbs the moment
    // between a request's outcome and the target's in-flight count going down.
    limits: { maxConcurrency: WINDOW, maxQueue: WINDOW, maxQueueBytes: 1 << 30 },
    breaker: { failures: 3, baseMs: 1000, maxMs: 10_000 },
  });
  const req = { method: 'GET', uri: '/get?x=1', headers, body: undefined, sizeBytes: 1000 };
  const send = async (count) => {
    let submitted = 0;
    const base = done;
    await new Promise((resolve) => {
      const pump = () => {
        while (submitted < count && submitted - (done - base) < WINDOW) {
          submitted++;
          target.submit(req);
        }
        if (done - base >= count) resolve();
      };
      onDone = pump;
      pump();
    });
  };
  await send(Math.min(2000, N)); // warm-up: connections, JIT
  const main0 = mainThreadCpuUs();
  const cpu0 = process.cpuUsage();
  const elu0 = performance.eventLoopUtilization();
  const t0 = performance.now();
  await send(N);
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const main1 = mainThreadCpuUs();
  const elu = performance.eventLoopUtilization(elu0);
  await engine.close();
  return { outcomes, threads, perCopyCpu: (cpu.user + cpu.system) / N, perCopyRpcThread: (elu.active * 1000) / N, perCopyMainCpu: main0 === undefined ? undefined : (main1 - main0) / N, rate: (N / wall) * 1000 };
}

const sink = await startNodeServer(SINK);
const rows = [];
try {
  for (const t of values.threads.split(',').map(Number)) rows.push(await run(t, sink.url));
} finally {
  await stopChild(sink.child);
}
const lines = [
  `dispatch engine alone: ${N.toLocaleString('en-US')} GET copies (12 headers), ${WINDOW} in flight, node ${process.version}; command: \`node bench/dispatch.mjs --requests ${N} --window ${WINDOW} --threads ${values.threads}\``,
  '',
  '| mirror threads | process CPU µs per copy (all threads) | RPC thread CPU µs per copy | RPC thread busy (wall) µs per copy | copies/s |',
  '|--:|--:|--:|--:|--:|',
  ...rows.map((r) => `| ${r.threads} (${JSON.stringify(r.outcomes)}) | ${r.perCopyCpu.toFixed(1)} | ${r.perCopyMainCpu?.toFixed(1) ?? 'n/a'} | ${r.perCopyRpcThread.toFixed(1)} | ${Math.round(r.rate).toLocaleString('en-US')} |`),
];
process.stdout.write(`${lines.join('\n')}\n`);
