// The invariants of a chaos run (DESIGN.md, "Simulation and chaos";
// issue 6), each with its name, checked after every batch of kernel events,
// at every probe report, on every answer, and once more when the system has
// had time to settle. The first violation ends the run.
import type { ProcessInfo } from '../sim/index.js';
import { TRANSITIONS } from '../runtime/companions/state.js';

export const INVARIANTS = [
  'orphans', // no process outlives its parent by more than its stop deadline
  'zombies', // no exited child is left unreaped
  'one-instance', // at most one live instance per companion name
  'answers', // every request gets exactly one answer (its own) or a recorded reset; nothing answered or run twice
  'broken-reload', // a broken reload leaves the old config fully in force
  'convergence', // worker counts reach their targets once faults stop
  'transitions', // companion state changes are only the allowed ones
  'queue-bound', // the slow-lane queue never holds more than slow_queue
  'shutdown', // TERM at the end leaves nothing running
] as const;
export type Invariant = (typeof INVARIANTS)[number];

export interface Violation {
  readonly invariant: Invariant;
  readonly message: string;
  readonly at: number; // simulated ms
}

/** The drover programs whose parent's death must take them down, and how long each may take. */
export interface Deadlines {
  /** After its parent died, a process of this program must be gone within this (ms). */
  orphan(program: string): number;
}

/** A zombie may wait this long for its parent's reap (the arbiter reaps on SIGCHLD and once a loop tick, ≤ 1 s). */
export const ZOMBIE_GRACE_MS = 3000;

export class Checker {
  violation: Violation | null = null;
  readonly counts: Record<Invariant, number> = Object.fromEntries(INVARIANTS.map((i) => [i, 0])) as Record<Invariant, number>;
  private readonly orphanSince = new Map<number, number>();
  private readonly zombieSince = new Map<number, number>();

  constructor(
    private readonly now: () => number,
    private readonly deadlines: Deadlines,
    /** The pid of the run's driver, the one process that is init's child on purpose. */
    private readonly driver: () => number,
  ) {}

  fail(invariant: Invariant, message: string): void {
    if (this.violation === null) this.violation = { invariant, message, at: this.now() };
  }

  /** One check of an invariant: counted, and a failure recorded. */
  check(invariant: Invariant, ok: boolean, message: () => string): boolean {
    this.counts[invariant]++;
    if (!ok) this.fail(invariant, message());
    return ok;
  }

  /** The process table, after a batch of events. */
  table(procs: readonly ProcessInfo[]): void {
    const now = this.now();
    const byPid = new Map(procs.map((p) => [p.pid, p]));
    const companions = new Map<string, number[]>();
    for (const p of procs) {
      // Orphans: re-parented to init, not the driver.
      if (p.state !== 'zombie' && p.ppid === 1 && p.pid !== this.driver()) {
        const since = this.orphanSince.get(p.pid) ?? now;
        this.orphanSince.set(p.pid, since);
        const limit = this.deadlines.orphan(p.program);
        this.check('orphans', now - since <= limit, () => `${p.program} ${p.pid} has outlived its parent by ${now - since} ms (its deadline: ${limit} ms)`);
      } else {
        this.orphanSince.delete(p.pid);
        this.counts.orphans++;
      }
      // Zombies: exited, and the parent (alive, not init) has not reaped it.
      if (p.state === 'zombie' && p.ppid !== 1 && byPid.get(p.ppid)?.state === 'running') {
        const since = this.zombieSince.get(p.pid) ?? now;
        this.zombieSince.set(p.pid, since);
        this.check('zombies', now - since <= ZOMBIE_GRACE_MS, () => `${p.program} ${p.pid} exited ${now - since} ms ago and its parent ${p.ppid} has not reaped it`);
      } else {
        this.zombieSince.delete(p.pid);
      }
      if (p.program === 'chaos-companion' && p.state !== 'zombie') {
        const name = p.args[0] ?? '?';
        const list = companions.get(name) ?? [];
        list.push(p.pid);
        companions.set(name, list);
      }
    }
    for (const [name, pids] of companions) {
      this.check('one-instance', pids.length <= 1, () => `companion ${name} runs ${pids.length} instances: pids ${pids.join(', ')}`);
    }
  }

  transition(name: string, from: string, to: string): void {
    const allowed = (TRANSITIONS as Record<string, readonly string[]>)[from] ?? [];
    this.check('transitions', allowed.includes(to), () => `companion ${name} went ${from} -> ${to}, which the state table does not allow`);
  }

  laneQueued(generation: number, queued: number, limit: number): void {
    this.check('queue-bound', queued <= limit, () => `the slow lane of generation ${generation} holds ${queued} queued requests, over slow_queue ${limit}`);
  }
}
