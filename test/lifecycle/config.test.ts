/** Config precedence and config mistakes found at start, through resolveConfig and the real CLI. */
import { afterEach, describe, expect, it } from 'vitest';
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, resolveConfig, type RunnerConfig } from '../../src/config.js';
import { ROOT, spawnCli, startCli } from '../harness/cli-process.js';
import { cleanUp, tempDir } from './fixtures.js';
import { RawConnection } from '../harness/raw-connection.js';
import { ApisixClient } from '../harness/apisix-client.js';
import { RPC, decodeRunnerFrame, encodeHttpReqCallReq } from '../harness/apisix-codec.js';
import { waitUntil } from '../harness/wait.js';

afterEach(cleanUp);

function run(argv: string[], env: NodeJS.ProcessEnv = {}): RunnerConfig {
  const command = resolveConfig(argv, env);
  if (command.kind !== 'run') throw new Error(command.kind);
  return command.config;
}

describe('config precedence: flags > config file > environment > defaults', () => {
  const env = { APISIX_LISTEN_ADDRESS: 'unix:/env.sock', APISIX_CONF_EXPIRE_TIME: '30', RUNNER_LOG_LEVEL: 'warn', RUNNER_METRICS_ADDRESS: '127.0.0.1:3' };

  it('defaults when nothing is set', () => {
    const c = run([], {});
    expect(c).toMatchObject({ socketDefaulted: true, confExpireSeconds: 3600, logLevel: 'info', metricsAddress: undefined, drainTimeoutMs: 700, maxConfs: 100_000 });
  });

  it('the environment over defaults, the file over the environment, flags over the file', () => {
    expect(run([], env)).toMatchObject({ socketPath: '/env.sock', confExpireSeconds: 30, logLevel: 'warn', metricsAddress: '127.0.0.1:3' });
    const dir = tempDir('a6cfg-');
    const file = join(dir, 'runner.yaml');
    writeFileSync(file, 'socket: /file.sock\nconfExpireTime: 20\nlogLevel: error\nmetricsAddress: 127.0.0.1:2\ndrainTimeout: 500\n');
    expect(run(['--config', file], env)).toMatchObject({ socketPath: '/file.sock', confExpireSeconds: 20, logLevel: 'error', metricsAddress: '127.0.0.1:2', drainTimeoutMs: 500 });
    expect(
      run(['--config', file, '--socket', '/flag.sock', '--conf-expire-time', '10', '--log-level', 'debug', '--metrics-address', '127.0.0.1:1', '--drain-timeout', '400'], env),
    ).toMatchObject({ socketPath: '/flag.sock', confExpireSeconds: 10, logLevel: 'debug', metricsAddress: '127.0.0.1:1', drainTimeoutMs: 400 });
  });

  it('APISIX_CONF_EXPIRE_TIME reaches the conf cache through the CLI: a token is forgotten after 1.2 × that many seconds', async () => {
    const dir = tempDir('a6cfg-');
    const socketPath = join(dir, 'r.sock');
    const s = await startCli([], { APISIX_LISTEN_ADDRESS: `unix:${socketPath}`, APISIX_CONF_EXPIRE_TIME: '1' });
    expect(s.output()).toContain('"confExpireSeconds":1,');
    const client = new ApisixClient({ socketPath });
    const token = await client.prepareConf('k', [{ name: 'say', value: '{"body":"hi"}' }]);
    await client.close();
    const conn = await RawConnection.connect(socketPath);
    const call = async (): Promise<unknown> => {
      await conn.send(RPC.HTTP_REQ_CALL, encodeHttpReqCallReq({ id: 1, confToken: token, srcIp: new Uint8Array([1, 2, 3, 4]), method: 'GET', path: '/', args: [], headers: [] }));
      const f = await conn.readFrame(10_000);
      return decodeRunnerFrame(f.type, f.payload);
    };
    expect(await call()).toMatchObject({ type: 'reqCall' });
    // Bounded: with the default 3600 s this would never turn into CONF_TOKEN_NOT_FOUND.
    let reply: unknown;
    await waitUntil(async () => {
      reply = await call();
      return (reply as { type: string }).type === 'error';
    }, 'the token to expire', { intervalMs: 100 });
    expect(reply).toEqual({ type: 'error', code: 2 });
    conn.close();
  });
});

