// Virtual time for app code: each simulated process's timers and clocks, as
// the globals of app-globals.ts hand them to whatever code runs on its behalf.
//
// A process's timers live in a clock of @sinonjs/fake-timers, made the first
// time the process sets one: it keeps them with Node's rules (Timeout
// objects with ref/unref/refresh, ids, intervals, immediates ahead of
// timeouts due at once, clearTimeout of an interval). Its time is not its
// own: its `now` reads the kernel's clock for the process (Machine.local, so
// the end of a burn counts) and it is never ticked. The kernel fires the
// timers: the first one's due time is a kernel event of the process
// (EV_CLOCK) that runs that one timer, as a Node loop runs microtasks
// between two timers; the next gets an event of its own. So timers fire in
// virtual time and in the kernel's order (two processes' timers due at once
// in the order the seed picks), and die with their process, whose events the
// kernel drops. Date and performance.now read the same clock.
//
// When an event is armed must not depend on the host's timing. App code also
// runs while host work is pending (a module's top level runs during its
// import, in host time), and an event scheduled then would draw from the
// kernel's generator at a moment no seed decides. So a change only queues
// the clock, and the run loop arms the queued ones, in pid order, when no
// host work is pending (Machine.run); the kernel's clock does not move while
// some is, so no timer is late for it (an immediate due now waits until the
// host work is handed back, at the same virtual time). Whether the clock
// holds its process alive (a ref'd timer, as in Node) is kept current at once.
//
// Each clock has timer ids of its own, so neither an app nor the trace sees
// what other processes, or earlier runs in the host, did. One difference from
// Node remains: an immediate set in a timer's callback runs before another
// timer due in the same millisecond (Node runs all due timers first).
//
// The clock also holds what app code's `process` is for its process
// (app-globals.ts makes each on first use): the listeners of its signals and
// of 'exit', process.exitCode, its process.env, stdout, stderr and console.
// A signal's kernel handler (processes.ts `handlers`) is the Os's handler
// alone (Os.onSignal) while app code listens to none; with app listeners it
// runs the Os's handler, then the listeners, in the order they were added;
// when the last goes, the Os's handler, or the default action, is back.
import type { Hooks } from '../os/hooks.js';
import { assert } from '../os/assert.js';
import type { EventEmitter } from 'node:events';
import { SIGNALS, type Signal } from '../os/types.js';
import { EPOCH_MS, delay } from './os.js';
import type { Machine } from './machine.js';
import { ExitSignal, type Proc } from './processes.js';
import { EV_CLOCK, EV_NONE, type Ev } from './scheduler.js';
import { onSignal, signalIndex, SIGKILL_INDEX } from './signals.js';
import { OWNER, fakeClock, runningClock } from './app-globals.js';
import { Rng } from './random.js';

type Fn = (...args: unknown[]) => unknown;

/** Xored into a process's seed for its app's stream: any fixed 64-bit constant. */
const APP_STREAM = 0x6a09e667f3bcc908n;

/** The timer object fake-timers hands out (Node's Timeout or Immediate, as far as apps use one). */
export interface Handle {
  refed: boolean;
  ref(): Handle;
  unref(): Handle;
  hasRef(): boolean;
  refresh(): Handle;
  [OWNER]?: AppClock;
}

/** fake-timers' own record of a timer. Its map and heap are internals of v15, read here and nowhere else. */
interface Rec {
  id: number;
  callAt: number;
  type: string;
  interval?: number;
  handle?: Handle;
}

type Fake = { now: number; timers?: Map<number, Rec>; timerHeap?: { peek(): Rec | undefined }; next(): number }
  & Record<'setTimeout' | 'setInterval' | 'setImmediate', (fn: Fn, ...rest: unknown[]) => Handle>
  & Record<'clearTimeout' | 'clearImmediate', (id: number) => void>;

/** fake-timers' ids start there; a host timer's are small. */
const FIRST_ID = 1e12;

function noop(): void {}

function ref(this: Handle): Handle {
  const c = this[OWNER];
  assert(c !== undefined, 'ref: only a handle an app clock adopted has this ref()');
  assert(Number(this) >= FIRST_ID, "ref: an app timer's id is from fake-timers' range");
  this.refed = true;
  c.recount();
  return this;
}

