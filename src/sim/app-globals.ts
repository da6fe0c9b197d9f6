// The one place where the simulator touches the host's globals (the layer
// rule, test/layers.test.ts, exempts this file and no other). All simulated
// processes share one host, so app code that calls setTimeout, Date.now() or
// performance.now() directly would run on the host's clock. Instead, while
// the kernel runs code on behalf of a simulated process, the globals below
// are the simulator's; whenever no simulated process runs, they are the
// host's own objects again (vitest, the harness and host work use those).
//
// Which process runs: `current`. The kernel sets it around each event it
// dispatches (Machine.batch). Code a callback starts but that runs after it
// returns keeps its process:
// - promise continuations: a V8 promise hook tags each promise created while
//   a process runs, and its reactions run as that process (the context is
//   where .then or await was called, as with AsyncLocalStorage, for about a
//   third of its overhead on Node 20); the hook is on only while a kernel runs;
// - process.nextTick and queueMicrotask (Node's streams emit most events from
//   a tick): the process's versions of these carry it over to the callback.
// Host timers, I/O callbacks and the run loop are never tagged: they run as
// the host, with the host's globals.
//
// The simulator's globals are the same functions for every process: each
// asks `current` which process's clock (app-clock.ts, @sinonjs/fake-timers)
// to use, so a function captured by a module that every worker shares
// (module instances are per host, not per simulated process) still follows
// the process that calls it. Switching between processes writes nothing;
// switching between a process and the host writes the ten globals.
//
// A module's top level runs once per host, as its first importer (in that
// process's time, during the import: app-clock.ts says why that replays);
// what it starts there belongs to that process.
//
// Not covered: code that captured the host's setTimeout (or Date) before the
// simulator took over, node:timers and node:timers/promises, process.hrtime,
// performance.timeOrigin. A Date made by `new Date()` in a process has
// Date.prototype, so instanceof works, but its constructor is the host's Date.
import { promisify } from 'node:util';
import { promiseHooks } from 'node:v8';
import FakeTimers from '@sinonjs/fake-timers';
import type { AppClock, Handle } from './app-clock.js';

/** On each timer a simulated process made: its clock. */
export const OWNER = Symbol('drover.sim.clock');

type Fn = (...args: unknown[]) => unknown;
type Slot = Record<string, unknown>;

const G = globalThis as unknown as Slot;
const perf = performance;

// The host's own, taken when the simulator is loaded, before any simulated process ran.
const host = {
  setTimeout: globalThis.setTimeout as unknown as Fn,
  clearTimeout: globalThis.clearTimeout as unknown as Fn,
  setInterval: globalThis.setInterval as unknown as Fn,
  clearInterval: globalThis.clearInterval as unknown as Fn,
  setImmediate: globalThis.setImmediate as unknown as Fn,
  clearImmediate: globalThis.clearImmediate as unknown as Fn,
  queueMicrotask: globalThis.queueMicrotask as unknown as Fn,
  Date: globalThis.Date,
  nextTick: process.nextTick as unknown as Fn,
  perfNow: perf.now,
};
const HostDate = host.Date;

// A stand-in for a global object, for fake-timers: a clock made with it never
// calls or installs a host timer (withGlobal probes setTimeout once, to learn
// that Node's timers are objects). Without `process`, `performance` and
// `Intl` a clock skips what this does not use.
const STAND_IN = {
  setTimeout: () => ({}),
  clearTimeout() {},
  setInterval() {},
  clearInterval() {},
  setImmediate() {},
  clearImmediate() {},
  Date: HostDate,
};

/** A fake-timers clock with timer ids of its own: a process's ids do not depend on what other processes (or runs) did. */
export function fakeClock(): unknown {
  return FakeTimers.withGlobal(STAND_IN).createClock(0);
}

let current: AppClock | null = null;
let installed = false;

function install(): void {
  installed = true;
  G.setTimeout = simSetTimeout;
  G.clearTimeout = simClearTimeout;
  G.setInterval = simSetInterval;
  G.clearInterval = simClearTimeout;
  G.setImmediate = simSetImmediate;
  G.clearImmediate = simClearImmediate;
  G.queueMicrotask = simQueueMicrotask;
  G.Date = SimDate;
  process.nextTick = simNextTick as typeof process.nextTick;
  perf.now = simPerfNow;
}

function uninstall(): void {
  installed = false;
  G.setTimeout = host.setTimeout;
  G.clearTimeout = host.clearTimeout;
  G.setInterval = host.setInterval;
  G.clearInterval = host.clearInterval;
  G.setImmediate = host.setImmediate;
  G.clearImmediate = host.clearImmediate;
  G.queueMicrotask = host.queueMicrotask;
  G.Date = HostDate;
  process.nextTick = host.nextTick as typeof process.nextTick;
  perf.now = host.perfNow;
}

/** Code runs on behalf of `c`'s process from now on; null: kernel code, which reads no globals, so they stay as they are. */
export function actAs(c: AppClock | null): void {
  current = c;
  if (c !== null && !installed) install();
}

/** Nothing simulated runs any more: the host's globals go back. */
export function hostAgain(): void {
  current = null;
  if (installed) uninstall();
}

