// The invariants of a chaos run (DESIGN.md, "Simulation and chaos";
// issue 6), each with its name, checked after every batch of kernel events,
// at every probe report, on every answer, and once more when the system has
// had time to settle. The first violation ends the run.
import { parseWorkerTitle, SPARE } from '../runtime/protocol.js';
import type { ProcessInfo } from '../sim/index.js';
import type { Defect, Hooks } from '../os/hooks.js';
import { ASSERTION_ERROR } from '../runtime/assert.js';
import { TRANSITIONS } from '../runtime/companions/state.js';

export const INVARIANTS = [
  'orphans', // no process outlives its parent by more than its stop deadline
  'zombies', // no exited child is left unreaped
  'one-instance', // at most one live instance per companion name
  'answers', // every request gets exactly one answer (its own) or a recorded reset; nothing answered or run twice
  'broken-reload', // a broken reload leaves the old config fully in force
  'convergence', // worker counts reach their targets once faults stop
  'transitions', // companion state changes are only the allowed ones
  'queue-bound', // the slow-lane queue never holds more than slow_queue
  'slow-cap', // the lane gives no request to a slow worker it counts idle while that worker still runs one
  'lane-slots', // once every request has ended and the system settled, the slow lanes hold nothing and count the live slow workers
  'shutdown', // TERM at the end leaves nothing running
  'client-deadline', // a hostile client's connection is closed by its deadline (client_header_timeout, client_body_timeout, send_timeout), give or take a tick
  'slot-hold', // a slow-lane slot is held no longer than the app's work needs: never while waiting on a client
  'learned-fast', // a route whose app time is below slow_threshold is never marked slow, whatever its clients do
  'hung-manager', // a companion manager stopped longer than timeout + a tick is killed, and a new one runs within the restart backoff
  'one-shot', // an exit past startsecs restarts a companion exactly when autorestart and exitcodes say; one left EXITED starts again only when asked
  'no-crash', // no drover process dies of an uncaught error: every error the OS returns is handled
  'serving-through-faults', // with the kernel's faults on, requests keep being answered: no request waits 5 s while nothing at all is answered
  'log-reported', // a log that cannot be written is said on stderr once per outage (not per line), and its recovery only after that
  'whole-lines', // through short writes, failed writes and split pipes, no line of a log or of a companion's output holds a piece of another
  'assertion', // no assert() of drover's fails in any simulated process (src/runtime/assert.ts)
] as const;
export type Invariant = (typeof INVARIANTS)[number];

export interface Violation {
  readonly invariant: Invariant;
  readonly message: string;
  readonly at: number; // simulated ms
}

/** The drover programs whose parent's death must take them down, and how long each may take. */
export interface Deadlines {
  /** After its parent died, a process of this program must be gone within this (ms). */
  orphan(program: string): number;
  /**
   * The max_workers of the config a generation of fast workers was started
   * from, known by the app it runs (null: no good config's app, e.g. a broken
   * reload's, whose workers are not counted). Without it the count is not checked.
   */
  maxWorkers?(app: string): number | null;
  /** How long a generation may run more fast workers than its max_workers: a drained surplus worker finishing (ms). */
  readonly drainMs?: number;
  /** The longest a slow-lane slot may be held: the app's work and the event loops it waits on (ms). */
  readonly slotMs?: number;
  /** Routes the app serves at once (below slow_threshold): never to be marked slow. */
  readonly fastRoutes?: ReadonlySet<string>;
  /** A companion manager stopped under a running arbiter must be gone within this (ms): timeout, a tick, delivery. */
  readonly managerSilentMs?: number;
  /** A new manager must run within the restart backoff the arbiter announced, plus this (ms): its loop tick. */
  readonly managerTickMs?: number;
  /** Restart policies of the companions, by name; a companion not listed is a daemon (autorestart true). */
  readonly policies?: ReadonlyMap<string, Policy>;
}

/** What decides a companion's restart after an exit past startsecs (its config's autorestart and exitcodes). */
export interface Policy {
  readonly autorestart: boolean | 'unexpected';
  readonly exitcodes: readonly number[];
}

const DAEMON: Policy = { autorestart: true, exitcodes: [0] };

