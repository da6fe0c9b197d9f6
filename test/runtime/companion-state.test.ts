// The companion state machine: unit tests of every path, then a model-based
// property test that drives it with random inputs against a small world (one
// child at most, monotonic time) and checks DESIGN's rules after every step.
import fc from 'fast-check';
import { beforeEach, describe, expect, it } from 'vitest';
import type { Signal } from '../../src/os/types.js';
import { parseCompanions, type CompanionConfig } from '../../src/runtime/companions/config.js';
import {
  TRANSITIONS, backoffDelay, exitExpected, initial, restarts, secs, step as stepOf, type Action, type Companion, type Input, type State,
} from '../../src/runtime/companions/state.js';
import type { Hooks } from '../../src/os/hooks.js';

/** Every state change step makes, as the manager's hooks hear it: "FROM>TO (cause)". */
const moves: string[] = [];
const heard: Hooks = { transition: (_name, from, to, cause) => void moves.push(`${from}>${to} (${cause})`) };
const step = (c: Companion, input: Input, now: number) => stepOf(c, input, now, heard);
beforeEach(() => {
  moves.length = 0;
});

/** A config from file-style input (seconds), defaults filled. */
function cfg(fields: Record<string, unknown> = {}): CompanionConfig {
  const r = parseCompanions([{ name: 'w', command: ['w'], ...fields }], {}, 'test');
  expect(r.problems).toEqual([]);
  return r.companions[0]!;
}

/** Runs inputs in order at the given times; returns the last companion and every action. */
function run(c: Companion, inputs: Array<[number, Input]>): { c: Companion; actions: Action[] } {
  const actions: Action[] = [];
  for (const [now, input] of inputs) {
    const r = step(c, input, now);
    c = r.next;
    actions.push(...r.actions);
  }
  return { c, actions };
}

const nolog = (as: Action[]): Action[] => as.filter((a) => a.a !== 'log');
const logs = (as: Action[]): string[] => as.flatMap((a) => (a.a === 'log' ? [`${a.level}: ${a.message}`] : []));
const T = { tick: { t: 'tick' } as Input, start: { t: 'start' } as Input, stop: { t: 'stop' } as Input, restart: { t: 'restart' } as Input };
const spawned = (pid: number): Input => ({ t: 'spawned', pid });
const exited = (code: number | null, signal: Signal | null = null): Input => ({ t: 'exited', code, signal });

/** A companion RUNNING as pid 10 since t=1000 (spawned at 0, startsecs 1 s). */
function running(config = cfg()): Companion {
  return run(initial(config, 0), [[0, T.tick], [0, spawned(10)], [1000, T.tick]]).c;
}

describe('the transition table', () => {
  const states: State[] = ['STOPPED', 'STARTING', 'RUNNING', 'BACKOFF', 'STOPPING', 'EXITED', 'FATAL'];

  it('has every state and no self-loops', () => {
    expect(Object.keys(TRANSITIONS).sort()).toEqual([...states].sort());
    for (const s of states) expect(TRANSITIONS[s]).not.toContain(s);
  });

  it('reaches EXITED only from RUNNING, and leaves it by autorestart (BACKOFF), start/restart/reconfigure (STARTING) or stop', () => {
    expect(states.filter((s) => TRANSITIONS[s].includes('EXITED'))).toEqual(['RUNNING']);
    expect([...TRANSITIONS.RUNNING].sort()).toEqual(['EXITED', 'STOPPING']);
    expect([...TRANSITIONS.EXITED].sort()).toEqual(['BACKOFF', 'STARTING', 'STOPPED']);
  });

  // The table is the one source of truth: take a row out and the machine refuses the move it allowed.
  const without = (from: State, to: State, body: () => void) => {
    const row = TRANSITIONS[from] as State[];
    const at = row.indexOf(to);
    expect(at).toBeGreaterThanOrEqual(0);
    row.splice(at, 1);
    try {
      body();
    } finally {
      row.splice(at, 0, to);
    }
  };
  const exitedKept = () => step(running(cfg({ autorestart: false })), exited(0), 5000).next;

  it.each<[State, State, () => void]>([
    ['RUNNING', 'EXITED', () => step(running(cfg({ autorestart: false })), exited(0), 5000)],
    ['EXITED', 'BACKOFF', () => step(running(), exited(1), 5000)],
    ['EXITED', 'STARTING', () => step(exitedKept(), T.start, 6000)],
    ['EXITED', 'STOPPED', () => step(exitedKept(), T.stop, 6000)],
  ])('refuses %s -> %s once its row is gone', (from, to, move) => {
    expect(move).not.toThrow();
    without(from, to, () => expect(move).toThrow(`companion w: ${from} -> ${to} is not an allowed transition`));
  });
});

