// The slow lane's queue policy (src/runtime/lanes/queue.ts): unit tests of
// each rule, then a model-based property test that drives a lane with random
// operations at monotonic times, checks every decision against a small model
// of the world (the queue, the workers and their loads, each request's
// outcome) and the lane's rules after every step.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  RETRY_AFTER_MAX, SlowLane, retryAfterSeconds, type Decision, type LaneLimits, type RequestId, type WorkerId,
} from '../../src/runtime/lanes/queue.js';

const assign = (id: RequestId, worker: WorkerId): Decision => ({ kind: 'assign', id, worker });
const kinds = (ds: readonly Decision[]) => ds.map((d) => (d.kind === 'assign' ? `${d.id}->${d.worker}` : `${d.id}:${d.reason}`));

/** A lane with workers `ws` added at t=0. */
function lane(limits: Partial<LaneLimits> = {}, ws: WorkerId[] = [], serviceMs?: number): SlowLane {
  const l = new SlowLane({ queue: 10, concurrency: 1, queueTimeout: 1000, ...limits }, serviceMs === undefined ? {} : { serviceMs });
  for (const w of ws) expect(l.addWorker(w, 0)).toEqual([]);
  return l;
}

describe('SlowLane: limits', () => {
  it('rejects nonsense limits', () => {
    expect(() => new SlowLane({ queue: -1, concurrency: 1, queueTimeout: 1 })).toThrow(/queue/);
    expect(() => new SlowLane({ queue: 1.5, concurrency: 1, queueTimeout: 1 })).toThrow(/queue/);
    expect(() => new SlowLane({ queue: 1, concurrency: 0, queueTimeout: 1 })).toThrow(/concurrency/);
    expect(() => new SlowLane({ queue: 1, concurrency: 1, queueTimeout: 0 })).toThrow(/queueTimeout/);
    expect(() => new SlowLane({ queue: 1, concurrency: 1, queueTimeout: NaN })).toThrow(/queueTimeout/);
    expect(() => new SlowLane({ queue: 1, concurrency: 1, queueTimeout: 1 }, { serviceMs: -1 })).toThrow(/serviceMs/);
    expect(() => new SlowLane({ queue: 0, concurrency: 1, queueTimeout: Infinity })).not.toThrow();
  });

  it('rejects a live duplicate id and a non-integer id; reuses an id after its outcome', () => {
    const l = lane({}, [1]);
    l.enqueue(7, 0);
    expect(() => l.enqueue(7, 1)).toThrow(/already/);
    expect(() => l.enqueue(1.5, 1)).toThrow(/integer/);
    expect(() => l.enqueue(NaN, 1)).toThrow(/integer/);
    expect(() => l.enqueue(8, NaN)).toThrow(/NaN/);
    l.complete(7, 5);
    expect(l.enqueue(7, 6)).toEqual([assign(7, 1)]);
  });
});

describe('SlowLane: assignment', () => {
  it('assigns at once to a free slot, queues when none, and hands freed slots out FIFO', () => {
    const l = lane({}, [1]);
    expect(l.enqueue(10, 0)).toEqual([assign(10, 1)]);
    expect(l.enqueue(11, 1)).toEqual([]);
    expect(l.enqueue(12, 2)).toEqual([]);
    expect(l.status(11)).toBe('queued');
    expect(l.stats()).toMatchObject({ queued: 2, running: 1, free: 0 });
    expect(l.complete(10, 100)).toEqual([assign(11, 1)]);
    expect(l.complete(11, 200)).toEqual([assign(12, 1)]);
    expect(l.complete(12, 300)).toEqual([]);
    expect(l.stats()).toMatchObject({ queued: 0, running: 0, free: 1, assigned: 3, completed: 3 });
  });

  it('picks the least-loaded worker first', () => {
    const l = lane({ concurrency: 3 }, [1, 2]);
    expect(kinds([...l.enqueue(1, 0), ...l.enqueue(2, 0), ...l.enqueue(3, 0), ...l.enqueue(4, 0)]))
      .toEqual(['1->1', '2->2', '3->1', '4->2']);
    l.complete(3, 10); // worker 1 down to 1 running, worker 2 has 2
    expect(l.enqueue(5, 11)).toEqual([assign(5, 1)]);
    // Both at 2: worker 2 has been at 2 since request 4, worker 1 only since request 5.
    expect(l.enqueue(6, 12)).toEqual([assign(6, 2)]);
    expect(l.enqueue(7, 13)).toEqual([assign(7, 1)]);
    expect(l.enqueue(8, 14)).toEqual([]); // all 6 slots busy
    expect(l.runningOn(1).sort()).toEqual([1, 5, 7]);
    expect(l.workerOf(6)).toBe(2);
  });

  it('among idle workers, takes the one idle the longest', () => {
    const l = lane({}, [1, 2, 3]);
    expect(kinds([...l.enqueue(1, 0), ...l.enqueue(2, 0), ...l.enqueue(3, 0)])).toEqual(['1->1', '2->2', '3->3']);
    l.complete(2, 10); // worker 2 idle since 10
    l.complete(3, 20); // worker 3 idle since 20
    l.complete(1, 30); // worker 1 idle since 30
    expect(kinds([...l.enqueue(4, 40), ...l.enqueue(5, 40), ...l.enqueue(6, 40)])).toEqual(['4->2', '5->3', '6->1']);
  });

  it('a new worker takes queued requests at once, up to its concurrency', () => {
    const l = lane({ concurrency: 2 });
    for (const id of [1, 2, 3]) expect(l.enqueue(id, 0)).toEqual([]);
    expect(l.addWorker(9, 5)).toEqual([assign(1, 9), assign(2, 9)]);
    expect(l.stats()).toMatchObject({ queued: 1, running: 2, workers: 1, free: 0 });
    expect(() => l.addWorker(9, 6)).toThrow(/already/);
  });
});

