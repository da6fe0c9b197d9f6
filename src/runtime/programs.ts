// The programs drover starts as processes: the Node adapter runs them in
// fresh node processes, the simulator calls them directly.
import { programs } from '../os/types.js';
import { arbiter } from './arbiter/arbiter.js';
import { worker } from './worker/worker.js';
import { manager } from './companions/manager.js';
import { companionModule } from './companions/module.js';

export const runtimePrograms = programs(import.meta.url, {
  worker,
  // The same code in its slow-lane role (WorkerSpec.role): its own name, so that ps and tests tell the two apart.
  'slow-worker': worker,
  'companion-manager': manager,
  'companion-module': companionModule,
  // Started directly by the CLI on the real OS; spawned by tests in the simulator (a 2-CPU machine).
  arbiter: (os, args) => arbiter(os, args, { cpus: 2 }),
});
