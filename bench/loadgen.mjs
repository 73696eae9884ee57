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
 * With `--rate N` the load is paced (open loop): N calls per second in all, each handed to a
 * free connection when it is due, so two cells can be compared at the same offered load below
 * saturation. At most one call is in flight per connection (as with APISIX); a call that finds
 * every connection busy waits for the next one and is counted as a late start.
 *
 * With `--pid`, the runner's CPU over the measured window is read from /proc: the whole process
 * (stat), its main (RPC) thread and each other thread (schedstat, nanoseconds).
 *
 * Prints one JSON object (see `summary` below) on stdout. Run alone:
 *   node bench/loadgen.mjs --socket /tmp/r.sock --connections 4 --duration 3 \
 *     --conf '[{"name":"say","value":"{\"body\":\"hello\"}"}]' [--pid <runner pid>] [--body-size 1024]
 */
import net from 'node:net';
import { readdirSync, readFileSync } from 'node:fs';
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
    // `pid` may also be `<pid>/task/<tid>` (one thread).
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

/**
 * CPU time of one thread (task) of a process in microseconds, or undefined: the scheduler's
 * run time from /proc/<pid>/task/<tid>/schedstat (nanoseconds) when the kernel has schedstats,
 * else utime + stime from the task's stat (10 ms ticks: too coarse for a few thousand RPCs).
 */
export function threadCpuMicros(pid, tid) {
  try {
    const ns = Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ', 1)[0]);
    if (Number.isFinite(ns)) return ns / 1000;
  } catch {
    // no schedstat: fall back to the tick counts
  }
  return processCpuMicros(`${pid}/task/${tid}`);
}

/** CPU time of every live thread of a process: Map tid -> microseconds (empty when /proc is not readable). */
export function threadsCpuMicros(pid) {
  const out = new Map();
  let tids = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    const us = threadCpuMicros(pid, tid);
    if (us !== undefined) out.set(Number(tid), us);
  }
  return out;
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

/**
 * Kernel entries of one thread that cost per call: read and write system calls (syscr, syscw
 * from /proc/<pid>/task/<tid>/io) and voluntary context switches (the thread blocked: an idle
 * event loop waking up), or undefined when /proc does not give them.
 */
