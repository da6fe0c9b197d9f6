// The machine: every table of the simulated kernel and the run loop that
// drives them. The public Kernel (kernel.ts) is a thin facade over it; the
// other modules are the rules, written as functions over a Machine.
//
// The run loop. Time jumps to the earliest event. All events due at that
// time run synchronously, in heap order, as one batch, except that a
// process runs at most one event per batch: in JS a callback's promise
// continuations finish before the next callback of the same loop starts, and
// they can only run while the kernel awaits `drain` between batches. An
// event for a process that is burning CPU moves to the end of its burn. After
// each drain, every process that ran or lost a hold is checked: one that
// holds nothing exits 0, like a Node process whose loop went empty.
//
// Host work (Os.hostWork: a dynamic import, say) takes host time, which must
// never become virtual time. While some is pending the loop runs what is due
// now but does not move the clock: when nothing is due now it awaits the
// oldest pending work and hands its result back to its process as an event
// at the current time, then goes on. Results go back one at a time, in the
// order the work started, each when nothing else is due, so where they land
// in the trace does not depend on how long the host took. An import
// (Os.importModule) that is still pending after loadLimit.ms of the host's
// time is given up when its turn comes (giveUp): it fails as a module that
// never finished loading (a top-level await that never settles, or one that
// waits for the simulation, which cannot move meanwhile), instead of
// holding the clock for good. That bound is the one place the host's time
// decides something; it is far beyond what a module takes to load, so a
// seed's result depends on it only for a module that never loads.

import { posix } from 'node:path';
import type { Volume } from 'memfs';
import { assert } from '../os/assert.js';
import type { Exited, ProgramFn, ProgramRegistry } from '../os/types.js';
import { NO_HOOKS, type Hooks } from '../os/hooks.js';
import { Rng, seedToBigInt } from './random.js';
import {
  EventQueue,
  type Ev,
  EV_ACCEPT,
  EV_ARRIVE,
  EV_CHAN,
  EV_CHAN_SELF,
  EV_CHECK,
  EV_EPIPE,
  EV_WINDOW,
  EV_FLUSH,
  EV_HOST,
  EV_IDLE,
  EV_NONE,
  EV_PIPE,
  EV_SIGNAL,
  EV_SLEEP,
  EV_START,
  EV_STREAM,
  EV_TIMER,
  EV_CLOCK,
} from './scheduler.js';
import { Trace } from './trace.js';
import { ExitSignal, Proc, REAPED, RUNNING, STOPPED, ZOMBIE, die, holds, terminate } from './processes.js';
import { deliverSignal, signalName, signalTarget } from './signals.js';
import { closeOut, deliverChannel, fire, sendOut as sendMessage, type ChanEnd } from './channels.js';
import { Net, acceptConn, arrive, deliverStream, dial, idleDue, releaseDeadStreams, windowOpen, sendOut as sendItem, type Endpoint, type ListenerHandle, type SimStream } from './sockets.js';
import { Effect, FX_CHAN, FX_CHAN_CLOSE, FX_CONNECT, FX_EXIT, FX_KILL, FX_PIPE, FX_START, FX_STREAM } from './effects.js';
import { brokenPipe, deliverPipe, pipeOut, type Pipe } from './pipes.js';
import { Fifo } from './fifo.js';
import { Output } from './output.js';
import { FdTable, SINK_STDERR, SINK_STDOUT, Sink, createVolume, emit, resolvePath } from './files.js';
import { SimOs, type SimTimer } from './os.js';
import { AppClock } from './app-clock.js';
import { actAs, exiting, hostAgain, hostTurn, naturalExit, runEnded, runStarted, settled, uncaught } from './app-globals.js';
import { drain as hostDrain } from '../os/drain.js';
import { hostAlarm } from '../os/host-alarm.js';
import { droverOwn, letGoHostFds } from './net-guard.js';
import { Faults, FaultyOs, type FaultOptions } from './faults.js';
import type { Addr } from '../os/types.js';

export interface RunOptions {
  until?: number;
  stopWhen?: () => boolean;
  maxEvents?: number;
}

export interface RunResult {
  reason: 'idle' | 'until' | 'stopWhen' | 'maxEvents';
  events: number;
  now: number;
}

const DISCARD = 0 as const;

/** One Os.hostWork call: the host's promise, and the process waiting for it. */
class HostWork {
  settled = false;
  ok = false;
  value: unknown = undefined;
  wake: (() => void) | null = null; // the run loop, when it waits for this one
  resolve!: (value: unknown) => void;
  reject!: (err: unknown) => void;
  /** An import (Os.importModule) still pending after its limit in the host's time (Machine.loadLimit): given up (overdue). */
  late = false;
  /** Given up as never settling: what the host settles it with later is dropped. */
  givenUp = false;
  /** The host timer of an import's limit; null once it is cancelled or fired, or for other host work. */
  private alarm: (() => void) | null = null;

  constructor(
    readonly id: number,
    readonly proc: Proc,
    /** The import (Os.importModule) this is; null: other host work, which has no limit. */
    readonly load: Load | null = null,
  ) {
    assert(Number.isInteger(id) && id > 0, 'HostWork: ids count from 1');
    // Os.hostWork hands only a live process's work to the kernel (a dead one's is dropped there).
    assert(proc.runnable, 'HostWork: started by a process that can run');
  }

