// bench/mixed: fast requests beside a CPU-bound route, on loopback: does a
// 200 ms busy loop on one route stall the hello-world route? Drover with
// lanes on (the route is learned slow and runs on the slow-lane worker),
// drover with lanes off, and node:cluster, with the same number of HTTP
// workers, measured in the same run.
//
//   npm run bench:mixed                full run: prints the tables, writes
//                                      bench/results/mixed.json and mixed.md
//   npm run bench:mixed -- --quick     short run for CI: prints, writes nothing
//
// Options, which print but write nothing: --workers N (default 2), --rate R
// (fast requests per second, default 500), --connections C (default 8),
// --duration S (per run, default 15; --quick 3), --rounds R (default 3;
// --quick 1).
//
// The app (bench/mixed/app.js): GET /work busy-loops for 200 ms on the event
// loop; every other path is hello world. Both name the process that answered.
//
// The servers, each with N HTTP workers, all started before the first
// measurement and kept running (idle) while the others are measured:
//   drover --lanes on --slow-threshold 0.1 --slow-workers 1 (N fast workers,
//     plus its one slow-lane worker), drover --lanes off, and node:cluster
//     (cluster.ts: its default scheduling on Linux, round-robin).
// Warm-up, each server: fast load for a few seconds, then GET /work back to
// back, at least three times: drover learns the route from the first one
// (which runs on a fast worker: lanes need one slow observation per route);
// with lanes on, the warm-up goes on until the last two in a row ran on the
// slow-lane worker, and the report says how many ran on fast workers first.
//
// One run: for `duration` seconds, the fast load (load.ts: open loop, R
// requests a second due at a fixed spacing on C keep-alive connections,
// latency counted from when each request was due) on GET /, and beside it,
// from the moment every fast connection has had its first answer (some ms
// in), the slow client: one loop of GET /work, one at a time, each on a new
// connection. Rows: (a) drover lanes on, (b) drover lanes off, (c)
// node:cluster, all with the slow client; (d) the baseline: drover lanes on
// with no slow client, the floor. Several rounds, the rows in rotating order
// each round, a fresh set of connections each run; the percentiles of a row
// are over all its requests of all rounds, beside each round's p99.
//
// Around each run: CPU time of the server's process group and of this
// process, the machine's busy time (so: other processes' share), and how
// long the HTTP workers waited for a CPU (/proc/PID/schedstat). The machine
// may be shared: see QUIET_PCT below. After the runs, `drover ctl stats`
// gives drover's own count of what went through its slow lane. Each drover
// gets its own control socket, and XDG_RUNTIME_DIR (where it puts its
// slow-lane sockets), in a temporary directory removed at the end.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, hostname, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fastLoad, pct, slowLoop, type FastResult, type SlowResult } from './load.js';
import { argvOf, ctlStats, httpWorkerPids, type Kind, schedstat, type Server, type ServerOptions, slowLanePids, startReady } from './servers.js';
import { groupCpuMs, machineBusyMs } from '../http/procs.js';
import { atLastResort, sleep } from '../lib/procs.js';
import { cli, fmt, median, table } from '../lib/report.js';

const { progress, positive } = cli('mixed');

const { values: opt } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    workers: { type: 'string' },
    rate: { type: 'string' },
    connections: { type: 'string' },
    duration: { type: 'string' },
    rounds: { type: 'string' },
  },
  strict: true,
});
const quick = opt.quick!;
const WORKERS = positive('workers', opt.workers ?? '2');
const RATE = positive('rate', opt.rate ?? '500');
const CONNECTIONS = positive('connections', opt.connections ?? '8');
const DURATION = positive('duration', opt.duration ?? (quick ? '3' : '15'));
const ROUNDS = positive('rounds', opt.rounds ?? (quick ? '1' : '3'));
const WARMUP = quick ? 1 : 3; // seconds of fast load per server before the first run
const WORK_LEARN = 3; // GET /work in a row at warm-up, at least
const WORK_MAX = 12; // and at most
const SLOW_THRESHOLD = 0.1; // s: the 200 ms route is over it, hello world far under
const SLOW_WORKERS = 1;
const TIMEOUT_MS = 10_000;
const TARGET_P99_MS = 10;
// This machine may be shared (other people's builds and tests): before each
// run the benchmark waits until the CPUs have been quiet for two seconds, and
// a run during which other processes took more than QUIET_PCT % of the CPUs
// is measured again (up to ATTEMPTS times in all; the last attempt counts).
// Waiting stops for good once QUIET_BUDGET_S have been spent on it: then
// every run is measured as it comes, and the report says which were shared.
const QUIET_PCT = 10;
const QUIET_WAIT_S = quick ? 5 : 300;
const QUIET_BUDGET_S = quick ? 10 : 1800;
const ATTEMPTS = quick ? 1 : 3;
const write = !quick && Object.entries(opt).every(([k, v]) => k === 'quick' || v === undefined);

