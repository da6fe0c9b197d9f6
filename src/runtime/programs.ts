// The programs drover starts as processes: the Node adapter runs them in
// fresh node processes, the simulator calls them directly. One registry per
// program's module: a child imports the module its own program is in and
// what that imports, nothing else (a worker that imported the arbiter's and
// the companions' graphs too spent a third of its boot on them).
import { programs, type ProgramRegistry } from '../os/types.js';
import { arbiter } from './arbiter/arbiter.js';
import { workerPrograms } from './worker/worker.js';
import { managerPrograms } from './companions/manager.js';
import { companionModulePrograms } from './companions/module.js';

/** Started directly by the CLI on the real OS; spawned by tests in the simulator (a 2-CPU machine). */
const arbiterPrograms = programs(import.meta.url, { arbiter: (os, args) => arbiter(os, args, { cpus: 2 }) });

export const runtimePrograms: readonly ProgramRegistry[] = [workerPrograms, managerPrograms, companionModulePrograms, arbiterPrograms];
