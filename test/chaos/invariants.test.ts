// The chaos checker (src/chaos/invariants.ts) on hand-made process tables:
// each rule passes on the edge of its bound and fails one step past it.
import { describe, expect, test } from 'vitest';
import { Checker, ZOMBIE_GRACE_MS, type Deadlines } from '../../src/chaos/invariants.js';
import { TRANSITIONS, type State } from '../../src/runtime/companions/state.js';
import type { ProcessInfo } from '../../src/sim/index.js';
import { SPARE, SPARE_TITLE } from '../../src/runtime/protocol.js';

const DRIVER = 100;

function proc(pid: number, ppid: number, program: string, args: readonly string[] = [], state: ProcessInfo['state'] = 'running'): ProcessInfo {
  return { pid, ppid, pgid: pid, state, program, args, title: '' };
}

/** A checker on a clock the test moves. */
function setup(deadlines: Partial<Deadlines> = {}) {
  let t = 0;
  const checker = new Checker(() => t, { orphan: (p) => (p === 'worker' ? 2000 : 4000), ...deadlines }, () => DRIVER);
  return {
    checker,
    at(ms: number, procs: readonly ProcessInfo[]) {
      t = ms;
      checker.table(procs);
      return checker.violation;
    },
  };
}

const driver = proc(DRIVER, 1, 'chaos-driver');
const arbiter = proc(101, DRIVER, 'arbiter');

describe('orphans', () => {
  test('a process left to init may live out its deadline, not one ms more', () => {
    const { at } = setup();
    const orphan = proc(103, 1, 'companion-manager');
    expect(at(1000, [driver, orphan])).toBeNull(); // its parent just died
    expect(at(5000, [driver, orphan])).toBeNull(); // 4000 ms: the deadline itself
    expect(at(5001, [driver, orphan])).toMatchObject({ invariant: 'orphans', at: 5001 });
    expect(at(5001, [driver, orphan])!.message).toMatch(/companion-manager 103 has outlived its parent by 4001 ms \(its deadline: 4000 ms\)/);
  });

  test('each program has its own deadline', () => {
    const { at } = setup();
    expect(at(0, [driver, proc(104, 1, 'worker')])).toBeNull();
    expect(at(2000, [driver, proc(104, 1, 'worker')])).toBeNull();
    expect(at(2001, [driver, proc(104, 1, 'worker')])?.invariant).toBe('orphans');
  });

  test("the driver is init's child on purpose; a zombie under init is no orphan; a process that goes in time starts no clock", () => {
    const { at } = setup();
    expect(at(0, [driver, proc(103, 1, 'companion-manager')])).toBeNull();
    expect(at(3000, [driver])).toBeNull(); // gone in time
    expect(at(9000, [driver, proc(105, 1, 'worker', [], 'zombie')])).toBeNull();
    // Another one later: its own clock (the simulator never reuses a pid).
    expect(at(10_000, [driver, proc(104, 1, 'companion-manager')])).toBeNull();
    expect(at(14_000, [driver, proc(104, 1, 'companion-manager')])).toBeNull();
    expect(at(14_001, [driver, proc(104, 1, 'companion-manager')])?.invariant).toBe('orphans');
  });
});

