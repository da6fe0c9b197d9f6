// What `drover sim` prints: the progress line, a failure's report, the
// summary table, and the --trace file with its process tree and a visual
// timeline of the processes' lives. Pure text in, text out.
import { describeFault, FAULT_KINDS, type Fault, type Scenario } from '../chaos/scenario.js';
import { INVARIANTS } from '../chaos/invariants.js';
import { formatSchedule } from '../chaos/shrink.js';
import type { Defect } from '../os/hooks.js';
import { FAULT_ERRNO, OS_FAULTS, type OsFault } from '../sim/faults.js';
import type { Result } from './sim-run.js';
import type { FindingKind } from '../chaos/app-run.js';
import { FAILING, whose } from './sim-run.js';

export const hex = (seed: bigint | string): string => `0x${BigInt(seed).toString(16)}`;
const n = (x: number) => Math.round(x).toLocaleString('en-US');
const secs = (ms: number) => `${(ms / 1000).toFixed(3)}s`;

export function duration(ms: number): string {
  const s = ms / 1000;
  if (s < 59.95) return `${s.toFixed(1)}s`;
  // Rounded once, so 179.6 s is 3m 00s, not 2m 60s.
  const whole = Math.round(s);
  const m = Math.floor(whole / 60);
  if (m < 60) return `${m}m ${String(whole % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, '0')}m`;
}

const clip = (line: string, width = 220) => (line.length > width ? `${line.slice(0, width - 1)}…` : line);

// ---- replay

export interface Replayable {
  readonly seed: string | bigint;
  /** Only when the user named it (see Task.name). */
  readonly name?: string | undefined;
  readonly durationMs: number;
  readonly defects: readonly Defect[];
  readonly faults?: readonly Fault[] | undefined;
  /** A user's deployment: "--config FILE" or "--app FILE". */
  readonly target?: string | undefined;
}

/** The one command that runs this again. */
export function replayCommand(r: Replayable): string {
  const parts = ['npx drover sim', ...(r.target ? [r.target] : []), `--seed ${hex(r.seed)}`];
  if (r.name) parts.push(`--scenario ${r.name}`);
  parts.push(`--duration ${r.durationMs / 1000}`);
  if (r.defects.length > 0) parts.push(`--defect ${r.defects.join(',')}`);
  if (r.faults) parts.push(`--faults ${formatSchedule(r.faults)}`);
  return parts.join(' ');
}

// ---- a failure

/** Trace lines that say little about a failure: left out of its report (not of --trace). */
const QUIET = /^\d+ \d+ (wake|timer|ref|unref|r|w|fwrite|flush|host|idle)( |$)/;
/** The lives of processes, and the driver's own lines (faults, restarts). */
const PROCESS = /^\d+ (\d+ (spawn|exit|orphan|kill|reap) |driver )/;