describe('EXITED: autorestart and exitcodes (supervisord)', () => {
  it('autorestart true (the default): an exit past startsecs goes EXITED, then BACKOFF in the same step, whatever the code', () => {
    for (const [code, level, text] of [[0, 'info', 'exited with code 0 (expected)'], [3, 'warning', 'exited with code 3 unexpectedly']] as const) {
      const c = running();
      moves.length = 0;
      const r = step(c, exited(code), 5000);
      expect(moves).toEqual([`RUNNING>EXITED (exit ${code})`, `EXITED>BACKOFF (exit ${code})`]);
      expect(r.next).toMatchObject({ state: 'BACKOFF', pid: null, failures: 1, deadline: 6000, lastExit: { code, signal: null, at: 5000 } });
      expect(logs(r.actions)).toEqual([`${level}: companion w: pid 10 ${text}`, 'warning: companion w: backing off 1 s before restarting (failure 1)']);
    }
  });

  it('autorestart false: EXITED stays, expected or not, and nothing automatic starts it again; it is said once', () => {
    const c = cfg({ autorestart: false });
    const up = running(c);
    moves.length = 0;
    const ok = step(up, exited(0), 5000);
    expect(moves).toEqual(['RUNNING>EXITED (exit 0)']);
    expect(ok.next).toMatchObject({ state: 'EXITED', pid: null, deadline: null, failures: 0, wanted: true, lastExit: { code: 0, signal: null, at: 5000 } });
    expect(ok.actions).toEqual([{ a: 'log', level: 'info', message: 'companion w: pid 10 exited with code 0 (expected), not restarted (autorestart false); drover ctl start w runs it again' }]);
    expect(run(ok.next, [[6000, T.tick], [99_999, T.tick]]).actions).toEqual([]);
    const bad = step(running(c), exited(3), 5000);
    expect(bad.next.state).toBe('EXITED');
    expect(logs(bad.actions)).toEqual(['warning: companion w: pid 10 exited with code 3 (unexpected), not restarted (autorestart false); drover ctl start w runs it again']);
    expect(step(running(c), exited(null, 'SIGKILL'), 5000).next.state).toBe('EXITED');
  });

  it('autorestart "unexpected": an exit code in exitcodes stays EXITED; any other code, or a signal, is restarted', () => {
    const c = cfg({ autorestart: 'unexpected', exitcodes: [0, 2] });
    for (const code of [0, 2]) {
      const r = step(running(c), exited(code), 5000);
      expect(r.next).toMatchObject({ state: 'EXITED', deadline: null });
      expect(logs(r.actions)).toEqual([`info: companion w: pid 10 exited with code ${code} (expected), not restarted (autorestart "unexpected", exitcodes [0, 2]); drover ctl start w runs it again`]);
    }
    for (const [code, signal] of [[1, null], [3, null], [null, 'SIGKILL'], [null, 'SIGTERM']] as const) {
      const up = running(c);
      moves.length = 0;
      const r = step(up, exited(code, signal), 5000);
      expect(r.next).toMatchObject({ state: 'BACKOFF', failures: 1, deadline: 6000 });
      expect(moves).toEqual([`RUNNING>EXITED (exit ${signal ?? code})`, `EXITED>BACKOFF (exit ${signal ?? code})`]);
      expect(nolog(r.actions)).toEqual([]);
    }
  });

  it('an exit before startsecs is a failed start whatever autorestart says: BACKOFF, then FATAL after startretries', () => {
    for (const autorestart of [false, 'unexpected'] as const) {
      let c = initial(cfg({ autorestart, startretries: 2, restart_delay: 0 }), 0);
      c = run(c, [[0, T.tick], [0, spawned(7)], [500, exited(0)]]).c;
      expect(c).toMatchObject({ state: 'BACKOFF', failures: 1 });
      c = run(c, [[500, T.tick], [500, spawned(8)], [900, exited(0)]]).c;
      expect(c).toMatchObject({ state: 'FATAL', failures: 2 });
    }
    expect(moves.some((m) => m.includes('EXITED'))).toBe(false);
  });

  it('with startsecs 0 a quick job is RUNNING at once, so its exit is judged by autorestart', () => {
    const c = run(initial(cfg({ autorestart: false, startsecs: 0 }), 0), [[0, T.tick], [0, spawned(7)], [1, exited(0)]]).c;
    expect(c.state).toBe('EXITED');
  });

  it('start and restart run an EXITED companion again (failures reset); stop makes it STOPPED; a changed config starts it', () => {
    const c = step(running(cfg({ autorestart: false })), exited(0), 5000).next;
    for (const input of [T.start, T.restart]) {
      moves.length = 0;
      const r = step({ ...c, failures: 3 }, input, 6000);
      expect(r.next).toMatchObject({ state: 'STARTING', pid: null, failures: 0, wanted: true });
      expect(nolog(r.actions)).toEqual([{ a: 'spawn', config: c.config }]);
      expect(moves).toEqual([`EXITED>STARTING (${input.t})`]);
    }
    const s = step(c, T.stop, 6000);
    expect(s.next).toMatchObject({ state: 'STOPPED', wanted: false });
    const next = cfg({ autorestart: false, command: ['w', '--v2'] });
    const r = step(c, { t: 'reconfigure', config: next }, 6000);
    expect(r.next).toMatchObject({ state: 'STARTING', config: next });
    expect(nolog(r.actions)).toEqual([{ a: 'spawn', config: next }]);
  });

  it('exitExpected: a code in exitcodes; a signal never', () => {
    const c = cfg({ exitcodes: [0, 143] });
    expect([exitExpected(c, 0, null), exitExpected(c, 143, null), exitExpected(c, 1, null), exitExpected(c, null, 'SIGTERM')]).toEqual([true, true, false, false]);
    expect([restarts(cfg(), true), restarts(cfg({ autorestart: false }), false), restarts(cfg({ autorestart: 'unexpected' }), true), restarts(cfg({ autorestart: 'unexpected' }), false)])
      .toEqual([true, false, false, true]);
  });
});

