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
import type { Fs, Stat, StdioTarget } from '../os/types.js';
import { OsError } from '../os/types.js';
import type { Machine } from './machine.js';
import { ExitSignal, type Proc } from './processes.js';
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
  return vol;
}

export function resolvePath(cwd: string, path: string): string {
  return posix.resolve(cwd, path);
}

export function isDirectory(vol: Volume, path: string): boolean {
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
    let fd = 3;
    while (this.map.has(fd)) fd++;
    this.map.set(fd, memfd);
    return fd;
  }
}

export function closeFds(m: Machine, p: Proc): void {
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
  ) {}
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
  ) {}

  private path(path: string): string {
    if (!this.p.runnable) throw new ExitSignal();
    return posix.resolve(this.p.cwd, path);
  }

  private memfd(fd: number, syscall: string): number {
    if (!this.p.runnable) throw new ExitSignal();
    const memfd = this.p.fds.map.get(fd);
    if (memfd === undefined) throw badFd(fd, syscall);
    return memfd;
  }

  open(path: string, flags: 'r' | 'w' | 'a' | 'wx', mode = 0o666): number {
    const abs = this.path(path);
    if (flags !== 'r' && flags !== 'w' && flags !== 'a' && flags !== 'wx') {
      throw new OsError('EINVAL', `open ${path}: flags must be r, w, a or wx, got ${JSON.stringify(flags)}`);
    }
    const memfd = this.m.vol.openSync(abs, flags, mode & ~UMASK);
    const fd = this.p.fds.add(memfd);
    this.m.log(this.p, 'open', `${fd} ${flags} ${abs}`);
    return fd;
  }

  write(fd: number, data: string | Uint8Array): number {
    const memfd = this.memfd(fd, 'write');
    if (this.m.faults.on && this.m.faults.covers(this.p)) data = this.writeFault(`fd ${fd}`, data);
    const n = typeof data === 'string' ? this.m.vol.writeSync(memfd, data) : this.m.vol.writeSync(memfd, data);
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
    const code = f.hit('write-enospc') ? 'ENOSPC' : f.hit('write-eio') ? 'EIO' : null;
    if (code !== null) {
      this.m.log(this.p, 'fault', `write-${code.toLowerCase()} ${what}`);
      throw errnoError(code, 'write');
    }
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    if (bytes.length < 2 || !f.hit('write-short')) return data;
    const n = 1 + f.below(bytes.length - 1);
    this.m.log(this.p, 'fault', `write-short ${what} ${n}/${bytes.length}`);
    return bytes.subarray(0, n);
  }

  close(fd: number): void {
    const memfd = this.memfd(fd, 'close');
    this.p.fds.map.delete(fd);
    this.m.vol.closeSync(memfd);
  }

  readFile(path: string): string {
    return this.m.vol.readFileSync(this.path(path), 'utf8') as string;
  }

  writeFile(path: string, data: string, mode = 0o666): void {
    const abs = this.path(path);
    if (this.m.faults.on && this.m.faults.covers(this.p)) {
      // Node's writeFileSync opens with O_TRUNC and then writes: a failed write leaves the file empty.
      try {
        this.writeFault(abs, '');
      } catch (e) {
        this.m.vol.writeFileSync(abs, '', { mode: mode & ~UMASK });
        throw e;
      }
    }
    this.m.vol.writeFileSync(abs, data, { mode: mode & ~UMASK });
    this.m.log(this.p, 'writefile', `${abs} ${data.length}`);
  }

  appendFile(path: string, data: string): void {
    const abs = this.path(path);
    if (this.m.faults.on && this.m.faults.covers(this.p)) this.writeFault(abs, '');
    this.m.vol.appendFileSync(abs, data, { mode: 0o666 & ~UMASK });
    this.m.log(this.p, 'appendfile', `${abs} ${data.length}`);
  }

  rename(from: string, to: string): void {
    const a = this.path(from);
    const b = this.path(to);
    this.m.vol.renameSync(a, b);
    this.m.log(this.p, 'rename', `${a} ${b}`);
  }

  unlink(path: string): void {
    const abs = this.path(path);
    this.m.vol.unlinkSync(abs);
    this.m.log(this.p, 'unlink', abs);
  }

  chmod(path: string, mode: number): void {
    const abs = this.path(path);
    this.m.vol.chmodSync(abs, mode);
    this.m.log(this.p, 'chmod', `${abs} ${mode.toString(8)}`);
  }

  stat(path: string): Stat {
    const st = this.m.vol.statSync(this.path(path));
    return new SimStat(Number(st.size), Number(st.mode));
  }

  lstat(path: string): Stat {
    const st = this.m.vol.lstatSync(this.path(path));
    return new SimStat(Number(st.size), Number(st.mode));
  }

  symlink(target: string, path: string): void {
    const abs = this.path(path);
    this.m.vol.symlinkSync(target, abs);
    this.m.log(this.p, 'symlink', `${abs} -> ${target}`);
  }

  exists(path: string): boolean {
    return this.m.vol.existsSync(this.path(path));
  }

  mkdir(path: string, opts?: { recursive?: boolean; mode?: number }): void {
    const abs = this.path(path);
    this.m.vol.mkdirSync(abs, { recursive: opts?.recursive === true, mode: (opts?.mode ?? 0o777) & ~UMASK });
    this.m.log(this.p, 'mkdir', abs);
  }

  readdir(path: string): string[] {
    return (this.m.vol.readdirSync(this.path(path)) as unknown[]).map(String);
  }

  rmdir(path: string, opts?: { recursive?: boolean }): void {
    const abs = this.path(path);
    if (opts?.recursive === true) this.m.vol.rmSync(abs, { recursive: true });
    else this.m.vol.rmdirSync(abs);
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
  ) {}

  ref(): this {
    this.refs++;
    return this;
  }
}

