// The predictor (src/runtime/lanes/predictor.ts): each rule, static hints,
// export/import, the eviction rule, and properties against a reference
// model (EWMA and threshold) and over random operations (capacity).
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { Predictor, parseHint, HINT_METHODS } from '../../src/runtime/lanes/predictor.js';
import { routeKey } from '../../src/runtime/lanes/route-key.js';

const K = (url: string, method = 'GET') => routeKey(method, url);

/** Keys that share one home slot in a table of `capacity`: base + i * capacity. */
const sameHome = (capacity: number, n: number, base = 5) => Array.from({ length: n }, (_, i) => (base + (i + 1) * capacity) | 0);

describe('predictor rules', () => {
  test('an unknown route is fast', () => {
    const p = new Predictor();
    expect(p.predict(K('/never/seen'))).toBe(false);
    expect(p.classify('GET', '/never/seen')).toBe(false);
    expect(p.average(K('/never/seen'))).toBeUndefined();
  });

  test('one observation over the threshold marks the route slow at once', () => {
    const p = new Predictor({ slowThresholdMs: 1000 });
    const k = K('/report/7');
    for (let i = 0; i < 20; i++) p.observe(k, 10);
    expect(p.predict(k)).toBe(false);
    p.observe(k, 1001);
    expect(p.predict(k)).toBe(true);
    expect(p.classify('GET', '/report/8?x=1')).toBe(true); // ids fold
    expect(p.predict(K('/report/8', 'POST'))).toBe(false);
  });

  test('an observation at the threshold is not over it', () => {
    const p = new Predictor({ slowThresholdMs: 1000 });
    const k = K('/a');
    for (let i = 0; i < 5; i++) p.observe(k, 1000);
    expect(p.predict(k)).toBe(false);
    expect(p.average(k)).toBe(1000);
  });

  test('a slow route returns to fast only when its average falls below the threshold', () => {
    const p = new Predictor({ slowThresholdMs: 1000, alpha: 0.3 });
    const k = K('/slow');
    p.observe(k, 2000); // new route: average 2000
    expect(p.average(k)).toBe(2000);
    expect(p.predict(k)).toBe(true);
    p.observe(k, 0); // 1400
    expect(p.average(k)).toBeCloseTo(1400, 9);
    expect(p.predict(k)).toBe(true);
    p.observe(k, 0); // 980
    expect(p.average(k)).toBeCloseTo(980, 9);
    expect(p.predict(k)).toBe(false);
    p.observe(k, 1050); // over: slow again at once, though the average (1001) ...
    expect(p.predict(k)).toBe(true);
    p.observe(k, 990); // ... 997.7 < 1000: fast
    expect(p.average(k)).toBeCloseTo(0.3 * 990 + 0.7 * (0.3 * 1050 + 0.7 * 980), 9);
    expect(p.predict(k)).toBe(false);
  });

  test('an error answer raises an average, never lowers it; a fast one on an unknown route takes no slot', () => {
    const p = new Predictor({ slowThresholdMs: 100 });
    const k = K('/r');
    p.observe(k, 200);
    for (let i = 0; i < 10; i++) p.observe(k, 1, true);
    expect(p.average(k)).toBe(200);
    expect(p.predict(k)).toBe(true);
    p.observe(k, 1000, true); // a 504 after a long wait: slower, so it counts
    expect(p.average(k)).toBeCloseTo(0.3 * 1000 + 0.7 * 200);
    p.observe(K('/missing'), 1, true);
    expect(p.size).toBe(1);
    p.observe(K('/missing'), 500, true); // an unknown route whose error took long: learned slow
    expect(p.predict(K('/missing'))).toBe(true);
    for (let i = 0; i < 10; i++) p.observe(k, 1);
    expect(p.predict(k)).toBe(false); // successes still bring it back
  });

  test('alpha is configurable', () => {
    const p = new Predictor({ alpha: 0.5, slowThresholdMs: 100 });
    const k = K('/x');
    p.observe(k, 400);
    p.observe(k, 0);
    expect(p.average(k)).toBe(200);
    expect(p.predict(k)).toBe(true);
    p.observe(k, 0);
    expect(p.predict(k)).toBe(true); // 100: not below
    p.observe(k, 0);
    expect(p.predict(k)).toBe(false); // 50
  });

  test('durations that are not finite and >= 0 are ignored', () => {
    const p = new Predictor({ slowThresholdMs: 100 });
    const k = K('/x');
    p.observe(k, 5);
    for (const ms of [NaN, -1, Infinity, -Infinity]) p.observe(k, ms);
    expect(p.average(k)).toBe(5);
    expect(p.predict(k)).toBe(false);
  });

  test('markFast: another worker saw the route fast again; hints stay slow, unknown routes take no slot', () => {
    const p = new Predictor({ slowThresholdMs: 100, slowRoutes: ['GET /pinned'] });
    const a = K('/a');
    p.observe(a, 500);
    expect(p.predict(a)).toBe(true);
    p.markFast(a, 40);
    expect(p.predict(a)).toBe(false);
    expect(p.average(a)).toBe(40);
    p.markFast(K('/pinned'), 1);
    expect(p.predict(K('/pinned'))).toBe(true);
    const size = p.size;
    p.markFast(K('/unknown'), 1);
    expect(p.size).toBe(size);
    expect(p.classifyKey(K('/a'), 'GET', '/a')).toBe(false);
  });

  test('markSlow: learning from another worker', () => {
    const p = new Predictor({ slowThresholdMs: 1000 });
    const a = K('/a');
    p.markSlow(a); // unknown here: slow, average = threshold
    expect(p.predict(a)).toBe(true);
    expect(p.average(a)).toBe(1000);
    p.observe(a, 100); // one fast observation here brings it back
    expect(p.predict(a)).toBe(false);

    const b = K('/b');
    p.markSlow(b, 5000);
    p.observe(b, 100);
    expect(p.predict(b)).toBe(true); // 3530
    const c = K('/c');
    p.observe(c, 4000);
    p.markSlow(c, 1500); // the larger average stays
    expect(p.average(c)).toBe(4000);
    p.observe(c, 10);
    p.markSlow(c, 9000);
    expect(p.average(c)).toBe(9000);
    p.markSlow(c, NaN); // a bad average: the threshold, and the larger stays
    expect(p.average(c)).toBe(9000);
  });

  test('export / import: the learned slow routes as plain data, through JSON', () => {
    const p = new Predictor({ slowThresholdMs: 100, slowRoutes: ['GET /hinted'] });
    const keys = ['/s1', '/s2/1', '/s3'].map((u) => K(u));
    for (const k of keys) p.observe(k, 500);
    p.observe(K('/fast'), 5);
    p.observe(keys[2]!, 0); // 350: still slow
    p.markSlow(K('/from-peer'), 300);
    const data = JSON.parse(JSON.stringify(p.export())) as unknown[];
    expect(data).toHaveLength(4); // the hint is not exported
    expect(data).toContainEqual({ key: keys[2], avgMs: 350 });

    const q = new Predictor({ slowThresholdMs: 100 });
    expect(q.import(data)).toBe(4);
    for (const k of [...keys, K('/from-peer')]) expect(q.predict(k)).toBe(true);
    expect(q.predict(K('/fast'))).toBe(false);
    expect(q.average(keys[0]!)).toBe(500);
    expect(q.export().sort((x, y) => x.key - y.key)).toEqual(p.export().sort((x, y) => x.key - y.key));
  });

  test('import skips what is not a slow route', () => {
    const q = new Predictor();
    expect(q.import([null, 1, 'x', {}, { key: 1.5, avgMs: 1 }, { key: 2 ** 31, avgMs: 1 }, { key: 3, avgMs: -1 }, { key: 3, avgMs: NaN }, { key: 3 }, { key: -7, avgMs: 2000 }])).toBe(1);
    expect(q.predict(-7)).toBe(true);
    expect(q.slowCount).toBe(1);
  });

  test('key 0 is a key like any other', () => {
    const p = new Predictor({ slowThresholdMs: 10 });
    expect(p.predict(0)).toBe(false);
    p.observe(0, 50);
    expect(p.predict(0)).toBe(true);
    expect(p.export()).toEqual([{ key: 1, avgMs: 50 }]); // stored as 1 (documented)
  });

  test('options are validated', () => {
    expect(() => new Predictor({ capacity: 1000 })).toThrow(/power of two/);
    expect(() => new Predictor({ capacity: 8 })).toThrow(/power of two/);
    expect(() => new Predictor({ alpha: 0 })).toThrow(/alpha/);
    expect(() => new Predictor({ alpha: 1.5 })).toThrow(/alpha/);
    expect(() => new Predictor({ slowThresholdMs: -1 })).toThrow(/threshold/);
    expect(() => new Predictor({ slowThresholdMs: NaN })).toThrow(/threshold/);
    expect(() => new Predictor({ probe: 0 })).toThrow(/probe/);
    expect(new Predictor().capacity).toBe(4096);
    expect(new Predictor().alpha).toBe(0.3);
    expect(new Predictor().slowThresholdMs).toBe(1000);
  });
});