describe('zombies', () => {
  test('an exited child of a live parent is reaped within the grace, or it is a violation', () => {
    const { at } = setup();
    const zombie = proc(103, 101, 'worker', [], 'zombie');
    expect(at(500, [driver, arbiter, zombie])).toBeNull();
    expect(at(500 + ZOMBIE_GRACE_MS, [driver, arbiter, zombie])).toBeNull();
    const v = at(501 + ZOMBIE_GRACE_MS, [driver, arbiter, zombie]);
    expect(v).toMatchObject({ invariant: 'zombies' });
    expect(v!.message).toMatch(/worker 103 exited 3001 ms ago and its parent 101 has not reaped it/);
  });

  test('a reap in time resets the clock', () => {
    const { at } = setup();
    expect(at(0, [driver, arbiter, proc(103, 101, 'worker', [], 'zombie')])).toBeNull();
    expect(at(2000, [driver, arbiter])).toBeNull();
    expect(at(4000, [driver, arbiter, proc(104, 101, 'worker', [], 'zombie')])).toBeNull();
    expect(at(7000, [driver, arbiter, proc(104, 101, 'worker', [], 'zombie')])).toBeNull();
  });

  test('no parent to blame: a dead or stopped parent, init, and the driver (it reaps its arbiter once the old tree is gone)', () => {
    const { at } = setup();
    const procs = [
      driver,
      proc(101, DRIVER, 'arbiter', [], 'zombie'), // the driver's: reaped late on purpose
      proc(103, 101, 'worker', [], 'zombie'), // its parent is a zombie itself
      proc(110, 1, 'chaos-grandchild', [], 'zombie'), // init's
      proc(120, DRIVER, 'arbiter'),
      proc(121, 120, 'slow-worker', [], 'stopped'),
      proc(122, 121, 'worker', [], 'zombie'), // its parent is stopped, not running
    ];
    expect(at(0, procs)).toBeNull();
    expect(at(60_000, procs)).toBeNull();
  });
});

describe('one instance per companion', () => {
  test('two live instances of one name fail; zombies and other names do not count', () => {
    const { at } = setup();
    const c = (pid: number, name: string, state: ProcessInfo['state'] = 'running') => proc(pid, 102, 'chaos-companion', [name, 'cooperative'], state);
    const manager = proc(102, 101, 'companion-manager');
    expect(at(0, [driver, arbiter, manager, c(110, 'c0'), c(111, 'c1'), c(112, 'c0', 'zombie')])).toBeNull();
    const v = at(1, [driver, arbiter, manager, c(110, 'c0'), c(111, 'c1'), c(113, 'c0')]);
    expect(v).toMatchObject({ invariant: 'one-instance', message: 'companion c0 runs 2 instances: pids 110, 113' });
  });
});

describe('transitions', () => {
  const states = Object.keys(TRANSITIONS) as State[];

  test('every change the state table allows passes', () => {
    const { checker } = setup();
    let n = 0;
    for (const from of states) {
      for (const to of TRANSITIONS[from]) {
        checker.transition('c0', from, to, 'start'); // (what one-shot asks of a move out of EXITED: an asked start)
        n++;
      }
    }
    expect(checker.violation).toBeNull();
    expect(checker.counts.transitions).toBe(n);
  });

  test('every change it does not allow fails, by name', () => {
    for (const from of states) {
      for (const to of states) {
        if (to === from || TRANSITIONS[from].includes(to)) continue;
        const { checker } = setup();
        checker.transition('web', from, to);
        expect(checker.violation).toMatchObject({ invariant: 'transitions', message: `companion web went ${from} -> ${to}, which the state table does not allow` });
      }
    }
    const { checker } = setup();
    checker.transition('c0', 'RUNNING', 'STARTING'); // a crash that skips the backoff
    expect(checker.violation?.invariant).toBe('transitions');
  });
});