function unref(this: Handle): Handle {
  const c = this[OWNER];
  assert(c !== undefined, 'unref: only a handle an app clock adopted has this unref()');
  assert(Number(this) >= FIRST_ID, "unref: an app timer's id is from fake-timers' range");
  this.refed = false;
  c.recount();
  return this;
}

export class AppClock {
  /** The kernel event for the first timer's due time, if armed. */
  ev: Ev | null = null;
  private evAt = -1;
  /** A ref'd timer is pending: the process's loop is not empty (processes.ts holds()). */
  held = false;
  /** Waiting in Machine.clocks to be armed. */
  queued = false;
  private fake: Fake | null = null;
  private readonly origin: number;

  // What app code's `process` is for this process (app-globals.ts), each made on first use.
  /** Listeners of its signals and of 'exit'. */
  events: EventEmitter | null = null;
  /** process.exitCode as the process last left it (app-globals.ts swaps it in and out). */
  exitCode: unknown = undefined;
  /** Its 'exit' listeners ran (or it exited without any): once per process, as in Node. */
  exitEmitted = false;
  /** process.env: a copy of the process's environment that it may change. */
  env: Record<string, string> | null = null;
  /** process.stdout, process.stderr and console. */
  stdout: unknown = null;
  stderr: unknown = null;
  console: unknown = null;
  /** The Os's own signal handlers, kept apart from p.handlers once app code listens to a signal. */
  private osHandlers: Array<(() => void) | null> | null = null;
  /** Math.random and crypto's random functions for this process's app code (app-globals.ts, "random"), made on first use. */
  private appRng: Rng | null = null;
  private dispatchers: Array<() => unknown> | null = null;

  constructor(
    private readonly m: Machine,
    readonly p: Proc,
  ) {
    // Machine.addProc makes one per process, when the process enters the table.
    assert(p.clock === undefined, 'AppClock: one clock per process');
    assert(p.runnable, 'AppClock: made for a new process');
    this.origin = m.now;
  }

  /**
   * The app's random numbers: a stream of their own, seeded from the
   * process's (forked from the kernel's at spawn) without drawing from it,
   * so an app that draws more or fewer shifts none of drover's draws.
   */
  appRandom(): Rng {
    this.appRng ??= new Rng(this.p.rng.seed ^ APP_STREAM);
    // Its own stream, never the process's (which drover's own draws use).
    assert(this.appRng !== this.p.rng, 'app clock: the app draws from the process\'s own stream');
    return this.appRng;
  }

  /** Its kernel's hooks (KernelOptions.hooks). */
  get hooks(): Hooks {
    return this.m.hooks;
  }

  /**
   * An uncaught error in code run on the process's behalf outside the
   * kernel's calls (a tick, a microtask, an unhandled rejection and its
   * promise): it crashes, unless its app code listens for it (Machine.fault).
   */
  /** App code called process.exit(`code`) at `site` (net-guard.ts, callSite): kept for the run to report. */
  appExit(code: number, site: string): void {
    assert(this.p.runnable, 'appExit: a process still running calls exit');
    assert(site !== '', 'appExit: the call names its place');
    this.m.faults.exits.push({ at: this.m.now, pid: this.p.pid, program: this.p.program, code, site });
  }

  crash(err: unknown, rejection = false, promise?: unknown): void {
    const listens = this.events !== null && (this.events.listenerCount('uncaughtException') > 0 || (rejection && this.events.listenerCount('unhandledRejection') > 0));
    this.m.fault(this.p, err, rejection, promise);
    // ExitSignal is how a process that exited unwinds; any other error ends it (now, or at the end of its burn), unless a listener took it.
    assert(err instanceof ExitSignal || listens || !this.p.runnable, 'crash: a crashed process runs no more code');
  }

  /** process.hrtime(): virtual nanoseconds on the machine's monotonic clock (since the kernel started). */
  nanos(): number {
    const t = this.m.local(this.p);
    assert(t >= 0 && t !== Infinity, 'nanos: virtual time is finite and not negative');
    return Math.round(t * 1e6);
  }

