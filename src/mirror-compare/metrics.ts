/**
 * Prometheus metrics of the comparison, on an injected registry. Labels are bounded: `route`
 * is a configured route, `target` a configured mirror host, `result`/`side`/`reason` fixed sets.
 * Registering twice on one registry reuses the metrics (several routes share them).
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { CompareResult, SkipReason } from './compare-result.js';

export interface CompareMetrics {
  /** One pair finished with this result. */
  compared(route: string, target: string, result: CompareResult): void;
  /** Why a `skipped` pair was skipped. */
  skipped(route: string, target: string, reason: SkipReason): void;
  /** Latency of the real (`primary`) or the candidate's (`mirror`) answer of a pair, in seconds. */
  latency(route: string, target: string, side: 'primary' | 'mirror', seconds: number): void;
  /** Pairs waiting and the bytes they hold, per route. */
  pending(route: string, count: number, bytes: number): void;
}

function reuse<T>(registry: Registry, name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

/** Registers (or reuses) the compare metrics on a registry. */
export function createCompareMetrics(registry: Registry): CompareMetrics {
  const compared = reuse(registry, 'apisix_runner_mirror_compared_total', () => new Counter({
    name: 'apisix_runner_mirror_compared_total',
    help: 'Mirrored requests whose real and mirror answers were compared, by route, target and result (equal, differ_status, differ_headers, differ_body, mirror_timeout, mirror_error, primary_only, skipped).',
    labelNames: ['route', 'target', 'result'],
    registers: [registry],
  }));
  const skipped = reuse(registry, 'apisix_runner_mirror_compare_skipped_total', () => new Counter({
    name: 'apisix_runner_mirror_compare_skipped_total',
    help: 'Pairs counted as skipped, by route, target and reason (no_primary, evicted, compare_error).',
    labelNames: ['route', 'target', 'reason'],
    registers: [registry],
  }));
  const latency = reuse(registry, 'apisix_runner_mirror_compare_latency_seconds', () => new Histogram({
    name: 'apisix_runner_mirror_compare_latency_seconds',
    help: 'Latency of the real (side="primary") and the mirror (side="mirror") answers of compared requests, side by side.',
    labelNames: ['route', 'target', 'side'],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [registry],
  }));
  const pendingCount = reuse(registry, 'apisix_runner_mirror_compare_pending', () => new Gauge({
    name: 'apisix_runner_mirror_compare_pending', help: 'Pairs waiting for their other answer, by route.', labelNames: ['route'], registers: [registry],
  }));
  const pendingBytes = reuse(registry, 'apisix_runner_mirror_compare_pending_bytes', () => new Gauge({
    name: 'apisix_runner_mirror_compare_pending_bytes', help: 'Bytes held by pairs waiting, by route.', labelNames: ['route'], registers: [registry],
  }));
  return {
    compared: (route, target, result) => compared.labels(route, target, result).inc(),
    skipped: (route, target, reason) => skipped.labels(route, target, reason).inc(),
    latency: (route, target, side, seconds) => latency.labels(route, target, side).observe(seconds),
    pending: (route, count, bytes) => {
      pendingCount.labels(route).set(count);
      pendingBytes.labels(route).set(bytes);
    },
  };
}
