import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { startRunner, type Runner } from '../../src/runner.js';
import { encodeError, encodeHttpReqCallResp, encodePrepareConfResp, encodeExtraInfoReq } from '../../src/protocol/messages.js';
import { createLogger } from '../../src/observability/logger.js';
import { ApisixClient, RawConnection, SharedTokenDict } from './apisix-client.js';
import { RPC, decodeRunnerFrame, encodeHttpReqCallReq, encodePrepareConfReq } from './apisix-codec.js';
import { startFakeRunner } from './fake-runner.js';
import { createTempDir } from './temp-dir.js';
import { waitUntil } from './wait.js';

const silent = createLogger({ level: 'silent' });
const sayRoute = { key: 'route#1#ext-plugin-pre-req#1', conf: [{ name: 'say', value: JSON.stringify({ body: 'hi', status: 201, headers: { 'x-a': '1' } }) }] };
const req = { method: 'GET', path: '/p', args: [{ name: 'flag' }, { name: 'a', value: '1' }], headers: [{ name: 'host', value: 'example.com' }], srcIp: '127.0.0.1' };

describe('ApisixClient against the real runner', () => {
  const dirs = createTempDir();
  const socketPath = dirs.file('r.sock');
  let runner: Runner;

  beforeAll(async () => {
    runner = await startRunner({ socketPath, logger: silent });
  });
  afterAll(async () => {
    await runner.close();
    dirs.remove();
  });

  it('prepares a key once (also under concurrency) and reuses the token', async () => {
    const client = new ApisixClient({ socketPath });
    try {
      const tokens = await Promise.all(Array.from({ length: 5 }, () => client.prepareConf(sayRoute)));
      expect(new Set(tokens).size).toBe(1);
      expect(client.stats.prepareConfSent).toBe(1);
      const outcomes = await Promise.all(Array.from({ length: 5 }, () => client.httpReqCall(sayRoute, req)));
      expect(client.stats.prepareConfSent).toBe(1);
      for (const o of outcomes) {
        expect(o.kind).toBe('stop');
        if (o.kind !== 'stop') continue;
        expect(o.stop.status).toBe(201);
        expect(o.stop.body?.toString()).toBe('hi');
        expect(o.stop.headers).toContainEqual({ name: 'x-a', value: '1' });
        expect(o.tries).toBe(1);
      }
    } finally {
      await client.close();
    }
  });

  it('reuses pooled connections for sequential RPCs and keeps at most maxIdle', async () => {
    const client = new ApisixClient({ socketPath, maxIdle: 2 });
    try {
      for (let i = 0; i < 10; i++) expect((await client.httpReqCall(sayRoute, req)).kind).toBe('stop');
      expect(client.stats.connectionsOpened).toBe(1);
      await Promise.all(Array.from({ length: 6 }, () => client.httpReqCall(sayRoute, req)));
      expect(client.idleConnections).toBe(2);
    } finally {
      await client.close();
    }
  });

  it('answers ExtraInfo Var questions from the request context', async () => {
    const client = new ApisixClient({ socketPath });
    const route = { key: 'route#2#ext-plugin-pre-req#1', conf: [{ name: 'rewrite', value: JSON.stringify({ headers: { set: { 'x-client': 'ip=$remote_addr' } } }) }] };
    try {
      const o = await client.httpReqCall(route, { ...req, vars: { remote_addr: '10.0.0.7' } });
      expect(o.kind).toBe('rewrite');
      expect(o.extraInfoAsked).toEqual([{ kind: 'var', name: 'remote_addr' }]);
      if (o.kind === 'rewrite') expect(o.rewrite.headers).toContainEqual({ name: 'x-client', value: 'ip=10.0.0.7' });
    } finally {
      await client.close();
    }
  });

  it('a conf the runner rejects is an error outcome (503)', async () => {
    const client = new ApisixClient({ socketPath });
    try {
      const o = await client.httpReqCall({ key: 'route#3#ext-plugin-pre-req#1', conf: [{ name: 'say', value: '{"status":"x"}' }] }, req);
      expect(o.kind).toBe('error');
      if (o.kind === 'error') {
        expect(o.status).toBe(503);
        // The runner takes the conf and fails the calls that would run it (closed policy).
        expect(o.error).toBe('failed to receive RPC_HTTP_REQ_CALL: bad request');
        expect(o.errCode).toBe(0);
      }
    } finally {
      await client.close();
    }
  });

  it('after a runner restart, CONF_TOKEN_NOT_FOUND makes it re-prepare and retry', async () => {
    const dir2 = createTempDir();
    const path2 = dir2.file('r2.sock');
    let r = await startRunner({ socketPath: path2, logger: silent });
    const client = new ApisixClient({ socketPath: path2 });
    try {
      expect((await client.httpReqCall(sayRoute, req)).kind).toBe('stop');
      await r.close();
      r = await startRunner({ socketPath: path2, logger: silent });
      // The old runner's connections are gone; APISIX's pool would only find that out on use.
      client.closeIdle();
      const o = await client.httpReqCall(sayRoute, req);
      expect(o.kind).toBe('stop');
      expect(o.tries).toBe(2);
      expect(client.stats.prepareConfSent).toBe(2);
      expect(client.stats.tokenFlushes).toBe(1);
    } finally {
      await client.close();
      await r.close();
      dir2.remove();
    }
  });

  it('RawConnection: a malformed HTTPReqCall gets BAD_REQUEST', async () => {
    const conn = await RawConnection.connect(socketPath);
    try {
      const reply = await conn.call(RPC.HTTP_REQ_CALL, Buffer.from([1, 2, 3, 4, 5, 6, 7, 8, 9]));
      expect(reply.type).toBe(RPC.ERROR);
      expect(decodeRunnerFrame(reply.type, reply.payload)).toEqual({ type: 'error', code: 0 });
    } finally {
      conn.close();
    }
  });

  it('RawConnection: an unknown token gets CONF_TOKEN_NOT_FOUND', async () => {
    const conn = await RawConnection.connect(socketPath);
    try {
      const payload = encodeHttpReqCallReq({ id: 1, confToken: 987654, srcIp: Uint8Array.of(127, 0, 0, 1), method: 'GET', path: '/', args: [], headers: [] });
      const reply = await conn.call(RPC.HTTP_REQ_CALL, payload);
      expect(decodeRunnerFrame(reply.type, reply.payload)).toEqual({ type: 'error', code: 2 });
      // The connection stays usable after an error answer.
      const prep = await conn.call(RPC.PREPARE_CONF, encodePrepareConfReq({ key: 'k', conf: [] }));
      expect(prep.type).toBe(RPC.PREPARE_CONF);
    } finally {
      conn.close();
    }
  });
});

