// The pidfile: written whole by rename (a reader never sees half a pid),
// refused when it names a live drover arbiter or holds anything but a pid,
// removed on exit only if still ours.
//
// A pidfile left by a crash (kill -9, a power cut, a container stopped
// hard) may name a pid the system has since given to another program: after
// a reboot, or in a container whose processes get the same low pids every
// start (Rails' stale server.pid). gunicorn refuses to start on any live
// pid and waits for a human. Here a live pid whose title (what ps shows:
// the arbiter sets `drover: arbiter [app]` before it writes the pidfile) is
// not an arbiter's is taken for such a leftover and replaced, with a
// warning. Where the title cannot be read (no /proc, hidepid), a live pid
// refuses the start, as before.
//
// Its directory may be one another user can write (/tmp, a service user's
// run directory): nothing here follows a symlink or opens a name someone
// else may have planted. The temp file is made with O_EXCL ('wx': fails on
// any existing name, a symlink included) under a name nobody can guess, and
// an existing pidfile is looked at with lstat before it is read: a symlink,
// a FIFO, a directory, a device, or a file of another user is refused.
//
// A write that fails (ENOSPC, EIO) refuses the start as any other pidfile
// trouble does (a service manager would not find us), with the temp file
// removed; a short write is finished, never left as a wrong pid.
import { dirname } from 'node:path';
import type { Os, Stat } from '../../os/types.js';

export class PidfileError extends Error {
  /** 1 when drover is already running (gunicorn's), 2 for a path that cannot be used (like a bad setting). */
  constructor(message: string, readonly exitCode: 1 | 2 = 2) {
    super(message);
  }
}

/** More than a pid and a newline: not a pidfile, and not read. */
const PIDFILE_MAX = 64;
/** Temp names tried before giving up: each is a fresh random one, so only a directory full of someone's planted names fails. */
const TMP_TRIES = 8;

/** The start of an arbiter's title (arbiter.ts sets it before it writes the pidfile). */
export const ARBITER_TITLE = 'drover: arbiter';

/** A live process at a pid, with what ps shows for it (null: cannot be told). */
export interface Holder {
  readonly title: string | null;
}

/** Who holds a pid on this machine: null when nobody runs there (a zombie is nobody). */
export function holderOn(os: Os): (pid: number) => Holder | null {
  return (pid) => (os.alive(pid) ? { title: os.titleOf(pid) } : null);
}

/**
 * Writes this process's pid to `path`. Returns a warning for the log when
 * it replaced a leftover naming another program's live pid, else null.
 */
export function writePidfile(os: Os, path: string, holder: (pid: number) => Holder | null): string | null {
  let notice: string | null = null;
  const st = lstatOrNull(os, path);
  if (st !== null) {
    refuseUnsafe(os, path, st);
    const text = os.fs.readFile(path).trim();
    // Empty is a pidfile cut short; anything but a pid is someone's file, which --pid would overwrite and the stop remove.
    if (text !== '' && !/^\d+$/.test(text)) {
      throw new PidfileError(`pidfile ${path} holds ${JSON.stringify(text.slice(0, 24))}${text.length > 24 ? '...' : ''}, which is not a pid: is it the right file? Remove it if it is a stale pidfile, or use another --pid`);
    }
    const old = Number.parseInt(text, 10);
    const h = Number.isInteger(old) && old > 0 && old !== os.pid ? holder(old) : null;
    if (h !== null && (h.title === null || h.title.startsWith(ARBITER_TITLE))) {
      const what = h.title === null ? 'which is running' : `a drover arbiter (${JSON.stringify(h.title)})`;
      throw new PidfileError(`pidfile ${path} names process ${old}, ${what}: is drover already running? Stop it, or use another --pid`, 1);
    }
    if (h !== null) notice = `pidfile ${path} named process ${old}, which is not a drover arbiter but ${JSON.stringify(h.title!.slice(0, 80))}: left by a drover that did not stop cleanly, its pid since reused; replaced`;
  }
  const fd = openTemp(os, path);
  try {
    writeAll(os, fd.fd, `${os.pid}\n`);
  } catch (e) {
    const code = (e as { code?: unknown } | null)?.code;
    if (typeof code !== 'string') throw e;
    closeQuietly(os, fd.fd);
    unlinkQuietly(os, fd.path);
    os.hooks.errorPath?.('pidfile', code);
    throw new PidfileError(`cannot write pidfile ${path}: ${(e as Error).message}; check the space and health of its file system, or use another --pid`, 1);
  }
  os.fs.close(fd.fd);
  try {
    os.fs.rename(fd.path, path);
  } catch (e) {
    unlinkQuietly(os, fd.path);
    throw new PidfileError(`cannot write pidfile ${path}: ${(e as Error).message}; check the path given to --pid`);
  }
  return notice;
}

