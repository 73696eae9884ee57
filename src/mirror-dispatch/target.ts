/**
 * One dispatch target: its nodes, its limits as a whole (in flight, queue count and bytes) and
 * the balancing between nodes. Beyond the queue a request is dropped and counted, so a slow or
 * dead target holds at most (maxConcurrency + maxQueue) requests and maxQueueBytes of queued
 * data. A target whose nodes are all out (circuit breakers open) refuses requests before they
 * are built: no connect attempt, and the caller pays nothing to prepare them.
 */
import { isIP } from 'node:net';
import { CircuitBreaker } from './circuit-breaker.js';
import { drainWithin } from './drain.js';
import { GrpcNode } from './grpc-node.js';
import { HttpNode, settleBreaker, type CountedOutcomes, type NodeTransport } from './http-node.js';
import { NodePicker } from './node-picker.js';
import { createNameResolver, type NameResolver } from './resolver.js';
import type { DispatchThreads } from './thread-pool.js';
import type { DispatchObserver, DispatchRequest, NodeObserver, NodeSpec, ResponseSink, SubmitResult, TargetSpec } from './types.js';

/** What a target needs from its engine. */
export interface TargetDeps {
  readonly observer: DispatchObserver;
  /** Monotonic milliseconds (latency, breaker delays). */
  readonly now: () => number;
  /** Uniform in [0, 1) (breaker jitter). */
  readonly random: () => number;
  /** Monotonic milliseconds for request deadlines (the real clock, even when `now` is a test's). */
  readonly deadlineNow: () => number;
  /** Worker threads that own the nodes' pools; undefined: nodes live on this thread. */
  readonly threads: DispatchThreads | undefined;
}

interface Queued {
  readonly req: DispatchRequest;
  readonly sink: ResponseSink | undefined;
}

export class DispatchTarget {
  refs = 0;
  private inflight = 0;
  private readonly queue: Queued[] = [];
  private queueHead = 0;
  private queuedBytes = 0;
  private closed = false;
  private readonly picker: NodePicker;
  private resolveTimer: NodeJS.Timeout | undefined;
  private resolver: NameResolver | undefined;
  /** A host name's first resolution is under way: copies wait in the queue rather than go to the bare name. */
  private awaitingAddresses = false;
  private drained: (() => void) | undefined;
  /** Each node's reports, bound once (DispatchObserver.bindNode). */
  private readonly nodeObservers = new WeakMap<NodeTransport, NodeObserver>();

  constructor(
    readonly key: string,
    readonly spec: TargetSpec,
    private readonly deps: TargetDeps,
    private readonly onIdleUnreferenced: (t: DispatchTarget) => void,
  ) {
    this.picker = new NodePicker(spec.nodes.map((n) => this.createNode(n)));
    if (spec.resolveAll && spec.nodes.length === 1 && isIP(spec.nodes[0]!.hostname) === 0) {
      this.resolver = createNameResolver(spec.dnsServers);
      this.awaitingAddresses = true;
      void this.resolve();
    }
  }

  private createNode(node: NodeSpec, tlsName?: string): NodeTransport {
    const breaker = new CircuitBreaker(this.spec.breaker, this.deps.now, this.deps.random);
    const reports = this.bindObserver(node.label);
    let transport: NodeTransport;
    if (this.deps.threads) transport = this.deps.threads.createNode(node, this.spec, breaker, tlsName, this.countedOutcomes(node.label, breaker, reports));
    else if (this.spec.protocol === 'grpc') transport = new GrpcNode(node, this.spec, breaker);
    else transport = new HttpNode(node, this.spec, breaker, this.deps.deadlineNow, tlsName);
    this.nodeObservers.set(transport, reports);
    return transport;
  }

  /**
   * A node's counted outcomes (NodeTransport.sendCounted): what start's callback does for one
   * request, for a batch at once. Durations are measured in the worker, from when it sends.
   */
  private countedOutcomes(nodeLabel: string, breaker: CircuitBreaker, reports: NodeObserver): CountedOutcomes {
    const { observer } = this.deps;
    const label = this.spec.label;
    return (outcome, n, micros, first, code, message) => {
      for (let k = first; k < first + n; k++) reports.finished(outcome, micros === undefined ? undefined : micros[k]! / 1e6);
      if (code !== undefined) observer.failed(label, nodeLabel, outcome, code, message ?? '');
      const change = settleBreaker(breaker, code);
      if (change) observer.nodeState(label, nodeLabel, change.state, change.state === 'open' ? { code, retryInMs: change.retryInMs } : {});
      this.inflight -= n;
      reports.inflight(-n);
      this.pump();
    };
  }

