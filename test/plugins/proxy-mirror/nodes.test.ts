/**
 * Targets with several nodes: copies balanced by weight with keep-alive per node, a dead node
 * taken out while the others carry on, limits applying to the target as a whole, per-node
 * metrics, and a host name resolved to its addresses. Real HTTP servers on 127.0.0.1.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { absentPort, call, expectOk, mirrorRoute, startMirrorRunner, until, type MirrorRunner } from './fixtures.js';
import { startCountingServer, type CountingServer } from './counting-server.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function servers(n: number, hold = false): Promise<CountingServer[]> {
  const out: CountingServer[] = [];
  for (let i = 0; i < n; i++) {
    const s = await startCountingServer({ hold });
    cleanups.push(() => s.close());
    out.push(s);
  }
  return out;
}

async function runner(settings?: Record<string, unknown>): Promise<MirrorRunner> {
  const mr = await startMirrorRunner({ now: () => 0, jitter: () => 0.5, settings });
  cleanups.push(() => mr.close());
  return mr;
}

describe('proxy-mirror with a list of nodes', () => {
  it('balances copies by weight, one keep-alive connection per node, counted per node', async () => {
    const [a, b, c] = await servers(3);
    const mr = await runner();
    const host = [a!.url, b!.url, { host: c!.url, weight: 2 }];
    const label = `${a!.url},${b!.url},${c!.url}`;
    const route = mirrorRoute('route#nodes#x#1', { host, max_concurrency: 1 });
    for (let i = 0; i < 40; i++) expectOk(await mr.client.httpReqCall(route, call({ path: `/n${i}` })));
    await until(() => a!.requests.length + b!.requests.length + c!.requests.length === 40, '40 copies');
    expect([a!.requests.length, b!.requests.length, c!.requests.length]).toEqual([10, 10, 20]);
    // max_concurrency 1 for the target: never two copies at once, so one connection per node.
    expect([a!.connections(), b!.connections(), c!.connections()]).toEqual([1, 1, 1]);
    const node = (n: string, outcome: string): Promise<number> =>
      mr.metric('apisix_runner_mirror_node_requests_total', { target: label, node: n, outcome });
    await until(async () => (await mr.metric('apisix_runner_mirror_requests_total', { target: label, outcome: '2xx' })) === 40, '40 answers');
    expect(await node(c!.url, 'sent')).toBe(20);
    expect(await node(c!.url, '2xx')).toBe(20);
    expect(await node(a!.url, '2xx')).toBe(10);
  });

  it('takes a dead node out and keeps mirroring to the others', async () => {
    const [a, b] = await servers(2);
    const dead = `http://127.0.0.1:${await absentPort()}`;
    const mr = await runner({ breaker: { failures: 1 } });
    const host = [a!.url, dead, b!.url];
    const label = host.join(',');
    const route = mirrorRoute('route#dead-node#x#1', { host, max_concurrency: 1 });
    for (let i = 0; i < 30; i++) expectOk(await mr.client.httpReqCall(route, call()));
    const count = (outcome: string): Promise<number> => mr.metric('apisix_runner_mirror_requests_total', { target: label, outcome });
    await until(async () => (await count('2xx')) + (await count('error')) === 30, '30 copies ended');
    // With one copy in flight at a time the dead node is tried exactly once.
    expect(await count('error')).toBe(1);
    expect(await mr.metric('apisix_runner_mirror_node_requests_total', { target: label, node: dead, outcome: 'error' })).toBe(1);
    expect(a!.requests.length + b!.requests.length).toBe(29);
    expect(await mr.metric('apisix_runner_mirror_skipped_total', { target: label, reason: 'target_down' })).toBe(0);
    expect(await mr.metric('apisix_runner_mirror_node_up', { target: label, node: dead })).toBe(0);
    expect(mr.logs.filter((l) => String(l['msg']).includes('unreachable') && l['node'] === dead)).toHaveLength(1);
  });

  it('applies in-flight and queue limits to the target as a whole', async () => {
    const [a, b, c] = await servers(3, true);
    const mr = await runner();
    const host = [a!.url, b!.url, c!.url];
    const label = host.join(',');
    const route = mirrorRoute('route#node-limits#x#1', { host, max_concurrency: 2, max_queue: 1 });
    for (let i = 0; i < 10; i++) expectOk(await mr.client.httpReqCall(route, call()));
    await until(() => a!.requests.length + b!.requests.length === 2, 'two copies held');
    expect(await mr.metric('apisix_runner_mirror_requests_total', { target: label, outcome: 'dropped' })).toBe(7);
    expect(await mr.metric('apisix_runner_mirror_inflight', { target: label })).toBe(2);
    expect(await mr.metric('apisix_runner_mirror_queued', { target: label })).toBe(1);
    expect(c!.requests).toHaveLength(0);
  });

  it('resolves a host name and sends to its addresses, labelled per address', async () => {
    const [a] = await servers(1);
    const mr = await runner();
    const host = `http://localhost:${a!.port}`;
    const route = mirrorRoute('route#dns#x#1', { host });
    const target = mr.plugin.dispatcher;
    expect(target.size).toBe(0);
    expectOk(await mr.client.httpReqCall(route, call({ path: '/dns-0' })));
    await until(() => a!.requests.length === 1, 'first copy');
    // localhost is 127.0.0.1 here (/etc/hosts); the resolved address becomes the node.
    const node = `http://127.0.0.1:${a!.port}`;
    for (let i = 1; i < 5; i++) expectOk(await mr.client.httpReqCall(route, call({ path: `/dns-${i}` })));
    await until(() => a!.requests.length === 5, 'five copies');
    await until(async () => (await mr.metric('apisix_runner_mirror_requests_total', { target: host, outcome: '2xx' })) === 5, 'five answers');
    expect(await mr.metric('apisix_runner_mirror_node_requests_total', { target: host, node, outcome: '2xx' })).toBeGreaterThanOrEqual(1);
  });

  it('rejects a list mixing schemes, a duplicate node and a bad weight, naming the field', async () => {
    const mr = await runner();
    const route = (key: string, conf: Record<string, unknown>) => mirrorRoute(key, conf);
    for (const [key, conf] of [
      ['route#mix#x#1', { host: ['http://127.0.0.1:1', 'https://127.0.0.1:2'] }],
      ['route#dup#x#1', { host: ['http://127.0.0.1:1', { host: 'http://127.0.0.1:1', weight: 3 }] }],
      ['route#weight#x#1', { host: [{ host: 'http://127.0.0.1:1', weight: 0 }] }],
    ] as const) {
      expectOk(await mr.client.httpReqCall(route(key, conf), call()));
    }
    const errors = mr.logs.filter((l) => String(l['msg']).includes('invalid conf'));
    expect(errors).toHaveLength(3);
    expect(errors.map((e) => e['field'])).toEqual(['/host/1', '/host/1', expect.stringMatching(/^\/host/)]);
  });
});
