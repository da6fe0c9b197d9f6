// bench/hostile: bench/mixed's fast load while hostile clients hold
// connections open, on loopback. Does the hello-world route stay fast, and
// the workers' memory bounded, while 5,000 slowloris connections, 20 trickled
// uploads and 20 clients that never read their answer hit the server? drover
// and node:cluster serving the same app, with the same number of HTTP
// workers, measured in the same run.
//
//   npm run bench:hostile              full run: prints the tables, writes
//                                      bench/results/hostile.json and hostile.md
//   npm run bench:hostile -- --quick   short run for CI (about 30 s): 3,000
//                                      slowloris, 10 uploads, 10 non-readers,
//                                      6 s runs; prints, writes nothing
//
// Options, which print but write nothing: --slowloris N (default 5000),
// --uploads N (20), --nonreaders N (20), --duration S (seconds of fast load
// per row, default 90: long enough for the 30 s and 60 s client deadlines,
// and node:http's 60 s headersTimeout, to end attack connections within the
// row), --workers N (HTTP workers, default 2); --quick sets the defaults
// above (explicit options still win).
//
// The app is bench/mixed/app.js: GET / is hello world, GET /big answers
// 4 MiB (made afresh for each request), /upload reads its whole body.
// The servers, started by bench/mixed/servers.ts and both started first:
//   drover with lanes on, as bench/mixed runs it (--lanes on --slow-threshold
//     0.1 --slow-workers 1: N fast workers and one slow-lane worker), and
//     every client limit at its default (client_header_timeout 30,
//     client_body_timeout 60, send_timeout 60, worker_connections 1000, on a
//     drover that has them);
//   node:cluster (bench/mixed/cluster.ts: node:http's defaults, round-robin).
// Each is warmed up with the fast load, then its workers' RSS and open
// descriptors are taken at rest (the idle figures).
//
// Rows, in this order:
//   (a) drover, no attack: the fast load alone (the floor);
//   (b) drover under attack;
//   (c) node:cluster under attack.
// Under attack: the attacker (attack.ts, in a child process, attacker.ts:
// 5,000 sockets and their timers in the fast load's event loop would delay
// the fast requests themselves) opens every connection, at most 256 connects
// at a time; once all are open (or the count has not grown for 2 s) and the
// workers' descriptor counts have been steady for 1 s (or the ramp took its
// limit), the fast load runs: bench/mixed's load.ts, open loop,
// 500 req/s on 8 keep-alive connections, latency from when each request was
// due, for `duration` seconds, the attack going on throughout. The workers'
// RSS (/proc/PID/status VmRSS) and descriptors are sampled every 500 ms from
// the attack's start to the end of the fast load; then the attack's own
// counts are taken (connections open at the end, the ones the server ended
// and how), and every attack connection is reset.
//
// Targets (the issue's), for drover under attack: fast p99 <= 10 ms, no
// fast request failed, and every worker's peak RSS under attack below 2x its
// own idle RSS. The same checks are shown for the other rows, for comparison.
//
// The CPUs are shared: the servers, the fast load (this process), the
// attacker and whatever else runs on the machine. Around each row: CPU of the
// server's process group, of this process and of the attacker, their event
// loops' use (a client whose loop was busy >= 90% of the time, or that used
// >= 90% of a CPU, is marked saturated: its figures then measure the client
// too), and the other processes' share of the machine.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, hostname, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { KINDS, type AttackKind, type AttackSpec, type AttackStats } from './attack.js';
import type { LoopFigures } from './attacker.js';
import { ensureNofile, fdCount, idleOf, nofile, sampler, startAttacker, workersOf, type Idle, type WorkerFigures } from './procs.js';
import { fastLoad, pct, type FastResult } from '../mixed/load.js';
import { argvOf, ctlStats, startReady, type Kind, type Server, type ServerOptions } from '../mixed/servers.js';
import { groupCpuMs, machineBusyMs } from '../http/procs.js';
import { atLastResort, sleep } from '../lib/procs.js';
import { cli, fmt, table } from '../lib/report.js';

const { progress, fail, positive } = cli('hostile');

