// The Fs interface over node:fs's synchronous calls. Errors are Node's own,
// which already carry the errno as `code`.

import * as fs from 'node:fs';
import type { Fs, Stat } from '../types.js';

function toStat(s: fs.Stats): Stat {
  return {
    size: s.size,
    mode: s.mode,
    uid: s.uid,
    isSymbolicLink: () => s.isSymbolicLink(),
    isFile: () => s.isFile(),
    isDirectory: () => s.isDirectory(),
    isSocket: () => s.isSocket(),
  };
}

export const nodeFs: Fs = {
  open: (path, flags, mode) => fs.openSync(path, flags, mode),
  write: (fd, data) => (typeof data === 'string' ? fs.writeSync(fd, data) : fs.writeSync(fd, data)),
  close: (fd) => fs.closeSync(fd),
  readFile: (path) => fs.readFileSync(path, 'utf8'),
  writeFile: (path, data, mode) => fs.writeFileSync(path, data, mode === undefined ? undefined : { mode }),
  appendFile: (path, data) => fs.appendFileSync(path, data),
  rename: (from, to) => fs.renameSync(from, to),
  unlink: (path) => fs.unlinkSync(path),
  chmod: (path, mode) => fs.chmodSync(path, mode),
  stat: (path) => toStat(fs.statSync(path)),
  lstat: (path) => toStat(fs.lstatSync(path)),
  symlink: (target, path) => fs.symlinkSync(target, path),
  exists: (path) => fs.existsSync(path),
  mkdir: (path, opts) => {
    fs.mkdirSync(path, opts);
  },
  readdir: (path) => fs.readdirSync(path).sort(),
  // rmSync without `force`, so a missing path still throws ENOENT like rmdir.
  rmdir: (path, opts) => (opts?.recursive ? fs.rmSync(path, { recursive: true }) : fs.rmdirSync(path)),
};
