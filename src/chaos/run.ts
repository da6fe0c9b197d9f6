// One chaos run: the scenario's topology as a drover config, the real
// arbiter, workers, slow lane and companion manager on the simulated kernel,
// and a driver process that plays the parts VOPR splits: the workload
// (workload.ts: the load and each request's end), the nemesis (nemesis.ts:
// the fault schedule), and systemd (service.ts: starts, restarts, the
// TERM). The checker (invariants.ts) judges every answer, every batch of
// events and what drover tells the kernel's hooks; nothing here is module
// state, so two runs may share a process. Same seed, same run, same trace.
import { fileURLToPath } from 'node:url';
import { programs, type Os, type ProgramRegistry } from '../os/types.js';
import type { Defect } from '../os/hooks.js';
import { runtimePrograms } from '../runtime/programs.js';
import { stillSpare } from '../runtime/protocol.js';
import { Kernel } from '../sim/index.js';
import { OS_FAULTS, type OsFault } from '../sim/faults.js';
import { Checker, INVARIANTS, type Invariant, type Violation } from './invariants.js';
import { Ledger, type ChaosHooks } from './ledger.js';
import { Nemesis } from './nemesis.js';
import { Service, settle } from './service.js';
import { Workload, type RequestCounts } from './workload.js';
import { FAULT_KINDS, hostileSlotMs, type Fault, type FaultKind, type Scenario } from './scenario.js';

const CONFIG = '/srv/drover.json';
const SOCK = '/run/drover/ctl.sock';
const LOG = '/var/log/drover.log';
/** Written only where the kernel fails writes (the faults scenario): its write may fail too. */
const PIDFILE = '/run/drover/drover.pid';
/** drover's own programs: the kernel fails their calls (the driver and the chaos companions are the harness). */
const FAULTED = ['arbiter', 'worker', 'slow-worker', 'companion-manager', 'companion-module'];
const STOP_TIMEOUT_MS = 2000;
const GRACEFUL_MS = 5000;
const SETTLE_MS = 40_000;
const KEEP_ALIVE_MS = 2000;
/** drover's `timeout` in every run, and the arbiter's loop tick that follows from it (min(1000, timeout / 4)). */
const TIMEOUT_MS = 2000;
const TICK_MS = 500;
/** Programs of a drover process tree (the driver and init are not). */
const TREE = new Set(['arbiter', 'worker', 'slow-worker', 'companion-manager', 'companion-module', 'chaos-companion', 'chaos-grandchild']);
const GOOD_VERSIONS = ['v1', 'v2', 'v3'];

/**
 * The apps as the simulated drover sees them: a mount of src/chaos/apps, so no trace names the
 * checkout's path; and named .js whether the host runs the sources (tsx finds v1.ts for v1.js) or
 * the build, so a seed gives the same trace from a checkout as from an installed package.
 */
const APPS = '/srv/apps';
const appPath = (v: string) => `${APPS}/${v}.js`;

export interface RunOptions {
  /** Switch on planted defects for this run (tests of the checkers). */
  readonly defects?: readonly Defect[];
  /** Keep every trace line (for --trace). */
  readonly record?: boolean;
  /** Replace the scenario's fault schedule (shrinking). */
  readonly faults?: readonly Fault[];
}

export interface RunReport {
  readonly scenario: Scenario;
  readonly faults: readonly Fault[];
  readonly violation: Violation | null;
  readonly simulatedMs: number;
  readonly events: number;
  /**
   * The driver's faults by kind; with the kernel's faults on, also
   * `os:KIND` for each kind the scenario turned on (how often it fired) and
   * `path:PLACE:CODE` for each error path that ran (probe.errorPath), so
   * that they travel with a job's result as they are.
   */
  readonly injected: Record<string, number>;
  /** The kernel's faults: their rates, how often each fired, the error paths that ran; null when none was on. */
  readonly kernel: {
    readonly rates: Partial<Record<OsFault, number>>;
    readonly fired: Record<OsFault, number>;
    readonly paths: Record<string, number>;
    /**
     * The talking companions' lines as they came out: through the manager's
     * stdout (whole, however the pipes split them) and through its file
     * (whole, or cut where a write failed).
     */
    readonly talk: { readonly whole: number; readonly cut: number; readonly broken: readonly string[] };
  } | null;
  readonly checks: Record<Invariant, number>;
  readonly requests: RequestCounts;
  readonly traceHash: string;
  /** Timeline: the driver's own lines (faults, restarts) merged with the kernel's trace when recorded, else its last lines. */
  readonly timeline: readonly string[];
  /** The tail of drover's error log. */
  readonly logTail: readonly string[];
}

