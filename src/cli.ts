#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { HELP, resolveConfig } from './config.js';
import { createLogger } from './observability/logger.js';
import { startRunner, type Runner } from './runner.js';
import { builtinPlugins } from './plugins/index.js';
import { PluginModuleError, loadPluginModule } from './plugin-loader.js';
import { runInit } from './scaffold/init-command.js';

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function main(): Promise<void> {
  if (process.argv[2] === 'init') {
    process.exit(await runInit(process.argv.slice(3)));
  }
  let command;
  try {
    command = resolveConfig(process.argv.slice(2), process.env);
  } catch (err) {
    process.stderr.write(`apisix-ts-plugin-runner: ${(err as Error).message}\n`);
    process.exit(2);
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
  const logger = createLogger({ level: config.logLevel, file: config.logFile });

  process.on('unhandledRejection', (reason) => logger.error({ err: reason }, 'unhandled promise rejection (a bug: please report it)'));
  process.on('uncaughtException', (err) => {
    // State may be corrupt: exit and let APISIX respawn the runner (it waits 3 s).
    logger.fatal({ err }, 'uncaught exception (a bug: please report it); exiting so that APISIX restarts the runner');
    process.exit(1);
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
    if (err instanceof PluginModuleError) {
      process.stderr.write(`apisix-ts-plugin-runner: ${err.message}\n`);
      process.exit(2);
    }
    logger.fatal({ err }, `cannot start: ${(err as Error).message}`);
    process.exit(1);
  }

  logger.info(
    {
      socket: config.socketPath,
      confExpireSeconds: config.confExpireSeconds,
      plugins: runner.registry.names(),
      metrics: runner.metricsUrl,
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

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping: finishing in-flight RPCs');
    // APISIX kills the runner about 1 s after SIGTERM: exit before that whatever happens.
    const hard = setTimeout(() => process.exit(0), 900);
    hard.unref();
    runner.close().then(
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
}

void main();
