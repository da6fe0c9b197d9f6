// Runs the real arbiter and workers on the simulated kernel: a scenario
// program starts `arbiter` with a command line, drives it with signals and
// HTTP load over simulated sockets, and asserts from inside the simulation.
// Everything is virtual time and replays from its seed.
import { stillSpare } from '../../src/runtime/protocol.js';
import { join } from 'node:path';
import type { Hooks } from '../../src/os/hooks.js';
import { programs, type Exited, type Os, type ProgramRegistry, type Signal } from '../../src/os/types.js';
import { runtimePrograms } from '../../src/runtime/programs.js';
import { Kernel } from '../../src/sim/index.js';
import { get, OsAgent, type Reply } from '../support/http.js';
import { loops, type Load } from '../support/load.js';
import { reap, until } from '../support/os.js';

export const SIM_APP = join(import.meta.dirname, '..', 'apps', 'sim-app.js');
export const ADDR = { host: '127.0.0.1', port: 8000 };
export const LOG = '/tmp/drover.log';

export interface Ctl {
  readonly os: Os;
  readonly k: Kernel;
  readonly arbiter: number;
  log(): string;
  waitLog(re: RegExp, timeout?: number, from?: number): Promise<RegExpMatchArray>;
  /** Resolves when `n` workers have booted since log offset `from`. */
  booted(n: number, from?: number, timeout?: number): Promise<void>;
  signal(sig: Signal): void;
  /** Live worker pids. */
  workers(): number[];
  get(path?: string): Promise<Reply>;
  /** Clients looping on `path`; keep-alive connections unless `fresh` (one connection per request). */
  load(concurrency?: number, path?: string, fresh?: boolean): Load;
  exited(timeout?: number): Promise<Exited>;
}

export interface SimResult {
  readonly k: Kernel;
  readonly arbiter: Exited | null;
  readonly log: string;
  /** Processes still running when the scenario ended (after the arbiter was stopped). */
  readonly left: string[];
}

/** `files` are written to the simulated disk before the arbiter starts; `hooks`, the kernel's (what a test hears from inside drover). */
export async function simulate(seed: number, argv: readonly string[], body: (ctl: Ctl) => Promise<void>, files: Record<string, string> = {}, extra: readonly ProgramRegistry[] = [], hooks: Hooks = {}): Promise<SimResult> {
  let arbiterExit: Exited | null = null;
  const scenario = async (os: Os) => {
    os.fs.writeFile(LOG, '');
    for (const [path, text] of Object.entries(files)) os.fs.writeFile(path, text);
    const a = os.spawn({ program: 'arbiter', args: argv, channel: false, stdout: { file: LOG }, stderr: { file: LOG } });
    const log = () => os.fs.readFile(LOG);
    const ctl: Ctl = {
      os,
      k,
      arbiter: a.pid,
      log,
      async waitLog(re, timeout = 30_000, from = 0) {
        let m: RegExpMatchArray | null = null;
        if (!(await until(os, () => (m = log().slice(from).match(re)) !== null, timeout))) {
          throw new Error(`no log line matching ${re} within ${timeout} ms:\n${log()}`);
        }
        return m!;
      },
      async booted(n, from = 0, timeout = 30_000) {
        const count = () => (log().slice(from).match(/(?<!lane )worker \d+ booted/g) ?? []).length;
        if (!(await until(os, () => count() >= n, timeout))) throw new Error(`${count()} of ${n} workers booted within ${timeout} ms:\n${log()}`);
      },
      signal: (sig) => os.kill(a.pid, sig),
      workers: () => k.processes().filter((p) => p.program === 'worker' && p.state === 'running' && !stillSpare(p.args, p.title)).map((p) => p.pid),
      get: (path = '/') => get(os, ADDR, path),
      load(concurrency = 4, path = '/', fresh = false) {
        const agents = Array.from({ length: concurrency }, () => (fresh ? undefined : new OsAgent(os, ADDR, { keepAlive: true, maxSockets: 1 })));
        return loops(concurrency, (i) => get(os, ADDR, path, agents[i]), () => os.sleep(10), () => agents.forEach((a) => a?.destroy()));
      },
      async exited(timeout = 60_000) {
        arbiterExit = await reap(os, a.pid, timeout);
        return arbiterExit;
      },
    };
    try {
      await body(ctl);
    } finally {
      if (arbiterExit === null) {
        try {
          os.kill(a.pid, 'SIGKILL');
          await reap(os, a.pid);
        } catch {
          // already collected
        }
      }
    }
  };
  const k = new Kernel({ seed, record: process.env.DROVER_SIM_RECORD === "1", programs: [...runtimePrograms, programs(import.meta.url, { scenario }), ...extra], hooks });
  const root = k.spawn({ program: 'scenario', channel: false });
  await k.run({ stopWhen: () => k.exitStatus(root) !== undefined, until: 3_600_000 });
  // Let what the arbiter left behind finish or fail to: orphans must end on their own.
  await k.run({ until: k.now() + 5_000 });
  const log = k.fs.exists(LOG) ? k.fs.readFile(LOG) : '';
  const e = k.exitStatus(root);
  if (!e || e.code !== 0) {
    throw new Error(`scenario (seed ${seed}) ${e ? `exited ${e.code ?? e.signal}` : 'did not finish'}:\n${k.output.stderr}\n--- drover log ---\n${log}\n--- last events ---\n${k.trace().slice(-30).join('\n')}`);
  }
  return { k, arbiter: arbiterExit, log, left: k.processes().filter((p) => p.state !== 'zombie').map((p) => `${p.pid} ${p.program}`) };
}
