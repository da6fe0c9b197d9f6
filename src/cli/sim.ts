// drover sim: chaos runs on the simulated kernel (DESIGN.md, "Simulation and
// chaos"; issue 6). Each run is one 64-bit seed: the scenario (topology,
// load, fault schedule) and the kernel's randomness both come from it.
//
// Batches run in job processes (src/cli/sim-job.ts, one per --jobs), fed one
// seed at a time over IPC; a single --seed runs in one job too, recorded
// (for --trace), under the same --timeout; shrinking runs in this process.
// A failure prints its seed, the invariant, the last events, the command
// that replays it, and the fault schedule shrunk by fast-check
// (src/chaos/shrink.ts) with the command that replays that.
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { runScenario } from '../chaos/run.js';
import { describeFault, parseSeed, SCENARIOS, type Fault, type ScenarioName } from '../chaos/scenario.js';
import { parseSchedule, shrinkSchedule, ShrinkUnavailable } from '../chaos/shrink.js';
import { DEFECTS, type Defect } from '../os/hooks.js';
import { duration, failureReport, hex, kernelFaults, neverFired, Progress, replayCommand, summaryTable, totals, traceFile, type AppRun } from './sim-report.js';
import { brokenResult, deploymentOf, ignoreExitSignals, runTask, scenarioOf, stallResult, whose, type Result, type Task } from './sim-run.js';
import { stallIn, type Stall } from './sim-stall.js';
import { targetArgs, type Deployment, type Target } from '../chaos/deployment.js';
import { ConfigError } from '../runtime/config/errors.js';
import { appReport, appTotals } from './sim-report.js';

const MASK64 = (1n << 64n) - 1n;

/**
 * drover sim's exit status: whose fault a failure is. 1 outranks 3: a batch
 * where drover broke is drover's to answer for, whatever the app did.
 */
export const EXIT = {
  /** Every run passed (5xx and lost requests are reported, not failed). */
  pass: 0,
  /** drover broke: an invariant, a crash of drover's own code, a run that crashed or never finished (--timeout), nondeterminism, --require-faults. */
  drover: 1,
  /** Bad options, or a deployment that cannot be simulated. */
  usage: 2,
  /** drover held; the app's findings failed seeds (it failed to load, threw, left requests unanswered, a companion outlived its stop_timeout). */
  app: 3,
} as const;

export class UsageError extends Error {}

export interface SimOptions {
  readonly mode: 'seed' | 'seeds' | 'regressions' | 'determinism';
  readonly seed?: bigint;
  /** --seeds N or --determinism N. */
  readonly count?: number;
  /** The first seed of a --seeds/--determinism batch; absent: a random one, printed. */
  readonly from?: bigint;
  readonly regressions?: string;
  readonly name?: ScenarioName;
  readonly durationMs: number;
  readonly jobs: number;
  readonly trace?: string;
  readonly defects: readonly Defect[];
  readonly faults?: readonly Fault[];
  readonly json: boolean;
  /** --require-faults: fail unless every kernel fault kind turned on in the batch fired at least once. */
  readonly requireFaults: boolean;
  readonly shrink: boolean;
  readonly shrinkRuns: number;
  readonly shrinkSeconds: number;
  readonly timeoutSeconds: number;
  /** --budget: with --seeds, hand out no new seed after this many wall-clock seconds. */
  readonly budgetSeconds?: number;
  readonly help: boolean;
  /** --config FILE or --app FILE: the user's deployment instead of drover's own chaos scenarios. */
  readonly target?: Omit<Target, 'cwd'>;
  /** --duration was given (a deployment's sim.duration is the default otherwise). */
  readonly durationGiven: boolean;
}

/** Words joined into lines of at most `width`, each after `indent` spaces (the first line's indent is the caller's). */
function wrap(words: readonly string[], indent: number, width = 79): string {
  const lines: string[] = [];
  let line = '';
  for (const w of words) {
    if (line !== '' && indent + line.length + 1 + w.length > width) {
      lines.push(line);
      line = w;
    } else line = line === '' ? w : `${line} ${w}`;
  }
  lines.push(line);
  return lines.join(`\n${' '.repeat(indent)}`);
}

