import type { Plugin, PluginHost } from '../plugin-api/index.js';
import { createSayPlugin } from './say/index.js';
import { createRewritePlugin } from './rewrite/index.js';
import { createProxyMirrorPlugin } from './proxy-mirror/index.js';

/** The plugins every runner has unless told otherwise. */
export function builtinPlugins(host: PluginHost): Plugin<unknown>[] {
  return [createSayPlugin(), createRewritePlugin(), createProxyMirrorPlugin(host)] as Plugin<unknown>[];
}
