// The arbiter: owns the listening sockets, keeps the right number of workers
// alive, and turns signals into actions, gunicorn's way — a handler only
// queues the signal and wakes the loop; the loop does the work.
//
//   HUP        reload: read the config again, start a new generation of
//              workers, and drain the old one only once all new workers have
//              booted. A reload that fails (bad config, a port that cannot
//              be bound, a worker that cannot boot) leaves the old
//              generation serving on the old config, untouched.
//   TERM       graceful stop; INT, QUIT quick stop
//   TTIN/TTOU  one worker more / fewer, within [min_workers, max_workers]
//   USR1       reopen log files here and in every worker
//   CHLD       reap; the loop respawns what should be running
//
// With lanes on, each generation also has slow-lane workers (lanes.ts): they
// boot with it, a reload waits for them too, and they are drained once the
// generation's last fast worker is gone, since only its fast workers use them.
//
// With spare_workers, a spawn of either kind first takes a spare (spares.ts):
// a process started ahead that boots from its app on our word.
import { basename, isAbsolute, join, resolve } from 'node:path';
import { formatAddr, isUnix, type Addr, type Channel, type Child, type Exited, type Listener, type Os, type Signal, type SpawnSpec } from '../../os/types.js';
import type { ManagerReport, ManagerSpec, ToManager } from '../companions/manager.js';
import { type Config, ConfigError, heartbeatMs, loadConfig } from '../config/index.js';
import { logFileProblems, Logger, LogSink } from '../log.js';
import { EXIT_APP_LOAD, EXIT_BOOT, SPARE, type ToArbiter, type ToWorker, type WorkerSpec } from '../protocol.js';

import { Lanes } from './lanes.js';
import { Control } from './control.js';
import { ControlPathError, prepareControlPath } from '../control/guard.js';
import { planted } from '../../os/hooks.js';
import { assert } from '../assert.js';
import { COOLDOWN, initialScale, scale } from './autoscale.js';
import { ARBITER_TITLE, PidfileError, holderOn, removePidfile, writePidfile } from './pidfile.js';
import { checkPrivateDir, ensureRuntimeDir, RundirError, runtimeDirFor } from '../rundir.js';
import { type Worker, Workers } from './workers.js';
import { type Role, type Spare, Spares } from './spares.js';
import { Admin } from './admin.js';
import { exposition, Metrics, type ExitCause } from './metrics.js';
import type { ProcessRow } from '../lanes/report.js';
import type { Notifier, NotifyFields } from '../notify.js';

import { VERSION } from '../../version.js';

export interface ArbiterOptions {
  /** CPUs of the machine: the default worker count. */
  readonly cpus: number;
  /** Told when the server is ready, reloads, changes and stops (systemd's sd_notify, the API's parent). */
  readonly notify?: readonly Notifier[];
}

const HANDLED: readonly Signal[] = ['SIGHUP', 'SIGTERM', 'SIGINT', 'SIGQUIT', 'SIGTTIN', 'SIGTTOU', 'SIGUSR1', 'SIGCHLD'];
const QUEUE_MAX = 5; // gunicorn's: a storm of signals does not pile up work
const KILL_GRACE = 1000; // ms from ABRT (or a missed deadline) to KILL
/**
 * Workers die with the arbiter, by the kernel's hand: a worker stuck in a
 * CPU loop runs no signal handler, and would otherwise outlive us for ever
 * (found by chaos, seed 210). Nothing graceful is lost: with the arbiter
 * gone there is nobody to drain to.
 */
const WORKER_PDEATHSIG: Signal = 'SIGKILL';
/**
 * A spawn the OS refuses (EAGAIN: out of processes or memory; ENOMEM) is
 * logged and tried again after this, doubling up to SPAWN_BACKOFF_MAX for
 * each refusal in a row; any spawn that works starts it over. Meanwhile
 * the server serves with what runs.
 */
const SPAWN_BACKOFF = 250;
const SPAWN_BACKOFF_MAX = 1000;
/**
 * A spare that dies before it is given work (killed by someone, out of
 * memory, a broken node) is replaced after this, doubling up to
 * SPARE_BACKOFF_MAX for each in a row; a spare given work starts it over.
 * Workers spawn as usual meanwhile: spares only save them time.
 */
const SPARE_BACKOFF = 1000;
const SPARE_BACKOFF_MAX = 60_000;
/** A reload whose workers the OS keeps refusing to start fails after this; each started worker has `timeout` to boot. */
const RELOAD_SPAWN_MAX = 60_000;
/**
 * A reload fails once this many of its workers, per worker it wants, died
 * after they booted: a new app that crashes on its first requests would
 * otherwise be started again and again, with the reload never finishing.
 */
const LOST_MAX = 3;

/**
 * How long a stop gives the companion manager before KILL: graceful_timeout,
 * or the longest a companion may take to stop if that is longer (its
 * stop_timeout, or its reload_timeout when a reread was restarting it), and
 * MANAGER_STOP_SLACK for the KILL at that deadline, the reap and the exit.
 * stop_timeout is honoured, as supervisord does: a consumer given 10 s to
 * finish its job is not killed at a graceful_timeout of 1 s meant for HTTP
 * requests. The arbiter's config may be older than the manager's (a reread
 * by drover ctl): then the manager's own deadlines are the ones it keeps.
 */
export function managerStopMs(config: Pick<Config, 'graceful_timeout' | 'companions'>): number {
  let longest = 0;
  for (const c of config.companions) longest = Math.max(longest, c.stop_timeout, c.reload_timeout);
  return Math.max(config.graceful_timeout, longest + MANAGER_STOP_SLACK);
}
const MANAGER_STOP_SLACK = 2000;

/** Can `a` and `b` not be listened on at once: the same Unix path, or the same TCP port (one may be a wildcard)? */
function samePort(a: Addr | null, b: Addr): boolean {
  if (a === null) return false;
  if (isUnix(a) || isUnix(b)) return isUnix(a) && isUnix(b) && a.path === b.path;
  return a.port === b.port;
}

function formatAdmin(a: Addr | null): string {
  return a === null ? '' : formatAddr(a);
}

/** What a person can paste: http://127.0.0.1:8000, or unix:/path. */
function url(name: string): string {
  return name.startsWith('unix:') ? name : `http://${name}`;
}

interface Reload {
  readonly config: Config;
  readonly generation: number;
  readonly listeners: Map<string, Listener>; // every listener of the new config
  readonly opened: Map<string, Listener>; // those this reload bound: closed if it fails
  /** Its workers of each role: started until that many are booting or serving, whatever left before (see startMissing). */
  readonly want: Record<'fast' | 'slow', number>;
  /** Since when it has lacked a worker it could not start (the OS refused the spawn): RELOAD_SPAWN_MAX counts from here. */
  short: number | null;
  /** Its workers that died after they booted (not those that retired): LOST_MAX bounds them. */
  lost: number;
  /** `workers` is unchanged: the count in force (TTIN, TTOU, autoscaling, also while it boots) carries over at the commit. */
  readonly kept: boolean;
}

export async function arbiter(os: Os, argv: readonly string[], opts: ArbiterOptions): Promise<void> {
  // Signals are queued from the first instant: one that arrives while the
  // config loads would otherwise take its default action (HUP and TERM kill
  // us, TTIN stops us for good). Found by chaos (seeds 119, 268).
  const early: Signal[] = [];
  for (const sig of HANDLED) os.onSignal(sig, () => void (sig !== 'SIGCHLD' && early.length < QUEUE_MAX && early.push(sig)));
  let config: Config;
  try {
    config = await loadConfig(os, argv, opts.cpus);
  } catch (e) {
    os.stderr.write(`drover: ${e instanceof ConfigError ? e.message : String(e)}\n`);
    return os.exit(2);
  }
  // Both log files are opened here, before anything is bound or spawned: a
  // path that cannot be opened is a one-line reason and exit 2, not a stack
  // trace (error_log) or workers failing at boot for ever (access_log).
  const logs = logFileProblems(os, config);
  if (logs.length > 0) {
    os.stderr.write(logs.map((p) => `drover: ${p}\n`).join(''));
    return os.exit(2);
  }
  // The control socket's place is checked (its runtime directory made) before anything starts: a
  // directory others can write, or a socket of another user already there, is a one-line refusal.
  try {
    prepareControlPath(os, config.control_socket);
  } catch (e) {
    if (!(e instanceof ControlPathError)) throw e;
    os.stderr.write(`drover: ${e.message}\n`);
    return os.exit(2);
  }
  const code = await new Arbiter(os, config, argv, opts, early).run();
  os.exit(code);
}