const { values: opt } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    slowloris: { type: 'string' },
    uploads: { type: 'string' },
    nonreaders: { type: 'string' },
    duration: { type: 'string' },
    workers: { type: 'string' },
  },
  strict: true,
});
const quick = opt.quick!;
const counted = (option: string, v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) fail(`--${option}: a whole number, not ${v}`);
  return n;
};
const COUNTS: Record<AttackKind, number> = {
  slowloris: counted('slowloris', opt.slowloris ?? (quick ? '3000' : '5000')),
  uploads: counted('uploads', opt.uploads ?? (quick ? '10' : '20')),
  nonreaders: counted('nonreaders', opt.nonreaders ?? (quick ? '10' : '20')),
};
const DURATION = positive('duration', opt.duration ?? (quick ? '6' : '90'));
const WORKERS = positive('workers', opt.workers ?? '2');
const RATE = 500; // fast requests per second, as bench/mixed
const CONNECTIONS = 8; // keep-alive connections of the fast load, as bench/mixed
const TIMEOUT_MS = 10_000; // a fast request unanswered this long after the last one was due has failed
const WARMUP_S = quick ? 1 : 3;
const RAMP_MAX_S = quick ? 6 : 30; // the attack's connects, at most
const RAMP_STALL_MS = 2000; // ... or until the open count has not grown for this long
const RAMP_STEADY_MS = 1000; // and the workers' descriptors have been steady for this long
const SETTLE_MS = quick ? 1000 : 3000; // after an attack is reset, before the next row
const SLOWLORIS_EVERY_MS = 3000;
const UPLOAD_EVERY_MS = 1000;
const UPLOAD_CHUNK = 1;
const UPLOAD_LENGTH = 1024 * 1024;
const PROBE_MS = 5000;
const SLOW_THRESHOLD = 0.1; // as bench/mixed
const SLOW_WORKERS = 1;
const TARGET_P99_MS = 10;
const TARGET_RSS_RATIO = 2;
const SATURATED = 0.9;
const ATTACK_TOTAL = KINDS.reduce((n, k) => n + COUNTS[k], 0);
const write = !quick && Object.entries(opt).every(([k, v]) => k === 'quick' || v === undefined);

// 5,000 sockets: the attacker holds one descriptor each, the servers one each too.
const fdNote = ensureNofile(ATTACK_TOTAL + 1024, fail);

const serverOpts: ServerOptions = { workers: WORKERS, controlDir: mkdtempSync(join(tmpdir(), 'drover-bench-hostile-')), slowThreshold: SLOW_THRESHOLD, slowWorkers: SLOW_WORKERS };
atLastResort(() => rmSync(serverOpts.controlDir, { recursive: true, force: true }));

type RowId = 'floor' | 'drover' | 'cluster';
interface RowDef { id: RowId; server: Kind; attack: boolean; label: string }
const ROWS: readonly RowDef[] = [
  { id: 'floor', server: 'lanes-on', attack: false, label: '(a) drover, no attack (floor)' },
  { id: 'drover', server: 'lanes-on', attack: true, label: '(b) drover, under attack' },
  { id: 'cluster', server: 'cluster', attack: true, label: '(c) node:cluster, under attack' },
];

const cpuModel = cpus()[0]?.model ?? 'unknown CPU';
const ncpu = availableParallelism();
const machine = `${ncpu} CPU(s), ${cpuModel}, Node ${process.version}, ${process.platform}`;
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
/** Whether this drover has the client limits (their flags are in its --help), which it is run with at their defaults. */
function clientLimits(): string {
  const names = ['client-header-timeout', 'client-body-timeout', 'send-timeout', 'worker-connections'];
  try {
    const help = execFileSync(process.execPath, [join(import.meta.dirname, '..', '..', 'bin', 'drover.js'), '--help'], { encoding: 'utf8', timeout: 30_000 });
    const has = names.filter((n) => help.includes(`--${n}`));
    return has.length === names.length
      ? 'drover runs with its client limits at their defaults (client_header_timeout, client_body_timeout, send_timeout, worker_connections)'
      : has.length === 0
        ? 'this drover has no client limits (client_header_timeout, client_body_timeout, send_timeout, worker_connections): none is in its --help'
        : `this drover has some client limits only (${has.join(', ')}), at their defaults`;
  } catch {
    return 'drover --help did not answer: whether this drover has client limits is unknown';
  }
}
const limits = clientLimits();

