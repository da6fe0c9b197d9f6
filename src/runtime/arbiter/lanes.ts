// The arbiter's side of the lanes: one SlowLane (lanes/queue.ts) per
// generation, fed by the fast workers' channel messages, and the table of
// routes the workers reported slow, passed on to every other fast worker and
// handed to new ones at spawn (so it survives HUP and recycling).
//
// A generation is a unit: its fast workers use its own slow workers, with
// its own limits. A reload does not mix old app code with new, nor an old
// lane's limits with a new config's; an aborted reload leaves the old
// generation's lane as it was. Old slow workers keep serving the old fast
// workers while those drain, and are drained once none is left.
//
// Request ids: a fast worker numbers its requests (seq < 2^31); the lane's
// id is pid × 2^31 + seq (protocol.ts laneId).
//
// A slot is freed on the word of whoever can know the request has let go of
// its slow worker: the fast worker, once its connection there has closed;
// or, when that fast worker died, the slow worker itself, asked with
// lane-orphans. A dead fast worker's request may still be burning there,
// and another request given that slot would wait behind it.
import type { Os, Timer } from '../../os/types.js';
import { assert } from '../assert.js';
import type { Config } from '../config/index.js';
import { DEFAULT_CAPACITY, type SlowRoute } from '../lanes/predictor.js';
import { SlowLane, type Decision } from '../lanes/queue.js';
import type { GenerationReport, LanesReport } from '../lanes/report.js';
import type { Logger } from '../log.js';
import { laneId, SEQ_LIMIT, type RouteNews, type ToWorker } from '../protocol.js';
import type { Worker } from './workers.js';
import { planted } from '../../os/hooks.js';

interface Gen {
  readonly generation: number;
  readonly limit: number; // slow_queue
  readonly lane: SlowLane;
  readonly sockets: Map<number, string>; // slow worker pid -> its socket
  readonly retiring: Set<number>; // slow workers to drain once idle
  readonly live: Map<number, Set<number>>; // fast worker pid -> its ids in the lane
  readonly orphans: Map<number, number>; // id -> its slow worker: running when its fast worker died, until the slow worker lets go
}

export interface LanesHost {
  readonly os: Os;
  readonly log: Logger;
  send(pid: number, m: ToWorker): void;
  /** A retiring slow worker has nothing left to run: drain it now. */
  idle(pid: number): void;
  /** Fast workers alive now (for the broadcast of routes). */
  fastWorkers(): Worker[];
}

export class Lanes {
  private readonly gens = new Map<number, Gen>();
  private readonly shedGone = { full: 0, timeout: 0, noWorkers: 0 }; // of generations forgotten
  /** For the checker only (hooks.laneHeld): when each running request got its slot. */
  private readonly assignedAt = new Map<number, number>();
  /** Learned slow routes, newest last; bounded like a worker's table. */
  private readonly routes = new Map<number, { route: string; avgMs: number }>();
  private timer: Timer | null = null;
  private timerAt = Infinity;
  private socketSeq = 0;

  constructor(private readonly host: LanesHost) {}

  /** A generation starts; with lanes on it gets a lane of its config's limits. */
  open(generation: number, config: Config): void {
    if (!config.lanes || this.gens.has(generation)) return;
    // A lane is made when its generation starts, and generations only grow.
    for (const g of this.gens.keys()) assert(g < generation, () => `lanes: generation ${generation} opened after ${g}`);
    this.gens.set(generation, {
      generation,
      limit: config.slow_queue,
      lane: new SlowLane({
        queue: config.slow_queue + (planted(this.host.os.hooks, 'lane-queue-overflow') ? 1 : 0),
        concurrency: config.slow_concurrency,
        queueTimeout: config.queue_timeout > 0 ? config.queue_timeout : Infinity,
      }, { hooks: this.host.os.hooks }),
      sockets: new Map(),
      retiring: new Set(),
      live: new Map(),
      orphans: new Map(),
    });
  }