export function helpText(): string {
  const col = 23;
  return `Usage: drover sim [options]

Chaos runs of drover on the deterministic simulated kernel. Every run is one
64-bit seed: the scenario (topology, load, fault schedule) and the kernel's
randomness all come from it, so a seed replays exactly.

Your own app (instead of drover's own chaos scenarios):
  --config FILE        run the app, lanes and module companions of this drover
                       config file, with the request mix of its "sim" section
                       (default: GET / at 20 requests/s), under the faults of
                       the mixed scenario; reports an app that fails to
                       load, uncaught exceptions and unhandled rejections
                       of app code, requests it never answered, companions
                       past their stop_timeout (exit 3), 5xx and lost
                       requests
  --app FILE           the same for an app module with drover's defaults

What to run (one of; default --seeds 100):
  --seeds N            N seeds: --from, --from+1, ... (no --from: a random
                       base, printed)
  --from SEED          the first seed of --seeds or --determinism
  --budget SECONDS     with --seeds: start no new seed after SECONDS of wall
                       time (it says how many ran, and how to run them again)
  --seed SEED          one run (decimal or 0x hex, 64-bit), in this process
  --regressions FILE   the seeds listed in FILE, one a line:
                       SEED [scenario=NAME] [duration=S] [# what it found]
  --determinism N      N seeds from --from, each run twice (in any job); their
                       trace hashes must be identical

Each run:
  --scenario NAME      ${wrap(`${SCENARIOS.join(', ')} (default: the seed picks; a named scenario draws a different run from the same seed)`.split(' '), col)}
  --duration SECONDS   simulated seconds of load and faults (default 30); the
                       system then gets up to 40 s to settle and is stopped
  --faults LIST        with --seed: replace the fault schedule with LIST,
                       AT:KIND:PICK,... (ms, kind, pick) or none, as a
                       failure's shrunk replay command prints it

Running:
  --jobs N             job processes (default: the CPUs, ${availableParallelism()} here)
  --timeout SECONDS    wall-clock limit of one run before its job is killed
                       (default 300); a job held by code that never returns
                       for half of it (2 to 10 s) is reported where it is held
  --trace FILE         with --seed: write the run's whole timeline to FILE,
                       with its process tree and a visual timeline
  --no-shrink          do not shrink a failure's fault schedule
  --shrink-runs N      at most N runs to shrink a failure (default 200)
  --shrink-time S      at most S wall-clock seconds to shrink a failure
                       (default 120)
  --json               the summary (and failures) as one JSON object on stdout
  --require-faults     fail (exit 1) unless the batch ran the kernel's own
                       faults (--scenario faults) and every kind turned on
                       fired at least once
  -h, --help           this text

Testing the checkers (not for finding real bugs):
  --defect NAME[,NAME] ${wrap(`plant known bugs (src/os/hooks.ts): ${DEFECTS.join(', ')}`.split(' '), col)}

Exit status:
  0  every run passed (5xx answers, lost requests and calls drover sim
     refused are reported only)
  1  drover broke: an invariant, a crash of drover itself, a run that
     crashed or never finished (--timeout; a handler that never returns
     does that too), nondeterminism, --require-faults. A bug in drover:
     the replay command reproduces it
  2  bad options, or a deployment that cannot be simulated
  3  (--config/--app) drover held, and your app's findings failed seeds:
     it failed to load, threw, left requests unanswered, or a companion
     outlived its stop_timeout
`;
}

function intArg(flag: string, v: string, min: number, max: number): number {
  if (!/^\d+$/.test(v)) throw new UsageError(`${flag} takes a whole number, not ${JSON.stringify(v)} (e.g. ${flag} ${Math.max(min, 1)})`);
  const x = Number(v);
  if (x < min || x > max) throw new UsageError(`${flag} ${v} is out of range: ${min}..${max}`);
  return x;
}

function secondsArg(flag: string, v: string, min: number, max: number): number {
  if (!/^\d+(\.\d+)?$/.test(v)) throw new UsageError(`${flag} takes seconds, a number like 30 or 2.5, not ${JSON.stringify(v)}`);
  const x = Number(v);
  if (x < min || x > max) throw new UsageError(`${flag} ${v} is out of range: ${min}..${max} seconds`);
  return x;
}

function seedArg(flag: string, v: string): bigint {
  try {
    return parseSeed(v);
  } catch (e) {
    throw new UsageError(`${flag}: ${(e as Error).message}`);
  }
}

