// placeProblems: what --check-config says of the directories a start will
// create files and sockets in, from stat alone.
import { describe, expect, it } from 'vitest';
import type { Os, Stat } from '../../src/os/types.js';
import { placeProblems, resolveConfig } from '../../src/runtime/config/index.js';

/** An Os with only what placeProblems reads: stat over a few paths, the working directory, inherited listeners. */
function fakeOs(entries: Record<string, 'dir' | 'file' | 'EACCES'>, listeners = 0): Os {
  const stat = (path: string): Stat => {
    const parent = path.slice(0, path.lastIndexOf('/')) || '/';
    // A directory that may not be searched refuses a stat of anything in it.
    const kind = Object.keys(entries).some((p) => entries[p] === 'EACCES' && path.startsWith(`${p}/`)) ? 'EACCES' : entries[path];
    if (kind === undefined || kind === 'EACCES') {
      const code = kind ?? (entries[parent] === 'file' ? 'ENOTDIR' : 'ENOENT');
      throw Object.assign(new Error(`${code}: stat ${path}`), { code });
    }
    return { size: 0, mode: 0, uid: 0, isFile: () => kind === 'file', isDirectory: () => kind === 'dir', isSocket: () => false, isSymbolicLink: () => false };
  };
  return { cwd: () => '/srv', listeners: Array.from({ length: listeners }, () => ({})), fs: { stat } } as unknown as Os;
}

const config = (...argv: string[]) => resolveConfig({ argv: ['app.js', ...argv], env: {}, file: null, cpus: 2, cwd: '/srv' });

describe('placeProblems', () => {
  it('reads relative paths against the working directory, and leaves stderr and TCP alone', () => {
    const os = fakeOs({ '/': 'dir', '/srv': 'dir' });
    expect(placeProblems(os, config('--error-log', 'logs/e.log', '--access-log', '-', '-b', '127.0.0.1:8000', '--pid', 'p.pid'))).toEqual([
      'error_log logs/e.log: directory /srv/logs does not exist; create it (mkdir -p /srv/logs) or choose another path',
    ]);
  });

  it('does not judge bind when systemd gave the sockets: bind is ignored then', () => {
    const c = config('-b', 'unix:/nodir/s.sock');
    expect(placeProblems(fakeOs({ '/': 'dir' }, 1), c)).toEqual([]);
    expect(placeProblems(fakeOs({ '/': 'dir' }), c)).toEqual(['bind unix:/nodir/s.sock: directory /nodir does not exist; create it (mkdir -p /nodir) or choose another path']);
  });

  it('names a directory it cannot reach, with the fix', () => {
    expect(placeProblems(fakeOs({ '/': 'dir', '/secret': 'EACCES' }), config('--pid', '/secret/run/p.pid'))).toEqual([
      "pid /secret/run/p.pid: cannot reach /secret/run (EACCES); give drover's user access to the directories on the way, or choose another path",
    ]);
  });
});
