import { definePlugin, type Plugin } from '../../plugin-api/index.js';

/** Conf of `say`: the same as the Go runner's `say`, plus optional status and headers. */
export interface SayConf {
  readonly body: string;
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
}

const schema = {
  type: 'object',
  properties: {
    body: { type: 'string' },
    status: { type: 'integer', minimum: 200, maximum: 599, default: 200 },
    headers: { type: 'object', additionalProperties: { type: 'string' }, default: {} },
  },
  required: ['body'],
  additionalProperties: false,
} as const;

/**
 * `say` answers the client itself (a Stop) with the configured body, status and headers.
 * An empty body does nothing, so the request goes on unchanged.
 */
export function createSayPlugin(): Plugin<SayConf> {
  return definePlugin<SayConf>({
    name: 'say',
    confSchema: schema,
    failurePolicy: 'closed',
    parseConf: (value) => value as SayConf,
    onRequest(conf, req) {
      if (conf.body === '') return;
      req.stop({ status: conf.status, headers: { 'x-resp-a6-runner': 'TypeScript', ...conf.headers }, body: conf.body });
    },
  });
}
