// Server processes of bench/mixed: drover with lanes on and off, and the
// node:cluster peer (cluster.ts), all serving bench/mixed/app.js. Each is
// started in its own process group, waited for until every worker has booted
// and it answers, and its whole group is killed at the end — on success, on
// failure, and on Ctrl-C (bench/lib/procs.ts).
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { freePort, groupMembers, startGroup, stopGroup, logWaiter } from '../lib/procs.js';
import { answers } from '../http/procs.js';

const ROOT = join(import.meta.dirname, '..', '..');
const DROVER = join(ROOT, 'bin', 'drover.js');
const CLUSTER = join(import.meta.dirname, 'cluster.ts');
export const APP = join(import.meta.dirname, 'app.js');

export type Kind = 'lanes-on' | 'lanes-off' | 'cluster';

export interface ServerOptions {
  workers: number;
  /**
   * The benchmark's temporary directory: drover's control sockets (each
   * drover its own: the default path is shared by drovers started alike) and
   * its slow-lane sockets (XDG_RUNTIME_DIR).
   */
  controlDir: string;
  /** seconds; lanes on only */
  slowThreshold: number;
  /** lanes on only */
  slowWorkers: number;
}

export interface Server {
  readonly kind: Kind;
  readonly port: number;
  readonly pid: number;
  /** the command line, relative to the repository */
  readonly argv: readonly string[];
  /** Everything the process group wrote to stdout and stderr so far. */
  log(): string;
  /** Resolves when the log has `count` matches of `re`. */
  waitFor(re: RegExp, count?: number, timeoutMs?: number): Promise<void>;
  /** TERM to the leader, then KILL to the whole group after graceMs; waits for the group to be empty. */
  stop(graceMs?: number): Promise<void>;
}

export function argvOf(kind: Kind, port: number, o: ServerOptions): string[] {
  const bind = `127.0.0.1:${port}`;
  switch (kind) {
    case 'lanes-on':
      return ['bin/drover.js', 'bench/mixed/app.js', '--bind', bind, '--workers', String(o.workers), '--lanes', 'on', '--slow-threshold', String(o.slowThreshold), '--slow-workers', String(o.slowWorkers), '--control-socket', controlSocket(kind, o)];
    case 'lanes-off':
      return ['bin/drover.js', 'bench/mixed/app.js', '--bind', bind, '--workers', String(o.workers), '--lanes', 'off', '--control-socket', controlSocket(kind, o)];
    case 'cluster':
      return ['--import', 'tsx', 'bench/mixed/cluster.ts', String(port), String(o.workers)];
  }
}

export function controlSocket(kind: Kind, o: ServerOptions): string {
  return join(o.controlDir, `${kind}.sock`);
}

/** `drover ctl stats --json` of a drover: its lanes as the arbiter counts them; null if it cannot say. */
export function ctlStats(kind: Kind, o: ServerOptions): unknown {
  try {
    const out = execFileSync(process.execPath, [DROVER, 'ctl', '--socket', controlSocket(kind, o), 'stats', '--json'], { cwd: ROOT, encoding: 'utf8', timeout: 15_000 });
    return JSON.parse(out) as unknown;
  } catch {
    return null;
  }
}

function startServer(kind: Kind, port: number, o: ServerOptions): Server {
  const argv = argvOf(kind, port, o);
  const abs = argv.map((a) => (a === 'bin/drover.js' ? DROVER : a === 'bench/mixed/app.js' ? APP : a === 'bench/mixed/cluster.ts' ? CLUSTER : a));
  // XDG_RUNTIME_DIR: drover puts its slow-lane sockets' directory there; in
  // the benchmark's own temporary directory, it goes with it even if a
  // server has to be killed.
  const { proc, pid } = startGroup(kind, abs, ROOT, { ...process.env, XDG_RUNTIME_DIR: o.controlDir });
  let text = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => (text += d));
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (text += d));
  let exited = false;
  const exit = new Promise<void>((resolve) => proc.on('exit', () => {
    exited = true;
    resolve();
  }));
  return {
    kind,
    port,
    pid,
    argv,
    log: () => text,
    waitFor: logWaiter(kind, () => text, () => exited),
    async stop(graceMs = 5000) {
      await stopGroup(kind, pid, exit, graceMs);
    },
  };
}

/** Starts a server and resolves once every worker (slow-lane ones included) has booted and GET / answers 200. */
export async function startReady(kind: Kind, o: ServerOptions): Promise<Server> {
  const port = await freePort();
  const s = startServer(kind, port, o);
  try {
    if (kind === 'cluster') await s.waitFor(/^ready$/m);
    else await s.waitFor(/booted \(generation 1\)/, o.workers + (kind === 'lanes-on' ? o.slowWorkers : 0));
    await answers(port);
  } catch (e) {
    await s.stop(0).catch(() => {});
    throw e;
  }
  return s;
}


/** The pids of drover's slow-lane workers, from its log. */
export function slowLanePids(log: string): string[] {
  return [...log.matchAll(/slow-lane worker (\d+) booted/g)].map((m) => m[1]!);
}

/** The pids of the server's HTTP workers (drover's fast workers; node:cluster's workers). */
export function httpWorkerPids(s: Server): string[] {
  if (s.kind === 'cluster') return groupMembers(s.pid).filter((p) => p !== s.pid).map(String);
  return [...s.log().matchAll(/(?<!slow-lane )worker (\d+) booted/g)].map((m) => m[1]!);
}

/**
 * Scheduler figures of processes' main threads so far, summed, from
 * /proc/PID/schedstat: time waiting on a run queue (runnable, not running),
 * and timeslices run. null without /proc.
 */
export function schedstat(pids: readonly (string | number)[]): { waitNs: number; slices: number } | null {
  let waitNs = 0;
  let slices = 0;
  for (const pid of pids) {
    try {
      const f = readFileSync(`/proc/${pid}/schedstat`, 'latin1').trim().split(' ');
      waitNs += Number(f[1]);
      slices += Number(f[2]);
    } catch {
      return null;
    }
  }
  return { waitNs, slices };
}
