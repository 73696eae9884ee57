/**
 * A Prometheus registry that loads prom-client only when something uses it. A runner started
 * without `--metrics-address` has nobody scraping its metrics: loading prom-client (and the
 * @opentelemetry/api it requires) and collecting process metrics would cost memory for nothing
 * (docs/performance.md, "Footprint, third pass"). The runner's own metrics count into plain
 * numbers (metric-tables.ts) and are registered with prom-client when the registry is created.
 */
import { createRequire } from 'node:module';
import type { Metric, MetricObject, MetricObjectWithValues, MetricValue, PrometheusContentType, Registry } from 'prom-client';

type PromClient = typeof import('prom-client');

const requireFromHere = createRequire(import.meta.url);
let promClient: PromClient | undefined;

/** prom-client, required on first use (synchronously, so metric code stays synchronous). */
export function loadPromClient(): PromClient {
  return (promClient ??= requireFromHere('prom-client') as PromClient);
}

/**
 * Stands for a prom-client Registry (it has the same members) and creates the real one on first
 * use of any of them: a scrape, a plugin registering its own metric, an embedder reading
 * `runner.host.metrics`. Registrations made through `whenCreated` wait for that moment.
 */
export class LazyRegistry implements Registry {
  private registry: Registry | undefined;
  private readonly waiting: Array<(registry: Registry) => void> = [];

  /** `setUp` runs first on the created registry (the process metrics). */
  constructor(private readonly setUp: (registry: Registry) => void = () => undefined) {}

  /** Whether prom-client's registry exists yet. */
  get created(): boolean {
    return this.registry !== undefined;
  }

  /** The prom-client registry, created now if it was not (prom-client loaded, waiting registrations run). */
  get(): Registry {
    if (!this.registry) {
      const registry = new (loadPromClient().Registry)();
      this.registry = registry;
      this.setUp(registry);
      for (const register of this.waiting.splice(0)) register(registry);
    }
    return this.registry;
  }

  /** Runs `register` when the registry is created (at once if it is). */
  whenCreated(register: (registry: Registry) => void): void {
    if (this.registry) register(this.registry);
    else this.waiting.push(register);
  }

  metrics(): Promise<string> {
    return this.get().metrics();
  }

  clear(): void {
    this.get().clear();
  }

  resetMetrics(): void {
    this.get().resetMetrics();
  }

  registerMetric<T extends string>(metric: Metric<T>): void {
    this.get().registerMetric(metric);
  }

  getMetricsAsJSON(): Promise<MetricObjectWithValues<MetricValue<string>>[]> {
    return this.get().getMetricsAsJSON();
  }

  getMetricsAsArray(): MetricObject[] {
    return this.get().getMetricsAsArray();
  }

  removeSingleMetric(name: string): void {
    this.get().removeSingleMetric(name);
  }

  getSingleMetric<T extends string>(name: string): Metric<T> | undefined {
    return this.get().getSingleMetric<T>(name);
  }

  setDefaultLabels(labels: object): void {
    this.get().setDefaultLabels(labels);
  }

  getSingleMetricAsString(name: string): Promise<string> {
    return this.get().getSingleMetricAsString(name);
  }

  get contentType(): PrometheusContentType {
    return this.get().contentType;
  }

  setContentType(contentType: PrometheusContentType): void {
    this.get().setContentType(contentType);
  }
}

/**
 * Runs `register` with the prom-client registry behind `registry`: at once for a plain
 * Registry or a created LazyRegistry, otherwise when the LazyRegistry is created.
 */
export function onRegistry(registry: Registry, register: (registry: Registry) => void): void {
  if (registry instanceof LazyRegistry) registry.whenCreated(register);
  else register(registry);
}
