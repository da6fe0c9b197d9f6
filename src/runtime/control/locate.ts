// Which control socket `drover ctl` talks to: --socket, else the config's
// control_socket (DROVER_CONTROL_SOCKET, then the file's key: the server's
// precedence, its command line aside), else defaultControlSocket for that
// config, which is what the server falls back to as well.

import type { Os } from '../../os/types.js';
import { CONTROL_SOCKET_PREFIX } from '../companions/config.js';
import { ConfigError, defaultControlSocket, ENV_CONFIG, envOf, findConfigFile, loadConfigFile, settingByName } from '../config/index.js';
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
}

const KEY = 'control_socket';

/** A raw control_socket value, checked by the setting's own parser. */
function parseSocket(raw: unknown, text: boolean, source: string): string {
  const r = settingByName(KEY)!.parse(raw, text);
  if (!r.ok) throw new ConfigError(r.problems.map((p) => `${source}: ${KEY}: ${p}`));
  return r.value as string;
}

/** A raw `timeout` value in ms, or undefined when it is not valid (the server refuses such a config; not ctl's business). */
function parseTimeout(raw: unknown, text: boolean): number | undefined {
  const r = settingByName('timeout')!.parse(raw, text);
  return r.ok ? (r.value as number) : undefined;
}

/**
 * `config` is --config; without it, the file the server would find
 * ($DROVER_CONFIG, then ./drover.config.{js,mjs,cjs,json}). Throws ConfigError
 * when that file cannot be read or its control_socket is invalid.
 */
export async function locateSocket(os: Os, opts: { socket: string | null; config: string | null }): Promise<SocketChoice> {
  if (opts.socket !== null) return { path: opts.socket, from: '--socket' };
  const rawTimeout = os.env[envOf('timeout')];
  const envTimeout = rawTimeout === undefined || rawTimeout === '' ? undefined : parseTimeout(rawTimeout, true);
  const withTimeout = (c: SocketChoice, t: number | undefined): SocketChoice => (t === undefined ? c : { ...c, timeout: t });
  const env = os.env[envOf(KEY)];
  if (env !== undefined && env !== '') return withTimeout({ path: parseSocket(env, true, envOf(KEY)), from: envOf(KEY) }, envTimeout);
  const named = opts.config ?? (os.env[ENV_CONFIG] === '' ? undefined : os.env[ENV_CONFIG]);
  const path = named ?? findConfigFile(os);
  if (path === null) return withTimeout({ path: defaultControlSocket(os.cwd(), null, os.env, os.uid), from: 'the default (no config file found)', mayLook: true }, envTimeout);
  const { data } = await loadConfigFile(os, path);
  const file = typeof data === 'object' && data !== null ? (data as Record<string, unknown>) : {};
  const timeout = envTimeout ?? (Object.hasOwn(file, 'timeout') ? parseTimeout(file.timeout, false) : undefined);
  if (Object.hasOwn(file, KEY)) return withTimeout({ path: parseSocket(file[KEY], false, path), from: `${KEY} in ${path}` }, timeout);
  return withTimeout({ path: defaultControlSocket(os.cwd(), path, os.env, os.uid), from: `the default for ${path}`, mayLook: named === undefined }, timeout);
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
