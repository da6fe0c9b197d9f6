// The arbiter's table of learned slow routes (arbiter/lanes.ts, route() and
// learned()) under a flood: an attacker's unique URLs, each slow once, are
// each announced slow by a fast worker; the table must stay bounded and keep
// the slow routes real traffic uses, so that a new fast worker (a reload, a
// crash, max_requests) starts from them instead of stalling its fast lane on
// their next request.
import fc from 'fast-check';
import { expect, test } from 'vitest';
import type { Os } from '../../src/os/types.js';
import { Lanes } from '../../src/runtime/arbiter/lanes.js';
import { Workers } from '../../src/runtime/arbiter/workers.js';
import type { Config } from '../../src/runtime/config/index.js';
import { DEFAULT_CAPACITY } from '../../src/runtime/lanes/predictor.js';
import { routeKey } from '../../src/runtime/lanes/route-key.js';
import type { Logger } from '../../src/runtime/log.js';
import type { ToWorker } from '../../src/runtime/protocol.js';

/** The arbiter's lanes with two fast workers (none to send news to: `alone`) and one slow worker. */
function setup(alone = false) {
  const sent: Array<[number, ToWorker]> = [];
  const os = { now: () => 0, timer: () => ({ cancel() {} }), hooks: {} } as unknown as Os;
  const log = { error() {}, info() {}, warning() {} } as unknown as Logger;
  const table = new Workers();
  const a = table.add(300, null, 1, 0, 'fast');
  const b = table.add(301, null, 1, 0, 'fast');
  const lanes = new Lanes({ os, log, send: (pid, m) => sent.push([pid, m]), idle: () => {}, unreachable: () => {}, fastWorkers: () => (alone ? [] : [a, b]) });
  lanes.open(1, { lanes: true, slow_queue: 4, slow_concurrency: 1, queue_timeout: 0 } as Config);
  lanes.slowReady(table.add(200, null, 1, 0, 'slow', '/run/slow-1.sock'), '/run/slow-1.sock');
  let seq = 0;
  /** One request of `key` through the slow lane, as a fast worker that predicts it slow sends it. */
  const use = (key: number) => {
    lanes.want(b, ++seq, key);
    lanes.done(b, seq);
  };
  const slow = (key: number, avgMs = 1500) => lanes.route(a, { key, route: `GET /r/${key}`, avgMs, slow: true });
  const fast = (key: number, avgMs = 100) => lanes.route(a, { key, route: `GET /r/${key}`, avgMs, slow: false });
  const learned = () => new Map(lanes.learned().map((r) => [r.key, r.avgMs]));
  /** The routes a new worker is told were used: it imports them with a touch more (predictor.ts import). */
  const usedOnes = () => lanes.learned().filter((r) => r.used === true).map((r) => r.key);
  return { lanes, sent, use, slow, fast, learned, usedOnes };
}

const REAL = routeKey('GET', '/reports/42/pdf');
/** The attacker's n-th unique URL (never REAL's key: the other sign). */
const flood = (i: number) => (REAL < 0 ? 1 + i : -1 - i);

test('a flood of unique slow URLs, more than the table holds, does not push out a learned slow route that traffic keeps using', () => {
  const { slow, use, learned, sent, usedOnes } = setup();
  slow(REAL, 2400);
  use(REAL);
  for (let i = 0; i < 3 * DEFAULT_CAPACITY; i++) {
    slow(flood(i));
    if (i % 1000 === 999) use(REAL); // real traffic, now and then
  }
  const l = learned();
  expect(l.size).toBeLessThanOrEqual(DEFAULT_CAPACITY);
  expect(l.get(REAL)).toBe(2400); // what a new worker starts from
  // The flood churned through its own entries: its newest are kept, its oldest gone.
  expect(l.has(flood(3 * DEFAULT_CAPACITY - 1))).toBe(true);
  expect(l.has(flood(0))).toBe(false);
  expect(usedOnes()).toEqual([REAL]);
  // A use is no news: nothing more went to the workers than the news itself.
  expect(sent.filter(([, m]) => m.t === 'route')).toHaveLength(1 + 3 * DEFAULT_CAPACITY);
});

test('one use before the flood is enough; news does not count as use; fast news forgets a route wherever it is', () => {
  const s = setup();
  s.slow(REAL);
  s.use(REAL);
  s.slow(REAL, 3000); // news again (a worker saw it fast, then slow): still in use, with the new average
  for (let i = 0; i < 2 * DEFAULT_CAPACITY; i++) s.slow(flood(i));
  expect(s.learned().get(REAL)).toBe(3000);
  s.fast(REAL);
  expect(s.learned().has(REAL)).toBe(false);

  // Learned, never used: one of the flood, and gone with its oldest.
  const t = setup();
  t.slow(REAL);
  for (let i = 0; i < DEFAULT_CAPACITY; i++) t.slow(flood(i));
  expect(t.learned().has(REAL)).toBe(false);
  // A use of a route the table does not hold (forgotten, or a hint) changes nothing.
  t.use(REAL);
  t.use(flood(0));
  expect(t.learned().size).toBe(DEFAULT_CAPACITY);
  expect(t.learned().has(REAL)).toBe(false);
});

