// bench/classify: the cost of classifying a request - route key, lookup and
// decision ("is it slow?") - per request, in time and in bytes allocated,
// for drover (src/runtime/lanes: routeKey + Predictor) against find-my-way's
// find() and a regex + Map normaliser, in the same run, over two realistic
// request sets (urls.ts): 1,000 and 100,000 distinct URLs of a REST API and
// storefront, with numeric ids, UUIDs, 24- and 40-hex ids, nested
// resources, static assets and query strings.
//
//   npm run bench:classify               full run: prints the tables, writes
//                                        bench/results/classify.json and .md
//   npm run bench:classify -- --quick    short run for CI: prints, writes nothing
//
// Time: each classifier has its own loop function (so that no call site is
// shared between classifiers and each is inlined as well as V8 can), which
// walks the set's parallel arrays of methods and URLs in their random order
// and counts "slow" answers (the count is checked, so nothing is optimised
// away). A sample is OPS requests timed with process.hrtime; samples of the
// classifiers are interleaved in rotating order, after a warm-up; the table
// gives the median (and the best) ns per request, loop included (the loop
// alone is a row of its own).
//
// Allocation: bytes allocated per request are the growth of the V8 heap's
// used size (process.memoryUsage().heapUsed) over a batch of requests (the
// least of three batches), after two forced GCs (node --expose-gc), with a young generation large
// enough (--max-semi-space-size) that no GC runs during the batch - checked
// with a PerformanceObserver on 'gc' entries: a batch during which any GC
// ran is thrown away and retried at half the size. Without a GC the used
// size only grows, by what was allocated, so the delta is the allocation
// (Node 20's v8.getHeapStatistics() has no allocation counter; heapUsed
// without GC is the counter). Trust is checked in the same run: the empty
// loop must read 0 bytes a request, and a loop that allocates one
// two-element array a request (kept alive in a ring) must read its known
// size: 64 bytes on x64 (a 32-byte JSArray and its 32-byte FixedArray).
//
// The URLs are flat one-byte strings, as node:http hands req.url over (see
// urls.ts); the methods are interned literals, as node:http's are. The
// "floor" row reads every character of each path with charCodeAt and does
// nothing else: no classifier that reads the path can be faster on this
// machine.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { join } from 'node:path';
import { PerformanceObserver, performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { routeKey } from '../../src/runtime/lanes/route-key.js';
import type { Predictor } from '../../src/runtime/lanes/predictor.js';
import { cli, fmt, median, table } from '../lib/report.js';
import { ALPHA, THRESHOLD_MS, drover, findMyWay, normalize, regexMap, type Stat } from './peers.js';
import { ROUTES, requestSet, type RequestSet } from './urls.js';

const { progress, positive, fail } = cli('classify');
const { values: opt } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    ops: { type: 'string' },
    reps: { type: 'string' },
  },
  strict: true,
});
const quick = opt.quick!;
const OPS = positive('ops', opt.ops ?? (quick ? '200000' : '2000000'));
const REPS = positive('reps', opt.reps ?? (quick ? '3' : '11'));
const write = !quick && opt.ops === undefined && opt.reps === undefined;
const SIZES = [1_000, 100_000];

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) fail('run with node --expose-gc (npm run bench:classify does)');

// ---------------------------------------------------------------- classifiers

interface Subject {
  id: string;
  label: string;
  /** Runs `ops` requests of the set from index 0 on, returns how many were slow. */
  loop(set: RequestSet, ops: number): number;
  /** The decision for one request, for the agreement check. */
  one(method: string, url: string): boolean;
  peer: boolean;
}

