const mods = process.argv.slice(2);
const mib = (b) => (b/1048576).toFixed(1);
globalThis.gc?.(); await new Promise(r=>setTimeout(r,200)); globalThis.gc?.();
let prev = process.memoryUsage();
console.log('base rss', mib(prev.rss), 'heap', mib(prev.heapUsed));
for (const m of mods) {
  await import(m.startsWith('.') ? new URL(m, 'file://' + process.cwd() + '/').href : import.meta.resolve ? m : m);
  globalThis.gc?.(); await new Promise(r=>setTimeout(r,200)); globalThis.gc?.();
  const u = process.memoryUsage();
  console.log(m.padEnd(50), 'rss +', mib(u.rss-prev.rss), 'heap +', mib(u.heapUsed-prev.heapUsed), 'total rss', mib(u.rss));
  prev = u;
}
