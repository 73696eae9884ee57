import { createServer, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Connection, type ConnectionDeps } from './connection.js';
import { makeSocketReachable, removeSocket, removeStaleSocket } from './socket-path.js';

/** The Unix-socket listener: accepts APISIX's connections and drains them at shutdown. */
export class RunnerServer {
  private readonly server: Server;
  private readonly connections = new Set<Connection>();
  private closing: Promise<void> | undefined;
  private watchdog: NodeJS.Timeout | undefined;

  constructor(readonly socketPath: string, private readonly deps: ConnectionDeps) {
    this.server = createServer({ noDelay: true }, this.onConnection);
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** Listens on the socket path (removing a stale socket first) and opens it to APISIX's workers. */
  async listen(): Promise<void> {
    await removeStaleSocket(this.socketPath);
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      // A large backlog: every APISIX worker may open connections at once (up to 32 idle each
      // plus bursts), and a full Unix-socket backlog fails connect() with EAGAIN, i.e. a 503.
      this.server.listen({ path: this.socketPath, backlog: 4096 }, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.server.on('error', (err) => this.deps.logger.error({ err }, 'listener error'));
    await makeSocketReachable(this.socketPath);
    // Unanswered ExtraInfo questions are found by one sweep, at a quarter of the timeout
    // (so a connection is closed between 1× and 1.25× the timeout).
    const every = Math.max(10, Math.min(1000, Math.floor(this.deps.extraInfoTimeoutMs / 4)));
    this.watchdog = setInterval(() => {
      const now = performance.now();
      for (const c of this.connections) c.checkExtraInfoTimeout(now);
    }, every);
    this.watchdog.unref();
  }

  /**
   * Stops accepting, lets in-flight RPCs finish (up to `graceMs`), closes every connection
   * and removes the socket file.
   */
  close(graceMs = 700): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.watchdog);
      const stopped = new Promise<void>((resolve) => this.server.close(() => resolve()));
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, graceMs);
      });
      await Promise.race([Promise.all([...this.connections].map((c) => c.whenIdle())), deadline]);
      clearTimeout(timer);
      for (const c of this.connections) c.destroy();
      await stopped;
      await removeSocket(this.socketPath);
    })();
    return this.closing;
  }

  private readonly onConnection = (socket: Socket): void => {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const conn = new Connection(socket, this.deps);
    this.connections.add(conn);
    this.deps.metrics.connections.inc();
    socket.once('close', () => {
      this.connections.delete(conn);
      this.deps.metrics.connections.dec();
    });
  };
}
