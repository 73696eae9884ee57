/**
 * Every scenario of scenarios.ts against REAL Apache APISIX (Docker, via testcontainers): the
 * image of docker/Dockerfile (apache/apisix 3.x Debian + Node + the built runner, started by
 * APISIX from ext-plugin.cmd), in standalone mode with the scenarios' routes in apisix.yaml.
 * The upstream and mirror targets are the same recorders as in peer.test.ts, on the host's
 * 127.0.0.1, reached from the container through TestContainers.exposeHostPorts
 * (host.testcontainers.internal).
 *
 * Differences from the baked image, all made at container creation (no change to docker/):
 * - config.yaml: docker/apisix/config.yaml with `--plugin /opt/e2e/e2e-plugins.mjs` (the test
 *   plugins) and `--metrics-address 0.0.0.0:9091` added to ext-plugin.cmd;
 * - apisix.yaml: the scenarios' routes plus `/__ready` (a `say` route) used as the readiness probe,
 *   so "ready" means APISIX serves routes AND the runner answers.
 *
 * Without a reachable Docker engine the whole suite is skipped with the reason in its title.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { fileURLToPath } from 'node:url';
import { GenericContainer, TestContainers, Wait, getContainerRuntimeClient, type StartedTestContainer } from 'testcontainers';
import { request } from 'undici';
import { renderApisixYaml, renderConfigYaml } from '../harness/apisix-standalone.js';
import { Recorder, promSample, scenarios, sendClientRequest, type ScenarioEnv, type ScenarioHarness, type ScenarioRoute } from './scenarios.js';

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

const reason = await dockerUnavailable();
const suite = reason === undefined ? describe : describe.skip;
if (reason !== undefined) console.warn(`test/e2e/apisix.test.ts skipped: no Docker engine reachable (${reason})`);
const title = reason === undefined ? 'scenarios: real APISIX (Docker)' : `scenarios: real APISIX (Docker) — skipped, no Docker engine reachable: ${reason}`;

suite(title, () => {
  const recorders = { upstream: new Recorder('upstream'), mirror: new Recorder('mirror'), mirror2: new Recorder('mirror2') };
  let container: StartedTestContainer;
  let harness: ScenarioHarness;
  let routes: ScenarioRoute[] = [];

  beforeAll(async () => {
    await Promise.all(Object.values(recorders).map((r) => r.start()));
    await TestContainers.exposeHostPorts(recorders.upstream.port, recorders.mirror.port, recorders.mirror2.port);
    const env: ScenarioEnv = {
      upstreamUrl: `http://${HOST_ALIAS}:${recorders.upstream.port}`,
      mirrorUrl: `http://${HOST_ALIAS}:${recorders.mirror.port}`,
      mirror2Url: `http://${HOST_ALIAS}:${recorders.mirror2.port}`,
    };
    routes = scenarios.flatMap((s) => s.routes(env));
    const image = await GenericContainer.fromDockerfile(REPO, 'docker/Dockerfile').build(IMAGE, { deleteOnExit: false });
    container = await image
      .withCopyContentToContainer([
        { content: renderConfigYaml(['--plugin', PLUGINS_IN_CONTAINER, '--metrics-address', '0.0.0.0:9091']), target: `${CONF_DIR}/config.yaml`, mode: 0o644 },
        { content: renderApisixYaml(routes, `${HOST_ALIAS}:${recorders.upstream.port}`), target: `${CONF_DIR}/apisix.yaml`, mode: 0o644 },
      ])
      .withCopyFilesToContainer([{ source: `${REPO}test/harness/e2e-plugins.mjs`, target: PLUGINS_IN_CONTAINER, mode: 0o644 }])
      .withExposedPorts(9080, 9091)
      // Ready = APISIX routes requests and the runner (spawned by APISIX) answers a `say` route.
      .withWaitStrategy(Wait.forHttp('/__ready', 9080).forStatusCode(200))
      .withStartupTimeout(180_000)
      .start();
    const gatewayUrl = `http://${container.getHost()}:${container.getMappedPort(9080)}`;
    const metricsUrl = `http://${container.getHost()}:${container.getMappedPort(9091)}/metrics`;

    harness = {
      kind: 'apisix',
      env,
      ...recorders,
      send: (scenario, req) => sendClientRequest(gatewayUrl, scenario, req),
      async mirrorSkipped(target, why) {
        const res = await request(metricsUrl);
        return promSample(await res.body.text(), 'apisix_runner_mirror_skipped_total', { target, reason: why });
      },
      async killRunner() {
        // Find the runner by its command line in /proc (the image may lack pgrep); `[c]` keeps
        // this shell's own command line from matching.
        const script = 'for p in /proc/[0-9]*; do if tr "\\0" " " < $p/cmdline 2>/dev/null | grep -q "dist/[c]li.js"; then kill -9 ${p#/proc/} && echo ${p#/proc/}; fi; done';
        const result = await container.exec(['sh', '-c', script]);
        expect(result.exitCode).toBe(0);
        expect(result.output.trim(), 'pid of the killed runner').toMatch(/^\d+$/);
      },
      async updateRoute(route, applied) {
        routes = routes.map((r) => (r.id === route.id ? route : r));
        await container.copyContentToContainer([{ content: renderApisixYaml(routes, `${HOST_ALIAS}:${recorders.upstream.port}`), target: `${CONF_DIR}/apisix.yaml`, mode: 0o644 }]);
        // Standalone mode reloads apisix.yaml when it changes (checked about once a second).
        await expect.poll(applied, { timeout: 20_000, interval: 200 }).toBe(true);
      },
    };
  }, 20 * 60_000);

  afterAll(async () => {
    await container?.stop();
    await Promise.all(Object.values(recorders).map((r) => r.close()));
  }, 120_000);

  // Disruptive scenarios last: APISIX restarts the runner 3 s after it dies.
  const ordered = [...scenarios.filter((s) => !s.disruptive), ...scenarios.filter((s) => s.disruptive)];
  for (const s of ordered) {
    it(s.name, async () => {
      await s.run(harness);
    }, 120_000);
  }
});
