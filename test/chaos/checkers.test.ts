// The checkers can fail (issue 6, item 4): for each invariant, its planted
// defect (src/os/hooks.ts) switched on makes a chaos run report that
// invariant within a bounded number of seeds, searched from seed 1 as
// `drover sim` searches; and the same seeds without the defect pass, so the
// checker is not merely noisy. A checker that cannot fail is a defect.
import { expect, test } from 'vitest';
import { INVARIANTS, type Invariant } from '../../src/chaos/invariants.js';
import { runScenario, type RunReport } from '../../src/chaos/run.js';
import { generate, type ScenarioName } from '../../src/chaos/scenario.js';
import { DEFECTS, type Defect } from '../../src/os/hooks.js';

/** Seeds searched, from 1: a defect not found by then is a checker that cannot fail. */
const BOUND = 30;
/** Clean runs cover at least these first seeds, even when a defect shows on seed 1. */
const MIN_CLEAN = 10;
/** Faults and load this long (simulated); then the run settles (40 s) and stops. */
const DURATION_MS = 6000;

interface Case {
  readonly invariant: Invariant;
  readonly defect: Defect;
  /** The named scenario that exercises the defect. */
  readonly scenario: ScenarioName;
  /** The first seed that finds it when this was written (documentation: the test searches from 1 regardless). */
  readonly found: number;
  /** Why this scenario reaches the bug. */
  readonly how: string;
}

const CASES: readonly Case[] = [
  { invariant: 'orphans', defect: 'manager-ignores-parent-death', scenario: 'parent-death', found: 1, how: 'the arbiter is KILLed; the manager it leaves behind outlives its 4 s deadline' },
  { invariant: 'zombies', defect: 'arbiter-skips-reap', scenario: 'mixed', found: 1, how: 'any worker, slow worker or manager that exits stays a zombie of the arbiter' },
  { invariant: 'one-instance', defect: 'manager-restart-overlap', scenario: 'companions', found: 3, how: 'a ctl restart of a companion with a live pid starts a second one beside it' },
  { invariant: 'answers', defect: 'worker-answers-twice', scenario: 'mixed', found: 1, how: 'every response is followed by a stray one on its connection' },
  { invariant: 'broken-reload', defect: 'reload-half-config', scenario: 'reload-storm', found: 7, how: "a HUP to a config whose app cannot load (and whose workers count is over the good max) leaves the failed count in force for longer than a drain" },
  { invariant: 'convergence', defect: 'arbiter-no-slow-respawn', scenario: 'queue-load', found: 1, how: 'a KILLed slow worker is never replaced' },
  { invariant: 'transitions', defect: 'companion-skips-backoff', scenario: 'companions', found: 3, how: 'a crashing (or KILLed) RUNNING companion goes straight to STARTING' },
  { invariant: 'queue-bound', defect: 'lane-queue-overflow', scenario: 'queue-load', found: 1, how: 'the slow lane queues one request over slow_queue under the load' },
  { invariant: 'lane-slots', defect: 'lane-ignores-done', scenario: 'queue-load', found: 1, how: 'every fifth lane-done from a fast worker is not heard: its slot stays taken after the load ends' },
  { invariant: 'slow-cap', defect: 'lane-frees-orphans', scenario: 'queue-load', found: 2, how: "a KILLed fast worker's running slow request frees its slot while the slow worker still burns on it; a queued request is given that worker" },
  { invariant: 'shutdown', defect: 'arbiter-ignores-term', scenario: 'mixed', found: 1, how: 'the arbiter logs TERM and goes on: the whole tree is still up after the deadline' },
  { invariant: 'client-deadline', defect: 'no-client-deadlines', scenario: 'hostile', found: 1, how: 'no worker sweeps its connections: a slowloris head or a stalled body is held past its deadline' },
  { invariant: 'slot-hold', defect: 'slot-waits-on-client', scenario: 'hostile', found: 2, how: 'a slow answer is paused for its client at the first full write: a client that does not read holds the slot' },
  { invariant: 'learned-fast', defect: 'learn-client-time', scenario: 'hostile', found: 1, how: "a route is timed to its answer's 'finish': a slow upload or an unread pipelined flood marks GET /f or POST /f slow" },
  { invariant: 'one-shot', defect: 'companion-restarts-one-shot', scenario: 'companions', found: 1, how: 'a one-shot job (autorestart false, or "unexpected" with its exit code in exitcodes) that ran past startsecs is restarted as if it were a daemon' },
  { invariant: 'hung-manager', defect: 'no-manager-heartbeat', scenario: 'companions', found: 1, how: 'the manager is stopped (stall-manager) and the arbiter, deaf to its heartbeat, never kills or replaces it' },
  { invariant: 'no-crash', defect: 'log-write-throws', scenario: 'faults', found: 2, how: 'the kernel fails a log write with ENOSPC or EIO and the error escapes into the code that logged: the process dies of it' },
  { invariant: 'no-crash', defect: 'worker-timer-type-error', scenario: 'mixed', found: 1, how: "a worker's timer calls a method of null 250 ms after it booted: a TypeError of drover's own kills the worker" },
  { invariant: 'log-reported', defect: 'log-reports-every-line', scenario: 'faults', found: 2, how: 'a log that cannot be written is reported on stderr at every failed write, as if each began an outage' },
  { invariant: 'serving-through-faults', defect: 'accept-never-resumes', scenario: 'faults', found: 5, how: 'each worker that gets EMFILE from accept stops accepting for good: once all have, requests wait unanswered' },
  { invariant: 'whole-lines', defect: 'log-ignores-short-write', scenario: 'faults', found: 2, how: "a log write that took part of a line is taken as whole: the process's next line is glued to the cut one" },
  { invariant: 'convergence', defect: 'worker-drops-request', scenario: 'mixed', found: 1, how: 'a worker drops every seventh request it would hand to the app: neither the app nor anyone answers it, and it is still without an end after the settle' },
  { invariant: 'assertion', defect: 'queue-double-assign', scenario: 'queue-load', found: 1, how: "the slow lane assigns a queued request and leaves it queued: the queue's own assertion (every id in one place) fails in the arbiter" },
];
const ALL = CASES;

