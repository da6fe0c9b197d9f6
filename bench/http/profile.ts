// bench/http/profile.ts: where a hello-world request's CPU goes in drover's
// fast workers, against node:cluster's workers (SCHED_NONE, which accept the
// way drover's do), under bench/http's load. Every process of each target is
// sampled (cpu-profile.mjs, through NODE_OPTIONS); only the samples of the
// measured load's window count, and they are divided by the 2xx answers of
// that window: sampled CPU µs per request, by where it was spent (drover's
// own code, node:http, streams and sockets, system calls, GC, ...) and by
// function. Sampling costs CPU of its own, so the figures are above
// bench/http's; the two targets pay it alike, and the shares are the point.
//
//   npm run bench:http-profile                      writes bench/results/http-profile.md
//   npm run bench:http-profile -- --quick           short run for CI: prints, writes nothing
//   npm run bench:http-profile -- --seconds 5 --drover ../old/bin/drover.js --out http-profile-before
//                                                   another checkout's drover; writes bench/results/<out>.md
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { execFileSync } from 'node:child_process';
import { runLoad } from './load.js';
import { startReady, type Kind } from './procs.js';
import { groupMembers, sleep } from '../lib/procs.js';
import { cli, fmt, median, table } from '../lib/report.js';

const { progress, positive } = cli('http-profile');
const { values: opt } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    seconds: { type: 'string' },
    rounds: { type: 'string' },
    drover: { type: 'string' },
    out: { type: 'string', default: 'http-profile' },
  },
  strict: true,
});
const quick = opt.quick!;
const SECONDS = positive('seconds', opt.seconds ?? (quick ? '2' : '5'));
const ROUNDS = positive('rounds', opt.rounds ?? (quick ? '1' : '5'));
const WARMUP = quick ? 1 : 3;
const CONNECTIONS = 50;
const WORKERS = 2;
const ROOT = join(import.meta.dirname, '..', '..');
const HOOK = pathToFileURL(join(import.meta.dirname, 'cpu-profile.mjs')).href;

interface Sampled {
  title: string;
  pid: number;
  startWall: number;
  profile: { nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }[]; samples: number[]; timeDeltas: number[] };
}

interface Result {
  label: string;
  ok: number;
  /** µs sampled in the window, by category, in the serving processes (fast workers; node:cluster's workers) */
  byCat: Map<string, number>;
  /** µs sampled in the window in the other processes (arbiter and slow-lane worker; node:cluster's primary) */
  others: number;
  /** µs by function (self), serving processes */
  byFn: Map<string, number>;
}

function category(url: string, fn: string): string {
  if (fn === '(garbage collector)') return 'GC';
  if (fn === '(program)') return 'V8 (compiler, runtime)';
  if (url === '') return fn === 'writev' || fn === 'writeUtf8String' || fn === 'writeBuffer' || fn === 'writeLatin1String' ? 'system calls (socket writes)' : 'native builtins';
  if (url.includes('/bench/http/hello.js')) return 'the app';
  if (url.includes('/dist/') || url.includes('/src/')) return "drover's own code";
  if (/node:_http_|node:internal\/http/.test(url)) return 'node:http';
  if (/node:internal\/streams|node:stream|node:net|stream_base_commons/.test(url)) return 'streams and sockets';
  if (url === 'node:events') return 'events';
  if (/timers/.test(url)) return 'timers';
  if (/task_queues|promises/.test(url)) return 'ticks and promises';
  return 'other Node internals';
}

