// The slow lane's queue policy (DESIGN "Lanes", issue 5 items 3 and 4), as a
// pure state machine: the arbiter feeds it what happened and when (a fast
// worker asks a slot for a request, cancels it, reports it complete; a slow
// worker comes or goes; a timer fires) and acts on the decisions it returns
// (tell a fast worker which slow worker to stream to, or to answer 503). No
// clock, no timer, no I/O: time comes in as milliseconds from the caller's
// monotonic clock, and nextDeadline() says when to call tick().
//
// The rules:
// - One bounded FIFO queue for the whole lane, `queue` entries at most
//   (0: no waiting at all, a request either gets a free slot or a 503).
// - Work-conserving: a request is queued only when no slot is free, and every
//   call that frees a slot or adds one assigns queued requests at once, oldest
//   first. So "queued > 0" implies "every slot busy", after every call.
// - Slot choice: the least-loaded worker with a free slot; among equally
//   loaded ones, the one that has been at that load the longest, i.e. for
//   idle workers the one idle the longest (LRU). Least-loaded because slow
//   requests are CPU-bound and the slots of one worker share one event loop:
//   a request on an idle worker gets a core to itself, one stacked on a busy
//   worker halves its speed while another worker sits idle. Longest idle
//   among ties spreads requests evenly over the workers (equal progress
//   towards max_requests recycling, equal heap growth) and is exactly
//   round-robin when every worker is idle; it costs O(1): workers sit in one
//   list per load level, appended when they reach that level.
// - Shedding, only these three (DESIGN "Overload": nothing else is shed):
//     'queue-full'    enqueue finds no free slot and `queue` entries waiting;
//     'queue-timeout' a request has waited queueTimeout ms or more (checked
//                     at the start of every call that takes `now`, and by
//                     tick(), so a late timer never lets a stale request be
//                     assigned, nor a queue of stale requests shed a fresh one
//                     as full);
//     'no-workers'    only after close(): the arbiter knows no slow worker
//                     will come (shutdown, lanes turned off); the queue is
//                     flushed and later requests rejected at once.
//   Zero slow workers is otherwise NOT a reason to shed: a lane with no
//   worker (the only one crashed and is being respawned, a reload replaces
//   them, the first ones are still starting) queues as usual and requests
//   wait up to queueTimeout for one to come. In drover a slow worker is
//   always respawned, the gap is transient, and queueTimeout is the bound on
//   a client's wait that the operator chose; rejecting at once would turn
//   every recycle of a 1-worker lane into a burst of 503s.
// - cancel(id): a queued request is removed (its terminal outcome); a running
//   one is left alone and cancel answers false: the slot stays busy until
//   the fast worker reports complete() (or the worker dies), because the
//   slow worker is still burning CPU on it and freeing the slot early would
//   put concurrency + 1 requests on it. The fast worker, seeing its client
//   gone, aborts the stream to the slow worker and reports complete() when
//   that worker has let go.
// - complete(id) of an id that is not running (unknown, already failed by
//   removeWorker, still queued) changes nothing: a worker's death and the
//   fast worker's completion report can cross.
// - retireWorker(w): no new request for it (max_requests, its generation
//   replaced); its running ones go on to complete(), and the caller stops
//   it once load(w) is 0, then calls removeWorker (nothing fails then).
// - removeWorker(w): its running requests fail (returned; the fast workers
//   answer 502 or reset), its slots vanish; queued requests stay queued.
// - requeue(id): the slow worker named for a running request refused its
//   connection, so nothing of it reached the app: its slot is given up and it
//   waits again, at the queue's head (it is older than anything queued), as
//   long as the request there may (or from its assignment, if that was
//   later). The caller retires the worker that refused first. If the queue
//   is full, its newest request is shed as 'queue-full' to make room: the
//   queue keeps its oldest within its bound. Without it the request got a 502
//   when a slow worker died between freeing its last slot and being reaped.
// - Every enqueued id gets exactly one terminal outcome: assigned and then
//   completed or failed, rejected, or cancelled (a requeue undoes an
//   assignment and is no outcome). An id may be reused once it has had its
//   outcome; enqueueing an id that is live throws (a bug).
//
// Retry-After (seconds, 1..60): the expected wait of a request joining the
// queue now, (queued + 1) × service / slots, rounded up; `service` is an
// EWMA (alpha 0.2) of assign→complete durations, `serviceMs` (default 1 s)
// until the first completion; `slots` is workers × concurrency, as if one
// worker while there are none. For 'no-workers', queueTimeout (the horizon
// the lane would have waited for a worker), in the same bounds. A fixed
// setting would be wrong for most apps: a lane of 200 ms routes with an
// empty queue should say 1 s, one of 10 s reports with 50 waiting, 60 s.
//
// Cost: O(1) per request for enqueue, cancel, assignment and expiry (the
// queue is a doubly linked list over a fixed pool of `queue` slots in typed
// arrays, so it never grows nor allocates per request; one Map says where
// each live request is), O(concurrency) for complete and slot choice. The
// only allocation per request is the decision returned.
//
// Ids are numbers: a safe integer the caller makes unique among live
// requests (e.g. fast worker index × 2^32 + a per-worker counter). Worker
// ids are any numbers (a pid, a slot index).
//
// Every public call that changes the lane ends in settled(), which asserts
// the invariants above in O(1) (plus one slot choice, O(concurrency)):
// counts within their bounds, every live id in exactly one place, every
// enqueued id accounted for by one outcome or still live, work-conserving.
// The private steps assert their own pre-conditions (a list unlinks only
// what it holds). Messages are literals: no allocation on the hot path.