export function failureReport(r: Result, replay: string, opts: { lines?: number } = {}): string {
  const f = r.failure!;
  const out: string[] = [];
  const what = f.kind === 'violation' ? `invariant ${f.invariant} broken at ${secs(f.at)} simulated`
    : f.kind === 'app' ? `${FINDING_TITLE[f.finding]}${f.at >= 0 ? ` at ${secs(f.at)} simulated` : ''}`
    : f.kind === 'crash' ? 'the run crashed' : 'the run never finished (wall-clock timeout)';
  // APP: a finding of the user's app; FAIL: drover broke (or the run did).
  out.push(`${whose(f) === 'app' ? 'APP' : 'FAIL'} seed ${hex(r.seed)} (${r.name}, ${r.durationMs / 1000} s): ${what}`);
  for (const line of f.message.split('\n').slice(0, f.kind === 'violation' || f.kind === 'app' ? 20 : 30)) out.push(`  ${clip(line, 400)}`);
  if (r.app !== undefined) {
    const more = r.app.findings.filter((x) => `${x.kind}: ${x.where}: ${x.text}` !== f.message);
    if (more.length > 0) out.push(`  also in this run:`);
    for (const x of more.slice(0, 8)) out.push(`    ${x.at >= 0 ? secs(x.at) : '-'} ${x.kind} ${x.where}: ${clip(x.text.split('\n', 1)[0]!, 300)}`);
  }
  out.push(`  fault schedule (${r.faults.length}):${r.faults.length === 0 ? ' none' : ''}`);
  for (let i = 0; i < r.faults.length; i += 6) out.push(`    ${r.faults.slice(i, i + 6).map(describeFault).join(', ')}`);
  const lines = opts.lines ?? 16;
  const events = r.timeline.filter((l) => !QUIET.test(l));
  const procs = r.timeline.filter((l) => PROCESS.test(l));
  if (procs.length > 0) {
    out.push(`  process events and faults before it (simulated ms, pid, event):`);
    for (const l of procs.slice(-lines)) out.push(`    ${clip(l)}`);
  }
  if (events.length > 0) {
    out.push(`  last events (wake-ups, timers, reads and writes left out):`);
    for (const l of events.slice(-lines)) out.push(`    ${clip(l)}`);
  }
  if (r.logTail.length > 0) {
    out.push(`  drover's error log, last lines:`);
    for (const l of r.logTail.slice(-12)) out.push(`    ${clip(l)}`);
  }
  out.push(`  replay: ${replay}`);
  return out.join('\n');
}

// ---- progress

export class Progress {
  private done = 0;
  private failed = 0;
  private lastDraw = 0;
  private readonly t0 = performance.now();

  constructor(
    private readonly total: number,
    private readonly out: NodeJS.WriteStream,
    private readonly tty = out.isTTY === true,
    private readonly plainEveryMs = 10_000,
  ) {}

  tick(failed: boolean): void {
    this.done++;
    if (failed) this.failed++;
    const now = performance.now();
    if (this.tty ? now - this.lastDraw >= 100 || this.done === this.total : now - this.lastDraw >= this.plainEveryMs) {
      this.lastDraw = now;
      this.draw(now);
    }
  }

  /** A line printed above the bar (a failure as it happens). */
  note(text: string): void {
    if (this.tty) this.out.write('\r\x1b[K');
    this.out.write(`${text}\n`);
    if (this.tty) this.draw(performance.now());
  }

  end(): void {
    if (this.tty) this.out.write('\r\x1b[K');
    else if (this.done > 0) this.draw(performance.now());
  }

  private draw(now: number): void {
    const elapsed = (now - this.t0) / 1000;
    const rate = elapsed > 0 ? this.done / elapsed : 0;
    const eta = rate > 0 ? ((this.total - this.done) / rate) * 1000 : 0;
    const stats = `${this.done}/${this.total} runs  ${rate.toFixed(1)} runs/s  ${this.failed} failed  ${duration(elapsed * 1000)} elapsed${this.done < this.total ? `, ~${duration(eta)} left` : ''}`;
    if (this.tty) {
      const width = 30;
      const filled = Math.round((this.done / Math.max(1, this.total)) * width);
      this.out.write(`\r\x1b[K[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${stats}`);
    } else {
      this.out.write(`drover sim: ${stats}\n`);
    }
  }
}

// ---- the summary

export interface Totals {
  runs: number;
  failed: number;
  /** Of `failed`, the runs that failed on their app's findings only (whose); the rest are drover's. */
  appFailed: number;
  simulatedMs: number;
  events: number;
  wallMs: number;
  jobs: number;
  scenarios: Record<string, number>;
  injected: Record<string, number>;
  checks: Record<string, number>;
  requests: Record<string, number>;
}

