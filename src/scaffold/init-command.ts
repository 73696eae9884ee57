/**
 * `apisix-ts-plugin-runner init <dir> [--name <plugin-name>]`: scaffolds a plugin project.
 * Errors follow the CLI's style: one line naming the problem and the fix, exit code 2.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { gitignore, packageJson, pluginSource, pluginTest, readme, tsconfigBuildJson, tsconfigJson, type ScaffoldInput } from './templates.js';

const USAGE = 'usage: apisix-ts-plugin-runner init <dir> [--name <plugin-name>]';

interface OwnPackage {
  readonly version: string;
  readonly devDependencies: Readonly<Record<string, string>>;
}

/** Thrown for a bad invocation; the message says what to change. */
export class InitError extends Error {
  readonly code = 'A6_ERR_INIT';
}

function ownPackage(): OwnPackage {
  return JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as OwnPackage;
}

/** A plugin name APISIX conf entries can carry and that is a file name too. */
function toPluginName(raw: string): string {
  return raw.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '');
}

/** Writes the project; returns the files written, relative to `dir`. */
export function scaffold(dir: string, pluginName?: string): string[] {
  const target = resolve(dir);
  if (existsSync(target) && readdirSync(target).length > 0) {
    throw new InitError(`${dir} exists and is not empty: give a new folder name`);
  }
  const name = toPluginName(pluginName ?? basename(target));
  if (!name) throw new InitError(`cannot make a plugin name from "${pluginName ?? basename(target)}": pass --name with letters, digits and dashes`);
  const own = ownPackage();
  const pick = (dep: string): [string, string] => [dep, own.devDependencies[dep] ?? 'latest'];
  const input: ScaffoldInput = {
    packageName: toPluginName(basename(target)) || name,
    pluginName: name,
    runnerRange: `^${own.version}`,
    devDependencies: Object.fromEntries(['@types/node', 'typescript', 'vitest'].map(pick)),
  };
  const files: Array<[string, string]> = [
    ['package.json', packageJson(input)],
    ['tsconfig.json', tsconfigJson()],
    ['tsconfig.build.json', tsconfigBuildJson()],
    [`src/${name}.ts`, pluginSource(input)],
    [`test/${name}.test.ts`, pluginTest(input)],
    ['README.md', readme(input)],
    ['.gitignore', gitignore()],
  ];
  for (const [file, content] of files) {
    const path = join(target, file);
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, content);
  }
  return files.map(([file]) => file);
}

/** Runs `init` with the arguments after it; returns the exit code. */
export async function runInit(args: readonly string[]): Promise<number> {
  try {
    const { positionals, values } = parseArgs({ args: [...args], allowPositionals: true, options: { name: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
    if (values.help) {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    const dir = positionals[0];
    if (positionals.length !== 1 || dir === undefined) throw new InitError(`give exactly one folder to create. ${USAGE}`);
    const files = scaffold(dir, values.name);
    const shown = relative(process.cwd(), resolve(dir)) || '.';
    const plugin = files.find((f) => f.startsWith('src/'))!.slice(4, -3);
    process.stdout.write(
      `Created ${shown}/ with the plugin "${plugin}": ${files.join(', ')}\n\nNext:\n` +
        `  cd ${shown}\n  npm install\n  npm test\n  npm start        # builds, then runs the runner with --plugin dist/${plugin}.js\n\n` +
        'README.md shows the APISIX config.yaml and route to use it.\n',
    );
    return 0;
  } catch (err) {
    process.stderr.write(`apisix-ts-plugin-runner init: ${(err as Error).message}\n`);
    return 2;
  }
}