function subjects(set: RequestSet): Subject[] {
  // Train each classifier on the same observations: every URL of the set
  // once, 1,500 ms for the slow routes and 5 ms for the others.
  const d = drover();
  const f = findMyWay();
  const r = regexMap();
  for (let i = 0; i < set.urls.length; i++) {
    const ms = ROUTES[set.route[i]!]!.slow ? 1500 : 5;
    for (const c of [d, f, r]) c.observe(set.methods[i]!, set.urls[i]!, ms);
  }
  const pred: Predictor = d.predictor;
  const router = f.router;
  const map = r.map;
  const keys = Int32Array.from(set.urls, (u, i) => routeKey(set.methods[i]!, u));

  return [
    {
      id: 'drover', label: 'drover: Predictor.classify (routeKey + predict)', peer: false, one: d.classify,
      loop(s, ops) {
        const m = s.methods, u = s.urls, n = u.length;
        let slow = 0;
        for (let k = 0, i = 0; k < ops; k++) {
          if (pred.classify(m[i]!, u[i]!)) slow++;
          if (++i === n) i = 0;
        }
        return slow;
      },
    },
    {
      id: 'find-my-way', label: `find-my-way ${fmwVersion}: find() + the route's flag`, peer: true, one: f.classify,
      loop(s, ops) {
        const m = s.methods, u = s.urls, n = u.length;
        let slow = 0;
        for (let k = 0, i = 0; k < ops; k++) {
          const found = router.find(m[i]! as 'GET', u[i]!);
          if (found !== null && (found.store as Stat).slow) slow++;
          if (++i === n) i = 0;
        }
        return slow;
      },
    },
    {
      id: 'regex-map', label: 'regex + Map: slice, replace ids, Map.get', peer: true, one: r.classify,
      loop(s, ops) {
        const m = s.methods, u = s.urls, n = u.length;
        let slow = 0;
        for (let k = 0, i = 0; k < ops; k++) {
          const st = map.get(normalize(m[i]!, u[i]!));
          if (st !== undefined && st.slow) slow++;
          if (++i === n) i = 0;
        }
        return slow;
      },
    },
    {
      id: 'route-key', label: '  drover part: routeKey alone', peer: false, one: () => false,
      loop(s, ops) {
        const m = s.methods, u = s.urls, n = u.length;
        let x = 0;
        for (let k = 0, i = 0; k < ops; k++) {
          x ^= routeKey(m[i]!, u[i]!);
          if (++i === n) i = 0;
        }
        return x === 0x7fffffff ? 1 : 0;
      },
    },
    {
      id: 'predict', label: '  drover part: predict alone (keys precomputed)', peer: false, one: () => false,
      loop(s, ops) {
        const n = s.urls.length;
        let slow = 0;
        for (let k = 0, i = 0; k < ops; k++) {
          if (pred.predict(keys[i]!)) slow++;
          if (++i === n) i = 0;
        }
        return slow;
      },
    },
    {
      id: 'floor', label: '  floor: read the path, charCodeAt up to ?, no work', peer: false, one: () => false,
      loop(s, ops) {
        const u = s.urls, n = u.length;
        let x = 0;
        for (let k = 0, i = 0; k < ops; k++) {
          const url = u[i]!;
          for (let j = 0; j < url.length; j++) {
            const c = url.charCodeAt(j);
            if (c === 63) break;
            x = (x + c) | 0;
          }
          if (++i === n) i = 0;
        }
        return x === 0x7fffffff ? 1 : 0;
      },
    },
    {
      id: 'loop', label: '  the loop alone (reads method and URL)', peer: false, one: () => false,
      loop(s, ops) {
        const m = s.methods, u = s.urls, n = u.length;
        let x = 0;
        for (let k = 0, i = 0; k < ops; k++) {
          x += m[i]!.length + u[i]!.length;
          if (++i === n) i = 0;
        }
        return x === -1 ? 1 : 0;
      },
    },
  ];
}

const fmwVersion = (JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'node_modules', 'find-my-way', 'package.json'), 'utf8')) as { version: string }).version;


// ------------------------------------------------------------- measurements

/** The expected "slow" count of `ops` requests of the set. */
function expectedSlow(set: RequestSet, ops: number): number {
  let slow = 0;
  for (let k = 0, i = 0; k < ops; k++) {
    if (ROUTES[set.route[i]!]!.slow) slow++;
    if (++i === set.urls.length) i = 0;
  }
  return slow;
}