  private bindObserver(nodeLabel: string): NodeObserver {
    const { observer } = this.deps;
    const label = this.spec.label;
    if (observer.bindNode) return observer.bindNode(label, nodeLabel);
    return {
      sent: () => observer.sent(label, nodeLabel),
      finished: (outcome, seconds) => observer.finished(label, nodeLabel, outcome, seconds),
      inflight: (delta) => observer.inflight(label, delta),
    };
  }

  /**
   * A host name with several addresses becomes one node per address (same port, TLS checked
   * against the name), re-resolved every `resolveEveryMs`; an address that stays keeps its
   * node (connections and breaker). Copies submitted before the first answer wait in the
   * target's queue; if the first resolution fails they go to the name itself (the HTTP
   * client then resolves it per connection with the system resolver) until a later round answers.
   */
  private async resolve(): Promise<void> {
    const named = this.spec.nodes[0]!;
    try {
      const next = (await this.resolver!.addresses(named.hostname)).sort();
      if (this.closed) return;
      const current = this.picker.all.map((n) => n.spec.hostname).sort();
      if (next.join(',') !== current.join(',')) {
        const kept = new Map(this.picker.all.map((n) => [n.spec.hostname, n]));
        const scheme = named.label.slice(0, named.label.indexOf('://'));
        this.picker.reset(next.map((address) => {
          const same = kept.get(address);
          if (same) {
            kept.delete(address);
            return same;
          }
          const host = address.includes(':') ? `[${address}]` : address;
          const spec: NodeSpec = {
            label: `${scheme}://${host}:${named.port}`,
            authority: `${host}:${named.port}`,
            hostname: address,
            port: named.port,
            weight: 1,
            resolvedFrom: named.hostname,
          };
          return this.createNode(spec, named.hostname);
        }));
        // Nodes whose address went away: requests already sent on them finish there.
        for (const n of kept.values()) void n.close(1000);
      }
    } catch {
      // Not resolvable now: keep the nodes we have; the next round tries again.
    }
    if (this.closed) return;
    if (this.awaitingAddresses) {
      this.awaitingAddresses = false;
      this.pump();
    }
    this.resolveTimer = setTimeout(() => void this.resolve(), this.spec.resolveEveryMs);
    this.resolveTimer.unref();
  }

  /** Node labels currently in use (for tests and diagnostics). */
  get nodeLabels(): string[] {
    return this.picker.all.map((n) => n.spec.label);
  }

  /** Requests in flight and queued (for tests and diagnostics). */
  get load(): { inflight: number; queued: number; queuedBytes: number } {
    return { inflight: this.inflight, queued: this.queue.length - this.queueHead, queuedBytes: this.queuedBytes };
  }

  /** True when this target's HTTP requests are sent from a dispatch worker (a raw copy's head is then built there). */
  get sendsFromWorker(): boolean {
    return this.deps.threads !== undefined && this.spec.protocol === 'http';
  }

  /** True when every node is out (breakers open, no probe due). */
  get down(): boolean {
    return !this.picker.anyAvailable();
  }

  /**
   * Whether a request of about `sizeBytes` would be started or queued now; when not, the
   * refusal is counted (target_down, dropped or closed). Callers ask before preparing a
   * request, so that a full or dead target costs them nothing.
   */
  admit(sizeBytes: number): boolean {
    const { observer } = this.deps;
    if (this.closed) {
      observer.refused(this.spec.label, 'closed');
      return false;
    }
    if (!this.picker.anyAvailable()) {
      observer.refused(this.spec.label, 'target_down');
      return false;
    }
    const lim = this.spec.limits;
    if (this.mayStart()) return true;
    if (this.queue.length - this.queueHead < lim.maxQueue && this.queuedBytes + sizeBytes <= lim.maxQueueBytes) return true;
    this.countDropped();
    return false;
  }

