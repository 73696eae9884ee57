import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import {
  RecordingTarget, absentPort, call, expectOk, mirrorRoute, startMirrorRunner, type MirrorRunner,
} from './fixtures.js';
import { waitUntil } from '../../harness/wait.js';

let slow: RecordingTarget;
let slowForQueue: RecordingTarget;
let resetting: RecordingTarget;
let mr: MirrorRunner;

/** Longer than this file can ever run: a held copy is never answered while the tests look at it. */
const HOLD_MS = 600_000;

beforeAll(async () => {
  slow = await RecordingTarget.start('hold', undefined, HOLD_MS);
  slowForQueue = await RecordingTarget.start('hold', undefined, HOLD_MS);
  resetting = await RecordingTarget.start('reset');
  // A frozen clock: every problem log falls in one rate-limit interval.
  mr = await startMirrorRunner({ now: () => 0 });
});
afterAll(async () => {
  await mr.close();
  await slow.close();
  await slowForQueue.close();
  await resetting.close();
});

const count = (target: string, outcome: string): Promise<number> =>
  mr.metric('apisix_runner_mirror_requests_total', { target, outcome });

describe('proxy-mirror never gets in the way', () => {
  it('answers APISIX while a slow target still holds the copy', async () => {
    const route = mirrorRoute('route#slow#x#1', { host: slow.url });
    const first = expectOk(await mr.client.httpReqCall(route, call()));
    expect(first.kind).toBe('none');
    await slow.waitFor(1);
    // The copy reached the target and is still held there: the reply did not wait for it.
    expect(slow.holding).toBe(1);
    expect(slow.answered).toBe(0);
    for (let i = 0; i < 10; i++) expect(expectOk(await mr.client.httpReqCall(route, call())).kind).toBe('none');
    await slow.waitFor(11);
    expect(slow.answered).toBe(0);
    expect(await mr.metric('apisix_runner_mirror_inflight', { target: slow.url })).toBe(11);
  });

  it('times a slow copy out with the route read timeout and counts it', async () => {
    const route = mirrorRoute('route#slow-timeout#x#1', { host: slow.url, timeout: { read: '200ms', connect: 1000, send: '1s' } });
    expectOk(await mr.client.httpReqCall(route, call({ path: '/will-time-out' })));
    await waitUntil(async () => (await count(slow.url, 'timeout')) === 1, 'timeout counted');
    // The target never answered it: the timeout is ours.
    expect(slow.answered).toBe(0);
  });

  it('counts a resetting target as an error and the reply is unaffected', async () => {
    const route = mirrorRoute('route#reset#x#1', { host: resetting.url });
    for (let i = 0; i < 3; i++) expect(expectOk(await mr.client.httpReqCall(route, call())).kind).toBe('none');
    await resetting.waitFor(3);
    await waitUntil(async () => (await count(resetting.url, 'error')) === 3, '3 errors counted');
    expect(await count(resetting.url, 'sent')).toBe(3);
  });

  it('counts an absent target as an error, with one log line per interval', async () => {
    const host = `http://127.0.0.1:${await absentPort()}`;
    const route = mirrorRoute('route#absent#x#1', { host });
    for (let i = 0; i < 30; i++) expect(expectOk(await mr.client.httpReqCall(route, call())).kind).toBe('none');
    // After 3 refused connections (the default breaker threshold) the node is taken out and
    // later copies are skipped without a connect attempt (breaker.test.ts counts exactly).
    const skippedDown = (): Promise<number> => mr.metric('apisix_runner_mirror_skipped_total', { target: host, reason: 'target_down' });
    await waitUntil(async () => (await count(host, 'error')) + (await skippedDown()) === 30, '30 copies failed or skipped');
    expect(await count(host, 'error')).toBeGreaterThanOrEqual(3);
    const lines = mr.logs.filter((l) => l['target'] === host && String(l['msg']).includes('failed'));
    expect(lines).toHaveLength(1);
    expect(lines[0]!['code']).toBe('ECONNREFUSED');
  });

  it('caps in-flight copies, queues a bounded number and drops (and counts) the rest', async () => {
    const route = mirrorRoute('route#queue#x#1', { host: slowForQueue.url, max_concurrency: 2, max_queue: 3 });
    for (let i = 0; i < 20; i++) expect(expectOk(await mr.client.httpReqCall(route, call())).kind).toBe('none');
    await slowForQueue.waitFor(2);
    expect(await count(slowForQueue.url, 'dropped')).toBe(15);
    expect(await count(slowForQueue.url, 'sent')).toBe(2);
    expect(await mr.metric('apisix_runner_mirror_inflight', { target: slowForQueue.url })).toBe(2);
    expect(await mr.metric('apisix_runner_mirror_queued', { target: slowForQueue.url })).toBe(3);
    expect(slowForQueue.received).toHaveLength(2);
  });

  it('bounds the queue by bytes too', async () => {
    // Same host, other limits: a separate target with its own pool, cap and queue.
    const route = mirrorRoute('route#queue-bytes#x#1', { host: slowForQueue.url, max_concurrency: 1, max_queue: 100, max_queue_bytes: 25_000 });
    const body = Buffer.alloc(10_000, 7);
    const droppedBefore = await count(slowForQueue.url, 'dropped');
    const queuedBytesBefore = await mr.metric('apisix_runner_mirror_queued_bytes', { target: slowForQueue.url });
    const asked: number[] = [];
    for (let i = 0; i < 10; i++) {
      const out = expectOk(await mr.client.httpReqCall(route, call({ method: 'POST', headers: [{ name: 'host', value: 'h' }, { name: 'content-length', value: '10000' }], body })));
      asked.push(out.extraInfoAsked.length);
    }
    // 1 in flight, 2 queued (~20 KB of 25 KB), 7 dropped.
    expect(await count(slowForQueue.url, 'dropped')).toBe(droppedBefore + 7);
    // A copy that would be dropped is refused before its body is fetched: the real request
    // pays no ExtraInfo round trip for it.
    expect(asked).toEqual([1, 1, 1, 0, 0, 0, 0, 0, 0, 0]);
    const queuedBytes = (await mr.metric('apisix_runner_mirror_queued_bytes', { target: slowForQueue.url })) - queuedBytesBefore;
    expect(queuedBytes).toBeGreaterThan(20_000);
    expect(queuedBytes).toBeLessThanOrEqual(25_000);
  });

  it('closes without waiting for slow targets: the held copy is cut after the grace period', async () => {
    const other = await startMirrorRunner({ settings: { close_grace: '50ms' } });
    const outcomes = async (): Promise<Record<string, number>> => Object.fromEntries(await Promise.all(['sent', '2xx', 'error', 'timeout'].map(
      async (outcome) => [outcome, await other.metric('apisix_runner_mirror_requests_total', { target: slow.url, outcome })] as const)));
    try {
      expectOk(await other.client.httpReqCall(mirrorRoute('route#close#x#1', { host: slow.url, path: '/at-close' }), call()));
      await waitUntil(() => slow.received.some((r) => r.url === '/at-close'), 'copy held');
      expect(await outcomes()).toEqual({ sent: 1, '2xx': 0, error: 0, timeout: 0 });
    } finally {
      await other.close();
    }
    // close() returned while the target still holds the copy (it never answers within this
    // file's run), and the copy ended because the runner cut it, not because it was answered.
    expect(slow.answered).toBe(0);
    await waitUntil(async () => (await outcomes())['error'] === 1, 'the cut copy counted as an error');
    expect(await outcomes()).toEqual({ sent: 1, '2xx': 0, error: 1, timeout: 0 });
  });
});
