/**
 * Helpers shared by the bench scripts that run servers in child processes: start a small
 * Node server from source and learn its port, stop a child, find a free (or dead) port, and
 * read a counter from a Prometheus text page.
 */
import { spawn } from 'node:child_process';
import net from 'node:net';

/**
 * Runs `source` with `node -e` and resolves { child, url } once it prints `port N`.
 * The server runs in its own process so its work does not disturb the load generator's clock.
 */
export function startNodeServer(source, env = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', source], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = /port (\d+)/.exec(out);
      if (m) resolve({ child, url: `http://127.0.0.1:${m[1]}` });
    });
    child.once('exit', (code) => reject(new Error(`server child exited with ${code}`)));
  });
}

/** A port that was free a moment ago and has nobody listening (connections are refused). */
export async function freePort() {
  const s = net.createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

/** SIGTERMs a child and resolves with its exit code (at once when it has already exited). */
export function stopChild(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((r) => {
    child.once('exit', (code) => r(code));
    child.kill('SIGTERM');
  });
}

/** Sums the samples of a metric whose labels include all of `labels`. */
export function scrape(text, name, labels = {}) {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}
