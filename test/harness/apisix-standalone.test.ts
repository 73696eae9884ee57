import { describe, it, expect, afterAll } from 'vitest';
import { statSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { parse as parseYaml, parseDocument, stringify as stringifyYaml, visit } from 'yaml';
import { StandaloneRoutesFile, nextMtimeSeconds, renderApisixYaml, renderConfigYaml, writeRoutesFile } from './apisix-standalone.js';
import { createTempDir } from './temp-dir.js';
import { scenarios } from '../e2e/scenarios.js';
import { builtinPlugins } from '../../src/plugins/index.js';
import e2ePlugins from './e2e-plugins.mjs';
import { Registry } from 'prom-client';
import { createLogger } from '../../src/observability/logger.js';

describe('APISIX files for the Docker e2e suite', () => {
  it('config.yaml keeps the image settings and extends the runner command', () => {
    const conf = parseYaml(renderConfigYaml(['--plugin', '/opt/e2e/e2e-plugins.mjs'])) as { 'ext-plugin': { cmd: string[] }; plugins?: string[]; deployment: { role: string } };
    expect(conf['ext-plugin'].cmd.slice(-2)).toEqual(['--plugin', '/opt/e2e/e2e-plugins.mjs']);
    expect(conf['ext-plugin'].cmd[0]).toBe('node');
    expect(conf.deployment.role).toBe('data_plane');
    // No plugins list: APISIX's default one (with the three ext-plugin-*) stays in force.
    expect(conf.plugins).toBeUndefined();
  });

  it('apisix.yaml gives every route its own upstream and has no YAML anchors or aliases', () => {
    const routes = [1, 2, 3].map((i) => ({ id: `r${i}`, uri: `/r${i}/`, plugins: { 'ext-plugin-pre-req': { conf: [{ name: 'say', value: '{}' }] } } }));
    const text = renderApisixYaml(routes, '127.0.0.1:1980');
    let aliases = 0;
    let anchors = 0;
    visit(parseDocument(text), {
      Alias: () => { aliases++; },
      Node: (_key, node) => { if ('anchor' in node && node.anchor) anchors++; },
    });
    expect(aliases).toBe(0);
    expect(anchors).toBe(0);
    expect(text).not.toMatch(/(^|[\s:-])[&*][A-Za-z0-9_]/m);
    const doc = parseYaml(text) as { routes: { upstream: unknown }[] };
    expect(doc.routes).toHaveLength(4);
    for (const r of doc.routes) expect(r.upstream).toEqual({ type: 'roundrobin', pass_host: 'pass', nodes: { '127.0.0.1:1980': 1 } });
  });

  it('a shared upstream object (what broke on APISIX) is written as an anchor and alias by default', () => {
    // Guards the test above: it would see the aliases the old renderer produced.
    const shared = { type: 'roundrobin', nodes: { 'h:1': 1 } };
    const text = stringifyYaml({ routes: [{ id: 'a', upstream: shared }, { id: 'b', upstream: shared }] });
    let aliases = 0;
    visit(parseDocument(text), { Alias: () => { aliases++; } });
    expect(aliases).toBe(1);
    expect(text).toMatch(/(^|[\s:-])[&*][A-Za-z0-9_]/m);
  });

  it('apisix.yaml has every scenario route, ends with #END, and names only plugins the runner has', () => {
    const env = { upstreamUrl: 'http://h:1', mirrorUrl: 'http://h:2', mirror2Url: 'http://h:3' };
    const routes = scenarios.flatMap((s) => s.routes(env));
    const text = renderApisixYaml(routes, 'h:1');
    expect(text.endsWith('#END\n')).toBe(true);
    const doc = parseYaml(text) as { routes: { id: string; uris: string[]; plugins: Record<string, { conf: { name: string; value: string }[] }>; upstream: { nodes: Record<string, number> } }[] };
    expect(doc.routes.map((r) => r.id)).toEqual(['__ready', ...routes.map((r) => r.id)]);
    expect(new Set(doc.routes.map((r) => r.id)).size).toBe(doc.routes.length);
    const known = new Set([...builtinPlugins({ logger: createLogger({ level: 'silent' }), metrics: new Registry(), settings: () => undefined, onClose: () => undefined }).map((p) => p.name), ...e2ePlugins.map((p) => p.name)]);
    for (const r of doc.routes) {
      expect(r.upstream.nodes).toEqual({ 'h:1': 1 });
      for (const ext of Object.values(r.plugins)) {
        // APISIX's ext-plugin schema: conf has at least one entry, each value a string.
        expect(ext.conf.length).toBeGreaterThan(0);
        for (const c of ext.conf) {
          expect(known.has(c.name)).toBe(true);
          expect(typeof c.value).toBe('string');
        }
      }
    }
  });
});

describe('route file writes move the mtime by whole seconds (standalone APISIX compares whole seconds)', () => {
  const dirs = createTempDir('a6y-');
  afterAll(() => dirs.remove());

  it('nextMtimeSeconds: the current second, or one past the previous mtime when that is not earlier', () => {
    expect(nextMtimeSeconds(undefined, 10_500)).toBe(10);
    expect(nextMtimeSeconds(5_000, 10_500)).toBe(10);
    expect(nextMtimeSeconds(10_200, 10_900)).toBe(11);
    expect(nextMtimeSeconds(12_000, 10_900)).toBe(13);
  });

  it('two writes within the same second get different whole-second mtimes, strictly increasing', () => {
    const path = dirs.file('apisix.yaml');
    const frozen = (): number => 1_700_000_000_250; // a clock that never moves: the worst case
    const first = writeRoutesFile(path, 'routes: []\n#END\n', frozen);
    expect(first).toBe(1_700_000_000);
    expect(Math.floor(statSync(path).mtimeMs / 1000)).toBe(first);
    const second = writeRoutesFile(path, 'routes: [{id: x}]\n#END\n', frozen);
    expect(second).toBe(first + 1);
    expect(Math.floor(statSync(path).mtimeMs / 1000)).toBe(second);
    expect(readFileSync(path, 'utf8')).toContain('id: x');
    const third = writeRoutesFile(path, 'routes: []\n#END\n', frozen);
    expect(third).toBe(second + 1);
  });

  it('an existing file with an older mtime gets the current second', () => {
    const path = dirs.file('old.yaml');
    writeFileSync(path, 'x');
    utimesSync(path, 1000, 1000);
    expect(writeRoutesFile(path, 'routes: []\n#END\n', () => 2_000_000)).toBe(2000);
  });

  it('standalone reading (config_yaml.lua read_apisix_yaml): a same-second rewrite is never seen, writeRoutesFile\'s is', () => {
    const path = dirs.file('watched.yaml');
    const route = (body: string) => [{ id: 'c', uri: '/c/', plugins: { 'ext-plugin-pre-req': { conf: [{ name: 'say', value: JSON.stringify({ body }) }] } } }];
    const file = new StandaloneRoutesFile(path);
    const frozen = (): number => 1_800_000_000_000;
    const t = writeRoutesFile(path, renderApisixYaml(route('v1'), '127.0.0.1:1980'), frozen);
    const v1 = file.reload()!;
    expect(v1.map((r) => [r.id, r.uri, r.version, r.upstream])).toEqual([['__ready', '/__ready', t, 'http://127.0.0.1:1980'], ['c', '/c/', t, 'http://127.0.0.1:1980']]);
    expect(file.reload()).toBeUndefined();
    // What the old updateRoute did: a plain write, within the same second (mtime unchanged).
    writeFileSync(path, renderApisixYaml(route('v2'), '127.0.0.1:1980'));
    utimesSync(path, t, t);
    expect(file.reload()).toBeUndefined();
    // A file without #END is not loaded either.
    writeFileSync(path, 'routes: []\n');
    utimesSync(path, t + 5, t + 5);
    expect(file.reload()).toBeUndefined();
    utimesSync(path, t, t);
    // writeRoutesFile moves the mtime even with a clock that never moves.
    const t2 = writeRoutesFile(path, renderApisixYaml(route('v2'), '127.0.0.1:1980'), frozen);
    const v2 = file.reload()!;
    expect(v2.find((r) => r.id === 'c')!.version).toBe(t2);
    expect(JSON.stringify(v2.find((r) => r.id === 'c')!.plugins)).toContain('v2');
  });
});
