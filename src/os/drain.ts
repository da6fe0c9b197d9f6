// The simulator's turn of the host's event loop: the kernel awaits this every
// 1024th drain between batches (Machine.drain; the others run what a batch
// queued without one, app-globals settled), so that the host's own timers and
// I/O are not starved by a long run. It is never used to read or wait for time.
export const drain = (): Promise<void> => new Promise<void>((r) => setImmediate(r));
