// Random programs of spawn / kill / waitpid / sleep against the simulated
// kernel, with the process-table invariants checked after every step.
import fc from 'fast-check';
import { expect, test } from 'vitest';
import { DEFAULT_ACTION, programs, type Exited, type Os, type Signal } from '../../src/os/types.js';
import { Kernel } from '../../src/sim/index.js';

type Behaviour = 'sleeper' | 'parent' | 'stubborn' | 'leader';
type Op =
  | { op: 'spawn'; behaviour: Behaviour; ms: number; code: number }
  | { op: 'kill'; target: number; sig: Signal }
  | { op: 'killGroup'; target: number; sig: 'SIGTERM' | 'SIGKILL' }
  | { op: 'wait'; target: number }
  | { op: 'sleep'; ms: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant('spawn' as const), behaviour: fc.constantFrom<Behaviour>('sleeper', 'parent', 'stubborn', 'leader'), ms: fc.integer({ min: 0, max: 50 }), code: fc.integer({ min: 0, max: 3 }) }),
  fc.record({ op: fc.constant('kill' as const), target: fc.nat(20), sig: fc.constantFrom<Signal>('SIGTERM', 'SIGKILL', 'SIGUSR2', 'SIGWINCH', 'SIGTTIN') }),
  fc.record({ op: fc.constant('killGroup' as const), target: fc.nat(20), sig: fc.constantFrom('SIGTERM' as const, 'SIGKILL' as const) }),
  fc.record({ op: fc.constant('wait' as const), target: fc.integer({ min: -1, max: 20 }) }),
  fc.record({ op: fc.constant('sleep' as const), ms: fc.integer({ min: 0, max: 40 }) }),
);

const errno = (fn: () => unknown): string | null => {
  try { fn(); return null; } catch (e) { return (e as { code: string }).code; }
};

/** Everything the kernel's process table must satisfy at every step. */
function checkTable(k: Kernel): void {
  const procs = k.processes();
  const pids = procs.map((p) => p.pid);
  expect(new Set(pids).size, 'pids are unique').toBe(pids.length);
  const byPid = new Map(procs.map((p) => [p.pid, p]));
  for (const p of procs) {
    if (p.pid === 1) continue;
    // A parent that is gone has handed its children to init.
    expect(byPid.has(p.ppid) || p.ppid === 1, `ppid of ${p.pid} exists`).toBe(true);
    const parent = byPid.get(p.ppid);
    expect(parent?.state, `parent of ${p.pid} is not a zombie`).not.toBe('zombie');
    // init reaps at once: no zombie is ever a child of 1.
    if (p.state === 'zombie') expect(p.ppid, `zombie ${p.pid} has a live parent`).not.toBe(1);
  }
}

interface Tracked { pid: number; behaviour: Behaviour; code: number; sent: Set<Signal>; reaped: number; stopped: boolean }

function explain(t: Tracked, e: Exited): void {
  if (e.signal === null) {
    expect(e.code, `exit code of a ${t.behaviour}`).toBe(t.code);
    return;
  }
  expect(t.sent.has(e.signal), `${t.behaviour} ${t.pid} died of ${e.signal}, which it was sent`).toBe(true);
  expect(DEFAULT_ACTION[e.signal]).toBe('terminate');
  // A stubborn child ignores TERM once its handler is installed; a TERM that
  // arrives before its first instruction runs finds the default action, so
  // SIGTERM is a possible end for it too.
}

