// One companion's supervision, as a pure reducer: step(companion, input, now)
// returns the next state and the actions the manager must take (spawn,
// signal, log). No clock, no process: the manager feeds it what happened
// and when, so the same code runs in the simulator and in tests.
//
// States (supervisord's names and rules; DESIGN "Companions"):
//   STOPPED   no process; stays so unless started (or autostarted, below).
//   STARTING  spawn asked (pid null until `spawned`) or process younger than
//             startsecs. Surviving startsecs makes it RUNNING.
//   RUNNING   up for at least startsecs.
//   BACKOFF   waiting to respawn when `deadline` passes: after a failed
//             start, or after an exit that autorestart restarts.
//   STOPPING  stop signal sent (or to be sent once the pending spawn
//             reports its pid); KILL at `deadline`; ends with the exit.
//   EXITED    a RUNNING process ended on its own. As in supervisord every
//             such exit goes here first; then autorestart decides: true, or
//             "unexpected" with an exit not in exitcodes, goes on to BACKOFF
//             in the same step (drover waits restart_delay where supervisord
//             respawns at once); otherwise it stays EXITED until a start,
//             restart or reconfigure. An exit before startsecs is a failed
//             start whatever autorestart says (BACKOFF, then FATAL).
//   FATAL     startretries consecutive failed starts; only a start, restart
//             or reconfigure tries again.
//
// Rules the table and the handlers keep:
// - A manual stop sets wanted = false; nothing automatic (exit, tick,
//   reconfigure) spawns while wanted is false. Only start/restart do.
// - At most one process: a spawn is asked only when pid is null and no spawn
//   is pending (pid is null in STARTING/STOPPING exactly while one is).
// - failures counts consecutive unasked exits: a failed start (spawn error or
//   exit before startsecs) adds one; reaching RUNNING resets it; a restarted
//   exit of a RUNNING companion starts a new streak at 1 and always goes to
//   BACKOFF. FATAL happens only on a failed start, when startretries is set
//   and failures has reached it. A manual start, restart or reconfigure
//   resets it.
// - Stop deadlines: stop and restart use stop_timeout, a reconfigure of a
//   live companion uses reload_timeout, both of the config the process runs
//   under (its stop behaviour belongs to it, not to its replacement).

import { assert } from '../assert.js';
import { NO_HOOKS, planted, type Hooks } from '../../os/hooks.js';
import type { Signal } from '../../os/types.js';
import type { CompanionConfig } from './config.js';

export type State = 'STOPPED' | 'STARTING' | 'RUNNING' | 'BACKOFF' | 'STOPPING' | 'EXITED' | 'FATAL';

/** Every state change step may make. A change not listed here throws (a bug, not a runtime condition). */
export const TRANSITIONS: Readonly<Record<State, readonly State[]>> = {
  STOPPED: ['STARTING'],                                // start, restart, autostart (tick)
  STARTING: ['RUNNING', 'BACKOFF', 'FATAL', 'STOPPING'], // startsecs passed; failed start; stop/restart/reconfigure
  RUNNING: ['EXITED', 'STOPPING'],                      // ended on its own; stop/restart/reconfigure
  BACKOFF: ['STARTING', 'STOPPED'],                     // delay passed or start/reconfigure; stop
  STOPPING: ['STOPPED', 'STARTING'],                    // reaped; reaped with a restart pending
  EXITED: ['BACKOFF', 'STARTING', 'STOPPED'],           // autorestart (same step); start/restart/reconfigure; stop
  FATAL: ['STARTING', 'STOPPED'],                       // start/restart/reconfigure; stop
};

export interface Companion {
  readonly config: CompanionConfig;
  readonly state: State;
  readonly pid: number | null;
  readonly since: number;
  readonly failures: number;
  readonly wanted: boolean;
  readonly restartPending: boolean;
  readonly pendingConfig: CompanionConfig | null;
  readonly lastExit: { code: number | null; signal: Signal | null; at: number } | null;
  readonly deadline: number | null;
}

export type Input =
  | { t: 'start' } | { t: 'stop' } | { t: 'restart' }
  | { t: 'spawned'; pid: number } | { t: 'spawn-failed'; error: string }
  | { t: 'exited'; code: number | null; signal: Signal | null }
  | { t: 'tick' }
  | { t: 'reconfigure'; config: CompanionConfig };

