/**
 * Socket safety and what leaves the process: the socket works for an unprivileged worker
 * (`nobody`), metrics listen on loopback unless told otherwise, logs never carry request
 * bodies or credential headers, and a dead mirror target cannot flood the log.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { chmodSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { startRunner, type Runner } from '../../src/runner.js';
import { createLogger } from '../../src/observability/logger.js';
import { createSayPlugin } from '../../src/plugins/say/index.js';
import { definePlugin, type Plugin } from '../../src/plugin-api/index.js';
import { ApisixClient } from '../harness/apisix-client.js';
import { encodeFrame } from '../../src/protocol/frame.js';
import { RPC, encodeHttpReqCallReq, encodePrepareConfReq } from '../harness/apisix-codec.js';
import { decodeFrameBytes } from '../harness/frames.js';
import { createTempDir } from '../harness/temp-dir.js';
import { waitUntil } from '../harness/wait.js';
import { killAllCli, startCli } from '../harness/cli-process.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  killAllCli();
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tempDir(): string {
  const d = createTempDir('a6s-');
  cleanups.push(d.remove);
  return d.path;
}

async function runner(options: Partial<Parameters<typeof startRunner>[0]> & { socketPath: string }): Promise<Runner> {
  const r = await startRunner({ plugins: () => [createSayPlugin()] as Plugin<unknown>[], ...options });
  cleanups.push(() => r.close());
  return r;
}

const isRoot = process.getuid?.() === 0;
/** An address of this machine other than loopback, to check that metrics are not served there. */
const EXTERNAL_IPV4 = Object.values(networkInterfaces()).flat().find((a) => a && a.family === 'IPv4' && !a.internal)?.address;

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
    expect(decodeFrameBytes(prepared!)).toEqual({ type: 'prepareConf', confToken: token });
    expect(decodeFrameBytes(called!)).toMatchObject({ type: 'reqCall', id: 9, action: { kind: 'stop', stop: { body: Buffer.from('hi nobody') } } });
  });
});

describe('metrics listen on loopback unless told otherwise', () => {
  it('are off by default, and a bare port or 127.0.0.1 binds loopback only', async () => {
    const dir = tempDir();
    const off = await runner({ socketPath: join(dir, 'a.sock'), logger: createLogger({ level: 'silent' }) });
    expect(off.metricsUrl).toBeUndefined();
    for (const [i, address] of ['0', '127.0.0.1:0'].entries()) {
      const r = await runner({ socketPath: join(dir, `m${i}.sock`), logger: createLogger({ level: 'silent' }), metricsAddress: address });
      const url = new URL(r.metricsUrl!);
      expect(url.hostname).toBe('127.0.0.1');
      expect((await fetch(url)).status).toBe(200);
    }
  });

  it.skipIf(!EXTERNAL_IPV4)(`are not reachable on the machine's other addresses${EXTERNAL_IPV4 ? '' : ' [skipped: this host has no external IPv4 address to try]'}`, async () => {
    const dir = tempDir();
    for (const [i, address] of ['0', '127.0.0.1:0'].entries()) {
      const r = await runner({ socketPath: join(dir, `x${i}.sock`), logger: createLogger({ level: 'silent' }), metricsAddress: address });
      const url = new URL(r.metricsUrl!);
      const refused = await new Promise<boolean>((resolve) => {
        const s = createConnection({ host: EXTERNAL_IPV4!, port: Number(url.port) });
        s.once('connect', () => { s.destroy(); resolve(false); });
        s.once('error', () => resolve(true));
      });
      expect(refused).toBe(true);
    }
  });

  it('the CLI serves no metrics unless asked (nothing but the socket is opened)', async () => {
    const dir = tempDir();
    const cli = await startCli([], { APISIX_LISTEN_ADDRESS: `unix:${join(dir, 'r.sock')}`, RUNNER_METRICS_ADDRESS: '' });
    expect(cli.output()).not.toMatch(/"metrics":"http/);
    // No TCP listener belongs to the process: its socket inodes are all absent from /proc/net/tcp{,6} listeners.
    const inodes = new Set(readdirSync(`/proc/${cli.pid}/fd`).map((fd) => {
      try { return /socket:\[(\d+)\]/.exec(readlinkSync(`/proc/${cli.pid}/fd/${fd}`))?.[1]; } catch { return undefined; }
    }).filter((x): x is string => x !== undefined));
    for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
      const listening = readFileSync(table, 'utf8').split('\n').slice(1).map((l) => l.trim().split(/\s+/)).filter((f) => f[3] === '0A');
      for (const f of listening) expect(inodes.has(f[9]!)).toBe(false);
    }
    cli.child.kill('SIGTERM');
    expect(await cli.exited).toBe(0);
  });
});

