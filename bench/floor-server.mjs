#!/usr/bin/env node
/**
 * The floor: a bare Node server that speaks only the framing. It reads frames with the
 * runner's own FrameDecoder on the same kind of Unix socket and answers every HTTPReqCall
 * with a canned reply (no decoding, no plugins). What the runner costs above this is the
 * price of its decoding, conf lookup, plugin chain and encoding.
 *
 * Env: APISIX_LISTEN_ADDRESS=unix:/path (like the runner);
 *      FLOOR_ASK_BODY=1 asks APISIX for the request body (one ExtraInfo ReqBody round trip)
 *      before each reply: the floor for the body-reading cells.
 */
import net from 'node:net';
import { chmodSync, rmSync } from 'node:fs';
import { loadProtocol } from './protocol.mjs';
import { FRAME_TYPE } from './frames.mjs';

const address = process.env.APISIX_LISTEN_ADDRESS ?? '';
if (!address.startsWith('unix:')) {
  process.stderr.write('floor-server: APISIX_LISTEN_ADDRESS=unix:/path is required\n');
  process.exit(2);
}
const socketPath = address.slice('unix:'.length);
const askBody = process.env.FLOOR_ASK_BODY === '1';

const { frames, FrameDecoder } = await loadProtocol();
const prepareReply = frames.prepareConfReply(1);
const callReply = frames.emptyReqCallReply(0);
const bodyQuestion = frames.reqBodyQuestion();

const server = net.createServer((socket) => {
  const decoder = new FrameDecoder();
  socket.on('data', (chunk) => {
    try {
      decoder.push(chunk, (type) => {
        if (type === FRAME_TYPE.httpReqCall) socket.write(askBody ? bodyQuestion : callReply);
        else if (type === FRAME_TYPE.extraInfo) socket.write(callReply);
        else if (type === FRAME_TYPE.prepareConf) socket.write(prepareReply);
        else socket.destroy();
      });
    } catch {
      socket.destroy();
    }
  });
  socket.on('error', () => {});
});

// Same socket setup as the runner: drop a stale file, listen, let other users (nobody) write.
rmSync(socketPath, { force: true });
server.listen(socketPath, () => {
  chmodSync(socketPath, 0o766);
  process.stdout.write(`floor listening on ${socketPath}${askBody ? ' (asks ReqBody)' : ''}\n`);
});

const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