export function parseSimArgs(argv: readonly string[]): SimOptions {
  const o: {
    -readonly [K in keyof SimOptions]?: SimOptions[K];
  } = { durationMs: 30_000, durationGiven: false, jobs: availableParallelism(), defects: [], json: false, requireFaults: false, shrink: true, shrinkRuns: 200, shrinkSeconds: 120, timeoutSeconds: 300, help: false };
  const modes: string[] = [];
  const given = new Set<string>();
  const flags = new Set([
    '--seeds', '--from', '--seed', '--regressions', '--determinism', '--scenario', '--duration', '--faults', '--jobs', '--timeout', '--trace',
    '--shrink-runs', '--shrink-time', '--defect', '--budget', '--config', '--app',
  ]);
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i]!;
    let v: string | undefined;
    const eq = a.indexOf('=');
    if (a.startsWith('--') && eq > 0) {
      v = a.slice(eq + 1);
      a = a.slice(0, eq);
    }
    if (a === '-h' || a === '--help') {
      o.help = true;
      continue;
    }
    if (a === '--json' || a === '--no-shrink' || a === '--require-faults') {
      if (v !== undefined) throw new UsageError(`${a} takes no value`);
      if (a === '--json') o.json = true;
      else if (a === '--require-faults') o.requireFaults = true;
      else o.shrink = false;
      continue;
    }
    if (!flags.has(a)) {
      throw new UsageError(a.startsWith('-') ? `unknown option ${a} (see drover sim --help)` : `unexpected argument ${JSON.stringify(a)}: drover sim takes only options (see drover sim --help)`);
    }
    if (v === undefined) {
      v = argv[++i];
      if (v === undefined) throw new UsageError(`${a} needs a value (see drover sim --help)`);
    }
    if (given.has(a)) throw new UsageError(`${a} is given twice`);
    given.add(a);
    switch (a) {
      case '--seeds':
        modes.push(a);
        o.mode = 'seeds';
        o.count = intArg(a, v, 1, 100_000_000);
        break;
      case '--determinism':
        modes.push(a);
        o.mode = 'determinism';
        o.count = intArg(a, v, 1, 100_000_000);
        break;
      case '--seed':
        modes.push(a);
        o.mode = 'seed';
        o.seed = seedArg(a, v);
        break;
      case '--regressions':
        modes.push(a);
        o.mode = 'regressions';
        o.regressions = v;
        break;
      case '--from':
        o.from = seedArg(a, v);
        break;
      case '--scenario':
        if (!(SCENARIOS as readonly string[]).includes(v)) throw new UsageError(`--scenario ${v}: no such scenario (one of ${SCENARIOS.join(', ')})`);
        o.name = v as ScenarioName;
        break;
      case '--config':
      case '--app':
        if (o.target !== undefined) throw new UsageError('--config and --app cannot be combined: the config names its app');
        o.target = a === '--config' ? { config: v } : { app: v };
        break;
      case '--duration':
        o.durationGiven = true;
        o.durationMs = Math.round(secondsArg(a, v, 1, 86_400) * 1000);
        break;
      case '--faults':
        try {
          o.faults = parseSchedule(v);
        } catch (e) {
          throw new UsageError(`--faults: ${(e as Error).message}`);
        }
        break;
      case '--jobs':
        o.jobs = intArg(a, v, 1, 256);
        break;
      case '--timeout':
        o.timeoutSeconds = secondsArg(a, v, 1, 86_400);
        break;
      case '--budget':
        o.budgetSeconds = secondsArg(a, v, 1, 7 * 86_400);
        break;
      case '--trace':
        o.trace = v;
        break;
      case '--shrink-runs':
        o.shrinkRuns = intArg(a, v, 1, 100_000);
        break;
      case '--shrink-time':
        o.shrinkSeconds = secondsArg(a, v, 1, 86_400);
        break;
      case '--defect': {
        const ds = v.split(',').map((d) => d.trim()).filter((d) => d !== '');
        for (const d of ds) if (!(DEFECTS as readonly string[]).includes(d)) throw new UsageError(`--defect ${d}: no such planted defect (one of ${DEFECTS.join(', ')})`);
        o.defects = ds as Defect[];
        break;
      }
    }
  }
  if (modes.length > 1) throw new UsageError(`${modes.join(' and ')} cannot be combined: give one of --seed, --seeds, --regressions, --determinism`);
  o.mode ??= 'seeds';
  if (o.mode === 'seeds' && o.count === undefined) o.count = 100;
  if (o.from !== undefined && o.mode !== 'seeds' && o.mode !== 'determinism') throw new UsageError('--from goes with --seeds or --determinism (for one seed, use --seed)');
  if (o.budgetSeconds !== undefined && o.mode !== 'seeds') throw new UsageError('--budget goes with --seeds (it caps how many of them run)');
  if (o.trace !== undefined && o.mode !== 'seed') throw new UsageError('--trace writes one run: give it with --seed SEED');
  if (o.target !== undefined) {
    const flag = o.target.config !== undefined ? '--config' : '--app';
    if (o.mode === 'regressions') throw new UsageError(`--regressions replays drover's own scenarios; with ${flag}, replay a seed with --seed`);
    if (o.name !== undefined) throw new UsageError(`--scenario picks one of drover's own scenarios; with ${flag} the faults are the mixed scenario's that apply to your deployment`);
    if (o.defects!.length > 0) throw new UsageError(`--defect plants bugs in drover's own chaos runs, not with ${flag}`);
    if (o.requireFaults) throw new UsageError(`--require-faults goes with --scenario faults, not with ${flag}`);
  }
  if (o.faults !== undefined && o.mode !== 'seed') throw new UsageError('--faults replaces one run\'s schedule: give it with --seed SEED');
  return o as SimOptions;
}

// ---- the tasks

interface Regression {
  readonly seed: bigint;
  readonly name?: ScenarioName;
  readonly durationMs?: number;
  readonly note: string;
}

export function parseRegressions(text: string, file: string): Regression[] {
  const out: Regression[] = [];
  text.split('\n').forEach((raw, i) => {
    const hash = raw.indexOf('#');
    const note = hash >= 0 ? raw.slice(hash + 1).trim() : '';
    const words = (hash >= 0 ? raw.slice(0, hash) : raw).trim().split(/\s+/).filter((w) => w !== '');
    if (words.length === 0) return;
    const where = `${file}:${i + 1}`;
    let seed: bigint;
    try {
      seed = parseSeed(words[0]!);
    } catch (e) {
      throw new UsageError(`${where}: ${(e as Error).message}`);
    }
    const r: { -readonly [K in keyof Regression]: Regression[K] } = { seed, note };
    for (const w of words.slice(1)) {
      const m = /^(scenario|duration)=(.+)$/.exec(w);
      if (!m) throw new UsageError(`${where}: ${JSON.stringify(w)} is not scenario=NAME or duration=SECONDS`);
      if (m[1] === 'scenario') {
        if (!(SCENARIOS as readonly string[]).includes(m[2]!)) throw new UsageError(`${where}: no such scenario ${m[2]} (one of ${SCENARIOS.join(', ')})`);
        r.name = m[2] as ScenarioName;
      } else {
        if (!/^\d+(\.\d+)?$/.test(m[2]!)) throw new UsageError(`${where}: duration=${m[2]} is not seconds`);
        r.durationMs = Math.round(Number(m[2]) * 1000);
      }
    }
    out.push(r);
  });
  return out;
}