/** Inputs by which a companion left EXITED is asked to run again. */
const ASKED = ['start', 'restart', 'reconfigure'];

/** The arbiter's restart backoff of a manager: 1, 2, 4 ... 30 s. */
const MANAGER_BACKOFF = [1000, 2000, 4000, 8000, 16_000, 30_000];

/** Programs of drover itself: their crashes are drover's bugs (a companion's or the driver's are not). */
const DROVER = new Set(['arbiter', 'worker', 'slow-worker', 'companion-manager', 'companion-module']);

/** A text log line's header anywhere but at the start of its line: two lines glued into one. */
const GLUED = /.\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] \[(\d+)\] \[[A-Z]+\] /;
/** The pid in a text log line's own header. */
const HEAD_PID = /^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] \[(\d+)\] /;

/** serving-through-faults: how long a request may wait while nothing at all is answered. */
export const SERVING_GAP_MS = 5000;

/** A LogSink's lines on stderr (src/runtime/log.ts): an outage begins, or ends. */
const LOG_REPORT = /^drover: \[(\d+)\] (cannot write|writing|closing) (\S+?),? /;

/** A zombie may wait this long for its parent's reap (the arbiter reaps on SIGCHLD and once a loop tick, ≤ 1 s). */
export const ZOMBIE_GRACE_MS = 3000;

/** A generation of fast workers, as the process table shows it: one arbiter's, one number. */
interface Generation {
  readonly arbiter: number;
  readonly max: number;
  readonly firstSeen: number;
  overSince: number | null;
}

export class Checker {
  violation: Violation | null = null;
  readonly counts: Record<Invariant, number> = Object.fromEntries(INVARIANTS.map((i) => [i, 0])) as Record<Invariant, number>;
  private readonly orphanSince = new Map<number, number>();
  /** The last state of each slow lane, by "arbiter pid/generation". */
  private readonly lanes = new Map<string, { readonly queued: number; readonly running: number; readonly workers: number }>();
  private readonly zombieSince = new Map<number, number>();
  /** A fast worker's generation key ("arbiter pid/generation") and app, from its spec (args[0]), by pid. */
  private readonly specs = new Map<number, { key: string; app: string } | null>();
  private readonly generations = new Map<string, Generation | null>();
  /** Reloads bound to fail (their workers run no good config's app): by arbiter pid, when first seen. */
  private readonly failedReloads: Array<{ arbiter: number; at: number }> = [];
  /** Companion managers seen stopped under a running arbiter, by pid: since when. */
  private readonly stoppedManagers = new Map<number, number>();
  /** Arbiters whose manager died and who owe a new one: by arbiter pid, the old manager and the deadline. */
  private readonly owedManagers = new Map<number, { old: number; by: number; restartInMs: number; at: number }>();
  /** Arbiters told to stop (TERM at the end of a run): they start no manager, and kill a stopped one only at their deadline. */
  private readonly stoppingArbiters = new Set<number>();
  /**
   * Companions that went EXITED and whose policy restarts them: by name, the
   * exit. The restart (EXITED -> BACKOFF) comes in the same step, so one
   * still owed when the table is next looked at was never made.
   */
  private readonly restartOwed = new Map<string, string>();
  /**
   * The earliest simulated time at which the last table seen would break a
   * deadline (an orphan, a zombie, a generation over its count). Until the
   * table changes or that time comes, looking at it again finds nothing new.
   */
  due = Infinity;

  constructor(
    private readonly now: () => number,
    private readonly deadlines: Deadlines,
    /** The pid of the run's driver, the one process that is init's child on purpose. */
    private readonly driver: () => number,
  ) {}

  fail(invariant: Invariant, message: string): void {
    if (this.violation === null) this.violation = { invariant, message, at: this.now() };
  }

  /** One check of an invariant: counted, and a failure recorded. */
  check(invariant: Invariant, ok: boolean, message: () => string): boolean {
    this.counts[invariant]++;
    if (!ok) this.fail(invariant, message());
    return ok;
  }