export function totals(results: readonly Result[], wallMs: number, jobs: number): Totals {
  const t: Totals = {
    runs: results.length, failed: 0, appFailed: 0, simulatedMs: 0, events: 0, wallMs, jobs, scenarios: {},
    injected: Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])),
    checks: Object.fromEntries(INVARIANTS.map((k) => [k, 0])),
    requests: {},
  };
  const add = (into: Record<string, number>, from: Record<string, number>) => {
    for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
  };
  for (const r of results) {
    if (r.failure) t.failed++;
    if (r.failure && whose(r.failure) === 'app') t.appFailed++;
    t.simulatedMs += r.simulatedMs;
    t.events += r.events;
    t.scenarios[r.name] = (t.scenarios[r.name] ?? 0) + 1;
    add(t.injected, r.injected);
    add(t.checks, r.checks);
    add(t.requests, r.requests);
  }
  return t;
}

/**
 * The kernel's faults of a batch, from the `os:KIND` and `path:PLACE:CODE`
 * counts a run reports (src/chaos/run.ts): each kind some run turned on,
 * how often it fired, and the error paths that ran for its errno.
 */
export function kernelFaults(t: Pick<Totals, 'injected'>): Array<{ kind: OsFault; fired: number; errno: string | null; paths: Record<string, number> }> {
  const out: Array<{ kind: OsFault; fired: number; errno: string | null; paths: Record<string, number> }> = [];
  for (const kind of OS_FAULTS) {
    const fired = t.injected[`os:${kind}`];
    if (fired === undefined) continue;
    const errno = FAULT_ERRNO[kind];
    const paths: Record<string, number> = {};
    for (const [key, v] of Object.entries(t.injected)) {
      if (!key.startsWith('path:') || errno === null) continue;
      const [, place, code] = key.split(':');
      if (code === errno) paths[place!] = (paths[place!] ?? 0) + v;
    }
    out.push({ kind, fired, errno, paths });
  }
  return out;
}

/** Kinds some run turned on that never fired in the batch (what `--require-faults` fails on). */
export function neverFired(t: Pick<Totals, 'injected'>): OsFault[] {
  return kernelFaults(t).filter((k) => k.fired === 0).map((k) => k.kind);
}

export function summaryTable(t: Totals, extra: readonly [string, string][] = []): string {
  const sum = (o: Record<string, number>) => Object.values(o).reduce((a, b) => a + b, 0);
  const rows: [string, string][] = [];
  const blame = t.appFailed > 0 ? `: ${n(t.failed - t.appFailed)} by drover, ${n(t.appFailed)} by the app's findings` : '';
  rows.push(['runs', `${n(t.runs)} (${n(t.runs - t.failed)} passed, ${n(t.failed)} failed${blame})`]);
  rows.push(['scenarios', Object.keys(t.scenarios).sort().map((k) => `${k} ${n(t.scenarios[k]!)}`).join(', ') || '-']);
  rows.push(['simulated time', t.simulatedMs >= 360_000 ? `${(t.simulatedMs / 3_600_000).toFixed(2)} h (${n(t.simulatedMs / 1000)} s)` : `${n(t.simulatedMs / 1000)} s`]);
  rows.push(['events', n(t.events)]);
  const wall = t.wallMs / 1000;
  rows.push(['wall time', `${duration(t.wallMs)} with ${t.jobs} job${t.jobs === 1 ? '' : 's'}: ${(t.runs / Math.max(wall, 1e-3)).toFixed(2)} runs/s, ${Math.round(t.simulatedMs / Math.max(t.wallMs, 1))}x simulated/wall`]);
  const q = t.requests;
  if (q.sent !== undefined) {
    rows.push(['requests', `${n(q.sent)} sent: ${n(q.ok ?? 0)} ok, ${n(q.shed ?? 0)} shed (503), ${n(q.badGateway ?? 0)} bad gateway, ${n(q.reset ?? 0)} reset, ${n(q.left ?? 0)} left early` + (q.hostile ? `; ${n(q.hostile)} hostile clients` : '')]);
  }
  rows.push(...extra);
  // The driver's faults; the kernel's (os:, path:) have their own rows below.
  const driver = Object.fromEntries(Object.entries(t.injected).filter(([k]) => !k.includes(':')));
  const kinds = Object.entries(driver).filter(([, v]) => v > 0);
  rows.push(['faults injected', n(sum(driver))]);
  for (const [k, v] of kinds) rows.push([`  ${k}`, n(v)]);
  const kernel = kernelFaults(t);
  if (kernel.length > 0) {
    rows.push(['kernel faults', `${n(kernel.reduce((a, k) => a + k.fired, 0))} fired; the error path each targets, and how often it ran`]);
    for (const k of kernel) {
      const ran = Object.entries(k.paths).sort(([a], [b]) => a.localeCompare(b)).map(([p, v]) => `${p} ${n(v)}`).join(', ');
      const path = k.fired === 0 ? 'NEVER FIRED' : k.errno === null ? '(no error: data or time)' : ran === '' ? `${k.errno}: no error path ran` : `${k.errno}: ${ran}`;
      rows.push([`  ${k.kind}`, `${n(k.fired)}  ${path}`]);
    }
  }
  rows.push(['invariant checks', n(sum(t.checks))]);
  for (const [k, v] of Object.entries(t.checks)) rows.push([`  ${k}`, n(v)]);

  const w = Math.max(...rows.map(([k]) => k.length)) + 2;
  // Sub-rows' leading numbers right-aligned in one column (what follows a number, as the kernel faults' paths, after it).
  const head = (v: string) => /^[\d,]*/.exec(v)![0];
  const subw = Math.max(0, ...rows.filter(([k]) => k.startsWith('  ')).map(([, v]) => head(v).length));
  return ['drover sim summary', ...rows.map(([k, v]) => `  ${k.padEnd(w)}${k.startsWith('  ') ? head(v).padStart(subw) + v.slice(head(v).length) : v}`)].join('\n');
}

