/**
 * Turns the validated conf JSON and the runner-wide settings into the object every request
 * of a route uses. All parsing happens here, once per PrepareConf, never per request.
 */
import { isIP } from 'node:net';
import { ConfError } from '../../plugin-api/index.js';
import { describeUnknownKey } from '../../unknown-key.js';
import type { HttpMethod } from '../../plugin-api/index.js';
import type { BreakerSettings, NodeSpec, TargetSpec } from '../../mirror-dispatch/index.js';
import { DEFAULT_PIPELINING } from '../../mirror-dispatch/http-node.js';
import { parseDuration } from './duration.js';
import { parseCompareConf, type CompareConf } from '../../mirror-compare/conf.js';
import { HOST_PATTERN, KNOWN_FIELDS, MAX_FRAME_BODY_BYTES, MAX_NODE_WEIGHT, PATH_PATTERN } from './schema.js';

export type MirrorScheme = 'http' | 'https' | 'grpc' | 'grpcs';

/** Connect, send and read timeouts of a mirror copy, in milliseconds. */
export interface MirrorTimeouts {
  readonly connectMs: number;
  readonly sendMs: number;
  readonly readMs: number;
}

/** Per-target in-flight cap and bounded queue. */
export interface MirrorLimits {
  readonly maxConcurrency: number;
  readonly maxQueue: number;
  readonly maxQueueBytes: number;
}

/** Runner-wide settings (`host.settings('proxy-mirror')`), APISIX's plugin_attr equivalent. */
export interface ProxyMirrorSettings {
  readonly timeout: MirrorTimeouts;
  readonly maxBodySize: number;
  readonly limits: MirrorLimits;
  /** Extra CA certificates (PEM) trusted for https/grpcs targets, besides the system ones. */
  readonly tlsCa: string | undefined;
  /** At most one problem log line per target and kind in this interval. */
  readonly logIntervalMs: number;
  /** At shutdown, how long queued and in-flight copies may go on before they are dropped or cut. */
  readonly closeGraceMs: number;
  /** When a node that cannot be reached is taken out, and how it is retried. */
  readonly breaker: BreakerSettings;
  /** How often a host name target is resolved again (its addresses are its nodes). */
  readonly resolveEveryMs: number;
  /**
   * Nameservers asked for host name targets' A and AAAA records (`ip`, `ip:port`,
   * `[ipv6]:port`); undefined: the system's lookup. APISIX's `apisix.dns_resolver` equivalent.
   */
  readonly dnsResolver: readonly string[] | undefined;
  /**
   * Threads that send copies, the RPC thread included: 1 sends them from the RPC thread;
   * N > 1 hands them to N - 1 worker threads. Default 1 (DEFAULT_MIRROR_THREADS).
   */
  readonly mirrorThreads: number;
  /**
   * Nice value (0-19) of the mirror worker threads on Linux, so that busy cores serve the real
   * requests first (0: the runner's own priority). Default 0 (DEFAULT_MIRROR_THREAD_NICE).
   */
  readonly mirrorThreadNice: number;
  /** JSONL file the shadow comparison appends its differences to (`--mirror-diff-log`); undefined: none. */
  readonly diffLog: string | undefined;
  /** HTTP targets: requests waiting for their answers on one connection (1: no pipelining). */
  readonly pipelining: number;
}

/** Where copies go: a dispatch target plus what the plugin itself needs to know. */
export interface MirrorTargetSpec extends TargetSpec {
  /** The conf's `host` (nodes joined by `,` for a list), used as the metrics label. */
  readonly host: string;
  readonly scheme: MirrorScheme;
  readonly grpc: boolean;
}

/** Source of a deterministic sampling key. */
export interface SampleKey {
  readonly source: 'header' | 'arg' | 'var';
  readonly name: string;
}

