// What the chaos app saw, shared with the checker: in the simulator every
// worker runs in the same host process as the runner, so the app can count
// how often each request id was run. Reset at the start of every run.
const runs = new Map<string, number>();

export const ledger = {
  reset(): void {
    runs.clear();
  },
  ran(id: string): void {
    runs.set(id, (runs.get(id) ?? 0) + 1);
  },
  times(id: string): number {
    return runs.get(id) ?? 0;
  },
};