describe('ApisixClient against a scripted fake runner', () => {
  const dirs = createTempDir();
  afterAll(() => dirs.remove());

  it('CONF_TOKEN_NOT_FOUND every time: 3 tries, then 503', async () => {
    const fake = await startFakeRunner(dirs.file('f1.sock'), (type, _p, reply) => {
      reply.raw(type === RPC.PREPARE_CONF ? encodePrepareConfResp(7) : encodeError(2));
    });
    const client = new ApisixClient({ socketPath: fake.socketPath });
    try {
      const o = await client.httpReqCall(sayRoute, req);
      expect(o.kind).toBe('error');
      if (o.kind === 'error') {
        expect(o.tries).toBe(3);
        expect(o.errCode).toBe(2);
        expect(o.error).toContain('conf token not found');
      }
      expect(client.stats.prepareConfSent).toBe(3);
      expect(fake.received.filter((f) => f.type === RPC.HTTP_REQ_CALL).length).toBe(3);
    } finally {
      await client.close();
      await fake.close();
    }
  });

  it('a read timeout is an error outcome and closes the connection', async () => {
    const fake = await startFakeRunner(dirs.file('f2.sock'), (type, _p, reply) => {
      if (type === RPC.PREPARE_CONF) reply.raw(encodePrepareConfResp(1));
      // HTTPReqCall: never answered.
    });
    const client = new ApisixClient({ socketPath: fake.socketPath, readTimeoutMs: 100 });
    try {
      const o = await client.httpReqCall(sayRoute, req);
      expect(o.kind).toBe('error');
      if (o.kind === 'error') expect(o.error).toMatch(/no reply within 100 ms/);
      await waitUntil(() => fake.closedConnections() === 1, 'the fake runner sees the connection closed');
      expect(client.idleConnections).toBe(0);
    } finally {
      await client.close();
      await fake.close();
    }
  });

  it('a malformed answer, an unexpected type, a closed connection and an unknown ExtraInfo are errors', async () => {
    let mode = 0;
    const fake = await startFakeRunner(dirs.file('f3.sock'), (type, _p, reply) => {
      if (type === RPC.PREPARE_CONF) return reply.raw(encodePrepareConfResp(1));
      if (type !== RPC.HTTP_REQ_CALL) return;
      if (mode === 0) reply.frame(RPC.HTTP_REQ_CALL, Buffer.from([0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0]));
      else if (mode === 1) reply.raw(encodePrepareConfResp(1));
      else if (mode === 2) reply.destroy();
      else if (mode === 3) reply.raw(encodeExtraInfoReq({ kind: 'respBody' }));
      else reply.raw(encodeHttpReqCallResp(5, { type: 'none' }));
    });
    const client = new ApisixClient({ socketPath: fake.socketPath });
    try {
      for (mode = 0; mode < 4; mode++) {
        const o = await client.httpReqCall(sayRoute, req);
        expect(o.kind, `mode ${mode}`).toBe('error');
        expect(o.tries).toBe(1);
      }
      expect((await client.httpReqCall(sayRoute, req)).kind).toBe('none');
      // Every failed RPC closed its connection: 4 failures + 1 success still pooled.
      await waitUntil(() => fake.closedConnections() === 4, 'the fake runner sees 4 connections closed');
    } finally {
      await client.close();
      await fake.close();
    }
  });

  it('connecting to a missing socket is an error outcome', async () => {
    const client = new ApisixClient({ socketPath: dirs.file('none.sock') });
    const o = await client.httpReqCall(sayRoute, req);
    expect(o.kind).toBe('error');
    if (o.kind === 'error') expect(o.error).toContain('failed to connect');
    await client.close();
  });
});

