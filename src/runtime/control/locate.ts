// Which control socket `drover ctl` talks to: --socket, else the config's
// control_socket (DROVER_CONTROL_SOCKET, then the file's key: the server's
// precedence, its command line aside), else defaultControlSocket for that
// config, which is what the server falls back to as well.

import type { Os } from '../../os/types.js';
import { ConfigError, defaultControlSocket, ENV_CONFIG, envOf, findConfigFile, loadConfigFile, settingByName } from '../config/index.js';

export interface SocketChoice {
  readonly path: string;
  /** Where the path came from, for messages: "--socket", "control_socket in drover.config.json", ... */
  readonly from: string;
}

const KEY = 'control_socket';

/** A raw control_socket value, checked by the setting's own parser. */
function parseSocket(raw: unknown, text: boolean, source: string): string {
  const r = settingByName(KEY)!.parse(raw, text);
  if (!r.ok) throw new ConfigError(r.problems.map((p) => `${source}: ${KEY}: ${p}`));
  return r.value as string;
}

/**
 * `config` is --config; without it, the file the server would find
 * ($DROVER_CONFIG, then ./drover.config.{js,mjs,json}). Throws ConfigError
 * when that file cannot be read or its control_socket is invalid.
 */
export async function locateSocket(os: Os, opts: { socket: string | null; config: string | null }): Promise<SocketChoice> {
  if (opts.socket !== null) return { path: opts.socket, from: '--socket' };
  const env = os.env[envOf(KEY)];
  if (env !== undefined && env !== '') return { path: parseSocket(env, true, envOf(KEY)), from: envOf(KEY) };
  const named = opts.config ?? (os.env[ENV_CONFIG] === '' ? undefined : os.env[ENV_CONFIG]);
  const path = named ?? findConfigFile(os);
  if (path === null) return { path: defaultControlSocket(os.cwd(), null, os.env), from: 'the default (no config file found)' };
  const { data } = await loadConfigFile(os, path);
  if (typeof data === 'object' && data !== null && Object.hasOwn(data, KEY)) {
    return { path: parseSocket((data as Record<string, unknown>)[KEY], false, path), from: `${KEY} in ${path}` };
  }
  return { path: defaultControlSocket(os.cwd(), path, os.env), from: `the default for ${path}` };
}
