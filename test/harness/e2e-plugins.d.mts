import type { Plugin } from '../../src/plugin-api/index.js';

/** The end-to-end test plugins: `resp-edit` and `echo-body`. */
declare const plugins: Plugin<unknown>[];
export default plugins;