function frame(url: string, fn: string, line: number): string {
  const short = url.replace(/^file:\/\/.*?\/(dist|src|bench)\//, '$1/');
  return url === '' ? `${fn} (native)` : `${fn || '(anonymous)'} ${short}:${line + 1}`;
}

/** The profiles written so far (the `stop` file beside them is not one). */
const profiles = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.json'));

async function measure(kind: Kind, label: string): Promise<Result> {
  const dir = mkdtempSync(join(tmpdir(), 'drover-profile-'));
  try {
    // Boot, warm-up and the measured window fit before the profiles are written.
    const until = Date.now() + 15_000 + (WARMUP + SECONDS) * 1000;
    const env = { ...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import ${HOOK}`.trim(), BENCH_PROFILE_DIR: dir, BENCH_PROFILE_UNTIL: String(until) };
    const t = await startReady(kind, WORKERS, { env, ...(kind === 'drover' && opt.drover ? { drover: resolve(opt.drover) } : {}) });
    let ok = 0;
    let from = 0;
    let to = 0;
    try {
      progress(`${label}: warm-up (${WARMUP} s), then ${SECONDS} s measured`);
      await runLoad({ port: t.port, connections: CONNECTIONS, durationSec: WARMUP, honorClose: true });
      from = Date.now();
      ok = (await runLoad({ port: t.port, connections: CONNECTIONS, durationSec: SECONDS, honorClose: true })).ok;
      to = Date.now();
      if (to > until - 1000) throw new Error('the load ran past the profiles\' end: raise the budget in measure()');
      const procs = groupMembers(t.pid);
      writeFileSync(join(dir, 'stop'), '');
      while (Date.now() < until + 2000 && profiles(dir).length < procs.length) await sleep(200);
    } finally {
      await t.stop();
    }
    const files = profiles(dir).map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as Sampled);
    const r: Result = { label, ok, byCat: new Map(), others: 0, byFn: new Map() };
    for (const f of files) {
      const serving = kind === 'drover' ? f.title.startsWith('drover: worker') : f.pid !== t.pid;
      const byId = new Map(f.profile.nodes.map((n) => [n.id, n]));
      let at = f.startWall * 1000; // µs
      for (let i = 0; i < f.profile.samples.length; i++) {
        const d = f.profile.timeDeltas[i] ?? 0;
        at += d;
        if (at < from * 1000 || at > to * 1000) continue;
        const cf = byId.get(f.profile.samples[i]!)!.callFrame;
        if (cf.functionName === '(idle)') continue;
        if (!serving) {
          r.others += d;
          continue;
        }
        const c = category(cf.url, cf.functionName);
        r.byCat.set(c, (r.byCat.get(c) ?? 0) + d);
        const k = frame(cf.url, cf.functionName, cf.lineNumber);
        r.byFn.set(k, (r.byFn.get(k) ?? 0) + d);
      }
    }
    return r;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
/** One round's µs per request of a figure; the table gives the median of the rounds. */
const med = (rs: readonly Result[], f: (r: Result) => number) => median(rs.map((r) => (r.ok > 0 ? f(r) / r.ok : 0)));

const machine = `${availableParallelism()} CPU(s), ${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.version}`;
progress(machine);
// Rounds alternate which target goes first: a busy spell of the machine then
// falls on both alike, and the median of the rounds is the figure.
const droverRuns: Result[] = [];
const clusterRuns: Result[] = [];
for (let round = 0; round < ROUNDS; round++) {
  progress(`round ${round + 1}/${ROUNDS}`);
  const pair = [() => measure('drover', 'drover'), () => measure('cluster-none', 'node:cluster SCHED_NONE')] as const;
  const order = round % 2 === 0 ? [0, 1] : [1, 0];
  for (const i of order) (i === 0 ? droverRuns : clusterRuns).push(await pair[i]!());
}
// Functions: every round's samples over every round's answers.
const drover: Result = { label: 'drover', ok: 0, byCat: new Map(), others: 0, byFn: new Map() };
for (const r of droverRuns) {
  drover.ok += r.ok;
  for (const [k, v] of r.byFn) drover.byFn.set(k, (drover.byFn.get(k) ?? 0) + v);
}
const per = (r: Result, us: number) => (r.ok > 0 ? us / r.ok : 0);

const cats = [...new Set([...droverRuns, ...clusterRuns].flatMap((r) => [...r.byCat.keys()]))];
// A share of the serving processes' CPU moves less than µs per request when
// the machine is busy (a stolen millisecond lengthens every sample alike).
const share = (rs: readonly Result[], c: string) => median(rs.map((r) => (100 * (r.byCat.get(c) ?? 0)) / (sum(r.byCat) || 1)));
const rows = cats.map((c) => ({ c, d: med(droverRuns, (r) => r.byCat.get(c) ?? 0), k: med(clusterRuns, (r) => r.byCat.get(c) ?? 0), ds: share(droverRuns, c), ks: share(clusterRuns, c) }))
  .sort((a, b) => b.ds - a.ds)
  .map(({ c, d, k, ds, ks }) => [c, d.toFixed(2), `${ds.toFixed(1)}%`, k.toFixed(2), `${ks.toFixed(1)}%`]);
const dw = med(droverRuns, (r) => sum(r.byCat));
const cw = med(clusterRuns, (r) => sum(r.byCat));
rows.push(['**serving processes, all**', dw.toFixed(2), '100%', cw.toFixed(2), '100%']);
const dOthers = med(droverRuns, (r) => r.others);
const cOthers = med(clusterRuns, (r) => r.others);
const otherShare = (rs: readonly Result[]) => median(rs.map((r) => (100 * r.others) / (sum(r.byCat) || 1)));
rows.push(['other processes (arbiter, slow-lane worker / primary)', dOthers.toFixed(2), `+${otherShare(droverRuns).toFixed(1)}%`, cOthers.toFixed(2), `+${otherShare(clusterRuns).toFixed(1)}%`]);
const ownPerRound = droverRuns.map((r) => `${((100 * (r.byCat.get("drover's own code") ?? 0)) / (sum(r.byCat) || 1)).toFixed(1)}%`);

const top = [...drover.byFn].sort((a, b) => b[1] - a[1]).slice(0, 30);
const dTotal = sum(drover.byFn);
const own = [...drover.byFn].filter(([k]) => /^\S+ (dist|src)\//.test(k)).sort((a, b) => b[1] - a[1]);

const lines = [
  `sampled CPU per 2xx answer, hello world (bench/http/hello.js), ${WORKERS} workers, ${CONNECTIONS} keep-alive connections, ${SECONDS} s after a ${WARMUP} s warm-up, ${ROUNDS} round(s) of each target in alternating order, median of the rounds; ${machine}`,
  `answers in the windows, round by round: drover ${droverRuns.map((r) => fmt(r.ok)).join(' ')}; node:cluster ${clusterRuns.map((r) => fmt(r.ok)).join(' ')}.`,
  'Sampling (every 250 µs, in every process) adds CPU of its own: compare the columns, not these figures with bench/http\'s.',
  '',
  ...table(['where (self time)', 'drover µs/req', 'share', 'node:cluster µs/req', 'share'], 'lrrrr', rows),
  '',
  `top functions in drover's fast workers (self time, all rounds; share of the serving processes' sampled CPU):`,
  '',
  ...table(['function', 'µs/req', 'share'], 'lrr', top.map(([k, v]) => [k, per(drover, v).toFixed(3), `${((100 * v) / dTotal).toFixed(1)}%`])),
  '',
  `drover's own functions in its fast workers: ${own.length}, ${per(drover, own.reduce((a, [, v]) => a + v, 0)).toFixed(2)} µs/req in all (its share of the fast workers' CPU, round by round: ${ownPerRound.join(' ')}); the ten largest:`,
  '',
  ...table(['function', 'µs/req'], 'lr', own.slice(0, 10).map(([k, v]) => [k, per(drover, v).toFixed(3)])),
];
const text = lines.join('\n');
console.log(text);
const rev = (() => {
  try {
    return execFileSync('git', ['-C', opt.drover ? resolve(opt.drover, '..', '..') : ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
})();
if (!quick) writeFileSync(join(ROOT, 'bench', 'results', `${opt.out}.md`), `# bench/http/profile.ts\n\n\`npm run bench:http-profile${opt.drover ? ` -- --drover ${opt.drover}` : ''}\`, drover at ${rev}, ${new Date().toISOString().slice(0, 10)}\n\n\`\`\`\n${text}\n\`\`\`\n`);
if (!quick) progress(`wrote bench/results/${opt.out}.md`);
