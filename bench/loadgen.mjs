#!/usr/bin/env node
/**
 * Load generator playing APISIX's side of the ext-plugin RPC: one PrepareConf, then
 * HTTPReqCall `GET /get?x=1` (12 headers, ~918-byte frame) on C connections, one RPC in flight
 * per connection, for a fixed time. ExtraInfo questions are answered like APISIX would
 * (ReqBody with `--body-size` bytes, a few nginx variables). Frames are pre-encoded once.
 *
 * With `--resp-conf`, each request is two RPCs, as on a route with ext-plugin-pre-req and
 * ext-plugin-post-resp: the HTTPReqCall, then (after its reply) an HTTPRespCall with the
 * upstream's answer (200, two headers, an empty body) for the post-resp phase's own conf;
 * `$request_id` is answered with a value unique per request and equal in both calls, RespBody
 * with the empty body. `completed` then counts requests (both calls answered), and ExtraInfo
 * questions are counted per phase.
 *
 * Prints one JSON object (see `summary` below) on stdout. Run alone:
 *   node bench/loadgen.mjs --socket /tmp/r.sock --connections 4 --duration 3 \
 *     --conf '[{"name":"say","value":"{\"body\":\"hello\"}"}]' [--pid <runner pid>] [--body-size 1024]
 */
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import hdr from 'hdr-histogram-js';
import { loadProtocol } from './protocol.mjs';
import { FRAME_TYPE, payloadLength } from './frames.mjs';

const CLOCK_TICKS_PER_SECOND = 100; // USER_HZ on Linux: /proc/<pid>/stat counts in these

/** utime + stime of a process in microseconds, or undefined when /proc is not readable. */
export function processCpuMicros(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name (which may itself contain spaces).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return ((utime + stime) * 1e6) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

/** Busy CPU time of the whole machine in microseconds (all cores, from /proc/stat), or undefined. */
export function machineBusyMicros() {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0];
    const [, user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).map(Number);
    return ((user + nice + system + irq + softirq + steal) * 1e6) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

/** Resident set size of a process in KiB (VmRSS), or undefined. */
export function processRssKiB(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** nginx variables the runner may ask for (answers as APISIX would give them for the request). */
function varValues(bodySize) {
  return {
    request_uri: bodySize > 0 ? '/post?x=1' : '/get?x=1',
    uri: bodySize > 0 ? '/post' : '/get',
    args: 'x=1',
    query_string: 'x=1',
    request_method: bodySize > 0 ? 'POST' : 'GET',
    scheme: 'http',
    server_protocol: 'HTTP/1.1',
    host: 'httpbin.example.com',
    remote_addr: '192.0.2.10',
    server_addr: '127.0.0.1',
    server_port: '9080',
    content_length: bodySize > 0 ? String(bodySize) : undefined,
    content_type: bodySize > 0 ? 'application/json' : undefined,
  };
}

/** A JSON-ish body of exactly `size` bytes. */
function makeBody(size) {
  const head = '{"data":"';
  const tail = '"}';
  if (size < head.length + tail.length) return Buffer.alloc(size, 0x61);
  return Buffer.from(head + 'x'.repeat(size - head.length - tail.length) + tail);
}

function connectUnix(path) {
  return new Promise((resolve, reject) => {
    const s = net.connect(path);
    s.once('connect', () => { s.off('error', reject); resolve(s); });
    s.once('error', reject);
  });
}

/** Sends one frame and resolves with the first complete reply frame { type, payload }. */
function roundTrip(socket, frame) {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length < 4) return;
      const len = payloadLength(buf, 0);
      if (buf.length < 4 + len) return;
      socket.off('data', onData);
      socket.off('error', reject);
      resolve({ type: buf[0], payload: buf.subarray(4, 4 + len) });
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.write(frame);
  });
}

/**
 * Runs the load and returns the summary.
 * @param {{socketPath: string, connections: number, durationMs: number, warmupMs: number,
 *   conf: {name: string, value: string}[], key?: string, bodySize?: number, pid?: number,
 *   respConf?: {name: string, value: string}[], respKey?: string,
 *   helperPids?: number[]}} opts
 */
