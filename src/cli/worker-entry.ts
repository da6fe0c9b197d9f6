// A worker's process entry in one file. `npm run build` bundles this module
// and all it imports into dist/cli/worker-entry.js (scripts/bundle.mjs), and
// the Node adapter starts a worker on it instead of os/node/entry.js
// (ProgramRegistry.entry): node loads one file instead of some forty modules,
// which measured 80 -> 26 ms of CPU per worker boot. The registry goes
// first, where entry.ts looks before importing it.
import { PRELOADED } from '../os/node/plumbing.js';
import type { ProgramRegistry } from '../os/types.js';
import { workerPrograms } from '../runtime/worker/worker.js';

(globalThis as { [PRELOADED]?: readonly ProgramRegistry[] })[PRELOADED] = [workerPrograms];
await import('../os/node/entry.js');
