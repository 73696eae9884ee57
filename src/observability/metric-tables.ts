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

/** Plain values by label set. */
export class MetricTable {
  private readonly cells = new Map<string, { readonly labels: readonly string[]; readonly cell: MetricCell }>();

  /** The cell of a label set (values in labelNames order), created at zero. Memoise it on hot paths (boundByOne/Two). */
  cell(labels: readonly string[]): MetricCell {
    const key = labels.join('\u0000');
    let row = this.cells.get(key);
    if (!row) this.cells.set(key, (row = { labels: [...labels], cell: new MetricCell() }));
    return row.cell;
  }

  *entries(): IterableIterator<[readonly string[], number]> {
    for (const { labels, cell } of this.cells.values()) yield [labels, cell.n];
  }
}

/** A counter or a gauge whose values a MetricTable holds. */
export interface TableMetric {
  readonly kind: 'counter' | 'gauge';
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
}

const tablesByRegistry = new WeakMap<Registry, Map<string, MetricTable>>();

/**
 * The table of a metric on a registry; the prom-client metric reading it is registered when
 * the registry is created. Asking again for the same name on the same registry returns the
 * same table (several plugin instances share it).
 */
export function registerMetricTable(registry: Registry, metric: TableMetric): MetricTable {
  let tables = tablesByRegistry.get(registry);
  if (!tables) tablesByRegistry.set(registry, (tables = new Map()));
  const known = tables.get(metric.name);
  if (known) return known;
  const table = new MetricTable();
  tables.set(metric.name, table);
  onRegistry(registry, (created) => {
    const prom = loadPromClient();
    const config = { name: metric.name, help: metric.help, labelNames: [...metric.labelNames], registers: [created] };
    if (metric.kind === 'counter') {
      new prom.Counter({
        ...config,
        collect() {
          this.reset();
          for (const [labels, n] of table.entries()) this.inc(labelsOf(metric, labels), n);
        },
      });
    } else {
      new prom.Gauge({
        ...config,
        collect() {
          this.reset();
          for (const [labels, n] of table.entries()) this.set(labelsOf(metric, labels), n);
        },
      });
    }
  });
  return table;
}

function labelsOf(metric: TableMetric, values: readonly string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  metric.labelNames.forEach((name, i) => (labels[name] = values[i]!));
  return labels;
}