  has(generation: number): boolean {
    return this.gens.has(generation);
  }

  /** A path for a new slow worker's socket, in `dir`. */
  socketPath(dir: string): string {
    return `${dir}/slow-${++this.socketSeq}.sock`;
  }

  // ------------------------------------------------------------ fast workers

  want(fast: Worker, seq: number): void {
    const g = this.gens.get(fast.generation);
    const id = laneId(fast.pid, seq);
    if (!g) {
      // Lanes off in its generation (an old fast worker after a HUP turned them off).
      this.host.send(fast.pid, { t: 'lane-no', seq, retryAfter: 1, reason: 'no-workers' });
      return;
    }
    if (g.orphans.has(id)) {
      // A new worker with a dead one's pid has come to the seq of that one's
      // request, which still runs: the id is taken. (Pid reuse within one
      // request's run, on the real OS only.)
      this.host.send(fast.pid, { t: 'lane-no', seq, retryAfter: 1, reason: 'queue-full' });
      return;
    }
    let ids = g.live.get(fast.pid);
    if (!ids) g.live.set(fast.pid, (ids = new Set()));
    if (ids.has(id)) return; // a duplicate message: the first one stands
    ids.add(id);
    this.act(g, g.lane.enqueue(id, this.host.os.now()));
    // The fast worker's ids hold the request exactly while the lane does (a reject let it go).
    assert(ids.has(id) === (g.lane.status(id) !== undefined), () => `lanes: request ${id} is ${g.lane.status(id) ?? 'gone'} in the lane but ${ids.has(id) ? '' : 'not '}its fast worker's`);
  }

  cancel(fast: Worker, seq: number): void {
    const g = this.gens.get(fast.generation);
    const id = laneId(fast.pid, seq);
    if (g?.lane.cancel(id)) {
      g.live.get(fast.pid)?.delete(id);
      assert(g.lane.status(id) === undefined, () => `lanes: request ${id} still in the lane after its cancel`);
      this.probeState(g);
    }
    this.schedule();
  }

  done(fast: Worker, seq: number): void {
    const g = this.gens.get(fast.generation);
    if (planted(this.host.os.hooks, 'lane-ignores-done') && seq % 5 === 0) return;
    if (g) this.complete(g, laneId(fast.pid, seq));
  }

  /**
   * A fast worker is gone: its queued requests leave the queue; its running
   * ones keep their slots until their slow workers say they have let go.
   */
  fastGone(fast: Worker): void {
    const g = this.gens.get(fast.generation);
    const ids = g?.live.get(fast.pid);
    if (!g || !ids) return;
    g.live.delete(fast.pid);
    const ask = new Map<number, number[]>();
    for (const id of ids) {
      if (g.lane.cancel(id)) continue;
      const slow = g.lane.workerOf(id);
      if (slow === undefined || planted(this.host.os.hooks, 'lane-frees-orphans')) {
        this.complete(g, id);
        continue;
      }
      g.orphans.set(id, slow);
      const list = ask.get(slow);
      if (list) list.push(id);
      else ask.set(slow, [id]);
    }
    for (const [slow, list] of ask) this.host.send(slow, { t: 'lane-orphans', ids: list });
    // Its requests are ended, or run on as orphans until their slow workers let go: none waits for it.
    assert(!g.live.has(fast.pid), () => `lanes: fast worker ${fast.pid} gone, its requests still listed`);
    for (const id of ids) {
      assert(g.lane.status(id) === undefined || g.lane.workerOf(id) === g.orphans.get(id), () => `lanes: request ${id} of gone fast worker ${fast.pid} is ${g.lane.status(id)} and no orphan`);
    }
    this.probeState(g);
    this.schedule();
  }