class Arbiter {
  private log: Logger;
  private readonly workers = new Workers();
  private readonly spares = new Spares();
  private spareAt = 0; // no spare before this: the last one died unasked
  private spareFailures = 0; // spares in a row that died unasked
  private readonly silentSpares = new Set<number>(); // workers made from spares that have said nothing yet
  private listeners = new Map<string, Listener>();
  private generation = 1; // the generation serving now
  private lastGeneration = 1; // the newest one started (a reload may be booting it)
  private target: number;
  private reload: Reload | null = null;
  private readonly signals: Signal[] = [];
  private wake: (() => void) | null = null;
  private booted = false; // some worker of this arbiter has booted
  private respawnAt = 0; // backoff after workers that died before booting
  private bootFailures = 0;
  private spawnAt = 0; // no spawn before this: the OS refused the last one
  private spawnFailures = 0; // refusals in a row
  private halt: { code: number; reason: string } | null = null;
  private reloadAgain = false; // a HUP arrived while a reload was under way
  private loading = false; // a reload's config is being read (startReload)
  private loaded: { ok: true; config: Config } | { ok: false; why: string } | null = null; // ... and was read: applyLoaded's
  private reloadWaiters: ((r: { ok: true; generation: number } | { ok: false; error: string }) => void)[] = []; // drover ctl reload
  private scaling = initialScale();
  /** lastBeat: when it last said anything (its heartbeat); beat: the interval it was told; silent: killed for its silence, at this time. */
  private manager: { pid: number; channel: Channel | null; groups: number[]; lastBeat: number; beat: number; silent: number | null } | null = null;
  private managerAt = 0; // no manager (re)start before this
  private managerFailures = 0;
  private inherited = false; // listeners came from systemd, not from bind
  private readonly lanes: Lanes;
  private readonly metrics = new Metrics();
  private admin: Admin | null = null;
  private stopping = false;
  /** The pidfile this arbiter wrote (the config's may change at a reload): the one the stop removes. */
  private pidfile: string | null = null;
  private readied = false; // READY=1 sent for the first generation
  private lastStatus = '';
  private watchdogAt = 0;
  private rssRecycling: number | null = null; // the pid drained for max_worker_rss whose replacement is not serving yet
  private rssTooLow = 0; // the generation told that max_worker_rss is under what a worker holds once booted
  private ownBusy: { at: number; ms: number; elu: number | null } = { at: 0, ms: 0, elu: null };
  private laneDir: string | null = null; // slow workers' sockets, made when first needed
  // Made at once, served once run() has bound: it must know the manager even if the socket is only served later.
  private readonly control: Control;

  constructor(
    private readonly os: Os,
    private config: Config,
    private readonly argv: readonly string[],
    private readonly opts: ArbiterOptions,
    early: readonly Signal[] = [],
  ) {
    this.signals.push(...early);
    this.log = new Logger(os, new LogSink(os, config.error_log), config.log_level, { format: config.log_format, role: 'arbiter' });
    this.target = config.workers;
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const arb = this;
    this.lanes = new Lanes({
      os,
      get log() {
        return arb.log;
      },
      send: (pid, m) => this.workers.get(pid)?.channel?.send(m),
      idle: (pid) => this.workers.get(pid)?.channel?.send({ t: 'drain' } satisfies ToWorker),
      unreachable: (pid) => {
        // Draining, so manage() starts its replacement at once: it may run requests a long while yet (or be dead, unreaped).
        const w = this.workers.get(pid);
        if (!w) return;
        this.drain(w, 'unreachable');
        this.lanes.retire(w); // one already past draining (aborting) is not moved, and leaves the lane all the same
      },
      fastWorkers: () => this.workers.ofRole('fast'),
    });
    this.control = new Control(os, {
      stats: () => ({
        ...this.lanes.report(this.config, this.workers.ofRole('fast'), this.generation),
        processes: this.processRows(),
        spares: { ready: this.spares.counts(), wanted: this.sparesWanted() },
      }),
      companions: () => this.config.companions,
      version: VERSION,
      reload: () => this.ctlReload(),
      scale: (n) => this.ctlScale(n),
      // The logger is replaced when a reload changes the error log.
      log: { debug: (m) => this.log.debug(m), warning: (m) => this.log.warning(m), error: (m) => this.log.error(m) },
    });
  }

  async run(): Promise<number> {
    const { os, log } = this;
    os.setTitle(`${ARBITER_TITLE} [${basename(this.config.app)}]`);
    log.info(`Starting drover ${VERSION}`);
    for (const sig of HANDLED) {
      os.onSignal(sig, () => {
        if (sig !== 'SIGCHLD' && this.signals.length < QUEUE_MAX) this.signals.push(sig);
        this.poke();
      });
    }
    // The slow lane's sockets go in drover's private runtime directory: one
    // that is not ours alone refuses the start, before anything is written or bound.
    if (this.config.lanes) {
      try {
        ensureRuntimeDir(os, this.laneBase());
      } catch (e) {
        if (!(e instanceof RundirError)) throw e;
        log.error(e.message);
        return 2;
      }
    }
    // gunicorn's order: a live pid in the pidfile refuses the start before any socket is touched.
    if (this.config.pid) {
      try {
        const notice = writePidfile(os, this.config.pid, holderOn(os));
        if (notice !== null) log.warning(notice);
        this.pidfile = this.config.pid;
      } catch (e) {
        log.error((e as Error).message);
        return e instanceof PidfileError ? e.exitCode : 1;
      }
    }
    if (os.listeners.length > 0) {
      // systemd socket activation: the sockets are given, --bind does not apply.
      this.inherited = true;
      this.listeners = new Map(os.listeners.map((l) => [formatAddr(l.address), l]));
      log.info(`Using ${os.listeners.length} socket(s) from systemd (LISTEN_FDS); bind settings are ignored`);
    } else {
      try {
        this.listeners = await this.bind(this.config, new Map());
      } catch (e) {
        log.error((e as Error).message);
        if (this.pidfile) removePidfile(os, this.pidfile);
        return 1;
      }
    }
    // The address bound, not the one asked for: port 0 is the port the system gave.
    for (const l of this.listeners.values()) log.info(`Listening at: ${url(formatAddr(l.address))} (${os.pid})`);
    if (this.config.admin_bind !== null && !(await this.openAdmin(this.config.admin_bind))) {
      this.closeListeners(this.listeners);
      if (this.pidfile) removePidfile(os, this.pidfile);
      return 1;
    }
    this.lanes.open(this.generation, this.config);
    await this.openControl();

    let graceful: boolean | null = null;
    while (graceful === null && this.halt === null) {
      this.reap();
      while (this.signals.length > 0 && graceful === null) {
        const sig = this.signals.shift()!;
        this.log.info(`Handling signal: ${sig.slice(3).toLowerCase()}`);
        if (sig === 'SIGTERM') graceful = planted(this.os.hooks, 'arbiter-ignores-term') ? null : true;
        else if (sig === 'SIGINT' || sig === 'SIGQUIT') graceful = false;
        else await this.handle(sig);
      }
      if (graceful !== null || this.halt !== null) break;
      if (this.loaded !== null) await this.applyLoaded();
      this.checkReload();
      this.murder();
      this.autoscale();
      this.manage();
      this.notifyState();
      if (this.signals.length === 0) await this.sleep(this.tick());
    }
    if (this.halt) {
      this.log.critical(this.halt.reason);
      await this.stop(false);
      return this.halt.code;
    }
    await this.stop(graceful!);
    return 0;
  }

  // ----------------------------------------------------------------- signals

  private async handle(sig: Signal): Promise<void> {
    const { os, log, config } = this;
    switch (sig) {
      case 'SIGHUP':
        return this.startReload();
      case 'SIGTTIN':
      case 'SIGTTOU':
        // A hand on the dial: autoscaling keeps still for a while after it.
        this.scaling = { ...initialScale(), quietUntil: os.now() + COOLDOWN };
        if (sig === 'SIGTTOU') {
          if (this.target > config.min_workers) this.target--;
          else log.info(`TTOU: already at min_workers (${config.min_workers}); lower min_workers for TTOU to remove workers`);
        } else if (this.target < config.max_workers) this.target++;
        else log.info(`TTIN: already at max_workers (${config.max_workers}); raise max_workers (e.g. --max-workers ${config.max_workers * 2}) for TTIN to add workers`);
        return;
      case 'SIGUSR1': {
        // A log that cannot be reopened keeps its old file, here and in the
        // workers (LogSink.reopen); the access log's trouble is said here once.
        const own = log.sink.reopen();
        const access = logFileProblems(os, { error_log: '-', access_log: config.access_log }).map((p) => `${p}; the workers keep writing to the file open before`);
        for (const w of this.workers.all()) this.signal(w, 'SIGUSR1');
        if (this.manager) this.tryKill(this.manager.pid, 'SIGUSR1');
        for (const p of own === null ? access : [`error_log ${own}`, ...access]) log.error(`USR1: ${p}`);
        if (own === null && access.length === 0) log.info('Reopened log files');
        return;
      }
      default:
        os.stderr.write(`drover: unexpected signal ${sig}\n`);
    }
  }

  // ----------------------------------------------------------------- reload

