/**
 * The compare room's front: pairs the real answer of a request with its mirror's (and, for
 * noise learning, the secondary's), compares them when both are in, and counts, keeps and logs
 * the result. It knows nothing of APISIX: the wiring names requests by a key both phases can
 * read (APISIX's `$request_id`) and the route by a name both phases share.
 *
 * How the wiring uses it (the seam; see answer.ts for the answer types):
 *  - pre-req, when a copy is about to be handed to the dispatch engine:
 *      `expect(key, { route, target, method, path, conf })`
 *  - the engine, when the copy (or the secondary's copy) ends:
 *      `recordMirror(route, key, target, MirrorAnswer | MirrorFailure)`
 *      `recordSecondary(route, key, target, MirrorAnswer | MirrorFailure)`
 *    with `{ failure: 'not_sent' }` when the engine dropped the copy (queue full, closed).
 *  - post-resp: `awaitedPrimary(route, key, status)` says whether anything waits for this
 *    request and whether its body is needed ('none' | 'headers' | 'body'), so the RespBody round
 *    trip is paid only when useful; then, after the reply to APISIX (never before it, and never
 *    awaiting the mirror), `recordPrimary(route, key, PrimaryAnswer)`.
 *  - one timer (or none: expiry is also lazy) calls `sweep()`; `start()`/`stop()` do that.
 */
import type { Registry } from 'prom-client';
import { holdAnswer, isFailure, type HeldAnswer, type MirrorFailure, type MirrorOutcome, type PrimaryAnswer } from './answer.js';
import { classify, diffAnswers } from './answer-diff.js';
import { hasNoBody } from './body-diff.js';
import { bodySnippet } from './body-snippet.js';
import type { CompareResult, SkipReason } from './compare-result.js';
import { DEFAULT_BODY_MAX_BYTES, type CompareConf } from './conf.js';
import type { FieldDifference } from './field-difference.js';
import { createCompareMetrics, type CompareMetrics } from './metrics.js';
import { NoiseLearner, type NoiseField } from './noise-learner.js';
import { fieldPattern, pathPattern } from './path-pattern.js';
import { PendingPairs, type DropReason } from './pending-pairs.js';
import { redactDifference } from './redact.js';
import { exampleHeaders, RecentDifferences, type RouteSummary, type SideView } from './recent-differences.js';

/** What the pre-req side knows of a request whose copy is compared. */
export interface ComparedRequest {
  readonly route: string;
  /** The mirror target (the conf's `host`), the metrics label. */
  readonly target: string;
  readonly method: string;
  /** The request path (a query, if given, is dropped before anything is stored). */
  readonly path: string;
  readonly conf: CompareConf;
}

type SideOutcome = HeldAnswer | MirrorFailure;

interface TargetSlot {
  readonly target: string;
  readonly conf: CompareConf;
  mirror?: SideOutcome;
  secondary?: SideOutcome;
  done: boolean;
}

interface PendingRequest {
  readonly route: string;
  readonly method: string;
  readonly path: string;
  primary?: HeldAnswer;
  primaryMs?: number;
  readonly slots: Map<string, TargetSlot>;
}

/** Anything with a `write(record)` that never throws, e.g. DiffLogWriter. */
export interface DiffSink {
  write(record: unknown): boolean;
}

export interface ShadowComparisonOptions {
  /** Registry for the metrics (none: metrics are not exported). */
  readonly registry?: Registry;
  /** Monotonic milliseconds (ages, latencies). */
  readonly clock?: () => number;
  /** Wall-clock time for the examples' timestamps. */
  readonly wallClock?: () => Date;
  readonly diffLog?: DiffSink;
  /** At most this many routes are tracked (pending stores, report). */
  readonly maxRoutes?: number;
  /** Told about a comparison that failed unexpectedly (the pair is counted skipped, compare_error). */
  readonly onError?: (err: Error) => void;
}

/** The report's data: per route, the summary plus noise and pending state. */
export interface CompareReport {
  readonly generatedAt: string;
  readonly routes: readonly (RouteSummary & {
    readonly noiseFields: readonly NoiseField[];
    readonly pending: { readonly count: number; readonly bytes: number };
  })[];
}

