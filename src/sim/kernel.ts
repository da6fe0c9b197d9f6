// The public face of the simulated kernel: what tests, the conformance
// harness and the chaos runner hold. Everything behind it is in machine.ts.

import type { Hooks } from '../os/hooks.js';
import type { Exited, Fs, ProgramRegistry, SpawnSpec } from '../os/types.js';
import { drain as hostDrain } from '../os/drain.js';
import { Machine, type RunOptions, type RunResult } from './machine.js';
import { spawnProc, RUNNING, STOPPED } from './processes.js';
import type { FaultOptions, Faults } from './faults.js';

export interface KernelOptions {
  seed: number | bigint;
  programs: readonly ProgramRegistry[];
  /** Keep every trace line (default: only the last 256). */
  record?: boolean;
  /** How the kernel lets a batch's promise continuations settle; see src/os/drain.ts. */
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
}

export interface ProcessInfo {
  pid: number;
  ppid: number;
  pgid: number;
  state: 'running' | 'stopped' | 'zombie';
  program: string;
  args: readonly string[];
}

export class Kernel {
  private readonly m: Machine;
  /** Root's view of the disk (cwd /), to set up and inspect files. */
  readonly fs: Fs;
  /** What processes wrote to an 'inherit' stdout/stderr that resolves to init. */
  readonly output: { stdout: string; stderr: string };
  /** The injected faults: rates (set() changes them mid-run), what fired, and the processes that crashed. */
  readonly faults: Faults;

  constructor(opts: KernelOptions) {
    this.m = new Machine(opts.seed, opts.programs, opts.record === true, opts.drain ?? hostDrain, opts.mounts ?? {}, opts.faults, opts.isolate === true, opts.hooks);
    this.faults = this.m.faults;
    this.fs = this.m.init.os.fs;
    this.output = this.m.output;
  }

  /** Start a program as a child of init (pid 1), which reaps it as soon as it exits. No channel unless `channel: true`. */
  spawn(spec: SpawnSpec): number {
    return spawnProc(this.m, this.m.init, spec, true).pid;
  }

  exitStatus(pid: number): Exited | undefined {
    return this.m.exits.get(pid);
  }

  run(opts?: RunOptions): Promise<RunResult> {
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
    this.m.dispose();
  }

  now(): number {
    return this.m.now;
  }

  /** Every process but init, by pid. */
  processes(): Array<ProcessInfo> {
    const out: ProcessInfo[] = [];
    for (const p of this.m.procs.values()) {
      if (p === this.m.init) continue;
      out.push({
        pid: p.pid,
        ppid: p.ppid,
        pgid: p.pgid,
        state: p.state === RUNNING ? 'running' : p.state === STOPPED ? 'stopped' : 'zombie',
        program: p.program,
        args: p.args,
      });
    }
    return out.sort((a, b) => a.pid - b.pid);
  }

  traceHash(): string {
    return this.m.trace.hash();
  }

  trace(): readonly string[] {
    return this.m.trace.lines();
  }

  /** Whether `pid` is in a burn (os.burn): its clock is ahead, running code that holds its event loop. */
  burning(pid: number): boolean {
    const p = this.m.procs.get(pid);
    return p !== undefined && p.busyUntil > this.m.now;
  }

  /** A counter that moves whenever `processes()` would answer differently (pids, parents, states). */
  get changes(): number {
    return this.m.changes;
  }

  get events(): number {
    return this.m.events;
  }
}
