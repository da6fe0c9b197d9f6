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
// Errors: a throw from a tick or microtask the process queued, and a
// rejection of one of its (tagged) promises that nobody handles, crash that
// process (Machine.fault), as they crash a Node 20 process with its default
// --unhandled-rejections=throw, unless its app code listens for them
// (process.on('uncaughtException' | 'unhandledRejection'): `uncaught`), when
// the process lives on as Node's does; the host never sees them. For the rejections,
// while a kernel runs this module holds the host's 'unhandledRejection' event
// alone: the host's own listeners are set aside and get the host's own
// (untagged) rejections from it, as they would without it; with none, it
// throws, which Node makes an uncaughtException as it would have. A listener
// added while a run is under way is the host's as usual, but sees a process's
// rejection too (after the process crashed).
//
// The network outside drover (net-guard.ts) is guarded while a kernel runs,
// and Math.random and crypto's random functions are the process's own
// seeded streams (the section "random" below).
//
// `process` and `console` (the section "process" below): app code sees its
// own simulated process. process.pid, ppid and env, stdout, stderr, exit,
// exitCode, kill, hrtime, uptime, and process.on & co. for signals and
// 'exit', are the process's; `console` writes to its stdout and stderr.
// Other events, and everything else on `process`, are the host's.
//
// Not covered: code that captured the host's setTimeout (or Date, console,
// process.exit...) before the simulator took over, node:timers and
// node:timers/promises, performance.timeOrigin. A Date made by `new Date()`
// in a process has Date.prototype, so instanceof works, but its constructor
// is the host's Date.
import type { Hooks } from '../os/hooks.js';
import { Console } from 'node:console';
import cryptoModule from 'node:crypto';
import { syncBuiltinESMExports } from 'node:module';
import { EventEmitter } from 'node:events';
import { constants } from 'node:os';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { promiseHooks } from 'node:v8';
import FakeTimers from '@sinonjs/fake-timers';
import { assert, AssertionError } from '../os/assert.js';
import { OsError, SIGNALS, type Signal } from '../os/types.js';
import type { AppClock, Handle } from './app-clock.js';
import { callSite, guardNet, unguardNet } from './net-guard.js';
import { ExitSignal } from './processes.js';
import type { Rng } from './random.js';

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
  setTimeout: (fn: unknown, ms: unknown) => {
    assert(typeof fn === 'function' && ms === 0, "STAND_IN.setTimeout: only withGlobal's probe, (noop, 0)");
    return {};
  },
  clearTimeout(t: unknown) {
    assert(t !== null && typeof t === 'object', "STAND_IN.clearTimeout: only the probe's timer is cleared");
  },
  setInterval() {
    assert(false, 'STAND_IN.setInterval: a clock made with the stand-in calls no host timer');
  },
  clearInterval() {
    assert(false, 'STAND_IN.clearInterval: a clock made with the stand-in calls no host timer');
  },
  setImmediate() {
    assert(false, 'STAND_IN.setImmediate: a clock made with the stand-in calls no host timer (it is never ticked async)');
  },
  clearImmediate() {
    assert(false, 'STAND_IN.clearImmediate: a clock made with the stand-in calls no host timer');
  },
  Date: HostDate,
};

/** A fake-timers clock with timer ids of its own: a process's ids do not depend on what other processes (or runs) did. */
export function fakeClock(): unknown {
  const clock = FakeTimers.withGlobal(STAND_IN).createClock(0) as unknown as { now: number; timers?: unknown };
  assert(clock.now === 0 && clock.timers === undefined, 'fakeClock: a fresh clock, at 0, with no timer yet');
  // app-clock.ts makes it lazily, as the process's code sets its first timer.
  assert(current !== null, 'fakeClock: made while a process runs');
  return clock;
}

let current: AppClock | null = null;
let installed = false;

// The host's console, process.exit, kill, hrtime, uptime and exitCode, as they were when the process's went in.
let hostConsole = G.console;
let hostExit = process.exit as unknown as Fn;
let hostKill = process.kill as unknown as Fn;
let hostHrtime = process.hrtime as unknown as Fn;
let hostUptime = process.uptime as unknown as Fn;
let hostExitCode: typeof process.exitCode = undefined;

function install(): void {
  // actAs calls it just before a process starts running. What is kept as the host's must not be
  // ours: the host's console would then be simConsole, which calls the host's. (The globals that
  // go back from `host` may be ours meanwhile: vitest puts back a process.nextTick it saw in a
  // process's time a tick later, which the comment on the timers below allows.)
  assert(!installed && current === null, 'install: once, before a process runs');
  assert(G.console !== simConsole && process.exit !== (simExit as unknown), "install: the host's console and exit are the host's");
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
  hostConsole = G.console;
  G.console = simConsole;
  const P = process as unknown as Slot;
  hostExit = P.exit as Fn;
  P.exit = simExit;
  hostKill = P.kill as Fn;
  P.kill = simKill;
  hostHrtime = P.hrtime as Fn;
  P.hrtime = simHrtime;
  hostUptime = P.uptime as Fn;
  P.uptime = simUptime;
  // Not configurable: the value goes in and out instead (enter, leave).
  hostExitCode = process.exitCode;
  if (hostExitCode !== undefined) process.exitCode = undefined;
  assert(process.exitCode === undefined, "install: the host's exitCode is out of the way");
}

function uninstall(): void {
  assert(installed && current === null, "uninstall: the host's globals go back only when no process runs");
  assert(hostConsole !== simConsole && hostExit !== (simExit as unknown), "uninstall: what goes back is the host's");
  // leave() took the last process's value out: the host's comes back alone.
  assert(process.exitCode === undefined, 'uninstall: no process\'s exitCode is left in');
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
  G.console = hostConsole;
  const P = process as unknown as Slot;
  P.exit = hostExit;
  P.kill = hostKill;
  P.hrtime = hostHrtime;
  P.uptime = hostUptime;
  if (hostExitCode !== undefined) process.exitCode = hostExitCode;
  assert(process.exitCode === hostExitCode, "uninstall: the host's exitCode is back as it was");
}

/** `c` runs: its process.exitCode goes in (it is almost always unset). */
function enter(c: AppClock): void {
  assert(current === c && installed, 'enter: c runs, with the simulator\'s globals in');
  assert(process.exitCode === undefined, "enter: no other process's exitCode is in");
  if (c.exitCode !== undefined) process.exitCode = c.exitCode as NodeJS.Process['exitCode'];
  assert(process.exitCode === c.exitCode, "enter: c's exitCode is in");
}

/** `c` stops running: what its code left in process.exitCode is its. */
function leave(c: AppClock): void {
  assert(current !== c, 'leave: current has moved on from c');
  assert(installed, 'leave: c ran, so its globals were in');
  const v = process.exitCode;
  if (v !== undefined) {
    c.exitCode = v;
    process.exitCode = undefined;
  } else if (c.exitCode !== undefined) {
    c.exitCode = undefined;
  }
  assert(process.exitCode === undefined, "leave: c's exitCode is out");
}

/** Code runs on behalf of `c`'s process from now on; null: kernel code, which reads no globals, so they stay as they are. */
export function actAs(c: AppClock | null): void {
  assert(current === null || installed, "actAs: a process runs only with the simulator's globals in");
  assert(c === null || c.p.clock === c, "actAs: a clock is its process's (Machine.addProc)");
  const was = current;
  if (c === was) return;
  // From the host (was === null: nothing to leave): the globals go in before anything changes.
  if (c !== null) {
    if (!installed) install();
    // vitest puts back, a tick later, a process.nextTick it took aside (install() says so): the
    // globals stay in from one host turn to the next, so ours is put back as a process runs.
    else if (process.nextTick !== (simNextTick as unknown)) process.nextTick = simNextTick as typeof process.nextTick;
  }
  current = c;
  if (was !== null) leave(was);
  if (c !== null) enter(c);
  assert(c === null || installed, "actAs: the simulator's globals are in while c runs");
}

/**
 * No simulated process runs any more. The simulator's globals stay in, each
 * the host's own while none runs, until the host's turn (hostTurn): writing
 * the ten globals out and back in at each switch from the host (the end of
 * each batch, of each tagged reaction) was a twentieth of a run.
 */
export function hostAgain(): void {
  assert(current === null || installed, "hostAgain: a process runs only with the simulator's globals in");
  // Inside a tagged reaction, `after` switches back to its outer; nothing else goes back to the host meanwhile.
  assert(outer === undefined, 'hostAgain: not inside the reaction of a tagged promise');
  const was = current;
  current = null;
  if (was !== null) leave(was);
  assert(current === null && process.exitCode === undefined, "hostAgain: no process runs, and none's exitCode is left in");
}