function timeOnce(s: Subject, set: RequestSet, ops: number, want: number): number {
  const t0 = process.hrtime.bigint();
  const got = s.loop(set, ops);
  const ns = Number(process.hrtime.bigint() - t0);
  if (!['route-key', 'floor', 'loop'].includes(s.id) && got !== want) throw new Error(`${s.label}: ${got} slow answers, expected ${want}`);
  return ns / ops;
}

const gcTimes: number[] = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcTimes.push(e.startTime, e.startTime + e.duration);
}).observe({ entryTypes: ['gc'] });
const tick = () => new Promise<void>((r) => setImmediate(r));

/** Bytes allocated per request over a batch with no GC in it (see the top of the file). */
async function bytesPerOp(s: Subject, set: RequestSet): Promise<{ bytes: number; batch: number }> {
  // The least of three clean batches: V8 can still recompile the loop during
  // one (code and deoptimisation data are heap too), which is not what a
  // request allocates; a request's own allocation shows in every batch.
  let best = { bytes: Infinity, batch: 0 };
  for (let k = 0; k < 3; k++) {
    const b = await oneBatch(s, set);
    if (b.bytes < best.bytes) best = b;
  }
  return best;
}

async function oneBatch(s: Subject, set: RequestSet): Promise<{ bytes: number; batch: number }> {
  let batch = 1_000_000;
  s.loop(set, 200_000); // whatever the JIT still had to do, not in the batch
  for (;;) {
    gc!();
    gc!();
    await tick();
    gcTimes.length = 0;
    const t0 = performance.now();
    const h0 = process.memoryUsage().heapUsed;
    s.loop(set, batch);
    const h1 = process.memoryUsage().heapUsed;
    const t1 = performance.now();
    await tick();
    await tick();
    let clean = true;
    for (let i = 0; i < gcTimes.length; i += 2) if (gcTimes[i + 1]! >= t0 && gcTimes[i]! <= t1) clean = false;
    if (clean) return { bytes: Math.max(0, h1 - h0) / batch, batch };
    if (batch <= 1000) throw new Error(`${s.label}: a GC during every batch`);
    batch = Math.floor(batch / 2);
  }
}

/** The calibration loop: one [i, i] a request, kept in a ring so that it escapes. */
const ring: unknown[] = new Array(1024).fill(null);
const calibration: Subject = {
  id: 'calibration', label: 'calibration: one [i, i] array a request', peer: false, one: () => false,
  loop(_s, ops) {
    for (let k = 0; k < ops; k++) ring[k & 1023] = [k, k];
    return 0;
  },
};

interface Result {
  id: string;
  label: string;
  peer: boolean;
  nsMedian: number;
  nsBest: number;
  nsSamples: number[];
  bytesPerOp: number;
  allocBatch: number;
}
interface SetResult {
  distinct: number;
  meanUrlLength: number;
  withQuery: number;
  distinctRouteKeys: number;
  results: Result[];
  calibrationBytes: number;
}