const serverOpts: ServerOptions = { workers: WORKERS, controlDir: mkdtempSync(join(tmpdir(), 'drover-bench-mixed-')), slowThreshold: SLOW_THRESHOLD, slowWorkers: SLOW_WORKERS };
atLastResort(() => rmSync(serverOpts.controlDir, { recursive: true, force: true }));

type RowId = 'lanes-on' | 'lanes-off' | 'cluster' | 'baseline';
interface RowDef { id: RowId; server: Kind; slow: boolean; label: string }
const ROWS: readonly RowDef[] = [
  { id: 'lanes-on', server: 'lanes-on', slow: true, label: `(a) drover, lanes on` },
  { id: 'lanes-off', server: 'lanes-off', slow: true, label: `(b) drover, lanes off` },
  { id: 'cluster', server: 'cluster', slow: true, label: `(c) node:cluster` },
  { id: 'baseline', server: 'lanes-on', slow: false, label: `(d) drover, lanes on, no slow client` },
];

const cpuModel = cpus()[0]?.model ?? 'unknown CPU';
const ncpu = availableParallelism();
/** The drover measured: the commit, and whether src/ differed from it. */
function droverVersion(): string {
  try {
    const git = (...args: string[]) => execFileSync('git', args, { cwd: join(import.meta.dirname, '..', '..'), encoding: 'utf8' }).trim();
    const dirty = git('status', '--porcelain', '--', 'src') !== '';
    return `drover at ${git('rev-parse', '--short', 'HEAD')}${dirty ? ' (with uncommitted changes in src/)' : ''}`;
  } catch {
    return 'drover (no git)';
  }
}
const version = droverVersion();
const machine = `${ncpu} CPU(s), ${cpuModel}, Node ${process.version}, ${process.platform}`;

interface Run {
  round: number;
  fast: FastResult;
  slow: SlowResult | null;
  /** CPU time of the server's whole process group over the run, % of one CPU */
  serverCpuPct: number | null;
  /** this process (both clients) over the run, % of one CPU */
  clientCpuPct: number;
  /** all processes of the machine over the run, % of all CPUs */
  machineBusyPct: number | null;
  /** processes other than the server and this one over the run, % of all CPUs (0 on a quiet machine) */
  othersPct: number | null;
  /** others' CPU % of the attempts at this run that were measured again because other processes were busy */
  discardedOthersPct: number[];
  /** mean time the HTTP workers' main threads waited for a CPU per timeslice they ran, µs (/proc/PID/schedstat) */
  workersCpuWaitUs: number | null;
  /** the same for this process's main thread (the fast load) */
  clientCpuWaitUs: number | null;
}
interface Row extends RowDef { runs: Run[] }

const pctOr = (n: number | null, digits = 0) => (n === null ? '-' : n.toFixed(digits));
const ms = (x: number) => (Number.isNaN(x) ? '-' : x < 10 ? x.toFixed(2) : x < 100 ? x.toFixed(1) : x.toFixed(0));

function pooled(runs: readonly Run[], pick: (r: Run) => Float64Array | undefined): Float64Array {
  const parts = runs.map(pick).filter((x): x is Float64Array => x !== undefined);
  const all = new Float64Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    all.set(p, o);
    o += p.length;
  }
  return all.sort();
}

function sumCounts(maps: readonly Readonly<Record<string, number>>[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of maps) for (const [k, v] of Object.entries(m)) out[k] = (out[k] ?? 0) + v;
  return out;
}

// ------------------------------------------------------------------ warm-up

/** Warm the server up; with lanes on, check /work is learned slow and then runs on the slow-lane worker. */
async function warm(s: Server): Promise<string[]> {
  const notes: string[] = [];
  progress(`warm-up ${s.kind}: ${WARMUP} s of fast load, then GET /work back to back (at least ${WORK_LEARN})`);
  const f = await fastLoad({ port: s.port, path: '/', rate: RATE, connections: CONNECTIONS, durationMs: WARMUP * 1000, timeoutMs: TIMEOUT_MS });
  if (f.failedTotal > 0) throw new Error(`${s.kind}: ${f.failedTotal} fast request(s) failed at warm-up: ${JSON.stringify(f.failed)}`);
  // GET /work one after the other, as the slow client sends them. With lanes
  // on, the first runs on a fast worker, which learns the route; the others
  // learn it from the arbiter, a message that can arrive after the next
  // request does (see the note in the report): go on until the last
  // WORK_LEARN - 1 in a row ran on the slow lane (at most WORK_MAX).
  const slowPids = s.kind === 'lanes-on' ? slowLanePids(s.log()) : [];
  const ran: { pid: string; ms: number }[] = [];
  const settled = () => ran.length >= WORK_LEARN && (s.kind !== 'lanes-on' || ran.slice(-(WORK_LEARN - 1)).every((r) => slowPids.includes(r.pid)));
  while (!settled() && ran.length < WORK_MAX) {
    const r = await slowLoop(s.port, '/work', TIMEOUT_MS).stop(); // stopped at once: exactly one request
    if (r.done !== 1) throw new Error(`${s.kind}: GET /work failed at warm-up: ${JSON.stringify(r.failed)}`);
    ran.push({ pid: Object.keys(r.perWorker)[0]!, ms: r.latencies[0]! });
  }
  if (s.kind === 'lanes-on') {
    const onFast = ran.filter((r) => !slowPids.includes(r.pid)).length;
    notes.push(
      `lanes on, warm-up: GET /work back to back ran on ${ran.map((r) => `${r.pid}${slowPids.includes(r.pid) ? ' (slow lane)' : ''}`).join(', ')}:` +
        ` ${onFast} on fast workers before every fast worker knew the route (1 if the learning reached the other fast workers before the next request)`,
    );
    if (!settled()) throw new Error(`lanes on: GET /work did not move to the slow lane (${notes[0]}); drover's log:\n${s.log()}`);
  }
  return notes;
}

