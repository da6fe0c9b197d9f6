// The deterministic simulated kernel: one seeded machine running many
// simulated processes, each with its own Os (see src/os/types.ts).
export { Kernel, type KernelOptions, type ProcessInfo } from './kernel.js';
export { ExitSignal } from './processes.js';
export type { RunOptions, RunResult } from './machine.js';
export type { AppExit, Crash } from './faults.js';
export { runningHooks } from './app-globals.js';
