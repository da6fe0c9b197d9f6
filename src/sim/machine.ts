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
// in the trace does not depend on how long the host took.

import { posix } from 'node:path';
import type { Volume } from 'memfs';
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
import { ExitSignal, Proc, REAPED, RUNNING, ZOMBIE, die, holds, terminate } from './processes.js';
import { deliverSignal, signalName, signalTarget } from './signals.js';
import { closeOut, deliverChannel, fire, sendOut as sendMessage, type ChanEnd } from './channels.js';
import { Net, acceptConn, arrive, deliverStream, dial, idleDue, releaseDeadStreams, windowOpen, sendOut as sendItem, type Endpoint, type ListenerHandle, type SimStream } from './sockets.js';
import { Effect, FX_CHAN, FX_CHAN_CLOSE, FX_CONNECT, FX_EXIT, FX_KILL, FX_PIPE, FX_START, FX_STREAM } from './effects.js';
import { brokenPipe, deliverPipe, pipeOut, type Pipe } from './pipes.js';
import { Fifo } from './fifo.js';
import { FdTable, SINK_STDERR, SINK_STDOUT, Sink, createVolume, emit, resolvePath } from './files.js';
import { SimOs, type SimTimer } from './os.js';
import { AppClock } from './app-clock.js';
import { actAs, exiting, hostAgain, naturalExit, runEnded, runStarted } from './app-globals.js';
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

  constructor(
    readonly id: number,
    readonly proc: Proc,
  ) {}

  settle(ok: boolean, value: unknown): void {
    this.settled = true;
    this.ok = ok;
    this.value = value;
    const wake = this.wake;
    if (wake !== null) {
      this.wake = null;
      wake();
    }
  }
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
  readonly output = { stdout: '', stderr: '' };
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
    private readonly drain: () => Promise<void>,
    mounts: Readonly<Record<string, string>>,
    faults: FaultOptions = {},
    /** Modules under a mount: one instance per importing process (KernelOptions.isolate). */
    readonly isolate = false,
    /** Every process's Os.hooks (KernelOptions.hooks). */
    readonly hooks: Hooks = NO_HOOKS,
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
  }

  // ------------------------------------------------------------ helpers

  /** A process's clock: the kernel's, or the end of its burn if that is later. */
  local(p: Proc): number {
    return p.busyUntil > this.now ? p.busyUntil : this.now;
  }

  /** Seeded delivery latency of channels and streams, 0 or 1 ms. */
  latency(): number {
    return this.rng.u32() & 1;
  }

  log(p: Proc, kind: string, detail: string): void {
    this.trace.add(`${this.nowText} ${p.pid} ${kind} ${detail}`);
  }

  /** Check `p`'s lifetime after the next drain. */
  touch(p: Proc): void {
    if (!p.dirty) {
      p.dirty = true;
      this.dirty.push(p);
    }
  }

  at(time: number, kind: number, proc: Proc | null, a: unknown, b: unknown): Ev {
    return this.queue.schedule(time, kind, proc, a, b);
  }

  /** Whether `p`'s effects on others must wait: its clock is ahead (a burn), or earlier ones still wait. */
  deferring(p: Proc): boolean {
    return p.busyUntil > this.now || p.effects.length > 0;
  }

  /** Queue an effect of `p` for when its clock says (effects.ts). */
  defer(p: Proc, kind: number, a: unknown, b: unknown): void {
    const at = this.local(p);
    p.effects.push(new Effect(at, kind, a, b));
    if (p.flushEv === null) p.flushEv = this.queue.schedule(at, EV_FLUSH, null, p, null);
  }

  /** Os.hostWork: the clock stands still until `work` settles and its result is handed back (see the run loop). */
  hostWork<T>(p: Proc, work: Promise<T>): Promise<T> {
    const h = new HostWork(++this.hostIds, p);
    p.hostWork++;
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
    return promise;
  }

  resolve(cwd: string, path: string): string {
    return resolvePath(cwd, path);
  }

  newFdTable(): FdTable {
    return new FdTable();
  }

  addProc(p: Proc): void {
    p.os ??= new FaultyOs(this, p);
    p.clock ??= new AppClock(this, p);
    this.procs.set(p.pid, p);
    this.changes++;
    let g = this.groups.get(p.pgid);
    if (g === undefined) this.groups.set(p.pgid, (g = new Set()));
    g.add(p);
  }

  removeProc(p: Proc): void {
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
    try {
      const r = (fn as (arg: unknown) => unknown)(arg);
      if (r !== null && typeof r === 'object' && typeof (r as PromiseLike<unknown>).then === 'function') {
        (r as PromiseLike<unknown>).then(undefined, p.onReject);
      }
    } catch (err) {
      this.fault(p, err);
    }
  }

  /** An uncaught error (or, `rejection`, a rejection nobody handled) in process code: the process writes it to its stderr and exits 1, as Node does. */
  fault(p: Proc, err: unknown, rejection = false): void {
    if (err instanceof ExitSignal || !p.runnable) return;
    const text = err instanceof Error ? (err.stack ?? `${err.name}: ${err.message}`) : `Uncaught ${String(err)}`;
    const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    this.log(p, 'crash', message);
    this.faults.crashes.push({ at: this.now, pid: p.pid, program: p.program, message, rejection });
    emit(this, p, p.stderr, text + '\n');
    // App code's 'exit' listeners, as Node runs them after an uncaught exception (app-globals.ts).
    exiting(p.clock, 1, true);
    terminate(this, p, 1);
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
              if (!h.settled) await new Promise<void>((wake) => (h.wake = wake));
              if (this.hosts.peek() === h && h.proc.runnable) {
                this.hosts.shift();
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
        await this.drain();
        if (this.deadStreams.length > 0) releaseDeadStreams(this);
      }
    } finally {
      this.running = false;
      runEnded();
      if (this.deadStreams.length > 0) releaseDeadStreams(this);
    }
  }

  /** The host path behind a simulated module path: the longest mount that holds it, else the path itself. */
  /** The mount that holds an absolute, normalised simulated path (the longest), as [simulated dir, host dir]. */
  mountOf(path: string): readonly [string, string] | null {
    let best: readonly [string, string] | null = null;
    for (const m of this.mountList) {
      if ((best === null || m[0].length > best[0].length) && (path === m[0] || path.startsWith(m[0] === '/' ? '/' : `${m[0]}/`))) best = m;
    }
    return best;
  }

  dispose(): void {
    if (this.running) throw new Error('Kernel.dispose: a run is in progress');
    this.disposed = true;
    for (const p of this.procs.values()) for (const ep of p.endpoints) this.deadStreams.push(ep.stream);
    releaseDeadStreams(this);
  }

  private setNow(t: number): void {
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
    return n;
  }

  /** Run the first runnable event of `p`'s ready list; what remains stays listed (or follows a burn). */
  private runReady(p: Proc, id: number, limit: number): number {
    const fifo = p.ready;
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

  /** The oldest host work whose process can still take it; that of processes that died (or stopped, or are exiting) is let go. */
  private hostHead(): HostWork | undefined {
    const hosts = this.hosts;
    for (let h = hosts.peek(); h !== undefined; h = hosts.peek()) {
      if (h.proc.runnable) return h;
      hosts.shift();
      this.log(h.proc, 'host-drop', String(h.id));
    }
    return undefined;
  }

  /** EV_FLUSH: `p`'s deferred effects whose time has come go out, in order (effects.ts). */
  private flush(p: Proc): void {
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
    this.log(p, 'flush', String(n));
    this.touch(p);
  }

  private apply(p: Proc, e: Effect): void {
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
    const q = this.queue;
    for (;;) {
      const ev = q.peek();
      if (ev === undefined || this.target(ev) !== DISCARD) return ev;
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
    if (kind === EV_NONE) return DISCARD;
    const p = kind === EV_STREAM || kind === EV_WINDOW ? (ev.a as Endpoint).owner : ev.proc;
    if (p === null || p.runnable) return p;
    if (kind === EV_ACCEPT) return null;
    if ((kind === EV_STREAM || kind === EV_CHAN) && (p.state === ZOMBIE || p.state === REAPED)) return null;
    return DISCARD;
  }

  private discard(ev: Ev): void {
    if (ev.kind === EV_TIMER) (ev.a as SimTimer).ev = null;
    else if (ev.kind === EV_CLOCK) (ev.a as AppClock).ev = null;
    else if (ev.kind === EV_IDLE) (ev.a as Endpoint).idleEv = null;
    this.queue.release(ev);
  }

  private dispatch(ev: Ev, p: Proc | null): void {
    switch (ev.kind) {
      case EV_START:
        this.start(p!);
        return;
      case EV_TIMER: {
        const t = ev.a as SimTimer;
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
    if (list.length > 1) list.sort(byPid);
    for (let i = 0; i < list.length; i++) list[i]!.arm();
    list.length = 0;
  }

  /** Natural exits: every process touched since the last check that holds nothing. */
  private settle(): void {
    const list = this.dirty;
    for (let i = 0; i < list.length; i++) {
      const p = list[i]!;
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
    }
    list.length = 0;
  }
}

function fireClock(c: AppClock): void {
  c.fire();
}

function byPid(a: AppClock, b: AppClock): number {
  return a.p.pid - b.p.pid;
}