import { assert } from '../assert.js';
import { planted, type Hooks } from '../../os/hooks.js';

export type RequestId = number;
export type WorkerId = number;

export interface LaneLimits {
  /** Queue entries at most (slow_queue); 0: no waiting. */
  readonly queue: number;
  /** Requests running at once on one slow worker (slow_concurrency), at least 1. */
  readonly concurrency: number;
  /** A queued request that has waited this long (ms) is rejected (queue_timeout); Infinity: never. */
  readonly queueTimeout: number;
}

export interface LaneOptions {
  /** The service time (ms) assumed for Retry-After until the first completion. Default 1000. */
  readonly serviceMs?: number;
  /** The owner's Os.hooks: a chaos run may plant 'queue-double-assign'. */
  readonly hooks?: Hooks;
}

export type Decision =
  | { readonly kind: 'assign'; readonly id: RequestId; readonly worker: WorkerId }
  | {
    readonly kind: 'reject'; readonly id: RequestId; readonly status: 503; readonly retryAfter: number;
    readonly reason: 'queue-full' | 'queue-timeout' | 'no-workers';
  };

export interface LaneStats {
  readonly queued: number;
  readonly running: number;
  readonly workers: number;
  /** Free slots: workers × concurrency − running. */
  readonly free: number;
  readonly shed: { readonly full: number; readonly timeout: number; readonly noWorkers: number };
  /** Totals since the lane was made. */
  readonly enqueued: number;
  readonly assigned: number;
  /** Assignments undone because the slow worker refused the request (requeue). */
  readonly requeued: number;
  readonly completed: number;
  readonly failed: number;
  readonly cancelled: number;
  /** The service-time EWMA (ms), null before the first completion. */
  readonly serviceMs: number | null;
}

export const RETRY_AFTER_MIN = 1;
export const RETRY_AFTER_MAX = 60;
export const SERVICE_ALPHA = 0.2;
export const SERVICE_PRIOR_MS = 1000;

/** Seconds for Retry-After from an expected wait in ms: rounded up, within 1..60. */
export function retryAfterSeconds(waitMs: number): number {
  // A wait is never negative nor NaN (queueTimeout, or queue × an EWMA of non-negative samples); Infinity is the cap.
  assert(waitMs >= 0, 'slow lane: a Retry-After from a negative or NaN wait');
  const s = Math.ceil(waitMs / 1000);
  const r = s >= RETRY_AFTER_MAX ? RETRY_AFTER_MAX : s > RETRY_AFTER_MIN ? s : RETRY_AFTER_MIN;
  assert(Number.isInteger(r) && r >= RETRY_AFTER_MIN && r <= RETRY_AFTER_MAX, 'slow lane: Retry-After outside 1..60 whole seconds');
  return r;
}

const NONE: readonly Decision[] = Object.freeze([]);

export class SlowLane {
  private readonly cap: number;
  private readonly conc: number;
  private readonly timeout: number;
  private readonly prior: number;

  // The queue: a doubly linked list over a pool of `cap` slots; free slots
  // are chained through qNext from qFree.
  private readonly qId: Float64Array;
  private readonly qAt: Float64Array;
  private readonly qNext: Int32Array;
  private readonly qPrev: Int32Array;
  private qHead = -1;
  private qTail = -1;
  private qFree: number;
  private qLen = 0;

  /** Where each live request is: a queue slot (>= 0), or running on worker index i (-(i + 1)). */
  private readonly where = new Map<RequestId, number>();

  // Workers by index (indices of removed workers are reused). wLoad is -1 for
  // a free index. A worker with load l < conc is in level list l.
  private readonly wIndex = new Map<WorkerId, number>();
  private readonly wId: number[] = [];
  private readonly wLoad: number[] = [];
  private readonly wNext: number[] = [];
  private readonly wPrev: number[] = [];
  private readonly wFreeIdx: number[] = [];
  /** Running requests of worker i: rId[i·conc .. i·conc + load − 1], assigned at rAt. */
  private readonly rId: number[] = [];
  private readonly rAt: number[] = [];
  private readonly lHead: Int32Array;
  private readonly lTail: Int32Array;
  private nWorkers = 0;
  /** Retired workers (retireWorker): they finish what they run and take nothing new. */
  private readonly wRetired: boolean[] = [];
  private nRetired = 0;
  private nRunning = 0;

