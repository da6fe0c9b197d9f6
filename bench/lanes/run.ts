// bench/lanes: throughput of the slow-lane queue policy itself
// (src/runtime/lanes/queue.ts, SlowLane): cycles of enqueue -> assign ->
// complete per second, in a steady state with a full-ish queue, with 1, 8
// and 64 slow workers at concurrency 1 and 4. The peer, timed in the same
// run, alternating with it: NaiveLane (naive.ts), the same policy on a JS
// array queue (push/shift, findIndex + splice to cancel) and a linear scan
// for the worker. Before timing, both are run on one random sequence of
// operations (enqueue, cancel, complete, add/remove worker, tick) and must
// make the same decisions.
//
//   npm run bench:lanes               full run: prints the table, writes
//                                     bench/results/lanes.json and .md
//   npm run bench:lanes -- --quick    short run for CI: prints, writes nothing
//
// Options, which print but write nothing: --cycles N (timed cycles per
// measurement, default 1,000,000), --reps R (default 7).
//
// Steady state: queue limit 1,024, queue_timeout 60 s; the lane gets its
// workers, then workers x concurrency requests (every slot busy) and 90 % of
// the queue (921 waiting). One cycle: the oldest running request completes
// (its slot goes to the head of the queue: one assign decision), then a new
// request is enqueued (queued at the back). Time advances 1 ms a cycle, so
// nothing times out and nothing is shed (checked). Scenario "cancels": in
// addition, every 8th cycle cancels a request from the middle of the queue
// (the one enqueued fill/2 cycles earlier) and enqueues one more in its
// place: a client that gave up while waiting.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { SlowLane, type Decision, type LaneLimits } from '../../src/runtime/lanes/queue.js';
import { NaiveLane } from './naive.js';
import { cli, fmt, median, table } from '../lib/report.js';
import { prng } from '../lib/random.js';

const { progress, positive, fail } = cli('lanes');
const { values: opt } = parseArgs({
  options: { quick: { type: 'boolean', default: false }, cycles: { type: 'string' }, reps: { type: 'string' } },
  strict: true,
});
const quick = opt.quick!;
const CYCLES = positive('cycles', opt.cycles ?? (quick ? '50000' : '1000000'));
const REPS = positive('reps', opt.reps ?? (quick ? '1' : '7'));
const writes = !quick && opt.cycles === undefined && opt.reps === undefined;
const QUEUE = 1024;
const FILL = Math.floor(QUEUE * 0.9);
const TIMEOUT = 60_000;
const CANCEL_EVERY = 8;

interface Lane {
  enqueue(id: number, now: number): readonly Decision[];
  cancel(id: number): boolean;
  complete(id: number, now: number): readonly Decision[];
  addWorker(w: number, now: number): readonly Decision[];
  removeWorker(w: number, now: number): { failed: number[]; decisions: readonly Decision[] };
  tick(now: number): readonly Decision[];
}
type Make = (limits: LaneLimits) => Lane;
const IMPLS: ReadonlyArray<{ name: string; make: Make }> = [
  { name: 'SlowLane', make: (l) => new SlowLane(l) },
  { name: 'naive', make: (l) => new NaiveLane(l) },
];

// --- same decisions ---------------------------------------------------------


