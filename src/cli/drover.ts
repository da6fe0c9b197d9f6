// drover APP_MODULE [options]: the server. This process is the arbiter.
// drover ctl ...: the control client (src/cli/ctl.ts).
// drover sim ...: chaos runs on the simulated kernel (src/cli/sim.ts).
import { spawn } from 'node:child_process';
import { isAbsolute, resolve } from 'node:path';
import { createNodeOs } from '../os/node/index.js';
import { cpuCount } from '../os/node/cpus.js';
import { sdNotifier } from '../os/node/sd-notify.js';
import { parentNotifier } from '../os/node/parent-notify.js';
import { syntaxErrorAt } from '../os/node/os.js';
import { keepStdio } from '../os/node/stdio.js';
import { arbiter } from '../runtime/arbiter/arbiter.js';
import { ConfigError, helpText, loadConfig, parseArgv, placeProblems } from '../runtime/config/index.js';
import type { Notifier } from '../runtime/notify.js';
import { runtimePrograms } from '../runtime/programs.js';
import { EXIT_APP_LOAD } from '../runtime/protocol.js';
import { formatAddr } from '../os/types.js';
import { VERSION } from '../version.js';

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
  process.stdout.write(`drover ${VERSION} (node ${process.version})\n`);
  process.exit(0);
}
const cpus = cpuCount();
// Before the Os copies the environment: the API's marker is not for workers, nor a setting.
const notify: Notifier[] = [parentNotifier(), sdNotifier(process.env)].filter((n) => n !== null);
const os = createNodeOs({ programs: runtimePrograms, args: argv });
if (actions!.checkConfig) {
  let c;
  try {
    c = await loadConfig(os, argv, cpus);
  } catch (e) {
    fail(e);
  }
  // As a start would find them, before it: a log, pidfile or socket whose directory is missing.
  const places = placeProblems(os, c!);
  if (places.length > 0) {
    process.stderr.write(places.map((p) => `drover: ${p}\n`).join(''));
    process.exit(2);
  }
  process.stdout.write(`config OK${c!.config ? ` (${c!.config})` : ''}: app ${c!.app}, bind ${c!.bind.map(formatAddr).join(', ')}, ${c!.workers} worker(s)\n`);
  const app = isAbsolute(c!.app) ? c!.app : resolve(process.cwd(), c!.app);
  const r = await checkApp(app, c!.timeout > 0 ? c!.timeout : 30_000);
  if (!r.ok) {
    process.stderr.write(`drover: ${r.problem}\n`);
    process.exit(EXIT_APP_LOAD);
  }
  process.stdout.write(`app OK: ${app} loads; its default export is ${r.kind === 'listener' ? 'a request listener' : 'a factory (not called by --check-config)'}\n`);
  process.exit(0);
}
// The server outlives a reader of its stdout or stderr that goes away (`| head`, a killed `| tee`): src/os/node/stdio.ts.
keepStdio();
await arbiter(os, argv, { cpus, notify });

/**
 * The app module, imported as a worker imports it, in a process of its own
 * (its own group, killed whole afterwards): an app that throws, exits or
 * hangs at import takes down only that process. A factory is not called:
 * it may connect to a database, which a check should not.
 */
async function checkApp(path: string, deadline: number): Promise<{ ok: true; kind: 'listener' | 'factory' } | { ok: false; problem: string }> {
  // Runs in the child (CommonJS -e): the verdict goes back over IPC, then the child exits whatever the app left running.
  const script = `
    const done = (m) => process.send(m, () => process.exit(0));
    process.on('disconnect', () => process.exit(1));
    import(require('node:url').pathToFileURL(process.argv[1]).href).then((mod) => {
      let d = mod.default;
      if (d && typeof d === 'object' && typeof d.default === 'function') d = d.default;
      done({ kind: typeof d !== 'function' ? null : d.length >= 2 ? 'listener' : 'factory' });
    }, (e) => done({ error: e instanceof Error ? (e.stack || e.message) : String(e) }));`;
  // A checkout running its TypeScript sources starts workers with tsx's loader: the check does as they do.
  const loader = import.meta.url.endsWith('.ts') ? ['--import', import.meta.resolve('tsx')] : [];
  // The app's own output goes to stderr: stdout is the report.
  const child = spawn(process.execPath, [...loader, '-e', script, path], { stdio: ['ignore', 2, 2, 'ipc'], detached: true, serialization: 'json' });
  type Verdict = { kind?: 'listener' | 'factory' | null; error?: string };
  const said = await new Promise<Verdict | string>((done) => {
    const timer = setTimeout(() => done(`did not finish loading within ${deadline / 1000} s (the timeout setting)`), deadline);
    child.once('message', (m: Verdict) => (clearTimeout(timer), done(m)));
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      // A verdict sent just before the exit is still on the channel: it comes before the channel's end.
      const gone = (): void => done(`the process importing it exited (${code !== null ? `code ${code}` : signal}) before the import finished`);
      if (child.connected) child.once('disconnect', gone);
      else gone();
    });
    child.once('error', (e) => (clearTimeout(timer), done(`cannot start a process to import it: ${e.message}`)));
  });
  try {
    process.kill(-child.pid!, 'SIGKILL');
  } catch {
    // the group is gone
  }
  if (typeof said === 'string') return { ok: false, problem: `cannot load app ${path}: ${said}` };
  if (said.error !== undefined) {
    const where = said.error.startsWith('SyntaxError') ? syntaxErrorAt(path) : null;
    return { ok: false, problem: `cannot load app ${path}: ${where === null ? '' : `${where}\n\n`}${said.error}` };
  }
  if (!said.kind) return { ok: false, problem: `app ${path} has no default export function; export a request listener (req, res) => ... or a factory returning one` };
  return { ok: true, kind: said.kind };
}
