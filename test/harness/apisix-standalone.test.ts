import { describe, it, expect } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { renderApisixYaml, renderConfigYaml } from './apisix-standalone.js';
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
    for (const p of ['ext-plugin-pre-req', 'ext-plugin-post-req', 'ext-plugin-post-resp']) expect(conf.plugins ?? [p]).toContain(p);
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
