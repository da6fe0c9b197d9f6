// The Os a simulated process is handed. Each process has its own, bound to
// its Proc, so whatever code calls it (a callback, or a promise continuation
// long after) is attributed to the right process without any global notion
// of "the current process". Calls from a process that is dead or stopped
// (its leftover promise continuations) do nothing observable: synchronous
// ones throw ExitSignal, asynchronous ones return a promise that never
// settles, so that code simply stops, as it would in a killed process.

import { pathToFileURL } from 'node:url';
import type { Addr, Child, Exited, ListenOptions, Listener, Os, Signal, SpawnSpec, Stream, Timer, Writer } from '../os/types.js';
import type { Hooks } from '../os/hooks.js';
import { hostImport } from '../os/host-import.js';
import type { Machine } from './machine.js';
import { ExitSignal, RUNNING, spawnProc, STOPPED, terminate, waitpid, type Proc } from './processes.js';
import { EV_NONE, EV_SLEEP, EV_TIMER, type Ev } from './scheduler.js';
import { kill, signalIndex } from './signals.js';
import { exiting } from './app-globals.js';
import { connect, listen } from './sockets.js';
import { SIM_UID, SimFs, resolvePath, writeSink } from './files.js';
import type { SimChannel } from './channels.js';

/** 2026-01-01T00:00:00Z: wallTime() is this plus virtual time, never the host's clock. */
export const EPOCH_MS = 1767225600000;

const NEVER = new Promise<never>(() => {});

function noop(): void {}

/** Node's setTimeout rule: anything below 1 ms (or not a number) is 1 ms. */
export function delay(ms: number): number {
  const d = Number(ms);
  return d >= 1 && d <= 2147483647 ? d : 1;
}

export class SimTimer implements Timer {
  ev: Ev | null = null;
  ref = true;

  constructor(
    readonly m: Machine,
    readonly proc: Proc,
    readonly fn: () => void,
  ) {}

  cancel(): void {
    const ev = this.ev;
    if (ev === null) return;
    this.ev = null;
    if (ev.idx >= 0) {
      this.m.queue.remove(ev);
      this.m.queue.release(ev);
    } else {
      // Popped and waiting in the process's ready list: the list releases it.
      ev.kind = EV_NONE;
    }
    if (this.ref) {
      this.proc.refTimers--;
      this.m.touch(this.proc);
    }
  }

