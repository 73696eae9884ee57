#!/usr/bin/env node
/**
 * Mirror sink for the proxy-mirror cells: a keep-alive HTTP/1.1 server on 127.0.0.1 that reads
 * and drops every request and answers `200` with `content-length: 0`. `GET /__bench/count`
 * answers `{"requests": n, "connections": m, "reads": r, "writes": w}`: requests and TCP
 * connections seen so far (the count request itself is not a request), and the read batches and
 * writes of the fast mode (0 in http mode).
 * Prints `sink listening on <port>` once ready. SINK_PORT picks the port (default: any free).
 *
 * Two modes (`--mode fast|http`, env SINK_MODE; default fast):
 *   fast  a raw `net` server that parses just what the mirror's copies send: GET/HEAD/POST/PUT
 *         (any method token) with a Content-Length or chunked body, keep-alive, pipelined
 *         requests answered in order, one write per read batch. A copy costs the sink a few
 *         µs, so the sink keeps up with the runner on a shared core, which `node:http` did not
 *         (13k copies/s while the runner produced 40k+: most copies were dropped at the
 *         runner's queue and the mirrored cells measured the sink, not the runner).
 *   http  the former `node:http` server, kept to measure the difference in the same run.
 *
 * Not supported by the fast mode (answered 400 and closed, or not needed by the copies):
 * `Expect: 100-continue`, HTTP/1.0 keep-alive, request heads over 64 KiB.
 *
 * Calibration (`--calibrate [--connections 32] [--batch 1] [--seconds 2] [--sink-core 1]`): starts
 * a sink of `--mode` as a child (pinned with taskset when --sink-core is given), drives it from
 * this process with raw keep-alive connections, each writing `--batch` pipelined copies of the
 * bench's GET (12 headers) at a time and waiting for their answers, and prints one JSON line:
 * requests/s and the sink's CPU µs per request (utime + stime from /proc).
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { fileURLToPath, pathToFileURL } from 'node:url';

const OK = Buffer.from('HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n', 'latin1');
const BAD = Buffer.from('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n', 'latin1');
const HEAD_END = Buffer.from('\r\n\r\n', 'latin1');
const CRLF = Buffer.from('\r\n', 'latin1');
const MAX_HEAD_BYTES = 64 * 1024;
const REQUEST_LINE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+ (\S+) HTTP\/1\.[01]$/;
const CONTENT_LENGTH = /\r\ncontent-length[ \t]*:[ \t]*([^\r]*)/i;
const CHUNKED = /\r\ntransfer-encoding[ \t]*:[^\r]*chunked/i;
const CONNECTION_CLOSE = /\r\nconnection[ \t]*:[^\r]*close/i;

/** Parser states of one connection. */
const HEAD = 0;
const BODY = 1; // skipping `bodyLeft` bytes of a Content-Length body
const CHUNK_SIZE = 2; // waiting for a chunk-size line
const CHUNK_DATA = 3; // skipping `bodyLeft` bytes: chunk data and its CRLF
const TRAILER = 4; // skipping trailer lines up to the empty line

/**
 * The fast sink: a `net.Server` (not yet listening) and its counters.
 * @returns {{ server: net.Server, stats: { requests: number, connections: number, reads: number, writes: number } }}
 */
