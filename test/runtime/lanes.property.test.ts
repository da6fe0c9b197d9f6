// Random mixes of routes, durations, lane settings and slow-worker kills
// against the real arbiter on the simulated kernel. Routes: three fast ones
// (a few ms of CPU), two slow ones the workers must learn (over the 1 s
// threshold, burning CPU or waiting), and one hinted slow by slow_routes.
// Every request has a unique URL, so its answer names it. Checked after the
// mix has run out:
// - every request got exactly one outcome (no hang), and the access log has
//   exactly one line for it;
// - a 200 is this request's answer, from a fast worker for a fast route (or
//   a slow route not yet known slow), from a slow-lane worker for a hinted
//   route or a route known slow when it came (learned by any fast worker:
//   learning is shared);
// - 503 only for a request in the lane: 'full' only when slow_queue
//   requests were waiting, 'waited too long' only after queue_timeout;
// - 502 (or a reset) only for a request in the lane, right after a slow
//   worker was killed under it;
// - a fast request waits only behind requests of routes not yet known slow
//   on its own worker: without one of those its latency is fast work only;
// - the slow lane never held more than slots + slow_queue requests, i.e.
//   its queue never more than slow_queue (the lane is work-conserving), and
//   the bound was reached (the check is not vacuous). Times are
//   reconstructed from the client's clock, the access log's durations (when
//   a fast worker took a request) and the app's report of when it started.
import type { Defect, Hooks } from '../../src/os/hooks.js';
import fc from 'fast-check';
import { expect, test } from 'vitest';
import { simulate } from './sim.js';
import { ask, LANES_APP, ran, slowBooted, slowPids, within, type Answer } from './lanes-sim.js';

interface Req {
  at: number;
  route: number;
  ms: number;
}
interface Mix {
  fast: number;
  slow: number;
  conc: number;
  queue: number;
  timeout: number; // ms, 0 = none
  requests: Req[];
  kills: { at: number; which: number }[];
}

const ROUTES = ['f0', 'f1', 'f2', 's0', 's1', 'h'] as const;
const isFast = (r: number) => r < 3;
const isHinted = (r: number) => r === 5;
const THRESHOLD = 1000;

/** The request's path (unique by `id`; ids fold, so one route key a route) and what it costs. */
function shape(r: Req, id: number): { path: string; cost: number } {
  const name = ROUTES[r.route]!;
  if (isFast(r.route)) {
    const cost = r.ms % 21;
    return { path: `/${name}/${id}?burn=${cost}`, cost };
  }
  const cost = isHinted(r.route) ? 100 + Math.round(r.ms * 1.4) : 1100 + Math.round(r.ms * 1.4);
  const how = r.ms % 2 === 0 ? 'burn' : 'sleep';
  return { path: `/${name}/${id}?${how}=${cost}`, cost };
}

const mixArb: fc.Arbitrary<Mix> = fc.record({
  fast: fc.integer({ min: 1, max: 2 }),
  slow: fc.integer({ min: 1, max: 2 }),
  conc: fc.integer({ min: 1, max: 2 }),
  queue: fc.integer({ min: 0, max: 4 }),
  timeout: fc.constantFrom(0, 1500, 3000),
  requests: fc.array(fc.record({ at: fc.integer({ min: 0, max: 6000 }), route: fc.integer({ min: 0, max: 5 }), ms: fc.integer({ min: 0, max: 1000 }) }), { minLength: 5, maxLength: 40 }),
  kills: fc.array(fc.record({ at: fc.integer({ min: 300, max: 6000 }), which: fc.nat(3) }), { maxLength: 2 }),
});

// Run first, every time: a burst that fills the queue and sheds, a burst
// that times out, and kills of a worker running a request.
const burst = (n: number, route: number, ms: number, at = 0): Req[] => Array.from({ length: n }, (_, i) => ({ at: at + i * 5, route, ms }));
const EXAMPLES: Array<[Mix, number]> = [
  [{ fast: 1, slow: 1, conc: 1, queue: 2, timeout: 0, kills: [], requests: [...burst(8, 5, 600), ...burst(6, 0, 10, 100), ...burst(3, 3, 200, 2000)] }, 11],
  [{ fast: 2, slow: 1, conc: 2, queue: 4, timeout: 1500, kills: [], requests: [...burst(10, 5, 1000), ...burst(10, 1, 7, 50)] }, 12],
  [{ fast: 2, slow: 2, conc: 1, queue: 3, timeout: 3000, kills: [{ at: 700, which: 0 }, { at: 2500, which: 1 }], requests: [...burst(8, 5, 900), ...burst(4, 4, 300, 100), ...burst(6, 2, 3, 1000)] }, 13],
];