/**
 * The host's own code may run now (a turn of its event loop, host work, the
 * end of a run): the host's globals go back.
 */
export function hostTurn(): void {
  assert(current === null && outer === undefined, 'hostTurn: no process runs, and no reaction is under way');
  if (installed) uninstall();
  assert(!installed, "hostTurn: the host's globals are in");
}

function switchTo(c: AppClock | null): void {
  if (c === null) hostAgain();
  else actAs(c);
  assert(current === c, 'switchTo: c runs now');
  assert(c !== null || outer === undefined, 'switchTo: back to the host only at the end of a reaction');
}

/** Whose code runs now (for tests). */
export function runningClock(): AppClock | null {
  assert(current === null || installed, "runningClock: a process runs only with the simulator's globals in");
  assert(current === null || current.p.clock === current, "runningClock: the running clock is its process's");
  return current;
}

/**
 * The hooks of the kernel whose process runs now (null: none runs). For
 * harness code that runs inside a simulated process without an Os of its
 * own, as the chaos apps: each kernel's run hears only its own.
 */
export function runningHooks(): Hooks | null {
  assert(current === null || installed, "runningHooks: a process runs only with the simulator's globals in");
  assert(current === null || current.p.clock === current, "runningHooks: the running clock is its process's");
  return current === null ? null : current.hooks;
}

/** Host I/O that app code started (net-guard.ts): the running process's Os.hostWork, so the kernel waits for it. */
function runningHostWork(work: Promise<unknown>): Promise<unknown> {
  const c = current;
  assert(c !== null && installed, 'runningHostWork: only a simulated process\'s call is waited for');
  assert(c.p.os !== undefined, 'runningHostWork: the process has its Os');
  return c.p.os.hostWork(work);
}

/** The host I/O the running process's import under way waits for (SimOs.importModule); null: none is under way. */
function runningLoadIo(): Promise<unknown>[] | null {
  const c = current;
  assert(c !== null && installed, "runningLoadIo: only a simulated process's call is asked about");
  assert(c.p.loading >= 0, 'runningLoadIo: pending imports count, never negative');
  return c.p.loading > 0 ? c.p.loadIo : null;
}

/** The running process, whose host descriptors net-guard.ts keeps (letGoHostFds closes them as it dies). */
function runningProc(): object {
  const c = current;
  assert(c !== null && installed, "runningProc: only a simulated process's call is asked about");
  assert(c.p.clock === c, "runningProc: the running clock is its process's");
  return c.p;
}

/** Some simulated process's code runs now (not the kernel's, not the host's). */
export function simulatedProcessRunning(): boolean {
  assert(current === null || installed, "simulatedProcessRunning: a process runs only with the simulator's globals in");
  assert(current === null || current.p.clock === current, "simulatedProcessRunning: the running clock is its process's");
  return current !== null;
}

// ------------------------------------------------------------ continuations

const TAG = Symbol('drover.sim.process');
type Tagged = Promise<unknown> & { [TAG]?: AppClock };
/** Whom a tagged promise's reaction switched from (null: the host); undefined: no such reaction is under way. */
let outer: AppClock | null | undefined = undefined;

// One `outer`, not a stack: the reactions of tagged promises do not nest (each
// runs from the microtask queue and switches back before the next).
const hooks = {
  settled(promise: Tagged): void {
    assert(runs > 0, 'settled: the hook is on only while some kernel runs');
    assert(current === null || installed, "settled: a process runs only with the simulator's globals in");
    // Only a process's rejections are the simulation's business (onRejection); the host's own may wait for a later report.
    if (current !== null || promise[TAG] !== undefined) mayReject = true;
  },
  init(promise: Tagged): void {
    assert(runs > 0, 'init: the hook is on only while some kernel runs');
    assert(current === null || installed, "init: a process runs only with the simulator's globals in");
    if (current !== null) promise[TAG] = current;
  },
  before(promise: Tagged): void {
    assert(runs > 0, 'before: the hook is on only while some kernel runs');
    ran++;
    const c = promise[TAG];
    if (c !== undefined) {
      assert(outer === undefined, 'before: the reactions of tagged promises do not nest');
      outer = current;
      actAs(c);
    }
  },
  after(promise: Tagged): void {
    assert(runs > 0, 'after: the hook is on only while some kernel runs');
    const c = promise[TAG];
    if (c !== undefined) {
      // Whatever the reaction switched to (a tick, an 'exit' listener), it switched back.
      assert(current === c, 'after: the reaction ran as its process to its end');
      assert(outer !== undefined, 'after: the reaction began in before');
      const to = outer;
      outer = undefined;
      switchTo(to);
    }
  },
};

let runs = 0;
let stopHooks: (() => void) | null = null;

/**
 * A kernel starts running: tag promises from now on. The hook costs every
 * promise of the host a call or two, so it is on only while some kernel runs.
 * Unhandled rejections and the network are guarded as long.
 */
export function runStarted(): void {
  if (runs !== 0) {
    runs++;
    return;
  }
  // The last run gave back all it took, and left the host's globals in.
  assert(stopHooks === null && hostListeners.length === 0 && hostProps.size === 0 && hostMethods.size === 0, 'runStarted: the last run gave back all it took');
  assert(!installed && current === null && outer === undefined, "runStarted: no process runs between runs, and the host's globals are in");
  runs = 1;
  stopHooks = promiseHooks.createHook(hooks as Parameters<typeof promiseHooks.createHook>[0]) as () => void;
  takeRejections();
  takeProcess();
  guardNet(simulatedProcessRunning, runningHostWork, runningLoadIo, runningProc);
  seedRandom();
}

export function runEnded(): void {
  assert(runs > 0, 'runEnded: after its runStarted');
  hostAgain();
  hostTurn();
  if (--runs !== 0) return;
  assert(stopHooks !== null, 'runEnded: the first run set the hook');
  stopHooks?.();
  stopHooks = null;
  giveBackProcess();
  giveBackRejections();
  unguardNet();
  unseedRandom();
  assert(!installed && current === null && outer === undefined, 'runEnded: the last run leaves no process running and no reaction under way');
}

/** A tick or microtask of `c`'s process: what it throws crashes that process, as an uncaught exception does. */
function runAs(c: AppClock, fn: Fn, args: unknown[]): unknown {
  // simNextTick and simQueueMicrotask hand what is not a function to Node's own, which throws at the call.
  assert(typeof fn === 'function', 'runAs: a callback');
  ran++;
  const saved = current;
  actAs(c);
  try {
    return Reflect.apply(fn, undefined, args);
  } catch (err) {
    // Nothing that switched inside fn (a tick, an 'exit' listener) was left switched.
    assert(current === c, 'runAs: the callback ran as c to its throw');
    c.crash(err);
    return undefined;
  } finally {
    switchTo(saved);
  }
}

// ------------------------------------------------------------------ drain

/** Ticks, microtasks and promise reactions run while some kernel runs (those `settled` can see). */
let ran = 0;

/**
 * The kernel's drain between two batches (Machine.run), without a turn of
 * the host's event loop: what a batch started — ticks, microtasks, the
 * reactions of promises — runs now, and the next batch starts when a round
 * saw none of it run. A round queues a tick, which runs after every tick
 * queued before it and those they queue (Node runs all ticks before any
 * microtask), and that tick queues a promise reaction, which runs after every
 * microtask queued before it. If nothing counted ran between a round's start
 * and its end, nothing was left queued: what is queued runs in the round.
 * Counted: every promise reaction (the hook), and every tick and microtask
 * queued through the simulator's globals. Not counted: a tick queued with
 * the host's own process.nextTick while no process runs, and Node's internal
 * queueMicrotask; what one of those starts is counted when it runs, so only a
 * chain of two of them in a row can outlast the drain, and then it runs in the
 * next batch's drain, the same way on every run.
 *
 * Then the rejections nobody handled: Node reports them when its tick queue
 * is empty after the microtasks, which the rounds never leave it. If a
 * process's promise settled since the last report (the hook's `settled`;
 * only Node knows whether it was a rejection that nobody handles), a
 * rejected promise of our own, KNOCK (its reason the drain's Knock), goes
 * last: Node reports those before it to onRejection (a process's crash, as
 * before), and KNOCK ends the drain. Otherwise the drain ends at once.
 * A turn of the event loop (setImmediate) cost a poll of the host's I/O per
 * batch: a third of a run's wall time.
 */
