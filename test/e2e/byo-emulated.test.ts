/**
 * The bring-your-own-APISIX mode end to end, with the gateway emulator standing in for "your
 * APISIX": the emulator reads the suite's apisix.yaml the way standalone APISIX does (reload on
 * a whole-second mtime change, routes versioned by that mtime; StandaloneRoutesFile) and
 * connects to the runner on the socket the suite gives (APISIX's path_for_test). Everything else
 * is the BYO code path of apisix.test.ts: the runner the suite starts and restarts, the route
 * file it writes, the readiness probe, and every scenario through the shared real-APISIX
 * harness. This checks the plumbing, not APISIX.
 */
import { describe, beforeAll, afterAll } from 'vitest';
import { GatewayEmulator } from '../harness/gateway.js';
import { StandaloneRoutesFile } from '../harness/apisix-standalone.js';
import { createTempDir } from '../harness/temp-dir.js';
import { Recorder, scenarios, type ScenarioEnv, type ScenarioHarness } from './scenarios.js';
import { realApisixHarness, scenarioTests, startByoApisix } from './real-apisix.js';

describe('bring-your-own-APISIX mode, with the emulator reading apisix.yaml like standalone APISIX', () => {
  const dirs = createTempDir('a6e-');
  const recorders = { upstream: new Recorder('upstream'), mirror: new Recorder('mirror'), mirror2: new Recorder('mirror2') };
  let gateway: GatewayEmulator | undefined;
  let poller: NodeJS.Timeout | undefined;
  let stop: (() => Promise<void>) | undefined;
  let harness: ScenarioHarness;

  beforeAll(async () => {
    await Promise.all(Object.values(recorders).map((r) => r.start()));
    const byo = { gatewayUrl: '', socketPath: dirs.file('runner.sock'), routesPath: dirs.file('apisix.yaml') };
    const gw = await GatewayEmulator.start({ socketPath: byo.socketPath, routes: [] });
    gateway = gw;
    // APISIX checks every second (ngx.timer.every(1, read_apisix_yaml)); polling faster only
    // makes the test quicker: what decides a reload is the whole-second mtime.
    const file = new StandaloneRoutesFile(byo.routesPath);
    poller = setInterval(() => {
      const routes = file.reload();
      if (routes) gw.setRoutes(routes);
    }, 100);
    const env: ScenarioEnv = {
      upstreamUrl: `http://127.0.0.1:${recorders.upstream.port}`,
      mirrorUrl: `http://127.0.0.1:${recorders.mirror.port}`,
      mirror2Url: `http://127.0.0.1:${recorders.mirror2.port}`,
    };
    const routes = scenarios.flatMap((s) => s.routes(env));
    const started = await startByoApisix({ ...byo, gatewayUrl: gw.url }, routes, `127.0.0.1:${recorders.upstream.port}`);
    stop = started.stop;
    harness = realApisixHarness(started.control, env, recorders, routes);
  }, 120_000);

  afterAll(async () => {
    clearInterval(poller);
    await stop?.();
    await gateway?.close();
    await Promise.all(Object.values(recorders).map((r) => r.close()));
    dirs.remove();
  }, 60_000);

  scenarioTests(() => harness, 60_000);
});