/** Virtual ms a hop between processes may add up to: enqueue and start of an immediately assigned request lie within this of its send. */
const HOP = 6;

interface Sent {
  r: Req;
  path: string;
  cost: number;
  a: Answer;
  /** When its fast worker took it (a busy worker takes it late): the end less the duration its access-log line gives. */
  arrived: number;
}

function check(m: Mix, sent: Omit<Sent, 'arrived'>[], kills: { at: number; pid: number }[], fastPids: Set<number>, slowPidsEver: Set<number>, access: string) {
  const reqs: Sent[] = sent.map((x) => {
    const lines = access.split('\n').filter((l) => l.includes(`"GET ${x.path} `));
    // One outcome, one access-log line.
    expect(lines, x.path).toHaveLength(1);
    // gunicorn's duration in seconds ends the CLF part; lanes append lane=, route= and duration_ms= after it.
    const seconds = Number(/ (\d+\.\d{6}) lane=/.exec(lines[0]!)![1]);
    return { ...x, arrived: x.a.t1 - Math.round(seconds * 1000) };
  });
  if (REPLAY) process.stderr.write(JSON.stringify(reqs.slice().sort((p, q) => p.a.t0 - q.a.t0).map((x) => ({ p: x.path, t0: x.a.t0, arr: x.arrived, t1: x.a.t1, st: x.a.status, body: x.a.text.slice(0, 40) }))) + '\n');
  const slots = m.slow * m.conc;
  /** Handed to the slow lane (and not shed at once). */
  const inLane = (x: Sent) => (x.a.status === 200 ? slowPidsEver.has(ran(x.a).pid) : !/slow lane is full/.test(x.a.text));
  /**
   * When it left the lane: its answer ended; or, `strict` (the earliest it
   * can have been), at queue_timeout for one that waited too long, at the
   * first kill since it came for one that failed, at the kill of its slow
   * worker for one answered whole just before - which its fast worker may
   * report much later, busy burning.
   */
  const leftLane = (x: Sent, strict: boolean) => {
    if (!strict) return x.a.t1;
    if (x.a.status === 200) return Math.min(x.a.t1, ...kills.filter((k) => k.pid === ran(x.a).pid && k.at >= ran(x.a).start).map((k) => k.at));
    if (x.a.status === 503) return Math.min(x.a.t1, x.arrived + m.timeout);
    const k = kills.filter((k) => k.at >= x.arrived - HOP && k.at <= x.a.t1).map((k) => k.at);
    return Math.min(x.a.t1, ...k);
  };
  // When each learned route became known slow: the end of its first request
  // run on a fast worker that took over the threshold.
  const known = new Map<number, number>();
  for (const x of reqs) {
    if (isFast(x.r.route) || isHinted(x.r.route) || x.a.status !== 200 || !fastPids.has(ran(x.a).pid)) continue;
    const t = known.get(x.r.route);
    if (x.cost > THRESHOLD && (t === undefined || x.a.t1 < t)) known.set(x.r.route, x.a.t1);
  }

  for (const x of reqs) {
    const { a, r, path } = x;
    const what = `${path} (sent at ${a.t0}, taken at ${x.arrived}): ${a.status} ${a.error ?? a.text.slice(0, 80)}`;
    if (a.status === 200) {
      const got = ran(a);
      expect(got.url, what).toBe(path);
      if (isFast(r.route)) expect(fastPids.has(got.pid), what).toBe(true);
      else if (isHinted(r.route)) expect(slowPidsEver.has(got.pid), what).toBe(true);
      else {
        const k = known.get(r.route);
        // Sent after the news went out: the news reaches every fast worker
        // first. (One sent before may be taken after the news came, yet
        // before the worker, burning meanwhile, got to read it.)
        if (k !== undefined && a.t0 > k + HOP) expect(slowPidsEver.has(got.pid), `${what}: known slow since ${k}`).toBe(true);
        expect(fastPids.has(got.pid) || slowPidsEver.has(got.pid), what).toBe(true);
      }
      continue;
    }
    // Not answered by the app: only ever a request in the slow lane.
    expect(isFast(r.route), what).toBe(false);
    if (a.status === 503) {
      expect(a.headers['retry-after'], what).toMatch(/^[1-9]\d*$/);
      if (/waited too long/.test(a.text)) {
        expect(m.timeout, what).toBeGreaterThan(0);
        // At queue_timeout, or as soon as its fast worker is free to answer.
        expect(a.t1 - x.arrived, what).toBeGreaterThanOrEqual(m.timeout);
        expect(a.t1, what).toBeLessThanOrEqual(fastFree(x.arrived + m.timeout));
      } else {
        expect(a.text, what).toMatch(/slow lane is full/);
        // The lane was full when it came: every slot busy and slow_queue
        // waiting, i.e. that many others in the lane (each counted
        // generously); only slow_queue if a worker was just killed (its
        // slots are gone until its replacement boots).
        const others = reqs.filter((y) => y !== x && inLane(y) && y.arrived - HOP <= x.arrived && x.arrived <= leftLane(y, false) + HOP).length;
        const killed = kills.some((k) => k.at <= x.arrived && x.arrived - k.at < 200);
        expect(others, what).toBeGreaterThanOrEqual(m.queue + (killed ? 0 : slots));
      }
    } else {
      // 502, or reset mid-answer: a slow worker was killed while it was in
      // the lane, and the answer came at once - or as soon as its fast
      // worker was free to hear of it (a burn there delays all it does).
      expect(a.status === 502 || a.status === 0, what).toBe(true);
      expect(kills.some((k) => k.at >= x.arrived - HOP && k.at <= a.t1 && a.t1 <= fastFree(k.at)), `${what}, answered at ${a.t1}; kills ${JSON.stringify(kills)}`).toBe(true);
    }
  }

  /** When, from `t` on, some fast worker is first free of burns in a row (a generous bound on when a fast worker acts on news from `t`). */
  function fastFree(t: number): number {
    let end = t + 2 * HOP;
    for (let moved = true; moved;) {
      moved = false;
      for (const y of reqs) {
        if (y.a.status !== 200 || !fastPids.has(ran(y.a).pid) || !/burn=/.test(y.path)) continue;
        if (ran(y.a).start <= end && y.a.t1 + 2 * HOP > end && y.a.t1 >= t) {
          end = y.a.t1 + 2 * HOP;
          moved = true;
        }
      }
    }
    return end;
  }

  // A fast request waits only behind requests of routes not yet known slow
  // (sent before the news) run on its own worker: with none of those, its
  // latency is its own cost and that of the other fast requests its worker
  // ran meanwhile, and never a known-slow route's burn.
  const overlaps = (y: Sent, x: Sent) => ran(y.a).start <= x.a.t1 && y.a.t1 >= x.a.t0;
  for (const x of reqs) {
    if (!isFast(x.r.route)) continue;
    const pid = ran(x.a).pid;
    const there = reqs.filter((y) => y.a.status === 200 && ran(y.a).pid === pid && overlaps(y, x));
    const unknownSlow = there.some((y) => !isFast(y.r.route) && !isHinted(y.r.route) && !(y.a.t0 > (known.get(y.r.route) ?? Infinity) + HOP));
    if (unknownSlow) continue;
    const fastWork = there.filter((y) => isFast(y.r.route)).reduce((n, y) => n + y.cost, 0);
    expect(x.a.t1 - x.a.t0, `${x.path}, on ${pid}: waited behind something slow`).toBeLessThanOrEqual(fastWork + 4 * HOP);
  }

  // The queue bound. The lane is work-conserving (a request waits only when
  // every slot is busy), so it holds at most slots + slow_queue requests at
  // any time: each counted strictly, from when its fast worker took it to
  // when it left.
  const events: [number, number][] = [];
  for (const x of reqs) {
    if (!inLane(x)) continue;
    const from = x.arrived + HOP;
    const to = leftLane(x, true) - HOP;
    if (to > from) events.push([from, +1], [to, -1]);
  }
  events.sort((p, q) => p[0] - q[0] || p[1] - q[1]);
  let depth = 0;
  let most = 0;
  for (const [, d] of events) most = Math.max(most, (depth += d));
  expect(most, 'requests in the slow lane at once').toBeLessThanOrEqual(slots + m.queue);
  return most - slots;
}