const ms = (x: number) => (Number.isNaN(x) ? '-' : x < 10 ? x.toFixed(2) : x < 100 ? x.toFixed(1) : x.toFixed(0));
const mib = (kib: number | null) => (kib === null ? '-' : (kib / 1024).toFixed(kib < 100 * 1024 ? 1 : 0));
const pctOr = (n: number | null, digits = 0) => (n === null ? '-' : n.toFixed(digits));
const sumOf = (m: Readonly<Record<string, number>>) => Object.values(m).reduce((a, b) => a + b, 0);
const countsText = (m: Readonly<Record<string, number>>) => (sumOf(m) === 0 ? '0' : `${fmt(sumOf(m))} (${Object.entries(m).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${fmt(v)} ${k}`).join(', ')})`);

// ------------------------------------------------------------------ a row

interface Ramp {
  /** ms from the start of the attack to the start of the fast load */
  ms: number;
  /** attack connections open then (the attacker's view), of ATTACK_TOTAL */
  open: number;
  /** descriptors the workers held then, all together */
  workerFds: number;
  why: 'all open' | 'stalled' | 'time limit';
}

interface Measured extends RowDef {
  fast: FastResult;
  workers: WorkerFigures[];
  ramp: Ramp | null;
  attackEnd: AttackStats | null;
  attackerLoop: LoopFigures | null;
  /** % of one CPU, over the fast load */
  serverCpuPct: number | null;
  loadCpuPct: number;
  loadElu: number;
  attackerCpuPct: number | null;
  machineBusyPct: number | null;
  /** processes other than the server, this one and the attacker, % of all CPUs */
  othersPct: number | null;
}

const openOf = (st: AttackStats) => KINDS.reduce((n, k) => n + st[k].open, 0);

/**
 * Waits until the attack is in place: every connection open from the
 * attacker's side (or their count has not grown for RAMP_STALL_MS: the server
 * takes no more), and the workers' descriptors steady for RAMP_STEADY_MS
 * (node:cluster's primary accepts every connection and hands it to a worker:
 * a connection can be open for the client well before a worker has it, and
 * a fast connection made meanwhile waits behind the rest); at most RAMP_MAX_S.
 */
async function rampUp(attacker: Awaited<ReturnType<typeof startAttacker>>, s: Server): Promise<Ramp> {
  const t0 = performance.now();
  let last = -1;
  let grewAt = t0;
  let fds = -1;
  let fdsAt = t0;
  for (;;) {
    await sleep(200);
    const { stats } = await attacker.stats();
    const open = openOf(stats);
    const counts = await Promise.all([...workersOf(s).keys()].map(fdCount));
    const f = counts.reduce<number>((n, x) => n + (x ?? 0), 0);
    const now = performance.now();
    if (open > last) {
      last = open;
      grewAt = now;
    }
    if (Math.abs(f - fds) > Math.max(2, fds * 0.002)) {
      fds = f;
      fdsAt = now;
    }
    const steady = now - fdsAt >= RAMP_STEADY_MS;
    if (open >= ATTACK_TOTAL && steady) return { ms: now - t0, open, workerFds: f, why: 'all open' };
    if (now - grewAt >= RAMP_STALL_MS && steady) return { ms: now - t0, open, workerFds: f, why: 'stalled' };
    if (now - t0 >= RAMP_MAX_S * 1000) return { ms: now - t0, open, workerFds: f, why: 'time limit' };
  }
}

async function measure(row: RowDef, s: Server, idle: Idle): Promise<Measured> {
  const samples = sampler(s, idle);
  let attacker: Awaited<ReturnType<typeof startAttacker>> | null = null;
  let ramp: Ramp | null = null;
  try {
    if (row.attack) {
      attacker = await startAttacker();
      const spec: AttackSpec = { port: s.port, counts: COUNTS, slowlorisEveryMs: SLOWLORIS_EVERY_MS, uploadEveryMs: UPLOAD_EVERY_MS, uploadChunk: UPLOAD_CHUNK, uploadLength: UPLOAD_LENGTH, probeMs: PROBE_MS };
      progress(`${row.label}: opening ${fmt(ATTACK_TOTAL)} attack connections`);
      await attacker.start(spec);
      ramp = await rampUp(attacker, s);
      progress(`${row.label}: ${fmt(ramp.open)} of ${fmt(ATTACK_TOTAL)} open after ${(ramp.ms / 1000).toFixed(1)} s (${ramp.why}), the workers holding ${fmt(ramp.workerFds)} descriptors; fast load for ${DURATION} s`);
      await attacker.stats(true); // the attacker's loop figures from here
    } else {
      progress(`${row.label}: fast load for ${DURATION} s`);
    }
    const a0 = attacker?.cpuMs() ?? null;
    const cpu0 = groupCpuMs(s.pid);
    const busy0 = machineBusyMs();
    const self0 = process.cpuUsage();
    const elu0 = performance.eventLoopUtilization();
    const w0 = performance.now();
    const fast = await fastLoad({ port: s.port, path: '/', rate: RATE, connections: CONNECTIONS, durationMs: DURATION * 1000, timeoutMs: TIMEOUT_MS });
    const wall = performance.now() - w0;
    const elu = performance.eventLoopUtilization(elu0).utilization;
    const self = process.cpuUsage(self0);
    const busy1 = machineBusyMs();
    const cpu1 = groupCpuMs(s.pid);
    const a1 = attacker?.cpuMs() ?? null;
    const end = attacker ? await attacker.stats() : null;
    const workers = await samples.stop();
    const serverCpuPct = cpu0 === null || cpu1 === null ? null : (100 * (cpu1 - cpu0)) / wall;
    const loadCpuPct = (100 * (self.user + self.system)) / 1000 / wall;
    const attackerCpuPct = a0 === null || a1 === null ? null : (100 * (a1 - a0)) / wall;
    const machineBusyPct = busy0 === null || busy1 === null ? null : (100 * (busy1 - busy0)) / (wall * ncpu);
    const othersPct = machineBusyPct === null || serverCpuPct === null ? null : Math.max(0, machineBusyPct - (serverCpuPct + loadCpuPct + (attackerCpuPct ?? 0)) / ncpu);
    const m: Measured = { ...row, fast, workers, ramp, attackEnd: end?.stats ?? null, attackerLoop: end?.loop ?? null, serverCpuPct, loadCpuPct, loadElu: elu, attackerCpuPct, machineBusyPct, othersPct };
    progress(
      `${row.label}: fast p50 ${ms(pct(fast.latencies, 50))} ms, p99 ${ms(pct(fast.latencies, 99))} ms, max ${ms(pct(fast.latencies, 100))} ms, failed ${fast.failedTotal}; ` +
        `RSS peak/idle ${ratioOf(workers).toFixed(2)}x; server CPU ${pctOr(serverCpuPct)}%, load ${loadCpuPct.toFixed(0)}%, attacker ${pctOr(attackerCpuPct)}%, others ${pctOr(othersPct)}%` +
        (end ? `; attack open at the end ${fmt(openOf(end.stats))} of ${fmt(ATTACK_TOTAL)}` : ''),
    );
    return m;
  } finally {
    await samples.stop().catch(() => []);
    if (attacker) {
      await attacker.stop();
      await sleep(SETTLE_MS);
    }
  }
}

/** The worst worker's peak RSS over its own idle RSS (workers with no idle figure: against the median idle of the others). */
function ratioOf(ws: readonly WorkerFigures[]): number {
  const idles = ws.map((w) => w.idleRss).filter((x): x is number => x !== null).sort((a, b) => a - b);
  const fallback = idles.length ? idles[Math.floor((idles.length - 1) / 2)]! : NaN;
  return Math.max(...ws.map((w) => w.peakRss / (w.idleRss ?? fallback)));
}

// ------------------------------------------------------------------ the run

interface ServerInfo { command: string; nofile: string; idle: Idle; log: string; stats: unknown }

function shown(argv: readonly string[], port: number): string {
  return ['node', ...argv].join(' ').replaceAll(`127.0.0.1:${port}`, '127.0.0.1:PORT').replace(` ${port} `, ' PORT ').replaceAll(serverOpts.controlDir, '$TMPDIR');
}

async function bench(): Promise<{ rows: Measured[]; info: Map<Kind, ServerInfo> }> {
  const servers = new Map<Kind, Server>();
  const info = new Map<Kind, ServerInfo>();
  try {
    for (const kind of ['lanes-on', 'cluster'] as const) {
      progress(`starting ${kind}: ${shown(argvOf(kind, 0, serverOpts), 0)}`);
      servers.set(kind, await startReady(kind, serverOpts));
    }
    for (const [kind, s] of servers) {
      progress(`warm-up ${kind}: ${WARMUP_S} s of fast load`);
      const f = await fastLoad({ port: s.port, path: '/', rate: RATE, connections: CONNECTIONS, durationMs: WARMUP_S * 1000, timeoutMs: TIMEOUT_MS });
      if (f.failedTotal > 0) throw new Error(`${kind}: ${f.failedTotal} fast request(s) failed at warm-up: ${JSON.stringify(f.failed)}`);
    }
    await sleep(1000);
    for (const [kind, s] of servers) {
      const idle = await idleOf(s);
      const first = [...workersOf(s).keys()][0];
      const lim = first === undefined ? null : nofile(first);
      info.set(kind, { command: shown(s.argv, s.port), nofile: lim === null ? '?' : `${lim.soft}`, idle, log: '', stats: null });
      progress(`${kind} at rest: RSS ${[...idle.rss].map(([p, k]) => `${p} ${mib(k)} MiB`).join(', ')}`);
    }
    const rows: Measured[] = [];
    for (const row of ROWS) rows.push(await measure(row, servers.get(row.server)!, info.get(row.server)!.idle));
    info.get('lanes-on')!.stats = ctlStats('lanes-on', serverOpts);
    return { rows, info };
  } finally {
    for (const [kind, s] of servers) {
      const i = info.get(kind);
      if (i) i.log = s.log();
      await s.stop();
    }
  }
}

// ------------------------------------------------------------------ report

interface Verdict { met: boolean; text: string }

function verdict(r: Measured): Verdict {
  const misses: string[] = [];
  const p99 = pct(r.fast.latencies, 99);
  if (!(p99 <= TARGET_P99_MS)) misses.push(`p99 ${ms(p99)} ms > ${TARGET_P99_MS}`);
  if (r.fast.failedTotal > 0) misses.push(`${fmt(r.fast.failedTotal)} failed`);
  const ratio = ratioOf(r.workers);
  if (!(ratio < TARGET_RSS_RATIO)) misses.push(`RSS ${ratio.toFixed(2)}x >= ${TARGET_RSS_RATIO}`);
  const met = misses.length === 0;
  return { met, text: met ? 'MET' : `NOT MET: ${misses.join('; ')}` };
}

function saturation(r: Measured): string {
  const out: string[] = [];
  if (r.loadCpuPct >= SATURATED * 100 || r.loadElu >= SATURATED) out.push('load');
  if (r.attackerLoop && ((r.attackerCpuPct ?? 0) >= SATURATED * 100 || r.attackerLoop.elu >= SATURATED)) out.push('attacker');
  return out.length === 0 ? 'no' : `yes (${out.join(', ')})`;
}

function openText(st: AttackStats | null): string {
  if (st === null) return '-';
  return KINDS.map((k) => fmt(st[k].open)).join(' / ');
}

function failedText(f: Readonly<Record<string, number>>): string {
  return countsText(f);
}

function lanesNote(stats: unknown): string[] {
  type Gen = { fast: { servedFast: number; servedSlow: number }; slow: null | { completed: number; failed: number; cancelled: number; shed: { full: number; timeout: number; noWorkers: number }; serviceMs: number } };
  const st = stats as { ok?: boolean; generations?: Gen[]; slowRoutes?: { route: string; avgMs: number }[] } | null;
  const g = st?.ok ? st.generations?.[0] : undefined;
  if (!g) return ['drover: `drover ctl stats` did not answer at the end; no server-side counts'];
  const sl = g.slow;
  return [
    `drover's own counts at the end (drover ctl stats, warm-up included): fast workers served ${fmt(g.fast.servedFast)} requests and handed ${fmt(g.fast.servedSlow)} to the slow lane` +
      (sl ? `; slow lane: ${fmt(sl.completed)} completed, ${sl.failed} failed, ${sl.cancelled} cancelled, shed ${sl.shed.full} + ${sl.shed.timeout} + ${sl.shed.noWorkers} (queue full, queue timeout, no workers)` : ''),
    `  routes learned slow: ${(st!.slowRoutes ?? []).map((r) => `${r.route} (average ${r.avgMs} ms)`).join(', ') || 'none'}`,
  ];
}

