/** What the lifecycle tests share: temp folders removed after each test, and a call held in flight. */
import { expect } from 'vitest';
import { ApisixClient, RawConnection } from '../harness/apisix-client.js';
import { RPC, decodeRunnerFrame, encodeExtraInfoResp, encodeHttpReqCallReq, type RunnerReply } from '../harness/apisix-codec.js';
import { killAllCli } from '../harness/cli-process.js';
import { tempDirs } from '../harness/temp-dir.js';

const dirs = tempDirs();

/** A new temp folder, removed by `cleanUp`. */
export function tempDir(prefix = 'a6life-'): string {
  return dirs.make(prefix);
}

/** afterEach: kills the CLI children still running and removes the temp folders. */
export function cleanUp(): void {
  killAllCli();
  dirs.removeAll();
}

/** A slow-var call (test/fixtures/plugins/slow-var.mjs) whose ExtraInfo question stays unanswered until `finish`. */
export interface HeldCall {
  readonly conn: RawConnection;
  /** Answers the question and returns the runner's final reply. */
  finish(): Promise<RunnerReply>;
}

export async function holdCall(socketPath: string): Promise<HeldCall> {
  const client = new ApisixClient({ socketPath });
  const token = await client.prepareConf('held', [{ name: 'slow-var', value: '{"var":"remote_addr"}' }]);
  await client.close();
  const conn = await RawConnection.connect(socketPath);
  await conn.send(RPC.HTTP_REQ_CALL, encodeHttpReqCallReq({ id: 9, confToken: token, srcIp: new Uint8Array([1, 2, 3, 4]), method: 'GET', path: '/', args: [], headers: [] }));
  const question = await conn.readFrame(10_000);
  expect(decodeRunnerFrame(question.type, question.payload)).toMatchObject({ type: 'extraInfo', question: { kind: 'var', name: 'remote_addr' } });
  return {
    conn,
    async finish() {
      await conn.send(RPC.EXTRA_INFO, encodeExtraInfoResp('1.2.3.4'));
      const reply = await conn.readFrame(10_000);
      conn.close();
      return decodeRunnerFrame(reply.type, reply.payload);
    },
  };
}

/** The reply of a held call once answered. */
export const HELD_REPLY = { type: 'reqCall', action: { kind: 'rewrite', rewrite: { respHeaders: [{ name: 'x-var', value: '1.2.3.4' }] } } };
