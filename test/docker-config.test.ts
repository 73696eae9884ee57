// Checks the deployment files under docker/ without a Docker engine: the YAML parses, the
// routes' ext-plugin confs are what the runner accepts, and the Dockerfile, config.yaml,
// compose.yaml and nginx.conf agree on paths, service names and ports. Each checker returns
// a list of problems; the real files must have none, and broken copies must have some (so a
// checker that silently passes everything would fail here).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, posix, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { Ajv } from 'ajv';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, parseDocument, visit } from 'yaml';
import { proxyMirrorSchema } from '../src/plugins/proxy-mirror/schema.js';
import { DEFAULT_SETTINGS, parseProxyMirrorConf } from '../src/plugins/proxy-mirror/conf.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dockerDir = join(repo, 'docker');
const read = (rel: string): string => readFileSync(join(repo, rel), 'utf8');

const EXT_PLUGINS = ['ext-plugin-pre-req', 'ext-plugin-post-req', 'ext-plugin-post-resp'] as const;

type Json = Record<string, unknown>;
const isRecord = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const clone = <T>(v: T): T => structuredClone(v);

// ---- Dockerfile ---------------------------------------------------------------------------

interface Instruction {
  readonly op: string;
  readonly args: string;
  readonly stage: number;
}
interface Dockerfile {
  readonly instructions: readonly Instruction[];
  /** FROM image of each stage, with ARG defaults substituted. */
  readonly stages: readonly { image: string; name: string | undefined }[];
}

/** Parses a Dockerfile into instructions (continuations joined, comments dropped). */
function parseDockerfile(text: string): Dockerfile {
  const logical: string[] = [];
  let current = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (current === '' && (line === '' || line.startsWith('#'))) continue;
    if (line.startsWith('#')) continue; // comment inside a continued instruction
    if (line.endsWith('\\')) {
      current += line.slice(0, -1) + ' ';
      continue;
    }
    logical.push(current + line);
    current = '';
  }
  if (current !== '') logical.push(current);

  const args = new Map<string, string>();
  const stages: { image: string; name: string | undefined }[] = [];
  const instructions: Instruction[] = [];
  for (const l of logical) {
    const m = /^(\S+)\s*(.*)$/.exec(l);
    if (!m) continue;
    const op = m[1]!.toUpperCase();
    const rest = m[2]!;
    if (op === 'ARG' && stages.length === 0) {
      const a = /^([A-Za-z_][A-Za-z0-9_]*)(?:=(.*))?$/.exec(rest);
      if (a) args.set(a[1]!, (a[2] ?? '').replace(/^"(.*)"$/, '$1'));
    }
    if (op === 'FROM') {
      const f = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest);
      const image = (f?.[1] ?? rest).replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a: string | undefined, b: string | undefined) => args.get(a ?? b ?? '') ?? '');
      stages.push({ image, name: f?.[2] });
    }
    instructions.push({ op, args: rest, stage: stages.length - 1 });
  }
  return { instructions, stages };
}

/** COPY/ADD split into flags, sources and destination (shell form only). */
function copyParts(args: string): { from: string | undefined; sources: string[]; dest: string } {
  const words = args.split(/\s+/).filter(Boolean);
  const flags = words.filter((w) => w.startsWith('--'));
  const paths = words.filter((w) => !w.startsWith('--'));
  const from = flags.find((f) => f.startsWith('--from='))?.slice('--from='.length);
  return { from, sources: paths.slice(0, -1), dest: paths[paths.length - 1] ?? '' };
}

/** Lines of a .dockerignore that exclude `rel` (exact path, a parent directory, or `*.ext`). */
function ignoredBy(ignoreText: string, rel: string): string[] {
  const patterns = ignoreText.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  return patterns.filter((p) => {
    if (p.startsWith('!')) return false;
    const clean = p.replace(/^\/+|\/+$/g, '');
    if (clean.startsWith('*.')) return rel.endsWith(clean.slice(1));
    return rel === clean || rel.startsWith(clean + '/') || clean.startsWith(rel + '/');
  });
}

interface DockerFacts {
  /** Where the runner is copied in the final image (the destination of dist's parent). */
  readonly runnerDir: string | undefined;
  /** Directories the node binary is copied to in the final stage. */
  readonly nodeDirs: readonly string[];
  /** In-image paths that files from the build context are copied to. */
  readonly contextCopies: ReadonlyMap<string, string>;
}

