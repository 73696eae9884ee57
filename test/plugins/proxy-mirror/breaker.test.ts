/**
 * A dead target costs nothing: after connect failures a node's circuit breaker opens, copies
 * are skipped (target_down) without a connect attempt and without asking APISIX for the body,
 * and a jittered, growing retry lets one probe through. Real refused ports and real servers;
 * the plugin's clock and jitter are injected, so the counts are exact.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { CircuitBreaker } from '../../../src/mirror-dispatch/index.js';
import {
  absentPort, call, expectOk, mirrorRoute, startMirrorRunner, until, type MirrorRunner,
} from './fixtures.js';
import { startCountingServer, type CountingServer } from './counting-server.js';

let clock = 0;
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/**
 * With 2 threads the copies go from a worker, whose outcomes come back counted per node, in
 * batches (thread-pool.ts, sendCounted): the breaker sees them in the same order.
 */
async function runner(threads: number): Promise<MirrorRunner> {
  clock = 0;
  const mr = await startMirrorRunner({
    now: () => clock,
    jitter: () => 0.5,
    settings: { breaker: { failures: 2, retry_base: 1000, retry_max: 8000 }, mirror_threads: threads },
  });
  cleanups.push(() => mr.close());
  return mr;
}

async function listenOn(port: number): Promise<CountingServer> {
  const server = await startCountingServer({ port });
  cleanups.push(() => server.close());
  return server;
}

const post = (path: string) => call({
  method: 'POST', path, body: 'abc',
  headers: [{ name: 'host', value: 'h' }, { name: 'content-length', value: '3' }],
});