describe('SlowLane: shedding', () => {
  it('queue-full: only when no slot is free and `queue` requests wait', () => {
    const l = lane({ queue: 2 }, [1]);
    l.enqueue(1, 0);
    l.enqueue(2, 0);
    l.enqueue(3, 0);
    const [d] = l.enqueue(4, 0);
    expect(d).toMatchObject({ kind: 'reject', id: 4, status: 503, reason: 'queue-full' });
    expect(l.status(4)).toBeUndefined();
    expect(l.stats()).toMatchObject({ queued: 2, shed: { full: 1, timeout: 0, noWorkers: 0 } });
    l.complete(1, 10);
    expect(l.enqueue(4, 11)).toEqual([]); // room again
  });

  it('queue 0: a request gets a free slot or a 503, never a wait', () => {
    const l = lane({ queue: 0 }, [1]);
    expect(l.enqueue(1, 0)).toEqual([assign(1, 1)]);
    expect(l.enqueue(2, 0)).toMatchObject([{ reason: 'queue-full' }]);
    expect(l.nextDeadline()).toBeNull();
  });

  it('queue-timeout: a request that waited queueTimeout or more, oldest first, at the deadline it announced', () => {
    const l = lane({ queueTimeout: 100 }, [1]);
    l.enqueue(1, 0);
    l.enqueue(2, 10);
    l.enqueue(3, 30);
    expect(l.nextDeadline()).toBe(110);
    expect(l.tick(109)).toEqual([]);
    expect(l.tick(110)).toMatchObject([{ kind: 'reject', id: 2, status: 503, reason: 'queue-timeout' }]);
    expect(l.nextDeadline()).toBe(130);
    expect(kinds(l.tick(1000))).toEqual(['3:queue-timeout']);
    expect(l.nextDeadline()).toBeNull();
    expect(l.stats().shed).toEqual({ full: 0, timeout: 2, noWorkers: 0 });
  });

  it('a late timer never lets a stale request be assigned: complete() expires first', () => {
    const l = lane({ queueTimeout: 100 }, [1]);
    l.enqueue(1, 0);
    l.enqueue(2, 10); // deadline 110
    l.enqueue(3, 50); // deadline 150
    expect(kinds(l.complete(1, 120))).toEqual(['2:queue-timeout', '3->1']);
  });

  it('a queue full of stale requests does not shed a fresh one as full', () => {
    const l = lane({ queue: 2, queueTimeout: 100 }, [1]);
    l.enqueue(1, 0);
    l.enqueue(2, 0);
    l.enqueue(3, 0);
    expect(kinds(l.enqueue(4, 100))).toEqual(['2:queue-timeout', '3:queue-timeout']);
    expect(l.status(4)).toBe('queued');
  });

  it('zero workers: requests queue and wait up to queueTimeout for one, not rejected at once', () => {
    const l = lane({ queueTimeout: 500 }, [1]);
    l.enqueue(1, 0);
    expect(l.removeWorker(1, 10)).toEqual({ failed: [1], decisions: [] });
    expect(l.enqueue(2, 20)).toEqual([]);
    expect(l.enqueue(3, 400)).toEqual([]);
    expect(kinds(l.tick(520))).toEqual(['2:queue-timeout']);
    expect(l.addWorker(2, 600)).toEqual([assign(3, 2)]);
  });

  it('timeout Infinity: nothing expires', () => {
    const l = lane({ queueTimeout: Infinity });
    l.enqueue(1, 0);
    expect(l.nextDeadline()).toBeNull();
    expect(l.tick(1e12)).toEqual([]);
    expect(l.status(1)).toBe('queued');
  });

  it('close(): queued requests and later ones get no-workers, running ones finish, addWorker reopens', () => {
    const l = lane({ queueTimeout: 5000 }, [1]);
    l.enqueue(1, 0);
    l.enqueue(2, 0);
    l.enqueue(3, 0);
    expect(l.close(10)).toEqual([
      { kind: 'reject', id: 2, status: 503, retryAfter: 5, reason: 'no-workers' },
      { kind: 'reject', id: 3, status: 503, retryAfter: 5, reason: 'no-workers' },
    ]);
    expect(l.isClosed).toBe(true);
    expect(l.enqueue(4, 20)).toMatchObject([{ id: 4, reason: 'no-workers' }]);
    expect(l.complete(1, 30)).toEqual([]);
    expect(l.removeWorker(1, 40).failed).toEqual([]);
    expect(l.addWorker(2, 50)).toEqual([]);
    expect(l.enqueue(5, 60)).toEqual([assign(5, 2)]);
    expect(l.stats().shed).toEqual({ full: 0, timeout: 0, noWorkers: 3 });
  });
});

