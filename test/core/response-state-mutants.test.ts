// The post-resp reply (src/server/response-state.ts) as mutation testing read it: each test
// here fails for a mutant that survived `npx stryker run --mutate src/server/response-state.ts`
// (docs/testing.md, "Mutation testing"). The answer frame is read back with the APISIX-side
// codec, as APISIX's ext-plugin init.lua would read it.
import { describe, it, expect } from 'vitest';
import { ResponseState } from '../../src/server/response-state.js';
import type { ExtraInfoQuestion } from '../../src/protocol/messages.js';
import type { TextPair } from '../../src/plugin-api/request.js';
import { decodeFrameBytes } from '../harness/frames.js';

/** A ResponseState whose ExtraInfo questions are recorded and answered from `answers`. */
function recordingState(status: number, headers: TextPair[], answers: Record<string, string> = {}) {
  const asked: ExtraInfoQuestion[] = [];
  const ask = (q: ExtraInfoQuestion): Promise<Buffer | undefined> => {
    asked.push(q);
    const key = q.kind === 'var' ? q.name : q.kind;
    return Promise.resolve(answers[key] === undefined ? undefined : Buffer.from(answers[key]));
  };
  return { state: new ResponseState({ id: 11, status, headers, confToken: 1 }, ask), asked };
}

const lengthOf = (headers: readonly { name: string; value?: string }[]): string | undefined =>
  headers.find((h) => h.name.toLowerCase() === 'content-length')?.value;

describe('ResponseState: what a plugin reads', () => {
  it('id, status (the upstream\'s until set), upstreamStatus', () => {
    const { state } = recordingState(502, []);
    expect([state.id, state.status, state.upstreamStatus]).toEqual([11, 502, 502]);
    state.setStatus(200);
    expect([state.status, state.upstreamStatus]).toEqual([200, 502]);
  });

  it('headerValues: every upstream value in order, replaced by an edit, empty after a delete', () => {
    const { state } = recordingState(200, [{ name: 'Set-Cookie', value: 'a=1' }, { name: 'X-A', value: 'x' }, { name: 'set-cookie', value: 'b=2' }]);
    expect(state.headerValues('set-cookie')).toEqual(['a=1', 'b=2']);
    state.setHeader('SET-COOKIE', 'c=3');
    expect(state.headerValues('Set-Cookie')).toEqual(['c=3']);
    state.deleteHeader('x-a');
    expect(state.headerValues('x-a')).toEqual([]);
  });

  it('var asks a Var question once per name; body asks RespBody (not ReqBody) once', async () => {
    const { state, asked } = recordingState(200, [], { upstream_addr: '10.0.0.9:80', respBody: 'upstream body' });
    expect(await state.var('upstream_addr')).toBe('10.0.0.9:80');
    expect(await state.var('upstream_addr')).toBe('10.0.0.9:80');
    expect((await state.body())?.toString()).toBe('upstream body');
    expect((await state.body())?.toString()).toBe('upstream body');
    expect(asked).toEqual([{ kind: 'var', name: 'upstream_addr' }, { kind: 'respBody' }]);
  });

  it('afterReply collects every task, in order, for the connection to run after the reply', () => {
    const { state } = recordingState(200, []);
    expect(state.afterReplyTasks).toBeUndefined();
    const first = (): void => undefined;
    const second = (): void => undefined;
    state.afterReply(first);
    state.afterReply(second);
    expect(state.afterReplyTasks).toEqual([first, second]);
  });
});

describe('ResponseState: the answer APISIX gets', () => {
  it('encodeReply: a RespCall frame with the call id, the status and headers of toAnswer; outcome "ok" (the metrics label)', () => {
    const { state } = recordingState(200, [{ name: 'X-A', value: '1' }]);
    state.setStatus(201);
    const reply = state.encodeReply();
    expect(reply.outcome).toBe('ok');
    expect(decodeFrameBytes(reply.frame)).toMatchObject({ type: 'respCall', id: 11, status: 201 });
  });

  it('the upstream content-encoding is kept when the body is not replaced', () => {
    const { state } = recordingState(200, [{ name: 'Content-Encoding', value: 'gzip' }, { name: 'Content-Length', value: '20' }]);
    state.setHeader('x-edited', '1');
    expect(state.toAnswer().headers).toContainEqual({ name: 'Content-Encoding', value: 'gzip' });
  });

  it('the upstream content-length is read with the spaces around it trimmed', () => {
    expect(lengthOf(recordingState(200, [{ name: 'Content-Length', value: ' 42 ' }]).state.toAnswer().headers)).toBe('42');
  });

  it('an upstream content-length that is not all digits is not passed on (nginx frames the body itself)', () => {
    for (const bad of ['x42', '42x', '4 2', '-1', '1234567890123456']) {
      expect(lengthOf(recordingState(200, [{ name: 'Content-Length', value: bad }]).state.toAnswer().headers), bad).toBeUndefined();
    }
  });

  it('every hop-by-hop header of the upstream is left out on its own (RFC 9110 §7.6.1, plus proxy-connection)', () => {
    for (const name of ['Connection', 'Keep-Alive', 'Proxy-Connection', 'Transfer-Encoding', 'TE', 'Trailer', 'Upgrade']) {
      const { state } = recordingState(200, [{ name, value: 'v' }, { name: 'X-Kept', value: '1' }]);
      expect(state.toAnswer().headers, name).toEqual([{ name: 'X-Kept', value: '1' }]);
    }
  });

  it('status 100, the first 1xx, carries no content-length either', () => {
    const { state } = recordingState(200, [{ name: 'Content-Length', value: '5' }]);
    state.setStatus(100);
    expect(lengthOf(state.toAnswer().headers)).toBeUndefined();
  });
});