describe('starting', () => {
  it('starts STOPPED, wanted as autostart says', () => {
    expect(initial(cfg(), 5)).toEqual({
      config: cfg(), state: 'STOPPED', pid: null, since: 5, failures: 0, wanted: true,
      restartPending: false, pendingConfig: null, lastExit: null, deadline: null,
    });
    expect(initial(cfg({ autostart: false }), 0).wanted).toBe(false);
  });

  it('autostarts on the first tick, and a start does the same; never two spawns', () => {
    const a = run(initial(cfg(), 0), [[0, T.tick], [0, T.start], [0, T.tick]]);
    expect(a.c).toMatchObject({ state: 'STARTING', pid: null, deadline: null });
    expect(nolog(a.actions)).toEqual([{ a: 'spawn', config: cfg() }]);
    const b = run(initial(cfg(), 0), [[0, T.start], [0, T.tick]]);
    expect(nolog(b.actions)).toEqual([{ a: 'spawn', config: cfg() }]);
  });

  it('leaves a companion without autostart alone until started', () => {
    const c = initial(cfg({ autostart: false }), 0);
    expect(run(c, [[0, T.tick], [9999, T.tick]])).toEqual({ c, actions: [] });
    expect(nolog(step(c, T.start, 1).actions)).toEqual([{ a: 'spawn', config: c.config }]);
  });

  it('is RUNNING once alive for startsecs, with failures reset', () => {
    const { c, actions } = run(initial(cfg({ startsecs: 2 }), 0), [[0, T.tick], [100, spawned(7)], [2099, T.tick]]);
    expect(c).toMatchObject({ state: 'STARTING', pid: 7, deadline: 2100, since: 0 });
    expect(logs(actions)).toEqual(['info: companion w: starting (autostart)', 'info: companion w: started (pid 7)']);
    const r = step({ ...c, failures: 2 }, T.tick, 2100);
    expect(r.next).toMatchObject({ state: 'RUNNING', pid: 7, deadline: null, since: 2100, failures: 0 });
    expect(logs(r.actions)).toEqual(['info: companion w: running (pid 7 up 2 s)']);
  });

  it('is RUNNING at once with startsecs 0', () => {
    const { c } = run(initial(cfg({ startsecs: 0 }), 0), [[0, T.tick], [0, spawned(7)]]);
    expect(c).toMatchObject({ state: 'RUNNING', pid: 7 });
  });
});

describe('unexpected exits: BACKOFF, FATAL', () => {
  it('counts an exit before startsecs as a failed start and retries after restart_delay', () => {
    const c0 = run(initial(cfg({ restart_delay: 2 }), 0), [[0, T.tick], [0, spawned(7)]]).c;
    const { next, actions } = step(c0, exited(1), 500);
    expect(next).toMatchObject({ state: 'BACKOFF', pid: null, failures: 1, deadline: 2500, since: 500, lastExit: { code: 1, signal: null, at: 500 } });
    expect(logs(actions)).toEqual([
      'warning: companion w: pid 7 exited with code 1 unexpectedly',
      'warning: companion w: it did not stay up for startsecs (1 s)',
      'warning: companion w: backing off 2 s before restarting (failure 1)',
    ]);
    expect(step(next, T.tick, 2499)).toEqual({ next, actions: [] });
    const r = step(next, T.tick, 2500);
    expect(r.next).toMatchObject({ state: 'STARTING', pid: null, failures: 1 });
    expect(nolog(r.actions)).toEqual([{ a: 'spawn', config: next.config }]);
    expect(logs(r.actions)).toEqual(['info: companion w: restarting after backoff']);
  });

  it('counts a spawn error as a failed start', () => {
    const c0 = run(initial(cfg(), 0), [[0, T.tick]]).c;
    const { next, actions } = step(c0, { t: 'spawn-failed', error: 'ENOENT: no such file w' }, 0);
    expect(next).toMatchObject({ state: 'BACKOFF', failures: 1, deadline: 1000, lastExit: null });
    expect(logs(actions)[0]).toBe('error: companion w: failed to start: ENOENT: no such file w');
  });

  it('sends a RUNNING companion that crashes to BACKOFF with a new streak of 1, even with startretries 1', () => {
    const c = { ...running(cfg({ startretries: 1 })), failures: 0 };
    const { next, actions } = step(c, exited(null, 'SIGSEGV' as Signal), 5000);
    expect(next).toMatchObject({ state: 'BACKOFF', failures: 1, deadline: 6000 });
    expect(logs(actions)).toEqual([
      'warning: companion w: pid 10 exited on SIGSEGV unexpectedly',
      'warning: companion w: backing off 1 s before restarting (failure 1 of 1)',
    ]);
    // The retry that fails is the failed start that makes it FATAL.
    const f = run(next, [[6000, T.tick], [6000, spawned(11)], [6100, exited(1)]]);
    expect(f.c).toMatchObject({ state: 'FATAL', failures: 2, deadline: null, pid: null });
  });

  it('counts a process that outlived startsecs as started, even when its exit comes before any tick', () => {
    const c0 = run(initial(cfg(), 0), [[0, T.tick], [0, spawned(7)]]).c;
    const { next, actions } = step({ ...c0, failures: 3 }, exited(0), 1000);
    expect(next).toMatchObject({ state: 'BACKOFF', failures: 1 });
    expect(logs(actions)[0]).toBe('info: companion w: running (pid 7 up 1 s)');
  });

  it('goes FATAL after startretries consecutive failed starts, and only a start revives it', () => {
    let c = initial(cfg({ startretries: 3, restart_delay: 0 }), 0);
    const states: State[] = [];
    for (let i = 0; i < 3; i++) {
      c = run(c, [[i, T.tick], [i, spawned(10 + i)], [i, exited(1)]]).c;
      states.push(c.state);
    }
    expect(states).toEqual(['BACKOFF', 'BACKOFF', 'FATAL']);
    expect(c).toMatchObject({ failures: 3, deadline: null });
    expect(run(c, [[100, T.tick], [99999, T.tick]])).toEqual({ c, actions: [] });
    const r = step(c, T.start, 200);
    expect(r.next).toMatchObject({ state: 'STARTING', failures: 0, wanted: true });
    expect(nolog(r.actions)).toEqual([{ a: 'spawn', config: c.config }]);
  });

  it('logs FATAL with the count', () => {
    const c0 = run(initial(cfg({ startretries: 1 }), 0), [[0, T.tick]]).c;
    expect(logs(step(c0, { t: 'spawn-failed', error: 'x' }, 0).actions)).toEqual([
      'error: companion w: failed to start: x',
      'error: companion w: FATAL after 1 failed start; not restarting until started by hand',
    ]);
  });

  it('never goes FATAL without startretries', () => {
    let c = initial(cfg({ restart_delay: 0 }), 0);
    for (let i = 0; i < 50; i++) c = run(c, [[i, T.tick], [i, spawned(i + 1)], [i, exited(1)]]).c;
    expect(c).toMatchObject({ state: 'BACKOFF', failures: 50 });
  });
});

