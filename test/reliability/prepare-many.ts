/** Sends many PrepareConf RPCs over one connection, pipelined, and collects the tokens in order. */
import { RawConnection } from '../harness/raw-connection.js';
import { RPC, encodePrepareConfReq } from '../harness/apisix-codec.js';
import { readReply } from '../harness/frames.js';
import { encodeFrame } from '../../src/protocol/frame.js';

/** One token per key, in order; `conf` is the same for every key. Writes in batches so replies drain. */
export async function prepareMany(socketPath: string, keys: readonly string[], conf: readonly { name: string; value: string }[], batch = 2000): Promise<number[]> {
  const conn = await RawConnection.connect(socketPath);
  const tokens: number[] = [];
  try {
    for (let i = 0; i < keys.length; i += batch) {
      const slice = keys.slice(i, i + batch);
      await conn.sendRaw(Buffer.concat(slice.map((key) => encodeFrame(RPC.PREPARE_CONF, encodePrepareConfReq({ key, conf })))));
      for (let j = 0; j < slice.length; j++) {
        const reply = await readReply(conn, 10_000);
        if (reply.type !== 'prepareConf') throw new Error(`PrepareConf of ${slice[j]} answered ${JSON.stringify(reply)}`);
        tokens.push(reply.confToken);
      }
    }
  } finally {
    conn.close();
  }
  return tokens;
}