  /**
   * A chaos request's answer (the chaos app answers `ID VERSION PID …`):
   * its own, whole, from an app version a good config named; 503 and 502
   * are drover shedding or losing a slow worker, anything else is wrong.
   * What it was, for the workload's counts.
   */
  answer(id: string, kb: number, o: { readonly status: number; readonly body: Buffer; readonly length: number }, versions: ReadonlySet<string>): 'ok' | 'shed' | 'badGateway' | 'reset' {
    this.counts.answers++;
    const start = o.body.toString('utf8', 0, 80);
    if (o.status === 200) {
      const [rid, version] = start.split(' ');
      this.check('answers', rid === id, () => `request ${id} got the answer of ${JSON.stringify(start.slice(0, 60))}`);
      this.check('answers', o.length >= kb * 1024, () => `request ${id} got ${o.length} bytes of an answer of more than ${kb * 1024}`);
      this.check('broken-reload', versions.has(version ?? ''), () => `request ${id} was answered by app ${version}, which no good config named (a broken reload took effect)`);
      return 'ok';
    }
    if (o.status === 503) return 'shed';
    if (o.status === 502) return 'badGateway';
    this.fail('answers', `request ${id} got status ${o.status}: ${start}`);
    return 'reset';
  }

  /** After the load: requests r1..rN were each run at most once (`times`: the app's ledger). */
  ranOnce(n: number, times: (id: string) => number): void {
    for (let i = 1; i <= n; i++) {
      const id = `r${i}`;
      this.check('answers', times(id) <= 1, () => `request ${id} was run ${times(id)} times`);
    }
  }

  /** The process table, after a batch of events. */
  table(procs: readonly ProcessInfo[]): void {
    const now = this.now();
    this.due = Infinity;
    const byPid = new Map(procs.map((p) => [p.pid, p]));
    const companions = new Map<string, number[]>();
    for (const p of procs) {
      // Orphans: re-parented to init, not the driver.
      if (p.state !== 'zombie' && p.ppid === 1 && p.pid !== this.driver()) {
        const since = this.orphanSince.get(p.pid) ?? now;
        this.orphanSince.set(p.pid, since);
        const limit = this.deadlines.orphan(p.program);
        this.due = Math.min(this.due, since + limit + 1);
        this.check('orphans', now - since <= limit, () => `${p.program} ${p.pid} has outlived its parent by ${now - since} ms (its deadline: ${limit} ms)`);
      } else {
        this.orphanSince.delete(p.pid);
        this.counts.orphans++;
      }
      // Zombies: exited, and the parent (alive, not init) has not reaped it. The driver stands
      // for the service manager: it reaps its arbiter once the old tree is gone, on purpose late.
      if (p.state === 'zombie' && p.ppid !== 1 && p.ppid !== this.driver() && byPid.get(p.ppid)?.state === 'running') {
        const since = this.zombieSince.get(p.pid) ?? now;
        this.zombieSince.set(p.pid, since);
        this.due = Math.min(this.due, since + ZOMBIE_GRACE_MS + 1);
        this.check('zombies', now - since <= ZOMBIE_GRACE_MS, () => `${p.program} ${p.pid} exited ${now - since} ms ago and its parent ${p.ppid} has not reaped it`);
      } else {
        this.zombieSince.delete(p.pid);
      }
      if (p.program === 'chaos-companion' && p.state !== 'zombie') {
        const name = p.args[0] ?? '?';
        const list = companions.get(name) ?? [];
        list.push(p.pid);
        companions.set(name, list);
      }
    }
    for (const [name, pids] of companions) {
      this.check('one-instance', pids.length <= 1, () => `companion ${name} runs ${pids.length} instances: pids ${pids.join(', ')}`);
    }
    this.workerCounts(procs, now);
    this.managers(procs, byPid, now);
    for (const [name, cause] of this.restartOwed) {
      this.check('one-shot', false, () => `companion ${name} went EXITED (${cause}) and ${this.policyText(name)} says it is restarted, but it stayed EXITED`);
    }
    this.restartOwed.clear();
  }

  /**
   * Crashes the kernel recorded since the last look (uncaught errors): a
   * failed assert() anywhere is `assertion` (its AssertionError is caught by
   * nothing in drover, so it crashes the process that ran it), any other
   * crash of one of drover's own programs `no-crash`.
   */
  crashes(list: readonly { readonly pid: number; readonly program: string; readonly message: string }[], from: number): void {
    this.counts.assertion++;
    for (let i = from; i < list.length; i++) this.crash(list[i]!);
  }

