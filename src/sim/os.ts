// The Os a simulated process is handed. Each process has its own, bound to
// its Proc, so whatever code calls it (a callback, or a promise continuation
// long after) is attributed to the right process without any global notion
// of "the current process". Calls from a process that is dead or stopped
// (its leftover promise continuations) do nothing observable: synchronous
// ones throw ExitSignal, asynchronous ones return a promise that never
// settles, so that code simply stops, as it would in a killed process.

import { posix } from 'node:path';
import { pathToFileURL } from 'node:url';
import { assert } from '../os/assert.js';
import type { Addr, Child, Exited, ListenOptions, Listener, Os, Signal, SpawnSpec, Stream, Timer, Writer } from '../os/types.js';
import type { Hooks } from '../os/hooks.js';
import { hostImport } from '../os/host-import.js';
import type { Load, Machine } from './machine.js';
import { ExitSignal, REAPED, RUNNING, spawnProc, STOPPED, terminate, waitpid, ZOMBIE, type Proc } from './processes.js';
import { EV_NONE, EV_SLEEP, EV_TIMER, type Ev } from './scheduler.js';
import { kill, SIGNAL_COUNT, signalIndex } from './signals.js';
import { exiting } from './app-globals.js';
import { connect, listen, type ListenerHandle } from './sockets.js';
import { SIM_UID, SimFs, resolvePath, writeSink } from './files.js';
import type { SimChannel } from './channels.js';
import { pipeLost } from './pipes.js';

/** 2026-01-01T00:00:00Z: wallTime() is this plus virtual time, never the host's clock. */
export const EPOCH_MS = 1767225600000;

const NEVER = new Promise<never>(() => {});

function noop(): void {}

/** Node's setTimeout rule: anything below 1 ms (or not a number) is 1 ms. */
export function delay(ms: number): number {
  const d = Number(ms);
  const r = d >= 1 && d <= 2147483647 ? d : 1;
  assert(r >= 1 && r <= 2147483647, 'a timer delay is 1 ms to 2^31-1 ms, never NaN');
  return r;
}

export class SimTimer implements Timer {
  ev: Ev | null = null;
  ref = true;

  constructor(
    readonly m: Machine,
    readonly proc: Proc,
    readonly fn: () => void,
  ) {
    // SimOs.timer arms it only for a process that can run, which is in the process table.
    assert(!proc.runnable || m.procs.get(proc.pid) === proc, 'a runnable process is in the process table');
  }

  cancel(): void {
    const ev = this.ev;
    if (ev === null) return;
    // Whoever pops or discards the event clears `ev` first: one still set is this timer's, not a pooled event reused.
    assert(ev.a === this, 'a timer\'s event is its own');
    assert(ev.kind === EV_TIMER, 'a pending timer\'s event is an EV_TIMER');
    this.ev = null;
    if (ev.idx >= 0) {
      this.m.queue.remove(ev);
      this.m.queue.release(ev);
    } else {
      // Popped and waiting in the process's ready list: the list releases it.
      ev.kind = EV_NONE;
    }
    if (this.ref) {
      // die() zeroes the count of a dead process whose timer events still wait in the queue, and its leftover
      // continuations may still cancel them: the count holds for a live (running or stopped) process.
      assert(this.proc.refTimers > 0 || this.proc.state === ZOMBIE || this.proc.state === REAPED, 'a pending ref\'d timer of a live process is counted in refTimers');
      this.proc.refTimers--;
      this.m.touch(this.proc);
    }
  }

  unref(): this {
    if (this.ref) {
      this.ref = false;
      if (this.ev !== null) {
        assert(this.ev.a === this, 'a timer\'s event is its own');
        assert(this.proc.refTimers > 0 || this.proc.state === ZOMBIE || this.proc.state === REAPED, 'a pending ref\'d timer of a live process is counted in refTimers');
        this.proc.refTimers--;
        this.m.touch(this.proc);
      }
    }
    return this;
  }
}

class ProcWriter implements Writer {
  constructor(
    private readonly m: Machine,
    private readonly p: Proc,
    private readonly err: boolean,
  ) {
    // Made with the process's Os (Machine.addProc), while it holds both of its sinks.
    assert((err ? p.stderr : p.stdout).refs >= 1, 'a new process holds its stdio sinks');
  }

  write(text: string): void {
    const p = this.p;
    if (!p.runnable) throw new ExitSignal();
    const sink = this.err ? p.stderr : p.stdout;
    assert(sink.refs >= 1, 'a live process holds its stdio sinks');
    assert(this.m.procs.get(p.pid) === p, 'a runnable process is in the process table');
    writeSink(this.m, p, sink, text, this.err ? 'stderr' : 'stdout');
  }

