// What a worker's boot costs in CPU, stage by stage, each measured as the
// CPU time (user + system) of a fresh node process that goes that far and
// stops: node itself, then drover's process entry (its early module and the
// Node adapter's graph), then the worker program's graph, then the app, each
// as tsc built them (one module a file); then the worker's one-file entry
// (dist/cli/worker-entry.js), which is what a worker loads. Where the
// environment names extra CA certificates, node itself with them too.
// Quiet machine, median of `runs` processes a stage. Under load a reload's
// new workers share the CPUs with the old ones and the clients, so their
// boot takes a multiple of this in wall time; what drover controls is what
// lies above the first row.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { median } from '../lib/report.js';

const ROOT = join(import.meta.dirname, '..', '..');

export interface BootStage {
  readonly stage: string;
  /** CPU ms of a process that went this far (median) */
  readonly cpuMs: number;
}

/** One node process's own CPU ms when `code` (an ES module body) has run, with `flags`. */
function cpuOf(flags: readonly string[], code: string, env: NodeJS.ProcessEnv = {}): number {
  const out = execFileSync(process.execPath, [...flags, '--input-type=module', '-e', `${code}\nconst c = process.cpuUsage(); console.log((c.user + c.system) / 1000);`], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '', ...env } });
  return Number(out.trim().split('\n').pop());
}

/**
 * One node process's own CPU ms at exit, started on `file` with `flags` and
 * `args` (whatever its exit code: a program entry asked for a program no
 * registry holds loads its graph, then exits 1).
 */
function cpuAtExit(flags: readonly string[], file: string, args: readonly string[]): number {
  const hook = `data:text/javascript,${encodeURIComponent("process.on('exit',()=>{const c=process.cpuUsage();process.stdout.write('\\ncpu '+(c.user+c.system)/1000+'\\n')})")}`;
  const r = spawnSync(process.execPath, ['--import', hook, ...flags, file, ...args], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } });
  const m = /\ncpu ([\d.]+)\n/.exec(r.stdout);
  if (!m) throw new Error(`bench/http: no CPU figure from ${file} (exit ${r.status}): ${r.stderr}`);
  return Number(m[1]);
}

/** Needs drover's build (dist/): the stages are what an installed drover loads. */
export async function bootCost(runs = 5, app = join(import.meta.dirname, 'hello.js')): Promise<BootStage[]> {
  if (!existsSync(join(ROOT, 'dist', 'os', 'node', 'entry.js'))) throw new Error('bench/http: the boot cost is measured on drover\'s build, and dist/ is missing: run `npm run build` first');
  const dist = (p: string) => pathToFileURL(join(ROOT, 'dist', p)).href;
  const { EARLY_IMPORT } = (await import(dist('os/node/early.js'))) as { EARLY_IMPORT: string };
  const early = ['--import', EARLY_IMPORT];
  // entry.js's own imports, read from it, without running it (it starts a program).
  const entry = join(ROOT, 'dist', 'os', 'node', 'entry.js');
  const entryGraph = [...readFileSync(entry, 'utf8').matchAll(/^import\s+(?:[^'";]*?\sfrom\s+)?['"]([^'"]+)['"]/gm)]
    .map((m) => (m[1]!.startsWith('.') ? pathToFileURL(join(dirname(entry), m[1]!)).href : m[1]!))
    .map((u) => `await import(${JSON.stringify(u)});`).join('');
  const stages: [string, readonly string[], string][] = [
    ['node itself (node -e 0)', [], ''],
    ["+ drover's process entry (early module, the Node adapter), module by module", early, entryGraph],
    ["+ the worker program's graph (runtime/worker), module by module", early, entryGraph + `await import(${JSON.stringify(dist('runtime/worker/worker.js'))});`],
    ['+ the app (bench/http/hello.js), module by module', early, entryGraph + `await import(${JSON.stringify(dist('runtime/worker/worker.js'))}); await import(${JSON.stringify(pathToFileURL(app).href)});`],
    ['for comparison: every program\'s graph (runtime/programs, as before the split)', early, entryGraph + `await import(${JSON.stringify(dist('runtime/programs.js'))});`],
  ];
  const out: BootStage[] = [];
  for (const [stage, flags, code] of stages) {
    const xs: number[] = [];
    for (let i = 0; i < runs; i++) xs.push(cpuOf(flags, code));
    out.push({ stage, cpuMs: median(xs) });
  }
  // The exit hook's own import is a data: URL, next to nothing.
  const oneFile = join(ROOT, 'dist', 'cli', 'worker-entry.js');
  const xs: number[] = [];
  for (let i = 0; i < runs; i++) xs.push(cpuAtExit(early, oneFile, ['no-such-program']));
  // Node reads NODE_EXTRA_CA_CERTS at its start, all of it, whether the process makes a TLS connection or not.
  const extra = process.env.NODE_EXTRA_CA_CERTS;
  if (extra !== undefined) {
    const ys: number[] = [];
    for (let i = 0; i < runs; i++) ys.push(cpuOf([], '', { NODE_EXTRA_CA_CERTS: extra }));
    out.splice(1, 0, { stage: `node itself with this machine's NODE_EXTRA_CA_CERTS (${extra}), which every process of the reload runs inherits`, cpuMs: median(ys) });
  }
  out.splice(extra === undefined ? 4 : 5, 0, { stage: "the worker's one-file entry, up to its program (dist/cli/worker-entry.js: drover's entry and the worker's graph in one file, which is what a worker loads)", cpuMs: median(xs) });
  return out;
}
