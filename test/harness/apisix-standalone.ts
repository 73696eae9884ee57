/**
 * Renders the APISIX files the Docker end-to-end suite puts into the container: the image's
 * config.yaml with the runner command extended, and a standalone apisix.yaml of routes.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import type { ExtPhase, ExtPluginConf } from './gateway.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

/** A route in the neutral form of test/e2e/scenarios.ts. */
export interface StandaloneRoute {
  readonly id: string;
  /** Path prefix ending with '/'. */
  readonly uri: string;
  readonly plugins: Partial<Record<ExtPhase, ExtPluginConf>>;
}

/** docker/apisix/config.yaml with `extraArgs` appended to ext-plugin.cmd and the ext-plugin-* plugins enabled. */
export function renderConfigYaml(extraArgs: readonly string[], source = `${REPO}docker/apisix/config.yaml`): string {
  const conf = parseYaml(readFileSync(source, 'utf8')) as Record<string, unknown>;
  const ext = conf['ext-plugin'] as { cmd?: unknown } | undefined;
  if (!ext || !Array.isArray(ext.cmd)) throw new Error(`${source}: ext-plugin.cmd must be an array`);
  ext.cmd = [...(ext.cmd as string[]), ...extraArgs];
  if (Array.isArray(conf['plugins'])) {
    const plugins = new Set(conf['plugins'] as string[]);
    for (const p of ['ext-plugin-pre-req', 'ext-plugin-post-req', 'ext-plugin-post-resp']) plugins.add(p);
    conf['plugins'] = [...plugins];
  }
  return stringifyYaml(conf);
}

/**
 * A standalone apisix.yaml: a `/__ready` route answered by the runner's `say` (the readiness
 * probe) and one route per entry, all to `upstreamNode` with pass_host `pass`. Ends with the
 * `#END` marker APISIX waits for before loading the file.
 */
export function renderApisixYaml(routes: readonly StandaloneRoute[], upstreamNode: string): string {
  const upstream = { type: 'roundrobin', pass_host: 'pass', nodes: { [upstreamNode]: 1 } };
  const all = [
    { id: '__ready', uris: ['/__ready'], plugins: { 'ext-plugin-pre-req': { conf: [{ name: 'say', value: '{"body":"ready"}' }] } }, upstream },
    ...routes.map((r) => ({ id: r.id, uris: [`${r.uri}*`], plugins: r.plugins, upstream })),
  ];
  return `${stringifyYaml({ routes: all })}#END\n`;
}