interface Cfg {
  version: string;
  workers: number;
  min: number;
  max: number;
  slowWorkers: number;
  broken: 'config' | 'app' | null;
}

export async function runScenario(s: Scenario, opts: RunOptions = {}): Promise<RunReport> {
  const faults = opts.faults ?? s.faults;
  const topo = s.topology;
  const osFaulty = Object.values(s.osFaults).some((r) => (r ?? 0) > 0);
  /** Error paths that ran, "place:code" (probe.errorPath). */
  const paths: Record<string, number> = {};
  const pathRan = (key: string) => void (paths[key] = (paths[key] ?? 0) + 1);
  let driverPid = -1;
  // The max_workers of the good config that last named each app (the driver's writes; apps alternate, see writeGood).
  const maxByApp = new Map<string, number>();
  const checker = new Checker(
    () => k.now(),
    {
      orphan: (p) => (p === 'worker' || p === 'slow-worker' ? 2000 : STOP_TIMEOUT_MS + 2000),
      // A worker that was a spare is known by its title, which names its app's file only (invariants.ts workerSpec).
      maxWorkers: (app) => maxByApp.get(app.includes('/') ? app : `${APPS}/${app}`) ?? null,
      // A drained surplus worker gets graceful_timeout, then KILL a second later, seen at the next tick (≤ 1 s).
      drainMs: GRACEFUL_MS + 3000,
      // Hostile runs have no stalled workers, so a slot's hold has a bound.
      ...(topo.clients !== null && hostileSlotMs(topo, s.load) !== null ? { slotMs: hostileSlotMs(topo, s.load)! } : {}),
      // The app answers /f at once: whatever its clients do, it is never slow.
      fastRoutes: new Set(['GET /f', 'POST /f']),
      // A stopped manager's last beat came before it stopped; the arbiter sees the silence at a tick, and a
      // beat in flight may land a little after the stop. A new one is started at the first tick after the backoff.
      managerSilentMs: TIMEOUT_MS + TICK_MS + 100,
      managerTickMs: TICK_MS + 100,
      policies: new Map(topo.oneShots.map((j) => [j.name, { autorestart: j.autorestart, exitcodes: j.exitcodes }])),
    },
    () => driverPid,
  );
  const hooks = checker.hooks((pid) => k.burning(pid), opts.defects, {
    errorPath: (path, code) => pathRan(`${path}:${code}`),
    // The manager's own spawn failures come back as its state machine's 'spawn-failed' input; in a chaos run the only refusal is EAGAIN.
    transition: (name, from, to, cause) => {
      if (cause === 'spawn-failed') pathRan('companion-spawn:EAGAIN');
      checker.transition(name, from, to, cause);
    },
  });
  const ledger = new Ledger();
  const k: Kernel = new Kernel({
    seed: s.seed,
    programs: [...runtimePrograms, chaosPrograms(), driverRegistry()],
    record: opts.record === true,
    mounts: { [APPS]: fileURLToPath(new URL('./apps', import.meta.url)) },
    ...(osFaulty ? { faults: { rates: s.osFaults, programs: FAULTED } } : {}),
    hooks: { ...hooks, ledger } as ChaosHooks,
  });
  const injected = Object.fromEntries(FAULT_KINDS.map((f) => [f, 0])) as Record<FaultKind, number>;
  /** The workload's counts, once it runs. */
  let requests: RequestCounts = { sent: 0, ok: 0, shed: 0, badGateway: 0, reset: 0, left: 0, hostile: 0 };
  const timeline: string[] = [];
  let done = false;

  function driverRegistry(): ProgramRegistry {
    return programs(import.meta.url, { 'chaos-driver': driver });
  }

  function configText(c: Cfg): string {
    const base: Record<string, unknown> = {
      app: c.broken === 'app' ? appPath('broken') : appPath(c.version),
      bind: ['127.0.0.1:8000'],
      workers: c.workers,
      min_workers: c.min,
      max_workers: c.max,
      timeout: TIMEOUT_MS / 1000,
      graceful_timeout: GRACEFUL_MS / 1000,
      keep_alive: KEEP_ALIVE_MS / 1000,
      lanes: true,
      slow_threshold: 0.1,
      slow_workers: c.slowWorkers,
      spare_workers: topo.spareWorkers,
      slow_concurrency: topo.slowConcurrency,
      slow_queue: topo.slowQueue,
      queue_timeout: topo.queueTimeoutMs / 1000,
      control_socket: SOCK,
      error_log: LOG,
      ...(osFaulty ? { pid: PIDFILE } : {}),
      companion_stop_timeout: STOP_TIMEOUT_MS / 1000,
      companion_startsecs: 0.5,
      companion_restart_delay: 1,
      companions: [
        // With the kernel's faults on, the companions talk (through pipes the kernel splits), the first into a file (whose writes fail).
        ...topo.companions.map((p, i) => ({
          name: p.name, command: ['chaos-companion', p.name, p.behaviour, ...(osFaulty ? ['talk'] : [])],
          ...(osFaulty && i === 0 ? { stdout: companionLog(p.name) } : {}),
        })),
        ...topo.oneShots.map((j) => ({
          name: j.name, command: ['chaos-companion', j.name, 'one-shot', j.codes.join(','), String(j.runMs[0]), String(j.runMs[1])],
          autorestart: j.autorestart, exitcodes: j.exitcodes,
        })),
      ],
    };
    if (topo.clients !== null) {
      base.client_header_timeout = topo.clients.header / 1000;
      base.client_body_timeout = topo.clients.body / 1000;
      base.send_timeout = topo.clients.send / 1000;
    }
    if (c.broken === 'config') base.keep_alive = 'two seconds'; // refused: the whole file is
    return JSON.stringify(base);
  }

  async function driver(os: Os): Promise<void> {
    driverPid = os.pid;
    const note = (text: string) => timeline.push(`${os.now()} driver ${text}`);
    for (const d of ['/srv', '/run/drover', '/var/log']) os.fs.mkdir(d, { recursive: true });
    let good: Cfg = { version: 'v1', workers: topo.workers, min: topo.minWorkers, max: topo.maxWorkers, slowWorkers: topo.slowWorkers, broken: null };
    const seen = new Set<string>(['v1']); // versions a good config has named
    maxByApp.set(appPath(good.version), good.max);
    os.fs.writeFile(CONFIG, configText(good));
    os.fs.writeFile(LOG, '');
    // A spare (spare_workers) is not a worker until it is given work: it sets its title then.
    const live = (program: string) => k.processes().filter((p) => p.program === program && p.state === 'running' && !stillSpare(p.args, p.title));
    const service = new Service(os, k, {
      args: ['--config', CONFIG], tree: TREE, goneMs: STOP_TIMEOUT_MS + 4000, note,
      beforeRestart: () => void (good.broken === null && os.fs.writeFile(CONFIG, configText(good))),
    });

    // ---- the workload: open loop, each request checked on its own, hostile clients beside it
    const load = new Workload(os, s, checker, seen, KEEP_ALIVE_MS, note);
    requests = load.requests;
    load.start();

    // With the kernel's faults on, an arbiter may refuse to start (its
    // pidfile cannot be written): the driver starts it again, as systemd's
    // Restart=on-failure would, until the TERM at the end.
    let terminating = false;
    if (osFaulty) {
      void service.restartOnFailure(() => !terminating);
      // serving-through-faults, a look every quarter second until the TERM (requests sent last must be answered too).
      void (async () => {
        while (!terminating && !checker.violation) {
          await os.sleep(250);
          const oldest = load.oldest();
          if (!terminating) checker.serving(oldest === null ? null : oldest.at, load.lastAnswer, () => (oldest === null ? '' : oldest.describe()));
        }
      })();
    }

    // ---- the nemesis: the fault schedule
    const nemesis = new Nemesis(os, {
      k, service, socket: SOCK, note,
      victims: { 'kill-worker': ['worker'], 'kill-slow-worker': ['slow-worker'], 'kill-manager': ['companion-manager'], 'kill-companion': ['chaos-companion'] },
      names: [...topo.companions, ...topo.oneShots].map((c) => c.name),
      writeChanged: (f) => {
        const versions = GOOD_VERSIONS.filter((v) => v !== good.version);
        const workers = 1 + (f.pick % 4);
        const scaling = topo.minWorkers < topo.maxWorkers;
        good = {
          version: versions[(f.pick >>> 4) % versions.length]!, workers, min: scaling ? Math.max(1, workers - 1) : workers,
          max: scaling ? workers + 1 : workers, slowWorkers: 1 + ((f.pick >>> 8) % 2), broken: null,
        };
        seen.add(good.version);
        maxByApp.set(appPath(good.version), good.max);
        os.fs.writeFile(CONFIG, configText(good));
      },
      writeBroken: (f) => {
        // Another app and a worker count outside the good config's range: a half-applied reload shows.
        const workers = good.max + 1 + (f.pick % 2);
        os.fs.writeFile(CONFIG, configText({ ...good, version: 'v9', workers, min: workers, max: workers, broken: f.kind === 'hup-broken-app' ? 'app' : 'config' }));
      },
      stallWorker: (f) => load.hang(f.pick),
    }, (f) => injected[f.kind]++);
    await nemesis.run(faults, () => checker.violation !== null);
    if (os.now() < s.durationMs) await os.sleep(s.durationMs - os.now());
    load.stop();
    note('faults and load stop; settling');

    // ---- settle: the counts reach the good config's, every request has its end
    const expectFast = (c: number) => (good.min === good.max ? c === good.workers : c >= good.min && c <= good.max);
    const settled = () =>
      load.pending.size === 0 && expectFast(live('worker').length) && live('slow-worker').length === good.slowWorkers && live('arbiter').length === 1;
    // An arbiter may be gone or stopped (a signal that came before its handlers did): say so.
    const arbiters = () => k.processes().filter((p) => p.program === 'arbiter' && p.state !== 'zombie').map((p) => `${p.pid} ${p.state}`).join(', ') || 'none';
    await settle(os, SETTLE_MS, settled, () => checker.violation !== null);
    if (!checker.violation) {
      checker.check('convergence', settled(), () =>
        `${SETTLE_MS / 1000} s after the faults stopped: arbiter ${arbiters()}, ${live('worker').length} fast workers (expected ${good.min === good.max ? good.workers : `${good.min}..${good.max}`}), ` +
        `${live('slow-worker').length} slow workers (expected ${good.slowWorkers}), ${load.pending.size} request(s) without an end (${load.describePending(3)})`);
      checker.ranOnce(load.sent, (id) => ledger.times(id));
      if (load.pending.size === 0) for (const a of live('arbiter')) checker.lanesIdle(a.pid, live('slow-worker').length);
    }

    // ---- TERM: everything stops, nothing is left
    load.closeAll(); // what is still open has had its deadline checked, or is within it
    await service.stop(GRACEFUL_MS + STOP_TIMEOUT_MS + 8000, (pid) => {
      terminating = true;
      checker.stopping(pid);
    });
    if (!checker.violation) checker.check('shutdown', service.tree().length === 0, () => `after TERM, still running: ${service.tree().map((p) => `${p.program} ${p.pid}`).join(', ')}`);
    done = true;
  }

  // ---- run
  k.spawn({ program: 'chaos-driver', args: [] });
  // The table is looked at after every batch of events that changed it, and
  // when a deadline it holds comes due; in between it is the same table.
  let seen = -1;
  let crashesSeen = 0;
  // Every write is read as it comes: the kernel keeps only a tail of its output.
  let stderrNew = '';
  const talk = osFaulty ? new TalkLines() : null;
  k.output.tap = (tag, text) => {
    if (tag === 'stderr') stderrNew += text;
    else talk?.stdout(text);
  };
  await k.run({
    stopWhen: () => {
      checker.crashes(k.faults.crashes, crashesSeen);
      crashesSeen = k.faults.crashes.length;
      if (stderrNew !== '') {
        checker.logReports(stderrNew);
        stderrNew = '';
      }
      if (done || checker.violation) return true;
      if (k.changes === seen && k.now() < checker.due) return false;
      seen = k.changes;
      checker.counts['no-crash']++;
      checker.table(k.processes());
      return checker.violation !== null;
    },
    until: s.durationMs + SETTLE_MS + 60_000,
  });
  if (!done && !checker.violation) checker.fail('shutdown', `the run did not finish within ${(s.durationMs + SETTLE_MS + 60_000) / 1000} simulated s`);
  let logTail: string[] = [];
  try {
    logTail = k.fs.readFile(LOG).trimEnd().split('\n').slice(-25);
  } catch {
    // no log written
  }
  if (talk !== null) talk.file(k, topo.companions[0]?.name ?? null);
  if (talk !== null && checker.violation === null) checker.wholeLines(readOr(k, LOG), talk.out.broken);
  const trace = k.trace();
  k.dispose();
  const merged = opts.record ? [...trace, ...timeline].sort(byTime) : [...trace.slice(-40), ...timeline.slice(-10)].sort(byTime);
  const fired = { ...k.faults.fired };
  const all: Record<string, number> = { ...injected };
  if (osFaulty) {
    for (const kind of OS_FAULTS) if ((s.osFaults[kind] ?? 0) > 0) all[`os:${kind}`] = fired[kind];
    for (const [key, v] of Object.entries(paths)) all[`path:${key}`] = v;
  }
  return {
    scenario: s, faults, violation: checker.violation, simulatedMs: k.now(), events: k.events, injected: all, checks: checker.counts,
    requests, traceHash: k.traceHash(), timeline: merged, logTail,
    kernel: osFaulty ? { rates: s.osFaults, fired, paths, talk: talk!.out } : null,
  };
}

