import { definePlugin, type Plugin, type StopResponse } from '../../plugin-api/index.js';

/** Conf of `say`: the same as the Go runner's `say`, plus optional status and headers. */
export interface SayConf {
  readonly body: string;
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  /** Built once per conf and frozen, so the runner encodes the answer once and reuses it. */
  readonly response: StopResponse;
}

export const sayConfSchema = {
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
    confSchema: sayConfSchema,
    failurePolicy: 'closed',
    parseConf(value) {
      const raw = value as Omit<SayConf, 'response'>;
      const headers = Object.freeze({ 'x-resp-a6-runner': 'TypeScript', ...raw.headers });
      return { ...raw, response: Object.freeze({ status: raw.status, headers, body: raw.body }) };
    },
    onRequest(conf, req) {
      if (conf.body === '') return;
      req.stop(conf.response);
    },
  });
}