/** A parsed `proxy-mirror` conf entry (one target). */
export interface ProxyMirrorConf {
  readonly target: MirrorTargetSpec;
  readonly path: string | undefined;
  readonly pathConcatMode: 'replace' | 'prefix';
  readonly sampleRatio: number;
  readonly sampleKey: SampleKey | undefined;
  readonly methods: ReadonlySet<HttpMethod> | undefined;
  /** Header edits of the copy only; names lower case. */
  readonly headersSet: readonly (readonly [string, string])[];
  readonly headersRemove: ReadonlySet<string>;
  readonly markHeader: string | undefined;
  readonly correlationHeader: string | undefined;
  readonly maxBodySize: number;
  readonly bodyOverLimit: 'skip' | 'send_without_body';
  /**
   * `auto`: rebuilt from the call's args when that is exact (see query-rebuild.ts), else raw;
   * `raw`: always the client's query, fetched from APISIX (one ExtraInfo round trip);
   * `rebuilt`: always from the args APISIX sent.
   */
  readonly query: 'auto' | 'raw' | 'rebuilt';
  /** gRPC method paths whose bodies of unknown length may be copied. */
  readonly grpcMethods: GrpcMethodSet;
  /** Shadow comparison of the target's answers with the real ones; undefined: off. */
  readonly compare: CompareConf | undefined;
  /** The `compare.secondary` instance, sent the same copy through the same engine (noise learning). */
  readonly secondaryTarget: MirrorTargetSpec | undefined;
}

/** Exact method paths plus `/pkg.Service/*` wildcards. */
export interface GrpcMethodSet {
  readonly exact: ReadonlySet<string>;
  readonly servicePrefixes: readonly string[];
}

export const DEFAULT_TIMEOUT_MS = 60_000;

/**
 * Copies are sent from the RPC thread unless the operator asks for workers. Measured with the
 * mirror's own HTTP client (docs/performance.md, "Mirror dispatch, final pass"): at a moderate
 * rate a worker saves the RPC thread nothing (handing a copy over costs about what sending it
 * does), costs more CPU in all and a worse RPC p99; it only helps a saturated RPC thread.
 */
export const DEFAULT_MIRROR_THREADS = 1;
/**
 * 0: workers at the runner's own priority. 10 lowered the paced p99 ratio in five alternated
 * rounds (medians 1.18× against 1.31×) but dropped 5-7 % of the copies in some pairs on a
 * 2-core machine (docs/performance.md, "Mirror dispatch, eleventh pass"), so it is opt-in.
 */
export const DEFAULT_MIRROR_THREAD_NICE = 0;

/** Defaults used when the runner's configuration says nothing. */
export const DEFAULT_SETTINGS: ProxyMirrorSettings = {
  timeout: { connectMs: DEFAULT_TIMEOUT_MS, sendMs: DEFAULT_TIMEOUT_MS, readMs: DEFAULT_TIMEOUT_MS },
  maxBodySize: MAX_FRAME_BODY_BYTES,
  limits: { maxConcurrency: 32, maxQueue: 256, maxQueueBytes: 64 * 1024 * 1024 },
  tlsCa: undefined,
  logIntervalMs: 10_000,
  closeGraceMs: 500,
  breaker: { failures: 3, baseMs: 1000, maxMs: 30_000 },
  resolveEveryMs: 30_000,
  dnsResolver: undefined,
  mirrorThreads: DEFAULT_MIRROR_THREADS,
  mirrorThreadNice: DEFAULT_MIRROR_THREAD_NICE,
  diffLog: undefined,
  pipelining: DEFAULT_PIPELINING,
};


export { parseDuration } from './duration.js';

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function intSetting(raw: Record<string, unknown>, key: string, fallback: number, min: number, max: number): number {
  const v = raw[key];
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new ConfError(`proxy-mirror.${key}`, `must be an integer in [${min}, ${max}]`);
  }
  return v;
}

/** A runner setting nobody reads is a typo (`timout:`): stop the start rather than ignore it. */
function rejectUnknownSettings(raw: Record<string, unknown>, known: readonly string[], field: string): void {
  for (const key of Object.keys(raw)) if (!known.includes(key)) throw new ConfError(field, describeUnknownKey(key, known, 'setting'));
}

const SETTING_KEYS = ['timeout', 'max_body_size', 'max_concurrency', 'max_queue', 'max_queue_bytes', 'tls_ca', 'log_interval', 'close_grace', 'breaker', 'mirror_threads', 'mirror_thread_nice', 'resolve_every', 'dns_resolver', 'diff_log', 'pipelining'] as const;

function parseTimeouts(raw: unknown, base: MirrorTimeouts, field: string, strict = false): MirrorTimeouts {
  if (raw === undefined) return base;
  if (!isRecord(raw)) throw new ConfError(field, 'must be an object {connect, read, send}');
  if (strict) rejectUnknownSettings(raw, ['connect', 'read', 'send'], field);
  return {
    connectMs: raw['connect'] === undefined ? base.connectMs : parseDuration(raw['connect'], `${field}/connect`),
    readMs: raw['read'] === undefined ? base.readMs : parseDuration(raw['read'], `${field}/read`),
    sendMs: raw['send'] === undefined ? base.sendMs : parseDuration(raw['send'], `${field}/send`),
  };
}