describe('SlowLane: cancel, complete, workers leaving', () => {
  it('cancel removes a queued request; a running one is left to complete()', () => {
    const l = lane({}, [1]);
    l.enqueue(1, 0);
    l.enqueue(2, 0);
    l.enqueue(3, 0);
    expect(l.cancel(2)).toBe(true);
    expect(l.cancel(2)).toBe(false);
    expect(l.status(2)).toBeUndefined();
    expect(l.cancel(1)).toBe(false); // running: the slot stays busy
    expect(l.status(1)).toBe('running');
    expect(l.stats()).toMatchObject({ queued: 1, running: 1, free: 0, cancelled: 1 });
    expect(l.complete(1, 10)).toEqual([assign(3, 1)]);
    expect(l.cancel(99)).toBe(false);
  });

  it('cancel of the head or the tail keeps the order of the rest', () => {
    const l = lane({}, [1]);
    for (const id of [1, 2, 3, 4, 5]) l.enqueue(id, 0);
    expect(l.cancel(2)).toBe(true); // head of the queue
    expect(l.cancel(5)).toBe(true); // tail
    expect(l.enqueue(6, 0)).toEqual([]);
    expect(kinds([...l.complete(1, 1), ...l.complete(3, 2), ...l.complete(4, 3)])).toEqual(['3->1', '4->1', '6->1']);
  });

  it('complete of an id not running changes nothing', () => {
    const l = lane({}, [1]);
    l.enqueue(1, 0);
    l.enqueue(2, 0);
    expect(l.complete(2, 5)).toEqual([]); // queued, not running
    expect(l.status(2)).toBe('queued');
    expect(l.complete(42, 5)).toEqual([]);
    expect(l.stats()).toMatchObject({ completed: 0, running: 1, queued: 1 });
  });

  it('removeWorker fails its running requests, its slots vanish, the queue stays; a late complete is a no-op', () => {
    const l = lane({ concurrency: 2 }, [1, 2]);
    for (const id of [1, 2, 3, 4, 5]) l.enqueue(id, 0);
    const r = l.removeWorker(1, 10);
    expect(r.failed.sort()).toEqual([1, 3]);
    expect(r.decisions).toEqual([]);
    expect(l.stats()).toMatchObject({ workers: 1, running: 2, queued: 1, free: 0, failed: 2 });
    expect(l.complete(1, 11)).toEqual([]); // crossed with the death
    expect(l.complete(2, 12)).toEqual([assign(5, 2)]);
    expect(l.removeWorker(77, 13)).toEqual({ failed: [], decisions: [] });
    expect(l.addWorker(1, 14)).toEqual([]); // the same id, back as a new worker
    expect(l.enqueue(6, 15)).toEqual([assign(6, 1)]);
  });

  it('retireWorker: no new request for it, its running ones complete, then it can leave with nothing failed', () => {
    const l = lane({ concurrency: 2 }, [1, 2]);
    for (const id of [1, 2, 3]) l.enqueue(id, 0); // 1->1, 2->2, 3->1
    expect(l.retireWorker(1)).toBe(2);
    expect(l.stats()).toMatchObject({ workers: 1, free: 1, running: 3 });
    expect(l.enqueue(4, 1)).toEqual([assign(4, 2)]);
    expect(l.enqueue(5, 1)).toEqual([]); // queued: worker 1 has no slot for it any more
    expect(l.complete(1, 2)).toEqual([]);
    expect(l.load(1)).toBe(1);
    expect(l.complete(2, 3)).toEqual([assign(5, 2)]);
    expect(l.complete(3, 4)).toEqual([]);
    expect(l.load(1)).toBe(0);
    expect(l.removeWorker(1, 5).failed).toEqual([]);
    expect(l.stats()).toMatchObject({ workers: 1, running: 2, failed: 0 });
  });

  it('time that runs backwards is taken as the latest time seen', () => {
    const l = lane({ queueTimeout: 100 }, [1]);
    l.enqueue(1, 0);
    l.enqueue(2, 500);
    l.enqueue(3, 10); // taken as 500
    expect(l.nextDeadline()).toBe(600);
    expect(kinds(l.tick(600))).toEqual(['2:queue-timeout', '3:queue-timeout']);
  });
});