async function measureSet(distinct: number): Promise<SetResult> {
  const set = requestSet(distinct, 20261126 + distinct);
  const subs = subjects(set);

  // Agreement: every classifier gives every request of the set its route's decision.
  for (let i = 0; i < set.urls.length; i++) {
    const want = ROUTES[set.route[i]!]!.slow;
    for (const s of subs.slice(0, 3)) {
      if (s.one(set.methods[i]!, set.urls[i]!) !== want) throw new Error(`${s.label} says ${!want} for ${set.methods[i]} ${set.urls[i]}`);
    }
  }
  const want = expectedSlow(set, OPS);

  progress(`${fmt(distinct)} distinct URLs: warm-up`);
  for (const s of subs) for (let w = 0; w < 3; w++) timeOnce(s, set, Math.min(OPS, 300_000), expectedSlow(set, Math.min(OPS, 300_000)));
  const samples = new Map<string, number[]>(subs.map((s) => [s.id, []]));
  for (let rep = 0; rep < REPS; rep++) {
    for (let j = 0; j < subs.length; j++) {
      const s = subs[(j + rep) % subs.length]!;
      samples.get(s.id)!.push(timeOnce(s, set, OPS, want));
    }
    progress(`${fmt(distinct)} distinct URLs: round ${rep + 1}/${REPS}: ${subs.slice(0, 3).map((s) => `${s.id} ${samples.get(s.id)!.at(-1)!.toFixed(1)} ns`).join(', ')}`);
  }
  const results: Result[] = [];
  for (const s of subs) {
    const a = await bytesPerOp(s, set);
    const xs = samples.get(s.id)!;
    results.push({ id: s.id, label: s.label, peer: s.peer, nsMedian: median(xs), nsBest: Math.min(...xs), nsSamples: xs, bytesPerOp: a.bytes, allocBatch: a.batch });
  }
  calibration.loop(set, 100_000);
  const cal = await bytesPerOp(calibration, set);
  const keys = new Set(set.urls.map((u, i) => routeKey(set.methods[i]!, u)));
  return {
    distinct,
    meanUrlLength: set.urls.reduce((s, u) => s + u.length, 0) / set.urls.length,
    withQuery: set.urls.filter((u) => u.includes('?')).length / set.urls.length,
    distinctRouteKeys: keys.size,
    results,
    calibrationBytes: cal.bytes,
  };
}

// ------------------------------------------------------------------ report

const sets: SetResult[] = [];
for (const n of SIZES) sets.push(await measureSet(n));

const ns = (x: number) => (x < 10 ? x.toFixed(2) : x < 1000 ? x.toFixed(1) : fmt(x));
const by = (s: SetResult, id: string) => s.results.find((r) => r.id === id)!;
const machine = `${availableParallelism()} CPU(s), ${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.version}, ${process.platform}`;
const lines: string[] = [
  `classify: route key + lookup + decision ("slow?") per request, from (method, raw URL); ${fmt(OPS)} requests a sample, ${REPS} samples interleaved in rotating order after a warm-up`,
  `    ${machine}; node ${process.execArgv.join(' ')}`,
  '',
];
for (const s of sets) {
  const d = by(s, 'drover');
  lines.push(`${fmt(s.distinct)} distinct URLs (mean length ${s.meanUrlLength.toFixed(0)} chars, ${(100 * s.withQuery).toFixed(0)}% with a query string, ${ROUTES.length} route patterns, ${s.distinctRouteKeys} distinct drover route keys)`);
  lines.push('');
  // Ratios to drover's time, of the medians and round by round (the
  // samples of one round ran back to back, under the same conditions).
  const perRound = (r: Result) => r.nsSamples.map((x, i) => x / d.nsSamples[i]!);
  lines.push(...table(
    ['classifier', 'ns/req (median)', 'best', 'bytes/req', 'its ns / drover ns', 'same, median of rounds'],
    'lrrrrr',
    s.results.map((r) => [
      r.label,
      ns(r.nsMedian),
      ns(r.nsBest),
      r.bytesPerOp.toFixed(2),
      r.id === 'drover' ? '1.00x' : r.peer || r.id === 'floor' ? `${(r.nsMedian / d.nsMedian).toFixed(2)}x` : '',
      r.id === 'drover' ? '1.00x' : r.peer || r.id === 'floor' ? `${median(perRound(r)).toFixed(2)}x` : '',
    ]),
  ));
  lines.push(`calibration, one [i, i] array a request: ${s.calibrationBytes.toFixed(2)} bytes/req measured (V8 x64: 32-byte JSArray + 32-byte backing store)`);
  lines.push('');
}