describe('backoff delays', () => {
  it('are restart_delay when fixed', () => {
    const c = cfg({ restart_delay: 1.5 });
    expect([1, 2, 10, 1000].map((f) => backoffDelay(c, f))).toEqual([1500, 1500, 1500, 1500]);
  });

  it('double per failure when exponential, up to backoff_max', () => {
    const c = cfg({ restart_delay: 1, backoff: 'exponential', backoff_max: 10 });
    expect([1, 2, 3, 4, 5, 6, 2000].map((f) => backoffDelay(c, f))).toEqual([1000, 2000, 4000, 8000, 10000, 10000, 10000]);
  });

  it('never go below restart_delay, whatever the cap', () => {
    const c = cfg({ restart_delay: 5, backoff: 'exponential', backoff_max: 1 });
    expect([1, 2, 3].map((f) => backoffDelay(c, f))).toEqual([5000, 5000, 5000]);
    expect(backoffDelay(cfg({ restart_delay: 0, backoff: 'exponential' }), 30)).toBe(0);
  });

  it('with restart_delay 0 stay 0 past 1024 failures in a row (0 × 2^1024 was NaN: a BACKOFF deadline never reached)', () => {
    const c = cfg({ restart_delay: 0, backoff: 'exponential' });
    expect([1024, 1025, 5000].map((f) => backoffDelay(c, f))).toEqual([0, 0, 0]);
    // The machine itself: 2000 failed starts in a row, each retried at once.
    let x = run(initial(c, 0), [[0, T.tick]]).c;
    for (let i = 0; i < 2000; i++) x = run(x, [[0, { t: 'spawn-failed', error: 'EAGAIN' }], [0, T.tick]]).c;
    expect(x.state).toBe('STARTING');
    expect(x.failures).toBe(2000);
  });

  it('are what the machine waits', () => {
    let c = initial(cfg({ restart_delay: 1, backoff: 'exponential', backoff_max: 3 }), 0);
    const waits: number[] = [];
    let now = 0;
    for (let i = 0; i < 4; i++) {
      c = run(c, [[now, T.tick], [now, spawned(i + 1)], [now, exited(1)]]).c;
      waits.push(c.deadline! - now);
      now = c.deadline!;
    }
    expect(waits).toEqual([1000, 2000, 3000, 3000]);
  });
});

describe('stop', () => {
  it('signals the stop signal with the stop_timeout deadline, ends STOPPED through the exit, and stays there', () => {
    const c = running(cfg({ stop_signal: 'INT', stop_timeout: 5 }));
    const s = step(c, T.stop, 2000);
    expect(s.next).toMatchObject({ state: 'STOPPING', pid: 10, wanted: false, deadline: 7000, since: 2000 });
    expect(nolog(s.actions)).toEqual([{ a: 'signal', pid: 10, sig: 'SIGINT' }]);
    expect(logs(s.actions)).toEqual(['info: companion w: stopping pid 10 (SIGINT; KILL after 5 s)']);
    const e = step(s.next, exited(null, 'SIGINT'), 2500);
    expect(e.next).toMatchObject({ state: 'STOPPED', pid: null, deadline: null, wanted: false, lastExit: { code: null, signal: 'SIGINT', at: 2500 } });
    expect(logs(e.actions)).toEqual(['info: companion w: pid 10 exited on SIGINT', 'info: companion w: stopped']);
    expect(run(e.next, [[3000, T.tick], [99999, T.tick]]).actions).toEqual([]);
  });

  it('sends KILL at the deadline and still waits for the exit', () => {
    const s = step(running(cfg({ stop_timeout: 5 })), T.stop, 2000).next;
    expect(step(s, T.tick, 6999)).toEqual({ next: s, actions: [] });
    const k = step(s, T.tick, 7000);
    expect(k.next).toMatchObject({ state: 'STOPPING', pid: 10, deadline: null });
    expect(nolog(k.actions)).toEqual([{ a: 'signal', pid: 10, sig: 'SIGKILL' }]);
    expect(logs(k.actions)).toEqual(['warning: companion w: pid 10 did not exit 5 s after SIGTERM; killed it (SIGKILL)']);
    expect(step(k.next, T.tick, 9000).actions).toEqual([]);
    expect(step(k.next, exited(null, 'SIGKILL'), 7001).next.state).toBe('STOPPED');
  });

  it('stops a STARTING companion the same way, and does not count its exit as a failure', () => {
    const c = run(initial(cfg(), 0), [[0, T.tick], [0, spawned(7)], [10, T.stop], [20, exited(0)]]).c;
    expect(c).toMatchObject({ state: 'STOPPED', failures: 0, wanted: false });
  });

  it('cancels a backoff and a FATAL', () => {
    const b = run(initial(cfg(), 0), [[0, T.tick], [0, spawned(7)], [1, exited(1)]]).c;
    expect(b.state).toBe('BACKOFF');
    const s = run(b, [[2, T.stop], [5000, T.tick]]);
    expect(s.c).toMatchObject({ state: 'STOPPED', wanted: false, deadline: null });
    expect(nolog(s.actions)).toEqual([]);
    const f = run(initial(cfg({ startretries: 1 }), 0), [[0, T.tick], [0, { t: 'spawn-failed', error: 'x' }], [1, T.stop]]).c;
    expect(f).toMatchObject({ state: 'STOPPED', wanted: false });
  });

  it('waits for a pending spawn\'s pid, then signals it', () => {
    const a = run(initial(cfg(), 0), [[0, T.tick], [0, T.stop]]);
    expect(a.c).toMatchObject({ state: 'STOPPING', pid: null, deadline: null, wanted: false });
    const b = step(a.c, spawned(7), 5);
    expect(b.next).toMatchObject({ state: 'STOPPING', pid: 7, deadline: 10_005 });
    expect(nolog(b.actions)).toEqual([{ a: 'signal', pid: 7, sig: 'SIGTERM' }]);
    expect(step(b.next, exited(0), 6).next.state).toBe('STOPPED');
    // A spawn that fails instead: nothing to stop.
    expect(step(a.c, { t: 'spawn-failed', error: 'x' }, 5).next).toMatchObject({ state: 'STOPPED', pid: null });
  });

  it('is a no-op when stopped, and a second stop while stopping sends nothing new', () => {
    const c = initial(cfg(), 0);
    expect(step(c, T.stop, 1)).toEqual({ next: { ...c, wanted: false }, actions: [] });
    const s = step(running(), T.stop, 2000).next;
    expect(step(s, T.stop, 2001)).toEqual({ next: s, actions: [] });
  });
});