  /** An import's limit: after `ms` of the host's time still pending, it is late, and the run loop gives it up. */
  limit(ms: number): void {
    assert(this.load !== null && this.alarm === null, 'HostWork.limit: an import, limited once');
    assert(ms > 0 && Number.isFinite(ms), 'HostWork.limit: a time in the host\'s ms');
    this.alarm = hostAlarm(ms, () => {
      this.alarm = null;
      if (this.settled) return;
      this.late = true;
      const wake = this.wake;
      this.wake = null;
      if (wake !== null) wake();
    });
  }

  /** The host timer goes (the work settled, was given up, or its process died). */
  unlimit(): void {
    const cancel = this.alarm;
    this.alarm = null;
    if (cancel !== null) cancel();
    assert(this.alarm === null, 'HostWork.unlimit: no alarm left');
    assert(cancel === null || this.load !== null, 'HostWork.unlimit: only an import had one');
  }

  settle(ok: boolean, value: unknown): void {
    // Given up (late) and handed back already: what the host says now comes after the run moved on, and is dropped.
    if (this.givenUp) {
      assert(this.settled && this.late, 'HostWork.settle: only a late import is given up');
      return;
    }
    // A promise settles once: its then() calls one of the two, once.
    assert(!this.settled, 'HostWork.settle: settles once');
    this.unlimit();
    this.settled = true;
    this.ok = ok;
    this.value = value;
    const wake = this.wake;
    if (wake !== null) {
      this.wake = null;
      wake();
    }
    assert(this.settled && this.wake === null, 'HostWork.settle: settled, and nobody waits any more');
  }
}

/** An import, as host work (SimOs.importModule): its module, and what its process does once it is given up. */
export interface Load {
  readonly path: string;
  givenUp(): void;
}

/** How long an import may stay pending in the host's time (KernelOptions.loadLimit). */
export interface LoadLimit {
  readonly ms: number;
  /** What the limit is, for the error: "the timeout setting". */
  readonly what: string;
}

/**
 * drover's own default boot deadline (`timeout`, 30 s): an app that takes
 * longer to load would not boot under drover either. Far beyond what a
 * module takes to load, even cold; a run that stalls for it stalls once.
 */
export const DEFAULT_LOAD_LIMIT: LoadLimit = { ms: 30_000, what: "the simulator's limit" };

/**
 * The error of an import given up (Machine.giveUp): its module's top level,
 * or that of a module it imports, awaits something that did not settle.
 * The importer names the module (cannot load app PATH: ...), and so does
 * `path` on the error, as on Node's own. Its stack is its message alone: the
 * error reaches drover's log and the trace, which must be the same from any
 * checkout.
 */
export function neverLoaded(path: string, limit: LoadLimit): Error {
  assert(path.length > 0, 'neverLoaded: names the module');
  const err = Object.assign(
    new Error(
      `the module never finished loading: a top-level await (in it, or in a module it imports) did not settle within ${limit.ms / 1000} s ` +
        `of the host's time (${limit.what}). A module loads while the simulated clock stands still: a promise nobody resolves, ` +
        'a host call that never answers, and a timer, a request or anything else of the simulation awaited at the top level ' +
        'never settle there; start such work from the app (a factory, a handler) instead',
    ),
    { path },
  );
  err.stack = `Error: ${err.message}`;
  assert(!err.stack.includes('\n    at '), 'neverLoaded: no host frame in the stack');
  return err;
}

export class Machine {
  now = 0;
  events = 0;
  /** Bumped whenever the process table changes (a process appears, stops, exits, is re-parented or reaped). */
  changes = 0;
  nextPid = 100;
  readonly rng: Rng;
  readonly queue: EventQueue;
  readonly trace: Trace;
  readonly procs = new Map<number, Proc>(); // everything not yet reaped, init included
  readonly groups = new Map<number, Set<Proc>>();
  readonly exits = new Map<number, Exited>(); // every pid that ever exited
  /** Streams of processes that died since the last batch: their host side is let go after the drain (releaseDeadStreams). */
  readonly deadStreams: SimStream[] = [];
  private disposed = false;
  private readonly mountList: ReadonlyArray<readonly [string, string]>;
  readonly programs = new Map<string, ProgramFn>();
  readonly vol: Volume;
  readonly net = new Net();
  /** Calls failed on purpose (faults.ts): rates, counts, crashes. All rates 0 unless given. */
  readonly faults: Faults;
  readonly output = new Output();
  readonly init: Proc;
  private readonly dirty: Proc[] = [];
  private ready: Proc[] = []; // processes with events in their ready lists, in the order they got them
  private spareReady: Proc[] = [];
  private nowText = '0';
  private batchId = 0;
  private running = false;
  private readonly hosts = new Fifo<HostWork>(); // host work not handed back yet, oldest first
  /** App clocks whose timers changed since they were last armed (app-clock.ts). */
  readonly clocks: AppClock[] = [];
  private hostIds = 0;

