// Finding and reading a config file. JSON is read through os.fs, so it works
// the same on the real OS and in the simulator. A JavaScript config is code
// and has to be imported by Node from the real disk.

import { createRequire } from 'node:module';
import { extname, isAbsolute, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Os, Timer } from '../../os/types.js';
import { scanArgv } from './argv.js';
import { ENV_CONFIG, scanEnv } from './env.js';
import { ConfigError } from './errors.js';
import { scanFile } from './file.js';
import { show } from './names.js';
import { MISSING_APP, resolveConfig } from './resolve.js';
import { settingByName } from './settings.js';
import type { Config } from './types.js';

/** Looked for in the working directory when no file is named (like gunicorn's ./gunicorn.conf.py); at most one may be there. */
export const DEFAULT_FILES = ['drover.config.js', 'drover.config.mjs', 'drover.config.cjs', 'drover.config.json'] as const;

const LOADERS: Record<string, 'json' | 'module'> = { '.json': 'json', '.js': 'module', '.mjs': 'module', '.cjs': 'module' };

function absolute(os: Os, path: string): string {
  return isAbsolute(path) ? path : join(os.cwd(), path);
}

/**
 * The default config file of the working directory, or null. Two of them is
 * an error rather than an order of preference: a leftover drover.config.json
 * next to the drover.config.js being edited would otherwise be read, or
 * ignored, without a word.
 */
export function findConfigFile(os: Os): string | null {
  const found = DEFAULT_FILES.filter((name) => os.fs.exists(join(os.cwd(), name)));
  if (found.length > 1) {
    throw new ConfigError([
      `${found.join(' and ')} are both in ${os.cwd()}, and drover reads one config file: remove the others, or name the one to read with --config (or DROVER_CONFIG)`,
    ]);
  }
  return found.length === 0 ? null : join(os.cwd(), found[0]!);
}

/** Line and column of a character offset, 1-based, for JSON syntax errors. */
export function lineCol(text: string, offset: number): { line: number; col: number } {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  return { line, col: offset - before.lastIndexOf('\n') };
}

function parseJson(path: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    // V8 says "... in JSON at position N" for most errors; an early end has no position.
    const m = /at position (\d+)/.exec(msg);
    const pos = m !== null ? Number(m[1]) : /end of JSON input/.test(msg) ? text.length : null;
    const at = pos === null ? '' : ((lc) => ` at line ${lc.line}, column ${lc.col}`)(lineCol(text, pos));
    throw new ConfigError([`${path}: invalid JSON${at}: ${msg.split('\n')[0]}`]);
  }
}

// Query strings make each import a new module instance: a HUP re-read sees
// the file as it is now. The old instances stay in Node's module map (there
// is no unloading in ESM); a reload is rare enough for that not to matter.
let generation = 0;
const cjs = createRequire(import.meta.url);

async function importConfig(os: Os, path: string, shown: string, what: string): Promise<unknown> {
  // A CommonJS file is cached by file name, not by URL, even when imported;
  // drop it from that cache so the new URL really evaluates it again.
  delete cjs.cache[path];
  const ns = (await os.hostWork(import(`${pathToFileURL(path).href}?drover-config=${++generation}`))) as Record<string, unknown>;
  // The default export; without one, the named exports (`export const workers = 4`), as gunicorn reads module variables.
  const data: unknown = 'default' in ns ? ns.default : { ...ns };
  if (typeof data !== 'function') return data;
  // drover calls a config's function with no arguments; one that names two or
  // more is a request listener (req, res) or an Express app (req, res, next),
  // given as the config by mistake. It is not called: an app's handler run
  // without its request fails in its own words, which say nothing of the mix-up.
  if (data.length >= 2) {
    throw new ConfigError([`${what} ${shown}: its default export is a function of ${data.length} arguments, as a request listener (req, res) is, so it looks like an app, not a config: ${runAppInstead(shown)}`]);
  }
  try {
    return await (data as () => unknown)();
  } catch (e) {
    // A listener written (...args) or (req = {}, res) slips past the count, and
    // fails reading its missing request or response: "... of undefined".
    if (e instanceof TypeError && /\bundefined\b/.test(e.message)) {
      throw new ConfigError([`${what} ${shown} failed to load: TypeError: ${e.message}; if ${shown} is an app rather than a config, ${runAppInstead(shown)}`]);
    }
    throw e;
  }
}

function runAppInstead(path: string): string {
  return `serve it with drover ${path}, and give settings in a config file, e.g. drover ${path} --config drover.config.js (whose default export is an object of settings, or a function of no arguments returning one)`;
}

/**
 * The content of a config file. JSON: parsed, errors with line and column.
 * JS (.js, .mjs, .cjs): its default export, an object or a function (maybe
 * async) returning one. The data is not validated here; resolveConfig does
 * that, with every other source. `what` names the file in messages.
 */