const worst = (f: (s: SetResult) => number) => Math.max(...sets.map(f));
const dNs = worst((s) => by(s, 'drover').nsMedian);
const dBytes = worst((s) => by(s, 'drover').bytesPerOp);
// Speed-ups: the median of the round-by-round ratios, the steadier figure
// on a shared machine (a busy spell slows a whole round, not one row).
const speedup = (s: SetResult, id: string) => {
  const d = by(s, 'drover');
  return median(by(s, id).nsSamples.map((x, i) => x / d.nsSamples[i]!));
};
const vsFmw = Math.min(...sets.map((s) => speedup(s, 'find-my-way')));
const vsRegex = Math.min(...sets.map((s) => speedup(s, 'regex-map')));
const dBest = worst((s) => by(s, 'drover').nsBest);
// Issue 16 restates issue 5's 40 ns against the floor measured in the same
// run: the cost of reading the path on this machine, whatever the machine.
const overFloor = worst((s) => median(by(s, 'drover').nsSamples.map((x, i) => x / by(s, 'floor').nsSamples[i]!)));
const targets = {
  nsPerReq: { target: 40, worst: dNs, met: dNs <= 40 },
  overFloor: { target: 1.5, worst: overFloor, met: overFloor <= 1.5 },
  bytesPerReq: { target: 0, worst: dBytes, met: dBytes < 0.01 },
  speedupVsFindMyWay: { target: 3, worst: vsFmw, met: vsFmw >= 3, vsRegexMap: vsRegex },
};
lines.push(`targets (issues 5 and 16), worst of the two sets:`);
lines.push(`  at most 1.5x the floor (issue 16):   ${overFloor.toFixed(2)}x (median of rounds) -> ${targets.overFloor.met ? 'MET' : 'MISSED'}`);
lines.push(`  at most 40 ns a request (issue 5):   ${ns(dNs)} ns (median; best sample ${ns(dBest)} ns) -> ${targets.nsPerReq.met ? 'MET' : `MISSED by ${ns(dNs - 40)} ns`}`);
lines.push(`  no allocation:                       ${dBytes.toFixed(3)} bytes/req -> ${targets.bytesPerReq.met ? 'MET' : 'MISSED'}`);
lines.push(`  at least 3x faster than find-my-way: ${vsFmw.toFixed(2)}x (median of rounds) -> ${targets.speedupVsFindMyWay.met ? 'MET' : 'MISSED'} (and ${vsRegex.toFixed(2)}x faster than regex + Map)`);
lines.push('');
lines.push(`"floor": a loop that only reads each path's characters with charCodeAt up to the '?': what reading the path costs on this machine, the least any classifier that looks at it can take.`);
lines.push(`ns/req includes the loop (its own row); bytes/req: growth of heapUsed over a batch of up to 1,000,000 requests with no GC in it (checked), the least of three batches (a JIT recompile during one is not a request's allocation), see bench/classify/run.ts.`);
lines.push(`All three classifiers are trained on the same observations (EWMA alpha ${ALPHA}, threshold ${THRESHOLD_MS} ms) and were checked to give every request of both sets the same decision before timing.`);
lines.push(`find-my-way registers the ${ROUTES.length} route patterns (ignoreTrailingSlash, ignoreDuplicateSlashes) with the route's EWMA state as its store; it matches, strips the query and returns params. drover's key folds ids without knowing the routes.`);
const report = lines.join('\n');
console.log('\n' + report);

if (write) {
  const dir = join(import.meta.dirname, '..', 'results');
  mkdirSync(dir, { recursive: true });
  const started = new Date();
  writeFileSync(join(dir, 'classify.json'), JSON.stringify({
    bench: 'classify',
    date: started.toISOString(),
    node: process.version,
    execArgv: process.execArgv,
    cpu: cpus()[0]?.model,
    findMyWay: fmwVersion,
    ops: OPS,
    reps: REPS,
    sets,
    targets,
  }, null, 2) + '\n');
  writeFileSync(join(dir, 'classify.md'), `# bench/classify\n\n\`npm run bench:classify\`, ${started.toISOString().slice(0, 10)}\n\n\`\`\`\n${report}\n\`\`\`\n`);
  progress('wrote bench/results/classify.json and classify.md');
}
