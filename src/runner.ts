import type { Registry } from 'prom-client';
import type { JsonSchema, Plugin, PluginHost } from './plugin-api/index.js';
import { ConfCache } from './conf-cache.js';
import { PluginRegistry } from './plugin-registry.js';
import { RunnerServer, type DrainOptions } from './server/runner-server.js';
import { MAX_PAYLOAD_BYTES } from './protocol/frame.js';
import { createLogger, type RunnerLogger } from './observability/logger.js';
import { RpcMetrics, createLazyRegistry, registerConfRejected, serveMetrics, type MetricsListener } from './observability/metrics.js';
import { LazyRegistry } from './observability/lazy-registry.js';
import { RateLimitedLog } from './observability/rate-limited-log.js';
import { builtinPlugins } from './plugins/index.js';
import { sayConfSchema } from './plugins/say/index.js';
import { rewriteConfSchema } from './plugins/rewrite/index.js';
import { proxyMirrorSchema } from './plugins/proxy-mirror/schema.js';
import { checkPluginAttrNames, pluginAttrError } from './config.js';

export interface RunnerOptions {
  /** Unix socket path to listen on. */
  readonly socketPath: string;
  /** APISIX_CONF_EXPIRE_TIME in seconds; confs are kept 1.2 × this long. Default 3600. */
  readonly confExpireSeconds?: number;
  /** Upper bound of route confs held. Default 100,000. */
  readonly maxConfs?: number;
  /** Builds the plugins; default: the built-ins (say, rewrite, proxy-mirror). */
  readonly plugins?: (host: PluginHost) => readonly Plugin<unknown>[] | Promise<readonly Plugin<unknown>[]>;
  readonly logger?: RunnerLogger;
  /**
   * Prometheus registry; by default a fresh one (with process metrics), created only when
   * metrics are served or `host.metrics` is first used: until then prom-client is not loaded.
   */
  readonly metrics?: Registry;
  /** 'host:port' for GET /metrics; off when undefined. */
  readonly metricsAddress?: string | undefined;
  /** How long to wait for one ExtraInfo answer before closing the connection. Default 60 s (APISIX's own read timeout). */
  readonly extraInfoTimeoutMs?: number;
  /** Largest frame payload accepted. Default and maximum 16 MiB - 1. */
  readonly maxPayloadBytes?: number;
  /** Per-plugin settings (`plugin_attr` in the config file), read with host.settings(name). */
  readonly settings?: Readonly<Record<string, unknown>>;
  /** How long to wait between tries when the metrics address is in use. Default 1000 ms. */
  readonly metricsRetryMs?: number;
  /** Clock for conf expiry and the rate-limited problem log (tests). */
  readonly now?: () => number;
  /** Read connections through the stream API, not the reused buffer (tests compare the two; src/socket-reads.ts). */
  readonly streamReads?: boolean;
}

export interface Runner {
  readonly socketPath: string;
  readonly host: PluginHost;
  readonly registry: PluginRegistry;
  readonly confs: ConfCache;
  /** Where metrics are served; undefined when off, or while the address is still in use by another process. */
  readonly metricsUrl: string | undefined;
  /** Open connections from APISIX. */
  connectionCount(): number;
  /**
   * Stops accepting, finishes in-flight RPCs (bounded), closes plugins' clients and removes the
   * socket file if it is still this runner's.
   */
  close(options?: DrainOptions): Promise<void>;
}

/** The metrics address cannot be served for a reason other than being in use (bad host, no permission). */
export class MetricsAddressError extends Error {
  readonly code = 'A6_ERR_METRICS_ADDRESS';
}

/**
 * The built-in plugins' schemas: fixed, and compiled by test/core/lazy-loading.test.ts, so
 * they are compiled (and ajv loaded) with the first route that uses the plugin, not at start.
 */
const BUILTIN_SCHEMAS: ReadonlySet<JsonSchema> = new Set([sayConfSchema, rewriteConfSchema, proxyMirrorSchema]);

/** Starts a runner listening on `options.socketPath`. */
export async function startRunner(options: RunnerOptions): Promise<Runner> {
  const logger = options.logger ?? createLogger();
  const metricsRegistry = options.metrics ?? createLazyRegistry();
  // Served: created now, so that every metric is registered at once and in a fixed order.
  if (options.metricsAddress && metricsRegistry instanceof LazyRegistry) metricsRegistry.get();
  // Latency histograms cost clock reads per RPC: only when someone can scrape them.
  const rpcMetrics = new RpcMetrics(metricsRegistry, Boolean(options.metricsAddress) || options.metrics !== undefined);
  const closeTasks: Array<() => Promise<void> | void> = [];
  const settings = options.settings ?? {};
  const host: PluginHost = {
    logger,
    metrics: metricsRegistry,
    settings: (name) => settings[name],
    onClose: (task) => closeTasks.push(task),
  };

  const rejected = registerConfRejected(metricsRegistry);
  const registry = new PluginRegistry({
    onReject: (plugin, reason) => rejected.cell([plugin, reason]).inc(),
    compileOnFirstUse: BUILTIN_SCHEMAS,
  });
  let plugins: readonly Plugin<unknown>[];
  try {
    plugins = await (options.plugins ?? builtinPlugins)(host);
  } catch (err) {
    throw pluginAttrError(err);
  }
  for (const plugin of plugins) registry.register(plugin);
  checkPluginAttrNames(settings, registry.names());

  const confExpireSeconds = options.confExpireSeconds ?? 3600;
  const confs = new ConfCache({
    ttlMs: confExpireSeconds * 1200,
    maxEntries: options.maxConfs ?? 100_000,
    now: options.now,
    onEvict: (chain) => registry.release(chain, logger),
  });
  // Expired confs are also dropped lazily; the sweep only bounds memory of idle routes.
  const sweepEveryMs = Math.min(60_000, Math.max(1_000, confExpireSeconds * 100));
  const sweeper = setInterval(() => {
    confs.sweep();
    rpcMetrics.confs.set(confs.size);
  }, sweepEveryMs);
  sweeper.unref();

  const server = new RunnerServer(options.socketPath, {
    confs,
    registry,
    logger,
    metrics: rpcMetrics,
    problems: new RateLimitedLog(10_000, options.now),
    extraInfoTimeoutMs: options.extraInfoTimeoutMs ?? 60_000,
    maxPayloadBytes: Math.min(options.maxPayloadBytes ?? MAX_PAYLOAD_BYTES, MAX_PAYLOAD_BYTES),
    streamReads: options.streamReads === true,
  });
  await server.listen();

  let metrics: MetricsListener | undefined;
  if (options.metricsAddress) {
    try {
      metrics = await serveMetrics(options.metricsAddress, metricsRegistry, logger, options.metricsRetryMs);
    } catch (err) {
      await server.close({ graceMs: 0 });
      throw new MetricsAddressError(`cannot serve metrics on ${options.metricsAddress}: ${(err as Error).message}; choose another --metrics-address`);
    }
  }

  let closing: Promise<void> | undefined;
  return {
    socketPath: options.socketPath,
    host,
    registry,
    confs,
    get metricsUrl() {
      return metrics?.url;
    },
    connectionCount: () => server.connectionCount,
    close(drain?: DrainOptions) {
      closing ??= (async () => {
        clearInterval(sweeper);
        await server.close(drain);
        await metrics?.close();
        await Promise.allSettled(closeTasks.map((t) => t()));
        confs.clear();
      })();
      return closing;
    },
  };
}
