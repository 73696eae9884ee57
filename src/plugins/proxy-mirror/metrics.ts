/**
 * Prometheus metrics of the mirror, registered on the runner's registry. Labels are bounded:
 * `target` is a conf's `host` (as many as configured targets), outcomes and reasons are fixed sets.
 * Counters, gauges and the latency histogram are plain numbers (observability/metric-tables.ts)
 * until someone scrapes them: no prom-client call per copy.
 */
import type { Registry } from 'prom-client';
import type { DispatchOutcome } from '../../mirror-dispatch/index.js';
import { boundByOne, boundByTwo, registerHistogramTable, registerMetricTable, type MetricCell, type TableMetric } from '../../observability/metric-tables.js';

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
  /**
   * sent + node(…, 'sent'), finished + node(…, outcome) and inflight of one target and node,
   * with the cells found once (the dispatch engine's NodeObserver).
   */
  bindNode(target: string, node: string): {
    sent(): void;
    finished(outcome: MirrorOutcome, seconds: number | undefined): void;
    inflight(delta: number): void;
  };
  /** Per node: 1 while it takes copies, 0 while its circuit breaker holds it out. */
  nodeUp(target: string, node: string, up: boolean): void;
  /** A mirror worker thread died and was restarted. */
  threadRestarted(): void;
}

const byTarget = (kind: TableMetric['kind'], name: string, help: string): TableMetric => ({ kind, name, help, labelNames: ['target'] });

/** Registers (or reuses) the mirror metrics on a registry. */
export function createMirrorMetrics(registry: Registry): MirrorMetrics {
  const table = (metric: TableMetric) => registerMetricTable(registry, metric);
  const copies = table({ kind: 'counter', name: 'apisix_runner_mirror_requests_total',
    help: 'Mirror copies by target and outcome (sent, 1xx..5xx, grpc_ok, grpc_error, timeout, error, dropped, skipped).', labelNames: ['target', 'outcome'] });
  const skips = table({ kind: 'counter', name: 'apisix_runner_mirror_skipped_total',
    help: 'Requests not mirrored, by target and reason.', labelNames: ['target', 'reason'] });
  const omitted = table({ kind: 'counter', name: 'apisix_runner_mirror_body_omitted_total',
    help: 'Copies sent without their body, by target and reason.', labelNames: ['target', 'reason'] });
  const latency = registerHistogramTable(registry, {
    name: 'apisix_runner_mirror_latency_seconds',
    help: 'Time from sending a copy to the end of its (discarded) response, by target and outcome.',
    labelNames: ['target', 'outcome'],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
  });
  const inflight = table(byTarget('gauge', 'apisix_runner_mirror_inflight', 'Mirror copies in flight, by target.'));
  const queueLen = table(byTarget('gauge', 'apisix_runner_mirror_queued', 'Mirror copies waiting in the queue, by target.'));
  const queueBytes = table(byTarget('gauge', 'apisix_runner_mirror_queued_bytes', 'Bytes held by queued mirror copies, by target.'));
  const perNode = table({ kind: 'counter', name: 'apisix_runner_mirror_node_requests_total',
    help: 'Mirror copies by target, node and outcome (sent, 1xx..5xx, grpc_ok, grpc_error, timeout, error).', labelNames: ['target', 'node', 'outcome'] });
  const nodeUp = table({ kind: 'gauge', name: 'apisix_runner_mirror_node_up',
    help: '1 while a mirror node takes copies, 0 while its circuit breaker holds it out.', labelNames: ['target', 'node'] });
  const restarts = table({ kind: 'counter', name: 'apisix_runner_mirror_thread_restarts_total',
    help: 'Mirror worker threads that died and were restarted.', labelNames: [] }).cell([]);

  // Cells bound once per label set: no label hashing per copy.
  const copiesOf = boundByTwo((target, outcome) => copies.cell([target, outcome]));
  const skipsOf = boundByTwo((target, reason) => skips.cell([target, reason]));
  const omittedOf = boundByTwo((target, reason) => omitted.cell([target, reason]));
  const nodeCells = boundByTwo(() => new Map<string, MetricCell>());
  const nodeCell = (target: string, node: string, outcome: string): MetricCell => {
    const byOutcome = nodeCells(target, node);
    let c = byOutcome.get(outcome);
    if (!c) byOutcome.set(outcome, (c = perNode.cell([target, node, outcome])));
    return c;
  };
  const latencyOf = boundByTwo((target, outcome) => latency.cell([target, outcome]));
  const inflightOf = boundByOne((target) => inflight.cell([target]));
  const queueLenOf = boundByOne((target) => queueLen.cell([target]));
  const queueBytesOf = boundByOne((target) => queueBytes.cell([target]));
  const nodeUpOf = boundByTwo((target, node) => nodeUp.cell([target, node]));

  return {
    sent: (target) => copiesOf(target, 'sent').n++,
    finished: (target, outcome, seconds) => {
      copiesOf(target, outcome).n++;
      if (seconds !== undefined) latencyOf(target, outcome).observe(seconds);
    },
    skipped: (target, reason) => {
      copiesOf(target, 'skipped').n++;
      skipsOf(target, reason).n++;
    },
    bodyOmitted: (target, reason) => omittedOf(target, reason).n++,
    inflight: (target, delta) => inflightOf(target).inc(delta),
    queued: (target, dc, db) => {
      queueLenOf(target).inc(dc);
      queueBytesOf(target).inc(db);
    },
    node: (target, node, outcome) => nodeCell(target, node, outcome).n++,
    bindNode: (target, node) => {
      // Each cell found at its first use, as the calls with labels do (no series before then).
      let sentCopies: MetricCell | undefined;
      let sentHere: MetricCell | undefined;
      let inflightCell: ReturnType<typeof inflightOf> | undefined;
      const byOutcome = new Map<string, { copies: MetricCell; latency: ReturnType<typeof latency.cell>; here: MetricCell }>();
      return {
        sent: () => {
          (sentCopies ??= copiesOf(target, 'sent')).n++;
          (sentHere ??= nodeCell(target, node, 'sent')).n++;
        },
        finished: (outcome, seconds) => {
          let c = byOutcome.get(outcome);
          if (!c) byOutcome.set(outcome, (c = { copies: copiesOf(target, outcome), latency: latencyOf(target, outcome), here: nodeCell(target, node, outcome) }));
          c.copies.n++;
          // No duration (a copy lost with a worker thread): counted, not observed.
          if (seconds !== undefined) c.latency.observe(seconds);
          c.here.n++;
        },
        inflight: (delta) => (inflightCell ??= inflightOf(target)).inc(delta),
      };
    },
    nodeUp: (target, node, up) => nodeUpOf(target, node).set(up ? 1 : 0),
    threadRestarted: () => restarts.inc(),
  };
}