  unref(): this {
    if (this.ref) {
      this.ref = false;
      if (this.ev !== null) {
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
  ) {}

  write(text: string): void {
    const p = this.p;
    if (!p.runnable) throw new ExitSignal();
    writeSink(this.m, p, this.err ? p.stderr : p.stdout, text, this.err ? 'stderr' : 'stdout');
  }
}

/** An import error with the host directory behind a mount put back as the simulated one. */
function unmount(e: unknown, sim: string, host: string): unknown {
  if (!(e instanceof Error)) return e;
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
    this.pid = p.pid;
    this.args = p.args;
    this.env = p.env;
    this.hooks = m.hooks;
    this.fs = new SimFs(m, p);
    this.stdout = new ProcWriter(m, p, false);
    this.stderr = new ProcWriter(m, p, true);
  }

  ppid(): number {
    return this.p.ppid;
  }

  cwd(): string {
    return this.p.cwd;
  }

  now(): number {
    return this.m.local(this.p);
  }

  wallTime(): number {
    return EPOCH_MS + this.m.local(this.p);
  }

  sleep(ms: number): Promise<void> {
    const p = this.p;
    const m = this.m;
    if (!p.runnable) return NEVER;
    const at = m.local(p) + delay(ms);
    return new Promise<void>((resolve) => {
      p.refTimers++;
      m.at(at, EV_SLEEP, p, resolve, null);
    });
  }

  timer(ms: number, fn: () => void): Timer {
    const p = this.p;
    const m = this.m;
    const t = new SimTimer(m, p, fn);
    if (!p.runnable) return t;
    p.refTimers++;
    t.ev = m.at(m.local(p) + delay(ms), EV_TIMER, p, t, null);
    return t;
  }

  burn(ms: number): void {
    const p = this.p;
    if (!p.runnable) throw new ExitSignal();
    if (!(ms > 0)) return;
    p.busyUntil = this.m.local(p) + ms;
    p.busyTotal += ms;
    this.m.log(p, 'burn', `${ms} until=${p.busyUntil}`);
  }

  loopBusy(): number {
    // Callbacks take no virtual time; only burns do. A process killed
    // mid-burn had counted the whole burn: the load report is an estimate.
    return this.p.busyTotal;
  }

  random(): number {
    return this.p.rng.float();
  }

  rss(): number {
    return this.p.rss;
  }

  setTitle(title: string): void {
    this.p.title = title;
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
   */
  hostWork<T>(work: Promise<T>): Promise<T> {
    const p = this.p;
    if (!p.runnable) {
      Promise.resolve(work).then(undefined, noop); // nobody will hear of it; not an unhandled rejection either
      return NEVER;
    }
    return this.m.hostWork(p, work);
  }

  importModule(path: string): Promise<Record<string, unknown>> {
    const full = resolvePath(this.p.cwd, path);
    const mount = this.m.mountOf(full);
    if (mount === null) return this.hostWork(hostImport(full));
    const [sim, host] = mount;
    const owner = this.m.isolate ? this.p : null;
    // What the import says when it fails (a stack, a message) names the simulated path, as the
    // trace must: the same run from any checkout writes the same bytes.
    return this.hostWork(hostImport(host + full.slice(sim.length), owner).catch((e: unknown) => {
      throw unmount(e, sim, host);
    }));
  }

  spawn(spec: SpawnSpec): Child {
    if (!this.p.runnable) throw new ExitSignal();
    return spawnProc(this.m, this.p, spec, false);
  }

  kill(pid: number, sig: Signal): void {
    if (!this.p.runnable) throw new ExitSignal();
    kill(this.m, this.p, pid, sig);
  }

  alive(pid: number): boolean {
    const q = this.m.procs.get(pid);
    return q !== undefined && q !== this.m.init && (q.state === RUNNING || q.state === STOPPED);
  }

  waitpid(pid: number): Exited | null {
    if (!this.p.runnable) throw new ExitSignal();
    return waitpid(this.m, this.p, pid);
  }

  onSignal(sig: Signal, fn: (() => void) | null): void {
    if (!this.p.runnable) throw new ExitSignal();
    // With app code's process.on listeners of the signal, the Os's handler runs first (app-clock.ts).
    this.p.clock.osSignal(sig, fn);
  }

  exit(code: number): never {
    const p = this.p;
    if (p.runnable) {
      // App code's 'exit' listeners run first, as Node's process.exit runs them; they may change the code (app-globals.ts).
      const c = (Number(exiting(p.clock, (Number(code) | 0) & 0xff)) | 0) & 0xff;
      if (p.runnable) {
        this.m.log(p, 'exit()', String(c));
        terminate(this.m, p, c);
      }
    }
    throw new ExitSignal();
  }

  setParentDeathSignal(sig: Signal): boolean {
    const p = this.p;
    if (!p.runnable) throw new ExitSignal();
    p.pdeathsig = signalIndex(sig);
    this.m.log(p, 'pdeathsig', sig);
    return true;
  }

  get channel(): SimChannel | null {
    const end = this.p.parentChan;
    return end === null ? null : end.api;
  }

  listen(addr: Addr, opts?: ListenOptions): Promise<Listener> {
    if (!this.p.runnable) return NEVER;
    try {
      return Promise.resolve(listen(this.m, this.p, addr, opts));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  get listeners(): readonly Listener[] {
    return this.p.listeners;
  }

  connect(addr: Addr): Promise<Stream> {
    if (!this.p.runnable) return NEVER;
    try {
      return connect(this.m, this.p, addr);
    } catch (err) {
      return Promise.reject(err);
    }
  }
}
