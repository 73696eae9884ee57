/**
 * The commands and files of docs/deploy.md, taken from the page's text and run: the runner's
 * config file and plugin module, `check` with its shown output, and log rotation with the
 * logrotate block's postrotate command. (logrotate itself is not installed here: the test does
 * its rename, then runs the block's postrotate line.)
 */
import { afterEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readlinkSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, spawnCli } from '../harness/cli-process.js';
import { waitUntil } from '../harness/wait.js';
import { cleanUp, tempDir } from './fixtures.js';
import { ApisixClient } from '../harness/apisix-client.js';
import { GET } from '../harness/test-runner.js';

const DOC = readFileSync(join(ROOT, 'docs/deploy.md'), 'utf8');
const INSTALL = '/opt/apisix-ts-plugin-runner/dist/cli.js';
const ETC = '/etc/apisix-ts-plugin-runner';

/** The fenced block right after `<!-- block: name -->`. */
function block(name: string): string {
  const m = new RegExp(`<!-- block: ${name.replace(/\./g, '\\.')} -->\\n\`\`\`[a-z]*\\n([\\s\\S]*?)\`\`\``).exec(DOC);
  if (!m) throw new Error(`docs/deploy.md has no block "${name}"`);
  return m[1]!;
}

afterEach(cleanUp);

/** Lays out /etc/apisix-ts-plugin-runner and /var/log/... of the page under a temp folder. */
function install(): { etc: string; log: string } {
  const root = tempDir('a6docs-');
  const etc = join(root, 'etc');
  const logDir = join(root, 'log');
  mkdirSync(join(etc, 'plugins'), { recursive: true });
  writeFileSync(join(etc, 'runner.yaml'), block('runner.yaml').replaceAll('/var/log/apisix-ts-plugin-runner', logDir).replaceAll(ETC, etc));
  writeFileSync(join(etc, 'plugins/add-header.mjs'), block('add-header.mjs'));
  return { etc, log: join(logDir, 'runner.log') };
}

const read = (p: string): string => (existsSync(p) ? readFileSync(p, 'utf8') : '');

describe('docs/deploy.md', () => {
  it('the config file and plugin module run as shown, and the logrotate postrotate command makes the runner write a new file', async () => {
    const { etc, log } = install();
    const socketPath = join(etc, 'r.sock');
    const s = spawnCli(['--config', join(etc, 'runner.yaml')], { APISIX_LISTEN_ADDRESS: `unix:${socketPath}` });
    await waitUntil(() => read(log).includes('"msg":"runner listening"'), 'read(log).includes(\'"msg":"runner listening"\')', { limitMs: 20000 });
    expect(read(log)).toContain('"plugins":["say","rewrite","proxy-mirror","add-header"]');
    const client = new ApisixClient({ socketPath });
    const outcome = await client.httpReqCall({ key: 'k', conf: [{ name: 'add-header', value: '{"name":"x-team","value":"edge"}' }] }, GET);
    await client.close();
    expect(outcome).toMatchObject({ kind: 'rewrite', rewrite: { headers: [{ name: 'x-team', value: 'edge' }] } });

    const postrotate = /postrotate\n\s*(.+)\n\s*endscript/.exec(block('logrotate'))![1]!;
    const pattern = `'[/]${INSTALL.slice(1)}'`;
    expect(postrotate).toContain(`pkill -HUP -f ${pattern}`);
    renameSync(log, `${log}.1`);
    // The pattern names the runner's command line; here the temp config path is what is unique
    // to it. Run through `sh -c`, as logrotate runs it: the shell must survive its own pkill.
    execFileSync('sh', ['-c', postrotate.replace(pattern, `'[/]${join(etc, 'runner.yaml').slice(1)}'`)]);
    await waitUntil(() => read(log).includes('log file reopened (SIGHUP)'), 'read(log).includes(\'log file reopened (SIGHUP)\')', { limitMs: 20000 });
    expect(s.child.exitCode).toBeNull();
    s.child.kill('SIGTERM');
    expect(await s.exited).toBe(0);
    expect(read(log)).toContain('"msg":"stopped"');
  });

  it('the upgrade commands swap the install folder for a symlink to the new version in one rename', () => {
    const root = tempDir('a6docs-');
    const lines = block('upgrade').trim().split('\n');
    expect(lines.at(-1)).toBe('apisix reload');
    // The page's first line copies a build (package.json dist node_modules) from the working directory.
    const build = join(root, 'build');
    mkdirSync(join(build, 'dist'), { recursive: true });
    mkdirSync(join(build, 'node_modules'));
    writeFileSync(join(build, 'package.json'), '{"version":"0.2.0"}');
    writeFileSync(join(build, 'dist/cli.js'), '');
    const script = lines.slice(0, -1).join('\n').replaceAll('sudo ', '').replaceAll('/opt/', `${root}/opt/`);
    // Before: the install folder is a symlink to the old version (the page's first-time step).
    mkdirSync(join(root, 'opt/apisix-ts-plugin-runner-0.1.0'), { recursive: true });
    symlinkSync(join(root, 'opt/apisix-ts-plugin-runner-0.1.0'), join(root, 'opt/apisix-ts-plugin-runner'));
    execFileSync('sh', ['-e', '-c', script], { cwd: build });
    expect(readlinkSync(join(root, 'opt/apisix-ts-plugin-runner'))).toBe(join(root, 'opt/apisix-ts-plugin-runner-0.2.0'));
    expect(existsSync(join(root, 'opt/apisix-ts-plugin-runner/dist/cli.js'))).toBe(true);
    expect(existsSync(join(root, 'opt/apisix-ts-plugin-runner.new'))).toBe(false);
  });

  it('check prints what the page shows, and exits 1', async () => {
    const { etc } = install();
    const routes = join(etc, 'apisix.yaml');
    copyFileSync(join(ROOT, 'test/fixtures/check/deploy-example.yaml'), routes);
    const command = block('check').trim().split(/\s+/);
    expect(command.slice(0, 3)).toEqual(['node', INSTALL, 'check']);
    const args = command.slice(3).map((a) => a.replace(ETC, etc).replace('/usr/local/apisix/conf/apisix.yaml', routes));
    const p = spawnCli(['check', ...args]);
    expect(await p.exited).toBe(1);
    expect(p.output().replaceAll(routes, '/usr/local/apisix/conf/apisix.yaml')).toBe(block('check-output'));
  });
});