const byTime = (a: string, b: string) => Number(a.slice(0, a.indexOf(' '))) - Number(b.slice(0, b.indexOf(' ')));


/** What a talking companion says (see chaos-companion): each line whole, wherever the kernel split its bytes. */
export function talkLine(name: string, n: number): string {
  return `${name} says ${n}: é ✓ 𝄞\n`;
}

/**
 * Lines of the talking companions: on stdout each must be one whole line
 * ("NAME | " and what it said); in the first companion's file, a line may
 * also be a prefix of one (a write failed in it), never anything else.
 */
class TalkLines {
  readonly out = { whole: 0, cut: 0, broken: [] as string[] };
  private partial = ''; // stdout's last line, not ended yet

  private judge(line: string, mayCut: boolean): void {
    // Its companion and number as far as they go (a cut may fall inside either), and what that line would be.
    const m = /^(c\d+)(?: says (\d*))?/.exec(line);
    const want = talkLine(m?.[1] ?? 'c0', Number(m?.[2] || 0)).slice(0, -1);
    if (want === line) this.out.whole++;
    else if (mayCut && want.startsWith(line.replace(/\ufffd+$/, ''))) this.out.cut++; // cut inside a character: its bytes decode as U+FFFD
    else if (this.out.broken.length < 5) this.out.broken.push(line);
  }