  /** One crash, as crashes() judges it; the user's app's own are not drover's (app-run.ts says which are). */
  crash(c: { readonly pid: number; readonly program: string; readonly message: string }): void {
    const asserted = `${ASSERTION_ERROR}: `;
    if (c.message.startsWith(asserted)) this.check('assertion', false, () => `${c.program} ${c.pid} crashed: ${c.message.slice(asserted.length)}`);
    else if (DROVER.has(c.program)) this.check('no-crash', false, () => `${c.program} ${c.pid} crashed: ${c.message}`);
  }

  /**
   * The kernel's hooks (KernelOptions.hooks) for a run this checker
   * watches: drover's state as it changes, from inside, and the defects
   * planted for the run. `burning(pid)`: is that process holding its CPU.
   */
  hooks(burning: (pid: number) => boolean, defects: readonly Defect[] = [], more: Partial<Hooks> = {}): Hooks {
    return {
      transition: (name, from, to, cause) => this.transition(name, from, to, cause),
      lane: (a, g, st, limit) => this.lane(a, g, st, limit),
      laneClosed: (a, g) => this.laneClosed(a, g),
      laneAssigned: (g, pid, running) => this.laneAssigned(g, pid, running, burning(pid)),
      laneHeld: (g, ms) => this.laneHeld(g, ms),
      route: (route, slow, avgMs) => this.route(route, slow, avgMs),
      managerGone: (arbiter, pid, ms) => this.managerGone(arbiter, pid, ms),
      spawnFailed: (parent, program, ms) => this.spawnFailed(parent, program, ms),
      ...more,
      ...(defects.length > 0 ? { defects: new Set(defects) } : {}),
    };
  }

  /**
   * The load, looked at every quarter second while faults are on: the
   * oldest request still waiting (its send time) and the last answer of any
   * request. Waiting SERVING_GAP_MS with no answer at all meanwhile is a
   * server that stopped serving (a reset or a 503 is an answer: it was
   * handled).
   */
  serving(oldestPending: number | null, lastAnswer: number, describe: () => string): void {
    const now = this.now();
    this.check('serving-through-faults', oldestPending === null || now - oldestPending <= SERVING_GAP_MS || now - lastAnswer <= SERVING_GAP_MS, () =>
      `nothing was answered for ${now - lastAnswer} ms while ${describe()} waited (since ${oldestPending} ms)`);
  }

  private readonly logOutages = new Map<string, boolean>(); // "pid target" -> in an outage
  private stderrPartial = ''; // the start of a line not yet ended

  /** Stderr text written since the last call (whole lines only are read): each LogSink says an outage once, and its end only after it. */
  logReports(written: string): void {
    const all = this.stderrPartial + written;
    const end = all.lastIndexOf('\n') + 1;
    this.stderrPartial = all.slice(end);
    if (end === 0) return;
    const text = all.slice(0, end - 1);
    for (const line of text.split('\n')) {
      const m = LOG_REPORT.exec(line);
      if (m === null) continue;
      const key = `${m[1]} ${m[3]}`;
      const failing = m[2] === 'cannot write';
      const was = this.logOutages.get(key) ?? false;
      // A sink closed (a companion's output, as its process exits) ends its outage; another may open the file after.
      this.check('log-reported', was !== failing, () =>
        failing ? `process ${m[1]} reported again that it cannot write ${m[3]} within one outage (once is enough): ${line}` : `process ${m[1]} said it ${m[2] === 'closing' ? 'closes' : 'writes'} ${m[3]} again, but had not said it could not: ${line}`);
      this.logOutages.set(key, failing);
    }
  }

