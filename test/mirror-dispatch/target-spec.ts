/** A one-node plain-HTTP TargetSpec on 127.0.0.1, for tests of the dispatch engine alone. */
import type { TargetSpec } from '../../src/mirror-dispatch/index.js';

export function localTargetSpec(port: number, timeouts = { connectMs: 5000, sendMs: 5000, readMs: 5000 }): TargetSpec {
  const origin = `http://127.0.0.1:${port}`;
  return {
    label: origin, protocol: 'http', tls: false, tlsVerify: true, tlsCa: undefined,
    nodes: [{ label: origin, authority: `127.0.0.1:${port}`, hostname: '127.0.0.1', port, weight: 1 }],
    resolveAll: false, resolveEveryMs: 30_000,
    timeouts,
    limits: { maxConcurrency: 4, maxQueue: 10, maxQueueBytes: 1 << 20 },
    breaker: { failures: 3, baseMs: 1000, maxMs: 10_000 },
  };
}