  /**
   * Starts reading the config and returns: the loop goes on meanwhile
   * (signals, reaping, heartbeats), and applies it (applyLoaded) once it is
   * read. A JS config may await anything, and while it did the arbiter heard
   * no TERM and checked nothing; loadConfig gives up after LOAD_LIMIT_MS.
   */
  private startReload(): void {
    if (this.reload || this.loading) {
      // A storm of HUPs costs one more reload, not a string of half-booted
      // generations: the latest config is read when this one is done.
      this.reloadAgain = true;
      return;
    }
    this.loading = true;
    void loadConfig(this.os, this.argv, this.opts.cpus).then(
      (config) => void (this.loaded = { ok: true, config }),
      (e: unknown) => void (this.loaded = { ok: false, why: e instanceof Error ? e.message : String(e) }),
    ).finally(() => this.poke());
  }

  /** The config a reload read (startReload): start its generation, or fail it; then a HUP that came meanwhile. */
  private async applyLoaded(): Promise<void> {
    const loaded = this.loaded!;
    this.loaded = null;
    this.loading = false;
    if (!loaded.ok) this.reloadFailed(loaded.why);
    if (!loaded.ok || !(await this.startGeneration(loaded.config))) this.queuedReload();
  }

  /** Binds, opens and starts what the new config needs; false when the reload failed (said and settled). */
  private async startGeneration(next: Config): Promise<boolean> {
    const { os, log } = this;
    const logs = logFileProblems(os, next);
    if (logs.length > 0) {
      this.reloadFailed(logs.join('; '));
      return false;
    }
    const opened = new Map<string, Listener>();
    let listeners: Map<string, Listener>;
    try {
      listeners = await this.bind(next, opened);
    } catch (e) {
      this.closeListeners(opened);
      this.reloadFailed((e as Error).message);
      return false;
    }
    if (next.lanes) {
      // Lanes turned on by this reload: their runtime directory is checked as at start.
      try {
        ensureRuntimeDir(os, this.laneBase());
      } catch (e) {
        if (!(e instanceof RundirError)) throw e;
        this.closeListeners(opened);
        this.reloadFailed(e.message);
        return false;
      }
    }
    const generation = ++this.lastGeneration;
    // gunicorn resets the count to the configured one on HUP and forgets
    // TTIN/TTOU; we keep it unless the configured count itself changed.
    const target = next.workers !== this.config.workers ? next.workers : Math.min(next.max_workers, Math.max(next.min_workers, this.target));
    const slow = next.lanes ? next.slow_workers : 0;
    this.reload = { config: next, generation, listeners, opened, want: { fast: target, slow }, short: null, lost: 0, kept: next.workers === this.config.workers };
    log.info(`Reloading: starting ${target} worker(s)${slow > 0 ? ` and ${slow} slow-lane worker(s)` : ''} of generation ${generation}`);
    this.tell({ RELOADING: '1', STATUS: `reloading: generation ${generation} booting, generation ${this.generation} serving` });
    this.lanes.open(generation, next);
    this.startMissing(this.reload);
    return true;
  }

  /** Workers of the reload's generation its counts lack, fast and slow. */
  private missing(r: Reload): Record<'fast' | 'slow', number> {
    return { fast: r.want.fast - this.workers.active(r.generation).length, slow: r.want.slow - this.workers.active(r.generation, 'slow').length };
  }

  /**
   * Starts the workers the reload lacks: not started yet, refused by the OS
   * (they wait for the spawn backoff, see SPAWN_BACKOFF), or gone since (a
   * spare dead when given work, a worker that booted and then died or
   * retired): counted from the table, so no way out is forgotten (found by
   * chaos: a new worker killed while slow-lane spawns were refused, and the
   * reload finished without one).
   */
  private startMissing(r: Reload): void {
    let m = this.missing(r);
    while (m.fast > 0 && this.spawn(r.config, r.generation, r.listeners)) m = this.missing(r);
    while (m.fast === 0 && m.slow > 0 && this.spawnSlow(r.config, r.generation)) m = this.missing(r);
  }

  /**
   * Commits a reload once it has all the workers it wants and none of them
   * boots any more (one retiring may still drain); aborts one that cannot.
   */
  private checkReload(): void {
    const r = this.reload;
    if (!r) return;
    this.startMissing(r);
    const fresh = this.workers.of(r.generation);
    const timeout = r.config.timeout > 0 ? r.config.timeout : 30_000;
    const m = this.missing(r);
    // Only startMissing starts workers of this generation, never past `want`.
    assert(m.fast >= 0 && m.slow >= 0, () => `reload of generation ${r.generation} has more workers than it wants: ${JSON.stringify(m)} missing`);
    const lacking = m.fast + m.slow;
    const now = this.os.now();
    if (fresh.some((w) => w.state === 'booting' && now - w.spawnedAt > timeout)) {
      return this.abortReload(`new workers did not boot within ${timeout / 1000} s`);
    }
    if (r.lost > LOST_MAX * (r.want.fast + r.want.slow)) {
      return this.abortReload(`${r.lost} new workers died after they booted (their errors are above); the new app or config fails under requests`);
    }
    r.short = lacking === 0 ? null : (r.short ?? now);
    if (r.short !== null && now - r.short > RELOAD_SPAWN_MAX) {
      return this.abortReload(`${lacking} new worker(s) could not be started within ${RELOAD_SPAWN_MAX / 1000} s: the OS refused their spawn`);
    }
    // Its workers on their way out (retired by max_requests) finish as they would in any generation.
    if (lacking > 0 || fresh.some((w) => w.state === 'booting')) return;
    // A generation with no fast worker would serve nobody.
    assert(r.want.fast >= 1, () => `reload of generation ${r.generation} commits with ${r.want.fast} fast workers`);
    const old = this.config;
    this.config = r.config;
    this.generation = r.generation;
    // A TTIN or TTOU while it booted was applied to the old generation; it holds for the new one too.
    this.target = r.kept ? Math.min(r.config.max_workers, Math.max(r.config.min_workers, this.target)) : r.want.fast;
    for (const [name, l] of this.listeners) {
      if (r.listeners.has(name)) continue;
      l.close(); // the old workers keep their own hold until they have drained
      this.log.info(`Stopped listening at: ${name}`);
    }
    for (const l of r.opened.values()) this.log.info(`Listening at: ${url(formatAddr(l.address))} (${this.os.pid})`);
    this.listeners = r.listeners;
    if ((r.config.pid ?? null) !== this.pidfile) this.movePidfile(r.config.pid ?? null);
    if (old.error_log !== r.config.error_log || old.log_level !== r.config.log_level || old.log_format !== r.config.log_format) {
      this.log.sink.close();
      this.log = new Logger(this.os, new LogSink(this.os, r.config.error_log), r.config.log_level, { format: r.config.log_format, role: 'arbiter' });
    }
    // Old slow workers stay for the old fast workers until those are gone (see ended()).
    for (const w of this.workers.ofRole('fast')) if (w.generation < r.generation) this.drain(w, 'reload');
    this.metrics.reloads.ok++;
    this.reload = null;
    for (let g = 1; g < r.generation; g++) this.ended(g);
    this.log.info(`Reload finished: generation ${r.generation} serving, older workers draining`);
    this.tell({ READY: '1', STATUS: this.statusText() }, true);
    if (!this.reloadAgain) this.reloadSettled({ ok: true, generation: r.generation });
    if (this.control.path !== r.config.control_socket) void this.openControl();
    if (formatAdmin(old.admin_bind) !== formatAdmin(r.config.admin_bind)) void this.reopenAdmin(r.config.admin_bind);
    // Companions: the manager applies the same per-companion diff; unchanged ones keep running.
    if (this.manager) this.manager.channel?.send({ t: 'reread' } satisfies ToManager);
    this.queuedReload();
  }

  /**
   * A reload changed `pid`: the new pidfile is written, then the old one
   * removed (gunicorn moves it too). One that cannot be written is said, and
   * the old one stays: a service manager still finds the server.
   */
  private movePidfile(path: string | null): void {
    if (path !== null && !this.writePid(path)) return;
    if (this.pidfile !== null) removePidfile(this.os, this.pidfile);
    // The same file spelled another way (/var/run is /run, a doubled slash) went with the old one: again.
    if (path !== null && !this.os.fs.exists(path)) this.writePid(path);
    this.pidfile = path;
  }

  private writePid(path: string): boolean {
    try {
      const notice = writePidfile(this.os, path, holderOn(this.os));
      if (notice !== null) this.log.warning(notice);
      return true;
    } catch (e) {
      this.log.error(`${(e as Error).message}; the pidfile stays ${this.pidfile ?? 'unwritten'}`);
      return false;
    }
  }

  /** `drover ctl reload`: a HUP whose outcome the caller waits for. */
  private ctlReload(): Promise<{ ok: true; generation: number } | { ok: false; error: string }> {
    return new Promise((resolve) => {
      this.reloadWaiters.push(resolve);
      if (this.signals.length < QUEUE_MAX) this.signals.push('SIGHUP');
      this.poke();
    });
  }

  private reloadFailed(why: string): void {
    this.metrics.reloads.failed++;
    // systemd waits for READY=1 after RELOADING=1, failed or not: the old generation serves on.
    this.tell({ READY: "1", STATUS: `reload failed: ${why}; ${this.statusText()}` });
    const error = `reload failed, the running config stays in force: ${why}`;
    this.log.error(error);
    if (!this.reloadAgain) this.reloadSettled({ ok: false, error });
  }

