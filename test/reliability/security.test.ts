/**
 * Socket safety and what leaves the process: the socket works for an unprivileged worker
 * (`nobody`), metrics listen on loopback unless told otherwise, logs never carry request
 * bodies or credential headers, and a dead mirror target cannot flood the log.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRunner, type Runner } from '../../src/runner.js';
import { createLogger } from '../../src/observability/logger.js';
import { createSayPlugin } from '../../src/plugins/say/index.js';
import { definePlugin, type Plugin } from '../../src/plugin-api/index.js';
import { ApisixClient } from '../harness/apisix-client.js';
import { encodeFrame } from '../../src/protocol/frame.js';
import { RPC, decodeRunnerFrame, encodeHttpReqCallReq, encodePrepareConfReq } from '../harness/apisix-codec.js';
import { eventually, killAllCli, startCli } from './cli-process.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  killAllCli();
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'a6s-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

async function runner(options: Partial<Parameters<typeof startRunner>[0]> & { socketPath: string }): Promise<Runner> {
  const r = await startRunner({ plugins: () => [createSayPlugin()] as Plugin<unknown>[], ...options });
  cleanups.push(() => r.close());
  return r;
}

const isRoot = process.getuid?.() === 0;

describe('the socket and an unprivileged APISIX worker', () => {
  it.skipIf(!isRoot)('a process running as nobody (uid/gid 65534) connects and is served [skipped when the tests do not run as root: cannot switch user]', async () => {
    const dir = tempDir();
    // APISIX's socket dir (its logs/ dir) is traversable by its workers; mkdtemp makes 0700.
    chmodSync(dir, 0o711);
    const socketPath = join(dir, 'r.sock');
    await runner({ socketPath, logger: createLogger({ level: 'silent' }) });
    const route = { key: 'route#1#ext-plugin-pre-req#1', conf: [{ name: 'say', value: '{"body":"hi nobody"}' }] };
    const client = new ApisixClient({ socketPath });
    const token = await client.prepareConf(route);
    await client.close();
    // What the worker sends: PrepareConf (same key, so the same token) then an HTTPReqCall.
    const wire = Buffer.concat([
      encodeFrame(RPC.PREPARE_CONF, encodePrepareConfReq(route)),
      encodeFrame(RPC.HTTP_REQ_CALL, encodeHttpReqCallReq({ id: 9, confToken: token, srcIp: new Uint8Array([10, 0, 0, 1]), method: 'GET', path: '/', args: [], headers: [] })),
    ]);
    // The worker speaks raw frames: it needs nothing from this repository (which it may not be able to read).
    const script = `
      const net = require('node:net');
      const s = net.connect(process.env.SOCK);
      const frames = []; let buf = Buffer.alloc(0);
      s.on('error', (e) => { console.log(JSON.stringify({ error: e.code, uid: process.getuid() })); process.exit(3); });
      s.on('connect', () => s.write(Buffer.from(process.argv[1], 'hex')));
      s.on('data', (d) => {
        buf = Buffer.concat([buf, d]);
        while (buf.length >= 4 && buf.length >= 4 + ((buf[1] << 16) | (buf[2] << 8) | buf[3])) {
          const n = 4 + ((buf[1] << 16) | (buf[2] << 8) | buf[3]);
          frames.push(buf.subarray(0, n).toString('hex')); buf = buf.subarray(n);
        }
        if (frames.length === 2) { console.log(JSON.stringify({ uid: process.getuid(), gid: process.getgid(), frames })); s.end(); }
      });
      setTimeout(() => { console.log(JSON.stringify({ error: 'timeout' })); process.exit(4); }, 5000).unref();
    `;
    const child = spawn(process.execPath, ['-e', script, wire.toString('hex')], {
      uid: 65534,
      gid: 65534,
      cwd: '/',
      env: { SOCK: socketPath, PATH: process.env['PATH'] ?? '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((r) => child.once('exit', r));
    expect(out).not.toContain('"error"');
    expect(code).toBe(0);
    const result = JSON.parse(out.trim().split('\n').at(-1)!) as { uid: number; gid: number; frames: string[] };
    expect(result).toMatchObject({ uid: 65534, gid: 65534 });
    const [prepared, called] = result.frames.map((h) => Buffer.from(h, 'hex'));
    expect(decodeRunnerFrame(prepared![0]!, prepared!.subarray(4))).toEqual({ type: 'prepareConf', confToken: token });
    expect(decodeRunnerFrame(called![0]!, called!.subarray(4))).toMatchObject({ type: 'reqCall', id: 9, action: { kind: 'stop', stop: { body: Buffer.from('hi nobody') } } });
  });
});
  });
});
