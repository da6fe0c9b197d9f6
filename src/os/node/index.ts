// The real OS: drover on Node.

import type { Os, ProgramRegistry } from '../types.js';
import { NodeOs } from './os.js';
import { SignalTable } from './signals.js';
import { ACTIVATION_VARS, activatedListeners } from './systemd.js';

export interface NodeOsOptions {
  /** The programs this process can spawn. */
  readonly programs: readonly ProgramRegistry[];
  /** `os.args`; default none. */
  readonly args?: readonly string[];
}

/**
 * The Os of the current process (the CLI, a test). It installs no signal
 * handler and changes no process state until asked, and it has no channel
 * and no inherited listeners except systemd's (LISTEN_FDS): an IPC channel
 * this process may have (a test runner's) is not a drover channel. Programs started by `spawn` get theirs
 * from entry.ts.
 */
export function createNodeOs(opts: NodeOsOptions): Os {
  // Sockets from systemd are ours alone: the variables must not reach children.
  const activated = activatedListeners(process.env, process.pid);
  if (activated.length > 0) for (const v of ACTIVATION_VARS) delete process.env[v];
  return new NodeOs({
    registries: opts.programs.map((r) => ({ url: r.url, names: Object.keys(r.programs), ...(r.entry === undefined ? {} : { entry: r.entry }) })),
    args: opts.args ?? [],
    parentPid: process.ppid,
    channel: null,
    listeners: activated,
    signals: new SignalTable(),
  });
}