  /** Text written to stdout, as it comes: its whole lines are judged. */
  stdout(text: string): void {
    const lines = (this.partial + text).split('\n');
    this.partial = lines.pop()!;
    for (const line of lines) {
      const bar = line.indexOf(' | ');
      if (bar >= 0 && line.includes(' says ')) this.judge(line.slice(bar + 3), false);
    }
  }

  /** At the end: the first companion's file, and stdout's unended last line. */
  file(k: Kernel, filed: string | null): void {
    this.stdout('\n');
    if (filed === null) return;
    let text = '';
    try {
      text = k.fs.readFile(companionLog(filed));
    } catch {
      // never opened (the companion never started)
    }
    for (const line of text.split('\n')) if (line !== '') this.judge(line, true);
  }
}

function readOr(k: Kernel, path: string): string {
  try {
    return k.fs.readFile(path);
  } catch {
    return '';
  }
}

/** The file a talking companion's output goes to, when it goes to one. */
export function companionLog(name: string): string {
  return `/var/log/companion-${name}.log`;
}

/** The companions' behaviours, and a grandchild that ignores TERM. */
function chaosPrograms(): ProgramRegistry {
  return programs(import.meta.url, {
    'chaos-companion': async (os: Os, args) => {
      const behaviour = args[1];
      if (args[2] === 'talk') {
        // A line every 0.2 to 0.7 s, with characters of 2, 3 and 4 bytes for a split read to fall inside.
        let n = 0;
        const talk = () => {
          os.stdout.write(talkLine(args[0]!, ++n));
          os.timer(200 + Math.floor(os.random() * 500), talk).unref();
        };
        talk();
      }
      if (behaviour === 'one-shot') {
        // one-shot CODES LO HI: a job of LO..HI ms that exits with one of CODES.
        const codes = args[2]!.split(',').map(Number);
        const [lo, hi] = [Number(args[3]), Number(args[4])];
        await os.sleep(lo + Math.floor(os.random() * (hi - lo + 1)));
        os.exit(codes[Math.floor(os.random() * codes.length)]!);
      }
      if (behaviour === 'ignores-term' || behaviour === 'forks') os.onSignal('SIGTERM', () => {});
      if (behaviour === 'forks') os.spawn({ command: ['chaos-grandchild'] });
      if (behaviour === 'slow-start') await os.sleep(800);
      if (behaviour === 'crashing') {
        await os.sleep(300 + Math.floor(os.random() * 3000));
        os.exit(1);
      }
      os.timer(1e9, () => {});
    },
    'chaos-grandchild': async (os: Os) => {
      os.onSignal('SIGTERM', () => {});
      os.timer(1e9, () => {});
    },
  });
}

export { INVARIANTS };
