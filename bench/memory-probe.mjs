/**
 * Preloaded into the runner by `bench/rss.mjs --breakdown` (`node --import bench/memory-probe.mjs`):
 * every 200 ms, appends one JSON line to $A6_MEMORY_PROBE_FILE with where the main thread's memory
 * is: V8 heap (per space, physical), external and array buffers (Buffers, undici's), and the RSS
 * not in either (malloc arenas, code, the binary), and the main thread's GC time so far (ms,
 * minor = scavenges, major = mark-compact; from `gc` performance entries). Bench-only: the
 * runner never loads it.
 */
import { appendFileSync } from 'node:fs';
import { PerformanceObserver, constants } from 'node:perf_hooks';
import v8 from 'node:v8';

const file = process.env.A6_MEMORY_PROBE_FILE;
if (file) {
  const gc = { minorMs: 0, minorCount: 0, majorMs: 0, majorCount: 0 };
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if (e.detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR) {
        gc.minorMs += e.duration;
        gc.minorCount++;
      } else {
        gc.majorMs += e.duration;
        gc.majorCount++;
      }
    }
  }).observe({ entryTypes: ['gc'] });
  setInterval(() => {
    const m = process.memoryUsage();
    const spaces = {};
    let heapPhysical = 0;
    for (const s of v8.getHeapSpaceStatistics()) {
      heapPhysical += s.physical_space_size;
      if (s.physical_space_size > 0) spaces[s.space_name] = s.physical_space_size;
    }
    appendFileSync(file, `${JSON.stringify({ t: Date.now(), rss: m.rss, heapUsed: m.heapUsed, heapPhysical, external: m.external, arrayBuffers: m.arrayBuffers, spaces, gc })}\n`);
  }, 200).unref();
}
