// Where a control socket may be served, and which one `drover ctl` may
// talk to. The socket is drover's whole control surface (stop all, signal,
// tail a log): another local user must not be able to serve it in drover's
// place, replace it, or answer ctl in drover's name.
//
// - The default path lives in drover's private runtime directory (rundir.ts),
//   checked with lstat every time it is served.
// - A path the user set (control_socket) must be in a directory that no
//   other user can write into (or a sticky one, like /tmp, where only an
//   entry's owner can remove or rename it), owned by this uid or root; and
//   nothing may be at the path that is not this uid's: a live socket of
//   another user there is a squatter, refused, not warned about.
// - ctl lstats the socket before it sends a byte: a socket owned by ctl's
//   own uid or root, nothing else (not a symlink, not another user's), in a
//   directory where no other user can replace it before the connect (the
//   rule drover serves by); nothing at the path is ENOENT, not a connect.
import { dirname } from 'node:path';
import type { Os, Stat } from '../../os/types.js';
import { errnoOf, expectCodes } from '../assert.js';
import { ensureRuntimeDir, RundirError, runtimeDirPath } from '../rundir.js';

/** A control socket path drover refuses to serve. The message is one line, naming the path and the fix. */
export class ControlPathError extends Error {}

/** The errno of a failed file operation; anything that is not one (a bug) is rethrown. */
const code = (e: unknown): string => expectCodes(e);

/** Whether `dir` is one of the runtime directories drover makes for this uid (the one in force, or the /tmp one long paths fall back to). */
export function isRuntimeDir(os: Os, dir: string): boolean {
  return dir === runtimeDirPath(os.env, os.uid) || dir === runtimeDirPath({}, os.uid);
}

/**
 * Checks (and, for drover's runtime directory or a missing directory,
 * makes) where the control socket at `path` goes. Throws ControlPathError.
 * A stale socket of this uid at the path is left for listen to replace.
 */
export function prepareControlPath(os: Os, path: string): void {
  const dir = dirname(path);
  if (isRuntimeDir(os, dir)) {
    try {
      ensureRuntimeDir(os, dir);
    } catch (e) {
      if (e instanceof RundirError) throw new ControlPathError(`control socket ${path}: ${e.message}`);
      throw e;
    }
  } else {
    // A directory that is not there yet is made 0700: then it is ours and private.
    if (!os.fs.exists(dir)) {
      try {
        os.fs.mkdir(dir, { recursive: true, mode: 0o700 });
      } catch (e) {
        if (code(e) !== 'EEXIST') throw new ControlPathError(`control socket ${path}: cannot create its directory ${dir}: ${(e as Error).message}`);
      }
    }
    let st: Stat;
    try {
      st = os.fs.stat(dir); // followed: a symlinked directory is judged by where it leads
    } catch (e) {
      throw new ControlPathError(`control socket ${path}: cannot use its directory ${dir} (${code(e)})`);
    }
    const fix = `set control_socket to a path in a directory only drover's user (uid ${os.uid}) can write, or leave it unset for the default in drover's private runtime directory`;
    if (!st.isDirectory()) throw new ControlPathError(`control socket ${path}: ${dir} is not a directory`);
    if (st.uid !== os.uid && st.uid !== 0) {
      throw new ControlPathError(`control socket ${path}: its directory ${dir} belongs to uid ${st.uid}, who could replace the socket; ${fix}`);
    }
    if ((st.mode & 0o022) !== 0 && (st.mode & 0o1000) === 0) {
      throw new ControlPathError(`control socket ${path}: its directory ${dir} (mode ${(st.mode & 0o7777).toString(8).padStart(3, '0')}) is writable by other users, who could replace the socket; ${fix}`);
    }
  }
  let entry: Stat;
  try {
    entry = os.fs.lstat(path);
  } catch (e) {
    if (code(e) === 'ENOENT') return;
    throw new ControlPathError(`control socket ${path}: cannot check what is at the path (${code(e)})`);
  }
  if (entry.uid !== os.uid) {
    throw new ControlPathError(`control socket ${path} is already there and belongs to uid ${entry.uid}, not to drover's user (uid ${os.uid}): ` +
      'another user may be serving it to answer drover ctl in drover\'s name; remove it, or set control_socket to a path in a directory of your own');
  }
  if (entry.isSymbolicLink() || !entry.isSocket()) {
    throw new ControlPathError(`control socket ${path}: something that is not a socket (${entry.isSymbolicLink() ? 'a symlink' : 'a file'}) is at that path; drover will not replace it: remove it or choose another control_socket`);
  }
}

/**
 * Why `drover ctl` must not talk to the socket at `path`, or null when it
 * may (a socket owned by ctl's uid or root) or when nothing is there (the
 * connect then says so). Never follows a symlink.
 */
export function socketRefusal(os: Os, path: string): string | null {
  let st: Stat;
  try {
    st = os.fs.lstat(path);
  } catch (e) {
    if (errnoOf(e) === undefined) throw e;
    return null; // nothing there, or nothing we may look at: the connect says which
  }
  if (st.isSymbolicLink()) return `refusing to use ${path}: it is a symlink (owned by uid ${st.uid}), not a socket; give the control socket's own path`;
  if (!st.isSocket()) return null; // the connect fails, and says it is not a socket
  if (st.uid !== os.uid && st.uid !== 0) {
    return `refusing to talk to ${path}: the socket belongs to uid ${st.uid}, not to you (uid ${os.uid}) or root; ` +
      'another user may be serving it to answer in drover\'s name: nothing was sent. Run drover ctl as drover\'s user, or check who made that socket';
  }
  // Ours now, but in a directory where another user could replace it between
  // this check and the connect: drover itself refuses to serve there.
  const dir = dirname(path);
  let d: Stat;
  try {
    d = os.fs.stat(dir);
  } catch (e) {
    if (errnoOf(e) === undefined) throw e;
    return null; // the connect says what is wrong
  }
  const open = (d.mode & 0o022) !== 0 && (d.mode & 0o1000) === 0;
  if ((d.uid !== os.uid && d.uid !== 0) || open) {
    return `refusing to talk to ${path}: its directory ${dir} (${open ? `mode ${(d.mode & 0o7777).toString(8).padStart(3, '0')}, writable by other users` : `owned by uid ${d.uid}`}) ` +
      'lets another user replace the socket between this check and the connect: nothing was sent. Keep the control socket in a directory of your own';
  }
  return null;
}
