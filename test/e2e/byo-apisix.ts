/**
 * Bring-your-own APISIX: the settings that point the e2e suite at an APISIX the user runs (no
 * Docker), and the runner the suite starts itself on APISIX's `ext-plugin.path_for_test` socket.
 * APISIX does not start or restart a runner given by path_for_test, so after `runner-killed`
 * the suite starts it again 3 s later, as APISIX's privileged agent would
 * (apisix/plugins/ext-plugin/init.lua, `setup_runner`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { dirname, isAbsolute } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RawConnection } from '../harness/raw-connection.js';
import { waitUntil } from '../harness/wait.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

/** Where the user's APISIX is and what the suite may write. */
export interface ByoApisix {
  /** APISIX's HTTP listener, e.g. `http://127.0.0.1:9080`. */
  readonly gatewayUrl: string;
  /** APISIX's `ext-plugin.path_for_test`: the suite's runner listens there. */
  readonly socketPath: string;
  /** APISIX's standalone `conf/apisix.yaml`: the suite writes its routes there. */
  readonly routesPath: string;
}

export const BYO_VARIABLES = ['APISIX_E2E_GATEWAY', 'APISIX_E2E_SOCKET', 'APISIX_E2E_ROUTES'] as const;

/** How to turn the real-APISIX suite on (printed when it skips). */
export const BYO_HINT = `set ${BYO_VARIABLES.join(', ')} to run against your own APISIX (docs/testing.md), or start a Docker engine`;

/**
 * Reads the bring-your-own settings: undefined when none is set, an Error naming what is wrong
 * when some are missing or invalid (a half-configured run must not silently skip).
 */
export function byoFromEnv(env: Readonly<Record<string, string | undefined>>): ByoApisix | undefined {
  const set = BYO_VARIABLES.filter((v) => env[v] !== undefined && env[v] !== '');
  if (set.length === 0) return undefined;
  const missing = BYO_VARIABLES.filter((v) => !set.includes(v));
  if (missing.length > 0) throw new Error(`bring-your-own APISIX needs ${BYO_VARIABLES.join(', ')}; missing: ${missing.join(', ')}`);
  const gatewayUrl = env['APISIX_E2E_GATEWAY']!;
  let url: URL;
  try {
    url = new URL(gatewayUrl);
  } catch {
    throw new Error(`APISIX_E2E_GATEWAY is not a URL: ${gatewayUrl}`);
  }
  if (url.protocol !== 'http:') throw new Error(`APISIX_E2E_GATEWAY must be an http:// URL, got ${gatewayUrl}`);
  if (url.pathname !== '/' || url.search !== '') throw new Error(`APISIX_E2E_GATEWAY must be an origin without path or query, got ${gatewayUrl}`);
  const socketPath = env['APISIX_E2E_SOCKET']!;
  const routesPath = env['APISIX_E2E_ROUTES']!;
  for (const [name, path] of [['APISIX_E2E_SOCKET', socketPath], ['APISIX_E2E_ROUTES', routesPath]] as const) {
    if (!isAbsolute(path)) throw new Error(`${name} must be an absolute path, got ${path}`);
    if (!existsSync(dirname(path))) throw new Error(`${name}: directory ${dirname(path)} does not exist`);
  }
  return { gatewayUrl: url.origin, socketPath, routesPath };
}

/** A free TCP port on 127.0.0.1 (for the runner's metrics endpoint). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface RunnerProcessOptions {
  readonly socketPath: string;
  readonly metricsPort: number;
  /** Delay before the runner is started again after `kill` (APISIX: 3 s). */
  readonly restartDelayMs?: number;
}

/**
 * The runner CLI (through tsx, with the e2e test plugins) as a child process on a socket, killed
 * and restarted the way APISIX's privileged agent does it.
 */
export class RunnerProcess {
  private child: ChildProcess | undefined;
  private restart: Promise<void> | undefined;
  private closed = false;
  /** How many times the process was started. */
  starts = 0;

  constructor(private readonly options: RunnerProcessOptions) {}

  get metricsUrl(): string {
    return `http://127.0.0.1:${this.options.metricsPort}/metrics`;
  }

  /** Starts the runner and resolves once its socket accepts a connection (bounded). */
  async start(): Promise<void> {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'src/cli.ts', '--socket', this.options.socketPath, '--log-level', 'warn',
        '--plugin', 'test/harness/e2e-plugins.mjs', '--metrics-address', `127.0.0.1:${this.options.metricsPort}`],
      { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    this.child = child;
    this.starts++;
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4000); });
    const accepting = async (): Promise<boolean> => {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`runner exited during start: ${stderr}`);
      try {
        const c = await RawConnection.connect(this.options.socketPath, 500);
        c.close();
        return true;
      } catch {
        return false;
      }
    };
    try {
      await waitUntil(accepting, `runner socket ${this.options.socketPath} to accept`, { limitMs: 30_000, intervalMs: 50 });
    } catch (err) {
      throw new Error(`${(err as Error).message}: ${stderr}`, { cause: err });
    }
  }

  /** SIGKILLs the runner; it is started again `restartDelayMs` later (unless closed first). */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) throw new Error('no runner to kill');
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    await exited;
    this.restart = new Promise<void>((resolve) => setTimeout(resolve, this.options.restartDelayMs ?? 3000)).then(() => (this.closed ? undefined : this.start()));
  }

  /** Resolves once a pending restart is done (rejects if it failed). */
  async restarted(): Promise<void> {
    await this.restart;
  }

  /** Stops the runner (SIGTERM, then SIGKILL after 5 s), waiting for a pending restart first. */
  async close(): Promise<void> {
    this.closed = true;
    await this.restart?.catch(() => undefined);
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}