export type Action =
  | { a: 'spawn'; config: CompanionConfig }
  | { a: 'signal'; pid: number; sig: Signal }
  | { a: 'log'; level: 'info' | 'warning' | 'error'; message: string };

export function initial(config: CompanionConfig, now: number): Companion {
  // What parseCompanions guarantees of the durations step() makes deadlines of (durations: whole ms, 0..2^31-1).
  for (const ms of [config.stop_timeout, config.reload_timeout, config.startsecs, config.restart_delay, config.backoff_max]) {
    assert(Number.isInteger(ms) && ms >= 0, () => `companion ${config.name}: a duration of ${ms} ms in its config`);
  }
  // FATAL after startretries failed starts: at least one, or none (retry for ever).
  assert(config.startretries === null || (Number.isInteger(config.startretries) && config.startretries >= 1), () => `companion ${config.name}: startretries ${config.startretries}`);
  return {
    config, state: 'STOPPED', pid: null, since: now, failures: 0, wanted: config.autostart,
    restartPending: false, pendingConfig: null, lastExit: null, deadline: null,
  };
}

/**
 * The wait before the next retry after `failures` consecutive failures:
 * fixed, restart_delay; exponential, restart_delay·2^(failures−1) capped at
 * backoff_max (a cap below restart_delay does not shorten the first wait).
 */
export function backoffDelay(config: CompanionConfig, failures: number): number {
  assert(Number.isInteger(failures) && failures >= 0, () => `companion ${config.name}: a backoff after ${failures} failures`);
  // restart_delay 0 waits 0 whatever the streak (0 × 2^1024 would be NaN, a deadline never reached).
  if (config.backoff === 'fixed' || config.restart_delay === 0) return config.restart_delay;
  const cap = Math.max(config.backoff_max, config.restart_delay);
  const delay = Math.min(config.restart_delay * 2 ** Math.max(0, failures - 1), cap);
  // Never shorter than restart_delay, never longer than the cap (a cap below restart_delay does not shorten it).
  assert(delay >= config.restart_delay && delay <= cap, () => `companion ${config.name}: backoff delay ${delay} after ${failures} failures`);
  return delay;
}

/** '1.5 s', '2.001 s': to the millisecond (an age from the clock is not a round number: 2.0010210520029066 s was written). */
export const secs = (ms: number): string => {
  // Delays, timeouts and ages from a monotonic clock: never negative, never NaN or infinite.
  assert(ms >= 0 && ms < Infinity, 'companion: a duration that is negative, NaN or infinite');
  return `${Math.round(ms) / 1000} s`;
};

function exitText(code: number | null, signal: Signal | null): string {
  return signal !== null ? `exited on ${signal}` : `exited with code ${code}`;
}

/** An exit is expected when its code is in exitcodes; a death by a signal never is (supervisord's rule). */
export function exitExpected(config: CompanionConfig, code: number | null, signal: Signal | null): boolean {
  return signal === null && code !== null && config.exitcodes.includes(code);
}

/** Whether autorestart restarts a RUNNING companion after this exit. */
export function restarts(config: CompanionConfig, expected: boolean): boolean {
  return config.autorestart === true || (config.autorestart === 'unexpected' && !expected);
}

/** Why an EXITED companion was left alone, for its log line. */
export function policyText(config: CompanionConfig): string {
  // Only a policy that leaves an exit alone is explained: autorestart true restarts every exit.
  assert(config.autorestart !== true, () => `companion ${config.name}: autorestart true asked why it left an exit alone`);
  return config.autorestart === false ? 'autorestart false' : `autorestart "unexpected", exitcodes [${config.exitcodes.join(', ')}]`;
}

/** The input as the probe names a transition's cause: 'start', 'tick', 'exit 0', 'exit SIGKILL'... */
function causeOf(input: Input): string {
  return input.t === 'exited' ? `exit ${input.signal ?? input.code}` : input.t;
}

/** A step in progress: the companion so far and the actions asked. */
class Draft {
  readonly actions: Action[] = [];
  constructor(public c: Companion, readonly now: number, readonly cause: string, readonly hooks: Hooks) {}

