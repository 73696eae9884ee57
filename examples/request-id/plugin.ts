// An example user plugin: gives every request an id (kept if the client sent one), passes
// it upstream, and returns it to the client. Build it with `npx tsc` in this folder and load
// the .js with `apisix-ts-plugin-runner --plugin examples/request-id/dist/plugin.js`.
import { randomUUID } from 'node:crypto';
import { definePlugin } from 'apisix-ts-plugin-runner';

interface RequestIdConf {
  header: string;
  /** Reject requests without an id instead of minting one. */
  require: boolean;
}

export default definePlugin<RequestIdConf>({
  name: 'request-id',
  confSchema: {
    type: 'object',
    properties: {
      header: { type: 'string', pattern: '^[A-Za-z0-9-]+$', default: 'x-request-id' },
      require: { type: 'boolean', default: false },
    },
    additionalProperties: false,
  },
  // A missing id must not take a route down if this plugin is misconfigured.
  failurePolicy: 'open',
  parseConf: (value) => value as RequestIdConf,
  onRequest(conf, req, ctx) {
    let id = req.header(conf.header);
    if (!id) {
      if (conf.require) {
        req.stop({ status: 400, headers: { 'content-type': 'text/plain' }, body: `missing ${conf.header}\n` });
        return;
      }
      id = randomUUID();
      req.setHeader(conf.header, id);
    }
    req.setResponseHeader(conf.header, id);
    ctx.logger.debug({ id }, 'request id');
  },
});
