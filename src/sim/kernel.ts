// The public face of the simulated kernel: what tests, the conformance
// harness and the chaos runner hold. Everything behind it is in machine.ts.

import { assert } from '../os/assert.js';
import type { Hooks } from '../os/hooks.js';
import type { Exited, Fs, ProgramRegistry, SpawnSpec } from '../os/types.js';
import { Machine, type LoadLimit, type RunOptions, type RunResult } from './machine.js';
import { spawnProc, RUNNING, STOPPED, ZOMBIE, REAPED } from './processes.js';
import type { FaultOptions, Faults } from './faults.js';
import type { Output } from './output.js';

export interface KernelOptions {
  seed: number | bigint;
  programs: readonly ProgramRegistry[];
  /** Keep every trace line (default: only the last 256). */
  record?: boolean;
  /** How the kernel lets a batch's promise continuations settle (default: the kernel's own, Machine.drain); see src/os/drain.ts. */
  drain?: () => Promise<void>;
  /**
   * Simulated directories that stand for host directories, for
   * Os.importModule: { '/srv/apps': '/home/me/drover/src/chaos/apps' }. A
   * run then names only the simulated path, and its trace is the same from
   * any checkout.
   */
  mounts?: Readonly<Record<string, string>>;
  /** Each process imports its own instance of a module under a mount, as a real process does (host-import.ts); default: one per host. */
  isolate?: boolean;
  /** Calls that fail on purpose, each kind with its probability (faults.ts); none by default. */
  faults?: FaultOptions;
  /** Every process's Os.hooks: what the checker hears from inside drover, and the defects planted for this run. */
  hooks?: Hooks;
  /**
   * How long, in the host's time, an Os.importModule may stay pending before
   * it fails as a module that never finished loading (its top-level await
   * never settles: Machine.giveUp), and what that limit is, for the error.
   * Default: 30 s (DEFAULT_LOAD_LIMIT).
   */
  loadLimit?: LoadLimit;
}

export interface ProcessInfo {
  pid: number;
  ppid: number;
  pgid: number;
  state: 'running' | 'stopped' | 'zombie';
  program: string;
  args: readonly string[];
  /** What ps shows (os.setTitle); '' until the process sets one. */
  title: string;
}

export class Kernel {
  private readonly m: Machine;
  /** Root's view of the disk (cwd /), to set up and inspect files. */
  readonly fs: Fs;
  /** What processes wrote to an 'inherit' stdout/stderr that resolves to init: the last 64 KiB of each, and a tap for every write. */
  readonly output: Output;
  /** The injected faults: rates (set() changes them mid-run), what fired, and the processes that crashed. */
  readonly faults: Faults;

  constructor(opts: KernelOptions) {
    this.m = new Machine(opts.seed, opts.programs, opts.record === true, opts.drain ?? null, opts.mounts ?? {}, opts.faults, opts.isolate === true, opts.hooks, opts.loadLimit);
    this.faults = this.m.faults;
    this.fs = this.m.init.os.fs;
    this.output = this.m.output;
    // A new kernel holds init alone, at time 0, and has run nothing.
    assert(this.m.procs.size === 1 && this.m.init.pid === 1 && this.m.procs.get(1) === this.m.init, 'Kernel: a new kernel holds init alone');
    assert(this.m.now === 0 && this.m.events === 0 && this.m.queue.size === 0, 'Kernel: a new kernel has run nothing');
  }

  /** Start a program as a child of init (pid 1), which reaps it as soon as it exits. No channel unless `channel: true`. */
  spawn(spec: SpawnSpec): number {
    const pid = spawnProc(this.m, this.m.init, spec, true).pid;
    // init never burns, so the child is not an effect waiting for a flush: it is in the table, init's, starting now.
    const p = this.m.procs.get(pid);
    assert(p !== undefined && p.ppid === 1 && p.parent === this.m.init, 'Kernel.spawn: a child of init');
    assert(p.state === RUNNING && p.programPending && this.m.init.effects.length === 0, 'Kernel.spawn: the child starts with the next batch');
    return pid;
  }

  exitStatus(pid: number): Exited | undefined {
    const e = this.m.exits.get(pid);
    // Every exit is recorded under its own pid, with a code or a signal (never both).
    assert(e === undefined || e.pid === pid, 'Kernel.exitStatus: recorded under its pid');
    assert(e === undefined || (e.code === null) !== (e.signal === null), 'Kernel.exitStatus: a code or a signal');
    return e;
  }

