/**
 * Plain-number metrics (metric-tables.ts) behind a registry created on first use
 * (lazy-registry.ts): what a scrape shows must not depend on when the registry was created.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Counter, Histogram, Registry } from 'prom-client';
import { LazyRegistry } from '../../src/observability/lazy-registry.js';
import { registerHistogramTable, registerMetricTable } from '../../src/observability/metric-tables.js';
import { createMirrorMetrics } from '../../src/plugins/proxy-mirror/metrics.js';

const copies = { kind: 'counter', name: 'test_copies_total', help: 'copies', labelNames: ['target', 'outcome'] } as const;
const inflight = { kind: 'gauge', name: 'test_inflight', help: 'in flight', labelNames: ['target'] } as const;

/** Counts into both tables the same way, whatever registry they are on. */
function count(registry: Registry): void {
  const c = registerMetricTable(registry, copies);
  c.cell(['http://a', 'sent']).inc();
  c.cell(['http://a', 'sent']).inc();
  c.cell(['http://b', '2xx']).inc(5);
  const g = registerMetricTable(registry, inflight);
  g.cell(['http://a']).inc(3);
  g.cell(['http://a']).dec();
  g.cell(['http://b']).set(7);
}

describe('metric tables', () => {
  it('a registry created after the counting scrapes exactly what one that existed all along does', async () => {
    const eager = new Registry();
    count(eager);
    const lazy = new LazyRegistry();
    count(lazy);
    expect(lazy.created).toBe(false);
    const text = await lazy.metrics();
    expect(lazy.created).toBe(true);
    expect(text).toBe(await eager.metrics());
    expect(text).toMatch(/^test_copies_total\{target="http:\/\/a",outcome="sent"\} 2$/m);
    expect(text).toMatch(/^test_copies_total\{target="http:\/\/b",outcome="2xx"\} 5$/m);
    expect(text).toMatch(/^test_inflight\{target="http:\/\/a"\} 2$/m);
    expect(text).toMatch(/^test_inflight\{target="http:\/\/b"\} 7$/m);
  });

  it('asking twice for a metric on one registry shares its table (several plugin instances)', async () => {
    const registry = new LazyRegistry();
    registerMetricTable(registry, copies).cell(['t', 'sent']).inc();
    registerMetricTable(registry, copies).cell(['t', 'sent']).inc();
    expect(await registry.metrics()).toMatch(/^test_copies_total\{target="t",outcome="sent"\} 2$/m);
    expect(registry.getMetricsAsArray().filter((m) => m.name === 'test_copies_total')).toHaveLength(1);
  });

  it('a plugin registering its own prom-client metric on the lazy registry creates it and is scraped with the rest', async () => {
    const registry = new LazyRegistry();
    registerMetricTable(registry, inflight).cell(['x']).set(1);
    const own = new Counter({ name: 'plugin_own_total', help: 'own', registers: [registry] });
    own.inc(4);
    expect(registry.created).toBe(true);
    const text = await registry.metrics();
    expect(text).toMatch(/^plugin_own_total 4$/m);
    expect(text).toMatch(/^test_inflight\{target="x"\} 1$/m);
  });

  it('mirror metrics counted before the registry exists keep their values, latency included', async () => {
    const registry = new LazyRegistry();
    const m = createMirrorMetrics(registry);
    m.sent('http://t');
    m.finished('http://t', '2xx', 0.01);
    m.skipped('http://t', 'not_sampled');
    m.inflight('http://t', 2);
    m.queued('http://t', 1, 100);
    m.node('http://t', 'http://t', '2xx');
    m.nodeUp('http://t', 'http://t', false);
    m.threadRestarted();
    const text = await registry.metrics();
    for (const line of [
      'apisix_runner_mirror_requests_total{target="http://t",outcome="sent"} 1',
      'apisix_runner_mirror_requests_total{target="http://t",outcome="2xx"} 1',
      'apisix_runner_mirror_requests_total{target="http://t",outcome="skipped"} 1',
      'apisix_runner_mirror_skipped_total{target="http://t",reason="not_sampled"} 1',
      'apisix_runner_mirror_inflight{target="http://t"} 2',
      'apisix_runner_mirror_queued{target="http://t"} 1',
      'apisix_runner_mirror_queued_bytes{target="http://t"} 100',
      'apisix_runner_mirror_node_requests_total{target="http://t",node="http://t",outcome="2xx"} 1',
      'apisix_runner_mirror_node_up{target="http://t",node="http://t"} 0',
      'apisix_runner_mirror_thread_restarts_total 1',
    ]) expect(text.split('\n')).toContain(line);
    // The copy finished before the registry existed is in the histogram, like every counter.
    expect(text).toMatch(/^apisix_runner_mirror_latency_seconds_count\{target="http:\/\/t",outcome="2xx"\} 1$/m);
    expect(text).toMatch(/^apisix_runner_mirror_latency_seconds_bucket\{le="0.01",target="http:\/\/t",outcome="2xx"\} 1$/m);
    m.finished('http://t', '2xx', 0.5);
    const again = await registry.metrics();
    expect(again).toMatch(/^apisix_runner_mirror_latency_seconds_count\{target="http:\/\/t",outcome="2xx"\} 2$/m);
    expect(again).toMatch(/^apisix_runner_mirror_latency_seconds_sum\{target="http:\/\/t",outcome="2xx"\} 0.51$/m);
  });

  it('a node bound once (bindNode) counts exactly what the per-copy calls with labels count', async () => {
    const step = fc.oneof(
      fc.record({ k: fc.constant('sent' as const), t: fc.constantFrom('http://a', 'http://b'), n: fc.constantFrom('n1', 'n2') }),
      fc.record({ k: fc.constant('finished' as const), t: fc.constantFrom('http://a', 'http://b'), n: fc.constantFrom('n1', 'n2'),
        o: fc.constantFrom('2xx' as const, '4xx' as const, 'timeout' as const, 'error' as const), s: fc.double({ min: 0, max: 100, noNaN: true }) }),
      fc.record({ k: fc.constant('inflight' as const), t: fc.constantFrom('http://a', 'http://b'), n: fc.constantFrom('n1', 'n2'), d: fc.constantFrom(1, -1) }),
    );
    await fc.assert(fc.asyncProperty(fc.array(step, { maxLength: 40 }), async (steps) => {
      const byLabels = new Registry();
      const bound = new Registry();
      const a = createMirrorMetrics(byLabels);
      const b = createMirrorMetrics(bound);
      const nodes = new Map<string, ReturnType<typeof b.bindNode>>();
      const nodeOf = (t: string, n: string) => {
        let x = nodes.get(`${t} ${n}`);
        if (!x) nodes.set(`${t} ${n}`, (x = b.bindNode(t, n)));
        return x;
      };
      for (const st of steps) {
        if (st.k === 'sent') {
          a.sent(st.t);
          a.node(st.t, st.n, 'sent');
          nodeOf(st.t, st.n).sent();
        } else if (st.k === 'finished') {
          a.finished(st.t, st.o, st.s);
          a.node(st.t, st.n, st.o);
          nodeOf(st.t, st.n).finished(st.o, st.s);
        } else {
          a.inflight(st.t, st.d);
          nodeOf(st.t, st.n).inflight(st.d);
        }
      }
      expect(await bound.metrics()).toBe(await byLabels.metrics());
    }), { numRuns: 60 });
  });
});

