/**
 * Bench-only plugin, loaded with the runner's `--plugin` flag (`bench/run.mjs --busy-us N` puts
 * it first in every runner cell's route): spins for `us` microseconds of CPU per call and does
 * nothing else. It stands for a costlier plugin, and makes the runner the busier side of the
 * closed loop, so that the load generator waits for its answers (asleep in epoll) as APISIX's
 * workers do when the runner is their bottleneck. docs/performance.md, "Mirror dispatch,
 * fourteenth pass".
 */
export default {
  name: 'bench-busy',
  parseConf(value) {
    const us = Number(value?.us ?? 0);
    if (!(us >= 0 && us <= 1000)) throw new Error(`bench-busy: "us" must be 0-1000, got ${us}`);
    return { ms: us / 1000 };
  },
  onRequest(conf) {
    const end = performance.now() + conf.ms;
    while (performance.now() < end);
  },
};