  /** Nothing waits: a simulated pipe has no capacity, a file takes everything at once. */
  backlog(): number {
    const p = this.p;
    if (!p.runnable) throw new ExitSignal(); // as write: a killed process's code goes no further
    assert((this.err ? p.stderr : p.stdout).refs >= 1, 'a live process holds its stdio sinks');
    assert(this.m.procs.get(p.pid) === p, 'a runnable process is in the process table');
    return 0;
  }

  /** A pipe whose reading end closed under a write of this process's (pipes.ts brokenPipe); a file or the kernel's output never breaks. */
  lost(): string | null {
    const p = this.p;
    if (!p.runnable) throw new ExitSignal(); // as write
    const sink = this.err ? p.stderr : p.stdout;
    assert(sink.refs >= 1, 'a live process holds its stdio sinks');
    assert(this.m.procs.get(p.pid) === p, 'a runnable process is in the process table');
    return sink.pipe === null ? null : pipeLost(p, sink.pipe);
  }
}

/** The host I/O `p` started while an import was under way, and whatever that started in turn, is done; then the import ends. */
async function loadIoDone(p: Proc): Promise<void> {
  assert(p.loading >= 0, 'imports under way are counted');
  const io = p.loadIo;
  while (io.length > 0) await Promise.allSettled(io.splice(0));
  assert(io.length === 0, 'every host I/O of the import is done');
}

/** An import error with the host directory behind a mount put back as the simulated one. */
function unmount(e: unknown, sim: string, host: string): unknown {
  if (!(e instanceof Error)) return e;
  // Machine resolves both sides of a mount (posix.resolve): absolute, so a replace cannot hit a relative fragment.
  assert(sim.charCodeAt(0) === 47, 'a mount\'s simulated directory is absolute');
  assert(host.charCodeAt(0) === 47, 'a mount\'s host directory is absolute');
  const hostUrl = pathToFileURL(host).href;
  const simUrl = `file://${sim}`;
  const fix = (s: string) => s.replaceAll(hostUrl, simUrl).replaceAll(host, sim);
  e.message = fix(e.message);
  // Only the module's own frames: the loader's and drover's own are host paths of the checkout.
  if (e.stack !== undefined) e.stack = fix(e.stack).split('\n').filter((l) => !/^\s+at /.test(l) || l.includes(sim)).join('\n');
  return e;
}

export class SimOs implements Os {
  readonly pid: number;
  readonly uid = SIM_UID;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly hooks: Hooks;
  readonly fs: SimFs;
  readonly stdout: Writer;
  readonly stderr: Writer;

  constructor(
    private readonly m: Machine,
    private readonly p: Proc,
  ) {
    assert(Number.isInteger(p.pid) && p.pid >= 1, 'a process has a positive integer pid');
    assert(p.cwd.charCodeAt(0) === 47, 'a process\'s cwd is absolute');
    this.pid = p.pid;
    this.args = p.args;
    this.env = p.env;
    this.hooks = m.hooks;
    this.fs = new SimFs(m, p);
    this.stdout = new ProcWriter(m, p, false);
    this.stderr = new ProcWriter(m, p, true);
  }

  ppid(): number {
    const p = this.p;
    // Only init has no parent; an orphan's ppid follows its new parent (init).
    assert(p.parent === null ? p.ppid === 0 && p.pid === 1 : p.ppid === p.parent.pid, 'ppid is the parent\'s pid (0 for init only)');
    assert(p.ppid !== p.pid, 'no process is its own parent');
    return p.ppid;
  }

  cwd(): string {
    const cwd = this.p.cwd;
    // Paths resolve against it (posix.resolve): a relative one would resolve against the host's cwd.
    assert(cwd.charCodeAt(0) === 47, 'a process\'s cwd is absolute');
    assert(cwd.length === 1 || cwd.charCodeAt(cwd.length - 1) !== 47, 'a process\'s cwd is normalised (no trailing slash)');
    return cwd;
  }

  now(): number {
    const t = this.m.local(this.p);
    assert(t >= this.m.now, 'a process\'s clock is never behind the kernel\'s');
    assert(t === t, 'a process\'s clock is a number');
    return t;
  }

  wallTime(): number {
    const t = EPOCH_MS + this.m.local(this.p);
    assert(t >= EPOCH_MS + this.m.now, 'wall time is EPOCH_MS plus virtual time, never behind the kernel\'s');
    return t;
  }

