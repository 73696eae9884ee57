// Demo: the runner's proxy-mirror behind an APISIX-like gateway, on this machine only.
//
//   npm run demo        (builds, then runs this file)
//
// Starts the built runner (dist/), the gateway emulator of test/harness/gateway.ts (a test
// instrument that speaks to the runner exactly like APISIX's ext-plugin code; loaded through
// tsx), an upstream and a mirror target (HTTP servers on 127.0.0.1). Sends a few hundred
// requests through a route whose ext-plugin-pre-req runs proxy-mirror with sample_ratio 0.5,
// prints what each side saw, and closes everything.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tsImport } from 'tsx/esm/api';
import { startRunner } from '../dist/runner.js';
import { createLogger } from '../dist/observability/logger.js';

const TOTAL = 300;
const CONCURRENCY = 20;

const { GatewayEmulator } = await tsImport('../test/harness/gateway.ts', import.meta.url);
const { Recorder, sendClientRequest, promSample } = await tsImport('../test/harness/http-recorder.ts', import.meta.url);

const dir = mkdtempSync(join(tmpdir(), 'a6demo-'));
const socketPath = join(dir, 'runner.sock');
const upstream = await new Recorder('upstream').start();
const mirror = await new Recorder('mirror').start();
const mirrorHost = `http://127.0.0.1:${mirror.port}`;
const runner = await startRunner({ socketPath, logger: createLogger({ level: 'warn' }) });
const conf = { host: mirrorHost, sample_ratio: 0.5 };
const gateway = await GatewayEmulator.start({
  socketPath,
  routes: [{
    id: 'demo',
    uri: '/demo/',
    upstream: `http://127.0.0.1:${upstream.port}`,
    plugins: { 'ext-plugin-pre-req': { conf: [{ name: 'proxy-mirror', value: JSON.stringify(conf) }] } },
  }],
});

let exitCode = 0;
try {
  console.log(`runner on ${socketPath}`);
  console.log(`gateway emulator on ${gateway.url}, upstream on :${upstream.port}, mirror target on :${mirror.port}`);
  console.log(`route /demo/  ext-plugin-pre-req: proxy-mirror ${JSON.stringify(conf)}`);
  console.log(`sending ${TOTAL} requests (${CONCURRENCY} at a time; every 10th is a POST with a JSON body)...`);

  const statuses = new Map();
  for (let start = 0; start < TOTAL; start += CONCURRENCY) {
    const batch = [];
    for (let i = start; i < Math.min(TOTAL, start + CONCURRENCY); i++) {
      const post = i % 10 === 0;
      batch.push(sendClientRequest(gateway.url, 'demo', {
        method: post ? 'POST' : 'GET',
        path: `/demo/items/${i}?page=${i % 7}&tag=a&tag=b`,
        headers: { 'user-agent': 'a6-demo', ...(post ? { 'content-type': 'application/json' } : {}) },
        body: post ? JSON.stringify({ item: i, note: 'mirrored byte for byte' }) : undefined,
      }));
    }
    for (const res of await Promise.all(batch)) statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
  }

  // The runner counts an unsampled request before it answers the gateway, so the number of
  // copies to wait for is known exactly; copies are sent after the answer, so they may lag.
  const metrics = await runner.host.metrics.metrics();
  const notSampled = promSample(metrics, 'apisix_runner_mirror_skipped_total', { target: mirrorHost, reason: 'not_sampled' });
  const expected = TOTAL - notSampled;
  const deadline = Date.now() + 10_000;
  while (mirror.all().length < expected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));

  console.log('');
  console.log(`client statuses:   ${[...statuses].map(([s, n]) => `${s} x ${n}`).join(', ')}`);
  console.log(`upstream received: ${upstream.all().length}`);
  console.log(`mirror received:   ${mirror.all().length} (runner sampled ${expected} of ${TOTAL}, ratio ${(expected / TOTAL).toFixed(2)})`);
  const sample = mirror.all().find((r) => r.method === 'POST') ?? mirror.all()[0];
  if (sample) {
    console.log('');
    console.log('one mirrored request, as the mirror target saw it:');
    console.log(`  ${sample.method} ${sample.url}`);
    for (let i = 0; i + 1 < sample.rawHeaders.length; i += 2) console.log(`  ${sample.rawHeaders[i]}: ${sample.rawHeaders[i + 1]}`);
    if (sample.text) console.log(`  body: ${sample.text}`);
  }
  const ok = statuses.get(200) === TOTAL && upstream.all().length === TOTAL && mirror.all().length === expected;
  console.log('');
  console.log(ok ? 'OK: every request answered 200 by the upstream; every sampled request mirrored once.' : 'MISMATCH: see the counts above.');
  if (!ok) exitCode = 1;
} finally {
  await gateway.close();
  await runner.close();
  await upstream.close();
  await mirror.close();
  rmSync(dir, { recursive: true, force: true });
}
process.exitCode = exitCode;