  /**
   * At the end of a run with the kernel's faults: no line of the error log
   * carries another line of the same process glued on (a cut line may stop
   * anywhere; another process's line may be glued to it, as on any file
   * that processes share in append mode when a write tears a line: only the
   * writer can end its own line), and the talking companions' lines are
   * whole on stdout, whole or cut in their file, which the manager alone
   * writes (run.ts).
   */
  wholeLines(errorLog: string, brokenTalk: readonly string[]): void {
    let glued: string | null = null;
    for (const line of errorLog.split('\n')) {
      this.counts['whole-lines']++;
      const m = GLUED.exec(line);
      if (m !== null && HEAD_PID.exec(line)?.[1] === m[1]) {
        glued = line;
        break;
      }
    }
    this.check('whole-lines', glued === null, () => `a line of the error log holds the start of another of the same process: ${JSON.stringify(glued!.slice(0, 300))}`);
    this.check('whole-lines', brokenTalk.length === 0, () => `companion output came out broken (glued or torn, not merely cut): ${brokenTalk.map((l) => JSON.stringify(l)).join(', ')}`);
  }

  /** Probe: arbiter `arbiter` could not spawn `program` and tries again in `retryInMs`: a manager it owes may come that much later. */
  spawnFailed(arbiter: number, program: string, retryInMs: number): void {
    if (program !== 'companion-manager') return;
    const owed = this.owedManagers.get(arbiter);
    if (owed === undefined) return;
    const by = Math.max(owed.by, this.now() + retryInMs + (this.deadlines.managerTickMs ?? 1000));
    this.owedManagers.set(arbiter, { ...owed, by });
  }

  /** The driver is about to TERM arbiter `pid`: from now on it winds down, and owes no manager. */
  stopping(pid: number): void {
    this.stoppingArbiters.add(pid);
    this.owedManagers.delete(pid);
  }

  /** Probe: arbiter `arbiter` reaped its manager `pid` and says it starts a new one in `restartInMs`. */
  managerGone(arbiter: number, pid: number, restartInMs: number): void {
    this.check('hung-manager', MANAGER_BACKOFF.includes(restartInMs), () =>
      `arbiter ${arbiter} restarts its companion manager (${pid} died) in ${restartInMs} ms, which is no step of the backoff (${MANAGER_BACKOFF.join(', ')} ms)`);
    if (this.stoppingArbiters.has(arbiter)) return;
    const now = this.now();
    this.owedManagers.set(arbiter, { old: pid, by: now + restartInMs + (this.deadlines.managerTickMs ?? 1000), restartInMs, at: now });
    this.due = Math.min(this.due, now + restartInMs + (this.deadlines.managerTickMs ?? 1000) + 1);
  }

  /**
   * A manager stopped (SIGSTOP) under its running arbiter falls silent: the
   * arbiter must kill it within timeout and a tick; and an arbiter whose
   * manager died must run a new one once the backoff it announced is over.
   * A stopped manager whose arbiter died or is stopping is not the
   * heartbeat's business (orphans and shutdown watch those).
   */
  private managers(procs: readonly ProcessInfo[], byPid: ReadonlyMap<number, ProcessInfo>, now: number): void {
    const limit = this.deadlines.managerSilentMs;
    const runningArbiter = (pid: number) => {
      const a = byPid.get(pid);
      return a !== undefined && a.program === 'arbiter' && a.state === 'running' && !this.stoppingArbiters.has(pid);
    };
    const stoppedNow = new Set<number>();
    for (const p of procs) {
      if (p.program !== 'companion-manager') continue;
      const owed = this.owedManagers.get(p.ppid);
      if (owed !== undefined && p.pid !== owed.old && p.state !== 'zombie') this.owedManagers.delete(p.ppid);
      if (limit === undefined || p.state !== 'stopped' || !runningArbiter(p.ppid)) continue;
      stoppedNow.add(p.pid);
      const since = this.stoppedManagers.get(p.pid) ?? now;
      this.stoppedManagers.set(p.pid, since);
      this.due = Math.min(this.due, since + limit + 1);
      this.check('hung-manager', now - since <= limit, () =>
        `companion manager ${p.pid} has been stopped for ${now - since} ms and its arbiter ${p.ppid} has neither killed nor replaced it (its deadline: ${limit} ms, timeout and a tick)`);
    }
    for (const pid of [...this.stoppedManagers.keys()]) if (!stoppedNow.has(pid)) this.stoppedManagers.delete(pid);
    for (const [arbiter, owed] of [...this.owedManagers]) {
      if (!runningArbiter(arbiter)) {
        this.owedManagers.delete(arbiter);
        continue;
      }
      this.due = Math.min(this.due, owed.by + 1);
      this.check('hung-manager', now <= owed.by, () =>
        `arbiter ${arbiter} reaped its companion manager ${owed.old} at ${owed.at} ms and said it would start another in ${owed.restartInMs} ms; none runs ${now - owed.at} ms later`);
    }
  }