  sleep(ms: number): Promise<void> {
    const p = this.p;
    const m = this.m;
    if (!p.runnable) return NEVER;
    assert(m.procs.get(p.pid) === p, 'a runnable process is in the process table');
    const at = m.local(p) + delay(ms);
    assert(at >= m.now + 1, 'a sleep wakes at least 1 ms after the kernel\'s now');
    return new Promise<void>((resolve) => {
      assert(p.refTimers >= 0, 'refTimers counts: never negative');
      p.refTimers++;
      m.at(at, EV_SLEEP, p, resolve, null);
    });
  }

  timer(ms: number, fn: () => void): Timer {
    const p = this.p;
    const m = this.m;
    const t = new SimTimer(m, p, fn);
    if (!p.runnable) return t;
    assert(p.refTimers >= 0, 'refTimers counts: never negative');
    p.refTimers++;
    t.ev = m.at(m.local(p) + delay(ms), EV_TIMER, p, t, null);
    assert(t.ev.a === t && t.ev.kind === EV_TIMER && t.ev.proc === p, 'an armed timer\'s event is its own EV_TIMER, of its process');
    assert(t.ev.idx >= 0 && t.ev.time >= m.now + 1, 'an armed timer is queued at least 1 ms ahead');
    return t;
  }

  burn(ms: number): void {
    const p = this.p;
    if (!p.runnable) throw new ExitSignal();
    if (!(ms > 0)) return;
    assert(this.m.procs.get(p.pid) === p, 'a runnable process is in the process table');
    assert(p.busyTotal >= 0, 'busy time only adds up');
    p.busyUntil = this.m.local(p) + ms;
    p.busyTotal += ms;
    assert(p.busyUntil >= this.m.now && p.busyUntil > 0, 'a burn ends at or after the kernel\'s now');
    this.m.log(p, 'burn', `${ms} until=${p.busyUntil}`);
  }

  loopBusy(): number {
    // Callbacks take no virtual time; only burns do. A process killed
    // mid-burn had counted the whole burn: the load report is an estimate.
    const busy = this.p.busyTotal;
    assert(busy >= 0, 'busy time only adds up');
    return busy;
  }

  random(): number {
    // Its own stream, forked at spawn: a process drawing more or fewer never shifts the kernel's tie-breaks.
    assert(this.p.rng !== this.m.rng, 'a process draws from its own stream, never the kernel\'s');
    const r = this.p.rng.float();
    assert(r >= 0 && r < 1, 'random() is uniform in [0, 1)');
    return r;
  }

  rss(): number {
    const rss = this.p.rss;
    assert(Number.isFinite(rss) && rss >= 0, 'rss is a byte count');
    return rss;
  }

  setTitle(title: string): void {
    assert(!this.p.runnable || this.m.procs.get(this.p.pid) === this.p, 'a runnable process is in the process table');
    this.p.title = title;
  }

  titleOf(pid: number): string | null {
    const q = this.m.procs.get(pid);
    assert(q === undefined || q.pid === pid, 'the process table is keyed by pid');
    if (q === undefined || q === this.m.init || (q.state !== RUNNING && q.state !== STOPPED)) return null;
    // Before a title, what ps shows is the command line: the program and its arguments.
    const title = q.title !== '' ? q.title : [q.program, ...q.args].join(' ');
    assert(title !== '', 'a running process shows a command line');
    return title;
  }

  /**
   * Host work (a dynamic import, say) takes host time, never virtual time:
   * until it is handed back the kernel runs only what is due now and the
   * clock stands still (see Machine.run). The result comes back as an event
   * of this process at the virtual time the work started, in the order the
   * work was started, whenever the host finishes it, so a run replays.
   * The work must not wait for the simulation itself (a sleep, a message
   * from another process, a global setTimeout made in a simulated process,
   * which is virtual: app-clock.ts): the clock would never move again.
   * (An import that does, or never settles at all, is given up after the
   * kernel's load limit: importModule.)
   */
  hostWork<T>(work: Promise<T>, /** The import this is (importModule), whose wait is limited (Machine.hostWork). */ load: Load | null = null): Promise<T> {
    const p = this.p;
    if (!p.runnable) {
      Promise.resolve(work).then(undefined, noop); // nobody will hear of it; not an unhandled rejection either
      return NEVER;
    }
    assert(this.m.procs.get(p.pid) === p, 'a runnable process is in the process table');
    assert(p.hostWork >= 0, 'pending host work counts: never negative');
    const out = this.m.hostWork(p, work, load);
    assert(p.hostWork >= 1, 'host work is counted until it is handed back');
    return out;
  }

