// The public test kit itself: outcomes of post-resp plugins, failures, factories, and the
// socket client agreeing with the in-process run.
import { afterEach, describe, expect, it } from 'vitest';
import { definePlugin, type PluginHost } from 'apisix-ts-plugin-runner';
import { runRequest, runResponse, startTestRunner, MissingRequestDataError, type TestRunner } from 'apisix-ts-plugin-runner/testing';

const wrapper = definePlugin({
  name: 'wrapper',
  async onResponse(_conf, res) {
    const body = await res.body();
    res.setStatus(res.upstreamStatus === 200 ? 203 : res.upstreamStatus);
    res.setHeader('x-len', String(body?.length ?? -1));
    res.deleteHeader('server');
    res.setBody(`[${body?.toString() ?? ''}]`);
  },
});

const observer = definePlugin({ name: 'observer', onResponse() {} });

const boom = definePlugin({
  name: 'boom',
  failurePolicy: 'closed',
  onRequest() {
    throw new Error('kaput');
  },
});

const upstream = { status: 200, headers: { 'Content-Type': 'text/plain', Server: 'up' }, body: 'abc' };

describe('in-process runs', () => {
  it('post-resp: the client gets the new status, the upstream headers minus removed plus set, and the new body', async () => {
    const out = await runResponse(wrapper, [{ name: 'wrapper' }], upstream);
    expect(out).toMatchObject({ kind: 'response', status: 203, asked: [{ kind: 'respBody' }] });
    if (out.kind !== 'response') return;
    expect(out.headers).toEqual(expect.arrayContaining([{ name: 'Content-Type', value: 'text/plain' }, { name: 'x-len', value: '3' }]));
    expect(out.headers?.some((h) => h.name.toLowerCase() === 'server')).toBe(false);
    expect(out.body?.toString()).toBe('[abc]');
  });

  it('post-resp with no change keeps the upstream status and body, and sends its headers as they were', async () => {
    expect(await runResponse(observer, [{ name: 'observer' }], upstream)).toMatchObject({
      kind: 'response',
      status: undefined,
      headers: [{ name: 'Content-Type', value: 'text/plain' }, { name: 'Server', value: 'up' }],
      body: undefined,
    });
  });

  it('post-resp: a body the test does not give is an error naming it', async () => {
    await expect(runResponse(wrapper, [{ name: 'wrapper' }], { status: 200 })).rejects.toThrow(MissingRequestDataError);
    await expect(runResponse(wrapper, [{ name: 'wrapper' }], { status: 200 })).rejects.toThrow(/the response body/);
  });

  it('a fail-closed plugin that throws gives the error APISIX turns into 503', async () => {
    expect(await runRequest(boom, [{ name: 'boom' }])).toMatchObject({ kind: 'error', code: 'SERVICE_UNAVAILABLE', message: 'plugin "boom" failed: kaput' });
  });

  it('an unknown plugin name in the conf is a BAD_REQUEST naming it', async () => {
    const out = await runRequest(boom, [{ name: 'nope' }]);
    expect(out).toMatchObject({ kind: 'error', code: 'BAD_REQUEST' });
    if (out.kind === 'error') expect(out.message).toContain('unknown plugin "nope"');
  });

  it('a factory gets a host with the given settings, and its close tasks run', async () => {
    let closed = 0;
    const factory = (host: PluginHost) => {
      host.onClose(() => void closed++);
      const greeting = (host.settings('greeter') as { text: string }).text;
      return [definePlugin({ name: 'greeter', onRequest: (_c, req) => req.stop({ body: greeting }) })];
    };
    const out = await runRequest(factory, [{ name: 'greeter' }], {}, { settings: { greeter: { text: 'hey' } } });
    expect(out.kind === 'stop' && out.body?.toString()).toBe('hey');
    expect(closed).toBe(1);
  });

  it('reads method, path, args, headers, source IP and body as APISIX sends them', async () => {
    const seen: unknown[] = [];
    const reader = definePlugin({
      name: 'reader',
      async onRequest(_c, req) {
        seen.push(req.method, req.path, req.argValues('tag'), req.arg('flag'), req.header('x-token'), req.srcIp, (await req.body())?.toString());
      },
    });
    const out = await runRequest(reader, [{ name: 'reader' }], {
      method: 'PUT', path: '/a b', args: { tag: ['x', 'y'], flag: null }, headers: { 'X-Token': 't' }, srcIp: '2001:db8::7', body: 'payload',
    });
    expect(out).toMatchObject({ kind: 'none', asked: [{ kind: 'reqBody' }] });
    expect(seen).toEqual(['PUT', '/a b', ['x', 'y'], '', 't', '2001:db8::7', 'payload']);
  });
});

describe('over the socket of a real runner', () => {
  let env: TestRunner | undefined;
  afterEach(async () => {
    await env?.close();
    env = undefined;
  });

  it('gives the same outcomes as in-process runs, and the runner logs the failure', async () => {
    env = await startTestRunner({ plugins: [wrapper, boom] });
    const overSocket = await env.client.response([{ name: 'wrapper' }], upstream);
    const { confProblems: _, ...inProcess } = await runResponse(wrapper, [{ name: 'wrapper' }], upstream);
    expect(overSocket).toEqual(inProcess);
    expect(await env.client.request([{ name: 'boom' }])).toMatchObject({ kind: 'error', code: 'SERVICE_UNAVAILABLE' });
    expect(env.logs().some((l) => l['plugin'] === 'boom' && String(l['msg']).includes('fail-closed'))).toBe(true);
  });
});
