// Assertions as a layer (src/runtime/assert.ts): the helper itself, the
// catch filters, and that a broken invariant of each state machine stops
// with an AssertionError instead of running on.
import { NO_HOOKS, type Hooks } from '../../src/os/hooks.js';
import { describe, expect, test } from 'vitest';
import { OsError, type Os } from '../../src/os/types.js';
import { ASSERTION_ERROR, AssertionError, assert, crashOnAssertion, errnoOf, expectCodes, ignoring, rethrowAssertion } from '../../src/runtime/assert.js';
import { Lanes } from '../../src/runtime/arbiter/lanes.js';
import { Workers } from '../../src/runtime/arbiter/workers.js';
import { parseCompanions } from '../../src/runtime/companions/config.js';
import { initial, step, TRANSITIONS, type Companion, type State } from '../../src/runtime/companions/state.js';
import type { Config } from '../../src/runtime/config/index.js';
import { SlowLane } from '../../src/runtime/lanes/queue.js';
import type { Logger } from '../../src/runtime/log.js';


/** What `fn` throws (fails the test when it throws nothing). */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error('expected a throw, got none');
}

describe('assert', () => {
  test('passes a truthy condition without building its message', () => {
    let built = 0;
    const message = () => `built ${++built}`;
    assert(1, message);
    assert('x', message);
    assert({}, message);
    expect(built).toBe(0);
  });

  test('throws an AssertionError, named apart from node:assert, with the message (a literal or built on failure)', () => {
    const e = thrown(() => assert(0, 'the count went negative'));
    expect(e).toBeInstanceOf(AssertionError);
    expect(e).toBeInstanceOf(Error);
    expect((e as Error).name).toBe(ASSERTION_ERROR);
    expect(ASSERTION_ERROR).not.toBe('AssertionError');
    expect((e as Error).message).toBe('the count went negative');
    expect((thrown(() => assert(null, () => `x is ${2 + 2}`)) as Error).message).toBe('x is 4');
  });

  test('narrows the asserted type', () => {
    const v: string | null = ['a', null][0]!;
    assert(v !== null, 'v');
    expect(v.length).toBe(1); // compiles: v is a string here
  });
});

describe('catch filters', () => {
  const fsError = (code: string) => Object.assign(new Error(`${code}: no such file`), { code });

  test('errnoOf: an OsError or a node:fs error gives its errno; a bug, a plain object or a Node ERR_ code gives none', () => {
    expect(errnoOf(new OsError('ESRCH', 'no process'))).toBe('ESRCH');
    expect(errnoOf(fsError('ENOTDIR'))).toBe('ENOTDIR');
    expect(errnoOf(new TypeError('x is not a function'))).toBeUndefined();
    expect(errnoOf(Object.assign(new TypeError('bad arg'), { code: 'ERR_INVALID_ARG_TYPE' }))).toBeUndefined();
    expect(errnoOf({ code: 'ENOENT' })).toBeUndefined();
    expect(errnoOf(new AssertionError('broken'))).toBeUndefined();
  });

  test('expectCodes returns an expected errno and rethrows anything else, the same object', () => {
    expect(expectCodes(new OsError('ESRCH', 'gone'), 'ESRCH')).toBe('ESRCH');
    expect(expectCodes(new OsError('ECHILD', 'none'), 'ESRCH', 'ECHILD')).toBe('ECHILD');
    expect(expectCodes(fsError('EACCES'))).toBe('EACCES'); // no codes: any errno
    for (const e of [new OsError('EPERM', 'not yours'), new TypeError('bug'), new AssertionError('broken'), 'a string']) {
      expect(thrown(() => expectCodes(e, 'ESRCH'))).toBe(e);
    }
    const bug = new RangeError('bug');
    expect(thrown(() => expectCodes(bug))).toBe(bug);
  });

  test('ignoring: the value, undefined for an expected errno, and anything else goes through', () => {
    expect(ignoring(['ENOENT'], () => 5)).toBe(5);
    expect(ignoring(['ENOENT'], () => { throw fsError('ENOENT'); })).toBeUndefined();
    expect(() => ignoring(['ENOENT'], () => { throw fsError('EEXIST'); })).toThrow('EEXIST');
    expect(() => ignoring(['ENOENT'], () => assert(false, 'broken'))).toThrow(AssertionError);
  });

  test('rethrowAssertion lets a catch-all handle anything but an AssertionError', () => {
    expect(() => rethrowAssertion(new Error('handled'))).not.toThrow();
    expect(() => rethrowAssertion(new AssertionError('broken'))).toThrow(AssertionError);
  });

  test('crashOnAssertion: in a task nobody awaits, an AssertionError is thrown again from a timer of the process', () => {
    const timers: Array<() => void> = [];
    const os = { timer: (ms: number, fn: () => void) => (expect(ms).toBe(0), timers.push(fn)) };
    expect(crashOnAssertion(os, new Error('handled'))).toBe(false);
    expect(timers).toHaveLength(0);
    const broken = new AssertionError('broken');
    expect(crashOnAssertion(os, broken)).toBe(true);
    expect(timers).toHaveLength(1);
    expect(thrown(timers[0]!)).toBe(broken);
  });
});

