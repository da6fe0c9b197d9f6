// One chaos run as `drover sim` hands it out and gets it back: a task (seed,
// scenario, duration, planted defects, a schedule override) and its result,
// both plain JSON so they cross the IPC channel to and from a job process
// (src/cli/sim-job.ts) unchanged. Seeds travel as decimal strings.
import { runScenario } from '../chaos/run.js';
import { generate, type Fault, type Scenario, type ScenarioName } from '../chaos/scenario.js';
import type { Invariant } from '../chaos/invariants.js';
import type { Defect } from '../runtime/probe.js';
import { ExitSignal } from '../sim/index.js';

export interface Task {
  /** Position in the batch (a determinism pair shares its seed, not its id). */
  readonly id: number;
  readonly seed: string;
  /** Given only when the user named it: a named scenario draws a different stream than the seed's own pick. */
  readonly name?: ScenarioName;
  readonly durationMs: number;
  readonly defects: readonly Defect[];
  readonly faults?: readonly Fault[];
  /** Keep the whole timeline and log tail even when the run passes. */
  readonly full?: boolean;
}

export interface Result {
  readonly id: number;
  readonly seed: string;
  readonly name: ScenarioName;
  readonly durationMs: number;
  /** Why it failed: an invariant, or the run itself broke (crash) or never reported (hung). */
  readonly failure: null | { readonly kind: 'violation'; readonly invariant: Invariant; readonly message: string; readonly at: number }
    | { readonly kind: 'crash' | 'hung'; readonly message: string };
  readonly simulatedMs: number;
  readonly events: number;
  readonly injected: Record<string, number>;
  readonly checks: Record<string, number>;
  readonly requests: Record<string, number>;
  readonly traceHash: string;
  readonly faults: readonly Fault[];
  /** Kept for failures (and `full` tasks): the last lines of the timeline, drover's log tail. */
  readonly timeline: readonly string[];
  readonly logTail: readonly string[];
  readonly wallMs: number;
}

export function scenarioOf(t: Pick<Task, 'seed' | 'name' | 'durationMs'>): Scenario {
  return generate(BigInt(t.seed), { ...(t.name ? { name: t.name } : {}), durationMs: t.durationMs });
}

export async function runTask(t: Task, opts: { record?: boolean } = {}): Promise<Result> {
  const s = scenarioOf(t);
  const t0 = performance.now();
  const r = await runScenario(s, { defects: t.defects, ...(t.faults ? { faults: t.faults } : {}), record: opts.record === true });
  const failed = r.violation !== null;
  return {
    id: t.id, seed: t.seed, name: s.name, durationMs: s.durationMs,
    failure: r.violation ? { kind: 'violation', invariant: r.violation.invariant, message: r.violation.message, at: r.violation.at } : null,
    simulatedMs: r.simulatedMs, events: r.events, injected: r.injected, checks: r.checks, requests: r.requests, traceHash: r.traceHash,
    faults: r.faults,
    timeline: failed || t.full || opts.record ? r.timeline : [],
    logTail: failed || t.full || opts.record ? r.logTail : [],
    wallMs: performance.now() - t0,
  };
}

/** A result for a run that broke or never reported: what is known without its report. */
export function brokenResult(t: Task, kind: 'crash' | 'hung', message: string, wallMs: number): Result {
  const s = scenarioOf(t);
  return {
    id: t.id, seed: t.seed, name: s.name, durationMs: s.durationMs, failure: { kind, message },
    simulatedMs: 0, events: 0, injected: {}, checks: {}, requests: {}, traceHash: '', faults: t.faults ?? s.faults,
    timeline: [], logTail: [], wallMs,
  };
}

/**
 * Code of a simulated process the kernel already killed can still run on the
 * host (a nextTick queued before the kill); its Os calls throw ExitSignal to
 * unwind it. That is the kernel working: the host process ignores it.
 * Anything else is handed to `other`.
 */
export function ignoreExitSignals(other: (e: unknown) => void): void {
  process.on('uncaughtException', (e) => {
    if (e instanceof ExitSignal) return;
    other(e);
  });
}