  get who(): string {
    return `companion ${this.c.config.name}`;
  }

  log(level: 'info' | 'warning' | 'error', message: string): void {
    this.actions.push({ a: 'log', level, message: `${this.who}: ${message}` });
  }

  /** Same state, other fields. */
  set(patch: Partial<Companion>): void {
    // Every state change goes through go(), the one that checks the table.
    assert(!('state' in patch), 'companion: a state change through set()');
    // since is when the state began: it moves with the state, in go(), and nowhere else.
    assert(!('since' in patch), 'companion: since moved without a state change');
    this.c = { ...this.c, ...patch };
  }

  /** A state change, checked against the table. */
  go(state: State, patch: Partial<Companion> = {}): void {
    const from = this.c.state;
    if (state !== from) this.hooks.transition?.(this.c.config.name, from, state, this.cause);
    assert(state === from || TRANSITIONS[from].includes(state) || planted(this.hooks, 'companion-skips-backoff'), () => `${this.who}: ${from} -> ${state} is not an allowed transition`);
    this.c = { ...this.c, ...patch, state, since: state === from ? this.c.since : this.now };
    // The patch comes with the state: no process in an idle state, always one when RUNNING.
    assert(!IDLE.includes(state) || this.c.pid === null, () => `${this.who}: ${state} with pid ${this.c.pid}`);
    assert(state !== 'RUNNING' || this.c.pid !== null, () => `${this.who}: RUNNING without a pid`);
  }

  /** Ask for a new process, with the pending config if a reread left one. */
  spawn(): void {
    // At most one process: none lives, and no other spawn was asked in this step.
    assert(this.c.pid === null, () => `${this.who}: spawn asked while pid ${this.c.pid} lives`);
    assert(!this.actions.some((a) => a.a === 'spawn'), () => `${this.who}: a second spawn in one step`);
    // Nothing spawns a companion stopped by hand (wanted false) but start and restart, which set it first.
    assert(this.c.wanted, () => `${this.who}: spawn asked while not wanted (${this.c.state}, ${this.cause})`);
    const config = this.c.pendingConfig ?? this.c.config;
    this.go('STARTING', { config, pendingConfig: null, restartPending: false, pid: null, deadline: null });
    this.actions.push({ a: 'spawn', config });
  }

  /** Signal the live process (if its pid is known yet) and set the KILL deadline. */
  signalStop(timeout: number): void {
    const { pid, config } = this.c;
    // A live process (or a pending spawn), or one whose pid a STOPPING companion just learned.
    assert(LIVE.includes(this.c.state) || (this.c.state === 'STOPPING' && pid !== null), () => `${this.who}: stop signalled in ${this.c.state}`);
    assert(timeout >= 0 && timeout < Infinity, () => `${this.who}: stop timeout ${timeout}`);
    // One stop signal per stop: a STOPPING companion is signalled only as it learns the pid of its pending spawn,
    // never again once its KILL deadline runs (that would push the KILL back).
    assert(this.c.state !== 'STOPPING' || this.c.deadline === null, () => `${this.who}: signalled again while stopping, KILL due at ${this.c.deadline}`);
    if (pid === null) {
      this.go('STOPPING', { deadline: null });
      this.log('info', 'stopping (as soon as the pending spawn reports its pid)');
      return;
    }
    this.actions.push({ a: 'signal', pid, sig: config.stop_signal });
    this.go('STOPPING', { deadline: this.now + timeout });
    this.log('info', `stopping pid ${pid} (${config.stop_signal}; KILL after ${secs(timeout)})`);
  }

  /** A start that did not last: retry after the backoff delay, or give up when startretries says so. */
  failedStart(): void {
    // Only a start fails: the spawn was refused or the process is gone (its pid already cleared).
    assert(this.c.state === 'STARTING', () => `${this.who}: a failed start in ${this.c.state}`);
    assert(this.c.pid === null, () => `${this.who}: a failed start while pid ${this.c.pid} lives`);
    const failures = this.c.failures + 1;
    const { startretries } = this.c.config;
    if (startretries !== null && failures >= startretries) {
      this.go('FATAL', { failures, pid: null, deadline: null });
      this.log('error', `FATAL after ${failures} failed start${failures === 1 ? '' : 's'}; not restarting until started by hand`);
      return;
    }
    this.backoff(failures);
  }

