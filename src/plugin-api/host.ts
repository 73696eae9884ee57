import type { Registry } from 'prom-client';
import type { Logger, Plugin } from './plugin.js';

/** What the runner offers a plugin module when it builds the plugin. */
export interface PluginHost {
  readonly logger: Logger;
  /** The runner's Prometheus registry (served on `--metrics-address` when enabled). */
  readonly metrics: Registry;
  /** Plugin-specific settings from the runner's config file (`plugins.<name>`), if any. */
  settings(name: string): unknown;
  /** Registers cleanup to run at shutdown (close clients, flush queues). */
  onClose(task: () => Promise<void> | void): void;
}

/**
 * A plugin module's default export may be a Plugin or a factory that builds plugins from
 * the host (to reach metrics, settings, shutdown hooks).
 */
export type PluginFactory = (host: PluginHost) => Plugin<unknown> | readonly Plugin<unknown>[];