export function settled(): Promise<void> {
  assert(runs > 0, 'settled: between the batches of a run');
  assert(current === null && outer === undefined, 'settled: after a batch, with no process running');
  // No closures: tsx names each one it makes (esbuild's keepNames), which cost more than the rest.
  return new Promise<void>((done) => host.nextTick(round, new Knock(done)));
}

/** A round begins (a tick): its end is a reaction, which runs after the microtasks queued before it. */
function round(k: Knock): void {
  assert(current === null, 'settled: a round starts as the host');
  assert(runs > 0, 'settled: a round runs while its kernel runs');
  k.seen = ran;
  void Promise.resolve(k).then(check);
}

/** A round ends: if nothing but itself ran (its own reaction counts one), the drain is over but for KNOCK. */
function check(k: Knock): void {
  // A round's reaction runs from the queue's top, as the host.
  assert(current === null && outer === undefined, 'settled: a round ends as the host, inside no reaction');
  assert(ran > k.seen, 'settled: the count only goes up, and counts this reaction');
  if (ran !== k.seen + 1) host.nextTick(round, k);
  else if (!mayReject) k.done();
  else {
    mayReject = false;
    void Promise.reject(k);
  }
}

/** A process's promise settled since the last KNOCK: it may be a rejection nobody handles, which only Node can tell. */
let mayReject = false;

/** A drain under way (settled); as the reason of KNOCK, the end of its drain (two kernels in one host drain side by side). */
class Knock {
  seen = 0;
  constructor(readonly done: () => void) {
    assert(typeof done === 'function', 'Knock: the end of a drain');
    assert(runs > 0, 'Knock: made while some kernel runs');
  }
}

// ------------------------------------------------------ unhandled rejections

// Whether the host's rejections nobody handles are thrown: Node 20's default
// (throw) and strict do; warn, warn-with-error-code and none do not (their
// warning is not reproduced).
const HOST_THROWS = !/--unhandled-rejections[= ](warn|none)/.test(`${process.execArgv.join(' ')} ${process.env.NODE_OPTIONS ?? ''}`);
let hostListeners: Fn[] = [];

function takeRejections(): void {
  assert(runs === 1 && current === null, 'takeRejections: as the first run starts, before any process runs');
  assert(hostListeners.length === 0, "takeRejections: the last run gave the host's listeners back");
  hostListeners = process.rawListeners('unhandledRejection') as Fn[];
  process.removeAllListeners('unhandledRejection');
  process.on('unhandledRejection', onRejection);
  assert(process.listenerCount('unhandledRejection') === 1, 'takeRejections: onRejection listens alone');
}

function giveBackRejections(): void {
  assert(runs === 0, 'giveBackRejections: as the last run ends');
  assert(current === null && !installed, "giveBackRejections: no process runs, and the host's globals are in");
  process.removeListener('unhandledRejection', onRejection);
  // In front of any added during the run, in their old order.
  for (let i = hostListeners.length - 1; i >= 0; i--) process.prependListener('unhandledRejection', hostListeners[i]!);
  const now = process.rawListeners('unhandledRejection');
  assert(hostListeners.every((l, i) => now[i] === l), "giveBackRejections: the host's listeners are back in front, in their old order");
  hostListeners = [];
}

function onRejection(reason: unknown, promise: Tagged): void {
  assert(runs > 0, 'onRejection: it listens only while some kernel runs');
  if (reason instanceof Knock) {
    // The last rejection of its drain (settled): those before it were reported.
    reason.done();
    return;
  }
  // Node reports rejections from its run loop, which runs as the host.
  assert(current === null, 'onRejection: reported with no simulated process running');
  const c = promise[TAG];
  if (c !== undefined) {
    assert(c.p.clock === c, "onRejection: a promise is tagged with its process's clock");
    c.crash(reason, true, promise);
    return;
  }
  if (hostListeners.length === 0) {
    // Node calls the listeners added during the run itself; only with none at all would it have thrown.
    if (HOST_THROWS && process.listenerCount('unhandledRejection') === 1) throw thrown(reason);
    return;
  }
  for (const l of hostListeners.slice()) {
    // A once() wrapper: it has fired, so it is gone.
    if ('listener' in l) hostListeners.splice(hostListeners.indexOf(l), 1);
    Reflect.apply(l, process, [reason, promise]);
  }
}

/** What Node throws for an unhandled rejection: the reason if error-like (it has a stack of its own), else an error that names it. */
function thrown(reason: unknown): unknown {
  assert(runs > 0, 'thrown: for onRejection, which listens only while some kernel runs');
  if (reason !== null && typeof reason === 'object' && Object.hasOwn(reason, 'stack')) return reason;
  // V8's side-effect-free string of the reason, near enough.
  const text = reason !== null && (typeof reason === 'object' || typeof reason === 'function')
    ? `#<${(reason as { constructor?: { name?: string } }).constructor?.name ?? 'Object'}>`
    : String(reason);
  const err = new Error(
    'This error originated either by throwing inside of an async function without a catch block, or by rejecting a promise which was not handled with .catch(). ' +
      `The promise rejected with the reason "${text}".`,
  ) as Error & { code: string };
  err.name = 'UnhandledPromiseRejection';
  err.code = 'ERR_UNHANDLED_REJECTION';
  // Error-like: thrown() of it is itself.
  assert(Object.hasOwn(err, 'stack'), 'thrown: what is thrown has a stack of its own');
  return err;
}

function simNextTick(fn: Fn, ...args: unknown[]): void {
  const c = current;
  assert(c === null || installed, "simNextTick: a process runs only with the simulator's globals in");
  assert(c === null || c.p.clock === c, "simNextTick: the running clock is its process's");
  // Not a function: let Node's throw its own error.
  if (typeof fn !== 'function') host.nextTick(fn, ...args);
  else if (c === null) host.nextTick(hostTick, fn, args);
  else host.nextTick(runAs, c, fn, args);
}

/** A tick the host's code queued while the simulator's globals were in: counted for `settled`, run as the host's. */
function hostTick(fn: Fn, args: unknown[]): unknown {
  // Also after the last run, when vitest put simNextTick back (install() says how).
  assert(typeof fn === 'function', 'hostTick: simNextTick hands Node what is not a function');
  assert(current === null || installed, "hostTick: a process runs only with the simulator's globals in");
  ran++;
  return Reflect.apply(fn, undefined, args);
}

function simQueueMicrotask(fn: Fn): void {
  const c = current;
  assert(c === null || installed, "simQueueMicrotask: a process runs only with the simulator's globals in");
  assert(c === null || c.p.clock === c, "simQueueMicrotask: the running clock is its process's");
  if (c === null || typeof fn !== 'function') host.queueMicrotask(fn);
  else host.queueMicrotask(() => runAs(c, fn, []));
}

// -------------------------------------------------------- timers and clocks
// Called with no process running only when some code kept one of these and
// calls it from host code: then they are the host's.

function simSetTimeout(fn: Fn, ms?: unknown, ...args: unknown[]): unknown {
  const c = current;
  assert(c === null || installed, "simSetTimeout: a process runs only with the simulator's globals in");
  if (c === null) return host.setTimeout(fn, ms, ...args);
  const h = c.timeout(fn, ms, args, false);
  // simClear routes a clear to the clock that made the timer, whichever process clears it.
  assert(h[OWNER] === c, "simSetTimeout: the timer is its process's clock's");
  return h;
}

function simSetInterval(fn: Fn, ms?: unknown, ...args: unknown[]): unknown {
  const c = current;
  assert(c === null || installed, "simSetInterval: a process runs only with the simulator's globals in");
  if (c === null) return host.setInterval(fn, ms, ...args);
  const h = c.timeout(fn, ms, args, true);
  // simClear routes a clear to the clock that made the timer, whichever process clears it.
  assert(h[OWNER] === c, "simSetInterval: the timer is its process's clock's");
  return h;
}

function simSetImmediate(fn: Fn, ...args: unknown[]): unknown {
  const c = current;
  assert(c === null || installed, "simSetImmediate: a process runs only with the simulator's globals in");
  if (c === null) return host.setImmediate(fn, ...args);
  const h = c.immediate(fn, args);
  // simClear routes a clear to the clock that made the timer, whichever process clears it.
  assert(h[OWNER] === c, "simSetImmediate: the timer is its process's clock's");
  return h;
}

