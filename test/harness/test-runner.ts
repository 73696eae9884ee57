import pino from 'pino';
import { startRunner, type Runner, type RunnerOptions } from '../../src/runner.js';
import { ApisixClient } from './apisix-client.js';
import { createTempDir } from './temp-dir.js';

/** A runner on a fresh socket in a temp dir, an APISIX-like client, and a cleanup. */
export async function runnerWithClient(options: Partial<RunnerOptions> = {}): Promise<{
  runner: Runner;
  client: ApisixClient;
  socketPath: string;
  logs: Array<Record<string, unknown>>;
  close: () => Promise<void>;
}> {
  const dir = createTempDir();
  const socketPath = dir.file('r.sock');
  const logs: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => logs.push(JSON.parse(line) as Record<string, unknown>) });
  const runner = await startRunner({ socketPath, logger, ...options });
  const client = new ApisixClient({ socketPath, readTimeoutMs: 5000 });
  return {
    runner,
    client,
    socketPath,
    logs,
    close: async () => {
      await client.close();
      await runner.close();
      dir.remove();
    },
  };
}

export const GET = { method: 'GET', path: '/get', args: [{ name: 'x', value: '1' }], headers: [{ name: 'host', value: 'example.com' }], srcIp: '10.0.0.1' } as const;
