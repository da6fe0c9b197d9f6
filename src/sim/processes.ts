// The process table: one Proc per pid, its lifetime, and the transitions
// between the states below. A Proc is plain data; every rule about it lives
// in a function here (spawn, die, reap, waitpid) or in signals.ts.
//
//   RUNNING --SIGTTIN/TTOU default--> STOPPED
//   RUNNING/STOPPED --exit, crash, signal, natural end--> ZOMBIE --waitpid / init--> REAPED
//
// `exiting` is a RUNNING process that called exit() (or crashed) while its
// clock ran ahead of the kernel's in a burn (or while effects of one still
// wait, see effects.ts): it runs nothing more and dies when the burn ends,
// after the effects it made before the exit, unless a signal kills it first.

import type { Readable } from 'node:stream';
import { assert } from '../os/assert.js';
import { OsError, type Exited, type ProgramFn, type Signal, type SpawnSpec, type Listener } from '../os/types.js';
import type { Rng } from './random.js';
import type { Machine } from './machine.js';
import type { ChanEnd } from './channels.js';
import type { Endpoint, ListenerHandle, ListenerState } from './sockets.js';
import type { FdTable, Sink } from './files.js';
import type { SimOs } from './os.js';
import type { AppClock } from './app-clock.js';
import { EV_START, type Ev } from './scheduler.js';
import { Fifo } from './fifo.js';
import { FX_EXIT, FX_START, FX_STREAM, type Effect } from './effects.js';
import { SIGNAL_COUNT, sendSignal, signalIndex, SIGCHLD_INDEX } from './signals.js';
import { openChannel, closeChannels, type SimChannel } from './channels.js';
import { checkHandOver, closeEndpoints, closeUnsent, handOver, releaseHandles } from './sockets.js';
import { openSink, releaseSink, closeFds, isDirectory } from './files.js';
import { attachPipe, closeReadEnds, flushPipes, type Pipe } from './pipes.js';
import { letGoHostFds } from './net-guard.js';

/** What os.exit() throws to unwind the caller; the kernel swallows it wherever it calls process code. */
export class ExitSignal extends Error {
  constructor() {
    super('process exited');
    this.name = 'ExitSignal';
  }
}

export const RUNNING = 0;
export const STOPPED = 1;
export const ZOMBIE = 2;
export const REAPED = 3;
/** What a simulated process holds in memory until told otherwise: a small Node process. */
export const SIM_RSS = 48 * 1024 * 1024;

export type ProcState = typeof RUNNING | typeof STOPPED | typeof ZOMBIE | typeof REAPED;

export class Proc {
  state: ProcState = RUNNING;
  exiting = false;
  exited: Exited | null = null;
  parent: Proc | null;
  ppid: number;
  pgid: number;
  env: Readonly<Record<string, string>>;
  cwd: string;

  // Scheduling.
  busyUntil = 0; // end of the current burn; the process's clock is max(kernel now, busyUntil)
  busyTotal = 0; // ms burnt in all, for os.loopBusy()
  rss = SIM_RSS; // bytes, for os.rss(): a test or a scenario may raise it
  title = ''; // os.setTitle()
  batch = -1; // last batch this process ran an event in (one event per process per batch)
  dirty = false; // queued for a lifetime check after the next drain
  checkQueued = false; // an EV_CHECK waits for the end of a burn
  readonly ready = new Fifo<Ev>(); // events due now that wait for a later batch (one per process per batch)
  readonly effects = new Fifo<Effect>(); // what it did to others ahead of the kernel's clock, not yet out (effects.ts)
  flushEv: Ev | null = null; // the EV_FLUSH that applies the first of them