function world(script: Op[], k: () => Kernel) {
  const tracked: Tracked[] = [];
  const kids = programs(import.meta.url, {
    sleeper: async (os: Os, a) => {
      await os.sleep(Number(a[0]));
      os.exit(Number(a[1]));
    },
    stubborn: async (os: Os, a) => {
      os.onSignal('SIGTERM', () => {});
      await os.sleep(Number(a[0]));
      os.exit(Number(a[1]));
    },
    parent: async (os: Os, a) => {
      const g = os.spawn({ program: 'sleeper', args: [String(Number(a[0]) * 3 + 5), '0'], channel: false });
      if (Number(a[0]) % 2 === 0) os.kill(g.pid, 'SIGWINCH');
      await os.sleep(Number(a[0]));
      os.exit(Number(a[1]));
    },
    leader: async (os: Os, a) => {
      os.spawn({ program: 'sleeper', args: [String(Number(a[0]) + 30), '0'], channel: false });
      await os.sleep(Number(a[0]));
      os.exit(Number(a[1]));
    },
    driver: async (os: Os) => {
      const find = (pid: number) => tracked.find((t) => t.pid === pid)!;
      for (const op of script) {
        checkTable(k());
        if (op.op === 'spawn') {
          const c = os.spawn({ program: op.behaviour, args: [String(op.ms), String(op.code)], channel: false, newGroup: op.behaviour === 'leader' });
          tracked.push({ pid: c.pid, behaviour: op.behaviour, code: op.code, sent: new Set(), reaped: 0, stopped: false });
        } else if (op.op === 'sleep') {
          await os.sleep(op.ms);
        } else if (tracked.length > 0 && op.op !== 'wait') {
          const t = tracked[op.target % tracked.length]!;
          const err = errno(() => os.kill(op.op === 'killGroup' ? -t.pid : t.pid, op.sig));
          if (op.op === 'kill' || t.behaviour === 'leader') {
            // A child is there (alive or zombie) until we reap it; after that, nobody.
            if (op.op === 'kill') expect(err).toBe(t.reaped ? 'ESRCH' : null);
            if (!err) t.sent.add(op.sig);
            if (!err && DEFAULT_ACTION[op.sig] === 'stop') t.stopped = true;
          }
        } else if (op.op === 'wait') {
          const pid = op.target === -1 || tracked.length === 0 ? -1 : tracked[op.target % tracked.length]!.pid;
          let e: Exited | null = null;
          const err = errno(() => (e = os.waitpid(pid)));
          const unreaped = tracked.filter((t) => !t.reaped && (pid === -1 || t.pid === pid));
          expect(err, 'ECHILD exactly when nothing is left to wait for').toBe(unreaped.length === 0 ? 'ECHILD' : null);
          if (e) {
            const t = find((e as Exited).pid);
            t.reaped++;
            explain(t, e);
          }
        }
      }
      // Collect everyone: wake the stopped, then reap until nothing is left.
      for (const t of tracked) if (!t.reaped) try { os.kill(t.pid, 'SIGKILL'); t.sent.add('SIGKILL'); } catch { /* already dead */ }
      for (;;) {
        checkTable(k());
        const e = errno(() => {
          for (let x = os.waitpid(-1); x !== null; x = os.waitpid(-1)) {
            const t = find(x.pid);
            t.reaped++;
            explain(t, x);
          }
        });
        if (e === 'ECHILD') break;
        await os.sleep(1);
      }
      for (const t of tracked) expect(t.reaped, `${t.pid} reaped exactly once`).toBe(1);
    },
  });
  return { kids, tracked };
}

test('process table invariants hold under random spawn/kill/wait programs', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(opArb, { maxLength: 40 }), fc.integer({ min: 1, max: 2 ** 31 }), async (script, seed) => {
      let kernel: Kernel;
      const { kids } = world(script, () => kernel);
      kernel = new Kernel({ seed, programs: [kids] });
      const root = kernel.spawn({ program: 'driver', channel: false });
      await kernel.run({ stopWhen: () => kernel.exitStatus(root) !== undefined, until: 60_000 });
      expect(kernel.exitStatus(root), kernel.output.stderr).toEqual({ pid: root, code: 0, signal: null });
      // Orphans finish on their own and init collects them: nothing is left.
      await kernel.run({ until: kernel.now() + 1000 });
      checkTable(kernel);
      expect(kernel.processes().filter((p) => p.pid !== 1)).toEqual([]);
    }),
    { numRuns: 150 },
  );
});