  constructor(
    seed: number | bigint,
    registries: readonly ProgramRegistry[],
    record: boolean,
    /** KernelOptions.drain, which then takes every drain (drain()); null: the kernel's own. */
    private readonly drainWith: (() => Promise<void>) | null,
    mounts: Readonly<Record<string, string>>,
    faults: FaultOptions = {},
    /** Modules under a mount: one instance per importing process (KernelOptions.isolate). */
    readonly isolate = false,
    /** Every process's Os.hooks (KernelOptions.hooks). */
    readonly hooks: Hooks = NO_HOOKS,
    /** How long an import may stay pending in the host's time, and what that limit is, for the error (KernelOptions.loadLimit). */
    readonly loadLimit: LoadLimit = DEFAULT_LOAD_LIMIT,
  ) {
    this.mountList = Object.entries(mounts).map(([sim, host]) => [posix.resolve('/', sim), posix.resolve(host)] as const);
    this.rng = new Rng(seedToBigInt(seed));
    this.faults = new Faults(seedToBigInt(seed), faults);
    this.queue = new EventQueue(this.rng);
    this.trace = new Trace(record);
    for (const r of registries) {
      for (const [name, fn] of Object.entries(r.programs)) if (!this.programs.has(name)) this.programs.set(name, fn);
    }
    this.vol = createVolume();
    const init = new Proc(
      this, 1, null, 'init', null, Object.freeze([]), Object.freeze({}), '/', this.rng.fork(), new FdTable(),
      new Sink(SINK_STDOUT, -1, 1), new Sink(SINK_STDERR, -1, 1),
    );
    init.programPending = false;
    init.pgid = 1;
    init.os = new SimOs(this, init);
    this.init = init;
    this.addProc(init);
    // Init is pid 1, alone in its group 1, and runs no program; pids of spawned processes start above it.
    assert(this.procs.size === 1 && this.groups.get(1)?.has(init) === true, 'Machine: init alone, in group 1');
    assert(this.nextPid > init.pid && !init.programPending, 'Machine: init runs no program');
  }

  // ------------------------------------------------------------ helpers

  /** A process's clock: the kernel's, or the end of its burn if that is later. */
  local(p: Proc): number {
    // busyUntil is 0 or the end of a burn (NaN would fail here): never a time that does not compare.
    assert(p.busyUntil >= 0, 'Machine.local: busyUntil is a time');
    // die() stops the burn: a dead process's clock is the kernel's.
    assert(p.state < ZOMBIE || p.busyUntil === 0, 'Machine.local: a dead process burns nothing');
    return p.busyUntil > this.now ? p.busyUntil : this.now;
  }

  /** Seeded delivery latency of channels and streams, 0 or 1 ms. */
  latency(): number {
    return this.rng.u32() & 1;
  }

  log(p: Proc, kind: string, detail: string): void {
    // "time pid kind detail": a kind is one word.
    assert(kind.length > 0, 'Machine.log: a line has a kind');
    // A process in the trace is one of the table until it is reaped (pids are never reused).
    assert(p.state === REAPED || this.procs.get(p.pid) === p, 'Machine.log: a logged process is in the table');
    this.trace.add(`${this.nowText} ${p.pid} ${kind} ${detail}`);
  }

  /** Check `p`'s lifetime after the next drain. */
  touch(p: Proc): void {
    if (!p.dirty) {
      p.dirty = true;
      this.dirty.push(p);
    }
    // A dirty process is listed for settle(), which clears the flag as it checks it.
    assert(p.dirty && this.dirty.length > 0, 'Machine.touch: listed for the next check');
  }

  at(time: number, kind: number, proc: Proc | null, a: unknown, b: unknown): Ev {
    // Never in the past: the clock only moves forward, and an event before now would never be due in order.
    assert(time >= this.now, 'Machine.at: an event is never scheduled before now');
    // A process's event belongs to a process that can still run it; a dead one's would only be discarded.
    assert(proc === null || proc.state !== REAPED, 'Machine.at: no event for a reaped process');
    return this.queue.schedule(time, kind, proc, a, b);
  }

  /** Whether `p`'s effects on others must wait: its clock is ahead (a burn), or earlier ones still wait. */
  deferring(p: Proc): boolean {
    // die() drops the effects and the burn: a dead process defers nothing.
    assert(p.state < ZOMBIE || (p.effects.length === 0 && p.busyUntil === 0), 'Machine.deferring: a dead process has no effects');
    // Init never burns, so what it does (Kernel.spawn) happens at once.
    assert(p !== this.init || (p.busyUntil === 0 && p.effects.length === 0), 'Machine.deferring: init never defers');
    return p.busyUntil > this.now || p.effects.length > 0;
  }

  /** Queue an effect of `p` for when its clock says (effects.ts). */
  defer(p: Proc, kind: number, a: unknown, b: unknown): void {
    // A dead process drops its FIFO; one that joined it now would never go out.
    assert(p.state === RUNNING || p.state === STOPPED, 'Machine.defer: only a live process defers');
    const at = this.local(p);
    // Stamps never go backwards: the oldest waiting effect is due no later than this one.
    assert(p.effects.length === 0 || p.effects.peek()!.at <= at, 'Machine.defer: effects are stamped in order');
    p.effects.push(new Effect(at, kind, a, b));
    if (p.flushEv === null) p.flushEv = this.queue.schedule(at, EV_FLUSH, null, p, null);
    assert(p.flushEv.kind === EV_FLUSH && p.flushEv.time <= at, 'Machine.defer: a flush comes no later than the effect');
  }