describe('config mistakes', () => {
  function fileWith(text: string, name = 'runner.yaml'): string {
    const dir = tempDir('a6cfg-');
    writeFileSync(join(dir, name), text);
    return join(dir, name);
  }

  it('a misspelt top-level key names the key it resembles', () => {
    expect(() => run(['--config', fileWith('logLevl: info\n')])).toThrow(/unknown key "logLevl" \(did you mean "logLevel"\?; known: socket, /);
  });

  it('wrong types under plugins: and plugin_attr: get a message saying what is expected', () => {
    expect(() => run(['--config', fileWith('plugins: ./auth.js\n')])).toThrow(/"plugins" must be a list of module paths, e\.g\. plugins: \[\.\/my-plugin\.js\], got "\.\/auth\.js"/);
    expect(() => run(['--config', fileWith('plugins: [1]\n')])).toThrow(ConfigError);
    expect(() => run(['--config', fileWith('plugin_attr: [a]\n')])).toThrow(/"plugin_attr" must be a map keyed by plugin name/);
  });

  it('relative plugin paths in a config file are resolved against its folder; --plugin against the working directory', () => {
    const file = fileWith('plugins: [./p/auth.js, /abs/x.js]\n');
    const folder = file.slice(0, file.lastIndexOf('/'));
    expect(run(['--config', file, '--plugin', 'rel.js']).pluginPaths).toEqual([join(folder, 'p/auth.js'), '/abs/x.js', join(process.cwd(), 'rel.js')]);
  });

  it('the CLI loads a plugin given relative to its config file, from any working directory', async () => {
    const dir = tempDir('a6cfg-');
    mkdirSync(join(dir, 'plugins'));
    copyFileSync(join(ROOT, 'test/fixtures/plugins/whoami.mjs'), join(dir, 'plugins/whoami.mjs'));
    writeFileSync(join(dir, 'runner.yaml'), 'plugins: [plugins/whoami.mjs]\n');
    const s = await startCli(['--config', join(dir, 'runner.yaml')], { APISIX_LISTEN_ADDRESS: `unix:${join(dir, 'r.sock')}` });
    expect(s.output()).toContain('"plugins":["say","rewrite","proxy-mirror","whoami"]');
  });

  it('an unknown plugin under plugin_attr, or a bad setting of a known one, stops the start with exit 2 and one line', async () => {
    const dir = tempDir('a6cfg-');
    writeFileSync(join(dir, 'typo.yaml'), 'plugin_attr:\n  proxy-mirorr:\n    timeout: { connect: 2s }\n');
    writeFileSync(join(dir, 'bad.yaml'), 'plugin_attr:\n  proxy-mirror:\n    timeout: { connect: soon }\n');
    const env = { APISIX_LISTEN_ADDRESS: `unix:${join(dir, 'r.sock')}` };
    const typo = spawnCli(['--config', join(dir, 'typo.yaml')], env);
    expect(await typo.exited).toBe(2);
    expect(typo.output().trim()).toMatch(/^apisix-ts-plugin-runner: cannot start: plugin_attr: unknown plugin "proxy-mirorr" \(did you mean "proxy-mirror"\?; known: say, rewrite, proxy-mirror\); fix the config file$/);
    const bad = spawnCli(['--config', join(dir, 'bad.yaml')], env);
    expect(await bad.exited).toBe(2);
    expect(bad.output().trim()).toMatch(/^apisix-ts-plugin-runner: cannot start: invalid plugin_attr\.proxy-mirror\.timeout.*; fix it in the config file$/);
  });

  it('a misspelt key inside plugin_attr.proxy-mirror (or its timeout/breaker) stops the start like a top-level typo', async () => {
    const dir = tempDir('a6cfg-');
    const env = { APISIX_LISTEN_ADDRESS: `unix:${join(dir, 'r.sock')}` };
    const cases = [
      ['plugin_attr:\n  proxy-mirror:\n    timout: { connect: 2s }\n', /invalid plugin_attr\.proxy-mirror.*unknown setting "timout" \(did you mean "timeout"\?/],
      ['plugin_attr:\n  proxy-mirror:\n    timeout: { conect: 2s }\n', /invalid plugin_attr\.proxy-mirror\.timeout.*unknown setting "conect" \(did you mean "connect"\?/],
      ['plugin_attr:\n  proxy-mirror:\n    breaker: { failure: 5 }\n', /invalid plugin_attr\.proxy-mirror\.breaker.*unknown setting "failure" \(did you mean "failures"\?/],
    ] as const;
    for (const [i, [yaml, message]] of cases.entries()) {
      writeFileSync(join(dir, `t${i}.yaml`), yaml);
      const cli = spawnCli(['--config', join(dir, `t${i}.yaml`)], env);
      expect(await cli.exited, yaml).toBe(2);
      expect(cli.output().trim()).toMatch(/^apisix-ts-plugin-runner: cannot start: /);
      expect(cli.output(), yaml).toMatch(message);
      expect(existsSync(join(dir, 'r.sock'))).toBe(false);
    }
  });
});
