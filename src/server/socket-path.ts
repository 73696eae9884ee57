import { createConnection } from 'node:net';
import { chmod, link, lstat, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export class SocketPathError extends Error {
  readonly code = 'A6_ERR_SOCKET_PATH';
}

/** Parses APISIX_LISTEN_ADDRESS (`unix:/abs/path.sock`); a bare absolute path is accepted too. */
export function parseListenAddress(value: string): string {
  const path = value.startsWith('unix:') ? value.slice('unix:'.length) : value;
  if (!path.startsWith('/')) {
    throw new SocketPathError(`APISIX_LISTEN_ADDRESS must be "unix:/absolute/path.sock", got "${value}"; set it to unix: followed by an absolute path`);
  }
  return path;
}

/** The file a runner bound: a path names "our" socket only while it still has this device and inode. */
export interface SocketIdentity {
  readonly dev: number;
  readonly ino: number;
}

/** What is at the socket path before listening. */
export type SocketPathState = 'absent' | 'live' | 'stale';

/** Longest path a Unix socket address can hold on Linux (sun_path is 108 bytes, NUL included). */
const MAX_SOCKET_PATH_BYTES = 107;

/**
 * Looks at the path before listening. A socket that accepts a connection belongs to a live
 * runner (during `apisix reload` the new runner starts while the old one still serves); one
 * that refuses is stale. Anything that is not a socket (a regular file, a directory, a link)
 * is refused: the runner never replaces what it did not create.
 */
export async function inspectSocketPath(path: string): Promise<SocketPathState> {
  let stats;
  try {
    stats = await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'absent';
    throw err;
  }
  if (!stats.isSocket()) {
    const kind = stats.isDirectory() ? 'a directory' : stats.isSymbolicLink() ? 'a symbolic link' : 'a regular file or other non-socket';
    throw new SocketPathError(`refusing to listen on ${path}: it exists and is ${kind}, not a socket; remove it or choose another APISIX_LISTEN_ADDRESS`);
  }
  return (await acceptsConnections(path)) ? 'live' : 'stale';
}

function acceptsConnections(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createConnection({ path });
    const done = (live: boolean): void => {
      clearTimeout(timer);
      probe.destroy();
      resolve(live);
    };
    // A live listener accepts at once (the kernel completes a Unix connect from the backlog);
    // a full backlog is reported as EAGAIN, which also means someone is listening.
    const timer = setTimeout(() => done(true), 1000);
    probe.once('connect', () => done(true));
    probe.once('error', (err: NodeJS.ErrnoException) => done(err.code === 'EAGAIN'));
  });
}

/** A listener that can bind a Unix socket path (net.Server). */
export interface PathListener {
  listen(options: { path: string; backlog: number }, ready: () => void): unknown;
  once(event: 'error', handler: (err: Error) => void): unknown;
  off(event: 'error', handler: (err: Error) => void): unknown;
}

function listenOn(server: PathListener, path: string, backlog: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ path, backlog }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/**
 * A private name beside `path` (same directory, so rename() is atomic and stays on one file
 * system), unique per process and short, so that it fits a socket address wherever the path does.
 */
function privateName(path: string, purpose: string): string {
  return join(dirname(path), `.${process.pid}.${purpose}`);
}

/**
 * Binds `server` to `path` so that the path always has a listener: the socket is bound at a
 * private name in the same directory, opened to APISIX's workers (0766), and then renamed over
 * the path in one atomic step. A runner still serving on the path (the old one of an
 * `apisix reload`) keeps its open connections; every new connection reaches this one.
 * Returns the identity of the bound file, which decides later whether the path is still ours.
 */
export async function bindSocketPath(server: PathListener, path: string, backlog: number): Promise<SocketIdentity> {
  const temp = privateName(path, 'new');
  if (Buffer.byteLength(temp) > MAX_SOCKET_PATH_BYTES) {
    // Binding in place is no option: Node removes a Unix listener's path when it closes, which
    // would delete a newer runner's socket at the end of a reload overlap.
    throw new SocketPathError(`socket path ${path} is too long to hand over safely (its folder leaves no room for ${basename(temp)}); use a shorter path`);
  }
  await unlinkIfSocket(temp);
  await listenOn(server, temp, backlog);
  await makeSocketReachable(temp);
  // Taken right after listening, before the rename: this inode is the file this runner created.
  // (When the listener closes, Node unlinks the private name it bound, which is gone by then.)
  const identity = await identityOf(temp);
  await rename(temp, path);
  return identity;
}

async function identityOf(path: string): Promise<SocketIdentity> {
  const s = await lstat(path);
  return { dev: s.dev, ino: s.ino };
}

async function unlinkIfSocket(path: string): Promise<void> {
  try {
    if ((await lstat(path)).isSocket()) await unlink(path);
  } catch {
    // nothing there
  }
}

/** APISIX workers may run as another user (often nobody): they need write access to connect. */
export async function makeSocketReachable(path: string): Promise<void> {
  await chmod(path, 0o766);
}

/** Whether `path` still names the socket this runner bound (false once a newer runner took it over). */
export async function ownsSocketPath(path: string, identity: SocketIdentity): Promise<boolean> {
  try {
    const s = await lstat(path);
    return s.isSocket() && s.dev === identity.dev && s.ino === identity.ino;
  } catch {
    return false;
  }
}

/**
 * Removes the socket file at shutdown, but only if it is still the one this runner bound.
 * A newer runner may take the path over at any moment, so the file is first moved aside
 * atomically and then checked: if it turns out to be the newer runner's, it is linked back
 * (link() never replaces, so an even newer one is left alone). Returns whether the path was ours.
 */
export async function releaseSocketPath(path: string, identity: SocketIdentity): Promise<boolean> {
  if (!(await ownsSocketPath(path, identity))) return false;
  const aside = privateName(path, 'old');
  try {
    await rename(path, aside);
  } catch {
    return false;
  }
  const moved = await lstat(aside).catch(() => undefined);
  if (moved && moved.dev === identity.dev && moved.ino === identity.ino) {
    await unlink(aside).catch(() => undefined);
    return true;
  }
  await link(aside, path).catch(() => undefined);
  await unlink(aside).catch(() => undefined);
  return false;
}