describe('one-shot', () => {
  const policies = new Map([
    ['job', { autorestart: false, exitcodes: [0] }],
    ['check', { autorestart: 'unexpected' as const, exitcodes: [0, 2] }],
  ]);
  const table = [driver, arbiter];

  test('an exit the policy restarts goes EXITED -> BACKOFF at once; one it does not, stays EXITED', () => {
    const { checker, at } = setup({ policies });
    for (const [name, cause] of [['daemon', 'exit 0'], ['daemon', 'exit SIGKILL'], ['check', 'exit 1'], ['check', 'exit SIGTERM']]) {
      checker.transition(name!, 'RUNNING', 'EXITED', cause);
      checker.transition(name!, 'EXITED', 'BACKOFF', cause);
    }
    for (const [name, cause] of [['job', 'exit 0'], ['job', 'exit 3'], ['job', 'exit SIGKILL'], ['check', 'exit 2']]) checker.transition(name!, 'RUNNING', 'EXITED', cause);
    expect(at(10, table)).toBeNull();
    expect(checker.counts['one-shot']).toBeGreaterThanOrEqual(8);
  });

  test('restarting one that should stay EXITED fails, naming the policy', () => {
    const { checker } = setup({ policies });
    checker.transition('check', 'RUNNING', 'EXITED', 'exit 2');
    checker.transition('check', 'EXITED', 'BACKOFF', 'exit 2');
    expect(checker.violation).toMatchObject({
      invariant: 'one-shot',
      message: 'companion check went EXITED and was restarted (exit 2), but autorestart "unexpected" with exitcodes [0, 2] says it stays EXITED',
    });
  });

  test('leaving EXITED for STARTING: only a start, restart or reconfigure may do it', () => {
    for (const cause of ['start', 'restart', 'reconfigure']) {
      const { checker } = setup({ policies });
      checker.transition('job', 'RUNNING', 'EXITED', 'exit 0');
      checker.transition('job', 'EXITED', 'STARTING', cause);
      checker.transition('job', 'STARTING', 'STOPPING', 'stop');
      expect(checker.violation).toBeNull();
    }
    const { checker } = setup({ policies });
    checker.transition('job', 'RUNNING', 'EXITED', 'exit 0');
    checker.transition('job', 'EXITED', 'STARTING', 'tick');
    expect(checker.violation).toMatchObject({ invariant: 'one-shot', message: 'companion job, left EXITED, was started again on tick, which nobody asked for' });
  });

  test('an unexpected exit that is not restarted fails: at the next look at the table, or at the wrong next move', () => {
    const a = setup({ policies });
    a.checker.transition('check', 'RUNNING', 'EXITED', 'exit 1');
    expect(a.checker.violation).toBeNull();
    expect(a.at(5, table)).toMatchObject({ invariant: 'one-shot', message: 'companion check went EXITED (exit 1) and autorestart "unexpected" with exitcodes [0, 2] says it is restarted, but it stayed EXITED' });
    const b = setup();
    b.checker.transition('web', 'RUNNING', 'EXITED', 'exit 0');
    b.checker.transition('web', 'EXITED', 'STOPPED', 'stop');
    expect(b.checker.violation).toMatchObject({ invariant: 'one-shot', message: 'companion web went EXITED (exit 0) and autorestart true says it is restarted, but it went STOPPED on stop' });
  });
});

describe('queue bound', () => {
  test('a slow lane may hold slow_queue requests, not one more', () => {
    const { checker } = setup();
    checker.lane(101, 1, { queued: 0, running: 0, workers: 1 }, 0);
    checker.lane(101, 1, { queued: 4, running: 1, workers: 1 }, 4);
    expect(checker.violation).toBeNull();
    checker.lane(101, 2, { queued: 5, running: 1, workers: 1 }, 4);
    expect(checker.violation).toMatchObject({ invariant: 'queue-bound', message: 'the slow lane of generation 2 holds 5 queued requests, over slow_queue 4' });
    expect(checker.counts['queue-bound']).toBe(3);
  });
});

