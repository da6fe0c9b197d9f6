// Files: one memfs Volume is the machine's disk; each process sees it
// through its own descriptor table (small integers from 3, lowest free
// first, like POSIX) so memfs's own descriptors, which are global across
// volumes, never leak into a process. Paths are resolved against the
// process's cwd here, never by memfs (whose cwd would be the host's).
// New files and directories get the usual umask 022, as under a login
// shell; chmod and socket modes are exact.

import { Buffer } from 'node:buffer';
import { posix } from 'node:path';
import { Volume } from 'memfs';
import { assert } from '../os/assert.js';
import type { Fs, Stat, StdioTarget } from '../os/types.js';
import { OsError } from '../os/types.js';
import type { Machine } from './machine.js';
import { ExitSignal, ZOMBIE, type Proc } from './processes.js';
import { closeWrite, Pipe, pipeWrite } from './pipes.js';
import { errnoError } from './faults.js';

export const UMASK = 0o022;
export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
/** The simulated machine has one user: every process runs as it and owns every file. */
export const SIM_UID = 1000;

export function createVolume(): Volume {
  const vol = new Volume();
  vol.mkdirSync('/tmp', { mode: 0o777 });
  vol.chmodSync('/tmp', 0o1777);
  const tmp = vol.statSync('/tmp');
  assert(tmp.isDirectory(), 'a new disk has /tmp');
  assert((Number(tmp.mode) & 0o7777) === 0o1777, '/tmp is world-writable and sticky, as on a real host');
  assert(vol.readdirSync('/').length === 1, 'a new disk holds /tmp and nothing else');
  return vol;
}

export function resolvePath(cwd: string, path: string): string {
  // A relative cwd would make posix.resolve fall back on the host's cwd.
  assert(cwd.charCodeAt(0) === 47, 'paths resolve against an absolute cwd');
  const abs = posix.resolve(cwd, path);
  assert(abs.charCodeAt(0) === 47, 'a resolved path is absolute');
  // Machine.mountOf and the trace compare paths as strings: one file, one spelling.
  assert(abs.length === 1 || abs.charCodeAt(abs.length - 1) !== 47, 'a resolved path is normalised (no trailing slash)');
  return abs;
}