  /** A slow worker let go of requests whose fast workers died: their slots are free. */
  letGo(slow: Worker, ids: readonly number[]): void {
    const g = this.gens.get(slow.generation);
    if (!g) return;
    for (const id of ids) {
      if (g.orphans.get(id) !== slow.pid) continue;
      g.orphans.delete(id);
      this.complete(g, id);
      assert(g.lane.status(id) === undefined, () => `lanes: orphan ${id} still in the lane after slow worker ${slow.pid} let go`);
    }
  }

  // ------------------------------------------------------------ slow workers

  /** A slow worker booted: it takes requests. */
  slowReady(slow: Worker, socket: string): void {
    const g = this.gens.get(slow.generation);
    if (!g) return;
    // Once per worker: a second 'booted' is refused by Workers.move before it gets here.
    assert(!g.sockets.has(slow.pid), () => `lanes: slow worker ${slow.pid} ready twice`);
    g.sockets.set(slow.pid, socket);
    this.act(g, g.lane.addWorker(slow.pid, this.host.os.now()));
    assert(g.sockets.get(slow.pid) === socket, () => `lanes: slow worker ${slow.pid} lost its socket as it joined`);
  }

  /** Stop giving it requests; it is drained (host.idle) once it runs none. */
  retire(slow: Worker): void {
    const g = this.gens.get(slow.generation);
    if (!g || !g.sockets.has(slow.pid)) {
      this.host.idle(slow.pid);
      return;
    }
    g.retiring.add(slow.pid);
    if (g.lane.retireWorker(slow.pid) === 0) this.release(g, slow.pid);
    // Released now (idle), or retiring with requests to finish; drained either way once idle.
    assert(g.retiring.has(slow.pid) === g.sockets.has(slow.pid), () => `lanes: slow worker ${slow.pid} half retired`);
    assert(!g.retiring.has(slow.pid) || g.lane.load(slow.pid) > 0, () => `lanes: idle slow worker ${slow.pid} left retiring, never drained`);
  }

  /** A slow worker exited: what it ran has failed (its fast workers answer 502 or reset). */
  slowGone(slow: Worker): void {
    const g = this.gens.get(slow.generation);
    if (!g) return;
    g.sockets.delete(slow.pid);
    g.retiring.delete(slow.pid);
    for (const [id, pid] of g.orphans) if (pid === slow.pid) g.orphans.delete(id);
    const r = g.lane.removeWorker(slow.pid, this.host.os.now());
    if (r.failed.length > 0) this.host.log.error(`slow-lane worker ${slow.pid} died running ${r.failed.length} request(s)`);
    this.act(g, r.decisions);
    // Nothing of it is left: no slot, no socket, no orphan waiting for its word.
    assert(g.lane.load(slow.pid) === 0 && !g.sockets.has(slow.pid), () => `lanes: dead slow worker ${slow.pid} still in the lane`);
    for (const pid of g.orphans.values()) assert(pid !== slow.pid, () => `lanes: an orphan waits for dead slow worker ${slow.pid}`);
  }

  /** Slow workers of a generation that are taking requests. */
  slowCount(generation: number): number {
    return this.gens.get(generation)?.lane.stats().workers ?? 0;
  }

  /**
   * No fast worker of this generation will ask again (its reload failed, or
   * its last fast worker exited): what is queued is answered 503 now. The
   * caller drains its slow workers.
   */
  close(generation: number): void {
    const g = this.gens.get(generation);
    if (!g) return;
    this.act(g, g.lane.close(this.host.os.now()));
    assert(g.lane.isClosed && g.lane.stats().queued === 0, () => `lanes: generation ${generation} closed with requests queued`);
  }

