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
// or, when that fast worker died or closed the connection itself (lane-cut),
// the slow worker, asked with lane-orphans. Such a request may still be
// burning there, and another request given that slot would wait behind it.
//
// The learned routes are bounded (DEFAULT_CAPACITY) and must outlive a
// flood: an attacker's unique URLs, each slow once, are each announced slow
// by the fast worker that ran it, and evicting the oldest news forgot real
// slow routes, which a new worker then ran on its fast lane again. News
// says nothing of use: a worker sends it only when a route turns slow or
// fast (fast-lane.ts observe), once for a real route as for a one-shot URL.
// What tells them apart is the slow lane: every request of a route a worker
// predicts slow comes here as a lane-want, which carries its route key. So
// the table is split in two (a segmented LRU, O(1) a message): `fresh`,
// routes learned and not asked for since, oldest first; and `used`, those
// asked for in the slow lane, least recently first, at most USED_MAX. A
// new route enters `fresh` and an overflow evicts the oldest of `fresh`: a
// flood of one-shot URLs churns there. A use moves a route to the newest
// end of `used`; past USED_MAX the least recent goes back to `fresh` (so
// `fresh` always has room, and a new real route is not evicted by the next
// news). To push out a used route the attacker must have USED_MAX other
// routes used after it, each a slow-lane request as well as a slow one.
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

interface LearnedRoute {
  readonly route: string; // routeKeyString, for stats
  readonly avgMs: number;
}

/** Learned routes held as used (see the top): the rest of the table, a quarter, is always left to new ones. */
export const USED_MAX = (DEFAULT_CAPACITY * 3) / 4;

export interface LanesHost {
  readonly os: Os;
  readonly log: Logger;
  send(pid: number, m: ToWorker): void;
  /** A retiring slow worker has nothing left to run: drain it now. */
  idle(pid: number): void;
  /** A slow worker refused a connection (refused): drain it (which retires it here, see retire) and start another now. */
  unreachable(pid: number): void;
  /** Fast workers alive now (for the broadcast of routes). */
  fastWorkers(): Worker[];
}

export class Lanes {
  private readonly gens = new Map<number, Gen>();
  private readonly shedGone = { full: 0, timeout: 0, noWorkers: 0 }; // of generations forgotten
  /** For the checker only (hooks.laneHeld): when each running request got its slot. */
  private readonly assignedAt = new Map<number, number>();
  /** Learned slow routes not asked for in the slow lane since, oldest first (see the top). */
  private readonly fresh = new Map<number, LearnedRoute>();
  /** Learned slow routes asked for in the slow lane, least recently first; at most USED_MAX. */
  private readonly used = new Map<number, LearnedRoute>();
  private timer: Timer | null = null;
  private timerAt = Infinity;
  private socketSeq = 0;

  constructor(private readonly host: LanesHost) {}

  /** A generation starts; with lanes on it gets a lane of its config's limits. */
  open(generation: number, config: Config): void {
    if (!config.lanes || this.gens.has(generation)) return;
    assert(Number.isInteger(generation) && generation >= 1, () => `lanes: a lane for generation ${generation}`);
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
    const path = `${dir}/slow-${++this.socketSeq}.sock`;
    // A new path each time (the sequence only grows): a new slow worker never binds over a live one's socket.
    for (const g of this.gens.values()) for (const s of g.sockets.values()) assert(s !== path, () => `lanes: socket ${path} handed out twice`);
    return path;
  }

  // ------------------------------------------------------------ fast workers