test('an attacker who pays a slow-lane request for each of its URLs as well pushes a used route out only after thousands of them, not one more than the table', () => {
  const { slow, use, learned } = setup();
  slow(REAL);
  use(REAL);
  // Each URL slow once on a fast worker, then once through the slow lane.
  for (let i = 0; i < DEFAULT_CAPACITY / 2; i++) {
    slow(flood(i));
    use(flood(i));
  }
  expect(learned().has(REAL)).toBe(true);
  for (let i = DEFAULT_CAPACITY / 2; i < 3 * DEFAULT_CAPACITY; i++) {
    slow(flood(i));
    use(flood(i));
    if (i % 1000 === 999) use(REAL);
  }
  expect(learned().has(REAL)).toBe(true);
  expect(learned().size).toBe(DEFAULT_CAPACITY);
});

// The model: what the table must do, whatever the order of news and uses.
// - Bounded: never more than DEFAULT_CAPACITY routes.
// - Exact: it holds only routes whose last news was slow, with that news'
//   average; and all of them while they have never been more than it holds.
// - Flood-proof: a route used (a slow-lane request) while held, and slow by
//   its news since, is held as long as fewer than three quarters of the
//   table's worth of other held routes were used after it, however many were
//   only learned (news costs the attacker one slow request on a fast worker;
//   a use costs it a slow-lane request on top).
type Op =
  | { t: 'news'; key: number; slow: boolean; avgMs: number }
  | { t: 'use'; key: number }
  | { t: 'flood'; n: number; used: boolean };

/** lanes.ts USED_MAX: the used routes the table holds apart from the merely learned. */
const USED_MAX = (DEFAULT_CAPACITY * 3) / 4;

test('model: bounded, exact while it fits, and a used route outlives any flood of news', () => {
  const key = fc.integer({ min: -3, max: -1 }); // the real routes; floods use fresh positive keys
  const op: fc.Arbitrary<Op> = fc.oneof(
    { weight: 4, arbitrary: fc.record({ t: fc.constant('news' as const), key, slow: fc.constantFrom(true, true, true, false), avgMs: fc.integer({ min: 0, max: 5000 }) }) },
    { weight: 4, arbitrary: fc.record({ t: fc.constant('use' as const), key }) },
    { weight: 4, arbitrary: fc.record({ t: fc.constant('flood' as const), n: fc.integer({ min: 0, max: 5000 }), used: fc.constantFrom(false, false, true) }) },
  );
  let tested = 0; // checks of a used route after more news than the table holds: the property is not vacuous
  // The flood of news; and one of used routes, between and after two uses of a real one (the second use must count).
  const attack: Op[] = [{ t: 'news', key: -1, slow: true, avgMs: 2000 }, { t: 'use', key: -1 }, { t: 'flood', n: 3000, used: false }, { t: 'flood', n: 3000, used: false }];
  const paid: Op[] = [{ t: 'news', key: -1, slow: true, avgMs: 2000 }, { t: 'use', key: -1 }, { t: 'flood', n: 3000, used: true }, { t: 'use', key: -1 }, { t: 'flood', n: 3000, used: true }];
  fc.assert(fc.property(fc.array(op, { minLength: 4, maxLength: 16, size: 'max' }), (ops) => {
    const s = setup(true);
    const last = new Map<number, { slow: boolean; avgMs: number }>(); // last news of each route (the flood's, while held)
    let slowNow = 0; // routes slow by their last news
    let most = 0; // ... at most, so far
    let news = 0;
    let next = 1; // the flood's next route
    let floodUses = 0; // uses of the flood's routes: each a route of its own, used once
    let clock = 0; // uses of held routes
    const realUse = new Map<number, number>(); // real route -> clock at its last use while held
    const held = new Map<number, { at: number; floodUses: number; news: number }>(); // real route used while held, slow by its news since
    const say = (k: number, slow: boolean, avgMs: number) => {
      if (slow) s.slow(k, avgMs);
      else s.fast(k, avgMs);
      const was = last.get(k)?.slow === true;
      if (!slow || !was) held.delete(k);
      slowNow += Number(slow) - Number(was);
      most = Math.max(most, slowNow);
      last.set(k, { slow, avgMs });
      news++;
    };
    for (const o of ops) {
      if (o.t === 'news') say(o.key, o.slow, o.avgMs);
      else if (o.t === 'use') {
        if (s.learned().has(o.key)) {
          realUse.set(o.key, ++clock);
          held.set(o.key, { at: clock, floodUses, news });
        }
        s.use(o.key);
      } else {
        for (let i = 0; i < o.n; i++) {
          const k = next++;
          say(k, true, 1500);
          if (o.used) {
            s.use(k);
            floodUses++;
            clock++;
          }
        }
      }
      const l = s.learned();
      expect(l.size).toBeLessThanOrEqual(DEFAULT_CAPACITY);
      const wrong = [...l].filter(([k, avgMs]) => last.get(k)?.slow !== true || last.get(k)?.avgMs !== avgMs);
      expect(wrong).toEqual([]);
      if (most <= DEFAULT_CAPACITY) expect(l.size).toBe(slowNow);
      for (const [k, h] of held) {
        const since = floodUses - h.floodUses + [...realUse].filter(([j, at]) => j !== k && at > h.at).length;
        if (since >= USED_MAX) continue;
        expect(l.has(k), `route ${k}, used, then ${since} other uses and ${news - h.news} news`).toBe(true);
        if (news - h.news > DEFAULT_CAPACITY) tested++;
      }
      // The flood's routes no longer held can no longer matter (keeps the model small).
      for (const k of [...last.keys()]) if (k > 0 && !l.has(k)) last.delete(k);
    }
  }), { numRuns: Number(process.env.LEARNED_RUNS ?? 100), seed: Number(process.env.LEARNED_SEED ?? 20260514), examples: [[attack], [paid]] });
  expect(tested).toBeGreaterThan(10);
});