  private reloadSettled(r: { ok: true; generation: number } | { ok: false; error: string }): void {
    const waiters = this.reloadWaiters;
    this.reloadWaiters = [];
    for (const w of waiters) w(r);
  }

  /** `drover ctl scale N`: as TTIN/TTOU, to a number, within the bounds. */
  private ctlScale(n: number): { ok: true; target: number; min: number; max: number } | { ok: false; error: string } {
    const { min_workers: min, max_workers: max } = this.config;
    if (n < min) return { ok: false, error: `scale: ${n} is below min_workers (${min}); lower min_workers in the config and reload first` };
    if (n > max) return { ok: false, error: `scale: ${n} is above max_workers (${max}); raise max_workers in the config and reload first` };
    this.scaling = { ...initialScale(), quietUntil: this.os.now() + COOLDOWN };
    if (n !== this.target) this.log.info(`Scale (drover ctl): workers ${this.target} -> ${n}`);
    this.target = n;
    this.poke();
    return { ok: true, target: n, min, max };
  }

  private queuedReload(): void {
    if (!this.reloadAgain) return;
    this.reloadAgain = false;
    this.signals.push('SIGHUP');
  }

  private abortReload(why: string): void {
    const r = this.reload!;
    this.reload = null;
    if (planted(this.os.hooks, 'reload-half-config')) this.target = r.config.workers;
    const now = this.os.now();
    for (const w of this.workers.of(r.generation)) {
      if (w.state === 'serving' || w.state === 'draining') {
        // Booted, so it may hold connections already: it finishes them (one retiring already goes on).
        this.drain(w, 'reload');
      } else {
        // Killed on purpose: its exit is not a boot failure.
        this.workers.move(w, 'aborting', now);
        w.cause = 'reload';
        this.signal(w, 'SIGKILL');
      }
    }
    this.lanes.close(r.generation);
    this.closeListeners(r.opened);
    this.reloadFailed(why);
    this.queuedReload();
  }

  // ----------------------------------------------------------------- workers

  /**
   * os.spawn, or null when the OS refused it (or refused one less than the
   * backoff ago): said in the log, the next try after the backoff. Only an
   * errno is a refusal; anything else (a process unwinding as it exits) is
   * not ours to catch.
   */
  private trySpawn(what: string, spec: SpawnSpec): Child | null {
    const now = this.os.now();
    if (now < this.spawnAt) return null;
    try {
      const child = this.os.spawn(spec);
      this.spawnFailures = 0;
      return child;
    } catch (e) {
      const code = (e as { code?: unknown } | null)?.code;
      if (typeof code !== 'string') throw e;
      const delay = Math.min(SPAWN_BACKOFF_MAX, SPAWN_BACKOFF * 2 ** this.spawnFailures++);
      this.spawnAt = now + delay;
      this.log.error(`cannot start a ${what}: ${(e as Error).message}; next attempt in ${delay} ms`);
      this.os.hooks.errorPath?.('spawn', code);
      this.os.hooks.spawnFailed?.(this.os.pid, 'program' in spec ? spec.program : (spec.command[0] ?? ''), delay);
      return null;
    }
  }

  private spawn(config: Config, generation: number, listeners: Map<string, Listener>): Worker | null {
    const { os } = this;
    // A spare needs no spawn, so the OS's refusals do not hold it back.
    if (os.now() < this.spawnAt && this.spares.count('fast') === 0) return null;
    const spec: WorkerSpec = {
      ...this.spec(config, generation),
      role: 'fast',
      lanes: this.lanes.has(generation) ? { slowThreshold: config.slow_threshold, slowRoutes: config.slow_routes, learned: this.lanes.learned(), bodyMax: config.slow_body_max, buffer: config.slow_buffer } : null,
    };
    const spare = this.takeSpare('fast', [...listeners.values()], spec);
    if (spare !== null) return spare;
    const child = this.trySpawn('worker', { program: 'worker', args: [JSON.stringify(spec)], listeners: [...listeners.values()], parentDeathSignal: WORKER_PDEATHSIG });
    if (child === null) return null;
    const w = this.workers.add(child.pid, child.channel, generation, os.now());
    child.channel?.onMessage((m) => this.message(w, m as ToArbiter));
    this.metrics.boots.fast++;
    this.log.info(`Booting worker with pid: ${child.pid}`);
    return w;
  }

  /** A slow-lane worker: no public socket, its own Unix socket; the access log is the fast worker's. */
  private spawnSlow(config: Config, generation: number): Worker | null {
    const { os } = this;
    if (os.now() < this.spawnAt && this.spares.count('slow') === 0) return null;
    let dir: string;
    try {
      dir = this.slowDir();
    } catch (e) {
      // Checked at start, so someone with our uid or root changed it since:
      // stop, rather than bind a lane socket where others may reach it.
      if (!(e instanceof RundirError)) throw e;
      this.halt ??= { code: 2, reason: e.message };
      return null;
    }
    const socket = this.lanes.socketPath(dir);
    const spec: WorkerSpec = { ...this.spec(config, generation), role: 'slow', laneSocket: socket, accessLog: null };
    const spare = this.takeSpare('slow', [], spec);
    if (spare !== null) return spare;
    const child = this.trySpawn('slow-lane worker', { program: 'slow-worker', args: [JSON.stringify(spec)], parentDeathSignal: WORKER_PDEATHSIG });
    if (child === null) return null;
    const w = this.workers.add(child.pid, child.channel, generation, os.now(), 'slow', socket);
    child.channel?.onMessage((m) => this.message(w, m as ToArbiter));
    this.metrics.boots.slow++;
    this.log.info(`Booting slow-lane worker with pid: ${child.pid}`);
    return w;
  }

  /**
   * A spare of `role` holding `listeners` becomes a worker of spec's
   * generation: it is sent its spec, and boots from there as a spawned one
   * does (boot timeout, boot errors, everything). Null when none fits.
   */
  private takeSpare(role: Role, listeners: readonly Listener[], spec: WorkerSpec): Worker | null {
    const s = this.spares.take(role, listeners);
    if (s === null) return null;
    if (!s.channel.send({ t: 'go', spec } satisfies ToWorker)) {
      // Dying already: its exit is reaped as any child's; a fresh spawn takes its place.
      this.tryKill(s.pid, 'SIGKILL');
      return null;
    }
    const w = this.workers.add(s.pid, s.channel, spec.generation, this.os.now(), role, role === 'slow' ? spec.laneSocket : null);
    s.to = (m) => this.message(w, m as ToArbiter);
    this.silentSpares.add(s.pid);
    this.metrics.boots[role]++;
    this.log.info(`Booting ${role === 'slow' ? 'slow-lane worker' : 'worker'} with pid: ${s.pid} (a spare)`);
    return w;
  }

  /**
   * Keeps spare_workers spares of each role (slow ones up to slow_workers,
   * with lanes on), holding the listeners a worker gets now. Starts them
   * only while nothing boots and nothing stops: a spare's start takes CPU
   * from a boot it cannot help (with steady churn the pool may stay short).
   */
  private keepSpares(): void {
    const { os } = this;
    if (this.stopping || this.reload || !this.booted || this.halt !== null) return;
    const listeners = [...this.listeners.values()];
    const want = this.sparesWanted();
    // Letting go costs no CPU, and a stale spare holds sockets nobody accepts from.
    for (const s of this.spares.unwanted(listeners, want)) this.tryKill(s.pid, 'SIGTERM');
    if (this.workers.all().some((w) => w.state === 'booting')) return;
    if (os.now() < this.spareAt || os.now() < this.spawnAt) return;
    for (const role of ['fast', 'slow'] as const) {
      while (this.spares.count(role) < want[role] && this.spawnSpare(role, role === 'fast' ? listeners : [])) {
        // one more
      }
    }
  }

  /** spare_workers of each role: slow ones up to slow_workers, with lanes on. */
  private sparesWanted(): Record<Role, number> {
    const { config } = this;
    return { fast: config.spare_workers, slow: this.lanes.has(this.generation) ? Math.min(config.spare_workers, config.slow_workers) : 0 };
  }

  private spawnSpare(role: Role, listeners: readonly Listener[]): Spare | null {
    const child = this.trySpawn(role === 'slow' ? 'spare slow-lane worker' : 'spare worker', {
      program: role === 'slow' ? 'slow-worker' : 'worker',
      args: [SPARE],
      listeners: [...listeners],
      parentDeathSignal: WORKER_PDEATHSIG,
    });
    if (child === null) return null;
    if (child.channel === null) {
      // Programs get a channel unless asked otherwise; one without could never be given work.
      this.tryKill(child.pid, 'SIGKILL');
      return null;
    }
    this.log.info(`Spare ${role === 'slow' ? 'slow-lane worker' : 'worker'} started with pid: ${child.pid}`);
    return this.spares.add(child.pid, role, child.channel, listeners, this.os.now());
  }