describe('restart', () => {
  it('stops, then spawns exactly once when the old child is reaped', () => {
    const s = step(running(), T.restart, 2000);
    expect(s.next).toMatchObject({ state: 'STOPPING', restartPending: true, wanted: true, deadline: 12_000 });
    expect(nolog(s.actions)).toEqual([{ a: 'signal', pid: 10, sig: 'SIGTERM' }]);
    expect(step(s.next, T.tick, 3000).actions).toEqual([]);
    const e = step(s.next, exited(0), 3000);
    expect(e.next).toMatchObject({ state: 'STARTING', pid: null, restartPending: false, since: 3000 });
    expect(nolog(e.actions)).toEqual([{ a: 'spawn', config: s.next.config }]);
    expect(logs(e.actions)).toEqual(['info: companion w: pid 10 exited with code 0', 'info: companion w: restarting']);
  });

  it('starts an idle companion', () => {
    for (const c of [initial(cfg({ autostart: false }), 0), step(running(), T.stop, 2000).next]) {
      const idle = c.state === 'STOPPING' ? step(c, exited(0), 2001).next : c;
      const r = step(idle, T.restart, 3000);
      expect(r.next).toMatchObject({ state: 'STARTING', wanted: true });
      expect(nolog(r.actions)).toHaveLength(1);
    }
  });

  it('while stopping: a restart or a start respawns after the reap; a stop cancels that again', () => {
    const stopping = step(running(), T.stop, 2000).next;
    for (const input of [T.restart, T.start]) {
      const r = run(stopping, [[2100, input], [2200, exited(0)]]);
      expect(r.c).toMatchObject({ state: 'STARTING', wanted: true });
      expect(nolog(r.actions).filter((a) => a.a === 'spawn')).toHaveLength(1);
    }
    const cancelled = run(stopping, [[2100, T.restart], [2150, T.stop], [2200, exited(0)]]);
    expect(cancelled.c).toMatchObject({ state: 'STOPPED', wanted: false });
    expect(nolog(cancelled.actions)).toEqual([]);
  });

  it('respawns after a pending spawn fails while a restart waits for it', () => {
    const r = run(initial(cfg(), 0), [[0, T.tick], [0, T.restart], [1, { t: 'spawn-failed', error: 'x' }]]);
    expect(r.c.state).toBe('STARTING');
    expect(nolog(r.actions).filter((a) => a.a === 'spawn')).toHaveLength(2);
  });
});