  /**
   * An import is host work as a whole: the module's top level runs in it, and
   * what that awaits (fs.promises.readFile, zlib.gzip...: the I/O net-guard.ts
   * waits for) cannot be host work of its own, which Machine.run would hand
   * back only after the import that waits for it (every run hung at a
   * top-level await of a read). So while the import is under way, the
   * process's host I/O runs straight on the host (loadIo lists it), and the
   * import ends once that I/O, and what its callbacks started in turn, is
   * done too: what the module started without awaiting it is not left to
   * land at a later virtual time the host decides.
   */
  importModule(path: string): Promise<Record<string, unknown>> {
    const p = this.p;
    if (!p.runnable) return NEVER;
    assert(p.loading >= 0, 'pending imports count: never negative');
    p.loading++;
    /** Counted in p.loading: until its I/O is done, or it is given up. */
    let counted = true;
    const uncount = () => {
      assert(counted && p.loading > 0, 'an import leaves the count once');
      counted = false;
      p.loading--;
      assert(p.loading >= 0, 'pending imports count: never negative');
    };
    const load = this.load(path);
    const whole = load.then(
      async (mod) => {
        await loadIoDone(p);
        if (counted) uncount();
        return mod;
      },
      async (err: unknown) => {
        await loadIoDone(p);
        if (counted) uncount();
        throw err;
      },
    );
    assert(p.loading >= 1, 'an import is counted until its I/O is done');
    // Given up if still pending after the kernel's load limit (Machine.giveUp): a top-level await that never settles.
    // The process goes on without it: its host I/O from now on is its own again, not part of an import.
    return this.hostWork(whole, {
      path: resolvePath(p.cwd, path),
      givenUp: () => {
        // The run loop hands back the failure to a process that can take it, now.
        assert(p.runnable && counted, 'a given-up import is of a live process, and still counted');
        uncount();
        if (p.loading === 0) p.loadIo.length = 0;
        assert(p.loading > 0 || p.loadIo.length === 0, 'no import under way: no host I/O is part of one');
      },
    });
  }

  private load(path: string): Promise<Record<string, unknown>> {
    const full = resolvePath(this.p.cwd, path);
    assert(full.charCodeAt(0) === 47, 'an import path is absolute after resolution');
    const mount = this.m.mountOf(full);
    if (mount === null) return hostImport(full);
    const [sim, host] = mount;
    assert(full === sim || full.startsWith(sim === '/' ? '/' : `${sim}/`), () => `mountOf(${full}) gave ${sim}, which does not hold it`);
    const owner = this.m.isolate ? this.p : null;
    // The path below the mount, joined at a separator (with a mount of '/', full.slice(1) has no leading slash).
    const behind = posix.join(host, full.slice(sim.length));
    assert(behind === host || behind.startsWith(host === '/' ? '/' : `${host}/`), () => `${full} under mount ${sim} maps outside ${host}: ${behind}`);
    // What the import says when it fails (a stack, a message) names the simulated path, as the
    // trace must: the same run from any checkout writes the same bytes.
    return hostImport(behind, owner).catch((e: unknown) => {
      throw unmount(e, sim, host);
    });
  }

  spawn(spec: SpawnSpec): Child {
    const p = this.p;
    if (!p.runnable) throw new ExitSignal();
    assert(this.m.procs.get(p.pid) === p, 'a runnable process is in the process table');
    const child = spawnProc(this.m, p, spec, false);
    // Pids are never reused and only grow: a child's is above its parent's.
    assert(child.pid > p.pid, 'a child\'s pid is above its parent\'s');
    assert(this.m.procs.get(child.pid)?.parent === p, 'a spawned child is in the process table, with this process its parent');
    return child;
  }

  kill(pid: number, sig: Signal): void {
    if (!this.p.runnable) throw new ExitSignal();
    assert(this.m.procs.get(this.p.pid) === this.p, 'a runnable process is in the process table');
    kill(this.m, this.p, pid, sig);
    // A pid that is not an integer, a signal kill(2) does not know: EINVAL before anything is sent.
    assert(Number.isInteger(pid), 'kill returns only for an integer pid');
  }

  alive(pid: number): boolean {
    const q = this.m.procs.get(pid);
    assert(q === undefined || q.pid === pid, 'the process table is keyed by pid');
    assert(pid !== 1 || q === this.m.init, 'pid 1 is init');
    // reap() takes a process out of the table as it marks it REAPED.
    assert(q === undefined || q.state !== REAPED, 'a reaped process is not in the process table');
    return q !== undefined && q !== this.m.init && (q.state === RUNNING || q.state === STOPPED);
  }