  /** A slot for request `seq` of `fast`, a request of route `key` (a use of it, if learned). */
  want(fast: Worker, seq: number, key?: number): void {
    if (key !== undefined) this.usedRoute(key);
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
      assert(g.lane.status(id) === 'running', () => `lanes: orphan ${id} is ${g.lane.status(id) ?? 'gone'} in the lane, not running`);
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
      // It was queued: an orphan is running, so a cancelled request is none.
      assert(!g.orphans.has(id), () => `lanes: request ${id} cancelled from the queue while an orphan`);
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
   * The slow worker named for request `seq` refused its connection
   * (ECONNREFUSED, ENOENT): it died, or is dying, before its reap, and
   * nothing of the request reached it. It takes no more requests, and the
   * request waits again at the head of the queue (queue.ts requeue). Without
   * this, a slot freed by the request that died with it was handed to the
   * next one in the queue, which got a 502.
   */
  refused(fast: Worker, seq: number): void {
    const g = this.gens.get(fast.generation);
    const id = laneId(fast.pid, seq);
    if (!g) {
      this.host.send(fast.pid, { t: 'lane-no', seq, retryAfter: 1, reason: 'no-workers' });
      return;
    }
    // Only a request the fast worker holds in the lane: a stale or doubled word changes nothing.
    if (!g.live.get(fast.pid)?.has(id) || g.lane.status(id) === 'queued') return;
    // Its fast worker is alive (it just wrote): the request is no orphan.
    assert(!g.orphans.has(id), () => `lanes: orphan ${id} refused by its slow worker`);
    const slow = g.lane.workerOf(id);
    if (slow !== undefined && !g.retiring.has(slow)) {
      this.host.log.warning(`slow-lane worker ${slow} refused a connection: it takes no more requests, and the request waits again`);
      // The arbiter drains it (its replacement starts now), which retires it here, as any drain does.
      this.host.unreachable(slow);
      assert(g.retiring.has(slow), () => `lanes: slow worker ${slow} refused a connection and still takes requests`);
    }
    this.assignedAt.delete(id);
    this.act(g, g.lane.requeue(id, this.host.os.now()));
    if (slow !== undefined && g.retiring.has(slow) && g.lane.load(slow) === 0) this.release(g, slow);
    // The worker that refused it takes nothing more; the request waits, runs elsewhere, or was answered 503.
    assert(slow === undefined || g.lane.workerOf(id) !== slow, () => `lanes: request ${id} handed back to slow worker ${slow}, which refused it`);
    assert(g.lane.status(id) !== undefined || !g.live.get(fast.pid)?.has(id), () => `lanes: request ${id} left the lane but not its fast worker's list`);
    this.counted(g);
  }

  /**
   * The fast worker is done with request `seq` but closed its connection
   * before the slow worker let go (forward.ts, 'cut': node:http refused the
   * answer). That worker may still burn on it and has not seen the close, so
   * the slot waits for its word, as a dead fast worker's request does.
   */
  cut(fast: Worker, seq: number): void {
    const g = this.gens.get(fast.generation);
    const id = laneId(fast.pid, seq);
    const ids = g?.live.get(fast.pid);
    if (!g || !ids?.has(id)) return;
    const slow = g.lane.workerOf(id);
    if (slow === undefined) {
      // Its slow worker died meanwhile: the slot went with it.
      this.complete(g, id);
      return;
    }
    ids.delete(id);
    g.orphans.set(id, slow);
    this.host.send(slow, { t: 'lane-orphans', ids: [id] });
    // It now waits for a slow worker that is still there (slowGone frees it if that one dies).
    assert(g.sockets.has(slow) && g.lane.workerOf(id) === slow, () => `lanes: cut request ${id} waits for slow worker ${slow}, which does not run it`);
  }

  /**
   * A fast worker is gone: its queued requests leave the queue; its running
   * ones keep their slots until their slow workers say they have let go.
   */
  fastGone(fast: Worker): void {
    // The reap hands fast workers here, slow ones to slowGone.
    assert(fast.role === 'fast', () => `lanes: slow worker ${fast.pid} gone as a fast one`);
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
      // A running request's worker is in the lane, so it has a socket and can be asked (lane-orphans).
      assert(g.sockets.has(slow), () => `lanes: request ${id} runs on slow worker ${slow}, which has no socket`);
      g.orphans.set(id, slow);
      const list = ask.get(slow);
      if (list) list.push(id);
      else ask.set(slow, [id]);
    }
    for (const [slow, list] of ask) this.host.send(slow, { t: 'lane-orphans', ids: list });
    // Every orphan waits for the word of a slow worker still there (slowGone frees those of one that died).
    for (const pid of g.orphans.values()) assert(g.sockets.has(pid), () => `lanes: an orphan waits for slow worker ${pid}, which has left`);
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
      // An orphan runs on the worker it waits for, until that worker lets go of it or dies.
      assert(g.lane.workerOf(id) === slow.pid, () => `lanes: orphan ${id} of slow worker ${slow.pid} runs on ${g.lane.workerOf(id)}`);
      g.orphans.delete(id);
      this.complete(g, id);
      assert(g.lane.status(id) === undefined, () => `lanes: orphan ${id} still in the lane after slow worker ${slow.pid} let go`);
    }
    // A retiring worker is drained once idle: what it let go of may have been its last request.
    assert(!g.retiring.has(slow.pid) || g.lane.load(slow.pid) > 0, () => `lanes: idle slow worker ${slow.pid} left retiring after it let go`);
  }

  // ------------------------------------------------------------ slow workers

  /** A slow worker booted: it takes requests. */
  slowReady(slow: Worker, socket: string): void {
    // The arbiter passes a slow worker's 'booted', with the socket it was spawned for.
    assert(slow.role === 'slow' && socket === slow.socket, () => `lanes: ${slow.role} worker ${slow.pid} ready on ${socket}, spawned for ${slow.socket}`);
    const g = this.gens.get(slow.generation);
    if (!g) return;
    // Once per worker: a second 'booted' is refused by Workers.move before it gets here.
    assert(!g.sockets.has(slow.pid), () => `lanes: slow worker ${slow.pid} ready twice`);
    // Only a worker in the lane is retired (retire() drains any other at once).
    assert(!g.retiring.has(slow.pid), () => `lanes: slow worker ${slow.pid} retiring before it was ready`);
    g.sockets.set(slow.pid, socket);
    this.act(g, g.lane.addWorker(slow.pid, this.host.os.now()));
    assert(g.sockets.get(slow.pid) === socket, () => `lanes: slow worker ${slow.pid} lost its socket as it joined`);
    this.counted(g);
  }

  /** Stop giving it requests; it is drained (host.idle) once it runs none. */
  retire(slow: Worker): void {
    assert(slow.role === 'slow', () => `lanes: fast worker ${slow.pid} retired from the slow lane`);
    const g = this.gens.get(slow.generation);
    if (!g || !g.sockets.has(slow.pid)) {
      this.host.idle(slow.pid);
      return;
    }
    // Already retiring: it refused a connection (refused), and is drained once idle.
    if (g.retiring.has(slow.pid)) return;
    g.retiring.add(slow.pid);
    if (g.lane.retireWorker(slow.pid) === 0) this.release(g, slow.pid);
    // Released now (idle), or retiring with requests to finish; drained either way once idle.
    assert(g.retiring.has(slow.pid) === g.sockets.has(slow.pid), () => `lanes: slow worker ${slow.pid} half retired`);
    assert(!g.retiring.has(slow.pid) || g.lane.load(slow.pid) > 0, () => `lanes: idle slow worker ${slow.pid} left retiring, never drained`);
  }

  /** A slow worker exited: what it ran has failed (its fast workers answer 502 or reset). */
  slowGone(slow: Worker): void {
    // The reap hands slow workers here, fast ones to fastGone.
    assert(slow.role === 'slow', () => `lanes: fast worker ${slow.pid} gone as a slow one`);
    const g = this.gens.get(slow.generation);
    if (!g) return;
    g.sockets.delete(slow.pid);
    g.retiring.delete(slow.pid);
    for (const [id, pid] of g.orphans) if (pid === slow.pid) g.orphans.delete(id);
    const r = g.lane.removeWorker(slow.pid, this.host.os.now());
    // Its orphans were dropped above: an orphan runs on the worker it waits for, none elsewhere failed with it.
    for (const id of r.failed) assert(!g.orphans.has(id), () => `lanes: orphan ${id} failed with slow worker ${slow.pid}, waiting for ${g.orphans.get(id)}`);
    if (r.failed.length > 0) this.host.log.error(`slow-lane worker ${slow.pid} died running ${r.failed.length} request(s)`);
    this.act(g, r.decisions);
    // Nothing of it is left: no slot, no socket, no orphan waiting for its word.
    assert(g.lane.load(slow.pid) === 0 && !g.sockets.has(slow.pid), () => `lanes: dead slow worker ${slow.pid} still in the lane`);
    for (const pid of g.orphans.values()) assert(pid !== slow.pid, () => `lanes: an orphan waits for dead slow worker ${slow.pid}`);
    this.counted(g);
  }

  /** Slow workers of a generation that are taking requests. */
  slowCount(generation: number): number {
    const g = this.gens.get(generation);
    if (g === undefined) return 0;
    const n = g.lane.stats().workers;
    // The lane's workers taking requests are the slow workers with a socket, less those retiring.
    assert(n === g.sockets.size - g.retiring.size, () => `lanes: generation ${generation} counts ${n} slow workers, ${g.sockets.size} sockets, ${g.retiring.size} retiring`);
    return n;
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
    assert(g.retiring.size === 0, () => `lanes: generation ${generation} forgotten with ${g.retiring.size} slow workers still to drain`);
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
    const r = { route: String(route), avgMs };
    this.fresh.delete(key);
    if (!slow) this.used.delete(key);
    else if (this.used.has(key)) this.used.set(key, r); // news is no use: it keeps its place
    else {
      this.fresh.set(key, r);
      // `used` holds at most USED_MAX, so `fresh` holds more than this one and the oldest is another.
      if (this.fresh.size + this.used.size > DEFAULT_CAPACITY) this.fresh.delete(this.fresh.keys().next().value!);
    }
    // Bounded like a worker's table, whatever the number of routes; the newest news stands.
    assert(this.fresh.size + this.used.size <= DEFAULT_CAPACITY, 'lanes: the learned routes outgrew their bound');
    assert((this.fresh.get(key) ?? this.used.get(key)) === (slow === true ? r : undefined), 'lanes: route news not applied');
    const m: ToWorker = { t: 'route', key, route: String(route), avgMs, slow };
    for (const w of this.host.fastWorkers()) if (w.pid !== from.pid) this.host.send(w.pid, m);
  }

  /** What a new fast worker starts from. */
  learned(): SlowRoute[] {
    // What route() let in: at most a worker table's worth, each average a finite number of ms.
    assert(this.fresh.size + this.used.size <= DEFAULT_CAPACITY && this.used.size <= USED_MAX, 'lanes: the learned routes outgrew their bound');
    const all = [...this.fresh, ...this.used];
    for (const [key, r] of all) assert(r.avgMs >= 0 && r.avgMs < Infinity && !(this.fresh.has(key) && this.used.has(key)), () => `lanes: a learned route of ${r.avgMs} ms, or in both halves`);
    // The used last: a worker's table, when a window is full of routes touched as often, keeps the most recent.
    return all.map(([key, r]) => (this.used.has(key) ? { key, avgMs: r.avgMs, used: true } : { key, avgMs: r.avgMs }));
  }

  report(config: Config, fast: Worker[], current: number): Omit<LanesReport, 'processes' | 'spares'> {
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
    // The current generation first, whether or not its lane or its workers exist yet.
    assert(generations[0]?.generation === current, () => `lanes: report of generation ${current} lists ${generations[0]?.generation} first`);
    return {
      lanes: config.lanes,
      slowThresholdMs: config.slow_threshold,
      generations,
      slowRoutes: [...this.fresh.values(), ...this.used.values()].reverse().map((r) => ({ route: r.route, avgMs: Math.round(r.avgMs) })),
      hints: config.slow_routes,
    };
  }

  /** Nothing more will happen: every timer off. */
  stop(): void {
    this.timer?.cancel();
    this.timer = null;
  }

  // ------------------------------------------------------------ internals

  /** A request of route `key` came to the slow lane: if learned, it is in use (see the top). */
  private usedRoute(key: number): void {
    const r = this.fresh.get(key) ?? this.used.get(key);
    if (r === undefined) return; // not learned (a hint, or forgotten): news will say if it is
    const n = this.fresh.size + this.used.size;
    this.fresh.delete(key);
    this.used.delete(key);
    this.used.set(key, r);
    if (this.used.size > USED_MAX) {
      const [k, old] = this.used.entries().next().value!;
      this.used.delete(k);
      this.fresh.set(k, old);
    }
    // A use moves routes between the halves, never adds or drops one.
    assert(this.fresh.size + this.used.size === n && this.used.size <= USED_MAX, 'lanes: a use changed the number of learned routes');
    assert(this.used.get(key) === r, () => `lanes: route ${key} used and not among the used`);
  }

  private complete(g: Gen, id: number): void {
    const slow = g.lane.workerOf(id);
    // A running request's worker is in the lane, with its socket.
    assert(slow === undefined || g.sockets.has(slow), () => `lanes: request ${id} runs on slow worker ${slow}, which has no socket`);
    if (this.host.os.hooks.laneHeld) {
      const at = this.assignedAt.get(id);
      this.assignedAt.delete(id);
      if (at !== undefined && slow !== undefined) this.host.os.hooks.laneHeld(g.generation, this.host.os.now() - at);
    }
    g.live.get(Math.floor(id / SEQ_LIMIT))?.delete(id);
    this.act(g, g.lane.complete(id, this.host.os.now()));
    assert(g.lane.status(id) !== 'running', () => `lanes: request ${id} still running after its completion`);
    if (slow !== undefined && g.retiring.has(slow) && g.lane.load(slow) === 0) this.release(g, slow);
    // A retiring worker is drained once idle: this may have been its last request.
    assert(slow === undefined || !g.retiring.has(slow) || g.lane.load(slow) > 0, () => `lanes: idle slow worker ${slow} left retiring`);
  }

  /** A retired slow worker has nothing left: out of the lane, and drained. */
  private release(g: Gen, slow: number): void {
    assert(g.retiring.has(slow) && g.lane.load(slow) === 0, () => `lanes: slow worker ${slow} released while not retiring and idle`);
    // Idle, so no orphan waits for its word: released, it could never give it.
    for (const pid of g.orphans.values()) assert(pid !== slow, () => `lanes: idle slow worker ${slow} released while an orphan waits for it`);
    g.retiring.delete(slow);
    g.sockets.delete(slow);
    const r = g.lane.removeWorker(slow, this.host.os.now());
    // Idle, so nothing fails as it leaves (lanes/queue.ts retireWorker).
    assert(r.failed.length === 0, () => `lanes: ${r.failed.length} request(s) failed as idle slow worker ${slow} left`);
    this.host.idle(slow);
    this.act(g, r.decisions);
    this.counted(g);
  }

  /** The slow workers of a generation as its lane counts them: those with a socket, less the retiring (a subset). Cold paths only (a scan). */
  private counted(g: Gen): void {
    for (const pid of g.retiring) assert(g.sockets.has(pid), () => `lanes: slow worker ${pid} retiring without a socket`);
    const n = g.lane.stats().workers;
    assert(n === g.sockets.size - g.retiring.size, () => `lanes: generation ${g.generation} counts ${n} slow workers, ${g.sockets.size} sockets, ${g.retiring.size} retiring`);
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
        // Retired workers take no new request; and the request runs where the decision sends it.
        assert(!g.retiring.has(d.worker), 'lanes: a request assigned to a retiring slow worker');
        assert(g.lane.workerOf(d.id) === d.worker, 'lanes: a request assigned to one slow worker runs on another');
        this.host.send(pid, { t: 'lane-go', seq, path });
      } else {
        assert(g.lane.status(d.id) === undefined, () => `lanes: request ${d.id} rejected and still in the lane`);
        // Only queued or new requests are rejected; an orphan is running.
        assert(!g.orphans.has(d.id), 'lanes: an orphan rejected');
        g.live.get(pid)?.delete(d.id);
        this.host.send(pid, { t: 'lane-no', seq, retryAfter: d.retryAfter, reason: d.reason });
      }
    }
    this.probeState(g);
    this.schedule();
  }

  private probeState(g: Gen): void {
    if (!this.host.os.hooks.lane) return;
    // Probes report generations still known: a forgotten one's lane says nothing more.
    assert(this.gens.get(g.generation) === g, 'lanes: a probe of a forgotten generation');
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
          // Only the armed timer fires: one replaced was cancelled as the new one was set.
          assert(this.timerAt === at, 'lanes: a cancelled queue timer fired');
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
