import { describeUnknownKey } from './unknown-key.js';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createRequire } from 'node:module';
import { parseListenAddress } from './server/socket-path.js';
import { ConfError } from './plugin-api/plugin.js';

/** Everything the CLI needs to start a runner. */
export interface RunnerConfig {
  readonly socketPath: string;
  /** True when no APISIX_LISTEN_ADDRESS/--socket was given (the runner was not started by APISIX). */
  readonly socketDefaulted: boolean;
  readonly confExpireSeconds: number;
  readonly maxConfs: number;
  readonly logLevel: string;
  readonly logFile: string | undefined;
  readonly metricsAddress: string | undefined;
  readonly extraInfoTimeoutMs: number;
  /** How long in-flight RPCs may run after SIGTERM before their connections are closed. */
  readonly drainTimeoutMs: number;
  /** Absolute paths of user plugin modules (relative ones in a config file are resolved against its folder). */
  readonly pluginPaths: readonly string[];
  readonly pluginAttr: Readonly<Record<string, unknown>>;
}

export const DEFAULT_SOCKET_PATH = join(tmpdir(), 'apisix-ts-plugin-runner.sock');

export const HELP = `apisix-ts-plugin-runner — external plugin runner for Apache APISIX

Usage: apisix-ts-plugin-runner [options]
       apisix-ts-plugin-runner check [--config <file>] [--plugin <path>]... FILE...
       apisix-ts-plugin-runner init <dir>
APISIX starts it from ext-plugin.cmd and sets APISIX_LISTEN_ADDRESS and APISIX_CONF_EXPIRE_TIME.

Options (flags win over the config file, which wins over the environment and defaults):
  -c, --config <file>            JSON or YAML config file (keys below in camelCase, plus plugin_attr)
      --socket <path>            Unix socket to listen on
                                 (env APISIX_LISTEN_ADDRESS=unix:/path; default ${DEFAULT_SOCKET_PATH})
      --conf-expire-time <s>     APISIX's conf token TTL in seconds; confs are kept 1.2x as long
                                 (env APISIX_CONF_EXPIRE_TIME; default 3600)
      --max-confs <n>            most route confs held at once (default 100000)
  -p, --plugin <path>            load plugins from a JS module (repeatable); its default export is a
                                 Plugin, an array of them, or a factory (host) => Plugin | Plugin[]
      --log-level <level>        fatal|error|warn|info|debug|trace|silent (env RUNNER_LOG_LEVEL; default info)
      --log-file <path>          log to a file instead of stdout (stdout lands in APISIX's error log)
      --metrics-address <h:p>    serve Prometheus metrics on http://h:p/metrics (off by default;
                                 env RUNNER_METRICS_ADDRESS; use a loopback address)
      --extra-info-timeout <ms>  wait for one ExtraInfo answer before closing the connection (default 60000)
      --drain-timeout <ms>       after SIGTERM, how long in-flight RPCs may run (default 700; APISIX
                                 kills the runner about 1 s after SIGTERM)
      --mirror-threads <n>       threads that send proxy-mirror copies, this one included: 1 sends them
                                 from the RPC thread (default 1; N > 1 adds N - 1 worker threads;
                                 same as plugin_attr.proxy-mirror.mirror_threads)
      --mirror-diff-log <file>   append the shadow comparison's differences to a JSONL file
                                 (same as plugin_attr.proxy-mirror.diff_log; see docs/compare.md)
  -h, --help                     print this help
  -v, --version                  print the version

Commands:
  check FILE...                  validate the ext-plugin confs of routes before deploying them
                                 (standalone apisix.yaml, Admin API JSON, ADC or ApisixRoute YAML)
  init <dir>                     scaffold a plugin project (TypeScript, a test with the testing kit)

Signals: SIGTERM/SIGINT drain and exit 0; SIGHUP reopens --log-file and --mirror-diff-log (log rotation).
Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration mistake.

Config file example (YAML):
  logLevel: info
  metricsAddress: 127.0.0.1:9091
  plugins: [/opt/my-plugins/auth.js]
  plugin_attr:
    proxy-mirror:
      timeout: { connect: 2s, read: 10s, send: 10s }
`;