  backoff(failures: number): void {
    assert(Number.isInteger(failures) && failures >= 1, () => `${this.who}: backoff after ${failures} failures`);
    const delay = backoffDelay(this.c.config, failures);
    // The delay schedules the respawn (tick compares the deadline): never negative, never NaN.
    assert(delay >= 0, () => `${this.who}: backoff delay ${delay}`);
    const { startretries } = this.c.config;
    this.go('BACKOFF', { failures, pid: null, deadline: this.now + delay });
    this.log('warning', `backing off ${secs(delay)} before restarting (failure ${failures}${startretries === null ? '' : ` of ${startretries}`})`);
  }

  /** STARTING with a live process past startsecs is RUNNING, whatever input comes next. */
  promote(): void {
    const { state, pid, deadline } = this.c;
    if (state !== 'STARTING' || pid === null || deadline === null || this.now < deadline) return;
    // A STARTING companion is wanted with nothing pending: a stop, restart or reconfigure would have made it STOPPING.
    assert(this.c.wanted && !this.c.restartPending && this.c.pendingConfig === null, () => `${this.who}: STARTING, yet stopped or restarting`);
    // RUNNING only after startsecs alive: the deadline was set at `spawned`, after the spawn was asked (since).
    assert(this.now - this.c.since >= this.c.config.startsecs, () => `${this.who}: RUNNING ${this.now - this.c.since} ms after its spawn, under startsecs`);
    this.go('RUNNING', { failures: 0, deadline: null });
    this.log('info', `running (pid ${pid} up ${secs(this.c.config.startsecs)})`);
  }

  ignored(what: string): void {
    // An ignored input asks for nothing: no spawn, no signal (a log line at most, a promotion's among them).
    assert(this.actions.every((a) => a.a === 'log'), () => `${this.who}: ${what} ignored after asking for an action`);
    this.log('warning', `ignored ${what} in ${this.c.state}${this.c.pid === null ? '' : ` (pid ${this.c.pid})`}`);
  }
}

/** No process and none pending: start/restart/reconfigure may spawn. */
const IDLE: readonly State[] = ['STOPPED', 'BACKOFF', 'FATAL', 'EXITED'];
/** A process lives, or its spawn is pending. */
const LIVE: readonly State[] = ['STARTING', 'RUNNING'];

type Handler<T extends Input['t']> = (d: Draft, input: Extract<Input, { t: T }>) => void;