  /** Os.onSignal (os.ts): the Os's handler of `sig`, alone or ahead of app code's listeners. */
  osSignal(sig: Signal, fn: (() => void) | null): void {
    assert(this.p.runnable, 'osSignal: only a live process sets its handlers (Os.onSignal checks)');
    const os = this.osHandlers;
    if (os === null) {
      // Dispatchers come only after the Os's handlers were kept apart (appSignal).
      assert(this.dispatchers === null, 'osSignal: no dispatcher while app code never listened to a signal');
      onSignal(this.m, this.p, sig, fn);
      return;
    }
    const i = signalIndex(sig);
    if (i === SIGKILL_INDEX) onSignal(this.m, this.p, sig, fn); // throws EINVAL
    assert(i !== SIGKILL_INDEX, 'osSignal: onSignal throws for SIGKILL');
    os[i] = fn;
    this.appSignal(i);
    // The kernel's handler is the Os's own, or the dispatcher that runs it first.
    assert(this.p.handlers[i] === fn || this.p.handlers[i] === this.dispatchers?.[i], 'osSignal: the kernel runs the Os handler just set');
  }

  /** App code's listeners of signal `i` came or went (app-globals.ts): set the kernel's handler to match. */
  appSignal(i: number): void {
    assert(i >= 0 && i < SIGNALS.length, 'appSignal: a signal index');
    const p = this.p;
    if (!p.runnable) return;
    const os = (this.osHandlers ??= p.handlers.slice());
    const name = SIGNALS[i]!;
    const ev = this.events;
    const want = ev !== null && ev.listenerCount(name) > 0 ? (this.dispatcher(i) as () => void) : os[i]!;
    if (p.handlers[i] !== want) onSignal(this.m, p, name, want);
    assert(p.handlers[i] === want, "appSignal: the kernel's handler matches the app's listeners");
  }

  /** The kernel's handler of signal `i` while app code listens to it: the Os's handler, then the listeners, as Node emits a signal. */
  private dispatcher(i: number): () => unknown {
    // Made once app code listens to signal `i`, after appSignal kept the Os's handlers apart.
    assert(this.osHandlers !== null, "dispatcher: the Os's handlers are kept apart");
    assert(this.events !== null, 'dispatcher: only for app listeners');
    const all = (this.dispatchers ??= []);
    return (all[i] ??= () => {
      // Run as the kernel's handler of `i` (deliverSignal reads it at delivery).
      assert(this.p.handlers[i] === all[i], "dispatcher: runs as the kernel's handler of its signal");
      const name = SIGNALS[i]!;
      const os = this.osHandlers![i];
      const r = os === null || os === undefined ? undefined : (os as () => unknown)();
      if (this.p.runnable) this.events!.emit(name, name);
      // A once() listener is gone now.
      this.appSignal(i);
      return r;
    });
  }

  /** Date.now(): the kernel's epoch plus the process's virtual time. */
  wallTime(): number {
    const t = this.m.local(this.p);
    assert(t >= 0, 'wallTime: virtual time does not go before the epoch');
    return EPOCH_MS + t;
  }

  /** performance.now(): virtual milliseconds since the process was spawned. */
  perfNow(): number {
    const t = this.m.local(this.p) - this.origin;
    // The kernel's clock never goes back, and the process's never lags it.
    assert(t >= 0, 'perfNow: no earlier than the spawn');
    return t;
  }

  timeout(fn: Fn, ms: unknown, args: unknown[], repeat: boolean): Handle {
    assert(runningClock() === this, "timeout: set by the code of the clock's own process");
    const f = this.clock();
    // Node's rule, not fake-timers' (which takes 0 as 0): below 1 ms, or not a number, is 1 ms.
    const d = delay(ms as number);
    // fake-timers would make 0 due at once (an immediate's place) and more than 2^31-1 ms 1 ms.
    assert(d >= 1 && d <= 2147483647, "timeout: a delay within Node's bounds");
    const h = this.adopt(f, repeat ? f.setInterval(fn, d, ...args) : f.setTimeout(fn, d, ...args));
    const r = f.timers!.get(Number(h))!;
    // clearTimeout and clearInterval clear either, but fire() repeats only an interval.
    assert((r.type === 'Interval') === repeat, 'timeout: an interval exactly when it repeats');
    // fake-timers drops a fraction of a millisecond (parseInt).
    assert(r.callAt === this.m.local(this.p) + Math.floor(d), "timeout: due `d` ms after the process's now");
    return h;
  }

