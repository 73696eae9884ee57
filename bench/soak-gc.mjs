/**
 * Preloaded into the runner by bench/soak.mjs (node --expose-gc --import bench/soak-gc.mjs):
 * SIGUSR2 runs a full GC, so the soak samples heap that is live, not garbage awaiting collection.
 */
if (typeof globalThis.gc === 'function') {
  process.on('SIGUSR2', () => globalThis.gc());
}
