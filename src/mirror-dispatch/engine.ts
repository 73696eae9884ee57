/**
 * The dispatch engine: the only code that talks to mirror (and, later, shadow) targets. One
 * DispatchTarget per distinct target spec, shared by whoever uses it (reference counted), one
 * timeout sweep per node (in http-node.ts). It knows nothing of APISIX or of sampling.
 */
import { performance } from 'node:perf_hooks';
import { DispatchTarget } from './target.js';
import { DispatchThreads } from './thread-pool.js';
import type { DispatchObserver, TargetSpec } from './types.js';

export interface EngineOptions {
  readonly observer: DispatchObserver;
  /** Monotonic milliseconds for latency and breaker delays; default performance.now. */
  readonly now?: () => number;
  /** Uniform in [0, 1) for breaker jitter; default Math.random. */
  readonly random?: () => number;
  /** At shutdown (and when an unused target goes), how long queued and in-flight requests may go on. */
  readonly closeGraceMs: number;
  /**
   * Threads that send requests, this one included: 1 sends from this thread (nothing else
   * started); N > 1 starts N - 1 worker threads that own the connection pools.
   */
  readonly threads?: number;
  /**
   * Nice value (0-19) the worker threads give themselves on Linux, below the RPC thread's and
   * APISIX's: when the cores are busy, the real requests get the CPU first and copies wait (and
   * are shed by the targets' limits). 0: the process's priority. Default 0.
   */
  readonly threadNice?: number;
}

/** A key for everything that shapes a target's transport and limits. */
export function targetKey(spec: TargetSpec): string {
  return JSON.stringify([spec.protocol, spec.tls, spec.tlsVerify, spec.nodes, spec.resolveAll, spec.timeouts, spec.limits, spec.breaker, spec.pipelining]);
}

export class DispatchEngine {
  private readonly targets = new Map<string, DispatchTarget>();
  private closed = false;

  constructor(private readonly options: EngineOptions) {
    const realNow = (): number => performance.now();
    const threads = options.threads ?? 1;
    this.threads = threads > 1
      ? new DispatchThreads(threads - 1, (i, reason, lost) => options.observer.threadRestarted(i, reason, lost), undefined, options.threadNice ?? 0)
      : undefined;
    this.deps = {
      threads: this.threads,
      observer: options.observer,
      now: options.now ?? realNow,
      random: options.random ?? Math.random,
      deadlineNow: realNow,
    };
  }

  private readonly deps: ConstructorParameters<typeof DispatchTarget>[2];
  /** Worker threads, when the engine runs with more than one thread. */
  readonly threads: DispatchThreads | undefined;

  /** Takes a reference on the target of a spec (created on first use). */
  acquire(spec: TargetSpec): DispatchTarget {
    const key = targetKey(spec);
    let t = this.targets.get(key);
    if (!t) {
      t = new DispatchTarget(key, spec, this.deps, (idle) => this.closeUnreferenced(idle));
      // After shutdown a late user still gets a target, but a closed one (requests refused).
      if (this.closed) void t.close(0);
      else this.targets.set(key, t);
    }
    t.refs++;
    return t;
  }

  /** Drops a reference; an unreferenced target closes once it has nothing in flight. */
  release(target: DispatchTarget): void {
    target.refs = Math.max(0, target.refs - 1);
    if (target.refs === 0 && target.idle) this.closeUnreferenced(target);
  }

  private closeUnreferenced(target: DispatchTarget): void {
    if (this.targets.get(target.key) === target) this.targets.delete(target.key);
    void target.close(this.options.closeGraceMs);
  }

  /** Number of live targets (for tests and diagnostics). */
  get size(): number {
    return this.targets.size;
  }

  /**
   * Closes every target: queued and in-flight requests get the grace period, then what is still
   * queued is counted as dropped and what is in flight is cut.
   */
  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.targets.values()];
    this.targets.clear();
    await Promise.all(all.map((t) => t.close(this.options.closeGraceMs)));
    await this.threads?.close();
  }
}