  immediate(fn: Fn, args: unknown[]): Handle {
    assert(runningClock() === this, "immediate: set by the code of the clock's own process");
    const f = this.clock();
    const h = this.adopt(f, f.setImmediate(fn, ...args));
    assert(f.timers!.get(Number(h))!.callAt === this.m.local(this.p), "immediate: due at the process's now");
    return h;
  }

  clear(h: Handle, immediate: boolean): void {
    // A timer is cleared by the clock that made it (app-globals.ts simClear).
    assert(h[OWNER] === this, 'clear: by the clock that adopted the handle');
    const id = Number(h);
    assert(id >= FIRST_ID, "clear: an app timer's id is from fake-timers' range");
    this.clearId(id, immediate);
  }

  /** Node: clearTimeout and clearInterval clear either; neither clears an immediate, nor clearImmediate a timeout. */
  clearId(id: number, immediate: boolean): void {
    // Smaller ids are the host's (app-globals.ts simClear).
    assert(id >= FIRST_ID, "clearId: an id from fake-timers' range");
    const f = this.fake;
    const r = f?.timers?.get(id);
    if (f === null || r === undefined || (r.type === 'Immediate') !== immediate) return;
    if (immediate) f.clearImmediate(id);
    else f.clearTimeout(id);
    assert(!f.timers!.has(id), 'clearId: a cleared timer is gone');
    this.recount();
    this.changed();
  }

  /** EV_CLOCK: run the first timer if it is due (a cleared one may have left its event behind). */
  fire(): void {
    // It runs as its armed event: a cancelled one is never dispatched (EV_NONE, or out of the queue).
    const ev = this.ev;
    assert(ev !== null && ev.kind === EV_CLOCK && ev.a === this, 'fire: only from its armed EV_CLOCK');
    // The kernel dispatches a process's event only while it runs and is not in a burn.
    assert(this.p.runnable && this.m.local(this.p) === this.m.now, 'fire: its process runs, at the kernel\'s now');
    this.ev = null;
    this.evAt = -1;
    this.changed();
    const f = this.fake;
    const r = f?.timerHeap?.peek();
    if (f === null || r === undefined || r.callAt > this.m.local(this.p)) return;
    // Else f.next() would skip it and run nothing, and the event would come back at once, forever.
    assert(f.timers!.get(r.id) === r, "fire: the heap's first timer is pending");
    assert((r.type === 'Interval') === (r.interval !== undefined), 'fire: only an interval repeats');
    this.m.log(this.p, 'app-timer', `${r.type} ${r.id - FIRST_ID}`);
    const once = r.interval === undefined;
    try {
      f.next();
    } finally {
      if (once) this.recount();
    }
  }

  /** Arm the event for the first timer, or drop it when there is none or the process will not run again (Machine.run). */
  arm(): void {
    // Machine.armClocks arms only the clocks changed() queued.
    assert(this.queued, 'arm: only a queued clock');
    this.queued = false;
    const r = this.p.runnable ? this.fake?.timerHeap?.peek() : undefined;
    if (r === undefined) {
      this.cancel();
      return;
    }
    const at = r.callAt > this.m.now ? r.callAt : this.m.now;
    const ev = this.ev;
    if (ev !== null && this.evAt === at) {
      // Kept: still this clock's (a pooled event released elsewhere would have been cleared here: Machine.discard).
      assert(ev.kind === EV_CLOCK && ev.a === this && ev.proc === this.p, 'arm: a kept event is still this clock\'s');
      // Due when armed or, postponed past a burn (EventQueue.postpone), later.
      assert(ev.time >= at, 'arm: a kept event is due no earlier than it was armed for');
      return;
    }
    this.cancel();
    this.evAt = at;
    this.ev = this.m.at(at, EV_CLOCK, this.p, this, null);
    assert(at >= r.callAt && at >= this.m.now, 'arm: the event is due no earlier than the first timer, and never in the past');
  }