describe('logs never carry request bodies or credential headers', () => {
  const SECRETS = {
    authorization: 'Bearer SECRET-AUTHZ-7f3a',
    cookie: 'session=SECRET-COOKIE-91bc',
    'proxy-authorization': 'Basic SECRET-PROXY-c0de',
  };
  const BODY = 'SECRET-BODY-{"card":"4111111111111111"}';
  const headers = [{ name: 'host', value: 'example.com' }, ...Object.entries(SECRETS).map(([name, value]) => ({ name, value })), { name: 'x-visible', value: 'VISIBLE-HEADER' }];

  /** A runner whose real logger (createLogger, the one the CLI uses) writes to a file we read back. */
  async function loggingRunner(plugin: Plugin<unknown>) {
    const dir = tempDir();
    const logFile = join(dir, 'runner.log');
    const r = await runner({ socketPath: join(dir, 'r.sock'), logger: createLogger({ level: 'trace', file: logFile }), plugins: () => [createSayPlugin(), plugin] as Plugin<unknown>[] });
    const client = new ApisixClient({ socketPath: r.socketPath });
    cleanups.push(() => client.close());
    return { client, read: () => readFileSync(logFile, 'utf8') };
  }

  function expectClean(log: string): void {
    for (const v of [...Object.values(SECRETS), 'SECRET-AUTHZ', 'SECRET-COOKIE', 'SECRET-PROXY', 'SECRET-BODY']) expect(log).not.toContain(v);
  }

  const logged = (name: string, log: (req: import('../../src/plugin-api/index.js').HttpRequest, body: string, logger: import('../../src/plugin-api/index.js').Logger) => void) =>
    definePlugin<unknown>({
      name,
      async onRequest(_c, req, ctx) {
        const body = (await req.body())?.toString() ?? '';
        log(req, body, ctx.logger);
      },
    });

  const headerObject = (req: import('../../src/plugin-api/index.js').HttpRequest) => Object.fromEntries(req.headerEntries().map((e) => [e.name, e.value ?? '']));

  const cases: Array<[string, Plugin<unknown>]> = [
    ['headers object and body at the top level', logged('top', (req, body, l) => l.info({ headers: headerObject(req), body }, 'request'))],
    ['nested one level (e.g. { req: { headers, body } })', logged('nested', (req, body, l) => l.warn({ req: { headers: headerObject(req), body } }, 'request'))],
    ['the header entry list (req.headerEntries()) and the body', logged('entries', (req, body, l) => l.info({ headers: req.headerEntries(), body }, 'request'))],
  ];

  for (const [what, plugin] of cases) {
    it(`a plugin logging ${what}: values redacted, other headers kept`, async () => {
      const { client, read } = await loggingRunner(plugin);
      const out = await client.httpReqCall({ key: `route#${plugin.name}`, conf: [{ name: plugin.name, value: '{}' }] }, {
        method: 'POST', path: '/pay', args: [], headers, srcIp: '10.0.0.1', body: BODY,
      });
      expect(out.kind).toBe('none');
      const log = read();
      expect(log).toContain('VISIBLE-HEADER'); // the plugin's line was written
      expectClean(log);
    });
  }

  it("the runner's own lines at trace level (calls, ExtraInfo, a throwing plugin) carry none of them", async () => {
    const boom = definePlugin<unknown>({ name: 'boom', async onRequest(_c, req) { await req.body(); throw new Error('plugin failed'); } });
    const { client, read } = await loggingRunner(boom);
    const req = { method: 'POST', path: '/pay', args: [], headers, srcIp: '10.0.0.1', body: BODY } as const;
    expect((await client.httpReqCall({ key: 'route#boom', conf: [{ name: 'boom', value: '{}' }] }, req)).kind).toBe('error');
    expect((await client.httpReqCall({ key: 'route#say', conf: [{ name: 'say', value: '{"body":"x"}' }] }, req)).kind).toBe('stop');
    const log = read();
    expect(log).toContain('plugin failed');
    expectClean(log);
  });
});

