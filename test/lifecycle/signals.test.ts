/** SIGHUP and log rotation, log-file and startup errors, and a metrics port still in use, with real runner processes. */
import { afterEach, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { spawnCli, startCli, untilOutput, type CliProcess } from '../harness/cli-process.js';
import { waitUntil } from '../harness/wait.js';
import { ApisixClient } from '../harness/apisix-client.js';
import { GET } from '../harness/test-runner.js';
import { cleanUp, tempDir as makeTempDir } from './fixtures.js';

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
  cleanUp();
});

const tempDir = (): string => makeTempDir('a6sig-');

function read(path: string): string {
  return existsSync(path) ? readFileSync(path, 'utf8') : '';
}

async function sayHi(socketPath: string): Promise<string> {
  const client = new ApisixClient({ socketPath });
  try {
    const outcome = await client.httpReqCall({ key: 'say', conf: [{ name: 'say', value: '{"body":"hi"}' }] }, GET);
    return outcome.kind === 'stop' ? String(outcome.stop.body) : outcome.kind;
  } finally {
    await client.close();
  }
}

/** Exactly one line of text on the process's output, the fatal message. */
function singleLine(p: CliProcess): string {
  const lines = p.output().trim().split('\n');
  expect(lines).toHaveLength(1);
  return lines[0]!;
}

describe('signals and logs', () => {
  it('SIGHUP does not stop the runner: after logrotate renames the file, the next lines land in a new file at the path', async () => {
    const dir = tempDir();
    const socketPath = join(dir, 'r.sock');
    const log = join(dir, 'runner.log');
    // The runner writes to the file, not stdout: wait on the file.
    const s = spawnCli(['--log-file', log], { APISIX_LISTEN_ADDRESS: `unix:${socketPath}` });
    await waitUntil(() => read(log).includes('"msg":"runner listening"'), 'read(log).includes(\'"msg":"runner listening"\')', { limitMs: 20000 });
    // What logrotate does (docs/deploy.md): rename, then `postrotate kill -HUP`.
    renameSync(log, `${log}.1`);
    s.child.kill('SIGHUP');
    await waitUntil(() => read(log).includes('log file reopened (SIGHUP)'), 'read(log).includes(\'log file reopened (SIGHUP)\')', { limitMs: 20000 });
    expect(s.child.exitCode).toBeNull();
    expect(await sayHi(socketPath)).toBe('hi');
    s.child.kill('SIGTERM');
    expect(await s.exited).toBe(0);
    expect(read(log)).toContain('stopping: finishing in-flight RPCs');
    expect(read(`${log}.1`)).toContain('runner listening');
    expect(read(`${log}.1`)).not.toContain('stopping');
  });

  it('a --log-file that cannot be opened stops the start with one line on stderr and exit 2', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'file'), '');
    const s = spawnCli(['--log-file', join(dir, 'file', 'runner.log')], { APISIX_LISTEN_ADDRESS: `unix:${join(dir, 'r.sock')}` });
    expect(await s.exited).toBe(2);
    expect(singleLine(s)).toMatch(/^apisix-ts-plugin-runner: cannot start: cannot open log file .*runner\.log: .*; fix --log-file/);
    expect(existsSync(join(dir, 'r.sock'))).toBe(false);
  });

  it('a fatal start error reaches stderr even when logs go to a file', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'taken'));
    const s = spawnCli(['--log-file', join(dir, 'runner.log')], { APISIX_LISTEN_ADDRESS: `unix:${join(dir, 'taken')}` });
    expect(await s.exited).toBe(2);
    expect(singleLine(s)).toMatch(/^apisix-ts-plugin-runner: cannot start: refusing to listen on .*taken: it exists and is a directory/);
    expect(read(join(dir, 'runner.log'))).toContain('refusing to listen');
  });

  it('a metrics address in use does not stop the runner: RPCs are served, a warning is logged, and metrics come up once the port is free', async () => {
    const dir = tempDir();
    const socketPath = join(dir, 'r.sock');
    const occupier = createServer();
    servers.push(occupier);
    await new Promise<void>((r) => occupier.listen(0, '127.0.0.1', r));
    const port = (occupier.address() as { port: number }).port;
    const s = await startCli(['--metrics-address', `127.0.0.1:${port}`], { APISIX_LISTEN_ADDRESS: `unix:${socketPath}` });
    expect(s.output()).toContain(`metrics address 127.0.0.1:${port} is in use`);
    expect(s.output()).toContain(`"metrics":"pending: 127.0.0.1:${port} is in use"`);
    expect(await sayHi(socketPath)).toBe('hi');
    await new Promise((r) => occupier.close(r));
    await untilOutput(s, 'metrics listener bound');
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(text).toMatch(/apisix_runner_rpc_total\{type="http_req_call",outcome="stop"\} 1/);
    s.child.kill('SIGTERM');
    expect(await s.exited).toBe(0);
  });
});