  waitpid(pid: number): Exited | null {
    if (!this.p.runnable) throw new ExitSignal();
    assert(this.m.procs.get(this.p.pid) === this.p, 'a runnable process is in the process table');
    const r = waitpid(this.m, this.p, pid);
    assert(r === null || (r.pid > this.p.pid && (pid === -1 || r.pid === pid)), 'waitpid reaps a child of this process, the one asked for');
    assert(r === null || !this.m.procs.has(r.pid), 'a reaped child has left the process table');
    return r;
  }

  onSignal(sig: Signal, fn: (() => void) | null): void {
    if (!this.p.runnable) throw new ExitSignal();
    assert(this.m.procs.get(this.p.pid) === this.p, 'a runnable process is in the process table');
    // With app code's process.on listeners of the signal, the Os's handler runs first (app-clock.ts).
    this.p.clock.osSignal(sig, fn);
    // The kernel's handler is the Os's own or app-clock's dispatcher, which runs it: never the default.
    assert(fn === null || this.p.handlers[signalIndex(sig)] !== null, 'a caught signal has a kernel handler');
  }

  exit(code: number): never {
    const p = this.p;
    if (p.runnable) {
      assert(this.m.procs.get(p.pid) === p, 'a runnable process is in the process table');
      // App code's 'exit' listeners run first, as Node's process.exit runs them; they may change the code (app-globals.ts).
      const c = (Number(exiting(p.clock, (Number(code) | 0) & 0xff)) | 0) & 0xff;
      if (p.runnable) {
        this.m.log(p, 'exit()', String(c));
        terminate(this.m, p, c);
        // Dead, or exiting at the end of its burn; init alone never dies.
        assert(!p.runnable || p === this.m.init, 'a process that called exit() runs no more code');
      }
    }
    throw new ExitSignal();
  }

  setParentDeathSignal(sig: Signal): boolean {
    const p = this.p;
    if (!p.runnable) throw new ExitSignal();
    assert(this.m.procs.get(p.pid) === p, 'a runnable process is in the process table');
    p.pdeathsig = signalIndex(sig);
    assert(p.pdeathsig >= 0 && p.pdeathsig < SIGNAL_COUNT, 'pdeathsig is a signal index');
    this.m.log(p, 'pdeathsig', sig);
    return true;
  }

  get channel(): SimChannel | null {
    const p = this.p;
    const end = p.parentChan;
    if (end === null) return null;
    assert(end.proc === p, 'a process\'s channel to its parent is its own end');
    // `dead` is set when its owner dies (closeChannels): a process that can run has a live end.
    assert(!end.dead || !p.runnable, 'a runnable process\'s channel end is not dead');
    return end.api;
  }

  listen(addr: Addr, opts?: ListenOptions): Promise<Listener> {
    if (!this.p.runnable) return NEVER;
    assert(this.m.procs.get(this.p.pid) === this.p, 'a runnable process is in the process table');
    let h: ListenerHandle;
    try {
      h = listen(this.m, this.p, addr, opts);
    } catch (err) {
      return Promise.reject(err);
    }
    assert(h.proc === this.p, 'a listener is held by the process that made it');
    assert(this.p.handles.get(h.state) === h, 'a process\'s handles hold its new listener');
    return Promise.resolve(h);
  }

  get listeners(): readonly Listener[] {
    const p = this.p;
    // Handed over at spawn (handOver), each a hold of this process's own.
    for (const h of p.listeners) assert(h.proc === p, 'a process\'s inherited listeners are held by it');
    // Handed out as is: the kernel's own list, which no caller may change.
    assert(p.listeners.length === 0 || Object.isFrozen(p.listeners), 'a process\'s inherited listeners are frozen');
    return p.listeners;
  }

  connect(addr: Addr): Promise<Stream> {
    const p = this.p;
    if (!p.runnable) return NEVER;
    assert(this.m.procs.get(p.pid) === p, 'a runnable process is in the process table');
    assert(p.connecting >= 0, 'pending connects count: never negative');
    let s: Promise<Stream>;
    try {
      s = connect(this.m, p, addr);
    } catch (err) {
      return Promise.reject(err);
    }
    // Counted until it is answered (EV_CONNECTED), which is never synchronous.
    assert(p.connecting >= 1, 'a connect is pending once made');
    return s;
  }
}