  private t = -Infinity;
  private closed = false;
  private service: number | null = null;

  private nEnqueued = 0;
  private nAssigned = 0;
  private nCompleted = 0;
  private nFailed = 0;
  private nCancelled = 0;
  private nRequeued = 0;
  private shedFull = 0;
  private shedTimeout = 0;
  private shedNoWorkers = 0;
  /** The planted defect 'queue-double-assign' (hooks.ts): a request assigned is left queued, to be assigned again. */
  private readonly leavesQueued: boolean;

  constructor(limits: LaneLimits, options: LaneOptions = {}) {
    const { queue, concurrency, queueTimeout } = limits;
    if (!Number.isInteger(queue) || queue < 0) throw new RangeError(`slow lane: queue must be an integer >= 0, not ${queue}`);
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new RangeError(`slow lane: concurrency must be an integer >= 1, not ${concurrency}`);
    if (!(queueTimeout > 0)) throw new RangeError(`slow lane: queueTimeout must be > 0 ms (or Infinity), not ${queueTimeout}`);
    const prior = options.serviceMs ?? SERVICE_PRIOR_MS;
    if (!(prior >= 0) || !Number.isFinite(prior)) throw new RangeError(`slow lane: serviceMs must be a finite number >= 0, not ${prior}`);
    this.cap = queue;
    this.conc = concurrency;
    this.timeout = queueTimeout;
    this.prior = prior;
    this.leavesQueued = options.hooks !== undefined && planted(options.hooks, 'queue-double-assign');
    this.qId = new Float64Array(queue);
    this.qAt = new Float64Array(queue);
    this.qNext = new Int32Array(queue);
    this.qPrev = new Int32Array(queue);
    for (let i = 0; i < queue; i++) this.qNext[i] = i + 1 < queue ? i + 1 : -1;
    this.qFree = queue > 0 ? 0 : -1;
    this.lHead = new Int32Array(concurrency).fill(-1);
    this.lTail = new Int32Array(concurrency).fill(-1);
    // The pool starts whole: its `queue` slots all chained from qFree, the last ending the chain.
    let free = 0;
    for (let i = this.qFree; i >= 0 && free <= queue; i = this.qNext[i]!) free++;
    assert(free === queue, 'slow lane: the queue pool does not chain its slots');
  }

  /**
   * A fast worker asks a slot for request `id`. Decides at once (assign to a
   * free slot, or reject 'queue-full', or 'no-workers' after close()) or
   * queues it (no decision about `id` yet). Also carries the expiry of
   * requests that timed out by `now`.
   */
  enqueue(id: RequestId, now: number): readonly Decision[] {
    if (!Number.isSafeInteger(id)) throw new TypeError(`slow lane: request id must be a safe integer, not ${id}`);
    if (this.where.has(id)) throw new Error(`slow lane: request ${id} is already queued or running`);
    now = this.clock(now);
    let out = this.expire(now, null);
    this.nEnqueued++;
    let d: Decision;
    if (this.closed) {
      d = this.shed(id, 'no-workers');
    } else {
      const w = this.pick();
      if (w >= 0) {
        // A free slot means an empty queue (work-conserving).
        d = this.assign(w, id, now);
      } else if (this.qLen < this.cap) {
        this.qPush(id, now);
        this.settled();
        // No decision yet: it waits, the newest, at the queue's tail.
        assert(this.where.get(id) === this.qTail, 'slow lane: a request queued but not at the tail');
        return out ?? NONE;
      } else {
        d = this.shed(id, 'queue-full');
      }
    }
    this.settled();
    assert(this.where.get(id) === undefined ? d.kind === 'reject' : d.kind === 'assign', 'slow lane: an enqueue decided, but the id is not where its decision says');
    if (out === null) return [d];
    // Not reached today (an expiry leaves room to queue the new request), kept
    // so that expiries still come first should that change.
    out.push(d);
    return out;
  }

  /**
   * The client of `id` went away. Queued: removed, true (its terminal
   * outcome). Running: false, nothing changes (complete() ends it once the
   * slow worker let go). Unknown: false.
   */
  cancel(id: RequestId): boolean {
    const at = this.where.get(id);
    if (at === undefined || at < 0) return false;
    assert(this.qId[at] === id, 'slow lane: where names a queue slot that holds another request');
    this.where.delete(id);
    this.qRemove(at);
    this.nCancelled++;
    this.settled();
    return true;
  }

