/** What SIGTERM promises (README "Signals"), with a real runner process: drain, grace cut, hard exit. */
import { afterEach, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, listeningUnixSockets, startCli, untilOutput } from '../harness/cli-process.js';
import { RawConnection } from '../harness/apisix-client.js';
import { cleanUp, holdCall, tempDir } from './fixtures.js';

const SLOW_VAR = join(ROOT, 'test/fixtures/plugins/slow-var.mjs');
const HANG_ON_CLOSE = join(ROOT, 'test/fixtures/plugins/hang-on-close.mjs');

afterEach(cleanUp);

const socketIn = (): string => join(tempDir('a6stop-'), 'apisix-1.sock');

describe('SIGTERM', () => {
  it('an RPC still running when the drain time is over has its connection closed, and the runner exits 0 and removes its socket', async () => {
    const socketPath = socketIn();
    const s = await startCli(['--plugin', SLOW_VAR, '--drain-timeout', '300'], { APISIX_LISTEN_ADDRESS: `unix:${socketPath}` });
    const { conn } = await holdCall(socketPath);
    s.child.kill('SIGTERM');
    // The cause of the close is the drain cut, not an ExtraInfo timeout (60 s by default).
    await expect(conn.readFrame(20_000)).rejects.toThrow(/closed/);
    expect(await s.exited).toBe(0);
    expect(s.output()).toContain('drain time is over: closing connections with RPCs still running');
    expect(s.output()).toContain('"msg":"stopped"');
    expect(existsSync(socketPath)).toBe(false);
  });

  it('when the drain ends, the listener is closed: a connect after that is refused while the process is still shutting down', async () => {
    const socketPath = socketIn();
    const s = await startCli(['--plugin', HANG_ON_CLOSE, '--drain-timeout', '200'], { APISIX_LISTEN_ADDRESS: `unix:${socketPath}` });
    expect(listeningUnixSockets(s.pid)).toEqual([join(socketPath, '..', `.${s.pid}.new`)]);
    s.child.kill('SIGTERM');
    // The plugin's close hook never ends, so the process outlives its listener until the hard exit.
    await untilOutput(s, 'removed the socket file');
    expect(s.child.exitCode).toBeNull();
    expect(listeningUnixSockets(s.pid)).toEqual([]);
    await expect(RawConnection.connect(socketPath, 1000)).rejects.toThrow(/ENOENT|ECONNREFUSED/);
    // Hard exit: the close hook never finished, yet the process exits, before APISIX's SIGKILL.
    expect(await s.exited).toBe(0);
    expect(s.output()).toContain('shutdown did not finish in time');
    expect(s.output()).not.toContain('"msg":"stopped"');
  });
});
