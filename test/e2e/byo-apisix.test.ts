// The bring-your-own-APISIX plumbing that can be checked without APISIX: the settings read from
// the environment, and the runner the suite starts on APISIX's path_for_test socket, killed and
// restarted the way APISIX's privileged agent does it (a real child process).
import { describe, it, expect, afterAll } from 'vitest';
import { request } from 'undici';
import { BYO_HINT, RunnerProcess, byoFromEnv, freePort } from './byo-apisix.js';
import { createTempDir } from '../harness/temp-dir.js';
import { RawConnection } from '../harness/raw-connection.js';
import { encodePrepareConfReq, RPC } from '../harness/apisix-codec.js';

const dirs = createTempDir('a6b-');
afterAll(() => dirs.remove());

describe('byoFromEnv', () => {
  const good = { APISIX_E2E_GATEWAY: 'http://127.0.0.1:9080', APISIX_E2E_SOCKET: dirs.file('runner.sock'), APISIX_E2E_ROUTES: dirs.file('apisix.yaml') };

  it('is off when no variable is set, and the skip line says how to turn it on', () => {
    expect(byoFromEnv({})).toBeUndefined();
    expect(byoFromEnv({ APISIX_E2E_GATEWAY: '' })).toBeUndefined();
    for (const v of ['APISIX_E2E_GATEWAY', 'APISIX_E2E_SOCKET', 'APISIX_E2E_ROUTES', 'docs/testing.md']) expect(BYO_HINT).toContain(v);
  });

  it('reads all three', () => {
    expect(byoFromEnv(good)).toEqual({ gatewayUrl: 'http://127.0.0.1:9080', socketPath: good.APISIX_E2E_SOCKET, routesPath: good.APISIX_E2E_ROUTES });
    expect(byoFromEnv({ ...good, APISIX_E2E_GATEWAY: 'http://127.0.0.1:9080/' })?.gatewayUrl).toBe('http://127.0.0.1:9080');
  });

  it('names what is missing or wrong instead of skipping a half-configured run', () => {
    expect(() => byoFromEnv({ APISIX_E2E_GATEWAY: good.APISIX_E2E_GATEWAY })).toThrow(/missing: APISIX_E2E_SOCKET, APISIX_E2E_ROUTES/);
    expect(() => byoFromEnv({ ...good, APISIX_E2E_GATEWAY: 'https://127.0.0.1:9443' })).toThrow(/http:\/\/ URL/);
    expect(() => byoFromEnv({ ...good, APISIX_E2E_GATEWAY: 'not a url' })).toThrow(/not a URL/);
    expect(() => byoFromEnv({ ...good, APISIX_E2E_GATEWAY: 'http://127.0.0.1:9080/apisix' })).toThrow(/without path/);
    expect(() => byoFromEnv({ ...good, APISIX_E2E_SOCKET: 'runner.sock' })).toThrow(/APISIX_E2E_SOCKET must be an absolute path/);
    expect(() => byoFromEnv({ ...good, APISIX_E2E_ROUTES: '/no/such/dir/apisix.yaml' })).toThrow(/APISIX_E2E_ROUTES: directory \/no\/such\/dir does not exist/);
  });
});

describe('RunnerProcess (the runner the BYO suite starts on path_for_test)', () => {
  it('starts on the socket, serves metrics, and comes back after a SIGKILL like APISIX restarts it', async () => {
    const runner = new RunnerProcess({ socketPath: dirs.file('r.sock'), metricsPort: await freePort(), restartDelayMs: 0 });
    try {
      await runner.start();
      const prepare = async (): Promise<number> => {
        const conn = await RawConnection.connect(dirs.file('r.sock'), 2000);
        try {
          await conn.send(RPC.PREPARE_CONF, encodePrepareConfReq({ key: 'route#1', conf: [{ name: 'say', value: '{"body":"x"}' }] }));
          return (await conn.readFrame(10_000)).type;
        } finally {
          conn.close();
        }
      };
      expect(await prepare()).toBe(RPC.PREPARE_CONF);
      const metrics = await request(runner.metricsUrl);
      expect(metrics.statusCode).toBe(200);
      expect(await metrics.body.text()).toContain('apisix_runner_rpc_total');

      await runner.kill();
      await runner.restarted();
      expect(runner.starts).toBe(2);
      expect(await prepare()).toBe(RPC.PREPARE_CONF);
    } finally {
      await runner.close();
    }
  }, 90_000);

  it('kill without a running runner is an error', async () => {
    const runner = new RunnerProcess({ socketPath: dirs.file('none.sock'), metricsPort: 1 });
    await expect(runner.kill()).rejects.toThrow(/no runner to kill/);
  });
});