  /** The process died: its timers never fire. */
  kill(): void {
    // processes.ts die(): the process is a zombie already.
    assert(!this.p.runnable, 'kill: only when the process is dead');
    this.cancel();
    this.held = false;
    assert(this.ev === null, 'kill: a dead process has no clock event');
  }

  changed(): void {
    assert(this.fake !== null, 'changed: only a clock that has made timers changes');
    assert(this.p.clock === this, "changed: the clock is its process's");
    if (!this.queued) {
      this.queued = true;
      this.m.clocks.push(this);
    }
  }

  recount(): void {
    const was = this.held;
    let held = false;
    const timers = this.fake?.timers;
    if (timers !== undefined) {
      for (const r of timers.values()) {
        // Every timer is adopted as soon as it is made (timeout, immediate), before anything recounts.
        assert(r.handle !== undefined, 'recount: every timer has its adopted handle');
        if (r.handle === undefined || r.handle.refed) {
          held = true;
          break;
        }
      }
    }
    this.held = held;
    // Its lifetime is checked again: a loop with nothing left ends.
    if (was && !held) this.m.touch(this.p);
  }

  private adopt(f: Fake, h: Handle): Handle {
    assert(h[OWNER] === undefined, 'adopt: a new handle, adopted once');
    const r = f.timers?.get(Number(h));
    assert(r !== undefined && r.handle === undefined, "adopt: the new handle's timer is pending and has no handle yet");
    // simClear tells an app timer from a host's by this (app-globals.ts).
    assert(r.id >= FIRST_ID, "adopt: an app timer's id is from fake-timers' range");
    // Set in the process's now: due then (an immediate) or later, never before.
    assert(r.callAt >= this.m.local(this.p), "adopt: a new timer is not due before its process's now");
    h[OWNER] = this;
    h.ref = ref;
    h.unref = unref;
    const refresh = h.refresh;
    h.refresh = function (this: Handle): Handle {
      refresh.call(this); // which may bring back a timer that already fired
      const c = this[OWNER];
      assert(c !== undefined, 'refresh: only a handle an app clock adopted has this refresh()');
      assert(f.timers!.has(Number(this)), 'refresh: the timer is pending again');
      c.recount();
      assert(c.held || !this.refed, 'refresh: a pending ref\'d timer holds its process');
      c.changed();
      return this;
    };
    r.handle = h;
    this.held = true;
    this.changed();
    return h;
  }

  private cancel(): void {
    const ev = this.ev;
    if (ev === null) return;
    // Still its own: whoever dropped it (Machine.discard, fire) cleared this.ev.
    assert(ev.kind === EV_CLOCK && ev.a === this, "cancel: the event is still this clock's");
    this.ev = null;
    this.evAt = -1;
    if (ev.idx >= 0) {
      this.m.queue.remove(ev);
      this.m.queue.release(ev);
    } else {
      // Popped and waiting in the process's ready list: the list releases it.
      ev.kind = EV_NONE;
    }
    assert(this.ev === null && this.evAt === -1, 'cancel: no event armed');
  }

  private clock(): Fake {
    let f = this.fake;
    if (f === null) {
      f = fakeClock() as Fake;
      const m = this.m;
      const p = this.p;
      // Due times are in the process's virtual time; fake-timers sets `now` when it fires a timer, which changes nothing here.
      Object.defineProperty(f, 'now', { get: () => m.local(p), set: noop, configurable: true });
      // Nor is it ever "during a tick": fake-timers would then put an immediate set in a timer's callback 1 ms later, where Node runs it before the next timer.
      Object.defineProperty(f, 'duringTick', { get: () => false, set: noop, configurable: true });
      assert(f.now === m.local(p), "clock: fake-timers' now is the process's clock");
      assert(f.timers === undefined || f.timers.size === 0, 'clock: a new clock has no timers');
      this.fake = f;
    }
    return f;
  }
}
