// Which control socket `drover ctl` talks to: --socket, else the config's
// control_socket (DROVER_CONTROL_SOCKET, then the file's key: the server's
// precedence, its command line aside), else defaultControlSocket for that
// config, which is what the server falls back to as well. That default is
// named by the config file's path alone, so a file ctl cannot load (a
// trailing comma left while drover runs) costs only its control_socket:
// ctl says so and uses the default for the path.

import { isAbsolute, join } from 'node:path';
import type { Os } from '../../os/types.js';
import { CONTROL_SOCKET_PREFIX } from '../companions/config.js';
import { ConfigError, DEFAULT_FILES, defaultControlSocket, ENV_CONFIG, envOf, findConfigFile, loadConfigFile, settingByName } from '../config/index.js';
import { errnoOf } from '../assert.js';
import { checkPrivateDir, RundirError, runtimeDirPath } from '../rundir.js';
import { ControlError, request } from './client.js';
import { socketRefusal } from './guard.js';

export interface SocketChoice {
  readonly path: string;
  /** Where the path came from, for messages: "--socket", "control_socket in drover.config.json", ... */
  readonly from: string;
  /**
   * A default path, chosen with no --config or $DROVER_CONFIG: when nothing
   * is there, ctl may look for the drover running from this directory
   * (findRunning).
   */
  readonly mayLook?: boolean;
  /**
   * The config's `timeout` in ms ($DROVER_TIMEOUT, else the file's key),
   * when a config was consulted and says it: a reload waits up to that long
   * for its new workers to boot, so `drover ctl reload` waits longer.
   */
  readonly timeout?: number;
  /** What ctl should tell the user about the choice before it asks: why the config file was not used. */
  readonly notes?: readonly string[];
}

/** A socket a drover would listen at, and which config file it is the default for. */
export interface Candidate {
  readonly path: string;
  readonly for: string;
}

/**
 * ctl cannot tell which socket to use (a control_socket that is not valid,
 * a config file that is not there, two config files here): `candidates` are
 * the sockets a drover started without control_socket would listen at, for
 * the message.
 */
export class SocketUnknown extends ConfigError {
  constructor(problems: readonly string[], readonly candidates: readonly Candidate[]) {
    super(problems);
    this.name = 'SocketUnknown';
  }
}

/**
 * The default sockets for the config named, else for each default file here
 * (there may be two: the very thing findConfigFile refuses), else for the
 * directory. Only paths: no file is read.
 */
function candidatesFor(os: Os, named: string | undefined): Candidate[] {
  const dflt = (path: string | null): Candidate => ({ path: defaultControlSocket(os.cwd(), path, os.env, os.uid), for: path ?? `${os.cwd()} (no config file)` });
  if (named !== undefined) return [dflt(named)];
  const here = DEFAULT_FILES.map((name) => join(os.cwd(), name)).filter((p) => os.fs.exists(p));
  return here.length === 0 ? [dflt(null)] : here.map(dflt);
}

const KEY = 'control_socket';

/** A raw control_socket value, checked by the setting's own parser; when it is not valid, ctl cannot tell which socket drover made. */
function parseSocket(raw: unknown, text: boolean, source: string, candidates: () => Candidate[]): string {
  const r = settingByName(KEY)!.parse(raw, text);
  if (!r.ok) throw new SocketUnknown(r.problems.map((p) => `${source}: ${KEY}: ${p}`), candidates());
  return r.value as string;
}

/** A raw `timeout` value in ms, or undefined when it is not valid (the server refuses such a config; not ctl's business). */
function parseTimeout(raw: unknown, text: boolean): number | undefined {
  const r = settingByName('timeout')!.parse(raw, text);
  return r.ok ? (r.value as number) : undefined;
}

/**
 * `config` is --config; without it, the file the server would find
 * ($DROVER_CONFIG, then ./drover.config.{js,mjs,cjs,json}). A file that
 * cannot be loaded gives the default socket for its path, with `notes`
 * saying why. Throws SocketUnknown when no one socket can be told: an
 * invalid control_socket, a config file that is not there, or two default
 * config files here.
 */
