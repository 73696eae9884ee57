// The plugins and outcomes shown in README.md ("Writing a plugin") and docs/plugin-authoring.md, run as shown.
import { describe, expect, it } from 'vitest';
import { ConfError, definePlugin } from 'apisix-ts-plugin-runner';
import { runRequest } from 'apisix-ts-plugin-runner/testing';

const tenantGuard = definePlugin<{ header: string }>({
  name: 'tenant-guard',
  confSchema: { type: 'object', properties: { header: { type: 'string', default: 'x-tenant' } }, additionalProperties: false },
  async onRequest(conf, req) {
    const tenant = req.header(conf.header);
    if (!tenant) return req.stop({ status: 401, body: 'no tenant\n' });
    req.setHeader('x-tenant-checked', `${tenant}@${await req.var('remote_addr')}`);
  },
});

interface Conf { header: string; values: string[] }

const allowList = definePlugin<Conf>({
  name: 'allow-list',
  confSchema: {
    type: 'object',
    properties: {
      header: { type: 'string', default: 'x-tenant' },
      values: { type: 'array', items: { type: 'string' }, minItems: 1 },
    },
    required: ['values'],
    additionalProperties: false,
  },
  failurePolicy: 'closed',
  parseConf(value) {
    const conf = value as Conf;
    if (conf.values.includes('')) throw new ConfError('/values', 'must not contain an empty string');
    return conf;
  },
  onRequest(conf, req) {
    if (!conf.values.includes(req.header(conf.header) ?? '')) {
      req.stop({ status: 403, headers: { 'content-type': 'text/plain' }, body: 'forbidden\n' });
    }
  },
});

describe('README: tenant-guard', () => {
  it('gives the outcome the README shows', async () => {
    const out = await runRequest(tenantGuard, [{ name: 'tenant-guard' }], { headers: { 'x-tenant': 'acme' }, vars: { remote_addr: '192.0.2.1' } });
    expect(out).toMatchObject({ kind: 'rewrite', headers: [{ name: 'x-tenant-checked', value: 'acme@192.0.2.1' }], asked: [{ kind: 'var', name: 'remote_addr' }] });
    expect(await runRequest(tenantGuard, [{ name: 'tenant-guard' }])).toMatchObject({ kind: 'stop', status: 401 });
  });
});

describe('docs/plugin-authoring.md: allow-list', () => {
  it('stops an unknown tenant', async () => {
    const out = await runRequest(allowList, [{ name: 'allow-list', conf: { values: ['acme'] } }], {
      method: 'GET',
      path: '/orders',
      args: { page: '2', flag: null },
      headers: { 'x-tenant': 'other' },
      srcIp: '192.0.2.10',
      vars: { remote_addr: '192.0.2.10' },
      body: '{"a":1}',
    });
    expect(out).toMatchObject({ kind: 'stop', status: 403, asked: [] });
  });

  it('names the bad field of a conf', async () => {
    const out = await runRequest(allowList, [{ name: 'allow-list', conf: { values: [''] } }]);
    expect(out).toMatchObject({ kind: 'error', code: 'BAD_REQUEST', confProblems: [{ field: '/values' }] });
    const short = await runRequest(allowList, [{ name: 'allow-list', conf: { values: [] } }]);
    expect(short.kind === 'error' && short.message).toContain('/values must NOT have fewer than 1 items');
  });
});
