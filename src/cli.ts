#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { ConfigError, HELP, resolveConfig } from './config.js';
import { LogFileError, createLogger, openLogTarget, type LogTarget } from './observability/logger.js';
import { MetricsAddressError, startRunner, type Runner } from './runner.js';
import { SocketPathError } from './server/socket-path.js';
import { builtinPlugins } from './plugins/index.js';
import { PluginModuleError, loadPluginModule } from './plugin-loader.js';

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** Exit code for a start that failed: 2 when the operator has something to fix in the setup, 1 otherwise. */
const EXIT_RUNTIME = 1;
const EXIT_USAGE = 2;

/** A fatal start error: one plain line on stderr (APISIX copies it into its error log), whatever the log target. */
function failStart(err: unknown): never {
  const mistake =
    err instanceof ConfigError ||
    err instanceof SocketPathError ||
    err instanceof MetricsAddressError ||
    err instanceof LogFileError ||
    err instanceof PluginModuleError;
  process.stderr.write(`apisix-ts-plugin-runner: cannot start: ${(err as Error)?.message ?? String(err)}\n`);
  process.exit(mistake ? EXIT_USAGE : EXIT_RUNTIME);
}

async function main(): Promise<void> {
  // The subcommands are imported only when asked for: a serving runner does not keep the
  // scaffold templates or the route checker (and its YAML parser) in memory.
  if (process.argv[2] === 'init') {
    const { runInit } = await import('./scaffold/init-command.js');
    process.exit(await runInit(process.argv.slice(3)));
  }
  if (process.argv[2] === 'check') {
    const { runCheck } = await import('./check/command.js');
    process.exitCode = await runCheck(process.argv.slice(3), { loadPlugins: (paths, host) => Promise.all(paths.map((p) => loadPluginModule(p, host))).then((l) => l.flat()) });
    return;
  }
  let command;
  try {
    command = resolveConfig(process.argv.slice(2), process.env);
  } catch (err) {
    failStart(err);
  }
  if (command.kind === 'help') {
    process.stdout.write(HELP);
    return;
  }
  if (command.kind === 'version') {
    process.stdout.write(`${version()}\n`);
    return;
  }
  const config = command.config;
  let logTarget: LogTarget;
  try {
    logTarget = openLogTarget(config.logFile);
  } catch (err) {
    failStart(err);
  }
  const logger = createLogger({ level: config.logLevel, target: logTarget });
  // logrotate's `postrotate kill -HUP`: reopen the file at its path; never die of SIGHUP.
  process.on('SIGHUP', () => {
    if (!config.logFile) {
      logger.info('SIGHUP received: logs go to stdout, nothing to reopen');
      return;
    }
    try {
      logTarget.reopen();
      logger.info({ file: config.logFile }, 'log file reopened (SIGHUP)');
    } catch (err) {
      process.stderr.write(`apisix-ts-plugin-runner: cannot reopen log file ${config.logFile}: ${(err as Error).message}\n`);
    }
  });

  process.on('unhandledRejection', (reason) => logger.error({ err: reason }, 'unhandled promise rejection (a bug: please report it)'));
  process.on('uncaughtException', (err) => {
    // State may be corrupt: exit and let APISIX respawn the runner (it waits 3 s).
    logger.fatal({ err }, 'uncaught exception (a bug: please report it); exiting so that APISIX restarts the runner');
    // APISIX's error log gets stderr even when the runner logs to its own file.
    if (config.logFile) process.stderr.write(`apisix-ts-plugin-runner: exiting on an uncaught exception: ${err.stack ?? err.message}\n`);
    process.exit(EXIT_RUNTIME);
  });

  let runner: Runner;
  try {
    runner = await startRunner({
      socketPath: config.socketPath,
      confExpireSeconds: config.confExpireSeconds,
      maxConfs: config.maxConfs,
      logger,
      metricsAddress: config.metricsAddress,
      extraInfoTimeoutMs: config.extraInfoTimeoutMs,
      settings: config.pluginAttr,
      // User plugins are imported before listening, so a broken module fails the start, not a request.
      plugins: async (host) => {
        const user = await Promise.all(config.pluginPaths.map((p) => loadPluginModule(p, host)));
        return [...builtinPlugins(host), ...user.flat()];
      },
    });
  } catch (err) {
    if (config.logFile) logger.fatal({ err }, `cannot start: ${(err as Error).message}`);
    failStart(err);
  }

  // Handlers first: whoever reads "runner listening" may send SIGTERM at once.
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, drainTimeoutMs: config.drainTimeoutMs }, 'stopping: finishing in-flight RPCs');
    // APISIX kills the runner about 1 s after SIGTERM: exit shortly after the drain whatever happens.
    const hard = setTimeout(() => {
      logger.warn('shutdown did not finish in time (a plugin close hook still running): exiting now');
      process.exit(0);
    }, config.drainTimeoutMs + 200);
    hard.unref();
    // Keep accepting until a newer runner owns the socket path: during `apisix reload` the
    // new runner may start after this one got SIGTERM.
    runner.close({ graceMs: config.drainTimeoutMs, untilHandedOver: true }).then(
      () => {
        logger.info('stopped');
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'error while stopping');
        process.exit(0);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  logger.info(
    {
      socket: config.socketPath,
      confExpireSeconds: config.confExpireSeconds,
      plugins: runner.registry.names(),
      metrics: runner.metricsUrl ?? (config.metricsAddress ? `pending: ${config.metricsAddress} is in use` : undefined),
      version: version(),
      node: process.version,
    },
    'runner listening',
  );
  if (config.socketDefaulted) {
    logger.info(
      { snippet: `ext-plugin:\n  path_for_test: ${config.socketPath}\n` },
      `not started by APISIX (no APISIX_LISTEN_ADDRESS): listening on ${config.socketPath}. ` +
        `To use this runner from APISIX, either put "ext-plugin: cmd: [\\"node\\", \\"${process.argv[1]}\\"]" in APISIX's config.yaml ` +
        `(APISIX then starts it), or, while developing, point APISIX at this socket with "ext-plugin: path_for_test: ${config.socketPath}"`,
    );
  }
}

void main();