// ---- the --trace file

interface Proc {
  pid: number;
  ppid: number;
  program: string;
  start: number;
  end: number | null;
  status: string | null;
  orphaned: number | null;
  children: Proc[];
}

/** Spawn, exit and re-parenting, from the kernel's trace lines ("time pid event ..."). */
export function processes(lines: readonly string[]): { roots: Proc[]; all: Proc[]; endMs: number } {
  const byPid = new Map<number, Proc>();
  const all: Proc[] = [];
  let endMs = 0;
  for (const line of lines) {
    const m = /^(\d+) (\d+) (spawn|exit|orphan) (\S+)(?: (\S+))?/.exec(line);
    const t = Number(line.slice(0, line.indexOf(' ')));
    if (Number.isFinite(t)) endMs = Math.max(endMs, t);
    if (!m) continue;
    const at = Number(m[1]);
    const pid = Number(m[2]);
    if (m[3] === 'spawn') {
      const p: Proc = { pid: Number(m[4]), ppid: pid, program: m[5] ?? '?', start: at, end: null, status: null, orphaned: null, children: [] };
      byPid.set(p.pid, p);
      all.push(p);
      byPid.get(pid)?.children.push(p);
    } else if (m[3] === 'exit') {
      const p = byPid.get(pid);
      if (p && p.end === null) {
        p.end = at;
        p.status = m[4]!;
      }
    } else {
      const p = byPid.get(pid);
      if (p && p.orphaned === null) p.orphaned = at;
    }
  }
  return { roots: all.filter((p) => !byPid.has(p.ppid)), all, endMs };
}

/** The process tree: each process with its life, indented under the process that spawned it. */
export function processTree(lines: readonly string[]): string[] {
  const { roots } = processes(lines);
  const out: string[] = [];
  const walk = (p: Proc, depth: number) => {
    const life = `${secs(p.start)} -> ${p.end === null ? 'running at the end' : `${secs(p.end)} ${p.status === '0' ? 'exit 0' : /^\d+$/.test(p.status!) ? `exit ${p.status}` : p.status}`}`;
    const name = `${'  '.repeat(depth)}${p.pid} ${p.program}`;
    out.push(`${name.padEnd(40)} ${life}${p.orphaned !== null ? `  (orphaned at ${secs(p.orphaned)})` : ''}`);
    for (const c of p.children) walk(c, depth + 1);
  };
  for (const r of roots) walk(r, 0);
  return out;
}

