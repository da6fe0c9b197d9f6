// Where a start will create files and sockets, judged without creating or
// opening anything, for `drover --check-config`. A start opens the log files
// for append, writes the pidfile and binds unix: sockets; each of those
// fails when the directory it goes in is missing or is not a directory, and
// the check had said OK to all of them. What only the create itself can tell
// (permissions, a full disk) is left to the start.

import { dirname, isAbsolute, join } from 'node:path';
import type { Addr, Os } from '../../os/types.js';
import { formatAddr } from '../../os/types.js';
import { errnoOf } from '../assert.js';
import type { Config } from './types.js';

/**
 * One line per path of `c` whose directory is missing or not a directory,
 * each naming the setting, the path and the fix; [] when every one has its
 * place. Sockets given by systemd (os.listeners) replace bind, so bind is
 * then not judged. Relative paths are the working directory's, as at a start.
 */
export function placeProblems(os: Os, c: Config): string[] {
  const places: [setting: string, shown: string, path: string][] = [];
  const socket = (setting: string, a: Addr | null): void => {
    if (a !== null && 'path' in a) places.push([setting, formatAddr(a), a.path]);
  };
  if (os.listeners.length === 0) for (const a of c.bind) socket('bind', a);
  if (c.pid !== null) places.push(['pid', c.pid, c.pid]);
  socket('admin_bind', c.admin_bind);
  if (c.access_log !== null && c.access_log !== '-') places.push(['access_log', c.access_log, c.access_log]);
  if (c.error_log !== '-') places.push(['error_log', c.error_log, c.error_log]);
  const problems: string[] = [];
  for (const [setting, shown, path] of places) {
    const p = directoryProblem(os, dirname(isAbsolute(path) ? path : join(os.cwd(), path)));
    if (p !== null) problems.push(`${setting} ${shown}: ${p}`);
  }
  return problems;
}

/** Why `dir` cannot hold a new file: missing (named), or a file on the way; null when it is a directory. Only stat is used. */
function directoryProblem(os: Os, dir: string): string | null {
  // The nearest ancestor that is there says which it is: a directory (so `dir` is missing) or not.
  for (let at = dir; ; at = dirname(at)) {
    let isDir: boolean;
    try {
      isDir = os.fs.stat(at).isDirectory();
    } catch (e) {
      const code = errnoOf(e);
      if (code === undefined) throw e;
      // Past a file, stat says ENOTDIR: go on up to it.
      if ((code === 'ENOENT' || code === 'ENOTDIR') && at !== dirname(at)) continue;
      // EACCES: a directory on the way may not be searched by drover's user.
      return `cannot reach ${at} (${code}); give drover's user access to the directories on the way, or choose another path`;
    }
    if (!isDir) return `${at} is a file, not a directory; choose a path in a directory`;
    return at === dir ? null : `directory ${dir} does not exist; create it (mkdir -p ${dir}) or choose another path`;
  }
}
