/**
 * Module resolution hooks for Node's off-thread loader (`module.register`, Node < 22.15):
 * `import 'apisix-ts-plugin-runner'` (and its subpaths) from a user plugin resolves to the
 * running runner's own files, so a plugin shares the runner's module instances (its
 * `ConfError` is the runner's) wherever the plugin lives. Runs on the loader thread: it gets
 * the runner's entry points through `initialize`, from plugin-loader.ts on the main thread.
 */
import type { InitializeHook, ResolveHook } from 'node:module';

/** What plugin-loader.ts passes to `module.register` as `data`. */
export interface SelfResolutionData {
  /** Bare specifier (`apisix-ts-plugin-runner`, `…/testing`) → path of the runner's module, relative to `parentURL`. */
  readonly entryPoints: Readonly<Record<string, string>>;
  /** URL of plugin-loader.ts/js: the specifiers are resolved as if the runner imported them. */
  readonly parentURL: string;
}

let shared: SelfResolutionData = { entryPoints: {}, parentURL: '' };

export const initialize: InitializeHook<SelfResolutionData> = (data) => {
  shared = data;
};

export const resolve: ResolveHook = (specifier, context, nextResolve) => {
  const relative = Object.hasOwn(shared.entryPoints, specifier) ? shared.entryPoints[specifier] : undefined;
  // Resolved by the rest of the chain from the runner's own folder, so the URL (and the
  // format other hooks such as tsx give it) is exactly the one the runner's imports get.
  return relative === undefined ? nextResolve(specifier, context) : nextResolve(relative, { ...context, parentURL: shared.parentURL });
};
