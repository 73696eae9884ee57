// Public entry: the plugin API, and startRunner for embedding the runner in a program.
export * from './plugin-api/index.js';
export { startRunner, type Runner, type RunnerOptions } from './runner.js';
export type { DrainOptions } from './server/runner-server.js';
export { builtinPlugins } from './plugins/index.js';