  /** No worker of this generation is left at all. */
  forget(generation: number): void {
    const g = this.gens.get(generation);
    if (g === undefined) return;
    // No worker of it is left (arbiter.ended): every one was reaped through fastGone or slowGone, so nothing is held.
    const s = g.lane.stats();
    assert(s.queued === 0 && s.running === 0 && g.sockets.size === 0, () => `lanes: generation ${generation} forgotten holding ${s.queued} queued, ${s.running} running, ${g.sockets.size} slow workers`);
    assert(g.live.size === 0 && g.orphans.size === 0, () => `lanes: generation ${generation} forgotten with requests of ${g.live.size} fast workers, ${g.orphans.size} orphans`);
    const { shed } = s;
    this.shedGone.full += shed.full;
    this.shedGone.timeout += shed.timeout;
    this.shedGone.noWorkers += shed.noWorkers;
    this.gens.delete(generation);
    this.host.os.hooks.laneClosed?.(this.host.os.pid, generation);
  }

  /** Requests the slow lanes answered 503, by reason, since the arbiter started (forgotten generations too). */
  shedTotals(): { full: number; timeout: number; noWorkers: number } {
    const t = { ...this.shedGone };
    for (const g of this.gens.values()) {
      const { shed } = g.lane.stats();
      t.full += shed.full;
      t.timeout += shed.timeout;
      t.noWorkers += shed.noWorkers;
    }
    return t;
  }

  // ------------------------------------------------------------ routes

  /** A fast worker learned something: remember it, and tell every other fast worker. */
  route(from: Worker, news: RouteNews): void {
    const { key, route, avgMs, slow } = news;
    if (typeof key !== 'number' || (key | 0) !== key || !(avgMs >= 0 && avgMs < Infinity)) return;
    this.routes.delete(key);
    if (slow) {
      this.routes.set(key, { route: String(route), avgMs });
      if (this.routes.size > DEFAULT_CAPACITY) this.routes.delete(this.routes.keys().next().value!);
    }
    // Bounded like a worker's table, whatever the number of routes; the newest news stands.
    assert(this.routes.size <= DEFAULT_CAPACITY, 'lanes: the learned routes outgrew their bound');
    assert(this.routes.has(key) === (slow === true), 'lanes: route news not applied');
    const m: ToWorker = { t: 'route', key, route: String(route), avgMs, slow };
    for (const w of this.host.fastWorkers()) if (w.pid !== from.pid) this.host.send(w.pid, m);
  }

  /** What a new fast worker starts from. */
  learned(): SlowRoute[] {
    return [...this.routes].map(([key, r]) => ({ key, avgMs: r.avgMs }));
  }

  report(config: Config, fast: Worker[], current: number): Omit<LanesReport, 'processes'> {
    const gens = [...new Set([current, ...fast.map((w) => w.generation), ...this.gens.keys()])].sort((a, b) => (a === current ? -1 : b === current ? 1 : b - a));
    const generations: GenerationReport[] = gens.map((generation) => {
      const mine = fast.filter((w) => w.generation === generation);
      const slowServed = mine.reduce((n, w) => n + w.slowServed, 0);
      const s = this.gens.get(generation)?.lane.stats() ?? null;
      return {
        generation,
        fast: { workers: mine.length, servedFast: mine.reduce((n, w) => n + w.served, 0) - slowServed, servedSlow: slowServed },
        slow: s,
      };
    });
    return {
      lanes: config.lanes,
      slowThresholdMs: config.slow_threshold,
      generations,
      slowRoutes: [...this.routes.values()].reverse().map((r) => ({ route: r.route, avgMs: Math.round(r.avgMs) })),
      hints: config.slow_routes,
    };
  }

  /** Nothing more will happen: every timer off. */
  stop(): void {
    this.timer?.cancel();
    this.timer = null;
  }

  // ------------------------------------------------------------ internals

  private complete(g: Gen, id: number): void {
    const slow = g.lane.workerOf(id);
    if (this.host.os.hooks.laneHeld) {
      const at = this.assignedAt.get(id);
      this.assignedAt.delete(id);
      if (at !== undefined && slow !== undefined) this.host.os.hooks.laneHeld(g.generation, this.host.os.now() - at);
    }
    g.live.get(Math.floor(id / SEQ_LIMIT))?.delete(id);
    this.act(g, g.lane.complete(id, this.host.os.now()));
    assert(g.lane.status(id) !== 'running', () => `lanes: request ${id} still running after its completion`);
    if (slow !== undefined && g.retiring.has(slow) && g.lane.load(slow) === 0) this.release(g, slow);
  }

