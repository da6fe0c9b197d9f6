// The arbiter's table of workers, and the only transitions a worker may make.
import type { Channel } from '../../os/types.js';
import { assert } from '../assert.js';
import type { WorkerCounters } from '../worker/counters.js';
import type { ExitCause } from './metrics.js';

export type WorkerState = 'booting' | 'serving' | 'draining' | 'aborting';

// booting:  spawned, app not loaded yet (no 'booted' message)
// serving:  accepting and answering
// draining: told to stop (drain message, TERM, max_requests); finishing requests
// aborting: silent past the timeout, sent ABRT; KILL follows
//
// The table is a total order: a worker only moves forward, skipping states
// as it likes. A move to its own state or back is a stale order, not a bug,
// and move() refuses it with false; the arbiter relies on that: a 'booted'
// that crossed a drain (a booting worker drained as surplus), a drain of a
// worker already aborting (ended() drains a whole generation), a second
// 'retiring'. A move the table has in neither direction would be a bug; the
// order leaves none today, and move() asserts it stays so.
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
  /** Bytes resident at its first report: what the app holds once booted, before much of any load. */
  rssFirst: number | null;
  /** Its counters at its last report (a slow worker's: null, its fast workers count its requests). */
  counters: WorkerCounters | null;
  /** Why the arbiter let it go, when it did. */
  cause: ExitCause | null;
}

export class Workers {
  private readonly byPid = new Map<number, Worker>();

  add(pid: number, channel: Channel | null, generation: number, now: number, role: 'fast' | 'slow' = 'fast', socket: string | null = null): Worker {
    // Signals go to w.pid: 0, 1 or a negative pid would reach a group, init or everyone.
    assert(Number.isInteger(pid) && pid > 1, () => `workers: pid ${pid} is no child's`);
    // The arbiter hands a slow worker's socket to the lanes (w.socket!); a fast one has none.
    assert((role === 'slow') === (socket !== null), () => `workers: a ${role} worker with socket ${socket}`);
    assert(Number.isInteger(generation) && generation >= 1, () => `workers: generation ${generation}`);
    // spawnedAt, since and lastBeat start the timeouts (boot, heartbeat, drain): a time that is not finite never expires.
    assert(Number.isFinite(now), () => `workers: ${pid} spawned at ${now}`);
    // Each slow worker binds its own socket (Lanes.socketPath): a second one on a live worker's path would take its clients.
    if (socket !== null) for (const o of this.byPid.values()) assert(o.socket !== socket, () => `workers: ${pid} given the socket ${socket} of ${o.pid}`);
    const w: Worker = {
      pid, role, socket, channel, generation, state: 'booting', spawnedAt: now, lastBeat: now, since: now,
      inflight: 0, served: 0, slowServed: 0, bootError: null, load: null, busy: null, rss: null, rssFirst: null, counters: null, cause: null,
    };
    this.byPid.set(pid, w);
    return w;
  }

  get(pid: number): Worker | undefined {
    const w = this.byPid.get(pid);
    // Keyed by its own pid: a message, a signal or a lane decision for one worker never reaches another.
    assert(w === undefined || w.pid === pid, 'workers: an entry under another worker\'s pid');
    return w;
  }

  remove(pid: number): Worker | undefined {
    const w = this.byPid.get(pid);
    // Keyed by its own pid: the exit of one worker never removes another.
    assert(w === undefined || w.pid === pid, () => `workers: pid ${pid} holds the entry of ${w!.pid}`);
    // Its life came after its spawn: states and heartbeats are timed by the same monotonic clock.
    assert(w === undefined || (w.since >= w.spawnedAt && w.lastBeat >= w.spawnedAt), () => `workers: ${pid} reaped with times before its spawn at ${w!.spawnedAt}`);
    this.byPid.delete(pid);
    return w;
  }

  /** Moves a worker forward and answers true; a move to its own state or back is stale, refused with false. */
  move(w: Worker, to: WorkerState, now: number): boolean {
    // booting is where add() puts a worker and nothing moves one to: a move there is a caller's mistake, not a stale order.
    assert(to !== 'booting', () => `workers: ${w.pid} asked to move back to booting`);
    // A reaped worker is out of the table: its state means nothing any more, and moving it is a bug.
    assert(this.byPid.get(w.pid) === w, () => `workers: ${w.pid} moved to ${to} while not in the table`);
    // Deadlines count from `since` (drain, abort): the clock only runs forward.
    assert(now >= w.since, () => `workers: ${w.pid} moved at ${now}, before it entered ${w.state} at ${w.since}`);
    assert(Number.isFinite(now), () => `workers: ${w.pid} moved at ${now}`);
    if (w.state === to) return false;
    if (!ALLOWED[w.state].includes(to)) {
      assert(ALLOWED[to].includes(w.state), () => `workers: ${w.pid} ${w.state} -> ${to} is in neither direction of the table`);
      return false;
    }
    w.state = to;
    w.since = now;
    return true;
  }

  get size(): number {
    return this.byPid.size;
  }

  all(): Worker[] {
    // The table's own rules, checked where the arbiter walks it (its timeouts, each tick): a few workers, no hot path.
    for (const [pid, w] of this.byPid) {
      assert(w.pid === pid, () => `workers: pid ${pid} holds the entry of ${w.pid}`);
      // Nothing moves a worker back to booting, so a booting one has never moved: its state began at its spawn.
      assert(w.state !== 'booting' || w.since === w.spawnedAt, () => `workers: ${pid} booting since ${w.since}, spawned at ${w.spawnedAt}`);
      assert(w.lastBeat >= w.spawnedAt && w.since >= w.spawnedAt, () => `workers: ${pid} with times before its spawn at ${w.spawnedAt}`);
      // The arbiter names a cause only as it lets a worker go (drain, abort): one still counted toward a target has none.
      assert(w.cause === null || w.state === 'draining' || w.state === 'aborting', () => `workers: ${pid} ${w.state} with exit cause ${w.cause}`);
    }
    return [...this.byPid.values()];
  }

  /** Workers of a role that count toward its target: of this generation, not on their way out. */
  active(generation: number, role: 'fast' | 'slow' = 'fast'): Worker[] {
    assert(Number.isInteger(generation) && generation >= 1, () => `workers: active workers of generation ${generation}`);
    return this.all().filter((w) => w.role === role && w.generation === generation && (w.state === 'booting' || w.state === 'serving'));
  }

  /** Every worker of a role. */
  ofRole(role: 'fast' | 'slow'): Worker[] {
    return this.all().filter((w) => w.role === role);
  }

  of(generation: number): Worker[] {
    assert(Number.isInteger(generation) && generation >= 1, () => `workers: workers of generation ${generation}`);
    return this.all().filter((w) => w.generation === generation);
  }
}
