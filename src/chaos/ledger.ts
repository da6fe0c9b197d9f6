// What the chaos app saw, told to the checker: how often each request id
// was run. One ledger per run, carried in its kernel's hooks; the app, which
// has no Os, finds it through the process that runs it (runningHooks), so
// two runs in one host process keep their own.
import type { Hooks } from '../os/hooks.js';
import { runningHooks } from '../sim/index.js';

export class Ledger {
  private readonly runs = new Map<string, number>();

  ran(id: string): void {
    this.runs.set(id, (this.runs.get(id) ?? 0) + 1);
  }

  times(id: string): number {
    return this.runs.get(id) ?? 0;
  }
}

/** A chaos run's hooks: drover's, and the ledger its app writes to. */
export interface ChaosHooks extends Hooks {
  readonly ledger: Ledger;
}

/** The ledger of the run whose process runs now; none outside a chaos run (a chaos app under a plain kernel). */
export function runningLedger(): Ledger | null {
  return (runningHooks() as Partial<ChaosHooks> | null)?.ledger ?? null;
}