export const DROP = new Sink(SINK_DROP, -1, 1);

/** A spawned child's sink; `parent` is whose the inherited ones are, and who reads a pipe. */
export function openSink(m: Machine, target: StdioTarget, inherited: Sink, parent: Proc): Sink {
  if (target === 'inherit') return inherited.ref();
  if (target === 'ignore') return DROP.ref();
  if (target === 'pipe') {
    if (parent === m.init) throw new OsError('EINVAL', "Kernel.spawn cannot read a pipe: spawn with 'pipe' from a program");
    return new Sink(SINK_PIPE, -1, 1, new Pipe(m, parent));
  }
  if (typeof target === 'object' && target !== null && typeof target.file === 'string') {
    const memfd = m.vol.openSync(resolvePath(parent.cwd, target.file), 'a', 0o666 & ~UMASK);
    return new Sink(SINK_FILE, memfd, 1);
  }
  throw new OsError('EINVAL', `stdio target must be 'inherit', 'ignore', 'pipe' or { file }, got ${JSON.stringify(target)}`);
}

export function releaseSink(m: Machine, sink: Sink): void {
  if (--sink.refs !== 0) return;
  if (sink.kind === SINK_PIPE) closeWrite(m, sink.pipe!);
  else if (sink.kind === SINK_FILE) {
    try {
      m.vol.closeSync(sink.memfd);
    } catch {
      // already closed
    }
  }
}

export function writeSink(m: Machine, p: Proc, sink: Sink, text: string, tag: string): void {
  const s = String(text);
  m.log(p, tag, String(s.length));
  emit(m, p, sink, s);
}

/** Write without a trace line: for text whose size is not the same on every host (stack traces). */
export function emit(m: Machine, p: Proc, sink: Sink, s: string): void {
  switch (sink.kind) {
    case SINK_STDOUT:
      m.output.stdout += s;
      return;
    case SINK_STDERR:
      m.output.stderr += s;
      return;
    case SINK_FILE:
      m.vol.writeSync(sink.memfd, s);
      return;
    case SINK_PIPE:
      pipeWrite(m, p, sink.pipe!, s);
      return;
    default:
      return;
  }
}
