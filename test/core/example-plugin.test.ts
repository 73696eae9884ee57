import { afterEach, describe, expect, it } from 'vitest';
import type { Plugin } from '../../src/plugin-api/index.js';
import requestId from '../../examples/request-id/plugin.js';
import { GET, runnerWithClient } from './test-runner.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

describe('the documented example plugin (examples/request-id)', () => {
  it('mints an id, sends it upstream and back; keeps a client id; can require one', async () => {
    const env = await runnerWithClient({ plugins: () => [requestId as Plugin<unknown>] });
    cleanups.push(env.close);
    const minted = await env.client.httpReqCall({ key: 'a', conf: [{ name: 'request-id', value: '' }] }, GET);
    expect(minted.kind).toBe('rewrite');
    if (minted.kind !== 'rewrite') return;
    const id = minted.rewrite.headers?.[0]?.value;
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(minted.rewrite.respHeaders).toEqual([{ name: 'x-request-id', value: id }]);

    const kept = await env.client.httpReqCall({ key: 'a', conf: [{ name: 'request-id', value: '' }] }, { ...GET, headers: [{ name: 'x-request-id', value: 'abc' }] });
    expect(kept).toMatchObject({ kind: 'rewrite', rewrite: { respHeaders: [{ name: 'x-request-id', value: 'abc' }] } });
    if (kept.kind === 'rewrite') expect(kept.rewrite.headers).toBeUndefined();

    const required = await env.client.httpReqCall({ key: 'b', conf: [{ name: 'request-id', value: '{"require":true}' }] }, GET);
    expect(required).toMatchObject({ kind: 'stop', stop: { status: 400 } });
  });
});
