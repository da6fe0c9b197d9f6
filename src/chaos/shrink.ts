// Shrinking a failing fault schedule (DESIGN.md, "Simulation and chaos":
// "fast-check shrinks the fault schedule to the shortest one that still
// fails"). The schedule that failed is handed to fast-check as the one
// example of `fc.subarray(schedule)`; the property is "this subset does not
// fail the same way", so fast-check's shrinker walks down from the full
// schedule through its ordered subsets (tails first, then keeping the head
// and shrinking the rest), which ends on a schedule from which no single
// fault can be removed, unless the run budget ends it first.
//
// fast-check is a development dependency: it is imported only here, only
// when a failure is shrunk, and an installed drover without it says so.
//
// This module is the pure part: it knows neither the clock nor the kernel.
// The caller says how to run a schedule, and when to stop (a wall-clock
// budget lives in src/cli, which may look at the time).
import type { Fault } from './scenario.js';
import { FAULT_KINDS, type FaultKind } from './scenario.js';

export interface ShrinkOptions<T> {
  /** Runs the scenario with this schedule: true when it still fails the same way. */
  fails(schedule: readonly T[]): Promise<boolean>;
  /** At most this many runs (default 200). */
  readonly maxRuns?: number;
  /** Asked before every run: true ends shrinking with the shortest failing schedule found so far. */
  readonly stop?: () => boolean;
  /** Told after every run (progress). */
  readonly onRun?: (schedule: readonly T[], failed: boolean, runs: number) => void;
}

export interface ShrinkResult<T> {
  /** The shortest schedule seen to fail (the original when nothing shorter did). */
  readonly schedule: readonly T[];
  /** Runs made (each a whole scenario run; repeats of one subset are not run again). */
  readonly runs: number;
  /** True when the run budget or `stop` ended shrinking before fast-check had finished. */
  readonly cut: boolean;
}

/** fast-check is missing (an installed drover: it is a development dependency). */
export class ShrinkUnavailable extends Error {
  constructor(cause: unknown) {
    super(`shrinking needs fast-check installed (npm install --save-dev fast-check): ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = 'ShrinkUnavailable';
  }
}

type FastCheck = typeof import('fast-check');

async function loadFastCheck(): Promise<FastCheck> {
  try {
    // A variable specifier would hide it from bundlers; this is a plain dynamic import, evaluated only here.
    const m = (await import('fast-check')) as FastCheck & { default?: FastCheck };
    return (m.default ?? m) as FastCheck;
  } catch (e) {
    throw new ShrinkUnavailable(e);
  }
}

/**
 * Shrinks `original`, a schedule known to fail, to a shorter one that still
 * fails: an ordered subset, found by fast-check's shrinker starting from the
 * full schedule. The full schedule itself is not run again.
 */
export async function shrinkSchedule<T>(original: readonly T[], opts: ShrinkOptions<T>): Promise<ShrinkResult<T>> {
  const fc = await loadFastCheck();
  const maxRuns = opts.maxRuns ?? 200;
  const index = new Map<T, number>(original.map((x, i) => [x, i]));
  const seen = new Map<string, boolean>(); // subset (indices) -> failed
  let best: readonly T[] = original;
  let runs = 0;
  let cut = false;
  const full = [...original];

  const property = fc.asyncProperty(fc.subarray(full), async (sub: T[]) => {
    if (sub.length === original.length) return false; // the original: known to fail
    const key = sub.map((x) => index.get(x)).join(',');
    const known = seen.get(key);
    if (known !== undefined) return !known;
    if (cut || runs >= maxRuns || (opts.stop?.() ?? false)) {
      // Out of budget: every further candidate "passes", so fast-check stops at once.
      cut = true;
      return true;
    }
    runs++;
    const failed = await opts.fails(sub);
    seen.set(key, failed);
    if (failed && sub.length < best.length) best = sub;
    opts.onRun?.(sub, failed, runs);
    return !failed;
  });
  // numRuns 1: the example is the only run before shrinking (examples count towards numRuns).
  await fc.check(property, { examples: [[full]], numRuns: 1 });
  return { schedule: best, runs, cut };
}

// ---- a fault schedule as one command-line word

/**
 * `AT:KIND:PICK` per fault (AT in simulated ms, PICK the fault's full 32-bit
 * pick), comma separated; `none` is the empty schedule. Unlike
 * describeFault's `#pick % 1000`, this replays exactly.
 */
export function formatSchedule(faults: readonly Fault[]): string {
  return faults.length === 0 ? 'none' : faults.map((f) => `${f.at}:${f.kind}:${f.pick}`).join(',');
}

export function parseSchedule(text: string): Fault[] {
  const t = text.trim();
  if (t === 'none' || t === '') return [];
  return t.split(',').map((part) => {
    const m = /^(\d+(?:\.\d+)?)(ms|s)?:([a-z-]+):(\d+)$/.exec(part.trim());
    if (!m) throw new RangeError(`a fault is AT:KIND:PICK (e.g. 4323:kill-worker:2761908216), not ${JSON.stringify(part)}`);
    const at = m[2] === 's' ? Math.round(Number(m[1]) * 1000) : Number(m[1]);
    if (!Number.isInteger(at)) throw new RangeError(`a fault's time is whole milliseconds (or seconds with an s), not ${m[1]}`);
    const kind = m[3] as FaultKind;
    if (!FAULT_KINDS.includes(kind)) throw new RangeError(`unknown fault kind ${JSON.stringify(m[3])} (one of ${FAULT_KINDS.join(', ')})`);
    const pick = Number(m[4]);
    if (pick > 0xffffffff) throw new RangeError(`a fault's pick is a 32-bit number, not ${m[4]}`);
    return { at, kind, pick };
  }).sort((a, b) => a.at - b.at);
}