function report(rows: Measured[], info: Map<Kind, ServerInfo>, load0: number): { text: string; verdicts: Record<RowId, Verdict> } {
  const verdicts = Object.fromEntries(rows.map((r) => [r.id, verdict(r)])) as Record<RowId, Verdict>;
  const idleMax = (r: Measured) => Math.max(...r.workers.map((w) => w.idleRss ?? 0));
  const peakMax = (r: Measured) => Math.max(...r.workers.map((w) => w.peakRss));
  const d = rows.find((r) => r.id === 'drover')!;
  const logNotes: string[] = [];
  for (const [kind, i] of info) {
    const bad = i.log.split('\n').filter((l) => /ERROR|WARNING|CRITICAL|died|EMFILE|ENFILE|Error/.test(l));
    if (bad.length > 0) logNotes.push('', `${kind} logged (${fmt(bad.length)} line(s) of errors or warnings):`, ...bad.slice(0, 15).map((l) => `  ${l.slice(0, 300)}`), ...(bad.length > 15 ? [`  ... ${fmt(bad.length - 15)} more`] : []));
  }
  const lines = [
    `hostile: GET / (hello) at ${fmt(RATE)} req/s on ${CONNECTIONS} keep-alive connections (bench/mixed's open-loop load, latency from when each request was due),`,
    `    ${DURATION} s per row, while ${fmt(COUNTS.slowloris)} slowloris connections (one header byte every ${SLOWLORIS_EVERY_MS / 1000} s), ${fmt(COUNTS.uploads)} trickled uploads`,
    `    (POST /upload, Content-Length 1 MiB, ${UPLOAD_CHUNK} byte every ${UPLOAD_EVERY_MS / 1000} s) and ${fmt(COUNTS.nonreaders)} non-readers (GET /big, 4 MiB, never read) hold connections open,`,
    `    each reopened when the server closes it; ${WORKERS} HTTP workers each; the attacker in a child process, the fast load in this one, on 127.0.0.1`,
    `    ${machine}; servers, clients and everything else share the ${ncpu} CPU(s); ${version}`,
    `    ${fdNote}; in the servers' workers: drover ${info.get('lanes-on')?.nofile ?? '?'}, node:cluster ${info.get('cluster')?.nofile ?? '?'}`,
    `    ${limits}; node:cluster: node:http's defaults (headersTimeout 60 s, requestTimeout 300 s, checked every 30 s)`,
    '    servers (each its own process group, both started first, idle while the other is measured):',
    ...[...info.values()].map((i) => `      ${i.command}`),
    '',
    ...table(
      ['row', 'fast sent', 'failed', 'p50 ms', 'p99 ms', 'max ms', 'RSS/worker idle MiB', 'under attack MiB', 'attack/idle', 'attack open at end (sl/up/nr)', 'client saturated', 'verdict'],
      'lrrrrrrrrlll',
      rows.map((r) => [
        r.label,
        fmt(r.fast.scheduled),
        fmt(r.fast.failedTotal),
        ms(pct(r.fast.latencies, 50)),
        ms(pct(r.fast.latencies, 99)),
        ms(pct(r.fast.latencies, 100)),
        mib(idleMax(r)),
        mib(peakMax(r)),
        `${ratioOf(r.workers).toFixed(2)}x`,
        r.attack ? `${openText(r.attackEnd)} of ${KINDS.map((k) => fmt(COUNTS[k])).join(' / ')}` : '-',
        saturation(r),
        verdicts[r.id].text,
      ]),
    ),
    '',
    `target (the issue's), drover under attack: fast p99 <= ${TARGET_P99_MS} ms, 0 failed fast requests, every worker's RSS under ${TARGET_RSS_RATIO}x its idle RSS: ` +
      `${verdicts.drover.met ? 'MET' : 'NOT MET'} (p99 ${ms(pct(d.fast.latencies, 99))} ms, ${fmt(d.fast.failedTotal)} failed, RSS ${ratioOf(d.workers).toFixed(2)}x)`,
    '',
    ...table(
      ['row', 'fast failed, why', 'fast conns opened', 'ramp', 'server CPU %', 'load CPU %', 'load loop busy %', 'send lag p99 ms', 'attacker CPU %', 'attacker loop busy %', 'attacker loop delay p99 ms', 'others\' CPU %'],
      'llllrrrrrrrr',
      rows.map((r) => [
        r.label,
        failedText(r.fast.failed),
        fmt(r.fast.connects),
        r.ramp ? `${fmt(r.ramp.open)} open in ${(r.ramp.ms / 1000).toFixed(1)} s (${r.ramp.why}), workers' fds ${fmt(r.ramp.workerFds)}` : '-',
        pctOr(r.serverCpuPct),
        r.loadCpuPct.toFixed(0),
        (100 * r.loadElu).toFixed(0),
        ms(pct(r.fast.sendLag, 99)),
        pctOr(r.attackerCpuPct),
        r.attackerLoop ? (100 * r.attackerLoop.elu).toFixed(0) : '-',
        r.attackerLoop ? ms(r.attackerLoop.delayP99Ms) : '-',
        pctOr(r.othersPct),
      ]),
    ),
    '',
    ...table(
      ['row', 'attackers', 'open at end', 'connecting at end', 'connections made', 'ended by the server (how)', 'their life p50 / max s', 'connects failed'],
      'llrrrllr',
      rows.filter((r) => r.attackEnd).flatMap((r) => KINDS.filter((k) => COUNTS[k] > 0).map((k) => {
        const st = r.attackEnd![k];
        return [
          r.label,
          `${fmt(st.target)} ${k}`,
          fmt(st.open),
          fmt(st.connecting),
          fmt(st.connects),
          countsText(st.ended),
          st.lifeP50Ms === null ? '-' : `${(st.lifeP50Ms / 1000).toFixed(1)} / ${(st.lifeMaxMs! / 1000).toFixed(1)}`,
          countsText(st.connectFailed),
        ];
      })),
    ),
    '',
    ...table(
      ['row', 'worker', 'RSS idle MiB', 'peak MiB', 'at end MiB', 'peak/idle', 'descriptors idle', 'peak', 'at end'],
      'llrrrrrrr',
      rows.flatMap((r) => r.workers.map((w) => [
        r.label,
        `${w.pid} (${w.role}${w.alive ? '' : ', gone'}${w.idleRss === null ? ', new' : ''})`,
        mib(w.idleRss),
        mib(w.peakRss),
        mib(w.lastRss),
        w.idleRss === null ? '-' : `${(w.peakRss / w.idleRss).toFixed(2)}x`,
        w.idleFds === null ? '-' : fmt(w.idleFds),
        fmt(w.peakFds),
        fmt(w.lastFds),
      ])),
    ),
    '',
    ...lanesNote(info.get('lanes-on')?.stats ?? null),
    `1-minute load average before / after: ${load0.toFixed(2)} / ${loadavg()[0]!.toFixed(2)} on ${ncpu} CPU(s)`,
    '',
    '"fast sent": requests due over the row (rate x duration); "failed": those without a 2xx answer (the next table says why);',
    'latencies of the 2xx ones, from when each was due (so a connect that waits in a full backlog counts). "RSS/worker idle": the',
    'largest idle RSS among the workers (after warm-up, at rest: the median of 5 samples); "under attack": the largest RSS any worker',
    'reached, sampled every 500 ms from the attack\'s start to the end of the fast load (the floor row: during its fast load);',
    '"attack/idle": the largest ratio of a worker\'s peak to its own idle RSS. Workers: drover\'s fast workers and its slow-lane',
    'worker, node:cluster\'s workers (not the arbiter or the primary); a worker started during the row ("new") is compared with the',
    'median idle RSS. "attack open at end": attack connections open from the attacker\'s side when the fast load ended, slowloris /',
    'uploads / non-readers; a connection the server\'s kernel completed but no worker accepted (a full accept queue) counts as',
    'open there (the workers\' descriptors in the last table say what the workers hold); those neither open nor connecting wait',
    'in the attacker\'s queue (256 connects at a time) or for their reconnect delay. "client saturated": the fast load or the',
    `attacker had its event loop busy >= ${SATURATED * 100}% of the time, or used >= ${SATURATED * 100}% of a CPU (its own lateness is then in the figures).`,
    '"ended by the server": attack connections closed from the server\'s side during the whole attack (ramp included), by how: an',
    'answer (`HTTP nnn`: the attacker then closes), `closed` (a FIN), or an error (a reset); non-readers notice a close only when',
    `their next probe (\`\\r\\n\` every ${PROBE_MS / 1000} s) fails. "ramp": the attack's connections were opened first (256 connects at a time), and the`,
    `fast load started once all were open (or their count had not grown for ${RAMP_STALL_MS / 1000} s) and the workers' descriptors had been steady for ${RAMP_STEADY_MS / 1000} s`,
    `(node:cluster's primary accepts and hands each connection on: a client sees it open before a worker has it), or after ${RAMP_MAX_S} s.`,
    '"server CPU %": the server\'s whole process group, % of one CPU; "load": this process (the fast load); "attacker": its child',
    'process; "others\'": every other process on the machine, % of all CPUs. CPU figures cover the fast load\'s time.',
    ...logNotes,
  ];
  return { text: lines.filter((l, i, a) => !(l === '' && a[i - 1] === '')).join('\n'), verdicts };
}