// A timer is cleared by the clock that made it, whoever clears it; a bare
// number from fake-timers' range (1e12 up, app-clock.ts FIRST_ID) by the running process's clock.
function simClear(t: unknown, immediate: boolean): void {
  assert(current === null || installed, "simClear: a process runs only with the simulator's globals in");
  if (t === null || t === undefined) return;
  const owner = typeof t === 'object' ? (t as Handle)[OWNER] : undefined;
  assert(owner === undefined || owner.p.clock === owner, "simClear: a timer's owner is its process's clock");
  if (owner !== undefined) owner.clear(t as Handle, immediate);
  else if (typeof t === 'object' || !(Number(t) >= 1e12)) (immediate ? host.clearImmediate : host.clearTimeout)(t);
  else if (current !== null) current.clearId(Number(t), immediate);
}

function simClearTimeout(t: unknown): void {
  assert(current === null || installed, "simClearTimeout: a process runs only with the simulator's globals in");
  simClear(t, false);
}

function simClearImmediate(t: unknown): void {
  assert(current === null || installed, "simClearImmediate: a process runs only with the simulator's globals in");
  simClear(t, true);
}

// Node's rule for util.promisify(setTimeout) and util.promisify(setImmediate).
// While a kernel runs, the hook tags the promise (init) as it is made: its reactions run as that process.
Object.defineProperty(simSetTimeout, promisify.custom, {
  value: (ms?: number, value?: unknown) => {
    const p: Tagged = new Promise((resolve) => simSetTimeout(resolve, ms, value));
    assert(current === null || runs === 0 || p[TAG] === current, "promisify(setTimeout): the promise is the running process's");
    return p;
  },
});
Object.defineProperty(simSetImmediate, promisify.custom, {
  value: (value?: unknown) => {
    const p: Tagged = new Promise((resolve) => simSetImmediate(resolve, value));
    assert(current === null || runs === 0 || p[TAG] === current, "promisify(setImmediate): the promise is the running process's");
    return p;
  },
});

function simPerfNow(this: unknown): number {
  const c = current;
  assert(c === null || installed, "simPerfNow: a process runs only with the simulator's globals in");
  if (c === null) return host.perfNow.call(perf);
  const t = c.perfNow();
  assert(t >= 0, "simPerfNow: a process's performance.now() counts from its spawn");
  return t;
}

/**
 * Date whose "now" is the running process's: `new Date()`, `Date()` and
 * `Date.now()`. Its prototype is Date's, so instanceof, subclasses and dates
 * made elsewhere all work; with arguments it is Date.
 */
function SimDate(this: unknown): unknown {
  const c = current;
  assert(c === null || installed, "SimDate: a process runs only with the simulator's globals in");
  assert(c === null || c.p.clock === c, "SimDate: the running clock is its process's");
  if (new.target === undefined) return c === null ? HostDate() : new HostDate(c.wallTime()).toString();
  // `new Date()` in a process, most of all memfs's stamps on every write and stat: no array, no
  // Reflect (the object is the same, its prototype Date's either way).
  if (new.target === SimDate && c !== null && arguments.length === 0) return new HostDate(c.wallTime());
  return Reflect.construct(HostDate, c !== null && arguments.length === 0 ? [c.wallTime()] : arguments, new.target);
}
SimDate.prototype = HostDate.prototype;
SimDate.now = (): number => {
  assert(current === null || installed, "Date.now: a process runs only with the simulator's globals in");
  assert(current === null || current.p.clock === current, "Date.now: the running clock is its process's");
  return current === null ? HostDate.now() : current.wallTime();
};
SimDate.parse = HostDate.parse;
SimDate.UTC = HostDate.UTC;
Object.defineProperty(SimDate, 'name', { value: 'Date' });
Object.defineProperty(SimDate, 'length', { value: 7 });

// ------------------------------------------------------------------ process
//
// What app code sees of `process` while its process runs:
// - pid, ppid: the simulated process's; env: a copy of its environment that
//   it may change (values become strings, as Node's do); what it changes is
//   not what its children get (Os.spawn gives them the Os's environment);
// - stdout, stderr: a Writable per process that writes to the process's
//   (the kernel's output); no fd, not a TTY. `console` is one object whose
//   methods use the running process's Console over those two, as Node's
//   global console is one over process.stdout and stderr (util.format, no
//   colours); node:console's export stays the host's console;
// - exit(code): the process exits (Os.exit: it unwinds with ExitSignal);
//   exitCode: the process's, honoured when it exits by exit() or as its
//   loop empties; kill(pid, sig): Os.kill (signal 0 checks the pid exists);
// - hrtime, hrtime.bigint: the machine's monotonic clock, virtual (since the
//   kernel started); uptime: seconds of virtual time since it was spawned;
// - on, once, addListener, prependListener, prependOnceListener, off,
//   removeListener, removeAllListeners, listeners, rawListeners and
//   listenerCount, for signal names and 'exit': the process's own emitter.
//   A signal the kernel simulates reaches its listeners (app-clock.ts: after
//   the Os's handler, if it has one); with none it takes its default action
//   again. Others (SIGPIPE...) are kept but never come. 'exit' listeners run
//   once, as in Node, when it exits by exit() (or Os.exit), by a crash, or
//   as its loop empties, not when a signal kills it. 'uncaughtException',
//   'unhandledRejection' and 'uncaughtExceptionMonitor' are the process's
//   too: its errors nobody caught go to them (uncaught). removeAllListeners()
//   with no event removes the process's own only. Every other event
//   ('warning', 'beforeExit', 'message'...) is the host's, and so is
//   everything else: argv, cwd(), title, memoryUsage(), emit(),
//   emitWarning()...
//
// How: console, exit, kill, hrtime and uptime are plain writes on each
// switch between the host and a process, as the globals above. pid, ppid,
// env, stdout and stderr must be getters that ask `current` (a switch
// between processes writes nothing), and turning a property of `process`
// into a getter and back (Object.defineProperty) costs 0.3 to 0.6 µs each;
// the event methods are inherited from EventEmitter.prototype, so swapping
// them would add and delete own properties. So those are replaced while a
// kernel runs, like the promise hook: each asks `current` and with no process
// running is the host's own (the same value, the same method), and after the
// last run their descriptors are exactly the host's again. exitCode cannot be
// replaced (Node makes it non-configurable): a process's value goes in when
// it starts running and out when it stops (enter, leave), and the host's is
// out of the way while any process runs.

const SIGNAL_NUMBERS = constants.signals as Readonly<Record<string, number>>;
/** Node's name for a signal number: the first of its aliases (SIGABRT, not SIGIOT). */
const SIGNAL_NAMES: string[] = [];
for (const [name, n] of Object.entries(SIGNAL_NUMBERS)) SIGNAL_NAMES[n] ??= name;
const SIM_SIGNALS = new Map<string, number>(SIGNALS.map((s, i) => [s, i]));
// ownEvent and simKill go by Node's names: each simulated signal is Node's name for its number.
assert(SIGNALS.every((s) => SIGNAL_NAMES[SIGNAL_NUMBERS[s] ?? -1] === s), "app-globals: each simulated signal is Node's name for its number");

/** The events of a process's errors nobody caught: its app code's listeners decide whether it lives on (uncaught). */
const ERROR_EVENTS: ReadonlySet<unknown> = new Set(['uncaughtException', 'unhandledRejection', 'uncaughtExceptionMonitor']);

/** An event of the process's own: a signal, 'exit', or one of its errors nobody caught. */
function ownEvent(type: unknown): type is string {
  return type === 'exit' || ERROR_EVENTS.has(type) || (typeof type === 'string' && type.startsWith('SIG') && Object.hasOwn(SIGNAL_NUMBERS, type));
}

/** The error libuv's call makes, as Node throws it. */
function uvError(syscall: string, code: string): Error {
  const errno = (constants.errno as Record<string, number>)[code];
  assert(errno !== undefined, 'uvError: an error code libuv knows');
  const err = new Error(`${syscall} ${code}`) as Error & { code: string; errno: number; syscall: string };
  err.code = code;
  err.errno = errno === undefined ? -1 : -errno;
  err.syscall = syscall;
  return err;
}

function typeError(code: string, message: string): TypeError {
  assert(code.startsWith('ERR_'), "typeError: one of Node's error codes");
  const err = new TypeError(message) as TypeError & { code: string };
  err.code = code;
  return err;
}

function eventsOf(c: AppClock): EventEmitter {
  assert(c === current, "eventsOf: only c's own code adds its listeners");
  assert(c.p.clock === c, "eventsOf: c is its process's clock");
  return (c.events ??= new EventEmitter());
}

/** Listeners of `type` came or went: a simulated signal's kernel handler follows (app-clock.ts). */
function listenersChanged(c: AppClock, type: string): void {
  assert(c === current, "listenersChanged: only c's own code changes its listeners");
  assert(ownEvent(type), "listenersChanged: one of the process's own events");
  const i = SIM_SIGNALS.get(type);
  if (i !== undefined) c.appSignal(i);
}