describe('SlowLane: requeue (the slow worker refused the connection)', () => {
  it('a refused request waits again at the head, ahead of those queued after it, and takes the next slot', () => {
    const l = lane({ queue: 5 }, [1, 2]);
    expect(kinds(l.enqueue(10, 0))).toEqual(['10->1']);
    expect(kinds(l.enqueue(11, 1))).toEqual(['11->2']);
    expect(l.enqueue(12, 2)).toEqual([]);
    expect(l.retireWorker(1)).toBe(1);
    expect(l.requeue(10, 3)).toEqual([]);
    expect(l.status(10)).toBe('queued');
    expect(l.stats()).toMatchObject({ queued: 2, running: 1, workers: 1, requeued: 1, completed: 0, failed: 0, enqueued: 3 });
    // It waits since the older of its assignment and the head's arrival: the deadline is the head's, not a fresh one.
    expect(l.nextDeadline()).toBe(0 + 1000);
    expect(kinds(l.addWorker(3, 4))).toEqual(['10->3']);
    expect(kinds(l.complete(11, 5))).toEqual(['12->2']);
    expect(l.removeWorker(1, 6)).toEqual({ failed: [], decisions: [] });
  });

  it('assigned after the head arrived, it waits as long as the head may: the head stays the oldest', () => {
    const l = lane({ queue: 5 }, [1]);
    l.enqueue(9, 0);
    l.enqueue(10, 0);
    l.enqueue(11, 5);
    expect(kinds(l.complete(9, 10))).toEqual(['10->1']);
    l.retireWorker(1);
    expect(l.requeue(10, 12)).toEqual([]);
    expect(l.nextDeadline()).toBe(5 + 1000);
    expect(kinds(l.tick(1005))).toEqual(['10:queue-timeout', '11:queue-timeout']);
  });

  it('a free slot elsewhere takes it at once; a closed lane or queue 0 answers 503', () => {
    const l = lane({ queue: 5 }, [1, 2]);
    l.enqueue(10, 0);
    l.retireWorker(1);
    expect(kinds(l.requeue(10, 1))).toEqual(['10->2']);
    const none = lane({ queue: 0 }, [1]);
    none.enqueue(20, 0);
    none.retireWorker(1);
    expect(kinds(none.requeue(20, 1))).toEqual(['20:queue-full']);
    const closed = lane({ queue: 5 }, [1]);
    closed.enqueue(30, 0);
    closed.retireWorker(1);
    closed.close(1);
    expect(kinds(closed.requeue(30, 2))).toEqual(['30:no-workers']);
  });

  it('a full queue sheds its newest to make room: the bound holds and the oldest are kept', () => {
    const l = lane({ queue: 2 }, [1]);
    l.enqueue(10, 0);
    l.enqueue(11, 1);
    l.enqueue(12, 2);
    l.retireWorker(1);
    expect(kinds(l.requeue(10, 3))).toEqual(['12:queue-full']);
    expect(l.stats()).toMatchObject({ queued: 2, shed: { full: 1, timeout: 0, noWorkers: 0 } });
    expect(kinds(l.addWorker(2, 4))).toEqual(['10->2']);
  });

  it('a request already failed by removeWorker comes back as new, at the head; a queued one is a bug', () => {
    const l = lane({ queue: 5 }, [1]);
    l.enqueue(10, 0);
    l.enqueue(11, 1);
    expect(l.removeWorker(1, 2).failed).toEqual([10]);
    expect(l.requeue(10, 3)).toEqual([]);
    expect(l.stats()).toMatchObject({ queued: 2, enqueued: 3, requeued: 0, failed: 1 });
    expect(kinds(l.addWorker(2, 4))).toEqual(['10->2']);
    expect(() => l.requeue(11, 5)).toThrow(/queued, not running/);
  });

  it('one that has waited out queue_timeout by then is answered 503 at once', () => {
    const l = lane({ queue: 5, queueTimeout: 100 }, [1]);
    l.enqueue(10, 0);
    l.retireWorker(1);
    expect(kinds(l.requeue(10, 150))).toEqual(['10:queue-timeout']);
  });
});