const HANDLERS: { readonly [T in Input['t']]: Handler<T> } = {
  start(d) {
    const { state } = d.c;
    if (IDLE.includes(state)) {
      d.set({ wanted: true, failures: 0 });
      d.spawn();
    } else if (state === 'STOPPING') {
      d.set({ wanted: true, restartPending: true });
      d.log('info', 'will start again once the old process is reaped');
    }
    assert(d.c.wanted, () => `${d.who}: not wanted after a start in ${state}`);
    // Nothing to run spawns at once; a live companion is left as it is.
    assert(IDLE.includes(state) ? d.c.state === 'STARTING' : d.c.state === state, () => `${d.who}: ${d.c.state} after a start in ${state}`);
  },

  stop(d) {
    const { state } = d.c;
    if (state === 'STOPPED') d.set({ wanted: false });
    else if (IDLE.includes(state)) {
      d.go('STOPPED', { wanted: false, deadline: null });
      d.log('info', 'stopped');
    } else if (LIVE.includes(state)) {
      d.set({ wanted: false, restartPending: false });
      d.signalStop(d.c.config.stop_timeout);
    } else if (state === 'STOPPING') {
      // Already on its way out; only a pending restart is cancelled.
      d.set({ wanted: false, restartPending: false });
    }
    assert(!d.c.wanted && !d.c.restartPending, () => `${d.who}: still wanted after a stop in ${state}`);
    assert(d.c.state === 'STOPPED' || d.c.state === 'STOPPING', () => `${d.who}: ${d.c.state} after a stop`);
  },

  restart(d) {
    const { state } = d.c;
    if (IDLE.includes(state)) {
      d.set({ wanted: true, failures: 0 });
      d.spawn();
    } else if (LIVE.includes(state)) {
      d.set({ wanted: true, restartPending: true });
      d.signalStop(d.c.config.stop_timeout);
    } else if (state === 'STOPPING') {
      d.set({ wanted: true, restartPending: true });
      d.log('info', 'will start again once the old process is reaped');
    }
    assert(d.c.wanted, () => `${d.who}: not wanted after a restart in ${state}`);
    // A new process is on its way: spawned now, or once the old one is reaped.
    assert(d.c.state === 'STARTING' || d.c.restartPending, () => `${d.who}: ${d.c.state} after a restart, nothing pending`);
  },

  spawned(d, { pid }) {
    const { state } = d.c;
    if (d.c.pid !== null || (state !== 'STARTING' && state !== 'STOPPING')) {
      // A process nobody waits for would be a second child: end it rather than lose track of it.
      d.actions.push({ a: 'signal', pid, sig: 'SIGKILL' });
      d.log('error', `pid ${pid} reported spawned in ${state} with no spawn pending; killed it`);
      return;
    }
    d.log('info', `started (pid ${pid})`);
    if (state === 'STOPPING') {
      // A stop came while the spawn was pending: it applies now.
      d.set({ pid });
      d.signalStop(d.c.restartPending && d.c.pendingConfig !== null ? d.c.config.reload_timeout : d.c.config.stop_timeout);
      // The stop asked while the spawn was pending is under way now, its KILL deadline set.
      assert(d.c.state === 'STOPPING' && d.c.pid === pid && d.c.deadline !== null, () => `${d.who}: ${d.c.state} after pid ${pid} came to a stop`);
      return;
    }
    d.set({ pid, deadline: d.now + d.c.config.startsecs });
    d.promote();
    assert(d.c.pid === pid, () => `${d.who}: spawned pid ${pid} not adopted`);
    assert(d.c.state === 'STARTING' || d.c.state === 'RUNNING', () => `${d.who}: ${d.c.state} after spawned`);
  },

  'spawn-failed'(d, { error }) {
    const { state, pid } = d.c;
    if (pid !== null || (state !== 'STARTING' && state !== 'STOPPING')) return d.ignored('spawn-failed');
    d.log('error', `failed to start: ${error}`);
    if (state === 'STARTING') d.failedStart();
    else if (d.c.restartPending) {
      d.log('info', 'restarting');
      d.spawn();
    } else {
      d.go('STOPPED', { deadline: null });
      d.log('info', 'stopped');
    }
    // No process came of it; a retry, if any, is a new pending spawn or waits for its backoff.
    assert(d.c.pid === null, () => `${d.who}: pid ${d.c.pid} after a failed spawn`);
    assert(d.c.state !== 'STOPPING', () => `${d.who}: still STOPPING after its pending spawn failed`);
  },

  exited(d, { code, signal }) {
    const { state, pid, config } = d.c;
    if (pid === null) return d.ignored('an exit');
    d.set({ pid: null, lastExit: { code, signal, at: d.now } });
    const what = `pid ${pid} ${exitText(code, signal)}`;
    if (state === 'STARTING') {
      d.log('warning', `${what} unexpectedly`);
      d.log('warning', `it did not stay up for startsecs (${secs(config.startsecs)})`);
      d.failedStart();
      // An exit before startsecs is a failed start whatever autorestart says.
      assert(d.c.state === 'BACKOFF' || d.c.state === 'FATAL', () => `${d.who}: ${d.c.state} after an exit before startsecs`);
      return;
    }
    if (state === 'RUNNING') {
      if (planted(d.hooks, 'companion-skips-backoff')) {
        d.log('warning', `${what} unexpectedly`);
        return d.spawn();
      }
      const expected = exitExpected(config, code, signal);
      d.go('EXITED', { deadline: null });
      // The planted bug is the issue's: every exit restarted, whatever autorestart and exitcodes say.
      if (restarts(config, expected) || planted(d.hooks, 'companion-restarts-one-shot')) {
        d.log(expected ? 'info' : 'warning', `${what}${expected ? ' (expected)' : ' unexpectedly'}`);
        d.backoff(1);
        // A restarted exit of a RUNNING companion starts a new streak at 1, and always backs off (never FATAL).
        assert(d.c.state === 'BACKOFF' && d.c.failures === 1, () => `${d.who}: ${d.c.state} with ${d.c.failures} failures after a restarted exit`);
        return;
      }
      // One line, said once: it stays EXITED, and nothing repeats it.
      d.log(expected ? 'info' : 'warning', `${what} (${expected ? 'expected' : 'unexpected'}), not restarted (${policyText(config)}); drover ctl start ${config.name} runs it again`);
      assert(d.c.state === 'EXITED' && d.c.deadline === null, () => `${d.who}: ${d.c.state} after an exit autorestart leaves alone`);
      return;
    }
    // The only other state with a process: on its way out.
    assert(state === 'STOPPING', () => `${d.who}: pid ${pid} exited in ${state}`);
    d.log('info', what);
    if (d.c.restartPending) {
      d.log('info', 'restarting');
      return d.spawn();
    }
    d.go('STOPPED', { deadline: null });
    d.log('info', 'stopped');
  },

  tick(d) {
    const { state, deadline, pid, wanted } = d.c;
    if (state === 'STOPPED' && wanted) {
      // autostart: the only STOPPED companion still wanted is one never started yet.
      d.log('info', 'starting (autostart)');
      d.spawn();
    } else if (state === 'BACKOFF' && deadline !== null && d.now >= deadline) {
      d.log('info', 'restarting after backoff');
      d.spawn();
    } else if (state === 'STOPPING' && pid !== null && deadline !== null && d.now >= deadline) {
      d.actions.push({ a: 'signal', pid, sig: 'SIGKILL' });
      d.set({ deadline: null });
      d.log('warning', `pid ${pid} did not exit ${secs(d.now - d.c.since)} after ${d.c.config.stop_signal}; killed it (SIGKILL)`);
    }
    // A tick is automatic: it never changes whether the companion is wanted.
    assert(d.c.wanted === wanted, () => `${d.who}: a tick made it ${d.c.wanted ? '' : 'not '}wanted`);
    // KILL once: a stop past its deadline has been killed, and no deadline is left to kill it again.
    assert(!(d.c.state === 'STOPPING' && d.c.deadline !== null && d.now >= d.c.deadline), () => `${d.who}: STOPPING past its KILL deadline after a tick`);
  },

  reconfigure(d, { config }) {
    const { state, wanted } = d.c;
    if (config.hash === (d.c.pendingConfig ?? d.c.config).hash) return;
    if (state === 'STOPPED' || state === 'STOPPING') {
      // Manually stopped (or stopping, or restarting): the new config waits for the next start.
      d.set({ pendingConfig: config.hash === d.c.config.hash ? null : config });
      d.log('info', `config changed; it applies at the next start`);
    } else if (LIVE.includes(state)) {
      d.set({ pendingConfig: config, restartPending: true, failures: 0 });
      d.log('info', 'config changed; restarting');
      d.signalStop(d.c.config.reload_timeout);
    } else {
      // BACKOFF, FATAL, EXITED: nothing runs, so the change starts it now (a fix to a failing command takes
      // effect at once; a changed one-shot runs again, as supervisord's update re-adds a changed program).
      d.set({ config, pendingConfig: null, failures: 0 });
      d.log('info', 'config changed; starting');
      d.spawn();
    }
    // A reconfigure is automatic: it never changes whether the companion is wanted (only start, restart and stop do).
    assert(d.c.wanted === wanted, () => `${d.who}: a reconfigure made it ${d.c.wanted ? '' : 'not '}wanted`);
    // A stopped companion keeps its state; a live one stops to restart under the new config; an idle one starts with it.
    assert(state === 'STOPPED' || state === 'STOPPING' ? d.c.state === state
      : LIVE.includes(state) ? d.c.state === 'STOPPING' && d.c.restartPending && d.c.pendingConfig === config
        : d.c.state === 'STARTING' && d.c.config === config, () => `${d.who}: ${d.c.state} after a reconfigure in ${state}`);
  },
};