describe('a dead mirror target cannot flood the log', () => {
  it('through the CLI: error lines stay within one per log_interval, and their suppressed counts add up to every failure', async () => {
    const dir = tempDir();
    const socketPath = join(dir, 'r.sock');
    // A port nobody listens on.
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
    const port = (probe.address() as { port: number }).port;
    await new Promise((r) => probe.close(r));
    const target = `http://127.0.0.1:${port}`;
    const intervalMs = 200;
    writeFileSync(join(dir, 'c.json'), JSON.stringify({ plugin_attr: { 'proxy-mirror': {
      log_interval: `${intervalMs}ms`,
      // Every copy must try and fail, promptly: the breaker would otherwise take the dead target
      // out after 3 refusals, and copies queued for a worker thread would be dropped as queue-full.
      breaker: { failures: 1000 },
      mirror_threads: 1,
    } } }));
    const cli = await startCli(['--config', join(dir, 'c.json')], { APISIX_LISTEN_ADDRESS: `unix:${socketPath}` });
    const client = new ApisixClient({ socketPath });
    cleanups.push(() => client.close());
    const routes = [1, 2, 3].map((i) => ({ key: `route#${i}#ext-plugin-pre-req#1`, conf: [{ name: 'proxy-mirror', value: JSON.stringify({ host: target, sample_ratio: 1 }) }] }));
    const started = Date.now();
    const N = 900;
    for (let i = 0; i < N; i += 50) {
      await Promise.all(Array.from({ length: 50 }, (_, j) => client.httpReqCall(routes[(i + j) % 3]!, { method: 'GET', path: '/', args: [], headers: [{ name: 'host', value: 'h' }], srcIp: '10.0.0.1' })));
    }
    // Let the last copies fail, then one more interval so the final suppressed count is flushed by a last failure.
    await new Promise((r) => setTimeout(r, 300));
    await client.httpReqCall(routes[0]!, { method: 'GET', path: '/', args: [], headers: [{ name: 'host', value: 'h' }], srcIp: '10.0.0.1' });
    const elapsedMs = Date.now() - started;
    const failed = (): Array<Record<string, unknown>> => cli.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l['target'] === target && l['outcome'] === 'error' && /failed/.test(String(l['msg'])));
    await waitUntil(() => failed().length > 0, 'a mirror failure logged');
    await new Promise((r) => setTimeout(r, 100));
    const lines = failed();
    // Bounded by time, not by traffic: at most one line per interval (+1 for the first).
    expect(lines.length).toBeLessThanOrEqual(Math.floor(elapsedMs / intervalMs) + 1);
    expect(lines.length).toBeLessThan(N / 10);
    // Nothing is lost in the accounting: lines + suppressed = failures logged so far (the tail may still be pending).
    const accounted = lines.length + lines.reduce((a, l) => a + Number(l['suppressed'] ?? 0), 0);
    expect(accounted).toBeLessThanOrEqual(N + 1);
    expect(accounted).toBeGreaterThan(N / 2);
    cli.child.kill('SIGTERM');
    expect(await cli.exited).toBe(0);
  });
});