export function createFastSink() {
  const stats = { requests: 0, connections: 0, reads: 0, writes: 0 };
  const countAnswer = () => {
    const body = Buffer.from(JSON.stringify(stats));
    return Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n`, 'latin1'), body]);
  };

  const server = net.createServer((socket) => {
    stats.connections++;
    socket.setNoDelay(true);
    let pending = null; // unparsed bytes of the previous reads
    let state = HEAD;
    let bodyLeft = 0;
    let isCount = false;
    let closeAfter = false;

    socket.on('data', (chunk) => {
      stats.reads++;
      const data = pending ? Buffer.concat([pending, chunk]) : chunk;
      pending = null;
      let off = 0;
      const out = [];
      let fatal = false;
      const complete = () => {
        if (isCount) out.push(countAnswer());
        else {
          stats.requests++;
          out.push(OK);
        }
        state = HEAD;
      };
      while (off < data.length && !closeAfter && !fatal) {
        if (state === HEAD) {
          const end = data.indexOf(HEAD_END, off);
          if (end < 0) {
            if (data.length - off > MAX_HEAD_BYTES) fatal = true;
            break;
          }
          const head = data.toString('latin1', off, end);
          off = end + 4;
          const lineEnd = head.indexOf('\r\n');
          const line = REQUEST_LINE.exec(lineEnd < 0 ? head : head.slice(0, lineEnd));
          if (!line) { fatal = true; break; }
          isCount = line[1] === '/__bench/count';
          closeAfter = CONNECTION_CLOSE.test(head);
          if (CHUNKED.test(head)) {
            state = CHUNK_SIZE;
            continue;
          }
          const cl = CONTENT_LENGTH.exec(head);
          const length = cl ? Number(cl[1].trim()) : 0;
          if (!Number.isSafeInteger(length) || length < 0 || (cl && !/^\d+$/.test(cl[1].trim()))) { fatal = true; break; }
          if (length === 0) complete();
          else { bodyLeft = length; state = BODY; }
        } else if (state === BODY || state === CHUNK_DATA) {
          const take = Math.min(bodyLeft, data.length - off);
          off += take;
          bodyLeft -= take;
          if (bodyLeft > 0) break;
          if (state === BODY) complete();
          else state = CHUNK_SIZE;
        } else {
          // CHUNK_SIZE or TRAILER: one line at a time.
          const end = data.indexOf(CRLF, off);
          if (end < 0) {
            if (data.length - off > MAX_HEAD_BYTES) fatal = true;
            break;
          }
          const line = data.toString('latin1', off, end);
          off = end + 2;
          if (state === TRAILER) {
            if (line === '') complete();
            continue;
          }
          const sizeText = line.split(';', 1)[0].trim();
          if (!/^[0-9a-fA-F]+$/.test(sizeText)) { fatal = true; break; }
          const size = parseInt(sizeText, 16);
          if (size === 0) state = TRAILER;
          else { bodyLeft = size + 2; state = CHUNK_DATA; }
        }
      }
      if (fatal) out.push(BAD);
      if (out.length > 0) {
        stats.writes++;
        socket.write(out.length === 1 ? out[0] : Buffer.concat(out));
      }
      if (fatal || closeAfter) {
        socket.end();
        return;
      }
      // Buffers from `net` reads are not reused, so a view of the rest is safe to keep.
      if (off < data.length) pending = data.subarray(off);
    });
    socket.on('error', () => {});
  });
  return { server, stats };
}

/**
 * The `node:http` sink (the former default), same answers and count endpoint.
 * @returns {{ server: http.Server, stats: { requests: number, connections: number, reads: number, writes: number } }}
 */
export function createHttpSink() {
  const stats = { requests: 0, connections: 0, reads: 0, writes: 0 };
  const server = http.createServer((req, res) => {
    if (req.url === '/__bench/count') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(stats));
      return;
    }
    stats.requests++;
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-length': '0' });
      res.end();
    });
  });
  server.on('connection', () => { stats.connections++; });
  server.keepAliveTimeout = 60_000;
  return { server, stats };
}

/** The bench's mirrored request as the copies send it: `GET /get?x=1` with 12 headers. */
const CALIBRATION_REQUEST = `GET /get?x=1 HTTP/1.1\r\nhost: 127.0.0.1:9080\r\n${Array.from({ length: 12 }, (_, i) => `x-bench-${i}: value-${i}\r\n`).join('')}\r\n`;

/** utime + stime of a process in µs (Linux /proc), or NaN. */
function cpuMicros(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1e6) / 100;
  } catch {
    return NaN;
  }
}

/**
 * Starts this sink in a child process and resolves { child, port } once it listens.
 * `prefix` goes before the node command (e.g. `['taskset', '-c', '1']`).
 */
export function startSinkProcess(mode = 'fast', prefix = []) {
  const argv = [...prefix, process.execPath, fileURLToPath(import.meta.url), '--mode', mode];
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = /sink listening on (\d+)/.exec(out);
      if (m) resolve({ child, port: Number(m[1]) });
    });
    child.once('exit', (code) => reject(new Error(`sink exited with ${code}`)));
  });
}

/** Runs a sink of `mode` in a child and measures its CPU per request (see the file comment). */
async function calibrate({ mode, connections, batch, seconds, sinkCore }) {
  const { child, port } = await startSinkProcess(mode, sinkCore !== undefined ? ['taskset', '-c', String(sinkCore)] : []);
  try {
    const payload = Buffer.from(CALIBRATION_REQUEST.repeat(batch), 'latin1');
    const ANSWER_END = Buffer.from('\r\n\r\n', 'latin1');
    let answered = 0;
    let stop = false;
    const sockets = [];
    for (let i = 0; i < connections; i++) {
      const s = net.connect(port, '127.0.0.1');
      s.setNoDelay(true);
      let owed = 0;
      // Every answer is a head with content-length: 0, so each CRLFCRLF ends one; a terminator
      // split across two reads is carried over.
      let tail = Buffer.alloc(0);
      s.on('data', (d) => {
        const data = tail.length ? Buffer.concat([tail, d]) : d;
        let off = 0;
        for (let k; (k = data.indexOf(ANSWER_END, off)) >= 0; off = k + 4) { answered++; owed--; }
        tail = data.subarray(Math.max(off, data.length - 3));
        if (owed === 0 && !stop) { owed = batch; s.write(payload); }
      });
      s.once('connect', () => { owed = batch; s.write(payload); });
      s.on('error', () => {});
      sockets.push(s);
    }
    await new Promise((r) => setTimeout(r, 500));
    const c0 = cpuMicros(child.pid);
    const n0 = answered;
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const c1 = cpuMicros(child.pid);
    const n1 = answered;
    const elapsed = (performance.now() - t0) / 1000;
    stop = true;
    for (const s of sockets) s.destroy();
    return { mode, connections, batch, seconds: elapsed, requestsPerSecond: (n1 - n0) / elapsed, sinkCpuUsPerRequest: (c1 - c0) / (n1 - n0), sinkCpuUtilisation: (c1 - c0) / (elapsed * 1e6) };
  } finally {
    child.kill('SIGTERM');
  }
}

function main() {
  const { values } = parseArgs({
    options: {
      mode: { type: 'string' },
      calibrate: { type: 'boolean', default: false },
      connections: { type: 'string', default: '32' },
      batch: { type: 'string', default: '1' },
      seconds: { type: 'string', default: '2' },
      'sink-core': { type: 'string' },
    },
  });
  const mode = values.mode ?? process.env.SINK_MODE ?? 'fast';
  if (mode !== 'fast' && mode !== 'http') {
    process.stderr.write(`sink: --mode must be fast or http, got "${mode}"\n`);
    process.exit(2);
  }
  if (values.calibrate) {
    const opts = { mode, connections: Number(values.connections), batch: Number(values.batch), seconds: Number(values.seconds), sinkCore: values['sink-core'] };
    if (![opts.connections, opts.batch, opts.seconds].every((n) => n > 0)) {
      process.stderr.write('sink: --connections, --batch and --seconds must be positive numbers\n');
      process.exit(2);
    }
    calibrate(opts).then(
      (r) => process.stdout.write(`${JSON.stringify(r)}\n`),
      (err) => { process.stderr.write(`sink: calibration failed: ${err.message}\n`); process.exit(1); },
    );
    return;
  }
  const { server } = mode === 'fast' ? createFastSink() : createHttpSink();
  const sockets = new Set();
  server.on('connection', (s) => { sockets.add(s); s.once('close', () => sockets.delete(s)); });
  server.listen(Number(process.env.SINK_PORT ?? 0), '127.0.0.1', () => {
    const addr = server.address();
    process.stdout.write(`sink listening on ${typeof addr === 'object' && addr ? addr.port : '?'} (${mode})\n`);
  });
  const stop = () => {
    for (const s of sockets) s.destroy();
    server.close(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