describe('static hints (slow_routes)', () => {
  test('patterns parse, and bad ones are rejected with a reason', () => {
    expect(parseHint('GET /reports/*')).toEqual({ methods: ['GET'], path: '/reports', prefix: true });
    expect(parseHint('/export')).toEqual({ methods: [...HINT_METHODS], path: '/export', prefix: false });
    expect(parseHint('* /*')).toEqual({ methods: [...HINT_METHODS], path: '/', prefix: true });
    expect(parseHint('  POST   /users/:id/export ')).toEqual({ methods: ['POST'], path: '/users/:id/export', prefix: false });
    expect(() => parseHint('GET reports')).toThrow(/start with \//);
    expect(() => parseHint('GET /a/*/b')).toThrow(/last whole segment/);
    expect(() => parseHint('GET /a*')).toThrow(/last whole segment/);
    expect(() => parseHint('GET /a?x=1')).toThrow(/query/);
    expect(() => parseHint('G1T /a')).toThrow(/method/);
  });

  test('exact hints: slow before any traffic, ids fold, and they stay slow', () => {
    const p = new Predictor({ slowThresholdMs: 100, slowRoutes: ['GET /reports/monthly', 'POST /users/:id/export', '/pdf/42'] });
    expect(p.classify('GET', '/reports/monthly?year=2024')).toBe(true);
    expect(p.classify('GET', '/reports/weekly')).toBe(false);
    expect(p.classify('POST', `/users/550e8400-e29b-41d4-a716-446655440000/export`)).toBe(true);
    expect(p.classify('GET', '/users/1/export')).toBe(false);
    for (const m of HINT_METHODS) expect(p.classify(m, '/pdf/7')).toBe(true);
    expect(p.classify('PROPFIND', '/pdf/7')).toBe(false);
    const k = K('/reports/monthly');
    for (let i = 0; i < 50; i++) p.observe(k, 1);
    expect(p.predict(k)).toBe(true);
    expect(p.export()).toEqual([]);
  });

  test('prefix hints: everything under the prefix, not the prefix itself', () => {
    const p = new Predictor({ slowRoutes: ['GET /reports/*', '* /admin/:id/*'] });
    expect(p.classify('GET', '/reports/monthly')).toBe(true);
    expect(p.classify('GET', '/reports/2024/03.csv?x')).toBe(true);
    expect(p.classify('GET', 'http://host/reports/x')).toBe(true);
    expect(p.classify('GET', '/reports')).toBe(false);
    expect(p.classify('GET', '/reports/')).toBe(false);
    expect(p.classify('POST', '/reports/x')).toBe(false);
    expect(p.classify('DELETE', '/admin/12/users/3')).toBe(true);
    expect(p.classify('GET', '/admin/me/users')).toBe(false);
    // predict(key) alone knows exact entries only
    expect(p.predict(K('/reports/monthly'))).toBe(false);
  });

  test('the root prefix hint makes everything but / slow', () => {
    const p = new Predictor({ slowRoutes: ['GET /*'] });
    expect(p.classify('GET', '/a')).toBe(true);
    expect(p.classify('GET', '/')).toBe(false);
    expect(p.classify('GET', '/?a=/b')).toBe(false);
  });
});

describe('eviction: memory is fixed, learned slow routes outlive floods', () => {
  test('a full window replaces its least recently touched fast entry', () => {
    const p = new Predictor({ capacity: 16, probe: 4, slowThresholdMs: 100 });
    const [a, b, c, d, e] = sameHome(16, 5);
    for (const k of [a, b, c, d]) p.observe(k!, 1);
    p.observe(a!, 1); // a is now the most recent; b the least
    p.observe(e!, 1);
    expect(p.average(b!)).toBeUndefined();
    for (const k of [a, c, d, e]) expect(p.average(k!)).toBe(1);
    expect(p.size).toBe(4);
  });

  test('a fast entry is evicted before any slow one, however old', () => {
    const p = new Predictor({ capacity: 16, probe: 4, slowThresholdMs: 100 });
    const ks = sameHome(16, 40);
    p.observe(ks[0]!, 500); // slow, then never touched again
    p.observe(ks[1]!, 500);
    for (const k of ks.slice(2)) p.observe(k, 1); // a flood of fast routes in the same window
    expect(p.predict(ks[0]!)).toBe(true);
    expect(p.predict(ks[1]!)).toBe(true);
    expect(p.size).toBe(4);
  });

  test('a flood of unique slow paths churns through itself: a slow route real traffic keeps touching stays, however old its last touch', () => {
    const p = new Predictor({ capacity: 16, probe: 4, slowThresholdMs: 100 });
    const ks = sameHome(16, 400);
    for (let i = 0; i < 5; i++) p.observe(ks[0]!, 500); // a real slow route, seen 5 times
    p.markSlow(ks[1]!, 500); // learned from another worker, then seen once here
    p.observe(ks[1]!, 500);
    for (const k of ks.slice(2)) p.observe(k, 1100); // 398 unique slow URLs, each once, all after
    // Before: the window all slow lost its least recently touched entry, the real routes first.
    expect(p.predict(ks[0]!)).toBe(true);
    expect(p.predict(ks[1]!)).toBe(true);
    expect(p.size).toBe(4);
  });

  test('a new worker importing the arbiter\'s table: a route marked used outlives a flood of one-shot URLs imported after it and coming on', () => {
    const p = new Predictor({ capacity: 16, probe: 4, slowThresholdMs: 100 });
    const ks = sameHome(16, 40);
    // The arbiter lists the used last; before them, three of a flood that was under way.
    expect(p.import([...ks.slice(1, 4).map((key) => ({ key, avgMs: 1100 })), { key: ks[0]!, avgMs: 500, used: true }])).toBe(4);
    for (const k of ks.slice(4)) p.observe(k, 1100); // the flood goes on in the new worker
    // Before: imported with one touch like the flood's, it went with the first new one (the least recent of the fewest touched).
    expect(p.predict(ks[0]!)).toBe(true);
    expect(p.average(ks[0]!)).toBe(500);
  });

  test('a window all slow evicts the slow entry touched fewest times (ties: the least recent); pinned hints never go', () => {
    const p = new Predictor({ capacity: 16, probe: 2, slowThresholdMs: 100 });
    const ks = sameHome(16, 4);
    p.observe(ks[0]!, 500);
    p.observe(ks[1]!, 500);
    p.observe(ks[0]!, 500);
    p.observe(ks[2]!, 500);
    expect(p.predict(ks[1]!)).toBe(false);
    expect(p.predict(ks[0]!)).toBe(true);
    expect(p.predict(ks[2]!)).toBe(true);
  });

  test('a window of pinned hints drops new observations', () => {
    // Two hints whose keys share a home slot in a table of 16, probe 2.
    const byHome = new Map<number, string>();
    let pair: [string, string] | undefined;
    for (let i = 0; !pair; i++) {
      const path = `/h${i}`;
      const home = K(path) & 15;
      const other = byHome.get(home);
      if (other) pair = [other, path];
      else byHome.set(home, path);
    }
    const p = new Predictor({ capacity: 16, probe: 2, slowThresholdMs: 100, slowRoutes: pair.map((x) => `GET ${x}`) });
    const home = K(pair[0]) & 15;
    const intruder = (home + 16 * 7) | 0;
    p.observe(intruder, 500);
    expect(p.predict(intruder)).toBe(false);
    expect(p.classify('GET', pair[0])).toBe(true);
    expect(p.classify('GET', pair[1])).toBe(true);
    expect(() => new Predictor({ capacity: 16, probe: 1, slowRoutes: pair.map((x) => `GET ${x}`) })).toThrow(/too many exact hints/);
  });
});

describe('predictor properties', () => {
  // The rules as a plain Map: no capacity limit.
  class Reference {
    m = new Map<number, { avg: number; slow: boolean }>();
    constructor(readonly alpha: number, readonly thr: number) {}
    observe(k: number, ms: number) {
      const e = this.m.get(k);
      if (!e) { this.m.set(k, { avg: ms, slow: ms > this.thr }); return; }
      e.avg = this.alpha * ms + (1 - this.alpha) * e.avg;
      if (ms > this.thr) e.slow = true;
      else if (e.slow && e.avg < this.thr) e.slow = false;
    }
    markSlow(k: number, avg: number) {
      const e = this.m.get(k);
      if (!e) this.m.set(k, { avg, slow: true });
      else { e.avg = Math.max(e.avg, avg); e.slow = true; }
    }
    predict(k: number) { return this.m.get(k)?.slow ?? false; }
  }

  const op = (keys: number) => fc.oneof(
    { arbitrary: fc.record({ t: fc.constant('observe' as const), k: fc.nat(keys - 1), ms: fc.oneof(fc.double({ min: 0, max: 3000, noNaN: true }), fc.constantFrom(0, 999, 1000, 1001)) }), weight: 8 },
    { arbitrary: fc.record({ t: fc.constant('mark' as const), k: fc.nat(keys - 1), ms: fc.double({ min: 0, max: 3000, noNaN: true }) }), weight: 1 },
  );

  test('EWMA and threshold behave like the reference model (no eviction)', () => {
    fc.assert(fc.property(
      fc.double({ min: 0.01, max: 1, noNaN: true }), fc.constantFrom(0, 1, 1000, 250.5), fc.array(op(40), { maxLength: 300 }),
      (alpha, thr, ops) => {
        const p = new Predictor({ alpha, slowThresholdMs: thr });
        const r = new Reference(alpha, thr);
        const key = (i: number) => K(`/route${i}`);
        for (const o of ops) {
          if (o.t === 'observe') { p.observe(key(o.k), o.ms); r.observe(key(o.k), o.ms); }
          else { p.markSlow(key(o.k), o.ms); r.markSlow(key(o.k), o.ms); }
          expect(p.predict(key(o.k))).toBe(r.predict(key(o.k)));
        }
        for (let i = 0; i < 40; i++) {
          expect(p.predict(key(i))).toBe(r.predict(key(i)));
          expect(p.average(key(i))).toBe(r.m.get(key(i))?.avg);
        }
      }), { numRuns: 500 });
  });

  test('capacity is never exceeded, and a just-observed route is always found', () => {
    fc.assert(fc.property(
      fc.constantFrom(16, 32, 64), fc.integer({ min: 1, max: 8 }), fc.array(op(500), { maxLength: 2000 }),
      (capacity, probe, ops) => {
        const p = new Predictor({ capacity, probe, slowThresholdMs: 1000 });
        const bytes = p.byteLength;
        for (const o of ops) {
          const k = (o.k * 2654435761) | 0;
          if (o.t === 'observe') p.observe(k, o.ms);
          else p.markSlow(k, o.ms);
          expect(p.size).toBeLessThanOrEqual(capacity);
          expect(p.average(k)).toBeDefined();
          if (o.t === 'mark' || o.ms > 1000) expect(p.predict(k)).toBe(true);
        }
        let found = 0;
        for (let k = 0; k < 500; k++) if (p.average((k * 2654435761) | 0) !== undefined) found++;
        expect(found).toBe(p.size);
        expect(p.byteLength).toBe(bytes);
      }), { numRuns: 300 });
  });
});
