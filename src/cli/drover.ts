// drover APP_MODULE [options]: the server. This process is the arbiter.
// drover ctl ...: the control client (src/cli/ctl.ts).
// drover sim ...: chaos runs on the simulated kernel (src/cli/sim.ts).
import { availableParallelism } from 'node:os';
import { createNodeOs } from '../os/node/index.js';
import { arbiter, VERSION } from '../runtime/arbiter/arbiter.js';
import { ConfigError, helpText, loadConfig, parseArgv } from '../runtime/config/index.js';
import { runtimePrograms } from '../runtime/programs.js';
import { formatAddr } from '../os/types.js';

const argv = process.argv.slice(2);
if (argv[0] === 'ctl') await (await import('./ctl.js')).main(argv.slice(1));
if (argv[0] === 'sim') await (await import('./sim.js')).main(argv.slice(1));
const fail = (e: unknown): never => {
  process.stderr.write(`drover: ${e instanceof ConfigError ? e.message : e instanceof Error ? e.message : String(e)}\n`);
  process.exit(2);
};

let actions;
try {
  actions = parseArgv(argv).actions;
} catch (e) {
  fail(e);
}
if (actions!.help) {
  process.stdout.write(helpText());
  process.exit(0);
}
if (actions!.version) {
  process.stdout.write(`drover ${VERSION}\n`);
  process.exit(0);
}
const cpus = availableParallelism();
const os = createNodeOs({ programs: [runtimePrograms], args: argv });
if (actions!.checkConfig) {
  try {
    const c = await loadConfig(os, argv, cpus);
    process.stdout.write(`config OK${c.config ? ` (${c.config})` : ''}: app ${c.app}, bind ${c.bind.map(formatAddr).join(', ')}, ${c.workers} worker(s)\n`);
    process.exit(0);
  } catch (e) {
    fail(e);
  }
}
await arbiter(os, argv, { cpus });