  /**
   * A spare's exit: expected when we let it go, or when a stop signal that
   * reached it too (a terminal's Ctrl-C goes to the whole group) waits for
   * the loop; otherwise the next one waits, longer each time in a row.
   */
  private spareExited(s: Spare, e: Exited): void {
    if (s.leaving || this.signals.some((sig) => sig === 'SIGTERM' || sig === 'SIGINT' || sig === 'SIGQUIT')) return;
    // One that lived as long as the longest wait was not one of a row.
    if (this.os.now() - s.startedAt >= SPARE_BACKOFF_MAX) this.spareFailures = 0;
    const delay = this.spareDied();
    const how = e.signal ? `was killed by ${e.signal}` : `exited with code ${e.code}`;
    this.log.warning(`Spare worker ${s.pid} ${how} before it was given work; next spare in ${delay / 1000} s`);
  }

  /** The next spare waits: SPARE_BACKOFF, doubling for each spare in a row that died. */
  private spareDied(): number {
    const delay = Math.min(SPARE_BACKOFF_MAX, SPARE_BACKOFF * 2 ** this.spareFailures++);
    this.spareAt = this.os.now() + delay;
    return delay;
  }

  /**
   * The runtime directory (rundir.ts) that holds the lane directory: the
   * usual one, else /tmp/drover-<uid> when $XDG_RUNTIME_DIR is too deep for
   * .../lanes-<pid>/slow-NNNNNN.sock to fit the OS limit on a socket path.
   */
  private laneBase(): string {
    return runtimeDirFor(this.os.env, this.os.uid, `lanes-${this.os.pid}`, 20);
  }

  /**
   * The private directory of the slow workers' sockets: lanes-<pid> in
   * drover's runtime directory, 0700. Both are checked with lstat at every
   * use (RundirError if either is not ours alone); a missing one (a /tmp
   * cleaner took it) is made again.
   */
  private slowDir(): string {
    const { os } = this;
    const base = ensureRuntimeDir(os, this.laneBase());
    const dir = join(base, `lanes-${os.pid}`);
    if (this.laneDir === null) this.removeStaleLaneDirs(base);
    try {
      os.fs.mkdir(dir, { mode: 0o700 });
    } catch (e) {
      if ((e as { code?: string }).code !== 'EEXIST') throw new RundirError(`cannot create the slow lane's socket directory ${dir}: ${(e as Error).message}`);
    }
    checkPrivateDir(os, dir, "the slow lane's socket directory");
    return (this.laneDir = dir);
  }

  /**
   * An arbiter that was SIGKILLed could not remove its directory: the next
   * one does, once its pid is dead. Only in the runtime directory, which is
   * ours alone; one named for our own pid is a dead arbiter's whose pid we
   * were given (ours is made after this).
   */
  private removeStaleLaneDirs(base: string): void {
    let names: string[];
    try {
      names = this.os.fs.readdir(base);
    } catch {
      return;
    }
    for (const name of names) {
      const m = /^lanes-(\d+)$/.exec(name);
      if (!m || (Number(m[1]) !== this.os.pid && this.os.alive(Number(m[1])))) continue;
      try {
        this.os.fs.rmdir(join(base, name), { recursive: true });
      } catch {
        // gone already
      }
    }
  }

  private spec(config: Config, generation: number): Omit<WorkerSpec, 'role' | 'lanes' | 'laneSocket'> & { lanes: null; laneSocket: null } {
    const { os } = this;
    const jitter = config.max_requests_jitter > 0 ? Math.floor(os.random() * (config.max_requests_jitter + 1)) : 0;
    return {
      app: isAbsolute(config.app) ? config.app : resolve(os.cwd(), config.app),
      generation,
      lanes: null,
      laneSocket: null,
      keepAlive: config.keep_alive,
      clients: { headerTimeout: config.client_header_timeout, bodyTimeout: config.client_body_timeout, sendTimeout: config.send_timeout, maxConnections: config.worker_connections, requestTimeout: config.request_timeout },
      gracefulTimeout: config.graceful_timeout,
      heartbeat: heartbeatMs(config.timeout),
      maxRequests: config.max_requests > 0 ? config.max_requests + jitter : 0,
      accessLog: config.access_log,
      errorLog: config.error_log,
      logLevel: config.log_level,
      logFormat: config.log_format,
      forwardedAllowIps: config.forwarded_allow_ips,
    };
  }

  private message(w: Worker, m: ToArbiter): void {
    // Node may hand over a child's last IPC messages after its 'exit': one
    // already reaped says nothing any more (a lane-want then would be given
    // a slot nobody frees), except that it did boot.
    if (this.workers.get(w.pid) !== w) {
      if (m.t === 'booted') this.bootedOnce();
      return;
    }
    const now = this.os.now();
    w.lastBeat = now;
    // A spare that speaks was alive when it was given work (see exited).
    if (this.silentSpares.delete(w.pid)) this.spareFailures = 0;
    switch (m.t) {
      case 'booted':
        if (!this.workers.move(w, 'serving', now)) return;
        this.bootedOnce();
        if (w.role === 'slow') this.lanes.slowReady(w, w.socket!);
        if (this.reload || !this.readied) this.poke(); // a reload to commit, or READY=1 to send
        return;
      case 'hb':
        if (w.busy && now > w.busy.at) w.load = Math.min(1, Math.max(0, (m.busy - w.busy.ms) / (now - w.busy.at)));
        w.busy = { at: now, ms: m.busy };
        return this.counts(w, m);
      case 'stats':
        return this.counts(w, m);
      case 'boot-error':
        w.bootError = m.message;
        return;
      case 'retiring':
        w.served = m.served;
        if (w.role === 'slow') {
          // It does not stop by itself: first no more requests, then a drain once idle.
          if (w.state === 'serving') this.drain(w, 'max_requests');
          this.poke();
        } else if (this.workers.move(w, 'draining', now)) {
          w.cause = 'max_requests';
          this.poke(); // its replacement starts now
        }
        return;
      case 'lane-want':
        return this.lanes.want(w, m.seq, typeof m.key === 'number' ? m.key : undefined);
      case 'lane-cancel':
        return this.lanes.cancel(w, m.seq);
      case 'lane-done':
        return this.lanes.done(w, m.seq);
      case 'lane-refused':
        return this.lanes.refused(w, m.seq);
      case 'lane-cut':
        return this.lanes.cut(w, m.seq);
      case 'lane-let-go':
        return this.lanes.letGo(w, Array.isArray(m.ids) ? m.ids : []);
      case 'route':
        this.os.hooks.route?.(String(m.route), m.slow === true, Number(m.avgMs));
        return this.lanes.route(w, m);
    }
  }

  /** What a heartbeat or a stats report says of a worker's requests and memory. */
  private counts(w: Worker, m: Omit<Extract<ToArbiter, { t: 'stats' }>, 't'> & { rss?: number }): void {
    w.inflight = m.inflight;
    w.served = m.served;
    w.slowServed = m.slow ?? 0;
    if (m.counters && Array.isArray(m.counters.codes)) w.counters = m.counters;
    // Heartbeats carry the resident size; stats reports do not.
    if (typeof m.rss !== 'number') return;
    w.rss = m.rss;
    w.rssFirst ??= m.rss;
    this.checkRss(w);
  }

  /** A worker booted: the app loads (boot errors no longer halt), and the boot backoff starts over. */
  private bootedOnce(): void {
    this.booted = true;
    this.bootFailures = 0;
  }

  /**
   * Gentle stop of one worker: it finishes what it has, closes nothing under
   * a client. A slow worker first stops getting requests; the drain message
   * goes once it runs none (lanes.ts calls idle).
   */
  private drain(w: Worker, cause: ExitCause): void {
    if (!this.workers.move(w, 'draining', this.os.now())) return;
    w.cause ??= cause;
    if (w.role === 'slow') this.lanes.retire(w);
    else w.channel?.send({ t: 'drain' } satisfies ToWorker);
  }

  private signal(w: Worker, sig: Signal): void {
    this.tryKill(w.pid, sig);
  }

  private tryKill(pid: number, sig: Signal): void {
    try {
      this.os.kill(pid, sig);
    } catch {
      // exited already; the reap will tell
    }
  }

  private reap(): void {
    if (planted(this.os.hooks, 'arbiter-skips-reap')) return;
    for (;;) {
      let e: Exited | null;
      try {
        e = this.os.waitpid(-1);
      } catch {
        return; // ECHILD: no children
      }
      if (e === null) return;
      if (e.pid === this.manager?.pid) this.managerExited(e);
      const s = this.spares.remove(e.pid);
      if (s !== null) this.spareExited(s, e);
      const w = this.workers.remove(e.pid);
      if (w) {
        this.metrics.retire(w.counters);
        this.metrics.exited(w.role, w.cause ?? (this.stopping ? 'stop' : e.signal ? 'signal' : e.code === 0 ? 'exit' : 'error'));
        if (this.rssRecycling === w.pid) this.rssRecycling = null;
        if (w.role === 'fast') this.lanes.fastGone(w);
        else {
          this.lanes.slowGone(w);
          this.removeSocket(w.socket!);
        }
        this.exited(w, e);
        this.ended(w.generation);
      }
    }
  }

