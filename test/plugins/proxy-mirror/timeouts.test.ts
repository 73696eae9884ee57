/**
 * The mirror's connect, send and overall timeouts with real sockets on 127.0.0.1 (the read
 * timeout is in resilience.test.ts), and what a request that is not sampled costs: nothing.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { describe, it, expect, afterEach } from 'vitest';
import { RecordingTarget, call, expectOk, mirrorRoute, startMirrorRunner, until, type MirrorRunner } from './fixtures.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function runner(opts: Parameters<typeof startMirrorRunner>[0] = {}): Promise<MirrorRunner> {
  const mr = await startMirrorRunner({ now: () => 0, ...opts });
  cleanups.push(() => mr.close());
  return mr;
}

/**
 * A port whose accept queue is full: a child process listens with backlog 1 (Node takes 0 as
 * "default") and blocks its event loop so it never accepts; two held connections fill the
 * queue and the kernel drops every later SYN, so a connect hangs until the client gives up.
 */
async function unconnectablePort(): Promise<number> {
  const child: ChildProcess = spawn(process.execPath, ['-e', `
    const s = require('node:net').createServer();
    s.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
      process.stdout.write(s.address().port + '\\n', () => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60000));
    });
  `], { stdio: ['ignore', 'pipe', 'inherit'] });
  cleanups.push(() => { child.kill('SIGKILL'); });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    child.once('exit', () => reject(new Error('listener child exited')));
  });
  for (let i = 0; i < 2; i++) {
    const filler = net.connect(port, '127.0.0.1');
    cleanups.push(() => { filler.destroy(); });
    await new Promise<void>((resolve, reject) => { filler.once('connect', resolve); filler.once('error', reject); });
  }
  return port;
}

const count = (mr: MirrorRunner, target: string, outcome: string): Promise<number> =>
  mr.metric('apisix_runner_mirror_requests_total', { target, outcome });

describe('mirror timeouts', () => {
  it('cuts a connect that hangs with the connect timeout and counts it as a timeout', async () => {
    const host = `http://127.0.0.1:${await unconnectablePort()}`;
    const mr = await runner();
    const route = mirrorRoute('route#connect-timeout#x#1', { host, timeout: { connect: 300, send: 60_000, read: 60_000 } });
    expect(expectOk(await mr.client.httpReqCall(route, call())).kind).toBe('none');
    await until(async () => (await count(mr, host, 'timeout')) === 1, 'connect timeout counted');
    const line = mr.logs.find((l) => l['target'] === host && String(l['msg']).includes('failed'));
    expect(line).toMatchObject({ outcome: 'timeout', code: 'CONNECT_TIMEOUT' });
  });

  it('cuts a write that stalls (the target reads nothing) with the send timeout', async () => {
    const sockets = new Set<net.Socket>();
    // Accepts the connection and never reads from it: an 8 MiB copy fills the socket buffers.
    const server = net.createServer({ pauseOnConnect: true }, (s) => sockets.add(s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }));
    const host = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    const mr = await runner();
    const route = mirrorRoute('route#send-timeout#x#1', { host, timeout: { connect: 5000, send: 300, read: 300 } });
    const body = Buffer.alloc(8 * 1024 * 1024, 1);
    const o = expectOk(await mr.client.httpReqCall(route, call({
      method: 'POST', body, headers: [{ name: 'host', value: 'h' }, { name: 'content-length', value: String(body.length) }],
    })));
    expect(o.kind).toBe('none');
    await until(async () => (await count(mr, host, 'timeout')) === 1, 'stalled write cut');
    expect(sockets.size).toBe(1);
    const line = mr.logs.find((l) => l['target'] === host && String(l['msg']).includes('failed'));
    expect(line).toMatchObject({ outcome: 'timeout', code: 'SEND_TIMEOUT' });
  });

  it('cuts an answer that trickles forever at the overall deadline (connect + send + read)', async () => {
    const timers = new Set<NodeJS.Timeout>();
    const server = http.createServer((req, res) => {
      req.resume();
      res.writeHead(200);
      // A byte every 20 ms: the read (body) timeout of 2 s never fires.
      const t = setInterval(() => res.write('x'), 20);
      timers.add(t);
      res.on('close', () => { clearInterval(t); timers.delete(t); });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => { for (const t of timers) clearInterval(t); server.closeAllConnections(); server.close(() => r()); }));
    const host = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    const mr = await runner();
    const route = mirrorRoute('route#deadline#x#1', { host, timeout: { connect: 100, send: 100, read: 2000 } });
    expectOk(await mr.client.httpReqCall(route, call()));
    await until(async () => (await count(mr, host, 'timeout')) === 1, 'deadline passed');
    const line = mr.logs.find((l) => l['target'] === host && String(l['msg']).includes('failed'));
    expect(line).toMatchObject({ outcome: 'timeout', code: 'MIRROR_DEADLINE' });
  });
});

describe('requests that are not sampled', () => {
  it('get no round trip, no edit and no copy', async () => {
    const target = await RecordingTarget.start();
    cleanups.push(() => target.close());
    const mr = await runner({ random: () => 0.9 });
    const route = mirrorRoute('route#unsampled#x#1', {
      host: target.url, sample_ratio: 0.00001, correlation_header: 'x-corr', mark_header: 'x-mirror',
    });
    for (let i = 0; i < 20; i++) {
      const o = expectOk(await mr.client.httpReqCall(route, call({
        method: 'POST', args: [{ name: 'a', value: '1' }, { name: 'b', value: '2' }], body: 'abc',
        headers: [{ name: 'host', value: 'h' }, { name: 'content-length', value: '3' }], vars: { args: 'a=1&b=2' },
      })));
      expect(o.kind).toBe('none');
      expect(o.extraInfoAsked).toEqual([]);
    }
    expect(await mr.metric('apisix_runner_mirror_skipped_total', { target: target.url, reason: 'not_sampled' })).toBe(20);
    expect(await count(mr, target.url, 'sent')).toBe(0);
    expect(target.received).toHaveLength(0);
  });
});