describe('SlowLane: Retry-After', () => {
  it('is the expected wait rounded up to seconds, within 1..60', () => {
    expect(retryAfterSeconds(0)).toBe(1);
    expect(retryAfterSeconds(1)).toBe(1);
    expect(retryAfterSeconds(1001)).toBe(2);
    expect(retryAfterSeconds(59_000)).toBe(59);
    expect(retryAfterSeconds(1e9)).toBe(RETRY_AFTER_MAX);
    expect(retryAfterSeconds(Infinity)).toBe(60);
  });

  it('uses the prior before any completion, then the EWMA of service times, the queue length and the slots', () => {
    const l = lane({ queue: 3, queueTimeout: 60_000 }, [1], 2000);
    l.enqueue(1, 0);
    for (const id of [2, 3, 4]) l.enqueue(id, 0);
    // 3 queued, 1 slot, 2 s prior: (3 + 1) x 2000 / 1 = 8 s
    expect(l.enqueue(5, 0)).toMatchObject([{ reason: 'queue-full', retryAfter: 8 }]);
    l.complete(1, 10_000); // first sample: 10 s
    l.enqueue(6, 10_000);
    expect(l.stats().serviceMs).toBe(10_000);
    expect(l.enqueue(7, 10_000)).toMatchObject([{ retryAfter: 40 }]);
    l.complete(2, 10_000); // 0 ms sample: 10 000 + 0.2 x (0 - 10 000) = 8 000
    expect(l.stats().serviceMs).toBe(8000);
    l.enqueue(8, 10_000);
    expect(l.enqueue(9, 10_000)).toMatchObject([{ retryAfter: 32 }]);
    expect(l.addWorker(2, 10_000)).toEqual([assign(4, 2)]);
    l.enqueue(10, 10_000);
    // 3 queued, 2 slots: 4 x 8000 / 2 = 16 s
    expect(l.enqueue(11, 10_000)).toMatchObject([{ retryAfter: 16 }]);
  });
});

// ---------------------------------------------------------------------------
// The model-based property test.

type Op =
  | { op: 'enqueue'; dt: number }
  | { op: 'cancel'; pick: number }
  | { op: 'complete'; pick: number; dt: number }
  | { op: 'add'; reuse: boolean; pick: number; dt: number }
  | { op: 'remove'; pick: number; dt: number }
  | { op: 'retire'; pick: number }
  | { op: 'requeue'; pick: number; dt: number }
  | { op: 'tick'; dt: number }
  | { op: 'close'; dt: number };

const dt = fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 30 }), fc.integer({ min: 0, max: 300 }));
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant('enqueue' as const), dt }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('cancel' as const), pick: fc.nat() }) },
  { weight: 5, arbitrary: fc.record({ op: fc.constant('complete' as const), pick: fc.nat(), dt }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('add' as const), reuse: fc.boolean(), pick: fc.nat(), dt }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('remove' as const), pick: fc.nat(), dt }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('retire' as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('requeue' as const), pick: fc.nat(), dt }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('tick' as const), dt }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('close' as const), dt: fc.constant(0) }) },
);
const limitsArb = fc.record({
  queue: fc.integer({ min: 0, max: 6 }),
  concurrency: fc.integer({ min: 1, max: 3 }),
  queueTimeout: fc.oneof(fc.integer({ min: 1, max: 200 }), fc.constant(Infinity)),
});

type Outcome = 'completed' | 'failed' | 'rejected' | 'cancelled';

/** The world as the decisions describe it; every decision is checked against the rules before it is applied. */
class Model {
  readonly queue: Array<{ id: number; at: number }> = [];
  readonly running = new Map<number, WorkerId>();
  readonly assignedAt = new Map<number, number>();
  /** Live workers: load and the step at which they reached it (the tie-break order). */
  readonly workers = new Map<WorkerId, { load: number; since: number; retired?: boolean }>();
  readonly removed: WorkerId[] = [];
  readonly outcome = new Map<number, Outcome>();
  readonly enqueued: number[] = [];
  nEnqueued = 0; // enqueue calls, and requeues of ids no longer running (they come back as new)
  closed = false;
  now = 0;
  seq = 0;
  nextId = 1;
  nextWorker = 1;
  counts = { assigned: 0, completed: 0, failed: 0, cancelled: 0, requeued: 0, full: 0, timeout: 0, noWorkers: 0 };

  constructor(readonly limits: LaneLimits) {}

  end(id: number, how: Outcome): void {
    if (this.outcome.has(id)) throw new Error(`request ${id}: a second outcome ${how} after ${this.outcome.get(id)}`);
    this.outcome.set(id, how);
  }

  freeWorkers(): Array<[WorkerId, { load: number; since: number }]> {
    return [...this.workers].filter(([, s]) => s.load < this.limits.concurrency && !s.retired);
  }

