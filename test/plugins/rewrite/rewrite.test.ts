// The built-in `rewrite` plugin, tested with the public kit (apisix-ts-plugin-runner/testing).
import { afterEach, describe, expect, it } from 'vitest';
import { MissingRequestDataError, runRequest, startTestRunner, type TestRunner } from 'apisix-ts-plugin-runner/testing';
import { createRewritePlugin } from '../../../src/plugins/rewrite/index.js';

const rewrite = createRewritePlugin();

describe('rewrite (in-process)', () => {
  it('sends each change: path, headers set and removed, args, body, response headers', async () => {
    const out = await runRequest(
      rewrite,
      [{
        name: 'rewrite',
        conf: {
          path: '/v2/items',
          headers: { set: { 'x-env': 'prod' }, remove: ['cookie'] },
          args: { set: { page: ['1', '2'] }, remove: ['debug'] },
          body: '{"a":1}',
          response_headers: { 'x-served-by': 'ts' },
        },
      }],
      { method: 'POST', path: '/items', args: { debug: null, q: 'x' }, headers: { Cookie: 'a=b', Host: 'example.com' } },
    );
    expect(out).toMatchObject({ kind: 'rewrite', path: '/v2/items', asked: [] });
    if (out.kind !== 'rewrite') return;
    expect(out.headers).toEqual([{ name: 'cookie', value: undefined }, { name: 'x-env', value: 'prod' }]);
    expect(out.args).toEqual([{ name: 'page', value: '1' }, { name: 'page', value: '2' }, { name: 'debug', value: undefined }]);
    expect(out.responseHeaders).toEqual([{ name: 'x-served-by', value: 'ts' }]);
    expect(out.body?.toString()).toBe('{"a":1}');
  });

  it('fills $var templates with ExtraInfo answers, asking each variable once', async () => {
    const conf = [{ name: 'rewrite', conf: { headers: { set: { 'x-client': '$remote_addr:${remote_port}', 'x-again': '$remote_addr' } } } }];
    const out = await runRequest(rewrite, conf, { vars: { remote_addr: '192.0.2.7', remote_port: 5123 } });
    expect(out).toMatchObject({ kind: 'rewrite', headers: [{ name: 'x-client', value: '192.0.2.7:5123' }, { name: 'x-again', value: '192.0.2.7' }] });
    expect(out.asked).toEqual([{ kind: 'var', name: 'remote_addr' }, { kind: 'var', name: 'remote_port' }]);
  });

  it('a variable the test does not give is an error by default, or empty with missing: "undefined"', async () => {
    const conf = [{ name: 'rewrite', conf: { headers: { set: { 'x-client': '$remote_addr' } } } }];
    await expect(runRequest(rewrite, conf)).rejects.toThrow(MissingRequestDataError);
    await expect(runRequest(rewrite, conf)).rejects.toThrow(/var "remote_addr"/);
    const lenient = await runRequest(rewrite, conf, {}, { missing: 'undefined' });
    expect(lenient).toMatchObject({ kind: 'rewrite', headers: [{ name: 'x-client', value: '' }] });
  });

  it('rejects a header both set and removed (ConfError with the field)', async () => {
    const out = await runRequest(rewrite, [{ name: 'rewrite', conf: { headers: { set: { a: '1' }, remove: ['A'] } } }]);
    expect(out).toMatchObject({ kind: 'error', code: 'BAD_REQUEST' });
    expect(out.confProblems).toMatchObject([{ plugin: 'rewrite', field: '/headers/remove', message: '/headers/remove: "A" is both set and removed' }]);
  });
});

describe('rewrite (a real runner over its socket)', () => {
  let env: TestRunner | undefined;
  afterEach(async () => {
    await env?.close();
    env = undefined;
  });

  it('answers the runner\'s ExtraInfo questions from the description and gets the same rewrite as in-process', async () => {
    env = await startTestRunner({ plugins: [rewrite] });
    const conf = [{ name: 'rewrite', conf: { path: '/new', headers: { set: { 'x-real-ip': '$remote_addr' } } } }];
    const request = { path: '/old', vars: { remote_addr: '2001:db8::1' } };
    const overSocket = await env.client.request(conf, request);
    const inProcess = await runRequest(rewrite, conf, request);
    expect(overSocket).toMatchObject({ kind: 'rewrite', path: '/new', headers: [{ name: 'x-real-ip', value: '2001:db8::1' }] });
    const { confProblems, ...sameShape } = inProcess;
    expect(confProblems).toEqual([]);
    expect(overSocket).toEqual(sameShape);
  });
});
