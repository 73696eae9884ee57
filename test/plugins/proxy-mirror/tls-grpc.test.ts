import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { generate } from 'selfsigned';
import {
  GrpcTarget, RecordingTarget, call, expectOk, grpcFrame, mirrorRoute, startMirrorRunner, until, type MirrorRunner,
} from './fixtures.js';

let pems: { key: string; cert: string };
let httpsTarget: RecordingTarget;
let grpcTarget: GrpcTarget;
let grpcsTarget: GrpcTarget;
let mr: MirrorRunner;
let trusting: MirrorRunner;

beforeAll(async () => {
  const g = await generate([{ name: 'commonName', value: 'localhost' }], {
    keySize: 2048, algorithm: 'sha256',
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }, { type: 2, value: 'localhost' }] }],
  });
  pems = { key: g.private, cert: g.cert };
  httpsTarget = await RecordingTarget.start('ok', pems);
  grpcTarget = await GrpcTarget.start();
  grpcsTarget = await GrpcTarget.start(pems);
  mr = await startMirrorRunner();
  // A runner whose operator trusts the self-signed CA (settings tls_ca).
  trusting = await startMirrorRunner({ settings: { tls_ca: pems.cert } });
});
afterAll(async () => {
  await mr.close();
  await trusting.close();
  await httpsTarget.close();
  await grpcTarget.close();
  await grpcsTarget.close();
});

describe('proxy-mirror to HTTPS targets', () => {
  it('verifies certificates by default: an untrusted target gets nothing and the error is counted', async () => {
    const o = expectOk(await mr.client.httpReqCall(mirrorRoute('route#tls1#x#1', { host: httpsTarget.url }), call()));
    expect(o.kind).toBe('none');
    await until(async () => (await mr.metric('apisix_runner_mirror_requests_total', { target: httpsTarget.url, outcome: 'error' })) === 1, 'TLS error counted');
    expect(httpsTarget.received).toHaveLength(0);
    expect(mr.logs.some((l) => String(l['msg']).includes('failed (error)') && l['target'] === httpsTarget.url)).toBe(true);
  });

  it('delivers with tls_verify false', async () => {
    expectOk(await mr.client.httpReqCall(mirrorRoute('route#tls2#x#1', { host: httpsTarget.url, tls_verify: false, path: '/insecure' }), call()));
    const [copy] = await httpsTarget.waitFor(1);
    expect(copy!.url).toBe('/insecure');
  });

  it('delivers with verification on when the operator trusts the CA', async () => {
    expectOk(await trusting.client.httpReqCall(mirrorRoute('route#tls3#x#1', { host: httpsTarget.url, path: '/verified' }), call()));
    const copies = await httpsTarget.waitFor(2);
    expect(copies[1]!.url).toBe('/verified');
  });
});

const grpcHeaders = (extra: { name: string; value?: string }[]) => [
  { name: 'host', value: 'grpc.example' },
  { name: 'content-type', value: 'application/grpc' },
  { name: 'te', value: 'trailers' },
  { name: 'user-agent', value: 'grpc-go/1.60' },
  ...extra,
];

describe('proxy-mirror to gRPC targets', () => {
  it('re-issues a unary call with its metadata and message', async () => {
    const msg = Buffer.from([0x0a, 0x05, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x00, 0xff]);
    const body = grpcFrame(msg);
    const o = expectOk(await mr.client.httpReqCall(mirrorRoute('route#g1#x#1', { host: `grpc://127.0.0.1:${grpcTarget.port}`, headers: { set: { 'x-shadow': '1' } } }), call({
      method: 'POST',
      path: '/test.Mirror/Call',
      headers: grpcHeaders([
        { name: 'content-length', value: String(body.length) },
        { name: 'x-user', value: 'alice' },
        { name: 'x-trace-bin', value: Buffer.from([1, 2, 3]).toString('base64') },
      ]),
      body,
    })));
    expect(o.extraInfoAsked).toEqual([{ kind: 'reqBody' }]);
    const [got] = await grpcTarget.waitFor(1);
    expect(got!.path).toBe('/test.Mirror/Call');
    expect(got!.messages).toEqual([msg]);
    expect(got!.metadata['x-user']).toEqual(['alice']);
    expect(got!.metadata['x-shadow']).toEqual(['1']);
    expect(got!.metadata['x-trace-bin']).toEqual([Buffer.from([1, 2, 3])]);
    await until(async () => (await mr.metric('apisix_runner_mirror_requests_total', { outcome: 'grpc_ok' })) === 1, 'grpc_ok counted');
  });

  it('copies bodies of unknown length only for listed methods (streaming hazard)', async () => {
    const body = grpcFrame(Buffer.from('one'), Buffer.from('two'));
    const host = `grpc://127.0.0.1:${grpcTarget.port}`;
    const unlisted = expectOk(await mr.client.httpReqCall(mirrorRoute('route#g2#x#1', { host }), call({
      method: 'POST', path: '/test.Mirror/Upload', headers: grpcHeaders([]), body,
    })));
    expect(unlisted.extraInfoAsked).toEqual([]);
    expect(await mr.metric('apisix_runner_mirror_skipped_total', { target: host, reason: 'grpc_unknown_length' })).toBe(1);

    const listed = expectOk(await mr.client.httpReqCall(mirrorRoute('route#g3#x#1', { host, grpc_methods: ['/test.Mirror/Upload'] }), call({
      method: 'POST', path: '/test.Mirror/Upload', headers: grpcHeaders([]), body,
    })));
    expect(listed.extraInfoAsked).toEqual([{ kind: 'reqBody' }]);
    const got = await grpcTarget.waitFor(2);
    expect(got[1]!.path).toBe('/test.Mirror/Upload');
    expect(got[1]!.messages.map((m) => m.toString())).toEqual(['one', 'two']);
  });

  it('mirrors over grpcs with tls_verify false, and refuses the untrusted cert by default', async () => {
    const host = `grpcs://127.0.0.1:${grpcsTarget.port}`;
    const body = grpcFrame(Buffer.from('secure'));
    const req = call({ method: 'POST', path: '/test.Mirror/Call', headers: grpcHeaders([{ name: 'content-length', value: String(body.length) }]), body });
    expectOk(await mr.client.httpReqCall(mirrorRoute('route#g4#x#1', { host, timeout: { connect: 2000, send: 2000, read: 2000 } }), req));
    await until(async () => (await mr.metric('apisix_runner_mirror_requests_total', { target: host, outcome: 'error' })
      + await mr.metric('apisix_runner_mirror_requests_total', { target: host, outcome: 'timeout' })) === 1, 'grpcs verify failure counted');
    expect(grpcsTarget.received).toHaveLength(0);
    expectOk(await mr.client.httpReqCall(mirrorRoute('route#g5#x#1', { host, tls_verify: false }), req));
    const [got] = await grpcsTarget.waitFor(1);
    expect(got!.messages.map((m) => m.toString())).toEqual(['secure']);
  });
});
