/**
 * Turns the dispatch engine's reports into the mirror's metrics and log lines: problem lines
 * rate limited per target and kind, and exactly one line when a node is taken out and one when
 * it comes back.
 */
import type { DispatchObserver } from '../../mirror-dispatch/index.js';
import type { Logger } from '../../plugin-api/index.js';
import type { LogLimiter } from './log-limiter.js';
import type { MirrorMetrics } from './metrics.js';

export function createDispatchObserver(metrics: MirrorMetrics, limiter: LogLimiter, logger: Logger): DispatchObserver {
  return {
    sent(target, node) {
      metrics.sent(target);
      metrics.node(target, node, 'sent');
    },
    finished(target, node, outcome, seconds) {
      metrics.finished(target, outcome, seconds);
      if (node !== undefined) metrics.node(target, node, outcome);
    },
    refused(target, reason) {
      metrics.skipped(target, reason);
    },
    inflight: (target, delta) => metrics.inflight(target, delta),
    bindNode: (target, node) => metrics.bindNode(target, node),
    queued: (target, dc, db) => metrics.queued(target, dc, db),
    failed(target, node, outcome, code, message) {
      const grpc = code.startsWith('GRPC_');
      limiter.warn(`${target}:${outcome}`, () => ({
        target, node, outcome, code, err: message, ...(grpc ? { grpc_status: code.slice(5), grpc_message: message } : {}),
      }), grpc
        ? `proxy-mirror: gRPC copy to ${target} failed (${code.slice(5)}: ${message})`
        : `proxy-mirror: copy to ${target} failed (${outcome})`);
    },
    nodeState(target, node, state, detail) {
      metrics.nodeUp(target, node, state === 'closed');
      if (state === 'open') {
        logger.warn({ target, node, code: detail.code, retry_in_ms: detail.retryInMs },
          `proxy-mirror: mirror node ${node} unreachable (${detail.code ?? 'connect failed'}); copies to it are skipped until a probe reaches it`);
      } else {
        logger.info({ target, node }, `proxy-mirror: mirror node ${node} reachable again; copies flow`);
      }
    },
    threadRestarted(thread, reason, lost) {
      metrics.threadRestarted();
      logger.error({ thread, reason, lost }, `proxy-mirror: mirror thread ${thread} died (${reason}); restarted, ${lost} copies in flight counted as errors`);
    },
    dropped(target, load) {
      limiter.warn(`${target}:dropped`, () => ({ target, ...load }), 'proxy-mirror: queue full, copy dropped');
    },
  };
}
