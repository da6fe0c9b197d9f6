// The arbiter's table of workers, and the only transitions a worker may make.
import type { Channel } from '../../os/types.js';
import type { WorkerCounters } from '../worker/counters.js';
import type { ExitCause } from './metrics.js';

export type WorkerState = 'booting' | 'serving' | 'draining' | 'aborting';

// booting:  spawned, app not loaded yet (no 'booted' message)
// serving:  accepting and answering
// draining: told to stop (drain message, TERM, max_requests); finishing requests
// aborting: silent past the timeout, sent ABRT; KILL follows
const ALLOWED: Record<WorkerState, readonly WorkerState[]> = {
  booting: ['serving', 'draining', 'aborting'],
  serving: ['draining', 'aborting'],
  draining: ['aborting'],
  aborting: [],
};

export interface Worker {
  readonly pid: number;
  /** fast: serves the public sockets; slow: a slow-lane worker (WorkerSpec.role). */
  readonly role: 'fast' | 'slow';
  /** A slow worker's socket. */
  readonly socket: string | null;
  readonly channel: Channel | null;
  readonly generation: number;
  state: WorkerState;
  readonly spawnedAt: number;
  lastBeat: number;
  since: number; // when it entered its state
  inflight: number;
  served: number;
  /** Of `served`, how many a fast worker handed to the slow lane. */
  slowServed: number;
  bootError: string | null;
  /** Event-loop utilization over the last heartbeat interval, 0..1; null until two reports. */
  load: number | null;
  busy: { at: number; ms: number } | null; // the last report of os.loopBusy()
  /** Bytes resident at its last report. */
  rss: number | null;
  /** Its counters at its last report (a slow worker's: null, its fast workers count its requests). */
  counters: WorkerCounters | null;
  /** Why the arbiter let it go, when it did. */
  cause: ExitCause | null;
}

export class Workers {
  private readonly byPid = new Map<number, Worker>();

  add(pid: number, channel: Channel | null, generation: number, now: number, role: 'fast' | 'slow' = 'fast', socket: string | null = null): Worker {
    const w: Worker = {
      pid, role, socket, channel, generation, state: 'booting', spawnedAt: now, lastBeat: now, since: now,
      inflight: 0, served: 0, slowServed: 0, bootError: null, load: null, busy: null, rss: null, counters: null, cause: null,
    };
    this.byPid.set(pid, w);
    return w;
  }

  get(pid: number): Worker | undefined {
    return this.byPid.get(pid);
  }

  remove(pid: number): Worker | undefined {
    const w = this.byPid.get(pid);
    this.byPid.delete(pid);
    return w;
  }

  /** Moves a worker on; a move the table does not allow is a bug, and is refused. */
  move(w: Worker, to: WorkerState, now: number): boolean {
    if (w.state === to) return false;
    if (!ALLOWED[w.state].includes(to)) return false;
    w.state = to;
    w.since = now;
    return true;
  }

  get size(): number {
    return this.byPid.size;
  }

  all(): Worker[] {
    return [...this.byPid.values()];
  }

  /** Workers of a role that count toward its target: of this generation, not on their way out. */
  active(generation: number, role: 'fast' | 'slow' = 'fast'): Worker[] {
    return this.all().filter((w) => w.role === role && w.generation === generation && (w.state === 'booting' || w.state === 'serving'));
  }

  /** Every worker of a role. */
  ofRole(role: 'fast' | 'slow'): Worker[] {
    return this.all().filter((w) => w.role === role);
  }

  of(generation: number): Worker[] {
    return this.all().filter((w) => w.generation === generation);
  }
}