export function removePidfile(os: Os, path: string): void {
  try {
    // Not through a symlink, nor a file that is not ours (someone replaced it since).
    const st = os.fs.lstat(path);
    if (!st.isFile() || st.size > PIDFILE_MAX || st.uid !== os.uid) return;
    if (os.fs.readFile(path).trim() === String(os.pid)) os.fs.unlink(path);
  } catch {
    // gone already, or never written
  }
}

function lstatOrNull(os: Os, path: string): Stat | null {
  try {
    return os.fs.lstat(path);
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOENT') return null;
    throw new PidfileError(`cannot use pidfile ${path}: ${(e as Error).message}; check the path given to --pid`);
  }
}

/** An existing pidfile drover may read and replace: a small regular file of its own uid's (or root's). */
function refuseUnsafe(os: Os, path: string, st: Stat): void {
  const fix = `remove it if it is yours, or use another --pid`;
  if (st.isSymbolicLink()) throw new PidfileError(`pidfile ${path} is a symlink: refusing to follow it; ${fix}`);
  if (!st.isFile()) throw new PidfileError(`pidfile ${path} is ${st.isDirectory() ? 'a directory' : st.isSocket() ? 'a socket' : 'a FIFO or a device'}, not a regular file; ${fix}`);
  // A file another user owns could be swapped for a symlink between lstat and read.
  if (st.uid !== os.uid && st.uid !== 0) throw new PidfileError(`pidfile ${path} belongs to uid ${st.uid}, not to this user (uid ${os.uid}) or root; ${fix}`);
  if (st.size > PIDFILE_MAX) throw new PidfileError(`pidfile ${path} holds ${st.size} bytes, more than a pid: is it the right file? ${fix}`);
}

/** A new temp file beside the pidfile (rename stays within one file system), made with O_EXCL under an unguessable name. */
function openTemp(os: Os, path: string): { fd: number; path: string } {
  let tmp = '';
  for (let i = 0; i < TMP_TRIES; i++) {
    tmp = `${path}.${os.pid}.${randomName(os)}.tmp`;
    try {
      return { fd: os.fs.open(tmp, 'wx', 0o644), path: tmp };
    } catch (e) {
      if ((e as { code?: string }).code === 'EEXIST') continue;
      throw new PidfileError(`cannot write pidfile ${path}: ${(e as Error).message}; check that ${dirname(path)} exists and is writable, or use another --pid`);
    }
  }
  throw new PidfileError(`cannot write pidfile ${path}: ${TMP_TRIES} temp names beside it (the last ${tmp}) were already taken; someone is planting names in ${dirname(path)}: use a directory only you can write`);
}

function randomName(os: Os): string {
  let s = '';
  for (let i = 0; i < 2; i++) s += Math.floor(os.random() * 36 ** 6).toString(36).padStart(6, '0');
  return s;
}

/** An ASCII text, however many writes it takes; a write that takes nothing is EIO. */
function writeAll(os: Os, fd: number, text: string): void {
  let at = 0;
  while (at < text.length) {
    const n = os.fs.write(fd, at === 0 ? text : text.slice(at));
    if (!(n > 0)) throw Object.assign(new Error('EIO: a write took no bytes'), { code: 'EIO' });
    if (at + n < text.length) os.hooks.errorPath?.('pidfile', 'short');
    at += n;
  }
}

function closeQuietly(os: Os, fd: number): void {
  try {
    os.fs.close(fd);
  } catch {
    // closed already
  }
}

function unlinkQuietly(os: Os, path: string): void {
  try {
    os.fs.unlink(path);
  } catch {
    // gone already
  }
}