// ------------------------------------------------------------------ runs

/**
 * Waits (up to QUIET_WAIT_S) until the whole machine was under QUIET_PCT %
 * busy for two 1-second windows in a row; between runs the servers are
 * idle, so what is busy then is someone else. Resolves with the last window's
 * busy %, null without /proc/stat.
 */
let quietBudgetMs = QUIET_BUDGET_S * 1000;

async function waitQuiet(): Promise<{ busyPct: number | null }> {
  const t0 = performance.now();
  try {
    return await waitQuietFor(Math.min(QUIET_WAIT_S * 1000, quietBudgetMs));
  } finally {
    quietBudgetMs = Math.max(0, quietBudgetMs - (performance.now() - t0));
  }
}

async function waitQuietFor(maxMs: number): Promise<{ busyPct: number | null }> {
  const end = performance.now() + maxMs;
  let quiet = 0;
  let pctBusy: number | null = null;
  for (;;) {
    const b0 = machineBusyMs();
    const t0 = performance.now();
    await sleep(1000);
    const b1 = machineBusyMs();
    if (b0 === null || b1 === null) return { busyPct: null };
    pctBusy = (100 * (b1 - b0)) / ((performance.now() - t0) * ncpu);
    quiet = pctBusy < QUIET_PCT ? quiet + 1 : 0;
    if (quiet >= 2 || performance.now() > end) return { busyPct: pctBusy };
  }
}

async function measure(row: Row, s: Server, round: number): Promise<Run> {
  const workers = httpWorkerPids(s);
  const ws0 = schedstat(workers);
  const cs0 = schedstat([process.pid]);
  const cpu0 = groupCpuMs(s.pid);
  const busy0 = machineBusyMs();
  const self0 = process.cpuUsage();
  const w0 = performance.now();
  // The slow client starts once every fast connection has been accepted and
  // answered: the server spreads them over its workers as it does when idle,
  // not away from a worker that is already busy with the first GET /work.
  let slow: ReturnType<typeof slowLoop> | null = null;
  const fast = await fastLoad({
    port: s.port, path: '/', rate: RATE, connections: CONNECTIONS, durationMs: DURATION * 1000, timeoutMs: TIMEOUT_MS,
    onConnected: () => {
      if (row.slow) slow = slowLoop(s.port, '/work', TIMEOUT_MS);
    },
  });
  const slowR = slow ? await (slow as ReturnType<typeof slowLoop>).stop() : null;
  const wall = performance.now() - w0;
  const self = process.cpuUsage(self0);
  const busy1 = machineBusyMs();
  const cpu1 = groupCpuMs(s.pid);
  const ws1 = schedstat(workers);
  const cs1 = schedstat([process.pid]);
  const waitUs = (a: typeof ws0, b: typeof ws0) => (a === null || b === null || b.slices === a.slices ? null : (b.waitNs - a.waitNs) / 1000 / (b.slices - a.slices));
  const run: Run = {
    round,
    fast,
    slow: slowR,
    serverCpuPct: cpu0 === null || cpu1 === null ? null : (100 * (cpu1 - cpu0)) / wall,
    clientCpuPct: (100 * (self.user + self.system)) / 1000 / wall,
    machineBusyPct: busy0 === null || busy1 === null ? null : (100 * (busy1 - busy0)) / (wall * ncpu),
    othersPct: null,
    discardedOthersPct: [],
    workersCpuWaitUs: waitUs(ws0, ws1),
    clientCpuWaitUs: waitUs(cs0, cs1),
  };
  if (run.machineBusyPct !== null && run.serverCpuPct !== null) run.othersPct = Math.max(0, run.machineBusyPct - (run.serverCpuPct + run.clientCpuPct) / ncpu);
  progress(
    `round ${round + 1}/${ROUNDS} ${row.label}: fast p50 ${ms(pct(fast.latencies, 50))} ms, p99 ${ms(pct(fast.latencies, 99))} ms, max ${ms(pct(fast.latencies, 100))} ms, ` +
      `${fmt(fast.ok / (fast.elapsedMs / 1000))} 2xx/s, failed ${fast.failedTotal}` +
      (slowR ? `; /work done ${slowR.done}, p50 ${ms(pct(slowR.latencies, 50))} ms, failed ${slowR.failedTotal}` : '') +
      `; server CPU ${pctOr(run.serverCpuPct)}%, clients ${run.clientCpuPct.toFixed(0)}%, machine ${pctOr(run.machineBusyPct)}% busy, others ${pctOr(run.othersPct)}%; send lag p99 ${ms(pct(fast.sendLag, 99))} ms; CPU wait per timeslice: workers ${pctOr(run.workersCpuWaitUs)} µs, client ${pctOr(run.clientCpuWaitUs)} µs`,
  );
  return run;
}

