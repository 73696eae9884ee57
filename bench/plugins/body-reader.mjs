/**
 * Bench-only plugin, loaded with the runner's `--plugin` flag: reads the whole request body
 * through ExtraInfo ReqBody on every call and does nothing else, so its cell measures the
 * cost of one body round trip (frame in, copy, hand to the plugin).
 */
export default {
  name: 'bench-body-reader',
  async onRequest(_conf, req) {
    const body = await req.body();
    // Touch the bytes so the read cannot be optimised into nothing.
    if (body !== undefined && body.length === 0) req.setHeader('x-bench-empty-body', '1');
  },
};