describe('the worker table', () => {
  test('moves forward, refuses a stale move (same state or back) with false: the arbiter relies on both', () => {
    const t = new Workers();
    const w = t.add(100, null, 1, 0);
    expect(t.move(w, 'draining', 5)).toBe(true); // booting -> draining: a surplus drained while it boots
    expect(t.move(w, 'serving', 6)).toBe(false); // its 'booted' arrives after: stale
    expect(t.move(w, 'draining', 7)).toBe(false);
    expect(t.move(w, 'aborting', 8)).toBe(true);
    expect(t.move(w, 'draining', 9)).toBe(false); // ended() drains a generation with it in
    expect(w).toMatchObject({ state: 'aborting', since: 8 });
  });

  test('a move of a worker out of the table, or back in time, is a bug', () => {
    const t = new Workers();
    const w = t.add(100, null, 1, 10);
    expect(() => t.move(w, 'serving', 9)).toThrow(AssertionError);
    t.remove(100);
    expect(() => t.move(w, 'serving', 11)).toThrow(AssertionError);
    expect(w.state).toBe('booting');
  });

  test('a slow worker without its socket, a fast one with one, or a pid that is no child is refused', () => {
    const t = new Workers();
    expect(() => t.add(100, null, 1, 0, 'slow')).toThrow(AssertionError);
    expect(() => t.add(101, null, 1, 0, 'fast', '/run/x.sock')).toThrow(AssertionError);
    expect(() => t.add(0, null, 1, 0)).toThrow(AssertionError);
    expect(() => t.add(-5, null, 1, 0)).toThrow(AssertionError);
    expect(t.size).toBe(0);
  });
});

describe('the companion state machine', () => {
  const cfg = parseCompanions([{ name: 'w', command: ['w'] }], {}, 'test').companions[0]!;
  const running = (): Companion => {
    let c = initial(cfg, 0);
    for (const [now, input] of [[0, { t: 'tick' }], [0, { t: 'spawned', pid: 10 }], [1000, { t: 'tick' }]] as const) c = step(c, input, now).next;
    return c;
  };

  test('a transition the table does not allow throws an AssertionError', () => {
    const row = TRANSITIONS.RUNNING as State[];
    const at = row.indexOf('EXITED');
    row.splice(at, 1);
    try {
      expect(() => step(running(), { t: 'exited', code: 0, signal: null }, 5000)).toThrow(AssertionError);
    } finally {
      row.splice(at, 0, 'EXITED');
    }
    expect(step(running(), { t: 'exited', code: 0, signal: null }, 5000).next.state).toBe('BACKOFF');
  });

  test('a companion that breaks the rules between steps is refused on the way in', () => {
    const c = running();
    expect(() => step({ ...c, pid: null }, { t: 'tick' }, 2000)).toThrow(/RUNNING with pid null/); // RUNNING with no process
    expect(() => step({ ...c, state: 'STOPPED' }, { t: 'tick' }, 2000)).toThrow(AssertionError); // idle with a process
    expect(() => step({ ...c, wanted: false }, { t: 'tick' }, 2000)).toThrow(AssertionError); // RUNNING, not wanted
    expect(() => step({ ...c, restartPending: true }, { t: 'tick' }, 2000)).toThrow(AssertionError); // a restart pending, not STOPPING
    expect(() => step({ ...c, failures: -1 }, { t: 'tick' }, 2000)).toThrow(AssertionError);
    expect(() => step(c, { t: 'tick' }, 999)).toThrow(AssertionError); // time ran back past its state's start
    expect(step(c, { t: 'tick' }, 2000).next).toBe(c);
  });
});