  /**
   * Os.hostWork: the clock stands still until `work` settles and its result
   * is handed back (see the run loop). `load`: the work is the import of
   * that module (Os.importModule), which is given up if it is still pending
   * after loadLimit.ms of the host's time (neverLoaded).
   */
  hostWork<T>(p: Proc, work: Promise<T>, load: Load | null = null): Promise<T> {
    const h = new HostWork(++this.hostIds, p, load);
    if (load !== null) h.limit(this.loadLimit.ms);
    p.hostWork++;
    // Handed back one at a time, in the order started: ids go up along the FIFO.
    assert(this.hosts.length === 0 || this.hosts.peek()!.id < h.id, 'Machine.hostWork: host work queues in the order it started');
    this.hosts.push(h);
    this.log(p, 'host', String(h.id));
    const promise = new Promise<T>((resolve, reject) => {
      h.resolve = resolve as (value: unknown) => void;
      h.reject = reject;
    });
    Promise.resolve(work).then(
      (v) => h.settle(true, v),
      (e) => h.settle(false, e),
    );
    assert(p.hostWork > 0 && !h.settled, 'Machine.hostWork: held until handed back');
    return promise;
  }

  resolve(cwd: string, path: string): string {
    assert(cwd.startsWith('/'), 'Machine.resolve: a working directory is absolute');
    const full = resolvePath(cwd, path);
    assert(full.startsWith('/'), 'Machine.resolve: a resolved path is absolute');
    return full;
  }

  newFdTable(): FdTable {
    return new FdTable();
  }

  addProc(p: Proc): void {
    // Pids are never reused, and a process enters the table alive.
    assert(!this.procs.has(p.pid) && !this.exits.has(p.pid), () => `Machine.addProc: pid ${p.pid} is new`);
    assert(p.state === RUNNING, 'Machine.addProc: a new process runs');
    p.os ??= new FaultyOs(this, p);
    p.clock ??= new AppClock(this, p);
    this.procs.set(p.pid, p);
    this.changes++;
    let g = this.groups.get(p.pgid);
    if (g === undefined) this.groups.set(p.pgid, (g = new Set()));
    g.add(p);
  }

  removeProc(p: Proc): void {
    // Only reap() removes, and it reaps the one in the table; init is never reaped.
    assert(this.procs.get(p.pid) === p && p !== this.init, 'Machine.removeProc: a process of the table, not init');
    assert(p.state === REAPED, 'Machine.removeProc: only a reaped process leaves the table');
    this.procs.delete(p.pid);
    this.changes++;
    const g = this.groups.get(p.pgid);
    if (g !== undefined) {
      g.delete(p);
      if (g.size === 0) this.groups.delete(p.pgid);
    }
  }

  /** Call process code: a throw or a rejected returned promise crashes the process; ExitSignal is swallowed. */
  invoke(p: Proc, fn: (arg: never) => unknown, arg: unknown): void {
    // Process code runs only in a process that can run it: callers check (dead or stopped ones run nothing).
    assert(p.runnable, 'Machine.invoke: process code runs only in a runnable process');
    // Init runs no code of its own (it has no program).
    assert(p !== this.init, 'Machine.invoke: init runs no code');
    try {
      const r = (fn as (arg: unknown) => unknown)(arg);
      if (r !== null && typeof r === 'object' && typeof (r as PromiseLike<unknown>).then === 'function') {
        (r as PromiseLike<unknown>).then(undefined, p.onReject);
      }
    } catch (err) {
      this.fault(p, err);
    }
  }

  /**
   * An uncaught error (or, `rejection`, a rejection nobody handled; `promise`,
   * the one that rejected) in process code: its app code's
   * uncaughtException or unhandledRejection listener takes it if it has one
   * (app-globals.ts, uncaught) and the process lives on; else the process
   * writes it to its stderr and exits 1 (7: a listener threw), as Node does.
   */
  fault(p: Proc, err0: unknown, rejection = false, promise?: unknown): void {
    if (err0 instanceof ExitSignal || !p.runnable) return;
    // drover's own (a TypeError of its worker code): a crash of drover, never the app's listeners' to take.
    const own = droverOwn(err0);
    const u = uncaught(p.clock, err0, rejection, promise, own);
    if (u === null) {
      // A listener took it: the trace says so, and the process runs on (unless the listener exited it).
      this.log(p, 'handled', err0 instanceof Error ? `${err0.name}: ${err0.message}` : String(err0));
      return;
    }
    // A rejection nobody handled that is not an error is named as Node names it (thrown).
    const err = u.err;
    if (!p.runnable) return;
    const text = err instanceof Error ? (err.stack ?? `${err.name}: ${err.message}`) : `Uncaught ${String(err)}`;
    const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    this.log(p, 'crash', message);
    this.faults.crashes.push(own ? { at: this.now, pid: p.pid, program: p.program, message, rejection, own } : { at: this.now, pid: p.pid, program: p.program, message, rejection });
    emit(this, p, p.stderr, text + '\n');
    // App code's 'exit' listeners, as Node runs them after an uncaught exception (app-globals.ts).
    exiting(p.clock, u.code, true);
    terminate(this, p, u.code);
    // A crash ends the process's run: it runs nothing more (dead, or exiting at the end of its burn).
    assert(!p.runnable, 'Machine.fault: a crashed process runs nothing more');
    assert(p !== this.init, 'Machine.fault: init never crashes');
  }

  // ----------------------------------------------------------- run loop

