import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { hashToUnit } from '../../../src/plugins/proxy-mirror/sampler.js';
import { RecordingTarget, call, expectOk, headerValues, mirrorRoute, seededRandom, startMirrorRunner, type MirrorRunner } from './fixtures.js';
import { waitUntil } from '../../harness/wait.js';

let target: RecordingTarget;
let mr: MirrorRunner;
let draws = 0;
let rand = seededRandom(20240611);

beforeAll(async () => {
  target = await RecordingTarget.start();
  mr = await startMirrorRunner({ random: () => { draws++; return rand(); } });
});
afterAll(async () => {
  await mr.close();
  await target.close();
});

const sentTo = (outcome: string): Promise<number> => mr.metric('apisix_runner_mirror_requests_total', { target: target.url, outcome });

describe('proxy-mirror sampling through the runner', () => {
  it('mirrors a sample_ratio share of 2,000 requests (seeded random, binomial bounds)', async () => {
    const N = 2000;
    const ratio = 0.3;
    rand = seededRandom(7);
    draws = 0;
    const route = mirrorRoute('route#s1#ext-plugin-pre-req#1', { host: target.url, sample_ratio: ratio, path: '/sampled' });
    for (let i = 0; i < N; i++) expectOk(await mr.client.httpReqCall(route, call({ path: `/r${i}` })));
    expect(draws).toBe(N);
    const replay = seededRandom(7);
    let expected = 0;
    for (let i = 0; i < N; i++) if (replay() < ratio) expected++;
    const sent = await sentTo('sent');
    const notSampled = await mr.metric('apisix_runner_mirror_skipped_total', { target: target.url, reason: 'not_sampled' });
    expect(sent).toBe(expected);
    expect(sent + notSampled).toBe(N);
    // Binomial(2000, 0.3): mean 600, sd ~20.5; 5 sd bounds.
    expect(Math.abs(sent - N * ratio)).toBeLessThan(5 * Math.sqrt(N * ratio * (1 - ratio)));
    await target.waitFor(sent);
    expect(target.received.filter((r) => r.url === '/sampled')).toHaveLength(sent);
  });

  it('mirrors every request at sample_ratio 1 without drawing a random number', async () => {
    draws = 0;
    const before = target.received.length;
    const route = mirrorRoute('route#s2#ext-plugin-pre-req#1', { host: target.url, sample_ratio: 1, path: '/all' });
    for (let i = 0; i < 50; i++) expectOk(await mr.client.httpReqCall(route, call()));
    expect(draws).toBe(0);
    await target.waitFor(before + 50);
  });

  it('accepts the smallest ratio 0.00001: a draw above it is not sampled, a draw below it is', async () => {
    rand = () => 0.99999;
    draws = 0;
    const before = await sentTo('sent');
    const notSampled = (): Promise<number> => mr.metric('apisix_runner_mirror_skipped_total', { target: target.url, reason: 'not_sampled' });
    const notSampledBefore = await notSampled();
    const route = mirrorRoute('route#s3#ext-plugin-pre-req#1', { host: target.url, sample_ratio: 0.00001, path: '/smallest' });
    for (let i = 0; i < 50; i++) expectOk(await mr.client.httpReqCall(route, call()));
    // The plugin is in the chain and decided each time (a rejected conf would draw nothing).
    expect(draws).toBe(50);
    expect(await notSampled()).toBe(notSampledBefore + 50);
    expect(await sentTo('sent')).toBe(before);
    rand = () => 0.000009;
    expectOk(await mr.client.httpReqCall(route, call()));
    await waitUntil(() => target.received.some((r) => r.url === '/smallest'), 'the copy drawn below 0.00001');
  });

  it('samples deterministically by header, arg or var key, and randomly when the key is absent', async () => {
    const ratio = 0.5;
    const users = Array.from({ length: 100 }, (_, i) => `user-${i}`);
    const want = users.filter((u) => hashToUnit(u) < ratio);
    expect(want.length).toBeGreaterThan(20);
    expect(want.length).toBeLessThan(80);

    // Every request carries its user in `x-user` too, so the copies say which users were
    // mirrored whatever the key's source (for arg:/var: keys the header is only a label).
    const labelled = (u: string) => [{ name: 'host', value: 'h' }, { name: 'x-user', value: u }];
    const forms = [
      ['header:X-User', (u: string) => call({ headers: labelled(u) })],
      ['arg:uid', (u: string) => call({ headers: labelled(u), args: [{ name: 'uid', value: u }], vars: { args: `uid=${u}` } })],
      ['var:remote_user', (u: string) => call({ headers: labelled(u), vars: { remote_user: u } })],
    ] as const;
    for (const [sampleKey, build] of forms) {
      rand = () => { throw new Error('random must not be drawn when the key is present'); };
      const path = `/k/${sampleKey.split(':')[0]}`;
      const route = mirrorRoute(`route#${sampleKey}#ext-plugin-pre-req#1`, { host: target.url, sample_ratio: ratio, sample_key: sampleKey, path });
      for (let round = 0; round < 2; round++) {
        for (const u of users) expectOk(await mr.client.httpReqCall(route, build(u)));
      }
      await waitUntil(() => target.received.filter((r) => r.url.startsWith(path)).length >= want.length * 2, `${sampleKey} copies`);
      await waitUntil(async () => (await sentTo('sent')) === (await sentTo('2xx')), 'copies answered');
      const got = target.received.filter((r) => r.url.startsWith(path));
      expect(got).toHaveLength(want.length * 2);
      // The same users, each twice (both rounds): the key decides, not chance.
      const mirroredUsers = got.map((r) => headerValues(r, 'x-user')[0]).sort();
      expect(mirroredUsers, sampleKey).toEqual([...want, ...want].sort());
      if (sampleKey.startsWith('arg')) for (const r of got) expect(r.url).toBe(`${path}?uid=${headerValues(r, 'x-user')[0]}`);
    }

    // Key absent: falls back to the random source.
    draws = 0;
    rand = () => 0;
    const route = mirrorRoute('route#nokey#ext-plugin-pre-req#1', { host: target.url, sample_ratio: 0.5, sample_key: 'header:x-user' });
    expectOk(await mr.client.httpReqCall(route, call()));
    expect(draws).toBe(1);
  });
});
