/** One worker thread with one plain-HTTP node on 127.0.0.1:`port`, for tests of the worker pool. */
import { DispatchThreads } from '../../src/mirror-dispatch/thread-pool.js';
import { CircuitBreaker } from '../../src/mirror-dispatch/circuit-breaker.js';
import type { NodeTransport } from '../../src/mirror-dispatch/http-node.js';
import { localTargetSpec } from './target-spec.js';

export function oneThreadNode(port: number): { threads: DispatchThreads; node: NodeTransport } {
  const threads = new DispatchThreads(1, () => undefined);
  const spec = localTargetSpec(port, { connectMs: 5000, sendMs: 5000, readMs: 5000 });
  const breaker = new CircuitBreaker({ failures: 3, baseMs: 1000, maxMs: 10000 }, () => performance.now(), Math.random);
  return { threads, node: threads.createNode(spec.nodes[0]!, spec, breaker, undefined) };
}
