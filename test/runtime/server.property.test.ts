// Random interleavings of HUP, TTIN/TTOU, worker crashes and load against the
// real arbiter on the simulated kernel. After the faults stop: the worker
// count converges to the target the signals asked for, every request got
// exactly one answer (or a reset, only where a worker was killed under it),
// and after TERM nothing is left running.
import fc from 'fast-check';
import { expect, test } from 'vitest';
import { SIM_APP, simulate } from './sim.js';

type Op = { op: 'HUP' | 'TTIN' | 'TTOU' } | { op: 'KILL'; worker: number } | { op: 'wait'; ms: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: fc.constantFrom<Op>({ op: 'HUP' }, { op: 'TTIN' }, { op: 'TTOU' }), weight: 3 },
  { arbitrary: fc.record({ op: fc.constant('KILL' as const), worker: fc.nat(9) }), weight: 1 },
  { arbitrary: fc.record({ op: fc.constant('wait' as const), ms: fc.integer({ min: 0, max: 3000 }) }), weight: 1 },
);

// Run first, every time: the bounds, a storm, and crashes during a reload.
const EXAMPLES: Array<[Op[], number]> = [
  [[{ op: 'TTOU' }, { op: 'TTOU' }, { op: 'TTOU' }], 1],
  [[{ op: 'TTIN' }, { op: 'TTIN' }, { op: 'TTIN' }, { op: 'TTIN' }, { op: 'HUP' }], 2],
  [[{ op: 'HUP' }, { op: 'HUP' }, { op: 'HUP' }, { op: 'wait', ms: 300 }, { op: 'HUP' }], 3],
  [[{ op: 'HUP' }, { op: 'KILL', worker: 0 }, { op: 'KILL', worker: 1 }, { op: 'TTIN' }], 4],
];

const MIN = 1;
const MAX = 4;
const START = 2;

test('random signal and crash schedules: the count converges, every request answered once, nothing left after TERM', { timeout: 180_000 }, async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(opArb, { maxLength: 12 }), fc.integer({ min: 1, max: 1_000_000 }), async (ops, seed) => {
      let target = START;
      let killed = 0;
      const r = await simulate(seed, [SIM_APP, '--bind', '127.0.0.1:8000', '--workers', String(START), '--min-workers', String(MIN), '--max-workers', String(MAX), '--keep-alive', '1', '--access-log', '/tmp/access.log'], async (c) => {
        await c.booted(START);
        const keep = c.load(2, '/slow?ms=20');
        const fresh = c.load(1, '/slow?ms=20', true);
        for (const o of ops) {
          if (o.op === 'wait') await c.os.sleep(o.ms);
          else if (o.op === 'KILL') {
            const ws = c.workers();
            if (ws.length > 0) {
              c.os.kill(ws[o.worker % ws.length]!, 'SIGKILL');
              killed++;
            }
          } else {
            c.signal(`SIG${o.op}`);
            if (o.op === 'TTIN') target = Math.min(MAX, target + 1);
            if (o.op === 'TTOU') target = Math.max(MIN, target - 1);
            await c.os.sleep(50);
          }
        }
        // Faults over: the system must settle.
        await c.os.sleep(8_000);
        const a = await keep.stop();
        const b = await fresh.stop();
        expect(c.workers(), c.log()).toHaveLength(target);
        const ok = a.ok + b.ok;
        const failed = a.failed + b.failed;
        expect(ok).toBeGreaterThan(0);
        // Resets only where a worker died under a request; everything else answered.
        if (killed === 0) expect([...a.errors, ...b.errors]).toEqual([]);
        else expect(failed).toBeLessThanOrEqual(killed * 5);
        // Exactly one answer per answered request: the access log has a line
        // for each, and no more — less one per connection of a worker killed
        // between answering and logging.
        const logged = (c.os.fs.readFile('/tmp/access.log').match(/" 200 /g) ?? []).length;
        expect(logged).toBeGreaterThanOrEqual(ok - killed * 3);
        expect(logged).toBeLessThanOrEqual(ok + failed);
        c.signal('SIGTERM');
        expect(await c.exited()).toMatchObject({ code: 0, signal: null });
      });
      expect(r.left).toEqual([]);
    }),
    { numRuns: 25, examples: EXAMPLES },
  );
});
