/**
 * Every scenario of scenarios.ts against the gateway emulator (a test instrument that does what
 * APISIX's ext-plugin code does) + a real runner + real upstream and mirror HTTP servers on
 * 127.0.0.1. The runner runs in-process (startRunner) with the built-in plugins and the e2e test
 * plugins; the disruptive scenario gets its own runner as a child process (the CLI, through tsx)
 * so that it can be killed.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startRunner, type Runner } from '../../src/runner.js';
import { builtinPlugins } from '../../src/plugins/index.js';
import { createLogger } from '../../src/observability/logger.js';
import e2ePlugins from '../harness/e2e-plugins.mjs';
import { GatewayEmulator, type GatewayRoute } from '../harness/gateway.js';
import { RawConnection } from '../harness/raw-connection.js';
import { createTempDir } from '../harness/temp-dir.js';
import { Recorder, promSample, scenarios, sendClientRequest, type ScenarioEnv, type ScenarioHarness, type ScenarioRoute } from './scenarios.js';
import { waitUntil } from '../harness/wait.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

function toGatewayRoute(r: ScenarioRoute, env: ScenarioEnv): GatewayRoute {
  return { id: r.id, uri: r.uri, version: r.version, upstream: env.upstreamUrl, plugins: r.plugins };
}

interface Peer {
  harness: ScenarioHarness;
  gateway: GatewayEmulator;
  close(): Promise<void>;
}

/** Builds a harness around a gateway emulator; the runner side is supplied by the caller. */
async function peerHarness(
  socketPath: string,
  recorders: { upstream: Recorder; mirror: Recorder; mirror2: Recorder },
  routesOf: (env: ScenarioEnv) => ScenarioRoute[],
  runnerSide: { metricsText(): Promise<string>; kill(): Promise<void> },
): Promise<Peer> {
  const env: ScenarioEnv = {
    upstreamUrl: `http://127.0.0.1:${recorders.upstream.port}`,
    mirrorUrl: `http://127.0.0.1:${recorders.mirror.port}`,
    mirror2Url: `http://127.0.0.1:${recorders.mirror2.port}`,
  };
  let routes = routesOf(env);
  const gw = await GatewayEmulator.start({ socketPath, routes: routes.map((r) => toGatewayRoute(r, env)) });
  const harness: ScenarioHarness = {
    kind: 'peer',
    env,
    ...recorders,
    send: (scenario, req) => sendClientRequest(gw.url, scenario, req),
    mirrorSkipped: async (target, reason) => promSample(await runnerSide.metricsText(), 'apisix_runner_mirror_skipped_total', { target, reason }),
    killRunner: () => runnerSide.kill(),
    async updateRoute(route, applied) {
      routes = routes.map((r) => (r.id === route.id ? route : r));
      gw.setRoutes(routes.map((r) => toGatewayRoute(r, env)));
      await waitUntil(applied, `route ${route.id} applied by the gateway emulator`);
    },
  };
  return { harness, gateway: gw, close: () => gw.close() };
}

const recorders = { upstream: new Recorder('upstream'), mirror: new Recorder('mirror'), mirror2: new Recorder('mirror2') };
const dirs = createTempDir();

beforeAll(async () => {
  await Promise.all(Object.values(recorders).map((r) => r.start()));
});
afterAll(async () => {
  await Promise.all(Object.values(recorders).map((r) => r.close()));
  dirs.remove();
});

describe('scenarios: gateway emulator + in-process runner', () => {
  const socketPath = dirs.file('peer.sock');
  let runner: Runner;
  let peer: Peer;
  const shared = scenarios.filter((s) => !s.disruptive);

  beforeAll(async () => {
    runner = await startRunner({
      socketPath,
      logger: createLogger({ level: 'silent' }),
      plugins: (host) => [...builtinPlugins(host), ...e2ePlugins],
    });
    peer = await peerHarness(socketPath, recorders, (env) => shared.flatMap((s) => s.routes(env)), {
      metricsText: () => runner.host.metrics.metrics(),
      kill: () => Promise.reject(new Error('the shared runner is not killed; disruptive scenarios have their own')),
    });
  });
  afterAll(async () => {
    await peer?.close();
    await runner?.close();
  });

  for (const s of shared) {
    it(s.name, async () => {
      await s.run(peer.harness);
    });
  }

  it('conf-change makes the emulator send one new PrepareConf for the new route version', async () => {
    // Its own emulator (on the shared runner), so the count does not depend on other tests.
    const confChange = scenarios.find((s) => s.name === 'conf-change')!;
    const own = await peerHarness(socketPath, recorders, (env) => confChange.routes(env), {
      metricsText: () => runner.host.metrics.metrics(),
      kill: () => Promise.reject(new Error('not used')),
    });
    try {
      await confChange.run(own.harness);
      // One PrepareConf for version 1, one for version 2 (the emulator's key holds the version).
      expect(own.gateway.client.stats.prepareConfSent).toBe(2);
      expect(own.gateway.client.stats.tokenFlushes).toBe(0);
    } finally {
      await own.close();
    }
  });
});

describe('scenarios: gateway emulator + runner CLI child process (disruptive)', () => {
  for (const s of scenarios.filter((x) => x.disruptive)) {
    it(s.name, async () => {
      const socketPath = dirs.file(`${s.name.slice(0, 8)}.sock`);
      const child: ChildProcess = spawn(
        process.execPath,
        ['--import', 'tsx', 'src/cli.ts', '--socket', socketPath, '--log-level', 'silent', '--plugin', 'test/harness/e2e-plugins.mjs'],
        { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] },
      );
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      let peer: Peer | undefined;
      try {
        // Ready when the socket accepts a connection (bounded wait, no fixed sleep).
        await waitUntil(async () => {
          if (child.exitCode !== null) throw new Error(`runner CLI exited early: ${stderr}`);
          try {
            const c = await RawConnection.connect(socketPath, 500);
            c.close();
            return true;
          } catch {
            return false;
          }
        }, 'the runner socket to accept a connection', { limitMs: 20_000, intervalMs: 50 });
        peer = await peerHarness(socketPath, recorders, (env) => s.routes(env), {
          metricsText: () => Promise.resolve(''),
          async kill() {
            child.kill('SIGKILL');
            await exited;
          },
        });
        await s.run(peer.harness);
      } finally {
        await peer?.close();
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGKILL');
          await exited;
        }
      }
    }, 60_000);
  }
});