/**
 * Reads the runner-wide settings: `{timeout: {connect, read, send}, max_body_size,
 * max_concurrency, max_queue, max_queue_bytes, tls_ca, log_interval, close_grace}`.
 * Throws a ConfError naming the bad key (a broken runner config should stop the start).
 */
export function parseSettings(raw: unknown): ProxyMirrorSettings {
  if (raw === undefined || raw === null) return DEFAULT_SETTINGS;
  if (!isRecord(raw)) throw new ConfError('proxy-mirror', 'settings must be an object');
  rejectUnknownSettings(raw, SETTING_KEYS, 'proxy-mirror');
  const d = DEFAULT_SETTINGS;
  const tlsCa = raw['tls_ca'];
  if (tlsCa !== undefined && typeof tlsCa !== 'string') throw new ConfError('proxy-mirror.tls_ca', 'must be PEM text');
  const diffLog = raw['diff_log'];
  if (diffLog !== undefined && (typeof diffLog !== 'string' || diffLog === '')) throw new ConfError('proxy-mirror.diff_log', 'must be a file path');
  return {
    timeout: parseTimeouts(raw['timeout'], d.timeout, 'proxy-mirror.timeout', true),
    maxBodySize: intSetting(raw, 'max_body_size', d.maxBodySize, 0, MAX_FRAME_BODY_BYTES),
    limits: {
      maxConcurrency: intSetting(raw, 'max_concurrency', d.limits.maxConcurrency, 1, 10_000),
      maxQueue: intSetting(raw, 'max_queue', d.limits.maxQueue, 0, 1_000_000),
      maxQueueBytes: intSetting(raw, 'max_queue_bytes', d.limits.maxQueueBytes, 0, Number.MAX_SAFE_INTEGER),
    },
    tlsCa,
    logIntervalMs: raw['log_interval'] === undefined ? d.logIntervalMs : parseDuration(raw['log_interval'], 'proxy-mirror.log_interval'),
    closeGraceMs: raw['close_grace'] === undefined ? d.closeGraceMs : parseDuration(raw['close_grace'], 'proxy-mirror.close_grace'),
    breaker: parseBreaker(raw['breaker'], d.breaker),
    mirrorThreads: intSetting(raw, 'mirror_threads', d.mirrorThreads, 1, 64),
    mirrorThreadNice: intSetting(raw, 'mirror_thread_nice', d.mirrorThreadNice, 0, 19),
    resolveEveryMs: raw['resolve_every'] === undefined ? d.resolveEveryMs : parseDuration(raw['resolve_every'], 'proxy-mirror.resolve_every'),
    dnsResolver: raw['dns_resolver'] === undefined ? d.dnsResolver : parseDnsResolver(raw['dns_resolver']),
    diffLog,
    pipelining: intSetting(raw, 'pipelining', d.pipelining, 1, 64),
  };
}

/**
 * `dns_resolver: ["10.0.0.2", "127.0.0.1:5353", "[::1]:53"]`, APISIX's `apisix.dns_resolver`
 * (conf/config.yaml.example; checked and written out in apisix/cli/ops.lua, `init`): a list
 * of nameserver addresses, a bare IPv6 address allowed (APISIX brackets it), an optional port
 * (nginx's `resolver` syntax). Unlike APISIX, which falls back to /etc/resolv.conf for an
 * empty list and skips an IPv6 address with a zone id with a warning, both are refused here:
 * leaving the key out is how to get the system resolver. Returned in the form node's
 * `Resolver.setServers` takes.
 */
