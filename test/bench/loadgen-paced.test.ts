/**
 * bench/loadgen.mjs as bench/run.mjs drives it (a child process), against a small ext-plugin
 * server in this process built from the runner's own frame code: the paced mode (--rate)
 * starts no more calls than are due, counts the calls that found no free connection, and the
 * per-thread CPU columns attribute the server's main thread.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FrameDecoder } from '../../src/protocol/frame.js';
import { decodeHttpReqCall, encodeHttpReqCallResp, encodePrepareConfResp } from '../../src/protocol/messages.js';
import { FRAME_TYPE } from '../../bench/frames.mjs';
import { writeDistShim } from './dist-shim.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const LOADGEN = path.join(REPO, 'bench/loadgen.mjs');

interface Summary {
  completed: number;
  seconds: number;
  latencyUs: { p50: number; p99: number };
  rpcThreadCpuUs?: number;
  otherThreadsCpuUs?: number;
  threads: { tid: number; cpuUs: number }[];
  paced?: { rate: number; lateStarts: number; fromDueUs: { p99: number }; pacerStalls: number; maxTickGapMs: number };
}

let dir: string;
let distShim: string;

// The load generator imports the compiled protocol code: a shim of the sources spares a build.
beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'lgp-'));
  distShim = writeDistShim(dir);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** An ext-plugin server answering PrepareConf at once and each HTTPReqCall after `delayMs`. */
async function startServer(delayMs: number): Promise<{ socketPath: string; close: () => Promise<void> }> {
  const socketPath = path.join(dir, `s${delayMs}.sock`);
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    const decoder = new FrameDecoder();
    socket.on('data', (chunk) => decoder.push(chunk, (type, payload) => {
      if (type === FRAME_TYPE.prepareConf) socket.write(encodePrepareConfResp(1));
      else if (type === FRAME_TYPE.httpReqCall) {
        const reply = encodeHttpReqCallResp(decodeHttpReqCall(payload).id, { type: 'none' });
        if (delayMs > 0) setTimeout(() => socket.write(reply), delayMs);
        else socket.write(reply);
      }
    }));
  });
  await new Promise<void>((r) => server.listen(socketPath, r));
  return {
    socketPath,
    close: () => new Promise<void>((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }),
  };
}

function loadgen(args: string[]): Promise<Summary> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', LOADGEN, ...args], { cwd: REPO, env: { ...process.env, BENCH_DIST: distShim }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    child.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`loadgen exited ${code}: ${err}`));
      try { resolve(JSON.parse(out) as Summary); } catch { reject(new Error(`no JSON: ${out}${err}`)); }
    });
  });
}

describe('load generator, paced mode and per-thread CPU', () => {
  it('starts no more calls than are due at --rate, and counts latency from the due time at least as high as from the write', async () => {
    const server = await startServer(0);
    try {
      const rate = 200;
      const s = await loadgen(['--socket', server.socketPath, '--connections', '4', '--duration', '1', '--warmup', '0.2', '--rate', String(rate), '--pid', String(process.pid)]);
      expect(s.paced?.rate).toBe(rate);
      expect(s.completed).toBeGreaterThan(0);
      // Calls due since pacing began (warm-up included), plus slack for the stop.
      expect(s.completed).toBeLessThanOrEqual(Math.ceil(rate * (0.2 + s.seconds + 0.5)));
      expect(s.paced!.fromDueUs.p99).toBeGreaterThanOrEqual(s.latencyUs.p99);
      // The pacer's own stalls are counted apart: a count, and the longest gap between ticks.
      expect(s.paced!.pacerStalls).toBeGreaterThanOrEqual(0);
      expect(s.paced!.maxTickGapMs).toBeGreaterThan(0);
      // The server's main thread answered the calls: it is the RPC thread, and it used CPU.
      expect(s.rpcThreadCpuUs).toBeGreaterThan(0);
      expect(s.threads.map((t) => t.tid)).toContain(process.pid);
      expect(s.otherThreadsCpuUs).toBeGreaterThanOrEqual(0);
    } finally {
      await server.close();
    }
  });

  it('counts calls that find every connection busy as late starts (a server slower than the offered load)', async () => {
    // One connection, 20 ms per answer: at most ~50 calls/s can start on time, 200/s are due.
    const server = await startServer(20);
    try {
      const s = await loadgen(['--socket', server.socketPath, '--connections', '1', '--duration', '1', '--warmup', '0.1', '--rate', '200']);
      expect(s.completed).toBeGreaterThan(0);
      expect(s.completed).toBeLessThan(100);
      expect(s.paced!.lateStarts).toBeGreaterThan(s.completed);
    } finally {
      await server.close();
    }
  });

  it('without --rate runs the closed loop (no paced section)', async () => {
    const server = await startServer(0);
    try {
      const s = await loadgen(['--socket', server.socketPath, '--connections', '2', '--duration', '0.3', '--warmup', '0.1']);
      expect(s.paced).toBeUndefined();
      expect(s.completed).toBeGreaterThan(0);
    } finally {
      await server.close();
    }
  });

  it('rejects a rate that is not a positive number with exit code 2', async () => {
    await expect(loadgen(['--socket', '/nonexistent.sock', '--rate', '0'])).rejects.toThrow(/exited 2.*--rate must be a positive number/s);
  });
});
