/**
 * gRPC targets with several nodes: one grpc-js channel per node, copies balanced by weight,
 * a dead node taken out by its breaker, counted per node, and a grpcs host name whose
 * addresses (from a real DNS server, test/harness/dns-server.ts) are its nodes. Real
 * @grpc/grpc-js servers on 127.0.0.1 and ::1; copies sent from the RPC thread and from a
 * worker thread.
 */
import * as grpc from '@grpc/grpc-js';
import { describe, it, expect, afterEach } from 'vitest';
import { generate } from 'selfsigned';
import { DnsServer } from '../../harness/dns-server.js';
import { GrpcTarget, absentPort, call, expectOk, grpcFrame, mirrorRoute, startMirrorRunner, until, type MirrorRunner } from './fixtures.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function grpcTarget(): Promise<GrpcTarget> {
  const t = await GrpcTarget.start();
  cleanups.push(() => t.close());
  return t;
}

async function runner(threads: number, settings: Record<string, unknown> = {}): Promise<MirrorRunner> {
  const mr = await startMirrorRunner({ now: () => 0, jitter: () => 0.5, settings: { mirror_threads: threads, ...settings } });
  cleanups.push(() => mr.close());
  return mr;
}

/** Sends `n` unary calls `/test.Mirror/Call` with message `m<i>` through the route. */
async function sendCalls(mr: MirrorRunner, route: ReturnType<typeof mirrorRoute>, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const body = grpcFrame(Buffer.from(`m${i}`));
    expectOk(await mr.client.httpReqCall(route, call({
      method: 'POST',
      path: '/test.Mirror/Call',
      headers: [
        { name: 'host', value: 'grpc.example' },
        { name: 'content-type', value: 'application/grpc' },
        { name: 'te', value: 'trailers' },
        { name: 'content-length', value: String(body.length) },
      ],
      body,
    })));
  }
}

/** grpcs servers of `/test.Mirror/Call` on several addresses and one port, counting calls per address. */
async function grpcsOnAddresses(addresses: readonly string[], tls: { key: string; cert: string }): Promise<{ port: number; counts: Map<string, number> }> {
  const counts = new Map<string, number>(addresses.map((a) => [a, 0]));
  const id = (b: Buffer): Buffer => b;
  const creds = grpc.ServerCredentials.createSsl(null, [{ private_key: Buffer.from(tls.key), cert_chain: Buffer.from(tls.cert) }], false);
  // The first address picks a free port; the others must get the same one (bounded retries).
  for (let attempt = 0; attempt < 20; attempt++) {
    const servers: grpc.Server[] = [];
    try {
      let port = 0;
      for (const address of addresses) {
        const server = new grpc.Server();
        servers.push(server);
        server.addService({
          Call: { path: '/test.Mirror/Call', requestStream: false, responseStream: false, requestSerialize: id, requestDeserialize: id, responseSerialize: id, responseDeserialize: id },
        }, {
          Call: (_c: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
            counts.set(address, counts.get(address)! + 1);
            cb(null, Buffer.from('ok'));
          },
        });
        const hostPort = address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
        port = await new Promise<number>((resolve, reject) => server.bindAsync(hostPort, creds, (err, p) => (err ? reject(err) : resolve(p))));
      }
      cleanups.push(async () => {
        for (const server of servers) server.forceShutdown();
      });
      return { port, counts };
    } catch (err) {
      for (const server of servers) server.forceShutdown();
      if (!/EADDRINUSE|No address added/.test(String(err))) throw err;
    }
  }
  throw new Error('no port free on every address');
}