  /**
   * An older generation whose last fast worker is gone: its slow workers have
   * nobody left to serve. Once no worker of it is left, its lane is dropped.
   */
  private ended(generation: number): void {
    if (generation === this.generation || generation === this.reload?.generation) return;
    const mine = this.workers.of(generation);
    if (mine.some((w) => w.role === 'fast')) return;
    this.lanes.close(generation);
    for (const w of mine) this.drain(w, 'reload');
    if (mine.length === 0) this.lanes.forget(generation);
  }

  private removeSocket(path: string): void {
    try {
      if (this.os.fs.exists(path)) this.os.fs.unlink(path);
    } catch {
      // gone already
    }
  }

  // ----------------------------------------------------------------- companions

  /**
   * The companion manager runs while the config lists companions. It beats
   * as a worker does; one silent for `timeout` (hung, or SIGSTOPped) is
   * killed with its companions' groups, and its exit takes the usual path:
   * logged, then restarted after the backoff.
   */
  private superviseManager(): void {
    if (this.manager) return this.watchManager(this.manager);
    if (this.config.companions.length === 0 || this.os.now() < this.managerAt) return;
    const beat = this.managerBeat();
    const c = this.config;
    const spec: ManagerSpec = {
      argv: this.argv, cpus: this.opts.cpus, arbiter: this.os.pid, heartbeat: beat,
      config: { companions: c.companions, error_log: c.error_log, log_level: c.log_level, log_format: c.log_format },
    };
    const child = this.trySpawn('companion manager', { program: 'companion-manager', args: [JSON.stringify(spec)] });
    if (child === null) return;
    const m = { pid: child.pid, channel: child.channel, groups: [] as number[], lastBeat: this.os.now(), beat, silent: null };
    this.control.setManager(child.channel);
    child.channel?.onMessage((msg) => {
      // Anything it says shows it alive, a control reply as well as a heartbeat.
      m.lastBeat = this.os.now();
      if (this.control.fromManager(msg)) return;
      const r = msg as ManagerReport;
      if (r.t === 'groups') {
        m.groups = r.pgids;
        // Its last messages may come after its exit was reaped (Node hands
        // them over late, the simulator too): groups a dead manager reports
        // are killed as managerExited kills the ones it knew of. Found by
        // chaos (parent-death, seed 0x15ac1c77af5f0e8b).
        if (this.manager !== m) for (const pgid of r.pgids) this.tryKill(-pgid, 'SIGKILL');
      }
      else if (r.t === 'ready') this.managerFailures = 0;
    });
    this.manager = m;
    this.log.info(`Booting companion manager with pid: ${child.pid}`);
  }

  /** As a worker's: every min(1000, timeout / 4) ms, 50 at the least (1 s when timeout is 0). */
  private managerBeat(): number {
    return heartbeatMs(this.config.timeout);
  }

  /** A manager silent for `timeout` (0: never) is KILLed, and its companions' groups with it: it cannot stop them itself. */
  private watchManager(m: NonNullable<Arbiter['manager']>): void {
    const now = this.os.now();
    const beat = this.managerBeat();
    if (m.beat !== beat) {
      // A reload changed `timeout`: the manager beats at the new pace, and is
      // judged by the new timeout from now on (not by beats at the old pace).
      m.beat = beat;
      m.lastBeat = now;
      m.channel?.send({ t: 'heartbeat', ms: beat } satisfies ToManager);
    }
    const { timeout } = this.config;
    if (m.silent !== null || timeout <= 0 || now - m.lastBeat <= timeout || planted(this.os.hooks, 'no-manager-heartbeat')) return;
    m.silent = now;
    this.log.error(`COMPANION MANAGER TIMEOUT (pid:${m.pid}): silent for ${((now - m.lastBeat) / 1000).toFixed(1)} s; killing it and its ${m.groups.length} companion group(s)`);
    this.tryKill(m.pid, 'SIGKILL');
    for (const pgid of m.groups) this.tryKill(-pgid, 'SIGKILL');
  }

  private managerExited(e: Exited): void {
    const m = this.manager!;
    this.manager = null;
    this.control.setManager(null);
    const how = (e.signal ? `was killed by ${e.signal}` : `exited with code ${e.code}`) + (m.silent !== null ? ' after its timeout' : '');
    // What it supervised dies with it: no companion, nor anything a
    // companion forked, outlives its manager.
    for (const pgid of m.groups) {
      try {
        this.os.kill(-pgid, 'SIGKILL');
      } catch {
        // that group is gone already
      }
    }
    const left = m.groups.length > 0 ? `; killed ${m.groups.length} companion group(s) it left` : '';
    if (this.managerAt === Infinity) {
      this.log.info(`Companion manager ${m.pid} ${how}${left}`); // we are stopping
      return;
    }
    this.managerFailures++;
    const delay = Math.min(30_000, 1000 * 2 ** (this.managerFailures - 1));
    this.managerAt = this.os.now() + delay;
    this.log.error(`Companion manager ${m.pid} ${how}${left}; restarting in ${delay / 1000} s`);
    this.os.hooks.managerGone?.(this.os.pid, m.pid, delay);
  }

  private exited(w: Worker, e: Exited): void {
    const { log } = this;
    const how = e.signal ? `was killed by ${e.signal}` : `exited with code ${e.code}`;
    if (this.silentSpares.delete(w.pid) && w.state === 'booting') {
      // A spare that died before it said a word (dead already, unreaped, when
      // it was given work, or killed since): neither the app's fault nor the
      // config's, so no boot failure and no failed reload. A fresh worker
      // takes its place; if that one dies too, it is a boot failure as usual.
      log.warning(`Worker ${w.pid} (a spare) ${how} before it said anything; starting another in its place`);
      this.spareDied();
      return;
    }
    // Never booted: it died booting, or was killed for not booting in time
    // (murder: cause timeout; a failed reload's, killed on purpose, has cause reload).
    const unbooted = w.state === 'booting' || (w.state === 'aborting' && w.cause === 'timeout' && w.bootError !== null);
    if (this.stopping && unbooted) {
      // The stop's own signal, most likely: no boot failure, and no next attempt.
      log.info(`Worker ${w.pid} ${how} before it booted: drover is stopping`);
      return;
    }
    // Asked to go, or killed on purpose (a failed reload's): no error of its own.
    if (w.state === 'draining' || w.cause === 'reload' || (e.code === 0 && e.signal === null)) log.info(`Worker ${w.pid} ${how}`);
    else log.error(`Worker ${w.pid} ${how}`);
    // Replaced within its reload (startMissing), up to LOST_MAX.
    if (w.state === 'serving' && this.reload && w.generation === this.reload.generation) this.reload.lost++;
    // Only the serving generation's boots and the reload's count: one of a reload that failed already is no one's.
    if (!unbooted || (w.generation !== this.generation && w.generation !== this.reload?.generation)) return;
    const bootCode = e.code === EXIT_APP_LOAD || e.code === EXIT_BOOT ? e.code : null;
    const reason = w.bootError ?? `${w.role === 'slow' ? 'slow-lane ' : ''}worker ${w.pid} ${how} before it booted`;
    if (this.reload && w.generation === this.reload.generation) {
      this.abortReload(reason);
    } else if (!this.booted && bootCode !== null) {
      // Never booted, cannot boot: stop with the reason instead of respawning forever.
      this.halt = { code: bootCode, reason: `Worker failed to boot, shutting down: ${reason}` };
    } else {
      this.bootFailures++;
      const delay = Math.min(30_000, 1000 * 2 ** (this.bootFailures - 1));
      this.respawnAt = this.os.now() + delay;
      log.error(`${reason}; next attempt in ${delay / 1000} s`);
    }
  }

  /** Timeouts: a silent worker gets ABRT, then KILL; a drain past its deadline gets KILL. */
  private murder(): void {
    const now = this.os.now();
    const { graceful_timeout } = this.config;
    for (const w of this.workers.all()) {
      // A reload's workers by its own config: the HUP that deploys a slower boot may raise timeout with it.
      const timeout = w.generation === this.reload?.generation ? this.reload.config.timeout : this.config.timeout;
      if (w.state === 'aborting') {
        if (now - w.since >= KILL_GRACE) this.signal(w, 'SIGKILL');
      } else if (timeout > 0 && now - w.lastBeat > timeout) {
        if (w.state === 'booting') {
          // Its app never finished loading (a factory waiting on something that does not come): a boot failure, not a hang (exited()).
          if (w.bootError === null) {
            w.bootError = `worker ${w.pid} did not boot within ${timeout / 1000} s (the app's module or factory never finished: see what it waits for)`;
            this.os.hooks.bootTimedOut?.(this.os.pid, w.pid, w.bootError);
          }
        } else {
          this.log.critical(`WORKER TIMEOUT (pid:${w.pid}): silent for ${((now - w.lastBeat) / 1000).toFixed(1)} s`);
        }
        this.workers.move(w, 'aborting', now);
        w.cause = 'timeout';
        this.signal(w, 'SIGABRT');
      } else if (w.state === 'draining' && now - w.since > graceful_timeout + KILL_GRACE) {
        this.workers.move(w, 'aborting', now);
        this.signal(w, 'SIGKILL');
      }
    }
  }

