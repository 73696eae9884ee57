import { afterEach, describe, expect, it } from 'vitest';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, killAllCli, spawnCli, untilListening, untilOutput } from '../harness/cli-process.js';
import { ApisixClient } from '../harness/apisix-client.js';
import { HELD_REPLY, holdCall } from '../lifecycle/fixtures.js';
import { GET } from '../harness/test-runner.js';
import { tempDirs } from '../harness/temp-dir.js';

const SLOW_VAR_PLUGIN = join(ROOT, 'test/fixtures/plugins/slow-var.mjs');

const dirs = tempDirs();
afterEach(() => {
  killAllCli();
  dirs.removeAll();
});

const tempDir = (): string => dirs.make('a6cli-');

describe('CLI', () => {
  it('--help lists every option and the APISIX environment', async () => {
    const s = spawnCli(['--help']);
    expect(await s.exited).toBe(0);
    for (const opt of ['--config', '--socket', '--conf-expire-time', '--max-confs', '--plugin', '--log-level', '--log-file', '--metrics-address', '--extra-info-timeout', '--drain-timeout', 'check FILE', 'init <dir>', 'SIGHUP', 'Exit codes', 'APISIX_LISTEN_ADDRESS', 'APISIX_CONF_EXPIRE_TIME']) {
      expect(s.output()).toContain(opt);
    }
  });

  it('a bad flag or config exits 2 with a message saying what to fix', async () => {
    const s = spawnCli(['--bogus']);
    expect(await s.exited).toBe(2);
    expect(s.output()).toMatch(/Unknown option '--bogus'.*see --help/);
    const dir = tempDir();
    writeFileSync(join(dir, 'c.yaml'), 'logLevel: loud\n');
    const t = spawnCli(['--config', join(dir, 'c.yaml')], { APISIX_LISTEN_ADDRESS: `unix:${join(dir, 'x.sock')}` });
    expect(await t.exited).toBe(2);
    expect(t.output()).toContain('log level must be one of');
    const u = spawnCli([], { APISIX_LISTEN_ADDRESS: 'tcp://127.0.0.1:1' });
    expect(await u.exited).toBe(2);
    expect(u.output()).toContain('APISIX_LISTEN_ADDRESS must be "unix:/absolute/path.sock"');
  });

  it('a plugin module that does not load, or exports no plugin, stops the start with a message naming it', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'broken.mjs'), 'export default ;\n');
    writeFileSync(join(dir, 'empty.mjs'), 'export const nothing = 1;\n');
    for (const [file, message] of [['broken.mjs', 'cannot load plugin module'], ['empty.mjs', 'must export (default) a plugin object']] as const) {
      const s = spawnCli(['--plugin', join(dir, file)], { APISIX_LISTEN_ADDRESS: `unix:${join(dir, 'p.sock')}` });
      expect(await s.exited).toBe(2);
      expect(s.output()).toContain('apisix-ts-plugin-runner: cannot start: ');
      expect(s.output()).toContain(message);
      expect(s.output()).toContain(file);
      expect(existsSync(join(dir, 'p.sock'))).toBe(false);
    }
  });

  it('serves on APISIX_LISTEN_ADDRESS with a user plugin; SIGTERM lets the in-flight call finish, removes the socket and exits 0', async () => {
    const dir = tempDir();
    const socketPath = join(dir, 'apisix-1.sock');
    const s = spawnCli(['--plugin', SLOW_VAR_PLUGIN], { APISIX_LISTEN_ADDRESS: `unix:${socketPath}`, APISIX_CONF_EXPIRE_TIME: '60' });
    await untilListening(s);
    expect(s.output()).toMatch(/"plugins":\["say","rewrite","proxy-mirror","slow-var"\]/);
    const held = await holdCall(socketPath);
    // The call is in flight (waiting for our answer) when the runner is told to stop, and is
    // answered only after the runner has said it is draining.
    s.child.kill('SIGTERM');
    await untilOutput(s, 'stopping: finishing in-flight RPCs');
    expect(await held.finish()).toMatchObject({ ...HELD_REPLY, id: 9 });
    expect(await s.exited).toBe(0);
    expect(s.output()).toContain('removed the socket file');
    expect(s.output()).not.toContain('drain time is over');
    expect(existsSync(socketPath)).toBe(false);
  });

  it('an uncaught exception (a plugin bug outside any call) exits 1 with a fatal line, so that APISIX restarts the runner', async () => {
    const dir = tempDir();
    const socketPath = join(dir, 'apisix-1.sock');
    const s = spawnCli(['--plugin', join(ROOT, 'test/fixtures/plugins/throw-uncaught.mjs')], { APISIX_LISTEN_ADDRESS: `unix:${socketPath}` });
    await untilListening(s);
    const client = new ApisixClient({ socketPath });
    // The call itself is answered (the plugin returned); the timer it left throws afterwards.
    expect((await client.httpReqCall({ key: 'u', conf: [{ name: 'throw-uncaught', value: '{}' }] }, GET)).kind).not.toBe('error');
    expect(await s.exited).toBe(1);
    await client.close();
    expect(s.output()).toContain('uncaught exception (a bug: please report it); exiting so that APISIX restarts the runner');
    expect(s.output()).toContain('boom from a timer the plugin left behind');
  });

  it('without APISIX_LISTEN_ADDRESS it listens on the default socket and logs the config.yaml snippet; metrics are served when asked', async () => {
    const dir = tempDir();
    const socketPath = join(dir, 'dev.sock');
    const s = spawnCli(['--socket', socketPath, '--metrics-address', '127.0.0.1:0', '--log-level', 'info']);
    await untilListening(s);
    const url = /"metrics":"(http:\/\/127\.0\.0\.1:\d+\/metrics)"/.exec(s.output())?.[1];
    expect(url).toBeDefined();
    const client = new ApisixClient({ socketPath });
    await client.httpReqCall({ key: 'm', conf: [{ name: 'say', value: '{"body":"hi"}' }] }, GET);
    await client.close();
    const text = await (await fetch(url!)).text();
    expect(text).toMatch(/apisix_runner_rpc_total\{type="http_req_call",outcome="stop"\} 1/);
    expect(text).toMatch(/apisix_runner_rpc_total\{type="prepare_conf",outcome="ok"\} 1/);
    s.child.kill('SIGINT');
    expect(await s.exited).toBe(0);

    const d = spawnCli([], { APISIX_LISTEN_ADDRESS: '', TMPDIR: dir });
    await untilListening(d);
    // The snippet is its own log line, written after "runner listening".
    await untilOutput(d, 'path_for_test');
    expect(d.output()).toContain(join(dir, 'apisix-ts-plugin-runner.sock'));
    d.child.kill('SIGTERM');
    expect(await d.exited).toBe(0);
  });
});