  // What keeps it alive (see holds()).
  programPending = true;
  refTimers = 0; // ref'd timers and pending sleeps
  clock!: AppClock; // the timers and clocks of its app code (app-clock.ts); `held` while one is ref'd
  accepting = 0;
  streams = 0; // owned open streams
  readonly pipes = new Set<Pipe>(); // read ends of its children's pipes that have not seen EOF (or a destroy)
  connecting = 0; // connects not yet answered
  liveChildren = 0; // children that have not exited
  pendingSignals = 0; // bit per signal index, handlers waiting to run
  earlyMessages = 0; // channel messages kept for a first handler, queued again and not delivered (channels.ts)
  hostWork = 0; // Os.hostWork promises not yet handed back
  loading = 0; // Os.importModule calls under way: its host I/O meanwhile is part of the import (SimOs.importModule)
  readonly loadIo: Promise<unknown>[] = []; // that host I/O, not yet waited for by the import

  readonly handlers: Array<(() => void) | null> = new Array<(() => void) | null>(SIGNAL_COUNT).fill(null);
  pdeathsig = -1; // signal index, -1 none
  command = false; // spawned as a command (SpawnCommand): not drover's, a broken pipe kills it (pipes.ts brokenPipe)
  lostPipes: Set<Pipe> | null = null; // pipes it writes into whose reading end closed under a write of its: dropped from then on

  readonly children = new Set<Proc>(); // live and zombie, unreaped (not kept for init)
  readonly zombies: Proc[] = []; // exited children in exit order, for waitpid(-1)
  parentChan: ChanEnd | null = null;
  readonly chans = new Set<ChanEnd>(); // every channel end this process owns, until its disconnect fired
  readonly endpoints = new Set<Endpoint>(); // owned stream ends, including pending connects
  readonly handles = new Map<ListenerState, ListenerHandle>();
  listeners: readonly ListenerHandle[] = [];
  os!: SimOs;
  readonly onReject: (err: unknown) => void;
  readonly onProgramDone: () => void;
  readonly onProgramFail: (err: unknown) => void;

  constructor(
    m: Machine,
    readonly pid: number,
    parent: Proc | null,
    readonly program: string,
    readonly fn: ProgramFn | null,
    readonly args: readonly string[],
    env: Readonly<Record<string, string>>,
    cwd: string,
    readonly rng: Rng,
    readonly fds: FdTable,
    readonly stdout: Sink,
    readonly stderr: Sink,
  ) {
    assert(Number.isInteger(pid) && pid > 0, () => `Proc: pid ${pid} is a positive integer`);
    // init (pid 1) is the one process without a parent; every other one is spawned by a live one.
    assert((parent === null) === (pid === 1), () => `Proc: pid ${pid} has a parent unless it is init`);
    assert(parent === null || parent.state === RUNNING, 'Proc: a child is spawned by a running process');
    this.parent = parent;
    this.ppid = parent === null ? 0 : parent.pid;
    this.pgid = pid;
    this.env = env;
    this.cwd = cwd;
    // Bound once per process so a callback's promise costs no closure per event.
    this.onReject = (err) => m.fault(this, err, true);
    this.onProgramDone = () => {
      this.programPending = false;
      m.touch(this);
    };
    this.onProgramFail = (err) => {
      this.programPending = false;
      m.touch(this);
      // An async main that rejects: in Node, a rejection nobody handles.
      m.fault(this, err, true);
    };
  }

  /** Can run code: not stopped, not dead, not on its way out. */
  get runnable(): boolean {
    // die() clears `exiting`: a dead process is not on its way out, it is out.
    assert(!this.exiting || this.state === RUNNING || this.state === STOPPED, 'Proc.runnable: a dead process is not exiting');
    // die() stops the burn: a dead process's clock is the kernel's.
    assert(this.state < ZOMBIE || this.busyUntil === 0, 'Proc.runnable: a dead process burns nothing');
    return this.state === RUNNING && !this.exiting;
  }
}

/**
 * Whether something keeps the process's event loop alive, as Node decides
 * it: a pending program promise, a ref'd timer or sleep, an accepting
 * listener, an open stream or pending connect, a pipe from a child that has
 * not seen EOF, a child that has not exited, a signal handler waiting to
 * run, host work not yet handed back, effects it made during a burn that
 * have not gone out yet, a ref'd timer of its app code, a channel with message or disconnect listeners
 * that has not yet seen its disconnect, or channel messages kept for a late first handler and not yet
 * delivered to it (the Node adapter delivers them from a setImmediate).
 */