describe("APISIX's two-layer conf token cache at the runner's TTL boundary (injected clock, real socket)", () => {
  const dirs = createTempDir();
  const socketPath = dirs.file('ttl.sock');
  const TTL_S = 100; // APISIX_CONF_EXPIRE_TIME; the runner keeps confs 1.2 × this
  let nowMs = 1_000_000;
  const clock = (): number => nowMs;
  let runner: Runner;

  beforeAll(async () => {
    runner = await startRunner({ socketPath, logger: silent, confExpireSeconds: TTL_S, now: clock });
  });
  afterAll(async () => {
    await runner.close();
    dirs.remove();
  });

  it('a worker that filled its lrucache from the dict late uses a token the runner forgot: CONF_TOKEN_NOT_FOUND, re-prepare, success (no 503)', async () => {
    const dict = new SharedTokenDict();
    const workerA = new ApisixClient({ socketPath, confTokenTtlSeconds: TTL_S, sharedTokens: dict, now: clock, workerId: 0 });
    const workerB = new ApisixClient({ socketPath, confTokenTtlSeconds: TTL_S, sharedTokens: dict, now: clock, workerId: 1 });
    const start = nowMs;
    const at = (seconds: number): void => { nowMs = start + seconds * 1000; };
    try {
      at(0);
      expect((await workerA.httpReqCall(sayRoute, req)).kind).toBe('stop');
      expect(workerA.stats.prepareConfSent).toBe(1);
      const token = workerA.cachedToken(sayRoute.key);

      // Just before the dict entry expires (0.9 × TTL), worker B fills its lrucache from it.
      at(89);
      const b1 = await workerB.httpReqCall(sayRoute, req);
      expect(b1).toMatchObject({ kind: 'stop', tries: 1 });
      expect(workerB.stats).toMatchObject({ prepareConfSent: 0, sharedDictHits: 1 });
      expect(workerB.cachedToken(sayRoute.key)).toBe(token);

      // 1.5 × TTL: the dict and A's lrucache have expired, B's lrucache (filled at 0.89 × TTL)
      // has not, and the runner (1.2 × TTL after the only PrepareConf) no longer knows the token.
      at(150);
      expect(workerB.cachedToken(sayRoute.key)).toBe(token);
      const b2 = await workerB.httpReqCall(sayRoute, req);
      expect(b2).toMatchObject({ kind: 'stop', tries: 2 });
      expect(workerB.stats).toMatchObject({ prepareConfSent: 1, tokenFlushes: 1 });
      expect(workerB.cachedToken(sayRoute.key)).not.toBe(token);

      // The boundary itself: at 1.9 × TTL B's old entry would still have been used; the new one works.
      at(189);
      expect(await workerB.httpReqCall(sayRoute, req)).toMatchObject({ kind: 'stop', tries: 1 });
    } finally {
      await workerA.close();
      await workerB.close();
    }
  });

  it('the lrucache entry lives TTL from when it was filled, the dict entry 0.9 × TTL from the PrepareConf', async () => {
    const route = { ...sayRoute, key: 'route#ttl#ext-plugin-pre-req#1' };
    const dict = new SharedTokenDict();
    const worker = new ApisixClient({ socketPath, confTokenTtlSeconds: TTL_S, sharedTokens: dict, now: clock });
    const start = nowMs;
    const at = (seconds: number): void => { nowMs = start + seconds * 1000; };
    try {
      at(0);
      await worker.prepareConf(route);
      expect(dict.get(route.key, start + 89_999)).toBeDefined();
      expect(dict.get(route.key, start + 90_000)).toBeUndefined();
      at(99.999);
      expect(worker.cachedToken(route.key)).toBeDefined();
      at(100);
      expect(worker.cachedToken(route.key)).toBeUndefined();
      await worker.prepareConf(route);
      expect(worker.stats.prepareConfSent).toBe(2);
    } finally {
      await worker.close();
    }
  });
});