interface ServerInfo { command: string; slowPids: string[]; notes: string[]; log: string; stats: unknown }

/** A server's command line as the report shows it: `node ARGV`, the port and the temporary directory named. */
function shown(argv: readonly string[], port: number): string {
  return ['node', ...argv].join(' ').replaceAll(`127.0.0.1:${port}`, '127.0.0.1:PORT').replace(` ${port} `, ' PORT ').replaceAll(serverOpts.controlDir, '$TMPDIR');
}

async function bench(): Promise<{ rows: Row[]; servers: Map<Kind, ServerInfo> }> {
  const servers = new Map<Kind, Server>();
  const info = new Map<Kind, ServerInfo>();
  try {
    for (const kind of ['lanes-on', 'lanes-off', 'cluster'] as const) {
      progress(`starting ${kind}: ${shown(argvOf(kind, 0, serverOpts), 0)}`);
      servers.set(kind, await startReady(kind, serverOpts));
    }
    for (const [kind, s] of servers) info.set(kind, { command: shown(s.argv, s.port), slowPids: [], notes: await warm(s), log: '', stats: null });
    const rows: Row[] = ROWS.map((r) => ({ ...r, runs: [] }));
    for (let round = 0; round < ROUNDS; round++) {
      for (let i = 0; i < rows.length; i++) {
        const row = rows[(i + round) % rows.length]!;
        const discarded: number[] = [];
        for (;;) {
          const waited = await waitQuiet();
          if (waited.busyPct !== null && waited.busyPct >= QUIET_PCT) progress(`the machine is still ${waited.busyPct.toFixed(0)}% busy (${(quietBudgetMs / 1000).toFixed(0)} s of waiting left): measuring anyway`);
          const run = await measure(row, servers.get(row.server)!, round);
          if (run.othersPct !== null && run.othersPct > QUIET_PCT && discarded.length + 1 < ATTEMPTS && quietBudgetMs > 0) {
            progress(`other processes took ${run.othersPct.toFixed(0)}% of the CPUs during that run: measuring it again`);
            discarded.push(run.othersPct);
            continue;
          }
          run.discardedOthersPct = discarded;
          row.runs.push(run);
          break;
        }
      }
    }
    for (const [kind, i] of info) if (kind !== 'cluster') i.stats = ctlStats(kind, serverOpts);
    return { rows, servers: info };
  } finally {
    for (const [kind, s] of servers) {
      const i = info.get(kind);
      if (i) {
        i.log = s.log();
        i.slowPids = slowLanePids(i.log);
      }
      await s.stop();
    }
  }
}

// ------------------------------------------------------------------ report

interface Summary {
  id: RowId;
  label: string;
  fast: { requests: number; ok: number; failed: Record<string, number>; p50: number; p90: number; p99: number; p999: number; max: number; p99EachRound: number[]; okPerSec: number; sendLagP99: number; sendLagMax: number; perWorker: Record<string, number>; connWorkerEachRound: string[]; p99ByWorker: Record<string, number> };
  slow: { done: number; perSec: number; failed: Record<string, number>; p50: number; max: number; perWorker: Record<string, number>; repeats: number; onSlowLane: number | null } | null;
  serverCpuPct: number | null;
  clientCpuPct: number;
  machineBusyPct: number | null;
  othersPctEachRound: (number | null)[];
  workersCpuWaitUs: number | null;
  clientCpuWaitUs: number | null;
}

