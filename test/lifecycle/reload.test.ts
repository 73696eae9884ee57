/**
 * `apisix reload` with two real runner processes on one socket path (apache/apisix#11347).
 * APISIX's new privileged agent spawns a new runner on the same path
 * (apisix/plugins/ext-plugin/init.lua `setup_runner`) while the old agent SIGTERMs the old
 * runner (`exit_worker`); the two happen in either order. nginx's old workers stop taking
 * new requests and finish the ones they have; the new workers connect to the path.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { lstatSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, killAllCli, spawnCli, startCli, untilOutput, eventually, type CliProcess } from '../reliability/cli-process.js';
import { ApisixClient, RawConnection } from '../harness/apisix-client.js';
import { RPC, decodeRunnerFrame, encodeExtraInfoResp, encodeHttpReqCallReq } from '../harness/apisix-codec.js';
import { GET } from '../core/test-runner.js';
import { WHOAMI_ROUTE, callsBy, startLoad } from './load.js';

const PLUGINS = ['--plugin', join(ROOT, 'test/fixtures/plugins/whoami.mjs'), '--plugin', join(ROOT, 'test/fixtures/plugins/slow-var.mjs')];

const dirs: string[] = [];
afterEach(() => {
  killAllCli();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function socketIn(): string {
  const d = mkdtempSync(join(tmpdir(), 'a6reload-'));
  dirs.push(d);
  return join(d, 'apisix-1.sock');
}

/** A call held open on the old runner: its ExtraInfo question stays unanswered until `finish`. */
async function holdCall(socketPath: string): Promise<{ finish(): Promise<unknown> }> {
  const client = new ApisixClient({ socketPath });
  const token = await client.prepareConf('held', [{ name: 'slow-var', value: '{"var":"remote_addr"}' }]);
  await client.close();
  const conn = await RawConnection.connect(socketPath);
  await conn.send(RPC.HTTP_REQ_CALL, encodeHttpReqCallReq({ id: 9, confToken: token, srcIp: new Uint8Array([1, 2, 3, 4]), method: 'GET', path: '/', args: [], headers: [] }));
  const question = await conn.readFrame(10_000);
  expect(decodeRunnerFrame(question.type, question.payload)).toMatchObject({ type: 'extraInfo' });
  return {
    async finish() {
      await conn.send(RPC.EXTRA_INFO, encodeExtraInfoResp('1.2.3.4'));
      const reply = await conn.readFrame(10_000);
      conn.close();
      return decodeRunnerFrame(reply.type, reply.payload);
    },
  };
}

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

const REWRITTEN = { type: 'reqCall', action: { kind: 'rewrite', rewrite: { respHeaders: [{ name: 'x-var', value: '1.2.3.4' }] } } };

async function stopNewRunner(b: CliProcess, socketPath: string): Promise<void> {
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
    expect(await eventually(() => callsBy(oldWorker, a.pid) >= 20, 2000)).toBe(true);

    const b = await startCli(PLUGINS, env);
    expect(b.output()).toContain('took the socket path over from a runner still listening on it');
    const newWorker = startLoad(socketPath);
    expect(await eventually(() => callsBy(newWorker, b.pid) >= 20, 2000)).toBe(true);
    expect(await whoAnswers(socketPath)).toBe(String(b.pid));

    // nginx's old workers take no new requests once reloaded; then the old agent SIGTERMs A.
    await oldWorker.stop();
    a.child.kill('SIGTERM');
    await untilOutput(a, 'stopping: finishing in-flight RPCs');
    // The held call was in flight at SIGTERM and is still answered.
    expect(await held.finish()).toMatchObject(REWRITTEN);
    expect(await a.exited).toBe(0);
    expect(a.output()).toContain('left the socket path alone: it now belongs to another runner');
    expect(a.output()).not.toContain('removed the socket file');

    const before = callsBy(newWorker, b.pid);
    expect(await eventually(() => callsBy(newWorker, b.pid) >= before + 20, 2000)).toBe(true);
    await newWorker.stop();
    expect(oldWorker.failures).toEqual([]);
    expect(newWorker.failures).toEqual([]);
    expect(callsBy(newWorker, a.pid)).toBe(0);
    expect(await whoAnswers(socketPath)).toBe(String(b.pid));
    await stopNewRunner(b, socketPath);
  });

  it('old runner gets SIGTERM while the new one is starting: calls in the gap are served by the old one, then the new one takes over', async () => {
    const socketPath = socketIn();
    const env = { APISIX_LISTEN_ADDRESS: `unix:${socketPath}` };
    // A long drain, so that the overlap is decided by the new runner's start, not by a clock.
    const a = await startCli([...PLUGINS, '--drain-timeout', '60000'], env);
    const oldWorker = startLoad(socketPath);
    const held = await holdCall(socketPath);
    expect(await eventually(() => callsBy(oldWorker, a.pid) >= 20, 2000)).toBe(true);

    a.child.kill('SIGTERM');
    await untilOutput(a, 'stopping: finishing in-flight RPCs');
    // No runner has replaced A yet: a new connection (a new worker's call) is still served by A,
    // where refusing it would be a 503 (APISIX does not retry a failed connect).
    expect(await whoAnswers(socketPath)).toBe(String(a.pid));
    const during = callsBy(oldWorker, a.pid);
    expect(await eventually(() => callsBy(oldWorker, a.pid) >= during + 20, 2000)).toBe(true);
    await oldWorker.stop();

    const b = spawnCli(PLUGINS, env);
    await untilOutput(b, '"msg":"runner listening"');
    expect(b.output()).toContain('took the socket path over from a runner still listening on it');
    await untilOutput(a, 'the socket path now belongs to another runner: no longer accepting');
    const newWorker = startLoad(socketPath);
    expect(await eventually(() => callsBy(newWorker, b.pid) >= 20, 2000)).toBe(true);

    expect(await held.finish()).toMatchObject(REWRITTEN);
    expect(await a.exited).toBe(0);
    expect(a.output()).toContain('left the socket path alone: it now belongs to another runner');

    const before = callsBy(newWorker, b.pid);
    expect(await eventually(() => callsBy(newWorker, b.pid) >= before + 20, 2000)).toBe(true);
    await newWorker.stop();
    expect(oldWorker.failures).toEqual([]);
    expect(newWorker.failures).toEqual([]);
    expect(callsBy(newWorker, a.pid)).toBe(0);
    expect(await whoAnswers(socketPath)).toBe(String(b.pid));
    await stopNewRunner(b, socketPath);
  });
});