export function holds(p: Proc): boolean {
  // Counts of what it holds are never negative (a release without a take).
  assert(p.refTimers >= 0 && p.liveChildren >= 0 && p.hostWork >= 0, 'holds: timers, children and host work are counted from 0');
  assert(p.accepting >= 0 && p.streams >= 0 && p.connecting >= 0, 'holds: listeners and streams are counted from 0');
  if (p.programPending || p.refTimers > 0 || p.accepting > 0 || p.streams > 0 || p.connecting > 0 || p.pipes.size > 0) return true;
  if (p.liveChildren > 0 || p.pendingSignals !== 0 || p.hostWork > 0 || p.effects.length > 0 || p.clock.held || p.earlyMessages > 0) return true;
  for (const end of p.chans) if (end.holds()) return true;
  return false;
}

export interface Spawned {
  readonly pid: number;
  readonly channel: SimChannel | null;
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
}

export function spawnProc(m: Machine, parent: Proc, spec: SpawnSpec, fromKernel: boolean): Spawned {
  const isCommand = 'command' in spec;
  const name = isCommand ? spec.command[0] : spec.program;
  const fn = name === undefined ? undefined : m.programs.get(name);
  if (fn === undefined) {
    throw new OsError('ENOENT', `no program ${JSON.stringify(name ?? '')} is registered: add it to a registry passed to the Kernel`);
  }
  const args = isCommand ? spec.command.slice(1) : (spec.args ?? []).slice();
  const cwd = spec.cwd === undefined ? parent.cwd : m.resolve(parent.cwd, spec.cwd);
  if (!isDirectory(m.vol, cwd)) throw new OsError('ENOENT', `spawn ${name}: working directory ${cwd} does not exist`);
  const handed = (spec.listeners ?? []) as readonly Listener[];
  checkHandOver(handed);
  const pdeathsig = spec.parentDeathSignal !== undefined ? signalIndex(spec.parentDeathSignal) : -1;
  // Open what can fail before taking a pid, so a failed spawn leaves nothing behind.
  const stdout = openSink(m, spec.stdout ?? 'inherit', parent.stdout, parent);
  let stderr: Sink;
  try {
    stderr = spec.stderr === 'stdout' ? stdout.ref() : openSink(m, spec.stderr ?? 'inherit', parent.stderr, parent);
  } catch (err) {
    releaseSink(m, stdout);
    throw err;
  }
  const env = spec.env === undefined ? parent.env : Object.freeze({ ...spec.env });
  const pid = m.nextPid++;
  // Pids are never reused: a fresh one is in no table and never exited.
  assert(!m.procs.has(pid) && !m.exits.has(pid), () => `spawnProc: pid ${pid} is fresh`);
  const child = new Proc(m, pid, parent, name!, fn, Object.freeze(args), env, cwd, m.rng.fork(), m.newFdTable(), stdout, stderr);
  child.pgid = spec.newGroup === true ? pid : parent.pgid;
  m.addProc(child);
  if (parent !== m.init) {
    parent.children.add(child);
    parent.liveChildren++;
  }
  assert(m.procs.get(pid) === child && m.groups.get(child.pgid)!.has(child), 'spawnProc: the child is in the table and in its group');
  child.listeners = handOver(m, handed, child);
  let channel: SimChannel | null = null;
  const wantChannel = isCommand ? false : (spec.channel ?? !fromKernel);
  if (wantChannel) channel = openChannel(m, parent, child);
  child.pdeathsig = pdeathsig;
  child.command = isCommand;
  m.log(parent, 'spawn', `${pid} ${name} pgid=${child.pgid}`);
  // With stderr 'stdout', stderr is the same sink: one pipe, read as child.stdout.
  const outPipe = spec.stdout === 'pipe' ? attachPipe(m, stdout.pipe!, child, 'out') : null;
  const errPipe = spec.stderr === 'pipe' ? attachPipe(m, stderr.pipe!, child, 'err') : null;
  // A parent that burns starts the child when its clock says, if it lives that long.
  if (m.deferring(parent)) m.defer(parent, FX_START, child, null);
  else m.at(m.now, EV_START, child, null, null);
  // Not started yet, whether now or at the end of the parent's burn: its program is pending.
  assert(child.state === RUNNING && child.programPending, 'spawnProc: a child starts pending its program');
  return { pid, channel, stdout: outPipe, stderr: errPipe };
}