/**
 * Runs a mix and checks it; answers the most requests the queue held, seen
 * from outside (reconstructed) and from inside (the arbiter's probe hook,
 * after every decision of the lane).
 */
async function run(m: Mix, seed: number, defects: readonly Defect[] = []): Promise<{ outside: number; inside: number }> {
  let most = 0;
  let inside = 0;
  const argv = [
    LANES_APP, '--bind', '127.0.0.1:8000', '--workers', String(m.fast), '--slow-workers', String(m.slow),
    '--slow-concurrency', String(m.conc), '--slow-queue', String(m.queue), '--queue-timeout', String(m.timeout / 1000),
    '--slow-routes', 'GET /h/*', '--access-log', '/tmp/access.log',
  ];
  const hooks: Hooks = { lane: (_arbiter, _generation, s) => void (inside = Math.max(inside, s.queued)), defects: new Set(defects) };
  await simulate(seed, argv, async (c) => {
    await c.booted(m.fast);
    await slowBooted(c, m.slow);
    const fastPids = new Set(c.workers());
    const t0 = c.os.now();
    const kills: { at: number; pid: number }[] = [];
    const killing = m.kills.map(async (k) => {
      await c.os.sleep(k.at);
      const live = slowPids(c);
      if (live.length === 0) return;
      const pid = live[k.which % live.length]!;
      kills.push({ at: c.os.now(), pid });
      c.os.kill(pid, 'SIGKILL');
    });
    const reqs = await Promise.all(m.requests.map(async (r, id) => {
      await c.os.sleep(r.at);
      const { path, cost } = shape(r, id);
      const a = await within(c.os, ask(c.os, path), 120_000);
      if (a === 'hang') throw new Error(`${path}, sent at ${c.os.now() - t0}: no answer within 120 s`);
      return { r, path, cost, a };
    }));
    await Promise.all(killing);
    await c.os.sleep(200); // the access log lines of the last answers
    const slowEver = new Set((c.log().match(/slow-lane worker \d+ booted/g) ?? []).map((l) => Number(l.split(' ')[2])));
    most = check(m, reqs, kills, fastPids, slowEver, c.os.fs.readFile('/tmp/access.log'));
    expect(c.workers().sort()).toEqual([...fastPids].sort());
    c.signal('SIGTERM');
    expect(await c.exited()).toMatchObject({ code: 0, signal: null });
  }, {}, [], hooks);
  expect(inside, 'queue depth the arbiter saw').toBeLessThanOrEqual(m.queue);
  // Seen from outside, no more than it was.
  expect(most).toBeLessThanOrEqual(inside);
  return { outside: most, inside };
}