const seedAt = (base: bigint, i: number) => ((base + BigInt(i)) & MASK64).toString();

/**
 * A batch's tasks, made one at a time as they are handed out: --seeds
 * 100000000 built them all first and ran out of heap (4.5 GB) before any ran.
 */
export interface Tasks {
  readonly length: number;
  at(i: number): Task;
}

export function batchTasks(o: SimOptions, base: bigint, regressions: readonly Regression[], target?: Target): Tasks {
  const task = (id: number, seed: string, name?: ScenarioName, durationMs?: number): Task => ({
    id, seed, durationMs: durationMs ?? o.durationMs, defects: o.defects, ...(name ? { name } : {}), ...(target ? { target } : {}),
  });
  switch (o.mode) {
    case 'regressions':
      return { length: regressions.length, at: (i) => task(i, regressions[i]!.seed.toString(), regressions[i]!.name ?? o.name, regressions[i]!.durationMs) };
    case 'determinism': {
      // Each seed twice, the copies far apart in the queue: usually in another job, after other runs.
      const n = o.count!;
      return { length: 2 * n, at: (i) => task(i, seedAt(base, i % n), o.name) };
    }
    default:
      return { length: o.count!, at: (i) => task(i, seedAt(base, i), o.name) };
  }
}

/** The command that runs again the `ran` seeds a budget let run; none when none ran (--seeds 0 is refused). */
export function againCommand(o: Pick<SimOptions, 'name' | 'durationMs' | 'defects'>, ran: number, base: bigint, target?: Target): string | null {
  if (ran === 0) return null;
  return `npx drover sim ${target ? `${targetArgs(target)} ` : ''}--seeds ${ran} --from ${hex(base)}${o.name ? ` --scenario ${o.name}` : ''} --duration ${o.durationMs / 1000}${o.defects.length ? ` --defect ${o.defects.join(',')}` : ''}`;
}

/** A run that has no trace to show or compare: it crashed, hung, or app code held its job (stallResult). */
function unfinished(r: Result): boolean {
  const f = r.failure;
  return f?.kind === 'crash' || f?.kind === 'hung' || (f?.kind === 'app' && f.finding === 'hang');
}

// ---- job processes

const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
const JOB = fileURLToPath(new URL(`./sim-job${ext}`, import.meta.url));

function jobExecArgv(): string[] {
  if (ext !== '.ts') return [];
  // Under a checkout the sources are TypeScript: the job needs tsx's loader, named by absolute URL.
  return ['--import', import.meta.resolve('tsx')];
}

class Pool {
  private next = 0;
  /** Tasks that will be run: all of them, or those handed out when the budget ran out. */
  private limit: number;
  private readonly results: Result[] = [];
  private readonly live = new Set<ChildProcess>();
  private startFailures = 0;
  private resolve!: () => void;
  private reject!: (e: Error) => void;
  private watchdog: NodeJS.Timeout | undefined;

  constructor(
    private readonly tasks: Tasks,
    private readonly jobs: number,
    private readonly timeoutMs: number,
    private readonly onResult: (r: Result) => void,
    /** Asked before each task is handed out: true hands out no more (--budget). */
    private readonly spent: () => boolean = () => false,
  ) {
    this.limit = tasks.length;
  }

  /** How many tasks were handed out (all, unless the budget ran out). */
  get ran(): number {
    return this.limit;
  }

