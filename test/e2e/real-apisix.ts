/**
 * One ScenarioHarness for every real APISIX, whoever runs it (testcontainers or the user): the
 * two suites differ only in how routes reach APISIX and how the runner is killed, given here as
 * a `RealApisixControl`.
 */
import { it } from 'vitest';
import { request } from 'undici';
import { Recorder, promSample, scenarios, sendClientRequest, type ScenarioEnv, type ScenarioHarness, type ScenarioRoute } from './scenarios.js';
import { renderApisixYaml, writeRoutesFile } from '../harness/apisix-standalone.js';
import { RunnerProcess, freePort, type ByoApisix } from './byo-apisix.js';
import { waitUntil } from '../harness/wait.js';

/** What a real-APISIX suite provides. */
export interface RealApisixControl {
  readonly gatewayUrl: string;
  /** The runner's Prometheus endpoint. */
  readonly metricsUrl: string;
  /** Writes the full route table to APISIX's standalone apisix.yaml (with an mtime that moves). */
  writeRoutes(routes: readonly ScenarioRoute[]): Promise<void>;
  /** SIGKILLs the runner (APISIX, or the suite, starts it again 3 s later). */
  killRunner(): Promise<void>;
}

export interface Recorders {
  readonly upstream: Recorder;
  readonly mirror: Recorder;
  readonly mirror2: Recorder;
}

/** The scenario harness over a real APISIX; `routes` is the table already written. */
export function realApisixHarness(control: RealApisixControl, env: ScenarioEnv, recorders: Recorders, routes: readonly ScenarioRoute[]): ScenarioHarness {
  let current = [...routes];
  return {
    kind: 'apisix',
    env,
    ...recorders,
    send: (scenario, req) => sendClientRequest(control.gatewayUrl, scenario, req),
    async mirrorSkipped(target, why) {
      const res = await request(control.metricsUrl);
      return promSample(await res.body.text(), 'apisix_runner_mirror_skipped_total', { target, reason: why });
    },
    killRunner: () => control.killRunner(),
    async updateRoute(route, applied) {
      current = current.map((r) => (r.id === route.id ? route : r));
      await control.writeRoutes(current);
      // Standalone APISIX checks apisix.yaml's mtime about once a second.
      await waitUntil(applied, `route ${route.id} applied by APISIX`, { limitMs: 20_000, intervalMs: 200 });
    },
  };
}

/** Polls `${gatewayUrl}/__ready` until APISIX routes requests and the runner answers (bounded). */
export async function waitReady(gatewayUrl: string, timeoutMs = 60_000): Promise<void> {
  let last = '';
  const ready = async (): Promise<boolean> => {
    try {
      const res = await request(`${gatewayUrl}/__ready`);
      const body = await res.body.text();
      last = `${res.statusCode} ${body.slice(0, 200)}`;
      return res.statusCode === 200 && body === 'ready';
    } catch (err) {
      last = (err as Error).message;
      return false;
    }
  };
  try {
    await waitUntil(ready, `APISIX at ${gatewayUrl} to serve /__ready`, { limitMs: timeoutMs, intervalMs: 250 });
  } catch (err) {
    throw new Error(`${(err as Error).message} (last: ${last})`, { cause: err });
  }
}

/**
 * Bring-your-own mode: starts the runner on APISIX's path_for_test socket, writes the routes to
 * its apisix.yaml and waits until APISIX serves them. `stop` stops the runner.
 */
export async function startByoApisix(byo: ByoApisix, routes: readonly ScenarioRoute[], upstreamNode: string): Promise<{ control: RealApisixControl; stop(): Promise<void> }> {
  const runner = new RunnerProcess({ socketPath: byo.socketPath, metricsPort: await freePort() });
  await runner.start();
  try {
    writeRoutesFile(byo.routesPath, renderApisixYaml(routes, upstreamNode));
    await waitReady(byo.gatewayUrl);
  } catch (err) {
    await runner.close();
    throw err;
  }
  return {
    control: {
      gatewayUrl: byo.gatewayUrl,
      metricsUrl: runner.metricsUrl,
      writeRoutes: async (all) => { writeRoutesFile(byo.routesPath, renderApisixYaml(all, upstreamNode)); },
      killRunner: () => runner.kill(),
    },
    stop: () => runner.close(),
  };
}

/**
 * One test per scenario against a real (or file-reading) APISIX, the disruptive ones last: the
 * runner comes back only 3 s after it dies, and every scenario shares one APISIX.
 */
export function scenarioTests(harness: () => ScenarioHarness, timeoutMs: number): void {
  const ordered = [...scenarios.filter((s) => !s.disruptive), ...scenarios.filter((s) => s.disruptive)];
  for (const s of ordered) {
    it(s.name, async () => {
      await s.run(harness());
    }, timeoutMs);
  }
}