/**
 * One row per process across the run's simulated time: `=` alive under the
 * process that spawned it, `~` orphaned, then how it ended: `x` killed by
 * a signal, `|` exited 0, `!` exited non-zero. A `^` row marks the faults.
 */
export function visualTimeline(lines: readonly string[], faults: readonly Fault[], width = 72): string[] {
  const { roots, endMs } = processes(lines);
  const span = Math.max(endMs, 1);
  const col = (t: number) => Math.min(width - 1, Math.floor((t / span) * width));
  const order: [Proc, number][] = [];
  const walk = (p: Proc, d: number) => {
    order.push([p, d]);
    for (const c of p.children) walk(c, d + 1);
  };
  for (const r of roots) walk(r, 0);
  const label = (p: Proc, d: number) => `${' '.repeat(d)}${p.pid} ${p.program}`.slice(0, 30).padEnd(30);
  const out: string[] = [];
  out.push(`${'one column'.padEnd(30)} = ${(span / width / 1000).toFixed(2)} s simulated; 0 s .. ${(span / 1000).toFixed(1)} s`);
  const marks = Array.from({ length: width }, () => ' ');
  for (const f of faults) if (f.at <= endMs) marks[col(f.at)] = '^';
  out.push(`${'faults'.padEnd(30)} ${marks.join('')}`);
  for (const [p, d] of order) {
    const row = Array.from({ length: width }, () => ' ');
    const last = p.end ?? endMs;
    for (let c = col(p.start); c <= col(last); c++) row[c] = p.orphaned !== null && c >= col(p.orphaned) ? '~' : '=';
    if (p.end !== null) row[col(p.end)] = p.status === '0' ? '|' : /^\d+$/.test(p.status!) ? '!' : 'x';
    out.push(`${label(p, d)} ${row.join('').trimEnd()}`);
  }
  return out;
}

/** What a --config/--app run ran, for its trace's header: not a chaos scenario, whose topology and load it never had. */
export interface AppRun {
  readonly seed: bigint | string;
  /** "--config FILE" or "--app FILE". */
  readonly target: string;
  readonly durationMs: number;
  /** The deployment, as drover sim's first line says it. */
  readonly deployment: string;
  readonly load: string;
}

export function traceFile(s: Scenario | AppRun, r: Result, replay: string, timeline: readonly string[]): string {
  const f = r.failure;
  const app = 'target' in s;
  const head = [
    `# drover sim trace: seed ${hex(s.seed)}, ${app ? s.target : `scenario ${s.name}`}, ${s.durationMs / 1000} s of faults and load`,
    `# replay: ${replay}`,
    `# result: ${f === null ? 'pass' : f.kind === 'violation' ? `FAIL ${f.invariant} at ${secs(f.at)}: ${f.message.split('\n')[0]}` : `FAIL ${f.kind}: ${f.message.split('\n')[0]}`}`,
    `# ${n(r.simulatedMs / 1000)} s simulated, ${n(r.events)} events, trace hash ${r.traceHash}`,
    ...(app ? [`# deployment: ${s.deployment}`] : [`# topology: ${JSON.stringify(s.topology)}`]),
    ...(!app && Object.keys(s.osFaults).length > 0 ? [`# kernel faults (rates): ${JSON.stringify(s.osFaults)}`] : []),
    `# load: ${app ? s.load : JSON.stringify(s.load)}`,
    `# fault schedule (${r.faults.length}):`,
    ...r.faults.map((x) => `#   ${describeFault(x)}  (${x.at}:${x.kind}:${x.pick})`),
    '',
    '## Process tree (spawned by; start -> end; orphaned: re-parented to init)',
    ...processTree(timeline),
    '',
    '## Timeline of the processes (= running, ~ orphaned, x killed, | exit 0, ! exit non-zero, ^ a fault)',
    ...visualTimeline(timeline, r.faults),
    '',
    `## Events: the kernel's trace ("ms pid event") merged with the driver's lines ("ms driver ...")`,
  ];
  return `${[...head, ...timeline].join('\n')}\n`;
}

