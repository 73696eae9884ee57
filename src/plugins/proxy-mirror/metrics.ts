/**
 * Prometheus metrics of the mirror, registered on the runner's registry. Labels are bounded:
 * `target` is a conf's `host` (as many as configured targets), outcomes and reasons are fixed sets.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { DispatchOutcome } from '../../mirror-dispatch/index.js';
import { boundByOne, boundByTwo, registerCountTable } from '../../observability/metrics.js';

/** Terminal outcome of a copy that was handed to the dispatch engine. */
export type MirrorOutcome = DispatchOutcome;

/** Why a request was not copied. */
export type SkipReason =
  | 'not_sampled'
  | 'method'
  | 'loop'
  | 'body_too_large'
  | 'body_unknown_length'
  | 'grpc_unknown_length'
  | 'grpc_bad_body'
  | 'extra_info_error'
  | 'target_down'
  | 'closed';

/** The metric handles used by the plugin. */
export interface MirrorMetrics {
  /** A copy was handed to its transport (outcome counted later). */
  sent(target: string): void;
  /** Terminal outcome and, for copies that were sent, their latency in seconds. */
  finished(target: string, outcome: MirrorOutcome, seconds?: number): void;
  /** A request was not copied (`outcome="skipped"` plus a reason). */
  skipped(target: string, reason: SkipReason): void;
  /** A copy was sent without its body (body_over_limit: send_without_body). */
  bodyOmitted(target: string, reason: SkipReason): void;
  inflight(target: string, delta: number): void;
  queued(target: string, deltaCount: number, deltaBytes: number): void;
  /** Per node of a target: a copy sent there, and its outcome. */
  node(target: string, node: string, outcome: MirrorOutcome | 'sent'): void;
  /** Per node: 1 while it takes copies, 0 while its circuit breaker holds it out. */
  nodeUp(target: string, node: string, up: boolean): void;
  /** A mirror worker thread died and was restarted. */
  threadRestarted(): void;
}

function gauge(registry: Registry, name: string, help: string): Gauge<string> {
  const existing = registry.getSingleMetric(name);
  if (existing) return existing as Gauge<string>;
  return new Gauge({ name, help, labelNames: ['target'], registers: [registry] });
}

/** Registers (or reuses) the mirror metrics on a registry. */
export function createMirrorMetrics(registry: Registry): MirrorMetrics {
  const copies = registerCountTable(registry, 'apisix_runner_mirror_requests_total',
    'Mirror copies by target and outcome (sent, 1xx..5xx, grpc_ok, grpc_error, timeout, error, dropped, skipped).',
    ['target', 'outcome'] as const);
  const skips = registerCountTable(registry, 'apisix_runner_mirror_skipped_total',
    'Requests not mirrored, by target and reason.', ['target', 'reason'] as const);
  const omitted = registerCountTable(registry, 'apisix_runner_mirror_body_omitted_total',
    'Copies sent without their body, by target and reason.', ['target', 'reason'] as const);
  const existingLatency = registry.getSingleMetric('apisix_runner_mirror_latency_seconds');
  const latency = (existingLatency as Histogram<string> | undefined) ?? new Histogram({
    name: 'apisix_runner_mirror_latency_seconds',
    help: 'Time from sending a copy to the end of its (discarded) response, by target and outcome.',
    labelNames: ['target', 'outcome'],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [registry],
  });
  const inflight = gauge(registry, 'apisix_runner_mirror_inflight', 'Mirror copies in flight, by target.');
  const queueLen = gauge(registry, 'apisix_runner_mirror_queued', 'Mirror copies waiting in the queue, by target.');
  const queueBytes = gauge(registry, 'apisix_runner_mirror_queued_bytes', 'Bytes held by queued mirror copies, by target.');

  const existingNode = registry.getSingleMetric('apisix_runner_mirror_node_requests_total');
  const perNode = (existingNode as Counter<string> | undefined) ?? new Counter({
    name: 'apisix_runner_mirror_node_requests_total',
    help: 'Mirror copies by target, node and outcome (sent, 1xx..5xx, grpc_ok, grpc_error, timeout, error).',
    labelNames: ['target', 'node', 'outcome'],
    registers: [registry],
  });
  const existingUp = registry.getSingleMetric('apisix_runner_mirror_node_up');
  const nodeUp = (existingUp as Gauge<string> | undefined) ?? new Gauge({
    name: 'apisix_runner_mirror_node_up',
    help: '1 while a mirror node takes copies, 0 while its circuit breaker holds it out.',
    labelNames: ['target', 'node'],
    registers: [registry],
  });
  const existingRestarts = registry.getSingleMetric('apisix_runner_mirror_thread_restarts_total');
  const restarts = (existingRestarts as Counter<string> | undefined) ?? new Counter({
    name: 'apisix_runner_mirror_thread_restarts_total',
    help: 'Mirror worker threads that died and were restarted.',
    registers: [registry],
  });
  // Bound children per (target, node), then per outcome: no label hashing per copy.
  const nodeCounters = boundByTwo(() => new Map<string, { inc(): void }>());
  const nodeCounter = (target: string, node: string, outcome: string): { inc(): void } => {
    const byOutcome = nodeCounters(target, node);
    let c = byOutcome.get(outcome);
    if (!c) byOutcome.set(outcome, (c = perNode.labels(target, node, outcome)));
    return c;
  };

  const latencyOf = boundByTwo((target, outcome) => latency.labels(target, outcome));
  const inflightOf = boundByOne((target) => inflight.labels(target));
  const queueLenOf = boundByOne((target) => queueLen.labels(target));
  const queueBytesOf = boundByOne((target) => queueBytes.labels(target));

  return {
    sent: (target) => copies.inc(target, 'sent'),
    finished: (target, outcome, seconds) => {
      copies.inc(target, outcome);
      if (seconds !== undefined) latencyOf(target, outcome).observe(seconds);
    },
    skipped: (target, reason) => {
      copies.inc(target, 'skipped');
      skips.inc(target, reason);
    },
    bodyOmitted: (target, reason) => omitted.inc(target, reason),
    inflight: (target, delta) => inflightOf(target).inc(delta),
    queued: (target, dc, db) => {
      queueLenOf(target).inc(dc);
      queueBytesOf(target).inc(db);
    },
    node: (target, node, outcome) => nodeCounter(target, node, outcome).inc(),
    nodeUp: (target, node, up) => nodeUp.labels(target, node).set(up ? 1 : 0),
    threadRestarted: () => restarts.inc(),
  };
}
