/**
 * Renders and writes the APISIX files the real-APISIX end-to-end suites use: the image's
 * config.yaml with the runner command extended (Docker), and a standalone `apisix.yaml` of routes
 * (Docker and bring-your-own APISIX).
 */
import { readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import type { GatewayRoute } from './gateway.js';
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

/** docker/apisix/config.yaml with `extraArgs` appended to ext-plugin.cmd (the rest unchanged). */
export function renderConfigYaml(extraArgs: readonly string[], source = `${REPO}docker/apisix/config.yaml`): string {
  const conf = parseYaml(readFileSync(source, 'utf8')) as Record<string, unknown>;
  const ext = conf['ext-plugin'] as { cmd?: unknown } | undefined;
  if (!ext || !Array.isArray(ext.cmd)) throw new Error(`${source}: ext-plugin.cmd must be an array`);
  ext.cmd = [...(ext.cmd as string[]), ...extraArgs];
  return stringifyYaml(conf);
}

/**
 * A standalone apisix.yaml: a `/__ready` route answered by the runner's `say` (the readiness
 * probe) and one route per entry, all to `upstreamNode` with pass_host `pass`. Ends with the
 * `#END` marker APISIX waits for before loading the file.
 *
 * Every route gets its own upstream object and the YAML has no anchors or aliases: APISIX
 * 3.18 validates standalone items one by one and adds `resource_id`/`resource_key` to each
 * route's upstream table, so a table shared through an alias makes every route after the first
 * fail validation ("additional properties forbidden, found resource_id") and be skipped.
 */
export function renderApisixYaml(routes: readonly StandaloneRoute[], upstreamNode: string): string {
  const upstream = (): Record<string, unknown> => ({ type: 'roundrobin', pass_host: 'pass', nodes: { [upstreamNode]: 1 } });
  const all = [
    { id: '__ready', uris: ['/__ready'], plugins: { 'ext-plugin-pre-req': { conf: [{ name: 'say', value: '{"body":"ready"}' }] } }, upstream: upstream() },
    ...routes.map((r) => ({ id: r.id, uris: [`${r.uri}*`], plugins: r.plugins, upstream: upstream() })),
  ];
  return `${stringifyYaml({ routes: all }, { aliasDuplicateObjects: false })}#END\n`;
}

/**
 * The modification time (whole seconds) to give a rewritten apisix.yaml: standalone APISIX
 * (apisix/core/config_yaml.lua, `read_apisix_yaml`, every second) reloads the file only when its
 * mtime, in whole seconds, differs from the last one it loaded, so a second write within the same second
 * would never be seen. The result is the current second, or one past the previous mtime when
 * that is not later.
 */
export function nextMtimeSeconds(previousMtimeMs: number | undefined, nowMs: number): number {
  const now = Math.floor(nowMs / 1000);
  if (previousMtimeMs === undefined) return now;
  return Math.max(now, Math.floor(previousMtimeMs / 1000) + 1);
}

/** Writes apisix.yaml and sets its mtime to `nextMtimeSeconds`; returns that mtime (s). */
export function writeRoutesFile(path: string, text: string, now: () => number = Date.now): number {
  let previous: number | undefined;
  try {
    previous = statSync(path).mtimeMs;
  } catch {
    previous = undefined;
  }
  writeFileSync(path, text);
  const mtime = nextMtimeSeconds(previous, now());
  utimesSync(path, mtime, mtime);
  return mtime;
}

/**
 * Standalone APISIX's reading of apisix.yaml, for the gateway emulator (apisix/core/config_yaml.lua,
 * `read_apisix_yaml`): the file is loaded when its whole-second mtime differs from the last one
 * loaded and it ends with `#END`; the mtime becomes every route's conf version (hence the
 * PrepareConf key). Reads the routes renderApisixYaml writes: `uris: [prefix*]`, one node.
 */
export class StandaloneRoutesFile {
  private loadedMtime: number | undefined;

  constructor(private readonly path: string) {}

  /** The routes when the file changed since the last load (by whole-second mtime), else undefined. */
  reload(): GatewayRoute[] | undefined {
    let mtime: number;
    try {
      mtime = Math.floor(statSync(this.path).mtimeMs / 1000);
    } catch {
      return undefined;
    }
    if (mtime === this.loadedMtime) return undefined;
    const text = readFileSync(this.path, 'utf8');
    if (!/#END\s*$/.test(text)) return undefined;
    const doc = parseYaml(text) as { routes?: { id: string; uris: string[]; plugins: GatewayRoute['plugins']; upstream: { nodes: Record<string, number> } }[] } | null;
    this.loadedMtime = mtime;
    return (doc?.routes ?? []).map((r) => ({
      id: String(r.id),
      uri: r.uris[0]!.replace(/\*$/, ''),
      version: mtime,
      upstream: `http://${Object.keys(r.upstream.nodes)[0]}`,
      plugins: r.plugins ?? {},
    }));
  }
}