  run(opts?: RunOptions): Promise<RunResult> {
    // Limits that compare: NaN would make every test of them false, and run forever or stop at once.
    assert(opts?.until === undefined || !Number.isNaN(opts.until), 'Kernel.run: until is a time');
    assert(opts?.maxEvents === undefined || opts.maxEvents >= 0, 'Kernel.run: maxEvents is a count');
    return this.m.run(opts);
  }

  /**
   * This kernel will not run again: let go of the host side of its live
   * processes' streams too (the dead ones' is let go as they die). Without
   * it, a run that stops with HTTP connections open (a violation, `until`)
   * keeps the whole machine: Node holds each node:http parser, and through it
   * its socket, until the parser is freed.
   */
  dispose(): void {
    const events = this.m.events;
    const changes = this.m.changes;
    this.m.dispose();
    // Every host stream of a live process was let go with it (releaseDeadStreams).
    assert(this.m.deadStreams.length === 0, 'Kernel.dispose: no dead stream is left to let go');
    // Only the host side goes: no event ran, the process table did not change.
    assert(this.m.events === events && this.m.changes === changes, 'Kernel.dispose: the simulation is left as it was');
  }

  now(): number {
    const t = this.m.now;
    // Virtual time starts at 0 and only moves forward, to an event's time or to `until`, both finite.
    assert(t >= 0, 'Kernel.now: time is never negative');
    assert(Number.isFinite(t), 'Kernel.now: time is finite');
    return t;
  }

  /** Every process but init, by pid. */
  processes(): Array<ProcessInfo> {
    const out: ProcessInfo[] = [];
    for (const p of this.m.procs.values()) {
      if (p === this.m.init) continue;
      // The table holds what is not reaped yet; a zombie is there until its parent waits for it.
      assert(p.state !== REAPED, 'Kernel.processes: a reaped process is gone from the table');
      assert(p.state !== ZOMBIE || (p.parent !== null && p.parent !== this.m.init), "Kernel.processes: init reaps its zombies at once");
      out.push({
        pid: p.pid,
        ppid: p.ppid,
        pgid: p.pgid,
        state: p.state === RUNNING ? 'running' : p.state === STOPPED ? 'stopped' : 'zombie',
        program: p.program,
        args: p.args,
        title: p.title,
      });
    }
    // Init is always in the table (die() never takes it): everything else is listed.
    assert(out.length === this.m.procs.size - 1, 'Kernel.processes: every process but init');
    return out.sort((a, b) => a.pid - b.pid);
  }

  traceHash(): string {
    const h = this.m.trace.hash();
    // Two runs are compared by this string alone: 16 lowercase hex digits, whatever the host.
    assert(/^[0-9a-f]{16}$/.test(h), 'Kernel.traceHash: 16 hex digits');
    return h;
  }

  trace(): readonly string[] {
    const lines = this.m.trace.lines();
    // All of them when recording, else the last 256; never more than were added.
    assert(lines.length <= this.m.trace.length, 'Kernel.trace: no more lines than were added');
    assert(lines.length === this.m.trace.length || lines.length === 256, 'Kernel.trace: every line, or the last 256');
    return lines;
  }

  /** Whether `pid` is in a burn (os.burn): its clock is ahead, running code that holds its event loop. */
  burning(pid: number): boolean {
    const p = this.m.procs.get(pid);
    const burning = p !== undefined && p.busyUntil > this.m.now;
    // die() stops the burn: only a process that is still alive burns.
    assert(!burning || p!.state === RUNNING || p!.state === STOPPED, 'Kernel.burning: a dead process burns nothing');
    assert(!burning || p !== this.m.init, 'Kernel.burning: init never burns');
    return burning;
  }

  /** A counter that moves whenever `processes()` would answer differently (pids, parents, states). */
  get changes(): number {
    const c = this.m.changes;
    // A counter: it only moves up, from 1 (init's arrival).
    assert(Number.isInteger(c), 'Kernel.changes: a count');
    assert(c >= 1, 'Kernel.changes: init counted as the first change');
    return c;
  }

  get events(): number {
    const n = this.m.events;
    assert(Number.isInteger(n), 'Kernel.events: a count');
    assert(n >= 0, 'Kernel.events: never negative');
    return n;
  }
}
