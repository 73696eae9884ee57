/**
 * docker/README.md without Docker: the derived-image files agree with each other and with the
 * base image, the runner starts with the documented runner.yaml, and the metrics port is
 * scraped over a container network without being published.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ROOT, startCli } from '../harness/cli-process.js';
import { cleanUp, tempDir } from './fixtures.js';

const README = readFileSync(join(ROOT, 'docker/README.md'), 'utf8');
const DEPLOY = readFileSync(join(ROOT, 'docs/deploy.md'), 'utf8');

function block(doc: string, name: string): string {
  const m = new RegExp(`<!-- block: ${name.replace(/\./g, '\\.')} -->\\n\`\`\`[a-z]*\\n([\\s\\S]*?)\`\`\``).exec(doc);
  if (!m) throw new Error(`no block "${name}"`);
  return m[1]!;
}

/** `COPY src dest` lines of a Dockerfile, as source → destination. */
function copies(dockerfile: string): Map<string, string> {
  return new Map([...dockerfile.matchAll(/^COPY\s+(\S+)\s+(\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
}

afterEach(cleanUp);

describe('docker/README.md: derived image and metrics', () => {
  const copied = copies(block(README, 'Dockerfile'));
  const runnerYaml = parseYaml(block(README, 'runner.yaml')) as { plugins: string[]; metricsAddress: string };

  it('the derived image puts runner.yaml and plugins/ where the extended ext-plugin.cmd and the relative plugin paths expect them', () => {
    const config = parseYaml(block(README, 'config.yaml')) as { 'ext-plugin': { cmd: string[] } };
    const base = parseYaml(readFileSync(join(ROOT, 'docker/apisix/config.yaml'), 'utf8')) as { 'ext-plugin': { cmd: string[] } };
    const cmd = config['ext-plugin'].cmd;
    expect(cmd.slice(0, 2)).toEqual(base['ext-plugin'].cmd);
    expect(cmd.slice(2)).toEqual(['--config', copied.get('runner.yaml')]);
    expect(copied.get('config.yaml')).toBe('/usr/local/apisix/conf/config.yaml');
    for (const p of runnerYaml.plugins) expect(join(dirname(copied.get('runner.yaml')!), p).startsWith(copied.get('plugins/')!)).toBe(true);
  });

  it('the runner starts with that runner.yaml and plugin (metrics moved to loopback by a flag, which wins over the file)', async () => {
    const dir = tempDir('a6dock-');
    mkdirSync(join(dir, 'plugins'));
    writeFileSync(join(dir, 'runner.yaml'), block(README, 'runner.yaml'));
    writeFileSync(join(dir, 'plugins/add-header.mjs'), block(DEPLOY, 'add-header.mjs'));
    const s = await startCli(['--config', join(dir, 'runner.yaml'), '--metrics-address', '127.0.0.1:0'], { APISIX_LISTEN_ADDRESS: `unix:${join(dir, 'r.sock')}` });
    expect(s.output()).toContain('"plugins":["say","rewrite","proxy-mirror","add-header"]');
    expect(s.output()).toMatch(/"metrics":"http:\/\/127\.0\.0\.1:\d+\/metrics"/);
  });

  it('Prometheus scrapes the metrics port over an internal network, and the port is not published', () => {
    const compose = parseYaml(block(README, 'compose')) as {
      services: Record<string, { ports?: string[]; networks: string[] }>;
      networks: Record<string, { internal?: boolean }>;
    };
    const prometheus = parseYaml(block(README, 'prometheus.yml')) as { scrape_configs: Array<{ static_configs: Array<{ targets: string[] }> }> };
    const port = runnerYaml.metricsAddress.split(':').at(-1)!;
    expect(prometheus.scrape_configs[0]!.static_configs[0]!.targets).toEqual([`apisix:${port}`]);
    expect((compose.services['apisix']!.ports ?? []).some((p) => p.split(':').includes(port))).toBe(false);
    const shared = compose.services['apisix']!.networks.filter((n) => compose.services['prometheus']!.networks.includes(n));
    expect(shared).toEqual(['metrics']);
    expect(compose.networks['metrics']!.internal).toBe(true);
  });
});
