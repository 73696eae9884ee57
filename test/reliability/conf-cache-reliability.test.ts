/**
 * The conf cache at scale, through PrepareConf over a real socket: 100,000 distinct keys
 * respect `maxConfs` (the oldest are evicted and their tokens answered CONF_TOKEN_NOT_FOUND),
 * and expiry follows the injected clock. The memory figure is measured by bench/soak-confs.mjs.
 */
import { afterEach, describe, expect, it } from 'vitest';
import pino from 'pino';
import { startRunner, type Runner } from '../../src/runner.js';
import { createSayPlugin } from '../../src/plugins/say/index.js';
import type { Plugin } from '../../src/plugin-api/index.js';
import { RawConnection } from '../harness/raw-connection.js';
import { RPC, encodeHttpReqCallReq } from '../harness/apisix-codec.js';
import { readReply } from '../harness/frames.js';
import { createTempDir } from '../harness/temp-dir.js';
import { prepareMany } from './prepare-many.js';

const SAY = [{ name: 'say', value: '{"body":"ok"}' }];
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function start(options: { maxConfs?: number; confExpireSeconds?: number; now?: () => number }): Promise<Runner> {
  const dir = createTempDir('a6c-');
  const runner = await startRunner({ socketPath: dir.file('r.sock'), logger: pino({ level: 'silent' }), plugins: () => [createSayPlugin()] as Plugin<unknown>[], ...options });
  cleanups.push(async () => {
    await runner.close();
    dir.remove();
  });
  return runner;
}

/** Calls with each token on one connection; returns 'ok' (the route answered) or the Err code. */
async function callTokens(socketPath: string, tokens: readonly number[]): Promise<Array<'ok' | number>> {
  const conn = await RawConnection.connect(socketPath);
  const out: Array<'ok' | number> = [];
  for (const [i, token] of tokens.entries()) {
    await conn.send(RPC.HTTP_REQ_CALL, encodeHttpReqCallReq({ id: i + 1, confToken: token, srcIp: new Uint8Array([10, 0, 0, 1]), method: 'GET', path: '/', args: [], headers: [] }));
    const r = await readReply(conn, 5000);
    out.push(r.type === 'error' ? r.code : 'ok');
  }
  conn.close();
  return out;
}

describe('conf cache through PrepareConf over the socket', () => {
  it('100,000 distinct keys: the count stays at maxConfs, the oldest are evicted, the newest kept', async () => {
    const maxConfs = 30_000;
    const runner = await start({ maxConfs });
    const keys = Array.from({ length: 100_000 }, (_, i) => `route#${i}#ext-plugin-pre-req#1`);
    const tokens = await prepareMany(runner.socketPath, keys, SAY);
    expect(new Set(tokens).size).toBe(keys.length); // distinct keys, distinct tokens
    expect(runner.confs.size).toBe(maxConfs);
    const oldest = tokens.slice(0, 5);
    const newest = tokens.slice(-5);
    const boundary = tokens.slice(keys.length - maxConfs - 2, keys.length - maxConfs + 2);
    expect(await callTokens(runner.socketPath, oldest)).toEqual([2, 2, 2, 2, 2]);
    expect(await callTokens(runner.socketPath, newest)).toEqual(['ok', 'ok', 'ok', 'ok', 'ok']);
    expect(await callTokens(runner.socketPath, boundary)).toEqual([2, 2, 'ok', 'ok']);
    // Preparing an evicted key again gives it a fresh, working token.
    const [again] = await prepareMany(runner.socketPath, [keys[0]!], SAY);
    expect(again).not.toBe(tokens[0]);
    expect(await callTokens(runner.socketPath, [again!])).toEqual(['ok']);
    expect(runner.confs.size).toBe(maxConfs);
  });

  it('expiry follows the injected clock: 1.2 x APISIX_CONF_EXPIRE_TIME, refreshed by PrepareConf, expired entries dropped', async () => {
    let now = 1_000_000;
    const runner = await start({ confExpireSeconds: 10, now: () => now });
    const keys = Array.from({ length: 1000 }, (_, i) => `route#${i}#ext-plugin-pre-req#1`);
    const tokens = await prepareMany(runner.socketPath, keys, SAY);
    expect(runner.confs.size).toBe(1000);
    now += 11_000; // past APISIX's own TTL, inside the runner's 1.2x margin
    expect(await callTokens(runner.socketPath, [tokens[0]!])).toEqual(['ok']);
    // APISIX re-prepares the keys it still uses: same key, same token, life extended.
    const refreshed = await prepareMany(runner.socketPath, keys.slice(0, 10), SAY);
    expect(refreshed).toEqual(tokens.slice(0, 10));
    now += 2_000; // 13 s: the others are past 12 s
    expect(await callTokens(runner.socketPath, [tokens[0]!, tokens[10]!, tokens[999]!])).toEqual(['ok', 2, 2]);
    // A new PrepareConf sweeps the expired ones: only the 10 refreshed and the new key remain.
    await prepareMany(runner.socketPath, ['route#new#ext-plugin-pre-req#1'], SAY);
    expect(runner.confs.size).toBe(11);
    now += 12_001;
    expect(await callTokens(runner.socketPath, tokens.slice(0, 10))).toEqual(new Array(10).fill(2));
  });
});