/** What Node's process.exit and the end of a loop exit with: process.exitCode, or 0. */
function exitStatus(v: unknown): number {
  // A process's exitCode went through Node's setter, which lets only integers (or their strings) in.
  assert(v === undefined || v === null || Number.isInteger(Number(v)), 'exitStatus: process.exitCode holds an integer');
  return v === undefined || v === null ? 0 : Number(v) | 0;
}

/**
 * `c`'s process exits (Os.exit, which process.exit calls; a crash; its loop
 * emptied): its app code's 'exit' listeners run, once, as that process,
 * with process.exitCode set to `code`, as Node runs them. Returns the code it
 * exits with: a listener may change process.exitCode. After a crash it exits
 * 1 whatever the listeners do, and what they throw is lost, as in Node.
 */
export function exiting(c: AppClock, code: number, crashed = false): number {
  // Os.exit, Machine.fault and the end of a loop call it only for a process still running.
  assert(c.p.runnable, "exiting: 'exit' listeners run only in a process that has not exited");
  assert(Number.isInteger(code), 'exiting: an integer exit code');
  assert(!crashed || code === 1 || code === 7, 'exiting: a crashed process exits 1 (7: its uncaughtException listener threw)');
  if (c.exitEmitted) return code;
  c.exitEmitted = true;
  const ev = c.events;
  if (ev === null || ev.listenerCount('exit') === 0) return code;
  const saved = current;
  actAs(c);
  let out = code;
  try {
    process.exitCode = code;
    ev.emit('exit', code);
  } catch (err) {
    if (!crashed) c.crash(err); // ExitSignal (process.exit in a listener) is no crash: the process has exited
  } finally {
    if (!crashed) out = exitStatus(process.exitCode);
    switchTo(saved);
  }
  return out;
}

/**
 * An error nobody caught in `c`'s process (Machine.fault: a throw from its
 * code, a rejection nobody handled): what Node does with it, given the app
 * code's listeners. A rejection goes to the 'unhandledRejection' listeners if
 * there are any; otherwise it is raised as an uncaught exception (origin
 * 'unhandledRejection'). An uncaught exception goes to the
 * 'uncaughtExceptionMonitor' listeners, then to the 'uncaughtException'
 * ones. Returns null when a listener took it (the process lives on, or a
 * listener exited it), else the error the process crashes with and its exit
 * code: 1, or 7 when a listener threw, as Node's. drover's own failed
 * assertions, and its own errors (`own`), are never handed to app code: a
 * broken invariant, or a crash of drover, is the run's to report.
 */
export function uncaught(c: AppClock, err: unknown, rejection: boolean, promise?: unknown, own = false): { err: unknown; code: number } | null {
  // Machine.fault calls it only for a live process, never for ExitSignal (the unwinding of one that exited).
  assert(c.p.runnable, 'uncaught: an error of a process still running');
  assert(!(err instanceof ExitSignal), 'uncaught: ExitSignal is no error');
  const ev = c.events;
  // drover's own errors (`own`: Machine.fault asked net-guard.ts, droverOwn) are not app code's either.
  if (ev === null || own || err instanceof AssertionError) return { err: rejection ? thrown(err) : err, code: 1 };
  const saved = current;
  actAs(c);
  try {
    if (rejection && ev.listenerCount('unhandledRejection') > 0) {
      let p = promise;
      if (p === undefined) {
        // A promise the kernel was handed (Machine.invoke) and found rejected: one like it, handled, so that nothing else reports it.
        p = Promise.reject(err);
        (p as Promise<unknown>).catch(() => {});
      }
      try {
        ev.emit('unhandledRejection', err, p);
        return null;
      } catch (e) {
        // Node: a throw from the listener is an uncaught exception.
        if (e instanceof ExitSignal) return null;
        return uncaughtException(c, ev, e, 'uncaughtException');
      }
    }
    return uncaughtException(c, ev, rejection ? thrown(err) : err, rejection ? 'unhandledRejection' : 'uncaughtException');
  } finally {
    switchTo(saved);
  }
}

function uncaughtException(c: AppClock, ev: EventEmitter, err: unknown, origin: string): { err: unknown; code: number } | null {
  assert(current === c, 'uncaughtException: its listeners run as their process');
  assert(origin === 'uncaughtException' || origin === 'unhandledRejection', "uncaughtException: one of Node's two origins");
  try {
    ev.emit('uncaughtExceptionMonitor', err, origin);
    if (ev.listenerCount('uncaughtException') === 0) return { err, code: 1 };
    ev.emit('uncaughtException', err, origin);
    return null;
  } catch (e) {
    // process.exit() in a listener: the process has exited, as it asked.
    if (e instanceof ExitSignal || !c.p.runnable) return null;
    return { err: e, code: 7 };
  }
}

/** `c`'s process's loop emptied: the code it exits with, after its 'exit' listeners. */
export function naturalExit(c: AppClock): number {
  // Machine.settle: it holds nothing any more, a ref'd timer included.
  assert(c.p.runnable, 'naturalExit: the loop of a running process emptied');
  assert(!c.held, "naturalExit: no ref'd timer is pending");
  return exiting(c, exitStatus(c === current ? process.exitCode : c.exitCode));
}

// ----- the process's stdout, stderr, console and env

function streamOf(c: AppClock, err: boolean): Writable {
  assert(c === current, "streamOf: only c's own code reaches its stdout and stderr");
  // Proc.os is set by Machine.addProc, before the process runs any code.
  assert(c.p.os !== undefined, 'streamOf: the process has its Os');
  const made = (err ? c.stderr : c.stdout) as Writable | null;
  if (made !== null) return made;
  const to = err ? c.p.os.stderr : c.p.os.stdout;
  const s = new Writable({
    decodeStrings: false,
    write(chunk: unknown, enc: BufferEncoding, done: (e?: Error | null) => void): void {
      // Not objectMode, and decodeStrings off: Writable hands over a string with its encoding, or bytes.
      assert(typeof chunk === 'string' || chunk instanceof Uint8Array, 'write: a string or bytes');
      assert(typeof chunk !== 'string' || Buffer.isEncoding(enc), "write: a string's encoding is one Buffer knows");
      to.write(typeof chunk === 'string'
        ? (enc === 'utf8' || enc === 'utf-8' ? chunk : Buffer.from(chunk, enc).toString())
        : Buffer.from(chunk as Uint8Array).toString());
      done();
    },
  });
  if (err) c.stderr = s;
  else c.stdout = s;
  return s;
}

type ConsoleLike = Record<string, unknown>;

function consoleOf(c: AppClock): ConsoleLike {
  assert(c === current, "consoleOf: only c's own code reaches its console");
  assert(c.p.clock === c, "consoleOf: c is its process's clock");
  return (c.console ??= new Console({ stdout: streamOf(c, false), stderr: streamOf(c, true) })) as ConsoleLike;
}

/** The global `console` while a process runs: each method is the running process's console's. */
const simConsole: ConsoleLike = {};
for (const key of new Set([...Object.getOwnPropertyNames(Console.prototype), ...Object.keys(G.console as object)])) {
  if (key === 'constructor' || key === 'Console') continue;
  simConsole[key] = {
    [key](...args: unknown[]): unknown {
      const c = current;
      assert(c === null || installed, "console: a process runs only with the simulator's globals in");
      // Else the host's console would be this one, and call itself.
      assert(c !== null || hostConsole !== simConsole, "console: the host's console is not the simulator's");
      const con = c === null ? (hostConsole as unknown as ConsoleLike) : consoleOf(c);
      const f = con[key];
      return typeof f === 'function' ? Reflect.apply(f, con, args) : undefined;
    },
  }[key];
}
simConsole.Console = Console;

const ENV: ProxyHandler<Record<string, string>> = {
  set(t, k, v) {
    // Node's process.env keeps strings.
    return Reflect.set(t, k, typeof k === 'string' ? String(v) : v);
  },
};

function envOf(c: AppClock): Record<string, string> {
  assert(c === current, "envOf: only c's own code reaches its process.env");
  assert(c.p.clock === c, "envOf: c is its process's clock");
  return (c.env ??= new Proxy({ ...c.p.env }, ENV));
}

// ----- exit, kill, hrtime, uptime: written on each switch

