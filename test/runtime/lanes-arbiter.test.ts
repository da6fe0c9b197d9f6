// The arbiter's side of the lanes (arbiter/lanes.ts) when a fast worker dies
// with a request running in the slow lane, or cuts its connection to the
// slow worker (lane-cut): the slot is freed on the slow worker's word, not at
// the death or the cut; the lane ids of the dead worker stay taken until
// then, even for a new worker that got its pid.
import { expect, test } from 'vitest';
import type { Os } from '../../src/os/types.js';
import { Lanes } from '../../src/runtime/arbiter/lanes.js';
import { Workers } from '../../src/runtime/arbiter/workers.js';
import type { Config } from '../../src/runtime/config/index.js';
import type { Logger } from '../../src/runtime/log.js';
import { laneId, type ToWorker } from '../../src/runtime/protocol.js';

function setup() {
  const sent: Array<[number, ToWorker]> = [];
  const idle: number[] = [];
  const unreachable: number[] = [];
  const os = { now: () => 0, timer: () => ({ cancel() {} }), hooks: {} } as unknown as Os;
  const log = { error() {}, info() {}, warning() {} } as unknown as Logger;
  const lanes = new Lanes({ os, log, send: (pid, m) => sent.push([pid, m]), idle: (pid) => idle.push(pid), unreachable: (pid) => {
    unreachable.push(pid);
    lanes.retire(table.get(pid)!); // as the arbiter's drain does
  }, fastWorkers: () => [] });
  lanes.open(1, { lanes: true, slow_queue: 4, slow_concurrency: 1, queue_timeout: 0 } as Config);
  const table = new Workers();
  const fast = (pid: number) => table.add(pid, null, 1, 0, 'fast');
  const slow = table.add(200, null, 1, 0, 'slow', '/run/slow-1.sock');
  lanes.slowReady(slow, '/run/slow-1.sock');
  const to = (pid: number) => sent.filter(([p]) => p === pid).map(([, m]) => m);
  return { lanes, slow, fast, to, idle, unreachable };
}

test('a dead fast worker\'s running request keeps its slot until the slow worker lets go of it', () => {
  const { lanes, slow, fast, to } = setup();
  const a = fast(300);
  const b = fast(301);
  lanes.want(a, 1);
  expect(to(300)).toEqual([{ t: 'lane-go', seq: 1, path: '/run/slow-1.sock' }]);
  lanes.want(b, 1);
  expect(to(301)).toEqual([]); // queued: the one slot is a's

  lanes.fastGone(a);
  expect(to(200)).toEqual([{ t: 'lane-orphans', ids: [laneId(300, 1)] }]);
  expect(to(301)).toEqual([]); // still taken: the slow worker may be burning on it

  lanes.letGo(b, [laneId(300, 1)]); // not from the slow worker it ran on: nothing
  lanes.letGo(slow, [laneId(300, 2)]); // not an orphan: nothing
  expect(to(301)).toEqual([]);
  lanes.letGo(slow, [laneId(300, 1)]);
  expect(to(301)).toEqual([{ t: 'lane-go', seq: 1, path: '/run/slow-1.sock' }]);
  lanes.letGo(slow, [laneId(300, 1)]); // twice: nothing more
  expect(to(301)).toHaveLength(1);
});

test('a request whose fast worker cut its connection keeps its slot until the slow worker lets go of it; its fast worker dying changes nothing', () => {
  const { lanes, slow, fast, to } = setup();
  const a = fast(300);
  const b = fast(301);
  lanes.want(a, 1);
  lanes.want(b, 1);
  lanes.cut(a, 1);
  expect(to(200)).toEqual([{ t: 'lane-orphans', ids: [laneId(300, 1)] }]);
  expect(to(301)).toEqual([]); // still taken: the slow worker may be burning on it
  lanes.cut(a, 1); // twice: nothing more
  lanes.fastGone(a);
  expect(to(200)).toHaveLength(1);
  expect(to(301)).toEqual([]);
  lanes.letGo(slow, [laneId(300, 1)]);
  expect(to(301)).toEqual([{ t: 'lane-go', seq: 1, path: '/run/slow-1.sock' }]);

  // Cut after its slow worker died: the slot went with the worker, and nobody is asked.
  const s = setup();
  s.lanes.want(s.fast(300), 1);
  s.lanes.slowGone(s.slow);
  s.lanes.cut(s.fast(300), 1);
  expect(s.to(200)).toEqual([]);
  s.lanes.fastGone(s.fast(300));
});

