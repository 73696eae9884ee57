/**
 * The files `apisix-ts-plugin-runner init` writes: a plugin project that builds with tsc,
 * tests with vitest through apisix-ts-plugin-runner/testing, and runs with `--plugin`.
 */

export interface ScaffoldInput {
  /** npm package name of the new project (the folder name). */
  readonly packageName: string;
  /** The plugin's `name`, used in route confs. */
  readonly pluginName: string;
  /** Version range of this package to depend on. */
  readonly runnerRange: string;
  /** Version ranges of the dev tools, the ones this package is tested with. */
  readonly devDependencies: Readonly<Record<string, string>>;
}

function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

export function packageJson(input: ScaffoldInput): string {
  return json({
    name: input.packageName,
    version: '0.1.0',
    private: true,
    type: 'module',
    scripts: {
      build: 'tsc -p tsconfig.build.json',
      typecheck: 'tsc',
      test: 'vitest run',
      prestart: 'npm run build',
      start: `apisix-ts-plugin-runner --plugin dist/${input.pluginName}.js`,
    },
    dependencies: { 'apisix-ts-plugin-runner': input.runnerRange },
    devDependencies: input.devDependencies,
  });
}

export function tsconfigJson(): string {
  return json({
    compilerOptions: {
      target: 'ES2022',
      module: 'NodeNext',
      moduleResolution: 'NodeNext',
      lib: ['ES2023'],
      types: ['node'],
      strict: true,
      noUncheckedIndexedAccess: true,
      exactOptionalPropertyTypes: true,
      noImplicitOverride: true,
      isolatedModules: true,
      skipLibCheck: false,
      noEmit: true,
    },
    include: ['src', 'test'],
  });
}

export function tsconfigBuildJson(): string {
  return json({
    extends: './tsconfig.json',
    compilerOptions: { noEmit: false, rootDir: 'src', outDir: 'dist', sourceMap: true },
    include: ['src'],
  });
}

export function pluginSource(input: ScaffoldInput): string {
  const name = input.pluginName;
  return `import { ConfError, definePlugin } from 'apisix-ts-plugin-runner';

/** The route's conf of this plugin, once validated against confSchema (defaults applied). */
export interface Conf {
  /** The request header that must be present. */
  readonly header: string;
  /** Accepted values of that header; empty accepts any value. */
  readonly allow: readonly string[];
}

export default definePlugin<Conf>({
  name: '${name}',
  // Checked once per route conf (PrepareConf), never per request.
  confSchema: {
    type: 'object',
    properties: {
      header: { type: 'string', minLength: 1, default: 'x-api-key' },
      allow: { type: 'array', items: { type: 'string' }, default: [] },
    },
    additionalProperties: false,
  },
  // 'closed': a bad conf or a throw answers 503, right for a plugin that guards access.
  failurePolicy: 'closed',
  parseConf(value) {
    const conf = value as Conf;
    if (conf.allow.includes('')) throw new ConfError('/allow', 'must not contain an empty string');
    return conf;
  },
  async onRequest(conf, req) {
    const value = req.header(conf.header);
    if (value === undefined || (conf.allow.length > 0 && !conf.allow.includes(value))) {
      req.stop({ status: 403, headers: { 'content-type': 'text/plain' }, body: \`missing or unknown \${conf.header}\\n\` });
      return;
    }
    // An nginx variable, asked from APISIX (one round trip, cached for the request).
    const requestId = await req.var('request_id');
    req.setHeader('x-checked-by', \`${name}/\${requestId ?? '-'}\`);
  },
});
`;
}