function summarize(row: Row, slowPids: readonly string[]): Summary {
  const lat = pooled(row.runs, (r) => r.fast.latencies);
  const lag = pooled(row.runs, (r) => r.fast.sendLag);
  const medOr = (xs: (number | null)[]) => (xs.some((x) => x === null) ? null : median(xs as number[]));
  const slowRuns = row.runs.map((r) => r.slow).filter((x): x is SlowResult => x !== null);
  const slowLat = pooled(row.runs, (r) => r.slow?.latencies);
  const slowPer = sumCounts(slowRuns.map((r) => r.perWorker));
  const conns = (r: Run) => {
    const by: Record<string, number> = {};
    for (const p of r.fast.connWorker) by[p ?? '?'] = (by[p ?? '?'] ?? 0) + 1;
    return Object.values(by).sort((x, y) => y - x).join('/');
  };
  return {
    id: row.id,
    label: row.label,
    fast: {
      requests: row.runs.reduce((n, r) => n + r.fast.scheduled, 0),
      ok: row.runs.reduce((n, r) => n + r.fast.ok, 0),
      failed: sumCounts(row.runs.map((r) => r.fast.failed)),
      p50: pct(lat, 50),
      p90: pct(lat, 90),
      p99: pct(lat, 99),
      p999: pct(lat, 99.9),
      max: pct(lat, 100),
      p99EachRound: row.runs.map((r) => pct(r.fast.latencies, 99)),
      okPerSec: row.runs.reduce((n, r) => n + r.fast.ok, 0) / (row.runs.reduce((n, r) => n + r.fast.elapsedMs, 0) / 1000),
      sendLagP99: pct(lag, 99),
      sendLagMax: pct(lag, 100),
      perWorker: sumCounts(row.runs.map((r) => r.fast.perWorker)),
      connWorkerEachRound: row.runs.map(conns),
      p99ByWorker: Object.fromEntries([...new Set(row.runs.flatMap((r) => Object.keys(r.fast.byWorker)))].map((p) => [p, pct(pooled(row.runs, (r) => r.fast.byWorker[p]), 99)])),
    },
    slow: row.slow
      ? {
          done: slowRuns.reduce((n, r) => n + r.done, 0),
          perSec: slowRuns.reduce((n, r) => n + r.done, 0) / (slowRuns.reduce((n, r) => n + r.elapsedMs, 0) / 1000),
          failed: sumCounts(slowRuns.map((r) => r.failed)),
          p50: pct(slowLat, 50),
          max: pct(slowLat, 100),
          perWorker: slowPer,
          repeats: slowRuns.reduce((n, r) => n + r.repeats, 0),
          onSlowLane: slowPids.length === 0 ? null : Object.entries(slowPer).filter(([p]) => slowPids.includes(p)).reduce((n, [, v]) => n + v, 0),
        }
      : null,
    serverCpuPct: medOr(row.runs.map((r) => r.serverCpuPct)),
    clientCpuPct: median(row.runs.map((r) => r.clientCpuPct)),
    machineBusyPct: medOr(row.runs.map((r) => r.machineBusyPct)),
    othersPctEachRound: row.runs.map((r) => r.othersPct),
    workersCpuWaitUs: medOr(row.runs.map((r) => r.workersCpuWaitUs)),
    clientCpuWaitUs: medOr(row.runs.map((r) => r.clientCpuWaitUs)),
  };
}

function failedText(f: Record<string, number>): string {
  const n = Object.values(f).reduce((a, b) => a + b, 0);
  return n === 0 ? '0' : `${n} (${Object.entries(f).map(([k, v]) => `${v} ${k}`).join(', ')})`;
}

let allRows: Row[] = [];

/** Which runs were measured again, or kept, while other processes took the CPUs. */
function retried(): string[] {
  const again: string[] = [];
  const busy: string[] = [];
  for (const r of allRows) {
    for (const run of r.runs) {
      const where = `${r.label}, round ${run.round + 1}`;
      if (run.discardedOthersPct.length > 0) again.push(`  ${where}: ${run.discardedOthersPct.map((x) => `${x.toFixed(0)}%`).join(', ')}`);
      if (run.othersPct !== null && run.othersPct > QUIET_PCT) busy.push(`  ${where}: ${run.othersPct.toFixed(0)}%`);
    }
  }
  const out: string[] = [];
  if (again.length > 0) out.push(`runs measured again because other processes took more than ${QUIET_PCT}% of the CPUs (their share in the dropped attempts):`, ...again);
  if (busy.length > 0) out.push(`runs kept although other processes took more than ${QUIET_PCT}% of the CPUs (compare those with care):`, ...busy);
  if (out.length === 0) out.push(`other processes took under ${QUIET_PCT}% of the CPUs in every run${again.length === 0 && !quick ? ' (none was measured again)' : ''}`);
  return out;
}