test('a new fast worker with a dead one\'s pid cannot take an id still running; it can once the slow worker let go', () => {
  const { lanes, slow, fast, to } = setup();
  lanes.want(fast(300), 1);
  lanes.fastGone(fast(300));
  const again = fast(300); // the pid came round again
  lanes.want(again, 1);
  expect(to(300).at(-1)).toEqual({ t: 'lane-no', seq: 1, retryAfter: 1, reason: 'queue-full' });
  lanes.letGo(slow, [laneId(300, 1)]);
  lanes.want(again, 1);
  expect(to(300).at(-1)).toEqual({ t: 'lane-go', seq: 1, path: '/run/slow-1.sock' });
});

test('a slow worker that dies with orphans frees them with itself; a retiring one is drained once it let go', () => {
  const { lanes, slow, fast, to, idle } = setup();
  lanes.want(fast(300), 1);
  lanes.fastGone(fast(300));
  lanes.retire(slow);
  expect(idle).toEqual([]); // the orphan still runs there
  lanes.letGo(slow, [laneId(300, 1)]);
  expect(idle).toEqual([200]);

  const s = setup();
  s.lanes.want(s.fast(300), 1);
  s.lanes.want(s.fast(301), 1);
  s.lanes.fastGone(s.fast(300));
  s.lanes.slowGone(s.slow);
  s.lanes.letGo(s.slow, [laneId(300, 1)]); // too late: gone with its worker
  expect(s.to(301)).toEqual([]); // no slow worker: it waits for the replacement
  expect(to(200).filter((m) => m.t === 'lane-orphans')).toHaveLength(1);
});

test('a slow worker dead but not yet reaped: the slot its last request freed is named to the next, whose fast worker finds it refused; that request waits again, first in line, and the worker takes no more', () => {
  const { lanes, slow, fast, to, idle, unreachable } = setup();
  const a = fast(300);
  const b = fast(301);
  const c = fast(302);
  lanes.want(a, 1);
  lanes.want(b, 1);
  lanes.want(c, 1);
  const go = { t: 'lane-go', seq: 1, path: '/run/slow-1.sock' };
  expect(to(300)).toEqual([go]);
  // The slow worker dies with a's request; a's fast worker says so before the reap.
  lanes.done(a, 1);
  expect(to(301)).toEqual([go]); // named to a worker that is gone
  lanes.refused(b, 1);
  expect(to(301)).toEqual([go]); // no 502, no 503: it waits
  expect(idle).toEqual([200]); // out of the lane (it runs nothing), and told to drain should it be alive
  expect(unreachable).toEqual([200]); // the arbiter starts its replacement now
  lanes.refused(b, 1); // twice: nothing more
  expect(unreachable).toEqual([200]);
  lanes.slowGone(slow); // the reap: nothing of it left to fail
  const table = new Workers();
  const next = table.add(201, null, 1, 0, 'slow', '/run/slow-2.sock');
  lanes.slowReady(next, '/run/slow-2.sock');
  // b's request is older than c's: it goes first.
  expect(to(301)).toEqual([go, { t: 'lane-go', seq: 1, path: '/run/slow-2.sock' }]);
  expect(to(302)).toEqual([]);
  lanes.done(b, 1);
  expect(to(302)).toEqual([{ t: 'lane-go', seq: 1, path: '/run/slow-2.sock' }]);
});

test('refused after the reap (the request already failed with its worker): it still waits again, first in line', () => {
  const { lanes, slow, fast, to } = setup();
  const a = fast(300);
  const b = fast(301);
  lanes.want(a, 1);
  lanes.done(a, 1);
  lanes.want(a, 2);
  lanes.want(b, 1);
  lanes.slowGone(slow); // a's second request failed with it
  lanes.refused(a, 2);
  const table = new Workers();
  lanes.slowReady(table.add(201, null, 1, 0, 'slow', '/run/slow-2.sock'), '/run/slow-2.sock');
  expect(to(300).at(-1)).toEqual({ t: 'lane-go', seq: 2, path: '/run/slow-2.sock' });
  expect(to(301)).toEqual([]);
});