function simExit(this: unknown, code?: unknown): never {
  const c = current;
  assert(c === null || installed, "simExit: a process runs only with the simulator's globals in");
  assert(c === null || c.p.clock === c, "simExit: the running clock is its process's");
  if (c === null) return Reflect.apply(hostExit, this, code === undefined ? [] : [code]) as never;
  // Node's own validation, and the process's exitCode (the value is its while it runs).
  if (code !== undefined) process.exitCode = code as typeof process.exitCode;
  const status = exitStatus(process.exitCode);
  // The app's own call (not drover's): the run says who ended the process, and where.
  const site = callSite(simExit);
  if (site !== null && c.p.runnable) c.appExit(status, site);
  return c.p.os.exit(status);
}

function simKill(this: unknown, pid: unknown, sig: unknown = 'SIGTERM'): boolean {
  const c = current;
  assert(c === null || installed, "simKill: a process runs only with the simulator's globals in");
  if (c === null) return Reflect.apply(hostKill, this, [pid, sig]) as boolean;
  // Node's checks.
  // eslint-disable-next-line eqeqeq
  if (pid != ((pid as number) | 0)) throw typeError('ERR_INVALID_ARG_TYPE', `The "pid" argument must be of type number. Received ${String(pid)}`);
  const name = typeof sig === 'number' ? SIGNAL_NAMES[sig] : typeof sig === 'string' && Object.hasOwn(SIGNAL_NUMBERS, sig) ? sig : undefined;
  assert(typeof sig !== 'number' || name === undefined || SIGNAL_NUMBERS[name] === sig, "simKill: a signal number's name is that number's");
  if (sig !== 0 && name === undefined) throw typeError('ERR_UNKNOWN_SIGNAL', `Unknown signal: ${String(sig)}`);
  const os = c.p.os;
  const target = Number(pid);
  assert(Number.isInteger(target), 'simKill: the pid passed the check: an integer');
  if (sig === 0) {
    if (target > 0 && !os.alive(target)) throw uvError('kill', 'ESRCH');
    return true;
  }
  if (!SIM_SIGNALS.has(name!)) {
    const err = new Error(`drover sim: ${name!} is not simulated; the kernel sends ${SIGNALS.join(', ')}`) as Error & { code: string };
    err.code = 'ERR_DROVER_NOT_SIMULATED';
    throw err;
  }
  try {
    os.kill(target, name as Signal);
  } catch (err) {
    if (err instanceof OsError) throw uvError('kill', err.code);
    throw err;
  }
  return true;
}

function simHrtime(this: unknown, prev?: readonly [number, number]): [number, number] {
  const c = current;
  assert(c === null || installed, "simHrtime: a process runs only with the simulator's globals in");
  if (c === null) return Reflect.apply(hostHrtime, this, prev === undefined ? [] : [prev]) as [number, number];
  const ns = c.nanos();
  let s = Math.floor(ns / 1e9);
  let n = ns - s * 1e9;
  assert(Number.isInteger(ns) && ns >= 0, 'simHrtime: whole nanoseconds since the kernel started');
  assert(n >= 0 && n < 1e9, 'simHrtime: the nanoseconds within their second');
  if (prev !== undefined) {
    s -= prev[0];
    n -= prev[1];
    if (n < 0) {
      s--;
      n += 1e9;
    }
  }
  return [s, n];
}
simHrtime.bigint = function bigint(): bigint {
  const c = current;
  assert(c === null || installed, "hrtime.bigint: a process runs only with the simulator's globals in");
  if (c === null) return (hostHrtime as unknown as { bigint(): bigint }).bigint();
  const ns = c.nanos();
  assert(Number.isInteger(ns) && ns >= 0, 'hrtime.bigint: whole nanoseconds since the kernel started');
  return BigInt(ns);
};

function simUptime(this: unknown): number {
  const c = current;
  assert(c === null || installed, "simUptime: a process runs only with the simulator's globals in");
  if (c === null) return Reflect.apply(hostUptime, this, []) as number;
  const t = c.perfNow() / 1000;
  assert(t >= 0, "simUptime: a process's uptime counts from its spawn");
  return t;
}

// ----- pid, ppid, env, stdout, stderr and the event methods: replaced while a kernel runs

/** The host's descriptors of what is replaced, taken when the first run starts; a data property's value follows the host's writes. */
const hostProps = new Map<string, PropertyDescriptor | undefined>();

function hostGet(key: string): unknown {
  // The getters ask for the host's value only when no process runs.
  assert(current === null, "hostGet: the host's value, for the host");
  assert(Object.hasOwn(GETTERS, key), 'hostGet: one of the replaced properties');
  const d = hostProps.get(key);
  if (d === undefined) return undefined;
  return d.get !== undefined ? Reflect.apply(d.get, process, []) : d.value;
}

function hostSet(key: string, v: unknown): void {
  assert(current === null, "hostSet: the host's value, by the host");
  assert(GETTERS[key]?.set !== undefined, 'hostSet: one of the replaced properties with a setter');
  const d = hostProps.get(key);
  if (d?.set !== undefined) Reflect.apply(d.set, process, [v]);
  else if (d?.writable === true) d.value = v;
  else throw new TypeError(`Cannot assign to read only property '${key}' of object '#<process>'`);
}

const GETTERS: Record<string, PropertyDescriptor> = {
  pid: {
    get: () => {
      assert(current === null || installed, "process.pid: a process runs only with the simulator's globals in");
      assert(current === null || current.p.clock === current, "process.pid: the running clock is its process's");
      return current === null ? hostGet('pid') : current.p.pid;
    },
  },
  ppid: {
    get: () => {
      assert(current === null || installed, "process.ppid: a process runs only with the simulator's globals in");
      assert(current === null || current.p.clock === current, "process.ppid: the running clock is its process's");
      return current === null ? hostGet('ppid') : current.p.ppid;
    },
    set: (v: unknown) => {
      assert(current === null || installed, "process.ppid=: a process runs only with the simulator's globals in");
      // The host's ppid is writable; a process's is not its to change (it is ignored).
      assert(hostProps.has('ppid'), "process.ppid=: the host's ppid is kept");
      if (current === null) hostSet('ppid', v);
    },
  },
  env: {
    get: () => {
      assert(current === null || installed, "process.env: a process runs only with the simulator's globals in");
      assert(current === null || current.p.clock === current, "process.env: the running clock is its process's");
      return current === null ? hostGet('env') : envOf(current);
    },
    set: (v: unknown) => {
      assert(current === null || installed, "process.env=: a process runs only with the simulator's globals in");
      assert(current === null || current.p.clock === current, "process.env=: the running clock is its process's");
      if (current === null) hostSet('env', v);
      else current.env = v as Record<string, string>;
    },
  },
  stdout: {
    get: () => {
      assert(current === null || installed, "process.stdout: a process runs only with the simulator's globals in");
      assert(current === null || current.p.clock === current, "process.stdout: the running clock is its process's");
      return current === null ? hostGet('stdout') : streamOf(current, false);
    },
  },
  stderr: {
    get: () => {
      assert(current === null || installed, "process.stderr: a process runs only with the simulator's globals in");
      assert(current === null || current.p.clock === current, "process.stderr: the running clock is its process's");
      return current === null ? hostGet('stderr') : streamOf(current, true);
    },
  },
};

type Method = 'on' | 'addListener' | 'prependListener' | 'once' | 'prependOnceListener' | 'off' | 'removeListener' | 'removeAllListeners' | 'listeners' | 'rawListeners' | 'listenerCount' | 'getuid' | 'getgid';
const hostMethods = new Map<string, Fn>();

/** Whether a call of an event method is the process's: a process runs, on `process`, about one of its own events. */
function mine(self: unknown, type: unknown): AppClock | null {
  const c = current;
  assert(c === null || installed, "mine: a process runs only with the simulator's globals in");
  assert(c === null || c.p.clock === c, "mine: the running clock is its process's");
  return c !== null && self === process && ownEvent(type) ? c : null;
}

function hostCall(self: unknown, name: Method, args: unknown[]): unknown {
  // Kept by takeProcess for as long as ours are on `process`.
  assert(hostMethods.has(name), "hostCall: the host's method is kept");
  // A call about one of the process's own events while it runs is the process's (mine): none leaks to the host's emitter.
  assert(current === null || self !== process || !ownEvent(args[0]), "hostCall: not about the running process's own events");
  return Reflect.apply(hostMethods.get(name)!, self, args);
}

