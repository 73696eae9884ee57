// Runner plugins used only by the end-to-end scenarios (test/e2e/scenarios.ts). Plain ESM
// JavaScript with no imports, so the same file loads in-process (peer tests) and in the
// runner CLI inside the APISIX container (`--plugin /path/e2e-plugins.mjs`).

/** `resp-edit` (ext-plugin-post-resp): changes status, headers and body of the upstream answer. */
const respEdit = {
  name: 'resp-edit',
  confSchema: {
    type: 'object',
    properties: {
      status: { type: 'integer', minimum: 100, maximum: 599 },
      headers: { type: 'object', additionalProperties: { type: 'string' } },
      // Headers to remove.
      remove: { type: 'array', items: { type: 'string' } },
      // The new body is this prefix + the upstream body, read through ExtraInfo RespBody.
      prefix: { type: 'string' },
      // The new body, as is ('' makes setBody throw: APISIX cannot send an empty replacement).
      body: { type: 'string' },
    },
    additionalProperties: false,
  },
  async onResponse(conf, res) {
    if (conf.status !== undefined) res.setStatus(conf.status);
    for (const [name, value] of Object.entries(conf.headers ?? {})) res.setHeader(name, value);
    for (const name of conf.remove ?? []) res.deleteHeader(name);
    if (conf.body !== undefined) res.setBody(conf.body);
    if (conf.prefix !== undefined) {
      const body = await res.body();
      res.setBody(conf.prefix + (body ? body.toString('utf8') : ''));
    }
  },
};

/** `echo-body` (pre/post-req): reads the request body through ExtraInfo ReqBody and sends its length and text upstream as headers. */
const echoBody = {
  name: 'echo-body',
  confSchema: { type: 'object', additionalProperties: false },
  async onRequest(_conf, req) {
    const body = await req.body();
    req.setHeader('x-body-length', String(body ? body.length : 0));
    req.setHeader('x-body-text', body ? encodeURIComponent(body.toString('utf8')) : '');
  },
};

/** `fail` (any phase): always throws, so the runner answers the call with an error (fail-closed). */
const fail = {
  name: 'fail',
  confSchema: { type: 'object', additionalProperties: false },
  failurePolicy: 'closed',
  onRequest() {
    throw new Error('the e2e plugin "fail" always fails');
  },
  onResponse() {
    throw new Error('the e2e plugin "fail" always fails');
  },
};

export default [respEdit, echoBody, fail];