  /**
   * Applies one decision of a call made at `now`. `fresh` is the id the call
   * enqueued (not yet queued in the model), if any.
   */
  apply(d: Decision, ctx: { call: Op['op']; fresh: number | null }): void {
    const { limits } = this;
    if (d.kind === 'assign') {
      const fromQueue = this.queue[0]?.id === d.id;
      if (d.id === ctx.fresh) {
        if (this.queue.length > 0) throw new Error(`request ${d.id} assigned at once ahead of ${this.queue.length} queued (FIFO)`);
        if (this.closed) throw new Error(`request ${d.id} assigned while the lane is closed`);
      } else if (!fromQueue) {
        throw new Error(`request ${d.id} assigned but it is not the head of the queue (FIFO; head ${this.queue[0]?.id})`);
      } else {
        const waited = this.now - this.queue[0]!.at;
        if (waited >= limits.queueTimeout) throw new Error(`request ${d.id} assigned after waiting ${waited} ms >= queue_timeout`);
        this.queue.shift();
      }
      const w = this.workers.get(d.worker);
      if (!w) throw new Error(`request ${d.id} assigned to worker ${d.worker}, which is not in the lane`);
      if (w.load >= limits.concurrency) throw new Error(`request ${d.id} assigned to worker ${d.worker} already running ${w.load}`);
      if (w.retired) throw new Error(`request ${d.id} assigned to retired worker ${d.worker}`);
      const free = this.freeWorkers();
      const min = Math.min(...free.map(([, s]) => s.load));
      if (w.load !== min) throw new Error(`request ${d.id} to worker ${d.worker} at load ${w.load}, not the least loaded (${min})`);
      const first = Math.min(...free.filter(([, s]) => s.load === min).map(([, s]) => s.since));
      if (w.since !== first) throw new Error(`request ${d.id} to worker ${d.worker}: not the one longest at load ${min}`);
      w.load++;
      w.since = this.seq++;
      this.running.set(d.id, d.worker);
      this.assignedAt.set(d.id, this.now);
      this.counts.assigned++;
      return;
    }
    expect(d.status).toBe(503);
    if (!Number.isInteger(d.retryAfter) || d.retryAfter < 1 || d.retryAfter > 60) throw new Error(`Retry-After ${d.retryAfter}`);
    switch (d.reason) {
      case 'queue-timeout': {
        const head = this.queue[0];
        if (head?.id !== d.id) throw new Error(`request ${d.id} timed out but it is not the oldest queued (${head?.id})`);
        if (this.now - head.at < limits.queueTimeout) throw new Error(`request ${d.id} timed out after ${this.now - head.at} ms < ${limits.queueTimeout}`);
        this.queue.shift();
        this.counts.timeout++;
        break;
      }
      case 'queue-full': {
        if (ctx.call !== 'enqueue' || d.id !== ctx.fresh) throw new Error(`queue-full for ${d.id} outside its enqueue`);
        if (this.queue.length < limits.queue) throw new Error(`request ${d.id} shed as queue-full with ${this.queue.length}/${limits.queue} queued`);
        if (this.freeWorkers().length > 0) throw new Error(`request ${d.id} shed as queue-full while a slot is free`);
        if (this.closed) throw new Error(`request ${d.id}: queue-full on a closed lane`);
        this.counts.full++;
        break;
      }
      case 'no-workers': {
        if (!this.closed) throw new Error(`request ${d.id} shed as no-workers on an open lane`);
        if (d.id === ctx.fresh) {
          if (ctx.call !== 'enqueue') throw new Error('no-workers for a fresh id outside enqueue');
        } else if (ctx.call === 'close' && this.queue[0]?.id === d.id) {
          this.queue.shift();
        } else {
          throw new Error(`no-workers for ${d.id}, neither the new request nor the queue's head during close()`);
        }
        this.counts.noWorkers++;
        break;
      }
    }
    this.end(d.id, 'rejected');
  }
}

