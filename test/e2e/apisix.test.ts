/**
 * Every scenario of scenarios.ts against REAL Apache APISIX, in one of two modes:
 *
 * - Bring your own APISIX (no Docker): APISIX_E2E_GATEWAY, APISIX_E2E_SOCKET and
 *   APISIX_E2E_ROUTES point at an APISIX running standalone with `ext-plugin.path_for_test` set
 *   (docs/testing.md shows its config.yaml). The suite writes the routes to that apisix.yaml and
 *   starts the runner itself on that socket (restarting it 3 s after `runner-killed`, as APISIX
 *   would). The upstream and mirror targets are on 127.0.0.1, like APISIX.
 * - Docker (testcontainers): the image of docker/Dockerfile (apache/apisix 3.18 Debian + Node +
 *   the built runner, started by APISIX from ext-plugin.cmd), standalone, with config.yaml =
 *   docker/apisix/config.yaml plus `--plugin /opt/e2e/e2e-plugins.mjs --metrics-address
 *   0.0.0.0:9091` on the runner command. Recorders on the host are reached through
 *   TestContainers.exposeHostPorts (host.testcontainers.internal).
 *
 * Both modes use the same harness (real-apisix.ts) and a `/__ready` route (a `say`) as readiness
 * probe. With neither, the suite is skipped with one line saying how to enable it.
 */
import { describe, beforeAll, afterAll } from 'vitest';
import { fileURLToPath } from 'node:url';
import { GenericContainer, TestContainers, Wait, getContainerRuntimeClient, type StartedTestContainer } from 'testcontainers';
import { nextMtimeSeconds, renderApisixYaml, renderConfigYaml } from '../harness/apisix-standalone.js';
import { Recorder, scenarios, type ScenarioEnv, type ScenarioHarness, type ScenarioRoute } from './scenarios.js';
import { BYO_HINT, byoFromEnv } from './byo-apisix.js';
import { realApisixHarness, scenarioTests, startByoApisix, type RealApisixControl } from './real-apisix.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const IMAGE = 'apisix-ts-plugin-runner:e2e';
const CONF_DIR = '/usr/local/apisix/conf';
const PLUGINS_IN_CONTAINER = '/opt/e2e/e2e-plugins.mjs';
const HOST_ALIAS = 'host.testcontainers.internal';

/** Why Docker cannot be used here, or undefined when an engine answers. */
async function dockerUnavailable(): Promise<string | undefined> {
  try {
    // Resolves only when a strategy found an engine that answers a ping.
    await getContainerRuntimeClient();
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

const byo = byoFromEnv(process.env);
const dockerReason = byo ? undefined : await dockerUnavailable();
const mode = byo ? 'byo' : dockerReason === undefined ? 'docker' : undefined;
if (!mode) console.warn(`test/e2e/apisix.test.ts skipped (no APISIX): ${BYO_HINT}`);
const suite = mode ? describe : describe.skip;
const title = mode === 'byo' ? `scenarios: your APISIX at ${byo!.gatewayUrl}` : mode === 'docker' ? 'scenarios: real APISIX (Docker)' : `scenarios: real APISIX — skipped: ${BYO_HINT}`;

/** Starts the chosen APISIX mode with `routes`; returns its control and a stop function. */
async function startApisix(routes: readonly ScenarioRoute[], upstreamNode: string): Promise<{ control: RealApisixControl; stop(): Promise<void> }> {
  if (byo) return startByoApisix(byo, routes, upstreamNode);
  const image = await GenericContainer.fromDockerfile(REPO, 'docker/Dockerfile').build(IMAGE, { deleteOnExit: false });
  const container: StartedTestContainer = await image
    .withCopyContentToContainer([
      { content: renderConfigYaml(['--plugin', PLUGINS_IN_CONTAINER, '--metrics-address', '0.0.0.0:9091']), target: `${CONF_DIR}/config.yaml`, mode: 0o644 },
      { content: renderApisixYaml(routes, upstreamNode), target: `${CONF_DIR}/apisix.yaml`, mode: 0o644 },
    ])
    .withCopyFilesToContainer([{ source: `${REPO}test/harness/e2e-plugins.mjs`, target: PLUGINS_IN_CONTAINER, mode: 0o644 }])
    .withExposedPorts(9080, 9091)
    // Ready = APISIX routes requests and the runner (spawned by APISIX) answers a `say` route.
    .withWaitStrategy(Wait.forHttp('/__ready', 9080).forStatusCode(200))
    .withStartupTimeout(180_000)
    .start();
  let lastMtimeMs: number | undefined = Date.now();
  return {
    control: {
      gatewayUrl: `http://${container.getHost()}:${container.getMappedPort(9080)}`,
      metricsUrl: `http://${container.getHost()}:${container.getMappedPort(9091)}/metrics`,
      async writeRoutes(all) {
        const target = `${CONF_DIR}/apisix.yaml`;
        await container.copyContentToContainer([{ content: renderApisixYaml(all, upstreamNode), target, mode: 0o644 }]);
        // The copy's mtime may fall in the same second as the last one: set it explicitly.
        const mtime = nextMtimeSeconds(lastMtimeMs, Date.now());
        lastMtimeMs = mtime * 1000;
        const touched = await container.exec(['touch', '-m', '-d', `@${mtime}`, target]);
        if (touched.exitCode !== 0) throw new Error(`touch ${target} failed: ${touched.output}`);
      },
      async killRunner() {
        // Find the runner by its command line in /proc (the image may lack pgrep); `[c]` keeps
        // this shell's own command line from matching.
        const script = 'for p in /proc/[0-9]*; do if tr "\\0" " " < $p/cmdline 2>/dev/null | grep -q "dist/[c]li.js"; then kill -9 ${p#/proc/} && echo ${p#/proc/}; fi; done';
        const result = await container.exec(['sh', '-c', script]);
        if (result.exitCode !== 0 || !/^\d+$/.test(result.output.trim())) throw new Error(`could not kill the runner: ${result.output}`);
      },
    },
    stop: async () => { await container.stop(); },
  };
}

suite(title, () => {
  const recorders = { upstream: new Recorder('upstream'), mirror: new Recorder('mirror'), mirror2: new Recorder('mirror2') };
  let harness: ScenarioHarness;
  let stop: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    await Promise.all(Object.values(recorders).map((r) => r.start()));
    const host = mode === 'docker' ? HOST_ALIAS : '127.0.0.1';
    if (mode === 'docker') await TestContainers.exposeHostPorts(recorders.upstream.port, recorders.mirror.port, recorders.mirror2.port);
    const env: ScenarioEnv = {
      upstreamUrl: `http://${host}:${recorders.upstream.port}`,
      mirrorUrl: `http://${host}:${recorders.mirror.port}`,
      mirror2Url: `http://${host}:${recorders.mirror2.port}`,
    };
    const routes = scenarios.flatMap((s) => s.routes(env));
    const started = await startApisix(routes, `${host}:${recorders.upstream.port}`);
    stop = started.stop;
    harness = realApisixHarness(started.control, env, recorders, routes);
  }, 20 * 60_000);

  afterAll(async () => {
    await stop?.();
    await Promise.all(Object.values(recorders).map((r) => r.close()));
  }, 120_000);

  scenarioTests(() => harness, 120_000);
});
