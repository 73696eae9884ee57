/**
 * The bench's mirror sink (bench/sink-server.mjs) in both modes, run as the bench runs it (a
 * child process), driven by real undici clients and raw TCP sockets: every request the copies
 * can send is answered 200 with an empty body, in order, and counted exactly once.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, request } from 'undici';

const SINK = fileURLToPath(new URL('../../bench/sink-server.mjs', import.meta.url));

interface Sink { child: ChildProcess; port: number; origin: string }
interface Counts { requests: number; connections: number; reads: number; writes: number }

function startSink(mode: string): Promise<Sink> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SINK, '--mode', mode], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /sink listening on (\d+)/.exec(out);
      if (m) resolve({ child, port: Number(m[1]), origin: `http://127.0.0.1:${m[1]}` });
    });
    child.once('exit', (code) => reject(new Error(`sink exited with ${code}: ${out}`)));
  });
}

function stopSink(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((r) => { child.once('exit', () => r()); child.kill('SIGTERM'); });
}

async function counts(origin: string): Promise<Counts> {
  const res = await request(`${origin}/__bench/count`, { reset: true });
  expect(res.statusCode).toBe(200);
  return (await res.body.json()) as Counts;
}

/**
 * A raw TCP client: sends `parts` (one write each, `gapMs` apart so they usually arrive as
 * separate reads) and collects what the server sends until it has `expectResponses` complete
 * responses (each with a content-length) or the server closes.
 */
async function raw(port: number, parts: string[], expectResponses: number, gapMs = 0, closeExpected = false): Promise<{ responses: { status: number; body: string }[]; closed: boolean; early: string }> {
  const socket = net.connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  await new Promise<void>((r, j) => { socket.once('connect', () => r()); socket.once('error', j); });
  let received = '';
  let closed = false;
  socket.on('data', (d: Buffer) => { received += d.toString('latin1'); });
  const closedP = new Promise<void>((r) => socket.once('close', () => { closed = true; r(); }));
  let early = '';
  for (let i = 0; i < parts.length; i++) {
    socket.write(parts[i]!);
    if (gapMs > 0) await sleep(gapMs);
    // Before the last part, nothing may be answered for a request that is not complete yet.
    if (i === parts.length - 2) early = received;
  }
  const parse = () => {
    const responses: { status: number; body: string }[] = [];
    let off = 0;
    for (;;) {
      const end = received.indexOf('\r\n\r\n', off);
      if (end < 0) break;
      const head = received.slice(off, end);
      const len = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? 0);
      if (received.length < end + 4 + len) break;
      responses.push({ status: Number(head.split(' ')[1]), body: received.slice(end + 4, end + 4 + len) });
      off = end + 4 + len;
    }
    return responses;
  };
  for (let i = 0; i < 500 && !closed && parse().length < expectResponses; i++) await sleep(10);
  const responses = parse();
  // A server that closes after its answer does so right away: give it a moment, bounded.
  if (closeExpected) for (let i = 0; i < 200 && !closed; i++) await sleep(10);
  const closedByServer = closed;
  socket.destroy();
  await closedP;
  return { responses, closed: closedByServer, early };
}