  /**
   * Request `id` is done on its slow worker (response streamed, or aborted):
   * its slot is free and the oldest queued request gets it. An id that is not
   * running changes nothing (see the header).
   */
  complete(id: RequestId, now: number): readonly Decision[] {
    now = this.clock(now);
    const at = this.where.get(id);
    let out: Decision[] | null = null;
    if (at !== undefined && at < 0) {
      const sample = now - this.vacate(-at - 1, id);
      // Assigned at the lane's clock, which only runs forward: a service time is never negative.
      assert(sample >= 0, 'slow lane: a request completed before it was assigned');
      this.service = this.service === null ? sample : this.service + SERVICE_ALPHA * (sample - this.service);
      this.nCompleted++;
    }
    out = this.expire(now, out);
    out = this.drain(now, out);
    this.settled();
    assert(this.status(id) !== 'running', 'slow lane: a request still running after its complete()');
    return out ?? NONE;
  }

  /**
   * The slow worker running `id` refused its connection (see the header):
   * the request waits again at the queue's head, or gets a slot at once, or
   * is rejected (the lane closed, or `queue` 0). An id not running (its
   * worker's removeWorker came first) comes back as a new request, at the
   * head. A queued id throws (a bug).
   */
  requeue(id: RequestId, now: number): readonly Decision[] {
    if (!Number.isSafeInteger(id)) throw new TypeError(`slow lane: request id must be a safe integer, not ${id}`);
    const at = this.where.get(id);
    if (at !== undefined && at >= 0) throw new Error(`slow lane: request ${id} is queued, not running: nothing to requeue`);
    now = this.clock(now);
    let since = now;
    if (at !== undefined) {
      const w = -at - 1;
      // Retired first by the caller: else the slot it frees would hand the request straight back to the worker that refused it.
      assert(this.wRetired[w] === true, 'slow lane: a request requeued from a worker still taking requests');
      since = this.vacate(w, id);
      this.nRequeued++;
    } else {
      this.nEnqueued++;
    }
    const out = this.expire(now, null) ?? [];
    let d: Decision | null = null;
    if (this.closed) {
      d = this.shed(id, 'no-workers');
    } else {
      const w = this.pick();
      if (w >= 0) {
        d = this.assign(w, id, now); // a free slot means an empty queue (work-conserving)
      } else if (this.cap === 0) {
        d = this.shed(id, 'queue-full');
      } else {
        if (this.qLen === this.cap) {
          // Full: the newest waiting makes room for an older one, so the queue keeps its bound and its oldest.
          const s = this.qTail;
          const last = this.qId[s]!;
          this.qRemove(s);
          this.where.delete(last);
          out.push(this.shed(last, 'queue-full'));
        }
        this.qUnshift(id, this.qHead >= 0 && this.qAt[this.qHead]! < since ? this.qAt[this.qHead]! : since);
        // It may have waited its queue_timeout already (assigned long ago, or behind an old head).
        this.expire(now, out);
      }
    }
    if (d !== null) out.push(d);
    this.settled();
    // It is queued at the head, running, or had its outcome in `out`: never left where it was.
    assert(this.status(id) === undefined ? out.some((x) => x.id === id && x.kind === 'reject') : this.status(id) === 'running' || this.qId[this.qHead] === id,
      'slow lane: a requeued request is neither at the head, nor running, nor rejected');
    return out.length > 0 ? out : NONE;
  }

  /** A slow worker is ready for requests: `concurrency` more slots, filled from the queue at once. */
  addWorker(worker: WorkerId, now: number): readonly Decision[] {
    if (this.wIndex.has(worker)) throw new Error(`slow lane: worker ${worker} is already in the lane`);
    now = this.clock(now);
    const w = this.wFreeIdx.length > 0 ? this.wFreeIdx.pop()! : this.wId.length;
    // A reused index is one removeWorker let go of (load -1), so no request of the old worker lingers in it.
    assert(w === this.wId.length || this.wLoad[w] === -1, 'slow lane: a worker index reused while taken');
    this.wIndex.set(worker, w);
    this.wId[w] = worker;
    this.wLoad[w] = 0;
    this.wRetired[w] = false;
    this.wNext[w] = -1;
    this.wPrev[w] = -1;
    for (let k = w * this.conc, end = k + this.conc; k < end; k++) {
      this.rId[k] = 0;
      this.rAt[k] = 0;
    }
    this.link(w, 0);
    this.nWorkers++;
    this.closed = false;
    const out = this.drain(now, this.expire(now, null));
    this.settled();
    assert(this.wIndex.get(worker) === w && this.nWorkers === this.wIndex.size, 'slow lane: the worker count and the index disagree');
    return out ?? NONE;
  }