const ENTRY_OVERHEAD_BYTES = 256;
/** Longest request path kept (the report shows paths; ids in long paths add nothing). */
const MAX_PATH_CHARS = 1024;

const noMetrics: CompareMetrics = { compared() {}, skipped() {}, latency() {}, pending() {} };

export class ShadowComparison {
  private readonly stores = new Map<string, PendingPairs<PendingRequest>>();
  private readonly confs = new Map<string, CompareConf>();
  private readonly metrics: CompareMetrics;
  private readonly clock: () => number;
  private readonly wallClock: () => Date;
  private readonly maxRoutes: number;
  private timer: NodeJS.Timeout | undefined;
  readonly noise = new NoiseLearner();
  readonly recent: RecentDifferences;

  constructor(private readonly options: ShadowComparisonOptions = {}) {
    this.metrics = options.registry ? createCompareMetrics(options.registry) : noMetrics;
    this.clock = options.clock ?? (() => performance.now());
    this.wallClock = options.wallClock ?? (() => new Date());
    this.maxRoutes = options.maxRoutes ?? 256;
    this.recent = new RecentDifferences(this.maxRoutes);
  }

  /** Pre-req: a copy of request `key` is being sent to `req.target`. False when not tracked. */
  expect(key: string, req: ComparedRequest): boolean {
    const store = this.store(req.route, req.conf);
    if (!store) return false;
    let entry = store.get(key);
    if (entry?.slots.has(req.target)) return false;
    const slot: TargetSlot = { target: req.target, conf: req.conf, done: false };
    if (entry) {
      entry.slots.set(req.target, slot);
      return true;
    }
    const q = req.path.indexOf('?');
    const path = (q < 0 ? req.path : req.path.slice(0, q)).slice(0, MAX_PATH_CHARS);
    entry = { route: req.route, method: req.method.toUpperCase(), path, slots: new Map([[req.target, slot]]) };
    store.add(key, entry, this.bytesOf(key, entry));
    this.updatePending(req.route, store);
    return store.get(key) !== undefined;
  }

  /** The engine: the candidate's answer (or failure) for `target`. */
  recordMirror(route: string, key: string, target: string, outcome: MirrorOutcome): void {
    this.recordSide(route, key, target, outcome, 'mirror');
  }

  /** The engine: the secondary's answer (or failure) for `target`'s compare block. */
  recordSecondary(route: string, key: string, target: string, outcome: MirrorOutcome): void {
    this.recordSide(route, key, target, outcome, 'secondary');
  }

  /**
   * Post-resp: whether a mirror of this request waits for the real answer, and whether its body
   * is needed (a route that compares bodies, and a method and status that carry one).
   */
  awaitedPrimary(route: string, key: string, status?: number): 'none' | 'headers' | 'body' {
    const entry = this.stores.get(route)?.get(key);
    if (!entry || entry.primary) return 'none';
    let open = false;
    let body = false;
    for (const slot of entry.slots.values()) {
      if (slot.done) continue;
      open = true;
      if (slot.conf.body) body = true;
    }
    if (!open) return 'none';
    return body && !hasNoBody(entry.method, status ?? 200) ? 'body' : 'headers';
  }

  /** Post-resp, after the reply: the real answer. False when nothing waited for it. */
  recordPrimary(route: string, key: string, answer: PrimaryAnswer): boolean {
    const store = this.stores.get(route);
    const entry = store?.get(key);
    if (!store || !entry || entry.primary) return false;
    const caps = [...entry.slots.values()].flatMap((s) => (s.conf.body ? [s.conf.body.maxBytes] : []));
    entry.primary = holdAnswer(answer, caps.length ? Math.max(...caps) : undefined);
    entry.primaryMs = answer.durationMs ?? this.clock() - (store.createdAt(key) ?? this.clock());
    this.settle(store, key, entry);
    return true;
  }

