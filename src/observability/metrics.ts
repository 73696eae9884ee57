import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Memoises the bound children of a metric with two labels, so the hot path increments a
 * child found by two Map lookups instead of building and hashing a label object per call.
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

/**
 * Plain counters by two labels, read by prom-client only at scrape time: counting on the hot
 * path is two Map lookups and an add (prom-client's own inc hashes the label set every call).
 */
export class CountTable {
  private readonly rows = new Map<string, Map<string, { n: number }>>();

  /** The cell of (a, b), created at zero. Keep it: incrementing `cell.n` is the whole cost. */
  cell(a: string, b: string): { n: number } {
    let row = this.rows.get(a);
    if (!row) this.rows.set(a, (row = new Map()));
    let c = row.get(b);
    if (!c) row.set(b, (c = { n: 0 }));
    return c;
  }

  /** Adds one to (a, b). */
  inc(a: string, b: string): void {
    this.cell(a, b).n++;
  }

  *entries(): IterableIterator<[string, string, number]> {
    for (const [a, row] of this.rows) for (const [b, c] of row) yield [a, b, c.n];
  }
}

const tablesByRegistry = new WeakMap<Registry, Map<string, CountTable>>();

/**
 * Registers a counter whose values come from a CountTable at scrape time. Asking again for
 * the same name on the same registry returns the same table (several plugin instances share it).
 */
export function registerCountTable(registry: Registry, name: string, help: string, labelNames: readonly [string, string]): CountTable {
  let tables = tablesByRegistry.get(registry);
  if (!tables) tablesByRegistry.set(registry, (tables = new Map()));
  const known = tables.get(name);
  if (known) return known;
  const table = new CountTable();
  tables.set(name, table);
  new Counter({
    name,
    help,
    labelNames: [...labelNames],
    registers: [registry],
    collect() {
      this.reset();
      for (const [a, b, n] of table.entries()) this.labels(a, b).inc(n);
    },
  });
  return table;
}

/**
 * The runner's own RPC metrics. Counting is always on and nearly free; the latency histogram
 * (and the clock reads it needs) only runs when metrics are served.
 */
export class RpcMetrics {
  private readonly total: CountTable;
  private readonly durationOf: ((type: string) => { observe(v: number): void }) | undefined;
  readonly connections: Gauge;
  readonly confs: Gauge;

  constructor(readonly registry: Registry, timed: boolean) {
    this.total = registerCountTable(registry, 'apisix_runner_rpc_total', 'RPCs handled, by message type and outcome', ['type', 'outcome']);
    if (timed) {
      const duration = new Histogram({
        name: 'apisix_runner_rpc_duration_seconds',
        help: 'Time from receiving an RPC to writing its reply, ExtraInfo round trips included',
        labelNames: ['type'],
        buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1],
        registers: [registry],
      });
      this.durationOf = boundByOne((type) => duration.labels(type));
    }
    this.connections = new Gauge({ name: 'apisix_runner_connections', help: 'Open connections from APISIX', registers: [registry] });
    this.confs = new Gauge({ name: 'apisix_runner_confs', help: 'Route confs held in the conf cache', registers: [registry] });
  }

  /** A start mark for `record` (0 when latency is not measured). */
  start(): number {
    return this.durationOf ? performance.now() : 0;
  }

  /** Counts one RPC, and its duration since `started` when latency is measured. */
  record(type: string, outcome: string, started: number): void {
    this.total.inc(type, outcome);
    if (this.durationOf) this.durationOf(type).observe((performance.now() - started) / 1000);
  }
}

/** A registry with the process metrics (CPU, memory, event loop lag, fds) collected. */
export function createRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return registry;
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
export function registerConfRejected(registry: Registry): CountTable {
  return registerCountTable(registry, 'apisix_runner_conf_rejected_total', 'Plugin conf entries rejected at PrepareConf, by plugin and reason', ['plugin', 'reason']);
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