  /** Moves the target within [min, max] by the serving workers' own load reports. */
  private autoscale(): void {
    const { config } = this;
    if (this.reload || config.min_workers >= config.max_workers) return;
    const loads = this.workers.active(this.generation).flatMap((w) => (w.state === 'serving' && w.load !== null ? [w.load] : []));
    const load = loads.length === 0 ? null : loads.reduce((a, b) => a + b, 0) / loads.length;
    const r = scale(this.scaling, { now: this.os.now(), target: this.target, min: config.min_workers, max: config.max_workers, load });
    this.scaling = r.state;
    if (r.target !== this.target) {
      this.log.info(`Autoscale: mean load ${load!.toFixed(2)}, workers ${this.target} -> ${r.target}`);
      this.target = r.target;
    }
  }

  /** Brings the current generation to the target. */
  private manage(): void {
    this.superviseManager();
    const active = this.workers.active(this.generation);
    const slowTarget = this.lanes.has(this.generation) ? this.config.slow_workers : 0;
    const slow = this.workers.active(this.generation, 'slow');
    // While a reload boots, the serving generation still gets back the
    // workers it loses (a crash, a timeout, max_requests): it would otherwise
    // go without any until the next one booted, for up to `timeout`. They
    // load what is on disk now, and go at the commit with the rest.
    // A worker killed for not booting holds its place until its exit is in,
    // which sets the boot backoff (exited()): refilled as it is killed, there
    // was a boot every `timeout` under a log that said "next attempt in N s".
    const bootKilled = (role: Role) => this.workers.all().filter((w) => w.role === role && w.generation === this.generation && w.state === 'aborting' && w.cause === 'timeout' && w.bootError !== null).length;
    const fast = active.length + bootKilled('fast');
    const slowHeld = slow.length + bootKilled('slow');
    if (fast < this.target || slowHeld < slowTarget) {
      if (this.os.now() < this.respawnAt) return;
      for (let i = fast; i < this.target; i++) if (!this.spawn(this.config, this.generation, this.listeners)) break;
      if (!planted(this.os.hooks, 'arbiter-no-slow-respawn') || !this.booted) for (let i = slowHeld; i < slowTarget; i++) if (!this.spawnSlow(this.config, this.generation)) break;
    }
    if (this.reload) return; // no scaling down, no spares: the reload decides the next counts
    if (active.length > this.target) {
      const surplus = active.sort((a, b) => a.spawnedAt - b.spawnedAt).slice(0, active.length - this.target);
      for (const w of surplus) this.drain(w, 'scale');
    }
    this.keepSpares();
  }

  // ----------------------------------------------------------------- stop

  /** At graceful_timeout: KILL for the workers (of `role`, or all) and spares still there. */
  private killWorkersLeft(role?: 'fast' | 'slow'): void {
    for (const w of role === undefined ? this.workers.all() : this.workers.ofRole(role)) {
      this.log.warning(`Worker ${w.pid} still running after graceful_timeout: KILL`);
      this.signal(w, 'SIGKILL');
    }
    for (const s of this.spares.letAllGo()) {
      this.log.warning(`Spare worker ${s.pid} still running after graceful_timeout: KILL`);
      this.tryKill(s.pid, 'SIGKILL');
    }
  }

  private async stop(graceful: boolean): Promise<void> {
    const { os, log } = this;
    log.info(graceful ? 'Shutting down gracefully' : 'Shutting down quickly');
    this.stopping = true; // /readyz says 503 from here on
    this.tell({ STOPPING: '1', STATUS: graceful ? 'stopping gracefully' : 'stopping' });
    if (this.reload) {
      this.closeListeners(this.reload.opened);
      this.reload = null;
    }
    // Our hold goes first: workers keep theirs until they close, and a Unix
    // path disappears so that new clients fail fast instead of waiting.
    this.closeListeners(this.listeners);
    // Slow workers serve the fast ones: on a graceful stop they go once no
    // fast worker is left to hand them a request (or at the deadline).
    for (const w of this.workers.all()) if (!graceful || w.role === 'fast') this.signal(w, graceful ? 'SIGTERM' : 'SIGQUIT');
    // A spare has nothing to finish.
    for (const s of this.spares.letAllGo()) this.tryKill(s.pid, 'SIGTERM');
    let slowSignalled = !graceful;
    // The manager stops its companions (stop signal, deadline, KILL) and exits.
    this.managerAt = Infinity;
    const m = this.manager;
    if (m) this.tryKill(m.pid, graceful ? 'SIGTERM' : 'SIGQUIT');
    const workersLeft = () => this.workers.size > 0 || this.spares.size > 0;
    const left = () => workersLeft() || this.manager !== null;
    const deadline = os.now() + this.config.graceful_timeout;
    const managerDeadline = os.now() + managerStopMs(this.config);
    let workersKilled = false;
    // Slow workers asked at (or just before) the deadline, as the last fast
    // worker goes, get KILL_GRACE to exit on their own: an idle one does at once.
    let slowDeadline = deadline;
    let slowKilled = false;
    const askSlow = () => {
      slowSignalled = true;
      slowDeadline = Math.max(deadline, os.now() + KILL_GRACE);
      for (const w of this.workers.ofRole('slow')) this.signal(w, 'SIGTERM');
    };
    while (left() && os.now() < Math.max(deadline, managerDeadline, slowSignalled ? slowDeadline : Infinity)) {
      // An operator who will not wait escalates, as with nginx or a second Ctrl-C: INT or QUIT turns a graceful stop quick.
      for (const sig of this.signals.splice(0)) {
        if (graceful && (sig === 'SIGINT' || sig === 'SIGQUIT')) {
          graceful = false;
          log.info(`Handling signal: ${sig.slice(3).toLowerCase()}: stopping quickly instead`);
          for (const w of this.workers.all()) this.signal(w, 'SIGQUIT');
          if (this.manager) this.tryKill(this.manager.pid, 'SIGQUIT');
          slowSignalled = true;
        } else {
          log.info(`Ignoring signal: ${sig.slice(3).toLowerCase()}: drover is stopping`);
        }
      }
      if (!slowSignalled && this.workers.ofRole('fast').length === 0) askSlow();
      if (!workersKilled && os.now() >= deadline) {
        workersKilled = true;
        // Fast workers held the stop to here: the slow ones were never asked.
        if (!slowSignalled) askSlow();
        this.killWorkersLeft('fast');
      }
      if (!slowKilled && os.now() >= slowDeadline) {
        slowKilled = true;
        this.killWorkersLeft('slow');
      }
      if (!workersLeft() && this.manager !== null) await this.sleep(Math.min(100, Math.max(1, managerDeadline - os.now())));
      else await this.sleep(slowSignalled ? 100 : 20);
      this.reap();
    }
    this.killWorkersLeft();
    if (this.manager) {
      log.warning(`Companion manager ${this.manager.pid} still running after graceful_timeout and its companions' stop_timeout: KILL`);
      this.tryKill(this.manager.pid, 'SIGKILL');
    }
    const killDeadline = os.now() + 5000;
    while (left() && os.now() < killDeadline) {
      await this.sleep(20);
      this.reap();
    }
    this.lanes.stop();
    this.control.close();
    this.admin?.close();
    if (this.laneDir !== null) {
      try {
        os.fs.rmdir(this.laneDir, { recursive: true });
      } catch {
        // a socket file of a worker that could not be killed; nothing else to do
      }
    }
    if (this.pidfile) removePidfile(os, this.pidfile);
    log.info('Shutdown complete');
  }

  // ----------------------------------------------------------------- sockets