export function pluginTest(input: ScaffoldInput): string {
  const name = input.pluginName;
  return `import { afterEach, describe, expect, it } from 'vitest';
import { runRequest, startTestRunner, type TestRunner } from 'apisix-ts-plugin-runner/testing';
import plugin from '../src/${name}.js';

const route = (conf: object = {}) => [{ name: '${name}', conf }];

describe('${name}', () => {
  it('stops a request without the header with 403', async () => {
    const out = await runRequest(plugin, route());
    expect(out).toMatchObject({ kind: 'stop', status: 403 });
    if (out.kind === 'stop') expect(out.body?.toString()).toBe('missing or unknown x-api-key\\n');
  });

  it('lets an allowed request go upstream with a header added', async () => {
    const out = await runRequest(plugin, route({ allow: ['k1'] }), { headers: { 'x-api-key': 'k1' }, vars: { request_id: 'abc' } });
    expect(out).toMatchObject({ kind: 'rewrite', headers: [{ name: 'x-checked-by', value: '${name}/abc' }] });
    expect(out.asked).toEqual([{ kind: 'var', name: 'request_id' }]);
  });

  it('rejects an empty allowed value, naming the field', async () => {
    const out = await runRequest(plugin, route({ allow: [''] }));
    expect(out).toMatchObject({ kind: 'error', code: 'BAD_REQUEST' });
    expect(out.confProblems).toMatchObject([{ plugin: '${name}', field: '/allow' }]);
  });

  describe('in a real runner, over its Unix socket', () => {
    let env: TestRunner | undefined;
    afterEach(async () => {
      await env?.close();
      env = undefined;
    });

    it('answers like in-process', async () => {
      env = await startTestRunner({ plugins: [plugin] });
      const out = await env.client.request(route({ allow: ['k1'] }), { headers: { 'x-api-key': 'k2' } });
      expect(out).toMatchObject({ kind: 'stop', status: 403 });
    });
  });
});
`;
}

export function gitignore(): string {
  return 'node_modules/\ndist/\n';
}

export function readme(input: ScaffoldInput): string {
  const name = input.pluginName;
  const value = JSON.stringify(JSON.stringify({ header: 'x-api-key', allow: ['k1'] }));
  return `# ${input.packageName}

An [Apache APISIX](https://apisix.apache.org/) plugin in TypeScript, run by
[apisix-ts-plugin-runner](https://www.npmjs.com/package/apisix-ts-plugin-runner) as an external
plugin. The plugin is in \`src/${name}.ts\`, its tests in \`test/${name}.test.ts\`.

## Develop

\`\`\`sh
npm install
npm test            # vitest: in-process runs and a real runner over its socket
npx tsc             # type-check (strict)
npm run build       # compiles to dist/${name}.js
\`\`\`

## Run

\`\`\`sh
npx apisix-ts-plugin-runner --plugin dist/${name}.js
\`\`\`

Started by hand, the runner listens on a socket in the temp folder and logs the
\`ext-plugin: path_for_test: ...\` lines to put in APISIX's \`config.yaml\` while developing.
In production APISIX starts the runner itself. Copy this folder (with \`npm ci --omit=dev\`
run in it) to the APISIX host, e.g. \`/opt/${input.packageName}\`, and set in APISIX's
\`conf/config.yaml\`:

\`\`\`yaml
ext-plugin:
  cmd: ["node", "/opt/${input.packageName}/node_modules/apisix-ts-plugin-runner/dist/cli.js",
        "--plugin", "/opt/${input.packageName}/dist/${name}.js"]
\`\`\`

The plugin always gets the runner's own \`apisix-ts-plugin-runner\` package, wherever it is.

## Use it on a route

Through the Admin API:

\`\`\`sh
curl http://127.0.0.1:9180/apisix/admin/routes/1 -X PUT \\
  -H "X-API-KEY: $ADMIN_KEY" -H 'Content-Type: application/json' -d '{
  "uri": "/anything/*",
  "plugins": {
    "ext-plugin-pre-req": {
      "conf": [ { "name": "${name}", "value": ${value.replace(/'/g, "'\\''")} } ]
    }
  },
  "upstream": { "type": "roundrobin", "nodes": { "127.0.0.1:8080": 1 } }
}'
\`\`\`

or in \`apisix.yaml\` (standalone mode; the file must end with \`#END\`):

\`\`\`yaml
routes:
  - id: "1"
    uri: /anything/*
    plugins:
      ext-plugin-pre-req:
        conf:
          - name: ${name}
            value: '${JSON.stringify({ header: 'x-api-key', allow: ['k1'] })}'
    upstream:
      type: roundrobin
      nodes:
        "127.0.0.1:8080": 1
#END
\`\`\`

Each conf \`value\` is a JSON **string**; the runner checks it against the plugin's
\`confSchema\` when APISIX first sends it. A bad conf is logged with the field
(\`/allow: must not contain an empty string\`) and the route answers 503.
`;
}