export function threadKernelCounts(pid, tid) {
  try {
    const io = readFileSync(`/proc/${pid}/task/${tid}/io`, 'utf8');
    const status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
    const reads = /syscr:\s+(\d+)/.exec(io);
    const writes = /syscw:\s+(\d+)/.exec(io);
    const wakes = /^voluntary_ctxt_switches:\s+(\d+)/m.exec(status);
    if (!reads || !writes || !wakes) return undefined;
    return { reads: Number(reads[1]), writes: Number(writes[1]), wakes: Number(wakes[1]) };
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

/** Requests a bench mirror sink (bench/sink-server.mjs) has counted so far, or undefined. */
async function sinkRequests(port) {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/__bench/count`);
    return (await res.json()).requests;
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

  const newHistogram = () => hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 60_000_000,
    numberOfSignificantValueDigits: 3,
    useWebAssembly: false,
  });
  // From writing the call to its final answer (the service time, as in the closed loop).
  const histogram = newHistogram();
  // Paced mode only: from the moment the call was due (its schedule slot) to its final answer,
  // so a call that waited for a free connection counts its wait (no coordinated omission).
  const scheduledHistogram = newHistogram();
  const rate = opts.rate ?? 0;
  const paced = rate > 0;
  /** Connections waiting for the next due call (paced mode). */
  const idle = [];
  /** Due times of calls that found no free connection (paced mode), oldest first. */
  const backlog = [];
  let backlogHead = 0;
  const MAX_BACKLOG = 1_000_000;
  const pacing = { due: 0, lateStarts: 0, dropped: 0, startLagUsSum: 0, started: 0, stalls: 0, maxTickGapMs: 0 };
  /** A pacer tick later than this after the previous one counts as a stall of the load generator. */
  const PACER_STALL_MS = 5;
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

    let dueAt = 0;
    const sendCall = (due) => {
      if (stopping) { conn.busy = false; return; }
      // worker 1, 22-bit counter: never 0, so the id field stays present.
      call.writeUInt32LE(nextId(), idOffset);
      conn.busy = true;
      inPostResp = false;
      requestIdAnswer = undefined;
      sentAt = performance.now();
      dueAt = due ?? sentAt;
      if (recording && paced) {
        pacing.started++;
        pacing.startLagUsSum += (sentAt - dueAt) * 1000;
      }
      socket.write(call);
    };
    conn.send = sendCall;
    /** After a final answer: the next call at once (closed loop), or the next due one (paced). */
    const next = () => {
      if (!paced) return sendCall();
      conn.busy = false;
      if (stopping) return;
      if (backlogHead < backlog.length) {
        const due = backlog[backlogHead++];
        if (backlogHead > 4096 && backlogHead * 2 > backlog.length) { backlog.splice(0, backlogHead); backlogHead = 0; }
        return sendCall(due);
      }
      idle.push(conn);
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
          const now = performance.now();
          histogram.recordValue(Math.max(1, Math.round((now - sentAt) * 1000)));
          if (paced) scheduledHistogram.recordValue(Math.max(1, Math.round((now - dueAt) * 1000)));
          if (type === FRAME_TYPE.error) {
            stats.errors++;
            const code = frames.readErrorCode(payload);
            stats.errorCodes[code] = (stats.errorCodes[code] ?? 0) + 1;
          } else if (type === FRAME_TYPE.httpReqCall && sampledActions < ACTIONS_SAMPLED) {
            sampledActions++;
            stats.actions[frames.readReplyAction(payload)]++;
          }
        }
        next();
        return;
      }
      stats.unexpected++;
      next();
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
      const at = idle.indexOf(conn);
      if (at >= 0) idle.splice(at, 1);
      if (stopping) return;
      // A failed RPC closes the connection; APISIX opens a new one for the next request.
      stats.reconnects++;
      connectUnix(opts.socketPath).then(startConnection, () => { stats.errors++; });
    });
    next();
  }

  /**
   * Paced mode: open loop at `rate` calls/s in all. Every millisecond (or as often as the
   * timer fires) the calls due so far are handed to free connections; a call that finds none
   * waits in the backlog for the next connection to free up and counts as a late start.
   */
  let pacer;
  let pacedFrom = 0;
  let lastTick = 0;
  const pace = () => {
    if (stopping) return;
    const now = performance.now();
    // The pacer's own stalls (this process busy or descheduled): calls pile up behind them and
    // may start late through no fault of the runner.
    if (recording && lastTick > 0) {
      const gap = now - lastTick;
      if (gap > pacing.maxTickGapMs) pacing.maxTickGapMs = gap;
      if (gap > PACER_STALL_MS) pacing.stalls++;
    }
    lastTick = now;
    const due = Math.floor(((now - pacedFrom) * rate) / 1000);
    while (pacing.due < due) {
      const at = pacedFrom + (pacing.due * 1000) / rate;
      pacing.due++;
      const conn = idle.pop();
      if (conn) { conn.send(at); continue; }
      if (recording) pacing.lateStarts++;
      if (backlog.length - backlogHead < MAX_BACKLOG) backlog.push(at);
      else if (recording) pacing.dropped++;
    }
    pacer = setTimeout(pace, 1);
  };

  const sockets = [first];
  for (let i = 1; i < opts.connections; i++) sockets.push(await connectUnix(opts.socketPath));
  for (const s of sockets) startConnection(s);
  if (paced) {
    pacedFrom = performance.now();
    pace();
  }

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  await sleep(opts.warmupMs);

  const cpuStart = opts.pid ? processCpuMicros(opts.pid) : undefined;
  const rpcThreadStart = opts.pid ? threadCpuMicros(opts.pid, opts.pid) : undefined;
  const kernelStart = opts.pid ? threadKernelCounts(opts.pid, opts.pid) : undefined;
  const threadsStart = opts.pid ? threadsCpuMicros(opts.pid) : new Map();
  const helpers = opts.helperPids ?? [];
  const helperCpus = () => helpers.map((pid) => processCpuMicros(pid) ?? 0);
  const helperStarts = helperCpus();
  const sinkStart = opts.sinkPort ? await sinkRequests(opts.sinkPort) : undefined;
  const selfStart = process.cpuUsage();
  const selfKernelStart = threadKernelCounts(process.pid, process.pid);
  const machineStart = machineBusyMicros();
  const t0 = performance.now();
  recording = true;
  await sleep(opts.durationMs);
  recording = false;
  const elapsedMs = performance.now() - t0;
  const cpuEnd = opts.pid ? processCpuMicros(opts.pid) : undefined;
  const rpcThreadEnd = opts.pid ? threadCpuMicros(opts.pid, opts.pid) : undefined;
  const kernelEnd = opts.pid ? threadKernelCounts(opts.pid, opts.pid) : undefined;
  const threadsEnd = opts.pid ? threadsCpuMicros(opts.pid) : new Map();
  const self = process.cpuUsage(selfStart);
  const selfKernelEnd = threadKernelCounts(process.pid, process.pid);
  const machineEnd = machineBusyMicros();
  // Each helper's CPU over the window (pid → µs), and their sum.
  const helperEnds = helperCpus();
  const helperCpuUs = Object.fromEntries(helpers.map((pid, i) => [pid, helperEnds[i] - helperStarts[i]]));
  const helperUs = helperEnds.reduce((sum, us, i) => sum + us - helperStarts[i], 0);
  const sinkEnd = opts.sinkPort ? await sinkRequests(opts.sinkPort) : undefined;
  const sinkInWindow = sinkStart !== undefined && sinkEnd !== undefined ? sinkEnd - sinkStart : undefined;
  const rss = opts.pid ? processRssKiB(opts.pid) : undefined;

  stopping = true;
  clearTimeout(pacer);
  // Let the RPCs in flight finish (bounded), then close like APISIX's pool would.
  for (let i = 0; i < 100 && [...inFlight].some((c) => c.busy); i++) await sleep(10);
  for (const c of inFlight) c.socket.destroy();

  const seconds = elapsedMs / 1000;
  const runnerCpuUs = cpuStart !== undefined && cpuEnd !== undefined ? cpuEnd - cpuStart : undefined;
  const pct = (p) => histogram.getValueAtPercentile(p);
  // The RPC thread is the process's main thread (tid = pid): it reads the socket, runs the
  // plugins and answers. Every other thread (mirror workers, V8's GC and compiler helpers,
  // libuv's pool) is "other": the sum of their CPU over the window.
  const perThread = [...threadsEnd].map(([tid, us]) => ({ tid, cpuUs: us - (threadsStart.get(tid) ?? 0), new: !threadsStart.has(tid) }))
    .filter((t) => t.cpuUs > 0)
    .sort((a, b) => b.cpuUs - a.cpuUs);
  const rpcThreadCpuUs = rpcThreadStart !== undefined && rpcThreadEnd !== undefined ? rpcThreadEnd - rpcThreadStart : undefined;
  // Threads that ended inside the window are missing here (a restarted mirror worker); the
  // process total (`runnerCpuUs`, from /proc/<pid>/stat) still has them, at 10 ms resolution.
  const otherThreadsCpuUs = rpcThreadCpuUs !== undefined && opts.pid
    ? perThread.filter((t) => t.tid !== opts.pid).reduce((sum, t) => sum + t.cpuUs, 0)
    : undefined;
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
    rpcThreadCpuUs,
    rpcThreadUsPerRpc: rpcThreadCpuUs !== undefined && stats.completed > 0 ? rpcThreadCpuUs / stats.completed : undefined,
    rpcThreadUtilisation: rpcThreadCpuUs !== undefined ? rpcThreadCpuUs / (seconds * 1e6) : undefined,
    // The RPC thread's read and write system calls and wake-ups per RPC over the window (how
    // many calls each one served: batching), or undefined.
    rpcThreadKernelPerRpc: kernelStart && kernelEnd && stats.completed > 0
      ? Object.fromEntries(Object.keys(kernelEnd).map((k) => [k, (kernelEnd[k] - kernelStart[k]) / stats.completed]))
      : undefined,
    otherThreadsCpuUs,
    otherThreadsUsPerRpc: otherThreadsCpuUs !== undefined && stats.completed > 0 ? otherThreadsCpuUs / stats.completed : undefined,
    // RPC thread + other threads (scheduler time, all threads alive at the end of the window).
    threadsCpuUsPerRpc: rpcThreadCpuUs !== undefined && otherThreadsCpuUs !== undefined && stats.completed > 0 ? (rpcThreadCpuUs + otherThreadsCpuUs) / stats.completed : undefined,
    // The runner's threads that used CPU in the window, busiest first (tid, µs, started during it).
    threads: perThread,
    runnerRssKiB: rss,
    // Paced mode (`rate` > 0): calls due, calls that found no free connection at their due time
    // (late starts: the runner, or the load generator, could not keep up with the offered
    // load), mean delay from due time to write, and latency counted from the due time.
    paced: paced
      ? {
          rate,
          lateStarts: pacing.lateStarts,
          backlogDropped: pacing.dropped,
          meanStartLagUs: pacing.started > 0 ? pacing.startLagUsSum / pacing.started : undefined,
          // Ticks of the 1 ms pacer that came more than 5 ms after the previous one, and the longest gap.
          pacerStalls: pacing.stalls,
          maxTickGapMs: pacing.maxTickGapMs,
          fromDueUs: {
            p50: scheduledHistogram.getValueAtPercentile(50),
            p99: scheduledHistogram.getValueAtPercentile(99),
            max: scheduledHistogram.maxValue,
          },
        }
      : undefined,
    loadgenCpuUsPerRpc: stats.completed > 0 ? (self.user + self.system) / stats.completed : undefined,
    loadgenCpuUtilisation: (self.user + self.system) / (seconds * 1e6),
    // How often the load generator's thread slept and had to be woken, per RPC: each wake-up of
    // a sleeping reader costs the writer (the runner) a cross-core wake-up in the kernel.
    loadgenWakesPerRpc: selfKernelStart && selfKernelEnd && stats.completed > 0 ? (selfKernelEnd.wakes - selfKernelStart.wakes) / stats.completed : undefined,
    // CPU used by everything else on the machine during the window (other jobs, the mirror
    // sink, the kernel): a high value means the cell was disturbed.
    otherCpuUtilisation:
      machineStart !== undefined && machineEnd !== undefined && runnerCpuUs !== undefined
        ? Math.max(0, machineEnd - machineStart - runnerCpuUs - helperUs - (self.user + self.system)) / (seconds * 1e6)
        : undefined,
    // CPU of helper processes of the cell (the mirror sink), not counted as disturbance.
    helperCpuUtilisation: helpers.length ? helperUs / (seconds * 1e6) : undefined,
    helperCpuUs,
    // With --sink-port: copies the mirror sink received inside the window, and the helper
    // processes' (the sink's) CPU per copy received.
    sinkRequestsInWindow: sinkInWindow,
    sinkCpuUsPerCopy: sinkInWindow > 0 && helpers.length ? helperUs / sinkInWindow : undefined,
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
      rate: { type: 'string' },
      'sink-port': { type: 'string' },
    },
  });
  if (values.rate !== undefined && !(Number(values.rate) > 0)) {
    process.stderr.write(`loadgen: --rate must be a positive number of calls per second, got "${values.rate}"\n`);
    process.exit(2);
  }
  if (!values.socket) {
    process.stderr.write('usage: node bench/loadgen.mjs --socket <path> [--connections N] [--duration s] [--warmup s] [--conf JSON] [--key K] [--body-size B] [--resp-conf JSON] [--resp-key K] [--pid P] [--helper-pids P,Q] [--rate N] [--sink-port P]\n');
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
    rate: values.rate ? Number(values.rate) : undefined,
    sinkPort: values['sink-port'] ? Number(values['sink-port']) : undefined,
  });
  process.stdout.write(JSON.stringify(summary) + '\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err) => {
    process.stderr.write(`loadgen: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