  async run(opts: RunOptions = {}): Promise<RunResult> {
    if (this.running) throw new Error('Kernel.run: a run is already in progress');
    if (this.disposed) throw new Error('Kernel.run: this kernel was disposed');
    this.running = true;
    runStarted();
    const until = opts.until ?? Infinity;
    const maxEvents = opts.maxEvents ?? Infinity;
    const stopWhen = opts.stopWhen;
    // NaN limits would make every comparison below false.
    assert(!Number.isNaN(until), 'Machine.run: until is a time');
    assert(maxEvents >= 0, 'Machine.run: maxEvents is a count');
    let n = 0;
    try {
      for (;;) {
        // Before the lifetime checks and the choice of what is due; only with no host work pending (app-clock.ts).
        if (this.clocks.length > 0 && this.hosts.length === 0) this.armClocks();
        this.settle();
        if (stopWhen !== undefined && stopWhen()) return { reason: 'stopWhen', events: n, now: this.now };
        // Events left in ready lists are due now; only without them may time move.
        if (this.ready.length === 0) {
          const top = this.nextLive();
          if ((top === undefined || top.time > this.now) && this.hosts.length > 0) {
            // Nothing is due now, and host work holds the clock: wait for the oldest.
            const h = this.hostHead();
            if (h !== undefined) {
              if (n >= maxEvents) return { reason: 'maxEvents', events: n, now: this.now };
              if (!h.settled && !h.late) {
                hostTurn();
                await new Promise<void>((wake) => (h.wake = wake));
              }
              if (this.hosts.peek() === h && h.proc.runnable) {
                this.hosts.shift();
                // An import past its limit: it fails, here, at the virtual time it was waited for; the host's word comes too late.
                if (!h.settled) this.giveUp(h);
                this.at(this.now, EV_HOST, h.proc, h, null);
              }
              continue;
            }
          }
          if (top === undefined) return { reason: 'idle', events: n, now: this.now };
          if (top.time > until) {
            if (until > this.now) this.setNow(until);
            return { reason: 'until', events: n, now: this.now };
          }
          if (top.time > this.now) {
            let t = top.time;
            // clock-jump: time goes further than the next event, as after a host stall.
            if (this.faults.on && this.faults.hit('clock-jump')) {
              t = Math.min(until, t + this.faults.jump());
              this.trace.add(`${t} 0 fault clock-jump ${t - top.time}`);
            }
            this.setNow(t);
          }
        }
        if (n >= maxEvents) return { reason: 'maxEvents', events: n, now: this.now };
        n += this.batch(maxEvents - n);
        // A batch runs at most what it may, and the clock stands still during it.
        assert(n <= maxEvents, 'Machine.run: no more events than maxEvents');
        await this.drain();
        if (this.deadStreams.length > 0) releaseDeadStreams(this);
      }
    } finally {
      this.running = false;
      runEnded();
      if (this.deadStreams.length > 0) releaseDeadStreams(this);
    }
  }

  /**
   * The drain between batches: settled() (app-globals.ts), which runs what a
   * batch queued without a turn of the host's event loop, and one such turn
   * every 1024th time (every time, with a drain of the caller's), so that a long run does not starve the host's own
   * timers and I/O (a test's timeout, a job's messages to its parent). Where
   * the turns fall depends on the count of batches alone, and nothing of the
   * host's reaches a simulated process but host work, which has its own
   * order (the run loop): the trace is the same.
   */
  private drain(): Promise<void> {
    assert(this.running, 'Machine.drain: between the batches of a run');
    assert(this.drains >= 0, 'Machine.drain: counted from 0');
    if ((++this.drains & 1023) !== 0 && this.drainWith === null) return settled();
    hostTurn();
    return (this.drainWith ?? hostDrain)();
  }
  private drains = 0;

  /** The host path behind a simulated module path: the longest mount that holds it, else the path itself. */
  /** The mount that holds an absolute, normalised simulated path (the longest), as [simulated dir, host dir]. */
  mountOf(path: string): readonly [string, string] | null {
    assert(path.startsWith('/'), 'Machine.mountOf: an absolute path');
    let best: readonly [string, string] | null = null;
    for (const m of this.mountList) {
      if ((best === null || m[0].length > best[0].length) && (path === m[0] || path.startsWith(m[0] === '/' ? '/' : `${m[0]}/`))) best = m;
    }
    // The mount holds the path: it is the mount's directory or under it.
    assert(best === null || path.startsWith(best[0]), 'Machine.mountOf: the mount holds the path');
    return best;
  }

  dispose(): void {
    if (this.running) throw new Error('Kernel.dispose: a run is in progress');
    this.disposed = true;
    for (let h = this.hosts.shift(); h !== undefined; h = this.hosts.shift()) h.unlimit();
    for (const p of this.procs.values()) {
      for (const ep of p.endpoints) this.deadStreams.push(ep.stream);
      // And the host descriptors its app code holds: this kernel will not run it again.
      letGoHostFds(p);
    }
    releaseDeadStreams(this);
    assert(this.deadStreams.length === 0, 'Machine.dispose: every stream was let go');
  }

  private setNow(t: number): void {
    // The clock only moves forward, to a time that is finite (an event's, or `until`).
    assert(t > this.now, 'Machine.setNow: the clock only moves forward');
    assert(Number.isFinite(t), 'Machine.setNow: a finite time');
    this.now = t;
    this.nowText = String(t);
  }

