/**
 * A scripted stand-in for a runner, for the client cases a real runner cannot produce on
 * demand (a hang, garbage bytes, an error code every time). Each received frame is handed to
 * the test's handler together with the socket, which may answer, stay silent or close.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { FrameDecoder, encodeFrame } from '../../src/protocol/frame.js';

export type FakeHandler = (type: number, payload: Buffer, reply: FakeReply) => void;

/** What a handler can do with the connection a frame arrived on. */
export interface FakeReply {
  /** Sends one frame. */
  frame(type: number, payload: Uint8Array): void;
  /** Sends raw bytes. */
  raw(bytes: Uint8Array): void;
  /** Closes the connection at once. */
  destroy(): void;
  readonly socket: Socket;
}

export interface FakeRunner {
  readonly socketPath: string;
  /** Frames received so far, in order, over all connections. */
  readonly received: { type: number; payload: Buffer }[];
  /** Connections accepted so far. */
  connections(): number;
  /** Connections closed so far (by either side). */
  closedConnections(): number;
  close(): Promise<void>;
}

/** Starts a fake runner on `socketPath` answering with `handler`. */
export async function startFakeRunner(socketPath: string, handler: FakeHandler): Promise<FakeRunner> {
  const received: { type: number; payload: Buffer }[] = [];
  const sockets = new Set<Socket>();
  let accepted = 0;
  let closed = 0;
  const server: Server = createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('close', () => { closed++; sockets.delete(socket); });
    socket.on('error', () => undefined);
    const decoder = new FrameDecoder();
    const reply: FakeReply = {
      frame: (type, payload) => { socket.write(encodeFrame(type, payload)); },
      raw: (bytes) => { socket.write(bytes); },
      destroy: () => { socket.destroy(); },
      socket,
    };
    socket.on('data', (chunk: Buffer) => {
      decoder.push(chunk, (type, payload) => {
        const copy = Buffer.from(payload);
        received.push({ type, payload: copy });
        handler(type, copy, reply);
      });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  return {
    socketPath,
    received,
    connections: () => accepted,
    closedConnections: () => closed,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