describe('the slow lane queue', () => {
  const lane = (hooks: Hooks = NO_HOOKS) => {
    const l = new SlowLane({ queue: 2, concurrency: 1, queueTimeout: Infinity }, { hooks });
    l.addWorker(7, 0);
    expect(l.enqueue(1, 0)).toEqual([{ kind: 'assign', id: 1, worker: 7 }]);
    expect(l.enqueue(2, 1)).toEqual([]);
    return l;
  };

  test('its own state corrupted, the next call stops on the broken post-condition', () => {
    const counted = lane() as unknown as { nRunning: number; enqueue(id: number, now: number): unknown };
    counted.nRunning++; // a slot counted that no request holds, beyond the one worker's one
    expect(() => counted.enqueue(3, 2)).toThrow(/running outside 0..workers × concurrency/);

    const forgot = lane() as unknown as { where: Map<number, number>; tick(now: number): unknown };
    forgot.where.delete(2); // a queued request nobody can find any more
    expect(() => forgot.tick(2)).toThrow(/where does not hold exactly the queued and running requests/);

    const lost = lane() as unknown as { where: Map<number, number>; cancel(id: number): boolean };
    lost.where.set(2, 1); // where points id 2 at a queue slot that holds nothing
    expect(() => lost.cancel(2)).toThrow(AssertionError);
  });

  test('queue-double-assign (the planted defect): a queued request assigned and left queued is caught at once', () => {
    const clean = lane();
    expect(clean.complete(1, 5)).toEqual([{ kind: 'assign', id: 2, worker: 7 }]);
    const bad = lane({ defects: new Set(['queue-double-assign']) });
    const e = thrown(() => bad.complete(1, 5));
    expect(e).toBeInstanceOf(AssertionError);
    expect((e as Error).message).toMatch(/^slow lane: /);
  });
});

describe("the arbiter's lanes", () => {
  test('a generation forgotten while its lane still holds a request is a bug', () => {
    const os = { now: () => 0, timer: () => ({ cancel() {} }), hooks: {} } as unknown as Os;
    const log = { error() {}, info() {}, warning() {} } as unknown as Logger;
    const lanes = new Lanes({ os, log, send: () => {}, idle: () => {}, unreachable: () => {}, fastWorkers: () => [] });
    lanes.open(1, { lanes: true, slow_queue: 4, slow_concurrency: 1, queue_timeout: 0 } as Config);
    const table = new Workers();
    lanes.want(table.add(300, null, 1, 0), 1); // queued: no slow worker yet
    expect(() => lanes.forget(1)).toThrow(/forgotten holding 1 queued/);
    lanes.close(1);
    lanes.fastGone(table.remove(300)!);
    expect(() => lanes.forget(1)).not.toThrow();
    expect(() => lanes.open(1, { lanes: true, slow_queue: 4, slow_concurrency: 1, queue_timeout: 0 } as Config)).not.toThrow();
    lanes.open(3, { lanes: true, slow_queue: 4, slow_concurrency: 1, queue_timeout: 0 } as Config);
    expect(() => lanes.open(2, { lanes: true, slow_queue: 4, slow_concurrency: 1, queue_timeout: 0 } as Config)).toThrow(/generation 2 opened after 3/);
  });
});
