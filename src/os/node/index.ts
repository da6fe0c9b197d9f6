// The real OS: drover on Node.

import type { Os, ProgramRegistry } from '../types.js';
import { NodeOs } from './os.js';
import { SignalTable } from './signals.js';

export interface NodeOsOptions {
  /** The programs this process can spawn. */
  readonly programs: readonly ProgramRegistry[];
  /** `os.args`; default none. */
  readonly args?: readonly string[];
}

/**
 * The Os of the current process (the CLI, a test). It installs no signal
 * handler and changes no process state until asked, and it has no channel
 * and no inherited listeners: an IPC channel this process may have (a test
 * runner's) is not a drover channel. Programs started by `spawn` get theirs
 * from entry.ts.
 */
export function createNodeOs(opts: NodeOsOptions): Os {
  return new NodeOs({
    registries: opts.programs.map((r) => ({ url: r.url, names: Object.keys(r.programs) })),
    args: opts.args ?? [],
    parentPid: process.ppid,
    channel: null,
    listeners: [],
    signals: new SignalTable(),
  });
}
