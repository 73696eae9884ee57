/** The socket path's ownership rules, with real listeners in this process. */
import { afterEach, describe, expect, it } from 'vitest';
import { lstatSync, mkdirSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { bindSocketPath, inspectSocketPath, ownsSocketPath, releaseSocketPath } from '../../src/server/socket-path.js';
import { cleanUp, tempDir } from './fixtures.js';

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
  cleanUp();
});

const pathIn = (): string => join(tempDir('a6path-'), 'apisix-1.sock');

/** A listener that answers each connection with its own name, then closes it. */
function named(name: string): Server {
  const s = createServer((c) => {
    c.on('error', () => undefined); // inspectSocketPath's probe hangs up at once
    c.end(name);
  });
  servers.push(s);
  return s;
}

function whoAnswers(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const c = createConnection({ path });
    c.on('data', (d) => (text += d.toString()));
    c.on('end', () => resolve(text));
    c.on('error', reject);
  });
}

describe('socket path ownership', () => {
  it('a path with no room for the private name beside it is refused with a message', async () => {
    const dir = tempDir('a6path-');
    const deep = join(dir, 'd'.repeat(100 - dir.length));
    mkdirSync(deep);
    await expect(bindSocketPath(named('x'), join(deep, 's'), 16)).rejects.toThrow(/too long to hand over safely.*use a shorter path/);
  });

  it('a second bind takes the path over; only the owner of the current file removes it', async () => {
    const path = pathIn();
    expect(await inspectSocketPath(path)).toBe('absent');
    const first = await bindSocketPath(named('first'), path, 16);
    expect(lstatSync(path).mode & 0o777).toBe(0o766);
    expect(await inspectSocketPath(path)).toBe('live');
    const second = await bindSocketPath(named('second'), path, 16);
    expect(await whoAnswers(path)).toBe('second');
    expect(await ownsSocketPath(path, first)).toBe(false);
    expect(await ownsSocketPath(path, second)).toBe(true);
    // The first runner exits: it must leave the second one's socket in place.
    expect(await releaseSocketPath(path, first)).toBe(false);
    expect(await whoAnswers(path)).toBe('second');
    expect(await releaseSocketPath(path, second)).toBe(true);
    expect(() => lstatSync(path)).toThrow(/ENOENT/);
  });

  it('a socket nobody listens on is stale and replaced; a file or a directory is refused', async () => {
    const path = pathIn();
    const s = named('gone');
    await bindSocketPath(s, path, 16);
    servers.splice(servers.indexOf(s), 1);
    await new Promise((r) => s.close(r));
    // Node unlinks the name a listener bound when it closes, which after the rename is the
    // private name: the path itself stays behind, as after a killed runner.
    expect(await inspectSocketPath(path)).toBe('stale');
    await bindSocketPath(named('new'), path, 16);
    expect(await whoAnswers(path)).toBe('new');
    const file = pathIn();
    writeFileSync(file, 'data');
    await expect(inspectSocketPath(file)).rejects.toThrow(/refusing to listen on .*: it exists and is a regular file/);
    const dir = pathIn();
    mkdirSync(dir);
    await expect(inspectSocketPath(dir)).rejects.toThrow(/it exists and is a directory/);
  });
});