  private countDropped(): void {
    this.deps.observer.finished(this.spec.label, undefined, 'dropped');
    this.deps.observer.dropped(this.spec.label, { inflight: this.inflight, queued: this.queue.length - this.queueHead });
  }

  /** Starts the request, queues it, drops it when the queue is full, or refuses it; never throws. */
  submit(req: DispatchRequest, sink?: ResponseSink): SubmitResult {
    const { observer } = this.deps;
    const label = this.spec.label;
    if (this.closed) {
      observer.refused(label, 'closed');
      return 'refused';
    }
    const lim = this.spec.limits;
    if (this.mayStart()) return this.start(req, sink) ? 'started' : 'refused';
    if (this.queue.length - this.queueHead < lim.maxQueue && this.queuedBytes + req.sizeBytes <= lim.maxQueueBytes) {
      this.queue.push({ req, sink });
      this.queuedBytes += req.sizeBytes;
      observer.queued(label, 1, req.sizeBytes);
      return 'queued';
    }
    this.countDropped();
    return 'dropped';
  }

  private start(req: DispatchRequest, sink: ResponseSink | undefined): boolean {
    const { observer, now } = this.deps;
    const label = this.spec.label;
    const node = this.picker.pick();
    if (!node) {
      observer.refused(label, 'target_down');
      sink?.onFailure('error', 'TARGET_DOWN');
      return false;
    }
    const nodeLabel = node.spec.label;
    const reports = this.nodeObservers.get(node) ?? this.bindObserver(nodeLabel);
    this.inflight++;
    reports.inflight(1);
    reports.sent();
    // Its outcome comes back counted with others of its node (countedOutcomes): no callback.
    if (sink === undefined && node.sendCounted !== undefined && node.sendCounted(req)) return true;
    const startedAt = now();
    node.send(req, sink, (outcome, code, message) => {
      reports.finished(outcome, Math.max(0, now() - startedAt) / 1000);
      if (code !== undefined) observer.failed(label, nodeLabel, outcome, code, message ?? '');
      const change = settleBreaker(node.breaker, code);
      if (change) observer.nodeState(label, nodeLabel, change.state, change.state === 'open' ? { code, retryInMs: change.retryInMs } : {});
      this.inflight--;
      reports.inflight(-1);
      this.pump();
    });
    return true;
  }

  /** Below the in-flight cap, and not waiting for a host name's first addresses. */
  private mayStart(): boolean {
    return this.inflight < this.spec.limits.maxConcurrency && !this.awaitingAddresses;
  }

  private pump(): void {
    while (this.mayStart() && this.queueHead < this.queue.length) {
      const next = this.queue[this.queueHead]!;
      this.queue[this.queueHead] = undefined as unknown as Queued;
      this.queueHead++;
      if (this.queueHead > 64 && this.queueHead * 2 > this.queue.length) {
        this.queue.splice(0, this.queueHead);
        this.queueHead = 0;
      }
      this.queuedBytes -= next.req.sizeBytes;
      this.deps.observer.queued(this.spec.label, -1, -next.req.sizeBytes);
      this.start(next.req, next.sink);
    }
    if (this.idle) {
      this.drained?.();
      if (this.refs === 0 && !this.closed) this.onIdleUnreferenced(this);
    }
  }

  /** True when nothing is queued or in flight. */
  get idle(): boolean {
    return this.inflight === 0 && this.queueHead >= this.queue.length;
  }

  /**
   * Stops taking requests, lets queued and in-flight ones go on for `graceMs`, then counts what
   * is still queued as dropped and cuts what is still in flight.
   */
  async close(graceMs: number): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.resolveTimer) clearTimeout(this.resolveTimer);
    this.resolver?.cancel();
    if (!this.idle && graceMs > 0) await drainWithin(graceMs, (d) => { this.drained = d; });
    const { observer } = this.deps;
    for (let i = this.queueHead; i < this.queue.length; i++) {
      const q = this.queue[i]!;
      observer.queued(this.spec.label, -1, -q.req.sizeBytes);
      observer.finished(this.spec.label, undefined, 'dropped');
      q.sink?.onFailure('dropped', 'SHUTDOWN');
    }
    this.queue.length = 0;
    this.queueHead = 0;
    this.queuedBytes = 0;
    await Promise.all(this.picker.all.map((n) => n.close(0)));
  }
}
