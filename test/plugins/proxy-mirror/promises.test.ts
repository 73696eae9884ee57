/**
 * proxy-mirror promises from README.md and docs/proxy-mirror.md, over a real Unix socket:
 * unknown conf fields are accepted and logged once (at PrepareConf, not per request), and
 * nothing is added to a request that is not sampled (no ExtraInfo round trip, no rewrite).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RecordingTarget, call, expectOk, headerValues, mirrorRoute, startMirrorRunner, type MirrorRunner } from './fixtures.js';
import { waitUntil } from '../../harness/wait.js';

let target: RecordingTarget;
let mr: MirrorRunner;
let draw = 0;

beforeAll(async () => {
  target = await RecordingTarget.start();
  mr = await startMirrorRunner({ random: () => draw });
});
afterAll(async () => {
  await mr.close();
  await target.close();
});

describe('proxy-mirror promises', () => {
  it('unknown fields are accepted (the route mirrors) and logged once, at PrepareConf, naming them', async () => {
    const key = 'route#unknown#ext-plugin-pre-req#1';
    const route = mirrorRoute(key, { host: target.url, path: '/unknown-fields', colour: 'red', sample_ratoi: 0.5 });
    for (let i = 0; i < 5; i++) expect(expectOk(await mr.client.httpReqCall(route, call())).kind).toBe('none');
    await waitUntil(() => target.received.filter((r) => r.url === '/unknown-fields').length === 5, '5 copies');
    const warnings = mr.logs.filter((l) => l['route'] === key && /unknown conf fields ignored/.test(String(l['msg'])));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ level: 40, fields: ['colour', 'sample_ratoi'], index: 0, plugin: 'proxy-mirror' });
    // PrepareConf was sent once: the client cached the token; a new version of the route logs again.
    expect(mr.client.stats.prepareConfSent).toBe(1);
    expectOk(await mr.client.httpReqCall({ ...route, key: 'route#unknown#ext-plugin-pre-req#2' }, call()));
    expect(mr.logs.filter((l) => /unknown conf fields ignored/.test(String(l['msg'])))).toHaveLength(2);
  });

  it('a conf without unknown fields logs no warning', async () => {
    const key = 'route#known#ext-plugin-pre-req#1';
    expectOk(await mr.client.httpReqCall(mirrorRoute(key, { host: target.url, path: '/known' }), call()));
    expect(mr.logs.filter((l) => l['route'] === key && Number(l['level']) >= 40)).toEqual([]);
  });

  it('nothing is added to a request that is not sampled: no ExtraInfo question, no rewrite, no correlation id', async () => {
    const route = mirrorRoute('route#unsampled#ext-plugin-pre-req#1', {
      // query "raw" reads the query from APISIX, so a sampled request shows both round trips.
      host: target.url, sample_ratio: 0.5, correlation_header: 'x-request-id', path: '/sampled-only', query: 'raw',
    });
    // Args and a body would each cost a round trip if the request were copied.
    const req = call({ method: 'POST', args: [{ name: 'a', value: '1' }], headers: [{ name: 'host', value: 'h' }, { name: 'content-length', value: '3' }], body: 'abc', vars: { args: 'a=1' } });
    draw = 0.9;
    const unsampled = expectOk(await mr.client.httpReqCall(route, req));
    expect(unsampled.kind).toBe('none');
    expect(unsampled.extraInfoAsked).toEqual([]);
    // The cause: the sampler said no (counted in the call, before the reply).
    expect(await mr.metric('apisix_runner_mirror_skipped_total', { target: target.url, reason: 'not_sampled' })).toBe(1);
    // The same request, sampled: the round trips and the correlation id show what was avoided.
    draw = 0.1;
    const sampled = expectOk(await mr.client.httpReqCall(route, req));
    expect(sampled.extraInfoAsked).toEqual([{ kind: 'reqBody' }, { kind: 'var', name: 'args' }]);
    expect(sampled.kind).toBe('rewrite');
    const id = sampled.kind === 'rewrite' ? sampled.rewrite.headers?.find((h) => h.name === 'x-request-id')?.value : undefined;
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    await waitUntil(() => target.received.some((r) => r.url.startsWith('/sampled-only')), 'the sampled copy');
    const copies = target.received;
    const copy = copies.find((r) => r.url.startsWith('/sampled-only'))!;
    expect(copy.url).toBe('/sampled-only?a=1');
    expect(headerValues(copy, 'x-request-id')).toEqual([id]);
    expect(copy.body.toString()).toBe('abc');
    expect(copies.filter((r) => r.url.startsWith('/sampled-only'))).toHaveLength(1);
  });
});