const run = (scenario: ScenarioName, seed: number, defects: readonly Defect[] = []) =>
  runScenario(generate(BigInt(seed), { name: scenario, durationMs: DURATION_MS }), { defects });

/** Clean runs, shared by the cases that search the same scenario. */
const clean = new Map<string, Promise<RunReport>>();
const cleanRun = (scenario: ScenarioName, seed: number) => {
  const key = `${scenario}/${seed}`;
  let r = clean.get(key);
  if (!r) clean.set(key, (r = run(scenario, seed)));
  return r;
};

const describeViolation = (r: RunReport) => (r.violation ? `${r.violation.invariant} at ${r.violation.at} ms: ${r.violation.message}` : 'none');

test('every invariant has its planted defect, and every planted defect its invariant', () => {
  // One defect per invariant, but convergence has two: a slow worker not replaced, and a request lost
  // before the app got it (which drover sim --config must tell from a request the app never answered);
  // and no-crash two: an error the OS returned, and a TypeError of drover's own in a worker (which drover
  // sim --app must tell from the app's).
  const covered = ALL.map((c) => c.invariant);
  const twice = (i: string) => i === 'convergence' || i === 'no-crash';
  expect(covered.filter((i) => !twice(i))).toEqual([...new Set(covered.filter((i) => !twice(i)))]);
  expect(covered.filter((i) => i === 'convergence')).toHaveLength(2);
  expect(covered.filter((i) => i === 'no-crash')).toHaveLength(2);
  expect([...new Set(covered)].sort()).toEqual([...INVARIANTS].sort());
  expect(ALL.map((c) => c.defect).sort()).toEqual([...DEFECTS].sort());
});

for (const c of ALL) {
  test(`${c.invariant}: ${c.defect} in ${c.scenario} is found within ${BOUND} seeds, searched from 1, and those seeds pass without it`, { timeout: 120_000 }, async () => {
    // (a) Search as `drover sim --scenario ${c.scenario}` would, the defect switched on.
    let first: number | null = null;
    const others: string[] = [];
    for (let seed = 1; seed <= BOUND && first === null; seed++) {
      const r = await run(c.scenario, seed, [c.defect]);
      if (r.violation?.invariant === c.invariant) first = seed;
      else if (r.violation) others.push(`seed ${seed}: ${describeViolation(r)}`);
    }
    expect(first, `${c.defect} (${c.how}) was not found as ${c.invariant} in seeds 1..${BOUND} of ${c.scenario}; other violations: ${others.join('; ') || 'none'}`).not.toBeNull();

    // (b) The same seeds, and a few more, without the defect: no violation at all.
    for (let seed = 1; seed <= Math.max(first!, MIN_CLEAN); seed++) {
      const r = await cleanRun(c.scenario, seed);
      expect(r.violation, `seed ${seed} of ${c.scenario} without a defect: ${describeViolation(r)}`).toBeNull();
    }
  });
}

test('a failed assertion is the invariant assertion, naming its message and the process it crashed, at its seed', async () => {
  const r = await run('queue-load', 1, ['queue-double-assign']);
  expect(r.violation).toMatchObject({ invariant: 'assertion' });
  expect(r.violation!.message).toMatch(/^arbiter \d+ crashed: slow lane: /);
  expect(r.checks.assertion).toBeGreaterThan(0);
  // The clean run of the seed looked for failed assertions after every batch, and found none.
  const good = await cleanRun('queue-load', 1);
  expect(good.violation).toBeNull();
  expect(good.checks.assertion).toBeGreaterThan(0);
});

test('a defect is switched on for its own run only: the same seed run next without it is clean', async () => {
  const bad = await run('queue-load', 1, ['lane-queue-overflow']);
  expect(bad.violation).toMatchObject({ invariant: 'queue-bound' });
  expect(bad.violation!.message).toMatch(/holds \d+ queued requests, over slow_queue \d+/);
  const good = await run('queue-load', 1);
  expect(good.violation).toBeNull();
  expect(good.traceHash).toBe((await cleanRun('queue-load', 1)).traceHash);
});

test('two runs side by side in one process keep their own hooks: a defect planted in one does not reach the other', async () => {
  // Same seed, same request ids (r1, r2, ...): a ledger or a hook shared between the kernels would show in the clean one.
  const [bad, good] = await Promise.all([run('queue-load', 1, ['lane-queue-overflow']), run('queue-load', 1)]);
  expect(bad.violation).toMatchObject({ invariant: 'queue-bound' });
  expect(good.violation).toBeNull();
  expect(good.traceHash).toBe((await cleanRun('queue-load', 1)).traceHash);
});