  /**
   * A slow worker is gone (exited, killed, recycled, or no longer to be
   * used): its running requests fail (returned in `failed`, each its
   * terminal outcome), its slots vanish. Queued requests stay queued.
   * An unknown worker changes nothing but the expiry due by `now`.
   */
  removeWorker(worker: WorkerId, now: number): { failed: RequestId[]; decisions: readonly Decision[] } {
    now = this.clock(now);
    const w = this.wIndex.get(worker);
    const failed: RequestId[] = [];
    if (w !== undefined) {
      const load = this.wLoad[w]!;
      const base = w * this.conc;
      for (let k = base; k < base + load; k++) {
        const id = this.rId[k]!;
        // Its slots hold exactly the requests where places on it.
        assert(this.where.get(id) === -w - 1, 'slow lane: a worker\'s slot holds a request placed elsewhere');
        failed.push(id);
        this.where.delete(id);
      }
      if (load < this.conc && !this.wRetired[w]) this.unlink(w, load);
      if (this.wRetired[w]) this.nRetired--;
      this.wRetired[w] = false;
      this.wLoad[w] = -1;
      this.wIndex.delete(worker);
      this.wFreeIdx.push(w);
      this.nWorkers--;
      this.nRunning -= load;
      this.nFailed += load;
    }
    const decisions = this.expire(now, null) ?? NONE;
    this.settled();
    assert(!this.wIndex.has(worker) && this.nWorkers === this.wIndex.size, 'slow lane: a removed worker is still counted');
    return { failed, decisions };
  }

  /**
   * A slow worker is to stop (recycled, or its generation replaced): it
   * takes no new request and keeps its running ones until they complete (or
   * fail through removeWorker). Answers how many it still runs; the caller
   * stops it once that is 0 (idle(worker)) and then calls removeWorker.
   */
  retireWorker(worker: WorkerId): number {
    const w = this.wIndex.get(worker);
    if (w === undefined) return 0;
    if (!this.wRetired[w]) {
      if (this.wLoad[w]! < this.conc) this.unlink(w, this.wLoad[w]!);
      this.wRetired[w] = true;
      this.nRetired++;
    }
    this.settled();
    // Retired: no new request; pick() never returns it (it is in no load level now).
    assert(this.pick() !== w, 'slow lane: a retired worker can still be picked');
    // It keeps what it runs: a load within 0..concurrency.
    assert(this.wLoad[w]! >= 0 && this.wLoad[w]! <= this.conc, 'slow lane: a retired worker with a load outside 0..concurrency');
    return this.wLoad[w]!;
  }

  /** Requests running on `worker` now (0 for an unknown one). */
  load(worker: WorkerId): number {
    const w = this.wIndex.get(worker);
    const load = w === undefined ? 0 : this.wLoad[w]!;
    // A worker in the lane never has the -1 of a free index, nor more than concurrency requests.
    assert(load >= 0 && load <= this.conc, 'slow lane: a worker load outside 0..concurrency');
    return load;
  }

  /** Rejects the queued requests that have waited queueTimeout or more by `now`. */
  tick(now: number): readonly Decision[] {
    const out = this.expire(this.clock(now), null) ?? NONE;
    this.settled();
    // Expiry frees no slot, so a tick only ever rejects, for time.
    for (const d of out) assert(d.kind === 'reject' && d.reason === 'queue-timeout', 'slow lane: a tick decided something other than a timeout');
    // Nothing left queued is due: the next deadline is after the time just seen.
    assert(this.qHead < 0 || this.qAt[this.qHead]! > this.t - this.timeout, 'slow lane: a tick left a request past its queue timeout');
    return out;
  }

  /**
   * No slow worker will come (shutdown, lanes turned off): every queued
   * request is rejected 'no-workers' now, and every later enqueue at once,
   * until addWorker() opens the lane again. Running requests go on to
   * complete() or fail.
   */
  close(now: number): readonly Decision[] {
    now = this.clock(now);
    this.closed = true;
    const out = this.expire(now, null) ?? [];
    const retryAfter = retryAfterSeconds(this.timeout);
    while (this.qHead >= 0) {
      const s = this.qHead;
      const id = this.qId[s]!;
      this.qRemove(s);
      this.where.delete(id);
      this.shedNoWorkers++;
      out.push({ kind: 'reject', id, status: 503, retryAfter, reason: 'no-workers' });
    }
    this.settled();
    assert(this.qLen === 0 && this.qHead < 0 && this.qTail < 0, 'slow lane: requests left queued after close()');
    // close() assigns nothing (no slot came): every decision is a reject, for time or for the lane closing.
    for (const d of out) assert(d.kind === 'reject' && (d.reason === 'no-workers' || d.reason === 'queue-timeout'), 'slow lane: close() decided something other than a reject');
    return out.length > 0 ? out : NONE;
  }

  /** When tick() next has work (ms, on the caller's clock), or null: nothing queued, or no timeout. */
  nextDeadline(): number | null {
    // The head was queued at a time this lane has seen: qAt is the lane's clock at the push, and the clock only runs forward.
    assert(this.qHead < 0 || this.qAt[this.qHead]! <= this.t, 'slow lane: a request queued in the future');
    return this.qHead >= 0 && this.timeout !== Infinity ? this.qAt[this.qHead]! + this.timeout : null;
  }