function adder(name: 'on' | 'addListener' | 'prependListener' | 'once' | 'prependOnceListener'): Fn {
  assert(typeof EventEmitter.prototype[name] === 'function', "adder: an EventEmitter method, for the process's own emitter");
  const f = {
    [name](this: unknown, ...args: unknown[]): unknown {
      const type = args[0];
      const c = mine(this, type);
      if (c === null) return hostCall(this, name, args);
      // Node: libuv cannot catch these.
      if (type === 'SIGKILL' || type === 'SIGSTOP') throw uvError('uv_signal_start', 'EINVAL');
      (eventsOf(c)[name] as Fn).apply(c.events, args);
      // The kernel's handler follows the listeners, so they are counted now.
      assert(c.events!.listenerCount(type as string) > 0, 'adder: the listener is in');
      listenersChanged(c, type as string);
      return this;
    },
  }[name]!;
  // The computed key gives the method Node's name, as the host's has.
  assert(f.name === name, 'adder: the method has its name');
  return f;
}

function remover(name: 'off' | 'removeListener'): Fn {
  assert(typeof EventEmitter.prototype[name] === 'function', "remover: an EventEmitter method, for the process's own emitter");
  const f = {
    [name](this: unknown, ...args: unknown[]): unknown {
      const type = args[0];
      const c = mine(this, type);
      if (c === null) return hostCall(this, name, args);
      if (c.events !== null) {
        c.events.removeListener(type as string, args[1] as Fn);
        listenersChanged(c, type as string);
      }
      return this;
    },
  }[name]!;
  // The computed key gives the method Node's name, as the host's has.
  assert(f.name === name, 'remover: the method has its name');
  return f;
}

function reader(name: 'listeners' | 'rawListeners' | 'listenerCount'): Fn {
  assert(typeof EventEmitter.prototype[name] === 'function', "reader: an EventEmitter method, for the process's own emitter");
  const f = {
    [name](this: unknown, ...args: unknown[]): unknown {
      const c = mine(this, args[0]);
      if (c === null) return hostCall(this, name, args);
      if (c.events === null) return name === 'listenerCount' ? 0 : [];
      return (c.events[name] as Fn).apply(c.events, args);
    },
  }[name]!;
  // The computed key gives the method Node's name, as the host's has.
  assert(f.name === name, 'reader: the method has its name');
  return f;
}

const METHODS: Record<Method, Fn> = {
  on: adder('on'),
  addListener: adder('addListener'),
  prependListener: adder('prependListener'),
  once: adder('once'),
  prependOnceListener: adder('prependOnceListener'),
  off: remover('off'),
  removeListener: remover('removeListener'),
  removeAllListeners: function removeAllListeners(this: unknown, ...args: unknown[]): unknown {
    const c = current;
    assert(c === null || installed, "removeAllListeners: a process runs only with the simulator's globals in");
    assert(c === null || c.p.clock === c, "removeAllListeners: the running clock is its process's");
    const all = args.length === 0 || args[0] === undefined;
    if (c === null || this !== process || (!all && !ownEvent(args[0]))) return hostCall(this, 'removeAllListeners', args);
    const ev = c.events;
    if (ev === null) return this;
    if (all) {
      // Its own only: the host's listeners are not the process's to remove.
      ev.removeAllListeners();
      for (let i = 0; i < SIGNALS.length; i++) c.appSignal(i);
    } else {
      ev.removeAllListeners(args[0] as string);
      listenersChanged(c, args[0] as string);
    }
    return this;
  },
  listeners: reader('listeners'),
  rawListeners: reader('rawListeners'),
  listenerCount: reader('listenerCount'),
  // memfs asks for both at each step of each path it walks (its permission checks): a system call
  // each, a twentieth of a run. The host's ids, read once a run, are what every process sees anyway.
  getuid: function getuid(): number {
    assert(runs > 0, 'getuid: ours only while some kernel runs');
    assert(Number.isInteger(hostIds[0]), "getuid: the host's, read as the first run started");
    return hostIds[0]!;
  },
  getgid: function getgid(): number {
    assert(runs > 0, 'getgid: ours only while some kernel runs');
    assert(Number.isInteger(hostIds[1]), "getgid: the host's, read as the first run started");
    return hostIds[1]!;
  },
};
/** The host's uid and gid, as the first run starts (takeProcess). */
const hostIds = [0, 0];

function takeProcess(): void {
  assert(runs === 1 && current === null, 'takeProcess: as the first run starts, before any process runs');
  assert(hostProps.size === 0 && hostMethods.size === 0, 'takeProcess: the last run gave all back');
  hostProps.clear();
  hostIds[0] = process.getuid?.() ?? 0;
  hostIds[1] = process.getgid?.() ?? 0;
  for (const [key, sim] of Object.entries(GETTERS)) {
    const d = Object.getOwnPropertyDescriptor(process, key);
    // Not one this Node has, or not one that can go back: left alone.
    if (d === undefined || d.configurable !== true) continue;
    // What is kept must be the host's, or giveBackProcess would leave ours in for good.
    assert(d.get !== sim.get, "takeProcess: the host's property, not ours");
    hostProps.set(key, d);
    Object.defineProperty(process, key, { ...sim, enumerable: d.enumerable, configurable: true });
  }
  for (const [key, fn] of Object.entries(METHODS)) {
    assert((process as unknown as Record<string, Fn>)[key] !== fn, "takeProcess: the host's method, not ours");
    hostMethods.set(key, (process as unknown as Record<string, Fn>)[key]!);
    hostProps.set(`method:${key}`, Object.getOwnPropertyDescriptor(process, key));
    Object.defineProperty(process, key, { value: fn, writable: true, enumerable: false, configurable: true });
  }
}

function giveBackProcess(): void {
  assert(runs === 0 && current === null && !installed, 'giveBackProcess: as the last run ends, with no process running');
  for (const [key, d] of hostProps) {
    const name = key.startsWith('method:') ? key.slice(7) : key;
    if (d === undefined) delete (process as unknown as Slot)[name];
    else Object.defineProperty(process, name, d);
  }
  // The descriptors are exactly the host's again: each method is the one kept.
  for (const [key, fn] of hostMethods) assert((process as unknown as Record<string, Fn>)[key] === fn, "giveBackProcess: the host's method is back");
  hostProps.clear();
  hostMethods.clear();
}

// ------------------------------------------------------------------ random
// Math.random and node:crypto's random functions (randomBytes, randomFill,
// randomFillSync, randomInt, randomUUID, getRandomValues, and globalThis.crypto's
// getRandomValues and randomUUID), while a kernel runs: called by a simulated
// process they draw from its app stream (AppClock.appRandom, from the seed),
// so an app that uses them answers the same for the same seed; called by the
// host they are the host's. The trace records only byte counts, so without
// this --determinism could not see an app's randomness.
// Not covered: keys and IVs made inside crypto (generateKeyPair, createCipheriv
// with a random IV made by OpenSSL), TLS, and native addons.

const hostMathRandom = Math.random;
const nodeCrypto = cryptoModule as unknown as Slot;
const web = (G.crypto ?? null) as Slot | null;
/** What was replaced, to put back as the last run ends. */
let randomUndo: (() => void)[] = [];

/** The running process's app stream; null: the host runs. */
function appRng(): Rng | null {
  assert(current === null || installed, "appRng: a process runs only with the simulator's globals in");
  const r = current === null ? null : current.appRandom();
  assert(r === null || r === current!.appRandom(), "appRng: one stream a process, kept");
  return r;
}

/** Uniform in [0, 1) with 53 random bits, as V8's Math.random. */
function float53(r: Rng): number {
  // Only the running process's stream: another's would shift its draws, and the replay with them.
  assert(r === appRng(), "float53: drawn from the running process's own stream");
  const d0 = r.draws;
  const hi = r.u32() >>> 5;
  const lo = r.u32() >>> 6;
  assert(((r.draws - d0) | 0) === 2, 'float53: two draws, always');
  const x = (hi * 67108864 + lo) / 9007199254740992;
  assert(x >= 0 && x < 1, () => `float53: ${x} outside [0, 1)`);
  return x;
}

function fillBytes(r: Rng, view: ArrayBufferView, offset: number, size: number): void {
  assert(r === appRng(), "fillBytes: drawn from the running process's own stream");
  const bytes = new Uint8Array(view.buffer, view.byteOffset + offset, size);
  assert(bytes.byteLength === size && offset + size <= view.byteLength, 'fillBytes: inside the view');
  const d0 = r.draws;
  for (let i = 0; i < bytes.length; i += 4) {
    let u = r.u32();
    for (let j = i; j < i + 4 && j < bytes.length; j++, u >>>= 8) bytes[j] = u & 0xff;
  }
  // Four bytes a draw: how many draws a fill takes depends on its size alone, so replays line up.
  assert(((r.draws - d0) | 0) === Math.ceil(size / 4), 'fillBytes: one draw per four bytes');
}