function switchTo(c: AppClock | null): void {
  if (c === null) hostAgain();
  else actAs(c);
}

/** Whose code runs now (for tests). */
export function runningClock(): AppClock | null {
  return current;
}

// ------------------------------------------------------------ continuations

const TAG = Symbol('drover.sim.process');
type Tagged = Promise<unknown> & { [TAG]?: AppClock };
let outer: AppClock | null = null;

const hooks = {
  init(promise: Tagged): void {
    if (current !== null) promise[TAG] = current;
  },
  before(promise: Tagged): void {
    const c = promise[TAG];
    if (c !== undefined) {
      outer = current;
      actAs(c);
    }
  },
  after(promise: Tagged): void {
    if (promise[TAG] !== undefined) switchTo(outer);
  },
};

let runs = 0;
let stopHooks: (() => void) | null = null;

/**
 * A kernel starts running: tag promises from now on. The hook costs every
 * promise of the host a call or two, so it is on only while some kernel runs.
 */
export function runStarted(): void {
  if (runs++ === 0) stopHooks = promiseHooks.createHook(hooks as Parameters<typeof promiseHooks.createHook>[0]) as () => void;
}

export function runEnded(): void {
  hostAgain();
  if (--runs === 0 && stopHooks !== null) {
    stopHooks();
    stopHooks = null;
  }
}

function runAs(c: AppClock, fn: Fn, args: unknown[]): unknown {
  const saved = current;
  actAs(c);
  try {
    return Reflect.apply(fn, undefined, args);
  } finally {
    switchTo(saved);
  }
}

function simNextTick(fn: Fn, ...args: unknown[]): void {
  const c = current;
  // Not a function: let Node's throw its own error.
  if (c === null || typeof fn !== 'function') host.nextTick(fn, ...args);
  else host.nextTick(runAs, c, fn, args);
}

function simQueueMicrotask(fn: Fn): void {
  const c = current;
  if (c === null || typeof fn !== 'function') host.queueMicrotask(fn);
  else host.queueMicrotask(() => runAs(c, fn, []));
}

// -------------------------------------------------------- timers and clocks
// Called with no process running only when some code kept one of these and
// calls it from host code: then they are the host's.

function simSetTimeout(fn: Fn, ms?: unknown, ...args: unknown[]): unknown {
  const c = current;
  return c === null ? host.setTimeout(fn, ms, ...args) : c.timeout(fn, ms, args, false);
}

function simSetInterval(fn: Fn, ms?: unknown, ...args: unknown[]): unknown {
  const c = current;
  return c === null ? host.setInterval(fn, ms, ...args) : c.timeout(fn, ms, args, true);
}

function simSetImmediate(fn: Fn, ...args: unknown[]): unknown {
  const c = current;
  return c === null ? host.setImmediate(fn, ...args) : c.immediate(fn, args);
}

// A timer is cleared by the clock that made it, whoever clears it; a bare
// number from fake-timers' range (1e12 up, app-clock.ts FIRST_ID) by the running process's clock.
function simClear(t: unknown, immediate: boolean): void {
  if (t === null || t === undefined) return;
  const owner = typeof t === 'object' ? (t as Handle)[OWNER] : undefined;
  if (owner !== undefined) owner.clear(t as Handle, immediate);
  else if (typeof t === 'object' || !(Number(t) >= 1e12)) (immediate ? host.clearImmediate : host.clearTimeout)(t);
  else if (current !== null) current.clearId(Number(t), immediate);
}

function simClearTimeout(t: unknown): void {
  simClear(t, false);
}

function simClearImmediate(t: unknown): void {
  simClear(t, true);
}

// Node's rule for util.promisify(setTimeout) and util.promisify(setImmediate).
Object.defineProperty(simSetTimeout, promisify.custom, {
  value: (ms?: number, value?: unknown) => new Promise((resolve) => simSetTimeout(resolve, ms, value)),
});
Object.defineProperty(simSetImmediate, promisify.custom, {
  value: (value?: unknown) => new Promise((resolve) => simSetImmediate(resolve, value)),
});

function simPerfNow(this: unknown): number {
  const c = current;
  return c === null ? host.perfNow.call(perf) : c.perfNow();
}

/**
 * Date whose "now" is the running process's: `new Date()`, `Date()` and
 * `Date.now()`. Its prototype is Date's, so instanceof, subclasses and dates
 * made elsewhere all work; with arguments it is Date.
 */
function SimDate(this: unknown, ...args: unknown[]): unknown {
  const c = current;
  if (new.target === undefined) return c === null ? HostDate() : new HostDate(c.wallTime()).toString();
  return Reflect.construct(HostDate, c !== null && args.length === 0 ? [c.wallTime()] : args, new.target);
}
SimDate.prototype = HostDate.prototype;
SimDate.now = (): number => (current === null ? HostDate.now() : current.wallTime());
SimDate.parse = HostDate.parse;
SimDate.UTC = HostDate.UTC;
Object.defineProperty(SimDate, 'name', { value: 'Date' });
Object.defineProperty(SimDate, 'length', { value: 7 });