describe.each(['fast', 'http'])('mirror sink, %s mode', (mode) => {
  let sink: Sink;
  beforeAll(async () => { sink = await startSink(mode); });
  afterAll(async () => { await stopSink(sink.child); });

  it('answers GET, HEAD, POST and PUT with Content-Length, and a chunked POST, each 200 with an empty body, counting each once', async () => {
    const before = await counts(sink.origin);
    const client = new Client(sink.origin, { pipelining: 1 });
    try {
      const replies = [];
      replies.push(await client.request({ path: '/get?x=1', method: 'GET', headers: { 'x-a': '1' } }));
      replies.push(await client.request({ path: '/head', method: 'HEAD' }));
      replies.push(await client.request({ path: '/post', method: 'POST', body: 'x'.repeat(1024), headers: { 'content-type': 'application/json' } }));
      replies.push(await client.request({ path: '/put', method: 'PUT', body: Buffer.alloc(70_000, 0x61) }));
      // A stream of unknown length: undici sends it chunked.
      replies.push(await client.request({ path: '/chunked', method: 'POST', body: Readable.from([Buffer.from('abc'), Buffer.from('defgh')]) }));
      for (const r of replies) {
        expect(r.statusCode).toBe(200);
        expect(await r.body.text()).toBe('');
      }
    } finally {
      await client.close();
    }
    const after = await counts(sink.origin);
    expect(after.requests - before.requests).toBe(5);
  });

  it('keeps one connection alive across requests', async () => {
    const before = await counts(sink.origin);
    const client = new Client(sink.origin, { pipelining: 1 });
    try {
      for (let i = 0; i < 20; i++) {
        const r = await client.request({ path: `/k${i}`, method: 'GET' });
        await r.body.dump();
        expect(r.statusCode).toBe(200);
      }
    } finally {
      await client.close();
    }
    const after = await counts(sink.origin);
    expect(after.requests - before.requests).toBe(20);
    // Our client's one connection plus the count request's own.
    expect(after.connections - before.connections).toBe(2);
  });

  it('answers pipelined undici requests in order (the count answer sits between the requests around it)', async () => {
    const base = (await counts(sink.origin)).requests;
    const client = new Client(sink.origin, { pipelining: 10 });
    try {
      const paths = ['/p0', '/p1', '/__bench/count', '/p3', '/p4', '/__bench/count', '/p6'];
      const replies = await Promise.all(paths.map((path) => client.request({ path, method: 'GET' })));
      const bodies = await Promise.all(replies.map((r) => r.body.text()));
      expect(replies.map((r) => r.statusCode)).toEqual(paths.map(() => 200));
      expect((JSON.parse(bodies[2]!) as Counts).requests).toBe(base + 2);
      expect((JSON.parse(bodies[5]!) as Counts).requests).toBe(base + 4);
      expect(bodies.filter((_, i) => paths[i] !== '/__bench/count')).toEqual(['', '', '', '', '']);
    } finally {
      await client.close();
    }
  });

  it('answers requests written in one packet in order, and a body streamed in pieces only once it is complete', async () => {
    const base = (await counts(sink.origin)).requests;
    const three =
      'POST /a HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello' +
      'GET /__bench/count HTTP/1.1\r\nhost: x\r\n\r\n' +
      'PUT /b HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\ntrailer: t\r\n\r\n';
    const r = await raw(sink.port, [three], 3);
    expect(r.responses.map((x) => x.status)).toEqual([200, 200, 200]);
    expect((JSON.parse(r.responses[1]!.body) as Counts).requests).toBe(base + 1);
    expect((await counts(sink.origin)).requests).toBe(base + 2);

    // undici writing a body in pieces, 20 ms apart: split across packets.
    async function* pieces(): AsyncGenerator<Buffer> {
      for (let i = 0; i < 4; i++) { yield Buffer.from(`part${i}`); await sleep(20); }
    }
    const res = await request(`${sink.origin}/streamed`, { method: 'POST', body: Readable.from(pieces()), headers: { 'content-length': '20' } });
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe('');
    expect((await counts(sink.origin)).requests).toBe(base + 3);
  });

  it('parses a head and a chunked body split byte by byte across packets, answering nothing before the last byte', async () => {
    const base = (await counts(sink.origin)).requests;
    const req = 'POST /split HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwxyz\r\n0\r\n\r\n';
    const r = await raw(sink.port, [...req], 1, 2);
    expect(r.early).toBe('');
    expect(r.responses.map((x) => x.status)).toEqual([200]);
    expect((await counts(sink.origin)).requests).toBe(base + 1);
  });

  it('closes the connection after answering a request that says connection: close', async () => {
    const r = await raw(sink.port, ['GET /c HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n'], 1, 0, true);
    expect(r.responses.map((x) => x.status)).toEqual([200]);
    expect(r.closed).toBe(true);
    // Without connection: close the connection stays open.
    const kept = await raw(sink.port, ['GET /k HTTP/1.1\r\nhost: x\r\n\r\n'], 1, 0, true);
    expect(kept.responses.map((x) => x.status)).toEqual([200]);
    expect(kept.closed).toBe(false);
  });

  it('answers 400 and closes on a request line that is not HTTP', async () => {
    const base = (await counts(sink.origin)).requests;
    const r = await raw(sink.port, ['HELLO\r\n\r\n'], 1, 0, true);
    expect(r.responses.map((x) => x.status)).toEqual([400]);
    expect(r.closed).toBe(true);
    expect((await counts(sink.origin)).requests).toBe(base);
  });
});

describe('mirror sink, fast mode batching', () => {
  it('answers a batch of pipelined requests read at once with one write', async () => {
    const sink = await startSink('fast');
    try {
      const before = await counts(sink.origin);
      const batch = Array.from({ length: 50 }, (_, i) => `GET /b${i} HTTP/1.1\r\nhost: x\r\n\r\n`).join('');
      const r = await raw(sink.port, [batch], 50);
      expect(r.responses).toHaveLength(50);
      const after = await counts(sink.origin);
      expect(after.requests - before.requests).toBe(50);
      // One write per read: never more writes than reads (the count requests included).
      expect(after.writes - before.writes).toBeLessThanOrEqual(after.reads - before.reads);
      expect(after.writes - before.writes).toBeLessThan(50);
    } finally {
      await stopSink(sink.child);
    }
  });

  it('--calibrate drives a sink of the given mode and reports its requests and CPU per request', async () => {
    for (const mode of ['fast', 'http']) {
      const r = spawnSync(process.execPath, [SINK, '--calibrate', '--mode', mode, '--connections', '2', '--batch', '3', '--seconds', '0.3'], { encoding: 'utf8', timeout: 20_000 });
      expect(r.status, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout) as { mode: string; connections: number; batch: number; requestsPerSecond: number; sinkCpuUsPerRequest: number };
      expect(out).toMatchObject({ mode, connections: 2, batch: 3 });
      expect(out.requestsPerSecond).toBeGreaterThan(0);
      expect(Number.isFinite(out.sinkCpuUsPerRequest)).toBe(true);
    }
  });

  it('rejects an unknown mode with exit code 2', async () => {
    const child = spawn(process.execPath, [SINK, '--mode', 'nope'], { stdio: 'ignore' });
    const code = await new Promise((r) => child.once('exit', r));
    expect(code).toBe(2);
  });
});