/** `hooks`: the manager's Os.hooks (a chaos run hears each transition). */
export function step(c: Companion, input: Input, now: number, hooks: Hooks = NO_HOOKS): { next: Companion; actions: Action[] } {
  atRest(c, `before ${causeOf(input)}`);
  // Deadlines and `since` compare with now: the manager's clock is monotonic.
  assert(now >= c.since, () => `companion ${c.config.name}: step at ${now}, before its state began at ${c.since}`);
  const d = new Draft(c, now, causeOf(input), hooks);
  d.promote();
  (HANDLERS[input.t] as Handler<Input['t']>)(d, input);
  const next = d.c;
  atRest(next, `after ${d.cause}`);
  // What each input leaves behind, whichever path its handler took.
  if (input.t === 'exited') assert(next.pid === null, () => `${d.who}: pid ${next.pid} after an exit`);
  if (input.t === 'tick') {
    // Nothing overdue survives a tick: an autostart or a finished backoff has spawned.
    assert(!(next.state === 'STOPPED' && next.wanted), () => `${d.who}: STOPPED and wanted after a tick`);
    assert(!(next.state === 'BACKOFF' && now >= next.deadline!), () => `${d.who}: BACKOFF past its deadline after a tick`);
  }
  if (input.t === 'reconfigure') {
    const applies = next.pendingConfig ?? next.config;
    assert(applies.hash === input.config.hash, () => `${d.who}: a reconfigure left config ${applies.hash} in place of ${input.config.hash}`);
  }
  return { next, actions: d.actions };
}