function parseDnsResolver(raw: unknown): string[] {
  const field = 'proxy-mirror.dns_resolver';
  if (!Array.isArray(raw) || raw.length === 0) {
    throw new ConfError(field, 'must be a non-empty list of nameservers like "10.0.0.2" or "127.0.0.1:5353" (leave it out for the system resolver)');
  }
  return raw.map((item: unknown, i) => {
    const at = `${field}[${i}]`;
    if (typeof item !== 'string') throw new ConfError(at, 'must be a nameserver address string like "10.0.0.2:53"');
    const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(item) ?? /^([^:]+)(?::(\d+))?$/.exec(item);
    const address = m ? m[1]! : item;
    const family = isIP(address);
    if (family === 0 || item.includes('%')) {
      throw new ConfError(at, `must be an IP address with an optional port, e.g. "10.0.0.2", "10.0.0.2:53", "[fd00::2]:53" (got ${JSON.stringify(item)}; a host name cannot be its own resolver, and zone ids are not supported)`);
    }
    const port = m?.[2];
    if (port !== undefined && !(Number(port) >= 1 && Number(port) <= 65535)) throw new ConfError(at, `port out of range (${port})`);
    if (port === undefined) return address;
    return family === 6 ? `[${address}]:${port}` : `${address}:${port}`;
  });
}

/** `breaker: {failures, retry_base, retry_max}` of the runner settings. */
function parseBreaker(raw: unknown, d: BreakerSettings): BreakerSettings {
  if (raw === undefined) return d;
  if (!isRecord(raw)) throw new ConfError('proxy-mirror.breaker', 'must be an object {failures, retry_base, retry_max}');
  rejectUnknownSettings(raw, ['failures', 'retry_base', 'retry_max'], 'proxy-mirror.breaker');
  const failures = intSetting(raw, 'failures', d.failures, 1, 1000);
  const baseMs = raw['retry_base'] === undefined ? d.baseMs : parseDuration(raw['retry_base'], 'proxy-mirror.breaker.retry_base');
  const maxMs = raw['retry_max'] === undefined ? Math.max(d.maxMs, baseMs) : parseDuration(raw['retry_max'], 'proxy-mirror.breaker.retry_max');
  if (maxMs < baseMs) throw new ConfError('proxy-mirror.breaker.retry_max', 'must not be below retry_base');
  return { failures, baseMs, maxMs };
}

const hostRe = new RegExp(HOST_PATTERN);
const pathRe = new RegExp(PATH_PATTERN);

interface ParsedNode {
  readonly scheme: MirrorScheme;
  readonly hostname: string;
  readonly port: number;
  readonly label: string;
  readonly weight: number;
}

function parseNodeUrl(host: unknown, field: string, weight: number): ParsedNode {
  if (typeof host !== 'string') throw new ConfError(field, 'is required (a string like "http://127.0.0.1:8081")');
  const m = hostRe.exec(host);
  if (!m) throw new ConfError(field, `must be scheme://host[:port] with scheme http, https, grpc or grpcs and no path (got ${JSON.stringify(host)})`);
  const scheme = host.slice(0, host.indexOf(':')) as MirrorScheme;
  // IPv6 literals are kept without their brackets; nodeSpec puts them back where a URL needs them.
  const hostname = (m[4] ?? '').replace(/^\[|\]$/g, '');
  const tls = scheme === 'https' || scheme === 'grpcs';
  const port = m[5] ? Number.parseInt(m[5].slice(1), 10) : tls ? 443 : 80;
  if (!(port >= 1 && port <= 65535)) throw new ConfError(field, `port out of range (${port})`);
  return { scheme, hostname, port, label: host, weight };
}

/**
 * `host` is APISIX's string, or (runner extension) a non-empty list of nodes: strings, or
 * `{host, weight}` objects. Every node of a list has the same scheme (http, https, grpc or grpcs).
 */
function parseHost(host: unknown): { label: string; nodes: ParsedNode[] } {
  if (!Array.isArray(host)) {
    const node = parseNodeUrl(host, '/host', 1);
    return { label: node.label, nodes: [node] };
  }
  if (host.length === 0) throw new ConfError('/host', 'a list of nodes must not be empty');
  const nodes = host.map((item: unknown, i) => {
    if (isRecord(item)) {
      const w = item['weight'] ?? 1;
      if (typeof w !== 'number' || !Number.isInteger(w) || w < 1 || w > MAX_NODE_WEIGHT) {
        throw new ConfError(`/host/${i}/weight`, `must be an integer in [1, ${MAX_NODE_WEIGHT}]`);
      }
      return parseNodeUrl(item['host'], `/host/${i}/host`, w);
    }
    return parseNodeUrl(item, `/host/${i}`, 1);
  });
  const scheme = nodes[0]!.scheme;
  nodes.forEach((n, i) => {
    if (n.scheme !== scheme) throw new ConfError(`/host/${i}`, `every node must use the same scheme (${scheme})`);
  });
  const seen = new Set<string>();
  nodes.forEach((n, i) => {
    const key = `${n.hostname}:${n.port}`;
    if (seen.has(key)) throw new ConfError(`/host/${i}`, `node ${n.label} is listed twice`);
    seen.add(key);
  });
  return { label: nodes.map((n) => n.label).join(','), nodes };
}