export async function locateSocket(os: Os, opts: { socket: string | null; config: string | null }): Promise<SocketChoice> {
  if (opts.socket !== null) return { path: opts.socket, from: '--socket' };
  const rawTimeout = os.env[envOf('timeout')];
  const envTimeout = rawTimeout === undefined || rawTimeout === '' ? undefined : parseTimeout(rawTimeout, true);
  const withTimeout = (c: SocketChoice, t: number | undefined): SocketChoice => (t === undefined ? c : { ...c, timeout: t });
  const named = opts.config ?? (os.env[ENV_CONFIG] === '' ? undefined : os.env[ENV_CONFIG]);
  const candidates = (): Candidate[] => candidatesFor(os, named);
  const env = os.env[envOf(KEY)];
  if (env !== undefined && env !== '') return withTimeout({ path: parseSocket(env, true, envOf(KEY), candidates), from: envOf(KEY) }, envTimeout);
  let path: string | null;
  try {
    path = named ?? findConfigFile(os);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    throw new SocketUnknown(e.problems, candidates());
  }
  if (path === null) return withTimeout({ path: defaultControlSocket(os.cwd(), null, os.env, os.uid), from: 'the default (no config file found)', mayLook: true }, envTimeout);
  const fallback = defaultControlSocket(os.cwd(), path, os.env, os.uid);
  let data: unknown;
  try {
    ({ data } = await loadConfigFile(os, path));
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    // Not there at all: most likely a mistyped --config or DROVER_CONFIG, which is the user's to fix.
    if (!os.fs.exists(isAbsolute(path) ? path : join(os.cwd(), path))) throw new SocketUnknown(e.problems, candidates());
    // There but not loadable: ctl wants only its control_socket (and timeout), and the server's default needs just the path.
    const notes = [...e.problems, `so ctl cannot read its ${KEY} and uses the default socket for ${path}, ${fallback}; if drover runs with ${KEY} set, pass that path with --socket PATH`];
    return withTimeout({ path: fallback, from: `the default for ${path}, which could not be read`, mayLook: named === undefined, notes }, envTimeout);
  }
  const file = typeof data === 'object' && data !== null ? (data as Record<string, unknown>) : {};
  const timeout = envTimeout ?? (Object.hasOwn(file, 'timeout') ? parseTimeout(file.timeout, false) : undefined);
  if (Object.hasOwn(file, KEY)) return withTimeout({ path: parseSocket(file[KEY], false, path, candidates), from: `${KEY} in ${path}` }, timeout);
  return withTimeout({ path: fallback, from: `the default for ${path}`, mayLook: named === undefined }, timeout);
}

/** A drover found by findRunning. */
export interface Running {
  readonly path: string;
  readonly pid: number;
}

/** How long findRunning waits for each socket's answer. */
const PROBE_MS = 2000;

/**
 * The drovers of this user that run from this directory: the default
 * sockets (ctl-*.sock) in this user's runtime directories, each asked
 * `version`, whose answer carries the arbiter's pid and working directory.
 * Only sockets that pass ctl's own check (this uid's or root's, in a
 * directory that is private) are asked. Never throws.
 */
export async function findRunning(os: Os): Promise<Running[]> {
  const found: Running[] = [];
  const dirs = [...new Set([runtimeDirPath(os.env, os.uid), runtimeDirPath({}, os.uid)])];
  for (const dir of dirs) {
    let names: string[];
    try {
      checkPrivateDir(os, dir);
      names = os.fs.readdir(dir);
    } catch (e) {
      // Not there, not private, not readable: no drover of ours behind it.
      if (!(e instanceof RundirError) && errnoOf(e) === undefined) throw e;
      continue;
    }
    for (const name of names.sort()) {
      if (!name.startsWith(CONTROL_SOCKET_PREFIX) || !name.endsWith('.sock')) continue;
      const path = `${dir}/${name}`;
      if (socketRefusal(os, path) !== null) continue;
      try {
        const r = await request(os, path, { cmd: 'version' }, PROBE_MS);
        const who = (r as { arbiter?: { pid?: unknown; cwd?: unknown } }).arbiter;
        if (r.ok && typeof who === 'object' && who !== null && who.cwd === os.cwd() && typeof who.pid === 'number') found.push({ path, pid: who.pid });
      } catch (e) {
        if (!(e instanceof ControlError)) throw e;
        // stale, hung or not drover: not one to talk to
      }
    }
  }
  return found;
}
