/**
 * gRPC mirror problems are logged, not only counted: a call skipped for a body of unknown
 * length (once per interval), and a failed copy with its gRPC status and message.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { GrpcTarget, call, expectOk, grpcFrame, mirrorRoute, startMirrorRunner, until, type MirrorRunner } from './fixtures.js';

let target: GrpcTarget;
let mr: MirrorRunner;
beforeAll(async () => {
  target = await GrpcTarget.start();
  mr = await startMirrorRunner({ now: () => 0 });
});
afterAll(async () => {
  await mr.close();
  await target.close();
});

const headers = (extra: { name: string; value: string }[] = []) => [
  { name: 'host', value: 'grpc.example' }, { name: 'content-type', value: 'application/grpc' }, ...extra,
];

describe('gRPC mirror logs', () => {
  it('logs a call skipped for a body of unknown length once per interval', async () => {
    const host = `grpc://127.0.0.1:${target.port}`;
    const route = mirrorRoute('route#glog1#x#1', { host });
    for (let i = 0; i < 5; i++) {
      expectOk(await mr.client.httpReqCall(route, call({ method: 'POST', path: '/test.Mirror/Upload', headers: headers(), body: grpcFrame(Buffer.from('x')) })));
    }
    expect(await mr.metric('apisix_runner_mirror_skipped_total', { target: host, reason: 'grpc_unknown_length' })).toBe(5);
    const lines = mr.logs.filter((l) => l['target'] === host && String(l['msg']).includes('unknown length'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ method: '/test.Mirror/Upload', route: 'route#glog1#x#1' });
  });

  it('logs a failed copy with its gRPC status and message', async () => {
    const host = `grpc://127.0.0.1:${target.port}`;
    const body = grpcFrame(Buffer.from('x'));
    const route = mirrorRoute('route#glog2#x#1', { host, path: '/ignored' });
    expectOk(await mr.client.httpReqCall(route, call({
      method: 'POST', path: '/test.Mirror/NoSuchMethod', headers: headers([{ name: 'content-length', value: String(body.length) }]), body,
    })));
    await until(async () => (await mr.metric('apisix_runner_mirror_requests_total', { target: host, outcome: 'grpc_error' })) === 1, 'grpc_error counted');
    const line = mr.logs.find((l) => l['target'] === host && String(l['msg']).includes('gRPC copy'));
    expect(line).toMatchObject({ grpc_status: 'UNIMPLEMENTED', code: 'GRPC_UNIMPLEMENTED' });
    expect(String(line!['grpc_message'])).toContain('NoSuchMethod');
  });
});