/** Checks the lane against the model, and the rules that hold between calls. */
function checkState(l: SlowLane, m: Model): void {
  const { limits } = m;
  const s = l.stats();
  const running = [...m.workers.values()].reduce((n, w) => n + w.load, 0);
  const taking = [...m.workers.values()].filter((w) => !w.retired);
  expect(s).toEqual({
    queued: m.queue.length,
    running,
    workers: taking.length,
    free: taking.reduce((n, w) => n + limits.concurrency - w.load, 0),
    shed: { full: m.counts.full, timeout: m.counts.timeout, noWorkers: m.counts.noWorkers },
    enqueued: m.nEnqueued,
    assigned: m.counts.assigned,
    completed: m.counts.completed,
    failed: m.counts.failed,
    cancelled: m.counts.cancelled,
    requeued: m.counts.requeued,
    serviceMs: s.serviceMs,
  });
  if (s.queued > limits.queue) throw new Error(`${s.queued} queued > limit ${limits.queue}`);
  for (const [w, st] of m.workers) {
    if (st.load > limits.concurrency) throw new Error(`worker ${w} runs ${st.load} > ${limits.concurrency}`);
    expect(l.runningOn(w).sort((a, b) => a - b)).toEqual([...m.running].filter(([, x]) => x === w).map(([id]) => id).sort((a, b) => a - b));
  }
  for (const w of m.removed) if (!m.workers.has(w)) expect(l.runningOn(w)).toEqual([]);
  // Work-conserving: nobody waits while a slot is free.
  if (m.queue.length > 0 && m.freeWorkers().length > 0) throw new Error(`${m.queue.length} queued while a slot is free`);
  if (m.closed && m.queue.length > 0) throw new Error('requests queued on a closed lane');
  // Nobody queued past the timeout once a call at `now` returned.
  for (const q of m.queue) if (m.now - q.at >= limits.queueTimeout) throw new Error(`request ${q.id} still queued after ${m.now - q.at} ms`);
  expect(l.nextDeadline()).toBe(m.queue.length > 0 && limits.queueTimeout !== Infinity ? m.queue[0]!.at + limits.queueTimeout : null);
  // Every enqueued id: exactly one of queued, running, or its outcome.
  const queued = new Set(m.queue.map((q) => q.id));
  for (const id of m.enqueued) {
    const where = (queued.has(id) ? 1 : 0) + (m.running.has(id) ? 1 : 0) + (m.outcome.has(id) ? 1 : 0);
    if (where !== 1) throw new Error(`request ${id} is in ${where} places`);
    expect(l.status(id)).toBe(queued.has(id) ? 'queued' : m.running.has(id) ? 'running' : undefined);
  }
}

function step(l: SlowLane, m: Model, o: Op): void {
  const pickOf = <T>(xs: readonly T[], n: number): T | undefined => (xs.length > 0 ? xs[n % xs.length] : undefined);
  if ('dt' in o) m.now += o.dt;
  const now = m.now;
  let ds: readonly Decision[] = [];
  let fresh: number | null = null;
  switch (o.op) {
    case 'enqueue': {
      fresh = m.nextId++;
      m.enqueued.push(fresh);
      m.nEnqueued++;
      ds = l.enqueue(fresh, now);
      break;
    }
    case 'cancel': {
      // Queued, running, finished or never seen: each must do the right thing.
      const candidates = [...m.queue.map((q) => q.id), ...m.running.keys(), ...m.outcome.keys(), 1e9];
      const id = pickOf(candidates, o.pick)!;
      const i = m.queue.findIndex((q) => q.id === id);
      const got = l.cancel(id);
      if (got !== i >= 0) throw new Error(`cancel(${id}) answered ${got}, expected ${i >= 0}`);
      if (i >= 0) {
        m.queue.splice(i, 1);
        m.end(id, 'cancelled');
        m.counts.cancelled++;
      }
      break;
    }
    case 'complete': {
      // Mostly a running id; now and then one that is not (stale report, queued, unknown).
      const pool = o.pick % 8 === 7 ? [...m.queue.map((q) => q.id), ...m.outcome.keys(), 1e9] : [...m.running.keys()];
      const id = pickOf(pool, o.pick >> 3);
      if (id === undefined) return step(l, m, { op: 'tick', dt: 0 });
      const w = m.running.get(id);
      if (w !== undefined) {
        m.running.delete(id);
        const st = m.workers.get(w)!;
        st.load--;
        st.since = m.seq++;
        m.end(id, 'completed');
        m.counts.completed++;
      }
      ds = l.complete(id, now);
      break;
    }
    case 'add': {
      const back = m.removed.filter((w) => !m.workers.has(w));
      const w = o.reuse && back.length > 0 ? pickOf(back, o.pick)! : m.nextWorker++;
      m.workers.set(w, { load: 0, since: m.seq++ });
      m.closed = false;
      ds = l.addWorker(w, now);
      break;
    }
    case 'remove': {
      const live = [...m.workers.keys()];
      const w = o.pick % 5 === 4 || live.length === 0 ? 1e9 + o.pick : pickOf(live, o.pick)!;
      const r = l.removeWorker(w, now);
      const expected = [...m.running].filter(([, x]) => x === w).map(([id]) => id).sort((a, b) => a - b);
      expect([...r.failed].sort((a, b) => a - b)).toEqual(expected);
      for (const id of expected) {
        m.running.delete(id);
        m.end(id, 'failed');
        m.counts.failed++;
      }
      if (m.workers.delete(w)) m.removed.push(w);
      ds = r.decisions;
      break;
    }
    case 'retire': {
      const live = [...m.workers.keys()];
      const w = live.length === 0 ? 1e9 : pickOf(live, o.pick)!;
      const st = m.workers.get(w);
      expect(l.retireWorker(w)).toBe(st?.load ?? 0);
      if (st) st.retired = true;
      break;
    }
    case 'requeue': {
      // Mostly a running id (its worker refused it); now and then one removeWorker failed first.
      const failed = [...m.outcome].filter(([, how]) => how === 'failed').map(([id]) => id);
      const pool = o.pick % 6 === 5 ? failed : [...m.running.keys()];
      const id = pickOf(pool, o.pick >> 3);
      if (id === undefined) return step(l, m, { op: 'tick', dt: 0 });
      let since = now;
      const w = m.running.get(id);
      if (w !== undefined) {
        const st = m.workers.get(w)!;
        expect(l.retireWorker(w)).toBe(st.load); // the caller retires the worker that refused first
        st.retired = true;
        m.running.delete(id);
        st.load--;
        st.since = m.seq++;
        since = m.assignedAt.get(id)!;
        m.counts.requeued++;
      } else {
        m.outcome.delete(id);
        m.nEnqueued++;
      }
      ds = l.requeue(id, now);
      // What it must decide: expiries of the old heads, then a slot, a 503, or the head (making room by shedding the newest).
      const want: string[] = [];
      const expireHeads = () => {
        while (m.queue.length > 0 && now - m.queue[0]!.at >= m.limits.queueTimeout) {
          const q = m.queue.shift()!;
          want.push(`${q.id}:queue-timeout`);
          m.end(q.id, 'rejected');
          m.counts.timeout++;
        }
      };
      expireHeads();
      const free = m.freeWorkers();
      if (m.closed) {
        want.push(`${id}:no-workers`);
        m.end(id, 'rejected');
        m.counts.noWorkers++;
      } else if (free.length > 0) {
        if (m.queue.length > 0) throw new Error(`requeue of ${id}: ${m.queue.length} queued while a slot is free`);
        const d = ds[want.length];
        want.push(d?.kind === 'assign' && d.id === id ? `${id}->${d.worker}` : `${id}->(a free slot)`);
        if (d?.kind === 'assign') m.apply(d, { call: 'enqueue', fresh: id });
      } else if (m.limits.queue === 0) {
        want.push(`${id}:queue-full`);
        m.end(id, 'rejected');
        m.counts.full++;
      } else {
        if (m.queue.length === m.limits.queue) {
          const q = m.queue.pop()!;
          want.push(`${q.id}:queue-full`);
          m.end(q.id, 'rejected');
          m.counts.full++;
        }
        m.queue.unshift({ id, at: m.queue.length > 0 ? Math.min(since, m.queue[0]!.at) : since });
        expireHeads();
      }
      expect(kinds(ds)).toEqual(want);
      for (const d of ds) if (d.kind === 'reject') expect(d.status).toBe(503);
      checkState(l, m);
      return;
    }
    case 'tick':
      ds = l.tick(now);
      break;
    case 'close':
      m.closed = true;
      ds = l.close(now);
      break;
  }
  for (const d of ds) m.apply(d, { call: o.op, fresh });
  if (fresh !== null && !m.outcome.has(fresh) && !m.running.has(fresh)) {
    // Not decided: it must have been queued, at the back.
    if (l.status(fresh) !== 'queued') throw new Error(`request ${fresh} got no decision and is not queued`);
    m.queue.push({ id: fresh, at: now });
  }
  checkState(l, m);
}

