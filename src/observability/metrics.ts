import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Histogram, Registry } from 'prom-client';
import { LazyRegistry, loadPromClient, onRegistry } from './lazy-registry.js';
import { MetricCell, boundByOne, boundByTwo, registerMetricTable, type MetricTable } from './metric-tables.js';

/**
 * The runner's own RPC metrics. Counting is always on and nearly free (plain numbers, see
 * metric-tables.ts); the latency histogram (and the clock reads it needs) only runs when
 * metrics are served (or the registry was given).
 */
export class RpcMetrics {
  private readonly totalOf: (type: string, outcome: string) => MetricCell;
  private duration: Histogram | undefined;
  private readonly durationOf = boundByOne((type) => this.duration!.labels(type));
  readonly connections: MetricCell;
  readonly confs: MetricCell;

  constructor(readonly registry: Registry, timed: boolean) {
    const total = registerMetricTable(registry, { kind: 'counter', name: 'apisix_runner_rpc_total', help: 'RPCs handled, by message type and outcome', labelNames: ['type', 'outcome'] });
    this.totalOf = boundByTwo((type, outcome) => total.cell([type, outcome]));
    if (timed) {
      onRegistry(registry, (created) => {
        this.duration = new (loadPromClient().Histogram)({
          name: 'apisix_runner_rpc_duration_seconds',
          help: 'Time from receiving an RPC to writing its reply, ExtraInfo round trips included',
          labelNames: ['type'],
          buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1],
          registers: [created],
        });
      });
    }
    this.connections = registerMetricTable(registry, { kind: 'gauge', name: 'apisix_runner_connections', help: 'Open connections from APISIX', labelNames: [] }).cell([]);
    this.confs = registerMetricTable(registry, { kind: 'gauge', name: 'apisix_runner_confs', help: 'Route confs held in the conf cache', labelNames: [] }).cell([]);
  }

  /** A start mark for `record` (0 when latency is not measured). */
  start(): number {
    return this.duration ? performance.now() : 0;
  }

  /** Counts one RPC, and its duration since `started` when latency is measured. */
  record(type: string, outcome: string, started: number): void {
    this.totalOf(type, outcome).n++;
    if (this.duration) this.durationOf(type).observe((performance.now() - started) / 1000);
  }
}

function collectProcessMetrics(registry: Registry): void {
  loadPromClient().collectDefaultMetrics({ register: registry });
}

/** A registry with the process metrics (CPU, memory, event loop lag, fds) collected. */
export function createRegistry(): Registry {
  const registry = new (loadPromClient().Registry)();
  collectProcessMetrics(registry);
  return registry;
}

/**
 * The same registry, created (prom-client loaded, process metrics collected) only when first
 * used: when metrics are served, or when a plugin or an embedder uses `host.metrics`.
 */
export function createLazyRegistry(): LazyRegistry {
  return new LazyRegistry(collectProcessMetrics);
}

/** Splits 'host:port' / '[v6]:port' / 'port'. */
export function parseListenAddress(address: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(address) ?? /^()()(\d+)$/.exec(address);
  if (!m) throw new Error(`invalid metrics address "${address}": expected host:port, e.g. 127.0.0.1:9091`);
  const port = Number(m[3]);
  if (port > 65535) throw new Error(`invalid metrics address "${address}": port out of range`);
  return { host: m[1] || m[2] || '127.0.0.1', port };
}

/** Serves a request on the metrics listener and returns true, or returns false and writes nothing. */
export type MetricsPageHandler = (req: IncomingMessage, res: ServerResponse) => boolean;

const pagesByRegistry = new WeakMap<Registry, MetricsPageHandler[]>();

/**
 * Adds pages to the metrics listener of a registry (proxy-mirror's /mirror/diffs and
 * /mirror/report). Plugins only hold the registry (PluginHost.metrics), so the registry is the
 * key; a listener started before or after the call serves the pages. Every other path keeps
 * its behaviour (GET /metrics, 404 otherwise).
 */
export function mountMetricsPage(registry: Registry, handler: MetricsPageHandler): void {
  let pages = pagesByRegistry.get(registry);
  if (!pages) pagesByRegistry.set(registry, (pages = []));
  pages.push(handler);
}

/** Serves `GET /metrics` in Prometheus text format, and the pages mounted on the registry. */
export async function startMetricsServer(address: string, registry: Registry): Promise<{ server: Server; url: string }> {
  const { host, port } = parseListenAddress(address);
  const server = createServer((req, res) => {
    for (const page of pagesByRegistry.get(registry) ?? []) if (page(req, res)) return;
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: metrics are at GET /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(String(err)),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = server.address();
  const actualPort = typeof bound === 'object' && bound ? bound.port : port;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  return { server, url: `http://${shownHost}:${actualPort}/metrics` };
}

/** Conf entries PrepareConf rejected, by plugin and reason (see PluginRegistry's RejectReason). */
export function registerConfRejected(registry: Registry): MetricTable {
  return registerMetricTable(registry, { kind: 'counter', name: 'apisix_runner_conf_rejected_total', help: 'Plugin conf entries rejected at PrepareConf, by plugin and reason', labelNames: ['plugin', 'reason'] });
}

/** The metrics endpoint, bound now or as soon as its port is free. */
export interface MetricsListener {
  /** undefined while the port is still in use by another process. */
  readonly url: string | undefined;
  close(): Promise<void>;
}

interface MetricsLog {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/**
 * Serves `GET /metrics`; when the port is in use, keeps trying every `retryMs` instead of
 * failing. During `apisix reload` the old runner holds the port until it exits (about a
 * second): the new runner must serve APISIX meanwhile rather than fail over an observability
 * port. Any other error (bad address, no permission) is thrown at once.
 */
export async function serveMetrics(address: string, registry: Registry, log: MetricsLog, retryMs = 1000): Promise<MetricsListener> {
  let server: Server | undefined;
  let url: string | undefined;
  let closed = false;
  let retry: NodeJS.Timeout | undefined;
  const attempt = async (n: number): Promise<void> => {
    try {
      const started = await startMetricsServer(address, registry);
      if (closed) {
        started.server.close();
        return;
      }
      ({ server, url } = started);
      if (n > 1) log.info({ metrics: url, attempt: n }, 'metrics listener bound');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
      if (n === 1) log.warn({ metricsAddress: address, retryMs }, `metrics address ${address} is in use (another runner during a reload?): serving RPCs without metrics and retrying until it is free`);
      retry = setTimeout(() => void attempt(n + 1).catch((e: unknown) => log.error({ err: e }, 'metrics listener failed')), retryMs);
      retry.unref();
    }
  };
  await attempt(1);
  return {
    get url() {
      return url;
    },
    async close() {
      closed = true;
      clearTimeout(retry);
      const s = server;
      if (!s) return;
      s.closeAllConnections();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    },
  };
}