// ------------------------------------------------------------------ main

const started = new Date();
const load0 = loadavg()[0]!;
progress(`bench/hostile${quick ? ' --quick' : ''}: ${machine}; ${fdNote}`);
let exit = 0;
try {
  const { rows, info } = await bench();
  const r = report(rows, info, load0);
  console.log('\n' + r.text);
  if (write) {
    const dir = join(import.meta.dirname, '..', 'results');
    mkdirSync(dir, { recursive: true });
    const command = 'npm run bench:hostile';
    writeFileSync(join(dir, 'hostile.json'), JSON.stringify({
      bench: 'hostile',
      command,
      date: started.toISOString(),
      host: hostname(),
      drover: version,
      node: process.version,
      cpu: cpuModel,
      cpus: ncpu,
      descriptors: fdNote,
      clientLimits: limits,
      settings: {
        workers: WORKERS, rate: RATE, connections: CONNECTIONS, durationSec: DURATION, warmupSec: WARMUP_S, timeoutMs: TIMEOUT_MS,
        attack: { ...COUNTS, slowlorisEveryMs: SLOWLORIS_EVERY_MS, uploadEveryMs: UPLOAD_EVERY_MS, uploadChunk: UPLOAD_CHUNK, uploadLength: UPLOAD_LENGTH, probeMs: PROBE_MS, rampMaxSec: RAMP_MAX_S },
        slowThresholdSec: SLOW_THRESHOLD, slowWorkers: SLOW_WORKERS,
      },
      servers: Object.fromEntries([...info].map(([k, i]) => [k, { command: i.command, nofile: i.nofile, idleRssKiB: Object.fromEntries(i.idle.rss), idleFds: Object.fromEntries(i.idle.fds), ctlStats: i.stats }])),
      target: { fastP99Ms: TARGET_P99_MS, failed: 0, rssRatioBelow: TARGET_RSS_RATIO, met: r.verdicts.drover.met, verdict: r.verdicts.drover.text },
      rows: rows.map((x) => ({
        id: x.id,
        label: x.label,
        attack: x.attack,
        verdict: r.verdicts[x.id].text,
        fast: {
          scheduled: x.fast.scheduled, ok: x.fast.ok, failed: x.fast.failed, failedTotal: x.fast.failedTotal, elapsedMs: x.fast.elapsedMs, connects: x.fast.connects,
          p50: pct(x.fast.latencies, 50), p90: pct(x.fast.latencies, 90), p99: pct(x.fast.latencies, 99), p999: pct(x.fast.latencies, 99.9), max: pct(x.fast.latencies, 100),
          sendLagP99: pct(x.fast.sendLag, 99), perWorker: x.fast.perWorker,
        },
        rssRatio: ratioOf(x.workers),
        workers: x.workers,
        ramp: x.ramp,
        attackEnd: x.attackEnd,
        attackerLoop: x.attackerLoop,
        serverCpuPct: x.serverCpuPct,
        loadCpuPct: x.loadCpuPct,
        loadElu: x.loadElu,
        attackerCpuPct: x.attackerCpuPct,
        machineBusyPct: x.machineBusyPct,
        othersPct: x.othersPct,
      })),
    }, null, 2) + '\n');
    writeFileSync(join(dir, 'hostile.md'), `# bench/hostile\n\n\`${command}\`, ${started.toISOString().slice(0, 10)}\n\n\`\`\`\n${r.text}\n\`\`\`\n`);
    progress('wrote bench/results/hostile.json and bench/results/hostile.md');
  }
} catch (e) {
  console.error(`bench/hostile failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  exit = 1;
}
process.exit(exit);
