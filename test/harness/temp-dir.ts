/** The one temp-dir fixture of the test suite: a fresh private directory, removed by `remove()`. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TempDir {
  readonly path: string;
  /** A path inside the directory. */
  file(name: string): string;
  /** Removes the directory and everything in it (safe to call twice). */
  remove(): void;
}

/** Creates `$TMPDIR/<prefix>XXXXXX` (mode 0700); the caller removes it when done. */
export function createTempDir(prefix = 'a6-'): TempDir {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return {
    path,
    file: (name) => join(path, name),
    remove: () => rmSync(path, { recursive: true, force: true }),
  };
}

/** Temp dirs made during a test and removed together (call `removeAll` in afterEach). */
export interface TempDirs {
  /** A new temp dir's path, removed by the next `removeAll`. */
  make(prefix?: string): string;
  removeAll(): void;
}

export function tempDirs(): TempDirs {
  const made: TempDir[] = [];
  return {
    make: (prefix) => {
      const dir = createTempDir(prefix);
      made.push(dir);
      return dir.path;
    },
    removeAll: () => {
      for (const dir of made.splice(0)) dir.remove();
    },
  };
}