describe('histogram tables', () => {
  const BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
  const spec = { name: 'test_latency_seconds', help: 'latency', labelNames: ['target', 'outcome'], buckets: BUCKETS } as const;

  it('scrape the same text as a prom-client Histogram fed the same observations', async () => {
    const observation = fc.tuple(fc.constantFrom('http://a', 'http://b'), fc.constantFrom('2xx', 'timeout'),
      fc.oneof(fc.constantFrom(...BUCKETS, 0, 61), fc.double({ min: 0, max: 100, noNaN: true })));
    await fc.assert(fc.asyncProperty(fc.array(observation, { maxLength: 60 }), async (obs) => {
      const theirs = new Registry();
      const h = new Histogram({ ...spec, labelNames: [...spec.labelNames], buckets: [...BUCKETS], registers: [theirs] });
      const ours = new LazyRegistry();
      const table = registerHistogramTable(ours, spec);
      for (const [target, outcome, v] of obs) {
        h.labels(target, outcome).observe(v);
        table.cell([target, outcome]).observe(v);
      }
      // Series order may differ (label sets are listed as first seen in both): compare as sets.
      const lines = (text: string) => new Set(text.split('\n').filter((l) => l.startsWith('test_latency')));
      expect(lines(await ours.metrics())).toEqual(lines(await theirs.metrics()));
      expect(await ours.metrics()).toContain('# TYPE test_latency_seconds histogram');
    }), { numRuns: 60 });
  });

  it('asking twice on one registry shares the table', async () => {
    const registry = new LazyRegistry();
    registerHistogramTable(registry, spec).cell(['t', '2xx']).observe(0.002);
    registerHistogramTable(registry, spec).cell(['t', '2xx']).observe(0.002);
    expect(await registry.metrics()).toMatch(/^test_latency_seconds_count\{target="t",outcome="2xx"\} 2$/m);
  });
});