  /**
   * A generation never runs more fast workers than its own config's
   * max_workers for longer than a drain takes: neither TTIN, autoscaling nor
   * a reload that failed may take it past. Over the limit after a reload that
   * failed while the generation served, the failed config's count took effect
   * (broken-reload); otherwise the count does not converge.
   */
  private workerCounts(procs: readonly ProcessInfo[], now: number): void {
    const { maxWorkers, drainMs = 0 } = this.deadlines;
    if (!maxWorkers) return;
    const running = new Map<string, number>();
    for (const p of procs) {
      // Workers left to init are the orphan check's; they are on their way out.
      if (p.program !== 'worker' || p.state === 'zombie' || p.ppid === 1) continue;
      let spec = this.specs.get(p.pid);
      if (spec === undefined) {
        const found = workerSpec(p);
        // A spare not given work yet is nobody's worker.
        if (found === 'spare') continue;
        spec = found;
        this.specs.set(p.pid, spec);
      }
      if (spec === null) continue;
      if (!this.generations.has(spec.key)) {
        const max = maxWorkers(spec.app);
        // No good config names its app: a reload that cannot boot, so one that fails.
        if (max === null) this.failedReloads.push({ arbiter: p.ppid, at: now });
        this.generations.set(spec.key, max === null ? null : { arbiter: p.ppid, max, firstSeen: now, overSince: null });
      }
      running.set(spec.key, (running.get(spec.key) ?? 0) + 1);
    }
    for (const [key, g] of this.generations) {
      if (g === null) continue;
      const n = running.get(key) ?? 0;
      if (n <= g.max) {
        g.overSince = null;
        this.counts.convergence++;
        continue;
      }
      g.overSince ??= now;
      this.due = Math.min(this.due, g.overSince + drainMs + 1);
      const over = now - g.overSince;
      const since = g.overSince;
      const failed = this.failedReloads.filter((f) => f.arbiter === g.arbiter && f.at >= g.firstSeen && f.at <= since).map((f) => f.at);
      const invariant: Invariant = failed.length > 0 ? 'broken-reload' : 'convergence';
      this.check(invariant, over <= drainMs, () =>
        `generation ${key} (arbiter/generation) has run ${n} fast workers for ${over} ms, over its config's max_workers ${g.max}` +
        (failed.length > 0 ? `: the worker count of the reload that failed at ${failed[failed.length - 1]} ms took effect` : ''));
    }
  }

  transition(name: string, from: string, to: string, cause = ''): void {
    const allowed = (TRANSITIONS as Record<string, readonly string[]>)[from] ?? [];
    this.check('transitions', allowed.includes(to), () => `companion ${name} went ${from} -> ${to}, which the state table does not allow`);
    this.oneShot(name, from, to, cause);
  }

  /**
   * supervisord's rule: a RUNNING companion that ends on its own is EXITED;
   * autorestart true, or "unexpected" with an exit code not in exitcodes (a
   * signal is never expected), restarts it (EXITED -> BACKOFF, in the same
   * step); otherwise it stays EXITED until a start, restart or reconfigure.
   */
  private oneShot(name: string, from: string, to: string, cause: string): void {
    if (from === 'RUNNING' && to === 'EXITED') {
      const p = this.deadlines.policies?.get(name) ?? DAEMON;
      const m = /^exit (\d+)$/.exec(cause);
      const expected = m !== null && p.exitcodes.includes(Number(m[1]));
      this.counts['one-shot']++;
      if (p.autorestart === true || (p.autorestart === 'unexpected' && !expected)) this.restartOwed.set(name, cause);
      else this.restartOwed.delete(name);
      return;
    }
    if (from !== 'EXITED') return;
    const owed = this.restartOwed.get(name);
    this.restartOwed.delete(name);
    if (to === 'BACKOFF') {
      this.check('one-shot', owed !== undefined, () => `companion ${name} went EXITED and was restarted (${cause}), but ${this.policyText(name)} says it stays EXITED`);
    } else if (owed !== undefined) {
      this.check('one-shot', false, () => `companion ${name} went EXITED (${owed}) and ${this.policyText(name)} says it is restarted, but it went ${to} on ${cause}`);
    } else if (to === 'STARTING') {
      this.check('one-shot', ASKED.includes(cause), () => `companion ${name}, left EXITED, was started again on ${cause}, which nobody asked for`);
    }
  }