describe('lane slots', () => {
  const lane = (queued: number, running: number, workers: number) => ({ queued, running, workers });
  test('after settling, the lanes of the arbiter still running hold nothing; a closed lane and a dead arbiter\'s are not looked at', () => {
    const { checker } = setup();
    checker.lane(101, 1, lane(2, 1, 2), 4);
    checker.lane(101, 2, lane(0, 1, 1), 4);
    checker.laneClosed(101, 2);
    checker.lane(101, 1, lane(0, 0, 2), 4);
    checker.lane(90, 3, lane(0, 2, 1), 4); // an arbiter KILLed earlier
    checker.lanesIdle(101, 2);
    expect(checker.violation).toBeNull();
    checker.lane(101, 1, lane(0, 1, 2), 4);
    checker.lanesIdle(101, 2);
    expect(checker.violation).toMatchObject({ invariant: 'lane-slots', message: expect.stringMatching(/generation 101\/1 .* counts 1 running and 0 queued/) });
  });

  test('the lanes count as many slow workers as are alive', () => {
    const { checker } = setup();
    checker.lane(101, 1, lane(0, 0, 2), 4);
    checker.lanesIdle(101, 1);
    expect(checker.violation).toMatchObject({ invariant: 'lane-slots', message: 'the slow lanes of arbiter 101 count 2 slow workers taking requests, but 1 are alive' });
  });
});