// ---- a user's deployment (drover sim --config/--app)

export const FINDING_TITLE: Record<FindingKind, string> = {
  load: 'your app failed to load',
  crash: 'uncaught exceptions in app code',
  rejection: 'unhandled rejections in app code',
  exit: 'workers ended by process.exit() in app code (drover replaces them; what they held is lost)',
  'drover-crash': 'crashes of drover itself',
  unanswered: 'requests the app never answered (end every response, or set request_timeout)',
  hang: 'app code that never returned (a synchronous loop holds every simulated process: the seed stops there)',
  'stop-timeout': 'companions past their stop_timeout',
  '5xx': 'answers 5xx',
  lost: 'requests lost (no answer)',
  'not-simulated': 'calls drover sim does not simulate (the app got ERR_DROVER_NOT_SIMULATED: the README says what to do)',
};

/** A batch's findings on a user's deployment, summed: answers by status, findings by kind and by place. */
export function appTotals(results: readonly Result[]): { sent: number; statuses: Record<string, number>; counts: Record<string, number>; places: Record<string, number> } {
  const t = { sent: 0, statuses: {} as Record<string, number>, counts: {} as Record<string, number>, places: {} as Record<string, number> };
  const add = (into: Record<string, number>, from: Record<string, number>) => {
    for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
  };
  for (const r of results) {
    if (!r.app) continue;
    t.sent += r.app.sent;
    add(t.statuses, r.app.statuses);
    add(t.counts, r.app.counts);
    add(t.places, r.app.places);
  }
  return t;
}

/**
 * What a user reads after `drover sim --config`: answers by status, then
 * each kind of finding with how many seeds had it, its commonest places and
 * the first one's seed, time and replay command. `replay` makes the command
 * for a seed.
 */
export function appReport(results: readonly Result[], replay: (seed: string) => string): string {
  const out: string[] = [];
  const { sent, statuses } = appTotals(results);
  // Status codes in order, then what is not an answer: never answered by the app, lost.
  const rank = (k: string) => (k === 'unanswered' ? 1e4 : k === 'lost' ? 1e4 + 1 : Number(k));
  const order = Object.keys(statuses).sort((a, b) => rank(a) - rank(b));
  out.push(`requests: ${n(sent)} sent; answers ${order.map((k) => `${k} ×${n(statuses[k]!)}`).join(', ') || 'none'}`);
  for (const kind of Object.keys(FINDING_TITLE) as FindingKind[]) {
    const hit = results.filter((r) => (r.app?.counts[kind] ?? 0) > 0);
    const total = hit.reduce((a, r) => a + r.app!.counts[kind], 0);
    if (total === 0) {
      out.push(`${FINDING_TITLE[kind]}: none`);
      continue;
    }
    out.push(`${FINDING_TITLE[kind]}: ${n(total)} in ${n(hit.length)} of ${n(results.length)} seeds${FAILING.includes(kind) ? ' (each fails its seed)' : ''}`);
    // Where: the same place and text counted once with how often, commonest first.
    const where = new Map<string, number>();
    for (const r of hit) {
      for (const [key, count] of Object.entries(r.app!.places)) {
        const tab = key.indexOf('\t');
        if (key.slice(0, tab) === kind) where.set(key.slice(tab + 1), (where.get(key.slice(tab + 1)) ?? 0) + count);
      }
    }
    for (const [key, count] of [...where].sort((a, b) => b[1] - a[1]).slice(0, 5)) out.push(`  ${clip(key, 200)} ×${n(count)}`);
    const first = hit[0]!;
    const f = first.app!.findings.find((x) => x.kind === kind)!;
    out.push(`  first: seed ${hex(first.seed)}${f.at >= 0 ? ` at ${secs(f.at)} simulated` : ''}, ${f.where}: ${clip(f.text.split('\n', 1)[0]!, 200)}`);
    out.push(`  replay: ${replay(first.seed)}`);
  }
  return out.join('\n');
}