/** Problems of the Dockerfile against the brief, plus facts other checks use. */
function checkDockerfile(df: Dockerfile, ignoreText: string): { problems: string[]; facts: DockerFacts } {
  const problems: string[] = [];
  const { stages, instructions } = df;
  if (stages.length < 2) problems.push('expected a multi-stage build (build stage + APISIX stage)');
  const finalIndex = stages.length - 1;
  const final = stages[finalIndex];
  if (!final || !/^apache\/apisix:3\.\d+\.\d+-debian(@sha256:[0-9a-f]{64})?$/.test(final.image)) {
    problems.push(`final stage must be FROM apache/apisix:3.x.y-debian, got ${final?.image ?? 'nothing'}`);
  }
  const buildIndex = stages.findIndex((s) => /^node:22([.-]|$)/.test(s.image));
  if (buildIndex < 0 || buildIndex === finalIndex) problems.push('expected a build stage FROM node:22');
  const buildName = stages[buildIndex]?.name;

  const runs = instructions.filter((i) => i.op === 'RUN' && i.stage === buildIndex).map((i) => i.args).join(' && ');
  const order = ['npm ci', 'npm run build', 'npm prune --omit=dev'].map((cmd) => ({ cmd, at: runs.indexOf(cmd) }));
  for (const { cmd, at } of order) if (at < 0) problems.push(`build stage does not run \`${cmd}\``);
  if (order.every((o) => o.at >= 0) && !(order[0]!.at < order[1]!.at && order[1]!.at < order[2]!.at)) {
    problems.push('build stage must run npm ci, then npm run build, then npm prune --omit=dev');
  }

  // Files from the build context must exist and must not be excluded by .dockerignore.
  const contextCopies = new Map<string, string>();
  for (const i of instructions) {
    if (i.op !== 'COPY' && i.op !== 'ADD') continue;
    const { from, sources, dest } = copyParts(i.args);
    if (from !== undefined) continue;
    for (const src of sources) {
      const rel = posix.normalize(src).replace(/^\.\/|\/$/g, '');
      if (!existsSync(join(repo, rel))) problems.push(`COPY source ${src} does not exist in the build context (repo root)`);
      const by = ignoredBy(ignoreText, rel);
      if (by.length > 0) problems.push(`COPY source ${src} is excluded by .dockerignore (${by.join(', ')})`);
      if (i.stage === finalIndex) contextCopies.set(rel, dest);
    }
  }
  for (const needed of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'src']) {
    const copied = instructions.some((i) => i.op === 'COPY' && i.stage === buildIndex && copyParts(i.args).from === undefined
      && copyParts(i.args).sources.some((s) => s.replace(/^\.\/|\/$/g, '') === needed));
    if (!copied) problems.push(`build stage does not copy ${needed}, which npm ci / npm run build need`);
  }

  // What the final stage takes from the build stage.
  let runnerDir: string | undefined;
  const nodeDirs: string[] = [];
  const fromBuild = instructions.filter((i) => i.op === 'COPY' && i.stage === finalIndex)
    .map((i) => copyParts(i.args)).filter((c) => c.from !== undefined && (c.from === buildName || c.from === String(buildIndex)));
  for (const c of fromBuild) {
    for (const src of c.sources) {
      const base = posix.basename(src.replace(/\/$/, ''));
      if (base === 'dist') runnerDir = posix.dirname(c.dest.replace(/\/$/, ''));
      if (base === 'node') nodeDirs.push(posix.dirname(c.dest));
    }
  }
  if (runnerDir === undefined) problems.push('final stage does not copy dist/ from the build stage');
  for (const part of ['node_modules', 'package.json']) {
    const dest = fromBuild.find((c) => c.sources.some((s) => posix.basename(s.replace(/\/$/, '')) === part))?.dest;
    if (dest === undefined) problems.push(`final stage does not copy ${part} from the build stage`);
    else if (runnerDir !== undefined && posix.dirname(dest.replace(/\/$/, '')) !== runnerDir) {
      problems.push(`${part} goes to ${dest}, not next to dist in ${runnerDir}`);
    }
  }
  if (nodeDirs.length === 0) problems.push('final stage does not copy the node binary from the build stage');

  const users = instructions.filter((i) => i.stage === finalIndex && i.op === 'USER').map((i) => i.args.trim());
  const lastUser = users[users.length - 1];
  if (lastUser === 'root' || lastUser === '0') problems.push('final image must not run as root');
  return { problems, facts: { runnerDir, nodeDirs, contextCopies } };
}