  run(): Promise<Result[]> {
    return new Promise<void>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
      if (this.tasks.length === 0) return resolve();
      for (let i = 0; i < Math.min(this.jobs, this.tasks.length); i++) this.start();
      this.watchdog = setInterval(() => this.watch(), 1000);
    }).then(
      () => {
        this.finish();
        return this.results.sort((a, b) => a.id - b.id);
      },
      (e: Error) => {
        this.finish(true);
        throw e;
      },
    );
  }

  private finish(failed = false): void {
    clearInterval(this.watchdog);
    // Every job has its 'stop' or is idle: closing the channel ends it (sim-job.ts exits on disconnect).
    for (const c of this.live) {
      if (failed || !c.connected) c.kill('SIGKILL');
      else c.disconnect();
    }
  }

  private readonly state = new Map<ChildProcess, { task: Task | null; since: number; ready: boolean; stderr: string; killed: boolean; stall: Stall | null }>();

  private start(): void {
    // A job held this long by code that never returns says where (sim-stall.ts), well before --timeout.
    const stallMs = Math.max(2000, Math.min(10_000, this.timeoutMs / 2));
    const child = fork(JOB, [String(stallMs)], { execArgv: jobExecArgv(), stdio: ['ignore', 'inherit', 'pipe', 'ipc'], serialization: 'json' });
    const st = { task: null as Task | null, since: 0, ready: false, stderr: '', killed: false, stall: null as Stall | null };
    this.live.add(child);
    this.state.set(child, st);
    // A failed fork or a send on a channel that just closed: its 'exit' says what happened to the task.
    child.on('error', () => {});
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => {
      st.stderr = (st.stderr + d).slice(-4000);
      if (st.stall !== null || st.task === null || (st.stall = stallIn(st.stderr)) === null) return;
      st.killed = true;
      child.kill('SIGKILL');
    });
    child.on('message', (msg: { type: string; result?: Result; id?: number; message?: string }) => {
      if (msg.type === 'ready') {
        st.ready = true;
        this.feed(child);
      } else if (msg.type === 'result' && st.task) {
        st.task = null;
        this.record(msg.result!);
        this.feed(child);
      } else if (msg.type === 'crash' && st.task) {
        const t = st.task;
        st.task = null;
        this.record(brokenResult(t, 'crash', msg.message ?? 'the job process failed', performance.now() - st.since));
      }
    });
    child.on('exit', (code, signal) => {
      this.live.delete(child);
      this.state.delete(child);
      if (st.task && st.stall !== null) {
        this.record(stallResult(st.task, st.stall, performance.now() - st.since));
        st.task = null;
      } else if (st.task) {
        const why = st.killed ? `no result after ${this.timeoutMs / 1000} s of wall time; its job process was killed` : `its job process exited (${signal ?? `code ${code}`})`;
        this.record(brokenResult(st.task, st.killed ? 'hung' : 'crash', `${why}${st.stderr ? `\n${st.stderr.trimEnd()}` : ''}`, performance.now() - st.since));
        st.task = null;
      }
      if (!st.ready && !st.killed) {
        if (++this.startFailures >= 3) {
          return this.reject(new Error(`drover sim: a job process could not start (${signal ?? `exit code ${code}`}):\n${st.stderr.trimEnd()}`));
        }
      }
      if (this.results.length < this.limit && this.next < this.limit) this.start();
      else if (this.results.length >= this.limit) this.resolve();
    });
  }

  private feed(child: ChildProcess): void {
    const st = this.state.get(child)!;
    if (this.next < this.limit && this.spent()) {
      this.limit = this.next;
      if (this.results.length >= this.limit) this.resolve();
    }
    if (this.next >= this.limit) {
      child.send({ type: 'stop' });
      return;
    }
    st.task = this.tasks.at(this.next++);
    st.since = performance.now();
    child.send({ type: 'run', task: st.task });
  }

  private record(r: Result): void {
    this.results.push(r);
    this.onResult(r);
    if (this.results.length >= this.limit) this.resolve();
  }

  private watch(): void {
    const now = performance.now();
    for (const [child, st] of this.state) {
      if (st.task && !st.killed && now - st.since > this.timeoutMs) {
        st.killed = true;
        child.kill('SIGKILL');
      }
    }
  }
}

/** One task in one job process, with the pool's wall-clock watchdog. */
async function runOne(task: Task, timeoutMs: number): Promise<Result> {
  const [r] = await new Pool({ length: 1, at: () => task }, 1, timeoutMs, () => {}).run();
  return r!;
}

// ---- shrinking

interface Shrunk {
  readonly faults: readonly Fault[];
  readonly runs: number;
  readonly cut: boolean;
  readonly wallMs: number;
}

async function shrinkFailure(task: Task, r: Result, o: SimOptions, err: NodeJS.WriteStream): Promise<Shrunk | string> {
  const f0 = r.failure;
  if (f0?.kind !== 'violation' && f0?.kind !== 'app') return 'only an invariant violation or a finding in app code is shrunk';
  // The same failure: the same invariant, or the same kind of finding.
  const same = (f: Result['failure']) => f !== null && f.kind === f0.kind && (f.kind === 'violation' ? f.invariant === (f0 as { invariant: string }).invariant : f.kind === 'app' && f.finding === (f0 as { finding: string }).finding);
  const s = task.target === undefined ? scenarioOf(task) : null;
  const original = task.faults ?? r.faults;
  if (original.length === 0) return 'the schedule has no faults to remove';
  const t0 = performance.now();
  const end = t0 + o.shrinkSeconds * 1000;
  const tty = err.isTTY === true;
  err.write(`shrinking the fault schedule of seed ${hex(task.seed)} (${original.length} faults) with fast-check: at most ${o.shrinkRuns} runs, ${o.shrinkSeconds} s\n`);
  let best = original.length;
  try {
    const out = await shrinkSchedule(original, {
      fails: async (sub) => {
        if (s === null) return same((await runTask({ ...task, faults: sub })).failure);
        const rr = await runScenario(s, { defects: task.defects, faults: sub });
        return rr.violation?.invariant === (f0 as { invariant: string }).invariant;
      },
      maxRuns: o.shrinkRuns,
      stop: () => performance.now() > end,
      onRun: (sub, failed, runs) => {
        if (failed) best = Math.min(best, sub.length);
        const line = `  shrink run ${runs}: ${sub.length} fault(s) ${failed ? 'still fail' : 'pass'}; shortest failing so far: ${best}`;
        if (tty) err.write(`\r\x1b[K${line}`);
        else if (failed) err.write(`${line}\n`);
      },
    });
    if (tty) err.write('\r\x1b[K');
    return { faults: out.schedule, runs: out.runs, cut: out.cut, wallMs: performance.now() - t0 };
  } catch (e) {
    if (tty) err.write('\r\x1b[K');
    if (e instanceof ShrinkUnavailable) return e.message;
    throw e;
  }
}

function shrunkReport(task: Task, r: Result, s: Shrunk, invariant: string): string {
  const out: string[] = [];
  const from = task.faults ?? r.faults;
  out.push(`SHRUNK seed ${hex(task.seed)}: ${s.faults.length} of ${from.length} faults still break ${invariant} (${s.runs} runs, ${duration(s.wallMs)}${s.cut ? '; the shrink budget ran out first' : ''})`);
  if (s.faults.length === 0) out.push('  it fails with no faults at all');
  for (const f of s.faults) out.push(`  ${describeFault(f)}`);
  out.push(`  replay: ${replayCommand({ ...replayOf(task), faults: s.faults })}`);
  return out.join('\n');
}