  /**
   * One batch at the current time: first one event of each process that has
   * some waiting in its ready list, then whatever the heap has due. An event
   * of a process that already ran in this batch goes to the end of its ready
   * list (popped once, never pushed back, so a process with many events due
   * at once costs no extra heap work); one of a process in a burn moves to the
   * end of the burn.
   */
  private batch(limit: number): number {
    assert(limit > 0, 'Machine.batch: something may run');
    const now = this.now;
    const q = this.queue;
    const id = ++this.batchId;
    let n = 0;
    const waiting = this.ready;
    this.ready = this.spareReady;
    this.spareReady = waiting;
    for (let i = 0; i < waiting.length; i++) {
      const p = waiting[i]!;
      if (n >= limit) this.ready.push(p);
      else n += this.runReady(p, id, limit - n);
    }
    waiting.length = 0;
    while (n < limit) {
      const ev = q.peek();
      if (ev === undefined || ev.time > now) break;
      q.pop();
      const p = this.target(ev);
      if (p === DISCARD) {
        this.discard(ev);
        continue;
      }
      if (p !== null) {
        if (p.busyUntil > now) {
          q.postpone(ev, p.busyUntil);
          continue;
        }
        if (p.batch === id) {
          if (p.ready.length === 0) this.ready.push(p);
          p.ready.push(ev);
          continue;
        }
        p.batch = id;
        this.touch(p);
      }
      this.events++;
      n++;
      actAs(p === null ? null : p.clock);
      this.dispatch(ev, p);
      this.queue.release(ev);
    }
    // The promise continuations the batch started keep their processes (app-globals.ts); the drain itself is the host's.
    hostAgain();
    assert(n <= limit, 'Machine.batch: runs no more than its limit');
    assert(this.now === now, 'Machine.batch: the clock stands still during a batch');
    return n;
  }

  /** Run the first runnable event of `p`'s ready list; what remains stays listed (or follows a burn). */
  private runReady(p: Proc, id: number, limit: number): number {
    const fifo = p.ready;
    // A process is listed in `ready` only with events waiting, once, from an earlier batch.
    assert(fifo.length > 0, 'Machine.runReady: a listed process has events waiting');
    assert(p.batch !== id && limit > 0, 'Machine.runReady: a process runs once per batch');
    let n = 0;
    for (let ev = fifo.shift(); ev !== undefined; ev = fifo.shift()) {
      const t = this.target(ev);
      if (t === DISCARD) {
        this.discard(ev);
        continue;
      }
      if (t === null) {
        // Its process died meanwhile: an inbox item that must still advance.
        this.events++;
        n++;
        actAs(null);
        this.dispatch(ev, null);
        this.queue.release(ev);
        if (n >= limit) break;
        continue;
      }
      if (t.busyUntil > this.now) {
        // In order, so the ready list keeps its order at the end of the burn.
        this.queue.postpone(ev, t.busyUntil);
        for (let e = fifo.shift(); e !== undefined; e = fifo.shift()) this.queue.postpone(e, t.busyUntil);
        return n;
      }
      t.batch = id;
      this.touch(t);
      this.events++;
      n++;
      actAs(t.clock);
      this.dispatch(ev, t);
      this.queue.release(ev);
      break;
    }
    if (fifo.length > 0) this.ready.push(p);
    return n;
  }

  /**
   * An import still pending after loadLimit.ms of the host's time fails as
   * its module never loading (neverLoaded): the run goes on, and Node's
   * loader keeps the module pending for good (there is no unloading in ESM).
   */
  private giveUp(h: HostWork): void {
    assert(h.late && !h.settled && h.load !== null, 'Machine.giveUp: a late import, not settled');
    assert(this.hosts.peek() !== h, 'Machine.giveUp: taken off the queue first');
    h.settle(false, neverLoaded(h.load!.path, this.loadLimit));
    h.givenUp = true;
    h.load!.givenUp();
    this.log(h.proc, 'host-late', `${h.id} ${h.load!.path}`);
  }

  /** The oldest host work whose process can still take it; that of processes that died (or stopped, or are exiting) is let go. */
  private hostHead(): HostWork | undefined {
    const hosts = this.hosts;
    for (let h = hosts.peek(); h !== undefined; h = hosts.peek()) {
      if (h.proc.runnable) {
        // Its process holds it until it is handed back.
        assert(h.proc.hostWork > 0, 'Machine.hostHead: the process counts the work it waits for');
        return h;
      }
      // Not handed back: a dead process's count went to 0 with it (die); a stopped one keeps counting it.
      assert(h.proc.state < ZOMBIE ? h.proc.hostWork > 0 : h.proc.hostWork === 0, 'Machine.hostHead: a dropped work is counted only by a live process');
      hosts.shift();
      h.unlimit();
      this.log(h.proc, 'host-drop', String(h.id));
    }
    return undefined;
  }

  /** EV_FLUSH: `p`'s deferred effects whose time has come go out, in order (effects.ts). */
  private flush(p: Proc): void {
    // This event is the process's flushEv: defer() sets it, a death removes it from the queue.
    assert(p.flushEv !== null && p.flushEv.kind === EV_FLUSH, 'Machine.flush: the flush event of its process');
    assert(p.state !== RUNNING || p.effects.length > 0, 'Machine.flush: a live process flushes only with effects waiting');
    p.flushEv = null;
    // A dead process has none left; a stopped one never reaches the end of its burn.
    if (p.state !== RUNNING) return;
    const fx = p.effects;
    const now = this.now;
    let n = 0;
    for (let e = fx.peek(); e !== undefined; e = fx.peek()) {
      if (e.at > now) {
        if (p.flushEv === null) p.flushEv = this.queue.schedule(e.at, EV_FLUSH, null, p, null);
        break;
      }
      fx.shift();
      n++;
      this.apply(p, e);
      if (p.state !== RUNNING) return; // it killed or stopped itself, or exited
    }
    // What still waits has its flush event queued.
    assert(p.effects.length === 0 || p.flushEv !== null, 'Machine.flush: later effects have their flush');
    this.log(p, 'flush', String(n));
    this.touch(p);
  }