/** os.exit() and crashes: die now, or when the current burn ends, after the effects made before. */
export function terminate(m: Machine, p: Proc, code: number): void {
  // An exit code is a byte (os.exit masks it, a crash is 1).
  assert(Number.isInteger(code) && code >= 0 && code <= 255, () => `terminate: exit code ${code} is a byte`);
  if (!p.runnable) return;
  if (m.deferring(p)) {
    p.exiting = true;
    m.log(p, 'exiting', `${code} at=${m.local(p)}`);
    m.defer(p, FX_EXIT, null, code);
    // It dies when the FX_EXIT goes out, after the effects before it, unless a signal kills it first.
    assert(p.exiting && p.flushEv !== null, 'terminate: an exiting process waits for its flush');
    return;
  }
  die(m, p, code, null);
  assert(!p.runnable, 'terminate: the process runs nothing more');
}

export function die(m: Machine, p: Proc, code: number | null, signal: Signal | null): void {
  // An exit has a code or a signal, never both (Exited).
  assert((code === null) !== (signal === null), 'die: a code or a signal');
  if (p.state === ZOMBIE || p.state === REAPED || p === m.init) return;
  p.state = ZOMBIE;
  m.changes++;
  p.exiting = false;
  // A process killed mid-burn dies now: what its death does to others
  // (closed streams, SIGCHLD, orphans) happens at kernel time, not at the
  // end of a burn that will never finish, and what it did ahead of the
  // kernel's clock never happens at all.
  p.busyUntil = 0;
  const dropped = p.effects.length === 0 ? null : dropEffects(m, p);
  const exited: Exited = { pid: p.pid, code, signal };
  p.exited = exited;
  m.exits.set(p.pid, exited);
  m.log(p, 'exit', signal ?? String(code));
  p.handlers.fill(null);
  p.pendingSignals = 0;
  p.programPending = false;
  p.refTimers = 0;
  p.hostWork = 0;
  p.clock.kill();
  closeChannels(m, p);
  closeEndpoints(m, p);
  closeReadEnds(p);
  if (dropped !== null) {
    for (const e of dropped) {
      // A stream it closed (or wrote to) during the burn: the peer hears of the death instead.
      if (e.kind === FX_STREAM) closeUnsent(m, e.a as Endpoint);
      // A child it spawned during the burn was never started: it goes with its parent.
      else if (e.kind === FX_START) {
        const c = e.a as Proc;
        if (c.state === RUNNING || c.state === STOPPED) {
          m.log(c, 'unborn', `parent=${p.pid}`);
          die(m, c, null, 'SIGKILL');
        }
      }
    }
  }
  releaseHandles(m, p);
  closeFds(m, p);
  // The host descriptors its app code opened (fs.createReadStream...) and never closed: closed for it, as its own are.
  letGoHostFds(p);
  flushPipes(p, p.stdout.pipe, p.stderr.pipe);
  releaseSink(m, p.stdout);
  releaseSink(m, p.stderr);
  // A zombie holds nothing: no effects, timers, signals, host work, streams, listeners, pipes or fds.
  assert(p.effects.length === 0 && p.flushEv === null && p.busyUntil === 0, 'die: a zombie has no burn and no effects');
  assert(p.refTimers === 0 && p.pendingSignals === 0 && p.hostWork === 0 && !p.clock.held, 'die: a zombie holds no timers, signals or host work');
  assert(p.endpoints.size === 0 && p.streams === 0 && p.connecting === 0 && p.chans.size === 0, 'die: a zombie holds no streams or channels');
  assert(p.handles.size === 0 && p.accepting === 0 && p.pipes.size === 0 && p.fds.map.size === 0, 'die: a zombie holds no listeners, pipes or fds');
  // Orphans go to init; zombies nobody will wait for are reaped by it at once.
  for (const c of p.children) {
    if (c.state === ZOMBIE) {
      reap(m, c);
      continue;
    }
    c.parent = m.init;
    c.ppid = 1;
    m.changes++;
    m.log(c, 'orphan', `was=${p.pid}`);
    if (c.pdeathsig >= 0) sendSignal(m, c, c.pdeathsig);
  }
  p.children.clear();
  p.zombies.length = 0;
  const parent = p.parent;
  if (parent === null || parent === m.init) {
    reap(m, p);
    return;
  }
  // Its parent is not reaped: a dying parent re-parents (or reaps) its children before it goes. It may be
  // dying right now, though: an unborn child of its burn dies with it and is reaped by it just below.
  assert(parent.state !== REAPED, 'die: a zombie waits for a parent that is still in the table');
  assert(parent.children.has(p) && parent.liveChildren > 0, 'die: the parent counts its live child');
  parent.liveChildren--;
  parent.zombies.push(p);
  m.touch(parent);
  sendSignal(m, parent, SIGCHLD_INDEX);
}