function sameDecisions(ops: number): void {
  for (const concurrency of [1, 3]) {
    const limits = { queue: 16, concurrency, queueTimeout: 50 };
    const [a, b] = IMPLS.map((i) => i.make(limits)) as [Lane, Lane];
    const rnd = prng(concurrency);
    const live = new Set<number>();
    const workers: number[] = [];
    let now = 0;
    let id = 0;
    let wid = 0;
    const log = (ds: readonly Decision[]) => JSON.stringify(ds);
    for (let i = 0; i < ops; i++) {
      now += Math.floor(rnd() * 4);
      const r = rnd();
      let x: string;
      let y: string;
      if (r < 0.4) {
        id++;
        live.add(id);
        x = log(a.enqueue(id, now));
        y = log(b.enqueue(id, now));
      } else if (r < 0.75) {
        const ids = [...live];
        const c = ids[Math.floor(rnd() * ids.length)] ?? -1;
        x = log(a.complete(c, now));
        y = log(b.complete(c, now));
      } else if (r < 0.82) {
        const ids = [...live];
        const c = ids[Math.floor(rnd() * ids.length)] ?? -1;
        x = String(a.cancel(c));
        y = String(b.cancel(c));
      } else if (r < 0.9 || workers.length === 0) {
        workers.push(++wid);
        x = log(a.addWorker(wid, now));
        y = log(b.addWorker(wid, now));
      } else if (r < 0.95) {
        const w = workers.splice(Math.floor(rnd() * workers.length), 1)[0]!;
        const p = a.removeWorker(w, now);
        const q = b.removeWorker(w, now);
        x = log(p.decisions) + JSON.stringify([...p.failed].sort((m, n) => m - n));
        y = log(q.decisions) + JSON.stringify([...q.failed].sort((m, n) => m - n));
      } else {
        x = log(a.tick(now));
        y = log(b.tick(now));
      }
      if (x !== y) fail(`the peer decides otherwise than SlowLane at op ${i} (concurrency ${concurrency}):\n  ${x}\n  ${y}`);
      if (live.size > 4096) live.clear();
    }
  }
}

// --- the steady state ---------------------------------------------------------

interface Run { ns: number; cyclesPerSec: number }

function steady(make: Make, workers: number, concurrency: number, cancels: boolean, cycles: number): Run {
  const lane = make({ queue: QUEUE, concurrency, queueTimeout: TIMEOUT });
  const slots = workers * concurrency;
  // Running ids in assignment order: the oldest completes next.
  const ring = new Float64Array(slots + 1);
  let head = 0;
  let tail = 0;
  let shed = 0;
  const take = (ds: readonly Decision[]) => {
    for (let i = 0; i < ds.length; i++) {
      const d = ds[i]!;
      if (d.kind === 'assign') {
        ring[tail] = d.id;
        tail = tail === slots ? 0 : tail + 1;
      } else shed++;
    }
  };
  let now = 0;
  for (let w = 1; w <= workers; w++) take(lane.addWorker(w, now));
  let id = 0;
  for (let i = 0; i < slots + FILL; i++) take(lane.enqueue(++id, now));
  const firstTimed = id + 1;
  const t0 = performance.now();
  for (let c = 0; c < cycles; c++) {
    now += 1;
    const done = ring[head]!;
    head = head === slots ? 0 : head + 1;
    take(lane.complete(done, now));
    take(lane.enqueue(++id, now));
    if (cancels && c % CANCEL_EVERY === 0 && lane.cancel(id - (FILL >> 1))) take(lane.enqueue(++id, now));
  }
  const ms = performance.now() - t0;
  if (shed > 0) fail(`${shed} request(s) shed in the steady state (a bug in the bench or the lane)`);
  if (id - firstTimed + 1 < cycles) fail('fewer requests than cycles');
  return { ns: (ms * 1e6) / cycles, cyclesPerSec: cycles / (ms / 1000) };
}

// --- the run ----------------------------------------------------------------------

progress(`checking that both make the same decisions`);
sameDecisions(quick ? 5_000 : 50_000);

const CONFIGS: Array<{ workers: number; concurrency: number; cancels: boolean }> = [];
for (const cancels of [false, true]) for (const concurrency of [1, 4]) for (const workers of [1, 8, 64]) CONFIGS.push({ workers, concurrency, cancels });

interface Row { workers: number; concurrency: number; cancels: boolean; runs: Record<string, Run[]> }
const rows: Row[] = CONFIGS.map((c) => ({ ...c, runs: Object.fromEntries(IMPLS.map((i) => [i.name, [] as Run[]])) }));

