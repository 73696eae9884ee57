/**
 * `apisix-ts-plugin-runner check FILE...`: validates the ext-plugin confs of route files
 * against the plugins this runner would load, before they are deployed. APISIX cannot do it:
 * to APISIX a runner plugin's conf is an opaque JSON string, so a typo otherwise shows up as
 * one log line at the first request (or, for an unknown field, not at all).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parseAllDocuments } from 'yaml';
import pino from 'pino';
import type { Plugin, PluginHost } from '../plugin-api/index.js';
import { ConfigError, checkPluginAttrNames, pluginAttrError, readConfigFile } from '../config.js';
import { PluginRegistry } from '../plugin-registry.js';
import { builtinPlugins } from '../plugins/index.js';
import { createRegistry } from '../observability/metrics.js';
import { findConfSites, type ConfSite } from './extract.js';

export const CHECK_USAGE = 'usage: apisix-ts-plugin-runner check [--config <runner config>] [--plugin <module>]... FILE...';

export interface CheckDeps {
  /** Imports user plugin modules the way the runner does (`--plugin`, `plugins:`). */
  readonly loadPlugins: (paths: readonly string[], host: PluginHost) => Promise<Plugin<unknown>[]>;
  /** Where lines go (stdout / stderr by default). */
  readonly out?: (line: string) => void;
  readonly err?: (line: string) => void;
}

/** Parses one route file: JSON (Admin API) or YAML, one or several documents. */
function readDocuments(file: string): unknown[] {
  const text = readFileSync(file, 'utf8');
  if (/\.json$/i.test(file)) return [JSON.parse(text)];
  return parseAllDocuments(text).map((d) => {
    if (d.errors.length > 0) throw new Error(d.errors[0]!.message);
    return d.toJS() as unknown;
  });
}

/** The problems of one conf entry, as `<json-pointer>: <message>` with the plugin's name. */
function checkSite(site: ConfSite, registry: PluginRegistry, logger: pino.Logger): { plugin: string; field: string; message: string }[] {
  const entry = site.entry;
  if (typeof entry !== 'object' || entry === null || typeof (entry as { name?: unknown }).name !== 'string') {
    return [{ plugin: '?', field: `/conf/${site.index}`, message: `${site.phase}: each conf entry needs a "name" (string) and a "value" (JSON string)` }];
  }
  const { name, value } = entry as { name: string; value?: unknown };
  if (value !== undefined && typeof value !== 'string') {
    return [{ plugin: name, field: '', message: `"value" must be a JSON *string* (APISIX passes it on as text), e.g. "value": ${JSON.stringify(JSON.stringify(value))}` }];
  }
  return registry.check(name, value, logger).map((p) => ({ plugin: name, ...p }));
}

/** Runs `check`; returns the exit code (0 clean, 1 problems found, 2 usage or runner config mistake). */
export async function runCheck(argv: readonly string[], deps: CheckDeps): Promise<number> {
  const out = deps.out ?? ((line: string) => process.stdout.write(`${line}\n`));
  const err = deps.err ?? ((line: string) => process.stderr.write(`${line}\n`));
  let values;
  let files: string[];
  try {
    ({ values, positionals: files } = parseArgs({
      args: [...argv],
      options: { config: { type: 'string', short: 'c' }, plugin: { type: 'string', short: 'p', multiple: true }, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: true,
    }));
  } catch (e) {
    err(`apisix-ts-plugin-runner check: ${(e as Error).message}; ${CHECK_USAGE}`);
    return 2;
  }
  if (values.help) {
    out(CHECK_USAGE);
    return 0;
  }
  if (files.length === 0) {
    err(`apisix-ts-plugin-runner check: no file given; ${CHECK_USAGE}`);
    return 2;
  }

  const logger = pino({ level: 'silent' });
  const closeTasks: Array<() => unknown> = [];
  const registry = new PluginRegistry();
  try {
    const config = values.config ? readConfigFile(values.config) : {};
    const settings = config.plugin_attr ?? {};
    const host: PluginHost = { logger, metrics: createRegistry(), settings: (n) => settings[n], onClose: (t) => closeTasks.push(t) };
    const user = await deps.loadPlugins([...(config.plugins ?? []), ...(values.plugin ?? [])], host);
    for (const p of [...builtinPlugins(host), ...user]) registry.register(p);
    checkPluginAttrNames(settings, registry.names());
  } catch (caught) {
    const e = pluginAttrError(caught);
    err(`apisix-ts-plugin-runner check: ${(e as Error).message}`);
    await Promise.allSettled(closeTasks.map((t) => t()));
    return e instanceof ConfigError ? 2 : 1;
  }

  let entries = 0;
  let errors = 0;
  for (const file of files) {
    let docs: unknown[];
    try {
      docs = readDocuments(file);
    } catch (e) {
      out(`${file}: cannot read: ${(e as Error).message}`);
      errors++;
      continue;
    }
    for (const doc of docs) {
      const { sites, problems } = findConfSites(doc);
      for (const p of problems) {
        out(`${file}: ${p.owner}: ${p.message}`);
        errors++;
      }
      for (const site of sites) {
        entries++;
        for (const p of checkSite(site, registry, logger)) {
          out(`${file}: ${site.owner}: plugin ${p.plugin}: ${p.field || '/'}: ${p.message}`);
          errors++;
        }
      }
    }
  }
  await Promise.allSettled(closeTasks.map((t) => t()));
  out(`checked ${entries} ext-plugin conf entr${entries === 1 ? 'y' : 'ies'} in ${files.length} file${files.length === 1 ? '' : 's'}: ${errors === 0 ? 'no problems' : `${errors} problem${errors === 1 ? '' : 's'}`}`);
  return errors === 0 ? 0 : 1;
}
