// One chaos run as `drover sim` hands it out and gets it back: a task (seed,
// scenario, duration, planted defects, a schedule override) and its result,
// both plain JSON so they cross the IPC channel to and from a job process
// (src/cli/sim-job.ts) unchanged. Seeds travel as decimal strings.
import { noFindings, runApp, type Finding, type FindingKind } from '../chaos/app-run.js';
import { loadDeployment, type Deployment, type Target } from '../chaos/deployment.js';
import { runScenario } from '../chaos/run.js';
import { generate, type Fault, type Scenario, type ScenarioName } from '../chaos/scenario.js';
import type { Invariant } from '../chaos/invariants.js';
import type { Defect } from '../os/hooks.js';
import { ExitSignal } from '../sim/index.js';
import { siteOf } from '../sim/net-guard.js';
import { stackOf, type Stall } from './sim-stall.js';

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
  /** A user's deployment instead of a chaos scenario (drover sim --config/--app). */
  readonly target?: Target;
  /** Record the whole timeline (--seed: for --trace and a failure's report). */
  readonly record?: boolean;
}

/** What a run of a user's deployment found (app-run.ts), beside drover's invariants. */
export interface AppSummary {
  readonly sent: number;
  readonly statuses: Record<string, number>;
  readonly counts: Record<FindingKind, number>;
  readonly places: Record<string, number>;
  readonly findings: readonly Finding[];
}

/** Findings that fail a seed: an app that failed to load, code that threw, a worker's process.exit() in app code, drover's own crash, a request the app never answered, app code that never returned, a companion past its stop_timeout. 5xx and lost requests, and calls drover sim refused, are reported, not failed. */
export const FAILING: readonly FindingKind[] = ['load', 'crash', 'rejection', 'exit', 'drover-crash', 'unanswered', 'hang', 'stop-timeout'];

export interface Result {
  readonly id: number;
  readonly seed: string;
  /** The scenario, or 'app' for a user's deployment. */
  readonly name: ScenarioName | 'app';
  readonly durationMs: number;
  /** Why it failed: an invariant, or the run itself broke (crash) or never reported (hung). */
  readonly failure: null | { readonly kind: 'violation'; readonly invariant: Invariant; readonly message: string; readonly at: number }
    | { readonly kind: 'crash' | 'hung'; readonly message: string }
    | { readonly kind: 'app'; readonly finding: FindingKind; readonly message: string; readonly at: number };
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
  readonly app?: AppSummary;
}

/**
 * Whose fault a failed run is, as drover sim's exit status says it: drover's
 * (a broken invariant, a crash of drover's own code, a run that crashed or
 * never finished, unless its job was seen held by app code: stallResult) or
 * the app's (its findings only).
 */
export function whose(f: NonNullable<Result['failure']>): 'drover' | 'app' {
  return f.kind === 'app' && f.finding !== 'drover-crash' ? 'app' : 'drover';
}

export function scenarioOf(t: Pick<Task, 'seed' | 'name' | 'durationMs'>): Scenario {
  return generate(BigInt(t.seed), { ...(t.name ? { name: t.name } : {}), durationMs: t.durationMs });
}

/** Deployments loaded in this process, by target: a job loads the user's config once. */
const deployments = new Map<string, Promise<Deployment>>();

export function deploymentOf(target: Target): Promise<Deployment> {
  const key = JSON.stringify(target);
  let d = deployments.get(key);
  if (d === undefined) deployments.set(key, (d = loadDeployment(target)));
  return d;
}

async function runAppTask(t: Task, target: Target, record: boolean): Promise<Result> {
  const d = await deploymentOf(target);
  const t0 = performance.now();
  const r = await runApp(d, BigInt(t.seed), { durationMs: t.durationMs, record, ...(t.faults ? { faults: t.faults } : {}) });
  // drover's own crash before the app's findings: the seed is drover's to answer for.
  const failing = r.findings.find((f) => f.kind === 'drover-crash') ?? r.findings.find((f) => FAILING.includes(f.kind));
  const failure: Result['failure'] = r.violation
    ? { kind: 'violation', invariant: r.violation.invariant, message: r.violation.message, at: r.violation.at }
    : failing ? { kind: 'app', finding: failing.kind, message: `${failing.kind}: ${failing.where}: ${failing.text}`, at: failing.at } : null;
  const keep = failure !== null || t.full === true || record;
  return {
    id: t.id, seed: t.seed, name: 'app', durationMs: t.durationMs, failure,
    simulatedMs: r.simulatedMs, events: r.events, injected: r.injected, checks: r.checks, requests: {}, traceHash: r.traceHash,
    faults: r.faults, timeline: keep ? r.timeline : [], logTail: keep ? r.logTail : [], wallMs: performance.now() - t0,
    app: { sent: r.sent, statuses: r.statuses, counts: r.counts, places: r.places, findings: r.findings },
  };
}

export async function runTask(t: Task): Promise<Result> {
  if (t.target !== undefined) return runAppTask(t, t.target, t.record === true);
  const s = scenarioOf(t);
  const t0 = performance.now();
  const r = await runScenario(s, { defects: t.defects, ...(t.faults ? { faults: t.faults } : {}), record: t.record === true });
  const failed = r.violation !== null;
  return {
    id: t.id, seed: t.seed, name: s.name, durationMs: s.durationMs,
    failure: r.violation ? { kind: 'violation', invariant: r.violation.invariant, message: r.violation.message, at: r.violation.at } : null,
    simulatedMs: r.simulatedMs, events: r.events, injected: r.injected, checks: r.checks, requests: r.requests, traceHash: r.traceHash,
    faults: r.faults,
    timeline: failed || t.full || t.record ? r.timeline : [],
    logTail: failed || t.full || t.record ? r.logTail : [],
    wallMs: performance.now() - t0,
  };
}

/** A result for a run that broke or never reported: what is known without its report. */
export function brokenResult(t: Task, kind: 'crash' | 'hung', message: string, wallMs: number): Result {
  const s = t.target === undefined ? scenarioOf(t) : null;
  return {
    id: t.id, seed: t.seed, name: s?.name ?? 'app', durationMs: t.durationMs, failure: { kind, message },
    simulatedMs: 0, events: 0, injected: {}, checks: {}, requests: {}, traceHash: '', faults: t.faults ?? s?.faults ?? [],
    timeline: [], logTail: [], wallMs,
  };
}

/**
 * A run whose job was held by code that never returned (sim-stall.ts): the
 * app's finding when the innermost frame outside Node is the app's (or a
 * package's), else drover's hang, with where it was held either way.
 */
export function stallResult(t: Task, stall: Stall, wallMs: number): Result {
  const stack = stackOf(stall);
  const at = siteOf(stack);
  const held = `held the host ${stall.ms / 1000} s without returning to the event loop (a synchronous loop?)`;
  const frames = stack.split('\n').slice(1, 7).join('\n');
  if (at === null || at.own) return brokenResult(t, 'hung', `drover's code ${held}, at ${at?.site ?? 'code with no file'}\n${frames}`, wallMs);
  const finding: Finding = { kind: 'hang', at: -1, where: at.site, text: `${held}\n${frames}` };
  return {
    ...brokenResult(t, 'hung', '', wallMs),
    failure: { kind: 'app', finding: 'hang', message: `hang: ${finding.where}: ${finding.text}`, at: -1 },
    app: { sent: 0, statuses: {}, counts: { ...noFindings(), hang: 1 }, places: { [`hang\t${at.site}`]: 1 }, findings: [finding] },
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
