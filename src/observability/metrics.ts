import { createServer, type Server } from 'node:http';
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

/** The runner's own RPC metrics. Label children are bound once so the hot path only increments. */
export class RpcMetrics {
  private readonly total: Counter<'type' | 'outcome'>;
  private readonly duration: Histogram<'type'>;
  readonly connections: Gauge;
  readonly confs: Gauge;
  private readonly totalOf: (type: string, outcome: string) => { inc(): void };
  private readonly durationOf: (type: string) => { observe(v: number): void };

  constructor(readonly registry: Registry) {
    this.total = new Counter({
      name: 'apisix_runner_rpc_total',
      help: 'RPCs handled, by message type and outcome',
      labelNames: ['type', 'outcome'],
      registers: [registry],
    });
    this.duration = new Histogram({
      name: 'apisix_runner_rpc_duration_seconds',
      help: 'Time from receiving an RPC to writing its reply, ExtraInfo round trips included',
      labelNames: ['type'],
      buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1],
      registers: [registry],
    });
    this.connections = new Gauge({ name: 'apisix_runner_connections', help: 'Open connections from APISIX', registers: [registry] });
    this.confs = new Gauge({ name: 'apisix_runner_confs', help: 'Route confs held in the conf cache', registers: [registry] });
    this.totalOf = boundByTwo((type, outcome) => this.total.labels(type, outcome));
    this.durationOf = boundByOne((type) => this.duration.labels(type));
  }

  /** Counts one RPC and its duration in seconds. */
  record(type: string, outcome: string, seconds: number): void {
    this.totalOf(type, outcome).inc();
    this.durationOf(type).observe(seconds);
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

/** Serves `GET /metrics` in Prometheus text format. */
export async function startMetricsServer(address: string, registry: Registry): Promise<{ server: Server; url: string }> {
  const { host, port } = parseListenAddress(address);
  const server = createServer((req, res) => {
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