// Warm-up (JIT) on every configuration, then REPS rounds; each round runs
// every configuration, the implementations alternating in rotating order, so
// that a noisy moment on the machine hits both rather than picking a winner.
progress('warm-up');
for (const r of rows) for (const i of IMPLS) steady(i.make, r.workers, r.concurrency, r.cancels, Math.min(CYCLES, 100_000));
for (let rep = 0; rep < REPS; rep++) {
  progress(`round ${rep + 1}/${REPS}`);
  for (const r of rows) {
    const order = rep % 2 === 0 ? IMPLS : [...IMPLS].reverse();
    for (const i of order) r.runs[i.name]!.push(steady(i.make, r.workers, r.concurrency, r.cancels, CYCLES));
  }
}

const [lane, peer] = IMPLS.map((i) => i.name) as [string, string];
const summary = rows.map((r) => {
  const s = (name: string) => ({
    cyclesPerSec: median(r.runs[name]!.map((x) => x.cyclesPerSec)),
    ns: median(r.runs[name]!.map((x) => x.ns)),
    bestNs: Math.min(...r.runs[name]!.map((x) => x.ns)),
  });
  const a = s(lane);
  const b = s(peer);
  return { workers: r.workers, concurrency: r.concurrency, scenario: r.cancels ? 'cancels' : 'steady', lane: a, peer: b, speedup: b.ns / a.ns };
});

const ns = (n: number) => n.toFixed(0);
const report = [
  `lanes: the slow-lane queue policy, cycles of enqueue -> assign -> complete, ${fmt(CYCLES)} cycles per measurement, median of ${REPS} alternating round(s)`,
  `queue limit ${fmt(QUEUE)}, ${fmt(FILL)} waiting throughout, every slot busy; "cancels": 1 request in ${CANCEL_EVERY} also cancelled from the middle of the queue`,
  '',
  ...table(
    ['workers', 'concurrency', 'scenario', `${lane} cycles/s`, `${lane} ns/cycle`, `${peer} cycles/s`, `${peer} ns/cycle`, `${peer} ns / ${lane} ns`],
    'rrlrrrrr',
    summary.map((s) => [
      String(s.workers), String(s.concurrency), s.scenario,
      fmt(s.lane.cyclesPerSec), ns(s.lane.ns), fmt(s.peer.cyclesPerSec), ns(s.peer.ns), `${s.speedup.toFixed(2)}x`,
    ]),
  ),
  '',
  'A cycle is one request through the lane: complete() of the oldest running request (which assigns the head of the',
  'queue) and enqueue() of a new one, with the decision objects each returns. The peer, naive (bench/lanes/naive.ts),',
  'keeps the queue in a JS array (push/shift, findIndex + splice to cancel) and scans the workers for the least-loaded',
  'one; both made the same decisions on a random sequence of every operation before timing (checked each run).',
].join('\n');
console.log('\n' + report);

if (writes) {
  const dir = join(import.meta.dirname, '..', 'results');
  mkdirSync(dir, { recursive: true });
  const date = new Date().toISOString();
  writeFileSync(join(dir, 'lanes.json'), JSON.stringify({
    bench: 'lanes', date, node: process.version, cpu: cpus()[0]?.model,
    workload: { queue: QUEUE, fill: FILL, queueTimeout: TIMEOUT, cancelEvery: CANCEL_EVERY, cycles: CYCLES, reps: REPS },
    rows: summary,
  }, null, 2) + '\n');
  writeFileSync(join(dir, 'lanes.md'), `# bench/lanes\n\n\`npm run bench:lanes\`, ${date.slice(0, 10)}\n\n\`\`\`\n${report}\n\`\`\`\n\nNode ${process.version}, ${cpus()[0]?.model}\n`);
  progress(`wrote bench/results/lanes.json and lanes.md`);
} else if (!quick) {
  progress('custom --cycles/--reps: results not written');
}