export class ConfigError extends Error {
  readonly code = 'A6_ERR_CONFIG';
}

interface FileConfig {
  socket?: string;
  confExpireTime?: number;
  maxConfs?: number;
  logLevel?: string;
  logFile?: string;
  metricsAddress?: string;
  extraInfoTimeout?: number;
  drainTimeout?: number;
  plugins?: string[];
  plugin_attr?: Record<string, unknown>;
}

// yaml is required (synchronously, so a bad file still fails the start) only for a .yaml/.yml
// config file: a runner configured by flags, environment or JSON does not load the parser.
const requireFromHere = createRequire(import.meta.url);
function parseYaml(text: string): unknown {
  const yaml = requireFromHere('yaml') as typeof import('yaml');
  return yaml.parse(text);
}

const LOG_LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);
const FILE_KEYS = new Set(['socket', 'confExpireTime', 'maxConfs', 'logLevel', 'logFile', 'metricsAddress', 'extraInfoTimeout', 'drainTimeout', 'plugins', 'plugin_attr']);

/** Edit distance counting a swap of two neighbours as one edit (optimal string alignment), for "did you mean". */
export { describeUnknownKey };

/**
 * A plugin reads its plugin_attr settings when it is built and throws ConfError on a bad one:
 * turned into a ConfigError naming the config key to fix. Other errors pass through.
 */
export function pluginAttrError(err: unknown): unknown {
  return err instanceof ConfError ? new ConfigError(`invalid plugin_attr.${err.message}; fix it in the config file`) : err;
}

/** A plugin_attr entry for a plugin no one registered is a typo (`proxy-mirorr:`), not a no-op. */
export function checkPluginAttrNames(settings: Readonly<Record<string, unknown>>, names: readonly string[]): void {
  for (const key of Object.keys(settings)) {
    if (!names.includes(key)) throw new ConfigError(`plugin_attr: ${describeUnknownKey(key, names, 'plugin')}; fix the config file`);
  }
}

/** Reads and checks a config file; relative plugin paths in it are made absolute against its folder. */
export function readConfigFile(path: string): FileConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = /\.ya?ml$/i.test(path) ? parseYaml(text) : JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`config file ${path} is not valid ${/\.ya?ml$/i.test(path) ? 'YAML' : 'JSON'}: ${(err as Error).message}`);
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) throw new ConfigError(`config file ${path} must hold an object`);
  for (const key of Object.keys(parsed)) {
    if (!FILE_KEYS.has(key)) throw new ConfigError(`config file ${path}: ${describeUnknownKey(key, [...FILE_KEYS])}`);
  }
  const config = parsed as FileConfig & Record<string, unknown>;
  const plugins: unknown = config.plugins;
  if (plugins !== undefined && (!Array.isArray(plugins) || !plugins.every((p) => typeof p === 'string' && p !== ''))) {
    throw new ConfigError(`config file ${path}: "plugins" must be a list of module paths, e.g. plugins: [./my-plugin.js], got ${JSON.stringify(plugins)}`);
  }
  const attr: unknown = config.plugin_attr;
  if (attr !== undefined && attr !== null && (typeof attr !== 'object' || Array.isArray(attr))) {
    throw new ConfigError(`config file ${path}: "plugin_attr" must be a map keyed by plugin name, e.g. plugin_attr: { proxy-mirror: { timeout: ... } }`);
  }
  const folder = dirname(resolve(path));
  return { ...config, plugins: plugins?.map((p) => (isAbsolute(p) ? p : resolve(folder, p))) };
}

function positiveNumber(name: string, value: unknown): number {
  const n = typeof value === 'string' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isFinite(n) || n <= 0) throw new ConfigError(`${name} must be a positive number, got ${JSON.stringify(value)}`);
  return n;
}