export async function runLoad(opts) {
  const { frames } = await loadProtocol();
  const bodySize = opts.bodySize ?? 0;
  const key = opts.key ?? 'route#1#ext-plugin-pre-req#1';

  // --- PrepareConf, once, like APISIX does per route-conf version.
  const first = await connectUnix(opts.socketPath);
  const prep = await roundTrip(first, frames.prepareConf(opts.conf, key));
  if (prep.type !== FRAME_TYPE.prepareConf) {
    first.destroy();
    const code = prep.type === FRAME_TYPE.error ? frames.readErrorCode(prep.payload) : 'n/a';
    throw new Error(`PrepareConf failed: reply type ${prep.type}, error code ${code}`);
  }
  const token = frames.readConfToken(prep.payload);
  const { frame: callTemplate, idOffset } = frames.httpReqCall(token, { bodySize });
  // The post-resp phase has its own conf (and token), as APISIX prepares each phase's conf
  // under its own key (apisix/plugins/ext-plugin/init.lua).
  let respTemplate;
  let respIdOffset = 0;
  if (opts.respConf) {
    const respPrep = await roundTrip(first, frames.prepareConf(opts.respConf, opts.respKey ?? key.replace('pre-req', 'post-resp')));
    if (respPrep.type !== FRAME_TYPE.prepareConf) {
      first.destroy();
      throw new Error(`PrepareConf (post-resp) failed: reply type ${respPrep.type}`);
    }
    ({ frame: respTemplate, idOffset: respIdOffset } = frames.httpRespCall(frames.readConfToken(respPrep.payload)));
  }

  // --- ExtraInfo answers, encoded once each.
  const bodyAnswer = frames.extraInfoAnswer(bodySize > 0 ? makeBody(bodySize) : undefined);
  const absentAnswer = frames.extraInfoAnswer(undefined);
  const vars = varValues(bodySize);
  const varAnswers = new Map();
  const answerVar = (name) => {
    let f = varAnswers.get(name);
    if (!f) {
      const v = vars[name];
      f = v === undefined ? absentAnswer : frames.extraInfoAnswer(Buffer.from(v));
      varAnswers.set(name, f);
    }
    return f;
  };

  const histogram = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 60_000_000,
    numberOfSignificantValueDigits: 3,
    useWebAssembly: false,
  });
  const stats = {
    completed: 0,
    errors: 0,
    errorCodes: {},
    extraInfo: { var: 0, reqBody: 0, respBody: 0, unknown: 0 },
    // The same, asked during the post-resp call (only with --resp-conf).
    extraInfoPostResp: { var: 0, reqBody: 0, respBody: 0, unknown: 0 },
    respErrors: 0,
    varNames: {},
    actions: { none: 0, stop: 0, rewrite: 0 },
    reconnects: 0,
    unexpected: 0,
  };
  let recording = false;
  let stopping = false;
  let sampledActions = 0;
  const ACTIONS_SAMPLED = 200; // decode a few replies to report what the runner answered
  let workerCounter = 1;
  let requestCounter = 0;
  const inFlight = new Set();
  const emptyBodyAnswer = frames.extraInfoAnswer(Buffer.alloc(0));

  function startConnection(socket) {
    // Each connection owns its copy of the frame: patching the id is safe because the
    // previous write has been read by the runner once its reply arrived.
    const call = Buffer.from(callTemplate);
    const respCall = respTemplate ? Buffer.from(respTemplate) : undefined;
    let pending = null; // bytes of an incomplete frame
    let sentAt = 0;
    let inPostResp = false;
    let requestIdAnswer; // `$request_id` of the request in flight, unique per request
    const conn = { socket, busy: false };
    inFlight.add(conn);
    const nextId = () => ((1 << 22) | (workerCounter++ & 0x3fffff)) >>> 0;

    const sendCall = () => {
      if (stopping) { conn.busy = false; return; }
      // worker 1, 22-bit counter: never 0, so the id field stays present.
      call.writeUInt32LE(nextId(), idOffset);
      conn.busy = true;
      inPostResp = false;
      requestIdAnswer = undefined;
      sentAt = performance.now();
      socket.write(call);
    };

    const onFrame = (type, payload) => {
      if (type === FRAME_TYPE.extraInfo) {
        const q = frames.readExtraInfoQuestion(payload);
        if (recording) (inPostResp ? stats.extraInfoPostResp : stats.extraInfo)[q.kind]++;
        if (recording && q.kind === 'var') stats.varNames[q.name] = (stats.varNames[q.name] ?? 0) + 1;
        if (q.kind === 'reqBody') socket.write(bodyAnswer);
        else if (q.kind === 'respBody') socket.write(emptyBodyAnswer);
        else if (q.kind === 'var' && q.name === 'request_id') {
          // nginx's $request_id: 32 hex digits, the same in every phase of one request.
          requestIdAnswer ??= frames.extraInfoAnswer(Buffer.from((++requestCounter).toString(16).padStart(32, '0')));
          socket.write(requestIdAnswer);
        } else if (q.kind === 'var') {
          socket.write(answerVar(q.name));
        } else socket.write(absentAnswer);
        return;
      }
      if (respCall && !inPostResp && type === FRAME_TYPE.httpReqCall) {
        // The upstream answered (not modelled): APISIX now runs ext-plugin-post-resp.
        inPostResp = true;
        respCall.writeUInt32LE(nextId(), respIdOffset);
        socket.write(respCall);
        return;
      }
      if (type === FRAME_TYPE.httpRespCall || type === FRAME_TYPE.httpReqCall || type === FRAME_TYPE.error) {
        if (recording && inPostResp && type === FRAME_TYPE.error) stats.respErrors++;
        if (recording) {
          stats.completed++;
          histogram.recordValue(Math.max(1, Math.round((performance.now() - sentAt) * 1000)));
          if (type === FRAME_TYPE.error) {
            stats.errors++;
            const code = frames.readErrorCode(payload);
            stats.errorCodes[code] = (stats.errorCodes[code] ?? 0) + 1;
          } else if (type === FRAME_TYPE.httpReqCall && sampledActions < ACTIONS_SAMPLED) {
            sampledActions++;
            stats.actions[frames.readReplyAction(payload)]++;
          }
        }
        sendCall();
        return;
      }
      stats.unexpected++;
      sendCall();
    };

    socket.on('data', (chunk) => {
      let data = chunk;
      if (pending) { data = Buffer.concat([pending, chunk]); pending = null; }
      let off = 0;
      while (data.length - off >= 4) {
        const len = payloadLength(data, off);
        if (data.length - off < 4 + len) break;
        onFrame(data[off], data.subarray(off + 4, off + 4 + len));
        off += 4 + len;
      }
      if (off < data.length) pending = Buffer.from(data.subarray(off));
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      inFlight.delete(conn);
      if (stopping) return;
      // A failed RPC closes the connection; APISIX opens a new one for the next request.
      stats.reconnects++;
      connectUnix(opts.socketPath).then(startConnection, () => { stats.errors++; });
    });
    sendCall();
  }

  const sockets = [first];
  for (let i = 1; i < opts.connections; i++) sockets.push(await connectUnix(opts.socketPath));
  for (const s of sockets) startConnection(s);

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  await sleep(opts.warmupMs);

  const cpuStart = opts.pid ? processCpuMicros(opts.pid) : undefined;
  const helpers = opts.helperPids ?? [];
  const helperCpu = () => helpers.reduce((sum, pid) => sum + (processCpuMicros(pid) ?? 0), 0);
  const helperStart = helperCpu();
  const selfStart = process.cpuUsage();
  const machineStart = machineBusyMicros();
  const t0 = performance.now();
  recording = true;
  await sleep(opts.durationMs);
  recording = false;
  const elapsedMs = performance.now() - t0;
  const cpuEnd = opts.pid ? processCpuMicros(opts.pid) : undefined;
  const self = process.cpuUsage(selfStart);
  const machineEnd = machineBusyMicros();
  const helperUs = helperCpu() - helperStart;
  const rss = opts.pid ? processRssKiB(opts.pid) : undefined;

  stopping = true;
  // Let the RPCs in flight finish (bounded), then close like APISIX's pool would.
  for (let i = 0; i < 100 && [...inFlight].some((c) => c.busy); i++) await sleep(10);
  for (const c of inFlight) c.socket.destroy();

  const seconds = elapsedMs / 1000;
  const runnerCpuUs = cpuStart !== undefined && cpuEnd !== undefined ? cpuEnd - cpuStart : undefined;
  const pct = (p) => histogram.getValueAtPercentile(p);
  return {
    connections: opts.connections,
    seconds,
    completed: stats.completed,
    rps: stats.completed / seconds,
    latencyUs: {
      p50: pct(50), p90: pct(90), p99: pct(99), p999: pct(99.9),
      max: histogram.maxValue, mean: Math.round(histogram.mean),
    },
    runnerCpuUs,
    runnerCpuUsPerRpc: runnerCpuUs !== undefined && stats.completed > 0 ? runnerCpuUs / stats.completed : undefined,
    runnerCpuUtilisation: runnerCpuUs !== undefined ? runnerCpuUs / (seconds * 1e6) : undefined,
    runnerRssKiB: rss,
    loadgenCpuUsPerRpc: stats.completed > 0 ? (self.user + self.system) / stats.completed : undefined,
    loadgenCpuUtilisation: (self.user + self.system) / (seconds * 1e6),
    // CPU used by everything else on the machine during the window (other jobs, the mirror
    // sink, the kernel): a high value means the cell was disturbed.
    otherCpuUtilisation:
      machineStart !== undefined && machineEnd !== undefined && runnerCpuUs !== undefined
        ? Math.max(0, machineEnd - machineStart - runnerCpuUs - helperUs - (self.user + self.system)) / (seconds * 1e6)
        : undefined,
    // CPU of helper processes of the cell (the mirror sink), not counted as disturbance.
    helperCpuUtilisation: helpers.length ? helperUs / (seconds * 1e6) : undefined,
    errors: stats.errors,
    errorCodes: stats.errorCodes,
    reconnects: stats.reconnects,
    unexpectedFrames: stats.unexpected,
    extraInfo: stats.extraInfo,
    extraInfoPostResp: opts.respConf ? stats.extraInfoPostResp : undefined,
    respErrors: stats.respErrors,
    twoPhase: Boolean(opts.respConf),
    varNames: stats.varNames,
    sampledActions: stats.actions,
    requestFrameBytes: callTemplate.length,
    token,
  };
}