describe.each([1, 2])('circuit breaker per mirror node, mirror_threads %i', (threads) => {
  it('opens after refused connects, skips without connecting or fetching the body, probes once and closes', async () => {
    const mr = await runner(threads);
    const port = await absentPort();
    const host = `http://127.0.0.1:${port}`;
    const route = mirrorRoute('route#breaker#x#1', { host });
    const count = (outcome: string): Promise<number> => mr.metric('apisix_runner_mirror_requests_total', { target: host, outcome });
    const down = (): Promise<number> => mr.metric('apisix_runner_mirror_skipped_total', { target: host, reason: 'target_down' });

    for (let i = 1; i <= 2; i++) {
      const o = expectOk(await mr.client.httpReqCall(route, post(`/refused-${i}`)));
      expect(o.extraInfoAsked).toEqual([{ kind: 'reqBody' }]);
      await until(async () => (await count('error')) === i, `refused copy ${i} counted`);
    }
    const opened = mr.logs.filter((l) => String(l['msg']).includes('unreachable'));
    expect(opened).toHaveLength(1);
    expect(opened[0]).toMatchObject({ target: host, node: host, code: 'ECONNREFUSED', retry_in_ms: 750 });
    expect(await mr.metric('apisix_runner_mirror_node_up', { target: host, node: host })).toBe(0);

    // The port now listens: while the breaker is open nobody connects to it.
    const server = await listenOn(port);
    for (let i = 0; i < 5; i++) {
      const o = expectOk(await mr.client.httpReqCall(route, post('/while-open')));
      expect(o.kind).toBe('none');
      expect(o.extraInfoAsked).toEqual([]);
    }
    clock = 749;
    expect(expectOk(await mr.client.httpReqCall(route, post('/just-before-retry'))).extraInfoAsked).toEqual([]);
    expect(await down()).toBe(6);
    expect(await count('sent')).toBe(2);
    expect(server.connections()).toBe(0);

    // Retry time reached: one probe, which connects and closes the breaker.
    clock = 750;
    const probe = expectOk(await mr.client.httpReqCall(route, post('/probe')));
    expect(probe.extraInfoAsked).toEqual([{ kind: 'reqBody' }]);
    await until(async () => (await count('2xx')) === 1, 'probe answered');
    for (let i = 0; i < 3; i++) expectOk(await mr.client.httpReqCall(route, post(`/after-${i}`)));
    await until(() => server.requests.length === 4, 'copies flow again');
    // The server sees a copy before the runner has read its answer: wait for the runner's count.
    await until(async () => (await count('2xx')) === 4, 'the copies\' answers counted');

    expect(server.requests).toEqual(['/probe', '/after-0', '/after-1', '/after-2']);
    expect(await count('sent')).toBe(6);
    expect(await count('error')).toBe(2);
    expect(await count('2xx')).toBe(4);
    expect(await down()).toBe(6);
    expect(await count('skipped')).toBe(6);
    expect(mr.logs.filter((l) => String(l['msg']).includes('unreachable'))).toHaveLength(1);
    const closed = mr.logs.filter((l) => String(l['msg']).includes('reachable again'));
    expect(closed).toHaveLength(1);
    expect(closed[0]).toMatchObject({ target: host, node: host });
    expect(await mr.metric('apisix_runner_mirror_node_up', { target: host, node: host })).toBe(1);
  });

  it('a failed probe keeps the node out, twice as long, without another log line', async () => {
    const mr = await runner(threads);
    const host = `http://127.0.0.1:${await absentPort()}`;
    const route = mirrorRoute('route#breaker2#x#1', { host });
    const count = (outcome: string): Promise<number> => mr.metric('apisix_runner_mirror_requests_total', { target: host, outcome });
    const down = (): Promise<number> => mr.metric('apisix_runner_mirror_skipped_total', { target: host, reason: 'target_down' });
    for (let i = 1; i <= 2; i++) {
      expectOk(await mr.client.httpReqCall(route, call()));
      await until(async () => (await count('error')) === i, `refused copy ${i}`);
    }
    clock = 750;
    expectOk(await mr.client.httpReqCall(route, call({ path: '/probe-1' })));
    await until(async () => (await count('error')) === 3, 'failed probe counted');
    // Next retry: 750 + 2000 × 0.75.
    clock = 750 + 1499;
    expectOk(await mr.client.httpReqCall(route, call()));
    expect(await down()).toBe(1);
    clock = 750 + 1500;
    expectOk(await mr.client.httpReqCall(route, call({ path: '/probe-2' })));
    await until(async () => (await count('error')) === 4, 'second probe counted');
    expect(await count('sent')).toBe(4);
    expect(await down()).toBe(1);
    expect(mr.logs.filter((l) => String(l['msg']).includes('unreachable'))).toHaveLength(1);
  });

  it('holds nothing for a dead target at 100 % sampling', async () => {
    const mr = await runner(threads);
    const host = `http://127.0.0.1:${await absentPort()}`;
    const route = mirrorRoute('route#dead-mem#x#1', { host, max_queue: 10 });
    const sent = (): Promise<number> => mr.metric('apisix_runner_mirror_requests_total', { target: host, outcome: 'sent' });
    const failed = (): Promise<number> => mr.metric('apisix_runner_mirror_requests_total', { target: host, outcome: 'error' });
    // The first copy's failure, before the burst: a worker thread starts with the route's conf,
    // and while it starts (hundreds of ms from the TypeScript sources) copies wait in its ring.
    expectOk(await mr.client.httpReqCall(route, post('/dead')));
    await until(async () => (await failed()) === 1, 'the first refused copy counted');
    for (let i = 1; i < 300; i++) expectOk(await mr.client.httpReqCall(route, post('/dead')));
    await until(async () => (await failed()) === (await sent()), 'every sent copy ended');
    const down = await mr.metric('apisix_runner_mirror_skipped_total', { target: host, reason: 'target_down' });
    // Only the copies sent before the breaker opened were ever held; the rest cost nothing.
    expect(down).toBeGreaterThanOrEqual(200);
    expect(await mr.metric('apisix_runner_mirror_inflight', { target: host })).toBe(0);
    expect(await mr.metric('apisix_runner_mirror_queued_bytes', { target: host })).toBe(0);
  });
});

describe('CircuitBreaker', () => {
  it('doubles the jittered delay per failed probe up to the maximum and resets when a probe connects', () => {
    let now = 0;
    let r = 0;
    const b = new CircuitBreaker({ failures: 3, baseMs: 100, maxMs: 1000 }, () => now, () => r);
    expect(b.failed()).toBeUndefined();
    expect(b.failed()).toBeUndefined();
    expect(b.failed()).toBe(50); // 100 × (0.5 + 0/2)
    const delays: number[] = [];
    for (let i = 0; i < 6; i++) {
      expect(b.take()).toBe(false);
      now += 10_000;
      expect(b.take()).toBe(true); // the probe
      expect(b.take()).toBe(false); // only one
      r = 0.999999;
      delays.push(Math.round(b.failed()!));
    }
    expect(delays).toEqual([200, 400, 800, 1000, 1000, 1000]);
    now += 10_000;
    expect(b.take()).toBe(true);
    expect(b.succeeded()).toBe(true);
    expect(b.state).toBe('closed');
    r = 0;
    b.failed();
    b.failed();
    expect(b.failed()).toBe(50);
  });

  it('a success between failures resets the count', () => {
    const b = new CircuitBreaker({ failures: 2, baseMs: 100, maxMs: 1000 }, () => 0, () => 0);
    b.failed();
    b.succeeded();
    expect(b.failed()).toBeUndefined();
    expect(b.state).toBe('closed');
  });
});
