/** `apisix-ts-plugin-runner check`: route files validated before deploying, run as the real CLI. */
import { afterEach, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { ROOT, spawnCli } from '../harness/cli-process.js';
import { cleanUp, tempDir } from './fixtures.js';
import { findConfSites } from '../../src/check/extract.js';
import { GET, runnerWithClient } from '../harness/test-runner.js';

const FIXTURES = join(ROOT, 'test/fixtures/check');
const fixture = (name: string): string => join(FIXTURES, name);

afterEach(cleanUp);

async function check(args: string[]): Promise<{ code: number | null; lines: string[] }> {
  const p = spawnCli(['check', ...args]);
  const code = await p.exited;
  return { code, lines: p.output().trim().split('\n') };
}

describe('check FILE...', () => {
  it('a clean standalone apisix.yaml passes with a summary line and exit 0', async () => {
    const r = await check([fixture('clean.yaml')]);
    expect(r).toEqual({ code: 0, lines: ['checked 2 ext-plugin conf entries in 1 file: no problems'] });
  });

  it('standalone apisix.yaml: unknown fields, schema errors, unknown plugins and non-string values in routes, services and plugin_configs', async () => {
    const f = fixture('apisix.yaml');
    const r = await check([f]);
    expect(r.code).toBe(1);
    expect(r.lines).toEqual([
      expect.stringMatching(new RegExp(`^${f}: route 2: plugin proxy-mirror: /sampl_ratio: unknown field "sampl_ratio" \\(did you mean "sample_ratio"\\?; known: host, `)),
      expect.stringMatching(new RegExp(`^${f}: route 3: plugin proxy-mirror: /host: must match pattern`)),
      `${f}: service web: plugin proxy-mirorr: /: unknown plugin "proxy-mirorr" (known: say, rewrite, proxy-mirror)`,
      `${f}: plugin_config 7: plugin say: /: "value" must be a JSON *string* (APISIX passes it on as text), e.g. "value": "{\\"body\\":\\"not a string\\"}"`,
      'checked 5 ext-plugin conf entries in 1 file: 4 problems',
    ]);
  });

  it('Admin API JSON (one resource, and the list wrapper), ADC and ApisixRoute/PluginConfig YAML in one run', async () => {
    const files = ['admin-route.json', 'admin-list.json', 'adc.yaml', 'apisixroute.yaml'].map(fixture);
    const r = await check(files);
    expect(r.code).toBe(1);
    expect(r.lines).toEqual([
      `${files[0]}: route mirror-get: plugin proxy-mirror: /sample_ratio: must be <= 1`,
      expect.stringMatching(new RegExp(`^${files[1]}: plugin_config 9: plugin say: /: value is not valid JSON`)),
      expect.stringMatching(new RegExp(`^${files[2]}: route mirror-get: plugin proxy-mirror: /sampl_ratio: unknown field "sampl_ratio" \\(did you mean "sample_ratio"`)),
      `${files[3]}: route httpbin/greet: plugin say: /status: must be >= 200`,
      expect.stringMatching(new RegExp(`^${files[3]}: PluginConfig mirror-to-shadow: plugin proxy-mirror: /mark_headr: unknown field "mark_headr" \\(did you mean "mark_header"`)),
      'checked 7 ext-plugin conf entries in 4 files: 5 problems',
    ]);
  });

  it('knows the --plugin modules and the plugins of a --config file; a bad runner config is exit 2', async () => {
    const dir = tempDir('a6check-');
    const routes = join(dir, 'routes.yaml');
    writeFileSync(routes, `routes:\n  - id: r\n    plugins:\n      ext-plugin-pre-req:\n        conf:\n          - name: slow-var\n            value: '{"vra":"x"}'\n`);
    const slowVar = join(ROOT, 'test/fixtures/plugins/slow-var.mjs');
    const r = await check(['--plugin', slowVar, routes]);
    expect(r.code).toBe(1);
    expect(r.lines[0]).toBe(`${routes}: route r: plugin slow-var: /vra: unknown field "vra" (did you mean "var"?; known: var)`);
    writeFileSync(join(dir, 'runner.yaml'), `plugins: [${slowVar}]\n`);
    expect((await check(['--config', join(dir, 'runner.yaml'), routes])).lines[0]).toContain('plugin slow-var: /vra: unknown field');
    writeFileSync(join(dir, 'typo.yaml'), 'plugin_attr:\n  proxy-mirorr: {}\n');
    const bad = await check(['--config', join(dir, 'typo.yaml'), routes]);
    expect(bad.code).toBe(2);
    expect(bad.lines).toEqual([expect.stringMatching(/^apisix-ts-plugin-runner check: plugin_attr: unknown plugin "proxy-mirorr"/)]);
    writeFileSync(join(dir, 'bad-attr.yaml'), 'plugin_attr:\n  proxy-mirror: { max_queue: -1 }\n');
    const badAttr = await check(['--config', join(dir, 'bad-attr.yaml'), routes]);
    expect(badAttr.code).toBe(2);
    expect(badAttr.lines).toEqual([expect.stringMatching(/^apisix-ts-plugin-runner check: invalid plugin_attr\.proxy-mirror\.max_queue.*; fix it in the config file$/)]);
  });

  it('no file, or an unknown flag, is a usage error (exit 2); an unreadable file is a problem (exit 1)', async () => {
    expect((await check([])).code).toBe(2);
    expect(await check(['--help'])).toEqual({ code: 0, lines: [expect.stringMatching(/^usage: apisix-ts-plugin-runner check /)] });
    expect((await check(['--bogus', fixture('clean.yaml')])).code).toBe(2);
    const missing = await check([join(FIXTURES, 'missing.yaml')]);
    expect(missing.code).toBe(1);
    expect(missing.lines[0]).toMatch(/missing\.yaml: cannot read: ENOENT/);
  });

  it('finds conf entries in every place a route file can hold them, and skips disabled CRD plugins', () => {
    const conf = { conf: [{ name: 'say', value: '{}' }] };
    expect(findConfSites({ key: '/apisix/services/s1', value: { plugins: { 'ext-plugin-post-resp': conf } } }).sites).toMatchObject([{ owner: 'service s1', phase: 'ext-plugin-post-resp', index: 0 }]);
    expect(findConfSites({ routes: [{ id: 1, plugins: { 'ext-plugin-pre-req': { conf: 'x' } } }] }).problems).toEqual([{ owner: 'route 1', message: 'ext-plugin-pre-req: "conf" must be a list of {"name", "value"} entries' }]);
    const crd = { kind: 'ApisixRoute', metadata: { name: 'n' }, spec: { http: [{ name: 'h', plugins: [{ name: 'ext-plugin-pre-req', enable: false, config: conf }] }] } };
    expect(findConfSites(crd).sites).toEqual([]);
  });
});

describe('apisix_runner_conf_rejected_total', () => {
  it('counts each conf entry PrepareConf rejects, by plugin and reason', async () => {
    const metrics = new Registry();
    const t = await runnerWithClient({ metrics });
    try {
      await t.client.httpReqCall({ key: 'a', conf: [{ name: 'nope', value: '{}' }] }, GET);
      await t.client.httpReqCall({ key: 'b', conf: [{ name: 'say', value: '{"body":' }] }, GET);
      await t.client.httpReqCall({ key: 'c', conf: [{ name: 'say', value: '{"status":1}' }] }, GET);
      await t.client.httpReqCall({ key: 'd', conf: [{ name: 'say', value: '{"body":"ok"}' }] }, GET);
      const text = await metrics.metrics();
      expect(text).toContain('apisix_runner_conf_rejected_total{plugin="nope",reason="unknown_plugin"} 1');
      expect(text).toContain('apisix_runner_conf_rejected_total{plugin="say",reason="invalid_json"} 1');
      expect(text).toContain('apisix_runner_conf_rejected_total{plugin="say",reason="schema"} 1');
      expect(text.match(/apisix_runner_conf_rejected_total\{/g)).toHaveLength(3);
    } finally {
      await t.close();
    }
  });
});
