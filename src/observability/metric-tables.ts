/**
 * The runner's own counters and gauges as plain numbers, read by prom-client only at scrape
 * time. Counting on the hot path is a memoised cell and an add (prom-client's own inc hashes
 * the label set every call), and it needs no prom-client at all: the metric that reads a
 * table is registered when the registry is created (lazy-registry.ts), which a runner without
 * `--metrics-address` never does.
 */
import type { Registry } from 'prom-client';
import { loadPromClient, onRegistry } from './lazy-registry.js';

/**
 * Memoises the bound children of a metric with two labels, so the hot path finds a child
 * by two Map lookups instead of building and hashing a label object per call.
 */
export function boundByTwo<T>(bind: (a: string, b: string) => T): (a: string, b: string) => T {
  const outer = new Map<string, Map<string, T>>();
  return (a, b) => {
    let inner = outer.get(a);
    if (!inner) outer.set(a, (inner = new Map()));
    let child = inner.get(b);
    if (!child) inner.set(b, (child = bind(a, b)));
    return child;
  };
}

/** The single-label form of boundByTwo. */
export function boundByOne<T>(bind: (a: string) => T): (a: string) => T {
  const cache = new Map<string, T>();
  return (a) => {
    let child = cache.get(a);
    if (!child) cache.set(a, (child = bind(a)));
    return child;
  };
}

/** The value of one label set. Keep it: changing `n` is the whole cost. */
export class MetricCell {
  n = 0;

  inc(by = 1): void {
    this.n += by;
  }

  dec(by = 1): void {
    this.n -= by;
  }

  set(value: number): void {
    this.n = value;
  }
}

/** Cells by label set (values in labelNames order), created on first use. */
class LabelledCells<C> {
  private readonly cells = new Map<string, { readonly labels: readonly string[]; readonly cell: C }>();

  constructor(private readonly make: () => C) {}

  /** The cell of a label set. Memoise it on hot paths (boundByOne/Two). */
  cell(labels: readonly string[]): C {
    const key = labels.join('\u0000');
    let row = this.cells.get(key);
    if (!row) this.cells.set(key, (row = { labels: [...labels], cell: this.make() }));
    return row.cell;
  }

  *entries(): IterableIterator<[readonly string[], C]> {
    for (const { labels, cell } of this.cells.values()) yield [labels, cell];
  }
}

/** Plain values by label set. */
export class MetricTable extends LabelledCells<MetricCell> {
  constructor() {
    super(() => new MetricCell());
  }
}

/** A counter or a gauge whose values a MetricTable holds. */
export interface TableMetric {
  readonly kind: 'counter' | 'gauge';
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
}

const tablesByRegistry = new WeakMap<Registry, Map<string, unknown>>();

/**
 * The table named `name` on a registry, made (and its reader registered once the registry is
 * created) on first use: several plugin instances asking for one metric share its table.
 */
function sharedTable<T>(registry: Registry, name: string, make: () => T, register: (created: Registry, table: T) => void): T {
  let tables = tablesByRegistry.get(registry);
  if (!tables) tablesByRegistry.set(registry, (tables = new Map()));
  const known = tables.get(name);
  if (known) return known as T;
  const table = make();
  tables.set(name, table);
  onRegistry(registry, (created) => register(created, table));
  return table;
}

/**
 * The table of a metric on a registry; the prom-client metric reading it is registered when
 * the registry is created. Asking again for the same name on the same registry returns the
 * same table (several plugin instances share it).
 */
export function registerMetricTable(registry: Registry, metric: TableMetric): MetricTable {
  return sharedTable(registry, metric.name, () => new MetricTable(), (created, table) => {
    const prom = loadPromClient();
    const config = { name: metric.name, help: metric.help, labelNames: [...metric.labelNames], registers: [created] };
    if (metric.kind === 'counter') {
      new prom.Counter({
        ...config,
        collect() {
          this.reset();
          for (const [labels, c] of table.entries()) this.inc(labelsOf(metric, labels), c.n);
        },
      });
    } else {
      new prom.Gauge({
        ...config,
        collect() {
          this.reset();
          for (const [labels, c] of table.entries()) this.set(labelsOf(metric, labels), c.n);
        },
      });
    }
  });
}

function labelsOf(metric: { readonly labelNames: readonly string[] }, values: readonly string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  metric.labelNames.forEach((name, i) => (labels[name] = values[i]!));
  return labels;
}

/**
 * One label set of a histogram: counts per bucket (not cumulative), sum and count, as plain
 * numbers. prom-client's `labels(…).observe` hashed the label set on every call: 0.5 µs per
 * mirrored copy on the RPC thread (docs/performance.md, "Mirror dispatch, fifth pass").
 */
export class HistogramCell {
  readonly counts: number[];
  sum = 0;
  count = 0;

  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Array<number>(bounds.length).fill(0);
  }

  observe(value: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && value > b[i]!) i++;
    if (i < b.length) this.counts[i]!++;
    this.sum += value;
    this.count++;
  }
}

/** A histogram whose cells are read at scrape time. */
export interface TableHistogram {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  /** Upper bounds, ascending (+Inf is implied). */
  readonly buckets: readonly number[];
}

export class HistogramTable extends LabelledCells<HistogramCell> {
  constructor(readonly buckets: readonly number[]) {
    super(() => new HistogramCell(buckets));
  }
}

/**
 * The table of a histogram on a registry, shared by name like registerMetricTable. What the
 * registry scrapes is a metric object of prom-client's shape (`get()` → name, help, type and
 * values), written in the text format as prom-client's own Histogram is: cumulative
 * `_bucket{le=…}` series, `+Inf`, `_sum` and `_count`.
 */
export function registerHistogramTable(registry: Registry, metric: TableHistogram): HistogramTable {
  return sharedTable(registry, metric.name, () => new HistogramTable(metric.buckets), (created, table) => {
    const snapshot = () => {
      const values: { value: number; labels: Record<string, string | number>; metricName: string }[] = [];
      for (const [labelValues, cell] of table.entries()) {
        const labels = labelsOf(metric, labelValues);
        let cumulative = 0;
        metric.buckets.forEach((le, i) => {
          cumulative += cell.counts[i]!;
          values.push({ value: cumulative, labels: { le, ...labels }, metricName: `${metric.name}_bucket` });
        });
        values.push({ value: cell.count, labels: { le: '+Inf', ...labels }, metricName: `${metric.name}_bucket` });
        values.push({ value: cell.sum, labels, metricName: `${metric.name}_sum` });
        values.push({ value: cell.count, labels, metricName: `${metric.name}_count` });
      }
      // `le` first, as prom-client's Histogram writes it.
      return { name: metric.name, help: metric.help, type: 'histogram', aggregator: 'sum', values };
    };
    created.registerMetric({
      name: metric.name, help: metric.help, type: 'histogram', aggregator: 'sum',
      get: async () => snapshot(),
      reset: () => undefined,
    } as unknown as Parameters<Registry['registerMetric']>[0]);
  });
}