function report(sums: Summary[], notes: string[], load0: number, commands: string[], logNotes: string[]): { text: string; ratios: Record<string, number>; roundRatios: Record<string, number[]>; met: boolean } {
  const by = (id: RowId) => sums.find((s) => s.id === id)!;
  const on = by('lanes-on');
  const ratioOf = (id: RowId) => by(id).fast.p99 / on.fast.p99;
  const perRound = (a: RowId, b: RowId) => by(a).fast.p99EachRound.map((x, i) => x / by(b).fast.p99EachRound[i]!);
  const ratios = { 'lanes-off/lanes-on': ratioOf('lanes-off'), 'cluster/lanes-on': ratioOf('cluster'), 'lanes-on/baseline': on.fast.p99 / by('baseline').fast.p99 };
  const roundRatios = { 'lanes-off/lanes-on': perRound('lanes-off', 'lanes-on'), 'cluster/lanes-on': perRound('cluster', 'lanes-on'), 'lanes-on/baseline': perRound('lanes-on', 'baseline') };
  const met = on.fast.p99 <= TARGET_P99_MS;
  const lines = [
    `mixed: GET / (hello) at ${fmt(RATE)} req/s beside one client looping on GET /work (a 200 ms busy loop), ${WORKERS} HTTP workers each,`,
    `    ${DURATION} s per run, ${ROUNDS} round(s) in rotating order; percentiles over every fast request of a row (all rounds)`,
    `    fast load: open loop (wrk2-style), requests due every ${(1000 / RATE).toFixed(1)} ms on ${CONNECTIONS} keep-alive connections in turn, latency from when each`,
    `    was due (a minimal HTTP/1.1 client on raw sockets); slow client: node:http, one request at a time, a new connection each;`,
    `    both in this process, on 127.0.0.1`,
    `    ${machine}; server, clients and everything else share the ${ncpu} CPU(s); ${version}`,
    ...commands,
    '',
    ...table(
      ['server', 'fast p50 ms', 'p90 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'p99 each round', 'fast 2xx/s', 'fast failed'],
      'lrrrrrlrl',
      sums.map((s) => [
        s.label,
        ms(s.fast.p50),
        ms(s.fast.p90),
        ms(s.fast.p99),
        ms(s.fast.p999),
        ms(s.fast.max),
        s.fast.p99EachRound.map(ms).join(' '),
        fmt(s.fast.okPerSec),
        failedText(s.fast.failed),
      ]),
    ),
    '',
    ...table(
      ['server', '/work done', '/work/s', '/work p50 ms', '/work max ms', '/work failed', 'ran /work (pid: times)', 'same as the one before', 'fast p99 ms by the worker that answered'],
      'lrrrrllrl',
      sums.filter((s) => s.slow).map((s) => [
        s.label,
        fmt(s.slow!.done),
        s.slow!.perSec.toFixed(2),
        ms(s.slow!.p50),
        ms(s.slow!.max),
        failedText(s.slow!.failed),
        Object.entries(s.slow!.perWorker).sort((x, y) => y[1] - x[1]).map(([p, n]) => `${p}: ${n}`).join(', ') + (s.slow!.onSlowLane !== null ? ` (slow lane: ${s.slow!.onSlowLane})` : ''),
        fmt(s.slow!.repeats),
        Object.entries(s.fast.p99ByWorker).sort((x, y) => y[1] - x[1]).map(([p, v]) => `${p}: ${ms(v)}`).join(', '),
      ]),
    ),
    '',
    ...table(
      ['server', 'fast conns per worker, each round', 'server CPU %', 'clients CPU %', 'machine busy %', 'others\' CPU % each round', 'send lag p99 ms', 'CPU wait µs/slice: workers', 'client'],
      'llrrrlrrr',
      sums.map((s) => [
        s.label,
        s.fast.connWorkerEachRound.join(' '),
        pctOr(s.serverCpuPct),
        s.clientCpuPct.toFixed(1),
        pctOr(s.machineBusyPct),
        s.othersPctEachRound.map((x) => pctOr(x)).join(' '),
        ms(s.fast.sendLagP99),
        pctOr(s.workersCpuWaitUs),
        pctOr(s.clientCpuWaitUs),
      ]),
    ),
    '',
    ...table(
      ['ratio of fast p99', 'all requests', 'round by round', 'median of those'],
      'lrlr',
      [
        ['lanes off / lanes on', `${ratios['lanes-off/lanes-on'].toFixed(1)}x`, roundRatios['lanes-off/lanes-on'].map((x) => x.toFixed(1)).join(' '), `${median(roundRatios['lanes-off/lanes-on']).toFixed(1)}x`],
        ['node:cluster / lanes on', `${ratios['cluster/lanes-on'].toFixed(1)}x`, roundRatios['cluster/lanes-on'].map((x) => x.toFixed(1)).join(' '), `${median(roundRatios['cluster/lanes-on']).toFixed(1)}x`],
        ['lanes on / baseline (no slow client)', `${ratios['lanes-on/baseline'].toFixed(2)}x`, roundRatios['lanes-on/baseline'].map((x) => x.toFixed(2)).join(' '), `${median(roundRatios['lanes-on/baseline']).toFixed(2)}x`],
      ],
    ),
    '',
    `target, fast p99 <= ${TARGET_P99_MS} ms with lanes on (all requests of all rounds): ${ms(on.fast.p99)} ms -> ${met ? 'MET' : 'NOT MET'}` +
      ` (worst round ${ms(Math.max(...on.fast.p99EachRound))} ms)`,
    on.slow && on.slow.onSlowLane !== null ? `lanes on: GET /work ran on the slow-lane worker ${on.slow.onSlowLane} of ${on.slow.done} times in the runs` : '',
    ...notes,
    ...retried(),
    `1-minute load average before / after: ${load0.toFixed(2)} / ${loadavg()[0]!.toFixed(2)} on ${ncpu} CPU(s)`,
    '',
    'The issue\'s figures for this workload, for reference (other runs, other machines): fast p99 244 ms under node:cluster, 159 ms under',
    'PM2 cluster, 100 ms under gunicorn (threaded).',
    '',
    `(a) runs drover with --lanes on --slow-threshold ${SLOW_THRESHOLD} --slow-workers ${SLOW_WORKERS}: ${WORKERS} fast workers and 1 slow-lane worker; (b) and (c) have`,
    `${WORKERS} workers and nothing else. "fast 2xx/s": fast answers over the time from the first request due to the last answer`,
    `(${fmt(RATE)}/s when the server keeps up; less when answers come late). "/work done": answers to the slow client over all rounds;`,
    '"/work/s" over the time it ran (from when the fast connections are up to the end of the fast load; at most 5/s).',
    '"ran /work": which process ran the route, from its answers; "same as the one before": /work answers from the process that',
    'answered the /work before; "fast p99 by the worker": the p99 of the fast requests each worker answered.',
    'Why (b) and (c) differ: without lanes, /work runs on an HTTP worker and stalls every fast connection that worker holds for',
    '200 ms. node:cluster (round-robin) hands each new /work connection to the next worker in turn: each worker is stalled half',
    'the time, 200 ms at a time, and p99 is about 200 ms. drover\'s workers accept for themselves; with lanes off, the worker that',
    'has just answered /work is awake when the next /work connection arrives and often takes it (see "same as the one before"),',
    'so it runs /work back to back for a while; the fast requests on its connections get a turn only between two /work (one per',
    'connection: no pipelining), fall further behind with each /work, and wait far longer than 200 ms.',
    '"fast conns per worker": how each run\'s keep-alive connections of the fast load were spread over the workers that answered them',
    '(connections stay on one worker; the spread decides how many fast requests queue behind a busy worker under (b) and (c)).',
    '"server CPU %": all the server\'s processes, % of one CPU (the /work loop alone keeps one CPU busy); "clients CPU %": this',
    'process (both clients), % of one CPU; "machine busy %": every process, % of all CPUs; "others\' CPU %": processes other than',
    'the server and the clients, % of all CPUs (0 on a quiet machine; when it is not, that run shared the CPUs with something else).',
    '"send lag": how late this process issued fast requests after they were due (its own timers and CPU share); it is included',
    'in the latencies. "CPU wait µs/slice": how long, on average, the HTTP workers\' main threads (drover: the fast workers) and this',
    'process\'s main thread waited on a run queue, runnable but not running, per timeslice they ran (/proc/PID/schedstat): the',
    'share of the latencies that is waiting for a CPU. CPU figures are medians over the rounds.',
    `Rate: ${fmt(RATE)} req/s, so that the fast load is not what gets measured: with /work keeping one of the ${ncpu} CPUs busy, it costs`,
    `the clients ~${by('lanes-on').clientCpuPct.toFixed(0)}% of a CPU and the server ~${pctOr(by('baseline').serverCpuPct)}% (row d), far from filling the other CPU; and it gives ${fmt(RATE * DURATION)} fast`,
    `requests a run, ${fmt(RATE * DURATION * ROUNDS)} a row, whose p99 is set by the ${fmt(RATE * DURATION * ROUNDS / 100)} slowest.`,
    ...logNotes,
  ];
  return { text: lines.filter((l, i, a) => !(l === '' && a[i - 1] === '')).join('\n'), ratios, roundRatios, met };
}

/** What drover itself counted on its lanes, from `drover ctl stats --json` (warm-up included). */
function statsNote(stats: unknown): string[] {
  type Gen = { fast: { servedFast: number; servedSlow: number }; slow: null | { completed: number; failed: number; cancelled: number; shed: { full: number; timeout: number; noWorkers: number }; serviceMs: number } };
  const st = stats as { ok?: boolean; generations?: Gen[]; slowRoutes?: { route: string; avgMs: number }[] } | null;
  const g = st?.ok ? st.generations?.[0] : undefined;
  if (!g || !g.slow) return ['lanes on: `drover ctl stats` did not answer; no server-side counts'];
  const sl = g.slow;
  return [
    `lanes on, drover's own counts (drover ctl stats, warm-up included): fast workers served ${fmt(g.fast.servedFast)} requests themselves and handed ${fmt(g.fast.servedSlow)} to the slow lane;`,
    `  slow lane: ${fmt(sl.completed)} completed, ${sl.failed} failed, ${sl.cancelled} cancelled, shed ${sl.shed.full} (queue full) + ${sl.shed.timeout} (queue timeout) + ${sl.shed.noWorkers} (no workers), mean service ${sl.serviceMs.toFixed(0)} ms;` +
      ` slow routes: ${(st!.slowRoutes ?? []).map((r) => `${r.route} (average ${r.avgMs} ms)`).join(', ') || 'none'}`,
  ];
}

// ------------------------------------------------------------------ main

const started = new Date();
const load0 = loadavg()[0]!;
progress(`bench/mixed${quick ? ' --quick' : ''}: ${machine}`);
let exit = 0;
try {
  const { rows, servers } = await bench();
  allRows = rows;
  const lanes = servers.get('lanes-on')!;
  const sums = rows.map((r) => summarize(r, r.server === 'lanes-on' ? lanes.slowPids : []));
  const logNotes: string[] = [];
  for (const [kind, s] of servers) {
    const bad = s.log.split('\n').filter((l) => /ERROR|WARNING|CRITICAL|died|timeout|Error/.test(l));
    if (bad.length > 0) logNotes.push('', `${kind} logged:`, ...bad.slice(0, 20).map((l) => `  ${l}`), ...(bad.length > 20 ? [`  ... ${bad.length - 20} more`] : []));
  }
  const commands = ['    servers (each its own process group, all started first, idle while another is measured):', ...[...servers].map(([k, s]) => `      ${s.command}`)];
  const r = report(sums, [...lanes.notes, ...statsNote(lanes.stats)], load0, commands, logNotes);
  console.log('\n' + r.text);
  if (write) {
    const dir = join(import.meta.dirname, '..', 'results');
    mkdirSync(dir, { recursive: true });
    const command = 'npm run bench:mixed';
    writeFileSync(join(dir, 'mixed.json'), JSON.stringify({
      bench: 'mixed',
      command,
      date: started.toISOString(),
      host: hostname(),
      drover: version,
      node: process.version,
      cpu: cpuModel,
      cpus: ncpu,
      settings: { workers: WORKERS, rate: RATE, connections: CONNECTIONS, durationSec: DURATION, rounds: ROUNDS, warmupSec: WARMUP, workMs: 200, slowThresholdSec: SLOW_THRESHOLD, slowWorkers: SLOW_WORKERS, timeoutMs: TIMEOUT_MS },
      servers: Object.fromEntries([...servers].map(([k, s]) => [k, { command: s.command, slowLanePids: s.slowPids, ctlStats: s.stats }])),
      target: { fastP99Ms: TARGET_P99_MS, lanesOnFastP99Ms: sums[0]!.fast.p99, met: r.met },
      ratios: r.ratios,
      roundRatios: r.roundRatios,
      rows: sums.map((s) => ({
        ...s,
        runs: rows.find((x) => x.id === s.id)!.runs.map((x) => ({
          round: x.round,
          fast: { scheduled: x.fast.scheduled, elapsedMs: x.fast.elapsedMs, ok: x.fast.ok, failed: x.fast.failed, p50: pct(x.fast.latencies, 50), p99: pct(x.fast.latencies, 99), max: pct(x.fast.latencies, 100), sendLagP99: pct(x.fast.sendLag, 99), perWorker: x.fast.perWorker, connWorker: x.fast.connWorker, connects: x.fast.connects },
          slow: x.slow && { elapsedMs: x.slow.elapsedMs, repeats: x.slow.repeats, done: x.slow.done, failed: x.slow.failed, p50: pct(x.slow.latencies, 50), max: pct(x.slow.latencies, 100), perWorker: x.slow.perWorker },
          serverCpuPct: x.serverCpuPct,
          clientCpuPct: x.clientCpuPct,
          machineBusyPct: x.machineBusyPct,
          othersPct: x.othersPct,
          discardedOthersPct: x.discardedOthersPct,
          workersCpuWaitUs: x.workersCpuWaitUs,
          clientCpuWaitUs: x.clientCpuWaitUs,
        })),
      })),
    }, null, 2) + '\n');
    writeFileSync(join(dir, 'mixed.md'), `# bench/mixed\n\n\`${command}\`, ${started.toISOString().slice(0, 10)}\n\n\`\`\`\n${r.text}\n\`\`\`\n`);
    progress('wrote bench/results/mixed.json and bench/results/mixed.md');
  }
} catch (e) {
  console.error(`bench/mixed failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  exit = 1;
}
process.exit(exit);