  private policyText(name: string): string {
    const p = this.deadlines.policies?.get(name) ?? DAEMON;
    return p.autorestart === 'unexpected' ? `autorestart "unexpected" with exitcodes [${p.exitcodes.join(', ')}]` : `autorestart ${p.autorestart}`;
  }

  lane(arbiter: number, generation: number, s: { readonly queued: number; readonly running: number; readonly workers: number }, limit: number): void {
    this.check('queue-bound', s.queued <= limit, () => `the slow lane of generation ${generation} holds ${s.queued} queued requests, over slow_queue ${limit}`);
    this.lanes.set(`${arbiter}/${generation}`, { queued: s.queued, running: s.running, workers: s.workers });
  }

  laneClosed(arbiter: number, generation: number): void {
    this.lanes.delete(`${arbiter}/${generation}`);
  }

  /**
   * After settling, no request pending: every lane of the arbiter still
   * running is empty (a slot not freed is lost for good), and its lanes
   * count as many slow workers as are alive (one dead and counted would be
   * given requests nobody runs).
   */
  lanesIdle(arbiter: number, slowWorkers: number): void {
    let counted = 0;
    for (const [key, s] of this.lanes) {
      if (!key.startsWith(`${arbiter}/`)) continue;
      counted += s.workers;
      this.check('lane-slots', s.queued === 0 && s.running === 0, () =>
        `every request has ended, yet the slow lane of generation ${key} (arbiter/generation) counts ${s.running} running and ${s.queued} queued: slots never freed`);
    }
    this.check('lane-slots', counted === slowWorkers, () =>
      `the slow lanes of arbiter ${arbiter} count ${counted} slow workers taking requests, but ${slowWorkers} are alive`);
  }

  /**
   * Only a worker the lane counts idle is checked: with others on it, a burn
   * may be theirs. A request's answer leaves a slow worker at the end of its
   * burn, so a slot freed by an answer never finds its worker still burning.
   */
  laneHeld(generation: number, ms: number): void {
    const limit = this.deadlines.slotMs;
    if (limit === undefined) return;
    this.check('slot-hold', ms <= limit, () => `a slot of the slow lane of generation ${generation} was held ${ms} ms, over the ${limit} ms its app work can take: it waited on a client`);
  }

  route(route: string, slow: boolean, avgMs: number): void {
    const fast = this.deadlines.fastRoutes;
    if (fast === undefined) return;
    if (!slow) {
      this.counts['learned-fast']++;
      return;
    }
    this.check('learned-fast', !fast.has(route), () => `route ${route}, which the app serves at once, was marked slow (average ${avgMs.toFixed(0)} ms): a client's pace was counted as the server's`);
  }

  laneAssigned(generation: number, pid: number, running: number, burning: boolean): void {
    this.check('slow-cap', running > 0 || !burning, () =>
      `the slow lane of generation ${generation} gave slow worker ${pid} a request while it counted it idle, but ${pid} was still running one (its slot was freed early)`);
  }
}

/** "arbiter pid/generation" and the app of a fast worker, from the spec the arbiter gave it (null: unreadable). */
function workerSpec(p: ProcessInfo): { key: string; app: string } | null | 'spare' {
  if (p.args[0] === SPARE) {
    // Its spec came in the arbiter's 'go'; its title says the generation and the app's file from then on.
    const t = parseWorkerTitle(p.title);
    return t === null ? 'spare' : t.app === null ? null : { key: `${p.ppid}/${t.generation}`, app: t.app };
  }
  try {
    const spec = JSON.parse(p.args[0] ?? '') as { generation?: unknown; app?: unknown };
    if (typeof spec.generation !== 'number' || typeof spec.app !== 'string') return null;
    return { key: `${p.ppid}/${spec.generation}`, app: spec.app };
  } catch {
    return null;
  }
}