  /** A retired slow worker has nothing left: out of the lane, and drained. */
  private release(g: Gen, slow: number): void {
    assert(g.retiring.has(slow) && g.lane.load(slow) === 0, () => `lanes: slow worker ${slow} released while not retiring and idle`);
    g.retiring.delete(slow);
    g.sockets.delete(slow);
    const r = g.lane.removeWorker(slow, this.host.os.now());
    // Idle, so nothing fails as it leaves (lanes/queue.ts retireWorker).
    assert(r.failed.length === 0, () => `lanes: ${r.failed.length} request(s) failed as idle slow worker ${slow} left`);
    this.host.idle(slow);
    this.act(g, r.decisions);
  }

  private act(g: Gen, ds: readonly Decision[]): void {
    // For the checker: the lane's load counts every assignment of `ds`; each is reported with those before it.
    const later = this.host.os.hooks.laneAssigned ? assignsPerWorker(ds) : null;
    for (const d of ds) {
      const pid = Math.floor(d.id / SEQ_LIMIT);
      const seq = d.id - pid * SEQ_LIMIT;
      if (d.kind === 'assign') {
        if (later) {
          const n = later.get(d.worker)!;
          later.set(d.worker, n - 1);
          this.host.os.hooks.laneAssigned!(g.generation, d.worker, g.lane.load(d.worker) - n);
        }
        if (this.host.os.hooks.laneHeld) this.assignedAt.set(d.id, this.host.os.now());
        // Every worker in the lane came through slowReady with its socket, and leaves with it.
        const path = g.sockets.get(d.worker);
        assert(path !== undefined, () => `lanes: request ${d.id} assigned to slow worker ${d.worker}, which has no socket`);
        this.host.send(pid, { t: 'lane-go', seq, path });
      } else {
        assert(g.lane.status(d.id) === undefined, () => `lanes: request ${d.id} rejected and still in the lane`);
        g.live.get(pid)?.delete(d.id);
        this.host.send(pid, { t: 'lane-no', seq, retryAfter: d.retryAfter, reason: d.reason });
      }
    }
    this.probeState(g);
    this.schedule();
  }

  private probeState(g: Gen): void {
    if (!this.host.os.hooks.lane) return;
    this.host.os.hooks.lane(this.host.os.pid, g.generation, g.lane.stats(), g.limit);
  }

  /** One timer, at the earliest queue deadline of any generation. */
  private schedule(): void {
    let at = Infinity;
    for (const g of this.gens.values()) {
      const d = g.lane.nextDeadline();
      if (d !== null && d < at) at = d;
    }
    if (at !== this.timerAt) {
      this.timer?.cancel();
      this.timer = null;
      this.timerAt = at;
      if (at !== Infinity) {
        this.timer = this.host.os.timer(Math.max(0, at - this.host.os.now()), () => {
          this.timer = null;
          this.timerAt = Infinity;
          for (const g of this.gens.values()) this.act(g, g.lane.tick(this.host.os.now()));
          this.schedule();
        });
      }
    }
    // One timer, armed exactly while some queue has a deadline, for the earliest: a late one would let requests wait past queue_timeout.
    assert(this.timerAt === at, 'lanes: the queue timer is not set for the earliest deadline');
    assert((this.timer === null) === (at === Infinity), 'lanes: the queue timer is armed without a deadline, or missing for one');
  }
}

function assignsPerWorker(ds: readonly Decision[]): Map<number, number> {
  const n = new Map<number, number>();
  for (const d of ds) if (d.kind === 'assign') n.set(d.worker, (n.get(d.worker) ?? 0) + 1);
  return n;
}