  /** Expires old pairs on every route (also done lazily on each call). */
  sweep(): void {
    for (const [route, store] of this.stores) {
      store.sweep();
      this.updatePending(route, store);
    }
  }

  /** Sweeps every `intervalMs` on one unref'd timer. */
  start(intervalMs = 1000): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.sweep(), intervalMs);
    this.timer.unref();
  }

  /** Stops the sweep timer and drops every pending pair (counted as skipped, evicted). */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (const [route, store] of this.stores) {
      store.clear();
      this.updatePending(route, store);
    }
  }

  /** Pairs waiting on a route. */
  pending(route: string): { count: number; bytes: number } {
    const s = this.stores.get(route);
    return { count: s?.size ?? 0, bytes: s?.bytes ?? 0 };
  }

  /** Everything the report and /mirror/diffs show. */
  report(): CompareReport {
    return {
      generatedAt: this.wallClock().toISOString(),
      routes: this.recent.summaries().map((s) => {
        const conf = this.confs.get(s.route);
        return {
          ...s,
          noiseFields: conf ? this.noise.fieldsOf(s.route, conf.noiseMinSamples, conf.noiseMinRate).slice(0, 20) : [],
          pending: this.pending(s.route),
        };
      }),
    };
  }

  private store(route: string, conf: CompareConf): PendingPairs<PendingRequest> | undefined {
    let store = this.stores.get(route);
    const limits = { maxCount: conf.maxPending, maxBytes: conf.maxPendingBytes, maxAgeMs: conf.maxAgeMs };
    if (!store) {
      if (this.stores.size >= this.maxRoutes) return undefined;
      store = new PendingPairs<PendingRequest>(limits, this.clock, (key, entry, reason) => this.dropped(entry, reason));
      this.stores.set(route, store);
    } else if (this.confs.get(route) !== conf) {
      // A new PrepareConf of the route: its latest caps apply from now on.
      store.limits = limits;
    }
    this.confs.set(route, conf);
    return store;
  }

  private bytesOf(key: string, entry: PendingRequest): number {
    let n = ENTRY_OVERHEAD_BYTES + 2 * (key.length + entry.path.length) + (entry.primary?.heldBytes ?? 0);
    for (const s of entry.slots.values()) {
      n += 64;
      if (s.mirror && !isFailure(s.mirror)) n += s.mirror.heldBytes;
      if (s.secondary && !isFailure(s.secondary)) n += s.secondary.heldBytes;
    }
    return n;
  }

  private recordSide(route: string, key: string, target: string, outcome: MirrorOutcome, side: 'mirror' | 'secondary'): void {
    const store = this.stores.get(route);
    const entry = store?.get(key);
    const slot = entry?.slots.get(target);
    if (!store || !entry || !slot || slot.done || slot[side]) return;
    slot[side] = isFailure(outcome) ? outcome : holdAnswer(outcome, slot.conf.body?.maxBytes);
    this.settle(store, key, entry);
  }

  /** Finishes every slot that has what it needs; removes the entry when all are finished. */
  private settle(store: PendingPairs<PendingRequest>, key: string, entry: PendingRequest): void {
    for (const slot of entry.slots.values()) {
      if (slot.done) continue;
      if (slot.mirror && isFailure(slot.mirror)) this.finishFailure(entry, slot, slot.mirror);
      else if (entry.primary && slot.mirror && (slot.conf.secondary === undefined || slot.secondary)) this.finishCompared(entry, slot);
    }
    if ([...entry.slots.values()].every((s) => s.done)) store.delete(key);
    else store.resize(key, this.bytesOf(key, entry));
    this.updatePending(entry.route, store);
  }

  private dropped(entry: PendingRequest, reason: DropReason): void {
    for (const slot of entry.slots.values()) {
      if (slot.done) continue;
      if (slot.mirror && isFailure(slot.mirror)) this.finishFailure(entry, slot, slot.mirror);
      else if (entry.primary && slot.mirror) this.finishCompared(entry, slot);
      else if (reason === 'evicted') this.finishSkipped(entry, slot, 'evicted');
      else if (entry.primary) this.finish(entry, slot, 'mirror_timeout', [], []);
      else this.finishSkipped(entry, slot, 'no_primary');
    }
  }

  private finishSkipped(entry: PendingRequest, slot: TargetSlot, reason: SkipReason): void {
    this.metrics.skipped(entry.route, slot.target, reason);
    this.finish(entry, slot, 'skipped', [], []);
  }

  private finishFailure(entry: PendingRequest, slot: TargetSlot, f: MirrorFailure): void {
    const result: CompareResult = f.failure === 'timeout' ? 'mirror_timeout' : f.failure === 'error' ? 'mirror_error' : 'primary_only';
    this.finish(entry, slot, result, [], []);
  }

  private finishCompared(entry: PendingRequest, slot: TargetSlot): void {
    try {
      this.compare(entry, slot);
    } catch (err) {
      // A body the diff cannot handle must not reach the request path that recorded the answer.
      if (!slot.done) this.finishSkipped(entry, slot, 'compare_error');
      this.options.onError?.(err as Error);
    }
  }

  private compare(entry: PendingRequest, slot: TargetSlot): void {
    const primary = entry.primary!;
    const candidate = slot.mirror as HeldAnswer;
    const pattern = `${entry.method} ${pathPattern(entry.path)}`;
    const requestNoise = new Set<string>();
    if (slot.secondary && !isFailure(slot.secondary)) {
      const fields = diffAnswers(entry.method, primary, slot.secondary, slot.conf).differences.map((d) => d.field);
      this.noise.observe(entry.route, pattern, fields);
      for (const f of fields) requestNoise.add(fieldPattern(f));
    }
    const all = diffAnswers(entry.method, primary, candidate, slot.conf).differences;
    const counted: FieldDifference[] = [];
    const noise: string[] = [];
    for (const d of all) {
      const isNoise = requestNoise.has(fieldPattern(d.field))
        || this.noise.isNoise(entry.route, pattern, d.field, slot.conf.noiseMinSamples, slot.conf.noiseMinRate);
      if (isNoise) noise.push(d.field);
      else counted.push(d);
    }
    const result = classify(counted);
    this.metrics.latency(entry.route, slot.target, 'primary', (entry.primaryMs ?? 0) / 1000);
    this.metrics.latency(entry.route, slot.target, 'mirror', candidate.durationMs === undefined ? 0 : candidate.durationMs / 1000);
    this.finish(entry, slot, result, counted, noise);
    if (result === 'equal') return;
    const maxDecoded = slot.conf.body?.maxBytes ?? DEFAULT_BODY_MAX_BYTES;
    const view = (a: HeldAnswer, ms: number | undefined): SideView => ({
      status: a.status, headers: exampleHeaders(a.headers), body: bodySnippet(a, maxDecoded), durationMs: ms ?? null,
    });
    const example = {
      at: this.wallClock().toISOString(),
      route: entry.route,
      target: slot.target,
      method: entry.method,
      path: entry.path,
      result,
      differences: counted,
      noise,
      primary: view(primary, entry.primaryMs),
      candidate: view(candidate, candidate.durationMs),
    };
    this.recent.addExample(example, slot.conf.examples);
    this.options.diffLog?.write({
      at: example.at, route: example.route, target: example.target, method: example.method, path: example.path,
      result, differences: counted.map(redactDifference), noise,
    });
  }

  private finish(entry: PendingRequest, slot: TargetSlot, result: CompareResult, counted: readonly FieldDifference[], noise: readonly string[]): void {
    slot.done = true;
    // Release what the slot held; the entry's byte count is updated by the caller.
    slot.mirror = slot.mirror && isFailure(slot.mirror) ? slot.mirror : undefined;
    slot.secondary = undefined;
    this.metrics.compared(entry.route, slot.target, result);
    this.recent.record(entry.route, slot.target, result, counted, [...new Set(noise.map(fieldPattern))]);
  }

  private updatePending(route: string, store: PendingPairs<PendingRequest>): void {
    this.metrics.pending(route, store.size, store.bytes);
  }
}