function replayOf(t: Task) {
  return { seed: t.seed, name: t.name, durationMs: t.durationMs, defects: t.defects, faults: t.faults, target: t.target ? targetArgs(t.target) : undefined };
}

// ---- main

interface Out {
  readonly out: NodeJS.WriteStream;
  readonly err: NodeJS.WriteStream;
}

export async function main(argv: readonly string[]): Promise<never> {
  let code: number;
  try {
    code = await sim(argv, { out: process.stdout, err: process.stderr });
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`drover sim: ${e.message}\n`);
      code = EXIT.usage;
    } else {
      process.stderr.write(`drover sim: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      code = 1;
    }
  }
  process.exit(code);
}

export async function sim(argv: readonly string[], io: Out): Promise<number> {
  const o = parseSimArgs(argv);
  if (o.help) {
    io.out.write(helpText());
    return 0;
  }
  const regressions = o.mode === 'regressions' ? parseRegressions(readRegressions(o.regressions!), o.regressions!) : [];
  let target: Target | undefined;
  if (o.target !== undefined) {
    target = { ...o.target, cwd: process.cwd() };
    let d;
    try {
      d = await deploymentOf(target);
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      throw new UsageError(`${targetArgs(target)}: the deployment cannot be simulated:\n  ${e.problems.join('\n  ')}`);
    }
    if (!o.durationGiven && d.mix.durationMs !== null) (o as { durationMs: number }).durationMs = d.mix.durationMs;
    const text = o.json ? io.err : io.out;
    text.write(`drover sim: ${targetArgs(target)}: ${deploymentLine(d)}; ${d.mix.requests.length} request kind(s) at ${d.mix.rate}/s\n`);
    for (const line of d.notes) text.write(`drover sim: note: ${line}\n`);
  }
  // Human text goes to stdout, unless stdout carries the JSON.
  const text = o.json ? io.err : io.out;
  const report: Record<string, unknown> = {};
  let failures: { task: Task; result: Result }[] = [];
  let results: Result[];
  let extra: [string, string][] = [];
  const t0 = performance.now();
  let jobs = o.jobs;
  let nondeterministic = false;

  // A simulated process the kernel killed may still throw ExitSignal on the host: ignored.
  // What runs in this process is shrinking (runs of seeds are in job processes).
  let current = null as Task | null;
  ignoreExitSignals((e) => {
    io.err.write(`drover sim: the run of seed ${current ? hex(current.seed) : '?'} crashed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    if (current) io.err.write(`replay: ${replayCommand(replayOf(current))}\n`);
    process.exit(1);
  });

  if (o.mode === 'seed') {
    jobs = 1;
    const task: Task = {
      id: 0, seed: o.seed!.toString(), durationMs: o.durationMs, defects: o.defects, ...(o.name ? { name: o.name } : {}), ...(o.faults ? { faults: o.faults } : {}),
      ...(target ? { target } : {}),
    };
    // In a job process, like a batch's seeds: app code that never returns (a
    // loop in a handler) holds its event loop, and only a watchdog outside it
    // can end the run (--timeout).
    const r = await runOne({ ...task, record: true }, o.timeoutSeconds * 1000);
    results = [r];
    const replay = replayCommand(replayOf(task));
    const outcome = r.failure?.kind === 'hung' ? `hung: ${r.failure.message.startsWith('drover') ? r.failure.message.split('\n', 1)[0] : `no result after ${o.timeoutSeconds} s of wall time (--timeout)`}`
      : r.failure?.kind === 'app' && r.failure.finding === 'hang' ? `your app's ${r.failure.message.split('\n', 1)[0]}`
      : r.failure?.kind === 'crash' ? 'CRASH' : `${r.failure ? (whose(r.failure) === 'app' ? "your app's findings" : 'FAIL') : 'pass'}, trace hash ${r.traceHash}`;
    text.write(`drover sim: seed ${hex(task.seed)} (${r.name}, ${r.durationMs / 1000} s${task.faults ? `, ${task.faults.length} faults given by --faults` : ''}${o.defects.length ? `, planted: ${o.defects.join(', ')}` : ''}): ${outcome}\n`);
    const finished = !unfinished(r);
    if (o.trace !== undefined && !finished) text.write(`drover sim: no trace written to ${o.trace}: the run never finished\n`);
    else if (o.trace !== undefined) {
      writeFileSync(o.trace, traceFile(target ? await appRun(task, target) : scenarioOf(task), r, replay, r.timeline));
      text.write(`drover sim: trace written to ${o.trace} (${r.timeline.length} lines)\n`);
    }
    if (r.failure) failures = [{ task, result: r }];
  } else {
    const base = o.from ?? BigInt(`0x${randomBytes(8).toString('hex')}`);
    const tasks = batchTasks(o, base, regressions, target);
    let label: string;
    if (o.mode === 'regressions') {
      label = `${tasks.length} regression seeds from ${o.regressions}`;
      text.write(`drover sim: ${label}\n`);
    } else {
      const count = o.count!;
      label = `${count} seeds ${hex(base)} .. ${hex(BigInt(seedAt(base, count - 1)))}${o.mode === 'determinism' ? ', each run twice' : ''}`;
      report.from = hex(base);
      text.write(`drover sim: ${label} (this batch again: npx drover sim ${target ? `${targetArgs(target)} ` : ''}${o.mode === 'determinism' ? '--determinism' : '--seeds'} ${count} --from ${hex(base)}${o.name ? ` --scenario ${o.name}` : ''} --duration ${o.durationMs / 1000}${o.defects.length ? ` --defect ${o.defects.join(',')}` : ''})\n`);
    }
    jobs = Math.min(o.jobs, tasks.length);
    const progress = new Progress(tasks.length, io.err);
    const budgetEnd = o.budgetSeconds === undefined ? Infinity : t0 + o.budgetSeconds * 1000;
    const pool = new Pool(tasks, jobs, o.timeoutSeconds * 1000, (r) => {
      progress.tick(r.failure !== null);
      if (r.failure) {
        const f = r.failure;
        progress.note(whose(f) === 'app'
          ? `drover sim: APP seed ${hex(r.seed)} (${r.name}): your app: ${(f as { finding: string }).finding}`
          : `drover sim: FAIL seed ${hex(r.seed)} (${r.name}): ${f.kind === 'violation' ? f.invariant : f.kind === 'app' ? f.finding : f.kind}`);
      }
    }, () => performance.now() > budgetEnd);
    results = await pool.run();
    progress.end();
    if (pool.ran < tasks.length) {
      const again = againCommand(o, pool.ran, base, target);
      text.write(`drover sim: the ${o.budgetSeconds} s budget ran out: ${pool.ran} of ${tasks.length} seeds ran${again ? ` (those again: ${again})` : ''}\n`);
      extra.push(['budget', `${pool.ran} of ${tasks.length} seeds in ${o.budgetSeconds} s`]);
      report.budget = { ran: pool.ran, of: tasks.length, ...(again ? { again } : {}) };
    }
    failures = results.filter((r) => r.failure).map((r) => ({ task: tasks.at(r.id), result: r }));
    if (o.mode === 'determinism') {
      const n = o.count!;
      const differ: string[] = [];
      for (let i = 0; i < n; i++) {
        const a = results[i]!;
        const b = results[i + n]!;
        if (a.traceHash !== b.traceHash || unfinished(a) || unfinished(b)) {
          differ.push(`  seed ${hex(a.seed)}: trace hash ${a.traceHash || '(none)'} then ${b.traceHash || '(none)'} (${a.events} and ${b.events} events)`);
        }
      }
      extra = [['determinism', `${n - differ.length} of ${n} seeds ran twice with identical trace hashes`]];
      report.determinism = { seeds: n, identical: n - differ.length, differ };
      if (differ.length > 0) {
        text.write(`NONDETERMINISTIC: ${differ.length} of ${n} seeds gave different traces on their two runs:\n${differ.join('\n')}\n`);
        const first = results[results.findIndex((r, i) => i < n && (r.traceHash !== results[i + n]!.traceHash))] ?? null;
        if (first) text.write(await firstDifference(tasks.at(first.id)));
      }
      // A run that fails does so on both copies: report each seed once.
      failures = failures.filter((f) => f.task.id < n || !failures.some((g) => g.task.id === f.task.id - n));
      nondeterministic = differ.length > 0;
    }
  }

  const wallMs = performance.now() - t0;
  // Failures, drover's first, then the app's, each under its heading: the first few in full, the rest one line each.
  const droverFailures = failures.filter((f) => whose(f.result.failure!) === 'drover');
  const appFailures = failures.filter((f) => whose(f.result.failure!) === 'app');
  const runs = o.mode === 'determinism' ? o.count! : results.length;
  const groups = [
    { list: droverFailures, heading: `== drover broke in ${droverFailures.length} of ${runs} seed(s): a bug in drover, not in your app; the replay command reproduces it ==` },
    { list: appFailures, heading: `== your app's findings failed ${appFailures.length} of ${runs} seed(s): drover's invariants held there; the replay command reproduces each ==` },
  ];
  for (const { list, heading } of groups) {
    if (list.length === 0) continue;
    if (target !== undefined) text.write(`\n${heading}\n`);
    const full = 5;
    for (const [i, { task, result }] of list.entries()) {
      const replay = replayCommand(replayOf(task));
      const f = result.failure!;
      if (i < full) text.write(`\n${failureReport(o.mode === 'seed' ? result : await recorded(task, result), replay)}\n`);
      else text.write(`${whose(f) === 'app' ? 'APP' : 'FAIL'} seed ${hex(result.seed)} (${result.name}): ${f.kind === 'violation' ? f.invariant : f.kind === 'app' ? f.finding : f.kind}; replay: ${replay}\n`);
    }
  }
  // The first violation shrunk (drover's before the app's).
  const shrinkable = failures.find((f) => f.result.failure?.kind === 'violation') ?? failures.find((f) => f.result.failure?.kind === 'app');
  let shrunk: Shrunk | string | null = null;
  if (shrinkable && o.shrink) {
    text.write('\n');
    current = shrinkable.task;
    shrunk = await shrinkFailure(shrinkable.task, shrinkable.result, o, io.err);
    current = null;
    if (typeof shrunk === 'string') text.write(`drover sim: not shrunk: ${shrunk}\n`);
    else {
      const f = shrinkable.result.failure!;
      text.write(`${shrunkReport(shrinkable.task, shrinkable.result, shrunk, f.kind === 'violation' ? f.invariant : f.kind === 'app' ? f.finding : f.kind)}\n`);
    }
  }

  const t = totals(results, wallMs, jobs);
  // The kernel's fault kinds that never fired: a batch that did not exercise them says nothing about them.
  const unfired = neverFired(t);
  const faultless = o.requireFaults && kernelFaults(t).length === 0;
  if (o.requireFaults && (unfired.length > 0 || faultless)) {
    text.write(faultless
      ? 'drover sim: --require-faults: no run of this batch turned on any of the kernel\'s faults (run --scenario faults)\n'
      : `drover sim: --require-faults: kernel fault kind(s) turned on but never fired in this batch: ${unfired.join(', ')}\n`);
  }
  const droverBroke = droverFailures.length > 0 || nondeterministic || (o.requireFaults && (unfired.length > 0 || faultless));
  const code = droverBroke ? EXIT.drover : appFailures.length > 0 ? EXIT.app : EXIT.pass;
  if (o.json) {
    io.out.write(`${JSON.stringify({
      ...report, ...t, passed: t.runs - t.failed, exit: code, kernelFaults: kernelFaults(t), neverFired: unfired,
      ...(target !== undefined ? { app: appTotals(results) } : {}),
      failures: failures.map(({ task, result }) => ({
        seed: hex(result.seed), scenario: result.name, durationMs: result.durationMs, failure: result.failure, faults: result.faults,
        replay: replayCommand(replayOf(task)),
        ...(shrinkable?.task === task && shrunk && typeof shrunk !== 'string'
          ? { shrunk: { faults: shrunk.faults, runs: shrunk.runs, replay: replayCommand({ ...replayOf(task), faults: shrunk.faults }) } }
          : {}),
      })),
    })}\n`);
  } else {
    text.write(`\n${summaryTable(t, extra)}\n`);
  }
  if (target !== undefined) {
    const report = appReport(results, (seed) => replayCommand({ seed, durationMs: o.durationMs, defects: [], target: targetArgs(target) }));
    text.write(`\ndrover sim: what your app did\n${report.split('\n').map((l) => `  ${l}`).join('\n')}\n`);
  }
  if (target !== undefined || code !== EXIT.pass) {
    const verdict = code === EXIT.drover
      ? `drover broke${droverFailures.length > 0 ? ` in ${droverFailures.length} of ${runs} seed(s)` : ''}: a bug in drover (see above for the replay command)${appFailures.length > 0 ? `; your app's findings failed ${appFailures.length} more` : ''}`
      : code === EXIT.app ? `drover's invariants held in all ${runs} seed(s); your app's findings failed ${appFailures.length} of them`
      : `every seed passed${target !== undefined ? ': drover\'s invariants held, and your app had no finding that fails a seed' : ''}`;
    text.write(`\ndrover sim: exit ${code}: ${verdict}\n`);
  }
  return code;
}

