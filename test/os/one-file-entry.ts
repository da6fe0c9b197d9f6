// oneFileRegistry's entry: what cli/worker-entry.ts does for the worker (the
// registry first, then the adapter's entry), and a mark to tell it was run.
// The registry it preloads is a copy whose program says so: entry.ts must
// take it, not import the module again.
import { PRELOADED } from '../../src/os/node/plumbing.js';
import type { ProgramRegistry } from '../../src/os/types.js';
import { oneFileRegistry, report } from './one-file.js';

const g = globalThis as { droverTestEntry?: string; [PRELOADED]?: readonly ProgramRegistry[] };
g.droverTestEntry = import.meta.url;
g[PRELOADED] = [{ ...oneFileRegistry, programs: { 'where-started': (os) => report(os, 'preloaded') } }];
await import('../../src/os/node/entry.js');
