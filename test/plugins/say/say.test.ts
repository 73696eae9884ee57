// The built-in `say` plugin, tested with the public kit (apisix-ts-plugin-runner/testing).
import { afterEach, describe, expect, it } from 'vitest';
import { runRequest, startTestRunner, type TestRunner } from 'apisix-ts-plugin-runner/testing';
import { createSayPlugin } from '../../../src/plugins/say/index.js';

const say = createSayPlugin();

describe('say (in-process)', () => {
  it('stops the request with the configured status, headers and body', async () => {
    const out = await runRequest(say, [{ name: 'say', conf: { body: 'hello', status: 418, headers: { 'x-a': '1' } } }]);
    expect(out).toMatchObject({ kind: 'stop', status: 418, asked: [] });
    if (out.kind !== 'stop') return;
    expect(out.headers).toEqual([{ name: 'x-resp-a6-runner', value: 'TypeScript' }, { name: 'x-a', value: '1' }]);
    expect(out.body?.toString()).toBe('hello');
  });

  it('status defaults to 200; an empty body lets the request go on unchanged', async () => {
    expect(await runRequest(say, [{ name: 'say', conf: { body: 'x' } }])).toMatchObject({ kind: 'stop', status: 200 });
    expect(await runRequest(say, [{ name: 'say', conf: { body: '' } }])).toMatchObject({ kind: 'none' });
  });

  it('rejects a conf without body or with a status out of range, naming the field', async () => {
    const missing = await runRequest(say, [{ name: 'say', conf: {} }]);
    expect(missing).toMatchObject({ kind: 'error', code: 'BAD_REQUEST' });
    expect(missing.confProblems).toMatchObject([{ plugin: 'say', field: '/body', policy: 'closed' }]);
    const status = await runRequest(say, [{ name: 'say', conf: { body: 'x', status: 99 } }]);
    expect(status.confProblems).toMatchObject([{ field: '/status' }]);
    expect(status.kind === 'error' && status.message).toContain('/status');
  });
});

describe('say (a real runner over its socket)', () => {
  let env: TestRunner | undefined;
  afterEach(async () => {
    await env?.close();
    env = undefined;
  });

  it('answers two calls of the same route with the same Stop, each under its own call', async () => {
    env = await startTestRunner({ plugins: [say] });
    const conf = [{ name: 'say', conf: { body: 'hi', status: 201 } }];
    const first = await env.client.request(conf);
    const second = await env.client.request(conf, { path: '/other' });
    for (const out of [first, second]) {
      expect(out).toMatchObject({ kind: 'stop', status: 201 });
      if (out.kind === 'stop') expect(out.body?.toString()).toBe('hi');
    }
  });
});