// Exploring: LANES_SEED=n LANES_RUNS=n for other mixes; LANES_REPLAY='[mix, seed]'
// (a counterexample as fast-check prints it) runs that one and prints its
// requests' timeline.
const REPLAY = process.env.LANES_REPLAY;

test('random mixes of routes, durations and slow-worker kills: one right answer each, sheds only when full or late, queue within its bound', { timeout: 120_000 }, async () => {
  const full: boolean[] = [];
  await fc.assert(
    fc.asyncProperty(mixArb, fc.integer({ min: 1, max: 1_000_000 }), async (m, seed) => {
      const q = await run(m, seed);
      full.push(m.queue >= 2 && q.outside === m.queue);
    }),
    REPLAY ? { numRuns: 1, examples: [JSON.parse(REPLAY)], endOnFailure: true } : { numRuns: Number(process.env.LANES_RUNS ?? 200), examples: EXAMPLES, seed: Number(process.env.LANES_SEED ?? 20261126) },
  );
  // The bound is not checked in vain: some mixes (the examples, at least)
  // filled the queue to exactly slow_queue.
  if (!REPLAY) expect(full).toContain(true);
});

test('the checks catch a slow lane that queues one request more than slow_queue (the planted defect lane-queue-overflow)', async () => {
  await expect(run(...EXAMPLES[0]!, ['lane-queue-overflow'])).rejects.toThrow(/requests in the slow lane at once: expected 4 to be less than or equal to 3/);
});