// ---- config.yaml ----------------------------------------------------------------------------

/** Problems of APISIX's config.yaml against the image layout. */
function checkConfig(conf: unknown, facts: DockerFacts): string[] {
  const problems: string[] = [];
  if (!isRecord(conf)) return ['config.yaml is not a mapping'];
  const deployment = conf['deployment'];
  if (!isRecord(deployment) || deployment['role'] !== 'data_plane') problems.push('deployment.role must be data_plane');
  const dp = isRecord(deployment) ? deployment['role_data_plane'] : undefined;
  if (!isRecord(dp) || dp['config_provider'] !== 'yaml') problems.push('deployment.role_data_plane.config_provider must be yaml');

  const ext = conf['ext-plugin'];
  const cmd = isRecord(ext) ? ext['cmd'] : undefined;
  if (!Array.isArray(cmd) || cmd.length < 2 || !cmd.every((c) => typeof c === 'string')) {
    problems.push('ext-plugin.cmd must be an array of strings [node, script]');
  } else {
    const [bin, script] = cmd as string[];
    const nodeOk = bin === 'node' ? facts.nodeDirs.some((d) => ['/usr/local/bin', '/usr/bin', '/bin'].includes(d))
      : facts.nodeDirs.includes(posix.dirname(bin!));
    if (!nodeOk) problems.push(`ext-plugin.cmd[0] ${bin} is not where the Dockerfile puts node (${facts.nodeDirs.join(', ')})`);
    const expected = facts.runnerDir === undefined ? undefined : posix.join(facts.runnerDir, 'dist/cli.js');
    if (script !== expected) problems.push(`ext-plugin.cmd[1] is ${script}, the Dockerfile puts the runner's CLI at ${expected}`);
  }
  if (isRecord(ext) && 'path_for_test' in ext) problems.push('ext-plugin.path_for_test is for development only');

  // `plugins` replaces APISIX's default list (apisix/cli/config.lua), which already enables the
  // three ext-plugin-* plugins; setting it would switch off every other stock plugin.
  if ('plugins' in conf) problems.push("config.yaml must not set `plugins`: it replaces APISIX's whole default plugin list");

  const copiedTo = facts.contextCopies.get('docker/apisix/config.yaml');
  if (copiedTo !== '/usr/local/apisix/conf/config.yaml') {
    problems.push(`docker/apisix/config.yaml must be copied to /usr/local/apisix/conf/config.yaml (is ${copiedTo ?? 'not copied'})`);
  }
  return problems;
}

// ---- compose.yaml ---------------------------------------------------------------------------

interface ComposeFacts {
  readonly services: ReadonlyMap<string, Json>;
}

/** Problems of compose.yaml (build paths, loopback-only ports, mounted files). */
function checkCompose(compose: unknown, composeDir: string, listenPorts: readonly number[]): { problems: string[]; facts: ComposeFacts } {
  const problems: string[] = [];
  const services = new Map<string, Json>();
  const raw = isRecord(compose) ? compose['services'] : undefined;
  if (!isRecord(raw)) return { problems: ['compose.yaml has no services'], facts: { services } };
  for (const [name, svc] of Object.entries(raw)) if (isRecord(svc)) services.set(name, svc);

  const apisix = services.get('apisix');
  const build = apisix?.['build'];
  if (!isRecord(build)) problems.push('service apisix must be built from the Dockerfile');
  else {
    const ctx = resolve(composeDir, String(build['context'] ?? '.'));
    const dockerfile = resolve(ctx, String(build['dockerfile'] ?? 'Dockerfile'));
    if (ctx !== repo) problems.push(`apisix build context is ${ctx}, expected the repo root`);
    if (dockerfile !== join(repo, 'docker/Dockerfile')) problems.push(`apisix dockerfile resolves to ${dockerfile}`);
  }
  const ports = Array.isArray(apisix?.['ports']) ? (apisix['ports'] as unknown[]).map(String) : [];
  if (!ports.includes('127.0.0.1:9080:9080')) problems.push('apisix must publish 127.0.0.1:9080:9080');
  for (const p of ports) {
    const container = Number(p.split(':').pop());
    if (!listenPorts.includes(container)) problems.push(`apisix publishes container port ${container}, config.yaml listens on ${listenPorts.join(', ')}`);
  }
  const routesMount = (Array.isArray(apisix?.['volumes']) ? (apisix['volumes'] as unknown[]) : []).map(String)
    .find((v) => v.split(':')[1] === '/usr/local/apisix/conf/apisix.yaml');
  if (routesMount === undefined) problems.push('apisix must mount the routes at /usr/local/apisix/conf/apisix.yaml');

  for (const [name, svc] of services) {
    for (const p of Array.isArray(svc['ports']) ? (svc['ports'] as unknown[]).map(String) : []) {
      if (!p.startsWith('127.0.0.1:')) problems.push(`service ${name} publishes ${p} beyond loopback`);
    }
    for (const v of Array.isArray(svc['volumes']) ? (svc['volumes'] as unknown[]).map(String) : []) {
      const src = v.split(':')[0]!;
      if ((src.startsWith('.') || src.startsWith('/')) && !existsSync(resolve(composeDir, src))) {
        problems.push(`service ${name} mounts ${src}, which does not exist`);
      }
    }
  }
  return { problems, facts: { services } };
}

