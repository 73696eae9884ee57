/**
 * Loads user plugin modules (`--plugin`, `plugins:` in the config file) so that a plugin
 * importing `apisix-ts-plugin-runner` gets the running runner's own package — wherever the
 * plugin file lives, and even when another copy is installed beside it. Two copies would mean
 * two `ConfError` classes, and the runner's `instanceof ConfError` would miss the plugin's.
 */
import * as nodeModule from 'node:module';
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Plugin, PluginFactory, PluginHost } from './plugin-api/index.js';
import type { SelfResolutionData } from './plugin-resolve-hooks.js';

/** The package name plugins import; kept in step with package.json `name`. */
export const PACKAGE_NAME = 'apisix-ts-plugin-runner';

/**
 * The package's public entry points (package.json `exports`), as paths relative to this
 * module: resolving them from here gives the very files the runner runs (dist/ when
 * installed, src/ under tsx in development).
 */
const ENTRY_POINTS: Readonly<Record<string, string>> = {
  [PACKAGE_NAME]: './index.js',
  [`${PACKAGE_NAME}/testing`]: './testing/index.js',
};

/** A plugin module that cannot be used; the message names the module, the problem and the fix. */
export class PluginModuleError extends Error {
  readonly code = 'A6_ERR_PLUGIN_MODULE';
}

/** The CommonJS loader's resolver: the one seam for `require` before Node has `module.registerHooks`. */
interface CjsResolver {
  _resolveFilename(request: string, parent: unknown, isMain: boolean, options?: unknown): string;
}

let sharing: Promise<void> | undefined;

/**
 * Makes `apisix-ts-plugin-runner` (and its subpaths) resolve to this runner's own modules,
 * for `import` and `require` alike. Runs once, before any plugin is imported.
 */
export function shareRunnerPackageWithPlugins(): Promise<void> {
  sharing ??= (async () => {
    installResolution();
    // Evaluated now: a CommonJS plugin's require() of an ES module that another plugin's
    // import() is still evaluating fails ("not yet fully loaded").
    for (const relative of Object.values(ENTRY_POINTS)) await import(relative);
  })();
  return sharing;
}

function installResolution(): void {
  // Node >= 22.15 / 23.5: one synchronous hook for import and require, on this thread.
  const registerHooks = (nodeModule as Partial<Pick<typeof nodeModule, 'registerHooks'>>).registerHooks;
  if (typeof registerHooks === 'function') {
    // The URLs are resolved here, once: for a require() the default resolver would take a
    // relative specifier from the requiring file, whatever parentURL says.
    const urls = new Map(Object.entries(ENTRY_POINTS).map(([specifier, relative]) => [specifier, import.meta.resolve(relative)]));
    registerHooks({
      resolve: (specifier, context, nextResolve) => {
        const url = urls.get(specifier);
        return url === undefined ? nextResolve(specifier, context) : { url, format: 'module', shortCircuit: true };
      },
    });
    return;
  }

  // Older Node: off-thread hooks cover `import`...
  const data: SelfResolutionData = { entryPoints: ENTRY_POINTS, parentURL: import.meta.url };
  nodeModule.register(import.meta.resolve('./plugin-resolve-hooks.js'), { data });
  // ...but `require` resolves bare names with the CommonJS resolver before any hook runs, so
  // that resolver is wrapped for exactly these names (module-alias does the same).
  // import.meta.resolve applies the hooks in force, so under tsx ./index.js finds index.ts.
  const paths = new Map(Object.entries(ENTRY_POINTS).map(([specifier, relative]) => [specifier, fileURLToPath(import.meta.resolve(relative))]));
  const cjs = nodeModule.Module as unknown as CjsResolver;
  const original = cjs._resolveFilename;
  cjs._resolveFilename = function resolveRunnerPackage(this: unknown, request, parent, isMain, options) {
    return paths.get(request) ?? original.call(this, request, parent, isMain, options);
  };
}

let importQueue: Promise<void> = Promise.resolve();

function isPlugin(v: unknown): v is Plugin<unknown> {
  return typeof v === 'object' && v !== null && typeof (v as { name?: unknown }).name === 'string';
}

/** Why an import failed, with what to change, for the errors a plugin author meets. */
function explainImportFailure(path: string, err: Error & { code?: string }): string {
  const base = `cannot load plugin module ${path}: ${err.message.split('\n')[0]}`;
  if (err.code === 'ERR_REQUIRE_ESM') {
    return `${base}. The plugin is CommonJS and requires an ES module (${PACKAGE_NAME} is one): ` +
      'run the runner on Node.js >= 20.19 or >= 22.12 (require of ES modules), or make the plugin an ES module ' +
      '("type": "module" in its package.json, or a .mjs file)';
  }
  if (err.code === 'ERR_MODULE_NOT_FOUND' || err.code === 'MODULE_NOT_FOUND') {
    return `${base}. Install the plugin's own dependencies next to it (npm install in its folder); ${PACKAGE_NAME} itself always comes from the runner`;
  }
  return base;
}

/**
 * Imports a user plugin module: default export Plugin | Plugin[] | factory (host) => plugin(s),
 * or a named `plugins` export. A CommonJS module's `module.exports` is its default export.
 */
export async function loadPluginModule(path: string, host: PluginHost): Promise<Plugin<unknown>[]> {
  await shareRunnerPackageWithPlugins();
  const url = pathToFileURL(isAbsolute(path) ? path : resolve(process.cwd(), path)).href;
  // One module graph at a time, for the same reason: plugins may share CommonJS/ESM dependencies.
  const imported = importQueue.then(() => import(url) as Promise<Record<string, unknown>>);
  importQueue = imported.then(
    () => undefined,
    () => undefined,
  );
  let mod: Record<string, unknown>;
  try {
    mod = await imported;
  } catch (err) {
    throw new PluginModuleError(explainImportFailure(path, err as Error));
  }
  let exported = mod['default'] ?? mod['plugins'];
  // `exports.default = ...` in CommonJS output of `export default` (tsc with "module": "commonjs").
  if (isCommonJsNamespace(exported)) exported = exported['default'] ?? exported['plugins'];
  if (typeof exported === 'function') exported = (exported as PluginFactory)(host);
  const list = Array.isArray(exported) ? (exported as unknown[]) : [exported];
  if (list.length === 0 || !list.every(isPlugin)) {
    throw new PluginModuleError(
      `plugin module ${path} must export (default) a plugin object with a "name", an array of them, or a factory (host) => plugin(s)`,
    );
  }
  return list;
}

function isCommonJsNamespace(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !isPlugin(v) && !Array.isArray(v) && ('default' in v || 'plugins' in v);
}
