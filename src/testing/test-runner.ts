/**
 * Real runners for integration tests: in this process (the package's startRunner on a
 * temporary socket) or as a child process started the way APISIX starts it (the CLI with
 * `--plugin` files), each with an ApisixTestClient connected over the real Unix socket.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import type { Plugin, PluginHost } from '../plugin-api/index.js';
import { startRunner, type Runner, type RunnerOptions } from '../runner.js';
import { ApisixTestClient, type ApisixTestClientOptions } from './apisix-test-client.js';

/** A parsed JSON log line of the runner. */
export type LogLine = Readonly<Record<string, unknown>>;

export interface TestRunnerOptions extends ApisixTestClientOptions {
  /** The plugins (yours and, if you want them, `builtinPlugins(host)`); a list or a builder. */
  readonly plugins: readonly Plugin<unknown>[] | ((host: PluginHost) => readonly Plugin<unknown>[] | Promise<readonly Plugin<unknown>[]>);
  /** `plugin_attr` settings (`host.settings(name)`). */
  readonly settings?: RunnerOptions['settings'];
  /** Log level of the captured logs. Default 'debug'. */
  readonly logLevel?: string;
}

export interface TestRunner {
  readonly runner: Runner;
  readonly client: ApisixTestClient;
  readonly socketPath: string;
  /** Every log line so far. */
  logs(): readonly LogLine[];
  /** Closes the client and the runner and removes the temporary folder. */
  close(): Promise<void>;
}

/** Starts a runner in this process on a fresh socket, with a connected APISIX-like client. */
export async function startTestRunner(options: TestRunnerOptions): Promise<TestRunner> {
  const dir = mkdtempSync(join(tmpdir(), 'a6-test-'));
  const socketPath = join(dir, 'runner.sock');
  const lines: LogLine[] = [];
  const logger = pino({ level: options.logLevel ?? 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) });
  const plugins = options.plugins;
  let runner: Runner;
  try {
    runner = await startRunner({ socketPath, logger, settings: options.settings, plugins: typeof plugins === 'function' ? plugins : () => plugins });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const client = await ApisixTestClient.connect(socketPath, options).catch(async (err: unknown) => {
    await runner.close();
    throw err;
  });
  return {
    runner,
    client,
    socketPath,
    logs: () => lines,
    close: async () => {
      await client.close();
      await runner.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface RunnerProcessOptions extends ApisixTestClientOptions {
  /** Plugin module files, as given to `--plugin`. */
  readonly plugins: readonly string[];
  /** The runner's cli.js to start; default: this package's own. */
  readonly cli?: string;
  /** More CLI flags. */
  readonly args?: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  /** How long to wait for "runner listening". Default 20 s. */
  readonly startTimeoutMs?: number;
}

export interface RunnerProcess {
  readonly pid: number;
  readonly client: ApisixTestClient;
  readonly socketPath: string;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** The JSON log lines so far. */
  logs(): readonly LogLine[];
  /** SIGTERM (SIGKILL after 5 s), then removes the temporary folder; resolves with the exit code. */
  stop(): Promise<number | null>;
}

/** The CLI of this package; the TypeScript source (through tsx) when running from a checkout. */
function cliCommand(): string[] {
  const built = fileURLToPath(new URL('../cli.js', import.meta.url));
  if (existsSync(built)) return [built];
  return ['--import', 'tsx', fileURLToPath(new URL('../cli.ts', import.meta.url))];
}

/** Thrown when the runner process exits or stays silent instead of listening. */
export class RunnerStartError extends Error {
  readonly code = 'A6_ERR_TEST_RUNNER_START';
  constructor(message: string, readonly exitCode: number | null, readonly output: string) {
    super(`${message}:\n${output}`);
  }
}

/** Starts the runner CLI in a child process with `--plugin` files and connects a client to it. */
export async function startRunnerProcess(options: RunnerProcessOptions): Promise<RunnerProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'a6-proc-'));
  const socketPath = join(dir, 'runner.sock');
  const args = [...(options.cli ? [options.cli] : cliCommand()), '--socket', socketPath, ...options.plugins.flatMap((p) => ['--plugin', p]), ...(options.args ?? [])];
  const child = spawn(process.execPath, args, { env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const logs = (): LogLine[] =>
    out.split('\n').flatMap((line) => {
      if (!line.startsWith('{')) return [];
      try {
        return [JSON.parse(line) as LogLine];
      } catch {
        return [];
      }
    });
  const stop = async (): Promise<number | null> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    const code = await exited;
    clearTimeout(timer);
    rmSync(dir, { recursive: true, force: true });
    return code;
  };

  const deadline = Date.now() + (options.startTimeoutMs ?? 20_000);
  while (!logs().some((l) => l['msg'] === 'runner listening')) {
    if (child.exitCode !== null || child.signalCode !== null) {
      const code = await exited;
      rmSync(dir, { recursive: true, force: true });
      throw new RunnerStartError(`the runner exited with code ${code} before listening`, code, out);
    }
    if (Date.now() > deadline) {
      await stop();
      throw new RunnerStartError('the runner did not listen in time', null, out);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  let client: ApisixTestClient;
  try {
    client = await ApisixTestClient.connect(socketPath, options);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    pid: child.pid!,
    client,
    socketPath,
    output: () => out,
    logs,
    stop: async () => {
      await client.close();
      return stop();
    },
  };
}