describe('worker counts of a generation', () => {
  const GOOD = '/apps/v1.ts';
  const BROKEN = '/apps/broken.ts';
  const w = (pid: number, generation: number, app = GOOD, ppid = 101, state: ProcessInfo['state'] = 'running') =>
    proc(pid, ppid, 'worker', [JSON.stringify({ app, generation, role: 'fast' })], state);
  const limits: Partial<Deadlines> = { maxWorkers: (app) => (app === GOOD ? 2 : null), drainMs: 6000 };

  test('over max_workers for a drain is allowed; longer, with no failed reload, the count does not converge', () => {
    const { at } = setup(limits);
    expect(at(0, [driver, arbiter, w(103, 1), w(104, 1)])).toBeNull();
    expect(at(1000, [driver, arbiter, w(103, 1), w(104, 1), w(105, 1)])).toBeNull(); // a drained one finishing
    expect(at(7000, [driver, arbiter, w(103, 1), w(104, 1), w(105, 1)])).toBeNull();
    const v = at(7001, [driver, arbiter, w(103, 1), w(104, 1), w(105, 1)]);
    expect(v).toMatchObject({ invariant: 'convergence' });
    expect(v!.message).toBe("generation 101/1 (arbiter/generation) has run 3 fast workers for 6001 ms, over its config's max_workers 2");
  });

  test('back under the limit resets the clock; zombies, orphans and other generations or arbiters are not counted', () => {
    const { at } = setup(limits);
    expect(at(0, [driver, arbiter, w(103, 1), w(104, 1), w(105, 1)])).toBeNull();
    expect(at(5000, [driver, arbiter, w(103, 1), w(104, 1)])).toBeNull();
    const many = [
      driver, arbiter, w(103, 1), w(104, 1), w(105, 1, GOOD, 101, 'zombie'), w(106, 1, GOOD, 1), w(107, 2), w(108, 2),
      proc(120, DRIVER, 'arbiter'), w(121, 1, GOOD, 120), w(122, 1, GOOD, 120),
    ];
    expect(at(6000, many)).toBeNull();
    expect(at(60_000, many.filter((p) => p.state !== 'zombie' && p.ppid !== 1))).toBeNull(); // reaped, and the orphan gone, meanwhile
  });

  test("after a reload that failed (its workers run no good config's app), the excess is the failed config's count", () => {
    const { at } = setup(limits);
    expect(at(0, [driver, arbiter, w(103, 1), w(104, 1)])).toBeNull();
    expect(at(2000, [driver, arbiter, w(103, 1), w(104, 1), w(105, 2, BROKEN), w(106, 2, BROKEN), w(107, 2, BROKEN)])).toBeNull();
    expect(at(2100, [driver, arbiter, w(103, 1), w(104, 1), w(108, 1)])).toBeNull(); // the failed reload's count taken
    const v = at(8101, [driver, arbiter, w(103, 1), w(104, 1), w(108, 1)]);
    expect(v).toMatchObject({ invariant: 'broken-reload' });
    expect(v!.message).toMatch(/generation 101\/1 .* 3 fast workers for 6001 ms, over its config's max_workers 2: the worker count of the reload that failed at 2000 ms took effect/);
  });

  test('a failed reload of another arbiter, or one before the generation began, is not the cause', () => {
    const { at } = setup(limits);
    expect(at(0, [driver, arbiter, w(103, 1), w(104, 1), proc(120, DRIVER, 'arbiter'), w(121, 2, BROKEN, 120)])).toBeNull();
    expect(at(100, [driver, arbiter, w(103, 1), w(104, 1), w(105, 1)])).toBeNull();
    expect(at(6101, [driver, arbiter, w(103, 1), w(104, 1), w(105, 1)])?.invariant).toBe('convergence');
  });

  test('a spare is counted once it titles itself a worker of a generation (its app by file name), not before', () => {
    const spare = (pid: number, title: string) => ({ ...proc(pid, 101, 'worker', [SPARE]), title });
    const { at } = setup({ ...limits, maxWorkers: (app) => (app === GOOD || app === 'v1.ts' ? 2 : null) });
    const idle = [driver, arbiter, w(103, 1), w(104, 1), spare(105, SPARE_TITLE), spare(106, '')];
    expect(at(0, idle)).toBeNull();
    expect(at(60_000, idle)).toBeNull();
    const taken = [driver, arbiter, w(103, 1), w(104, 1), spare(105, 'drover: worker gen 1 [v1.ts]')];
    expect(at(60_001, taken)).toBeNull();
    expect(at(66_002, taken)).toMatchObject({ invariant: 'convergence', message: expect.stringMatching(/generation 101\/1 .* 3 fast workers for 6001 ms/) });
  });

  test('without a maxWorkers lookup the counts are not checked', () => {
    const { at } = setup();
    const procs = [driver, arbiter, w(103, 1), w(104, 1), w(105, 1), w(106, 1), w(107, 1)];
    expect(at(0, procs)).toBeNull();
    expect(at(600_000, procs)).toBeNull();
  });
});

test('the first violation is the one kept; every check is counted', () => {
  const { checker } = setup();
  checker.lane(101, 1, { queued: 3, running: 0, workers: 1 }, 2);
  checker.transition('c0', 'RUNNING', 'STARTING');
  expect(checker.violation?.invariant).toBe('queue-bound');
  expect(checker.counts.transitions).toBe(1);
  expect(checker.counts['queue-bound']).toBe(1);
});

describe("the kernel's faults (issue 15)", () => {
  /** A checker whose clock the test sets. */
  function clocked() {
    let t = 0;
    const checker = new Checker(() => t, { orphan: () => 4000, managerTickMs: 600 }, () => DRIVER);
    return { checker, set: (ms: number) => void (t = ms) };
  }

  test('no-crash: a crash of one of drover\'s programs is a violation; a companion\'s or the driver\'s is not', () => {
    const { checker } = clocked();
    const crashes = [
      { pid: 110, program: 'chaos-companion', message: 'Error: x' },
      { pid: 100, program: 'chaos-driver', message: 'Error: y' },
    ];
    checker.crashes(crashes, 0);
    expect(checker.violation).toBeNull();
    checker.crashes([...crashes, { pid: 104, program: 'worker', message: 'Error: ENOSPC: no space left on device, write' }], 2);
    expect(checker.violation).toMatchObject({ invariant: 'no-crash', message: 'worker 104 crashed: Error: ENOSPC: no space left on device, write' });
  });

  test('serving-through-faults: a request may wait 5 s while nothing is answered, not one ms more; an answer meanwhile is enough', () => {
    const { checker, set } = clocked();
    set(5000);
    checker.serving(0, 0, () => 'r1');
    checker.serving(null, 0, () => ''); // nothing waits
    expect(checker.violation).toBeNull();
    set(9000);
    checker.serving(1000, 4500, () => 'r2'); // answered 4.5 s ago
    expect(checker.violation).toBeNull();
    set(9501);
    checker.serving(1000, 4500, () => 'r2 sent at 1000 ms');
    expect(checker.violation).toMatchObject({ invariant: 'serving-through-faults' });
    expect(checker.violation!.message).toBe('nothing was answered for 5001 ms while r2 sent at 1000 ms waited (since 1000 ms)');
  });

  test('log-reported: one report an outage, per process and file; its end only after it; text split across reads is read whole', () => {
    const { checker } = clocked();
    const fail = (pid: number, f: string) => `drover: [${pid}] cannot write ${f} (ENOSPC: no space left on device, write); dropping log lines until it can be written again\n`;
    const back = (pid: number, f: string) => `drover: [${pid}] writing ${f} again; 3 line(s) were dropped\n`;
    const closed = (pid: number, f: string) => `drover: [${pid}] closing ${f}, which could not be written; 1 line(s) were dropped\n`;
    checker.logReports(fail(101, '/var/log/a.log') + fail(102, '/var/log/a.log') + fail(101, '/var/log/b.log') + 'a stack trace\n');
    checker.logReports(back(101, '/var/log/a.log') + fail(101, '/var/log/a.log') + closed(101, '/var/log/a.log') + fail(101, '/var/log/a.log').slice(0, 30));
    expect(checker.violation).toBeNull(); // the last line is not whole yet: not read
    checker.logReports(fail(101, '/var/log/a.log').slice(30));
    expect(checker.violation).toBeNull();
    checker.logReports(fail(101, '/var/log/a.log'));
    expect(checker.violation).toMatchObject({ invariant: 'log-reported' });
    expect(checker.violation!.message).toMatch(/^process 101 reported again that it cannot write \/var\/log\/a\.log within one outage/);
    const other = clocked().checker;
    other.logReports(back(103, '/var/log/a.log'));
    expect(other.violation!.message).toMatch(/^process 103 said it writes \/var\/log\/a\.log again, but had not said it could not/);
  });

  test('whole-lines: a line carrying another of the same process is a violation; one of another process (a torn shared line) or a cut line is not', () => {
    const line = (pid: number, msg: string) => `[2026-01-01 00:00:01 +0000] [${pid}] [INFO] ${msg}`;
    const ok = clocked().checker;
    ok.wholeLines([line(101, 'a'), `${line(101, 'cut he')}${line(102, 'b')}`, '[2026-01-01 00:0', line(103, 'c'), ''].join('\n'), []);
    expect(ok.violation).toBeNull();
    expect(ok.counts['whole-lines']).toBe(7); // a line each, and the two verdicts
    const glued = clocked().checker;
    glued.wholeLines([line(101, 'a'), `${line(101, 'cut he')}${line(101, 'b')}`].join('\n'), []);
    expect(glued.violation).toMatchObject({ invariant: 'whole-lines' });
    const talk = clocked().checker;
    talk.wholeLines('', ['c0 says 1: é c0 says 2: é ✓ 𝄞']);
    expect(talk.violation!.message).toMatch(/^companion output came out broken/);
  });

  test('a manager whose spawn the OS refused may come the retry later than the backoff announced', () => {
    const { checker, set } = clocked();
    const mgr = (pid: number, state: ProcessInfo['state'] = 'running') => proc(pid, 101, 'companion-manager', [], state);
    checker.table([driver, arbiter, mgr(102)]);
    checker.managerGone(101, 102, 1000); // owed by 0 + 1000 + 600
    set(1500);
    checker.spawnFailed(101, 'worker', 250); // not a manager: nothing changes
    checker.spawnFailed(101, 'companion-manager', 500); // owed by 1500 + 500 + 600 = 2600
    set(2600);
    checker.table([driver, arbiter]);
    expect(checker.violation).toBeNull();
    set(2601);
    checker.table([driver, arbiter]);
    expect(checker.violation).toMatchObject({ invariant: 'hung-manager' });
  });
});