describe.each([1, 2])('a gRPC target with several nodes (mirror_threads %i)', (threads) => {
  it('balances calls by weight over the nodes, counted per node', async () => {
    const a = await grpcTarget();
    const b = await grpcTarget();
    const mr = await runner(threads);
    const urlA = `grpc://127.0.0.1:${a.port}`;
    const urlB = `grpc://127.0.0.1:${b.port}`;
    const label = `${urlA},${urlB}`;
    await sendCalls(mr, mirrorRoute(`route#grpc-nodes-${threads}#x#1`, { host: [urlA, { host: urlB, weight: 2 }] }), 30);
    await until(() => a.received.length + b.received.length === 30, '30 gRPC copies');
    expect([a.received.length, b.received.length]).toEqual([10, 20]);
    // Every message arrived once, whichever node took it.
    const messages = [...a.received, ...b.received].map((r) => r.messages.map((m) => m.toString()).join()).sort();
    expect(messages).toEqual(Array.from({ length: 30 }, (_, i) => `m${i}`).sort());
    await until(async () => (await mr.metric('apisix_runner_mirror_requests_total', { target: label, outcome: 'grpc_ok' })) === 30, '30 grpc_ok');
    expect(await mr.metric('apisix_runner_mirror_node_requests_total', { target: label, node: urlA, outcome: 'grpc_ok' })).toBe(10);
    expect(await mr.metric('apisix_runner_mirror_node_requests_total', { target: label, node: urlB, outcome: 'grpc_ok' })).toBe(20);
  });

  it('takes a dead node out and keeps mirroring to the live one', async () => {
    const live = await grpcTarget();
    const liveUrl = `grpc://127.0.0.1:${live.port}`;
    const dead = `grpc://127.0.0.1:${await absentPort()}`;
    const mr = await runner(threads, { breaker: { failures: 1 } });
    const label = `${dead},${liveUrl}`;
    const route = mirrorRoute(`route#grpc-dead-${threads}#x#1`, { host: [dead, liveUrl], max_concurrency: 1, timeout: { connect: 2000, send: 5000, read: 5000 } });
    await sendCalls(mr, route, 12);
    const count = (outcome: string): Promise<number> => mr.metric('apisix_runner_mirror_requests_total', { target: label, outcome });
    await until(async () => (await count('grpc_ok')) + (await count('error')) + (await count('timeout')) === 12, '12 copies ended');
    // One call at a time, the dead node first in the cycle: it is tried once, then skipped.
    expect(await count('error')).toBe(1);
    expect(await mr.metric('apisix_runner_mirror_node_requests_total', { target: label, node: dead, outcome: 'error' })).toBe(1);
    expect(live.received).toHaveLength(11);
    expect(await mr.metric('apisix_runner_mirror_node_up', { target: label, node: dead })).toBe(0);
    expect(mr.logs.filter((l) => String(l['msg']).includes('unreachable') && l['node'] === dead)).toHaveLength(1);
  });

  it('makes the addresses of a grpcs host name its nodes, checking TLS against the name', async () => {
    // A certificate for mirror.test only: a check against an address would refuse every call.
    const g = await generate([{ name: 'commonName', value: 'mirror.test' }], {
      keySize: 2048, algorithm: 'sha256', extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: 'mirror.test' }] }],
    });
    const dns = await DnsServer.start();
    cleanups.push(() => dns.close());
    const servers = await grpcsOnAddresses(['127.0.0.1', '::1'], { key: g.private, cert: g.cert });
    dns.set('mirror.test', ['127.0.0.1', '::1']);
    const mr = await runner(threads, { dns_resolver: [dns.address], tls_ca: g.cert });
    const host = `grpcs://mirror.test:${servers.port}`;
    await sendCalls(mr, mirrorRoute(`route#grpcs-dns-${threads}#x#1`, { host }), 6);
    const count = (outcome: string): Promise<number> => mr.metric('apisix_runner_mirror_requests_total', { target: host, outcome });
    await until(async () => (await count('grpc_ok')) + (await count('error')) + (await count('timeout')) === 6, '6 copies ended');
    expect(await count('grpc_ok')).toBe(6);
    expect(Object.fromEntries(servers.counts)).toEqual({ '127.0.0.1': 3, '::1': 3 });
    for (const node of [`grpcs://127.0.0.1:${servers.port}`, `grpcs://[::1]:${servers.port}`]) {
      expect(await mr.metric('apisix_runner_mirror_node_requests_total', { target: host, node, outcome: 'grpc_ok' })).toBe(3);
    }
  });
});