describe('reconfigure', () => {
  const next = cfg({ command: ['w', '--new'], stop_timeout: 1, reload_timeout: 2 });

  it('restarts a RUNNING companion with the new config, stopping the old process by its own config\'s reload_timeout', () => {
    const old = running(cfg({ stop_signal: 'USR2', reload_timeout: 30 }));
    const s = step(old, { t: 'reconfigure', config: next }, 2000);
    expect(s.next).toMatchObject({ state: 'STOPPING', pendingConfig: next, restartPending: true, deadline: 32_000, config: old.config });
    expect(nolog(s.actions)).toEqual([{ a: 'signal', pid: 10, sig: 'SIGUSR2' }]);
    expect(logs(s.actions)[0]).toBe('info: companion w: config changed; restarting');
    const e = step(s.next, exited(0), 2500);
    expect(e.next).toMatchObject({ state: 'STARTING', config: next, pendingConfig: null });
    expect(nolog(e.actions)).toEqual([{ a: 'spawn', config: next }]);
  });

  it('restarts a STARTING one the same way', () => {
    const c = run(initial(cfg(), 0), [[0, T.tick], [0, spawned(7)]]).c;
    const r = run(c, [[10, { t: 'reconfigure', config: next }], [20, exited(0)]]);
    expect(nolog(r.actions)).toEqual([{ a: 'signal', pid: 7, sig: 'SIGTERM' }, { a: 'spawn', config: next }]);
  });

  it('only stores the new config for a manually stopped companion, used at its next start', () => {
    const stopped = run(running(), [[2000, T.stop], [2100, exited(0)]]).c;
    const r = step(stopped, { t: 'reconfigure', config: next }, 3000);
    expect(r.next).toMatchObject({ state: 'STOPPED', pendingConfig: next, config: stopped.config, wanted: false });
    expect(nolog(r.actions)).toEqual([]);
    expect(logs(r.actions)).toEqual(['info: companion w: config changed; it applies at the next start']);
    expect(run(r.next, [[9999, T.tick]]).actions).toEqual([]);
    const s = step(r.next, T.start, 4000);
    expect(s.next).toMatchObject({ state: 'STARTING', config: next, pendingConfig: null });
    expect(nolog(s.actions)).toEqual([{ a: 'spawn', config: next }]);
  });

  it('keeps a manual stop in progress a stop, with the new config pending', () => {
    const stopping = step(running(), T.stop, 2000).next;
    const r = run(stopping, [[2100, { t: 'reconfigure', config: next }], [2200, exited(0)], [9999, T.tick]]);
    expect(r.c).toMatchObject({ state: 'STOPPED', pendingConfig: next, wanted: false });
    expect(nolog(r.actions)).toEqual([]);
  });

  it('starts a BACKOFF or FATAL companion with the new config at once, failures reset', () => {
    const backoff = run(initial(cfg(), 0), [[0, T.tick], [0, spawned(7)], [1, exited(1)]]).c;
    const fatal = run(initial(cfg({ startretries: 1 }), 0), [[0, T.tick], [0, spawned(7)], [1, exited(1)]]).c;
    for (const c of [backoff, fatal]) {
      const r = step(c, { t: 'reconfigure', config: next }, 2);
      expect(r.next).toMatchObject({ state: 'STARTING', config: next, failures: 0, pendingConfig: null });
      expect(nolog(r.actions)).toEqual([{ a: 'spawn', config: next }]);
    }
  });

  it('ignores a config with the same hash, and drops a pending one changed back', () => {
    const c = running();
    expect(step(c, { t: 'reconfigure', config: cfg() }, 1005)).toEqual({ next: c, actions: [] });
    const stopped = { ...initial(cfg(), 0), wanted: false, pendingConfig: next };
    expect(step(stopped, { t: 'reconfigure', config: cfg() }, 5).next.pendingConfig).toBeNull();
  });
});

describe('inputs that do not fit the state', () => {
  it('ignores an exit or spawn failure with no process, with a warning', () => {
    const c = initial(cfg(), 0);
    expect(step(c, exited(0), 1)).toEqual({ next: c, actions: [{ a: 'log', level: 'warning', message: 'companion w: ignored an exit in STOPPED' }] });
    expect(step(c, { t: 'spawn-failed', error: 'x' }, 1).next).toBe(c);
  });

  it('kills a process reported spawned when no spawn was pending, so no second child lives', () => {
    const c = running();
    const r = step(c, spawned(99), 5000);
    expect(r.next).toEqual(c);
    expect(nolog(r.actions)).toEqual([{ a: 'signal', pid: 99, sig: 'SIGKILL' }]);
  });
});

// ------------------------------------------------------------ model-based

/**
 * The world the machine supervises: at most one child, spawn results and
 * exits delivered when the generated commands say so, time moving forward.
 * The model tracks what DESIGN promises independently of the machine.
 */
type Cmd =
  | { k: 'user'; input: 'start' | 'stop' | 'restart' }
  | { k: 'reconfigure'; config: number }
  | { k: 'advance'; dt: number }
  | { k: 'to-deadline'; offset: -1 | 0 | 1 }
  | { k: 'exit'; code: number | null; signal: Signal | null }
  | { k: 'spawn-result'; ok: boolean };

const configArb = fc.record({
  startsecs: fc.constantFrom(0, 1, 3),
  restart_delay: fc.constantFrom(0, 0.5, 1, 2),
  stop_timeout: fc.integer({ min: 0, max: 3 }),
  reload_timeout: fc.option(fc.integer({ min: 0, max: 4 })),
  startretries: fc.option(fc.integer({ min: 1, max: 4 })),
  backoff: fc.constantFrom('fixed', 'exponential'),
  backoff_max: fc.constantFrom(0.5, 1, 3),
  autostart: fc.boolean(),
  autorestart: fc.constantFrom(true, false, 'unexpected'),
  exitcodes: fc.constantFrom([0], [0, 1], [1]),
  argv: fc.constantFrom('a', 'b', 'c'),
}).map(({ argv, ...f }) => cfg({ ...f, command: ['w', argv] }));

const cmdArb: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ k: fc.constant('user' as const), input: fc.constantFrom('start' as const, 'stop' as const, 'restart' as const) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('reconfigure' as const), config: fc.nat({ max: 2 }) }) },
  { weight: 5, arbitrary: fc.record({ k: fc.constant('advance' as const), dt: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 1500 }), fc.integer({ min: 1500, max: 6000 })) }) },
  // Time to just before, at or just after the machine's next deadline: the boundaries are where off-by-ones live.
  { weight: 2, arbitrary: fc.record({ k: fc.constant('to-deadline' as const), offset: fc.constantFrom(-1 as const, 0 as const, 1 as const) }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('exit' as const), code: fc.constantFrom(0, 1, null), signal: fc.constantFrom(null, 'SIGTERM' as Signal, 'SIGKILL' as Signal) }) },
  // Mostly successful spawns, so processes live long enough to be stopped, crash and restart.
  { weight: 5, arbitrary: fc.record({ k: fc.constant('spawn-result' as const), ok: fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }) }) },
);

/** The delay DESIGN asks for, computed here rather than by the module under test. */
function expectedDelay(c: CompanionConfig, failures: number): number {
  if (c.backoff === 'fixed') return c.restart_delay;
  let d = c.restart_delay;
  for (let i = 1; i < failures && d < c.backoff_max; i++) d *= 2;
  return Math.min(d, Math.max(c.backoff_max, c.restart_delay));
}

