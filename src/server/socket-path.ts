import { lstat, unlink, chmod } from 'node:fs/promises';

export class SocketPathError extends Error {
  readonly code = 'A6_ERR_SOCKET_PATH';
}

/** Parses APISIX_LISTEN_ADDRESS (`unix:/abs/path.sock`); a bare absolute path is accepted too. */
export function parseListenAddress(value: string): string {
  const path = value.startsWith('unix:') ? value.slice('unix:'.length) : value;
  if (!path.startsWith('/')) {
    throw new SocketPathError(`APISIX_LISTEN_ADDRESS must be "unix:/absolute/path.sock", got "${value}"`);
  }
  return path;
}

/**
 * Removes a stale socket left by an earlier run. Anything that is not a socket (a regular
 * file, a directory, a link) is refused: the runner never deletes what it did not create.
 */
export async function removeStaleSocket(path: string): Promise<void> {
  let stats;
  try {
    stats = await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!stats.isSocket()) {
    const kind = stats.isDirectory() ? 'a directory' : stats.isSymbolicLink() ? 'a symbolic link' : 'a regular file or other non-socket';
    throw new SocketPathError(`refusing to listen on ${path}: it exists and is ${kind}, not a socket; remove it or choose another APISIX_LISTEN_ADDRESS`);
  }
  await unlink(path);
}

/** APISIX workers may run as another user (often nobody): they need write access to connect. */
export async function makeSocketReachable(path: string): Promise<void> {
  await chmod(path, 0o766);
}

/** Removes our socket file at shutdown, ignoring one already gone. */
export async function removeSocket(path: string): Promise<void> {
  try {
    const stats = await lstat(path);
    if (stats.isSocket()) await unlink(path);
  } catch {
    // already gone
  }
}