  private apply(p: Proc, e: Effect): void {
    // Its time has come, and its process is still alive to see it.
    assert(e.at <= this.now, 'Machine.apply: an effect goes out when its stamp is due');
    assert(p.state === RUNNING, 'Machine.apply: only a running process flushes');
    switch (e.kind) {
      case FX_STREAM:
        sendItem(this, e.a as Endpoint, e.b, true);
        return;
      case FX_CHAN:
        sendMessage(this, e.a as ChanEnd, e.b);
        return;
      case FX_CHAN_CLOSE:
        closeOut(this, e.a as ChanEnd);
        return;
      case FX_PIPE:
        pipeOut(this, p, e.a as Pipe, e.b as string);
        return;
      case FX_CONNECT:
        dial(this, e.a as Endpoint, e.b);
        return;
      case FX_START:
        this.at(this.now, EV_START, e.a as Proc, null, null);
        return;
      case FX_KILL:
        this.log(p, 'kill', `${e.a as number} ${signalName(e.b as number)}`);
        signalTarget(this, e.a as number, e.b as number);
        return;
      case FX_EXIT:
        if (p.exiting) die(this, p, e.b as number, null);
        return;
      default:
        throw new Error(`unknown effect kind ${e.kind}`);
    }
  }

  /** Drop, without moving time, events that can no longer run. */
  private nextLive(): Ev | undefined {
    // Only when no ready list waits: this is where time may move.
    assert(this.ready.length === 0, 'Machine.nextLive: only with no ready list waiting');
    const q = this.queue;
    for (;;) {
      const ev = q.peek();
      if (ev === undefined || this.target(ev) !== DISCARD) {
        assert(ev === undefined || ev.idx === 0, 'Machine.nextLive: the live event is the root of the queue');
        return ev;
      }
      q.pop();
      this.discard(ev);
    }
  }

  /**
   * Whose event this is: a process (its batching and burn rules apply), null
   * (the kernel's own: no rules), or DISCARD. Items of an inbox addressed to
   * a dead process still run, as kernel events, so that the inbox advances.
   */
  private target(ev: Ev): Proc | null | typeof DISCARD {
    const kind = ev.kind;
    assert(kind >= EV_NONE && kind <= EV_CLOCK, 'Machine.target: a known event kind');
    // A flush is the kernel's own event; a stream's is its endpoint owner's, read now.
    assert(kind !== EV_FLUSH || ev.proc === null, 'Machine.target: EV_FLUSH is a kernel event');
    if (kind === EV_NONE) return DISCARD;
    const p = kind === EV_STREAM || kind === EV_WINDOW ? (ev.a as Endpoint).owner : ev.proc;
    if (p === null || p.runnable) return p;
    if (kind === EV_ACCEPT) return null;
    if ((kind === EV_STREAM || kind === EV_CHAN) && (p.state === ZOMBIE || p.state === REAPED)) return null;
    return DISCARD;
  }

  private discard(ev: Ev): void {
    // Popped (or shifted from a ready list), never still queued.
    assert(ev.idx === -1, 'Machine.discard: only a popped event is discarded');
    // The handle that points at it points at this very event: a cancelled one was made EV_NONE instead.
    assert(ev.kind === EV_TIMER ? (ev.a as SimTimer).ev === ev : ev.kind === EV_CLOCK ? (ev.a as AppClock).ev === ev : ev.kind !== EV_IDLE || (ev.a as Endpoint).idleEv === ev, 'Machine.discard: the handle still points at its event');
    if (ev.kind === EV_TIMER) (ev.a as SimTimer).ev = null;
    else if (ev.kind === EV_CLOCK) (ev.a as AppClock).ev = null;
    else if (ev.kind === EV_IDLE) (ev.a as Endpoint).idleEv = null;
    this.queue.release(ev);
  }

