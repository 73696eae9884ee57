import { ConfError, definePlugin, type HttpRequest, type Plugin } from '../../plugin-api/index.js';

/** A value that may reference nginx variables as `$name` (APISIX proxy-rewrite style). */
type Template = readonly (string | { readonly var: string })[];

export interface RewriteConf {
  readonly path: string | undefined;
  readonly setHeaders: ReadonlyArray<readonly [string, Template]>;
  readonly removeHeaders: readonly string[];
  readonly setArgs: ReadonlyArray<readonly [string, readonly string[]]>;
  readonly removeArgs: readonly string[];
  readonly body: string | undefined;
  readonly responseHeaders: ReadonlyArray<readonly [string, string]>;
  readonly needsVars: boolean;
}

const nameList = { type: 'array', items: { type: 'string', minLength: 1 }, uniqueItems: true } as const;

export const rewriteConfSchema = {
  type: 'object',
  properties: {
    path: { type: 'string', pattern: '^/' },
    headers: {
      type: 'object',
      properties: {
        set: { type: 'object', additionalProperties: { type: 'string' } },
        remove: nameList,
      },
      additionalProperties: false,
    },
    args: {
      type: 'object',
      properties: {
        set: {
          type: 'object',
          additionalProperties: { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' }, minItems: 1 }] },
        },
        remove: nameList,
      },
      additionalProperties: false,
    },
    body: { type: 'string' },
    response_headers: { type: 'object', additionalProperties: { type: 'string' } },
  },
  additionalProperties: false,
} as const;

interface RawConf {
  path?: string;
  headers?: { set?: Record<string, string>; remove?: string[] };
  args?: { set?: Record<string, string | string[]>; remove?: string[] };
  body?: string;
  response_headers?: Record<string, string>;
}

const VAR_REF = /\$([A-Za-z_][A-Za-z0-9_]*)|\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** Splits "x-$remote_addr" into literal and variable parts, once at PrepareConf time. */
function parseTemplate(value: string): Template {
  const parts: (string | { var: string })[] = [];
  let last = 0;
  for (const m of value.matchAll(VAR_REF)) {
    if (m.index > last) parts.push(value.slice(last, m.index));
    parts.push({ var: (m[1] ?? m[2])! });
    last = m.index + m[0].length;
  }
  if (last < value.length) parts.push(value.slice(last));
  return parts;
}

async function render(t: Template, req: HttpRequest): Promise<string> {
  const values = await Promise.all(t.map((p) => (typeof p === 'string' ? p : req.var(p.var).then((v) => v ?? ''))));
  return values.join('');
}

/**
 * `rewrite` changes the request on its way upstream: path, headers (values may use `$var`),
 * query args, body, and headers of the response to the client.
 */
export function createRewritePlugin(): Plugin<RewriteConf> {
  return definePlugin<RewriteConf>({
    name: 'rewrite',
    confSchema: rewriteConfSchema,
    failurePolicy: 'closed',
    parseConf(value) {
      const raw = value as RawConf;
      const removeHeaders = raw.headers?.remove ?? [];
      const setHeaders = Object.entries(raw.headers?.set ?? {}).map(([k, v]) => [k, parseTemplate(v)] as const);
      for (const name of removeHeaders) {
        if (setHeaders.some(([k]) => k.toLowerCase() === name.toLowerCase())) {
          throw new ConfError('/headers/remove', `"${name}" is both set and removed`);
        }
      }
      return {
        path: raw.path,
        setHeaders,
        removeHeaders,
        setArgs: Object.entries(raw.args?.set ?? {}).map(([k, v]) => [k, typeof v === 'string' ? [v] : v] as const),
        removeArgs: raw.args?.remove ?? [],
        body: raw.body,
        responseHeaders: Object.entries(raw.response_headers ?? {}),
        needsVars: setHeaders.some(([, t]) => t.some((p) => typeof p !== 'string')),
      };
    },
    onRequest(conf, req) {
      if (conf.path !== undefined) req.setPath(conf.path);
      for (const name of conf.removeHeaders) req.deleteHeader(name);
      for (const [name, values] of conf.setArgs) req.setArg(name, values);
      for (const name of conf.removeArgs) req.deleteArg(name);
      if (conf.body !== undefined) req.setBody(conf.body);
      for (const [name, value] of conf.responseHeaders) req.setResponseHeader(name, value);
      if (!conf.needsVars) {
        for (const [name, t] of conf.setHeaders) req.setHeader(name, t.join(''));
        return undefined;
      }
      return Promise.all(conf.setHeaders.map(async ([name, t]) => req.setHeader(name, await render(t, req)))).then(() => undefined);
    },
  });
}