/** A dying process's effects that never went out, oldest first; its flush event goes too. */
function dropEffects(m: Machine, p: Proc): Effect[] {
  assert(p.effects.length > 0, 'dropEffects: only when some wait');
  const out: Effect[] = [];
  for (let e = p.effects.shift(); e !== undefined; e = p.effects.shift()) if (e.kind !== FX_EXIT) out.push(e);
  const ev = p.flushEv;
  if (ev !== null) {
    // The kernel's EV_FLUSH for this process, still queued (a popped one has already set flushEv to null).
    assert(ev.a === p && ev.idx >= 0, 'dropEffects: the flush event of this process is queued');
    p.flushEv = null;
    m.queue.remove(ev);
    m.queue.release(ev);
  }
  assert(p.effects.length === 0 && p.flushEv === null, 'dropEffects: nothing is left to flush');
  m.log(p, 'dropped', String(out.length));
  return out;
}

function reap(m: Machine, p: Proc): void {
  // ZOMBIE --waitpid / init--> REAPED: the only way in.
  assert(p.state === ZOMBIE && p.exited !== null, 'reap: only a zombie is reaped');
  p.state = REAPED;
  if (p.parent !== null) p.parent.children.delete(p);
  m.removeProc(p);
  // Gone from the table and from its group: a reaped pid is no longer a kill target.
  assert(!m.procs.has(p.pid) && m.groups.get(p.pgid)?.has(p) !== true, 'reap: a reaped process is gone from the table and its group');
}

export function waitpid(m: Machine, p: Proc, pid: number): Exited | null {
  let z: Proc | undefined;
  if (pid === -1) {
    if (p.children.size === 0) throw new OsError('ECHILD', `waitpid(-1) in ${p.pid}: no children`);
    z = p.zombies.shift();
  } else if (pid > 0) {
    const c = m.procs.get(pid);
    if (c === undefined || c.parent !== p) throw new OsError('ECHILD', `waitpid(${pid}) in ${p.pid}: not a child`);
    if (c.state === ZOMBIE) {
      z = c;
      const at = p.zombies.indexOf(c);
      // A zombie child waits in its parent's list: splice(-1) would take out another one.
      assert(at >= 0, () => `waitpid(${pid}) in ${p.pid}: a zombie child is in its parent's list`);
      p.zombies.splice(at, 1);
    }
  } else {
    throw new OsError('EINVAL', `waitpid(${pid}): only -1 or a child's pid`);
  }
  if (z === undefined) return null;
  // Its own zombie child, from the list or by pid.
  assert(z.parent === p && z.state === ZOMBIE, 'waitpid: reaps a zombie child of its own');
  reap(m, z);
  m.log(p, 'reap', `${z.pid} ${z.exited!.signal ?? String(z.exited!.code)}`);
  return z.exited;
}
