// The `faults` scenario (issue 15, item 3): the kernel's own faults under a
// chaos load. A run passes its invariants with every kind it turned on
// firing and the error paths they target running; companion output comes
// through split pipes whole; the other scenarios draw what they drew; and
// the summary lists each kind with its error paths, --require-faults
// failing a batch where one never fired.
import { expect, test } from 'vitest';
import { runScenario } from '../../src/chaos/run.js';
import { generate, OS_RATES, SCENARIOS } from '../../src/chaos/scenario.js';
import { kernelFaults, neverFired, summaryTable, totals } from '../../src/cli/sim-report.js';
import type { Result } from '../../src/cli/sim-run.js';
import { OS_FAULTS } from '../../src/sim/faults.js';

test('only the faults scenario turns the kernel faults on; each kind at its rate times 1/4 to 2, or off', () => {
  for (const name of SCENARIOS) {
    for (let seed = 1n; seed <= 20n; seed++) {
      const s = generate(seed, { name });
      if (name !== 'faults') {
        expect(s.osFaults).toEqual({});
        continue;
      }
      for (const [kind, rate] of Object.entries(s.osFaults)) {
        const base = OS_RATES[kind as keyof typeof OS_RATES];
        expect(rate).toBeGreaterThanOrEqual(base / 4);
        expect(rate).toBeLessThanOrEqual(Math.min(1, base * 2));
      }
      expect(Object.keys(s.osFaults).length).toBeGreaterThanOrEqual(6);
    }
  }
  // Without a name, a seed draws one of the first four as before: never faults.
  for (let seed = 1n; seed <= 50n; seed++) expect(generate(seed).name).not.toBe('faults');
});

test('a faults run passes, its faults fire, the error paths they target run, and companion output comes out whole', { timeout: 120_000 }, async () => {
  const r = await runScenario(generate(3n, { name: 'faults', durationMs: 15_000 }));
  expect(r.violation).toBeNull();
  const k = r.kernel!;
  expect(k).not.toBeNull();
  // Each kind turned on is listed in `injected` with how often it fired; most fired in 15 s.
  // (The rare kinds, at rates of 1 in 1,000 to 1 in 4,000 events, fire or not
  // as the schedule falls: 7 to 11 of 10 to 12 kinds over seeds 3 to 7. That
  // every kind fires is the CI batch's check, --require-faults.)
  const on = OS_FAULTS.filter((kind) => (k.rates[kind] ?? 0) > 0);
  for (const kind of on) expect(r.injected[`os:${kind}`]).toBe(k.fired[kind]);
  expect(on.filter((kind) => k.fired[kind] > 0).length).toBeGreaterThan(on.length / 2);
  expect(k.fired['stream-split']).toBeGreaterThan(10);
  // Where a fault fired, the code that handles it ran: the accept backoff, the log's outage, the arbiter's spawn retry.
  if (k.fired['accept-emfile'] > 0) expect(k.paths['accept:EMFILE']).toBe(k.fired['accept-emfile']);
  if (k.fired['write-enospc'] > 0) expect((k.paths['log:ENOSPC'] ?? 0) + (k.paths['pidfile:ENOSPC'] ?? 0)).toBe(k.fired['write-enospc']);
  if (k.fired['spawn-eagain'] > 0) expect((k.paths['spawn:EAGAIN'] ?? 0) + (k.paths['companion-spawn:EAGAIN'] ?? 0)).toBeGreaterThan(0);
  // The invariants of the faults looked.
  expect(r.checks['no-crash']).toBeGreaterThan(0);
  expect(r.checks['serving-through-faults']).toBeGreaterThan(0);
  // Pipes split at any byte: the manager's lines are whole all the same; its file holds whole lines or cut ones.
  expect(k.talk.broken).toEqual([]);
  expect(k.talk.whole).toBeGreaterThan(20);
});

test('the same faults seed replays: same trace, same faults fired', { timeout: 120_000 }, async () => {
  const a = await runScenario(generate(5n, { name: 'faults', durationMs: 6000 }));
  const b = await runScenario(generate(5n, { name: 'faults', durationMs: 6000 }));
  expect(b.traceHash).toBe(a.traceHash);
  expect(b.kernel!.fired).toEqual(a.kernel!.fired);
  expect(b.kernel!.paths).toEqual(a.kernel!.paths);
});

const result = (injected: Record<string, number>): Result => ({
  id: 0, seed: '1', name: 'faults', durationMs: 1000, failure: null, simulatedMs: 1000, events: 1, injected, checks: {}, requests: {},
  traceHash: '', faults: [], timeline: [], logTail: [], wallMs: 1,
});

test('the summary lists each kernel fault kind a run turned on: fired, and the error paths of its errno; never-fired kinds are named', () => {
  const t = totals([
    result({ hup: 2, 'os:accept-emfile': 3, 'os:write-enospc': 0, 'os:stream-split': 7, 'path:accept:EMFILE': 3, 'path:conn:ECONNRESET': 1 }),
    result({ 'os:accept-emfile': 1, 'os:write-enospc': 0, 'path:accept:EMFILE': 1 }),
  ], 1000, 1);
  expect(kernelFaults(t)).toEqual([
    { kind: 'accept-emfile', fired: 4, errno: 'EMFILE', paths: { accept: 4 } },
    { kind: 'write-enospc', fired: 0, errno: 'ENOSPC', paths: {} },
    { kind: 'stream-split', fired: 7, errno: null, paths: {} },
  ]);
  expect(neverFired(t)).toEqual(['write-enospc']);
  const text = summaryTable(t);
  expect(text).toMatch(/^ {2}faults injected +2$/m); // the driver's alone
  expect(text).toMatch(/^ {2}kernel faults +11 fired/m);
  expect(text).toMatch(/^ {4}accept-emfile +4 {2}EMFILE: accept 4$/m);
  expect(text).toMatch(/^ {4}write-enospc +0 {2}NEVER FIRED$/m);
  expect(text).toMatch(/^ {4}stream-split +7 {2}\(no error: data or time\)$/m);
  // A batch without kernel faults has no such rows.
  expect(summaryTable(totals([result({ hup: 1 })], 1000, 1))).not.toMatch(/kernel faults/);
});