/** A deployment as drover sim says it: the app, its workers and lanes, its companions. */
function deploymentLine(d: Deployment): string {
  return `app ${d.resolved.app}, ${d.resolved.workers} worker(s)${d.resolved.lanes ? `, lanes with ${d.resolved.slow_workers} slow worker(s)` : ''}, ${d.companions.size} companion(s)`;
}

/** What a --config/--app seed ran, for its --trace header. */
async function appRun(task: Task, target: Target): Promise<AppRun> {
  const d = await deploymentOf(target);
  const total = d.mix.requests.reduce((a, r) => a + r.weight, 0);
  const kinds = d.mix.requests.map((r) => `${r.method} ${r.path} ×${Math.round((r.weight / total) * 100)}%`).join(', ');
  return { seed: task.seed, target: targetArgs(target), durationMs: task.durationMs, deployment: deploymentLine(d), load: `${d.mix.rate} requests/s, open loop, drawn by weight: ${kinds}` };
}

function readRegressions(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`--regressions ${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
}

/**
 * A failure found in a job, run again here with its whole timeline recorded
 * (a run is its seed: the same trace), so its report can show the process
 * events that led to it, not only the last few lines a job keeps.
 */
async function recorded(task: Task, r: Result): Promise<Result> {
  if (r.failure?.kind !== 'violation') return r;
  const again = await runTask({ ...task, record: true });
  if (again.traceHash === r.traceHash) return again;
  return { ...r, logTail: [...r.logTail, `(run again in the parent process, this seed gave trace hash ${again.traceHash}, not ${r.traceHash}: not deterministic?)`] };
}

/** Two runs of one seed in this process, recorded, and the first line where they part. */
async function firstDifference(task: Task): Promise<string> {
  const a = await runTask({ ...task, record: true });
  const b = await runTask({ ...task, record: true });
  if (a.traceHash === b.traceHash) {
    return `  seed ${hex(task.seed)} run twice again in one process agrees (hash ${a.traceHash}): the difference shows only across job processes or after other runs\n`;
  }
  const i = a.timeline.findIndex((l, j) => l !== b.timeline[j]);
  return `  seed ${hex(task.seed)} run twice in one process parts at line ${i + 1}:\n    first:  ${a.timeline[i] ?? '(end)'}\n    second: ${b.timeline[i] ?? '(end)'}\n`;
}