function nodeSpec(n: ParsedNode, tls: boolean): NodeSpec {
  const host = n.hostname.includes(':') ? `[${n.hostname}]` : n.hostname;
  const authority = `${host}:${n.port}`;
  return {
    label: n.label,
    authority,
    hostname: n.hostname,
    port: n.port,
    weight: n.weight,
  };
}

function optionalHeaderName(v: unknown, field: string): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v === '') throw new ConfError(field, 'must be a header name');
  return v.toLowerCase();
}

function parseGrpcMethods(v: unknown): GrpcMethodSet {
  const exact = new Set<string>();
  const servicePrefixes: string[] = [];
  if (v === undefined) return { exact, servicePrefixes };
  if (!Array.isArray(v)) throw new ConfError('/grpc_methods', 'must be an array of "/package.Service/Method" paths');
  v.forEach((item, i) => {
    if (typeof item !== 'string' || !/^\/[^/\s]+\/([^/\s]+|\*)$/.test(item)) {
      throw new ConfError(`/grpc_methods/${i}`, 'must look like "/package.Service/Method" or "/package.Service/*"');
    }
    if (item.endsWith('/*')) servicePrefixes.push(item.slice(0, -1));
    else exact.add(item);
  });
  return { exact, servicePrefixes };
}

/** True when a gRPC method path may have a body of unknown length copied. */
export function grpcMethodAllowed(set: GrpcMethodSet, path: string): boolean {
  return set.exact.has(path) || set.servicePrefixes.some((p) => path.startsWith(p) && !path.slice(p.length).includes('/'));
}

/** Names of fields the schema does not know (APISIX accepts them; we warn). */
export function unknownFields(value: unknown): string[] {
  return isRecord(value) ? Object.keys(value).filter((k) => !KNOWN_FIELDS.has(k)) : [];
}

/**
 * Builds a ProxyMirrorConf from one validated conf value. Re-checks what the schema checks
 * (so it is safe on its own) and throws ConfError naming the field.
 */
