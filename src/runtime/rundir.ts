// drover's private runtime directory: where it keeps what another local user
// must not touch or replace (lane sockets, the default control socket).
// Names inside it are predictable; that is safe only because nobody else can
// write here, so every use checks that with lstat (a symlink, a directory
// someone else made or opened up, is refused, never followed or fixed).
// Nothing outside it is created or removed by a predictable name.
import { dirname, join } from 'node:path';
import { UNIX_PATH_MAX, type Os } from '../os/types.js';
import { expectCodes } from './assert.js';

export class RundirError extends Error {}

/** $XDG_RUNTIME_DIR/drover when the variable is set (the user's own, made by the login manager), else /tmp/drover-<uid>. */
export function runtimeDirPath(env: Readonly<Record<string, string | undefined>>, uid: number): string {
  const xdg = env.XDG_RUNTIME_DIR;
  return xdg !== undefined && xdg !== '' ? join(xdg, 'drover') : `/tmp/drover-${uid}`;
}

/**
 * The runtime directory in which `name` plus `room` more bytes (a socket's
 * own name) still make a Unix socket path the OS accepts: the usual one, else
 * /tmp/drover-<uid> when $XDG_RUNTIME_DIR is too deep for that.
 */
export function runtimeDirFor(env: Readonly<Record<string, string | undefined>>, uid: number, name: string, room: number): string {
  const usual = runtimeDirPath(env, uid);
  return new TextEncoder().encode(join(usual, name)).length + room <= UNIX_PATH_MAX ? usual : runtimeDirPath({}, uid);
}

/**
 * The runtime directory, made 0700 if missing, and checked: a real directory
 * (not a symlink), owned by this uid, mode 0700. Anything else is refused
 * with the path and the fix: another user may have made it first, to read or
 * replace what drover puts there. Only the last component is made: a missing
 * $XDG_RUNTIME_DIR is the login manager's to make, not ours.
 */
export function ensureRuntimeDir(os: Os, path = runtimeDirPath(os.env, os.uid)): string {
  try {
    // Not recursive: mkdir(2) fails on any existing name, a symlink included, and never follows one.
    os.fs.mkdir(path, { mode: 0o700 });
  } catch (e) {
    const code = expectCodes(e);
    if (code === 'ENOENT') throw new RundirError(`cannot create drover's runtime directory ${path}: ${dirname(path)} does not exist; create it (mode 0700), or set XDG_RUNTIME_DIR to a directory of your own, or unset it`);
    if (code !== 'EEXIST') throw new RundirError(`cannot create drover's runtime directory ${path}: ${(e as Error).message}; set XDG_RUNTIME_DIR to a directory of your own`);
  }
  checkPrivateDir(os, path);
  return path;
}

/**
 * Throws RundirError unless `path` is a directory (not a symlink) owned by
 * this uid with mode 0700. `what` names it in the message.
 */
export function checkPrivateDir(os: Os, path: string, what = "drover's runtime directory"): void {
  let st;
  try {
    st = os.fs.lstat(path);
  } catch (e) {
    throw new RundirError(`${what} ${path} is gone (${expectCodes(e)}); was it removed while drover ran?`);
  }
  const fix = `remove it (rm -r ${path}) if it is not yours, or set XDG_RUNTIME_DIR to a directory of your own`;
  if (st.isSymbolicLink()) throw new RundirError(`${what} ${path} is a symlink: refusing to follow it; ${fix}`);
  if (!st.isDirectory()) throw new RundirError(`${what} ${path} is not a directory; ${fix}`);
  if (st.uid !== os.uid) throw new RundirError(`${what} ${path} belongs to uid ${st.uid}, not to this user (uid ${os.uid}): another user made it first; ${fix}`);
  if ((st.mode & 0o777) !== 0o700) throw new RundirError(`${what} ${path} has mode ${(st.mode & 0o777).toString(8).padStart(3, '0')}, not 700: others could replace what is in it; chmod 700 ${path}, or remove it`);
}