function uuid(r: Rng): string {
  const b = new Uint8Array(16);
  const d0 = r.draws;
  fillBytes(r, b, 0, 16);
  assert(((r.draws - d0) | 0) === 4, 'uuid: four draws, always');
  b[6] = (b[6]! & 0x0f) | 0x40; // version 4
  b[8] = (b[8]! & 0x3f) | 0x80; // RFC 4122 variant
  const h = Buffer.from(b).toString('hex');
  assert(h.length === 32 && h[12] === '4', 'uuid: 16 bytes, version 4');
  const u = `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  assert(u.length === 36 && '89ab'.includes(u[19]!), 'uuid: RFC 4122 form and variant');
  return u;
}

/** A callback API: called back on the process's next tick, as the threadpool would call back later. */
function callBack(cb: unknown, ...args: unknown[]): void {
  // Only a simulated process's call comes here (seedOne): its next tick is its own.
  assert(current !== null && installed, 'callBack: a simulated process made the call');
  assert(args[0] === null, 'callBack: the seeded functions never fail once they ran');
  assert(typeof cb === 'function', 'callBack: only the callback forms call back (the others were left to the host)');
  simNextTick(cb as Fn, ...args);
}

/** A seeded function's answer to arguments it does not take: the host's function runs, and throws Node's own error for them. */
const HOST = Symbol('host');

/** A view, and offset and size (as given) inside it: what the fill functions take; anything else is the host's to refuse. */
function fillable(buf: unknown, offset: unknown, size: unknown): buf is ArrayBufferView {
  if (!ArrayBuffer.isView(buf)) return false;
  const at = offset ?? 0;
  if (!Number.isSafeInteger(at) || (at as number) < 0 || (at as number) > buf.byteLength) return false;
  if (size !== undefined && !(Number.isSafeInteger(size) && (size as number) >= 0 && (at as number) + (size as number) <= buf.byteLength)) return false;
  // What it lets through, fillBytes can fill: a range inside the view's own bytes.
  const n = (size as number | undefined) ?? buf.byteLength - (at as number);
  assert(n >= 0 && (at as number) + n <= buf.byteLength, 'fillable: the range lies inside the view');
  assert(buf.byteOffset + (at as number) + n <= buf.buffer.byteLength, 'fillable: and inside its buffer');
  return true;
}

const simRandoms: Record<string, (r: Rng, args: unknown[]) => unknown> = {
  randomBytes(r, [size, cb]) {
    if (!Number.isSafeInteger(size) || (size as number) < 0 || (size as number) > 2 ** 31 - 1) return HOST;
    const b = Buffer.alloc(size as number);
    const d0 = r.draws;
    fillBytes(r, b, 0, b.length);
    assert(b.length === size && ((r.draws - d0) | 0) === Math.ceil(b.length / 4), 'randomBytes: the size asked for, from the stream');
    if (typeof cb !== 'function') return b;
    callBack(cb, null, b);
    return undefined;
  },
  randomFillSync(r, [buf, offset, size]) {
    if (!fillable(buf, offset, size)) return HOST;
    const at = (offset as number | undefined) ?? 0;
    const n = (size as number | undefined) ?? buf.byteLength - at;
    const d0 = r.draws;
    fillBytes(r, buf, at, n);
    assert(((r.draws - d0) | 0) === Math.ceil(n / 4), 'randomFillSync: what it filled came from the stream');
    return buf;
  },
  randomFill(r, args) {
    const cb = args[args.length - 1];
    const [buf, offset, size] = args.slice(0, -1);
    if (typeof cb !== 'function' || args.length > 4 || !fillable(buf, offset, size)) return HOST;
    const at = (offset as number | undefined) ?? 0;
    const n = (size as number | undefined) ?? buf.byteLength - at;
    const d0 = r.draws;
    fillBytes(r, buf, at, n);
    assert(((r.draws - d0) | 0) === Math.ceil(n / 4), 'randomFill: what it filled came from the stream');
    callBack(cb, null, buf);
    return undefined;
  },
  randomInt(r, args) {
    const cb = typeof args[args.length - 1] === 'function' ? args[args.length - 1] : undefined;
    const bounds = cb === undefined ? args : args.slice(0, -1);
    const [min, max] = bounds.length === 1 ? [0, bounds[0]] : [bounds[0], bounds[1]];
    // Node's own range: safe integers, max - min at most 2^48.
    if (bounds.length > 2 || !Number.isSafeInteger(min) || !Number.isSafeInteger(max) || !((max as number) > (min as number)) || (max as number) - (min as number) > 2 ** 48) return HOST;
    const n = (min as number) + Math.floor(float53(r) * ((max as number) - (min as number)));
    assert(Number.isSafeInteger(n), () => `randomInt: ${n} is not a safe integer`);
    assert(n >= (min as number) && n < (max as number), () => `randomInt: ${n} outside [${String(min)}, ${String(max)})`);
    if (cb === undefined) return n;
    callBack(cb, null, n);
    return undefined;
  },
  randomUUID(r) {
    const u = uuid(r);
    assert(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(u), () => `randomUUID: ${u} is not a v4 UUID`);
    return u;
  },
  getRandomValues(r, [view]) {
    if (!fillable(view, 0, undefined) || view.byteLength > 65536) return HOST; // over 64 KiB: the host's QuotaExceededError
    const d0 = r.draws;
    fillBytes(r, view, 0, view.byteLength);
    assert(((r.draws - d0) | 0) === Math.ceil(view.byteLength / 4), 'getRandomValues: what it filled came from the stream');
    return view;
  },
};

/** Replace obj[key] with a function that draws from the running process's stream, or calls the host's. */
function seedOne(obj: Slot, key: string, sim: (r: Rng, args: unknown[]) => unknown): void {
  const desc = Object.getOwnPropertyDescriptor(obj, key) ?? Object.getOwnPropertyDescriptor(Object.getPrototypeOf(obj) as object, key);
  const orig = obj[key];
  // crypto.getRandomValues is a fixed getter of a function that calls globalThis.crypto's, which is seeded.
  if (desc === undefined || typeof orig !== 'function' || desc.configurable !== true) return;
  const own = Object.hasOwn(obj, key);
  const undos = randomUndo.length;
  const seeded = function (this: unknown, ...args: unknown[]): unknown {
    // The host's own calls (and one a module kept from a run's time, called after it) are the host's.
    const r = appRng();
    const d0 = r?.draws;
    const v = r === null ? HOST : sim(r, args);
    // Arguments left to the host draw nothing from the stream: a call the app got wrong shifts no later draw.
    assert(v !== HOST || r === null || r.draws === d0, () => `${key}: a call left to the host drew from the process's stream`);
    assert(v === HOST || r!.draws !== d0 || key === 'getRandomValues' || key === 'randomFillSync' || key === 'randomFill' || key === 'randomBytes', () => `${key}: answered without drawing`);
    return v === HOST ? Reflect.apply(orig as Fn, this, args) : v;
  };
  Object.defineProperty(seeded, 'name', { value: (orig as Fn).name });
  Object.defineProperty(obj, key, { value: seeded, writable: true, configurable: true, enumerable: desc.enumerable ?? true });
  randomUndo.push(own ? () => Object.defineProperty(obj, key, desc) : () => delete obj[key]);
  assert(obj[key] === seeded, 'seedOne: the seeded function is in place');
  assert(randomUndo.length === undos + 1, 'seedOne: one undo for each function replaced');
}

function seedRandom(): void {
  assert(randomUndo.length === 0, 'seedRandom: once, as the first run starts');
  seedOne(Math as unknown as Slot, 'random', (r) => float53(r));
  for (const [key, sim] of Object.entries(simRandoms)) seedOne(nodeCrypto, key, sim);
  if (web !== null) for (const key of ['getRandomValues', 'randomUUID']) seedOne(web, key, simRandoms[key]!);
  // So that `import { randomUUID } from 'node:crypto'` gets the seeded one too (and the host's back).
  syncBuiltinESMExports();
  assert(Math.random !== hostMathRandom, 'seedRandom: Math.random is seeded');
  assert(randomUndo.length >= 1 + Object.keys(simRandoms).length - 1, "seedRandom: crypto's functions are seeded (getRandomValues may be a fixed getter)");
}

function unseedRandom(): void {
  assert(randomUndo.length > 0, 'unseedRandom: after seedRandom');
  for (const f of randomUndo) f();
  randomUndo = [];
  syncBuiltinESMExports();
  assert(Math.random === hostMathRandom, "unseedRandom: Math.random is the host's again");
}