  /** Where request `id` is now, or undefined once it had its outcome (or never came). */
  status(id: RequestId): 'queued' | 'running' | undefined {
    const at = this.where.get(id);
    // where is right about it: its queue slot holds it, or its worker runs something.
    assert(at === undefined || at < 0 || this.qId[at] === id, 'slow lane: where names a queue slot that holds another request');
    assert(at === undefined || at >= 0 || this.wLoad[-at - 1]! > 0, 'slow lane: where names a worker that runs nothing');
    return at === undefined ? undefined : at >= 0 ? 'queued' : 'running';
  }

  /** The slow worker running `id`, or undefined if it is not running. */
  workerOf(id: RequestId): WorkerId | undefined {
    const at = this.where.get(id);
    if (at === undefined || at >= 0) return undefined;
    const w = -at - 1;
    // Running on a worker still in the lane (removeWorker fails what its worker ran), which runs something.
    assert(this.wIndex.get(this.wId[w]!) === w, 'slow lane: a request running on a worker no longer in the lane');
    assert(this.wLoad[w]! > 0, 'slow lane: a request running on a worker that runs nothing');
    return this.wId[w];
  }

  /** The requests running on `worker` (empty if unknown). */
  runningOn(worker: WorkerId): RequestId[] {
    const w = this.wIndex.get(worker);
    if (w === undefined) return [];
    return this.rId.slice(w * this.conc, w * this.conc + this.wLoad[w]!);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  stats(): LaneStats {
    const free = this.freeSlots();
    // Counted by a scan of the loads, not by the level lists pick() reads: work-conserving, and within the slots.
    assert(this.qLen === 0 || free === 0, 'slow lane: a request is queued while a slot is free');
    assert(free >= 0 && free <= (this.nWorkers - this.nRetired) * this.conc, 'slow lane: free slots outside 0..workers × concurrency');
    return {
      queued: this.qLen,
      running: this.nRunning,
      workers: this.nWorkers - this.nRetired,
      free,
      shed: { full: this.shedFull, timeout: this.shedTimeout, noWorkers: this.shedNoWorkers },
      enqueued: this.nEnqueued,
      assigned: this.nAssigned,
      completed: this.nCompleted,
      failed: this.nFailed,
      cancelled: this.nCancelled,
      requeued: this.nRequeued,
      serviceMs: this.service,
    };
  }

  // --- internals ---------------------------------------------------------

  /** The invariants every public call that changes the lane leaves behind (see the header). */
  private settled(): void {
    assert(this.qLen >= 0 && this.qLen <= this.cap, 'slow lane: queue length outside 0..queue');
    assert(this.nWorkers === this.wIndex.size && this.nRetired >= 0 && this.nRetired <= this.nWorkers, 'slow lane: worker counts disagree');
    // Running requests fit the slots of the workers present (retired ones keep theirs until done).
    assert(this.nRunning >= 0 && this.nRunning <= this.nWorkers * this.conc, 'slow lane: running outside 0..workers × concurrency');
    // Every live id in exactly one place: one entry of `where` per queued or running request.
    assert(this.where.size === this.qLen + this.nRunning, 'slow lane: where does not hold exactly the queued and running requests');
    // Every enqueued id has had exactly one outcome, or waits in the queue; every assignment runs, ended once, or was undone (requeue).
    assert(this.nEnqueued + this.nRequeued === this.qLen + this.nAssigned + this.nCancelled + this.shedFull + this.shedTimeout + this.shedNoWorkers,
      'slow lane: enqueued requests and their outcomes do not add up');
    assert(this.nAssigned === this.nRunning + this.nCompleted + this.nFailed + this.nRequeued, 'slow lane: assigned requests and their ends do not add up');
    // Work-conserving: a request waits only while no slot is free.
    assert(this.qLen === 0 || this.pick() < 0, 'slow lane: a request is queued while a slot is free');
    // Closed: the queue was flushed and every later enqueue is rejected at once, until a worker comes.
    assert(!this.closed || this.qLen === 0, 'slow lane: requests queued in a closed lane');
  }

  /** Time never runs backwards here: a `now` older than one seen is taken as that one. */
  private clock(now: number): number {
    if (now !== now) throw new TypeError('slow lane: now is NaN');
    if (now > this.t) this.t = now;
    return this.t;
  }

  /** Expected wait of a request joining now, as Retry-After seconds. */
  private retryAfter(): number {
    const active = this.nWorkers - this.nRetired;
    assert(active >= 0, 'slow lane: more retired workers than workers');
    // The EWMA of non-negative samples, or the prior checked at construction.
    assert((this.service ?? this.prior) >= 0, 'slow lane: a negative or NaN service time');
    const slots = (active > 0 ? active : 1) * this.conc;
    return retryAfterSeconds(((this.qLen + 1) * (this.service ?? this.prior)) / slots);
  }

  /** Rejects the queue's head while it has waited `timeout` by `now` (FIFO with one timeout: the head is the oldest). */
  private expire(now: number, out: Decision[] | null): Decision[] | null {
    const limit = now - this.timeout;
    while (this.qHead >= 0 && this.qAt[this.qHead]! <= limit) {
      const s = this.qHead;
      const id = this.qId[s]!;
      assert(this.where.get(id) === s, 'slow lane: a queued request that where places elsewhere');
      this.qRemove(s);
      this.where.delete(id);
      this.shedTimeout++;
      (out ??= []).push({ kind: 'reject', id, status: 503, retryAfter: this.retryAfter(), reason: 'queue-timeout' });
    }
    // FIFO with one timeout: once the head is young enough, every request behind it is too.
    assert(this.qHead < 0 || this.qAt[this.qHead]! > limit, 'slow lane: an expired request left at the head');
    return out;
  }

  /** Assigns queued requests, oldest first, while a slot is free. */
  private drain(now: number, out: Decision[] | null): Decision[] | null {
    while (this.qHead >= 0) {
      const w = this.pick();
      if (w < 0) break;
      const s = this.qHead;
      const id = this.qId[s]!;
      assert(this.where.get(id) === s, 'slow lane: a queued request that where places elsewhere');
      if (!this.leavesQueued) this.qRemove(s);
      (out ??= []).push(this.assign(w, id, now));
    }
    // Drained: the queue is empty, or every slot is busy.
    assert(this.qHead < 0 || this.pick() < 0, 'slow lane: drain stopped with a queued request and a free slot');
    return out;
  }

  /** Free slots of the workers that take requests. Rare (stats), so a scan. */
  private freeSlots(): number {
    let n = 0;
    for (const w of this.wIndex.values()) {
      assert(this.wLoad[w]! >= 0 && this.wLoad[w]! <= this.conc, 'slow lane: a worker load outside 0..concurrency');
      if (!this.wRetired[w]) n += this.conc - this.wLoad[w]!;
    }
    // Retired workers keep their running requests but offer no slot.
    assert(n <= (this.nWorkers - this.nRetired) * this.conc, 'slow lane: more free slots than the active workers have');
    return n;
  }

  /** The worker to get the next request: head of the lowest non-empty load level, or -1. */
  private pick(): number {
    for (let l = 0; l < this.conc; l++) {
      const w = this.lHead[l]!;
      if (w < 0) continue;
      // Level lists hold exactly the workers taking requests at that load.
      assert(this.wLoad[w] === l && !this.wRetired[w], 'slow lane: a load level lists a worker of another load, or a retired one');
      // ... and only workers still in the lane: removeWorker unlinks what it lets go of.
      assert(this.wIndex.get(this.wId[w]!) === w, 'slow lane: a load level lists a removed worker');
      return w;
    }
    return -1;
  }

  private assign(w: number, id: RequestId, now: number): Decision {
    const load = this.wLoad[w]!;
    assert(load >= 0 && load < this.conc && !this.wRetired[w], 'slow lane: a request assigned to a full, retired or removed worker');
    // A request runs once: it comes from enqueue (nowhere yet) or from the queue's head (a queue slot).
    const at = this.where.get(id);
    assert(at === undefined || at >= 0, 'slow lane: a request assigned while already running');
    // Assigned at the lane's clock (every caller's `now` went through clock()): service samples count from it.
    assert(now === this.t, 'slow lane: a request assigned at a time other than the lane\'s clock');
    const k = w * this.conc + load;
    this.rId[k] = id;
    this.rAt[k] = now;
    this.setLoad(w, load + 1);
    this.where.set(id, -w - 1);
    this.nRunning++;
    this.nAssigned++;
    return { kind: 'assign', id, worker: this.wId[w]! };
  }

  /** A 503 for `id`, which is in no queue slot nor on a worker, counted by its reason. */
  private shed(id: RequestId, reason: 'queue-full' | 'no-workers'): Decision {
    assert(!this.where.has(id), 'slow lane: a request shed while still queued or running');
    if (reason === 'queue-full') this.shedFull++;
    else this.shedNoWorkers++;
    const d: Decision = { kind: 'reject', id, status: 503, retryAfter: reason === 'queue-full' ? this.retryAfter() : retryAfterSeconds(this.timeout), reason };
    // Retry-After within 1..60 whole seconds (retryAfterSeconds).
    assert(d.retryAfter >= RETRY_AFTER_MIN && d.retryAfter <= RETRY_AFTER_MAX, 'slow lane: a Retry-After outside 1..60');
    return d;
  }

  /** Takes running request `id` off worker index w; answers when it was assigned. */
  private vacate(w: number, id: RequestId): number {
    this.where.delete(id);
    const base = w * this.conc;
    const last = base + this.wLoad[w]! - 1;
    assert(last >= base, 'slow lane: a running request on a worker that runs none');
    let k = base;
    while (this.rId[k] !== id && k < last) k++;
    assert(this.rId[k] === id, 'slow lane: a running request missing from its worker\'s slots');
    const at = this.rAt[k]!;
    this.rId[k] = this.rId[last]!;
    this.rAt[k] = this.rAt[last]!;
    this.setLoad(w, this.wLoad[w]! - 1);
    this.nRunning--;
    return at;
  }

  private setLoad(w: number, load: number): void {
    const old = this.wLoad[w]!;
    assert(old >= 0 && load >= 0 && load <= this.conc, 'slow lane: a worker load outside 0..concurrency');
    assert(load === old + 1 || load === old - 1, 'slow lane: a load moved by more than one request');
    const retired = this.wRetired[w];
    if (old < this.conc && !retired) this.unlink(w, old);
    this.wLoad[w] = load;
    if (load < this.conc && !retired) this.link(w, load);
  }

  /** Appends worker index w to load level l. */
  private link(w: number, l: number): void {
    assert(l >= 0 && l < this.conc && this.wLoad[w] === l, 'slow lane: a worker linked at a level not its load');
    assert(this.lHead[l] !== w && this.lTail[l] !== w, 'slow lane: a worker linked twice');
    const tail = this.lTail[l]!;
    this.wPrev[w] = tail;
    this.wNext[w] = -1;
    if (tail >= 0) this.wNext[tail] = w;
    else this.lHead[l] = w;
    this.lTail[l] = w;
  }

  private unlink(w: number, l: number): void {
    // Only loads below concurrency have a list: a full worker is in none.
    assert(l >= 0 && l < this.conc, 'slow lane: unlinking a worker from a level that is no list');
    const p = this.wPrev[w]!;
    const n = this.wNext[w]!;
    // Only what the list holds: its neighbours (or the ends) point at it.
    assert(p >= 0 ? this.wNext[p] === w : this.lHead[l] === w, 'slow lane: unlinking a worker its level does not hold');
    assert(n >= 0 ? this.wPrev[n] === w : this.lTail[l] === w, 'slow lane: unlinking a worker its level does not hold');
    if (p >= 0) this.wNext[p] = n;
    else this.lHead[l] = n;
    if (n >= 0) this.wPrev[n] = p;
    else this.lTail[l] = p;
  }

  private qPush(id: RequestId, now: number): void {
    const s = this.qFree;
    // The pool has `cap` slots: a free one exists exactly while fewer are queued.
    assert(s >= 0 && this.qLen < this.cap, 'slow lane: a push onto a full queue');
    assert(!this.where.has(id), 'slow lane: a request queued while already queued or running');
    // Pushed in time order, so the head is the oldest and expiry looks at the head only.
    assert(this.qTail < 0 || this.qAt[this.qTail]! <= now, 'slow lane: a request queued before the one ahead of it');
    this.qFree = this.qNext[s]!;
    this.qId[s] = id;
    this.qAt[s] = now;
    this.qPrev[s] = this.qTail;
    this.qNext[s] = -1;
    if (this.qTail >= 0) this.qNext[this.qTail] = s;
    else this.qHead = s;
    this.qTail = s;
    this.qLen++;
    this.where.set(id, s);
  }

  /** Puts `id` at the queue's head, waiting since `at` (no later than the request that was there). */
  private qUnshift(id: RequestId, at: number): void {
    const s = this.qFree;
    assert(s >= 0 && this.qLen < this.cap, 'slow lane: a push onto a full queue');
    assert(!this.where.has(id), 'slow lane: a request queued while already queued or running');
    // The head stays the oldest: expiry looks at the head only.
    assert(this.qHead < 0 || at <= this.qAt[this.qHead]!, 'slow lane: a request put ahead of an older one');
    this.qFree = this.qNext[s]!;
    this.qId[s] = id;
    this.qAt[s] = at;
    this.qPrev[s] = -1;
    this.qNext[s] = this.qHead;
    if (this.qHead >= 0) this.qPrev[this.qHead] = s;
    else this.qTail = s;
    this.qHead = s;
    this.qLen++;
    this.where.set(id, s);
  }

  /** Unlinks queue slot s and returns it to the pool (the caller updates `where`). */
  private qRemove(s: number): void {
    const p = this.qPrev[s]!;
    const n = this.qNext[s]!;
    assert(this.qLen > 0, 'slow lane: a removal from an empty queue');
    assert((p >= 0 ? this.qNext[p] === s : this.qHead === s) && (n >= 0 ? this.qPrev[n] === s : this.qTail === s), 'slow lane: removing a queue slot the queue does not hold');
    if (p >= 0) this.qNext[p] = n;
    else this.qHead = n;
    if (n >= 0) this.qPrev[n] = p;
    else this.qTail = p;
    this.qNext[s] = this.qFree;
    this.qFree = s;
    this.qLen--;
  }
}
