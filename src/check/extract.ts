/**
 * Finds the ext-plugin conf entries in the files operators deploy routes with. The shapes
 * follow APISIX's own readers: standalone `apisix.yaml` (apisix/core/config_yaml.lua: top-level
 * `routes`, `services`, `plugin_configs`, `global_rules`, `consumers`), the Admin API
 * (apisix/admin/*: a resource body, or `{key, value}` and `{list: [...]}` as it answers),
 * ADC (`services[].routes[]`) and the ingress controller's `ApisixRoute` CRD
 * (apisix.apache.org/v2: `spec.http[].plugins[]` as `{name, enable, config}`).
 */

export const EXT_PLUGINS: readonly string[] = ['ext-plugin-pre-req', 'ext-plugin-post-req', 'ext-plugin-post-resp'];

/** One `{name, value}` of an ext-plugin `conf` array, with where it was found. */
export interface ConfSite {
  /** `route 1`, `service web`, `plugin_config 3`, `route httpbin/rule1`. */
  readonly owner: string;
  /** ext-plugin-pre-req / post-req / post-resp. */
  readonly phase: string;
  readonly index: number;
  /** The entry as written; not checked yet. */
  readonly entry: unknown;
}

/** A problem with the surrounding structure (not with a plugin's conf). */
export interface ShapeProblem {
  readonly owner: string;
  readonly message: string;
}

/** Resource lists, by the key they sit under, and what one item is called. */
const LIST_KINDS: Readonly<Record<string, string>> = {
  routes: 'route',
  services: 'service',
  plugin_configs: 'plugin_config',
  global_rules: 'global_rule',
  consumers: 'consumer',
  consumer_groups: 'consumer_group',
  stream_routes: 'stream_route',
  http: 'route',
};

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function idOf(item: Json, fallback: string): string {
  for (const k of ['id', 'name', 'username']) {
    const v = item[k];
    if (typeof v === 'string' || typeof v === 'number') return String(v);
  }
  return fallback;
}

/** The kind of resource an Admin API key names: `/apisix/routes/1` → route. */
function kindOfKey(key: string): string | undefined {
  const plural = key.split('/').filter(Boolean).at(-2);
  return plural ? LIST_KINDS[plural] : undefined;
}

/** Walks one parsed document and collects every ext-plugin conf entry in it. */
export function findConfSites(doc: unknown): { sites: ConfSite[]; problems: ShapeProblem[] } {
  const sites: ConfSite[] = [];
  const problems: ShapeProblem[] = [];

  const addConf = (owner: string, phase: string, config: unknown): void => {
    if (!isObject(config) || config['conf'] === undefined) return;
    const conf = config['conf'];
    if (!Array.isArray(conf)) {
      problems.push({ owner, message: `${phase}: "conf" must be a list of {"name", "value"} entries` });
      return;
    }
    conf.forEach((entry, index) => sites.push({ owner, phase, index, entry }));
  };

  const visitPlugins = (owner: string, plugins: unknown): void => {
    if (isObject(plugins)) {
      for (const phase of EXT_PLUGINS) if (phase in plugins) addConf(owner, phase, plugins[phase]);
    } else if (Array.isArray(plugins)) {
      // ApisixRoute / ApisixPluginConfig: [{ name, enable, config }]
      for (const p of plugins) {
        if (isObject(p) && typeof p['name'] === 'string' && EXT_PLUGINS.includes(p['name']) && p['enable'] !== false) addConf(owner, p['name'], p['config']);
      }
    }
  };

  const visit = (node: unknown, owner: string, prefix: string): void => {
    if (Array.isArray(node)) {
      node.forEach((item) => visit(item, owner, prefix));
      return;
    }
    if (!isObject(node)) return;
    // Admin API answers wrap a resource: {key: "/apisix/routes/1", value: {...}}.
    if (typeof node['key'] === 'string' && isObject(node['value'])) {
      const value = node['value'];
      const kind = kindOfKey(node['key']) ?? 'route';
      visit(value, `${kind} ${idOf(value, node['key'].split('/').at(-1) ?? '?')}`, prefix);
      return;
    }
    let namePrefix = prefix;
    let here = owner;
    const metadata = node['metadata'];
    if (isObject(metadata) && typeof metadata['name'] === 'string') {
      namePrefix = `${metadata['name']}/`;
      if (typeof node['kind'] === 'string') here = `${node['kind']} ${metadata['name']}`;
    }
    if ('plugins' in node) visitPlugins(here, node['plugins']);
    for (const [key, value] of Object.entries(node)) {
      if (key === 'plugins' || key === 'metadata') continue;
      const kind = LIST_KINDS[key];
      if (kind && Array.isArray(value)) {
        value.forEach((item, i) => {
          if (isObject(item)) visit(item, `${kind} ${namePrefix}${idOf(item, `#${i}`)}`, namePrefix);
        });
      } else if (isObject(value) || Array.isArray(value)) {
        visit(value, here, namePrefix);
      }
    }
  };

  visit(doc, isObject(doc) && 'plugins' in doc ? `route ${idOf(doc, '?')}` : 'document', '');
  return { sites, problems };
}
