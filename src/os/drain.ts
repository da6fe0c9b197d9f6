// The only host hook of the simulator: between two batches of events the
// kernel awaits this so that the promise continuations and nextTicks of its
// simulated processes run. It is never used to read or wait for time.
export const drain = (): Promise<void> => new Promise<void>((r) => setImmediate(r));