  /**
   * The control socket (drover ctl). Not being able to serve it does not
   * stop the server: two drovers in one directory share a default path,
   * and the second one serves without `drover ctl`, saying so.
   */
  private async openControl(): Promise<void> {
    const path = this.config.control_socket;
    try {
      await this.control.listen(path);
      this.log.info(`Control socket: ${path} (drover ctl)`);
    } catch (e) {
      this.log.warning(`control socket ${path} not served, drover ctl will not reach this server: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /** Listeners for every bind of `config`: kept from `this.listeners` where the address is unchanged, new ones added to `opened`. */
  private async bind(config: Config, opened: Map<string, Listener>): Promise<Map<string, Listener>> {
    if (this.inherited) return new Map(this.listeners);
    const out = new Map<string, Listener>();
    for (const addr of config.bind) {
      const name = formatAddr(addr);
      const have = this.listeners.get(name);
      if (have) {
        out.set(name, have);
        continue;
      }
      try {
        const l = await this.os.listen(addr, isUnix(addr) ? { mode: 0o660 } : {});
        opened.set(name, l);
        out.set(name, l);
      } catch (e) {
        throw new Error(`cannot listen at ${name}: ${(e as Error).message}`);
      }
    }
    return out;
  }

  private closeListeners(ls: Map<string, Listener>): void {
    for (const l of ls.values()) l.close();
    ls.clear();
  }

  // ----------------------------------------------------------------- admin

  /** The admin listener at `addr`; false (said in the log) when it cannot listen there. */
  private async openAdmin(addr: Addr): Promise<boolean> {
    const admin = await this.listenAdmin(addr);
    if (typeof admin === 'string') {
      this.log.error(admin);
      return false;
    }
    this.admin = admin;
    this.log.info(`Admin listener at: ${url(this.admin!.address!)} (/metrics, /healthz, /readyz)`);
    return true;
  }

  /** An admin listener at `addr`, or why not (one line naming admin_bind and the fix). */
  private async listenAdmin(addr: Addr): Promise<Admin | string> {
    const admin = new Admin(this.os, { metrics: () => this.scrape(), ready: () => this.ready() });
    try {
      await admin.listen(addr);
      return admin;
    } catch (e) {
      // The Os's own words for EADDRINUSE speak of --bind: this address is admin_bind's.
      if ((e as { code?: unknown }).code === 'EADDRINUSE') return `cannot listen at admin_bind ${formatAddr(addr)}: the address is in use; stop what holds it or choose another admin_bind (--admin-bind)`;
      return `cannot listen at admin_bind ${formatAddr(addr)}: ${(e as Error).message}; choose another admin_bind (--admin-bind)`;
    }
  }

  /**
   * A reload changed admin_bind: the new listener first, then the old one
   * goes, so that a new address that cannot be had leaves the probes their
   * old one (said in the log) rather than nothing. The same port on another
   * address (127.0.0.1:9464 to 0.0.0.0:9464) cannot be held twice: then the
   * old one goes first, and comes back if the new one still fails.
   */
  private async reopenAdmin(addr: Addr | null): Promise<void> {
    const old = this.admin;
    const was = old?.at ?? null;
    if (addr === null) {
      old?.close();
      this.admin = null;
      return;
    }
    let next = await this.listenAdmin(addr);
    if (typeof next === 'string' && old !== null && samePort(was, addr)) {
      old.close();
      this.admin = null;
      next = await this.listenAdmin(addr);
      if (typeof next === 'string') {
        const back = await this.listenAdmin(was!);
        if (typeof back !== 'string') this.admin = back;
      }
    }
    if (typeof next === 'string') {
      this.log.error(`${next}; ${this.admin !== null ? `the admin listener stays at ${this.admin.address}` : 'no admin listener now'}`);
      return;
    }
    if (this.admin === old) old?.close();
    this.admin = next;
    this.log.info(`Admin listener at: ${url(this.admin!.address!)} (/metrics, /healthz, /readyz)`);
  }

  /** /readyz: a fast worker of the serving generation serves, and we are not stopping. */
  private ready(): boolean {
    return !this.stopping && this.workers.active(this.generation).some((w) => w.state === 'serving');
  }

  private processRows(): ProcessRow[] {
    const now = this.os.now();
    const rows = this.workers.all().map((w) => ({
      pid: w.pid, role: w.role, generation: w.generation, state: w.state, rss: w.rss, served: w.served, inflight: w.inflight, elu: w.load, uptimeMs: now - w.spawnedAt,
    }));
    return rows.sort((a, b) => (a.role === b.role ? a.pid - b.pid : a.role === 'fast' ? -1 : 1));
  }

  private async scrape(): Promise<string> {
    const { os } = this;
    const now = os.now();
    const busy = os.loopBusy();
    const b = this.ownBusy;
    // The arbiter's own utilisation, between scrapes (the first has nothing to compare with).
    const elu = b.at > 0 && now - b.at >= 100 ? Math.min(1, Math.max(0, (busy - b.ms) / (now - b.at))) : b.elu;
    if (b.at === 0 || now - b.at >= 100) this.ownBusy = { at: now, ms: busy, elu };
    const report = this.lanes.report(this.config, this.workers.ofRole('fast'), this.generation);
    const companions = this.config.companions.length === 0 ? null : await this.companionSample();
    return exposition({
      version: VERSION,
      arbiter: { pid: os.pid, rss: os.rss(), elu },
      generation: this.generation,
      processes: this.processRows(),
      totals: this.metrics.totals(this.workers.all().map((w) => w.counters)),
      metrics: this.metrics,
      queues: report.generations.flatMap((g) => (g.slow === null ? [] : [{ generation: g.generation, queued: g.slow.queued, running: g.slow.running }])),
      laneShed: this.lanes.shedTotals(),
      slowRoutes: report.slowRoutes.length,
      spares: this.spares.counts(),
      companions,
    });
  }

  /** The companions' states, from the manager; a manager that does not answer within a second shows as down. */
  private async companionSample(): Promise<{ up: boolean; list: { name: string; state: string; exits: number }[] }> {
    const r = await this.control.ask({ cmd: 'status', name: 'all' }, 1000);
    if (!r.ok || !('companions' in r)) return { up: false, list: [] };
    return { up: true, list: r.companions.map((c: { name: string; state: string; exits: number }) => ({ name: c.name, state: c.state, exits: c.exits })) };
  }

  /** max_worker_rss: one worker at a time is drained and replaced, as max_requests does it. */
  private checkRss(w: Worker): void {
    const max = this.config.max_worker_rss;
    if (max <= 0 || w.rss === null || w.rss <= max || w.state !== 'serving' || this.rssRecycling !== null || this.reload) return;
    const mib = (n: number) => `${(n / 1024 ** 2).toFixed(1)} MiB`;
    // Over it at its first report: the app holds that much once booted, and
    // every replacement would start over it too - a worker recycled as soon
    // as it serves, for ever. Not recycled; said once a generation.
    if (w.rssFirst !== null && w.rssFirst > max) {
      if (this.rssTooLow === this.generation) return;
      this.rssTooLow = this.generation;
      this.log.warning(`Worker ${w.pid} held ${mib(w.rssFirst)} as soon as it booted, over max_worker_rss (${mib(max)}): a replacement would start over it too, so workers are not recycled for it; raise max_worker_rss above what a worker holds once booted (e.g. ${Math.ceil((w.rssFirst * 2) / 1024 ** 2)}M) and reload`);
      return;
    }
    this.rssRecycling = w.pid;
    this.log.info(`${w.role === 'slow' ? 'Slow-lane worker' : 'Worker'} ${w.pid} holds ${mib(w.rss)}, over max_worker_rss (${mib(max)}): recycling it`);
    this.drain(w, 'rss');
    this.poke();
  }

  // ----------------------------------------------------------------- loop

  private tick(): number {
    const tick = heartbeatMs(this.config.timeout);
    const dog = this.watchdogMs();
    return dog === null ? tick : Math.max(10, Math.min(tick, dog));
  }

  // ----------------------------------------------------------------- notify

  private tell(fields: NotifyFields, serving = false): void {
    if (fields.STATUS !== undefined) this.lastStatus = fields.STATUS;
    const detail = serving ? { generation: this.generation, addresses: [...this.listeners.values()].map((l) => url(formatAddr(l.address))), admin: this.admin?.address ? url(this.admin.address) : null } : undefined;
    for (const n of this.opts.notify ?? []) n.send(fields, detail);
  }

  private watchdogMs(): number | null {
    let ms: number | null = null;
    for (const n of this.opts.notify ?? []) if (n.watchdogMs !== null && (ms === null || n.watchdogMs < ms)) ms = n.watchdogMs;
    return ms;
  }

  /** `generation 3 serving, 4+1 workers`: fast + slow, of the serving generation. */
  private statusText(): string {
    const fast = this.workers.active(this.generation).filter((w) => w.state === 'serving').length;
    const slow = this.workers.active(this.generation, 'slow').filter((w) => w.state === 'serving').length;
    return `generation ${this.generation} serving, ${fast}${slow > 0 ? `+${slow}` : ''} workers`;
  }

  /** Once a turn of the loop: READY=1 when the first generation is all up, STATUS= when what it says changed, WATCHDOG=1 on time. */
  private notifyState(): void {
    if ((this.opts.notify ?? []).length === 0 || this.stopping) return;
    const now = this.os.now();
    const dog = this.watchdogMs();
    if (dog !== null && now - this.watchdogAt >= dog) {
      this.watchdogAt = now;
      for (const n of this.opts.notify!) if (n.watchdogMs !== null) n.send({ WATCHDOG: '1' });
    }
    if (this.reload) return; // RELOADING's status stands until the reload ends
    const fresh = this.workers.active(this.generation);
    const up = fresh.length > 0 && fresh.every((w) => w.state === 'serving') && this.workers.active(this.generation, 'slow').every((w) => w.state === 'serving');
    if (!this.readied) {
      if (!up) return;
      this.readied = true;
      return this.tell({ READY: '1', STATUS: this.statusText() }, true);
    }
    const status = this.statusText();
    if (status !== this.lastStatus) this.tell({ STATUS: status });
  }

  private poke(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = this.os.timer(ms, () => {
        this.wake = null;
        resolve();
      });
      this.wake = () => {
        t.cancel();
        resolve();
      };
    });
  }
}