export async function loadConfigFile(os: Os, path: string, what = 'config file'): Promise<{ path: string; data: unknown }> {
  const loader = LOADERS[extname(path).toLowerCase()];
  if (loader === undefined) {
    const ext = extname(path);
    throw new ConfigError([`${what} ${path}: ${ext === '' ? 'no extension' : `unsupported type ${show(ext)}`}; use .js, .mjs, .cjs or .json`]);
  }
  const abs = absolute(os, path);
  if (!os.fs.exists(abs)) throw new ConfigError([`${what} ${path} does not exist (looked for ${abs})`]);
  if (loader === 'json') {
    let text: string;
    try {
      text = os.fs.readFile(abs);
    } catch (e) {
      throw new ConfigError([`${what} ${path} cannot be read: ${(e as Error).message}`]);
    }
    return { path, data: withoutSchemaKey(parseJson(path, text)) };
  }
  let limit: Timer | undefined;
  const late = new Promise<never>((_, reject) => {
    limit = os.timer(LOAD_LIMIT_MS, () => reject(new LoadTimeout()));
  });
  try {
    return { path, data: await Promise.race([importConfig(os, abs, path, what), late]) };
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    if (e instanceof LoadTimeout) {
      throw new ConfigError([
        `${what} ${path} did not finish loading within ${LOAD_LIMIT_MS / 1000} s: its module, or the promise its default export returned, never settled; ` +
          'make whatever it awaits (a secret store, a network call) time out and throw, or fail fast',
      ]);
    }
    const err = e as Error;
    throw new ConfigError([`${what} ${path} failed to load: ${err?.name ?? 'Error'}: ${err?.message ?? String(e)}`]);
  } finally {
    limit!.cancel(); // set by the executor, which runs at once
  }
}

/**
 * How long a JS config file may take to load: its import and the promise its
 * default export returns. The arbiter waits for it at boot and on every HUP,
 * and a promise that never settles would hold it there for good (TERM
 * unheard, nothing reaped, `drover ctl reload` hanging; at boot, Node's exit
 * 13 without a word). 10 s is long for a file of settings, even one that
 * asks a secret store over the network, and short enough to be an answer to
 * an operator and to stay well inside systemd's start timeout (90 s).
 */
export const LOAD_LIMIT_MS = 10_000;

class LoadTimeout extends Error {}

/**
 * A JSON file may name its JSON Schema (`"$schema": "./node_modules/drover/schema/drover.config.schema.json"`)
 * for an editor's completion and checks; that key is for the editor, not a setting.
 */
function withoutSchemaKey(data: unknown): unknown {
  if (data === null || typeof data !== 'object' || Array.isArray(data) || !Object.hasOwn(data, '$schema')) return data;
  const { $schema: _editorOnly, ...rest } = data as Record<string, unknown>;
  return rest;
}

/** The config file to read: --config, else DROVER_CONFIG, else the default file (findConfigFile: two throw a ConfigError). */
export function locateConfig(os: Os, argv: readonly string[]): string | null {
  const named = scanArgv(argv).configPath ?? os.env[ENV_CONFIG];
  if (named !== undefined && named !== '') return named;
  return findConfigFile(os);
}

/**
 * The companions file to read: the companions_file setting by the usual
 * precedence (file < environment < command line), ignoring values the
 * setting refuses (resolveConfig reports those). Relative paths are read
 * against the working directory, like the config file's.
 */
export function locateCompanionsFile(argv: readonly string[], env: Readonly<Record<string, string>>, file: { path: string; data: unknown } | null): string | null {
  const spec = settingByName('companions_file')!;
  let found: string | null = null;
  for (const scan of [file === null ? null : scanFile(file), scanEnv(env), scanArgv(argv)]) {
    for (const e of scan?.entries ?? []) {
      if (e.name !== 'companions_file') continue;
      const r = spec.parse(e.raw, e.text);
      if (r.ok) found = r.value as string | null;
    }
  }
  return found;
}

/**
 * The whole read, as `drover` and a HUP do it: locate and load the file
 * (and the companions file it or another source names), then resolve them
 * with the environment and the command line. When a file cannot be loaded,
 * the other sources are still checked, so one run reports everything.
 */
export async function loadConfig(os: Os, argv: readonly string[], cpus: number): Promise<Config> {
  let file: { path: string; data: unknown } | null = null;
  let fileProblems: string[] = [];
  let path: string | null = null;
  try {
    path = locateConfig(os, argv);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    fileProblems = e.problems;
  }
  if (path !== null) {
    try {
      file = await loadConfigFile(os, path);
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      fileProblems = e.problems;
    }
  }
  const mainFailed = fileProblems.length > 0;
  const companionsPath = locateCompanionsFile(argv, os.env, file);
  let companionsFile: { path: string; data: unknown } | null | undefined;
  if (companionsPath !== null) {
    try {
      companionsFile = await loadConfigFile(os, companionsPath, 'companions file');
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      fileProblems = [...fileProblems, ...e.problems];
      companionsFile = null;
    }
  }
  const problems = [...fileProblems];
  let config: Config | null = null;
  try {
    config = resolveConfig({ argv, env: os.env, file, companionsFile, cpus, cwd: os.cwd(), uid: os.uid });
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    // The app may well be in the file that failed to load.
    problems.push(...(mainFailed ? e.problems.filter((p) => p !== MISSING_APP) : e.problems));
  }
  if (problems.length > 0 || config === null) throw new ConfigError(problems);
  return config;
}