/**
 * The rules of the header that hold between steps, checked on the way in and
 * out of every step: a manager that fed the reducer something it never made,
 * or a handler that broke a rule, stops here.
 */
function atRest(c: Companion, when: string): void {
  const who = `companion ${c.config.name} (${c.state}, ${when})`;
  assert(Number.isInteger(c.failures) && c.failures >= 0, () => `${who}: failures ${c.failures}`);
  // At most one process: none in an idle state; RUNNING has one and no startsecs deadline left.
  assert(!IDLE.includes(c.state) || c.pid === null, () => `${who}: pid ${c.pid} in an idle state`);
  assert(c.state !== 'RUNNING' || (c.pid !== null && c.deadline === null), () => `${who}: RUNNING with pid ${c.pid}, deadline ${c.deadline}`);
  // Without a process only BACKOFF waits for a deadline (a pending spawn has none yet); BACKOFF always does.
  assert(c.pid !== null || c.deadline === null || c.state === 'BACKOFF', () => `${who}: deadline ${c.deadline} with no process`);
  assert(c.state !== 'BACKOFF' || c.deadline !== null, () => `${who}: BACKOFF with no deadline`);
  // Only a stop clears wanted, and it leaves the companion STOPPED or STOPPING.
  assert(c.wanted || c.state === 'STOPPED' || c.state === 'STOPPING', () => `${who}: not wanted`);
  // A restart waits only for the old process's reap, and only while wanted.
  assert(!c.restartPending || (c.state === 'STOPPING' && c.wanted), () => `${who}: restart pending`);
  // A reread's config waits only in a stopped companion (a spawn takes it), and only when it differs.
  assert(c.pendingConfig === null || ((c.state === 'STOPPED' || c.state === 'STOPPING') && c.pendingConfig.hash !== c.config.hash),
    () => `${who}: pending config ${c.pendingConfig!.hash}`);
  // Reaching RUNNING resets failures, and nothing counts one while it runs.
  assert(c.state !== 'RUNNING' || c.failures === 0, () => `${who}: ${c.failures} failures while RUNNING`);
  // FATAL only on a failed start, when startretries is set and failures has reached it (its config unchanged since:
  // a reconfigure of a FATAL companion starts it).
  assert(c.state !== 'FATAL' || (c.config.startretries !== null && c.failures >= c.config.startretries), () => `${who}: FATAL after ${c.failures} failures, startretries ${c.config.startretries}`);
  // Every exit ends the state it came in: the last one is no later than the current state's start.
  assert(c.lastExit === null || c.lastExit.at <= c.since, () => `${who}: last exit at ${c.lastExit!.at}, after its state began at ${c.since}`);
}
