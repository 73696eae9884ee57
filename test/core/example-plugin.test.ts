// The documented example plugin (examples/request-id), tested with the public kit as its author would.
import { describe, expect, it } from 'vitest';
import { runRequest } from 'apisix-ts-plugin-runner/testing';
import requestId from '../../examples/request-id/plugin.js';

describe('the documented example plugin (examples/request-id)', () => {
  it('mints an id, sends it upstream and back', async () => {
    const out = await runRequest(requestId, [{ name: 'request-id' }], { headers: { host: 'example.com' } });
    expect(out.kind).toBe('rewrite');
    if (out.kind !== 'rewrite') return;
    const id = out.headers[0]?.value;
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(out.headers).toEqual([{ name: 'x-request-id', value: id }]);
    expect(out.responseHeaders).toEqual([{ name: 'x-request-id', value: id }]);
  });

  it('keeps an id the client sent: only the response header is added', async () => {
    const out = await runRequest(requestId, [{ name: 'request-id' }], { headers: { 'X-Request-Id': 'abc' } });
    expect(out).toMatchObject({ kind: 'rewrite', headers: [], responseHeaders: [{ name: 'x-request-id', value: 'abc' }] });
  });

  it('with require: true, stops a request without an id with 400', async () => {
    const out = await runRequest(requestId, [{ name: 'request-id', conf: { require: true } }]);
    expect(out).toMatchObject({ kind: 'stop', status: 400 });
    if (out.kind === 'stop') expect(out.body?.toString()).toBe('missing x-request-id\n');
  });

  it('a bad header name leaves the plugin out (fail-open) and the request goes on', async () => {
    const out = await runRequest(requestId, [{ name: 'request-id', conf: { header: 'bad header' } }]);
    expect(out).toMatchObject({ kind: 'none', confProblems: [{ plugin: 'request-id', field: '/header', policy: 'open' }] });
  });
});