export function parseProxyMirrorConf(value: unknown, settings: ProxyMirrorSettings): ProxyMirrorConf {
  if (!isRecord(value)) throw new ConfError('', 'conf must be a JSON object');
  const { label, nodes } = parseHost(value['host']);
  const scheme = nodes[0]!.scheme;
  const grpc = scheme === 'grpc' || scheme === 'grpcs';
  const tls = scheme === 'https' || scheme === 'grpcs';

  const path = value['path'];
  if (path !== undefined && (typeof path !== 'string' || !pathRe.test(path))) {
    throw new ConfError('/path', 'must start with "/" and contain no "?" or "&"');
  }
  const mode = value['path_concat_mode'] ?? 'replace';
  if (mode !== 'replace' && mode !== 'prefix') throw new ConfError('/path_concat_mode', 'must be "replace" or "prefix"');
  const ratio = value['sample_ratio'] ?? 1;
  if (typeof ratio !== 'number' || !(ratio >= 0.00001 && ratio <= 1)) {
    throw new ConfError('/sample_ratio', 'must be a number in [0.00001, 1]');
  }

  let sampleKey: SampleKey | undefined;
  const sk = value['sample_key'];
  if (sk !== undefined) {
    const m = typeof sk === 'string' ? /^(header|arg|var):([^\s:]+)$/.exec(sk) : null;
    if (!m) throw new ConfError('/sample_key', 'must be "header:NAME", "arg:NAME" or "var:NAME"');
    const source = m[1] as SampleKey['source'];
    sampleKey = { source, name: source === 'header' ? m[2]!.toLowerCase() : m[2]! };
  }

  let methods: Set<HttpMethod> | undefined;
  const ms = value['methods'];
  if (ms !== undefined) {
    if (!Array.isArray(ms) || ms.length === 0) throw new ConfError('/methods', 'must be a non-empty array of methods');
    methods = new Set(ms.map((m, i) => {
      if (typeof m !== 'string') throw new ConfError(`/methods/${i}`, 'must be a method name');
      return m.toUpperCase() as HttpMethod;
    }));
  }

  const headersSet: [string, string][] = [];
  const headersRemove = new Set<string>();
  const hs = value['headers'];
  if (hs !== undefined) {
    if (!isRecord(hs)) throw new ConfError('/headers', 'must be an object {set, remove}');
    const set = hs['set'];
    if (set !== undefined) {
      if (!isRecord(set)) throw new ConfError('/headers/set', 'must be an object of header name -> value');
      for (const [k, v] of Object.entries(set)) {
        if (typeof v !== 'string' || /[\r\n\0]/.test(v)) throw new ConfError(`/headers/set/${k}`, 'must be a string without CR, LF or NUL');
        headersSet.push([k.toLowerCase(), v]);
      }
    }
    const remove = hs['remove'];
    if (remove !== undefined) {
      if (!Array.isArray(remove)) throw new ConfError('/headers/remove', 'must be an array of header names');
      remove.forEach((r, i) => {
        if (typeof r !== 'string' || r === '') throw new ConfError(`/headers/remove/${i}`, 'must be a header name');
        headersRemove.add(r.toLowerCase());
      });
    }
  }

  const maxBody = value['max_body_size'] ?? settings.maxBodySize;
  if (typeof maxBody !== 'number' || !Number.isInteger(maxBody) || maxBody < 0 || maxBody > MAX_FRAME_BODY_BYTES) {
    throw new ConfError('/max_body_size', `must be an integer in [0, ${MAX_FRAME_BODY_BYTES}]`);
  }
  const overLimit = value['body_over_limit'] ?? 'skip';
  if (overLimit !== 'skip' && overLimit !== 'send_without_body') {
    throw new ConfError('/body_over_limit', 'must be "skip" or "send_without_body"');
  }
  const query = value['query'] ?? 'auto';
  if (query !== 'auto' && query !== 'raw' && query !== 'rebuilt') throw new ConfError('/query', 'must be "auto", "raw" or "rebuilt"');
  const tlsVerify = value['tls_verify'] ?? true;
  if (typeof tlsVerify !== 'boolean') throw new ConfError('/tls_verify', 'must be a boolean');

  const limit = (key: string, fallback: number, min: number): number => {
    const v = value[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw new ConfError(`/${key}`, `must be an integer >= ${min}`);
    return v;
  };

  const compare = value['compare'] === undefined ? undefined : parseCompareConf(value['compare'], '/compare');
  if (compare && grpc) throw new ConfError('/compare', 'compares HTTP answers: the target must be http:// or https://');

  const target: MirrorTargetSpec = {
    host: label,
    label,
    scheme,
    grpc,
    protocol: grpc ? 'grpc' : 'http',
    tls,
    tlsCa: settings.tlsCa,
    nodes: nodes.map((n) => nodeSpec(n, tls)),
    resolveAll: nodes.length === 1,
    resolveEveryMs: settings.resolveEveryMs,
    pipelining: settings.pipelining,
    ...(settings.dnsResolver ? { dnsServers: settings.dnsResolver } : {}),
    breaker: settings.breaker,
    tlsVerify,
    timeouts: parseTimeouts(value['timeout'], settings.timeout, '/timeout'),
    limits: {
      maxConcurrency: limit('max_concurrency', settings.limits.maxConcurrency, 1),
      maxQueue: limit('max_queue', settings.limits.maxQueue, 0),
      maxQueueBytes: limit('max_queue_bytes', settings.limits.maxQueueBytes, 0),
    },
  };
  return {
    target,
    path: path as string | undefined,
    pathConcatMode: mode,
    sampleRatio: ratio,
    sampleKey,
    methods,
    headersSet,
    headersRemove,
    markHeader: optionalHeaderName(value['mark_header'], '/mark_header'),
    correlationHeader: optionalHeaderName(value['correlation_header'], '/correlation_header'),
    maxBodySize: maxBody,
    bodyOverLimit: overLimit,
    query,
    grpcMethods: parseGrpcMethods(value['grpc_methods']),
    compare,
    secondaryTarget: compare?.secondary === undefined ? undefined : secondaryTargetSpec(target, compare.secondary),
  };
}

/** The secondary instance: the mirror target's timeouts and limits, its own single node. */
function secondaryTargetSpec(target: MirrorTargetSpec, url: string): MirrorTargetSpec {
  const node = parseNodeUrl(url, '/compare/secondary', 1);
  const tls = node.scheme === 'https';
  return { ...target, host: url, label: url, scheme: node.scheme, tls, nodes: [nodeSpec(node, tls)], resolveAll: true };
}