describe('SlowLane: model-based property', () => {
  it('keeps its rules under random operations at monotonic times', () => {
    fc.assert(
      fc.property(limitsArb, fc.array(opArb, { minLength: 1, maxLength: 150 }), (limits, ops) => {
        const l = new SlowLane(limits);
        const m = new Model(limits);
        for (const o of ops) step(l, m, o);
        // Drain: complete everything, then let every queued request meet its end.
        if (m.closed) step(l, m, { op: 'add', reuse: false, pick: 0, dt: 0 });
        if ([...m.workers.values()].every((w) => w.retired)) step(l, m, { op: 'add', reuse: false, pick: 0, dt: 0 });
        for (let i = 0; i < 1000 && (m.running.size > 0 || m.queue.length > 0); i++) step(l, m, { op: 'complete', pick: 0, dt: 1 });
        expect(m.queue.length + m.running.size).toBe(0);
        expect(m.outcome.size).toBe(m.enqueued.length);
        expect(l.stats().requeued).toBe(m.counts.requeued);
      }),
      { numRuns: 400 },
    );
  });

  it('sheds only when full, timed out or closed: a lane with room never sheds', () => {
    // Enough slots and queue for every request ever made, no timeout, no close: no 503 at all.
    fc.assert(
      fc.property(fc.array(opArb.filter((o) => o.op !== 'close' && o.op !== 'remove' && o.op !== 'retire'), { maxLength: 100 }), (ops) => {
        const limits = { queue: 200, concurrency: 2, queueTimeout: Infinity };
        const l = new SlowLane(limits);
        const m = new Model(limits);
        for (const o of ops) step(l, m, o);
        expect(l.stats().shed).toEqual({ full: 0, timeout: 0, noWorkers: 0 });
      }),
      { numRuns: 200 },
    );
  });
});