export function isDirectory(vol: Volume, path: string): boolean {
  // memfs would resolve a relative path against the host's cwd.
  assert(path.charCodeAt(0) === 47, 'isDirectory wants a resolved, absolute path');
  try {
    return vol.statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function badFd(fd: number, syscall: string): Error {
  return Object.assign(new Error(`EBADF: bad file descriptor, ${syscall}`), { code: 'EBADF', errno: -9, syscall, fd });
}

/** A process's descriptors: its small ints to memfs's. */
export class FdTable {
  readonly map = new Map<number, number>();

  add(memfd: number): number {
    assert(Number.isInteger(memfd) && memfd >= 0, 'a memfs descriptor is a non-negative integer');
    let fd = 3;
    while (this.map.has(fd)) fd++;
    this.map.set(fd, memfd);
    // 0 to 2 are stdio, never in the table; the lowest free one from 3 was free.
    assert(fd >= 3, 'fds 0 to 2 are stdio, never in the table');
    assert(fd - 3 <= this.map.size - 1, 'a new fd is the lowest free one from 3');
    return fd;
  }
}

export function closeFds(m: Machine, p: Proc): void {
  // At death only (die): a live process keeps its descriptors, and init never dies.
  assert(p.state === ZOMBIE, 'descriptors are closed when their process dies');
  assert(p !== m.init, 'init never dies');
  assert(p.fds !== m.init.fds, 'each process has a descriptor table of its own');
  for (const memfd of p.fds.map.values()) {
    try {
      m.vol.closeSync(memfd);
    } catch {
      // already gone with the file
    }
  }
  p.fds.map.clear();
}

class SimStat implements Stat {
  constructor(
    readonly size: number,
    readonly mode: number,
  ) {
    assert(Number.isSafeInteger(size) && size >= 0, 'a file size is a non-negative integer');
    // A type (S_IFMT) and permission bits (0o7777), nothing else.
    assert(Number.isInteger(mode) && (mode & ~0o177777) === 0, 'a stat mode is a file type and permission bits, nothing more');
    assert((mode & S_IFMT) !== 0, 'every node on the disk has a file type');
  }
  readonly uid = SIM_UID;
  isFile(): boolean {
    return (this.mode & S_IFMT) === 0o100000;
  }
  isDirectory(): boolean {
    return (this.mode & S_IFMT) === 0o040000;
  }
  isSocket(): boolean {
    return (this.mode & S_IFMT) === S_IFSOCK;
  }
  isSymbolicLink(): boolean {
    return (this.mode & S_IFMT) === 0o120000;
  }
}

/** One process's view of the disk. */
export class SimFs implements Fs {
  constructor(
    private readonly m: Machine,
    private readonly p: Proc,
  ) {
    assert(Number.isInteger(p.pid) && p.pid >= 1, 'a process has a positive integer pid');
    assert(p.cwd.charCodeAt(0) === 47, 'a process\'s cwd is absolute');
  }

  private path(path: string): string {
    if (!this.p.runnable) throw new ExitSignal();
    // Resolved here, never by memfs (whose cwd is the host's): a relative cwd would do the same.
    assert(this.p.cwd.charCodeAt(0) === 47, 'a process\'s cwd is absolute');
    const abs = posix.resolve(this.p.cwd, path);
    assert(abs.charCodeAt(0) === 47, 'a resolved path is absolute');
    assert(abs.length === 1 || abs.charCodeAt(abs.length - 1) !== 47, 'a resolved path is normalised (no trailing slash)');
    return abs;
  }

  private memfd(fd: number, syscall: string): number {
    if (!this.p.runnable) throw new ExitSignal();
    const memfd = this.p.fds.map.get(fd);
    if (memfd === undefined) throw badFd(fd, syscall);
    assert(this.m.procs.get(this.p.pid) === this.p, 'a runnable process is in the process table');
    // Only add() fills the table: its fds are integers from 3, each naming a memfs descriptor.
    assert(Number.isInteger(fd) && fd >= 3, 'an fd in the table is an integer from 3');
    assert(Number.isInteger(memfd) && memfd >= 0, 'an fd names a memfs descriptor');
    return memfd;
  }

  open(path: string, flags: 'r' | 'w' | 'a' | 'wx', mode = 0o666): number {
    const abs = this.path(path);
    if (flags !== 'r' && flags !== 'w' && flags !== 'a' && flags !== 'wx') {
      throw new OsError('EINVAL', `open ${path}: flags must be r, w, a or wx, got ${JSON.stringify(flags)}`);
    }
    assert(Number.isInteger(mode) && mode >= 0 && mode <= 0o7777, 'a file mode is permission bits within 0o7777');
    const memfd = this.m.vol.openSync(abs, flags, mode & ~UMASK);
    const fd = this.p.fds.add(memfd);
    assert(this.p.fds.map.get(fd) === memfd, 'an opened fd is in the table');
    assert(this.m.vol.existsSync(abs), 'an opened path exists (r found it, w, a and wx made it)');
    this.m.log(this.p, 'open', `${fd} ${flags} ${abs}`);
    return fd;
  }

  write(fd: number, data: string | Uint8Array): number {
    const memfd = this.memfd(fd, 'write');
    if (this.m.faults.on && this.m.faults.covers(this.p)) data = this.writeFault(`fd ${fd}`, data);
    const n = typeof data === 'string' ? this.m.vol.writeSync(memfd, data) : this.m.vol.writeSync(memfd, data);
    // A file write goes whole (a short one is write-short's prefix, already cut): a string of
    // UTF-16 units is 1 to 3 bytes a unit in UTF-8, bytes are themselves.
    if (typeof data === 'string') assert(n >= data.length && n <= 3 * data.length, 'a file write takes every byte of its string');
    else assert(n === data.length, 'a file write takes every byte it is given');
    assert(this.p.fds.map.get(fd) === memfd, 'a write leaves its fd open');
    this.m.log(this.p, 'fwrite', `${fd} ${n}`);
    return n;
  }

  /**
   * write-enospc, write-eio: the call fails and nothing is written (a
   * whole-file write may have truncated first: see writeFile). write-short:
   * only a prefix of the bytes goes, and the count says so.
   */
  private writeFault(what: string, data: string | Uint8Array): string | Uint8Array {
    const f = this.m.faults;
    // The caller checked the scope (Faults.hit does not).
    assert(f.on, 'write faults only with faults on');
    assert(f.covers(this.p), 'write faults only for a covered process');
    const code = f.hit('write-enospc') ? 'ENOSPC' : f.hit('write-eio') ? 'EIO' : null;
    if (code !== null) {
      assert(f.fired[code === 'ENOSPC' ? 'write-enospc' : 'write-eio'] >= 1, 'a fault that hit is counted');
      this.m.log(this.p, 'fault', `write-${code.toLowerCase()} ${what}`);
      throw errnoError(code, 'write');
    }
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    if (bytes.length < 2 || !f.hit('write-short')) return data;
    const n = 1 + f.below(bytes.length - 1);
    // A short write is short: at least one byte, not all of them.
    assert(n >= 1 && n < bytes.length, 'a short write takes a proper, non-empty prefix');
    this.m.log(this.p, 'fault', `write-short ${what} ${n}/${bytes.length}`);
    return bytes.subarray(0, n);
  }

  close(fd: number): void {
    const memfd = this.memfd(fd, 'close');
    this.p.fds.map.delete(fd);
    this.m.vol.closeSync(memfd);
    assert(!this.p.fds.map.has(fd), 'a closed fd is not in the table');
    // Each open() gets a memfs descriptor of its own: no other fd of the process named this one.
    for (const other of this.p.fds.map.values()) assert(other !== memfd, 'a memfs descriptor belongs to one fd');
  }

  readFile(path: string): string {
    const text = this.m.vol.readFileSync(this.path(path), 'utf8');
    assert(typeof text === 'string', 'a file read as utf8 is a string');
    return text;
  }

  writeFile(path: string, data: string, mode = 0o666): void {
    const abs = this.path(path);
    assert(Number.isInteger(mode) && mode >= 0 && mode <= 0o7777, 'a file mode is permission bits within 0o7777');
    if (this.m.faults.on && this.m.faults.covers(this.p)) {
      // Node's writeFileSync opens with O_TRUNC and then writes: a failed write leaves the file empty.
      try {
        const cut = this.writeFault(abs, '');
        assert(cut === '', 'an empty write is never cut short');
      } catch (e) {
        this.m.vol.writeFileSync(abs, '', { mode: mode & ~UMASK });
        throw e;
      }
    }
    this.m.vol.writeFileSync(abs, data, { mode: mode & ~UMASK });
    // Whole: the faults fail a write before it, never cut it.
    assert(Number(this.m.vol.statSync(abs).size) === Buffer.byteLength(data, 'utf8'), 'a written file holds exactly its data');
    this.m.log(this.p, 'writefile', `${abs} ${data.length}`);
  }

  appendFile(path: string, data: string): void {
    const abs = this.path(path);
    if (this.m.faults.on && this.m.faults.covers(this.p)) {
      const cut = this.writeFault(abs, '');
      assert(cut === '', 'an empty write is never cut short');
    }
    this.m.vol.appendFileSync(abs, data, { mode: 0o666 & ~UMASK });
    assert(Number(this.m.vol.statSync(abs).size) >= Buffer.byteLength(data, 'utf8'), 'an appended file holds at least its new data');
    this.m.log(this.p, 'appendfile', `${abs} ${data.length}`);
  }

  rename(from: string, to: string): void {
    const a = this.path(from);
    const b = this.path(to);
    this.m.vol.renameSync(a, b);
    // The name moved (no hard links here: a second name of one file cannot be made).
    assert(a === b || !this.m.vol.existsSync(a), 'a renamed file is gone from its old name');
    assert(this.m.vol.existsSync(b), 'a renamed file is at its new name');
    this.m.log(this.p, 'rename', `${a} ${b}`);
  }

  unlink(path: string): void {
    const abs = this.path(path);
    this.m.vol.unlinkSync(abs);
    assert(!this.m.vol.existsSync(abs), 'an unlinked name is gone');
    this.m.log(this.p, 'unlink', abs);
  }

  chmod(path: string, mode: number): void {
    const abs = this.path(path);
    assert(Number.isInteger(mode) && mode >= 0 && mode <= 0o7777, 'a file mode is permission bits within 0o7777');
    this.m.vol.chmodSync(abs, mode);
    // Exact, with no umask: what was asked is what stat says.
    assert((Number(this.m.vol.statSync(abs).mode) & 0o7777) === mode, 'chmod sets the mode exactly');
    this.m.log(this.p, 'chmod', `${abs} ${mode.toString(8)}`);
  }

  stat(path: string): Stat {
    const st = this.m.vol.statSync(this.path(path));
    const s = new SimStat(Number(st.size), Number(st.mode));
    assert(!s.isSymbolicLink(), 'stat follows symbolic links');
    // The disk holds only what the simulator makes: files, directories, sockets (listen) and symlinks.
    assert(s.isFile() || s.isDirectory() || s.isSocket(), 'a followed node is a file, a directory or a socket');
    return s;
  }

  lstat(path: string): Stat {
    const st = this.m.vol.lstatSync(this.path(path));
    const s = new SimStat(Number(st.size), Number(st.mode));
    assert(s.isFile() || s.isDirectory() || s.isSocket() || s.isSymbolicLink(), 'a node is a file, a directory, a socket or a symlink');
    return s;
  }

  symlink(target: string, path: string): void {
    const abs = this.path(path);
    this.m.vol.symlinkSync(target, abs);
    assert(this.m.vol.lstatSync(abs).isSymbolicLink(), 'a new symlink is a symlink');
    assert(this.m.vol.readlinkSync(abs) === target, 'a symlink holds its target as given');
    this.m.log(this.p, 'symlink', `${abs} -> ${target}`);
  }

  exists(path: string): boolean {
    return this.m.vol.existsSync(this.path(path));
  }

  mkdir(path: string, opts?: { recursive?: boolean; mode?: number }): void {
    const abs = this.path(path);
    const mode = opts?.mode ?? 0o777;
    assert(Number.isInteger(mode) && mode >= 0 && mode <= 0o7777, 'a directory mode is permission bits within 0o7777');
    this.m.vol.mkdirSync(abs, { recursive: opts?.recursive === true, mode: mode & ~UMASK });
    assert(isDirectory(this.m.vol, abs), 'mkdir leaves a directory');
    this.m.log(this.p, 'mkdir', abs);
  }

  readdir(path: string): string[] {
    const names = (this.m.vol.readdirSync(this.path(path)) as unknown[]).map(String);
    for (const name of names) assert(name !== '' && !name.includes('/'), 'a directory entry is a single name');
    assert(new Set(names).size === names.length, 'a directory lists each entry once');
    return names;
  }

  rmdir(path: string, opts?: { recursive?: boolean }): void {
    const abs = this.path(path);
    if (opts?.recursive === true) this.m.vol.rmSync(abs, { recursive: true });
    else this.m.vol.rmdirSync(abs);
    assert(!this.m.vol.existsSync(abs), 'a removed directory is gone');
    this.m.log(this.p, 'rmdir', abs);
  }
}

// ------------------------------------------------------------------ stdio

export const SINK_DROP = 0;
export const SINK_STDOUT = 1; // kernel.output.stdout (init's own)
export const SINK_STDERR = 2; // kernel.output.stderr
export const SINK_FILE = 3; // a memfs descriptor opened in append mode, shared by everyone who inherited it
export const SINK_PIPE = 4; // the write end of a pipe (pipes.ts), shared the same way

/** Where a process's stdout or stderr goes. File and pipe sinks are shared and counted, like an inherited fd. */
export class Sink {
  constructor(
    readonly kind: number,
    readonly memfd: number,
    public refs: number,
    readonly pipe: Pipe | null = null,
  ) {
    assert(kind >= SINK_DROP && kind <= SINK_PIPE, 'a sink kind is one of SINK_*');
    assert(refs >= 1, 'a new sink is held by whoever made it');
    // A pipe sink writes into its pipe, a file sink into its memfs descriptor; the others have neither.
    assert((kind === SINK_PIPE) === (pipe !== null), 'a sink has a pipe if and only if it is a pipe sink');
    assert((kind === SINK_FILE) === (memfd >= 0), 'a sink has a memfs descriptor if and only if it is a file sink');
  }

  ref(): this {
    // A released sink (0 refs) is closed: nothing may take it again.
    assert(this.refs >= 1, 'only a held sink is shared');
    assert(this.kind !== SINK_DROP || this === DROP, 'DROP is the one drop sink');
    this.refs++;
    return this;
  }
}

export const DROP = new Sink(SINK_DROP, -1, 1);

/** A spawned child's sink; `parent` is whose the inherited ones are, and who reads a pipe. */
export function openSink(m: Machine, target: StdioTarget, inherited: Sink, parent: Proc): Sink {
  // The parent's own sinks, which it holds while it spawns.
  assert(inherited.refs >= 1, 'an inherited sink is held by its parent');
  if (target === 'inherit') return inherited.ref();
  if (target === 'ignore') return DROP.ref();
  if (target === 'pipe') {
    if (parent === m.init) throw new OsError('EINVAL', "Kernel.spawn cannot read a pipe: spawn with 'pipe' from a program");
    return new Sink(SINK_PIPE, -1, 1, new Pipe(m, parent));
  }
  if (typeof target === 'object' && target !== null && typeof target.file === 'string') {
    const memfd = m.vol.openSync(resolvePath(parent.cwd, target.file), 'a', 0o666 & ~UMASK);
    assert(Number.isInteger(memfd) && memfd >= 0, 'a memfs descriptor is a non-negative integer');
    return new Sink(SINK_FILE, memfd, 1);
  }
  throw new OsError('EINVAL', `stdio target must be 'inherit', 'ignore', 'pipe' or { file }, got ${JSON.stringify(target)}`);
}

export function releaseSink(m: Machine, sink: Sink): void {
  assert(sink.refs >= 1, 'a sink is released once per hold');
  if (--sink.refs !== 0) return;
  // DROP and init's stdout and stderr keep the hold they were made with: init never dies.
  assert(sink.kind === SINK_PIPE || sink.kind === SINK_FILE, 'only pipe and file sinks are ever closed');
  if (sink.kind === SINK_PIPE) {
    assert(sink.pipe !== null, 'a pipe sink has a pipe');
    closeWrite(m, sink.pipe);
  }
  else if (sink.kind === SINK_FILE) {
    try {
      m.vol.closeSync(sink.memfd);
    } catch {
      // already closed
    }
  }
}

export function writeSink(m: Machine, p: Proc, sink: Sink, text: string, tag: string): void {
  assert(tag === 'stdout' || tag === 'stderr', 'an output trace line is stdout or stderr');
  assert(sink === p.stdout || sink === p.stderr, 'a process writes to its own stdout or stderr');
  const s = String(text);
  m.log(p, tag, String(s.length));
  emit(m, p, sink, s);
}

/** Write without a trace line: for text whose size is not the same on every host (stack traces). */
export function emit(m: Machine, p: Proc, sink: Sink, s: string): void {
  // A process holds its sinks until it dies, and dead processes write nothing.
  assert(sink.refs >= 1, 'output goes only to a held sink');
  switch (sink.kind) {
    case SINK_STDOUT:
      m.output.write('stdout', s);
      return;
    case SINK_STDERR:
      m.output.write('stderr', s);
      return;
    case SINK_FILE:
      assert(sink.memfd >= 0, 'a file sink has a memfs descriptor');
      m.vol.writeSync(sink.memfd, s);
      return;
    case SINK_PIPE:
      assert(sink.pipe !== null, 'a pipe sink has a pipe');
      pipeWrite(m, p, sink.pipe, s);
      return;
    default:
      assert(sink.kind === SINK_DROP, 'the only other sink is DROP');
      return;
  }
}