  private dispatch(ev: Ev, p: Proc | null): void {
    // A process's event runs while it is runnable and not burning (else it moves to the end of the burn).
    assert(p === null || (p.runnable && p.busyUntil <= this.now), 'Machine.dispatch: a process event runs in a free, runnable process');
    assert(ev.idx === -1 && ev.time <= this.now, 'Machine.dispatch: a popped event that is due');
    switch (ev.kind) {
      case EV_START:
        this.start(p!);
        return;
      case EV_TIMER: {
        const t = ev.a as SimTimer;
        // Its own timer, whose ref'd count it still holds.
        assert(t.ev === ev && t.proc === p && (!t.ref || p.refTimers > 0), 'Machine.dispatch: a timer of its process, counted while ref\'d');
        t.ev = null;
        if (t.ref) p!.refTimers--;
        this.log(p!, 'timer', '');
        this.invoke(p!, t.fn, undefined);
        return;
      }
      case EV_CLOCK:
        this.invoke(p!, fireClock, ev.a);
        return;
      case EV_SLEEP:
        assert(p!.refTimers > 0, 'Machine.dispatch: a pending sleep is counted');
        p!.refTimers--;
        this.log(p!, 'wake', '');
        (ev.a as () => void)();
        return;
      case EV_SIGNAL:
        deliverSignal(this, p!, ev.b as number);
        return;
      case EV_FLUSH:
        this.flush(ev.a as Proc);
        return;
      case EV_HOST: {
        const h = ev.a as HostWork;
        assert(h.proc === p && h.settled && p.hostWork > 0, 'Machine.dispatch: settled work of its process, counted until now');
        p!.hostWork--;
        this.log(p!, 'host-done', `${h.id} ${h.ok ? 'ok' : 'error'}`);
        if (h.ok) h.resolve(h.value);
        else h.reject(h.value);
        return;
      }
      case EV_CHAN:
        deliverChannel(this, ev.a as ChanEnd);
        return;
      case EV_CHAN_SELF:
        fire(this, ev.a as ChanEnd);
        return;
      case EV_STREAM:
        deliverStream(this, ev.a as Endpoint);
        return;
      case EV_WINDOW:
        windowOpen(this, ev.a as Endpoint);
        return;
      case EV_ARRIVE:
        arrive(this, ev.a as Endpoint, ev.b as Addr);
        return;
      case EV_ACCEPT:
        acceptConn(this, ev.a as ListenerHandle, ev.b as Endpoint | null);
        return;
      case EV_IDLE:
        idleDue(this, ev.a as Endpoint);
        return;
      case EV_PIPE:
        deliverPipe(this, ev.a as Pipe);
        return;
      case EV_EPIPE:
        brokenPipe(this, p!, ev.a as Pipe);
        return;
      case EV_CHECK:
        p!.checkQueued = false;
        this.log(p!, 'check', '');
        return;
      default:
        throw new Error(`unknown event kind ${ev.kind}`);
    }
  }

  private start(p: Proc): void {
    // EV_START runs once, for a spawned process whose program has not run.
    assert(p.programPending && p.fn !== null, 'Machine.start: a program not started yet');
    assert(p !== this.init && p.runnable, 'Machine.start: a runnable process other than init');
    this.log(p, 'start', p.args.length === 0 ? p.program : `${p.program} ${p.args.join(' ')}`);
    let r: unknown;
    try {
      r = p.fn!(p.os, p.args);
    } catch (err) {
      p.programPending = false;
      this.fault(p, err);
      return;
    }
    if (r !== null && typeof r === 'object' && typeof (r as PromiseLike<unknown>).then === 'function') {
      (r as PromiseLike<unknown>).then(p.onProgramDone, p.onProgramFail);
    } else {
      p.programPending = false;
    }
  }

  /** Arm the kernel events of app clocks that changed, in pid order: some changed during host work, in host order (app-clock.ts). */
  private armClocks(): void {
    const list = this.clocks;
    // Only with no host work pending: what host work changed is armed in pid order once it is all back.
    assert(this.hosts.length === 0, 'Machine.armClocks: no host work pending');
    if (list.length > 1) list.sort(byPid);
    for (let i = 0; i < list.length; i++) {
      const c = list[i]!;
      c.arm();
      // Armed (or dropped): no longer waiting, so the list is cleared without losing a change.
      assert(!c.queued, 'Machine.armClocks: an armed clock waits no more');
    }
    list.length = 0;
  }

  /** Natural exits: every process touched since the last check that holds nothing. */
  private settle(): void {
    const list = this.dirty;
    for (let i = 0; i < list.length; i++) {
      const p = list[i]!;
      // Listed once while dirty (touch() lists only a clean one).
      assert(p.dirty, 'Machine.settle: a listed process is dirty');
      p.dirty = false;
      if (!p.runnable || p === this.init || holds(p)) continue;
      if (p.busyUntil > this.now) {
        // Its burn is not over; whatever arrives meanwhile may give it work.
        if (!p.checkQueued) {
          p.checkQueued = true;
          this.at(p.busyUntil, EV_CHECK, p, null, null);
        }
        continue;
      }
      this.log(p, 'idle', '');
      // 0, or its process.exitCode, after its app code's 'exit' listeners (app-globals.ts).
      const code = naturalExit(p.clock);
      if (p.runnable) die(this, p, code, null);
      assert(!p.runnable, 'Machine.settle: an idle process exits');
    }
    list.length = 0;
  }
}

function fireClock(c: AppClock): void {
  // Run as its process's code (Machine.invoke), for its own clock's EV_CLOCK, popped just now.
  assert(c.p.runnable, 'fireClock: the clock of a runnable process');
  assert(c.ev !== null && c.ev.kind === EV_CLOCK && c.ev.idx === -1, 'fireClock: the clock fires for its own popped event');
  c.fire();
  // The event is used up; the run loop arms the next one (armClocks).
  assert(c.ev === null, 'fireClock: firing consumes the event');
}

function byPid(a: AppClock, b: AppClock): number {
  // One clock per process, listed once (AppClock.queued): two entries never share a pid.
  assert(a === b || a.p.pid !== b.p.pid, 'byPid: one clock per process');
  assert(a.queued && b.queued, 'byPid: only clocks waiting to be armed are sorted');
  return a.p.pid - b.p.pid;
}
