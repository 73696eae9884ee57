/**
 * `apisix reload` with two real runner processes on one socket path (apache/apisix#11347).
 * APISIX's new privileged agent spawns a new runner on the same path
 * (apisix/plugins/ext-plugin/init.lua `setup_runner`) while the old agent SIGTERMs the old
 * runner (`exit_worker`); the two happen in either order. nginx's old workers stop taking
 * new requests and finish the ones they have; the new workers connect to the path.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { lstatSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, listeningUnixSockets, spawnCli, startCli, untilOutput, type CliProcess } from '../harness/cli-process.js';
import { waitUntil } from '../harness/wait.js';
import { ApisixClient } from '../harness/apisix-client.js';
import { GET } from '../harness/test-runner.js';
import { WHOAMI_ROUTE, callsBy, startLoad, type Load } from './load.js';
import { HELD_REPLY, cleanUp, holdCall, tempDir } from './fixtures.js';

const PLUGINS = ['--plugin', join(ROOT, 'test/fixtures/plugins/whoami.mjs'), '--plugin', join(ROOT, 'test/fixtures/plugins/slow-var.mjs')];

afterEach(cleanUp);

const socketIn = (): string => join(tempDir('a6reload-'), 'apisix-1.sock');

/** Which runner a fresh connection to the path reaches (a new APISIX worker's first call). */
async function whoAnswers(socketPath: string): Promise<string> {
  const client = new ApisixClient({ socketPath });
  try {
    const outcome = await client.httpReqCall(WHOAMI_ROUTE, GET);
    if (outcome.kind !== 'stop') throw new Error(`no answer: ${JSON.stringify(outcome)}`);
    return outcome.stop.body!.toString();
  } finally {
    await client.close();
  }
}

/**
 * Once the old runner is gone: the new worker's calls keep being answered by the new runner,
 * no call of either worker failed, the path reaches the new runner, and the new runner, when
 * stopped in turn, removes the socket file it owns.
 */
async function afterOverlap(t: { socketPath: string; a: CliProcess; b: CliProcess; oldWorker: Load; newWorker: Load }): Promise<void> {
  const { socketPath, a, b, oldWorker, newWorker } = t;
  const before = callsBy(newWorker, b.pid);
  await waitUntil(() => callsBy(newWorker, b.pid) >= before + 20, 'callsBy(newWorker, b.pid) >= before + 20', { limitMs: 20000 });
  await newWorker.stop();
  console.log(`[figures] reload overlap: old worker ${callsBy(oldWorker, a.pid)} calls on the old runner, new worker ${callsBy(newWorker, b.pid)} on the new one; failures ${oldWorker.failures.length + newWorker.failures.length}`);
  expect(oldWorker.failures).toEqual([]);
  expect(newWorker.failures).toEqual([]);
  expect(callsBy(newWorker, a.pid)).toBe(0);
  expect(await whoAnswers(socketPath)).toBe(String(b.pid));
  b.child.kill('SIGTERM');
  expect(await b.exited).toBe(0);
  expect(b.output()).toContain('removed the socket file');
  expect(() => lstatSync(socketPath)).toThrow(/ENOENT/);
}

describe('apisix reload: two runners on one socket path', () => {
  it('new runner starts, then the old one gets SIGTERM: the old one finishes its call and leaves the new socket alone', async () => {
    const socketPath = socketIn();
    const env = { APISIX_LISTEN_ADDRESS: `unix:${socketPath}` };
    const a = await startCli(PLUGINS, env);
    const oldWorker = startLoad(socketPath);
    const held = await holdCall(socketPath);
    await waitUntil(() => callsBy(oldWorker, a.pid) >= 20, 'callsBy(oldWorker, a.pid) >= 20', { limitMs: 20000 });

    const b = await startCli(PLUGINS, env);
    expect(b.output()).toContain('took the socket path over from a runner still listening on it');
    const newWorker = startLoad(socketPath);
    await waitUntil(() => callsBy(newWorker, b.pid) >= 20, 'callsBy(newWorker, b.pid) >= 20', { limitMs: 20000 });
    expect(await whoAnswers(socketPath)).toBe(String(b.pid));

    // nginx's old workers take no new requests once reloaded; then the old agent SIGTERMs A.
    await oldWorker.stop();
    expect(listeningUnixSockets(a.pid)).toHaveLength(1);
    a.child.kill('SIGTERM');
    await untilOutput(a, 'stopping: finishing in-flight RPCs');
    // The path is B's: A closes its listener at once, while its held call is still open.
    await untilOutput(a, 'the socket path now belongs to another runner: no longer accepting');
    await waitUntil(() => listeningUnixSockets(a.pid).length === 0, 'listeningUnixSockets(a.pid).length === 0', { limitMs: 3000 });
    expect(a.child.exitCode).toBeNull();
    // The held call was in flight at SIGTERM and is still answered.
    expect(await held.finish()).toMatchObject(HELD_REPLY);
    expect(await a.exited).toBe(0);
    expect(a.output()).toContain('left the socket path alone: it now belongs to another runner');
    expect(a.output()).not.toContain('removed the socket file');

    await afterOverlap({ socketPath, a, b, oldWorker, newWorker });
  });

  it('old runner gets SIGTERM while the new one is starting: calls in the gap are served by the old one, then the new one takes over', async () => {
    const socketPath = socketIn();
    const env = { APISIX_LISTEN_ADDRESS: `unix:${socketPath}` };
    // A long drain, so that the overlap is decided by the new runner's start, not by a clock.
    const a = await startCli([...PLUGINS, '--drain-timeout', '60000'], env);
    const oldWorker = startLoad(socketPath);
    const held = await holdCall(socketPath);
    await waitUntil(() => callsBy(oldWorker, a.pid) >= 20, 'callsBy(oldWorker, a.pid) >= 20', { limitMs: 20000 });

    a.child.kill('SIGTERM');
    await untilOutput(a, 'stopping: finishing in-flight RPCs');
    // No runner has replaced A yet: a new connection (a new worker's call) is still served by A,
    // where refusing it would be a 503 (APISIX does not retry a failed connect).
    expect(await whoAnswers(socketPath)).toBe(String(a.pid));
    expect(listeningUnixSockets(a.pid)).toHaveLength(1);
    const during = callsBy(oldWorker, a.pid);
    await waitUntil(() => callsBy(oldWorker, a.pid) >= during + 20, 'callsBy(oldWorker, a.pid) >= during + 20', { limitMs: 20000 });
    await oldWorker.stop();

    const b = spawnCli(PLUGINS, env);
    await untilOutput(b, '"msg":"runner listening"');
    expect(b.output()).toContain('took the socket path over from a runner still listening on it');
    await untilOutput(a, 'the socket path now belongs to another runner: no longer accepting');
    await waitUntil(() => listeningUnixSockets(a.pid).length === 0, 'listeningUnixSockets(a.pid).length === 0', { limitMs: 3000 });
    const newWorker = startLoad(socketPath);
    await waitUntil(() => callsBy(newWorker, b.pid) >= 20, 'callsBy(newWorker, b.pid) >= 20', { limitMs: 20000 });

    expect(await held.finish()).toMatchObject(HELD_REPLY);
    expect(await a.exited).toBe(0);
    expect(a.output()).toContain('left the socket path alone: it now belongs to another runner');

    await afterOverlap({ socketPath, a, b, oldWorker, newWorker });
  });
});