async function main() {
  const { values } = parseArgs({
    options: {
      socket: { type: 'string' },
      connections: { type: 'string', default: '1' },
      duration: { type: 'string', default: '3' },
      warmup: { type: 'string', default: '1' },
      conf: { type: 'string', default: '[]' },
      key: { type: 'string' },
      'body-size': { type: 'string', default: '0' },
      'resp-conf': { type: 'string' },
      'resp-key': { type: 'string' },
      pid: { type: 'string' },
      'helper-pids': { type: 'string' },
    },
  });
  if (!values.socket) {
    process.stderr.write('usage: node bench/loadgen.mjs --socket <path> [--connections N] [--duration s] [--warmup s] [--conf JSON] [--key K] [--body-size B] [--resp-conf JSON] [--resp-key K] [--pid P]\n');
    process.exit(2);
  }
  const summary = await runLoad({
    socketPath: values.socket,
    connections: Number(values.connections),
    durationMs: Number(values.duration) * 1000,
    warmupMs: Number(values.warmup) * 1000,
    conf: JSON.parse(values.conf),
    key: values.key,
    bodySize: Number(values['body-size']),
    respConf: values['resp-conf'] ? JSON.parse(values['resp-conf']) : undefined,
    respKey: values['resp-key'],
    pid: values.pid ? Number(values.pid) : undefined,
    helperPids: values['helper-pids'] ? values['helper-pids'].split(',').map(Number) : [],
  });
  process.stdout.write(JSON.stringify(summary) + '\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err) => {
    process.stderr.write(`loadgen: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
