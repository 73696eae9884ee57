/**
 * Plain-number metrics (metric-tables.ts) behind a registry created on first use
 * (lazy-registry.ts): what a scrape shows must not depend on when the registry was created.
 */
import { describe, expect, it } from 'vitest';
import { Counter, Registry } from 'prom-client';
import { LazyRegistry } from '../../src/observability/lazy-registry.js';
import { registerMetricTable } from '../../src/observability/metric-tables.js';
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

  it('mirror metrics counted before the registry exists keep their values; latency is timed once it exists', async () => {
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
    // The copy finished before the registry existed was not timed; the next one is.
    expect(text).not.toMatch(/apisix_runner_mirror_latency_seconds_count\{/);
    m.finished('http://t', '2xx', 0.01);
    expect(await registry.metrics()).toMatch(/^apisix_runner_mirror_latency_seconds_count\{target="http:\/\/t",outcome="2xx"\} 1$/m);
  });
});