// ---- apisix.yaml ----------------------------------------------------------------------------

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false });
const validateMirror = ajv.compile(proxyMirrorSchema);

/** Port a compose service listens on inside the network, from what its files say. */
type ServicePort = (service: string) => number | undefined;

/** Problems of the standalone routes file against the runner, config.yaml and compose. */
function checkRoutes(text: string, enabledPlugins: readonly string[], runnerPlugins: readonly string[],
  services: ReadonlyMap<string, Json>, portOf: ServicePort): string[] {
  const problems: string[] = [];
  if (!/#END\s*$/.test(text)) problems.push('apisix.yaml must end with #END (standalone mode ignores it otherwise)');
  // APISIX 3.18 adds resource_id/resource_key to each route's tables while validating: a table
  // shared through an alias then fails validation for every route after the first.
  let aliases = 0;
  visit(parseDocument(text), { Alias: () => { aliases++; } });
  if (aliases > 0) problems.push('apisix.yaml must not use YAML anchors/aliases (routes sharing a table fail APISIX validation)');
  const doc: unknown = parseYaml(text);
  const routes = isRecord(doc) ? doc['routes'] : undefined;
  if (!Array.isArray(routes) || routes.length === 0) return [...problems, 'apisix.yaml has no routes'];

  let mirrorsOnGet = false;
  routes.forEach((route: unknown, r) => {
    if (!isRecord(route)) return void problems.push(`route ${r} is not a mapping`);
    const uris = [route['uri'], ...(Array.isArray(route['uris']) ? route['uris'] : [])].filter((u) => typeof u === 'string');
    const plugins = isRecord(route['plugins']) ? route['plugins'] : {};
    for (const name of Object.keys(plugins)) {
      if (!enabledPlugins.includes(name)) problems.push(`route ${r} uses ${name}, not in config.yaml's plugins list`);
    }
    for (const ext of EXT_PLUGINS) {
      const pc = plugins[ext];
      if (pc === undefined) continue;
      const confs = isRecord(pc) ? pc['conf'] : undefined;
      if (!Array.isArray(confs)) {
        problems.push(`route ${r} ${ext}.conf must be an array`);
        continue;
      }
      confs.forEach((entry: unknown, i) => {
        const at = `route ${r} ${ext}.conf[${i}]`;
        if (!isRecord(entry) || typeof entry['name'] !== 'string') return void problems.push(`${at} has no name`);
        const name = entry['name'];
        if (!runnerPlugins.includes(name)) problems.push(`${at} names ${name}, which the runner does not have (${runnerPlugins.join(', ')})`);
        const value = entry['value'];
        if (typeof value !== 'string') return void problems.push(`${at}.value must be a JSON string, got ${typeof value}`);
        let parsed: unknown;
        try {
          parsed = value === '' ? {} : JSON.parse(value);
        } catch (err) {
          return void problems.push(`${at}.value is not valid JSON: ${(err as Error).message}`);
        }
        if (!isRecord(parsed)) return void problems.push(`${at}.value must be a JSON object`);
        if (name !== 'proxy-mirror') return;

        const conf = clone(parsed);
        if (!validateMirror(conf)) {
          return void problems.push(`${at} fails the proxy-mirror schema: ${ajv.errorsText(validateMirror.errors)}`);
        }
        try {
          parseProxyMirrorConf(conf, DEFAULT_SETTINGS);
        } catch (err) {
          return void problems.push(`${at} is rejected by parseProxyMirrorConf: ${(err as Error).message}`);
        }
        const host = new URL(String(conf['host']));
        const target = host.hostname;
        if (!services.has(target)) problems.push(`${at} mirrors to ${target}, not a compose service (${[...services.keys()].join(', ')})`);
        const port = host.port === '' ? (host.protocol === 'https:' ? 443 : 80) : Number(host.port);
        if (services.has(target) && portOf(target) !== port) problems.push(`${at} mirrors to port ${port}, ${target} listens on ${portOf(target)}`);
        if (uris.includes('/get') && conf['sample_ratio'] === 1) mirrorsOnGet = true;
      });
    }

    const upstream = isRecord(route['upstream']) ? route['upstream'] : undefined;
    const nodes = isRecord(upstream?.['nodes']) ? Object.keys(upstream['nodes']) : [];
    if (nodes.length === 0) problems.push(`route ${r} has no upstream nodes`);
    for (const node of nodes) {
      const [h, p] = node.split(':');
      if (!services.has(h ?? '')) problems.push(`route ${r} upstream ${node} is not a compose service`);
      else if (portOf(h!) !== Number(p ?? 80)) problems.push(`route ${r} upstream ${node}: ${h} listens on ${portOf(h!)}`);
    }
  });
  if (!mirrorsOnGet) problems.push('no route mirrors every request to /get (the walkthrough needs one)');
  return problems;
}

// ---- nginx.conf of the mirror ---------------------------------------------------------------

/** Problems of the mirror's nginx.conf: structure, and an access log to stdout with headers. */
function checkMirrorNginx(text: string): string[] {
  const problems: string[] = [];
  const code = text.split('\n').map((l) => l.replace(/#.*$/, '')).join('\n');
  let depth = 0;
  for (const ch of code) {
    if (ch === '{') depth++;
    if (ch === '}' && --depth < 0) break;
  }
  if (depth !== 0) problems.push('unbalanced braces');
  if (!/^\s*events\s*\{/m.test(code) || !/^\s*http\s*\{/m.test(code)) problems.push('needs events {} and http {} blocks');
  const fmt = /log_format\s+(\S+)\s+([^;]+);/.exec(code);
  if (!fmt) problems.push('no log_format');
  else {
    if (!new RegExp(`access_log\\s+/dev/stdout\\s+${fmt[1]}\\s*;`).test(code)) problems.push(`no access_log to /dev/stdout using ${fmt[1]}`);
    for (const v of ['$request', '$http_host', '$http_user_agent']) if (!fmt[2]!.includes(v)) problems.push(`log format lacks ${v}`);
  }
  return problems;
}

function nginxListenPort(text: string): number | undefined {
  const m = /^\s*listen\s+(\d+)\s*;/m.exec(text);
  return m ? Number(m[1]) : undefined;
}

// ---- the tests --------------------------------------------------------------------------------

const dockerfileText = read('docker/Dockerfile');
const ignoreText = read('.dockerignore');
const configDoc: unknown = parseYaml(read('docker/apisix/config.yaml'));
const composeDoc: unknown = parseYaml(read('docker/compose.yaml'));
const routesText = read('docker/apisix/apisix.yaml');
const nginxText = read('docker/mirror/nginx.conf');
const runnerPlugins = readdirSync(join(repo, 'src/plugins'), { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);

const docker = checkDockerfile(parseDockerfile(dockerfileText), ignoreText);
const listenPorts = (() => {
  const apisix = isRecord(configDoc) ? configDoc['apisix'] : undefined;
  const nl = isRecord(apisix) ? apisix['node_listen'] : undefined;
  return (Array.isArray(nl) ? nl : [nl ?? 9080]).map((p: unknown) => (isRecord(p) ? Number(p['port']) : Number(p)));
})();
const compose = checkCompose(composeDoc, dockerDir, listenPorts);
/**
 * Plugins a route may name: config.yaml's list if it had one, else APISIX's default list. Only
 * the part of apisix/cli/config.lua's default list these files can use is written here.
 */
const APISIX_DEFAULT_PLUGINS = [...EXT_PLUGINS, 'proxy-rewrite', 'proxy-mirror', 'response-rewrite', 'limit-count', 'key-auth', 'cors'];
const enabledPlugins = isRecord(configDoc) && Array.isArray(configDoc['plugins']) ? (configDoc['plugins'] as unknown[]).map(String) : APISIX_DEFAULT_PLUGINS;

/** Ports of the demo services, read from their own files (nginx.conf, the upstream's env). */
const portOf: ServicePort = (service) => {
  if (service === 'mirror') return nginxListenPort(nginxText);
  const env = compose.facts.services.get(service)?.['environment'];
  return isRecord(env) && env['PORT'] !== undefined ? Number(env['PORT']) : undefined;
};

describe('docker/Dockerfile', () => {
  it('is multi-stage, builds with npm ci/build/prune and ships the runner in apache/apisix:3.x-debian', () => {
    expect(docker.problems).toEqual([]);
    expect(dockerfileText).toMatch(/^ARG APISIX_IMAGE=apache\/apisix:3\.18\.0-debian$/m);
    expect(docker.facts.runnerDir).toBe('/opt/apisix-ts-plugin-runner');
  });

  it('reports a wrong base image, a missing prune, root and an ignored source', () => {
    const broken = dockerfileText
      .replace(/^ARG APISIX_IMAGE=.*$/m, 'ARG APISIX_IMAGE=apache/apisix:latest')
      .replace('npm prune --omit=dev', 'true')
      .replace(/^USER apisix$/m, 'USER root');
    const { problems } = checkDockerfile(parseDockerfile(broken), ignoreText + '\nsrc\n');
    expect(problems.some((p) => p.includes('apache/apisix:3.x.y-debian'))).toBe(true);
    expect(problems.some((p) => p.includes('npm prune --omit=dev'))).toBe(true);
    expect(problems.some((p) => p.includes('root'))).toBe(true);
    expect(problems.some((p) => p.includes('excluded by .dockerignore'))).toBe(true);
  });
});

describe('docker/apisix/config.yaml', () => {
  it('is a standalone data plane whose ext-plugin.cmd starts the runner the image contains', () => {
    expect(checkConfig(configDoc, docker.facts)).toEqual([]);
  });

  it('reports a cmd that points elsewhere and a plugins list that would replace APISIX\'s defaults', () => {
    const broken = clone(configDoc) as Json;
    (broken['ext-plugin'] as Json)['cmd'] = ['node', '/opt/other/dist/cli.js'];
    broken['plugins'] = ['ext-plugin-pre-req', 'ext-plugin-post-req', 'ext-plugin-post-resp'];
    const problems = checkConfig(broken, docker.facts);
    expect(problems.some((p) => p.includes('ext-plugin.cmd[1]'))).toBe(true);
    expect(problems.some((p) => p.includes('must not set `plugins`'))).toBe(true);
  });

  it('accepts the base image pinned by digest and nothing else in its place', () => {
    const arg = /^ARG APISIX_IMAGE=.*$/m;
    const pinned = dockerfileText.replace(arg, `ARG APISIX_IMAGE=apache/apisix:3.18.0-debian@sha256:${'a'.repeat(64)}`);
    expect(checkDockerfile(parseDockerfile(pinned), ignoreText).problems).toEqual([]);
    const bad = dockerfileText.replace(arg, 'ARG APISIX_IMAGE=apache/apisix:3.18.0-debian@sha256:short');
    expect(checkDockerfile(parseDockerfile(bad), ignoreText).problems.some((p) => p.includes('apache/apisix:3.x.y-debian'))).toBe(true);
  });
});

describe('docker/compose.yaml', () => {
  it('builds APISIX from the Dockerfile, publishes 9080 on loopback and mounts files that exist', () => {
    expect(compose.problems).toEqual([]);
    expect([...compose.facts.services.keys()].sort()).toEqual(['apisix', 'mirror', 'upstream']);
  });

  it('reports a port published beyond loopback and a missing mount', () => {
    const broken = clone(composeDoc) as Json;
    const services = broken['services'] as Record<string, Json>;
    services['apisix']!['ports'] = ['9080:9080'];
    services['mirror']!['volumes'] = ['./mirror/missing.conf:/etc/nginx/nginx.conf:ro'];
    const { problems } = checkCompose(broken, dockerDir, listenPorts);
    expect(problems.some((p) => p.includes('127.0.0.1:9080:9080'))).toBe(true);
    expect(problems.some((p) => p.includes('missing.conf'))).toBe(true);
  });
});

describe('docker/apisix/apisix.yaml', () => {
  it('ends with #END and its ext-plugin confs are valid runner confs aimed at compose services', () => {
    expect(checkRoutes(routesText, enabledPlugins, runnerPlugins, compose.facts.services, portOf)).toEqual([]);
  });

  it('reports a missing #END, a non-string value, an unknown plugin, a bad host and an unknown service', () => {
    const check = (text: string): string[] => checkRoutes(text, enabledPlugins, runnerPlugins, compose.facts.services, portOf);
    expect(check(routesText.replace(/#END\s*$/, ''))).toEqual([expect.stringContaining('#END')]);
    const aliased = 'routes:\n  - id: "1"\n    uri: /a\n    upstream: &up\n      type: roundrobin\n      nodes: {"upstream:8080": 1}\n  - id: "2"\n    uri: /b\n    upstream: *up\n#END\n';
    expect(check(aliased).some((p) => p.includes('anchors/aliases'))).toBe(true);

    const doc = parseYaml(routesText) as { routes: Json[] };
    const entry = () => ((doc.routes[0]!['plugins'] as Json)['ext-plugin-pre-req'] as { conf: Json[] }).conf[0]!;
    const dump = (): string => JSON.stringify(doc) + '\n#END\n'; // JSON is YAML

    const saved = clone(entry());
    entry()['value'] = { host: 'http://mirror:80' };
    expect(check(dump()).some((p) => p.includes('must be a JSON string'))).toBe(true);

    Object.assign(entry(), saved, { name: 'no-such-plugin' });
    expect(check(dump()).some((p) => p.includes('the runner does not have'))).toBe(true);

    Object.assign(entry(), saved, { value: '{"host":"http://mirror:80/with/path"}' });
    expect(check(dump()).some((p) => p.includes('proxy-mirror schema'))).toBe(true);

    Object.assign(entry(), saved, { value: '{"host":"http://nowhere:80","sample_ratio":1}' });
    expect(check(dump()).some((p) => p.includes('not a compose service'))).toBe(true);

    Object.assign(entry(), saved, { value: '{"host":"http://mirror:8081","sample_ratio":1}' });
    expect(check(dump()).some((p) => p.includes('listens on 80'))).toBe(true);
  });
});

describe('docker/mirror/nginx.conf', () => {
  it('logs every request to stdout with its Host and User-Agent headers', () => {
    expect(checkMirrorNginx(nginxText)).toEqual([]);
    expect(nginxListenPort(nginxText)).toBe(80);
  });

  it('reports a log format without headers and unbalanced braces', () => {
    const problems = checkMirrorNginx(nginxText.replace('$http_user_agent', '$status').replace(/}\s*$/, ''));
    expect(problems).toContain('log format lacks $http_user_agent');
    expect(problems).toContain('unbalanced braces');
  });
});

describe('docker/upstream/server.mjs', () => {
  let child: ChildProcess | undefined;
  afterAll(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((done) => child!.once('exit', done));
      child.kill('SIGTERM');
      await exited;
    }
  });

  it('serves /get with an echo of the request', async () => {
    child = spawn(process.execPath, [join(dockerDir, 'upstream/server.mjs')], {
      env: { ...process.env, HOST: '127.0.0.1', PORT: '0' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const lines = createInterface({ input: child.stdout! });
    const first = await new Promise<string>((done, fail) => {
      lines.once('line', done);
      child!.once('exit', (code) => fail(new Error(`echo server exited with ${code}`)));
    });
    const m = /listening on 127\.0\.0\.1:(\d+)/.exec(first);
    expect(m, first).not.toBeNull();

    const res = await fetch(`http://127.0.0.1:${m![1]}/get?x=1&x=2&y=z`, { headers: { 'x-demo': 'yes' } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { method: string; path: string; url: string; headers: Record<string, string> };
    expect(body.method).toBe('GET');
    expect(body.path).toBe('/get');
    expect(body.url).toBe('/get?x=1&x=2&y=z');
    expect(body.headers['x-demo']).toBe('yes');
  });
});