export type CliCommand = { kind: 'help' } | { kind: 'version' } | { kind: 'run'; config: RunnerConfig };

/** Turns argv + environment into a command; throws ConfigError with an actionable message. */
export function resolveConfig(argv: readonly string[], env: NodeJS.ProcessEnv): CliCommand {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        config: { type: 'string', short: 'c' },
        socket: { type: 'string' },
        'conf-expire-time': { type: 'string' },
        'max-confs': { type: 'string' },
        plugin: { type: 'string', short: 'p', multiple: true },
        'log-level': { type: 'string' },
        'log-file': { type: 'string' },
        'metrics-address': { type: 'string' },
        'extra-info-timeout': { type: 'string' },
        'drain-timeout': { type: 'string' },
        'mirror-threads': { type: 'string' },
        'mirror-diff-log': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new ConfigError(`${(err as Error).message}; see --help`);
  }
  if (values.help) return { kind: 'help' };
  if (values.version) return { kind: 'version' };

  const file = values.config ? readConfigFile(values.config) : {};
  const socketSource = values.socket ?? file.socket ?? env['APISIX_LISTEN_ADDRESS'];
  const socketPath = socketSource ? parseListenAddress(socketSource) : DEFAULT_SOCKET_PATH;
  const logLevel = values['log-level'] ?? file.logLevel ?? env['RUNNER_LOG_LEVEL'] ?? 'info';
  if (!LOG_LEVELS.has(logLevel)) throw new ConfigError(`log level must be one of ${[...LOG_LEVELS].join(', ')}, got "${logLevel}"`);
  let pluginAttr = file.plugin_attr ?? {};
  if (values['mirror-threads'] !== undefined) {
    // The flag is a shortcut for plugin_attr.proxy-mirror.mirror_threads (validated there).
    const n = Number(values['mirror-threads']);
    if (!Number.isInteger(n) || n < 1) throw new ConfigError(`--mirror-threads must be an integer >= 1, got "${values['mirror-threads']}"`);
    const mirror = pluginAttr['proxy-mirror'];
    pluginAttr = { ...pluginAttr, 'proxy-mirror': { ...(typeof mirror === 'object' && mirror !== null ? mirror : {}), mirror_threads: n } };
  }
  if (values['mirror-diff-log'] !== undefined) {
    // The flag is a shortcut for plugin_attr.proxy-mirror.diff_log, made absolute like --plugin.
    if (values['mirror-diff-log'] === '') throw new ConfigError('--mirror-diff-log needs a file path');
    const mirror = pluginAttr['proxy-mirror'];
    pluginAttr = { ...pluginAttr, 'proxy-mirror': { ...(typeof mirror === 'object' && mirror !== null ? mirror : {}), diff_log: resolve(values['mirror-diff-log']) } };
  }

  return {
    kind: 'run',
    config: {
      socketPath,
      socketDefaulted: !socketSource,
      confExpireSeconds: positiveNumber('conf expire time', values['conf-expire-time'] ?? file.confExpireTime ?? env['APISIX_CONF_EXPIRE_TIME'] ?? 3600),
      maxConfs: Math.floor(positiveNumber('max confs', values['max-confs'] ?? file.maxConfs ?? 100_000)),
      logLevel,
      logFile: values['log-file'] ?? file.logFile,
      metricsAddress: values['metrics-address'] ?? file.metricsAddress ?? env['RUNNER_METRICS_ADDRESS'],
      extraInfoTimeoutMs: positiveNumber('extra info timeout', values['extra-info-timeout'] ?? file.extraInfoTimeout ?? 60_000),
      drainTimeoutMs: positiveNumber('drain timeout', values['drain-timeout'] ?? file.drainTimeout ?? 700),
      pluginPaths: [...(file.plugins ?? []), ...(values.plugin ?? []).map((p) => resolve(p))],
      pluginAttr,
    },
  };
}