/** How often each rule was exercised, so a passing run is known not to be vacuous. */
const seen: Record<string, number> = {};
const saw = (event: string): void => void (seen[event] = (seen[event] ?? 0) + 1);

function simulate(configs: CompanionConfig[], cmds: Cmd[]): void {
  let now = 0;
  let c = initial(configs[0]!, now);
  // The world: at most one child, live or with its spawn pending.
  let live: number | null = null;
  let pending = false;
  let nextPid = 100;
  let spawnedAt = 0;
  let startsecsOfLive = 0;
  // The model: what DESIGN promises, tracked apart from the machine.
  let byHand = !configs[0]!.autostart; // not wanted: stopped by hand, or never started
  let restartOwed = false; // a restart (or a start while stopping) waits for the reap
  let streak = 0; // consecutive failures
  let crash = false; // the exit being fed comes from a process that outlived startsecs
  let killDue: number | null = null; // a stop signal went out; KILL is due then
  let killSent = false;

  const feed = (input: Input): Action[] => {
    const before = c;
    moves.length = 0;
    const { next, actions } = step(c, input, now);
    const where = `${before.state} + ${JSON.stringify(input)} @${now}`;
    // Only allowed transitions, each one (a step may make two: RUNNING -> EXITED -> BACKOFF), in a chain from the old state to the new.
    let at = before.state;
    for (const m of moves) {
      const [from, to] = m.split(' ')[0]!.split('>') as [State, State];
      expect(from, where).toBe(at);
      expect(TRANSITIONS[from], `${where}: ${m}`).toContain(to);
      at = to;
    }
    expect(at, where).toBe(next.state);
    // EXITED: only a process that outlived startsecs and ended on its own; it stays there only when autorestart says so.
    if (moves.some((m) => m.startsWith('RUNNING>EXITED'))) {
      expect(crash, `${where}: EXITED without a crash`).toBe(true);
      const expected = input.t === 'exited' && input.signal === null && before.config.exitcodes.includes(input.code!);
      const again = before.config.autorestart === true || (before.config.autorestart === 'unexpected' && !expected);
      expect(next.state, where).toBe(again ? 'BACKOFF' : 'EXITED');
      saw(again ? 'EXITED, restarted' : expected ? 'EXITED, expected, kept' : 'EXITED, unexpected, kept');
    } else expect(next.state === 'EXITED' && before.state !== 'EXITED', `${where}: EXITED not from RUNNING`).toBe(false);
    // At most one child: a spawn only with none live and none pending, one per step.
    const spawns = actions.filter((a) => a.a === 'spawn');
    expect(spawns.length, where).toBeLessThanOrEqual(1);
    if (spawns.length > 0) {
      expect(live === null && !pending, `${where}: spawn with a child live or pending`).toBe(true);
      // A manual stop is undone only by a start or a restart.
      expect(byHand && input.t !== 'start' && input.t !== 'restart', `${where}: spawn after a manual stop`).toBe(false);
      // A companion left EXITED runs again only when asked (or given a new config), never by time.
      if (before.state === 'EXITED') {
        expect(['start', 'restart', 'reconfigure'], `${where}: spawn of an EXITED companion`).toContain(input.t);
        saw('EXITED started again');
      }
      pending = true;
    }
    for (const a of actions) {
      if (a.a !== 'signal') continue;
      expect(a.pid, where).toBe(live);
      if (a.sig === 'SIGKILL') {
        // KILL only at or after the deadline, once.
        expect(killDue !== null && now >= killDue && !killSent, `${where}: KILL before its deadline`).toBe(true);
        killSent = true;
        saw('KILL at the deadline');
      } else {
        expect(a.sig, where).toBe(before.config.stop_signal);
        expect(next.state, where).toBe('STOPPING');
        // The deadline: the process's stop_timeout, or its reload_timeout for a reconfigure.
        const timeouts = input.t === 'reconfigure' ? [before.config.reload_timeout]
          : input.t === 'spawned' ? [before.config.stop_timeout, before.config.reload_timeout] : [before.config.stop_timeout];
        expect(timeouts, where).toContain(next.deadline! - now);
        killDue = next.deadline;
        killSent = false;
      }
    }
    // A stop past its deadline ends in KILL: the first tick at or after it sends one.
    if (input.t === 'tick' && before.state === 'STOPPING' && live !== null && killDue !== null && now >= killDue) {
      expect(killSent, `${where}: the stop deadline passed without KILL`).toBe(true);
    }
    // Backoff follows the policy and the cap; FATAL only with startretries, once they are used up.
    if (next.state === 'BACKOFF' && before.state !== 'BACKOFF') {
      expect(next.failures, where).toBe(streak);
      expect(next.deadline! - now, where).toBe(expectedDelay(next.config, streak));
      saw(next.config.backoff === 'exponential' && streak > 1 ? 'exponential backoff' : 'backoff');
      if (next.config.backoff === 'exponential' && next.deadline! - now === next.config.backoff_max && streak > 1) saw('backoff at its cap');
      expect(next.config.startretries === null || streak < next.config.startretries || crash, `${where}: BACKOFF where FATAL was due`).toBe(true);
    }
    if (next.state === 'FATAL' && before.state !== 'FATAL') {
      expect(next.config.startretries, where).not.toBeNull();
      expect(streak, where).toBeGreaterThanOrEqual(next.config.startretries!);
      expect(crash, `${where}: a crash of a started process went FATAL`).toBe(false);
      saw('FATAL');
    }
    if (next.state === 'EXITED') expect(next.deadline, where).toBeNull();
    // RUNNING only after startsecs alive.
    if (next.state === 'RUNNING' && before.state !== 'RUNNING') expect(now - spawnedAt, where).toBeGreaterThanOrEqual(startsecsOfLive);
    if (byHand && input.t !== 'start' && input.t !== 'restart') expect(next.wanted, where).toBe(false);
    c = next;
    return actions;
  };

  for (const cmd of cmds) {
    if (cmd.k === 'advance') now += cmd.dt;
    if (cmd.k === 'to-deadline' && c.deadline !== null) now = Math.max(now, c.deadline + cmd.offset);
    // A process alive for startsecs has started: the failure streak ends.
    if (c.state === 'STARTING' && live !== null && now - spawnedAt >= startsecsOfLive) streak = 0;
    crash = false;
    const idle = live === null && !pending;
    switch (cmd.k) {
      case 'user': {
        const stopping = c.state === 'STOPPING';
        if (cmd.input !== 'stop' && idle) streak = 0;
        feed({ t: cmd.input });
        if (cmd.input === 'stop') {
          byHand = true;
          restartOwed = false;
        } else {
          byHand = false;
          if (!idle && (cmd.input === 'restart' || stopping)) restartOwed = true;
        }
        break;
      }
      case 'reconfigure': {
        const config = configs[cmd.config]!;
        const before = c;
        const changed = config.hash !== (before.pendingConfig ?? before.config).hash;
        const parked = before.state === 'STOPPED' || before.state === 'STOPPING';
        if (changed && !parked) streak = 0;
        const actions = feed({ t: 'reconfigure', config });
        if (!changed) expect(actions).toEqual([]);
        else if (parked) expect(c.state).toBe(before.state);
        else if (!idle) {
          restartOwed = true;
          saw('reconfigure restarts');
        } else saw('reconfigure starts');
        if (changed && parked) saw('reconfigure parks the config');
        if (byHand) expect(c.state === 'STOPPED' || c.state === 'STOPPING').toBe(true);
        break;
      }
      case 'advance':
      case 'to-deadline': {
        const before = c;
        const actions = feed({ t: 'tick' });
        // A backoff respawns when its delay is over, not before.
        if (before.state === 'BACKOFF') expect(actions.some((a) => a.a === 'spawn')).toBe(now >= before.deadline!);
        break;
      }
      case 'exit': {
        if (live === null) break;
        const stopping = c.state === 'STOPPING';
        if (!stopping) {
          crash = now - spawnedAt >= startsecsOfLive;
          streak = crash ? 1 : streak + 1;
        }
        // Reaped: the child is gone before the manager reports its exit.
        live = null;
        killDue = null;
        const actions = feed({ t: 'exited', code: cmd.code, signal: cmd.signal });
        const spawns = actions.filter((a) => a.a === 'spawn').length;
        if (stopping) {
          // Through the exit: STOPPED after a stop, exactly one respawn when a restart waits.
          expect(c.state).toBe(restartOwed ? 'STARTING' : 'STOPPED');
          expect(spawns).toBe(restartOwed ? 1 : 0);
          saw(restartOwed ? 'respawn after the reap' : 'stopped through the exit');
          restartOwed = false;
        } else expect(spawns).toBe(0);
        break;
      }
      case 'spawn-result': {
        if (!pending) break;
        pending = false;
        if (cmd.ok) {
          live = nextPid++;
          spawnedAt = now;
          startsecsOfLive = c.config.startsecs;
          if (c.state === 'STARTING' && startsecsOfLive === 0) streak = 0;
          if (c.state === 'STOPPING') saw('stop waits for a pending spawn');
          feed({ t: 'spawned', pid: live });
        } else {
          const stopping = c.state === 'STOPPING';
          if (!stopping) streak += 1;
          const actions = feed({ t: 'spawn-failed', error: 'ENOENT' });
          if (stopping) {
            expect(actions.filter((a) => a.a === 'spawn')).toHaveLength(restartOwed ? 1 : 0);
            expect(c.state).toBe(restartOwed ? 'STARTING' : 'STOPPED');
            restartOwed = false;
          }
        }
        break;
      }
    }
    // The machine's view of the child is the world's.
    expect(c.pid).toBe(live);
    // STOPPED means no child and none coming.
    if (c.state === 'STOPPED') expect(live === null && !pending).toBe(true);
    // A manual stop with a child alive is STOPPING until the exit, never STOPPED early.
    if (byHand && !(live === null && !pending)) expect(c.state).toBe('STOPPING');
  }
}

describe('model-based: random inputs against the rules', () => {
  it('keeps every rule on every step, and exercises every rule', () => {
    fc.assert(
      fc.property(fc.array(configArb, { minLength: 3, maxLength: 3 }), fc.array(cmdArb, { maxLength: 150, size: 'max' }), (configs, cmds) => {
        simulate(configs, cmds);
      }),
      { numRuns: 400 },
    );
    for (const event of [
      'KILL at the deadline', 'backoff', 'exponential backoff', 'backoff at its cap', 'FATAL', 'respawn after the reap',
      'EXITED, restarted', 'EXITED, expected, kept', 'EXITED, unexpected, kept', 'EXITED started again',
      'stopped through the exit', 'reconfigure restarts', 'reconfigure starts', 'reconfigure parks the config', 'stop waits for a pending spawn',
    ]) expect(seen[event] ?? 0, JSON.stringify(seen)).toBeGreaterThan(0);
  });
});

describe('secs', () => {
  it('writes durations to the millisecond, never a float\'s tail', () => {
    expect(secs(2001.0210520029066)).toBe('2.001 s');
    expect(secs(1500)).toBe('1.5 s');
    expect(secs(0)).toBe('0 s');
  });
});
