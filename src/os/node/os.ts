// The Os of one real process, assembled from the modules next to it.

import { spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import {
  OsError, type Addr, type Child, type Exited, type Fs, type ListenOptions, type Listener, type Os, type Signal,
  type SpawnSpec, type Stream, type Timer, type Writer,
} from '../types.js';
import { NO_HOOKS } from '../hooks.js';
import { IpcChannel, type IpcEndpoint } from './channel.js';
import { ChildTable } from './children.js';
import { burn, now, sleep, timer } from './clock.js';
import { connect } from './connect.js';
import { codeOf, osError } from './errors.js';
import { hostImport } from '../host-import.js';
import { nodeFs } from './fs.js';
import { listen } from './listen.js';
import type { ParentCopies } from './handoff.js';
import type { NodeListener } from './listener.js';
import { ParentDeathWatch } from './parent-death.js';
import type { RegistryRef } from './plumbing.js';
import { SignalTable } from './signals.js';
import { spawnCommand, spawnProgram } from './spawn.js';
import { StdWriter } from './stdio.js';

export interface NodeOsParts {
  readonly registries: readonly RegistryRef[];
  readonly args: readonly string[];
  /** The pid that started this process, for the parent-death watch. */
  readonly parentPid: number;
  readonly channel: IpcChannel | null;
  /** The parent's copies of sockets (handoff.ts); null without a channel. */
  readonly copies?: ParentCopies | null;
  readonly listeners: readonly NodeListener[];
  readonly signals: SignalTable;
}

export class NodeOs implements Os {
  readonly pid = process.pid;
  readonly uid = process.getuid?.() ?? 0;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly hooks = NO_HOOKS;
  readonly channel: IpcChannel | null;
  readonly listeners: readonly Listener[];
  readonly fs: Fs = nodeFs;
  readonly stdout: Writer = new StdWriter('stdout');
  readonly stderr: Writer = new StdWriter('stderr');
  readonly #registries: readonly RegistryRef[];
  readonly #signals: SignalTable;
  readonly #copies: ParentCopies | null;
  readonly #children = new ChildTable();
  readonly #parentDeath: ParentDeathWatch;

  constructor(parts: NodeOsParts) {
    this.args = parts.args;
    this.channel = parts.channel;
    this.listeners = parts.listeners;
    this.#registries = parts.registries;
    this.#signals = parts.signals;
    this.#copies = parts.copies ?? null;
    this.#parentDeath = new ParentDeathWatch(parts.parentPid, parts.channel);
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
    this.env = Object.freeze(env);
  }

  ppid(): number {
    return process.ppid;
  }

  cwd(): string {
    return process.cwd();
  }

  now(): number {
    return now();
  }

  wallTime(): number {
    return Date.now();
  }

  sleep(ms: number): Promise<void> {
    return sleep(ms);
  }

  timer(ms: number, fn: () => void): Timer {
    return timer(ms, fn);
  }

  burn(ms: number): void {
    burn(ms);
  }

  loopBusy(): number {
    return performance.eventLoopUtilization().active;
  }

  random(): number {
    return Math.random();
  }

  rss(): number {
    return process.memoryUsage.rss();
  }

  setTitle(title: string): void {
    process.title = title;
  }

  titleOf(pid: number): string | null {
    if (!Number.isInteger(pid) || pid <= 0) return null;
    try {
      // Arguments are NUL-separated; a title set over them is NUL-padded. A zombie's is empty.
      const text = readFileSync(`/proc/${pid}/cmdline`, 'latin1').replace(/\0+$/, '').replaceAll('\0', ' ');
      return text === '' ? null : text;
    } catch (e) {
      if (['ENOENT', 'ESRCH', 'EACCES', 'EPERM'].includes(String(codeOf(e)))) return null;
      throw e;
    }
  }

  spawn(spec: SpawnSpec): Child {
    const ctx = { registries: this.#registries, env: this.env };
    const cp = 'program' in spec ? spawnProgram(ctx, spec) : spawnCommand(ctx, spec);
    const pid = cp.pid!;
    this.#children.started(pid);
    cp.on('exit', (code, signal) => {
      this.#children.exited(pid, code, signal);
      this.#signals.childExited();
    });
    // Sends carry callbacks and kill goes through process.kill, so this is
    // unexpected; it must not crash the parent.
    cp.on('error', (e) => this.stderr.write(`drover: child ${pid}: ${e.message}\n`));
    // Node's own streams: net.Sockets over the pipes, null where no 'pipe' was asked for.
    return { pid, channel: cp.channel ? new IpcChannel(cp as ChildProcess & IpcEndpoint) : null, stdout: cp.stdout, stderr: cp.stderr };
  }

  hostWork<T>(work: Promise<T>): Promise<T> {
    return work;
  }

  importModule(path: string): Promise<Record<string, unknown>> {
    return hostImport(path).catch((e: unknown) => {
      if (e instanceof SyntaxError) locate(e, path);
      throw e;
    });
  }

  alive(pid: number): boolean {
    if (!Number.isInteger(pid) || pid <= 0 || this.#children.isZombie(pid)) return false;
    try {
      process.kill(pid, 0);
    } catch (e) {
      if (codeOf(e) !== 'EPERM') return false; // EPERM: there, but not ours to signal
    }
    // A zombie answers signal 0 too; where /proc exists, ask it.
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
      return stat[stat.lastIndexOf(')') + 2] !== 'Z';
    } catch {
      return true;
    }
  }

  kill(pid: number, sig: Signal): void {
    // 0 and -1 would reach our own group or every process we may signal.
    if (!Number.isInteger(pid) || pid === 0 || pid === -1) throw new OsError('EINVAL', `kill: invalid pid ${pid}`);
    if (this.#children.isZombie(pid)) return;
    try {
      process.kill(pid, sig);
    } catch (e) {
      const code = codeOf(e);
      const who = pid < 0 ? `process group ${-pid}` : `process ${pid}`;
      if (code === 'ESRCH') throw new OsError('ESRCH', `no ${who}`);
      if (code === 'EPERM') throw new OsError('EPERM', `not allowed to signal ${who}`);
      throw osError(code, `kill ${who} ${sig}`);
    }
  }

  waitpid(pid: number): Exited | null {
    return this.#children.waitpid(pid);
  }

  onSignal(sig: Signal, fn: (() => void) | null): void {
    this.#signals.set(sig, fn);
  }

  exit(code: number): never {
    process.exit(code);
  }

  setParentDeathSignal(sig: Signal): boolean {
    this.#parentDeath.arm(sig);
    return true;
  }

  listen(addr: Addr, opts?: ListenOptions): Promise<Listener> {
    return listen(addr, opts, this.#copies);
  }

  connect(addr: Addr): Promise<Stream> {
    return connect(addr);
  }
}

/**
 * Where a SyntaxError from import() of `path` is: import() names neither
 * file nor line (Node keeps its "file:3 / ^" for the errors it prints
 * itself), so `node --check` of the file says it. Null when the error is not
 * in that file (a module it imports): Node's words alone then.
 */
export function syntaxErrorAt(path: string): string | null {
  const r = spawnSync(process.execPath, ['--check', path], { encoding: 'utf8', timeout: 10_000 });
  const at = r.status === 0 ? -1 : (r.stderr ?? '').indexOf('\nSyntaxError');
  return at < 0 ? null : r.stderr.slice(0, at).trimEnd();
}

function locate(e: SyntaxError, path: string): void {
  const stack = e.stack ?? e.message;
  // A CommonJS module's SyntaxError already has Node's "file:3 / the line / ^"
  // in front of its stack (Node decorates those, not an ES module's): adding
  // ours showed it twice. An undecorated stack begins with the error's name.
  if (!stack.startsWith(`${e.name}:`)) return;
  const where = syntaxErrorAt(path);
  if (where !== null) e.stack = `${where}\n\n${stack}`;
}
